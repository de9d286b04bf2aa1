#include "enforcer/soc/event_format.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace drawbridge {
namespace {

using Json = nlohmann::ordered_json;  // fields in the order docs/events.md lists them

constexpr const char* kEcsVersion = "8.11.0";
constexpr const char* kDataset = "drawbridge.events";
// 32473 is the Private Enterprise Number RFC 5612 reserves for documentation: a deployment that
// needs a registered SD-ID swaps in its own PEN here (docs/events.md).
constexpr const char* kSdId = "drawbridge@32473";
constexpr const char* kLeefTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSZ";
constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// ---- text -------------------------------------------------------------------------------------

struct CodePoint {
  char32_t value = 0;
  std::size_t size = 1;  // bytes consumed; on error the maximal ill-formed subpart
  bool valid = false;
};

// Well-formed UTF-8 per Unicode table 3-7: no overlongs, no surrogates, nothing past U+10FFFF.
CodePoint decode(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return {b0, 1, true};
  std::size_t more = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    more = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    more = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    more = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {0xFFFD, 1, false};
  }
  std::size_t size = 1;
  for (std::size_t k = 0; k < more; ++k, ++size) {
    if (i + size >= s.size()) return {0xFFFD, size, false};
    const auto b = static_cast<unsigned char>(s[i + size]);
    if (b < lo || b > hi) return {0xFFFD, size, false};
    lo = 0x80, hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, size, true};
}

// C0, DEL and C1: terminals and log viewers act on them, so none is ever written raw.
bool is_control(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

void append_control(std::string& out, char32_t cp) {
  switch (cp) {
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default: {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
    }
  }
}

// The one escaper behind every format: a backslash before '\' and each of `specials`. At most
// `max` bytes, cut between characters (never inside an escape or a UTF-8 sequence).
std::string escape(std::string_view text, std::string_view specials,
                   std::size_t max = std::string::npos) {
  std::string out;
  out.reserve(text.size());
  std::string piece;
  for (std::size_t i = 0; i < text.size();) {
    const CodePoint c = decode(text, i);
    piece.clear();
    if (!c.valid) {
      piece = kReplacement;
    } else if (is_control(c.value)) {
      append_control(piece, c.value);
    } else if (c.value == '\\' ||
               (c.value < 0x80 && specials.find(static_cast<char>(c.value)) != specials.npos)) {
      piece += '\\';
      piece += static_cast<char>(c.value);
    } else {
      piece.append(text.substr(i, c.size));
    }
    if (out.size() + piece.size() > max) break;
    out += piece;
    i += c.size;
  }
  return out;
}

// RFC 5424 header fields are PRINTUSASCII (33..126) of bounded length, or "-" when empty.
std::string header_field(std::string_view text, std::size_t max) {
  std::string out;
  for (const char ch : text.substr(0, max)) {
    const auto b = static_cast<unsigned char>(ch);
    out += b >= 33 && b <= 126 ? ch : '_';
  }
  return out.empty() ? "-" : out;
}

// nlohmann escapes C0 but writes DEL and C1 raw; in its (valid UTF-8) output those bytes can
// only sit inside strings, where \u escapes mean the same code point.
std::string escape_json_controls(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  char buf[8];
  for (std::size_t i = 0; i < json.size(); ++i) {
    const auto b = static_cast<unsigned char>(json[i]);
    if (b == 0x7F) {
      out += "\\u007f";
    } else if (b == 0xC2 && i + 1 < json.size() &&
               static_cast<unsigned char>(json[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(json[i + 1]) <= 0x9F) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(json[i + 1]));
      out += buf;
      ++i;
    } else {
      out += json[i];
    }
  }
  return out;
}

// A label key as a CEF/LEEF custom key: those must be alphanumeric, so "distinct_ports" becomes
// "labelDistinctPorts"; empty when nothing alphanumeric is left.
std::string custom_label_key(std::string_view key) {
  std::string out = "label";
  bool upper = true;
  for (const char ch : key) {
    const bool alnum =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!alnum) {
      upper = true;
      continue;
    }
    out += upper && ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 'a' + 'A') : ch;
    upper = false;
  }
  return out.size() == 5 ? std::string() : out;
}

