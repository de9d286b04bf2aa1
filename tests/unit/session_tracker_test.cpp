// The session stage: real ctnetlink event bytes (captured from Linux 6.18 by
// tests/kernel/session_tracker_test.cpp, see tests/unit/fixtures/conntrack/) parse to exactly
// what the kernel said, damaged bytes never crash the parser, and sessions are attributed to the
// link and the window or grant ticket that let them in, from start to end.
#include "enforcer/soc/session_tracker.h"

#include <gtest/gtest.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include "common/policy_parser.h"

namespace drawbridge {
namespace {

using namespace std::chrono_literals;
using T = ConntrackEvent::Type;

std::vector<std::uint8_t> fixture(const std::string& name) {
  const std::string path =
      std::string(DRAWBRIDGE_SOURCE_DIR) + "/tests/unit/fixtures/conntrack/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

ConntrackEvent parsed(const std::string& name) {
  const auto bytes = fixture(name);
  auto r = parse_conntrack_event(bytes.data(), bytes.size());
  EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().message);
  if (!r.ok() || !*r) {
    ADD_FAILURE() << name << " is not a start or end";
    return {};
  }
  return **r;
}

Address ip(const char* text) {
  return *Address::parse(text);
}

Instant ms(std::int64_t since_epoch) {
  return Instant(std::chrono::milliseconds(since_epoch));
}

// The capture ran at 2026-11-25T04:50:26.685Z, a Wednesday.
const Instant kCaptured = ms(1795582226685);

// --- parsing the captured bytes ---------------------------------------------------------------

TEST(ConntrackParse, Tcp4StartFromTheKernel) {
  const auto e = parsed("tcp4_new.bin");
  EXPECT_EQ(e.type, T::started);
  EXPECT_EQ(e.id, 0x67f73d34u);
  EXPECT_EQ(e.flow.source, ip("203.0.113.5"));
  EXPECT_EQ(e.flow.destination, ip("192.0.2.10"));
  EXPECT_EQ(e.flow.protocol, 6);
  EXPECT_EQ(e.flow.source_port, 40001);
  EXPECT_EQ(e.flow.destination_port, 3389);
  ASSERT_TRUE(e.reply);
  EXPECT_EQ(e.reply->source, ip("192.0.2.10"));
  EXPECT_EQ(e.reply->destination, ip("203.0.113.5"));
  EXPECT_EQ(e.reply->source_port, 3389);
  EXPECT_EQ(e.reply->destination_port, 40001);
  // A start carries no counters and no CTA_TIMESTAMP; 6.14+ add the event's own time.
  EXPECT_FALSE(e.has_counters);
  EXPECT_EQ(e.packets_orig + e.packets_reply + e.bytes_orig + e.bytes_reply, 0u);
  EXPECT_FALSE(e.start);
  EXPECT_FALSE(e.stop);
  EXPECT_EQ(e.event_time, ms(1795582226685));  // 0x18eb3085929901cc ns
  EXPECT_EQ(e.zone, 0);
  EXPECT_FALSE(e.mark);
}

TEST(ConntrackParse, Tcp4EndCarriesCountersAndTimes) {
  const auto e = parsed("tcp4_destroy.bin");
  EXPECT_EQ(e.type, T::ended);
  EXPECT_EQ(e.id, 0x67f73d34u);
  EXPECT_EQ(e.flow.source, ip("203.0.113.5"));
  EXPECT_EQ(e.flow.destination, ip("192.0.2.10"));
  EXPECT_EQ(e.flow.source_port, 40001);
  EXPECT_EQ(e.flow.destination_port, 3389);
  ASSERT_TRUE(e.has_counters);
  // 10 bytes up, 2 down, over lo: handshake, data, FINs and ACKs.
  EXPECT_EQ(e.packets_orig, 6u);
  EXPECT_EQ(e.bytes_orig, 330u);
  EXPECT_EQ(e.packets_reply, 4u);
  EXPECT_EQ(e.bytes_reply, 218u);
  EXPECT_EQ(e.start, ms(1795582226685));  // 0x18eb308592990693 ns
  // The entry lived on for TIME_WAIT (1 s in the capture's namespace): stop is its expiry.
  EXPECT_EQ(e.stop, ms(1795582227685));  // 0x18eb3085ce355ce0 ns
  EXPECT_TRUE(e.event_time);
}

TEST(ConntrackParse, Udp4StartAndEnd) {
  const auto s = parsed("udp4_new.bin");
  const auto e = parsed("udp4_destroy.bin");
  EXPECT_EQ(s.type, T::started);
  EXPECT_EQ(e.type, T::ended);
  for (const auto* ev : {&s, &e}) {
    EXPECT_EQ(ev->id, 0xf78cde19u);
    EXPECT_EQ(ev->flow.protocol, 17);
    EXPECT_EQ(ev->flow.source, ip("203.0.113.5"));
    EXPECT_EQ(ev->flow.source_port, 40002);
    EXPECT_EQ(ev->flow.destination, ip("192.0.2.10"));
    EXPECT_EQ(ev->flow.destination_port, 3389);
  }
  // "ping" and "pong": 20 bytes of IPv4, 8 of UDP, 4 of payload each way.
  ASSERT_TRUE(e.has_counters);
  EXPECT_EQ(e.packets_orig, 1u);
  EXPECT_EQ(e.bytes_orig, 32u);
  EXPECT_EQ(e.packets_reply, 1u);
  EXPECT_EQ(e.bytes_reply, 32u);
  EXPECT_EQ(e.start, ms(1795582226685));
  EXPECT_EQ(e.stop, ms(1795582227685));
}

TEST(ConntrackParse, Tcp6StartAndEnd) {
  const auto s = parsed("tcp6_new.bin");
  const auto e = parsed("tcp6_destroy.bin");
  EXPECT_EQ(s.type, T::started);
  EXPECT_EQ(e.type, T::ended);
  for (const auto* ev : {&s, &e}) {
    EXPECT_EQ(ev->id, 0xa4f2e32bu);
    EXPECT_EQ(ev->flow.source.family, Family::v6);
    EXPECT_EQ(ev->flow.source, ip("2001:db8:100::5"));
    EXPECT_EQ(ev->flow.source_port, 40003);
    EXPECT_EQ(ev->flow.destination, ip("2001:db8:20::10"));
    EXPECT_EQ(ev->flow.destination_port, 22);
    ASSERT_TRUE(ev->reply);
    EXPECT_EQ(ev->reply->source, ip("2001:db8:20::10"));
  }
  ASSERT_TRUE(e.has_counters);
  EXPECT_EQ(e.packets_orig, 6u);
  EXPECT_EQ(e.bytes_orig, 449u);
  EXPECT_EQ(e.packets_reply, 4u);
  EXPECT_EQ(e.bytes_reply, 298u);
  EXPECT_EQ(e.start, ms(1795582226685));
  EXPECT_EQ(e.stop, ms(1795582227686));
}

// --- what is not a start or end, or not a message at all ---------------------------------------

std::vector<std::uint8_t> with_header(std::vector<std::uint8_t> b, std::uint16_t type,
                                      std::uint16_t flags) {
  nlmsghdr h{};
  std::memcpy(&h, b.data(), sizeof h);
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  std::memcpy(b.data(), &h, sizeof h);
  return b;
}

TEST(ConntrackParse, UpdatesAndOtherMessagesAreNotEvents) {
  const auto news = fixture("tcp4_new.bin");
  const std::uint16_t ct_new = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  const std::uint16_t ct_get = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  for (const auto& b : {with_header(news, ct_new, 0), with_header(news, ct_new, NLM_F_MULTI),
                        with_header(news, ct_get, 0)}) {
    auto r = parse_conntrack_event(b.data(), b.size());
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(*r);
  }
  // Not ctnetlink's at all: nftables' subsystem, or a netlink control message.
  for (std::uint16_t type :
       {std::uint16_t(NFNL_SUBSYS_NFTABLES << 8), std::uint16_t(NLMSG_ERROR)}) {
    const auto b = with_header(news, type, NLM_F_CREATE);
    EXPECT_FALSE(parse_conntrack_event(b.data(), b.size()).ok()) << type;
  }
}

TEST(ConntrackParse, RefusesWrongFamilyAndMissingParts) {
  auto b = fixture("tcp4_new.bin");
  b[sizeof(nlmsghdr)] = 7;  // nfgen_family: neither AF_INET nor AF_INET6
  EXPECT_FALSE(parse_conntrack_event(b.data(), b.size()).ok());
  // An IPv6 message whose tuple holds IPv4 addresses.
  b = fixture("tcp4_new.bin");
  b[sizeof(nlmsghdr)] = AF_INET6;
  EXPECT_FALSE(parse_conntrack_event(b.data(), b.size()).ok());
  // Only the headers: no tuple, no id.
  b = fixture("tcp4_new.bin");
  b.resize(sizeof(nlmsghdr) + sizeof(nfgenmsg));
  const std::uint32_t len = static_cast<std::uint32_t>(b.size());
  std::memcpy(b.data(), &len, sizeof len);
  EXPECT_FALSE(parse_conntrack_event(b.data(), b.size()).ok());
  // A header claiming more bytes than there are.
  b = fixture("tcp4_destroy.bin");
  EXPECT_FALSE(parse_conntrack_event(b.data(), b.size() - 1).ok());
  EXPECT_FALSE(parse_conntrack_event(b.data(), 3).ok());
  EXPECT_FALSE(parse_conntrack_event(nullptr, 0).ok());
}

const char* const kFixtures[] = {"tcp4_new.bin",     "tcp4_destroy.bin", "udp4_new.bin",
                                 "udp4_destroy.bin", "tcp6_new.bin",     "tcp6_destroy.bin"};

void set_len(std::vector<std::uint8_t>& b) {
  const std::uint32_t len = static_cast<std::uint32_t>(b.size());
  std::memcpy(b.data(), &len, sizeof len);
}

TEST(ConntrackParse, TruncatedMessagesNeverCrash) {
  for (const char* name : kFixtures) {
    const auto full = fixture(name);
    const auto whole = parsed(name);
    for (std::size_t n = 0; n < full.size(); ++n) {
      std::vector<std::uint8_t> b(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      // As received: the header still claims the whole message.
      EXPECT_FALSE(parse_conntrack_event(b.data(), b.size()).ok()) << name << " cut at " << n;
      if (n < sizeof(nlmsghdr)) continue;
      // As if the kernel had sent less: the header agrees with what is there.
      set_len(b);
      auto r = parse_conntrack_event(b.data(), b.size());
      // Cut between attributes, a message can still be whole enough; then it says the same.
      if (r.ok() && *r) {
        EXPECT_EQ((*r)->id, whole.id) << name << " cut at " << n;
        EXPECT_EQ((*r)->flow.source, whole.flow.source);
      }
    }
  }
}

TEST(ConntrackParse, GarbledMessagesNeverCrash) {
  std::vector<std::vector<std::uint8_t>> originals;
  for (const char* name : kFixtures) originals.push_back(fixture(name));
  std::mt19937 rng(20261125);
  std::size_t refused = 0, total = 0;
  for (int round = 0; round < 4000; ++round) {
    for (const auto& orig : originals) {
      auto b = orig;
      // Flip a few bytes past the netlink header (the attribute lengths and types are what a
      // parser trips over), sometimes many.
      const int flips = 1 + static_cast<int>(rng() % (round % 10 == 0 ? 40 : 4));
      for (int i = 0; i < flips; ++i) {
        const std::size_t at = sizeof(nlmsghdr) + rng() % (b.size() - sizeof(nlmsghdr));
        b[at] = static_cast<std::uint8_t>(rng());
      }
      auto r = parse_conntrack_event(b.data(), b.size());
      ++total;
      if (!r.ok()) ++refused;
    }
  }
  // Most damage is noticed; none of it crashes (run under ASan to see reads stay in bounds).
  EXPECT_GT(refused, total / 10);
}

// --- attribution ---------------------------------------------------------------------------

const char* kPolicy = R"(
version = 1
site = "unit-site"
serial = 12
timezone = "UTC"
[providers.acme]
addresses = ["203.0.113.0/28", "2001:db8:100::/48"]
[providers.beta]
addresses = ["198.51.100.0/24"]
[windows.maintenance]
days = ["wed"]
from = "04:00"
to = "06:00"
[[links]]
name = "rdp"
provider = "acme"
hosts = ["192.0.2.10"]
ports = ["tcp/3389", "udp/3389"]
windows = ["maintenance"]
[[links]]
name = "ssh"
provider = "acme"
hosts = ["2001:db8:20::10"]
ports = ["tcp/22"]
[[links]]
name = "rmm"
provider = "acme"
direction = "outbound"
hosts = ["192.0.2.0/25"]
ports = ["tcp/443"]
windows = ["always"]
[[grants]]
link = "ssh"
ticket = "CHG-2001"
from = 2026-11-25T04:00:00Z
until = 2026-11-25T05:00:00Z
[[grants]]
link = "rdp"
ticket = "CHG-2002"
from = 2026-11-25T04:30:00Z
until = 2026-11-25T13:00:00Z
)";

Policy policy() {
  auto p = parse_policy_text(kPolicy, "unit.toml");
  EXPECT_TRUE(p.ok()) << p.diagnostics.str();
  return *p.policy;
}

ConntrackEvent synthetic(T type, const char* src, std::uint16_t sport, const char* dst,
                         std::uint16_t dport, std::uint32_t id = 77) {
  ConntrackEvent e;
  e.type = type;
  e.id = id;
  e.flow.source = ip(src);
  e.flow.destination = ip(dst);
  e.flow.protocol = 6;
  e.flow.source_port = sport;
  e.flow.destination_port = dport;
  Flow r;
  r.source = e.flow.destination;
  r.destination = e.flow.source;
  r.protocol = 6;
  r.source_port = dport;
  r.destination_port = sport;
  e.reply = r;
  return e;
}

TEST(SessionAttribution, InboundByWindow) {
  const Policy p = policy();
  const auto plan = compile(p, kCaptured, {});
  const auto e = attribute_session(parsed("tcp4_new.bin"), p, plan, kCaptured);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, EventKind::session_start);
  EXPECT_EQ(e->action, action::kSessionStarted);
  EXPECT_EQ(e->outcome, "success");
  EXPECT_EQ(e->site, "unit-site");
  EXPECT_EQ(e->serial, 12u);
  EXPECT_EQ(e->provider, "acme");
  EXPECT_EQ(e->link, "rdp");
  EXPECT_EQ(e->rule, "link/rdp");
  // The grant CHG-2002 is open too; the standing window is what is named.
  EXPECT_EQ(e->ticket, "");
  EXPECT_EQ(e->labels.at("opened_by"), "window");
  EXPECT_EQ(e->labels.at("window"), "maintenance");
  EXPECT_EQ(e->labels.at("conntrack_id"), std::to_string(0x67f73d34u));
  EXPECT_TRUE(e->reason.empty());
  ASSERT_TRUE(e->flow);
  EXPECT_EQ(e->flow->direction, FlowDirection::inbound);
  EXPECT_EQ(e->flow->destination_port, 3389);
  EXPECT_EQ(e->first_seen, ms(1795582226685));  // the kernel's event time
  EXPECT_FALSE(e->last_seen);
  EXPECT_EQ(e->message,
            "provider session started: tcp 203.0.113.5:40001 -> 192.0.2.10:3389 (link rdp, "
            "window maintenance, provider acme)");
}

TEST(SessionAttribution, InboundByGrantTicket) {
  const Policy p = policy();
  // tcp6 to the ssh link, which has no window: only the grant CHG-2001 opens it.
  const auto plan = compile(p, kCaptured, {});
  const auto e = attribute_session(parsed("tcp6_new.bin"), p, plan, kCaptured);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->link, "ssh");
  EXPECT_EQ(e->ticket, "CHG-2001");
  EXPECT_EQ(e->labels.at("opened_by"), "grant");
  EXPECT_FALSE(e->labels.contains("window"));
  // rdp after the window closed, while its grant still runs: the grant's ticket.
  const Instant noon = kCaptured + 7h;
  const auto rdp = attribute_session(parsed("tcp4_new.bin"), p, compile(p, noon, {}), noon);
  ASSERT_TRUE(rdp);
  EXPECT_EQ(rdp->link, "rdp");
  EXPECT_EQ(rdp->ticket, "CHG-2002");
  EXPECT_EQ(rdp->labels.at("opened_by"), "grant");
  EXPECT_NE(rdp->message.find("grant CHG-2002"), std::string::npos) << rdp->message;
}

