// The integration lab: three network namespaces (msp ↔ gw ↔ lan) with echo servers, built by
// vm/netns-lab.sh (the one description of the topology) and torn down when the NamespaceLab goes
// away.
// Tests send real packets through the gateway with drawbridge-labnet and run the enforcer inside
// the gateway namespace.
//
// Failures of the lab itself (a command that cannot run, a probe that cannot bind its source
// address) throw std::runtime_error: a broken lab must fail the test, never read as "blocked".
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace drawbridge::lab {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// The lab's addresses, named for what they stand for.
namespace addr {
// msp: provider "acme" owns 203.0.113.0/28 and 2001:db8:100::/48.
inline constexpr const char* kAcme = "203.0.113.2";
inline constexpr const char* kAcme2 = "203.0.113.3";
inline constexpr const char* kAcmeV6 = "2001:db8:100::2";
inline constexpr const char* kUnapproved = "203.0.113.100";  // same /24, outside acme's /28
inline constexpr const char* kAttacker = "198.51.100.66";
inline constexpr const char* kAttackerV6 = "2001:db8:666::66";
// gw, WAN side (the gateway's own services) and LAN side.
inline constexpr const char* kGwWan = "203.0.113.254";
inline constexpr const char* kGwWanAttackerNet = "198.51.100.254";
inline constexpr const char* kGwWanV6 = "2001:db8:100::fe";
inline constexpr const char* kGwWanAttackerNetV6 = "2001:db8:666::fe";
inline constexpr const char* kGwLan = "10.20.0.1";
inline constexpr const char* kGwLanV6 = "2001:db8:20::1";
// lan servers.
inline constexpr const char* kServer = "10.20.0.10";
inline constexpr const char* kServer2 = "10.20.0.11";
inline constexpr const char* kServer3 = "10.20.0.12";
inline constexpr const char* kServerV6 = "2001:db8:20::10";
inline constexpr const char* kServer2V6 = "2001:db8:20::11";
}  // namespace addr

// Ports the echo servers listen on, in lan and in gw: tcp 22,3389,5900,8080,8443 and udp 3389.

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
  [[nodiscard]] bool ok() const { return exit_code == 0; }
  // "exit 1, stderr: ..." for assertion messages.
  [[nodiscard]] std::string describe() const;
};

// A process started in the background (the daemon, a stream). Its stdout and stderr go to files.
// Move-only; destroying a running Process kills its process group and reaps it.
class Process {
 public:
  Process() = default;
  Process(pid_t pid, std::string out_path, std::string err_path, std::string what);
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  [[nodiscard]] pid_t pid() const { return pid_; }
  // True while it has not exited (reaps it if it has).
  [[nodiscard]] bool running();
  // Sends `signal` to the process group.
  void kill(int signal = SIGTERM);
  // Waits for the exit; on timeout SIGKILLs and reports timed_out.
  RunResult wait(Millis timeout = 10s);
  // Waits until stdout contains `text`; false if it exits first or on timeout.
  [[nodiscard]] bool wait_for_output(std::string_view text, Millis timeout);
  [[nodiscard]] std::string out() const;
  [[nodiscard]] std::string err() const;

 private:
  void reap(int status);
  void release() noexcept;

  pid_t pid_ = -1;
  std::string out_path_;
  std::string err_path_;
  std::string what_;
  std::optional<RunResult> result_;
};

struct ProbeResult {
  bool allowed = false;
  std::string detail;  // "allowed" or "blocked: why"
};

// What `labnet stream` reports.
struct StreamResult {
  int echoes = 0;
  std::int64_t first_echo_ms = 0;  // unix epoch ms
  std::int64_t last_echo_ms = 0;
  std::string raw;
};
StreamResult parse_stream(const RunResult& result);

// Runs argv on the host (not in a namespace), e.g. the enforcer's pure subcommands.
RunResult run_host(const std::vector<std::string>& argv, Millis timeout = 10s);

// Paths given by the build; the environment variables DRAWBRIDGE_ENFORCER and DRAWBRIDGE_LABNET
// override them (as for vm/netns-lab.sh), e.g. to test an installed enforcer.
const char* enforcer_bin();
const char* labnet_bin();
// The controller binary; DRAWBRIDGE_CONTROLLER overrides the build's.
const char* controller_bin();
const char* source_dir();

