// drawbridge-labnet: the traffic end of the integration lab.
//
//   serve   TCP and UDP echo servers (dual-stack) in one poll loop, until SIGTERM/SIGINT.
//   probe   one connection attempt from a chosen source address; "allowed" only if the echo of a
//           random token comes back, so a half-open path (SYN passes, data dropped) is "blocked".
//   stream  one long TCP connection sending a line per interval; reports when echoes stopped, to
//           prove that a live session is cut when its window closes.
//
// Exit codes: 0 allowed / ok, 1 blocked (probe) or no echo (stream) or server failure,
// 2 usage error or a local setup error (e.g. the source address is not configured here) — a
// broken lab must never read as "blocked".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitBlocked = 1;
constexpr int kExitUsage = 2;

// Owns one file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// A usage or local setup problem: reported on stderr, exit code 2.
struct UsageError {
  std::string message;
};

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  [[nodiscard]] int family() const { return storage.ss_family; }
  [[nodiscard]] const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

std::optional<SocketAddress> parse_address(const std::string& text, std::uint16_t port) {
  SocketAddress address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    address.length = sizeof(sockaddr_in);
    return address;
  }
  address.storage = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    address.length = sizeof(sockaddr_in6);
    return address;
  }
  return std::nullopt;
}

SocketAddress require_address(const std::string& text, std::uint16_t port, const char* what) {
  auto address = parse_address(text, port);
  if (!address) throw UsageError{std::string(what) + ": not an IPv4 or IPv6 address: " + text};
  return *address;
}

std::optional<std::uint16_t> parse_port_number(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

enum class Protocol { tcp, udp };

struct PortSpec {
  Protocol protocol = Protocol::tcp;
  std::uint16_t port = 0;
};

// "tcp/3389" or "udp/3389".
PortSpec parse_port_spec(const std::string& text) {
  const auto slash = text.find('/');
  if (slash != std::string::npos) {
    const std::string_view proto(text.data(), slash);
    const auto port = parse_port_number(std::string_view(text).substr(slash + 1));
    if (port && (proto == "tcp" || proto == "udp")) {
      return {proto == "tcp" ? Protocol::tcp : Protocol::udp, *port};
    }
  }
  throw UsageError{"--port: expected tcp/N or udp/N, got: " + text};
}

// "22,3389,5900"; an empty string is an empty list.
std::vector<std::uint16_t> parse_port_list(const std::string& text, const char* what) {
  std::vector<std::uint16_t> ports;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const auto port = parse_port_number(item);
    if (!port) throw UsageError{std::string(what) + ": not a port number: " + item};
    ports.push_back(*port);
  }
  return ports;
}

std::string errno_text(int err) {
  return std::strerror(err);
}

std::int64_t epoch_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int remaining_ms(SteadyClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::max<std::int64_t>(0, left));
}

std::string random_token() {
  std::random_device device;
  std::uniform_int_distribution<int> digit(0, 15);
  std::string token = "drawbridge-probe-";
  for (int i = 0; i < 24; ++i) token += "0123456789abcdef"[digit(device)];
  return token + "\n";
}

// ---------------------------------------------------------------------------------------------
// serve

struct ServeOptions {
  std::string tcp_ports = "22,3389,5900";
  std::string udp_ports = "3389";
  std::string bind = "::";
};

bool is_wildcard(const SocketAddress& address) {
  if (address.family() == AF_INET) {
    return reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_addr.s_addr == INADDR_ANY;
  }
  const auto& a = reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_addr;
  return IN6_IS_ADDR_UNSPECIFIED(&a);
}