TEST(SessionAttribution, Outbound) {
  const Policy p = policy();
  const auto plan = compile(p, kCaptured, {});
  const auto e = attribute_session(synthetic(T::started, "192.0.2.20", 50000, "203.0.113.9", 443),
                                   p, plan, kCaptured);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->link, "rmm");
  EXPECT_EQ(e->provider, "acme");
  EXPECT_EQ(e->flow->direction, FlowDirection::outbound);
  EXPECT_EQ(e->labels.at("window"), "always");
  // The link's hosts are the source side: a host outside them is no session of this link.
  EXPECT_FALSE(attribute_session(synthetic(T::started, "192.0.2.200", 50000, "203.0.113.9", 443), p,
                                 plan, kCaptured));
}

TEST(SessionAttribution, NotAProviderSession) {
  const Policy p = policy();
  const auto plan = compile(p, kCaptured, {});
  // Not a provider's address.
  EXPECT_FALSE(attribute_session(synthetic(T::started, "192.0.2.99", 40000, "192.0.2.10", 3389), p,
                                 plan, kCaptured));
  // A provider's address, but to a host no link names, or to a port the link does not.
  EXPECT_FALSE(attribute_session(synthetic(T::started, "203.0.113.5", 40000, "192.0.2.99", 3389), p,
                                 plan, kCaptured));
  EXPECT_FALSE(attribute_session(synthetic(T::started, "203.0.113.5", 40000, "192.0.2.10", 22), p,
                                 plan, kCaptured));
  // A provider without links at all.
  EXPECT_FALSE(attribute_session(synthetic(T::started, "198.51.100.7", 40000, "192.0.2.10", 3389),
                                 p, plan, kCaptured));
  // ICMP has no ports to match a link by.
  auto ping = synthetic(T::started, "203.0.113.5", 0, "192.0.2.10", 0);
  ping.flow.protocol = ping.reply->protocol = 1;
  EXPECT_FALSE(attribute_session(ping, p, plan, kCaptured));
}

