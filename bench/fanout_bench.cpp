// drawbridge-fanout-bench: publish-to-applied latency of the control channel, and the
// controller's memory per connected enforcer, at N = 1, 100, 1,000 … connected enforcers.
//
// For each N, in a temporary directory of its own:
//   1. generates a provider Ed25519 key, a controller CURVE key and N enforcer CURVE keys, and
//      writes a controller config listing the N enforcer keys (site "bench", loopback);
//   2. starts the real `drawbridge-controller serve --config` as a child process;
//   3. samples the controller's RSS (/proc/PID/status VmRSS) with no enforcer connected;
//   4. connects N simulated enforcers: N DEALER sockets with CURVE in this one process, each
//      sending a hello (site "bench", no serial), and waits until the controller's status shows
//      all N connected; samples the RSS again;
//   5. runs R rounds: signs a small valid policy with serial k, publishes it through the admin
//      socket and records, for every enforcer, when its bundle arrived (µs, steady clock of this
//      process). Each simulated enforcer answers at once with an "applied" ack, without any
//      kernel work. When the status shows all N acks, the controller's own record of each ack
//      (last_ack_at, ms since the epoch) gives the publish → applied-ack latency.
// The simulated enforcers send a heartbeat (with what they hold) every heartbeat interval,
// spread evenly over the interval, as real ones do, and consume the controller's answers.
//
// Prints a table and writes the results as JSON (--out). The controller is stopped and reaped
// and the temporary directory removed on every exit path (also on SIGINT/SIGTERM).
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/curve_keys.h"
#include "common/policy_parser.h"
#include "common/signing.h"
#include "common/wire_protocol.h"
#include "controller/admin_channel.h"

#ifndef DRAWBRIDGE_CONTROLLER_BIN
#define DRAWBRIDGE_CONTROLLER_BIN "drawbridge-controller"
#endif

namespace {

using namespace drawbridge;
using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;
using std::chrono::milliseconds;

constexpr const char* kSite = "bench";
constexpr milliseconds kAdminTimeout{30'000};

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int) {
  g_interrupted = true;
}

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

void check_interrupted() {
  if (g_interrupted) throw Interrupted();
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

double us_between(SteadyTime a, SteadyTime b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

std::int64_t unix_us_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// --- small process helpers ------------------------------------------------------------------

// The hard limit of open files: every DEALER costs this process a TCP socket and a mailbox.
void raise_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

std::uint64_t file_limit() {
  rlimit lim{};
  return getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 0;
}

// A loopback TCP port nobody listens on right now (the controller binds it a moment later).
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    fail("cannot find a free loopback port: " + err);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// "VmRSS" or "VmHWM" of a process, in KiB.
std::int64_t proc_status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":"))
      return std::strtoll(line.c_str() + field.size() + 1, nullptr, 10);
  }
  fail("cannot read " + field + " of process " + std::to_string(pid));
}

// User + system CPU time of a process, in ms.
double proc_cpu_ms(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close_paren = text.rfind(')');
  if (close_paren == std::string::npos) return 0;
  std::istringstream rest(text.substr(close_paren + 2));
  std::string field;
  double utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::strtod(field.c_str(), nullptr);
    if (i == 15) stime = std::strtod(field.c_str(), nullptr);
  }
  return (utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// TcpExt counters of this network namespace (/proc/net/netstat), e.g. ListenOverflows: the
// connections the controller's listen queue (ZMQ_BACKLOG, 100 by default) had to drop.
std::map<std::string, std::int64_t> tcp_ext_counters() {
  std::ifstream in("/proc/net/netstat");
  std::string names, values;
  std::map<std::string, std::int64_t> out;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (!names.starts_with("TcpExt:")) continue;
    std::istringstream n(names.substr(7)), v(values.substr(7));
    std::string name;
    std::int64_t value = 0;
    while (n >> name && v >> value) out[name] = value;
  }
  return out;
}

// A temporary directory, removed with its contents when destroyed (unless kept).
class TempDir {
 public:
  TempDir(const std::string& parent, bool keep) : keep_(keep) {
    std::string tmpl = parent + "/drawbridge-fanout.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      fail("cannot create a directory in " + parent + ": " + std::strerror(errno));
    }
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    if (keep_) {
      std::cerr << "  kept " << path_ << "\n";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool keep_;
};

// The controller as a child process, stopped (SIGTERM, then SIGKILL after 5 s) and reaped
// when destroyed. It also dies with this process (PR_SET_PDEATHSIG).
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path) {
    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log < 0) fail("cannot open " + log_path + ": " + std::strerror(errno));
    const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
      const std::string err = std::strerror(errno);
      ::close(log);
      if (devnull >= 0) ::close(devnull);
      fail("fork: " + err);
    }
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(log, 1);
      ::dup2(log, 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(log);
    if (devnull >= 0) ::close(devnull);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { stop(); }

  [[nodiscard]] pid_t pid() const { return pid_; }

  // Empty while it runs; its wait status once it has exited (and is reaped).
  std::optional<int> exited() {
    if (pid_ <= 0) return status_;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = st;
    }
    return status_;
  }

  // SIGTERM, up to 5 s for a clean exit, then SIGKILL. Returns the wait status.
  std::optional<int> stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
    while (SteadyClock::now() < deadline) {
      if (exited()) return status_;
      std::this_thread::sleep_for(milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    status_ = st;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return "exit status " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "wait status " + std::to_string(st);
}

std::string tail_of_file(const std::string& path, std::size_t max_bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > max_bytes ? "…" + text.substr(text.size() - max_bytes) : text;
}

// --- statistics -----------------------------------------------------------------------------

struct Summary {
  std::size_t samples = 0;
  double p50 = 0, p99 = 0, max = 0, mean = 0;
};

// Nearest-rank percentiles.
Summary summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double p) {
    const auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(k, 1, v.size()) - 1];
  };
  s.samples = v.size();
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

