#include "enforcer/soc/event_codec.h"

#include <cstdint>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

namespace drawbridge {

namespace {

using nlohmann::json;

const char* kind_name(EventKind k) {
  switch (k) {
    case EventKind::violation:
      return "violation";
    case EventKind::session_start:
      return "session_start";
    case EventKind::session_end:
      return "session_end";
    case EventKind::audit:
      return "audit";
  }
  return "audit";
}

const char* direction_name(FlowDirection d) {
  switch (d) {
    case FlowDirection::inbound:
      return "inbound";
    case FlowDirection::outbound:
      return "outbound";
    case FlowDirection::unknown:
      return "unknown";
  }
  return "unknown";
}

std::int64_t millis(Instant t) {
  return t.time_since_epoch().count();
}

void put_string(json& j, const char* key, const std::string& value) {
  if (!value.empty()) j[key] = value;
}

json encode_flow(const Flow& f) {
  json j{{"src", f.source.str()}, {"dst", f.destination.str()}, {"proto", f.protocol}};
  if (f.source_port != 0) j["sport"] = f.source_port;
  if (f.destination_port != 0) j["dport"] = f.destination_port;
  if (f.icmp_type) j["icmp_type"] = *f.icmp_type;
  if (f.icmp_code) j["icmp_code"] = *f.icmp_code;
  put_string(j, "in", f.in_interface);
  put_string(j, "out", f.out_interface);
  if (f.direction != FlowDirection::unknown) j["dir"] = direction_name(f.direction);
  put_string(j, "flags", f.tcp_flags);
  return j;
}

// Reads one JSON object's fields, remembering which keys were consumed so that anything left
// over is reported as unknown: a field added by a newer enforcer must not vanish silently.
class Reader {
 public:
  Reader(const json& object, std::string where) : j_(object), where_(std::move(where)) {}

  [[nodiscard]] bool has(const char* key) const { return j_.contains(key); }

  Result<const json*> field(const char* key, bool required) {
    seen_.insert(key);
    const auto it = j_.find(key);
    if (it == j_.end()) {
      if (required) return make_error(where_ + key + " is missing");
      return static_cast<const json*>(nullptr);
    }
    return &*it;
  }

  Result<void> string(const char* key, std::string& out, bool required = false) {
    auto f = field(key, required);
    if (!f) return f.error();
    if (*f == nullptr) return {};
    if (!(*f)->is_string()) return make_error(where_ + key + " must be a string");
    out = (*f)->get<std::string>();
    return {};
  }

  Result<void> unsigned_number(const char* key, std::uint64_t max, std::uint64_t& out,
                               bool required = false) {
    auto f = field(key, required);
    if (!f) return f.error();
    if (*f == nullptr) return {};
    if (!(*f)->is_number_unsigned()) {
      return make_error(where_ + key + " must be a non-negative integer");
    }
    const auto v = (*f)->get<std::uint64_t>();
    if (v > max) return make_error(where_ + key + " is out of range");
    out = v;
    return {};
  }

  Result<void> instant(const char* key, std::optional<Instant>& out, bool required = false) {
    auto f = field(key, required);
    if (!f) return f.error();
    if (*f == nullptr) return {};
    const json& v = **f;
    std::int64_t ms = 0;
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return make_error(where_ + key + " is out of range");
      }
      ms = static_cast<std::int64_t>(u);
    } else if (v.is_number_integer()) {
      ms = v.get<std::int64_t>();
    } else {
      return make_error(where_ + key + " must be integer milliseconds since the epoch");
    }
    out = Instant{std::chrono::milliseconds{ms}};
    return {};
  }

  Result<void> boolean(const char* key, bool& out) {
    auto f = field(key, false);
    if (!f) return f.error();
    if (*f == nullptr) return {};
    if (!(*f)->is_boolean()) return make_error(where_ + key + " must be true or false");
    out = (*f)->get<bool>();
    return {};
  }

  Result<void> address(const char* key, Address& out) {
    std::string text;
    if (auto r = string(key, text, true); !r) return r;
    const auto a = Address::parse(text);
    if (!a) return make_error(where_ + key + " is not an IP address: " + text);
    out = *a;
    return {};
  }