TEST(SessionAttribution, MatchesTheHostBehindDnat) {
  const Policy p = policy();
  const auto plan = compile(p, kCaptured, {});
  // The provider dialled the gateway's public address; DNAT sent it to 192.0.2.10:3389.
  auto e = synthetic(T::started, "203.0.113.5", 40000, "198.51.100.1", 13389);
  e.reply->source = ip("192.0.2.10");
  e.reply->source_port = 3389;
  const auto s = attribute_session(e, p, plan, kCaptured);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->link, "rdp");
  EXPECT_EQ(s->flow->destination, ip("198.51.100.1"));  // what the provider connected to
  EXPECT_EQ(s->labels.at("nat_destination"), "192.0.2.10:3389");
}

TEST(SessionAttribution, ALinkTheKernelLetThroughWhileClosedIsStillReported) {
  const Policy p = policy();
  // During a lockdown nothing is open, yet the kernel confirmed the connection.
  CompileOptions locked;
  locked.lockdown_until = Instant::max();
  const auto e =
      attribute_session(parsed("tcp4_new.bin"), p, compile(p, kCaptured, locked), kCaptured);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->link, "rdp");
  EXPECT_EQ(e->reason, "link-closed");
  EXPECT_EQ(e->labels.at("opened_by"), "none");
  EXPECT_EQ(e->outcome, "success");
}

