#include "enforcer/soc/nflog_reader.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>

namespace drawbridge {

namespace {

constexpr std::uint16_t kPacketType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
constexpr std::uint16_t kConfigType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
constexpr std::size_t kHeaders = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));

constexpr std::uint16_t kEthIpv4 = 0x0800, kEthIpv6 = 0x86DD;
constexpr std::uint8_t kIcmp = 1, kTcp = 6, kUdp = 17, kIcmpv6 = 58;

// The largest datagram the kernel sends: an NFLOG buffer is at most 128 KiB (nlbufsiz), or one
// message when a single packet does not fit it (copy range at most 64 KiB).
constexpr std::size_t kRecvBuffer = 128 * 1024 + 8 * 1024;
// Datagrams per read_available call: ~40 packets each, so a call handles a few 10k packets
// and returns, and a flood cannot keep the caller's event loop from its timers.
constexpr int kDatagramsPerCall = 1024;

std::string errno_text(int err) {
  return std::strerror(err);
}

// Byte by byte (and headers with memcpy): a message need not be aligned, and payload fields
// never are.
std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
std::uint64_t be64(const std::uint8_t* p) {
  return std::uint64_t{be32(p)} << 32 | be32(p + 4);
}

const char* attr_name(std::uint16_t type) {
  static constexpr std::array<const char*, NFULA_MAX + 1> kNames = {
      "UNSPEC",    "PACKET_HDR", "MARK",   "TIMESTAMP", "IFINDEX_INDEV", "IFINDEX_OUTDEV",
      "PHYSINDEV", "PHYSOUTDEV", "HWADDR", "PAYLOAD",   "PREFIX",        "UID",
      "SEQ",       "SEQ_GLOBAL", "GID",    "HWTYPE",    "HWHEADER",      "HWLEN",
      "CT",        "CT_INFO",    "VLAN",   "L2HDR"};
  // Newer kernel headers may define more types than named here (the rest are null).
  return type < kNames.size() && kNames[type] ? kNames[type] : "unknown";
}

std::string attr_label(std::uint16_t type) {
  return std::string("NFULA_") + attr_name(type) + " (" + std::to_string(type) + ")";
}

