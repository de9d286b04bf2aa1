// The violation stage: a denied packet, as NFLOG reported it, becomes an attributed event, and
// repeated denials become one event with a count. Pure: the caller supplies the policy in force
// and the time.
//
//   nflog_reader → violation (attribute, aggregate) → event_format → event_sink
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"
#include "enforcer/soc/event.h"

namespace drawbridge {

// The NFLOG prefix every logging rule carries: "drawbridge:<reason>:<subject>", where subject is
// "link/<name>", "provider/<name>" or "guard" (docs/ruleset.md).
struct LogPrefix {
  std::string reason;        // outside-window, unapproved-source, unapproved-host, …
  std::string subject_kind;  // "link", "provider" or "guard"
  std::string subject_name;  // empty for guard
};
[[nodiscard]] Result<LogPrefix> parse_log_prefix(std::string_view prefix);

// A denied packet → a violation event (packets = 1) attributed with the policy in force: site,
// serial, the provider when the source (or, outbound, the destination) is one of its addresses,
// the link or guard rule, reason and direction. `policy` may be null (nothing applied yet: only
// what the packet itself says is filled in).
[[nodiscard]] SocEvent attribute_denial(const LogPrefix& prefix, const Flow& flow, Instant seen,
                                        const Policy* policy);

struct AggregationOptions {
  std::chrono::milliseconds interval{60'000};
  // A source that opens more new flows than this within one interval is scanning: its further
  // new flows are folded into one event per (source, destination, reason) instead of one each.
  std::size_t new_flows_per_source = 10;
  // Bound on the flows tracked at once (a flood from spoofed sources): beyond it, denials are
  // folded into one overflow event per reason and interval.
  std::size_t max_flows = 100'000;
};

// Repeated denials of the same (source, destination, protocol, destination port, reason) within
// an interval become one event with a count; the first denial of a new flow is returned at once.
// A port scan yields the first few flows at once and then one summary per destination host and
// interval, with the number of distinct ports in its labels, for as long as the scan goes on; a
// flood of spoofed sources beyond `max_flows` yields one overflow summary per reason. Every packet
// observed is in exactly one emitted event's `packets`: nothing is dropped, only counted together.
class ViolationAggregator {
 public:
  explicit ViolationAggregator(AggregationOptions options = {}) : opt_(options) {}

  // The event to emit now, if this denial starts a new flow (and its source is not scanning).
  [[nodiscard]] std::optional<SocEvent> observe(const SocEvent& denial, Instant now);
  // Summaries whose interval has ended by `now` (flows that saw more denials after their first
  // event, scan and overflow summaries).
  [[nodiscard]] std::vector<SocEvent> flush_due(Instant now);
  // Everything still held, e.g. at stop.
  [[nodiscard]] std::vector<SocEvent> flush_all(Instant now);
  // When flush_due has something to return next.
  [[nodiscard]] std::optional<Instant> next_due() const;
  [[nodiscard]] std::size_t tracked_flows() const { return flows_.size(); }

 private:
  using FlowKey = std::tuple<Address, Address, std::uint8_t, std::uint16_t, std::string>;
  using ScanKey = std::tuple<Address, Address, std::string>;
  struct Pending {
    SocEvent event;  // the latest denial's attribution; packets = count not yet reported
    Instant window_end{};
  };
  struct Scan {
    SocEvent event;
    Instant window_end{};
    std::map<std::uint16_t, bool> ports;  // distinct destination ports (bounded in labels)
  };
  struct SourceRate {
    Instant window_end{};
    std::size_t new_flows = 0;
    // Once a source has scanned, all its denials go to scan summaries until it has been quiet
    // for a whole interval: a scan repeated every interval must not earn a fresh allowance of
    // flows tracked one by one each time.
    bool scanning = false;
    Instant quiet_after{};
  };

  static SocEvent summary_of(SocEvent e);
  void fold(SocEvent& into, const SocEvent& denial) const;

  AggregationOptions opt_;
  std::map<FlowKey, Pending> flows_;
  std::map<ScanKey, Scan> scans_;
  std::map<Address, SourceRate> sources_;
  std::map<std::string, Pending> overflow_;  // by reason
};

}  // namespace drawbridge