  // Every key of the object must have been asked for.
  Result<void> no_unknown_keys() const {
    for (const auto& [key, value] : j_.items()) {
      if (!seen_.contains(key)) return make_error(where_ + key + " is not a known field");
    }
    return {};
  }

 private:
  const json& j_;
  std::string where_;
  std::set<std::string> seen_;
};

#define DB_TRY(expr)                        \
  do {                                      \
    auto db_try_r = (expr);                 \
    if (!db_try_r) return db_try_r.error(); \
  } while (false)

Result<Flow> decode_flow(const json& j) {
  if (!j.is_object()) return make_error("flow must be an object");
  Reader r(j, "flow.");
  Flow f;
  DB_TRY(r.address("src", f.source));
  DB_TRY(r.address("dst", f.destination));
  std::uint64_t n = 0;
  DB_TRY(r.unsigned_number("proto", 255, n, true));
  f.protocol = static_cast<std::uint8_t>(n);
  n = 0;
  DB_TRY(r.unsigned_number("sport", 65535, n));
  f.source_port = static_cast<std::uint16_t>(n);
  n = 0;
  DB_TRY(r.unsigned_number("dport", 65535, n));
  f.destination_port = static_cast<std::uint16_t>(n);
  if (r.has("icmp_type")) {
    DB_TRY(r.unsigned_number("icmp_type", 255, n));
    f.icmp_type = static_cast<std::uint8_t>(n);
  }
  if (r.has("icmp_code")) {
    DB_TRY(r.unsigned_number("icmp_code", 255, n));
    f.icmp_code = static_cast<std::uint8_t>(n);
  }
  DB_TRY(r.string("in", f.in_interface));
  DB_TRY(r.string("out", f.out_interface));
  std::string dir;
  DB_TRY(r.string("dir", dir));
  if (dir == "inbound") {
    f.direction = FlowDirection::inbound;
  } else if (dir == "outbound") {
    f.direction = FlowDirection::outbound;
  } else if (dir.empty() && !r.has("dir")) {
    f.direction = FlowDirection::unknown;
  } else {
    // "unknown" is the default and is never written, so seeing it means another writer.
    return make_error("flow.dir must be inbound or outbound: " + dir);
  }
  DB_TRY(r.string("flags", f.tcp_flags));
  DB_TRY(r.no_unknown_keys());
  return f;
}

// Collects duplicate keys while nlohmann parses (it keeps the last one silently otherwise).
struct DuplicateKeys {
  std::vector<std::set<std::string>> open;
  std::string first_duplicate;

  bool operator()(int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open.empty()) open.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open.empty() && !open.back().insert(parsed.get<std::string>()).second &&
            first_duplicate.empty()) {
          first_duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  }
};

}  // namespace