UniqueFd open_listener(const std::string& bind, std::uint16_t port, Protocol protocol) {
  const SocketAddress address = require_address(bind, port, "--bind");
  const int type = (protocol == Protocol::tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK;
  UniqueFd fd(::socket(address.family(), type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::runtime_error("socket: " + errno_text(errno));
  const int on = 1;
  const int off = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (address.family() == AF_INET6) {
    // Dual-stack: IPv4 clients arrive as v4-mapped addresses on the same socket.
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (protocol == Protocol::udp && is_wildcard(address)) {
    // A wildcard UDP socket must answer from the address the datagram was sent to (the lan host
    // has several), so ask for the destination of each datagram.
    if (address.family() == AF_INET6) {
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on);
    } else {
      ::setsockopt(fd.get(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
    }
  }
  if (::bind(fd.get(), address.get(), address.length) != 0) {
    throw std::runtime_error("bind " + bind + " " + (protocol == Protocol::tcp ? "tcp/" : "udp/") +
                             std::to_string(port) + ": " + errno_text(errno));
  }
  if (protocol == Protocol::tcp && ::listen(fd.get(), 128) != 0) {
    throw std::runtime_error("listen: " + errno_text(errno));
  }
  return fd;
}

// Echoes one datagram back to its sender, from the address it was sent to.
void echo_datagram(int fd) {
  char data[65536];
  alignas(cmsghdr) char control[256];
  sockaddr_storage peer{};
  iovec iov{data, sizeof data};
  msghdr msg{};
  msg.msg_name = &peer;
  msg.msg_namelen = sizeof peer;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT);
  if (n < 0) return;

  alignas(cmsghdr) char reply_control[256]{};
  msghdr reply{};
  iovec reply_iov{data, static_cast<size_t>(n)};
  reply.msg_name = &peer;
  reply.msg_namelen = msg.msg_namelen;
  reply.msg_iov = &reply_iov;
  reply.msg_iovlen = 1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      info.ipi6_ifindex = 0;  // let routing choose the interface; only the source matters
      reply.msg_control = reply_control;
      reply.msg_controllen = CMSG_SPACE(sizeof info);
      cmsghdr* out = CMSG_FIRSTHDR(&reply);
      out->cmsg_level = IPPROTO_IPV6;
      out->cmsg_type = IPV6_PKTINFO;
      out->cmsg_len = CMSG_LEN(sizeof info);
      std::memcpy(CMSG_DATA(out), &info, sizeof info);
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      in_pktinfo source{};
      source.ipi_spec_dst = info.ipi_addr;
      reply.msg_control = reply_control;
      reply.msg_controllen = CMSG_SPACE(sizeof source);
      cmsghdr* out = CMSG_FIRSTHDR(&reply);
      out->cmsg_level = IPPROTO_IP;
      out->cmsg_type = IP_PKTINFO;
      out->cmsg_len = CMSG_LEN(sizeof source);
      std::memcpy(CMSG_DATA(out), &source, sizeof source);
    }
  }
  ::sendmsg(fd, &reply, MSG_DONTWAIT | MSG_NOSIGNAL);
}

struct Client {
  UniqueFd fd;
  std::string pending;  // received but not yet echoed
  bool peer_closed = false;
};

int serve(const ServeOptions& options) {
  const auto tcp_ports = parse_port_list(options.tcp_ports, "--tcp");
  const auto udp_ports = parse_port_list(options.udp_ports, "--udp");
  if (tcp_ports.empty() && udp_ports.empty()) throw UsageError{"nothing to serve"};

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  UniqueFd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<UniqueFd> tcp_listeners;
  std::vector<UniqueFd> udp_sockets;
  try {
    for (auto port : tcp_ports)
      tcp_listeners.push_back(open_listener(options.bind, port, Protocol::tcp));
    for (auto port : udp_ports)
      udp_sockets.push_back(open_listener(options.bind, port, Protocol::udp));
  } catch (const std::runtime_error& e) {
    std::cerr << "labnet serve: " << e.what() << "\n";
    return 1;
  }
  std::cout << "ready" << std::endl;

  constexpr std::size_t kMaxPending = 1 << 20;  // stop reading a client that does not read
  std::map<int, Client> clients;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({signal_fd.get(), POLLIN, 0});
    for (const auto& l : tcp_listeners) fds.push_back({l.get(), POLLIN, 0});
    for (const auto& u : udp_sockets) fds.push_back({u.get(), POLLIN, 0});
    for (const auto& [fd, client] : clients) {
      short events = 0;
      if (!client.peer_closed && client.pending.size() < kMaxPending) events |= POLLIN;
      if (!client.pending.empty()) events |= POLLOUT;
      fds.push_back({fd, events, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::cerr << "labnet serve: poll: " << errno_text(errno) << "\n";
      return 1;
    }
    if (fds[0].revents & POLLIN) return kExitOk;

    std::size_t i = 1;
    for (const auto& l : tcp_listeners) {
      if (fds[i++].revents & POLLIN) {
        for (;;) {
          const int fd = ::accept4(l.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          const int on = 1;
          ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          clients[fd].fd = UniqueFd(fd);
        }
      }
    }
    for (const auto& u : udp_sockets) {
      if (fds[i++].revents & POLLIN) echo_datagram(u.get());
    }
    for (; i < fds.size(); ++i) {
      const auto& p = fds[i];
      if (p.revents == 0) continue;
      Client& client = clients[p.fd];
      bool drop = (p.revents & (POLLERR | POLLNVAL)) != 0;
      if (!drop && (p.revents & (POLLIN | POLLHUP))) {
        char buffer[16384];
        const ssize_t n = ::recv(p.fd, buffer, sizeof buffer, 0);
        if (n > 0) {
          client.pending.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
          client.peer_closed = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          drop = true;
        }
      }
      if (!drop && !client.pending.empty()) {
        const ssize_t n =
            ::send(p.fd, client.pending.data(), client.pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          client.pending.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          drop = true;
        }
      }
      if (drop || (client.peer_closed && client.pending.empty())) clients.erase(p.fd);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// probe and stream

struct ProbeOptions {
  std::string from;
  std::string to;
  std::string port;
  int timeout_ms = 1500;
};

struct Endpoints {
  SocketAddress from;
  SocketAddress to;
  PortSpec port;
};

Endpoints resolve(const std::string& from, const std::string& to, const std::string& port) {
  Endpoints e{require_address(from, 0, "--from"), {}, parse_port_spec(port)};
  e.to = require_address(to, e.port.port, "--to");
  if (e.from.family() != e.to.family()) throw UsageError{"--from and --to are different families"};
  return e;
}

// A socket bound to the source address. Failing to bind is a broken lab, not a blocked path.
UniqueFd bound_socket(const Endpoints& e, int type, const std::string& from) {
  UniqueFd fd(::socket(e.from.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw UsageError{"socket: " + errno_text(errno)};
  if (::bind(fd.get(), e.from.get(), e.from.length) != 0) {
    throw UsageError{"cannot bind source address " + from + ": " + errno_text(errno)};
  }
  return fd;
}

// Outcome of a TCP connect: empty when connected, otherwise why not.
std::optional<std::string> connect_tcp(int fd, const Endpoints& e, SteadyClock::time_point deadline,
                                       int timeout_ms) {
  if (::connect(fd, e.to.get(), e.to.length) == 0) return std::nullopt;
  if (errno != EINPROGRESS) return "connect: " + errno_text(errno);
  pollfd p{fd, POLLOUT, 0};
  for (;;) {
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      return "no answer to the connection attempt within " + std::to_string(timeout_ms) +
             " ms (dropped)";
    }
    break;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err == 0) return std::nullopt;
  if (err == ECONNREFUSED)
    return std::string("connection refused (RST: nothing listening, or rejected)");
  return "connect: " + errno_text(err) + " (ICMP error)";
}

int probe_tcp(const Endpoints& e, const ProbeOptions& options) {
  const auto deadline = SteadyClock::now() + milliseconds(options.timeout_ms);
  UniqueFd fd = bound_socket(e, SOCK_STREAM, options.from);
  if (auto failure = connect_tcp(fd.get(), e, deadline, options.timeout_ms)) {
    std::cout << "blocked: " << *failure << std::endl;
    return kExitBlocked;
  }
  const std::string token = random_token();
  if (::send(fd.get(), token.data(), token.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(token.size())) {
    std::cout << "blocked: connected but send failed: " << errno_text(errno) << std::endl;
    return kExitBlocked;
  }
  std::string echo;
  pollfd p{fd.get(), POLLIN, 0};
  while (echo.size() < token.size()) {
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      std::cout << "blocked: connected but no echo within " << options.timeout_ms
                << " ms (data dropped)" << std::endl;
      return kExitBlocked;
    }
    char buffer[256];
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n == 0) {
      std::cout << "blocked: connection closed before the echo" << std::endl;
      return kExitBlocked;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      std::cout << "blocked: connection broken before the echo: " << errno_text(errno) << std::endl;
      return kExitBlocked;
    }
    echo.append(buffer, static_cast<std::size_t>(n));
  }
  if (echo.compare(0, token.size(), token) != 0) {
    std::cout << "blocked: echo did not match the token" << std::endl;
    return kExitBlocked;
  }
  std::cout << "allowed" << std::endl;
  return kExitOk;
}

int probe_udp(const Endpoints& e, const ProbeOptions& options) {
  const auto deadline = SteadyClock::now() + milliseconds(options.timeout_ms);
  UniqueFd fd = bound_socket(e, SOCK_DGRAM, options.from);
  if (::connect(fd.get(), e.to.get(), e.to.length) != 0) {
    throw UsageError{"connect udp: " + errno_text(errno)};
  }
  const std::string token = random_token();
  // Resend now and then: one datagram lost to neighbour resolution must not read as "blocked".
  constexpr milliseconds kResend{250};
  auto next_send = SteadyClock::now();
  pollfd p{fd.get(), POLLIN, 0};
  for (;;) {
    const auto now = SteadyClock::now();
    if (now >= deadline) break;
    if (now >= next_send) {
      ::send(fd.get(), token.data(), token.size(), MSG_NOSIGNAL);
      next_send = now + kResend;
    }
    const auto wait = std::min(next_send, deadline);
    const int ready = ::poll(&p, 1, remaining_ms(wait));
    if (ready <= 0) continue;
    char buffer[512];
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == ECONNREFUSED) {
        std::cout << "blocked: ICMP port unreachable (nothing listening, or rejected)" << std::endl;
        return kExitBlocked;
      }
      if (errno == EAGAIN || errno == EINTR) continue;
      std::cout << "blocked: " << errno_text(errno) << " (ICMP error)" << std::endl;
      return kExitBlocked;
    }
    if (std::string_view(buffer, static_cast<std::size_t>(n)) == token) {
      std::cout << "allowed" << std::endl;
      return kExitOk;
    }
  }
  std::cout << "blocked: no echo within " << options.timeout_ms << " ms (dropped)" << std::endl;
  return kExitBlocked;
}

int probe(const ProbeOptions& options) {
  if (options.timeout_ms <= 0) throw UsageError{"--timeout-ms must be positive"};
  const Endpoints e = resolve(options.from, options.to, options.port);
  return e.port.protocol == Protocol::tcp ? probe_tcp(e, options) : probe_udp(e, options);
}

struct StreamOptions {
  std::string from;
  std::string to;
  std::string port;
  int interval_ms = 100;
  int duration_ms = 0;
  int connect_timeout_ms = 1500;
};

int stream(const StreamOptions& options) {
  if (options.interval_ms <= 0 || options.duration_ms <= 0 || options.connect_timeout_ms <= 0) {
    throw UsageError{"--interval-ms, --duration-ms and --connect-timeout-ms must be positive"};
  }
  const Endpoints e = resolve(options.from, options.to, options.port);
  if (e.port.protocol != Protocol::tcp) throw UsageError{"stream needs --port tcp/N"};

  const auto start = SteadyClock::now();
  const auto end = start + milliseconds(options.duration_ms);
  int echoes = 0;
  std::int64_t first_echo = 0;
  std::int64_t last_echo = 0;
  const auto report = [&](std::string_view why) {
    std::cout << "echoes=" << echoes << " first_echo_ms=" << first_echo
              << " last_echo_ms=" << last_echo << std::endl;
    std::cerr << "labnet stream: " << why << "\n";
    return echoes > 0 ? kExitOk : kExitBlocked;
  };

  UniqueFd fd = bound_socket(e, SOCK_STREAM, options.from);
  if (auto failure = connect_tcp(fd.get(), e, start + milliseconds(options.connect_timeout_ms),
                                 options.connect_timeout_ms)) {
    return report("not connected: " + *failure);
  }
  const int on = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);

  int sequence = 0;
  auto next_send = SteadyClock::now();
  pollfd p{fd.get(), POLLIN, 0};
  for (;;) {
    auto now = SteadyClock::now();
    if (now >= end) return report("duration elapsed");
    if (now >= next_send) {
      const std::string line = "tick " + std::to_string(sequence++) + "\n";
      const ssize_t n = ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return report("send failed: " + errno_text(errno));
      }
      next_send += milliseconds(options.interval_ms);
    }
    const int ready = ::poll(&p, 1, remaining_ms(std::min(next_send, end)));
    if (ready <= 0) continue;
    char buffer[4096];
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0) return report("connection closed by the peer");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return report("connection broken: " + errno_text(errno));
    }
    const auto lines = std::count(buffer, buffer + n, '\n');
    if (lines > 0) {
      const std::int64_t t = epoch_ms();
      if (echoes == 0) first_echo = t;
      last_echo = t;
      echoes += static_cast<int>(lines);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"drawbridge-labnet: traffic generator and echo server for the Drawbridge lab"};
  app.require_subcommand(1);

  ServeOptions serve_options;
  auto* serve_cmd = app.add_subcommand(
      "serve", "TCP and UDP echo servers (IPv4 and IPv6) until SIGTERM/SIGINT; prints \"ready\"");
  serve_cmd->add_option("--tcp", serve_options.tcp_ports, "TCP ports, comma-separated")
      ->capture_default_str();
  serve_cmd->add_option("--udp", serve_options.udp_ports, "UDP ports, comma-separated")
      ->capture_default_str();
  serve_cmd->add_option("--bind", serve_options.bind, "address to listen on (:: is dual-stack)")
      ->capture_default_str();

  ProbeOptions probe_options;
  auto* probe_cmd =
      app.add_subcommand("probe",
                         "one connection from --from to --to; prints \"allowed\" (exit 0) or "
                         "\"blocked: why\" (exit 1); exit 2 on usage or local setup errors");
  probe_cmd->add_option("--from", probe_options.from, "source address (must be local)")->required();
  probe_cmd->add_option("--to", probe_options.to, "destination address")->required();
  probe_cmd->add_option("--port", probe_options.port, "tcp/N or udp/N")->required();
  probe_cmd->add_option("--timeout-ms", probe_options.timeout_ms, "total time for the attempt")
      ->capture_default_str();

  StreamOptions stream_options;
  auto* stream_cmd = app.add_subcommand(
      "stream",
      "one TCP connection sending a line every interval; prints "
      "\"echoes=N first_echo_ms=T last_echo_ms=T\" (unix ms), exit 0 if any echo");
  stream_cmd->add_option("--from", stream_options.from, "source address")->required();
  stream_cmd->add_option("--to", stream_options.to, "destination address")->required();
  stream_cmd->add_option("--port", stream_options.port, "tcp/N")->required();
  stream_cmd->add_option("--interval-ms", stream_options.interval_ms, "time between lines")
      ->capture_default_str();
  stream_cmd->add_option("--duration-ms", stream_options.duration_ms, "how long to run")
      ->required();
  stream_cmd
      ->add_option("--connect-timeout-ms", stream_options.connect_timeout_ms,
                   "time allowed for the connection")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (*serve_cmd) return serve(serve_options);
    if (*probe_cmd) return probe(probe_options);
    return stream(stream_options);
  } catch (const UsageError& e) {
    std::cerr << "drawbridge-labnet: " << e.message << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "drawbridge-labnet: " << e.what() << "\n";
    return kExitUsage;
  }
}
