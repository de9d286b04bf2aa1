#include "enforcer/soc/session_tracker.h"

#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "common/window_schedule.h"

namespace drawbridge {

namespace {

// --- ctnetlink attributes ------------------------------------------------------------------

// Calls on_attr(type, attr) for each attribute in [data, data + len). False when the bytes do
// not form whole attributes (a length running past the end, or stray bytes after the last one)
// or when on_attr says so. mnl_attr_ok checks each length against what remains before the
// attribute is read, so nothing past `len` is ever touched.
template <class F>
bool walk_attributes(const void* data, std::size_t len, F&& on_attr) {
  if (len > static_cast<std::size_t>(INT_MAX)) return false;
  int remaining = static_cast<int>(len);
  const auto* attr = static_cast<const nlattr*>(data);
  while (mnl_attr_ok(attr, remaining)) {
    if (!on_attr(mnl_attr_get_type(attr), attr)) return false;
    remaining -= static_cast<int>(MNL_ALIGN(attr->nla_len));
    attr = mnl_attr_next(attr);
  }
  // The last attribute's padding may be left out; anything else left over is garbage.
  return remaining <= 0;
}

template <class F>
bool walk_nested(const nlattr* nest, F&& on_attr) {
  return walk_attributes(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest),
                         std::forward<F>(on_attr));
}

// Fixed-size reads; false when the payload is too short for the type.
bool get_u8(const nlattr* a, std::uint8_t& out) {
  if (mnl_attr_get_payload_len(a) < 1) return false;
  std::memcpy(&out, mnl_attr_get_payload(a), 1);
  return true;
}
bool get_be16(const nlattr* a, std::uint16_t& out) {
  if (mnl_attr_get_payload_len(a) < 2) return false;
  std::memcpy(&out, mnl_attr_get_payload(a), 2);
  out = ntohs(out);
  return true;
}
bool get_be32(const nlattr* a, std::uint32_t& out) {
  if (mnl_attr_get_payload_len(a) < 4) return false;
  std::memcpy(&out, mnl_attr_get_payload(a), 4);
  out = ntohl(out);
  return true;
}
bool get_be64(const nlattr* a, std::uint64_t& out) {
  if (mnl_attr_get_payload_len(a) < 8) return false;
  std::memcpy(&out, mnl_attr_get_payload(a), 8);
  out = be64toh(out);
  return true;
}
bool get_address(const nlattr* a, Family f, Address& out) {
  const std::size_t n = f == Family::v4 ? 4 : 16;
  if (mnl_attr_get_payload_len(a) != n) return false;
  out.family = f;
  out.bytes = {};
  std::memcpy(out.bytes.data(), mnl_attr_get_payload(a), n);
  return true;
}

// CTA_TIMESTAMP_EVENT, newer (Linux 6.14) than the uapi headers this builds against.
constexpr std::uint16_t kCtaTimestampEvent = 27;

// Nanoseconds since the epoch (the kernel's real-time clock) → Instant.
Instant from_ns(std::uint64_t ns) {
  return Instant(std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(static_cast<std::int64_t>(ns & 0x7fffffffffffffffULL))));
}

bool has_ports(std::uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
         proto == IPPROTO_UDPLITE || proto == IPPROTO_DCCP;
}

