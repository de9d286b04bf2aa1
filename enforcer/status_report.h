// `status`: what the kernel enforces now, read back from the kernel (not from our memory), plus
// what the state file says was applied.
#pragma once

#include <string>

#include "common/result.h"
#include "enforcer/netlink_batch.h"
#include "enforcer/state_store.h"

namespace drawbridge {

struct OpenElement {
  std::string link;
  std::string hosts;                                   // "10.20.0.10" or a range
  std::string service;                                 // "tcp/3389"
  std::optional<std::chrono::milliseconds> remaining;  // nullopt = no timeout
};

struct LinkCounters {
  std::string link;
  std::uint64_t allowed_packets = 0, allowed_bytes = 0;
  std::uint64_t denied_closed = 0;   // outside-window / policy-expired
  std::uint64_t denied_foreign = 0;  // unapproved-source
};

struct StatusReport {
  std::string table;
  bool table_present = false;
  std::uint32_t table_flags = 0;
  std::string kernel_plan;  // the gate chain's comment: "drawbridge site S serial N plan H"
  std::optional<AppliedState> applied;
  std::vector<OpenElement> open;
  std::vector<LinkCounters> links;
  std::uint64_t guard_denied = 0;
  std::optional<LinkState> link;      // the control channel, when a controller is configured
  std::string events_json;            // <state_dir>/events.json as the daemon last wrote it
  std::vector<std::string> problems;  // things an operator must look at
};

Result<StatusReport> read_status(NetlinkSocket& sock, const std::string& table,
                                 const std::string& state_dir);
std::string format_status(const StatusReport& r);
std::string status_json(const StatusReport& r);

}  // namespace drawbridge