struct Span {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

// "TCP header (20 bytes at offset 40)" does not fit: say whether the capture (copy range) or the
// packet itself is too short, which are different problems for whoever reads the error.
Error too_short(const std::string& what, std::size_t offset, std::size_t need, std::size_t captured,
                std::size_t packet_end) {
  const bool capture_cut = captured < packet_end;
  return make_error(
      "payload too short for the " + what + ": it needs " + std::to_string(need) +
      " bytes at offset " + std::to_string(offset) + ", but the " +
      (capture_cut ? "capture has " + std::to_string(captured) + " bytes (raise the copy range)"
                   : "packet is " + std::to_string(packet_end) + " bytes long"));
}

std::string tcp_flag_names(std::uint8_t flags) {
  // Bit order of the TCP header, lowest first: SYN before ACK gives "SYN,ACK".
  static constexpr std::array<const char*, 8> kNames = {"FIN", "SYN", "RST", "PSH",
                                                        "ACK", "URG", "ECE", "CWR"};
  std::string out;
  for (std::size_t bit = 0; bit < kNames.size(); ++bit) {
    if (!(flags & (1u << bit))) continue;
    if (!out.empty()) out += ',';
    out += kNames[bit];
  }
  // A null scan has no flags at all; "" would read as "not TCP".
  return out.empty() ? "NONE" : out;
}

// The transport header at `off` (only for the first fragment: later ones have none).
Result<void> parse_transport(const std::uint8_t* p, std::size_t off, std::size_t end,
                             std::size_t captured, std::size_t packet_end, Flow& flow) {
  const auto need = [&](std::size_t n, const char* what) -> Result<void> {
    if (off > end || end - off < n) return too_short(what, off, n, captured, packet_end);
    return {};
  };
  const std::uint8_t* t = p + off;
  switch (flow.protocol) {
    case kTcp: {
      if (auto r = need(20, "TCP header"); !r.ok()) return r;
      flow.source_port = be16(t);
      flow.destination_port = be16(t + 2);
      flow.tcp_flags = tcp_flag_names(t[13]);
      return {};
    }
    case kUdp: {
      if (auto r = need(8, "UDP header"); !r.ok()) return r;
      flow.source_port = be16(t);
      flow.destination_port = be16(t + 2);
      return {};
    }
    case kIcmp:
    case kIcmpv6: {
      if (auto r = need(8, flow.protocol == kIcmp ? "ICMP header" : "ICMPv6 header"); !r.ok())
        return r;
      flow.icmp_type = t[0];
      flow.icmp_code = t[1];
      return {};
    }
    default:
      return {};  // no ports we know how to read (ESP, GRE, SCTP, …)
  }
}

Result<void> parse_ipv4(Span payload, LoggedPacket& out) {
  const std::uint8_t* p = payload.data;
  const std::size_t cap = payload.size;
  if (cap < 20) return too_short("IPv4 header", 0, 20, cap, cap);
  const std::size_t ihl = (p[0] & 0x0Fu) * 4u;
  if (ihl < 20) {
    return make_error("garbled IPv4 header: header length " + std::to_string(ihl) +
                      " is below the minimum of 20");
  }
  const std::size_t total = be16(p + 2);
  // Total length 0 is how GSO aggregates (BIG TCP) say "larger than 64 KiB": use the capture.
  const std::size_t packet_end = total == 0 ? cap : total;
  if (total != 0 && total < ihl) {
    return make_error("garbled IPv4 header: total length " + std::to_string(total) +
                      " is shorter than its header length " + std::to_string(ihl));
  }
  if (ihl > cap) return too_short("IPv4 header (with options)", 0, ihl, cap, packet_end);
  out.length = static_cast<std::uint32_t>(total);
  out.flow.protocol = p[9];
  out.flow.source.family = out.flow.destination.family = Family::v4;
  std::memcpy(out.flow.source.bytes.data(), p + 12, 4);
  std::memcpy(out.flow.destination.bytes.data(), p + 16, 4);
  const bool later_fragment = (be16(p + 6) & 0x1FFFu) != 0;
  if (later_fragment) return {};
  return parse_transport(p, ihl, std::min(cap, packet_end), cap, packet_end, out.flow);
}

Result<void> parse_ipv6(Span payload, LoggedPacket& out) {
  const std::uint8_t* p = payload.data;
  const std::size_t cap = payload.size;
  if (cap < 40) return too_short("IPv6 header", 0, 40, cap, cap);
  const std::size_t payload_len = be16(p + 4);
  // Payload length 0: a jumbogram or GSO aggregate; its length is not in this header.
  const std::size_t packet_end = payload_len == 0 ? cap : 40 + payload_len;
  out.length = payload_len == 0 ? 0 : static_cast<std::uint32_t>(packet_end);
  out.flow.source.family = out.flow.destination.family = Family::v6;
  std::memcpy(out.flow.source.bytes.data(), p + 8, 16);
  std::memcpy(out.flow.destination.bytes.data(), p + 24, 16);
  const std::size_t end = std::min(cap, packet_end);

  // Walk the extension headers to the upper-layer protocol.
  std::uint8_t next = p[6];
  std::size_t off = 40;
  constexpr int kMaxExtensionHeaders = 16;  // a longer chain is an attack, not a packet
  for (int i = 0;; ++i) {
    if (i == kMaxExtensionHeaders) {
      return make_error("more than " + std::to_string(kMaxExtensionHeaders) +
                        " IPv6 extension headers");
    }
    std::size_t hlen = 0;
    const char* what = nullptr;
    switch (next) {
      case 0:
        what = "IPv6 hop-by-hop options header";
        break;
      case 43:
        what = "IPv6 routing header";
        break;
      case 60:
        what = "IPv6 destination options header";
        break;
      case 135:
        what = "IPv6 mobility header";
        break;
      case 139:
        what = "IPv6 HIP header";
        break;
      case 140:
        what = "IPv6 shim6 header";
        break;
      case 44:
        what = "IPv6 fragment header";
        break;
      case 51:
        what = "IPv6 authentication header";
        break;
      default:
        break;
    }
    if (!what) break;  // the upper-layer protocol
    const std::size_t fixed = next == 44 ? 8 : 2;
    if (off > end || end - off < fixed) return too_short(what, off, fixed, cap, packet_end);
    if (next == 44) {
      hlen = 8;
    } else if (next == 51) {
      hlen = (p[off + 1] + 2u) * 4u;
    } else {
      hlen = (p[off + 1] + 1u) * 8u;
    }
    if (end - off < hlen) return too_short(what, off, hlen, cap, packet_end);
    const bool later_fragment = next == 44 && (be16(p + off + 2) >> 3) != 0;
    next = p[off];
    off += hlen;
    if (later_fragment) {
      out.flow.protocol = next;
      return {};
    }
  }
  out.flow.protocol = next;
  return parse_transport(p, off, end, cap, packet_end, out.flow);
}

// Fills `out` as far as the message allows; on an error, whatever was read before it (notably
// seq, so that the reader can account a garbled packet once, as a parse error) stays in `out`.
Result<void> parse_into(const nlmsghdr* nlh, const InterfaceNamer& namer, LoggedPacket& out) {
  const auto* base = reinterpret_cast<const std::uint8_t*>(nlh);
  nlmsghdr hdr;
  std::memcpy(&hdr, base, sizeof hdr);
  if (hdr.nlmsg_len < kHeaders) {
    return make_error("message too short for the netlink and nfnetlink headers: " +
                      std::to_string(hdr.nlmsg_len) + " bytes, " + std::to_string(kHeaders) +
                      " needed");
  }
  if (hdr.nlmsg_type != kPacketType) {
    char type[8];
    std::snprintf(type, sizeof type, "0x%04x", hdr.nlmsg_type);
    return make_error(std::string("not an NFLOG packet message (type ") + type + ")");
  }
  nfgenmsg nfg;
  std::memcpy(&nfg, base + NLMSG_HDRLEN, sizeof nfg);
  if (nfg.version != NFNETLINK_V0) {
    return make_error("unknown nfnetlink version " + std::to_string(nfg.version));
  }
  out.group = ntohs(nfg.res_id);

  // Attributes: each must lie inside the message; the kernel sends each at most once.
  std::array<std::optional<Span>, NFULA_MAX + 1> attrs;
  const std::size_t len = hdr.nlmsg_len;
  std::size_t off = kHeaders;
  while (off < len) {
    if (len - off < NLA_HDRLEN) {
      return make_error("truncated attribute header: " + std::to_string(len - off) +
                        " bytes left at offset " + std::to_string(off));
    }
    nlattr a;
    std::memcpy(&a, base + off, sizeof a);
    const std::uint16_t type = a.nla_type & NLA_TYPE_MASK;
    if (a.nla_len < NLA_HDRLEN) {
      return make_error("garbled attribute " + attr_label(type) + " at offset " +
                        std::to_string(off) + ": length " + std::to_string(a.nla_len) +
                        " is shorter than its header");
    }
    if (a.nla_len > len - off) {
      return make_error("truncated attribute " + attr_label(type) + " at offset " +
                        std::to_string(off) + ": it claims " + std::to_string(a.nla_len) +
                        " bytes, the message has " + std::to_string(len - off) + " left");
    }
    if (type < attrs.size()) {
      if (attrs[type]) {
        return make_error("attribute " + attr_label(type) + " appears twice (second at offset " +
                          std::to_string(off) + ")");
      }
      attrs[type] = Span{base + off + NLA_HDRLEN, std::size_t{a.nla_len} - NLA_HDRLEN};
    }
    off += NLA_ALIGN(a.nla_len);
  }

  const auto fixed = [&](std::uint16_t type, std::size_t size) -> Result<const std::uint8_t*> {
    const Span& s = *attrs[type];
    if (s.size < size) {
      return make_error("attribute " + attr_label(type) + " has " + std::to_string(s.size) +
                        " bytes, " + std::to_string(size) + " expected");
    }
    return s.data;
  };

  // Sequence numbers first: they account for this packet even when the rest is garbled.
  if (attrs[NFULA_SEQ]) {
    auto d = fixed(NFULA_SEQ, 4);
    if (!d.ok()) return d.error();
    out.seq = be32(*d);
  }
  if (attrs[NFULA_SEQ_GLOBAL]) {
    auto d = fixed(NFULA_SEQ_GLOBAL, 4);
    if (!d.ok()) return d.error();
    out.seq_global = be32(*d);
  }

  std::optional<std::uint16_t> hw_protocol;
  if (attrs[NFULA_PACKET_HDR]) {
    auto d = fixed(NFULA_PACKET_HDR, sizeof(nfulnl_msg_packet_hdr));
    if (!d.ok()) return d.error();
    hw_protocol = be16(*d);
    out.hook = (*d)[2];
  }
  if (attrs[NFULA_PREFIX]) {
    const Span& s = *attrs[NFULA_PREFIX];
    const auto* nul = static_cast<const std::uint8_t*>(std::memchr(s.data, 0, s.size));
    if (!nul) return make_error("the prefix (NFULA_PREFIX) is not NUL-terminated");
    out.prefix.assign(reinterpret_cast<const char*>(s.data), nul - s.data);
  }
  if (attrs[NFULA_IFINDEX_INDEV]) {
    auto d = fixed(NFULA_IFINDEX_INDEV, 4);
    if (!d.ok()) return d.error();
    out.in_ifindex = be32(*d);
  }
  if (attrs[NFULA_IFINDEX_OUTDEV]) {
    auto d = fixed(NFULA_IFINDEX_OUTDEV, 4);
    if (!d.ok()) return d.error();
    out.out_ifindex = be32(*d);
  }
  if (attrs[NFULA_TIMESTAMP]) {
    auto d = fixed(NFULA_TIMESTAMP, sizeof(nfulnl_msg_packet_timestamp));
    if (!d.ok()) return d.error();
    const std::uint64_t sec = be64(*d);
    const std::uint64_t usec = be64(*d + 8);
    constexpr std::uint64_t kYear9999 = 253402300799;  // keeps sec * 1000 far from overflow
    if (usec >= 1'000'000 || sec > kYear9999) {
      return make_error("garbled timestamp: " + std::to_string(sec) + " s " + std::to_string(usec) +
                        " us");
    }
    out.kernel_time = Instant(std::chrono::milliseconds(sec * 1000 + usec / 1000));
  }

  // The family: nfgen_family is the packet's protocol family for ip, ip6 and inet tables
  // (inet hooks run per family); bridge and netdev tables report theirs, so fall back on the
  // link-layer protocol.
  std::optional<Family> family;
  if (nfg.nfgen_family == AF_INET) {
    family = Family::v4;
  } else if (nfg.nfgen_family == AF_INET6) {
    family = Family::v6;
  } else if (hw_protocol == kEthIpv4) {
    family = Family::v4;
  } else if (hw_protocol == kEthIpv6) {
    family = Family::v6;
  }
  if (!family) {
    char hw[8] = "none";
    if (hw_protocol) std::snprintf(hw, sizeof hw, "0x%04x", *hw_protocol);
    return make_error("unknown family: nfgen_family " + std::to_string(nfg.nfgen_family) +
                      ", hw_protocol " + hw + " (neither IPv4 nor IPv6)");
  }
  if (!attrs[NFULA_PAYLOAD] || attrs[NFULA_PAYLOAD]->size == 0) {
    return make_error("no packet payload (NFULA_PAYLOAD): the group is not in copy-packet mode");
  }
  const Span payload = *attrs[NFULA_PAYLOAD];
  const unsigned version = payload.data[0] >> 4;
  if (version != (*family == Family::v4 ? 4u : 6u)) {
    return make_error(std::string("the message says ") + (*family == Family::v4 ? "IPv4" : "IPv6") +
                      " but the payload is IP version " + std::to_string(version));
  }
  auto r = *family == Family::v4 ? parse_ipv4(payload, out) : parse_ipv6(payload, out);
  if (!r.ok()) return r;

  if (out.in_ifindex) out.flow.in_interface = namer(out.in_ifindex);
  if (out.out_ifindex) out.flow.out_interface = namer(out.out_ifindex);
  return {};
}

}  // namespace