// ECS label keys: no dots (they would read as nesting) and nothing that needs quoting.
std::string ecs_label_key(std::string_view key) {
  std::string out;
  for (const char ch : key) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    out += ok ? ch : '_';
  }
  return out;
}

// ---- time -------------------------------------------------------------------------------------

struct Civil {
  int year;
  unsigned month, day;
  int hour, minute, second, milli;
};

Civil civil(Instant t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{t - day};
  return {static_cast<int>(ymd.year()),
          static_cast<unsigned>(ymd.month()),
          static_cast<unsigned>(ymd.day()),
          static_cast<int>(tod.hours().count()),
          static_cast<int>(tod.minutes().count()),
          static_cast<int>(tod.seconds().count()),
          static_cast<int>(tod.subseconds().count())};
}

// RFC 3339 in UTC with milliseconds, e.g. 2026-11-25T04:29:42.123Z (ECS, RFC 5424).
std::string rfc3339(Instant t) {
  const Civil c = civil(t);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day,
                c.hour, c.minute, c.second, c.milli);
  return buf;
}

// kLeefTimeFormat: IBM's documented devTimeFormat example, with an RFC 822 zone QRadar parses.
std::string leef_time(Instant t) {
  const Civil c = civil(t);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03d+0000", c.year, c.month, c.day,
                c.hour, c.minute, c.second, c.milli);
  return buf;
}

std::string epoch_ms(Instant t) {
  return std::to_string(t.time_since_epoch().count());
}

// ---- what the event says ----------------------------------------------------------------------

bool is_session(const SocEvent& e) {
  return e.kind == EventKind::session_start || e.kind == EventKind::session_end;
}

// Packets and bytes describe traffic; an audit fact carries its counts in labels.
bool has_traffic(const SocEvent& e) {
  return e.kind != EventKind::audit && e.packets > 0;
}
bool has_bytes(const SocEvent& e) {
  return e.kind != EventKind::audit && e.bytes.has_value();
}

// The transports Drawbridge names: ECS's keyword, IANA's (CEF's "TCP or UDP", LEEF's "keyword
// or integer"), and whether the protocol has ports (ICMP has type and code instead).
struct Transport {
  std::uint8_t number;
  const char* ecs;
  const char* iana;
  bool ports;
};
constexpr Transport kTransports[] = {
    {1, "icmp", "ICMP", false},
    {6, "tcp", "TCP", true},
    {17, "udp", "UDP", true},
    {33, "dccp", "DCCP", true},
    {58, "ipv6-icmp", "IPv6-ICMP", false},
    {132, "sctp", "SCTP", true},
    {136, "udplite", "UDPLite", true},
};

const Transport* transport(std::uint8_t protocol) {
  for (const Transport& t : kTransports) {
    if (t.number == protocol) return &t;
  }
  return nullptr;
}

bool has_ports(const Flow& f) {
  const Transport* t = transport(f.protocol);
  return t ? t->ports : f.source_port != 0 || f.destination_port != 0;
}

std::string iana_keyword(std::uint8_t protocol) {
  const Transport* t = transport(protocol);
  return t ? t->iana : std::to_string(protocol);
}

const char* direction_name(FlowDirection d) {
  switch (d) {
    case FlowDirection::inbound:
      return "inbound";
    case FlowDirection::outbound:
      return "outbound";
    case FlowDirection::unknown:
      break;
  }
  return "unknown";
}

struct EcsClass {
  const char* category;
  std::vector<const char*> types;
};

