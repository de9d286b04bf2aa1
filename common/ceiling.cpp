// Ceiling containment, by exact interval arithmetic: address and port ranges are merged and
// compared as ranges, time is compared as sorted, merged UTC intervals. Nothing is sampled.
#include "common/ceiling.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/interval_union.h"
#include "common/window_schedule.h"

namespace drawbridge {
namespace {

using Intervals = std::vector<Interval>;
using Links = std::vector<const Link*>;

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string span(const Interval& iv) {
  return format_instant(iv.from) + "\u2013" + format_instant(iv.until);
}

template <class T, class F>
std::string join(const std::vector<T>& items, F str, std::string_view none = "none") {
  if (items.empty()) return std::string(none);
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + str(item);
  return out;
}

std::string_view direction_name(Direction d) {
  return d == Direction::inbound ? "inbound" : "outbound";
}

// --- Ranges -------------------------------------------------------------------------------------

// `merged` comes from merge_ranges/merge_ports, which also join adjacent ranges, so a range
// covered by the union lies inside one merged range.
bool covered(const AddressRange& r, const std::vector<AddressRange>& merged) {
  return std::any_of(merged.begin(), merged.end(), [&](const auto& m) { return m.contains(r); });
}
bool covered(const PortRange& p, const std::vector<PortRange>& merged) {
  return std::any_of(merged.begin(), merged.end(), [&](const auto& m) {
    return m.protocol == p.protocol && m.first <= p.first && p.last <= m.last;
  });
}

// The ports of `want` that `have` lacks (both merged).
std::vector<PortRange> missing_ports(const std::vector<PortRange>& want,
                                     const std::vector<PortRange>& have) {
  std::vector<PortRange> out;
  for (const PortRange& w : want) {
    std::uint32_t next = w.first;  // first port of `w` not yet accounted for
    for (const PortRange& h : have) {
      if (h.protocol != w.protocol || h.last < next || h.first > w.last) continue;
      if (h.first > next)
        out.push_back({w.protocol, static_cast<std::uint16_t>(next),
                       static_cast<std::uint16_t>(h.first - 1)});
      next = static_cast<std::uint32_t>(h.last) + 1;
    }
    if (next <= w.last) out.push_back({w.protocol, static_cast<std::uint16_t>(next), w.last});
  }
  return out;
}

// --- Time ---------------------------------------------------------------------------------------

Intervals merge_intervals(Intervals v) {
  std::sort(v.begin(), v.end());
  Intervals out;
  for (const Interval& iv : v) {
    if (iv.from >= iv.until) continue;
    if (!out.empty() && iv.from <= out.back().until) {
      out.back().until = std::max(out.back().until, iv.until);
    } else {
      out.push_back(iv);
    }
  }
  return out;
}

// The parts of `need` outside `have` (both merged), in ascending order.
Intervals uncovered(const Intervals& need, const Intervals& have) {
  Intervals out;
  for (const Interval& n : need) {
    Instant next = n.from;
    for (const Interval& h : have) {
      if (h.until <= next || h.from >= n.until) continue;
      if (h.from > next) out.push_back({next, h.from});
      next = std::max(next, h.until);
    }
    if (next < n.until) out.push_back({next, n.until});
  }
  return out;
}

// Occurrences of the named window of `policy` within `within`, clipped to it.
Intervals occurrences(const Policy& policy, const std::string& name, const Interval& within) {
  Window always;
  always.name = std::string(kAlwaysWindow);
  always.always = true;
  const Window* w = name == kAlwaysWindow ? &always : policy.window(name);
  if (w == nullptr) return {};  // cannot happen in a validated policy
  Intervals out;
  for (Interval iv : window_occurrences(*w, policy.timezone, within.from, within.until)) {
    iv.from = std::max(iv.from, within.from);
    iv.until = std::min(iv.until, within.until);
    out.push_back(iv);
  }
  return merge_intervals(std::move(out));
}

// When the ceiling lets any of `links` be open within `within`.
Intervals ceiling_open(const Policy& ceiling, const Links& links, const Interval& within) {
  Intervals all;
  for (const Link* l : links) {
    for (const std::string& name : l->windows) {
      const Intervals occ = occurrences(ceiling, name, within);
      all.insert(all.end(), occ.begin(), occ.end());
    }
  }
  return merge_intervals(std::move(all));
}

std::string windows_of(const Links& links) {
  return join(links, [](const Link* l) {
    return "ceiling link " + quoted(l->name) + ": " + join(l->windows, quoted, "no windows");
  });
}

// --- Cells --------------------------------------------------------------------------------------
// Hosts and ports of a bundle link, cut at every boundary of the ceiling links, so that each
// ceiling link contains a cell (host piece × port piece) whole or misses it entirely. A cell's
// covering links are exactly the ceiling links allowing that host and port *together*; checking
// hosts and ports separately against unions would accept SSH to A plus RDP to B as "SSH and RDP
// to A and B".

std::vector<AddressRange> cut_hosts(const std::vector<AddressRange>& hosts, const Links& peers) {
  std::vector<AddressRange> out;
  for (const AddressRange& h : merge_ranges(hosts)) {
    std::vector<Address> cuts;
    const auto consider = [&](const Address& a) {
      if (a.family == h.family() && h.first < a && a <= h.last) cuts.push_back(a);
    };
    for (const Link* l : peers) {
      for (const AddressRange& c : l->hosts) {
        consider(c.first);
        if (auto n = c.last.next()) consider(*n);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    Address start = h.first;
    for (const Address& a : cuts) {
      out.push_back({start, *a.prev()});
      start = a;
    }
    out.push_back({start, h.last});
  }
  return out;
}

std::vector<PortRange> cut_ports(const std::vector<PortRange>& ports, const Links& peers) {
  std::vector<PortRange> out;
  for (const PortRange& p : merge_ports(ports)) {
    std::vector<std::uint32_t> cuts;
    const auto consider = [&](Protocol proto, std::uint32_t port) {
      if (proto == p.protocol && p.first < port && port <= p.last) cuts.push_back(port);
    };
    for (const Link* l : peers) {
      for (const PortRange& c : l->ports) {
        consider(c.protocol, c.first);
        consider(c.protocol, static_cast<std::uint32_t>(c.last) + 1);
      }
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    std::uint32_t start = p.first;
    for (std::uint32_t c : cuts) {
      out.push_back(
          {p.protocol, static_cast<std::uint16_t>(start), static_cast<std::uint16_t>(c - 1)});
      start = c;
    }
    out.push_back({p.protocol, static_cast<std::uint16_t>(start), p.last});
  }
  return out;
}

struct Cell {
  AddressRange host;
  PortRange port;
  Links covering;  // ceiling links allowing this host and port together
};

std::vector<Cell> cells(const std::vector<AddressRange>& hosts, const std::vector<PortRange>& ports,
                        const Links& peers) {
  std::vector<Cell> out;
  for (const AddressRange& h : cut_hosts(hosts, peers)) {
    for (const PortRange& p : cut_ports(ports, peers)) {
      Cell cell{h, p, {}};
      for (const Link* l : peers) {
        if (covered(h, merge_ranges(l->hosts)) && covered(p, merge_ports(l->ports))) {
          cell.covering.push_back(l);
        }
      }
      out.push_back(std::move(cell));
    }
  }
  return out;
}

std::string cell_name(const Cell& c) {
  return c.host.str() + " " + c.port.str();
}

// --- Rules --------------------------------------------------------------------------------------

class Checker {
 public:
  Checker(const Policy& bundle, const Policy& ceiling, Instant now)
      : bundle_(bundle), ceiling_(ceiling), now_(now) {
    // Windows are compared up to the horizon, and never past the bundle's expiry, after which
    // the bundle opens nothing.
    Instant end = now + kCeilingHorizon;
    if (bundle.expires) end = std::min(end, *bundle.expires);
    horizon_ = {now, end};
  }

  std::vector<CeilingViolation> run() {
    for (const Provider& p : bundle_.providers) check_sources(p);
    for (const Link& l : bundle_.links) check_link(l);
    for (const Grant& g : bundle_.grants) check_grant(g);
    check_guard();
    check_expiry();
    return std::move(out_);
  }

 private:
  void report(std::string what) { out_.push_back({std::move(what)}); }

  // Rule 1: a provider's traffic is identified by its addresses; more addresses means more
  // sources trusted as the provider.
  void check_sources(const Provider& p) {
    const Provider* cp = ceiling_.provider(p.name);
    if (cp == nullptr) {
      report("provider " + quoted(p.name) + " is not in the ceiling (it allows providers " +
             join(ceiling_.providers, [](const Provider& x) { return quoted(x.name); }) + ")");
      return;
    }
    const auto allowed = merge_ranges(cp->addresses);
    for (const AddressRange& r : p.addresses) {
      if (!covered(r, allowed)) {
        report("provider " + quoted(p.name) + " address " + r.str() +
               " is outside the ceiling's addresses for it (" +
               join(allowed, [](const AddressRange& a) { return a.str(); }) + ")");
      }
    }
  }

  Links peers_of(const Link& l) const {
    Links out;
    for (const Link& c : ceiling_.links) {
      if (c.provider == l.provider && c.direction == l.direction) out.push_back(&c);
    }
    return out;
  }

  std::string peers_name(const Link& l) const {
    return "the ceiling's " + std::string(direction_name(l.direction)) + " links for provider " +
           quoted(l.provider);
  }

  // Rules 2 and 3 for one link.
  void check_link(const Link& l) {
    // An unknown provider is reported once, under rule 1; its links add nothing.
    if (ceiling_.provider(l.provider) == nullptr) return;
    const Links peers = peers_of(l);
    if (peers.empty()) {
      report("link " + quoted(l.name) + " has no counterpart: the ceiling has no " +
             std::string(direction_name(l.direction)) + " link for provider " + quoted(l.provider));
      return;
    }

    // Rule 2: hosts and ports against the unions of the peers.
    std::vector<AddressRange> all_hosts;
    std::vector<PortRange> all_ports;
    for (const Link* c : peers) {
      all_hosts.insert(all_hosts.end(), c->hosts.begin(), c->hosts.end());
      all_ports.insert(all_ports.end(), c->ports.begin(), c->ports.end());
    }
    all_hosts = merge_ranges(std::move(all_hosts));
    all_ports = merge_ports(std::move(all_ports));
    bool shape_ok = true;
    for (const AddressRange& h : l.hosts) {
      if (covered(h, all_hosts)) continue;
      shape_ok = false;
      report("link " + quoted(l.name) + " host " + h.str() + " is outside the hosts of " +
             peers_name(l) + " (" + join(all_hosts, [](const auto& a) { return a.str(); }) + ")");
    }
    for (const PortRange& p : l.ports) {
      if (covered(p, all_ports)) continue;
      shape_ok = false;
      report("link " + quoted(l.name) + " port " + p.str() + " is outside the ports of " +
             peers_name(l) + " (" + join(all_ports, [](const auto& a) { return a.str(); }) + ")");
    }

    // Rule 2, together: a host and port each allowed by some peer, but by no peer jointly.
    const std::vector<Cell> parts = cells(l.hosts, l.ports, peers);
    if (shape_ok) {
      for (const Cell& c : parts) {
        if (!c.covering.empty()) continue;
        report("link " + quoted(l.name) + " opens " + cell_name(c) + ", which no one of " +
               peers_name(l) + " allows together");
        break;
      }
    }

    // Rule 3: the earliest time the link is open while its covering peers are not.
    if (horizon_.from >= horizon_.until) return;
    // Name the host and port only when the ceiling treats parts of the link differently.
    const Cell* some = nullptr;
    bool uniform = true;
    for (const Cell& c : parts) {
      if (c.covering.empty()) continue;
      if (some != nullptr && c.covering != some->covering) uniform = false;
      some = &c;
    }
    std::optional<std::string> first;
    Instant first_at = kForever;
    for (const Cell& c : parts) {
      if (c.covering.empty()) continue;  // reported above
      const Intervals allowed = ceiling_open(ceiling_, c.covering, horizon_);
      for (const std::string& w : l.windows) {
        const Intervals gap = uncovered(occurrences(bundle_, w, horizon_), allowed);
        if (gap.empty() || gap.front().from >= first_at) continue;
        first_at = gap.front().from;
        first = "link " + quoted(l.name) + " is open " + span(gap.front()) + " (window " +
                quoted(w) + ")" + (uniform ? "" : " on " + cell_name(c)) +
                ", outside the ceiling's windows (" + windows_of(c.covering) + ")";
      }
    }
    if (first) report(*first);
  }

  // Rule 4: a grant opens the link's ports on its hosts from `from` to `until` regardless of
  // windows, so that time must be inside the ceiling's windows for those hosts and ports, or
  // inside a grant the customer put in the ceiling for the same link and ticket. Its hosts lie
  // within the link's (the parser checks), so rule 2 on the link already covers them.
  void check_grant(const Grant& g) {
    if (g.until <= now_) return;  // over: opens nothing any more
    const Link* l = bundle_.link(g.link);
    if (l == nullptr || ceiling_.provider(l->provider) == nullptr) return;
    const Links peers = peers_of(*l);
    if (peers.empty()) return;  // reported under the link
    const Interval when{std::max(g.from, now_), g.until};
    const auto& hosts = g.hosts.empty() ? l->hosts : g.hosts;
    for (const Cell& c : cells(hosts, l->ports, peers)) {
      if (c.covering.empty()) continue;  // reported under the link
      Intervals allowed = ceiling_open(ceiling_, c.covering, when);
      for (const Grant& cg : ceiling_.grants) {
        if (cg.link != g.link || cg.ticket != g.ticket) continue;
        const Link* cl = ceiling_.link(cg.link);
        if (std::find(c.covering.begin(), c.covering.end(), cl) == c.covering.end()) continue;
        if (!covered(c.host, merge_ranges(cg.hosts.empty() ? cl->hosts : cg.hosts))) continue;
        allowed.push_back({cg.from, cg.until});
      }
      const Intervals gap = uncovered({when}, merge_intervals(std::move(allowed)));
      if (gap.empty()) continue;
      std::string what =
          "grant " + g.ticket + " on link " + quoted(g.link) + " (" + span(when) + ")";
      if (gap.size() != 1 || gap.front() != when) what += " at " + span(gap.front());
      report(what + " is outside the ceiling's windows; it needs a customer signature");
      return;  // one sentence per grant
    }
  }

  // Rule 5: the guard takes access away from everyone else; unguarding a port widens it.
  void check_guard() {
    const auto missing =
        missing_ports(merge_ports(ceiling_.guard.ports), merge_ports(bundle_.guard.ports));
    if (missing.empty()) return;
    report("guard leaves " + join(missing, [](const PortRange& p) { return p.str(); }) +
           " unguarded, which the ceiling guards (" +
           join(ceiling_.guard.ports, [](const PortRange& p) { return p.str(); }) + ")");
  }

  // Rule 6: expiry is freeze protection; a later one keeps access open longer unattended.
  void check_expiry() {
    if (!ceiling_.expires) return;
    if (!bundle_.expires) {
      report("the bundle never expires; the ceiling requires expiry by " +
             format_instant(*ceiling_.expires));
    } else if (*bundle_.expires > *ceiling_.expires) {
      report("the bundle expires " + format_instant(*bundle_.expires) +
             ", after the ceiling's expiry " + format_instant(*ceiling_.expires));
    }
  }

  const Policy& bundle_;
  const Policy& ceiling_;
  Instant now_;
  Interval horizon_;
  std::vector<CeilingViolation> out_;
};

}  // namespace

std::vector<CeilingViolation> exceeds_ceiling(const Policy& bundle, const Policy& ceiling,
                                              Instant now) {
  return Checker(bundle, ceiling, now).run();
}

}  // namespace drawbridge
