// The control-channel messages between an enforcer (ZeroMQ DEALER, dialling out) and the
// controller (ROUTER). Pure: encoding and strict decoding, no sockets. Every message is two
// frames, a type and a body:
//
//   enforcer → controller
//     "hello"      JSON EnforcerState   first message after (re)start
//     "heartbeat"  JSON EnforcerState   every heartbeat interval; the controller treats it as a
//                                       hello too, so a restarted controller catches up
//     "ack"        JSON BundleAck       after every bundle received: applied or rejected
//     "events"     JSON EventsMessage   SOC events from the enforcer's spool, in sequence order
//                                       (docs/distribution.md); answered by "events-ack"
//   controller → enforcer
//     "bundle"     the bundle's exact bytes (common/signing.h): the enforcer trusts only its
//                  signatures, never this channel
//     "heartbeat"  JSON ControllerBeat  answer to hello/heartbeat when there is nothing to push
//     "events-ack" JSON EventsAck       the controller has stored every event up to `through`
//
// A peer that does not know "events" (an older controller) counts it as an unknown type and
// goes on; the enforcer then keeps the events spooled and shows the output failing.
//
// Decoding never throws: anything malformed is an Error naming what was wrong, which the
// receiver logs and counts, keeping the connection and the current protection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace drawbridge {

inline constexpr int kProtocolVersion = 1;
// Enforcer → controller messages are small JSON; anything larger is refused by libzmq
// (ZMQ_MAXMSGSIZE) before it is read.
inline constexpr std::int64_t kMaxEnforcerMessageBytes = 64 * 1024;

struct EnforcerState {
  int protocol = kProtocolVersion;
  std::string site;                     // from the enforcer's trust file
  std::optional<std::uint64_t> serial;  // applied policy serial (none yet: nullopt)
  std::string bundle_hash;              // hex BLAKE2b-256 of the applied bundle; empty if none
  std::string ruleset_hash;             // plan fingerprint in the kernel (docs/ruleset.md)
  std::string version;                  // enforcer software version
  bool locked_down = false;
  bool expired = false;
};

enum class AckResult : std::uint8_t { applied, rejected };

struct BundleAck {
  AckResult result = AckResult::rejected;
  std::string bundle_hash;              // of the bundle this answers
  std::optional<std::uint64_t> serial;  // when it could be read (after the signatures verified)
  std::string ruleset_hash;             // when applied
  std::string reason;                   // when rejected: the enforcer's precise reason
};

struct ControllerBeat {
  std::optional<std::uint64_t> desired_serial;  // newest published for this site, if any
};

// One SOC event as it travels upstream: the enforcer's spool record (enforcer/soc/event_codec.h)
// kept verbatim in `json`, plus the fields the controller counts, read from it when decoding.
// The event's schema belongs to the enforcer and grows with it; the controller checks the type
// of what it reads and stores the rest unchanged, so a newer enforcer's extra field is kept
// rather than refused.
struct UpstreamEvent {
  std::string json;            // the event object, compact; what `encode` sends
  std::uint64_t sequence = 0;  // "seq": the spool sequence, strictly increasing per stream
  std::int64_t time_ms = 0;    // "ts"
  std::string kind;            // violation | session_start | session_end | audit
  std::string action, outcome, reason, rule, message;
  std::string source;  // "flow.src", empty when the event has no flow
  std::uint64_t packets = 0;
};

// Most events per message; the enforcer sends one at a time, the limit bounds the decoder.
inline constexpr std::size_t kMaxEventsPerMessage = 64;
// Largest event object (compact JSON) the controller accepts, leaving room for the envelope
// within kMaxEnforcerMessageBytes. The enforcer shortens a larger event to fit (its message,
// reason and labels) instead of sending it: a refused event would be retried forever and hold
// back every event after it.
inline constexpr std::size_t kMaxUpstreamEventBytes = 48 * 1024;

struct EventsMessage {
  std::string site;
  // Names the enforcer's spool (random, kept in the spool directory): sequences are compared
  // within one stream only, so a spool that was wiped and starts again at 1 is not mistaken for
  // duplicates.
  std::string stream;
  std::vector<UpstreamEvent> events;  // 1..kMaxEventsPerMessage, increasing sequences
};

struct EventsAck {
  std::uint64_t through = 0;  // every event of the stream up to this sequence is stored
};

struct HelloMessage {
  EnforcerState state;
};
struct HeartbeatMessage {
  EnforcerState state;
};
struct AckMessage {
  BundleAck ack;
};
struct EventsUpMessage {
  EventsMessage events;
};
using EnforcerMessage = std::variant<HelloMessage, HeartbeatMessage, AckMessage, EventsUpMessage>;

struct BundleMessage {
  std::string bytes;
};
struct ControllerHeartbeat {
  ControllerBeat beat;
};
struct EventsAckMessage {
  EventsAck ack;
};
using ControllerMessage = std::variant<BundleMessage, ControllerHeartbeat, EventsAckMessage>;

// Two frames: type and body.
struct Frames {
  std::string type;
  std::string body;
};

[[nodiscard]] Frames encode(const HelloMessage& m);
[[nodiscard]] Frames encode(const HeartbeatMessage& m);
[[nodiscard]] Frames encode(const AckMessage& m);
// Uses each event's `json` only (the other fields are what decoding reads back from it); an
// event whose `json` is not a JSON object is sent as an empty object, which the controller
// refuses.
[[nodiscard]] Frames encode(const EventsUpMessage& m);
[[nodiscard]] Frames encode(const BundleMessage& m);
[[nodiscard]] Frames encode(const ControllerHeartbeat& m);
[[nodiscard]] Frames encode(const EventsAckMessage& m);

// Strict: unknown types, bad JSON, missing or mistyped fields, unknown fields and oversized
// strings are errors.
[[nodiscard]] Result<EnforcerMessage> decode_enforcer_message(std::string_view type,
                                                              std::string_view body);
[[nodiscard]] Result<ControllerMessage> decode_controller_message(std::string_view type,
                                                                  std::string_view body);

// Hex BLAKE2b-256 of a bundle's exact bytes: how both sides name a bundle.
[[nodiscard]] std::string bundle_hash(std::string_view bundle_bytes);

[[nodiscard]] const char* ack_result_name(AckResult r);

}  // namespace drawbridge
