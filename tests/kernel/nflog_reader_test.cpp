// The NFLOG reader against the real kernel: every packet a `log group` rule logged is either
// delivered with the right fields or counted as lost — with a receive buffer far too small for
// the burst, too. Each test runs in a network namespace of its own, with a veth pair (gw0, the
// "gateway" side with addresses, and peer0, where test frames are injected with a packet
// socket) so that the in-interface is a real one, and with loopback for real TCP sockets.
//
// Capturing the unit tests' fixtures: from the source tree, run enforcer_kernel_tests with
// --gtest_filter='NflogReader.EachKindOfPacket*' and DRAWBRIDGE_NFLOG_CAPTURE_DIR set to
// tests/unit/fixtures/nflog; each captured message is written as <name>.bin (the netlink
// message, nlmsg_len bytes, exactly as recv returned it).
#include "enforcer/soc/nflog_reader.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "enforcer/netlink_batch.h"

namespace drawbridge {
namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kGroup = 77;
constexpr const char* kGuardPrefix = "drawbridge:unapproved-port:guard";

// Runs `body` on a thread that has a fresh, empty network namespace of its own; the namespace
// disappears with the thread's last socket. Commands run with system() from that thread are in
// it too (a forked child inherits the calling thread's namespaces).
void in_fresh_netns(const std::function<void()>& body) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, nftables)";
  std::thread t([&] {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET) failed";
    body();
  });
  t.join();
}

bool run(const std::string& command) {
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  return rc == 0;
}

// The rules of the tests: one per kind of packet, each counting, logging and dropping.
const char* kRuleset = R"(table inet dbtest {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 9 counter log prefix "drawbridge:unapproved-port:guard" group 77 drop
    tcp dport 3389 counter log prefix "drawbridge:outside-window:link/rdp" group 77 drop
    udp dport 1194 counter log prefix "drawbridge:unapproved-source:link/vpn" group 77 drop
    icmp type echo-request counter log prefix "drawbridge:unapproved-host:provider/acme" group 77 drop
    icmpv6 type echo-request counter log prefix "drawbridge:unapproved-host:provider/acme" group 77 drop
  }
}
)";

struct Lab {
  std::uint32_t gw_index = 0, peer_index = 0;
};

constexpr std::array<std::uint8_t, 6> kGwMac = {0x02, 0, 0, 0, 0, 0x01};
constexpr std::array<std::uint8_t, 6> kPeerMac = {0x02, 0, 0, 0, 0, 0x02};

// lo up, the veth pair, the addresses the frames are sent to, and the ruleset.
Lab make_lab() {
  run("ip link set lo up");
  run("ip link add gw0 address 02:00:00:00:00:01 type veth peer name peer0 address "
      "02:00:00:00:00:02");
  run("ip addr add 10.0.0.1/24 dev gw0");
  run("ip -6 addr add 2001:db8:1::1/64 dev gw0 nodad");
  run("ip link set gw0 up");
  run("ip link set peer0 up");
  const std::string file = "/tmp/drawbridge-nflog-test-" + std::to_string(getpid()) + ".nft";
  {
    std::ofstream out(file);
    out << kRuleset;
  }
  run("nft -f " + file);
  std::remove(file.c_str());
  return Lab{if_nametoindex("gw0"), if_nametoindex("peer0")};
}

// Packets on the wire. Checksums are right: the IPv4 header's is checked before the hooks, and
// the fixtures should look like what a gateway really sees.
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
void put16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}

Bytes addr(int family, const char* text) {
  Bytes b(family == AF_INET ? 4 : 16);
  EXPECT_EQ(inet_pton(family, text, b.data()), 1) << text;
  return b;
}

// The transport checksum over the pseudo-header; `at` is where the checksum field is.
void l4_checksum(Bytes& l4, std::size_t at, const Bytes& src, const Bytes& dst,
                 std::uint8_t proto) {
  std::uint32_t acc = sum16(src.data(), src.size());
  acc = sum16(dst.data(), dst.size(), acc);
  acc += proto;
  acc += static_cast<std::uint32_t>(l4.size());
  put16(l4, at, 0);
  put16(l4, at, fold(sum16(l4.data(), l4.size(), acc)));
}

