// compile(): the plan's properties checked on the plan itself (not on rendered text). `now` is
// only an argument, so every instant here is exact; weekdays and UTC offsets were checked with
// `date -u -d` and `TZ=America/Chicago date -d`.
#include "enforcer/ruleset_plan.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "enforcer/enforcer_config.h"
#include "enforcer/nft_render.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using Strings = std::vector<std::string>;

const fs::path kPolicies = fs::path(DRAWBRIDGE_SOURCE_DIR) / "policies";

Instant utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0, int ms = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         milliseconds{ms};
}

Policy load(const std::string& relative) {
  const ParsedPolicy parsed = parse_policy_file((kPolicies / relative).string());
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  return parsed.ok() ? *parsed.policy : Policy{};
}

// An inline policy: the common header, then `body`.
Policy inline_policy(std::string_view body, std::string_view expires = "") {
  std::string text = "version = 1\nsite = \"gw1\"\nserial = 1\ntimezone = \"UTC\"\n";
  if (!expires.empty()) text += "expires = " + std::string(expires) + "\n";
  text += body;
  const ParsedPolicy parsed = parse_policy_text(text, "inline.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str() << "\n" << text;
  return parsed.ok() ? *parsed.policy : Policy{};
}

RulesetPlan compile_at(const Policy& p, Instant now) {
  return compile(p, now, CompileOptions{});
}

std::string verdict_str(const Verdict& v) {
  switch (v.kind) {
    case Verdict::Kind::accept:
      return "accept";
    case Verdict::Kind::drop:
      return "drop";
    case Verdict::Kind::jump:
      return "jump " + v.chain;
    case Verdict::Kind::go_to:
      return "goto " + v.chain;
  }
  return "?";
}

// "10.20.0.10 tcp/3389 timeout=3600000ms"; the timeout in exact milliseconds.
std::string element_str(const SetElement& e) {
  std::string s;
  if (e.address) s += e.address->str();
  if (e.service) s += (s.empty() ? "" : " ") + e.service->str();
  if (e.timeout) s += " timeout=" + std::to_string(e.timeout->count()) + "ms";
  if (e.verdict) s += " : " + verdict_str(*e.verdict);
  return s;
}

Strings elements(const RulesetPlan& plan, std::string_view set) {
  const SetPlan* s = plan.set(set);
  EXPECT_NE(s, nullptr) << "no set " << set;
  Strings out;
  if (s == nullptr) return out;
  for (const auto& e : s->elements) out.push_back(element_str(e));
  return out;
}

// Every element of every set whose elements expire: the open windows.
std::size_t open_element_count(const RulesetPlan& plan) {
  std::size_t n = 0;
  for (const auto& s : plan.sets) {
    if (s.has_timeouts) n += s.elements.size();
  }
  return n;
}

// The log prefixes of a chain's rules, in order.
Strings prefixes(const RulesetPlan& plan, std::string_view chain) {
  const ChainPlan* c = plan.chain(chain);
  EXPECT_NE(c, nullptr) << "no chain " << chain;
  Strings out;
  if (c == nullptr) return out;
  for (const auto& r : c->rules) {
    if (r.log_prefix) out.push_back(*r.log_prefix);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// clinic-east: one provider, one inbound link (weeknights 22:00-02:00 Chicago), one grant for a
// single host (CHG-1042, 2026-11-26 14:00-16:00Z), expiry 2026-12-31T00:00Z.

class ClinicEast : public testing::Test {
 protected:
  Policy policy = load("clinic-east.toml");
};

TEST_F(ClinicEast, GrantOpensOnlyItsHostForTheTimeLeft) {
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 26, 15));  // Thu 09:00 CST
  EXPECT_EQ(elements(plan, "l1_open_v4"), (Strings{"10.20.0.10 tcp/3389 timeout=3600000ms",
                                                   "10.20.0.10 udp/3389 timeout=3600000ms"}));
  // The scope still covers the whole link, so the other hosts are attributed to it as closed.
  EXPECT_EQ(elements(plan, "p1_scope_in_v4"),
            (Strings{"10.20.0.0/28 tcp/3389 : goto l1_rdp_servers_closed",
                     "10.20.0.0/28 udp/3389 : goto l1_rdp_servers_closed"}));
  ASSERT_EQ(plan.openings.size(), 1u);
  const Opening& o = plan.openings[0];
  EXPECT_EQ(o.link, "rdp-servers");
  EXPECT_EQ(o.provider, "acme");
  EXPECT_EQ(o.direction, Direction::inbound);
  EXPECT_EQ(o.ticket, std::optional<std::string>("CHG-1042"));
  EXPECT_EQ(o.hosts, std::vector<AddressRange>{AddressRange::parse("10.20.0.10").value()});
  EXPECT_EQ(o.until, utc(2026, 11, 26, 16));
  EXPECT_FALSE(plan.expired);
}

TEST_F(ClinicEast, GrantIsOpenFromItsStartInclusiveToItsEndExclusive) {
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 11, 26, 13, 59, 59, 999))), 0u);
  EXPECT_TRUE(compile_at(policy, utc(2026, 11, 26, 13, 59, 59, 999)).openings.empty());

  const RulesetPlan at_start = compile_at(policy, utc(2026, 11, 26, 14));
  ASSERT_EQ(at_start.set("l1_open_v4")->elements.size(), 2u);
  for (const auto& e : at_start.set("l1_open_v4")->elements) {
    EXPECT_EQ(e.timeout, milliseconds{2 * 3'600'000});
  }

  const RulesetPlan last_ms = compile_at(policy, utc(2026, 11, 26, 15, 59, 59, 999));
  ASSERT_EQ(last_ms.set("l1_open_v4")->elements.size(), 2u);
  for (const auto& e : last_ms.set("l1_open_v4")->elements) EXPECT_EQ(e.timeout, milliseconds{1});

  const RulesetPlan at_end = compile_at(policy, utc(2026, 11, 26, 16));
  EXPECT_EQ(open_element_count(at_end), 0u);
  EXPECT_TRUE(at_end.openings.empty());
  // The set itself stays (empty), so the rules referring to it stay valid.
  ASSERT_NE(at_end.set("l1_open_v4"), nullptr);
  EXPECT_TRUE(at_end.set("l1_open_v4")->has_timeouts);
}

TEST_F(ClinicEast, WindowOpensEveryHostWithTheExactTimeLeft) {
  // Thu 2026-11-26 22:00 CST = 2026-11-27T04:00Z; it closes Fri 02:00 CST = 08:00Z.
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 27, 5, 0, 0, 250));
  EXPECT_EQ(elements(plan, "l1_open_v4"), (Strings{"10.20.0.0/28 tcp/3389 timeout=10799750ms",
                                                   "10.20.0.0/28 udp/3389 timeout=10799750ms"}));
  ASSERT_EQ(plan.openings.size(), 1u);
  EXPECT_EQ(plan.openings[0].ticket, std::nullopt);
  EXPECT_EQ(plan.openings[0].until, utc(2026, 11, 27, 8));
  // The opening lists the link's hosts as written; the set holds their union.
  EXPECT_EQ(plan.openings[0].hosts, policy.links[0].hosts);
}

TEST_F(ClinicEast, WindowEdges) {
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 11, 27, 3, 59, 59, 999))), 0u);
  const RulesetPlan at_open = compile_at(policy, utc(2026, 11, 27, 4));
  ASSERT_EQ(at_open.set("l1_open_v4")->elements.size(), 2u);
  EXPECT_EQ(at_open.set("l1_open_v4")->elements[0].timeout, milliseconds{4 * 3'600'000});
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 11, 27, 8))), 0u);
  // Friday night is a weeknight (it ends Saturday 02:00 CST), Saturday night is not.
  const RulesetPlan friday = compile_at(policy, utc(2026, 11, 28, 5));  // Fri 23:00 CST
  ASSERT_EQ(friday.set("l1_open_v4")->elements.size(), 2u);
  EXPECT_EQ(friday.set("l1_open_v4")->elements[0].timeout, milliseconds{3 * 3'600'000});
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 11, 29, 5))), 0u);  // Sat 23:00
}