// CTA_TUPLE_ORIG / CTA_TUPLE_REPLY → the addresses, protocol and ports of one direction.
Result<Flow> parse_tuple(const nlattr* nest, Family family, const char* which) {
  Flow f;
  bool src = false, dst = false, proto = false, sport = false, dport = false;
  const bool ok = walk_nested(nest, [&](std::uint16_t type, const nlattr* a) {
    if (type == CTA_TUPLE_IP) {
      return walk_nested(a, [&](std::uint16_t t, const nlattr* ip) {
        const bool v4 = t == CTA_IP_V4_SRC || t == CTA_IP_V4_DST;
        const bool v6 = t == CTA_IP_V6_SRC || t == CTA_IP_V6_DST;
        if (!v4 && !v6) return true;  // unknown: newer kernels may add more
        if (v4 != (family == Family::v4)) return false;
        const bool is_src = t == CTA_IP_V4_SRC || t == CTA_IP_V6_SRC;
        if (!get_address(ip, family, is_src ? f.source : f.destination)) return false;
        (is_src ? src : dst) = true;
        return true;
      });
    }
    if (type == CTA_TUPLE_PROTO) {
      return walk_nested(a, [&](std::uint16_t t, const nlattr* p) {
        std::uint8_t b = 0;
        std::uint16_t port = 0;
        switch (t) {
          case CTA_PROTO_NUM:
            return proto = get_u8(p, f.protocol);
          case CTA_PROTO_SRC_PORT:
            return sport = get_be16(p, f.source_port);
          case CTA_PROTO_DST_PORT:
            return dport = get_be16(p, f.destination_port);
          case CTA_PROTO_ICMP_TYPE:
          case CTA_PROTO_ICMPV6_TYPE:
            if (!get_u8(p, b)) return false;
            f.icmp_type = b;
            return true;
          case CTA_PROTO_ICMP_CODE:
          case CTA_PROTO_ICMPV6_CODE:
            if (!get_u8(p, b)) return false;
            f.icmp_code = b;
            return true;
          case CTA_PROTO_ICMP_ID:
          case CTA_PROTO_ICMPV6_ID:
            return get_be16(p, port);  // identifies the echo exchange; not part of a Flow
          default:
            return true;
        }
      });
    }
    return true;  // CTA_TUPLE_ZONE and anything newer
  });
  if (!ok) return make_error(std::string("conntrack event: malformed ") + which + " tuple");
  if (!src || !dst)
    return make_error(std::string("conntrack event: ") + which + " tuple has no " +
                      (family == Family::v4 ? "IPv4" : "IPv6") + " addresses");
  if (!proto)
    return make_error(std::string("conntrack event: ") + which + " tuple has no protocol");
  if (f.protocol == IPPROTO_TCP || f.protocol == IPPROTO_UDP) {
    if (!sport || !dport) {
      return make_error(std::string("conntrack event: ") + which + " tuple has no ports");
    }
  }
  if (!has_ports(f.protocol)) f.source_port = f.destination_port = 0;
  return f;
}

bool parse_counters(const nlattr* nest, std::uint64_t& packets, std::uint64_t& bytes) {
  bool have_packets = false, have_bytes = false;
  const bool ok = walk_nested(nest, [&](std::uint16_t t, const nlattr* a) {
    if (t == CTA_COUNTERS_PACKETS) return have_packets = get_be64(a, packets);
    if (t == CTA_COUNTERS_BYTES) return have_bytes = get_be64(a, bytes);
    return true;  // the old 32-bit counters and padding
  });
  return ok && have_packets && have_bytes;
}

// --- attribution ---------------------------------------------------------------------------

std::string endpoint(const Address& a, std::uint16_t port, std::uint8_t proto) {
  if (!has_ports(proto)) return a.str();
  const std::string addr = a.family == Family::v6 ? "[" + a.str() + "]" : a.str();
  return addr + ":" + std::to_string(port);
}

bool any_contains(const std::vector<AddressRange>& ranges, const Address& a) {
  for (const auto& r : ranges) {
    if (r.contains(a)) return true;
  }
  return false;
}

bool ports_contain(const std::vector<PortRange>& ports, std::uint8_t proto, std::uint16_t port) {
  if (proto != 6 && proto != 17) return false;
  const auto p = static_cast<Protocol>(proto);
  for (const auto& r : ports) {
    if (r.contains(p, port)) return true;
  }
  return false;
}

// What a link's hosts and ports are compared with: the connection as Drawbridge's forward rules
// saw its first packet, i.e. after DNAT (the reply's source) and before SNAT (the original
// source; SNAT happens at postrouting, after forward).
struct Filtered {
  Address source, destination;
  std::uint8_t protocol = 0;
  std::uint16_t destination_port = 0;
};

Filtered filtered_view(const ConntrackEvent& ev) {
  Filtered v{ev.flow.source, ev.flow.destination, ev.flow.protocol, ev.flow.destination_port};
  if (ev.reply) {
    v.destination = ev.reply->source;
    v.destination_port = ev.reply->source_port;
  }
  return v;
}

struct LinkMatch {
  const Link* link = nullptr;
  Address client;  // the client-side end (a link host)
};

std::vector<LinkMatch> matching_links(const Policy& policy, const Filtered& v) {
  std::vector<LinkMatch> out;
  for (const auto& link : policy.links) {
    const Provider* p = policy.provider(link.provider);
    if (p == nullptr) continue;
    if (!ports_contain(link.ports, v.protocol, v.destination_port)) continue;
    if (link.direction == Direction::inbound) {
      if (any_contains(p->addresses, v.source) && any_contains(link.hosts, v.destination)) {
        out.push_back({&link, v.destination});
      }
    } else if (any_contains(link.hosts, v.source) && any_contains(p->addresses, v.destination)) {
      out.push_back({&link, v.source});
    }
  }
  return out;
}