constexpr std::uint8_t kSyn = 0x02, kAck = 0x10;

// A TCP segment with an MSS option, as a connecting client sends it.
Bytes tcp(const Bytes& src, const Bytes& dst, std::uint16_t sport, std::uint16_t dport,
          std::uint8_t flags) {
  Bytes t(24, 0);
  put16(t, 0, sport);
  put16(t, 2, dport);
  t[4] = 0x12, t[5] = 0x34, t[6] = 0x56, t[7] = 0x78;  // sequence number
  t[12] = 6 << 4;                                      // data offset: 24 bytes
  t[13] = flags;
  put16(t, 14, 64240);                               // window
  t[20] = 2, t[21] = 4, t[22] = 0x05, t[23] = 0xb4;  // MSS 1460
  l4_checksum(t, 16, src, dst, 6);
  return t;
}

Bytes udp(const Bytes& src, const Bytes& dst, std::uint16_t sport, std::uint16_t dport) {
  Bytes u(8 + 12, 0);
  put16(u, 0, sport);
  put16(u, 2, dport);
  put16(u, 4, static_cast<std::uint16_t>(u.size()));
  std::memcpy(u.data() + 8, "drawbridge!?", 12);
  l4_checksum(u, 6, src, dst, 17);
  return u;
}

Bytes echo_request(bool v6, const Bytes& src, const Bytes& dst) {
  Bytes e(8 + 16, 0);
  e[0] = v6 ? 128 : 8;  // echo request
  put16(e, 4, 0x4242);  // identifier
  put16(e, 6, 1);       // sequence
  for (std::size_t i = 8; i < e.size(); ++i) e[i] = static_cast<std::uint8_t>(i);
  if (v6) {
    l4_checksum(e, 2, src, dst, 58);
  } else {
    put16(e, 2, fold(sum16(e.data(), e.size())));
  }
  return e;
}

Bytes ipv4(const Bytes& src, const Bytes& dst, std::uint8_t proto, const Bytes& l4) {
  // Sized once and copied into: GCC 12 warns falsely (-Warray-bounds) on insert at -O2.
  Bytes p(20 + l4.size(), 0);
  p[0] = 0x45;
  put16(p, 2, static_cast<std::uint16_t>(20 + l4.size()));
  put16(p, 4, 0x1d0b);  // identification
  p[6] = 0x40;          // don't fragment
  p[8] = 64;
  p[9] = proto;
  std::memcpy(p.data() + 12, src.data(), 4);
  std::memcpy(p.data() + 16, dst.data(), 4);
  put16(p, 10, fold(sum16(p.data(), 20)));
  std::copy(l4.begin(), l4.end(), p.begin() + 20);
  return p;
}

Bytes ipv6(const Bytes& src, const Bytes& dst, std::uint8_t next, const Bytes& l4) {
  Bytes p(40 + l4.size(), 0);
  p[0] = 0x60;
  put16(p, 4, static_cast<std::uint16_t>(l4.size()));
  p[6] = next;
  p[7] = 64;
  std::memcpy(p.data() + 8, src.data(), 16);
  std::memcpy(p.data() + 24, dst.data(), 16);
  std::copy(l4.begin(), l4.end(), p.begin() + 40);
  return p;
}

// Frames sent out of peer0 arrive on gw0, addressed to its MAC.
class Injector {
 public:
  explicit Injector(std::uint32_t ifindex) : ifindex_(ifindex) {
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << "packet socket: " << std::strerror(errno);
  }
  ~Injector() {
    if (fd_ >= 0) close(fd_);
  }
  Injector(const Injector&) = delete;
  Injector& operator=(const Injector&) = delete;

