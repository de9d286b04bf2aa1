#include "enforcer/explain.h"

#include "common/window_schedule.h"

namespace drawbridge {

namespace {

// The first packet of the connection, original direction, from an ephemeral source port.
struct Packet {
  Address saddr, daddr;
  Protocol proto;
  std::uint16_t sport, dport;
};

const SetElement* find(const SetPlan& set, const Packet& p, const RulePlan& rule) {
  std::optional<Address> addr;
  std::optional<std::uint16_t> port;
  for (Field f : rule.key) {
    switch (f) {
      case Field::saddr:
        addr = p.saddr;
        break;
      case Field::daddr:
        addr = p.daddr;
        break;
      case Field::sport:
        port = p.sport;
        break;
      case Field::dport:
        port = p.dport;
        break;
      case Field::l4proto:
        break;
    }
  }
  if (addr && addr->family != rule.family) return nullptr;  // the rule's family check fails
  for (const auto& e : set.elements) {
    if (e.address && (!addr || !e.address->contains(*addr))) continue;
    if (e.service && (!port || !e.service->contains(p.proto, *port))) continue;
    return &e;
  }
  return nullptr;
}

struct Outcome {
  Verdict::Kind verdict = Verdict::Kind::accept;
  std::string chain;                  // where the verdict was reached
  std::optional<std::string> prefix;  // log prefix of the denying rule
  bool touched = false;               // some drawbridge rule besides the jumps matched
};

// Evaluates one chain; goto/jump follow the kernel's semantics (jump returns, goto does not).
std::optional<Outcome> run_chain(const RulesetPlan& plan, const std::string& name, const Packet& p,
                                 int depth) {
  const ChainPlan* chain = plan.chain(name);
  if (!chain || depth > 16) return std::nullopt;
  for (const auto& rule : chain->rules) {
    if (rule.reply_only) continue;  // the first packet is in the original direction
    std::optional<Verdict> v = rule.verdict;
    if (!rule.key.empty()) {
      const SetPlan* set = plan.set(rule.set);
      const SetElement* hit = set ? find(*set, p, rule) : nullptr;
      if (!hit) continue;
      if (rule.verdict_map) v = hit->verdict;
    }
    if (!v) continue;
    if (v->kind == Verdict::Kind::jump || v->kind == Verdict::Kind::go_to) {
      auto sub = run_chain(plan, v->chain, p, depth + 1);
      if (sub) {
        sub->touched = sub->touched || v->kind == Verdict::Kind::go_to;
        return sub;
      }
      if (v->kind == Verdict::Kind::go_to) return std::nullopt;
      continue;
    }
    return Outcome{v->kind, chain->name, rule.log_prefix, true};
  }
  return std::nullopt;  // fell off the end: back to the caller (base chain policy accept)
}

std::string describe_until(Instant until) {
  return until == Instant::max() ? "with no end" : "until " + format_instant(until);
}

const Link* link_of_chain(const Policy& policy, const std::string& chain) {
  // Chains are named l<index>_<name>_<kind>; the index is 1-based into policy.links.
  if (chain.size() < 2 || chain[0] != 'l') return nullptr;
  const auto us = chain.find('_');
  try {
    const auto idx = std::stoul(chain.substr(1, us - 1));
    if (idx >= 1 && idx <= policy.links.size()) return &policy.links[idx - 1];
  } catch (const std::exception&) {
  }
  return nullptr;
}

// The names of the link's windows that are open at `at`.
std::string open_windows(const Policy& policy, const Link& link, Instant at) {
  std::string names;
  for (const auto& w : link.windows) {
    Link only = link;
    only.windows = {w};
    if (recurring_open_until(policy, only, at)) names += (names.empty() ? "" : ", ") + w;
  }
  return names;
}

// The policy as far as one host of the link is concerned: grants for other hosts left out.
Policy for_host(const Policy& policy, const Link& link, const Address& host) {
  Policy p = policy;
  std::erase_if(p.grants, [&](const Grant& g) {
    if (g.link != link.name || g.hosts.empty()) return false;
    for (const auto& h : g.hosts) {
      if (h.contains(host)) return false;
    }
    return true;
  });
  return p;
}

}  // namespace

Explanation explain(const Policy& policy, const RulesetPlan& plan, const Connection& c) {
  const Packet p{c.from, c.to, c.protocol, 40000, c.port};
  const std::string what = c.from.str() + " → " + c.to.str() + " " +
                           std::string(protocol_name(c.protocol)) + "/" + std::to_string(c.port);
  const Instant at = plan.compiled_at;
  auto outcome = run_chain(plan, "forward", p, 0);
  Explanation ex;
  if (!outcome || outcome->verdict == Verdict::Kind::accept) {
    ex.allowed = true;
    const Link* link = outcome ? link_of_chain(policy, outcome->chain) : nullptr;
    if (!link) {
      ex.text = "allow: " + what + " at " + format_instant(at) +
                "\n  not provider traffic and not to a linked or guarded service: drawbridge does "
                "not restrict it (other firewall rules still apply)\n";
      return ex;
    }
    ex.text = "allow: " + what + " at " + format_instant(at) + "\n  link " + link->name +
              " (provider " + link->provider + ", " +
              (link->direction == Direction::inbound ? "inbound" : "outbound") + ")\n";
    const Address& host = link->direction == Direction::inbound ? c.to : c.from;
    for (const auto& o : plan.openings) {
      if (o.link != link->name) continue;
      bool covers = false;
      for (const auto& h : o.hosts) covers = covers || h.contains(host);
      if (!covers) continue;
      if (o.ticket) {
        ex.text += "  open by grant " + *o.ticket + " " + describe_until(o.until) + "\n";
      } else {
        ex.text += "  open by window " + open_windows(policy, *link, at) + " " +
                   describe_until(o.until) + "\n";
      }
    }
    return ex;
  }

  ex.allowed = false;
  const std::string prefix = outcome->prefix.value_or("drawbridge:denied:");
  // "drawbridge:<reason>:<subject>"
  const auto a = prefix.find(':');
  const auto b = prefix.find(':', a + 1);
  const std::string reason = prefix.substr(a + 1, b - a - 1);
  const std::string subject = prefix.substr(b + 1);
  ex.text = "deny: " + what + " at " + format_instant(at) + "\n  reason: " + reason + " (" +
            subject + "), logged to NFLOG group " + std::to_string(plan.log_group) + "\n";
  const Link* link = link_of_chain(policy, outcome->chain);
  if (reason == "outside-window" && link) {
    ex.text += "  link " + link->name + " is closed now";
    const Address& host = link->direction == Direction::inbound ? c.to : c.from;
    if (auto next = next_opening(for_host(policy, *link, host), *link, at)) {
      ex.text +=
          "; it opens next " + format_instant(next->from) + " " + describe_until(next->until);
    } else {
      ex.text += "; no window or grant opens it again";
    }
    ex.text += "\n";
  } else if (reason == "unapproved-source" && link) {
    ex.text += "  " + c.from.str() + " is not an address of provider " + link->provider +
               ", the only provider link " + link->name + " admits\n";
  } else if (reason == "unapproved-source") {
    ex.text += "  the port is guarded: only an open link may reach it\n";
  } else if (reason == "unapproved-port") {
    ex.text += "  the host is in a link of this provider, but not with this port\n";
  } else if (reason == "unapproved-host") {
    ex.text += "  no link of this provider covers this host\n";
  } else if (reason == "lockdown") {
    ex.text +=
        "  the gateway is locked down: all provider access is closed until `lockdown "
        "--release`\n";
  } else if (reason == "policy-expired") {
    ex.text += "  the policy expired " +
               (policy.expires ? format_instant(*policy.expires) : std::string("?")) +
               "; all provider access is closed until a newer policy is applied\n";
  }
  return ex;
}

}  // namespace drawbridge