// The recurring window of `link` that is open at `t`, by name; empty when none is.
std::string window_at(const Policy& policy, const Link& link, Instant t) {
  for (const auto& name : link.windows) {
    if (name == kAlwaysWindow) return name;
    const Window* w = policy.window(name);
    if (w != nullptr &&
        !window_occurrences(*w, policy.timezone, t, t + std::chrono::milliseconds(1)).empty()) {
      return name;
    }
  }
  return {};
}

struct Opened {
  std::string by;  // "window" or "grant"
  std::string window;
  std::string ticket;
};

// From the plan in force: the openings it lists for the link that cover the client host. A window
// is preferred to a grant: it is the standing approval, the grant then adds nothing.
std::optional<Opened> opened_in_plan(const RulesetPlan& plan, const Policy& policy,
                                     const LinkMatch& m, Instant t) {
  std::optional<Opened> grant;
  for (const auto& o : plan.openings) {
    if (o.link != m.link->name || !any_contains(o.hosts, m.client)) continue;
    if (!o.ticket) return Opened{"window", window_at(policy, *m.link, t), {}};
    if (!grant) grant = Opened{"grant", {}, *o.ticket};
  }
  return grant;
}

// From the policy alone, at `t` (an end whose start was not seen: what was open when it began).
std::optional<Opened> opened_by_policy(const Policy& policy, const LinkMatch& m, Instant t) {
  if (policy.expires && t >= *policy.expires) return std::nullopt;
  if (recurring_open_until(policy, *m.link, t)) {
    return Opened{"window", window_at(policy, *m.link, t), {}};
  }
  for (const auto& g : policy.grants) {
    if (g.link != m.link->name || t < g.from || t >= g.until) continue;
    if (any_contains(g.hosts.empty() ? m.link->hosts : g.hosts, m.client)) {
      return Opened{"grant", {}, g.ticket};
    }
  }
  return std::nullopt;
}

std::string seconds_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  std::string frac = std::to_string(ms % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  return std::to_string(ms / 1000) + "." + frac + " s";
}

std::string flow_text(const Flow& f) {
  return transport_name(f.protocol) + " " + endpoint(f.source, f.source_port, f.protocol) + " -> " +
         endpoint(f.destination, f.destination_port, f.protocol);
}

std::string why_text(const SocEvent& e) {
  std::string why = "link " + e.link;
  const auto w = e.labels.find("window");
  if (!e.ticket.empty()) {
    why += ", grant " + e.ticket;
  } else if (w != e.labels.end()) {
    why += ", window " + w->second;
  } else if (e.reason == "link-closed") {
    why += ", no open window or grant";
  }
  return why + ", provider " + e.provider;
}

// The facts of an end: counters, times, duration and the sentence. `known_start` is when the
// session began, if anything tells (the kernel's timestamp, else when its start was seen).
void fill_end(SocEvent& e, const ConntrackEvent& ev, std::optional<Instant> known_start,
              Instant now) {
  e.kind = EventKind::session_end;
  e.action = action::kSessionEnded;
  e.timestamp = now;
  e.packets = ev.packets_orig + ev.packets_reply;
  if (ev.has_counters) {
    e.bytes = ev.bytes_orig + ev.bytes_reply;
  } else {
    e.bytes.reset();
    e.labels["counters"] = "unavailable";
  }
  if (ev.start) known_start = ev.start;
  e.first_seen = known_start;
  e.last_seen = ev.stop.value_or(now);
  std::string took = "after an unknown time";
  if (known_start) {
    const auto d = std::max(std::chrono::milliseconds(0), *e.last_seen - *known_start);
    e.labels["duration_ms"] = std::to_string(d.count());
    took = "after " + seconds_text(d);
  }
  const std::string counts = ev.has_counters ? std::to_string(e.packets) + " packets, " +
                                                   std::to_string(*e.bytes) + " bytes"
                                             : "counters unavailable";
  e.message = "provider session ended " + took + ": " + (e.flow ? flow_text(*e.flow) : "?") + " (" +
              why_text(e) + "; " + counts + ")";
}

}  // namespace

// --- parsing -------------------------------------------------------------------------------