nlohmann::json to_json(const Summary& s) {
  return {{"samples", s.samples}, {"p50", s.p50}, {"p99", s.p99}, {"max", s.max}, {"mean", s.mean}};
}

// --- the policy that is published -----------------------------------------------------------

// The i-th of --prefixes extra provider addresses, as bench/gen_policy.py lays them out: every
// fourth address of 198.18.0.0/15, then of 10.64.0.0/10 (never overlapping, never adjacent).
std::string extra_address(int i) {
  const std::uint32_t base =
      i < 32768 ? (198u << 24 | 18u << 16) + 4u * static_cast<std::uint32_t>(i)
                : (10u << 24 | 64u << 16) + 4u * static_cast<std::uint32_t>(i - 32768);
  return std::to_string(base >> 24) + "." + std::to_string(base >> 16 & 255) + "." +
         std::to_string(base >> 8 & 255) + "." + std::to_string(base & 255);
}

// A small policy of the kind an MSP publishes for one site: two providers, a business-hours
// window, three links, a change-ticket grant and a guard. Valid for the parser (checked before
// use); it expires 30 days from now. With `prefixes` > 0, a third provider with that many
// addresses and a link of its own make the bundle as large as a big MSP's.
std::string bench_policy(std::uint64_t serial, int prefixes) {
  const auto now = std::chrono::system_clock::now();
  const std::string expires = utc_text(now + std::chrono::hours(24 * 30));
  const std::string grant_from = utc_text(now + std::chrono::hours(24));
  const std::string grant_until = utc_text(now + std::chrono::hours(26));
  std::string p;
  p += "# drawbridge-fanout-bench: a small policy for one site\n";
  p += "version  = 1\n";
  p += "site     = \"" + std::string(kSite) + "\"\n";
  p += "serial   = " + std::to_string(serial) + "\n";
  p += "timezone = \"UTC\"\n";
  p += "expires  = " + expires + "\n\n";
  p += "[providers.helpdesk]\naddresses = [\"203.0.113.16/28\", \"203.0.113.40\"]\n\n";
  p += "[providers.backup_vendor]\naddresses = [\"198.51.100.0/25\"]\n\n";
  p += "[windows.business]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\n";
  p += "from = \"08:00\"\nto   = \"18:00\"\n\n";
  p += "[[links]]\nname     = \"rdp-frontdesk\"\nprovider = \"helpdesk\"\n";
  p += "hosts    = [\"10.20.0.10\", \"10.20.0.11\"]\nports    = [\"tcp/3389\"]\n";
  p += "windows  = [\"business\"]\n\n";
  p += "[[links]]\nname     = \"ssh-server\"\nprovider = \"helpdesk\"\n";
  p += "hosts    = [\"10.20.1.5\"]\nports    = [\"tcp/22\"]\nwindows  = [\"always\"]\n\n";
  p += "[[links]]\nname     = \"backup-agent\"\nprovider = \"backup_vendor\"\n";
  p += "hosts    = [\"10.20.2.0/26\"]\nports    = [\"tcp/10000-10010\", \"udp/10000\"]\n\n";
  p += "[[grants]]\nlink   = \"backup-agent\"\nticket = \"CHG-1\"\n";
  p += "from   = " + grant_from + "\nuntil  = " + grant_until + "\n\n";
  p += "[guard]\nports = [\"tcp/22\", \"tcp/3389\", \"tcp/5900-5901\"]\n";
  if (prefixes > 0) {
    p += "\n[providers.bulk]\naddresses = [";
    for (int i = 0; i < prefixes; ++i) {
      p += (i % 8 == 0 ? "\n  \"" : " \"") + extra_address(i) + "\",";
    }
    p += "\n]\n\n[[links]]\nname     = \"bulk-ssh\"\nprovider = \"bulk\"\n";
    p += "hosts    = [\"10.20.3.0/28\"]\nports    = [\"tcp/22\"]\nwindows  = [\"always\"]\n";
  }
  return p;
}

std::string signed_bundle(const SecretKey& key, std::uint64_t serial, int prefixes) {
  Bundle b;
  b.policy = bench_policy(serial, prefixes);
  auto parsed = parse_policy_text(b.policy, "bench policy");
  if (!parsed.ok()) fail(parsed.diagnostics.rejection("the benchmark's policy"));
  b.sign_with(key);
  return b.encode();
}

// --- options --------------------------------------------------------------------------------

