#include "enforcer/nft_render.h"

#include <sstream>

#include "common/window_schedule.h"

namespace drawbridge {

std::string nft_duration(std::chrono::milliseconds d) {
  using namespace std::chrono;
  std::string out;
  auto ms = d.count();
  const std::pair<long long, const char*> units[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  for (const auto& [size, name] : units) {
    if (ms >= size) {
      out += std::to_string(ms / size) + name;
      ms %= size;
    }
  }
  return out.empty() ? "0ms" : out;
}

namespace {

std::string service_text(const PortRange& p) {
  std::string s(protocol_name(p.protocol));
  s += " . " + std::to_string(p.first);
  if (p.last != p.first) s += "-" + std::to_string(p.last);
  return s;
}

std::string verdict_text(const Verdict& v) {
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
  return {};
}

std::string key_type(const SetPlan& s) {
  const std::string addr = s.family == Family::v4 ? "ipv4_addr" : "ipv6_addr";
  switch (s.shape) {
    case KeyShape::address:
      return addr;
    case KeyShape::address_service:
      return addr + " . inet_proto . inet_service";
    case KeyShape::service:
      return "inet_proto . inet_service";
  }
  return {};
}

std::string field_text(Field f, Family fam) {
  const std::string ip = fam == Family::v4 ? "ip" : "ip6";
  switch (f) {
    case Field::saddr:
      return ip + " saddr";
    case Field::daddr:
      return ip + " daddr";
    case Field::l4proto:
      return "meta l4proto";
    case Field::sport:
      return "th sport";
    case Field::dport:
      return "th dport";
  }
  return {};
}

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

// As nft lists it: a standard priority name when the value is within 10 of one that filter
// chains on input/forward may use, else the number.
std::string priority_text(int prio) {
  struct Std {
    const char* name;
    int value;
  };
  static const Std common[] = {{"raw", -300}, {"mangle", -150}, {"filter", 0}, {"security", 50}};
  for (const auto& n : common) {
    const int offset = prio - n.value;
    if (offset < -10 || offset > 10) continue;
    if (offset == 0) return n.name;
    return std::string(n.name) + (offset < 0 ? " - " : " + ") +
           std::to_string(offset < 0 ? -offset : offset);
  }
  return std::to_string(prio);
}

}  // namespace

std::string nft_element_key(const SetElement& e, KeyShape shape) {
  switch (shape) {
    case KeyShape::address:
      return e.address->str();
    case KeyShape::address_service:
      return e.address->str() + " . " + service_text(*e.service);
    case KeyShape::service:
      return service_text(*e.service);
  }
  return {};
}

std::string render_nft(const RulesetPlan& plan) {
  std::ostringstream out;
  out << "# drawbridge ruleset for site " << plan.site << ", policy serial " << plan.serial
      << ", at " << format_instant(plan.compiled_at) << (plan.expired ? " (policy expired)" : "")
      << "\n";
  out << "table inet " << plan.table << " {\n";
  for (const auto& s : plan.sets) {
    out << "\t" << (s.verdict_map ? "map " : "set ") << s.name << " {\n";
    out << "\t\ttype " << key_type(s) << (s.verdict_map ? " : verdict" : "") << "\n";
    if (s.interval) out << "\t\tflags interval" << (s.has_timeouts ? ",timeout" : "") << "\n";
    if (s.dynamic) {
      out << "\t\tsize " << s.size << "\n\t\tflags dynamic,timeout\n\t\ttimeout "
          << nft_duration(s.entry_timeout) << "\n";
    }
    if (!s.elements.empty()) {
      out << "\t\telements = { ";
      bool first = true;
      for (const auto& e : s.elements) {
        if (!first) out << ",\n\t\t\t     ";
        first = false;
        out << nft_element_key(e, s.shape);
        if (e.timeout) out << " timeout " << nft_duration(*e.timeout);
        if (e.verdict) out << " : " << verdict_text(*e.verdict);
      }
      out << " }\n";
    }
    out << "\t}\n\n";
  }
  for (std::size_t c = 0; c < plan.chains.size(); ++c) {
    const auto& chain = plan.chains[c];
    out << "\tchain " << chain.name << " {\n";
    if (!chain.comment.empty()) out << "\t\tcomment " << quoted(chain.comment) << "\n";
    if (chain.hook) {
      out << "\t\ttype filter hook "
          << (chain.hook->point == Hook::Point::forward ? "forward" : "input") << " priority "
          << priority_text(chain.hook->priority) << "; policy accept;\n";
    }
    for (const auto& r : chain.rules) {
      std::vector<std::string> parts;
      if (r.icmpv6_type) {
        parts.push_back(std::string("icmpv6 type ") +
                        (*r.icmpv6_type == kNeighborSolicit  ? "nd-neighbor-solicit"
                         : *r.icmpv6_type == kNeighborAdvert ? "nd-neighbor-advert"
                                                             : std::to_string(*r.icmpv6_type)));
      }
      if (r.reply_only) parts.push_back("ct direction reply");
      if (!r.key.empty()) {
        std::string key;
        for (std::size_t i = 0; i < r.key.size(); ++i) {
          if (i) key += " . ";
          key += field_text(r.key[i], r.family);
        }
        parts.push_back(key + (r.verdict_map ? " vmap @" : " @") + r.set);
      }
      if (r.meter) {
        const bool v4 = r.meter->family == Family::v4;
        parts.push_back(std::string("meta nfproto ") + (v4 ? "ipv4" : "ipv6") + " update @" +
                        r.meter->set + " { " + (v4 ? "ip" : "ip6") + " saddr limit rate " +
                        std::to_string(r.meter->rate) + "/second burst " +
                        std::to_string(r.meter->burst) + " packets }");
      }
      if (r.counter) parts.push_back("counter");
      if (r.log_prefix) {
        parts.push_back("log prefix " + quoted(*r.log_prefix) + " group " +
                        std::to_string(plan.log_group));
      }
      if (r.verdict) parts.push_back(verdict_text(*r.verdict));
      if (!r.comment.empty()) parts.push_back("comment " + quoted(r.comment));
      out << "\t\t";
      for (std::size_t i = 0; i < parts.size(); ++i) out << (i ? " " : "") << parts[i];
      out << "\n";
    }
    out << "\t}\n" << (c + 1 < plan.chains.size() ? "\n" : "");
  }
  out << "}\n";
  return out.str();
}

}  // namespace drawbridge
