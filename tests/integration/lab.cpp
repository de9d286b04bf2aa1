#include "lab.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kServeTcp = "22,3389,5900,8080,8443";
constexpr const char* kServeUdp = "3389";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string make_temp_dir(const char* pattern) {
  std::string path = (fs::temp_directory_path() / pattern).string();
  if (::mkdtemp(path.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + path + ": " + std::strerror(errno));
  }
  return path;
}

std::string join(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& a : argv) {
    if (!text.empty()) text += ' ';
    text += a;
  }
  return text;
}

// posix_spawnp with stdin from /dev/null, stdout/stderr to files, in a new process group (so a
// timeout kill reaches everything it started) and with default signal handling.
pid_t spawn_process(const std::vector<std::string>& argv, const std::string& out_path,
                    const std::string& err_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("spawn " + join(argv) + ": " + std::strerror(rc));
  return pid;
}

std::vector<std::string> in_namespace(const std::string& ns, const std::vector<std::string>& argv) {
  std::vector<std::string> full{"ip", "netns", "exec", ns};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

// Runs a command with output captured in `dir`.
RunResult run_in_dir(const std::vector<std::string>& argv, Millis timeout, const std::string& dir,
                     const std::string& tag) {
  const std::string out = dir + "/" + tag + ".out";
  const std::string err = dir + "/" + tag + ".err";
  Process process(spawn_process(argv, out, err), out, err, join(argv));
  return process.wait(timeout);
}

void delete_namespace(const std::string& name) noexcept {
  if (!NamespaceLab::namespace_exists(name)) return;
  try {
    // Processes left inside keep the namespace alive after `ip netns delete`.
    const auto pids = run_host({"ip", "netns", "pids", name}, 5s);
    std::istringstream in(pids.out);
    pid_t pid = 0;
    while (in >> pid) ::kill(pid, SIGKILL);
    (void)run_host({"ip", "netns", "delete", name}, 5s);
  } catch (...) {
    // Best effort: cleanup_stale.sh removes what is left.
  }
}

const std::array<const char*, 6> kMspAddresses = {addr::kAcme,     addr::kAcme2,
                                                  addr::kAcmeV6,   addr::kUnapproved,
                                                  addr::kAttacker, addr::kAttackerV6};
const std::array<const char*, 6> kGwAddresses = {addr::kGwWan,   addr::kGwWanAttackerNet,
                                                 addr::kGwWanV6, addr::kGwWanAttackerNetV6,
                                                 addr::kGwLan,   addr::kGwLanV6};
const std::array<const char*, 5> kLanAddresses = {addr::kServer, addr::kServer2, addr::kServer3,
                                                  addr::kServerV6, addr::kServer2V6};

template <std::size_t N>
bool contains(const std::array<const char*, N>& list, const std::string& address) {
  for (const char* a : list) {
    if (address == a) return true;
  }
  return false;
}

}  // namespace

const char* enforcer_bin() {
  const char* chosen = std::getenv("DRAWBRIDGE_ENFORCER");
  return chosen != nullptr && *chosen != '\0' ? chosen : DRAWBRIDGE_ENFORCER_BIN;
}
const char* labnet_bin() {
  const char* chosen = std::getenv("DRAWBRIDGE_LABNET");
  return chosen != nullptr && *chosen != '\0' ? chosen : DRAWBRIDGE_LABNET_BIN;
}
const char* controller_bin() {
  const char* chosen = std::getenv("DRAWBRIDGE_CONTROLLER");
  return chosen != nullptr && *chosen != '\0' ? chosen : DRAWBRIDGE_CONTROLLER_BIN;
}
const char* source_dir() {
  return DRAWBRIDGE_SOURCE_DIR;
}

bool running_as_root() {
  return ::geteuid() == 0;
}

std::string RunResult::describe() const {
  std::ostringstream text;
  if (timed_out) {
    text << "timed out";
  } else if (signal != 0) {
    text << "killed by signal " << signal;
  } else {
    text << "exit " << exit_code;
  }
  text << "\n--- stdout ---\n" << out << "\n--- stderr ---\n" << err;
  return text.str();
}

// --- Process ------------------------------------------------------------------------------------

Process::Process(pid_t pid, std::string out_path, std::string err_path, std::string what)
    : pid_(pid),
      out_path_(std::move(out_path)),
      err_path_(std::move(err_path)),
      what_(std::move(what)) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      out_path_(std::move(other.out_path_)),
      err_path_(std::move(other.err_path_)),
      what_(std::move(other.what_)),
      result_(std::exchange(other.result_, std::nullopt)) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    release();
    pid_ = std::exchange(other.pid_, -1);
    out_path_ = std::move(other.out_path_);
    err_path_ = std::move(other.err_path_);
    what_ = std::move(other.what_);
    result_ = std::exchange(other.result_, std::nullopt);
  }
  return *this;
}

