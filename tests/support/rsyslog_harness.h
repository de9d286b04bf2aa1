// A real rsyslogd as the SOC's collector, for tests: a private directory, a test PKI made with the
// openssl CLI, and one rsyslogd per test with UDP, TCP (RFC 6587) and TLS (RFC 5425, gtls) inputs
// writing every message as it arrived into one file. Used by the delivery tests on loopback
// (tests/soc) and by the lab tests, where rsyslogd runs inside a network namespace (tests/
// integration). No service is assumed; each rsyslogd dies with the test (SIGKILL at destruction,
// and PR_SET_PDEATHSIG should the test binary itself die).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace drawbridge::test_support {

// A directory under $TMPDIR, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A port the kernel just said was free on 127.0.0.1 (for `type`: SOCK_STREAM or SOCK_DGRAM).
std::uint16_t free_port(int type);

// `command` through the shell, output discarded; true on exit 0.
bool run(const std::string& command);
// `command`'s stdout.
std::string capture(const std::string& command);
// The whole file; empty when it cannot be read.
std::string read_file(const std::string& path);

// Polls `pred` every 20 ms until it holds or `limit` has passed; the last answer.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  return pred();
}

// Starts `argv` (argv[0] a path) with stdout and stderr appended to `log`, dying with this
// process.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log);
// Waits for the process to end, up to `limit`; true when it did.
bool reap(pid_t pid, std::chrono::milliseconds limit);

// The certificates of one test run: a CA, the collector's certificate (subjectAltName: each of
// `ip_names` as an IP and DNS:localhost) and a second, unrelated CA with the same subject.
struct Pki {
  std::string dir, ca, ca_key, server_cert, server_key, rogue_ca;
  // The two pins an operator would compute, exactly as docs/soc-delivery.md says.
  std::string cert_sha256, spki_sha256;

  [[nodiscard]] bool make(const std::string& d,
                          const std::vector<std::string>& ip_names = {"127.0.0.1"});
};

struct RsyslogOptions {
  // The address every input binds to, and the network namespace (`ip netns exec`) rsyslogd runs
  // in; empty: the test's own.
  std::string address = "127.0.0.1";
  std::string netns;
  // 0: a port free on the host's loopback (fine in a fresh namespace too).
  std::uint16_t tcp_port = 0, tls_port = 0, udp_port = 0;
};

// One rsyslogd for one test: UDP, TCP and TLS inputs, one output file with each message's raw
// text (%rawmsg%) on a line. The configuration is the collector side docs/soc-delivery.md shows.
class Rsyslog {
 public:
  Rsyslog(const std::string& dir, const Pki& pki, RsyslogOptions options = {});
  ~Rsyslog() { kill(); }
  Rsyslog(const Rsyslog&) = delete;
  Rsyslog& operator=(const Rsyslog&) = delete;

  // Starts rsyslogd and waits until all three inputs listen. $DRAWBRIDGE_RSYSLOGD overrides the
  // binary (default /usr/sbin/rsyslogd).
  ::testing::AssertionResult start();
  // A clean stop (SIGTERM): what a collector restart or maintenance looks like.
  void stop();
  void kill();
  [[nodiscard]] bool running() const { return pid_ > 0; }

  // Every line received so far, in the order rsyslog wrote them.
  [[nodiscard]] std::vector<std::string> lines() const;
  // rsyslogd's own stdout and stderr, for failure messages.
  [[nodiscard]] std::string diagnostics() const;

  std::uint16_t tcp_port = 0, tls_port = 0, udp_port = 0;
  std::string out;  // the file of received lines

 private:
  // Whether rsyslogd listens on address:port, from its own /proc/<pid>/net/{tcp,udp} (its
  // namespace's view; a connection attempt would show up in rsyslog's log as a broken session).
  [[nodiscard]] bool listening(const std::string& proto, std::uint16_t port) const;

  std::string dir_;
  RsyslogOptions options_;
  pid_t pid_ = -1;
};

}  // namespace drawbridge::test_support