  static Bytes frame(const Bytes& ip_packet) {
    const bool v6 = (ip_packet[0] >> 4) == 6;
    Bytes f(14 + ip_packet.size());
    std::memcpy(f.data(), kGwMac.data(), 6);
    std::memcpy(f.data() + 6, kPeerMac.data(), 6);
    put16(f, 12, v6 ? ETH_P_IPV6 : ETH_P_IP);
    std::copy(ip_packet.begin(), ip_packet.end(), f.begin() + 14);
    return f;
  }

  bool send(const Bytes& ip_packet) { return send_frame(frame(ip_packet)); }

  bool send_frame(const Bytes& f) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(ifindex_);
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, kGwMac.data(), 6);
    while (true) {
      const ssize_t n =
          sendto(fd_, f.data(), f.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
      if (n == static_cast<ssize_t>(f.size())) return true;
      if (n < 0 && errno == ENOBUFS) {  // the device queue is full: let it drain
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        continue;
      }
      ADD_FAILURE() << "sending a frame: " << std::strerror(errno);
      return false;
    }
  }

 private:
  int fd_ = -1;
  std::uint32_t ifindex_;
};

Bytes syn_v4(std::uint16_t sport, std::uint16_t dport = 9) {
  const auto src = addr(AF_INET, "203.0.113.7"), dst = addr(AF_INET, "10.0.0.1");
  return ipv4(src, dst, 6, tcp(src, dst, sport, dport, kSyn));
}

// Reads until `want` packets arrived or `timeout` passed.
std::vector<LoggedPacket> collect(NflogReader& reader, std::size_t want,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                  std::vector<Bytes>* raw = nullptr) {
  std::vector<LoggedPacket> got;
  const auto on_message = [&](const nlmsghdr* nlh) {
    if (raw && nlh->nlmsg_type == ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) {
      const auto* b = reinterpret_cast<const std::uint8_t*>(nlh);
      raw->emplace_back(b, b + nlh->nlmsg_len);
    }
  };
  const auto deadline = Clock::now() + timeout;
  while (got.size() < want && Clock::now() < deadline) {
    pollfd pfd{reader.fd(), POLLIN, 0};
    poll(&pfd, 1, 100);
    reader.read_available([&](const LoggedPacket& p) { got.push_back(p); }, on_message);
  }
  return got;
}

// Reads until nothing arrived for `quiet` (the kernel flushes a partial batch after 50 ms).
std::size_t drain(NflogReader& reader,
                  std::chrono::milliseconds quiet = std::chrono::milliseconds(400)) {
  std::size_t n = 0;
  auto last = Clock::now();
  while (Clock::now() - last < quiet) {
    pollfd pfd{reader.fd(), POLLIN, 0};
    poll(&pfd, 1, 50);
    const auto d = reader.read_available([&](const LoggedPacket&) { ++n; });
    if (d.received || d.parse_errors || d.enobufs) last = Clock::now();
  }
  return n;
}

// What the rules in table dbtest counted, read over netlink.
std::uint64_t counted() {
  auto sock = NetlinkSocket::open();
  EXPECT_TRUE(sock.ok());
  if (!sock.ok()) return 0;
  auto rules = sock->read_rules("dbtest");
  EXPECT_TRUE(rules.ok()) << (rules.ok() ? "" : rules.error().message);
  std::uint64_t n = 0;
  if (rules.ok()) {
    for (const auto& r : *rules) n += r.packets;
  }
  return n;
}

std::string text(const Address& a) {
  return a.str();
}