class NamespaceLab {
 public:
  // Builds <prefix>msp, <prefix>gw, <prefix>lan (replacing stale ones with these names) and
  // starts the echo servers in lan and gw. Throws std::runtime_error if the lab cannot be built;
  // whatever was created is removed first.
  explicit NamespaceLab(std::string prefix = unique_prefix());
  NamespaceLab(NamespaceLab&& other) noexcept;
  NamespaceLab& operator=(NamespaceLab&& other) noexcept;
  NamespaceLab(const NamespaceLab&) = delete;
  NamespaceLab& operator=(const NamespaceLab&) = delete;
  // Kills the lab's processes and deletes the namespaces; never throws.
  ~NamespaceLab();

  // "dbt<pid>-<n>": unique per process and call, short, and recognised by cleanup_stale.sh,
  // which removes leftovers only when <pid> is no longer alive.
  static std::string unique_prefix();
  static bool namespace_exists(const std::string& name);

  [[nodiscard]] const std::string& prefix() const { return prefix_; }
  [[nodiscard]] std::string msp() const { return prefix_ + "msp"; }
  [[nodiscard]] std::string gw() const { return prefix_ + "gw"; }
  [[nodiscard]] std::string lan() const { return prefix_ + "lan"; }
  // A private temporary directory, removed with the lab.
  [[nodiscard]] const std::string& temp_dir() const { return temp_dir_; }
  // Writes `content` to temp_dir()/name and returns the path.
  std::string write_file(const std::string& name, const std::string& content) const;

  // Runs argv inside namespace `ns` and captures its output; killed after `timeout`.
  RunResult run(const std::string& ns, const std::vector<std::string>& argv,
                Millis timeout = 10s) const;
  // Starts argv inside namespace `ns` in the background.
  Process spawn(const std::string& ns, const std::vector<std::string>& argv) const;

  // One labnet probe from namespace `ns`. Throws if the probe cannot run (exit 2).
  ProbeResult probe_from(const std::string& ns, const std::string& from, const std::string& to,
                         const std::string& port, Millis timeout = 1000ms) const;
  // probe_from() from whichever namespace owns the source address.
  [[nodiscard]] bool probe(const std::string& from, const std::string& to, const std::string& port,
                           Millis timeout = 1000ms) const;
  // Repeats short probes until the outcome is `allowed` or `until` passes; true if reached.
  [[nodiscard]] bool probe_until(bool allowed, const std::string& from, const std::string& to,
                                 const std::string& port,
                                 std::chrono::system_clock::time_point until) const;
  // A labnet stream in the background from whichever namespace owns `from`.
  Process stream(const std::string& from, const std::string& to, const std::string& port,
                 Millis interval, Millis duration) const;
  // The namespace that owns `address` (msp, gw or lan); throws for an unknown address.
  [[nodiscard]] std::string namespace_of(const std::string& address) const;

  // `nft args...` in gw.
  RunResult nft(const std::vector<std::string>& args) const;
  // `nft -f` of `script` in gw.
  RunResult nft_script(const std::string& script) const;
  // The enforcer with `args` in gw.
  RunResult enforcer(const std::vector<std::string>& args, Millis timeout = 20s) const;
  Process spawn_enforcer(const std::vector<std::string>& args) const;

 private:
  void build();
  void teardown() noexcept;
  std::string next_output_path(const std::string& tag) const;

  std::string prefix_;
  std::string temp_dir_;
  std::vector<Process> servers_;
  mutable int outputs_ = 0;
};

// A bare namespace with only lo up (e.g. to load `render` output with `nft -f`); deleted on
// destruction.
class ScratchNamespace {
 public:
  explicit ScratchNamespace(std::string name);
  ScratchNamespace(const ScratchNamespace&) = delete;
  ScratchNamespace& operator=(const ScratchNamespace&) = delete;
  ~ScratchNamespace();
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// True when the process may create network namespaces.
bool running_as_root();

}  // namespace drawbridge::lab