std::string kernel_interface_name(std::uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (if_indextoname(ifindex, name)) return name;
  return std::to_string(ifindex);
}

Result<LoggedPacket> parse_nflog_packet(const nlmsghdr* nlh, const InterfaceNamer& namer) {
  LoggedPacket out;
  auto r = parse_into(nlh, namer, out);
  if (!r.ok()) return r.error();
  return out;
}

Result<LoggedPacket> parse_nflog_packet(const nlmsghdr* nlh) {
  return parse_nflog_packet(nlh, kernel_interface_name);
}

Result<LoggedPacket> parse_nflog_message(const void* data, std::size_t size,
                                         const InterfaceNamer& namer) {
  if (size < sizeof(nlmsghdr)) {
    return make_error("message too short for a netlink header: " + std::to_string(size) + " bytes");
  }
  nlmsghdr hdr;
  std::memcpy(&hdr, data, sizeof hdr);
  if (hdr.nlmsg_len > size) {
    return make_error("truncated message: its header claims " + std::to_string(hdr.nlmsg_len) +
                      " bytes, " + std::to_string(size) + " are there");
  }
  return parse_nflog_packet(static_cast<const nlmsghdr*>(data), namer);
}

std::uint64_t SequenceTracker::observe(std::uint32_t seq) {
  const std::optional<std::uint32_t> last = last_;
  last_ = seq;
  if (last) {
    // Unsigned arithmetic wraps at 2^32: 0xffffffff → 0 is a gap of 0.
    const std::uint32_t gap = seq - *last - 1u;
    if (gap < 0x8000'0000u) {
      lost_ += gap;
      return gap;
    }
  }
  ++epochs_;
  return 0;
}

