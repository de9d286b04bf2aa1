#include "enforcer/soc/violation.h"

#include <algorithm>

namespace drawbridge {

namespace {

constexpr std::string_view kPrefixHead = "drawbridge:";

std::string endpoint(const Address& a, std::uint16_t port, std::uint8_t proto) {
  const bool has_port = proto == 6 || proto == 17;
  const std::string addr = a.family == Family::v6 ? "[" + a.str() + "]" : a.str();
  return has_port ? addr + ":" + std::to_string(port) : a.str();
}

const Provider* provider_of(const Policy& policy, const Address& a) {
  for (const auto& p : policy.providers) {
    for (const auto& r : p.addresses) {
      if (r.contains(a)) return &p;
    }
  }
  return nullptr;
}

}  // namespace

Result<LogPrefix> parse_log_prefix(std::string_view prefix) {
  if (!prefix.starts_with(kPrefixHead)) {
    return make_error("log prefix '" + std::string(prefix.substr(0, 64)) + "' is not drawbridge's");
  }
  prefix.remove_prefix(kPrefixHead.size());
  const auto colon = prefix.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return make_error("log prefix has no reason and subject");
  }
  LogPrefix out;
  out.reason = std::string(prefix.substr(0, colon));
  const std::string_view subject = prefix.substr(colon + 1);
  if (subject == "guard") {
    out.subject_kind = "guard";
    return out;
  }
  const auto slash = subject.find('/');
  if (slash == std::string_view::npos || slash + 1 == subject.size()) {
    return make_error("log prefix subject '" + std::string(subject.substr(0, 64)) +
                      "' is not guard, link/<name> or provider/<name>");
  }
  out.subject_kind = std::string(subject.substr(0, slash));
  out.subject_name = std::string(subject.substr(slash + 1));
  if (out.subject_kind != "link" && out.subject_kind != "provider") {
    return make_error("log prefix subject kind '" + out.subject_kind + "' is unknown");
  }
  return out;
}

SocEvent attribute_denial(const LogPrefix& prefix, const Flow& flow, Instant seen,
                          const Policy* policy) {
  SocEvent e;
  e.timestamp = seen;
  e.kind = EventKind::violation;
  e.action = action::kConnectionDenied;
  e.outcome = "failure";
  e.reason = prefix.reason;
  e.rule =
      prefix.subject_kind == "guard" ? "guard" : prefix.subject_kind + "/" + prefix.subject_name;
  e.flow = flow;
  e.first_seen = e.last_seen = seen;
  e.packets = 1;
  if (prefix.subject_kind == "link") e.link = prefix.subject_name;
  if (prefix.subject_kind == "provider") e.provider = prefix.subject_name;
  if (policy != nullptr) {
    e.site = policy->site;
    e.serial = policy->serial;
    // The provider is whoever owns the outside end: the source of an inbound attempt, the
    // destination of an outbound one.
    if (const auto* p = provider_of(*policy, flow.source)) {
      e.provider = p->name;
      e.flow->direction = FlowDirection::inbound;
    } else if (const auto* q = provider_of(*policy, flow.destination)) {
      e.provider = q->name;
      e.flow->direction = FlowDirection::outbound;
    } else if (const auto* l = policy->link(e.link)) {
      // Neither end is a provider (an attacker at a link): the link says the direction, but
      // the provider stays empty so that the SOC does not file the attempt under the MSP.
      e.flow->direction =
          l->direction == Direction::inbound ? FlowDirection::inbound : FlowDirection::outbound;
    }
  }
  std::string why = prefix.reason;
  if (!e.link.empty()) {
    why += ", link " + e.link;
  } else if (prefix.subject_kind == "guard") {
    why += ", guarded port";
  }
  if (!e.provider.empty()) why += ", provider " + e.provider;
  e.message = "denied " + transport_name(flow.protocol) + " " +
              endpoint(flow.source, flow.source_port, flow.protocol) + " -> " +
              endpoint(flow.destination, flow.destination_port, flow.protocol) + " (" + why + ")";
  return e;
}

// --- aggregation --------------------------------------------------------------------------

void ViolationAggregator::fold(SocEvent& into, const SocEvent& denial) const {
  if (into.packets == 0) into.first_seen = denial.first_seen;
  into.packets += denial.packets;
  into.last_seen = denial.last_seen;
  into.timestamp = denial.timestamp;
}

SocEvent ViolationAggregator::summary_of(SocEvent e) {
  e.labels["aggregated"] = "true";
  if (e.flow) {
    e.message = std::to_string(e.packets) + " more denial(s) of " +
                transport_name(e.flow->protocol) + " " + e.flow->source.str() + " -> " +
                endpoint(e.flow->destination, e.flow->destination_port, e.flow->protocol) + " (" +
                e.reason + (e.link.empty() ? "" : ", link " + e.link) + ")";
  }
  return e;
}

