// When the controller sends an enforcer its site's desired bundle. Pure, so that the rule that
// keeps a fleet converging without resend storms is tested on its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace drawbridge {

struct PushInputs {
  // The site's desired bundle.
  std::string desired_hash;
  std::uint64_t desired_serial = 0;
  bool desired_forced = false;  // published with --force (an older serial, on purpose)
  // What the enforcer last said it holds, and what it refused.
  std::optional<std::uint64_t> applied_serial;
  std::string applied_hash;
  std::string rejected_hash;
  // A send of the desired bundle not acknowledged yet, and how long ago it went out.
  std::string in_flight_hash;
  std::chrono::milliseconds in_flight_for{0};
  std::chrono::milliseconds heartbeat{5000};
};

// Send when the enforcer does not hold the desired bundle, has not refused it, would not refuse
// it as a rollback (unless forced), and is not applying it right now (a send unanswered for three
// heartbeats is tried again: the ack may have been lost with a connection).
[[nodiscard]] inline bool should_push(const PushInputs& in) {
  if (in.desired_hash.empty()) return false;
  if (in.desired_hash == in.applied_hash || in.desired_hash == in.rejected_hash) return false;
  if (in.applied_serial && in.desired_serial <= *in.applied_serial && !in.desired_forced) {
    return false;
  }
  return !(in.in_flight_hash == in.desired_hash && in.in_flight_for < 3 * in.heartbeat);
}

}  // namespace drawbridge