EcsClass ecs_class(const SocEvent& e) {
  switch (e.kind) {
    case EventKind::violation:
      return {"network", {"denied", "connection"}};
    case EventKind::session_start:
      return {"network", {"start", "allowed", "connection"}};
    case EventKind::session_end:
      return {"network", {"end", "allowed", "connection"}};
    case EventKind::audit:
      break;
  }
  const std::string& a = e.action;
  if (a == action::kEnforcerStarted) return {"process", {"start"}};
  if (a == action::kEnforcerStopped) return {"process", {"end"}};
  if (a == action::kLogLoss || a == action::kSpoolLoss || a == action::kLogEpoch ||
      a == action::kLogRateLimited) {
    return {"process", {"info"}};
  }
  if (a == action::kPolicyApplied || a == action::kPolicyRejected || a == action::kWindowOpened ||
      a == action::kWindowClosed || a == action::kPolicyExpired) {
    return {"configuration", {"change"}};
  }
  return {"configuration", {"info"}};
}

// CEF's Name: fixed per action (the spec wants no per-event detail there; that is `msg`).
std::string event_name(const SocEvent& e) {
  static const std::pair<const char*, const char*> kNames[] = {
      {action::kConnectionDenied, "Connection denied"},
      {action::kSessionStarted, "Provider session started"},
      {action::kSessionEnded, "Provider session ended"},
      {action::kPolicyApplied, "Policy applied"},
      {action::kPolicyRejected, "Policy rejected"},
      {action::kWindowOpened, "Access window opened"},
      {action::kWindowClosed, "Access window closed"},
      {action::kExpiryWarning, "Policy expires soon"},
      {action::kPolicyExpired, "Policy expired"},
      {action::kEnforcerStarted, "Enforcer started"},
      {action::kEnforcerStopped, "Enforcer stopped"},
      {action::kLogLoss, "Denial logs lost"},
      {action::kLogEpoch, "Denial log reader started"},
      {action::kLogRateLimited, "Denial logs rate-limited"},
      {action::kSpoolLoss, "Events lost"},
  };
  for (const auto& [a, name] : kNames) {
    if (e.action == a) return name;
  }
  return e.action;
}

std::optional<std::string> ruleset(const SocEvent& e) {
  if (e.site.empty() && !e.serial) return std::nullopt;
  std::string s = "drawbridge";
  if (!e.site.empty()) s += " site " + e.site;
  if (e.serial) s += " serial " + std::to_string(*e.serial);
  return s;
}

// The kernel rule's own identity: its NFLOG prefix (docs/ruleset.md).
std::optional<std::string> rule_id(const SocEvent& e) {
  if (e.kind != EventKind::violation || e.reason.empty() || e.rule.empty()) return std::nullopt;
  return "drawbridge:" + e.reason + ":" + e.rule;
}

// key=value pairs in order; empty values are absent fields and are left out.
class Pairs {
 public:
  using Escaper = std::string (*)(std::string_view);
  explicit Pairs(Escaper escaper) : escaper_(escaper) {}

  void add(std::string_view key, std::string_view value) {
    if (!value.empty()) items_.emplace_back(std::string(key), escaper_(value));
  }
  void add(std::string_view key, std::uint64_t value) { add(key, std::to_string(value)); }
  // A CEF custom slot: "<slot>Label=<label> <slot>=<value>", both or neither.
  void add_labelled(std::string_view slot, std::string_view label, std::string_view value) {
    if (value.empty()) return;
    add(std::string(slot) + "Label", label);
    add(slot, value);
  }

  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& items() const {
    return items_;
  }
  [[nodiscard]] std::string join(char separator) const {
    std::string out;
    for (const auto& [k, v] : items_) {
      if (!out.empty()) out += separator;
      out += k + "=" + v;
    }
    return out;
  }

 private:
  Escaper escaper_;
  std::vector<std::pair<std::string, std::string>> items_;
};