TEST(NflogReader, DeliversEveryLoggedSynWithItsFields) {
  in_fresh_netns([] {
    const Lab lab = make_lab();
    auto reader = NflogReader::open(kGroup);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    Injector inject(lab.peer_index);
    constexpr int kN = 200;
    const auto before = std::chrono::system_clock::now();
    for (int i = 0; i < kN; ++i)
      ASSERT_TRUE(inject.send(syn_v4(static_cast<std::uint16_t>(40000 + i))));
    const auto got = collect(*reader, kN);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kN));
    EXPECT_EQ(drain(*reader), 0u) << "more packets than were sent";
    for (int i = 0; i < kN; ++i) {
      const auto& p = got[static_cast<std::size_t>(i)];
      EXPECT_EQ(p.prefix, kGuardPrefix);
      EXPECT_EQ(text(p.flow.source), "203.0.113.7");
      EXPECT_EQ(text(p.flow.destination), "10.0.0.1");
      EXPECT_EQ(p.flow.protocol, 6);
      EXPECT_EQ(p.flow.source_port, 40000 + i) << "packets arrive in the order they were logged";
      EXPECT_EQ(p.flow.destination_port, 9);
      EXPECT_EQ(p.flow.tcp_flags, "SYN");
      EXPECT_EQ(p.flow.in_interface, "gw0");
      EXPECT_EQ(p.in_ifindex, lab.gw_index);
      EXPECT_EQ(p.flow.out_interface, "");
      EXPECT_EQ(p.hook, NF_INET_LOCAL_IN);
      EXPECT_EQ(p.group, kGroup);
      EXPECT_EQ(p.length, 44u);
      ASSERT_TRUE(p.seq.has_value());
      EXPECT_EQ(*p.seq, static_cast<std::uint32_t>(i)) << "a new instance numbers from 0";
      ASSERT_TRUE(p.seq_global.has_value());
      ASSERT_TRUE(p.kernel_time.has_value());
      EXPECT_GE(*p.kernel_time,
                std::chrono::floor<std::chrono::milliseconds>(before) - std::chrono::seconds(1));
      EXPECT_LE(*p.kernel_time,
                std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()));
    }
    EXPECT_EQ(reader->totals().received, static_cast<std::uint64_t>(kN));
    EXPECT_EQ(reader->totals().seq_lost, 0u);
    EXPECT_EQ(reader->totals().parse_errors, 0u);
    EXPECT_EQ(reader->totals().enobufs, 0u);
    EXPECT_EQ(counted(), static_cast<std::uint64_t>(kN));
  });
}

// Real connections from real sockets over loopback: one SYN each (a socket closed in SYN-SENT
// sends nothing more), IPv4 and IPv6.
TEST(NflogReader, DeliversSynsOfRealLoopbackConnections) {
  in_fresh_netns([] {
    make_lab();
    auto reader = NflogReader::open(kGroup);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    constexpr int kPerFamily = 25;
    std::vector<std::uint16_t> ports;
    for (const bool v6 : {false, true}) {
      for (int i = 0; i < kPerFamily; ++i) {
        const int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ASSERT_GE(s, 0);
        int rc = 0;
        if (v6) {
          sockaddr_in6 to{};
          to.sin6_family = AF_INET6;
          to.sin6_port = htons(9);
          to.sin6_addr = in6addr_loopback;
          rc = connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to);
        } else {
          sockaddr_in to{};
          to.sin_family = AF_INET;
          to.sin_port = htons(9);
          to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          rc = connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof to);
        }
        EXPECT_TRUE(rc < 0 && errno == EINPROGRESS) << std::strerror(errno);
        sockaddr_storage me{};
        socklen_t len = sizeof me;
        getsockname(s, reinterpret_cast<sockaddr*>(&me), &len);
        ports.push_back(v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&me)->sin6_port)
                           : ntohs(reinterpret_cast<sockaddr_in*>(&me)->sin_port));
        close(s);
      }
    }
    const auto got = collect(*reader, ports.size());
    ASSERT_EQ(got.size(), ports.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      const bool v6 = i >= static_cast<std::size_t>(kPerFamily);
      EXPECT_EQ(got[i].prefix, kGuardPrefix);
      EXPECT_EQ(text(got[i].flow.source), v6 ? "::1" : "127.0.0.1");
      EXPECT_EQ(text(got[i].flow.destination), v6 ? "::1" : "127.0.0.1");
      EXPECT_EQ(got[i].flow.source_port, ports[i]);
      EXPECT_EQ(got[i].flow.destination_port, 9);
      EXPECT_EQ(got[i].flow.tcp_flags, "SYN");
      EXPECT_EQ(got[i].flow.in_interface, "lo");
      EXPECT_EQ(got[i].seq, static_cast<std::uint32_t>(i));
    }
    EXPECT_EQ(drain(*reader), 0u);
    EXPECT_EQ(reader->totals().seq_lost, 0u);
    EXPECT_EQ(counted(), ports.size());
  });
}