TEST_F(ClinicEast, WindowFollowsDaylightSavingTime) {
  // Chicago moves to CDT (UTC-5) on Sun 2026-03-08. Fri 2026-03-06 22:00 CST is 04:00Z;
  // Mon 2026-03-09 22:00 CDT is 2026-03-10T03:00Z and the window ends Tue 02:00 CDT = 07:00Z.
  const RulesetPlan cst = compile_at(policy, utc(2026, 3, 7, 4, 30));
  ASSERT_EQ(cst.set("l1_open_v4")->elements.size(), 2u);
  EXPECT_EQ(cst.set("l1_open_v4")->elements[0].timeout, milliseconds{(3 * 60 + 30) * 60'000});
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 3, 10, 2, 59, 59, 999))), 0u);
  const RulesetPlan cdt = compile_at(policy, utc(2026, 3, 10, 3, 30));
  ASSERT_EQ(cdt.set("l1_open_v4")->elements.size(), 2u);
  EXPECT_EQ(cdt.set("l1_open_v4")->elements[0].timeout, milliseconds{(3 * 60 + 30) * 60'000});
  EXPECT_EQ(cdt.openings[0].until, utc(2026, 3, 10, 7));
}

TEST_F(ClinicEast, AfterExpiryNothingIsOpenAndClosedChainsSayExpired) {
  // The last weeknight before expiry ends Wed 2026-12-30 02:00 CST; the expiry itself is
  // Wed 18:00 CST, so just before it the link is simply outside its window.
  const RulesetPlan before = compile_at(policy, utc(2026, 12, 30, 23, 59, 59, 999));
  EXPECT_FALSE(before.expired);
  EXPECT_EQ(prefixes(before, "l1_rdp_servers_closed"),
            Strings{"drawbridge:outside-window:link/rdp-servers"});

  for (Instant t : {utc(2026, 12, 31), utc(2026, 12, 31, 4, 30), utc(2027, 1, 1, 5)}) {
    SCOPED_TRACE(format_instant(t));
    const RulesetPlan plan = compile_at(policy, t);
    EXPECT_TRUE(plan.expired);
    EXPECT_EQ(open_element_count(plan), 0u);
    EXPECT_TRUE(plan.openings.empty());
    EXPECT_EQ(prefixes(plan, "l1_rdp_servers_closed"),
              Strings{"drawbridge:policy-expired:link/rdp-servers"});
    // Traffic is still attributed to the link, so it reaches the expired chain.
    EXPECT_EQ(elements(plan, "p1_scope_in_v4").size(), 2u);
  }
}

TEST_F(ClinicEast, ProviderMapDispatchesBothFamiliesToTheProviderChain) {
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 26, 15));
  EXPECT_EQ(elements(plan, "providers_v4"), Strings{"203.0.113.0/28 : goto p1_acme"});
  EXPECT_EQ(elements(plan, "providers_v6"), Strings{"2001:db8:100::/48 : goto p1_acme"});
  EXPECT_EQ(elements(plan, "linked_v4"),
            (Strings{"10.20.0.0/28 tcp/3389 : goto l1_rdp_servers_foreign",
                     "10.20.0.0/28 udp/3389 : goto l1_rdp_servers_foreign"}));
  EXPECT_TRUE(elements(plan, "linked_v6").empty());
  EXPECT_EQ(elements(plan, "guarded"), (Strings{"tcp/22", "tcp/3389", "tcp/5900", "tcp/5938"}));
  EXPECT_EQ(elements(plan, "p1_hosts_v4"), Strings{"10.20.0.0/28"});
  // No IPv6 hosts: no IPv6 sets for the provider (the gate's v6 maps always exist).
  EXPECT_EQ(plan.set("l1_open_v6"), nullptr);
  EXPECT_EQ(plan.set("p1_scope_in_v6"), nullptr);
  EXPECT_EQ(plan.set("p1_hosts_v6"), nullptr);
}

TEST_F(ClinicEast, InboundRulesMatchHostAsDestinationAndRepliesAsSource) {
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 26, 15));
  const ChainPlan* c = plan.chain("p1_acme");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->comment, "provider acme");
  ASSERT_EQ(c->rules.size(), 9u);
  const std::vector<Field> fwd{Field::daddr, Field::l4proto, Field::dport};
  const std::vector<Field> rep{Field::saddr, Field::l4proto, Field::sport};
  EXPECT_EQ(c->rules[0].key, fwd);
  EXPECT_EQ(c->rules[0].set, "l1_open_v4");
  // A plain set and a verdict in the rule: elements that jump would make the kernel re-validate
  // the whole table at every window edge.
  EXPECT_FALSE(c->rules[0].verdict_map);
  EXPECT_EQ(c->rules[0].verdict, (Verdict{Verdict::Kind::go_to, "l1_rdp_servers_allow"}));
  EXPECT_FALSE(c->rules[0].reply_only);
  EXPECT_EQ(c->rules[1].key, rep);
  EXPECT_EQ(c->rules[1].set, "l1_open_v4");
  EXPECT_EQ(c->rules[1].verdict, (Verdict{Verdict::Kind::go_to, "l1_rdp_servers_allow"}));
  EXPECT_TRUE(c->rules[1].reply_only);
  EXPECT_EQ(c->rules[2].key, fwd);
  EXPECT_EQ(c->rules[2].set, "p1_scope_in_v4");
  EXPECT_EQ(c->rules[3].key, rep);
  EXPECT_EQ(c->rules[3].set, "p1_scope_in_v4");
  // Attributing a packet from the service port to the closed link needs it to be a reply; any
  // other packet from that port still ends in a drop further down (unapproved-port).
  EXPECT_TRUE(c->rules[3].reply_only);
  EXPECT_EQ(c->rules[4].key, std::vector<Field>{Field::daddr});
  EXPECT_EQ(c->rules[5].key, std::vector<Field>{Field::saddr});
  EXPECT_EQ(c->rules[4].set, "p1_hosts_v4");
  EXPECT_EQ(c->rules[6].set, "linked_v4");
  EXPECT_EQ(c->rules[7].set, "linked_v6");
  EXPECT_EQ(c->rules[7].family, Family::v6);
  EXPECT_TRUE(c->rules[8].key.empty());
  EXPECT_EQ(c->rules[8].verdict, (Verdict{Verdict::Kind::drop, {}}));
}

TEST_F(ClinicEast, LogPrefixForEachReason) {
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 26, 15));
  EXPECT_EQ(prefixes(plan, "gate"), Strings{"drawbridge:unapproved-source:guard"});
  EXPECT_EQ(prefixes(plan, "p1_acme"), (Strings{"drawbridge:unapproved-port:provider/acme",
                                                "drawbridge:unapproved-port:provider/acme",
                                                "drawbridge:unapproved-host:provider/acme"}));
  EXPECT_EQ(prefixes(plan, "l1_rdp_servers_closed"),
            Strings{"drawbridge:outside-window:link/rdp-servers"});
  EXPECT_EQ(prefixes(plan, "l1_rdp_servers_foreign"),
            Strings{"drawbridge:unapproved-source:link/rdp-servers"});
  EXPECT_TRUE(prefixes(plan, "l1_rdp_servers_allow").empty());
  EXPECT_TRUE(prefixes(plan, "input").empty());
  EXPECT_TRUE(prefixes(plan, "forward").empty());
  // Every logging rule counts and drops; the allow chain counts and accepts.
  for (const auto& c : plan.chains) {
    for (const auto& r : c.rules) {
      if (!r.log_prefix) continue;
      EXPECT_TRUE(r.counter) << c.name;
      EXPECT_EQ(r.verdict, (Verdict{Verdict::Kind::drop, {}})) << c.name;
    }
  }
  const ChainPlan* allow = plan.chain("l1_rdp_servers_allow");
  ASSERT_EQ(allow->rules.size(), 1u);
  EXPECT_TRUE(allow->rules[0].counter);
  EXPECT_EQ(allow->rules[0].verdict, (Verdict{Verdict::Kind::accept, {}}));
}