struct Options {
  std::vector<int> sizes{1, 100, 1000};
  int rounds = 5;
  std::string controller = DRAWBRIDGE_CONTROLLER_BIN;
  std::string out;
  std::string tmpdir;
  std::string note;
  int heartbeat_seconds = 5;
  int prefixes = 0;
  int io_threads = 1;
  int gap_ms = 500;
  int connect_timeout_s = 120;
  int round_timeout_s = 60;
  bool keep = false;
};

// --- the simulated enforcers ----------------------------------------------------------------

struct SimEnforcer {
  SimEnforcer(std::string n, CurveSecretKey k) : name(std::move(n)), key(std::move(k)) {}
  std::string name;
  CurveSecretKey key;
  std::optional<zmq::socket_t> socket;
  // What it holds (reported in heartbeats, as a real enforcer does).
  std::optional<std::uint64_t> serial;
  std::string bundle_hash;
  std::string ruleset_hash;
  SteadyTime next_beat{};
  // This round.
  bool got_bundle = false;
  SteadyTime bundle_at{};
  SteadyTime ack_sent_at{};
};

struct Counters {
  std::uint64_t bundles = 0;
  std::uint64_t duplicate_bundles = 0;
  std::uint64_t unexpected_bundles = 0;
  std::uint64_t controller_beats = 0;
  std::uint64_t beats_sent = 0;
  std::uint64_t acks_sent = 0;
  std::uint64_t send_failed = 0;
  std::uint64_t bad_messages = 0;
};

class Fleet {
 public:
  Fleet(const Options& opt, std::vector<SimEnforcer>& sims)
      : opt_(opt), sims_(sims), beat_(std::chrono::seconds(opt.heartbeat_seconds)) {
    ctx_.set(zmq::ctxopt::io_threads, opt.io_threads);
    ctx_.set(zmq::ctxopt::max_sockets, 65536);
  }

  ~Fleet() {
    for (auto& s : sims_) s.socket.reset();  // before the context goes
  }