Result<std::optional<ConntrackEvent>> parse_conntrack_event(const nlmsghdr* nlh) {
  if (nlh == nullptr) return make_error("conntrack event: no message");
  if (nlh->nlmsg_len < NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg))) {
    return make_error("conntrack event: message of " + std::to_string(nlh->nlmsg_len) +
                      " bytes is too short for its headers");
  }
  if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) {
    return make_error("conntrack event: message type " + std::to_string(nlh->nlmsg_type) +
                      " is not ctnetlink's");
  }
  ConntrackEvent ev;
  switch (NFNL_MSG_TYPE(nlh->nlmsg_type)) {
    case IPCTNL_MSG_CT_NEW:
      // Without NLM_F_CREATE it is an update (or a dump reply): not the start of anything.
      if (!(nlh->nlmsg_flags & NLM_F_CREATE)) return std::optional<ConntrackEvent>{};
      ev.type = ConntrackEvent::Type::started;
      break;
    case IPCTNL_MSG_CT_DELETE:
      ev.type = ConntrackEvent::Type::ended;
      break;
    default:
      return std::optional<ConntrackEvent>{};
  }
  const auto* gen = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  Family family;
  if (gen->nfgen_family == AF_INET) {
    family = Family::v4;
  } else if (gen->nfgen_family == AF_INET6) {
    family = Family::v6;
  } else {
    return make_error("conntrack event: address family " + std::to_string(gen->nfgen_family) +
                      " is neither IPv4 nor IPv6");
  }

  std::optional<Error> error;
  bool have_orig = false, have_id = false, have_counters_orig = false, have_counters_reply = false;
  const std::size_t attrs_len = nlh->nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(nfgenmsg));
  const bool ok = walk_attributes(
      mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)), attrs_len,
      [&](std::uint16_t type, const nlattr* a) {
        switch (type) {
          case CTA_TUPLE_ORIG:
          case CTA_TUPLE_REPLY: {
            const bool orig = type == CTA_TUPLE_ORIG;
            auto t = parse_tuple(a, family, orig ? "original" : "reply");
            if (!t) {
              error = t.error();
              return false;
            }
            if (orig) {
              ev.flow = std::move(*t);
              have_orig = true;
            } else {
              ev.reply = std::move(*t);
            }
            return true;
          }
          case CTA_ID:
            return have_id = get_be32(a, ev.id);
          case CTA_COUNTERS_ORIG:
            return have_counters_orig = parse_counters(a, ev.packets_orig, ev.bytes_orig);
          case CTA_COUNTERS_REPLY:
            return have_counters_reply = parse_counters(a, ev.packets_reply, ev.bytes_reply);
          case CTA_TIMESTAMP:
            return walk_nested(a, [&](std::uint16_t t, const nlattr* ts) {
              std::uint64_t ns = 0;
              if (t != CTA_TIMESTAMP_START && t != CTA_TIMESTAMP_STOP) return true;
              if (!get_be64(ts, ns)) return false;
              (t == CTA_TIMESTAMP_START ? ev.start : ev.stop) = from_ns(ns);
              return true;
            });
          case kCtaTimestampEvent: {
            std::uint64_t ns = 0;
            if (!get_be64(a, ns)) return false;
            ev.event_time = from_ns(ns);
            return true;
          }
          case CTA_ZONE:
            return get_be16(a, ev.zone);
          case CTA_MARK: {
            std::uint32_t mark = 0;
            if (!get_be32(a, mark)) return false;
            ev.mark = mark;
            return true;
          }
          default:
            return true;  // status, timeout, protoinfo, helper, labels, …: not a session's concern
        }
      });
  if (error) return *error;
  if (!ok) return make_error("conntrack event: malformed or truncated attributes");
  if (!have_orig) return make_error("conntrack event: no original tuple");
  if (!have_id) return make_error("conntrack event: no conntrack id");
  ev.has_counters = have_counters_orig && have_counters_reply;
  if (!ev.has_counters) ev.packets_orig = ev.bytes_orig = ev.packets_reply = ev.bytes_reply = 0;
  return std::optional<ConntrackEvent>(std::move(ev));
}

Result<std::optional<ConntrackEvent>> parse_conntrack_event(const void* bytes, std::size_t size) {
  if (bytes == nullptr || size < sizeof(nlmsghdr)) {
    return make_error("conntrack event: " + std::to_string(size) +
                      " bytes are too few for a netlink header");
  }
  // Netlink messages are far smaller; the bound also keeps the copy below obviously sized.
  if (size > (1u << 20)) {
    return make_error("conntrack event: " + std::to_string(size) + " bytes is not a message");
  }
  // A copy, so that the header and attributes are aligned whatever the caller's buffer is.
  std::vector<std::uint64_t> aligned((size + 7) / 8);
  std::memcpy(aligned.data(), bytes, size);
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(aligned.data());
  if (nlh->nlmsg_len > size) {
    return make_error("conntrack event: the header says " + std::to_string(nlh->nlmsg_len) +
                      " bytes, only " + std::to_string(size) + " are there");
  }
  return parse_conntrack_event(nlh);
}