struct Kind {
  const char* name;  // fixture file name
  Bytes packet;
  std::string prefix;
  std::string source, destination;
  std::uint8_t protocol;
  std::uint16_t sport, dport;
  std::string flags;
  std::optional<std::uint8_t> icmp_type;
  std::uint32_t length;
};

std::vector<Kind> kinds() {
  const auto s4 = addr(AF_INET, "203.0.113.7"), d4 = addr(AF_INET, "10.0.0.1");
  const auto s6 = addr(AF_INET6, "2001:db8:99::7"), d6 = addr(AF_INET6, "2001:db8:1::1");
  return {
      {"ipv4_tcp_syn",
       ipv4(s4, d4, 6, tcp(s4, d4, 40001, 9, kSyn)),
       kGuardPrefix,
       "203.0.113.7",
       "10.0.0.1",
       6,
       40001,
       9,
       "SYN",
       {},
       44},
      {"ipv4_tcp_synack",
       ipv4(s4, d4, 6, tcp(s4, d4, 3389, 3389, kSyn | kAck)),
       "drawbridge:outside-window:link/rdp",
       "203.0.113.7",
       "10.0.0.1",
       6,
       3389,
       3389,
       "SYN,ACK",
       {},
       44},
      {"ipv4_udp",
       ipv4(s4, d4, 17, udp(s4, d4, 51515, 1194)),
       "drawbridge:unapproved-source:link/vpn",
       "203.0.113.7",
       "10.0.0.1",
       17,
       51515,
       1194,
       "",
       {},
       40},
      {"ipv6_tcp_syn",
       ipv6(s6, d6, 6, tcp(s6, d6, 40002, 3389, kSyn)),
       "drawbridge:outside-window:link/rdp",
       "2001:db8:99::7",
       "2001:db8:1::1",
       6,
       40002,
       3389,
       "SYN",
       {},
       64},
      {"ipv4_icmp_echo", ipv4(s4, d4, 1, echo_request(false, s4, d4)),
       "drawbridge:unapproved-host:provider/acme", "203.0.113.7", "10.0.0.1", 1, 0, 0, "", 8, 44},
      {"ipv6_icmpv6_echo", ipv6(s6, d6, 58, echo_request(true, s6, d6)),
       "drawbridge:unapproved-host:provider/acme", "2001:db8:99::7", "2001:db8:1::1", 58, 0, 0, "",
       128, 64},
  };
}