void NflogReader::SocketCloser::operator()(mnl_socket* s) const noexcept {
  mnl_socket_close(s);
}

NflogReader::NflogReader(SocketPtr sock, std::uint16_t group)
    : sock_(std::move(sock)), group_(group), buf_(kRecvBuffer) {}

NflogReader::NflogReader(NflogReader&& o) noexcept = default;

NflogReader& NflogReader::operator=(NflogReader&& o) noexcept {
  if (this != &o) {
    unbind();
    sock_ = std::move(o.sock_);
    group_ = o.group_;
    seq_ = o.seq_;
    totals_ = o.totals_;
    last_parse_error_ = std::move(o.last_parse_error_);
    buf_ = std::move(o.buf_);
    early_ = std::move(o.early_);
  }
  return *this;
}

NflogReader::~NflogReader() {
  unbind();
}

int NflogReader::fd() const {
  return sock_ ? mnl_socket_get_fd(sock_.get()) : -1;
}

namespace {

// One NFULNL_MSG_CONFIG request for `group`; `fill` adds the attributes.
template <class Fill>
std::vector<char> config_message(std::uint16_t group, std::uint32_t seq, bool ack, Fill fill) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = kConfigType;
  nlh->nlmsg_flags = NLM_F_REQUEST | (ack ? NLM_F_ACK : 0);
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;  // BIND is per group, not per family
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(group);
  fill(nlh);
  buf.resize(nlh->nlmsg_len);
  return buf;
}

}  // namespace