// --- attribution ---------------------------------------------------------------------------

std::optional<SocEvent> attribute_session(const ConntrackEvent& ev, const Policy& policy,
                                          const RulesetPlan& plan, Instant now) {
  const Filtered view = filtered_view(ev);
  const auto matches = matching_links(policy, view);
  if (matches.empty()) return std::nullopt;

  // What let it in. A start: the plan in force now. An end (whose start was not seen): what the
  // policy had open when it began, if the kernel says when; else what is open now, in the plan
  // or, if the plan has closed it since, in the policy.
  const bool started = ev.type == ConntrackEvent::Type::started;
  const auto opening_of = [&](const LinkMatch& m) -> std::optional<Opened> {
    if (started) return opened_in_plan(plan, policy, m, now);
    if (ev.start) return opened_by_policy(policy, m, *ev.start);
    if (auto o = opened_in_plan(plan, policy, m, now)) return o;
    return opened_by_policy(policy, m, now);
  };
  const LinkMatch* chosen = &matches.front();
  std::optional<Opened> opened;
  for (const auto& m : matches) {
    if ((opened = opening_of(m))) {
      chosen = &m;
      break;
    }
  }
  const Link& link = *chosen->link;

  SocEvent e;
  e.timestamp = now;
  e.kind = EventKind::session_start;
  e.action = action::kSessionStarted;
  e.outcome = "success";
  e.site = policy.site;
  e.serial = policy.serial;
  e.provider = link.provider;
  e.link = link.name;
  e.rule = "link/" + link.name;
  e.flow = ev.flow;
  e.flow->direction =
      link.direction == Direction::inbound ? FlowDirection::inbound : FlowDirection::outbound;
  e.labels["conntrack_id"] = std::to_string(ev.id);
  if (opened) {
    e.labels["opened_by"] = opened->by;
    if (!opened->window.empty()) e.labels["window"] = opened->window;
    e.ticket = opened->ticket;
  } else {
    // The kernel let it through, yet the plan has the link closed: a race with a window edge, a
    // lockdown, or Drawbridge's table not doing its job. Reported, not hidden.
    e.labels["opened_by"] = "none";
    e.reason = "link-closed";
  }
  if (view.destination != ev.flow.destination ||
      view.destination_port != ev.flow.destination_port) {
    e.labels["nat_destination"] =
        endpoint(view.destination, view.destination_port, ev.flow.protocol);
  }
  if (ev.zone != 0) e.labels["zone"] = std::to_string(ev.zone);

  if (started) {
    e.first_seen = ev.start.value_or(ev.event_time.value_or(now));
    e.message = "provider session started: " + flow_text(ev.flow) + " (" + why_text(e) + ")";
    return e;
  }
  fill_end(e, ev, std::nullopt, now);
  return e;
}

std::optional<SocEvent> SessionTracker::observe(const ConntrackEvent& ev, const Policy& policy,
                                                const RulesetPlan& plan, Instant now) {
  if (ev.type == ConntrackEvent::Type::started) {
    auto e = attribute_session(ev, policy, plan, now);
    if (!e) return std::nullopt;
    if (auto old = open_.find(ev.id); old != open_.end()) {
      // The id came back without its end being seen (a lost DESTROY): the new one replaces it.
      by_age_.erase(old->second.order);
      open_.erase(old);
    }
    if (opt_.max_sessions == 0) {
      ++forgotten_;
      return e;
    }
    while (open_.size() >= opt_.max_sessions) {
      const auto oldest = by_age_.begin();
      open_.erase(oldest->second);
      by_age_.erase(oldest);
      ++forgotten_;
    }
    const std::uint64_t order = next_order_++;
    open_.emplace(ev.id, Open{*e, order});
    by_age_.emplace(order, ev.id);
    return e;
  }

  const auto it = open_.find(ev.id);
  if (it == open_.end()) {
    auto e = attribute_session(ev, policy, plan, now);
    if (e) e->labels["start_seen"] = "false";
    return e;
  }
  // The start's attribution stands: what let the session in, not what is open now.
  SocEvent e = std::move(it->second.start);
  by_age_.erase(it->second.order);
  open_.erase(it);
  e.labels["start_seen"] = "true";
  fill_end(e, ev, e.first_seen, now);
  return e;
}

