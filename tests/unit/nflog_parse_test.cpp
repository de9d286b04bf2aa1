// NFLOG messages → LoggedPacket, from bytes the kernel really sent, and what the parser does with
// bytes it did not send (cut, flipped, garbage): an error, never a crash or a read past the
// message. Run it in the sanitizer build (-DDRAWBRIDGE_SANITIZE=address,undefined) too.
//
// The fixtures (fixtures/nflog/*.bin) are NFULNL_MSG_PACKET messages exactly as recv returned
// them, captured by the kernel test NflogReader.EachKindOfPacketIsParsedAsSent (see
// tests/kernel/nflog_reader_test.cpp for how to run it in capture mode): frames injected on a
// veth pair in a fresh network namespace, logged by `log group 77` rules of an inet table at the
// input hook. Interface indexes only have names inside that namespace, so the tests name them
// with the namespace's table as printed at capture time: lo=1, peer0=2, gw0=3.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "enforcer/soc/nflog_reader.h"

namespace drawbridge {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::string capture_namespace_names(std::uint32_t ifindex) {
  switch (ifindex) {
    case 1:
      return "lo";
    case 2:
      return "peer0";
    case 3:
      return "gw0";
    default:
      return std::to_string(ifindex);
  }
}

Bytes fixture(const std::string& name) {
  const std::string path =
      std::string(DRAWBRIDGE_SOURCE_DIR) + "/tests/unit/fixtures/nflog/" + name + ".bin";
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Parses exactly `bytes`, from a heap block of exactly that size, so that AddressSanitizer
// catches any read past it.
Result<LoggedPacket> parse(const Bytes& bytes) {
  auto block = std::make_unique<std::uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), block.get());
  return parse_nflog_message(block.get(), bytes.size(), capture_namespace_names);
}