TEST(LogPrefix, FormatAndReasonNames) {
  EXPECT_EQ(deny_reason_name(DenyReason::outside_window), "outside-window");
  EXPECT_EQ(deny_reason_name(DenyReason::unapproved_source), "unapproved-source");
  EXPECT_EQ(deny_reason_name(DenyReason::unapproved_host), "unapproved-host");
  EXPECT_EQ(deny_reason_name(DenyReason::unapproved_port), "unapproved-port");
  EXPECT_EQ(deny_reason_name(DenyReason::policy_expired), "policy-expired");
  EXPECT_EQ(log_prefix(DenyReason::unapproved_port, "provider/acme"),
            "drawbridge:unapproved-port:provider/acme");
  EXPECT_EQ(log_prefix(DenyReason::unapproved_source, "guard"),
            "drawbridge:unapproved-source:guard");
  // NF_LOG_PREFIXLEN is 128 including the terminator: the longest names still fit.
  const std::string longest(48, 'x');
  EXPECT_LT(log_prefix(DenyReason::unapproved_source, "provider/" + longest).size(), 128u);
}

// ---------------------------------------------------------------------------------------------
// Options, base chains and the gate

TEST(CompileOptions, TableLogGroupAndPriorityAppearInPlanAndRendering) {
  const Policy policy = load("clinic-east.toml");
  CompileOptions opt;
  opt.table = "edge_guard";
  opt.log_group = 7;
  opt.priority = -20;
  const RulesetPlan plan = compile(policy, utc(2026, 11, 26, 15), opt);
  EXPECT_EQ(plan.table, "edge_guard");
  EXPECT_EQ(plan.log_group, 7);
  ASSERT_GE(plan.chains.size(), 2u);
  EXPECT_EQ(plan.chains[0].hook->priority, -20);
  EXPECT_EQ(plan.chains[1].hook->priority, -20);

  const std::string text = render_nft(plan);
  EXPECT_NE(text.find("table inet edge_guard {\n"), std::string::npos);
  EXPECT_EQ(text.find("table inet drawbridge"), std::string::npos);
  EXPECT_NE(text.find("type filter hook input priority -20; policy accept;"), std::string::npos);
  EXPECT_NE(text.find("type filter hook forward priority -20; policy accept;"), std::string::npos);
  // Every log statement uses the configured group (6 logging rules in this plan: guard, two
  // unapproved-port, unapproved-host, outside-window, unapproved-source of the link).
  std::size_t logs = 0;
  for (std::size_t pos = text.find("log prefix"); pos != std::string::npos;
       pos = text.find("log prefix", pos + 1)) {
    ++logs;
    const auto eol = text.find('\n', pos);
    EXPECT_NE(text.substr(pos, eol - pos).find(" group 7 drop"), std::string::npos)
        << text.substr(pos, eol - pos);
  }
  EXPECT_EQ(logs, 6u);
  EXPECT_EQ(text.find("group 0"), std::string::npos);

  opt.priority = 0;
  EXPECT_NE(render_nft(compile(policy, utc(2026, 11, 26, 15), opt)).find("priority filter;"),
            std::string::npos);
  opt.priority = 5;
  EXPECT_NE(render_nft(compile(policy, utc(2026, 11, 26, 15), opt)).find("priority filter + 5;"),
            std::string::npos);
}

