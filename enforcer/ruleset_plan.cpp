#include "enforcer/ruleset_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/interval_union.h"
#include "common/window_schedule.h"

namespace drawbridge {

std::string_view deny_reason_name(DenyReason r) {
  switch (r) {
    case DenyReason::outside_window:
      return "outside-window";
    case DenyReason::unapproved_source:
      return "unapproved-source";
    case DenyReason::unapproved_host:
      return "unapproved-host";
    case DenyReason::unapproved_port:
      return "unapproved-port";
    case DenyReason::policy_expired:
      return "policy-expired";
    case DenyReason::lockdown:
      return "lockdown";
    case DenyReason::starting:
      return "starting";
  }
  return "unknown";
}

std::string log_prefix(DenyReason reason, std::string_view subject) {
  return "drawbridge:" + std::string(deny_reason_name(reason)) + ":" + std::string(subject);
}

const SetPlan* RulesetPlan::set(std::string_view name) const {
  for (const auto& s : sets) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const ChainPlan* RulesetPlan::chain(std::string_view name) const {
  for (const auto& c : chains) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

const Family kFamilies[] = {Family::v4, Family::v6};
const Direction kDirections[] = {Direction::inbound, Direction::outbound};

std::string fam_suffix(Family f) {
  return f == Family::v4 ? "_v4" : "_v6";
}

// nft identifiers may not contain '-'; the chain comment keeps the real name.
std::string identifier(std::string_view name) {
  std::string s(name);
  for (auto& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  return s;
}

struct Names {
  std::vector<std::string> provider_chain;  // by provider index
  std::vector<std::string> link_chain;      // by link index (prefix for _allow/_closed/_foreign)
};

Names make_names(const Policy& p) {
  Names n;
  for (std::size_t i = 0; i < p.providers.size(); ++i) {
    n.provider_chain.push_back("p" + std::to_string(i + 1) + "_" + identifier(p.providers[i].name));
  }
  for (std::size_t j = 0; j < p.links.size(); ++j) {
    n.link_chain.push_back("l" + std::to_string(j + 1) + "_" + identifier(p.links[j].name));
  }
  return n;
}

std::vector<AddressRange> of_family(const std::vector<AddressRange>& v, Family f) {
  std::vector<AddressRange> out;
  for (const auto& r : v) {
    if (r.family() == f) out.push_back(r);
  }
  return out;
}

Verdict go_to(std::string chain) {
  return Verdict{Verdict::Kind::go_to, std::move(chain)};
}

std::vector<Opening> openings_at(const Policy& policy, const Link& link, Instant now) {
  std::vector<Opening> out;
  if (policy.expires && now >= *policy.expires) return out;
  if (auto until = recurring_open_until(policy, link, now)) {
    out.push_back(
        Opening{link.name, link.provider, link.direction, std::nullopt, link.hosts, *until});
  }
  for (const auto& g : policy.grants) {
    if (g.link != link.name || now < g.from || now >= g.until) continue;
    Instant until = g.until;
    if (policy.expires) until = std::min(until, *policy.expires);
    out.push_back(Opening{link.name, link.provider, link.direction, g.ticket,
                          g.hosts.empty() ? link.hosts : g.hosts, until});
  }
  return out;
}

RulePlan lookup(Family f, std::vector<Field> key, std::string set, bool vmap) {
  RulePlan r;
  r.family = f;
  r.key = std::move(key);
  r.set = std::move(set);
  r.verdict_map = vmap;
  return r;
}

RulePlan log_drop(std::string prefix) {
  RulePlan r;
  r.counter = true;
  r.log_prefix = std::move(prefix);
  r.verdict = Verdict{Verdict::Kind::drop, {}};
  return r;
}

// A lookup whose match is denied: counted, logged with `prefix`, dropped.
RulePlan denied_lookup(RulePlan r, std::string prefix) {
  r.counter = true;
  r.log_prefix = std::move(prefix);
  r.verdict = Verdict{Verdict::Kind::drop, {}};
  return r;
}

// The hooked chains, the same in every plan: input and forward jump to the gate.
std::vector<ChainPlan> base_chains(int priority) {
  RulePlan to_gate;
  to_gate.verdict = Verdict{Verdict::Kind::jump, "gate"};
  RulePlan own_replies;
  own_replies.reply_only = true;
  own_replies.verdict = Verdict{Verdict::Kind::accept, {}};
  own_replies.comment = "replies to the gateway's own connections";

  // IPv6 neighbour discovery with on-link provider addresses: without it the gateway could not
  // resolve them and no IPv6 link would work. It is link-local by nature (hop limit 255) and
  // never forwarded, so only the input chain needs it.
  RulePlan solicit, advert;
  solicit.icmpv6_type = kNeighborSolicit;
  advert.icmpv6_type = kNeighborAdvert;
  solicit.verdict = advert.verdict = Verdict{Verdict::Kind::accept, {}};
  solicit.comment = "IPv6 neighbour discovery";

  return {
      ChainPlan{
          "input", Hook{Hook::Point::input, priority}, {solicit, advert, own_replies, to_gate}, {}},
      ChainPlan{"forward", Hook{Hook::Point::forward, priority}, {to_gate}, {}}};
}

class Compiler {
 public:
  Compiler(const Policy& p, Instant now, const CompileOptions& o)
      : policy_(p), now_(now), opt_(o), names_(make_names(p)) {}

  RulesetPlan run() {
    plan_.table = opt_.table;
    plan_.log_group = opt_.log_group;
    plan_.site = policy_.site;
    plan_.serial = policy_.serial;
    set_instant(plan_);
    add_gate_sets();
    for (std::size_t i = 0; i < policy_.providers.size(); ++i) add_provider(i);
    add_link_chains();
    add_gate_and_base_chains();
    if (opt_.log_rate_per_source > 0) limit_logging();
    // The gate chain's comment identifies the plan in the kernel (see plan_fingerprint).
    plan_.fingerprint = plan_fingerprint(plan_);
    for (auto& c : plan_.chains) {
      if (c.name == "gate") {
        c.comment = "drawbridge site " + plan_.site + " serial " + std::to_string(plan_.serial) +
                    " plan " + plan_.fingerprint;
      }
    }
    return std::move(plan_);
  }

  // Brings `plan`, compiled from the same policy and options, to now_ by recomputing only what
  // changes with time; false (plan untouched) when the structure changes too.
  bool advance(RulesetPlan& plan) {
    RulesetPlan probe;
    set_instant(probe);
    if (probe.expired != plan.expired || probe.locked_down != plan.locked_down) return false;
    for (std::size_t j = 0; j < policy_.links.size(); ++j) {
      for (Family f : kFamilies) {
        const std::string name = open_set_name(j, f);
        auto it = std::find_if(plan.sets.begin(), plan.sets.end(),
                               [&](const SetPlan& s) { return s.name == name; });
        if (it == plan.sets.end()) continue;
        it->elements = open_elements(policy_.links[j], f);
      }
    }
    plan.compiled_at = probe.compiled_at;
    plan.openings = std::move(probe.openings);
    return true;
  }

 private:
  // What depends only on the instant: expiry, lockdown and the links open now.
  void set_instant(RulesetPlan& plan) const {
    plan.compiled_at = now_;
    plan.expired = policy_.expires && now_ >= *policy_.expires;
    plan.locked_down = locked_down();
    plan.openings.clear();
    for (const auto& link : policy_.links) {
      auto o = openings(link);
      plan.openings.insert(plan.openings.end(), o.begin(), o.end());
    }
  }

  // Link j's open windows (0-based j; the name is 1-based like its chains).
  static std::string open_set_name(std::size_t j, Family f) {
    return "l" + std::to_string(j + 1) + "_open" + fam_suffix(f);
  }

  [[nodiscard]] bool locked_down() const {
    return opt_.lockdown_until && now_ < *opt_.lockdown_until;
  }

  // The per-source log rate (CompileOptions::log_rate_per_source). Every logging rule becomes
  // three: log while the IPv4 source is under the rate, the same for IPv6, and drop-and-count
  // the rest. A rule that also looks something up first sends its matches to a chain of those
  // three, so that the lookup is done once.
  void limit_logging() {
    const std::uint32_t rate = opt_.log_rate_per_source;
    for (Family f : kFamilies) {
      SetPlan meter{"log_rate" + fam_suffix(f), KeyShape::address, f, false, false, {}};
      meter.interval = false;
      meter.dynamic = true;
      meter.size = kLogMeterSize;
      meter.entry_timeout = kLogMeterTimeout;
      plan_.sets.push_back(std::move(meter));
    }
    const auto limited = [&](const std::string& prefix) {
      std::vector<RulePlan> rules;
      for (Family f : kFamilies) {
        RulePlan r = log_drop(prefix);
        r.meter = LogMeter{"log_rate" + fam_suffix(f), f, rate, rate};
        rules.push_back(std::move(r));
      }
      RulePlan rest;
      rest.counter = true;
      rest.verdict = Verdict{Verdict::Kind::drop, {}};
      rest.comment = std::string(kRateLimitedComment) + prefix;
      rules.push_back(std::move(rest));
      return rules;
    };
    std::vector<ChainPlan> deny_chains;
    for (auto& chain : plan_.chains) {
      std::vector<RulePlan> rules;
      for (auto& r : chain.rules) {
        if (!r.log_prefix) {
          rules.push_back(std::move(r));
        } else if (r.key.empty()) {
          for (auto& l : limited(*r.log_prefix)) rules.push_back(std::move(l));
        } else {
          const std::string name = "deny_" + std::to_string(deny_chains.size() + 1);
          deny_chains.push_back({name, std::nullopt, limited(*r.log_prefix), *r.log_prefix});
          r.log_prefix.reset();
          r.verdict = Verdict{Verdict::Kind::go_to, name};
          rules.push_back(std::move(r));
        }
      }
      chain.rules = std::move(rules);
    }
    for (auto& c : deny_chains) plan_.chains.push_back(std::move(c));
  }

  // The open pieces of one link at now_, each with the time left until it closes. Where a
  // link's window and grants overlap, the piece stays open as long as any of them.
  std::vector<SetElement> open_elements(const Link& link, Family f) const {
    std::vector<Box<Instant>> open_boxes;
    for (const auto& o : openings(link)) {
      for (const auto& h : of_family(o.hosts, f)) {
        for (const auto& port : link.ports) open_boxes.push_back({h, port, o.until});
      }
    }
    std::vector<SetElement> out;
    const auto later = [](Instant a, Instant b) { return std::max(a, b); };
    for (const auto& b : disjoint_boxes(open_boxes, later)) {
      SetElement e{b.address, b.service, std::nullopt, std::nullopt};
      if (b.value != Instant::max()) {
        e.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(b.value - now_);
      }
      out.push_back(std::move(e));
    }
    return out;
  }

  std::vector<Opening> openings(const Link& link) const {
    if (locked_down()) return {};
    return openings_at(policy_, link, now_);
  }

  std::size_t provider_index(std::string_view name) const {
    for (std::size_t i = 0; i < policy_.providers.size(); ++i) {
      if (policy_.providers[i].name == name) return i;
    }
    return 0;  // unreachable for a validated policy
  }

  void add_gate_sets() {
    for (Family f : kFamilies) {
      // Single addresses go in a hash map, prefixes and ranges in an interval map: the kernel
      // loads the first about twice as fast, and most provider lists are mostly single hosts.
      SetPlan hosts{"provider_hosts" + fam_suffix(f), KeyShape::address, f, true, false, {}};
      hosts.interval = false;
      SetPlan prefixes{"providers" + fam_suffix(f), KeyShape::address, f, true, false, {}};
      std::vector<std::pair<AddressRange, std::size_t>> owned;
      std::size_t total = 0;
      for (const auto& p : policy_.providers) total += p.addresses.size();
      owned.reserve(total);
      for (std::size_t i = 0; i < policy_.providers.size(); ++i) {
        for (const auto& r : merge_ranges(of_family(policy_.providers[i].addresses, f))) {
          owned.push_back({r, i});
        }
      }
      std::sort(owned.begin(), owned.end());
      // Sized exactly: the plan is kept for the daemon's lifetime, and doubling would leave up
      // to half of 100,000 elements' worth of memory unused.
      const auto singles = static_cast<std::size_t>(std::count_if(
          owned.begin(), owned.end(), [](const auto& o) { return o.first.first == o.first.last; }));
      hosts.elements.reserve(singles);
      prefixes.elements.reserve(owned.size() - singles);
      for (const auto& [r, i] : owned) {
        auto& target = r.first == r.last ? hosts : prefixes;
        target.elements.push_back({r, std::nullopt, go_to(names_.provider_chain[i]), std::nullopt});
      }
      for (auto* set : {&hosts, &prefixes}) {
        if (!set->elements.empty()) plan_.sets.push_back(std::move(*set));
      }

      // Non-provider traffic to a linked host and port: attributed to the first link covering it.
      std::vector<Box<std::size_t>> boxes;
      for (std::size_t j = 0; j < policy_.links.size(); ++j) {
        const auto& link = policy_.links[j];
        if (link.direction != Direction::inbound) continue;
        for (const auto& h : of_family(link.hosts, f)) {
          for (const auto& port : link.ports) boxes.push_back({h, port, j});
        }
      }
      SetPlan linked{"linked" + fam_suffix(f), KeyShape::address_service, f, true, false, {}};
      for (const auto& b : disjoint_boxes(boxes, [](auto a, auto b) { return std::min(a, b); })) {
        linked.elements.push_back(
            {b.address, b.service, go_to(names_.link_chain[b.value] + "_foreign"), std::nullopt});
      }
      plan_.sets.push_back(std::move(linked));
    }
    SetPlan guarded{"guarded", KeyShape::service, Family::v4, false, false, {}};
    for (const auto& p : merge_ports(policy_.guard.ports)) {
      guarded.elements.push_back({std::nullopt, p, std::nullopt, std::nullopt});
    }
    plan_.sets.push_back(std::move(guarded));
  }

  void add_provider(std::size_t i) {
    const Provider& provider = policy_.providers[i];
    const std::string& chain_name = names_.provider_chain[i];
    const std::string set_prefix = "p" + std::to_string(i + 1);
    ChainPlan chain{chain_name, std::nullopt, {}, "provider " + provider.name};
    std::vector<RulePlan> allow, closed, hosts;

    for (Family f : kFamilies) {
      std::vector<AddressRange> all_hosts;
      for (Direction d : kDirections) {
        const bool in = d == Direction::inbound;
        // Inbound: provider → host:port, replies host:port → provider.
        // Outbound: host → provider:port, replies provider:port → host.
        const Field host_forward = in ? Field::daddr : Field::saddr;
        const Field host_reply = in ? Field::saddr : Field::daddr;
        std::vector<Box<std::size_t>> scope_boxes;
        for (std::size_t j = 0; j < policy_.links.size(); ++j) {
          const Link& link = policy_.links[j];
          if (link.provider != provider.name || link.direction != d) continue;
          const auto link_hosts = of_family(link.hosts, f);
          if (link_hosts.empty()) continue;
          all_hosts.insert(all_hosts.end(), link_hosts.begin(), link_hosts.end());
          for (const auto& h : link_hosts) {
            for (const auto& port : link.ports) scope_boxes.push_back({h, port, j});
          }
          // One plain set per link, not one verdict map per provider: adding an element that
          // jumps to a chain makes the kernel re-validate every chain and verdict map of the
          // table (the provider maps with all their prefixes) at commit, so a window edge would
          // cost O(policy). Elements without verdicts are checked on their own.
          SetPlan open{open_set_name(j, f), KeyShape::address_service, f, false, true, {}};
          open.elements = open_elements(link, f);
          const Verdict to_allow = go_to(names_.link_chain[j] + "_allow");
          auto fwd = lookup(f, {host_forward, Field::l4proto, Field::dport}, open.name, false);
          fwd.verdict = to_allow;
          auto rep = lookup(f, {host_reply, Field::l4proto, Field::sport}, open.name, false);
          rep.reply_only = true;  // only conntrack replies may come from the service port
          rep.verdict = to_allow;
          allow.push_back(std::move(fwd));
          allow.push_back(std::move(rep));
          plan_.sets.push_back(std::move(open));
        }
        if (scope_boxes.empty()) continue;

        const std::string dir = in ? "_in" : "_out";
        SetPlan scope{set_prefix + "_scope" + dir + fam_suffix(f),
                      KeyShape::address_service,
                      f,
                      true,
                      false,
                      {}};
        for (const auto& b :
             disjoint_boxes(scope_boxes, [](auto a, auto b) { return std::min(a, b); })) {
          scope.elements.push_back(
              {b.address, b.service, go_to(names_.link_chain[b.value] + "_closed"), std::nullopt});
        }
        closed.push_back(lookup(f, {host_forward, Field::l4proto, Field::dport}, scope.name, true));
        auto closed_reply = lookup(f, {host_reply, Field::l4proto, Field::sport}, scope.name, true);
        closed_reply.reply_only =
            true;  // a connection the host starts from that port is not the link
        closed.push_back(std::move(closed_reply));
        plan_.sets.push_back(std::move(scope));
      }
      if (all_hosts.empty()) continue;
      SetPlan host_set{
          set_prefix + "_hosts" + fam_suffix(f), KeyShape::address, f, false, false, {}};
      for (const auto& r : merge_ranges(all_hosts)) {
        host_set.elements.push_back({r, std::nullopt, std::nullopt, std::nullopt});
      }
      for (Field fld : {Field::daddr, Field::saddr}) {
        hosts.push_back(
            denied_lookup(lookup(f, {fld}, host_set.name, false),
                          log_prefix(DenyReason::unapproved_port, "provider/" + provider.name)));
      }
      plan_.sets.push_back(std::move(host_set));
    }

    for (auto* group : {&allow, &closed, &hosts}) {
      for (auto& r : *group) chain.rules.push_back(std::move(r));
    }
    // The provider reaching another provider's link host: attributed to that link.
    for (Family f : kFamilies) {
      chain.rules.push_back(
          lookup(f, {Field::daddr, Field::l4proto, Field::dport}, "linked" + fam_suffix(f), true));
    }
    chain.rules.push_back(
        log_drop(log_prefix(DenyReason::unapproved_host, "provider/" + provider.name)));
    plan_.chains.push_back(std::move(chain));
  }

  void add_link_chains() {
    for (std::size_t j = 0; j < policy_.links.size(); ++j) {
      const Link& link = policy_.links[j];
      const std::string& base = names_.link_chain[j];
      const std::string subject = "link/" + link.name;
      RulePlan allow;
      allow.counter = true;
      allow.verdict = Verdict{Verdict::Kind::accept, {}};
      plan_.chains.push_back(
          {base + "_allow", std::nullopt, {allow}, "link " + link.name + " open"});
      const auto reason = plan_.locked_down ? DenyReason::lockdown
                          : plan_.expired   ? DenyReason::policy_expired
                                            : DenyReason::outside_window;
      plan_.chains.push_back({base + "_closed",
                              std::nullopt,
                              {log_drop(log_prefix(reason, subject))},
                              "link " + link.name + " closed"});
      if (link.direction == Direction::inbound) {
        plan_.chains.push_back({base + "_foreign",
                                std::nullopt,
                                {log_drop(log_prefix(DenyReason::unapproved_source, subject))},
                                "link " + link.name + " from elsewhere"});
      }
    }
  }

  void add_gate_and_base_chains() {
    ChainPlan gate{"gate", std::nullopt, {}, "provider traffic, linked and guarded services"};
    for (Field fld : {Field::saddr, Field::daddr}) {
      for (Family f : kFamilies) {
        for (const char* name : {"provider_hosts", "providers"}) {
          const std::string set = name + fam_suffix(f);
          if (plan_.set(set)) gate.rules.push_back(lookup(f, {fld}, set, true));
        }
      }
    }
    for (Family f : kFamilies) {
      gate.rules.push_back(
          lookup(f, {Field::daddr, Field::l4proto, Field::dport}, "linked" + fam_suffix(f), true));
    }
    gate.rules.push_back(
        denied_lookup(lookup(Family::v4, {Field::l4proto, Field::dport}, "guarded", false),
                      log_prefix(DenyReason::unapproved_source, "guard")));

    plan_.chains.insert(plan_.chains.begin(), std::move(gate));
    const auto base = base_chains(opt_.priority);
    plan_.chains.insert(plan_.chains.begin(), base.begin(), base.end());
  }

  const Policy& policy_;
  Instant now_;
  const CompileOptions& opt_;
  Names names_;
  RulesetPlan plan_;
};

}  // namespace

namespace {

// FNV-1a, 64 bit: a stable digest, not a security boundary (the kernel state is ours to read).
class Digest {
 public:
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ULL;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);
  }
  template <class T>
  void add_value(const T& v) {
    add(&v, sizeof v);
  }
  [[nodiscard]] std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

void add_verdict(Digest& d, const std::optional<Verdict>& v) {
  d.add_value(v.has_value());
  if (v) {
    d.add_value(v->kind);
    d.add(v->chain);
  }
}

}  // namespace

std::string plan_fingerprint(const RulesetPlan& plan) {
  Digest d;
  d.add(plan.table);
  d.add_value(plan.log_group);
  for (const auto& s : plan.sets) {
    d.add(s.name);
    d.add_value(s.shape);
    d.add_value(s.family);
    d.add_value(s.verdict_map);
    d.add_value(s.has_timeouts);
    d.add_value(s.interval);
    // Only when set: plans without meters keep the fingerprints of earlier versions, so an
    // upgrade does not replace the table (and reset its counters) for nothing.
    if (s.dynamic) {
      d.add("dynamic");
      d.add_value(s.size);
      d.add_value(s.entry_timeout.count());
    }
    if (s.has_timeouts) continue;
    for (const auto& e : s.elements) {
      if (e.address) {
        d.add(e.address->first.bytes.data(), e.address->first.size());
        d.add(e.address->last.bytes.data(), e.address->last.size());
      }
      if (e.service) {
        d.add_value(e.service->protocol);
        d.add_value(e.service->first);
        d.add_value(e.service->last);
      }
      add_verdict(d, e.verdict);
    }
  }
  for (const auto& c : plan.chains) {
    d.add(c.name);
    d.add(c.name == "gate" ? std::string() : c.comment);
    d.add_value(c.hook.has_value());
    if (c.hook) {
      d.add_value(c.hook->point);
      d.add_value(c.hook->priority);
    }
    for (const auto& r : c.rules) {
      d.add_value(r.icmpv6_type.has_value());
      d.add_value(r.icmpv6_type.value_or(0));
      d.add_value(r.reply_only);
      d.add_value(r.family);
      for (Field f : r.key) d.add_value(f);
      d.add(r.set);
      d.add_value(r.verdict_map);
      if (r.meter) {
        d.add("meter");
        d.add(r.meter->set);
        d.add_value(r.meter->family);
        d.add_value(r.meter->rate);
        d.add_value(r.meter->burst);
      }
      d.add_value(r.counter);
      d.add(r.log_prefix.value_or(""));
      add_verdict(d, r.verdict);
      d.add(r.comment);
    }
  }
  return d.hex();
}

ClosedSkeleton skeleton_of(const RulesetPlan& plan) {
  ClosedSkeleton k;
  const auto keys = [&](std::string_view name) {
    std::vector<SetElement> out;
    if (const SetPlan* set = plan.set(name)) {
      for (const auto& e : set->elements) out.push_back({e.address, e.service, {}, {}});
    }
    return out;
  };
  k.linked_v4 = keys("linked_v4");
  k.linked_v6 = keys("linked_v6");
  k.guarded = keys("guarded");
  return k;
}

RulesetPlan closed_plan(const ClosedSkeleton& skeleton, const std::string& site, Instant now,
                        const CompileOptions& options) {
  RulesetPlan plan;
  plan.table = options.table;
  plan.log_group = options.log_group;
  plan.site = site;
  plan.compiled_at = now;
  plan.locked_down = true;  // nothing is open
  const std::string prefix = log_prefix(DenyReason::starting, "gateway");
  ChainPlan gate{"gate", std::nullopt, {}, ""};
  for (Family f : kFamilies) {
    const bool v4 = f == Family::v4;
    SetPlan linked{v4 ? "linked_v4" : "linked_v6", KeyShape::address_service, f, false, false, {}};
    linked.elements = v4 ? skeleton.linked_v4 : skeleton.linked_v6;
    gate.rules.push_back(denied_lookup(
        lookup(f, {Field::daddr, Field::l4proto, Field::dport}, linked.name, false), prefix));
    plan.sets.push_back(std::move(linked));
  }
  SetPlan guarded{"guarded", KeyShape::service, Family::v4, false, false, {}};
  guarded.elements = skeleton.guarded;
  plan.sets.push_back(std::move(guarded));
  gate.rules.push_back(
      denied_lookup(lookup(Family::v4, {Field::l4proto, Field::dport}, "guarded", false), prefix));
  plan.chains = base_chains(options.priority);
  plan.chains.push_back(std::move(gate));
  plan.fingerprint = plan_fingerprint(plan);
  plan.chains.back().comment =
      "drawbridge site " + site + " closed until the policy is applied, plan " + plan.fingerprint;
  return plan;
}

RulesetPlan compile(const Policy& policy, Instant now, const CompileOptions& options) {
  return Compiler(policy, now, options).run();
}

bool advance(RulesetPlan& plan, const Policy& policy, Instant now, const CompileOptions& options) {
  return Compiler(policy, now, options).advance(plan);
}

}  // namespace drawbridge