std::uint32_t get_u32(const Bytes& b, std::size_t at) {
  std::uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
void set_u32(Bytes& b, std::size_t at, std::uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
}
void set_u16(Bytes& b, std::size_t at, std::uint16_t v) {
  std::memcpy(b.data() + at, &v, 2);
}

constexpr std::size_t kAttrsStart = NLMSG_HDRLEN + 4;

// Offset of the attribute of `type` (its header) in a well-formed message.
std::size_t attr_offset(const Bytes& b, std::uint16_t type) {
  std::size_t off = kAttrsStart;
  while (off + 4 <= b.size()) {
    std::uint16_t len, t;
    std::memcpy(&len, b.data() + off, 2);
    std::memcpy(&t, b.data() + off + 2, 2);
    if ((t & NLA_TYPE_MASK) == type) return off;
    off += NLA_ALIGN(len);
  }
  ADD_FAILURE() << "no attribute " << type;
  return 0;
}

struct Expected {
  const char* name;
  std::string prefix, source, destination;
  std::uint8_t protocol;
  std::uint16_t sport, dport;
  std::string flags;
  std::optional<std::uint8_t> icmp_type, icmp_code;
  std::int64_t time_ms;
  std::uint32_t seq, seq_global, length;
};

// What was sent (tests/kernel/nflog_reader_test.cpp, kinds()) and what the kernel added: times
// and sequence numbers as printed at capture.
const std::vector<Expected>& expected() {
  static const std::vector<Expected> e = {
      {"ipv4_tcp_syn",
       "drawbridge:unapproved-port:guard",
       "203.0.113.7",
       "10.0.0.1",
       6,
       40001,
       9,
       "SYN",
       {},
       {},
       1795581803948,
       0,
       1,
       44},
      {"ipv4_tcp_synack",
       "drawbridge:outside-window:link/rdp",
       "203.0.113.7",
       "10.0.0.1",
       6,
       3389,
       3389,
       "SYN,ACK",
       {},
       {},
       1795581804001,
       1,
       2,
       44},
      {"ipv4_udp",
       "drawbridge:unapproved-source:link/vpn",
       "203.0.113.7",
       "10.0.0.1",
       17,
       51515,
       1194,
       "",
       {},
       {},
       1795581804057,
       2,
       3,
       40},
      {"ipv6_tcp_syn",
       "drawbridge:outside-window:link/rdp",
       "2001:db8:99::7",
       "2001:db8:1::1",
       6,
       40002,
       3389,
       "SYN",
       {},
       {},
       1795581804109,
       3,
       4,
       64},
      {"ipv4_icmp_echo", "drawbridge:unapproved-host:provider/acme", "203.0.113.7", "10.0.0.1", 1,
       0, 0, "", 8, 0, 1795581804161, 4, 5, 44},
      {"ipv6_icmpv6_echo", "drawbridge:unapproved-host:provider/acme", "2001:db8:99::7",
       "2001:db8:1::1", 58, 0, 0, "", 128, 0, 1795581804213, 5, 6, 64},
  };
  return e;
}

TEST(NflogParse, CapturedMessagesGiveExactlyWhatWasSent) {
  for (const auto& e : expected()) {
    SCOPED_TRACE(e.name);
    const Bytes bytes = fixture(e.name);
    ASSERT_FALSE(bytes.empty());
    auto r = parse(bytes);
    ASSERT_TRUE(r.ok()) << r.error().message;
    const LoggedPacket& p = *r;
    EXPECT_EQ(p.prefix, e.prefix);
    EXPECT_EQ(p.flow.source.str(), e.source);
    EXPECT_EQ(p.flow.destination.str(), e.destination);
    EXPECT_EQ(p.flow.protocol, e.protocol);
    EXPECT_EQ(p.flow.source_port, e.sport);
    EXPECT_EQ(p.flow.destination_port, e.dport);
    EXPECT_EQ(p.flow.tcp_flags, e.flags);
    EXPECT_EQ(p.flow.icmp_type, e.icmp_type);
    EXPECT_EQ(p.flow.icmp_code, e.icmp_code);
    EXPECT_EQ(p.flow.in_interface, "gw0");
    EXPECT_EQ(p.flow.out_interface, "");
    EXPECT_EQ(p.flow.direction, Flow{}.direction) << "direction is the attribution's job";
    EXPECT_EQ(p.in_ifindex, 3u);
    EXPECT_EQ(p.out_ifindex, 0u);
    ASSERT_TRUE(p.kernel_time.has_value());
    EXPECT_EQ(p.kernel_time->time_since_epoch().count(), e.time_ms);
    EXPECT_EQ(p.seq, e.seq);
    EXPECT_EQ(p.seq_global, e.seq_global);
    EXPECT_EQ(p.length, e.length);
    EXPECT_EQ(p.group, 77);
    EXPECT_EQ(p.hook, NF_INET_LOCAL_IN);
  }
}

TEST(NflogParse, InterfaceNamesComeFromTheNamer) {
  const Bytes bytes = fixture("ipv4_tcp_syn");
  auto r = parse_nflog_message(bytes.data(), bytes.size(),
                               [](std::uint32_t i) { return "if" + std::to_string(i); });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->flow.in_interface, "if3");
  // The default namer asks the kernel of the current namespace; index 3 may name anything
  // here, but a name it always gives, even for an index no interface has.
  auto k = parse_nflog_packet(reinterpret_cast<const nlmsghdr*>(bytes.data()));
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->flow.in_interface.empty());
  EXPECT_EQ(kernel_interface_name(0x7fffff00u), std::to_string(0x7fffff00u));
}

// A message cut anywhere is refused: with its original length in the header (the bytes are not
// all there) and with the header saying the shorter length (attributes cut off).
TEST(NflogParse, CutMessagesAreRefusedAtEveryLength) {
  for (const auto& e : expected()) {
    SCOPED_TRACE(e.name);
    const Bytes whole = fixture(e.name);
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
      SCOPED_TRACE(cut);
      Bytes part(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
      EXPECT_FALSE(parse(part).ok());
      if (cut >= sizeof(nlmsghdr)) {
        set_u32(part, 0, static_cast<std::uint32_t>(cut));
        auto r = parse(part);
        EXPECT_FALSE(r.ok());
      }
    }
  }
}