  void connect_all(const std::string& endpoint, const CurvePublicKey& server) {
    items_.clear();
    items_.reserve(sims_.size());
    const auto now = SteadyClock::now();
    for (std::size_t i = 0; i < sims_.size(); ++i) {
      check_interrupted();
      auto& s = sims_[i];
      s.socket.emplace(ctx_, zmq::socket_type::dealer);
      auto& d = *s.socket;
      // As enforcer/controller_link.cpp sets them (without ZMQ_IMMEDIATE: the hello is queued
      // until the handshake is done instead of waiting for a connection event).
      d.set(zmq::sockopt::linger, 0);
      d.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxPolicyBytes + 64 * 1024));
      d.set(zmq::sockopt::reconnect_ivl, 500);
      d.set(zmq::sockopt::reconnect_ivl_max, 10'000);
      const int beat_ms = opt_.heartbeat_seconds * 1000;
      d.set(zmq::sockopt::heartbeat_ivl, beat_ms);
      d.set(zmq::sockopt::heartbeat_timeout, 3 * beat_ms);
      d.set(zmq::sockopt::curve_serverkey, server.z85());
      d.set(zmq::sockopt::curve_publickey, s.key.public_key().z85());
      d.set(zmq::sockopt::curve_secretkey, std::string(s.key.z85_secret()));
      d.connect(endpoint);
      if (!send(s, encode(HelloMessage{state_of(s)}))) fail("cannot queue the hello of " + s.name);
      // Heartbeats spread evenly over one interval, then every interval.
      s.next_beat = now + beat_ * static_cast<long>(i + 1) / static_cast<long>(sims_.size());
      items_.push_back({d.handle(), 0, ZMQ_POLLIN, 0});
    }
  }

  void expect(const std::string& bytes, const std::string& hash, std::uint64_t serial) {
    expected_bytes_ = bytes;
    expected_hash_ = hash;
    expected_serial_ = serial;
    received_ = 0;
    for (auto& s : sims_) s.got_bundle = false;
  }

  [[nodiscard]] std::size_t received() const { return received_; }
  [[nodiscard]] const Counters& counters() const { return counters_; }

  // Receives and answers for `d`, sending heartbeats when they are due.
  void service_for(milliseconds d) {
    const auto until = SteadyClock::now() + d;
    do {
      check_interrupted();
      const auto now = SteadyClock::now();
      const auto left = std::chrono::duration_cast<milliseconds>(until - now);
      const auto next_beat = std::chrono::duration_cast<milliseconds>(earliest_beat() - now);
      auto wait = std::clamp(std::min(left, next_beat), milliseconds(0), milliseconds(100));
      int ready = 0;
      try {
        ready = zmq::poll(items_, wait);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (ready > 0) {
        for (std::size_t i = 0; i < items_.size(); ++i) {
          if (items_[i].revents & ZMQ_POLLIN) drain(sims_[i]);
        }
      }
      send_due_heartbeats();
    } while (SteadyClock::now() < until);
  }

 private:
  EnforcerState state_of(const SimEnforcer& s) const {
    EnforcerState st;
    st.site = kSite;
    st.serial = s.serial;
    st.bundle_hash = s.bundle_hash;
    st.ruleset_hash = s.ruleset_hash;
    st.version = "fanout-bench";
    return st;
  }

  bool send(SimEnforcer& s, const Frames& f) {
    try {
      std::array<zmq::const_buffer, 2> parts = {zmq::buffer(f.type), zmq::buffer(f.body)};
      if (zmq::send_multipart(*s.socket, parts, zmq::send_flags::dontwait)) return true;
    } catch (const zmq::error_t&) {
    }
    ++counters_.send_failed;
    return false;
  }

  SteadyTime earliest_beat() const {
    SteadyTime t = SteadyTime::max();
    for (const auto& s : sims_) t = std::min(t, s.next_beat);
    return t;
  }

  void send_due_heartbeats() {
    const auto now = SteadyClock::now();
    for (auto& s : sims_) {
      if (s.next_beat > now) continue;
      if (send(s, encode(HeartbeatMessage{state_of(s)}))) ++counters_.beats_sent;
      while (s.next_beat <= now) s.next_beat += beat_;
    }
  }

  void drain(SimEnforcer& s) {
    for (int i = 0; i < 64; ++i) {
      std::vector<zmq::message_t> msg;
      try {
        if (!zmq::recv_multipart(*s.socket, std::back_inserter(msg), zmq::recv_flags::dontwait))
          return;
      } catch (const zmq::error_t&) {
        return;
      }
      const auto at = SteadyClock::now();
      if (msg.size() != 2) {
        ++counters_.bad_messages;
        continue;
      }
      auto decoded = decode_controller_message(msg[0].to_string_view(), msg[1].to_string_view());
      if (!decoded.ok()) {
        ++counters_.bad_messages;
        continue;
      }
      if (std::holds_alternative<ControllerHeartbeat>(*decoded)) {
        ++counters_.controller_beats;
        continue;
      }
      on_bundle(s, std::get<BundleMessage>(*decoded).bytes, at);
    }
  }

  // A real enforcer verifies, plans and commits here; the simulated one acknowledges at once.
  void on_bundle(SimEnforcer& s, const std::string& bytes, SteadyTime at) {
    ++counters_.bundles;
    // The expected bundle is recognised by its bytes and its hash computed once: hashing every
    // copy would put N enforcers' work on this one machine (a real enforcer hashes its own).
    const std::string hash = bytes == expected_bytes_ ? expected_hash_ : bundle_hash(bytes);
    if (hash != expected_hash_) {
      ++counters_.unexpected_bundles;
    } else if (s.got_bundle) {
      ++counters_.duplicate_bundles;
    } else {
      s.got_bundle = true;
      s.bundle_at = at;
      ++received_;
    }
    const std::uint64_t serial = hash == expected_hash_ ? expected_serial_ : 0;
    s.serial = serial;
    s.bundle_hash = hash;
    s.ruleset_hash = hash.substr(0, 32);  // stands in for the plan fingerprint
    BundleAck ack;
    ack.result = AckResult::applied;
    ack.bundle_hash = hash;
    ack.serial = serial;
    ack.ruleset_hash = s.ruleset_hash;
    if (send(s, encode(AckMessage{ack}))) ++counters_.acks_sent;
    s.ack_sent_at = SteadyClock::now();
  }

  const Options& opt_;
  std::vector<SimEnforcer>& sims_;
  milliseconds beat_;
  zmq::context_t ctx_;
  std::vector<zmq::pollitem_t> items_;
  std::string expected_bytes_;
  std::string expected_hash_;
  std::uint64_t expected_serial_ = 0;
  std::size_t received_ = 0;
  Counters counters_;
};

// --- one size -------------------------------------------------------------------------------

nlohmann::json controller_status(const std::string& admin) {
  auto reply = admin_request(admin, {"status"}, kAdminTimeout);
  if (!reply.ok()) fail("status: " + reply.error().message);
  return nlohmann::json::parse(*reply);
}

std::size_t count_connected(const nlohmann::json& status) {
  std::size_t n = 0;
  for (const auto& e : status.at("enforcers")) {
    if (e.at("site") == kSite && e.at("state") == "connected") ++n;
  }
  return n;
}

struct RoundResult {
  std::uint64_t serial = 0;
  double publish_reply_ms = 0;        // admin request → "ok" (the controller's publish handler)
  std::vector<double> arrival_us;     // publish → bundle received by the simulated enforcer
  std::vector<double> ack_sent_us;    // publish → ack handed to libzmq by the simulated enforcer
  std::vector<double> ack_ms;         // publish → ack recorded by the controller (last_ack_at)
  std::uint64_t status_requests = 0;  // made while waiting for the acks
  std::size_t bundle_bytes = 0;
};

