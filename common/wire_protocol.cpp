#include "common/wire_protocol.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/net_types.h"
#include "common/text_encoding.h"

namespace drawbridge {

namespace {

using nlohmann::json;

// Fields are short identifiers and hashes; a reason may quote a policy error.
constexpr std::size_t kMaxField = 256;
constexpr std::size_t kMaxReason = 16 * 1024;

json state_json(const EnforcerState& s) {
  json j = {{"protocol", s.protocol},       {"site", s.site},
            {"bundle_hash", s.bundle_hash}, {"ruleset_hash", s.ruleset_hash},
            {"version", s.version},         {"locked_down", s.locked_down},
            {"expired", s.expired}};
  j["serial"] = s.serial ? json(*s.serial) : json(nullptr);
  return j;
}

Frames frames(std::string type, const json& body) {
  return {std::move(type), body.dump()};
}

// Strict reading of one JSON object: every field is known, typed and bounded.
class Reader {
 public:
  Reader(std::string_view type, std::string_view body) : type_(type) {
    doc_ = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc_.is_discarded()) {
      error_ = "body is not valid JSON";
    } else if (!doc_.is_object()) {
      error_ = "body is not a JSON object";
    }
  }

  bool ok() const { return error_.empty(); }

  std::string text(const char* key, std::size_t max = kMaxField, bool required = true) {
    seen_.insert(key);
    const auto it = find(key, required);
    if (!it) return {};
    if (!it->is_string()) return fail(std::string("'") + key + "' must be a string"), "";
    const auto& v = it->get_ref<const std::string&>();
    if (v.size() > max) return fail(std::string("'") + key + "' is too long"), "";
    return v;
  }

  std::optional<std::uint64_t> serial(const char* key) {
    seen_.insert(key);
    const auto it = find(key, true);
    if (!it || it->is_null()) return std::nullopt;
    if (!it->is_number_unsigned())
      return fail(std::string("'") + key + "' must be a non-negative integer or null"),
             std::nullopt;
    return it->get<std::uint64_t>();
  }

  bool flag(const char* key) {
    seen_.insert(key);
    const auto it = find(key, false);
    if (!it) return false;
    if (!it->is_boolean()) return fail(std::string("'") + key + "' must be true or false"), false;
    return it->get<bool>();
  }

  // The array under `key` (required), or nullptr after recording why not.
  const json* array(const char* key) {
    seen_.insert(key);
    const auto it = find(key, true);
    if (!it) return nullptr;
    if (!it->is_array()) return fail(std::string("'") + key + "' must be an array"), nullptr;
    return it;
  }

  int integer(const char* key) {
    seen_.insert(key);
    const auto it = find(key, true);
    if (!it) return 0;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0 ||
        it->get<std::int64_t>() > 1'000'000)
      return fail(std::string("'") + key + "' must be a small integer"), 0;
    return it->get<int>();
  }

  // Records why the message is refused (the first reason wins); also for checks across fields.
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

  // Unknown fields are refused: a peer speaking another dialect must be noticed, not half-read.
  Result<void> finish() {
    if (ok()) {
      for (const auto& [k, v] : doc_.items()) {
        if (!seen_.contains(k)) {
          fail("unknown field '" + k.substr(0, 64) + "'");
          break;
        }
      }
    }
    if (ok()) return {};
    return make_error("malformed '" + std::string(type_) + "' message: " + error_);
  }

 private:
  const json* find(const char* key, bool required) {
    if (!ok()) return nullptr;
    const auto it = doc_.find(key);
    if (it == doc_.end()) {
      if (required) fail(std::string("missing '") + key + "'");
      return nullptr;
    }
    return &*it;
  }

  std::string_view type_;
  json doc_;
  std::string error_;
  std::set<std::string, std::less<>> seen_;
};