Process::~Process() {
  release();
}

void Process::release() noexcept {
  if (pid_ > 0 && !result_) {
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
}

void Process::reap(int status) {
  RunResult r;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  result_ = r;
}

bool Process::running() {
  if (pid_ <= 0 || result_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reap(status);
    return false;
  }
  return true;
}

void Process::kill(int signal) {
  if (running()) ::kill(-pid_, signal);
}

RunResult Process::wait(Millis timeout) {
  if (pid_ <= 0) throw std::logic_error("wait on an empty Process");
  const auto deadline = SteadyClock::now() + timeout;
  bool timed_out = false;
  while (running()) {
    if (SteadyClock::now() >= deadline) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reap(status);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(2ms);
  }
  RunResult r = *result_;
  r.timed_out = timed_out;
  r.out = out();
  r.err = err();
  return r;
}

bool Process::wait_for_output(std::string_view text, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (out().find(text) != std::string::npos) return true;
    if (!running() || SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string Process::out() const {
  return read_file(out_path_);
}
std::string Process::err() const {
  return read_file(err_path_);
}

// --- helpers ------------------------------------------------------------------------------------

RunResult run_host(const std::vector<std::string>& argv, Millis timeout) {
  const std::string dir = make_temp_dir("drawbridge-run-XXXXXX");
  RunResult result;
  try {
    result = run_in_dir(argv, timeout, dir, "cmd");
  } catch (...) {
    fs::remove_all(dir);
    throw;
  }
  fs::remove_all(dir);
  return result;
}

StreamResult parse_stream(const RunResult& result) {
  StreamResult s;
  s.raw = result.out;
  long long first = 0;
  long long last = 0;
  const auto at = result.out.find("echoes=");
  if (at == std::string::npos ||
      std::sscanf(result.out.c_str() + at, "echoes=%d first_echo_ms=%lld last_echo_ms=%lld",
                  &s.echoes, &first, &last) != 3) {
    throw std::runtime_error("unexpected labnet stream output: " + result.describe());
  }
  s.first_echo_ms = first;
  s.last_echo_ms = last;
  return s;
}

// --- NamespaceLab -------------------------------------------------------------------------------

std::string NamespaceLab::unique_prefix() {
  static std::atomic<int> counter{0};
  return "dbt" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

bool NamespaceLab::namespace_exists(const std::string& name) {
  std::error_code ec;
  return fs::exists("/run/netns/" + name, ec);
}

NamespaceLab::NamespaceLab(std::string prefix) : prefix_(std::move(prefix)) {
  try {
    build();
  } catch (...) {
    teardown();
    throw;
  }
}

NamespaceLab::NamespaceLab(NamespaceLab&& other) noexcept
    : prefix_(std::exchange(other.prefix_, {})),
      temp_dir_(std::exchange(other.temp_dir_, {})),
      servers_(std::move(other.servers_)),
      outputs_(other.outputs_) {}

NamespaceLab& NamespaceLab::operator=(NamespaceLab&& other) noexcept {
  if (this != &other) {
    teardown();
    prefix_ = std::exchange(other.prefix_, {});
    temp_dir_ = std::exchange(other.temp_dir_, {});
    servers_ = std::move(other.servers_);
    outputs_ = other.outputs_;
  }
  return *this;
}

NamespaceLab::~NamespaceLab() {
  teardown();
}

void NamespaceLab::build() {
  temp_dir_ = make_temp_dir("drawbridge-lab-XXXXXX");
  const std::string script = std::string(source_dir()) + "/vm/netns-lab.sh";
  const auto up = run_host({"bash", script, "up", "--prefix", prefix_, "--no-servers"}, 30s);
  if (!up.ok()) throw std::runtime_error("vm/netns-lab.sh up failed: " + up.describe());

  for (const auto& ns : {lan(), gw()}) {
    Process server = spawn(ns, {labnet_bin(), "serve", "--tcp", kServeTcp, "--udp", kServeUdp});
    if (!server.wait_for_output("ready", 5s)) {
      throw std::runtime_error("echo server in " + ns + " did not start: " + server.err());
    }
    servers_.push_back(std::move(server));
  }
}

void NamespaceLab::teardown() noexcept {
  if (prefix_.empty()) return;  // moved from
  for (auto& server : servers_) {
    try {
      server.kill(SIGTERM);
      (void)server.wait(2s);
    } catch (...) {
    }
  }
  servers_.clear();
  try {
    const std::string script = std::string(source_dir()) + "/vm/netns-lab.sh";
    (void)run_host({"bash", script, "down", "--prefix", prefix_}, 30s);
  } catch (...) {
  }
  // If the script could not do it, do it here.
  for (const auto& ns : {msp(), gw(), lan()}) delete_namespace(ns);
  if (!temp_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(temp_dir_, ec);
  }
  prefix_.clear();
  temp_dir_.clear();
}

std::string NamespaceLab::next_output_path(const std::string& tag) const {
  return temp_dir_ + "/" + std::to_string(outputs_++) + "-" + tag;
}

std::string NamespaceLab::write_file(const std::string& name, const std::string& content) const {
  const std::string path = temp_dir_ + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

RunResult NamespaceLab::run(const std::string& ns, const std::vector<std::string>& argv,
                            Millis timeout) const {
  return spawn(ns, argv).wait(timeout);
}

Process NamespaceLab::spawn(const std::string& ns, const std::vector<std::string>& argv) const {
  const auto full = in_namespace(ns, argv);
  const std::string base = next_output_path(fs::path(argv.at(0)).filename().string());
  return Process(spawn_process(full, base + ".out", base + ".err"), base + ".out", base + ".err",
                 join(full));
}

std::string NamespaceLab::namespace_of(const std::string& address) const {
  if (contains(kMspAddresses, address)) return msp();
  if (contains(kLanAddresses, address)) return lan();
  if (contains(kGwAddresses, address)) return gw();
  throw std::runtime_error("no lab namespace owns address " + address);
}

ProbeResult NamespaceLab::probe_from(const std::string& ns, const std::string& from,
                                     const std::string& to, const std::string& port,
                                     Millis timeout) const {
  const auto r = run(ns,
                     {labnet_bin(), "probe", "--from", from, "--to", to, "--port", port,
                      "--timeout-ms", std::to_string(timeout.count())},
                     timeout + 5s);
  if (r.exit_code != 0 && r.exit_code != 1) {
    throw std::runtime_error("probe " + from + " -> " + to + " " + port +
                             " could not run: " + r.describe());
  }
  std::string detail = r.out;
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  return {r.exit_code == 0, detail};
}

bool NamespaceLab::probe(const std::string& from, const std::string& to, const std::string& port,
                         Millis timeout) const {
  return probe_from(namespace_of(from), from, to, port, timeout).allowed;
}

bool NamespaceLab::probe_until(bool allowed, const std::string& from, const std::string& to,
                               const std::string& port,
                               std::chrono::system_clock::time_point until) const {
  for (;;) {
    if (probe(from, to, port, 300ms) == allowed) return true;
    if (std::chrono::system_clock::now() >= until) return false;
    std::this_thread::sleep_for(50ms);
  }
}

Process NamespaceLab::stream(const std::string& from, const std::string& to,
                             const std::string& port, Millis interval, Millis duration) const {
  return spawn(namespace_of(from), {labnet_bin(), "stream", "--from", from, "--to", to, "--port",
                                    port, "--interval-ms", std::to_string(interval.count()),
                                    "--duration-ms", std::to_string(duration.count())});
}

RunResult NamespaceLab::nft(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"nft"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(gw(), argv);
}

RunResult NamespaceLab::nft_script(const std::string& script) const {
  const std::string path = next_output_path("script.nft");
  {
    std::ofstream out(path, std::ios::trunc);
    out << script;
  }
  return run(gw(), {"nft", "-f", path});
}

RunResult NamespaceLab::enforcer(const std::vector<std::string>& args, Millis timeout) const {
  std::vector<std::string> argv{enforcer_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(gw(), argv, timeout);
}

Process NamespaceLab::spawn_enforcer(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{enforcer_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn(gw(), argv);
}

// --- ScratchNamespace ---------------------------------------------------------------------------

ScratchNamespace::ScratchNamespace(std::string name) : name_(std::move(name)) {
  delete_namespace(name_);
  const auto add = run_host({"ip", "netns", "add", name_});
  if (!add.ok()) throw std::runtime_error("ip netns add " + name_ + ": " + add.describe());
  const auto lo = run_host({"ip", "-n", name_, "link", "set", "lo", "up"});
  if (!lo.ok()) {
    delete_namespace(name_);
    throw std::runtime_error("lo up in " + name_ + ": " + lo.describe());
  }
}

ScratchNamespace::~ScratchNamespace() {
  delete_namespace(name_);
}

}  // namespace drawbridge::lab