RoundResult run_round(Fleet& fleet, std::vector<SimEnforcer>& sims, const std::string& admin,
                      const SecretKey& provider, std::uint64_t serial, const Options& opt) {
  RoundResult rr;
  rr.serial = serial;
  const std::string bytes = signed_bundle(provider, serial, opt.prefixes);
  rr.bundle_bytes = bytes.size();
  const std::string hash = bundle_hash(bytes);
  fleet.expect(bytes, hash, serial);
  const auto timeout = std::chrono::seconds(opt.round_timeout_s);

  // The publish request runs on its own thread so that this one keeps receiving bundles while
  // the controller's publish handler runs (it answers only after sending to every enforcer).
  SteadyTime reply_at{};
  const std::int64_t t0_unix_us = unix_us_now();
  const SteadyTime t0 = SteadyClock::now();
  auto reply = std::async(std::launch::async, [&] {
    auto r = admin_request(admin, {"publish", bytes, ""}, kAdminTimeout);
    reply_at = SteadyClock::now();
    return r;
  });
  while (fleet.received() < sims.size()) {
    if (SteadyClock::now() - t0 > timeout) {
      reply.wait();
      fail("round " + std::to_string(serial) + ": only " + std::to_string(fleet.received()) +
           " of " + std::to_string(sims.size()) + " enforcers received the bundle within " +
           std::to_string(opt.round_timeout_s) + " s");
    }
    fleet.service_for(milliseconds(5));
  }
  auto published = reply.get();
  if (!published.ok())
    fail("publish of serial " + std::to_string(serial) + ": " + published.error().message);
  const std::string expect_text =
      "sent to " + std::to_string(sims.size()) + " of " + std::to_string(sims.size());
  if (published->find(expect_text) == std::string::npos) {
    fail("publish of serial " + std::to_string(serial) + " answered: " + *published);
  }
  rr.publish_reply_ms = us_between(t0, reply_at) / 1000.0;

  // Wait for the controller to have recorded every ack. Each status request costs the controller
  // a JSON document of the whole fleet, on the thread that records the acks: ask rarely.
  std::map<std::string, std::int64_t> ack_at;
  auto wait = milliseconds(50);
  while (true) {
    if (SteadyClock::now() - t0 > timeout) {
      fail("round " + std::to_string(serial) + ": the controller recorded " +
           std::to_string(ack_at.size()) + " of " + std::to_string(sims.size()) + " acks within " +
           std::to_string(opt.round_timeout_s) + " s");
    }
    fleet.service_for(wait);
    const auto status = controller_status(admin);
    ++rr.status_requests;
    ack_at.clear();
    for (const auto& e : status.at("enforcers")) {
      if (e.at("site") != kSite || e.at("last_ack") != "applied" ||
          e.at("last_ack_serial") != serial || e.at("last_ack_at").is_null()) {
        continue;
      }
      ack_at[e.at("name").get<std::string>()] = e.at("last_ack_at").get<std::int64_t>();
    }
    if (ack_at.size() == sims.size()) break;
    wait = std::min(wait * 2, milliseconds(1000));
  }
  for (const auto& s : sims) {
    rr.arrival_us.push_back(us_between(t0, s.bundle_at));
    rr.ack_sent_us.push_back(us_between(t0, s.ack_sent_at));
    // last_ack_at is truncated to the millisecond: this reads up to 1 ms short.
    rr.ack_ms.push_back(static_cast<double>(ack_at.at(s.name) * 1000 - t0_unix_us) / 1000.0);
  }
  return rr;
}

struct SizeResult {
  int n = 0;
  bool ok = false;
  std::string error;
  double connect_ms = 0;
  double status_ms = 0;  // one status request with N connected and nothing else going on
  std::int64_t listen_overflows = 0, syn_retransmits = 0;  // while connecting (whole netns)
  std::int64_t rss_idle_kib = 0, rss_connected_kib = 0, rss_after_kib = 0, hwm_after_kib = 0;
  double cpu_connect_ms = 0, cpu_rounds_ms = 0;  // the controller's
  double bench_cpu_rounds_ms = 0;                // this process's (the simulated enforcers)
  std::vector<RoundResult> rounds;
  Counters counters;
  nlohmann::json controller_counters = nlohmann::json::object();
  std::string controller_exit;
};

