// What the controller makes of the SOC events an enforcer sends upstream: which are new (by
// stream and sequence; the enforcer sends again what was not acknowledged), and what they add to
// the enforcer's tally: violations, denied packets, provider sessions, loss reports and the last
// violation. Pure: the server stores the result (fleet_store.h).
#pragma once

#include "common/wire_protocol.h"
#include "controller/fleet_store.h"

namespace drawbridge {

// True when `event` is new for `tally` (and then counted into it); false for a duplicate, which
// is counted as one and otherwise ignored. An event of another stream than the tally's starts
// the tally's sequence again: the enforcer's spool was replaced.
bool tally_event(SocTally& tally, const std::string& stream, const UpstreamEvent& event);

// The events the tally calls violations: denied connections (enforcer/soc/event.h).
[[nodiscard]] bool is_violation(const UpstreamEvent& event);
// Loss reports: NFLOG packets logged but not read, spooled events compacted away.
[[nodiscard]] bool is_loss_report(const UpstreamEvent& event);

}  // namespace drawbridge