// --- the tracker: starts paired with ends -----------------------------------------------------

TEST(SessionTrackerTest, EndKeepsTheStartsAttributionAndCarriesDurationPacketsBytes) {
  const Policy p = policy();
  SessionTracker t;
  const auto start =
      t.observe(parsed("tcp4_new.bin"), p, compile(p, kCaptured, {}), kCaptured + 1ms);
  ASSERT_TRUE(start);
  EXPECT_EQ(t.open_sessions(), 1u);
  // The end is read later, when the window has closed and only a grant is open: the session
  // still belongs to the window that let it in.
  const Instant later = kCaptured + 7h;
  const auto end = t.observe(parsed("tcp4_destroy.bin"), p, compile(p, later, {}), later);
  ASSERT_TRUE(end);
  EXPECT_EQ(t.open_sessions(), 0u);
  EXPECT_EQ(end->kind, EventKind::session_end);
  EXPECT_EQ(end->action, action::kSessionEnded);
  EXPECT_EQ(end->outcome, "success");
  EXPECT_EQ(end->link, "rdp");
  EXPECT_EQ(end->ticket, "");
  EXPECT_EQ(end->labels.at("window"), "maintenance");
  EXPECT_EQ(end->labels.at("start_seen"), "true");
  EXPECT_EQ(end->labels.at("conntrack_id"), std::to_string(0x67f73d34u));
  EXPECT_EQ(end->packets, 10u);
  EXPECT_EQ(end->bytes, 548u);
  EXPECT_EQ(end->first_seen, ms(1795582226685));
  EXPECT_EQ(end->last_seen, ms(1795582227685));
  EXPECT_EQ(end->labels.at("duration_ms"), "1000");
  EXPECT_EQ(end->timestamp, later);
  EXPECT_EQ(end->message,
            "provider session ended after 1.000 s: tcp 203.0.113.5:40001 -> 192.0.2.10:3389 "
            "(link rdp, window maintenance, provider acme; 10 packets, 548 bytes)");
}