void run_size(SizeResult& res, const Options& opt, const std::string& tmp_parent) {
  const int n = res.n;
  TempDir dir(tmp_parent, opt.keep);
  const std::string& d = dir.path();

  // Keys: the provider's signing key, the controller's and every enforcer's CURVE key.
  const SecretKey provider = SecretKey::generate();
  const CurveSecretKey server = CurveSecretKey::generate();
  if (auto ok = server.save(d + "/controller.curve"); !ok.ok()) fail(ok.error().message);
  std::vector<SimEnforcer> sims;
  sims.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "sim-%05d", i);
    sims.emplace_back(name, CurveSecretKey::generate());
  }

  const int port = free_loopback_port();
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  const std::string state_dir = d + "/state";
  {
    std::ofstream cfg(d + "/controller.toml");
    cfg << "# written by drawbridge-fanout-bench\n"
        << "listen = \"" << endpoint << "\"\n"
        << "curve_key = \"" << d << "/controller.curve\"\n"
        << "state_dir = \"" << state_dir << "\"\n"
        << "heartbeat_seconds = " << opt.heartbeat_seconds << "\n"
        << "stale_after_seconds = " << 3 * opt.heartbeat_seconds << "\n";
    for (const auto& s : sims) {
      cfg << "\n[[enforcer]]\nsite = \"" << kSite << "\"\nname = \"" << s.name << "\"\nkey = \""
          << s.key.public_key().str() << "\"\n";
    }
    if (!cfg) fail("cannot write " + d + "/controller.toml");
  }
  const std::string admin = "ipc://" + state_dir + "/admin.sock";
  const std::string log = d + "/controller.log";

  ChildProcess controller({opt.controller, "serve", "--config", d + "/controller.toml"}, log);
  auto controller_died = [&](const std::string& when) {
    if (auto st = controller.exited()) {
      fail("the controller stopped " + when + " (" + describe_wait_status(*st) + "); its log:\n" +
           tail_of_file(log));
    }
  };

  // Ready when the admin socket answers.
  const auto ready_deadline = SteadyClock::now() + std::chrono::seconds(20);
  while (true) {
    check_interrupted();
    controller_died("while starting");
    if (std::filesystem::exists(state_dir + "/admin.sock")) {
      auto reply = admin_request(admin, {"status"}, milliseconds(1000));
      if (reply.ok()) break;
    }
    if (SteadyClock::now() > ready_deadline) fail("the controller did not answer within 20 s");
    std::this_thread::sleep_for(milliseconds(20));
  }
  std::this_thread::sleep_for(milliseconds(300));
  res.rss_idle_kib = proc_status_kib(controller.pid(), "VmRSS");
  const double cpu_idle = proc_cpu_ms(controller.pid());

  Fleet fleet(opt, sims);
  const auto tcp0 = tcp_ext_counters();
  const SteadyTime c0 = SteadyClock::now();
  fleet.connect_all(endpoint, server.public_key());
  const auto connect_deadline = c0 + std::chrono::seconds(opt.connect_timeout_s);
  std::size_t connected = 0;
  // Asks often at first, then every 100 ms: a status request costs the controller a JSON
  // document of the whole fleet (about 15 ms at 1,000), on the thread that takes the hellos.
  auto poll_every = milliseconds(5);
  while (true) {
    fleet.service_for(poll_every);
    poll_every = std::min(poll_every * 2, milliseconds(100));
    controller_died("while the enforcers connected");
    connected = count_connected(controller_status(admin));
    if (connected == sims.size()) break;
    if (SteadyClock::now() > connect_deadline) {
      fail("only " + std::to_string(connected) + " of " + std::to_string(n) +
           " enforcers connected within " + std::to_string(opt.connect_timeout_s) + " s");
    }
  }
  res.connect_ms = us_between(c0, SteadyClock::now()) / 1000.0;
  const auto tcp1 = tcp_ext_counters();
  auto tcp_delta = [&](const std::string& name) {
    const auto a = tcp0.find(name), b = tcp1.find(name);
    return a == tcp0.end() || b == tcp1.end() ? std::int64_t{-1} : b->second - a->second;
  };
  res.listen_overflows = tcp_delta("ListenOverflows");
  res.syn_retransmits = tcp_delta("TCPSynRetrans");
  res.rss_connected_kib = proc_status_kib(controller.pid(), "VmRSS");
  const double cpu_connected = proc_cpu_ms(controller.pid());
  res.cpu_connect_ms = cpu_connected - cpu_idle;
  fleet.service_for(milliseconds(200));
  const SteadyTime s0 = SteadyClock::now();
  controller_status(admin);
  res.status_ms = us_between(s0, SteadyClock::now()) / 1000.0;

  const double bench_cpu0 = proc_cpu_ms(::getpid());
  for (int k = 1; k <= opt.rounds; ++k) {
    fleet.service_for(milliseconds(opt.gap_ms));
    controller_died("before round " + std::to_string(k));
    res.rounds.push_back(
        run_round(fleet, sims, admin, provider, static_cast<std::uint64_t>(k), opt));
    const auto& rr = res.rounds.back();
    const auto a = summarize(rr.ack_ms);
    std::cerr << "  N=" << n << " round " << k << ": publish reply " << rr.publish_reply_ms
              << " ms, last bundle " << summarize(rr.arrival_us).max / 1000.0 << " ms, ack p50 "
              << a.p50 << " ms, max " << a.max << " ms\n";
  }
  res.rss_after_kib = proc_status_kib(controller.pid(), "VmRSS");
  res.hwm_after_kib = proc_status_kib(controller.pid(), "VmHWM");
  res.cpu_rounds_ms = proc_cpu_ms(controller.pid()) - cpu_connected;
  res.bench_cpu_rounds_ms = proc_cpu_ms(::getpid()) - bench_cpu0;
  res.counters = fleet.counters();
  if (auto status = controller_status(admin); status.contains("counters")) {
    res.controller_counters = status["counters"];
  }
  auto st = controller.stop();
  res.controller_exit = st ? describe_wait_status(*st) : "?";
  res.ok = true;
}

// --- reporting ------------------------------------------------------------------------------

std::vector<double> all_of(const std::vector<RoundResult>& rounds,
                           std::vector<double> RoundResult::*field) {
  std::vector<double> v;
  for (const auto& r : rounds) v.insert(v.end(), (r.*field).begin(), (r.*field).end());
  return v;
}

std::string read_first_line(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(prefix)) {
      auto colon = line.find(':');
      if (colon == std::string::npos) return line;
      auto v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "unknown";
}

