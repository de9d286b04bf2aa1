#include "controller/soc_tally.h"

namespace drawbridge {

bool is_violation(const UpstreamEvent& event) {
  return event.kind == "violation";
}

bool is_loss_report(const UpstreamEvent& event) {
  return event.action == "log-loss" || event.action == "event-loss";
}

bool tally_event(SocTally& tally, const std::string& stream, const UpstreamEvent& event) {
  if (tally.stream != stream) {
    tally.stream = stream;
    tally.last_sequence = 0;
  }
  if (event.sequence <= tally.last_sequence) {
    ++tally.duplicates;
    return false;
  }
  tally.last_sequence = event.sequence;
  ++tally.events;
  const FleetTime at{std::chrono::milliseconds{event.time_ms}};
  if (!tally.last_event_at || at > *tally.last_event_at) tally.last_event_at = at;
  if (is_violation(event)) {
    ++tally.violations;
    tally.denied_packets += event.packets;
    if (!tally.last_violation_at || at >= *tally.last_violation_at) {
      tally.last_violation_at = at;
      tally.last_violation_source = event.source;
      tally.last_violation_reason = event.reason;
      tally.last_violation_rule = event.rule;
    }
  } else if (event.kind == "session_start") {
    ++tally.sessions;
  }
  if (is_loss_report(event)) ++tally.loss_events;
  return true;
}

}  // namespace drawbridge