// One of each kind of packet the enforcer logs; their messages are the unit tests' fixtures.
TEST(NflogReader, EachKindOfPacketIsParsedAsSent) {
  in_fresh_netns([] {
    const Lab lab = make_lab();
    auto reader = NflogReader::open(kGroup);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    Injector inject(lab.peer_index);
    const char* capture_dir = std::getenv("DRAWBRIDGE_NFLOG_CAPTURE_DIR");
    if (capture_dir) {
      std::printf("capture netns: lo=%u peer0=%u gw0=%u\n", if_nametoindex("lo"), lab.peer_index,
                  lab.gw_index);
    }
    for (const auto& k : kinds()) {
      SCOPED_TRACE(k.name);
      ASSERT_TRUE(inject.send(k.packet));
      std::vector<Bytes> raw;
      const auto got = collect(*reader, 1, std::chrono::seconds(5), &raw);
      ASSERT_EQ(got.size(), 1u);
      ASSERT_EQ(raw.size(), 1u);
      const auto& p = got[0];
      EXPECT_EQ(p.prefix, k.prefix);
      EXPECT_EQ(text(p.flow.source), k.source);
      EXPECT_EQ(text(p.flow.destination), k.destination);
      EXPECT_EQ(p.flow.protocol, k.protocol);
      EXPECT_EQ(p.flow.source_port, k.sport);
      EXPECT_EQ(p.flow.destination_port, k.dport);
      EXPECT_EQ(p.flow.tcp_flags, k.flags);
      EXPECT_EQ(p.flow.icmp_type, k.icmp_type);
      if (k.icmp_type) {
        EXPECT_EQ(p.flow.icmp_code, std::optional<std::uint8_t>(0));
      } else {
        EXPECT_FALSE(p.flow.icmp_code.has_value());
      }
      EXPECT_EQ(p.flow.in_interface, "gw0");
      EXPECT_EQ(p.length, k.length);
      EXPECT_EQ(p.length, k.packet.size());
      if (capture_dir) {
        const std::string path = std::string(capture_dir) + "/" + k.name + ".bin";
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(raw[0].data()),
                  static_cast<std::streamsize>(raw[0].size()));
        ASSERT_TRUE(out.good()) << path;
        std::printf("%s: %zu bytes, seq %u, seq_global %u, time %lld ms\n", path.c_str(),
                    raw[0].size(), p.seq.value_or(0), p.seq_global.value_or(0),
                    static_cast<long long>(p.kernel_time->time_since_epoch().count()));
      }
    }
    EXPECT_EQ(reader->totals().seq_lost, 0u);
    EXPECT_EQ(reader->totals().parse_errors, 0u);
  });
}

// A burst far beyond a 4 KiB receive buffer: most of it is lost, and the sequence numbers say
// exactly how much. The last datagram's loss shows only with a later packet, hence the sentinel.
TEST(NflogReader, BurstIntoATinyBufferLeavesNoUnaccountedLoss) {
  in_fresh_netns([] {
    const Lab lab = make_lab();
    auto reader = NflogReader::open(kGroup, 4096);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    Injector inject(lab.peer_index);
    constexpr int kBurst = 20000;
    for (int i = 0; i < kBurst; ++i) {
      ASSERT_TRUE(inject.send(syn_v4(static_cast<std::uint16_t>(1024 + i % 60000))));
      // Read now and then, as a busy daemon would: some of the burst gets through.
      if (i % 2000 == 1999) reader->read_available([](const LoggedPacket&) {});
    }
    drain(*reader);
    ASSERT_TRUE(inject.send(syn_v4(65000)));  // the sentinel
    drain(*reader);

    const auto& t = reader->totals();
    const std::uint64_t logged = counted();
    std::printf(
        "burst: %llu counted, %llu received, %llu lost by sequence, %llu ENOBUFS, %llu "
        "parse errors\n",
        static_cast<unsigned long long>(logged), static_cast<unsigned long long>(t.received),
        static_cast<unsigned long long>(t.seq_lost), static_cast<unsigned long long>(t.enobufs),
        static_cast<unsigned long long>(t.parse_errors));
    // Frames the veth backlog dropped never reached the rule; everything else it counted.
    EXPECT_LE(logged, static_cast<std::uint64_t>(kBurst + 1));
    EXPECT_GE(logged, static_cast<std::uint64_t>(kBurst / 2));
    EXPECT_EQ(t.received + t.seq_lost + t.parse_errors, logged) << "unaccounted loss";
    EXPECT_GT(t.seq_lost, 0u) << "a 4 KiB buffer cannot take 20,000 packets at once";
    EXPECT_GE(t.enobufs, 1u) << "the kernel reports the overflow";
    EXPECT_EQ(t.parse_errors, 0u);
  });
}