// With a per-source log rate every deny point logs through a meter per family and then drops
// and counts the rest without logging; nothing that was dropped before is let through.
TEST(CompileOptions, LogRatePerSourceMetersEveryDenyPointAndStillDrops) {
  const Policy policy = load("clinic-east.toml");
  const Instant now = utc(2026, 11, 26, 15);
  const RulesetPlan plain = compile(policy, now, CompileOptions{});
  CompileOptions opt;
  opt.log_rate_per_source = 50;
  const RulesetPlan plan = compile(policy, now, opt);

  for (const char* name : {"log_rate_v4", "log_rate_v6"}) {
    const SetPlan* meter = plan.set(name);
    ASSERT_NE(meter, nullptr) << name;
    EXPECT_TRUE(meter->dynamic);
    EXPECT_FALSE(meter->interval);
    EXPECT_EQ(meter->size, kLogMeterSize);
    EXPECT_TRUE(meter->elements.empty());
  }
  EXPECT_EQ(plain.set("log_rate_v4"), nullptr);

  // Every prefix logged before is logged now, only through meters, and each is followed by the
  // rule that drops and counts what the meters refused.
  std::multiset<std::string> before, metered, rate_limited;
  for (const auto& c : plain.chains) {
    for (const auto& r : c.rules) {
      if (r.log_prefix) before.insert(*r.log_prefix);
    }
  }
  for (const auto& c : plan.chains) {
    for (std::size_t i = 0; i < c.rules.size(); ++i) {
      const RulePlan& r = c.rules[i];
      if (r.log_prefix) {
        ASSERT_TRUE(r.meter) << c.name;
        EXPECT_TRUE(r.key.empty()) << c.name << ": the lookup happens once, before the meters";
        EXPECT_EQ(r.meter->rate, 50u);
        EXPECT_EQ(r.meter->set, r.meter->family == Family::v4 ? "log_rate_v4" : "log_rate_v6");
        ASSERT_TRUE(r.verdict);
        EXPECT_EQ(r.verdict->kind, Verdict::Kind::drop);
        if (r.meter->family == Family::v4) metered.insert(*r.log_prefix);
      }
      if (r.comment.rfind(kRateLimitedComment, 0) == 0) {
        rate_limited.insert(r.comment.substr(kRateLimitedComment.size()));
        ASSERT_GE(i, 2u);
        EXPECT_EQ(c.rules[i - 2].meter->family, Family::v4);
        EXPECT_EQ(c.rules[i - 1].meter->family, Family::v6);
        EXPECT_TRUE(r.counter);
        EXPECT_FALSE(r.meter);
        EXPECT_FALSE(r.log_prefix);
        ASSERT_TRUE(r.verdict);
        EXPECT_EQ(r.verdict->kind, Verdict::Kind::drop);
        EXPECT_TRUE(r.key.empty());
        EXPECT_EQ(i + 1, c.rules.size()) << c.name << ": nothing may follow the final drop";
      }
    }
  }
  EXPECT_EQ(std::set<std::string>(metered.begin(), metered.end()),
            std::set<std::string>(before.begin(), before.end()));
  EXPECT_EQ(rate_limited, metered);

  // The guard lookup in the gate sends its matches to a deny chain instead of logging itself.
  const ChainPlan* gate = plan.chain("gate");
  ASSERT_NE(gate, nullptr);
  const RulePlan& guard = gate->rules.back();
  EXPECT_EQ(guard.set, "guarded");
  ASSERT_TRUE(guard.verdict);
  EXPECT_EQ(guard.verdict->kind, Verdict::Kind::go_to);
  EXPECT_TRUE(guard.counter);
  const ChainPlan* deny = plan.chain(guard.verdict->chain);
  ASSERT_NE(deny, nullptr);
  EXPECT_EQ(deny->rules.size(), 3u);
  EXPECT_EQ(deny->rules[0].log_prefix, log_prefix(DenyReason::unapproved_source, "guard"));

  EXPECT_NE(plan_fingerprint(plan), plan_fingerprint(plain));
  opt.log_rate_per_source = 51;
  EXPECT_NE(plan_fingerprint(compile(policy, now, opt)), plan_fingerprint(plan));
  const std::string text = render_nft(plan);
  EXPECT_NE(text.find("update @log_rate_v4 { ip saddr limit rate 50/second burst 50 packets }"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("flags dynamic,timeout"), std::string::npos);
}

TEST(CompileOptions, DefaultsMatchTheEnforcerConfig) {
  const CompileOptions opt;
  const EnforcerConfig cfg;
  EXPECT_EQ(opt.table, "drawbridge");
  EXPECT_EQ(opt.table, cfg.table);
  EXPECT_EQ(opt.log_group, cfg.log_group);
  EXPECT_EQ(opt.priority, cfg.priority);
  EXPECT_EQ(opt.priority, -10);
  const RulesetPlan plan = compile_at(load("clinic-east.toml"), utc(2026, 11, 26, 15));
  EXPECT_EQ(plan.table, "drawbridge");
  EXPECT_EQ(plan.chains[0].hook->priority, -10);
}

TEST(BaseChains, InputAndForwardJumpToGate) {
  const RulesetPlan plan = compile_at(load("clinic-east.toml"), utc(2026, 11, 26, 15));
  ASSERT_GE(plan.chains.size(), 3u);
  const ChainPlan& input = plan.chains[0];
  const ChainPlan& forward = plan.chains[1];
  EXPECT_EQ(input.name, "input");
  ASSERT_TRUE(input.hook);
  EXPECT_EQ(input.hook->point, Hook::Point::input);
  EXPECT_EQ(forward.name, "forward");
  ASSERT_TRUE(forward.hook);
  EXPECT_EQ(forward.hook->point, Hook::Point::forward);
  // input: IPv6 neighbour discovery (solicit, advert), replies to the gateway's own
  // connections, then the gate. Nothing else is accepted before the gate.
  ASSERT_EQ(input.rules.size(), 4u);
  EXPECT_EQ(input.rules[0].icmpv6_type, std::optional<std::uint8_t>(135));
  EXPECT_EQ(input.rules[1].icmpv6_type, std::optional<std::uint8_t>(136));
  for (std::size_t i : {0u, 1u}) {
    EXPECT_TRUE(input.rules[i].key.empty());
    EXPECT_FALSE(input.rules[i].reply_only);
    EXPECT_FALSE(input.rules[i].log_prefix);
    EXPECT_EQ(input.rules[i].verdict, (Verdict{Verdict::Kind::accept, {}}));
  }
  EXPECT_TRUE(input.rules[2].reply_only);
  EXPECT_TRUE(input.rules[2].key.empty());
  EXPECT_FALSE(input.rules[2].icmpv6_type);
  EXPECT_EQ(input.rules[2].verdict, (Verdict{Verdict::Kind::accept, {}}));
  EXPECT_EQ(input.rules[3].verdict, (Verdict{Verdict::Kind::jump, "gate"}));
  EXPECT_FALSE(input.rules[3].reply_only);
  EXPECT_FALSE(input.rules[3].icmpv6_type);
  // Neighbour discovery is never forwarded: the forward chain only jumps to the gate.
  ASSERT_EQ(forward.rules.size(), 1u);
  EXPECT_EQ(forward.rules[0].verdict, (Verdict{Verdict::Kind::jump, "gate"}));
  EXPECT_TRUE(forward.rules[0].key.empty());
  // No other chain is hooked.
  for (std::size_t i = 2; i < plan.chains.size(); ++i) {
    EXPECT_FALSE(plan.chains[i].hook) << plan.chains[i].name;
  }
}

TEST(Gate, ProvidersThenLinkedThenGuarded) {
  const RulesetPlan plan = compile_at(load("clinic-east.toml"), utc(2026, 11, 26, 15));
  const ChainPlan* gate = plan.chain("gate");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(plan.chains[2].name, "gate");
  Strings got;
  for (const auto& r : gate->rules) {
    std::string s = std::string(r.family == Family::v4 ? "v4" : "v6") + " ";
    for (Field f : r.key) s += std::to_string(static_cast<int>(f));
    s += " @" + r.set + (r.verdict_map ? " vmap" : "");
    got.push_back(s);
  }
  // Field values: saddr 0, daddr 1, l4proto 2, sport 3, dport 4.
  EXPECT_EQ(got, (Strings{"v4 0 @providers_v4 vmap", "v6 0 @providers_v6 vmap",
                          "v4 1 @providers_v4 vmap", "v6 1 @providers_v6 vmap",
                          "v4 124 @linked_v4 vmap", "v6 124 @linked_v6 vmap", "v4 24 @guarded"}));
  EXPECT_EQ(gate->rules.back().verdict, (Verdict{Verdict::Kind::drop, {}}));
  // The gate comment names the plan, so a restarted enforcer can recognise it in the kernel.
  EXPECT_EQ(gate->comment, "drawbridge site clinic-east serial 7 plan " + plan_fingerprint(plan));
}

TEST(PlanFingerprint, IgnoresOpenElementsButNotStructure) {
  const Policy policy = load("clinic-east.toml");
  const RulesetPlan closed = compile_at(policy, utc(2026, 11, 26, 12));
  const RulesetPlan grant = compile_at(policy, utc(2026, 11, 26, 15));
  const RulesetPlan window = compile_at(policy, utc(2026, 11, 27, 5));
  ASSERT_NE(open_element_count(grant), open_element_count(closed));
  EXPECT_EQ(plan_fingerprint(closed), plan_fingerprint(grant));
  EXPECT_EQ(plan_fingerprint(closed), plan_fingerprint(window));
  // Expiry changes what the closed chains log: a different structure.
  EXPECT_NE(plan_fingerprint(closed), plan_fingerprint(compile_at(policy, utc(2027, 1, 1))));
  CompileOptions other;
  other.log_group = 3;
  EXPECT_NE(plan_fingerprint(closed),
            plan_fingerprint(compile(policy, utc(2026, 11, 26, 12), other)));
  Policy more = policy;
  more.guard.ports.push_back(PortRange::parse("tcp/5901").value());
  EXPECT_NE(plan_fingerprint(closed), plan_fingerprint(compile_at(more, utc(2026, 11, 26, 12))));
}

// ---------------------------------------------------------------------------------------------
// Timeouts from windows and grants together, and the expiry cap

constexpr std::string_view kDailyWindowAndSubsetGrant = R"(
[providers.msp]
addresses = ["192.0.2.0/24"]

[windows.morning]
days = ["mon","tue","wed","thu","fri","sat","sun"]
from = "08:00"
to   = "12:00"

[[links]]
name     = "ssh"
provider = "msp"
hosts    = ["10.0.0.0/24"]
ports    = ["tcp/22"]
windows  = ["morning"]

[[grants]]
link   = "ssh"
ticket = "CHG-LATE"
from   = 2026-05-04T09:00:00Z
until  = 2026-05-04T16:00:00Z
hosts  = ["10.0.0.64/26"]

[[grants]]
link   = "ssh"
ticket = "CHG-SHORT"
from   = 2026-05-05T09:00:00Z
until  = 2026-05-05T11:00:00Z
hosts  = ["10.0.0.64/26"]
)";

TEST(CompileTimeouts, GrantForSomeHostsSplitsTheLinkIntoPiecesWithTheirOwnTimeouts) {
  const Policy policy = inline_policy(kDailyWindowAndSubsetGrant);
  // 10:00: the window is open for all hosts until 12:00, the grant for 64/26 until 16:00.
  const RulesetPlan plan = compile_at(policy, utc(2026, 5, 4, 10));
  EXPECT_EQ(elements(plan, "l1_open_v4"), (Strings{"10.0.0.0/26 tcp/22 timeout=7200000ms",
                                                   "10.0.0.64/26 tcp/22 timeout=21600000ms",
                                                   "10.0.0.128/25 tcp/22 timeout=7200000ms"}));
  EXPECT_EQ(elements(plan, "p1_scope_in_v4"), Strings{"10.0.0.0/24 tcp/22 : goto l1_ssh_closed"});
  ASSERT_EQ(plan.openings.size(), 2u);
  EXPECT_EQ(plan.openings[0].ticket, std::nullopt);
  EXPECT_EQ(plan.openings[0].until, utc(2026, 5, 4, 12));
  EXPECT_EQ(plan.openings[1].ticket, std::optional<std::string>("CHG-LATE"));
  EXPECT_EQ(plan.openings[1].until, utc(2026, 5, 4, 16));

  // 13:00: the window has closed; only the grant's hosts are open.
  EXPECT_EQ(elements(compile_at(policy, utc(2026, 5, 4, 13)), "l1_open_v4"),
            Strings{"10.0.0.64/26 tcp/22 timeout=10800000ms"});
}