nlohmann::json machine_json() {
  utsname u{};
  ::uname(&u);
  nlohmann::json m;
  m["cpu"] = read_first_line("/proc/cpuinfo", "model name");
  m["cores"] = std::thread::hardware_concurrency();
  m["kernel"] = std::string(u.release);
  m["memory_kib"] = std::strtoll(read_first_line("/proc/meminfo", "MemTotal").c_str(), nullptr, 10);
  std::ifstream load("/proc/loadavg");
  std::string l1;
  load >> l1;
  m["load1_at_start"] = std::strtod(l1.c_str(), nullptr);
  return m;
}

nlohmann::json size_json(const SizeResult& r) {
  nlohmann::json j;
  j["n"] = r.n;
  j["ok"] = r.ok;
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  j["connect_ms"] = r.connect_ms;
  j["listen_overflows_while_connecting"] = r.listen_overflows;
  j["syn_retransmits_while_connecting"] = r.syn_retransmits;
  j["status_request_ms"] = r.status_ms;
  j["rss_idle_kib"] = r.rss_idle_kib;
  j["rss_connected_kib"] = r.rss_connected_kib;
  j["rss_per_enforcer_kib"] =
      static_cast<double>(r.rss_connected_kib - r.rss_idle_kib) / static_cast<double>(r.n);
  j["rss_after_rounds_kib"] = r.rss_after_kib;
  j["hwm_after_rounds_kib"] = r.hwm_after_kib;
  j["controller_cpu_ms"] = {{"connect", r.cpu_connect_ms}, {"rounds", r.cpu_rounds_ms}};
  // Includes the gaps between rounds (heartbeats) and the status requests' JSON parsing.
  j["simulator_cpu_ms"] = {{"rounds", r.bench_cpu_rounds_ms}};
  j["bundle_arrival_us"] = to_json(summarize(all_of(r.rounds, &RoundResult::arrival_us)));
  j["ack_sent_us"] = to_json(summarize(all_of(r.rounds, &RoundResult::ack_sent_us)));
  j["ack_recorded_ms"] = to_json(summarize(all_of(r.rounds, &RoundResult::ack_ms)));
  std::vector<double> replies;
  for (const auto& rr : r.rounds) replies.push_back(rr.publish_reply_ms);
  j["publish_reply_ms"] = to_json(summarize(replies));
  j["rounds"] = nlohmann::json::array();
  for (const auto& rr : r.rounds) {
    j["rounds"].push_back({{"serial", rr.serial},
                           {"publish_reply_ms", rr.publish_reply_ms},
                           {"bundle_bytes", rr.bundle_bytes},
                           {"status_requests", rr.status_requests},
                           {"bundle_arrival_us", to_json(summarize(rr.arrival_us))},
                           {"ack_sent_us", to_json(summarize(rr.ack_sent_us))},
                           {"ack_recorded_ms", to_json(summarize(rr.ack_ms))}});
  }
  const auto& c = r.counters;
  j["simulated_enforcers"] = {{"bundles", c.bundles},
                              {"duplicate_bundles", c.duplicate_bundles},
                              {"unexpected_bundles", c.unexpected_bundles},
                              {"controller_heartbeats", c.controller_beats},
                              {"heartbeats_sent", c.beats_sent},
                              {"acks_sent", c.acks_sent},
                              {"send_failed", c.send_failed},
                              {"bad_messages", c.bad_messages}};
  j["controller_counters"] = r.controller_counters;
  j["controller_exit"] = r.controller_exit;
  return j;
}