TEST(SessionTrackerTest, EndWithoutAStartIsReportedAndAttributedToWhatWasOpenAtItsStart) {
  const Policy p = policy();
  SessionTracker t;
  // Read at noon, when the ssh grant (04:00-05:00) is long over: the kernel's start time says
  // the session began under it.
  const Instant noon = kCaptured + 7h;
  const auto end = t.observe(parsed("tcp6_destroy.bin"), p, compile(p, noon, {}), noon);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->kind, EventKind::session_end);
  EXPECT_EQ(end->labels.at("start_seen"), "false");
  EXPECT_EQ(end->link, "ssh");
  EXPECT_EQ(end->ticket, "CHG-2001");
  EXPECT_EQ(end->packets, 10u);
  EXPECT_EQ(end->bytes, 747u);
  EXPECT_EQ(end->labels.at("duration_ms"), "1001");
  EXPECT_EQ(t.open_sessions(), 0u);
}

TEST(SessionTrackerTest, EndWithoutCountersOrTimesSaysSo) {
  const Policy p = policy();
  SessionTracker t;
  const auto plan = compile(p, kCaptured, {});
  const auto end =
      t.observe(synthetic(T::ended, "203.0.113.5", 40000, "192.0.2.10", 3389), p, plan, kCaptured);
  ASSERT_TRUE(end);
  EXPECT_EQ(end->labels.at("start_seen"), "false");
  EXPECT_EQ(end->labels.at("counters"), "unavailable");
  EXPECT_FALSE(end->bytes);
  EXPECT_FALSE(end->labels.contains("duration_ms"));
  EXPECT_NE(end->message.find("after an unknown time"), std::string::npos) << end->message;
}

