#include "rsyslog_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace drawbridge::test_support {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using SteadyClock = std::chrono::steady_clock;

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "drawbridge-rsyslog-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::uint16_t free_port(int type) {
  const int s = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

std::string capture(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 512> buf{};
  while (std::fgets(buf.data(), buf.size(), p) != nullptr) out += buf.data();
  ::pclose(p);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec: the parent has threads. The death
    // signal survives exec (of `ip netns exec`, and of what it execs in turn).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

bool reap(pid_t pid, milliseconds limit) {
  const auto until = SteadyClock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || r < 0) return true;
    if (SteadyClock::now() >= until) return false;
    std::this_thread::sleep_for(milliseconds{10});
  }
}

bool Pki::make(const std::string& d, const std::vector<std::string>& ip_names) {
  dir = d;
  ca = d + "/ca.pem";
  ca_key = d + "/ca.key";
  server_cert = d + "/server.pem";
  server_key = d + "/server.key";
  rogue_ca = d + "/rogue-ca.pem";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  std::string san = "subjectAltName=";
  for (const auto& ip : ip_names) san += "IP:" + ip + ",";
  san += "DNS:localhost\n";
  std::ofstream(d + "/server.ext") << san
                                   << "basicConstraints=CA:FALSE\n"
                                      "keyUsage=digitalSignature\n"
                                      "extendedKeyUsage=serverAuth\n";
  if (!run("openssl req -x509 " + ec + " -keyout " + ca_key + " -out " + ca +
           " -days 2 -subj '/CN=Drawbridge Test SOC CA'") ||
      !run("openssl req " + ec + " -keyout " + server_key + " -out " + d +
           "/server.csr -subj '/CN=collector.test'") ||
      !run("openssl x509 -req -in " + d + "/server.csr -CA " + ca + " -CAkey " + ca_key +
           " -CAcreateserial -out " + server_cert + " -days 2 -extfile " + d + "/server.ext") ||
      !run("openssl req -x509 " + ec + " -keyout " + d + "/rogue.key -out " + rogue_ca +
           " -days 2 -subj '/CN=Drawbridge Test SOC CA'")) {
    return false;
  }
  cert_sha256 = capture("openssl x509 -in " + server_cert + " -noout -fingerprint -sha256");
  cert_sha256 = cert_sha256.substr(cert_sha256.find('=') + 1);
  cert_sha256.erase(cert_sha256.find_last_not_of("\n") + 1);
  spki_sha256 = capture("openssl x509 -in " + server_cert +
                        " -pubkey -noout | openssl pkey -pubin -outform der"
                        " | openssl dgst -sha256 -r");
  spki_sha256 = spki_sha256.substr(0, spki_sha256.find(' '));
  return cert_sha256.size() == 95 && spki_sha256.size() == 64;
}

Rsyslog::Rsyslog(const std::string& dir, const Pki& pki, RsyslogOptions options)
    : dir_(dir), options_(std::move(options)) {
  tcp_port = options_.tcp_port != 0 ? options_.tcp_port : free_port(SOCK_STREAM);
  tls_port = options_.tls_port != 0 ? options_.tls_port : free_port(SOCK_STREAM);
  udp_port = options_.udp_port != 0 ? options_.udp_port : free_port(SOCK_DGRAM);
  out = dir + "/received.log";
  fs::create_directories(dir + "/work");
  const std::string& address = options_.address;
  std::ofstream(dir + "/rsyslog.conf")
      << "global(workDirectory=\"" << dir << "/work\" maxMessageSize=\"64k\")\n"
      << "module(load=\"imudp\")\n"
      << "module(load=\"imtcp\" maxSessions=\"100\")\n"
      << "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n"
      << "ruleset(name=\"soc\") {\n"
      << "  action(type=\"omfile\" file=\"" << out << "\" template=\"raw\")\n"
      << "}\n"
      << "input(type=\"imudp\" address=\"" << address << "\" port=\"" << udp_port
      << "\" ruleset=\"soc\")\n"
      << "input(type=\"imtcp\" address=\"" << address << "\" port=\"" << tcp_port
      << "\" ruleset=\"soc\")\n"
      << "input(type=\"imtcp\" address=\"" << address << "\" port=\"" << tls_port
      << "\" ruleset=\"soc\"\n"
      << "      streamDriver.name=\"gtls\" streamDriver.mode=\"1\"\n"
      << "      streamDriver.authMode=\"anon\"\n"
      << "      streamDriver.CAFile=\"" << pki.ca << "\"\n"
      << "      streamDriver.CertFile=\"" << pki.server_cert << "\"\n"
      << "      streamDriver.KeyFile=\"" << pki.server_key << "\")\n";
}

::testing::AssertionResult Rsyslog::start() {
  const char* env = std::getenv("DRAWBRIDGE_RSYSLOGD");
  const std::string bin = env != nullptr ? env : "/usr/sbin/rsyslogd";
  if (!fs::exists(bin)) {
    return ::testing::AssertionFailure()
           << bin << " is missing: install rsyslog and rsyslog-gnutls (.ci/debian-packages.txt)";
  }
  std::vector<std::string> argv;
  if (!options_.netns.empty()) {
    // execv does not search PATH; iproute2 lives in /usr/sbin or /sbin.
    argv = {fs::exists("/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip", "netns", "exec",
            options_.netns};
  }
  argv.insert(argv.end(), {bin, "-n", "-f", dir_ + "/rsyslog.conf", "-i", dir_ + "/rsyslogd.pid"});
  pid_ = spawn(argv, dir_ + "/rsyslogd.out");
  const bool up = eventually(
      [&] {
        return listening("tcp", tcp_port) && listening("tcp", tls_port) &&
               listening("udp", udp_port);
      },
      seconds{15});
  if (!up) {
    return ::testing::AssertionFailure()
           << "rsyslogd did not start listening on " << options_.address << ": " << diagnostics();
  }
  return ::testing::AssertionSuccess();
}

void Rsyslog::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!reap(pid_, seconds{10})) kill();
  pid_ = -1;
}

void Rsyslog::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(pid_, seconds{10});
  pid_ = -1;
}

std::vector<std::string> Rsyslog::lines() const {
  std::vector<std::string> out_lines;
  std::istringstream in(read_file(out));
  for (std::string line; std::getline(in, line);) out_lines.push_back(line);
  return out_lines;
}

std::string Rsyslog::diagnostics() const {
  return read_file(dir_ + "/rsyslogd.out");
}

bool Rsyslog::listening(const std::string& proto, std::uint16_t port) const {
  if (pid_ <= 0) return false;
  in_addr a{};
  if (::inet_pton(AF_INET, options_.address.c_str(), &a) != 1) return false;
  // /proc/net/tcp prints the address as the 32-bit word in host byte order.
  char local[32];
  std::snprintf(local, sizeof local, "%08X:%04X", a.s_addr, port);
  std::istringstream in(read_file("/proc/" + std::to_string(pid_) + "/net/" + proto));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string slot, addr, remote, state;
    fields >> slot >> addr >> remote >> state;
    if (addr == local && (proto == "udp" || state == "0A")) return true;
  }
  return false;
}

}  // namespace drawbridge::test_support
