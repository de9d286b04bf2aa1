#include "enforcer/status_report.h"

#include <linux/netfilter/nf_tables.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "common/window_schedule.h"
#include "enforcer/nft_render.h"

namespace drawbridge {

namespace {

// Link chains are l<j>_<id>_allow|_closed|_foreign with the comment "link <name> …".
std::string link_name(const KernelChain& c) {
  static const std::regex re("^link (.+) (open|closed|from elsewhere)$");
  std::smatch m;
  if (std::regex_match(c.comment, m, re)) return m[1];
  return c.name;
}

std::string ends_with_kind(const std::string& chain) {
  for (const char* k : {"_allow", "_closed", "_foreign"}) {
    const std::string kind(k);
    if (chain.size() > kind.size() &&
        chain.compare(chain.size() - kind.size(), kind.size(), kind) == 0) {
      return kind;
    }
  }
  return {};
}

}  // namespace

Result<StatusReport> read_status(NetlinkSocket& sock, const std::string& table,
                                 const std::string& state_dir) {
  StatusReport r;
  r.table = table;
  if (std::ifstream in(state_dir + "/events.json"); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    r.events_json = ss.str();
  }
  if (auto link = load_link_state(state_dir); link.ok()) {
    r.link = *link;
  } else {
    r.problems.push_back(link.error().message);
  }
  auto applied = load_applied(state_dir, table);
  if (applied.ok()) {
    r.applied = *applied;
  } else {
    r.problems.push_back(applied.error().message);
  }
  auto kt = sock.read_table(table);
  if (!kt.ok()) return kt.error();
  r.table_present = kt->exists;
  r.table_flags = kt->flags;
  if (!kt->exists) {
    if (r.applied) {
      r.problems.push_back("table inet " + table + " is missing although serial " +
                           std::to_string(r.applied->serial) +
                           " was applied: provider access is NOT restricted; run apply");
    }
    return r;
  }
  if (kt->flags & NFT_TABLE_F_DORMANT) {
    r.problems.push_back("table inet " + table + " is dormant: its rules are not enforced");
  }

  for (const auto& c : kt->chains) {
    if (c.name == "gate") r.kernel_plan = c.comment;
  }
  if (r.kernel_plan.empty()) {
    r.problems.push_back("table inet " + table +
                         " has no drawbridge gate chain: it was not made "
                         "by drawbridge-enforcer, or was altered; run apply");
  } else if (r.applied && r.kernel_plan.find(" serial " + std::to_string(r.applied->serial) +
                                             " ") == std::string::npos) {
    r.problems.push_back("the state file records serial " + std::to_string(r.applied->serial) +
                         " but the kernel holds: " + r.kernel_plan);
  }

  std::map<std::string, std::string> chain_link;  // chain name → link name
  std::map<std::string, std::string> index_link;  // "l<j>" → link name (its open sets)
  std::map<std::string, LinkCounters> counters;   // by link name
  std::vector<std::string> link_order;
  for (const auto& c : kt->chains) {
    if (ends_with_kind(c.name).empty()) continue;
    const auto name = link_name(c);
    chain_link[c.name] = name;
    index_link[c.name.substr(0, c.name.find('_'))] = name;
    if (!counters.count(name)) {
      counters[name].link = name;
      link_order.push_back(name);
    }
  }
  auto rules = sock.read_rules(table);
  if (!rules.ok()) return rules.error();
  for (const auto& rule : *rules) {
    if (!rule.has_counter) continue;
    if (rule.chain == "gate") {
      r.guard_denied += rule.packets;
      continue;
    }
    const auto it = chain_link.find(rule.chain);
    if (it == chain_link.end()) continue;
    auto& lc = counters[it->second];
    const auto kind = ends_with_kind(rule.chain);
    if (kind == "_allow") {
      lc.allowed_packets += rule.packets;
      lc.allowed_bytes += rule.bytes;
    } else if (kind == "_closed") {
      lc.denied_closed += rule.packets;
    } else {
      lc.denied_foreign += rule.packets;
    }
  }
  for (const auto& name : link_order) r.links.push_back(counters[name]);

  // Each link's open windows are in its own set, l<j>_open_v4 / _v6 (ruleset_plan.h).
  static const std::regex open_set("^(l[0-9]+)_open_v([46])$");
  for (const auto& set : kt->sets) {
    std::smatch m;
    if (!std::regex_match(set, m, open_set)) continue;
    const Family f = m[2] == "4" ? Family::v4 : Family::v6;
    const auto link = index_link.find(m[1]);
    auto elements = sock.read_elements(table, set);
    if (!elements.ok()) return elements.error();
    for (const auto& e : *elements) {
      const auto decoded = decode_address_service(e, f);
      if (!decoded) continue;
      r.open.push_back(OpenElement{link != index_link.end() ? link->second : set,
                                   decoded->address->str(), decoded->service->str(), e.expires});
    }
  }
  return r;
}

std::string format_status(const StatusReport& r) {
  std::ostringstream out;
  out << "table inet " << r.table << ": "
      << (r.table_present
              ? (r.table_flags & NFT_TABLE_F_DORMANT ? "present, DORMANT" : "present, enforcing")
              : "absent")
      << "\n";
  if (!r.kernel_plan.empty()) out << "in the kernel: " << r.kernel_plan << "\n";
  if (r.applied) {
    out << "policy: site " << r.applied->site << ", serial " << r.applied->serial << ", applied "
        << format_instant(r.applied->applied_at) << " from " << r.applied->policy_path << "\n";
    if (r.applied->expires)
      out << "policy expires: " << format_instant(*r.applied->expires) << "\n";
  } else {
    out << "policy: none applied (no state in the state directory)\n";
  }
  out << "open links:" << (r.open.empty() ? " none" : "") << "\n";
  for (const auto& o : r.open) {
    out << "  " << o.link << "  " << o.hosts << " " << o.service << "  "
        << (o.remaining ? "closes in " + nft_duration(*o.remaining) : std::string("no end"))
        << "\n";
  }
  if (!r.links.empty()) {
    out << "per-link packets: allowed / denied outside window / denied from elsewhere\n";
    for (const auto& l : r.links) {
      out << "  " << l.link << "  " << l.allowed_packets << " / " << l.denied_closed << " / "
          << l.denied_foreign << "\n";
    }
  }
  if (r.table_present) out << "guarded ports: " << r.guard_denied << " packets denied\n";
  if (r.link) {
    const auto& l = *r.link;
    out << "controller: " << l.endpoint << ", " << (l.connected ? "connected" : "NOT connected")
        << ", last heard " << (l.last_heard ? format_instant(*l.last_heard) : "never") << " (as of "
        << format_instant(l.updated_at) << ")\n"
        << "  bundles: " << l.bundles_received << " received, " << l.bundles_applied << " applied, "
        << l.bundles_rejected << " rejected; bad messages: " << l.bad_messages
        << "; key refused: " << l.refused_by_controller
        << "; failed handshakes: " << l.handshake_failures << "\n";
    if (!l.last_rejection.empty()) out << "  last rejection: " << l.last_rejection << "\n";
  }
  if (!r.events_json.empty()) {
    const auto j = nlohmann::json::parse(r.events_json, nullptr, false);
    if (j.is_object()) {
      out << "events (as of " << j.value("updated_at", "?") << "): " << j.value("events_emitted", 0)
          << " emitted; denied packets logged by the kernel "
          << j.value("denied_logged_by_kernel", 0) << ", read " << j.value("denied_received", 0)
          << ", lost " << j.value("denied_lost", 0) << " (queue overflows " << j.value("enobufs", 0)
          << "), not logged over the per-source rate " << j.value("denied_rate_limited", 0)
          << ", logged before start " << j.value("denied_logged_while_down", 0)
          << "; provider sessions open " << j.value("sessions_open", 0) << "\n";
      for (const auto& o : j.value("outputs", nlohmann::json::array())) {
        out << "  output " << o.value("name", "?") << ": delivered " << o.value("delivered", 0)
            << ", waiting " << o.value("backlog", 0) << ", compacted " << o.value("compacted", 0)
            << (o.value("failing", false) ? ", FAILING: " + o.value("last_error", "") : "") << "\n";
      }
    }
  }
  for (const auto& p : r.problems) out << "PROBLEM: " << p << "\n";
  return out.str();
}

std::string status_json(const StatusReport& r) {
  nlohmann::json j;
  j["table"] = r.table;
  j["table_present"] = r.table_present;
  j["dormant"] = (r.table_flags & NFT_TABLE_F_DORMANT) != 0;
  j["kernel_plan"] = r.kernel_plan;
  if (r.applied) {
    j["site"] = r.applied->site;
    j["serial"] = r.applied->serial;
    j["applied_at"] = format_instant(r.applied->applied_at);
    j["policy"] = r.applied->policy_path;
  }
  j["open"] = nlohmann::json::array();
  for (const auto& o : r.open) {
    nlohmann::json e{{"link", o.link}, {"hosts", o.hosts}, {"service", o.service}};
    e["remaining_ms"] =
        o.remaining ? nlohmann::json(o.remaining->count()) : nlohmann::json(nullptr);
    j["open"].push_back(e);
  }
  j["links"] = nlohmann::json::array();
  for (const auto& l : r.links) {
    j["links"].push_back({{"link", l.link},
                          {"allowed_packets", l.allowed_packets},
                          {"allowed_bytes", l.allowed_bytes},
                          {"denied_outside_window", l.denied_closed},
                          {"denied_unapproved_source", l.denied_foreign}});
  }
  j["guard_denied"] = r.guard_denied;
  if (r.link) {
    const auto& l = *r.link;
    j["controller"] = {{"endpoint", l.endpoint},
                       {"connected", l.connected},
                       {"last_heard", l.last_heard ? format_instant(*l.last_heard) : ""},
                       {"updated_at", format_instant(l.updated_at)},
                       {"bundles_received", l.bundles_received},
                       {"bundles_applied", l.bundles_applied},
                       {"bundles_rejected", l.bundles_rejected},
                       {"bad_messages", l.bad_messages},
                       {"refused_by_controller", l.refused_by_controller},
                       {"handshake_failures", l.handshake_failures},
                       {"last_rejection", l.last_rejection}};
  }
  if (!r.events_json.empty()) {
    const auto events = nlohmann::json::parse(r.events_json, nullptr, false);
    if (!events.is_discarded()) j["events"] = events;
  }
  j["problems"] = r.problems;
  return j.dump(2);
}

}  // namespace drawbridge