void NflogReader::unbind() noexcept {
  if (!sock_) return;
  // Closing the socket alone would also make the kernel drop the instance (NETLINK_URELEASE);
  // unbinding first says so explicitly and frees the group before close returns.
  nfulnl_msg_config_cmd cmd{};
  cmd.command = NFULNL_CFG_CMD_UNBIND;
  try {
    const auto msg = config_message(group_, 0, false, [&](nlmsghdr* nlh) {
      mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
    });
    mnl_socket_sendto(sock_.get(), msg.data(), msg.size());
  } catch (...) {
    // Out of memory for a 8 KiB buffer: closing the socket unbinds all the same.
  }
  sock_.reset();
}

Result<NflogReader> NflogReader::open(std::uint16_t group, int rcvbuf, std::uint32_t copy_range,
                                      NflogTuning tuning) {
  // Below 64 bytes even an IPv4 header with options and the ports may not fit.
  if (copy_range < 64 || copy_range > 0xFFFF - NLA_HDRLEN) {
    return make_error("NFLOG copy range " + std::to_string(copy_range) +
                      " is outside 64..65531 bytes");
  }
  // The kernel silently keeps its default for an out-of-range buffer size; refuse it here.
  if (tuning.nlbufsiz < 4096 || tuning.nlbufsiz > 131072) {
    return make_error("NFLOG buffer size " + std::to_string(tuning.nlbufsiz) +
                      " is outside 4096..131072 bytes");
  }
  if (tuning.qthresh == 0) return make_error("NFLOG queue threshold must be at least 1");

  SocketPtr sock(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!sock) return make_error("cannot open a netfilter netlink socket: " + errno_text(errno));
  if (mnl_socket_bind(sock.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return make_error("cannot bind the netfilter netlink socket: " + errno_text(errno));
  }
  const int fd = mnl_socket_get_fd(sock.get());
  // SO_RCVBUFFORCE passes net.core.rmem_max (needs CAP_NET_ADMIN, which binding a group needs
  // in any case); the plain option is the fallback and is capped by rmem_max.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
    return make_error("cannot set the NFLOG socket's receive buffer to " + std::to_string(rcvbuf) +
                      " bytes: " + errno_text(errno));
  }

  NflogReader reader(std::move(sock), group);
  // One message: the kernel creates the instance and applies the settings in the same call, so
  // hardly a packet is logged with the defaults (whole packets, no sequence numbers).
  const std::uint32_t seq = static_cast<std::uint32_t>(
      std::chrono::steady_clock::now().time_since_epoch().count() & 0x7fffffff);
  const auto request = config_message(group, seq, true, [&](nlmsghdr* nlh) {
    nfulnl_msg_config_cmd cmd{};
    cmd.command = NFULNL_CFG_CMD_BIND;
    mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof cmd, &cmd);
    nfulnl_msg_config_mode mode{};
    mode.copy_range = htonl(copy_range);
    mode.copy_mode = NFULNL_COPY_PACKET;
    mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof mode, &mode);
    mnl_attr_put_u32(nlh, NFULA_CFG_NLBUFSIZ, htonl(tuning.nlbufsiz));
    mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(tuning.qthresh));
    mnl_attr_put_u32(nlh, NFULA_CFG_TIMEOUT, htonl(tuning.timeout_cs));
    mnl_attr_put_u16(nlh, NFULA_CFG_FLAGS, htons(NFULNL_CFG_F_SEQ | NFULNL_CFG_F_SEQ_GLOBAL));
  });
  if (mnl_socket_sendto(reader.sock_.get(), request.data(), request.size()) < 0) {
    return make_error("cannot send the NFLOG bind request: " + errno_text(errno));
  }

  // The acknowledgement. Packets of the new instance may be queued before it: keep them for
  // the first read_available instead of losing them.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return make_error("the kernel did not answer the NFLOG bind request for group " +
                        std::to_string(group));
    }
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      return make_error("waiting for the NFLOG bind answer: " + errno_text(errno));
    }
    const ssize_t n = recv(fd, reader.buf_.data(), reader.buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      if (errno == ENOBUFS) {
        ++reader.totals_.enobufs;
        continue;
      }
      return make_error("reading the NFLOG bind answer: " + errno_text(errno));
    }
    const std::size_t size = std::min(static_cast<std::size_t>(n), reader.buf_.size());
    std::optional<int> answer;
    int remaining = static_cast<int>(size);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(reader.buf_.data());
         mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (nlh->nlmsg_type == NLMSG_ERROR && nlh->nlmsg_seq == seq &&
          nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr)) {
        answer = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error;
      }
    }
    if (!answer) {
      reader.early_.emplace_back(reader.buf_.begin(), reader.buf_.begin() + size);
      continue;
    }
    // The kernel answers EPERM when another socket holds the group (EBUSY only when this
    // socket does), and EPERM without CAP_NET_ADMIN: name both.
    if (*answer == -EPERM || *answer == -EBUSY) {
      return make_error("cannot bind NFLOG group " + std::to_string(group) +
                        ": it is already bound by another socket (another enforcer, or "
                        "ulogd?), or this process lacks CAP_NET_ADMIN");
    }
    if (*answer != 0) {
      return make_error("the kernel refused to bind NFLOG group " + std::to_string(group) + ": " +
                        errno_text(-*answer));
    }
    break;
  }
  return reader;
}