TEST(NflogParse, CutMessagesSayWhatIsMissing) {
  const Bytes whole = fixture("ipv4_tcp_syn");
  Bytes part(whole.begin(), whole.end() - 10);  // inside the payload
  set_u32(part, 0, static_cast<std::uint32_t>(part.size()));
  auto r = parse(part);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("truncated attribute NFULA_PAYLOAD"), std::string::npos)
      << r.error().message;

  auto t = parse(Bytes(whole.begin(), whole.end() - 1));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("truncated message"), std::string::npos) << t.error().message;

  // Cut right after the sequence numbers: everything but the payload is there.
  Bytes no_payload(whole.begin(),
                   whole.begin() + static_cast<std::ptrdiff_t>(attr_offset(whole, NFULA_PAYLOAD)));
  set_u32(no_payload, 0, static_cast<std::uint32_t>(no_payload.size()));
  auto n = parse(no_payload);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message.find("no packet payload"), std::string::npos) << n.error().message;
}

// Every byte flipped in several ways: whatever comes out, nothing reads outside the message.
TEST(NflogParse, FlippedBytesNeverCrash) {
  std::size_t refused = 0, total = 0;
  for (const auto& e : expected()) {
    const Bytes whole = fixture(e.name);
    for (std::size_t i = 0; i < whole.size(); ++i) {
      for (const std::uint8_t mask : {0x01, 0x80, 0xff, 0x0f, 0x40}) {
        Bytes b = whole;
        b[i] ^= mask;
        auto r = parse(b);
        ++total;
        if (!r.ok()) {
          ++refused;
          EXPECT_FALSE(r.error().message.empty());
        }
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_LT(refused, total);
}

TEST(NflogParse, RandomBytesNeverCrash) {
  std::mt19937 rng(20261125);
  const Bytes base = fixture("ipv6_tcp_syn");
  for (int round = 0; round < 20000; ++round) {
    Bytes b;
    if (round % 2) {
      // Random garbage behind a plausible header: length and type of a packet message.
      b.resize(16 + rng() % 300);
      for (auto& x : b) x = static_cast<std::uint8_t>(rng());
      set_u32(b, 0, static_cast<std::uint32_t>(b.size()));
      set_u16(b, 4, static_cast<std::uint16_t>((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET));
      if (b.size() > 20) b[17] = 0;  // version
    } else {
      // A real message with a few random bytes overwritten.
      b = base;
      for (int k = 0; k < 4; ++k) b[rng() % b.size()] = static_cast<std::uint8_t>(rng());
    }
    (void)parse(b);
  }
}

TEST(NflogParse, PreciseErrors) {
  const Bytes syn = fixture("ipv4_tcp_syn");
  const std::size_t payload = attr_offset(syn, NFULA_PAYLOAD) + 4;
  const auto error_of = [](const Bytes& b) {
    auto r = parse(b);
    return r.ok() ? std::string("(parsed)") : r.error().message;
  };

  {  // neither nfgen_family nor hw_protocol says IPv4 or IPv6 (a bridge table's ARP packet)
    Bytes b = syn;
    b[NLMSG_HDRLEN] = NFPROTO_BRIDGE;
    const std::size_t hdr = attr_offset(b, NFULA_PACKET_HDR) + 4;
    b[hdr] = 0x08, b[hdr + 1] = 0x06;
    EXPECT_NE(error_of(b).find("unknown family: nfgen_family 7, hw_protocol 0x0806"),
              std::string::npos)
        << error_of(b);
  }
  {  // the IHL claims 60 bytes of a 84-byte packet; 44 were captured
    Bytes b = syn;
    b[payload] = 0x4f;
    b[payload + 3] = 84;
    EXPECT_NE(error_of(b).find("payload too short for the IPv4 header (with options): it needs "
                               "60 bytes at offset 0, but the capture has 44 bytes"),
              std::string::npos)
        << error_of(b);
    b[payload + 3] = 44;
    EXPECT_NE(error_of(b).find("total length 44 is shorter than its header length 60"),
              std::string::npos)
        << error_of(b);
  }
  {  // the family says IPv4, the payload is IPv6
    Bytes b = syn;
    b[payload] = 0x65;
    EXPECT_NE(error_of(b).find("IP version 6"), std::string::npos) << error_of(b);
  }
  {  // the total length says the packet ends inside the TCP header
    Bytes b = syn;
    b[payload + 2] = 0, b[payload + 3] = 30;
    EXPECT_NE(error_of(b).find("TCP header: it needs 20 bytes at offset 20, but the packet is 30"),
              std::string::npos)
        << error_of(b);
  }
  {  // the capture (copy range) ends inside the TCP header of a longer packet
    Bytes b = syn;
    const std::size_t attr = payload - 4;
    std::uint16_t len = 4 + 30;
    std::memcpy(b.data() + attr, &len, 2);
    b.resize(attr + 4 + 32);
    set_u32(b, 0, static_cast<std::uint32_t>(b.size()));
    EXPECT_NE(error_of(b).find("capture has 30 bytes (raise the copy range)"), std::string::npos)
        << error_of(b);
  }
  {  // an attribute longer than what is left of the message
    Bytes b = syn;
    const std::size_t seq = attr_offset(b, NFULA_SEQ);
    const std::uint16_t len = 0x4000;
    std::memcpy(b.data() + seq, &len, 2);
    EXPECT_NE(error_of(b).find("truncated attribute NFULA_SEQ (12)"), std::string::npos)
        << error_of(b);
  }
  {  // the same attribute twice
    Bytes b = syn;
    const std::size_t seq = attr_offset(b, NFULA_SEQ);
    b[seq + 2] = NFULA_SEQ_GLOBAL;
    EXPECT_NE(error_of(b).find("NFULA_SEQ_GLOBAL (13) appears twice"), std::string::npos)
        << error_of(b);
  }
  {  // a prefix without its NUL
    Bytes b = syn;
    const std::size_t prefix = attr_offset(b, NFULA_PREFIX);
    std::uint16_t len;
    std::memcpy(&len, b.data() + prefix, 2);
    b[prefix + len - 1] = 'x';
    EXPECT_NE(error_of(b).find("not NUL-terminated"), std::string::npos) << error_of(b);
  }
  {  // not a packet message
    Bytes b = syn;
    set_u16(b, 4, static_cast<std::uint16_t>((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG));
    EXPECT_NE(error_of(b).find("not an NFLOG packet message (type 0x0401)"), std::string::npos)
        << error_of(b);
  }
  {  // a timestamp no clock gives
    Bytes b = syn;
    const std::size_t ts = attr_offset(b, NFULA_TIMESTAMP) + 4;
    b[ts + 8] = 0xff;
    EXPECT_NE(error_of(b).find("garbled timestamp"), std::string::npos) << error_of(b);
  }
  {  // an attribute shorter than what its type holds
    Bytes b = syn;
    const std::size_t in = attr_offset(b, NFULA_IFINDEX_INDEV);
    const std::uint16_t len = 4 + 2;
    std::memcpy(b.data() + in, &len, 2);
    EXPECT_NE(error_of(b).find("NFULA_IFINDEX_INDEV (4) has 2 bytes, 4 expected"),
              std::string::npos)
        << error_of(b);
  }
  EXPECT_EQ(get_u32(syn, 0), syn.size());
}

// Sized once and copied into: GCC 12 warns falsely (-Warray-bounds) on insert at -O2.
Bytes cat(const Bytes& a, const Bytes& b) {
  Bytes out(a.size() + b.size());
  std::copy(a.begin(), a.end(), out.begin());
  std::copy(b.begin(), b.end(), out.begin() + static_cast<std::ptrdiff_t>(a.size()));
  return out;
}

// Messages built here for what the captures do not cover: extension headers, fragments, other
// families, every TCP flag.
class Message {
 public:
  Message(std::uint8_t family, std::uint16_t hw_protocol) : bytes_(kAttrsStart, 0) {
    set_u16(bytes_, 4, static_cast<std::uint16_t>((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET));
    bytes_[NLMSG_HDRLEN] = family;
    bytes_[NLMSG_HDRLEN + 2] = 0, bytes_[NLMSG_HDRLEN + 3] = 5;  // group 5
    const std::uint8_t hdr[4] = {static_cast<std::uint8_t>(hw_protocol >> 8),
                                 static_cast<std::uint8_t>(hw_protocol), NF_INET_FORWARD, 0};
    attr(NFULA_PACKET_HDR, Bytes(hdr, hdr + 4));
    const char prefix[] = "drawbridge:unapproved-host:provider/acme";
    attr(NFULA_PREFIX, Bytes(prefix, prefix + sizeof prefix));
    const std::uint8_t out[4] = {0, 0, 0, 9};
    attr(NFULA_IFINDEX_OUTDEV, Bytes(out, out + 4));
  }
  Message& attr(std::uint16_t type, const Bytes& data) {
    const std::size_t at = bytes_.size();
    bytes_ = cat(bytes_, Bytes(NLA_ALIGN(4 + data.size()), 0));  // not resize: see cat()
    set_u16(bytes_, at, static_cast<std::uint16_t>(4 + data.size()));
    set_u16(bytes_, at + 2, type);
    std::memcpy(bytes_.data() + at + 4, data.data(), data.size());
    set_u32(bytes_, 0, static_cast<std::uint32_t>(bytes_.size()));
    return *this;
  }
  Message& payload(const Bytes& p) { return attr(NFULA_PAYLOAD, p); }
  [[nodiscard]] const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

Bytes ipv6_header(std::uint8_t next, std::size_t payload_len) {
  Bytes p(40, 0);
  p[0] = 0x60;
  p[4] = static_cast<std::uint8_t>(payload_len >> 8), p[5] = static_cast<std::uint8_t>(payload_len);
  p[6] = next;
  p[7] = 64;
  inet_pton(AF_INET6, "2001:db8:100::5", p.data() + 8);
  inet_pton(AF_INET6, "2001:db8:20::10", p.data() + 24);
  return p;
}

Bytes tcp_header(std::uint16_t sport, std::uint16_t dport, std::uint8_t flags) {
  Bytes t(20, 0);
  t[0] = static_cast<std::uint8_t>(sport >> 8), t[1] = static_cast<std::uint8_t>(sport);
  t[2] = static_cast<std::uint8_t>(dport >> 8), t[3] = static_cast<std::uint8_t>(dport);
  t[12] = 5 << 4;
  t[13] = flags;
  return t;
}

Bytes ipv4_header(std::uint8_t proto, std::size_t total, std::uint16_t frag = 0) {
  Bytes p(20, 0);
  p[0] = 0x45;
  p[2] = static_cast<std::uint8_t>(total >> 8), p[3] = static_cast<std::uint8_t>(total);
  p[6] = static_cast<std::uint8_t>(frag >> 8), p[7] = static_cast<std::uint8_t>(frag);
  p[8] = 64;
  p[9] = proto;
  const std::uint8_t s[4] = {203, 0, 113, 9}, d[4] = {10, 20, 0, 10};
  std::memcpy(p.data() + 12, s, 4);
  std::memcpy(p.data() + 16, d, 4);
  return p;
}

TEST(NflogParse, Ipv6ExtensionHeadersAreWalkedToTheTransport) {
  // hop-by-hop (8 bytes) → destination options (16 bytes) → first fragment → TCP
  Bytes hbh(8, 0), dst(16, 0), frag(8, 0);
  hbh[0] = 60, hbh[1] = 0;
  dst[0] = 44, dst[1] = 1;
  frag[0] = 6, frag[3] = 1;  // offset 0, more fragments
  const Bytes l4 = tcp_header(51000, 3389, 0x02);
  const Bytes ext = cat(cat(hbh, dst), frag);
  const Bytes packet = cat(cat(ipv6_header(0, ext.size() + l4.size()), ext), l4);
  auto r = parse(Message(AF_INET6, 0x86dd).payload(packet).bytes());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->flow.protocol, 6);
  EXPECT_EQ(r->flow.source_port, 51000);
  EXPECT_EQ(r->flow.destination_port, 3389);
  EXPECT_EQ(r->flow.tcp_flags, "SYN");
  EXPECT_EQ(r->length, packet.size());
  EXPECT_EQ(r->flow.out_interface, "9");
  EXPECT_EQ(r->out_ifindex, 9u);
  EXPECT_EQ(r->group, 5);
  EXPECT_EQ(r->hook, NF_INET_FORWARD);
  EXPECT_FALSE(r->seq.has_value());
  EXPECT_FALSE(r->kernel_time.has_value());

  // A later fragment has no transport header: protocol known, no ports, not an error.
  Bytes later = frag;
  later[2] = 0x05, later[3] = 0xa8;  // offset 181 * 8
  const Bytes data(32, 0xab);
  const Bytes fragment = cat(cat(ipv6_header(44, 8 + data.size()), later), data);
  auto f = parse(Message(AF_INET6, 0x86dd).payload(fragment).bytes());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->flow.protocol, 6);
  EXPECT_EQ(f->flow.source_port, 0);
  EXPECT_EQ(f->flow.tcp_flags, "");

  // An extension header that claims more than the packet holds.
  Bytes long_dst = dst;
  long_dst[1] = 30;
  const Bytes bad = cat(cat(ipv6_header(60, 16 + l4.size()), long_dst), l4);
  auto b = parse(Message(AF_INET6, 0x86dd).payload(bad).bytes());
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("IPv6 destination options header"), std::string::npos)
      << b.error().message;

  // A chain no real packet has.
  Bytes chain = ipv6_header(60, 17 * 8);
  for (int i = 0; i < 17; ++i) {
    Bytes opt(8, 0);
    opt[0] = 60;
    chain = cat(chain, opt);
  }
  auto c = parse(Message(AF_INET6, 0x86dd).payload(chain).bytes());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("more than 16 IPv6 extension headers"), std::string::npos);
}

TEST(NflogParse, Ipv4FragmentsOptionsAndGso) {
  const Bytes l4 = tcp_header(40000, 22, 0x02);
  // Options (IHL 6) move the transport header.
  Bytes with_options = cat(ipv4_header(6, 24 + l4.size()), Bytes{1, 1, 1, 0});
  with_options[0] = 0x46;
  auto o = parse(Message(AF_INET, 0x0800).payload(cat(with_options, l4)).bytes());
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->flow.destination_port, 22);

  // A later fragment: no ports.
  const Bytes frag = cat(ipv4_header(6, 20 + 16, 0x00b9), Bytes(16, 0xcd));
  auto f = parse(Message(AF_INET, 0x0800).payload(frag).bytes());
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f->flow.protocol, 6);
  EXPECT_EQ(f->flow.destination_port, 0);
  EXPECT_EQ(f->flow.source.str(), "203.0.113.9");
  EXPECT_EQ(f->flow.destination.str(), "10.20.0.10");

  // A GSO aggregate says total length 0: length unknown, fields still read.
  auto g = parse(Message(AF_INET, 0x0800).payload(cat(ipv4_header(6, 0), l4)).bytes());
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_EQ(g->length, 0u);
  EXPECT_EQ(g->flow.destination_port, 22);

  // A total length shorter than the header itself.
  auto s = parse(Message(AF_INET, 0x0800).payload(cat(ipv4_header(6, 12), l4)).bytes());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("total length 12 is shorter than its header"),
            std::string::npos);

  // A protocol without ports we read.
  auto gre = parse(Message(AF_INET, 0x0800).payload(ipv4_header(47, 20)).bytes());
  ASSERT_TRUE(gre.ok()) << gre.error().message;
  EXPECT_EQ(gre->flow.protocol, 47);
  EXPECT_EQ(gre->flow.source_port, 0);
}