// --- the socket ----------------------------------------------------------------------------

namespace {

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Sets /proc/sys/net/netfilter/<name> to 1 in the current network namespace, unless it already
// is. False (with the reason in `warnings`) when it cannot be read or written.
bool ensure_enabled(const std::string& name, const std::string& what,
                    std::vector<std::string>& warnings) {
  const std::string path = "/proc/sys/net/netfilter/" + name;
  {
    FdCloser in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (in.fd < 0) {
      warnings.push_back("cannot read " + path + " (" + std::strerror(errno) + "): " + what +
                         " may be missing from session events");
      return false;
    }
    char value[16] = {};
    const ssize_t n = ::read(in.fd, value, sizeof value - 1);
    if (n > 0 && value[0] == '1' && (n == 1 || value[1] == '\n')) return true;
  }
  FdCloser out{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (out.fd < 0 || ::write(out.fd, "1\n", 2) != 2) {
    warnings.push_back("cannot set " + path + " to 1 (" + std::strerror(errno) + "): " + what +
                       " will be missing from session events");
    return false;
  }
  return true;
}

}  // namespace

void ConntrackListener::Closer::operator()(mnl_socket* s) const noexcept {
  if (s != nullptr) mnl_socket_close(s);
}

Result<ConntrackListener> ConntrackListener::open(int rcvbuf) {
  mnl_socket* raw = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (raw == nullptr) {
    return make_error(std::string("cannot open a netfilter netlink socket: ") +
                      std::strerror(errno));
  }
  ConntrackListener l(raw);
  // Binding loads ctnetlink (and conntrack) if needed; it needs CAP_NET_ADMIN.
  const unsigned groups =
      (1u << (NFNLGRP_CONNTRACK_NEW - 1)) | (1u << (NFNLGRP_CONNTRACK_DESTROY - 1));
  if (mnl_socket_bind(raw, groups, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    return make_error(std::string("cannot subscribe to conntrack events: ") + std::strerror(err) +
                      (err == EPERM ? " (needs root or CAP_NET_ADMIN)" : ""));
  }
  // A burst of new connections (a scan that the policy lets through, a busy RMM relay) must fit
  // in the buffer between two reads; FORCE goes past net.core.rmem_max (CAP_NET_ADMIN).
  if (setsockopt(mnl_socket_get_fd(raw), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0 &&
      setsockopt(mnl_socket_get_fd(raw), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
    l.warnings_.push_back("cannot size the conntrack event buffer to " + std::to_string(rcvbuf) +
                          " bytes (" + std::strerror(errno) + "): events are lost sooner");
  }
  l.accounting_ = ensure_enabled("nf_conntrack_acct", "packet and byte counts", l.warnings_);
  l.timestamps_ = ensure_enabled("nf_conntrack_timestamp", "start and stop times", l.warnings_);
  ensure_enabled("nf_conntrack_events", "sessions begun while no listener ran", l.warnings_);
  l.buf_.resize(1 << 16);
  return l;
}

int ConntrackListener::fd() const {
  return mnl_socket_get_fd(sock_.get());
}

std::size_t ConntrackListener::read_available(
    const std::function<void(const ConntrackEvent&)>& on_event,
    const std::function<void(const nlmsghdr*)>& on_message) {
  std::size_t delivered = 0;
  for (int i = 0; i < kMaxDatagramsPerRead; ++i) {
    sockaddr_nl from{};
    iovec iov{buf_.data(), buf_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = recvmsg(fd(), &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel dropped events for want of room; the socket goes on with what follows.
        ++lost_;
        continue;
      }
      break;  // EAGAIN: nothing more queued (anything else: the caller's poll will tell again)
    }
    if (n == 0) break;
    // Only the kernel sends on these groups; and a datagram cut short cannot be trusted.
    if (from.nl_pid != 0 || (msg.msg_flags & MSG_TRUNC)) {
      ++malformed_;
      continue;
    }
    int remaining = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf_.data()); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (on_message) on_message(nlh);
      if (nlh->nlmsg_type == NLMSG_NOOP || nlh->nlmsg_type == NLMSG_DONE) continue;
      auto parsed = parse_conntrack_event(nlh);
      if (!parsed) {
        ++malformed_;
        continue;
      }
      if (*parsed) {
        on_event(**parsed);
        ++delivered;
      }
    }
  }
  return delivered;
}

}  // namespace drawbridge