std::string encode_event(const SocEvent& e) {
  json j{{"seq", e.sequence}, {"ts", millis(e.timestamp)}, {"kind", kind_name(e.kind)}};
  put_string(j, "action", e.action);
  put_string(j, "outcome", e.outcome);
  put_string(j, "reason", e.reason);
  put_string(j, "message", e.message);
  put_string(j, "site", e.site);
  if (e.serial) j["serial"] = *e.serial;
  put_string(j, "provider", e.provider);
  put_string(j, "link", e.link);
  put_string(j, "ticket", e.ticket);
  put_string(j, "rule", e.rule);
  if (e.flow) j["flow"] = encode_flow(*e.flow);
  if (e.first_seen) j["first_seen"] = millis(*e.first_seen);
  if (e.last_seen) j["last_seen"] = millis(*e.last_seen);
  if (e.packets != 0) j["packets"] = e.packets;
  if (e.bytes) j["bytes"] = *e.bytes;
  if (e.rate_limited) j["rate_limited"] = true;
  if (!e.labels.empty()) j["labels"] = e.labels;
  // replace: an event with a stray invalid byte is still evidence worth keeping.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<SocEvent> decode_event(std::string_view text) {
  DuplicateKeys dups;
  json j;
  try {
    j = json::parse(text.begin(), text.end(), std::ref(dups));
  } catch (const json::exception& e) {
    return make_error(std::string("not JSON: ") + e.what());
  }
  if (!dups.first_duplicate.empty()) {
    return make_error("duplicate key " + dups.first_duplicate);
  }
  if (!j.is_object()) return make_error("an event must be a JSON object");

  try {
    Reader r(j, "");
    SocEvent e;
    DB_TRY(r.unsigned_number("seq", std::numeric_limits<std::uint64_t>::max(), e.sequence, true));
    std::optional<Instant> ts;
    DB_TRY(r.instant("ts", ts, true));
    e.timestamp = *ts;
    std::string kind;
    DB_TRY(r.string("kind", kind, true));
    if (kind == "violation") {
      e.kind = EventKind::violation;
    } else if (kind == "session_start") {
      e.kind = EventKind::session_start;
    } else if (kind == "session_end") {
      e.kind = EventKind::session_end;
    } else if (kind == "audit") {
      e.kind = EventKind::audit;
    } else {
      return make_error("kind is not a known event kind: " + kind);
    }
    DB_TRY(r.string("action", e.action));
    DB_TRY(r.string("outcome", e.outcome));
    DB_TRY(r.string("reason", e.reason));
    DB_TRY(r.string("message", e.message));
    DB_TRY(r.string("site", e.site));
    if (r.has("serial")) {
      std::uint64_t serial = 0;
      DB_TRY(r.unsigned_number("serial", std::numeric_limits<std::uint64_t>::max(), serial));
      e.serial = serial;
    }
    DB_TRY(r.string("provider", e.provider));
    DB_TRY(r.string("link", e.link));
    DB_TRY(r.string("ticket", e.ticket));
    DB_TRY(r.string("rule", e.rule));
    auto flow = r.field("flow", false);
    if (!flow) return flow.error();
    if (*flow != nullptr) {
      auto f = decode_flow(**flow);
      if (!f) return f.error();
      e.flow = std::move(*f);
    }
    DB_TRY(r.instant("first_seen", e.first_seen));
    DB_TRY(r.instant("last_seen", e.last_seen));
    DB_TRY(r.unsigned_number("packets", std::numeric_limits<std::uint64_t>::max(), e.packets));
    if (r.has("bytes")) {
      std::uint64_t bytes = 0;
      DB_TRY(r.unsigned_number("bytes", std::numeric_limits<std::uint64_t>::max(), bytes));
      e.bytes = bytes;
    }
    DB_TRY(r.boolean("rate_limited", e.rate_limited));
    auto labels = r.field("labels", false);
    if (!labels) return labels.error();
    if (*labels != nullptr) {
      if (!(*labels)->is_object()) return make_error("labels must be an object");
      for (const auto& [key, value] : (*labels)->items()) {
        if (!value.is_string()) return make_error("labels." + key + " must be a string");
        e.labels.emplace(key, value.get<std::string>());
      }
    }
    DB_TRY(r.no_unknown_keys());
    return e;
  } catch (const json::exception& e) {
    // The checks above make this unreachable; kept so that no exception leaves the codec.
    return make_error(std::string("malformed event: ") + e.what());
  }
}

#undef DB_TRY

bool same_event(const SocEvent& a, const SocEvent& b) {
  const auto same_flow = [](const Flow& x, const Flow& y) {
    return x.source == y.source && x.destination == y.destination && x.protocol == y.protocol &&
           x.source_port == y.source_port && x.destination_port == y.destination_port &&
           x.icmp_type == y.icmp_type && x.icmp_code == y.icmp_code &&
           x.in_interface == y.in_interface && x.out_interface == y.out_interface &&
           x.direction == y.direction && x.tcp_flags == y.tcp_flags;
  };
  if (a.flow.has_value() != b.flow.has_value()) return false;
  if (a.flow && !same_flow(*a.flow, *b.flow)) return false;
  return a.sequence == b.sequence && a.timestamp == b.timestamp && a.kind == b.kind &&
         a.action == b.action && a.outcome == b.outcome && a.reason == b.reason &&
         a.message == b.message && a.site == b.site && a.serial == b.serial &&
         a.provider == b.provider && a.link == b.link && a.ticket == b.ticket && a.rule == b.rule &&
         a.first_seen == b.first_seen && a.last_seen == b.last_seen && a.packets == b.packets &&
         a.bytes == b.bytes && a.rate_limited == b.rate_limited && a.labels == b.labels;
}

}  // namespace drawbridge