TEST(NflogParse, BridgeAndNetdevTablesAreReadByTheLinkLayerProtocol) {
  const Bytes packet = cat(ipv4_header(17, 28), Bytes{0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0});
  auto r = parse(Message(NFPROTO_BRIDGE, 0x0800).payload(packet).bytes());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->flow.protocol, 17);
  EXPECT_EQ(r->flow.source_port, 1234);
  EXPECT_EQ(r->flow.destination_port, 53);
  EXPECT_EQ(r->flow.tcp_flags, "");

  auto none = parse(Message(NFPROTO_NETDEV, 0x0806).payload(packet).bytes());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("unknown family"), std::string::npos);
}

TEST(NflogParse, TcpFlagsAreNamedInHeaderBitOrder) {
  const auto flags_of = [](std::uint8_t f) {
    const Bytes l4 = tcp_header(1, 2, f);
    auto r = parse(Message(AF_INET, 0x0800).payload(cat(ipv4_header(6, 40), l4)).bytes());
    return r.ok() ? r->flow.tcp_flags : r.error().message;
  };
  EXPECT_EQ(flags_of(0x02), "SYN");
  EXPECT_EQ(flags_of(0x12), "SYN,ACK");
  EXPECT_EQ(flags_of(0x14), "RST,ACK");
  EXPECT_EQ(flags_of(0x11), "FIN,ACK");
  EXPECT_EQ(flags_of(0xff), "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR");
  EXPECT_EQ(flags_of(0x00), "NONE") << "a null scan is not 'not TCP'";
}