TEST(NflogReader, GroupIsExclusiveAndFreedOnDestruction) {
  in_fresh_netns([] {
    make_lab();
    {
      auto first = NflogReader::open(kGroup);
      ASSERT_TRUE(first.ok()) << first.error().message;
      auto second = NflogReader::open(kGroup);
      ASSERT_FALSE(second.ok());
      EXPECT_NE(second.error().message.find("already bound"), std::string::npos)
          << second.error().message;
      // Moving keeps the binding; the moved-from reader releases nothing.
      NflogReader moved = std::move(*first);
      EXPECT_FALSE(NflogReader::open(kGroup).ok());
    }
    auto again = NflogReader::open(kGroup);
    ASSERT_TRUE(again.ok()) << again.error().message;
  });
}

TEST(NflogReader, RefusesSettingsTheKernelWouldIgnore) {
  EXPECT_FALSE(NflogReader::open(kGroup, 1 << 20, 16).ok());
  EXPECT_FALSE(NflogReader::open(kGroup, 1 << 20, 128, NflogTuning{1 << 20, 40, 5}).ok());
  EXPECT_FALSE(NflogReader::open(kGroup, 1 << 20, 128, NflogTuning{16384, 0, 5}).ok());
}

// Throughput with the default 8 MiB buffer: a sender thread injects prebuilt frames as fast as
// it can while this thread reads. Reports the rates; the accounting must hold at any rate.
TEST(NflogReader, SustainedRateIsReportedAndAccounted) {
  in_fresh_netns([] {
    const Lab lab = make_lab();
    auto reader = NflogReader::open(kGroup);
    ASSERT_TRUE(reader.ok()) << reader.error().message;
    // One sender: on a two-core machine a second one would only take the reader's CPU.
    constexpr int kSenders = 1, kPerSender = 300000;
    std::vector<Bytes> frames;
    for (int i = 0; i < 1024; ++i) {
      frames.push_back(Injector::frame(syn_v4(static_cast<std::uint16_t>(1024 + i))));
    }
    std::atomic<int> running{kSenders};
    const auto start = Clock::now();
    std::vector<std::thread> senders;
    for (int s = 0; s < kSenders; ++s) {
      senders.emplace_back([&] {
        Injector inject(lab.peer_index);
        for (int i = 0; i < kPerSender; ++i) {
          if (!inject.send_frame(frames[static_cast<std::size_t>(i) % frames.size()])) break;
        }
        --running;
      });
    }
    while (running > 0) {
      pollfd pfd{reader->fd(), POLLIN, 0};
      poll(&pfd, 1, 10);
      reader->read_available([](const LoggedPacket&) {});
    }
    for (auto& t : senders) t.join();
    const auto sent_in = Clock::now() - start;
    drain(*reader);
    {
      Injector inject(lab.peer_index);
      ASSERT_TRUE(inject.send(syn_v4(65000)));  // the sentinel: shows a loss at the very end
    }
    drain(*reader);
    const auto& t = reader->totals();
    const std::uint64_t logged = counted();
    const double seconds = std::chrono::duration<double>(sent_in).count();
    std::printf(
        "sustained: %llu logged in %.2f s (%.0f/s offered), %llu received (%.0f/s), "
        "%llu lost, %llu ENOBUFS\n",
        static_cast<unsigned long long>(logged), seconds, static_cast<double>(logged) / seconds,
        static_cast<unsigned long long>(t.received), static_cast<double>(t.received) / seconds,
        static_cast<unsigned long long>(t.seq_lost), static_cast<unsigned long long>(t.enobufs));
    ::testing::Test::RecordProperty("logged_per_second",
                                    static_cast<int>(static_cast<double>(logged) / seconds));
    ::testing::Test::RecordProperty("received_per_second",
                                    static_cast<int>(static_cast<double>(t.received) / seconds));
    EXPECT_EQ(t.received + t.seq_lost + t.parse_errors, logged) << "unaccounted loss";
    EXPECT_EQ(t.parse_errors, 0u);
  });
}

}  // namespace
}  // namespace drawbridge