TEST(SessionTrackerTest, OtherConnectionsAreNotTracked) {
  const Policy p = policy();
  SessionTracker t;
  const auto plan = compile(p, kCaptured, {});
  EXPECT_FALSE(t.observe(synthetic(T::started, "192.0.2.99", 40000, "192.0.2.10", 3389), p, plan,
                         kCaptured));
  EXPECT_EQ(t.open_sessions(), 0u);
  EXPECT_FALSE(
      t.observe(synthetic(T::ended, "192.0.2.99", 40000, "192.0.2.10", 3389), p, plan, kCaptured));
}

TEST(SessionTrackerTest, ForgetsTheOldestBeyondItsBoundAndStillReportsTheirEnds) {
  const Policy p = policy();
  SessionTracker t(SessionTrackerOptions{2});
  const auto plan = compile(p, kCaptured, {});
  for (std::uint32_t id = 1; id <= 3; ++id) {
    ASSERT_TRUE(t.observe(synthetic(T::started, "203.0.113.5",
                                    static_cast<std::uint16_t>(40000 + id), "192.0.2.10", 3389, id),
                          p, plan, kCaptured));
  }
  EXPECT_EQ(t.open_sessions(), 2u);
  EXPECT_EQ(t.forgotten(), 1u);
  const auto first = t.observe(synthetic(T::ended, "203.0.113.5", 40001, "192.0.2.10", 3389, 1), p,
                               plan, kCaptured + 1s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->labels.at("start_seen"), "false");
  const auto third = t.observe(synthetic(T::ended, "203.0.113.5", 40003, "192.0.2.10", 3389, 3), p,
                               plan, kCaptured + 1s);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->labels.at("start_seen"), "true");
  // No kernel times: the duration runs from when the start was seen.
  EXPECT_EQ(third->labels.at("duration_ms"), "1000");
  EXPECT_EQ(t.open_sessions(), 1u);
}

}  // namespace
}  // namespace drawbridge