TEST(NflogParse, MessagesWithoutPrefixOrPayload) {
  // No prefix attribute (a `log group` without prefix): empty prefix, not an error.
  Bytes no_prefix = fixture("ipv4_udp");
  const std::size_t at = attr_offset(no_prefix, NFULA_PREFIX);
  std::uint16_t len;
  std::memcpy(&len, no_prefix.data() + at, 2);
  no_prefix.erase(no_prefix.begin() + static_cast<std::ptrdiff_t>(at),
                  no_prefix.begin() + static_cast<std::ptrdiff_t>(at + NLA_ALIGN(len)));
  set_u32(no_prefix, 0, static_cast<std::uint32_t>(no_prefix.size()));
  auto r = parse(no_prefix);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->prefix, "");
  EXPECT_EQ(r->flow.destination_port, 1194);

  // Copy mode "meta": no payload, nothing to attribute.
  auto m = parse(Message(AF_INET, 0x0800).bytes());
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("copy-packet mode"), std::string::npos);
}

TEST(SequenceTracker, InOrderLosesNothing) {
  SequenceTracker t;
  for (std::uint32_t s = 0; s < 1000; ++s) EXPECT_EQ(t.observe(s), 0u);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.epochs(), 1u);
}

TEST(SequenceTracker, GapsCountThePacketsInThem) {
  SequenceTracker t;
  EXPECT_EQ(t.observe(10), 0u) << "the first number starts an epoch";
  EXPECT_EQ(t.observe(11), 0u);
  EXPECT_EQ(t.observe(15), 3u);  // 12, 13, 14
  EXPECT_EQ(t.observe(16), 0u);
  EXPECT_EQ(t.observe(1016), 999u);
  EXPECT_EQ(t.lost(), 1002u);
}