TEST(CompileTimeouts, GrantEndingBeforeTheWindowAddsNoPiece) {
  // CHG-SHORT ends at 11:00, inside the window (until 12:00): the later end wins everywhere, so
  // the pieces are equal again and merge back into one element.
  const RulesetPlan plan =
      compile_at(inline_policy(kDailyWindowAndSubsetGrant), utc(2026, 5, 5, 10));
  EXPECT_EQ(elements(plan, "l1_open_v4"), Strings{"10.0.0.0/24 tcp/22 timeout=7200000ms"});
  EXPECT_EQ(plan.openings.size(), 2u);
}

TEST(CompileTimeouts, AlwaysWithoutExpiryHasNoTimeout) {
  const Policy policy = load("valid/rmm-outbound-ipv6.toml");
  for (Instant t : {utc(2026, 1, 1), utc(2026, 6, 1, 12, 34, 56, 789), utc(2040, 3, 1)}) {
    SCOPED_TRACE(format_instant(t));
    const RulesetPlan plan = compile_at(policy, t);
    EXPECT_EQ(elements(plan, "l1_open_v4"),
              (Strings{"192.168.1.20 tcp/443", "192.168.1.20 tcp/8040-8041"}));
    EXPECT_EQ(elements(plan, "l1_open_v6"),
              (Strings{"2001:db8:aa::10/127 tcp/443", "2001:db8:aa::10/127 tcp/8040-8041"}));
    ASSERT_EQ(plan.openings.size(), 1u);
    EXPECT_EQ(plan.openings[0].until, Instant::max());
    EXPECT_EQ(plan.openings[0].direction, Direction::outbound);
  }
}

constexpr std::string_view kAlwaysAndNightly = R"(
[providers.msp]
addresses = ["192.0.2.0/24"]

[windows.nightly]
days = ["mon","tue","wed","thu","fri","sat","sun"]
from = "22:00"
to   = "02:00"

[[links]]
name     = "always-on"
provider = "msp"
hosts    = ["10.0.0.1"]
ports    = ["tcp/443"]
windows  = ["always"]

[[links]]
name     = "night"
provider = "msp"
hosts    = ["10.0.0.2"]
ports    = ["tcp/22"]
windows  = ["nightly"]

[[grants]]
link   = "night"
ticket = "CHG-9"
from   = 2026-04-30T12:00:00Z
until  = 2026-05-01T00:00:00Z
hosts  = ["10.0.0.2"]
)";

TEST(CompileTimeouts, CappedAtExpiry) {
  const Policy policy = inline_policy(kAlwaysAndNightly, "2026-05-01T00:00:00Z");
  // 23:00: "always" would never end, the nightly window would end at 02:00 and the grant ends
  // at the expiry: all three are cut to the hour left before the expiry.
  const RulesetPlan plan = compile_at(policy, utc(2026, 4, 30, 23));
  EXPECT_EQ(elements(plan, "l1_open_v4"), Strings{"10.0.0.1 tcp/443 timeout=3600000ms"});
  EXPECT_EQ(elements(plan, "l2_open_v4"), Strings{"10.0.0.2 tcp/22 timeout=3600000ms"});
  for (const auto& o : plan.openings) EXPECT_EQ(o.until, utc(2026, 5, 1)) << o.link;
  EXPECT_EQ(plan.openings.size(), 3u);  // always, nightly, CHG-9

  const RulesetPlan last = compile_at(policy, utc(2026, 4, 30, 23, 59, 59, 999));
  for (const char* set : {"l1_open_v4", "l2_open_v4"}) {
    ASSERT_FALSE(last.set(set)->elements.empty()) << set;
    for (const auto& e : last.set(set)->elements) EXPECT_EQ(e.timeout, milliseconds{1}) << set;
  }

  const RulesetPlan expired = compile_at(policy, utc(2026, 5, 1));
  EXPECT_TRUE(expired.expired);
  EXPECT_EQ(open_element_count(expired), 0u);
  EXPECT_EQ(prefixes(expired, "l1_always_on_closed"),
            Strings{"drawbridge:policy-expired:link/always-on"});
  EXPECT_EQ(prefixes(expired, "l2_night_closed"), Strings{"drawbridge:policy-expired:link/night"});
}

TEST(CompileTimeouts, GrantEndingAtExpiryRunsToIt) {
  // grants-only: CHG-2 ends exactly when the policy expires.
  const Policy policy = load("valid/grants-only.toml");
  EXPECT_EQ(elements(compile_at(policy, utc(2026, 8, 20, 12)), "l1_open_v4"),
            Strings{"172.16.5.0/29 tcp/5900 timeout=993600000ms"});
  // Between the two grants, and before the first: closed.
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 8, 5))), 0u);
  EXPECT_EQ(open_element_count(compile_at(policy, utc(2026, 8, 1))), 0u);
  EXPECT_EQ(elements(compile_at(policy, utc(2026, 8, 3, 13, 30)), "l1_open_v4"),
            Strings{"172.16.5.0/29 tcp/5900 timeout=1800000ms"});
  EXPECT_TRUE(compile_at(policy, utc(2026, 9, 1)).expired);
}

// ---------------------------------------------------------------------------------------------
// Directions and families

TEST(CompileDirections, OutboundMapsAreKeyedOnTheHostAsSource) {
  const RulesetPlan plan = compile_at(load("valid/rmm-outbound-ipv6.toml"), utc(2026, 6, 1));
  EXPECT_EQ(plan.set("p1_scope_in_v4"), nullptr);
  EXPECT_EQ(plan.set("p1_scope_in_v6"), nullptr);
  ASSERT_NE(plan.set("l1_open_v4"), nullptr);
  ASSERT_NE(plan.set("p1_scope_out_v6"), nullptr);
  EXPECT_TRUE(plan.set("l1_open_v4")->has_timeouts);
  EXPECT_FALSE(plan.set("p1_scope_out_v4")->has_timeouts);
  // Outbound links admit nobody inbound: nothing for the gate's `linked` maps, no foreign chain.
  EXPECT_TRUE(elements(plan, "linked_v4").empty());
  EXPECT_TRUE(elements(plan, "linked_v6").empty());
  EXPECT_EQ(plan.chain("l1_rmm_agent_foreign"), nullptr);
  EXPECT_NE(plan.chain("l1_rmm_agent_closed"), nullptr);

  const ChainPlan* c = plan.chain("p1_relay_co");
  ASSERT_NE(c, nullptr);
  const std::vector<Field> fwd{Field::saddr, Field::l4proto, Field::dport};
  const std::vector<Field> rep{Field::daddr, Field::l4proto, Field::sport};
  std::map<std::string, int> seen;
  for (const auto& r : c->rules) {
    if (r.set.rfind("l1_open_", 0) != 0 && r.set.rfind("p1_scope_out_", 0) != 0) continue;
    const bool forward = r.key == fwd;
    EXPECT_TRUE(forward || r.key == rep) << r.set;
    EXPECT_EQ(r.verdict_map, r.set.starts_with("p1_scope_")) << r.set;
    // Only the open map's reply rule is limited to conntrack replies.
    EXPECT_EQ(r.reply_only, !forward) << r.set;  // service-port-as-source rules match replies only
    EXPECT_EQ(r.family, r.set.ends_with("_v6") ? Family::v6 : Family::v4) << r.set;
    ++seen[r.set + (forward ? " fwd" : " rep")];
  }
  EXPECT_EQ(seen, (std::map<std::string, int>{{"l1_open_v4 fwd", 1},
                                              {"l1_open_v4 rep", 1},
                                              {"l1_open_v6 fwd", 1},
                                              {"l1_open_v6 rep", 1},
                                              {"p1_scope_out_v4 fwd", 1},
                                              {"p1_scope_out_v4 rep", 1},
                                              {"p1_scope_out_v6 fwd", 1},
                                              {"p1_scope_out_v6 rep", 1}}));
}