std::string optional_number(const std::optional<std::uint8_t>& v) {
  return v ? std::to_string(*v) : std::string();
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

namespace event_escape {
std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const CodePoint c = decode(text, i);
    if (c.valid) {
      out.append(text.substr(i, c.size));
    } else {
      out += kReplacement;
    }
    i += c.size;
  }
  return out;
}
std::string cef_header(std::string_view text) {
  return escape(text, "|");
}
std::string cef_value(std::string_view text) {
  return escape(text, "=");
}
std::string leef_value(std::string_view text) {
  return escape(text, "^");
}
std::string sd_param_value(std::string_view text) {
  return escape(text, "\"]");
}
}  // namespace event_escape

Result<EventFormat> parse_event_format(std::string_view name) {
  if (name == "ecs") return EventFormat::ecs_json;
  if (name == "cef") return EventFormat::cef;
  if (name == "leef") return EventFormat::leef;
  return make_error("unknown event format \"" + escape(name, "\"") +
                    "\": expected ecs, cef or leef");
}

std::string_view event_format_name(EventFormat format) {
  switch (format) {
    case EventFormat::ecs_json:
      return "ecs";
    case EventFormat::cef:
      return "cef";
    case EventFormat::leef:
      return "leef";
  }
  return "ecs";
}

int event_severity(const SocEvent& e) {
  switch (e.kind) {
    case EventKind::violation:
      // Someone other than the provider at its remote-access path, or at a guarded port: the
      // attack Drawbridge exists for. The right party at the wrong time is usually a technician
      // outside the window. Reaching past the approved hosts or ports sits in between.
      if (e.reason == "unapproved-source") return 8;
      if (e.reason == "outside-window" || e.reason == "policy-expired") return 6;
      return 7;
    case EventKind::session_start:
    case EventKind::session_end:
      return 3;
    case EventKind::audit:
      break;
  }
  const std::string& a = e.action;
  // A refused bundle may be a forged or replayed policy from a compromised controller.
  if (a == action::kPolicyRejected) return 8;
  // Access closed for everyone, or evidence lost.
  if (a == action::kPolicyExpired || a == action::kLogLoss || a == action::kSpoolLoss) return 7;
  // Someone is flooding denied traffic: the packets were dropped, only not each one logged.
  if (a == action::kExpiryWarning || a == action::kEnforcerStopped ||
      a == action::kLogRateLimited) {
    return 5;
  }
  if (a == action::kPolicyApplied || a == action::kWindowOpened || a == action::kWindowClosed ||
      a == action::kEnforcerStarted || a == action::kLogEpoch) {
    return 3;
  }
  return e.outcome == "failure" ? 6 : 3;
}

int syslog_severity(int severity) {
  if (severity >= 9) return 2;  // critical
  if (severity == 8) return 3;  // error
  if (severity == 7) return 4;  // warning
  if (severity >= 5) return 5;  // notice
  return 6;                     // informational
}