std::optional<SocEvent> ViolationAggregator::observe(const SocEvent& denial, Instant now) {
  if (!denial.flow) return denial;  // nothing to aggregate on
  const Flow& f = *denial.flow;
  const FlowKey key{f.source, f.destination, f.protocol, f.destination_port, denial.reason};
  SourceRate* rate = nullptr;
  if (sources_.size() < opt_.max_flows || sources_.contains(f.source)) {
    rate = &sources_[f.source];
    if (rate->scanning && now >= rate->quiet_after) *rate = SourceRate{};
    rate->quiet_after = now + opt_.interval;
  }
  const bool known_scanner = rate != nullptr && rate->scanning;
  if (auto it = flows_.find(key); it != flows_.end() && !known_scanner) {
    fold(it->second.event, denial);
    return std::nullopt;
  }
  // A new flow, or any flow of a source that is scanning. Is it (still) scanning?
  bool scanning = known_scanner;
  if (rate != nullptr && !scanning) {
    if (now >= rate->window_end) {
      rate->window_end = now + opt_.interval;
      rate->new_flows = 0;
    }
    scanning = rate->scanning = ++rate->new_flows > opt_.new_flows_per_source;
  }
  const bool full = flows_.size() + scans_.size() >= opt_.max_flows;
  if (scanning) {
    const ScanKey skey{f.source, f.destination, denial.reason};
    auto it = scans_.find(skey);
    if (it == scans_.end() && !full) {
      Scan s;
      s.event = denial;
      s.event.packets = 0;
      s.window_end = now + opt_.interval;
      it = scans_.emplace(skey, std::move(s)).first;
    }
    if (it != scans_.end()) {
      fold(it->second.event, denial);
      it->second.ports[f.destination_port] = true;
      return std::nullopt;
    }
  }
  if (full || scanning) {
    Pending& o = overflow_[denial.reason];
    if (o.event.packets == 0 && o.event.action.empty()) {
      o.event = denial;
      o.event.packets = 0;
      o.event.flow.reset();  // many flows: no single 5-tuple
      o.event.link.clear();
      o.event.provider.clear();
      o.window_end = now + opt_.interval;
    }
    fold(o.event, denial);
    return std::nullopt;
  }
  Pending p;
  p.event = denial;
  p.event.packets = 0;  // the first denial is reported now; the pending count starts after it
  p.window_end = now + opt_.interval;
  flows_.emplace(key, std::move(p));
  return denial;
}

std::vector<SocEvent> ViolationAggregator::flush_due(Instant now) {
  std::vector<SocEvent> out;
  for (auto it = flows_.begin(); it != flows_.end();) {
    Pending& p = it->second;
    if (now < p.window_end) {
      ++it;
      continue;
    }
    if (p.event.packets == 0) {
      // Quiet for a whole interval: forget it, so that a later denial is news again.
      it = flows_.erase(it);
      continue;
    }
    out.push_back(summary_of(p.event));
    p.event.packets = 0;
    p.window_end = now + opt_.interval;
    ++it;
  }
  for (auto it = scans_.begin(); it != scans_.end();) {
    if (now < it->second.window_end) {
      ++it;
      continue;
    }
    SocEvent e = it->second.event;
    e.labels["aggregated"] = "true";
    e.labels["scan"] = "true";
    e.labels["distinct_ports"] = std::to_string(it->second.ports.size());
    std::string sample;
    std::size_t shown = 0;
    for (const auto& [port, _] : it->second.ports) {
      if (shown++ == 20) {
        sample += ",…";
        break;
      }
      sample += (sample.empty() ? "" : ",") + std::to_string(port);
    }
    e.labels["ports"] = sample;
    if (e.flow) e.flow->destination_port = 0;  // many ports: none in particular
    e.message = "scan: " + std::to_string(e.packets) + " denial(s) from " +
                (e.flow ? e.flow->source.str() + " to " + e.flow->destination.str() : "?") +
                " on " + std::to_string(it->second.ports.size()) + " port(s) (" + e.reason + ")";
    out.push_back(std::move(e));
    it = scans_.erase(it);
  }
  for (auto it = overflow_.begin(); it != overflow_.end();) {
    if (now < it->second.window_end) {
      ++it;
      continue;
    }
    SocEvent e = it->second.event;
    e.labels["aggregated"] = "true";
    e.labels["overflow"] = "true";
    e.message = "flood: " + std::to_string(e.packets) + " denial(s) (" + e.reason +
                ") from more sources or flows than are tracked one by one";
    out.push_back(std::move(e));
    it = overflow_.erase(it);
  }
  std::erase_if(sources_, [&](const auto& s) {
    return now >= s.second.window_end && now >= s.second.quiet_after;
  });
  return out;
}

std::vector<SocEvent> ViolationAggregator::flush_all(Instant now) {
  for (auto& [k, p] : flows_) p.window_end = std::min(p.window_end, now);
  for (auto& [k, s] : scans_) s.window_end = std::min(s.window_end, now);
  for (auto& [k, o] : overflow_) o.window_end = std::min(o.window_end, now);
  auto out = flush_due(now);
  flows_.clear();
  return out;
}

std::optional<Instant> ViolationAggregator::next_due() const {
  std::optional<Instant> due;
  const auto consider = [&](Instant t) { due = due ? std::min(*due, t) : t; };
  for (const auto& [k, p] : flows_) consider(p.window_end);
  for (const auto& [k, s] : scans_) consider(s.window_end);
  for (const auto& [k, o] : overflow_) consider(o.window_end);
  return due;
}

}  // namespace drawbridge