TEST(CompileFamilies, Ipv6HostsGiveV6Sets) {
  const Policy policy = inline_policy(R"(
[providers.msp]
addresses = ["2001:db8:100::/48"]

[[links]]
name     = "ssh6"
provider = "msp"
hosts    = ["2001:db8:20::/64", "2001:db8:20::5"]
ports    = ["tcp/22"]
windows  = ["always"]
)");
  const RulesetPlan plan = compile_at(policy, utc(2026, 5, 4));
  for (auto name : {"l1_open_v6", "p1_scope_in_v6", "p1_hosts_v6"}) {
    ASSERT_NE(plan.set(name), nullptr) << name;
    EXPECT_EQ(plan.set(name)->family, Family::v6) << name;
  }
  EXPECT_EQ(plan.set("l1_open_v4"), nullptr);
  EXPECT_EQ(plan.set("p1_hosts_v4"), nullptr);
  EXPECT_EQ(elements(plan, "l1_open_v6"), Strings{"2001:db8:20::/64 tcp/22"});
  EXPECT_EQ(elements(plan, "p1_hosts_v6"), Strings{"2001:db8:20::/64"});
  EXPECT_EQ(elements(plan, "linked_v6"), Strings{"2001:db8:20::/64 tcp/22 : goto l1_ssh6_foreign"});
  EXPECT_EQ(elements(plan, "providers_v6"), Strings{"2001:db8:100::/48 : goto p1_msp"});
  EXPECT_EQ(plan.set("providers_v4"), nullptr)
      << "no IPv4 provider addresses, no IPv4 provider map";
  EXPECT_EQ(plan.set("provider_hosts_v4"), nullptr);
  const ChainPlan* c = plan.chain("p1_msp");
  ASSERT_NE(c, nullptr);
  for (const auto& r : c->rules) {
    if (r.set.rfind("p1_", 0) == 0) {
      EXPECT_EQ(r.family, Family::v6) << r.set;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Several providers and links

TEST(CompileProviders, ChainsAndMapsPerProviderInNameOrder) {
  // school-multi-window at Sun 2027-02-28 23:30 Sydney (12:30Z): ssh-admin (helpdesk) is open in
  // "weekend" until 23:59 local, backup-agent (backup_vendor) in "overnight" until Mon 05:00.
  const RulesetPlan plan =
      compile_at(load("valid/school-multi-window.toml"), utc(2027, 2, 28, 12, 30));
  EXPECT_EQ(elements(plan, "providers_v4"), (Strings{"198.51.100.0/25 : goto p1_backup_vendor",
                                                     "203.0.113.16/28 : goto p2_helpdesk"}));
  // Single addresses live in the hash map.
  EXPECT_EQ(elements(plan, "provider_hosts_v4"), (Strings{"203.0.113.40 : goto p2_helpdesk"}));
  EXPECT_FALSE(plan.set("provider_hosts_v4")->interval);
  EXPECT_TRUE(plan.set("providers_v4")->interval);
  EXPECT_EQ(elements(plan, "l1_open_v4"),
            (Strings{"10.1.0.0/24 tcp/22 timeout=1740000ms", "10.1.1.5 tcp/22 timeout=1740000ms"}));
  EXPECT_EQ(elements(plan, "l2_open_v4"), (Strings{"10.1.2.0/26 tcp/10000-10010 timeout=19800000ms",
                                                   "10.1.2.0/26 udp/10000 timeout=19800000ms"}));
  EXPECT_EQ(elements(plan, "guarded"),
            (Strings{"tcp/22", "tcp/3389", "tcp/5900-5901", "udp/1194"}));
  // The chains: base, gate, providers, then each link's chains in link order.
  Strings names;
  for (const auto& c : plan.chains) names.push_back(c.name);
  EXPECT_EQ(names, (Strings{"input", "forward", "gate", "p1_backup_vendor", "p2_helpdesk",
                            "l1_ssh_admin_allow", "l1_ssh_admin_closed", "l1_ssh_admin_foreign",
                            "l2_backup_agent_allow", "l2_backup_agent_closed",
                            "l2_backup_agent_foreign"}));
}

TEST(CompileProviders, SubsetGrantInSchoolPolicy) {
  // INC-77: Mon 2027-03-01 08:00-10:30 Sydney (+11) for 10.1.0.128/25 and 10.1.1.5 only.
  const RulesetPlan plan =
      compile_at(load("valid/school-multi-window.toml"), utc(2027, 2, 28, 22));  // 09:00 local
  EXPECT_EQ(elements(plan, "l1_open_v4"), (Strings{"10.1.0.128/25 tcp/22 timeout=5400000ms",
                                                   "10.1.1.5 tcp/22 timeout=5400000ms"}));
  EXPECT_TRUE(elements(plan, "l2_open_v4").empty());
}

TEST(CompileProviders, LinkedHostsAreAttributedToTheFirstLinkCoveringThem) {
  const Policy policy = inline_policy(R"(
[providers.a]
addresses = ["192.0.2.0/25"]

[providers.b]
addresses = ["192.0.2.128/25"]

[[links]]
name     = "first"
provider = "b"
hosts    = ["10.0.0.0/30"]
ports    = ["tcp/22"]

[[links]]
name     = "second"
provider = "a"
hosts    = ["10.0.0.0/24"]
ports    = ["tcp/22"]

[[links]]
name      = "agent"
provider  = "a"
direction = "outbound"
hosts     = ["10.0.0.9"]
ports     = ["tcp/443"]
)");
  const RulesetPlan plan = compile_at(policy, utc(2026, 5, 4));
  EXPECT_EQ(elements(plan, "linked_v4"),
            (Strings{"10.0.0.0/30 tcp/22 : goto l1_first_foreign",
                     "10.0.0.4-10.0.0.255 tcp/22 : goto l2_second_foreign"}));
  // Provider a (p1) has both directions; its hosts set covers both links.
  EXPECT_EQ(elements(plan, "p1_hosts_v4"), Strings{"10.0.0.0/24"});
  EXPECT_EQ(elements(plan, "p1_scope_in_v4"),
            Strings{"10.0.0.0/24 tcp/22 : goto l2_second_closed"});
  EXPECT_EQ(elements(plan, "p1_scope_out_v4"), Strings{"10.0.0.9 tcp/443 : goto l3_agent_closed"});
  EXPECT_EQ(elements(plan, "p2_scope_in_v4"), Strings{"10.0.0.0/30 tcp/22 : goto l1_first_closed"});
  // No windows and no grants: nothing is ever open.
  EXPECT_EQ(open_element_count(plan), 0u);
}

// ---------------------------------------------------------------------------------------------
// Structural invariants over every policy the repository ships, at many instants

std::vector<fs::path> shipped_policies() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kPolicies)) {
    if (e.path().extension() == ".toml") out.push_back(e.path());
  }
  for (const auto& e : fs::directory_iterator(kPolicies / "valid")) {
    if (e.path().extension() == ".toml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t address_fields(KeyShape s) {
  return s == KeyShape::service ? 0 : 1;
}

bool overlaps(const SetElement& a, const SetElement& b) {
  if (a.address && b.address && !a.address->overlaps(*b.address)) return false;
  if (a.service && b.service && !a.service->overlaps(*b.service)) return false;
  return true;
}

void check_structure(const Policy& policy, const RulesetPlan& plan) {
  std::set<std::string> set_names, chain_names;
  for (const auto& s : plan.sets)
    EXPECT_TRUE(set_names.insert(s.name).second) << "dup set " << s.name;
  for (const auto& c : plan.chains) {
    EXPECT_TRUE(chain_names.insert(c.name).second) << "dup chain " << c.name;
  }
  std::set<std::string> referenced;
  const auto check_target = [&](const Verdict& v, const std::string& where) {
    if (v.kind != Verdict::Kind::jump && v.kind != Verdict::Kind::go_to) {
      EXPECT_TRUE(v.chain.empty()) << where;
      return;
    }
    const ChainPlan* target = plan.chain(v.chain);
    ASSERT_NE(target, nullptr) << where << " → missing chain " << v.chain;
    EXPECT_FALSE(target->hook) << where << " → base chain " << v.chain;
    referenced.insert(v.chain);
  };

  for (const auto& s : plan.sets) {
    for (std::size_t i = 0; i < s.elements.size(); ++i) {
      const SetElement& e = s.elements[i];
      const std::string where = "set " + s.name + " element " + element_str(e);
      EXPECT_EQ(e.address.has_value(), s.shape != KeyShape::service) << where;
      EXPECT_EQ(e.service.has_value(), s.shape != KeyShape::address) << where;
      if (e.address) {
        EXPECT_EQ(e.address->family(), s.family) << where;
      }
      EXPECT_EQ(e.verdict.has_value(), s.verdict_map) << where;
      if (e.verdict) check_target(*e.verdict, where);
      if (e.timeout) {
        EXPECT_TRUE(s.has_timeouts) << where;
        EXPECT_GT(*e.timeout, milliseconds{0}) << where;
        if (policy.expires) {
          EXPECT_LE(plan.compiled_at + *e.timeout, *policy.expires) << where;
        }
      }
      for (std::size_t j = i + 1; j < s.elements.size(); ++j) {
        EXPECT_FALSE(overlaps(e, s.elements[j]))
            << where << " overlaps " << element_str(s.elements[j]);
      }
    }
  }

  for (const auto& c : plan.chains) {
    for (const auto& r : c.rules) {
      const std::string where = "chain " + c.name + " rule @" + r.set;
      if (r.verdict) check_target(*r.verdict, where);
      // Only neighbour discovery to the gateway itself is matched by ICMPv6 type.
      if (r.icmpv6_type) {
        EXPECT_EQ(c.name, "input") << where;
      }
      if (r.key.empty()) {
        EXPECT_TRUE(r.set.empty()) << where;
        EXPECT_FALSE(r.verdict_map) << where;
        EXPECT_TRUE(r.verdict.has_value()) << where;
        continue;
      }
      const SetPlan* s = plan.set(r.set);
      ASSERT_NE(s, nullptr) << where << ": the set does not exist";
      EXPECT_EQ(r.verdict_map, s->verdict_map) << where;
      EXPECT_EQ(r.verdict_map, !r.verdict.has_value()) << where;
      // The key matches the set's layout: [address] [l4proto port].
      const std::size_t n_addr = address_fields(s->shape);
      ASSERT_EQ(r.key.size(), n_addr + (s->shape == KeyShape::address ? 0 : 2)) << where;
      if (n_addr) {
        EXPECT_TRUE(r.key[0] == Field::saddr || r.key[0] == Field::daddr) << where;
        EXPECT_EQ(r.family, s->family) << where;
      }
      if (s->shape != KeyShape::address) {
        EXPECT_EQ(r.key[n_addr], Field::l4proto) << where;
        EXPECT_TRUE(r.key[n_addr + 1] == Field::sport || r.key[n_addr + 1] == Field::dport)
            << where;
      }
    }
  }

  // Every non-base chain is reachable, except a link's _allow chain while nothing of the link is
  // open (it stays, so opening a window later only adds elements); exactly the two base chains
  // are hooked.
  for (const auto& c : plan.chains) {
    if (c.hook) {
      EXPECT_TRUE(c.name == "input" || c.name == "forward") << c.name;
      EXPECT_EQ(c.hook->priority, -10) << c.name;
    } else if (!c.name.ends_with("_allow")) {
      EXPECT_TRUE(referenced.count(c.name)) << "chain " << c.name << " is never entered";
    }
  }
  for (const auto& o : plan.openings) {
    bool entered = false;
    for (const auto& name : referenced) entered = entered || name.ends_with("_allow");
    EXPECT_TRUE(entered) << "link " << o.link << " is open but no allow chain is entered";
  }

  // Open elements exist exactly while something is open, never after expiry.
  EXPECT_EQ(plan.expired, policy.expires && plan.compiled_at >= *policy.expires);
  if (plan.expired) {
    EXPECT_EQ(open_element_count(plan), 0u);
  }
  EXPECT_EQ(open_element_count(plan) == 0, plan.openings.empty());
  for (const auto& o : plan.openings) {
    EXPECT_GT(o.until, plan.compiled_at) << o.link;
    if (policy.expires) {
      EXPECT_LE(o.until, *policy.expires) << o.link;
    }
  }
  // Each link has its chains; closed chains give the reason that holds at this instant.
  for (std::size_t j = 0; j < policy.links.size(); ++j) {
    bool found_closed = false;
    for (const auto& c : plan.chains) {
      if (c.name.rfind("l" + std::to_string(j + 1) + "_", 0) != 0 || !c.name.ends_with("_closed")) {
        continue;
      }
      found_closed = true;
      ASSERT_EQ(c.rules.size(), 1u);
      EXPECT_EQ(c.rules[0].log_prefix,
                log_prefix(plan.expired ? DenyReason::policy_expired : DenyReason::outside_window,
                           "link/" + policy.links[j].name));
    }
    EXPECT_TRUE(found_closed) << policy.links[j].name;
  }
}

TEST(PlanStructure, EveryRuleAndVerdictRefersToSomethingThatExists) {
  const std::vector<Instant> instants = {
      utc(2026, 1, 1),      utc(2026, 5, 4, 10),      utc(2026, 8, 3, 13, 30),
      utc(2026, 8, 20, 12), utc(2026, 9, 1),          utc(2026, 11, 26, 15),
      utc(2026, 11, 27, 5), utc(2026, 12, 31),        utc(2027, 2, 28, 12, 30),
      utc(2027, 2, 28, 22), utc(2027, 3, 28, 15, 30), utc(2027, 7, 1),
  };
  const auto files = shipped_policies();
  ASSERT_GE(files.size(), 5u);
  std::size_t plans_with_openings = 0;
  for (const auto& file : files) {
    const ParsedPolicy parsed = parse_policy_file(file.string());
    ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
    for (Instant t : instants) {
      SCOPED_TRACE(file.filename().string() + " at " + format_instant(t));
      const RulesetPlan plan = compile_at(*parsed.policy, t);
      check_structure(*parsed.policy, plan);
      if (!plan.openings.empty()) ++plans_with_openings;
    }
  }
  // The instants are chosen so the check also runs on plans with open elements.
  EXPECT_GE(plans_with_openings, 8u);
}

// Two links of one provider on the same host and port: each link's set holds the piece with its
// own closing time, so it stays open as long as the later one; a packet is credited to the first
// link (in policy order) whose set still holds it.
TEST(CompileOverlap, OverlappingLinksEachKeepTheirOwnTimeout) {
  const Policy p = inline_policy(R"(
[providers.acme]
addresses = ["203.0.113.0/28"]
[windows.short]
days = ["mon","tue","wed","thu","fri","sat","sun"]
from = "09:00"
to = "10:00"
[windows.long]
days = ["mon","tue","wed","thu","fri","sat","sun"]
from = "09:00"
to = "12:00"
[[links]]
name = "a"
provider = "acme"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
windows = ["short"]
[[links]]
name = "b"
provider = "acme"
hosts = ["10.0.0.1"]
ports = ["tcp/22"]
windows = ["long"]
)");
  const auto plan = compile(p, utc(2026, 11, 26, 9, 30), CompileOptions{});
  EXPECT_EQ(elements(plan, "l1_open_v4"), Strings{"10.0.0.1 tcp/22 timeout=1800000ms"});
  EXPECT_EQ(elements(plan, "l2_open_v4"), Strings{"10.0.0.1 tcp/22 timeout=9000000ms"});
  const ChainPlan* c = plan.chain("p1_acme");
  ASSERT_NE(c, nullptr);
  ASSERT_GE(c->rules.size(), 4u);
  EXPECT_EQ(c->rules[0].set, "l1_open_v4");
  EXPECT_EQ(c->rules[2].set, "l2_open_v4");
  EXPECT_EQ(c->rules[2].verdict, (Verdict{Verdict::Kind::go_to, "l2_b_allow"}));
}

// What the daemon does at a window edge: advance() of the plan in force must give exactly what
// compile() gives at that instant, for every policy of the corpus at instants across windows,
// grants, DST changes and expiries — or refuse when the structure changes (expiry, lockdown).
TEST(CompileAdvance, EqualsAFreshCompileOrRefuses) {
  const std::vector<Instant> instants = {
      utc(2026, 1, 1),          utc(2026, 3, 7, 4, 30),  utc(2026, 3, 10, 3, 30),
      utc(2026, 5, 4, 10),      utc(2026, 8, 3, 13, 30), utc(2026, 8, 20, 12),
      utc(2026, 11, 26, 15),    utc(2026, 11, 27, 5),    utc(2026, 12, 31, 0, 0, 0, 1),
      utc(2027, 2, 28, 12, 30), utc(2027, 2, 28, 22),    utc(2040, 3, 1)};
  std::size_t advanced = 0, refused = 0;
  for (const auto& dir : {kPolicies / "valid", kPolicies}) {
    for (const auto& file : fs::directory_iterator(dir)) {
      if (file.path().extension() != ".toml") continue;
      const ParsedPolicy parsed = parse_policy_file(file.path().string());
      ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
      for (Instant from : instants) {
        for (Instant to : instants) {
          SCOPED_TRACE(file.path().filename().string() + " " + format_instant(from) + " → " +
                       format_instant(to));
          RulesetPlan plan = compile_at(*parsed.policy, from);
          const RulesetPlan want = compile_at(*parsed.policy, to);
          if (!advance(plan, *parsed.policy, to, CompileOptions{})) {
            ++refused;
            EXPECT_NE(plan_fingerprint(want), plan.fingerprint);
            continue;
          }
          ++advanced;
          EXPECT_EQ(plan.fingerprint, plan_fingerprint(want));
          EXPECT_EQ(plan.compiled_at, want.compiled_at);
          ASSERT_EQ(plan.sets.size(), want.sets.size());
          for (std::size_t i = 0; i < want.sets.size(); ++i) {
            EXPECT_EQ(plan.sets[i].elements, want.sets[i].elements) << want.sets[i].name;
          }
          ASSERT_EQ(plan.openings.size(), want.openings.size());
          for (std::size_t i = 0; i < want.openings.size(); ++i) {
            EXPECT_EQ(plan.openings[i].link, want.openings[i].link);
            EXPECT_EQ(plan.openings[i].ticket, want.openings[i].ticket);
            EXPECT_EQ(plan.openings[i].until, want.openings[i].until);
          }
        }
      }
    }
  }
  EXPECT_GT(advanced, 100u);
  EXPECT_GT(refused, 0u);  // clinic-east expires on 2026-12-31
}

TEST(CompileAdvance, RefusesWhenALockdownBeginsOrEnds) {
  const Policy p = load("clinic-east.toml");
  CompileOptions locked;
  locked.lockdown_until = utc(2026, 11, 26, 16);
  RulesetPlan plan = compile(p, utc(2026, 11, 26, 15), CompileOptions{});
  EXPECT_FALSE(advance(plan, p, utc(2026, 11, 26, 15, 1), locked));
  EXPECT_EQ(plan.compiled_at, utc(2026, 11, 26, 15));  // untouched
  RulesetPlan during = compile(p, utc(2026, 11, 26, 15), locked);
  EXPECT_TRUE(advance(during, p, utc(2026, 11, 26, 15, 30), locked));
  EXPECT_FALSE(advance(during, p, utc(2026, 11, 26, 16), locked));  // it has ended
}

// What a cold start commits first: the plan's linked services and guarded ports, closed to
// everyone, and nothing that could accept a packet.
TEST(CompileClosedSkeleton, ClosesTheLinkedServicesAndTheGuardAndOpensNothing) {
  const Policy policy = load("clinic-east.toml");
  const RulesetPlan plan = compile_at(policy, utc(2026, 11, 26, 15));
  const ClosedSkeleton k = skeleton_of(plan);
  EXPECT_EQ(k.linked_v4.size(), plan.set("linked_v4")->elements.size());
  EXPECT_EQ(k.guarded.size(), 4u);
  for (const auto& e : k.linked_v4) EXPECT_FALSE(e.verdict.has_value());

  const RulesetPlan closed = closed_plan(k, "clinic-east", utc(2026, 11, 26, 15), CompileOptions{});
  EXPECT_EQ(closed.fingerprint, plan_fingerprint(closed));
  EXPECT_NE(closed.fingerprint, plan.fingerprint);
  Strings keys;
  for (const auto& e : closed.set("linked_v4")->elements) keys.push_back(element_str(e));
  EXPECT_EQ(keys, (Strings{"10.20.0.0/28 tcp/3389", "10.20.0.0/28 udp/3389"}));
  EXPECT_EQ(closed.set("providers_v4"), nullptr);
  for (const auto& c : closed.chains) {
    for (const auto& r : c.rules) {
      if (!r.verdict || r.verdict->kind != Verdict::Kind::accept) continue;
      // Only the base chains' ND and own-reply rules accept, as in every plan.
      EXPECT_TRUE(c.hook.has_value()) << c.name;
    }
  }
  const ChainPlan* gate = closed.chain("gate");
  ASSERT_NE(gate, nullptr);
  ASSERT_EQ(gate->rules.size(), 3u);
  for (const auto& r : gate->rules) {
    EXPECT_EQ(r.log_prefix, std::optional<std::string>("drawbridge:starting:gateway"));
    EXPECT_EQ(r.verdict, (Verdict{Verdict::Kind::drop, {}}));
  }
}

// Lockdown closes every window and grant whatever the policy says, and says so in the logs.
TEST(CompileLockdown, NoOpenElementsAndClosedLinksLogLockdown) {
  const Policy p = inline_policy(R"(
[providers.acme]
addresses = ["203.0.113.0/28"]
[[links]]
name = "rdp"
provider = "acme"
hosts = ["10.0.0.1"]
ports = ["tcp/3389"]
windows = ["always"]
)");
  CompileOptions opt;
  opt.lockdown_until = utc(2026, 11, 26, 12);
  const auto locked = compile(p, utc(2026, 11, 26, 11), opt);
  EXPECT_TRUE(locked.locked_down);
  EXPECT_TRUE(locked.openings.empty());
  EXPECT_TRUE(locked.set("l1_open_v4")->elements.empty());
  EXPECT_EQ(*locked.chain("l1_rdp_closed")->rules[0].log_prefix, "drawbridge:lockdown:link/rdp");
  const auto after = compile(p, utc(2026, 11, 26, 12), opt);  // the lockdown has ended
  EXPECT_FALSE(after.locked_down);
  EXPECT_EQ(after.set("l1_open_v4")->elements.size(), 1u);
}

}  // namespace
}  // namespace drawbridge
