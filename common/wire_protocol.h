// The control-channel messages between an enforcer (ZeroMQ DEALER, dialling out) and the
// controller (ROUTER). Pure: encoding and strict decoding, no sockets. Every message is two
// frames, a type and a body:
//
//   enforcer → controller
//     "hello"      JSON EnforcerState   first message after (re)start
//     "heartbeat"  JSON EnforcerState   every heartbeat interval; the controller treats it as a
//                                       hello too, so a restarted controller catches up
//     "ack"        JSON BundleAck       after every bundle received: applied or rejected
//   controller → enforcer
//     "bundle"     the bundle's exact bytes (common/signing.h): the enforcer trusts only its
//                  signatures, never this channel
//     "heartbeat"  JSON ControllerBeat  answer to hello/heartbeat when there is nothing to push
//
// Decoding never throws: anything malformed is an Error naming what was wrong, which the
// receiver logs and counts, keeping the connection and the current protection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

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

struct HelloMessage {
  EnforcerState state;
};
struct HeartbeatMessage {
  EnforcerState state;
};
struct AckMessage {
  BundleAck ack;
};
using EnforcerMessage = std::variant<HelloMessage, HeartbeatMessage, AckMessage>;

struct BundleMessage {
  std::string bytes;
};
struct ControllerHeartbeat {
  ControllerBeat beat;
};
using ControllerMessage = std::variant<BundleMessage, ControllerHeartbeat>;

// Two frames: type and body.
struct Frames {
  std::string type;
  std::string body;
};

[[nodiscard]] Frames encode(const HelloMessage& m);
[[nodiscard]] Frames encode(const HeartbeatMessage& m);
[[nodiscard]] Frames encode(const AckMessage& m);
[[nodiscard]] Frames encode(const BundleMessage& m);
[[nodiscard]] Frames encode(const ControllerHeartbeat& m);

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