void NflogReader::process_datagram(const char* data, std::size_t size, bool truncated,
                                   const std::function<void(const LoggedPacket&)>& on_packet,
                                   const std::function<void(const nlmsghdr*)>& on_message,
                                   NflogCounters& delta) {
  // Counted in the totals as they happen, so that an exception from on_packet leaves them true.
  const auto bump = [&](std::uint64_t NflogCounters::*field, std::uint64_t by = 1) {
    delta.*field += by;
    totals_.*field += by;
  };
  const auto now = std::chrono::steady_clock::now();
  const InterfaceNamer namer = [this, now](std::uint32_t ifindex) {
    auto& cached = if_names_[ifindex];
    if (now >= cached.until)
      cached = {kernel_interface_name(ifindex), now + std::chrono::seconds(1)};
    return cached.name;
  };
  int remaining = static_cast<int>(size);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(data);
  for (; mnl_nlmsg_ok(nlh, remaining); nlh = mnl_nlmsg_next(nlh, &remaining)) {
    if (on_message) on_message(nlh);
    switch (nlh->nlmsg_type) {
      case NLMSG_DONE:  // ends a multi-message datagram
      case NLMSG_NOOP:
        continue;
      case NLMSG_ERROR:
        if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(nlmsgerr) &&
            static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh))->error == 0) {
          continue;  // a late acknowledgement
        }
        bump(&NflogCounters::parse_errors);
        continue;
      default:
        break;
    }
    LoggedPacket packet;
    auto r = parse_into(nlh, namer, packet);
    // A garbled packet that still carries its number is one parse error, not also one loss.
    if (packet.seq) bump(&NflogCounters::seq_lost, seq_.observe(*packet.seq));
    if (!r.ok()) {
      bump(&NflogCounters::parse_errors);
      last_parse_error_ = r.error().message;
      continue;
    }
    bump(&NflogCounters::received);
    on_packet(packet);
  }
  // Bytes after the last whole message, or a datagram larger than the buffer: what was cut off
  // is lost; the sequence numbers of the next packets count the packets in it.
  if (remaining > 0 || truncated) {
    bump(&NflogCounters::parse_errors);
    last_parse_error_ = truncated ? "a datagram was larger than the receive buffer"
                                  : "a datagram ended inside a message";
  }
}

NflogCounters NflogReader::read_available(const std::function<void(const LoggedPacket&)>& on_packet,
                                          const std::function<void(const nlmsghdr*)>& on_message) {
  NflogCounters delta;
  if (!sock_) return delta;
  auto early = std::move(early_);
  early_.clear();
  for (const auto& d : early)
    process_datagram(d.data(), d.size(), false, on_packet, on_message, delta);

  const int fd = mnl_socket_get_fd(sock_.get());
  for (int i = 0; i < kDatagramsPerCall; ++i) {
    const ssize_t n = recv(fd, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel could not queue a datagram for us: the packets in it are gone. The error
        // is reported once per overflow; their number shows in the next sequence gap.
        ++delta.enobufs;
        ++totals_.enobufs;
        continue;
      }
      break;  // EAGAIN: nothing more queued (other errors: nothing to read either)
    }
    const bool truncated = static_cast<std::size_t>(n) > buf_.size();
    process_datagram(buf_.data(), std::min(static_cast<std::size_t>(n), buf_.size()), truncated,
                     on_packet, on_message, delta);
  }
  return delta;
}

}  // namespace drawbridge