TEST(SequenceTracker, WrapsAroundAt2To32) {
  SequenceTracker t;
  EXPECT_EQ(t.observe(0xfffffffeu), 0u);
  EXPECT_EQ(t.observe(0xffffffffu), 0u);
  EXPECT_EQ(t.observe(0), 0u);
  EXPECT_EQ(t.observe(1), 0u);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.observe(0xfffffffdu), 0u) << "a jump back starts a new epoch";
  EXPECT_EQ(t.observe(2), 4u);  // 0xfffffffe, 0xffffffff, 0, 1
  EXPECT_EQ(t.lost(), 4u);
  EXPECT_EQ(t.epochs(), 2u);
  // The largest gap still counted as loss, and the smallest that is not.
  SequenceTracker u;
  u.observe(0);
  EXPECT_EQ(u.observe(0x80000000u), 0x7fffffffu);
  SequenceTracker v;
  v.observe(0);
  EXPECT_EQ(v.observe(0x80000001u), 0u);
  EXPECT_EQ(v.epochs(), 2u);
}

TEST(SequenceTracker, ResetStartsANewEpochAndKeepsTheLossCount) {
  SequenceTracker t;
  t.observe(0);
  t.observe(5);  // 4 lost
  t.reset();
  EXPECT_EQ(t.observe(0), 0u) << "after a rebind the kernel numbers from 0 again";
  EXPECT_EQ(t.observe(1), 0u);
  EXPECT_EQ(t.lost(), 4u);
  EXPECT_EQ(t.epochs(), 2u);
  EXPECT_EQ(t.observe(1), 0u) << "a repeat is a new epoch, not 2^32 - 1 losses";
  EXPECT_EQ(t.lost(), 4u);
}

}  // namespace
}  // namespace drawbridge