Result<EnforcerState> read_state(std::string_view type, std::string_view body) {
  Reader r(type, body);
  EnforcerState s;
  s.protocol = r.integer("protocol");
  s.site = r.text("site");
  s.serial = r.serial("serial");
  s.bundle_hash = r.text("bundle_hash");
  s.ruleset_hash = r.text("ruleset_hash");
  s.version = r.text("version");
  s.locked_down = r.flag("locked_down");
  s.expired = r.flag("expired");
  if (auto done = r.finish(); !done.ok()) return done.error();
  if (s.protocol != kProtocolVersion) {
    return make_error("'" + std::string(type) + "' speaks protocol " + std::to_string(s.protocol) +
                      ", this side speaks " + std::to_string(kProtocolVersion));
  }
  return s;
}

constexpr const char* kEventKinds[] = {"violation", "session_start", "session_end", "audit"};

// The fields of one event that the controller reads, typed; everything else is kept verbatim.
// Returns the reason when the event cannot be taken.
std::string read_event(const json& j, UpstreamEvent& e) {
  if (!j.is_object()) return "is not a JSON object";
  e.json = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (e.json.size() > kMaxUpstreamEventBytes) {
    return "is " + std::to_string(e.json.size()) + " bytes, more than " +
           std::to_string(kMaxUpstreamEventBytes);
  }
  const auto seq = j.find("seq");
  if (seq == j.end() || !seq->is_number_unsigned()) return "needs 'seq', a non-negative integer";
  e.sequence = seq->get<std::uint64_t>();
  const auto ts = j.find("ts");
  if (ts == j.end() || !ts->is_number_integer()) return "needs 'ts', integer milliseconds";
  e.time_ms = ts->get<std::int64_t>();
  const auto kind = j.find("kind");
  if (kind == j.end() || !kind->is_string()) return "needs 'kind', a string";
  e.kind = kind->get<std::string>();
  if (std::find(std::begin(kEventKinds), std::end(kEventKinds), e.kind) == std::end(kEventKinds)) {
    return "has an unknown kind '" + e.kind.substr(0, 32) + "'";
  }
  for (auto [key, out] : {std::pair{"action", &e.action}, std::pair{"outcome", &e.outcome},
                          std::pair{"reason", &e.reason}, std::pair{"rule", &e.rule},
                          std::pair{"message", &e.message}}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_string()) return std::string("'") + key + "' must be a string";
    *out = it->get<std::string>();
  }
  if (const auto it = j.find("packets"); it != j.end()) {
    if (!it->is_number_unsigned()) return "'packets' must be a non-negative integer";
    e.packets = it->get<std::uint64_t>();
  }
  if (const auto it = j.find("flow"); it != j.end()) {
    if (!it->is_object()) return "'flow' must be an object";
    const auto src = it->find("src");
    if (src == it->end() || !src->is_string() || !Address::parse(src->get<std::string>())) {
      return "'flow.src' must be an IP address";
    }
    e.source = src->get<std::string>();
  }
  return {};
}

Result<EnforcerMessage> read_events(std::string_view type, std::string_view body) {
  Reader r(type, body);
  EventsMessage m;
  m.site = r.text("site");
  m.stream = r.text("stream", 64);
  if (r.ok() && m.stream.empty()) r.fail("'stream' must not be empty");
  const json* events = r.array("events");
  if (events != nullptr) {
    if (events->empty() || events->size() > kMaxEventsPerMessage) {
      r.fail("'events' must hold 1 to " + std::to_string(kMaxEventsPerMessage) + " events");
    } else {
      for (std::size_t i = 0; i < events->size() && r.ok(); ++i) {
        UpstreamEvent e;
        if (auto why = read_event((*events)[i], e); !why.empty()) {
          r.fail("event " + std::to_string(i) + " " + why);
        } else if (!m.events.empty() && e.sequence <= m.events.back().sequence) {
          r.fail("event " + std::to_string(i) + " does not follow its predecessor's sequence");
        } else {
          m.events.push_back(std::move(e));
        }
      }
    }
  }
  if (auto done = r.finish(); !done.ok()) return done.error();
  return EnforcerMessage{EventsUpMessage{std::move(m)}};
}

}  // namespace