std::string format_ecs_json(const SocEvent& e, const Observer& o) {
  Json j = Json::object();
  j["@timestamp"] = rfc3339(e.timestamp);
  if (!e.message.empty()) j["message"] = e.message;
  j["ecs"]["version"] = kEcsVersion;

  const EcsClass cls = ecs_class(e);
  Json ev = Json::object();
  ev["kind"] = "event";
  ev["category"] = Json::array({cls.category});
  ev["type"] = Json::array();
  for (const char* t : cls.types) ev["type"].push_back(t);
  if (!e.action.empty()) ev["action"] = e.action;
  if (!e.outcome.empty()) ev["outcome"] = e.outcome;
  if (!e.reason.empty()) ev["reason"] = e.reason;
  ev["severity"] = event_severity(e);
  ev["sequence"] = e.sequence;
  ev["dataset"] = kDataset;
  if (e.first_seen) ev["start"] = rfc3339(*e.first_seen);
  if (e.last_seen) ev["end"] = rfc3339(*e.last_seen);
  if (is_session(e) && e.first_seen && e.last_seen) {
    ev["duration"] = std::chrono::nanoseconds(*e.last_seen - *e.first_seen).count();
  }
  j["event"] = std::move(ev);

  Json net = Json::object();
  if (e.flow) {
    const Flow& f = *e.flow;
    const bool ports = has_ports(f);
    j["source"]["ip"] = f.source.str();
    if (ports) j["source"]["port"] = f.source_port;
    j["destination"]["ip"] = f.destination.str();
    if (ports) j["destination"]["port"] = f.destination_port;
    if (const Transport* t = transport(f.protocol)) net["transport"] = t->ecs;
    net["type"] = f.source.family == Family::v4 ? "ipv4" : "ipv6";
    net["iana_number"] = std::to_string(f.protocol);  // a keyword in ECS
    net["direction"] = direction_name(f.direction);
    if (const std::string cid = community_id(f); !cid.empty()) net["community_id"] = cid;
  }
  if (has_traffic(e)) net["packets"] = e.packets;
  if (has_bytes(e)) net["bytes"] = *e.bytes;
  if (!net.empty()) j["network"] = std::move(net);

  Json obs = Json::object();
  if (!o.hostname.empty()) obs["hostname"] = o.hostname;
  if (!o.product.empty()) obs["product"] = o.product;
  if (!o.vendor.empty()) obs["vendor"] = o.vendor;
  if (!o.version.empty()) obs["version"] = o.version;
  obs["type"] = "firewall";
  if (e.flow && !e.flow->in_interface.empty()) {
    obs["ingress"]["interface"]["name"] = e.flow->in_interface;
  }
  if (e.flow && !e.flow->out_interface.empty()) {
    obs["egress"]["interface"]["name"] = e.flow->out_interface;
  }
  j["observer"] = std::move(obs);

  Json rule = Json::object();
  if (!e.rule.empty()) rule["name"] = e.rule;
  if (auto r = ruleset(e)) rule["ruleset"] = *r;
  if (auto id = rule_id(e)) rule["id"] = *id;
  if (!rule.empty()) j["rule"] = std::move(rule);

  if (!o.organization.empty()) j["organization"]["name"] = o.organization;

  // The event's own labels first, so the fixed ones below win a name clash.
  Json labels = Json::object();
  for (const auto& [k, v] : e.labels) {
    if (const std::string key = ecs_label_key(k); !key.empty()) labels[key] = v;
  }
  if (e.flow && !e.flow->tcp_flags.empty()) labels["tcp_flags"] = e.flow->tcp_flags;
  if (e.flow && e.flow->icmp_type) labels["icmp_type"] = optional_number(e.flow->icmp_type);
  if (e.flow && e.flow->icmp_code) labels["icmp_code"] = optional_number(e.flow->icmp_code);
  if (!e.site.empty()) labels["site"] = e.site;
  if (!e.provider.empty()) labels["provider"] = e.provider;
  if (!e.link.empty()) labels["link"] = e.link;
  if (!e.ticket.empty()) labels["ticket"] = e.ticket;
  if (e.rate_limited) labels["rate_limited"] = "true";
  if (!labels.empty()) j["labels"] = std::move(labels);

  return escape_json_controls(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string format_cef(const SocEvent& e, const Observer& o) {
  using event_escape::cef_header;
  Pairs x(event_escape::cef_value);
  x.add("rt", epoch_ms(e.timestamp));
  x.add("cat", ecs_class(e).category);
  if (e.kind == EventKind::violation) x.add("act", "deny");
  if (is_session(e)) x.add("act", "allow");
  x.add("outcome", e.outcome);
  x.add("reason", e.reason);
  x.add("msg", e.message);
  if (e.flow) {
    const Flow& f = *e.flow;
    // CEF:0's src and dst are IPv4; the dictionary's IPv6 slots carry the others.
    if (f.source.family == Family::v4) {
      x.add("src", f.source.str());
      x.add("dst", f.destination.str());
    } else {
      x.add_labelled("c6a2", "Source IPv6 Address", f.source.str());
      x.add_labelled("c6a3", "Destination IPv6 Address", f.destination.str());
    }
    if (has_ports(f)) {
      x.add("spt", f.source_port);
      x.add("dpt", f.destination_port);
    }
    x.add("proto", iana_keyword(f.protocol));
  }
  if (e.first_seen) x.add("start", epoch_ms(*e.first_seen));
  if (e.last_seen) x.add("end", epoch_ms(*e.last_seen));
  if (e.kind == EventKind::violation) {
    // Each denied packet is one more observation of the same event: CEF's count. All of its
    // bytes went from source to destination, CEF's "in".
    if (has_traffic(e)) x.add("cnt", e.packets);
    if (has_bytes(e)) x.add("in", *e.bytes);
  } else {
    // A session's counts are both ways, which neither cnt nor in/out means.
    if (has_traffic(e)) x.add_labelled("cn2", "packets", std::to_string(e.packets));
    if (has_bytes(e)) x.add_labelled("cn3", "bytes", std::to_string(*e.bytes));
  }
  if (e.flow) {
    const Flow& f = *e.flow;
    if (f.direction == FlowDirection::inbound) x.add("deviceDirection", "0");
    if (f.direction == FlowDirection::outbound) x.add("deviceDirection", "1");
    x.add("deviceInboundInterface", f.in_interface);
    x.add("deviceOutboundInterface", f.out_interface);
  }
  x.add_labelled("cs1", "site", e.site);
  x.add_labelled("cs2", "provider", e.provider);
  x.add_labelled("cs3", "link", e.link);
  x.add_labelled("cs4", "ticket", e.ticket);
  if (e.flow) x.add_labelled("cs5", "communityId", community_id(*e.flow));
  x.add_labelled("cs6", "rule", e.rule);
  if (e.serial) x.add_labelled("cn1", "serial", std::to_string(*e.serial));
  x.add("externalId", e.sequence);
  x.add("dvchost", o.hostname);
  if (e.rate_limited) x.add("rateLimited", "true");
  if (e.flow) {
    x.add("tcpFlags", e.flow->tcp_flags);
    x.add("icmpType", optional_number(e.flow->icmp_type));
    x.add("icmpCode", optional_number(e.flow->icmp_code));
  }
  for (const auto& [k, v] : e.labels) {
    if (const std::string key = custom_label_key(k); !key.empty()) x.add(key, v);
  }

  return "CEF:0|" + cef_header(o.vendor) + "|" + cef_header(o.product) + "|" +
         cef_header(o.version) + "|" + cef_header(e.action) + "|" + cef_header(event_name(e)) +
         "|" + std::to_string(event_severity(e)) + "|" + x.join(' ');
}

std::string format_leef(const SocEvent& e, const Observer& o) {
  using event_escape::cef_header;
  Pairs x(event_escape::leef_value);
  x.add("devTimeFormat", kLeefTimeFormat);
  x.add("devTime", leef_time(e.timestamp));
  // With the EventID (the action), cat picks the QRadar QID: per reason for denials, so each
  // reason can carry its own severity and rules.
  x.add("cat", e.kind == EventKind::violation && !e.reason.empty() ? std::string(e.reason)
                                                                   : ecs_class(e).category);
  x.add("sev", std::to_string(std::max(1, event_severity(e))));
  if (e.flow) {
    const Flow& f = *e.flow;
    x.add("src", f.source.str());
    x.add("dst", f.destination.str());
    if (has_ports(f)) {
      x.add("srcPort", f.source_port);
      x.add("dstPort", f.destination_port);
    }
    x.add("proto", iana_keyword(f.protocol));
  }
  if (has_traffic(e)) x.add("totalPackets", e.packets);
  if (has_bytes(e)) x.add(e.kind == EventKind::violation ? "srcBytes" : "totalBytes", *e.bytes);
  x.add("outcome", e.outcome);
  x.add("reason", e.reason);
  x.add("msg", e.message);
  if (e.first_seen) x.add("startTime", leef_time(*e.first_seen));
  if (e.last_seen) x.add("endTime", leef_time(*e.last_seen));
  if (e.flow) {
    const Flow& f = *e.flow;
    if (f.direction != FlowDirection::unknown) x.add("direction", direction_name(f.direction));
    x.add("inInterface", f.in_interface);
    x.add("outInterface", f.out_interface);
  }
  x.add("site", e.site);
  if (e.serial) x.add("serial", *e.serial);
  x.add("provider", e.provider);
  x.add("link", e.link);
  x.add("ticket", e.ticket);
  x.add("rule", e.rule);
  if (e.flow) x.add("communityId", community_id(*e.flow));
  x.add("sequence", e.sequence);
  if (e.rate_limited) x.add("rateLimited", "true");
  if (e.flow) {
    x.add("tcpFlags", e.flow->tcp_flags);
    x.add("icmpType", optional_number(e.flow->icmp_type));
    x.add("icmpCode", optional_number(e.flow->icmp_code));
  }
  for (const auto& [k, v] : e.labels) {
    if (const std::string key = custom_label_key(k); !key.empty()) x.add(key, v);
  }

  // IBM caps the EventID at 255 characters.
  const std::string event_id = escape(e.action, "|", 255);
  return "LEEF:2.0|" + cef_header(o.vendor) + "|" + cef_header(o.product) + "|" +
         cef_header(o.version) + "|" + event_id + "|^|" + x.join('^');
}

std::string format_event(const SocEvent& e, const Observer& o, EventFormat format) {
  switch (format) {
    case EventFormat::ecs_json:
      return format_ecs_json(e, o);
    case EventFormat::cef:
      return format_cef(e, o);
    case EventFormat::leef:
      return format_leef(e, o);
  }
  return format_ecs_json(e, o);
}

std::string format_syslog(const SocEvent& e, const Observer& o, EventFormat body, int facility,
                          int pid) {
  if (facility < 0 || facility > 23) facility = kDefaultSyslogFacility;
  const int pri = facility * 8 + syslog_severity(event_severity(e));

  // §7.3.1: sequenceId runs 1..2147483647 and wraps to 1.
  constexpr std::uint64_t kSequenceIds = 2147483647;
  const std::uint64_t seq_id =
      e.sequence % kSequenceIds == 0 ? kSequenceIds : e.sequence % kSequenceIds;

  Pairs sd(event_escape::sd_param_value);
  sd.add("site", e.site);
  if (e.serial) sd.add("serial", *e.serial);
  sd.add("provider", e.provider);
  sd.add("link", e.link);
  sd.add("ticket", e.ticket);
  sd.add("reason", e.reason);
  sd.add("rule", e.rule);
  if (e.flow) sd.add("communityId", community_id(*e.flow));
  std::string params;
  for (const auto& [key, value] : sd.items()) params += " " + key + "=\"" + value + "\"";

  std::string line = "<" + std::to_string(pri) + ">1 " + rfc3339(e.timestamp) + " " +
                     header_field(o.hostname, 255) + " " + header_field(o.product, 48) + " " +
                     (pid > 0 ? std::to_string(pid) : std::string("-")) + " " +
                     header_field(e.action, 32) + " [meta sequenceId=\"" + std::to_string(seq_id) +
                     "\"]";
  if (!params.empty()) line += std::string("[") + kSdId + params + "]";
  // The BOM tells the collector the message is UTF-8 (§6.4); every body is.
  return line + " \xEF\xBB\xBF" + format_event(e, o, body);
}

}  // namespace drawbridge
