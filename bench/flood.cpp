// drawbridge-flood: sends a fixed number of TCP SYNs (or UDP datagrams) at a given rate, or as
// fast as one core can, for the logging benchmark (bench/log_bench.sh). It runs inside the lab's
// msp namespace and aims at a guarded port in the lan, so every packet crosses the gateway's
// forward hook and is dropped and logged there.
//
// Packets are built here (raw socket, IP_HDRINCL) so that the source address, source port and
// destination port of packet i are known exactly:
//   source      = --from + (i mod --sources)
//   destination port = --dport + ((i div --sources) mod --dports)
//   source port = 1024 + (i mod 64512)
// so `--sources 253` is a SYN flood from 253 hosts and `--dports 10` a small scan from each.
// They leave in batches of --batch through sendmmsg; with --rate the batches are paced against
// an absolute schedule (a late batch does not shift the ones after it).
//
// Prints one line of key=value pairs for the script: sent, seconds (first to last send), rate,
// user_s and sys_s (this process's CPU: the kernel forwards, filters and logs each packet in the
// sender's softirq context, so sys_s includes the gateway's per-packet work), retries (batches
// the kernel refused with ENOBUFS and that were sent again).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "common/result.h"

namespace drawbridge {
namespace {

struct FloodOptions {
  std::string from = "198.51.100.66";
  std::uint32_t sources = 1;
  std::string to = "10.20.0.10";
  std::uint16_t dport = 5900;
  std::uint32_t dports = 1;
  std::uint64_t count = 100'000;
  double rate = 0;  // packets per second; 0: as fast as possible
  unsigned batch = 64;
  bool udp = false;
};

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd = -1) noexcept : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

Result<Fd> open_raw_socket() {
  // IPPROTO_RAW implies IP_HDRINCL: the header is ours, the kernel fills in the total length
  // and the header checksum.
  Fd fd(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (fd.get() < 0) {
    return make_error(std::string("raw socket: ") + std::strerror(errno) +
                      " (run as root, inside the lab's msp namespace)");
  }
  // A deep send buffer lets a batch go out without waiting for the device.
  const int sndbuf = 4 << 20;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
  return fd;
}

std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t acc = 0) {
  for (std::size_t i = 0; i + 1 < n; i += 2)
    acc += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (n % 2) acc += static_cast<std::uint32_t>(p[n - 1] << 8);
  return acc;
}
std::uint16_t fold(std::uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<std::uint16_t>(~acc);
}
void put16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t* p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}

// 20 bytes of IPv4 header + a 24-byte SYN (with an MSS option, as a connecting client sends)
// or an 8-byte UDP header with 12 bytes of payload.
constexpr std::size_t kMaxPacket = 20 + 24;

std::size_t build_packet(std::uint8_t* p, const FloodOptions& opt, std::uint32_t src,
                         std::uint32_t dst, std::uint64_t i) {
  const std::size_t l4_len = opt.udp ? 20 : 24;
  std::memset(p, 0, 20 + l4_len);
  p[0] = 0x45;
  put16(p + 2, static_cast<std::uint16_t>(20 + l4_len));
  put16(p + 4, static_cast<std::uint16_t>(i));  // identification
  p[6] = 0x40;                                  // don't fragment
  p[8] = 64;
  p[9] = opt.udp ? IPPROTO_UDP : IPPROTO_TCP;
  const std::uint32_t source = src + static_cast<std::uint32_t>(i % opt.sources);
  const auto dport = static_cast<std::uint16_t>(opt.dport + (i / opt.sources) % opt.dports);
  const auto sport = static_cast<std::uint16_t>(1024 + i % 64512);
  put32(p + 12, source);
  put32(p + 16, dst);
  put16(p + 10, fold(sum16(p, 20)));

  std::uint8_t* l4 = p + 20;
  put16(l4, sport);
  put16(l4 + 2, dport);
  std::size_t check_at;
  if (opt.udp) {
    put16(l4 + 4, static_cast<std::uint16_t>(l4_len));
    std::memcpy(l4 + 8, "drawbridge!?", 12);
    check_at = 6;
  } else {
    put32(l4 + 4, static_cast<std::uint32_t>(i * 2654435761u));  // initial sequence number
    l4[12] = 6 << 4;                                             // data offset: 24 bytes
    l4[13] = 0x02;                                               // SYN
    put16(l4 + 14, 64240);                                       // window
    l4[20] = 2, l4[21] = 4, l4[22] = 0x05, l4[23] = 0xb4;        // MSS 1460
    check_at = 16;
  }
  // The transport checksum over the pseudo-header: packets should look like real ones.
  std::uint32_t acc = sum16(p + 12, 8);
  acc += p[9];
  acc += static_cast<std::uint32_t>(l4_len);
  put16(l4 + check_at, fold(sum16(l4, l4_len, acc)));
  return 20 + l4_len;
}

double cpu_seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