Frames encode(const HelloMessage& m) {
  return frames("hello", state_json(m.state));
}
Frames encode(const HeartbeatMessage& m) {
  return frames("heartbeat", state_json(m.state));
}

Frames encode(const AckMessage& m) {
  const auto& a = m.ack;
  json j = {{"result", ack_result_name(a.result)},
            {"bundle_hash", a.bundle_hash},
            {"ruleset_hash", a.ruleset_hash},
            {"reason", a.reason.substr(0, kMaxReason)}};
  j["serial"] = a.serial ? json(*a.serial) : json(nullptr);
  return frames("ack", j);
}

Frames encode(const EventsUpMessage& m) {
  json events = json::array();
  for (const auto& e : m.events.events) {
    json one = json::parse(e.json, nullptr, /*allow_exceptions=*/false);
    events.push_back(one.is_object() ? std::move(one) : json::object());
  }
  return frames(
      "events",
      json{{"site", m.events.site}, {"stream", m.events.stream}, {"events", std::move(events)}});
}

Frames encode(const EventsAckMessage& m) {
  return frames("events-ack", json{{"through", m.ack.through}});
}

Frames encode(const BundleMessage& m) {
  return {"bundle", m.bytes};
}

Frames encode(const ControllerHeartbeat& m) {
  json j;
  j["desired_serial"] = m.beat.desired_serial ? json(*m.beat.desired_serial) : json(nullptr);
  return frames("heartbeat", j);
}

Result<EnforcerMessage> decode_enforcer_message(std::string_view type, std::string_view body) {
  if (type == "hello" || type == "heartbeat") {
    auto state = read_state(type, body);
    if (!state.ok()) return state.error();
    if (type == "hello") return EnforcerMessage{HelloMessage{std::move(*state)}};
    return EnforcerMessage{HeartbeatMessage{std::move(*state)}};
  }
  if (type == "ack") {
    Reader r(type, body);
    BundleAck a;
    const std::string result = r.text("result");
    a.bundle_hash = r.text("bundle_hash");
    a.serial = r.serial("serial");
    a.ruleset_hash = r.text("ruleset_hash");
    a.reason = r.text("reason", kMaxReason);
    if (auto done = r.finish(); !done.ok()) return done.error();
    if (result == "applied") {
      a.result = AckResult::applied;
    } else if (result == "rejected") {
      a.result = AckResult::rejected;
    } else {
      return make_error("malformed 'ack' message: 'result' must be \"applied\" or \"rejected\"");
    }
    return EnforcerMessage{AckMessage{std::move(a)}};
  }
  if (type == "events") return read_events(type, body);
  return make_error("unknown message type '" + std::string(type.substr(0, 32)) + "'");
}

Result<ControllerMessage> decode_controller_message(std::string_view type, std::string_view body) {
  if (type == "bundle") return ControllerMessage{BundleMessage{std::string(body)}};
  if (type == "heartbeat") {
    Reader r(type, body);
    ControllerBeat beat;
    beat.desired_serial = r.serial("desired_serial");
    if (auto done = r.finish(); !done.ok()) return done.error();
    return ControllerMessage{ControllerHeartbeat{beat}};
  }
  if (type == "events-ack") {
    Reader r(type, body);
    EventsAck ack;
    const auto through = r.serial("through");
    if (r.ok() && !through) r.fail("'through' must be a non-negative integer");
    if (auto done = r.finish(); !done.ok()) return done.error();
    ack.through = *through;
    return ControllerMessage{EventsAckMessage{ack}};
  }
  return make_error("unknown message type '" + std::string(type.substr(0, 32)) + "'");
}

std::string bundle_hash(std::string_view bundle_bytes) {
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest,
                     reinterpret_cast<const unsigned char*>(bundle_bytes.data()),
                     bundle_bytes.size(), nullptr, 0);
  return to_hex(std::span<const std::uint8_t>(digest));
}

const char* ack_result_name(AckResult r) {
  return r == AckResult::applied ? "applied" : "rejected";
}

}  // namespace drawbridge