std::string fmt(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void print_table(const std::vector<SizeResult>& results, int rounds) {
  std::size_t bundle_bytes = 0;
  for (const auto& r : results) {
    if (!r.rounds.empty()) bundle_bytes = r.rounds.front().bundle_bytes;
  }
  std::printf(
      "\nPublish → applied ack over CURVE on loopback, bundle of %zu bytes, %d round(s) per N; "
      "percentiles over all enforcers × rounds\n\n",
      bundle_bytes, rounds);
  std::printf(
      "| N | connect all | bundle arrival p50 / p99 / max | ack recorded p50 / p99 / max "
      "| publish reply (median) | RSS idle → connected | per enforcer |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : results) {
    if (!r.ok) {
      const std::string first_line = r.error.substr(0, r.error.find('\n'));
      std::printf("| %d | FAILED: %s | | | | | |\n", r.n, first_line.c_str());
      continue;
    }
    const auto arr = summarize(all_of(r.rounds, &RoundResult::arrival_us));
    const auto ack = summarize(all_of(r.rounds, &RoundResult::ack_ms));
    std::vector<double> replies;
    for (const auto& rr : r.rounds) replies.push_back(rr.publish_reply_ms);
    const double per_kib =
        static_cast<double>(r.rss_connected_kib - r.rss_idle_kib) / static_cast<double>(r.n);
    std::printf(
        "| %d | %s ms | %s / %s / %s ms | %s / %s / %s ms | %s ms | %s → %s MiB | %s KiB |\n", r.n,
        fmt(r.connect_ms, 0).c_str(), fmt(arr.p50 / 1000, 2).c_str(),
        fmt(arr.p99 / 1000, 2).c_str(), fmt(arr.max / 1000, 2).c_str(), fmt(ack.p50, 1).c_str(),
        fmt(ack.p99, 1).c_str(), fmt(ack.max, 1).c_str(), fmt(summarize(replies).p50, 2).c_str(),
        fmt(r.rss_idle_kib / 1024.0, 1).c_str(), fmt(r.rss_connected_kib / 1024.0, 1).c_str(),
        fmt(per_kib, 1).c_str());
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{
      "Fan-out benchmark: publish → applied-ack latency and controller memory with N simulated "
      "enforcers connected over CURVE on loopback to a real drawbridge-controller"};
  app.add_option("--sizes", opt.sizes, "Numbers of connected enforcers (comma-separated)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", opt.rounds, "Publications per size")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--controller", opt.controller, "drawbridge-controller binary")
      ->capture_default_str();
  app.add_option("--out", opt.out, "Write the results as JSON to this file");
  app.add_option("--tmpdir", opt.tmpdir,
                 "Where the temporary directories (config, keys, fleet.db) go [$TMPDIR or /tmp]");
  app.add_option("--note", opt.note, "Free text stored in the JSON (e.g. the commit)");
  app.add_option("--heartbeat", opt.heartbeat_seconds, "heartbeat_seconds of the controller config")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--prefixes", opt.prefixes,
                 "Extra provider addresses in the published policy (0: the small policy)")
      ->check(CLI::Range(0, 1'000'000))
      ->capture_default_str();
  app.add_option("--io-threads", opt.io_threads,
                 "ZeroMQ I/O threads of the simulated enforcers' context")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--gap-ms", opt.gap_ms, "Pause before each publication, ms")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--connect-timeout", opt.connect_timeout_s, "Seconds for all N to connect")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--round-timeout", opt.round_timeout_s, "Seconds for one round")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--keep", opt.keep, "Keep the temporary directories (controller logs, fleet.db)");
  CLI11_PARSE(app, argc, argv);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  if (auto ok = init_sodium(); !ok.ok()) {
    std::cerr << "drawbridge-fanout-bench: " << ok.error().message << "\n";
    return 1;
  }
  if (::access(opt.controller.c_str(), X_OK) != 0) {
    std::cerr << "drawbridge-fanout-bench: no controller binary at " << opt.controller
              << " (build the drawbridge-controller target or pass --controller)\n";
    return 2;
  }
  std::string tmp_parent = opt.tmpdir;
  if (tmp_parent.empty()) {
    const char* t = std::getenv("TMPDIR");
    tmp_parent = t && *t ? t : "/tmp";
  }
  raise_file_limit();
  const auto max_n = *std::max_element(opt.sizes.begin(), opt.sizes.end());
  if (file_limit() < static_cast<std::uint64_t>(max_n) * 3 + 64) {
    std::cerr << "drawbridge-fanout-bench: the open-file limit (" << file_limit()
              << ") is too low for " << max_n << " enforcers (about 3 per enforcer)\n";
    return 2;
  }

  nlohmann::json out;
  out["tool"] = "drawbridge-fanout-bench";
  out["date"] = utc_text(std::chrono::system_clock::now());
  out["note"] = opt.note;
  out["machine"] = machine_json();
  out["settings"] = {{"sizes", opt.sizes},
                     {"rounds", opt.rounds},
                     {"heartbeat_seconds", opt.heartbeat_seconds},
                     {"prefixes", opt.prefixes},
                     {"io_threads", opt.io_threads},
                     {"gap_ms", opt.gap_ms},
                     {"controller", opt.controller},
                     {"tmpdir", tmp_parent},
                     {"transport", "tcp://127.0.0.1 with CURVE and ZAP"}};
  std::cerr << "drawbridge-fanout-bench: " << opt.controller << ", sizes";
  for (int n : opt.sizes) std::cerr << " " << n;
  std::cerr << ", " << opt.rounds << " round(s) each\n";

  std::vector<SizeResult> results;
  bool interrupted = false;
  for (int n : opt.sizes) {
    SizeResult r;
    r.n = n;
    std::cerr << "N=" << n << "\n";
    try {
      run_size(r, opt, tmp_parent);
    } catch (const Interrupted&) {
      r.error = "interrupted";
      interrupted = true;
    } catch (const std::exception& e) {
      r.error = e.what();
      std::cerr << "  N=" << n << " FAILED: " << e.what() << "\n";
    }
    results.push_back(std::move(r));
    if (interrupted) break;
  }

  out["results"] = nlohmann::json::array();
  for (const auto& r : results) out["results"].push_back(size_json(r));
  std::ifstream load("/proc/loadavg");
  std::string l1;
  load >> l1;
  out["machine"]["load1_at_end"] = std::strtod(l1.c_str(), nullptr);
  print_table(results, opt.rounds);
  if (!opt.out.empty()) {
    std::ofstream f(opt.out);
    f << out.dump(2) << "\n";
    if (!f) {
      std::cerr << "drawbridge-fanout-bench: cannot write " << opt.out << "\n";
      return 1;
    }
    std::cerr << "results: " << opt.out << "\n";
  }
  if (interrupted) return 130;
  for (const auto& r : results) {
    if (!r.ok) return 1;
  }
  return 0;
}