Result<void> flood(const FloodOptions& opt) {
  in_addr from{}, to{};
  if (::inet_pton(AF_INET, opt.from.c_str(), &from) != 1)
    return make_error("--from: not an IPv4 address: " + opt.from);
  if (::inet_pton(AF_INET, opt.to.c_str(), &to) != 1)
    return make_error("--to: not an IPv4 address: " + opt.to);
  if (opt.sources == 0 || opt.dports == 0 || opt.batch == 0)
    return make_error("--sources, --dports and --batch must be at least 1");
  if (opt.dport + opt.dports - 1 > 65535) return make_error("--dport + --dports exceeds 65535");
  auto sock = open_raw_socket();
  if (!sock.ok()) return sock.error();

  sockaddr_in dest{};
  dest.sin_family = AF_INET;
  dest.sin_addr = to;
  std::vector<std::array<std::uint8_t, kMaxPacket>> packets(opt.batch);
  std::vector<iovec> iov(opt.batch);
  std::vector<mmsghdr> msgs(opt.batch);

  using Clock = std::chrono::steady_clock;
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  const auto start = Clock::now();
  std::uint64_t sent = 0, retries = 0;
  const std::uint32_t src = ntohl(from.s_addr), dst = ntohl(to.s_addr);
  while (sent < opt.count) {
    if (opt.rate > 0) {
      // Absolute schedule: packet `sent` is due at start + sent / rate.
      const auto due =
          start + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(static_cast<double>(sent) / opt.rate));
      if (due > Clock::now()) {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
        const timespec ts{static_cast<time_t>(ns / 1'000'000'000),
                          static_cast<long>(ns % 1'000'000'000)};
        // steady_clock is CLOCK_MONOTONIC in libstdc++.
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
      }
    }
    const auto n = static_cast<unsigned>(std::min<std::uint64_t>(opt.batch, opt.count - sent));
    for (unsigned k = 0; k < n; ++k) {
      iov[k].iov_base = packets[k].data();
      iov[k].iov_len = build_packet(packets[k].data(), opt, src, dst, sent + k);
      msgs[k] = mmsghdr{};
      msgs[k].msg_hdr.msg_name = &dest;
      msgs[k].msg_hdr.msg_namelen = sizeof dest;
      msgs[k].msg_hdr.msg_iov = &iov[k];
      msgs[k].msg_hdr.msg_iovlen = 1;
    }
    unsigned done = 0;
    while (done < n) {
      const int r = ::sendmmsg(sock->get(), msgs.data() + done, n - done, 0);
      if (r > 0) {
        done += static_cast<unsigned>(r);
        continue;
      }
      if (r < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)) {
        // The device or the socket is full for a moment: what is refused is sent again, so
        // the count stays exact.
        ++retries;
        ::usleep(50);
        continue;
      }
      return make_error(std::string("sendmmsg: ") + std::strerror(errno) + " after " +
                        std::to_string(sent + done) + " packets");
    }
    sent += n;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  std::printf("sent=%llu seconds=%.6f rate=%.0f user_s=%.3f sys_s=%.3f retries=%llu\n",
              static_cast<unsigned long long>(sent), seconds,
              seconds > 0 ? static_cast<double>(sent) / seconds : 0.0,
              cpu_seconds(after.ru_utime) - cpu_seconds(before.ru_utime),
              cpu_seconds(after.ru_stime) - cpu_seconds(before.ru_stime),
              static_cast<unsigned long long>(retries));
  return {};
}

}  // namespace
}  // namespace drawbridge

int main(int argc, char** argv) {
  drawbridge::FloodOptions opt;
  CLI::App app{
      "Send a fixed number of TCP SYNs (or UDP datagrams) through the lab's gateway, paced or as "
      "fast as possible (bench/log_bench.sh runs it in the msp namespace)"};
  app.add_option("--from", opt.from, "First source address (IPv4)")->capture_default_str();
  app.add_option("--sources", opt.sources, "Number of source addresses, counting up from --from")
      ->capture_default_str();
  app.add_option("--to", opt.to, "Destination address (IPv4)")->capture_default_str();
  app.add_option("--dport", opt.dport, "First destination port")->capture_default_str();
  app.add_option("--dports", opt.dports, "Number of destination ports, counting up from --dport")
      ->capture_default_str();
  app.add_option("--count", opt.count, "Packets to send")->capture_default_str();
  app.add_option("--rate", opt.rate, "Packets per second (0: as fast as possible)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--batch", opt.batch, "Packets per sendmmsg call")
      ->check(CLI::Range(1u, 1024u))
      ->capture_default_str();
  app.add_flag("--udp", opt.udp, "UDP datagrams instead of TCP SYNs");
  CLI11_PARSE(app, argc, argv);
  auto r = drawbridge::flood(opt);
  if (!r.ok()) {
    std::fprintf(stderr, "drawbridge-flood: %s\n", r.error().message.c_str());
    return 1;
  }
  return 0;
}
