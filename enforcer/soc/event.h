// What the SOC is told: one model for every event the enforcer emits (a denied connection, a
// provider session starting or ending, an audit fact such as a policy applied), rendered by the
// formatters (event_format.h) into ECS JSON, CEF, LEEF or RFC 5424 syslog. Plain data, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/net_types.h"
#include "common/policy_model.h"

namespace drawbridge {

enum class EventKind : std::uint8_t {
  violation,      // a packet the policy denied (aggregated: see `packets`, first/last seen)
  session_start,  // an allowed provider connection began
  session_end,    // it ended: duration, packets, bytes
  audit,          // a change of access or of the enforcer itself
};

// Stable names: they are the `event.action` values in docs/events.md.
namespace action {
inline constexpr const char* kConnectionDenied = "connection-denied";
inline constexpr const char* kSessionStarted = "provider-session-started";
inline constexpr const char* kSessionEnded = "provider-session-ended";
inline constexpr const char* kPolicyApplied = "policy-applied";
inline constexpr const char* kPolicyRejected = "policy-rejected";
inline constexpr const char* kWindowOpened = "window-opened";
inline constexpr const char* kWindowClosed = "window-closed";
inline constexpr const char* kExpiryWarning = "policy-expiry-warning";
inline constexpr const char* kPolicyExpired = "policy-expired";
inline constexpr const char* kEnforcerStarted = "enforcer-started";
inline constexpr const char* kEnforcerStopped = "enforcer-stopped";
inline constexpr const char* kLogLoss = "log-loss";    // NFLOG gaps, ENOBUFS, shortfall
inline constexpr const char* kLogEpoch = "log-epoch";  // the NFLOG reader (re)started
// Denied packets dropped without logging because their source exceeded the log rate.
inline constexpr const char* kLogRateLimited = "log-rate-limited";
inline constexpr const char* kSpoolLoss = "event-loss";  // spool full: summaries compacted
}  // namespace action

// Which way the connection went across the gateway (policy_model.h's Direction is a link's).
enum class FlowDirection : std::uint8_t { inbound, outbound, unknown };

// A connection's 5-tuple and where it crossed the gateway.
struct Flow {
  Address source;
  Address destination;
  std::uint8_t protocol = 0;           // IANA number: 6 tcp, 17 udp, 1 icmp, 58 ipv6-icmp
  std::uint16_t source_port = 0;       // 0 when the protocol has none
  std::uint16_t destination_port = 0;  // for ICMP: type << 8 | code is NOT used; see icmp_*
  std::optional<std::uint8_t> icmp_type, icmp_code;
  std::string in_interface, out_interface;
  FlowDirection direction = FlowDirection::unknown;
  std::string tcp_flags;  // e.g. "SYN", "SYN,ACK"; empty when not TCP
};

struct SocEvent {
  // Per-enforcer sequence number, strictly increasing across restarts (persisted with the
  // spool): the SOC detects transport loss from gaps (RFC 5424 `meta sequenceId`).
  std::uint64_t sequence = 0;
  Instant timestamp{};  // when the event was made
  EventKind kind = EventKind::audit;
  std::string action;   // one of action::*
  std::string outcome;  // "success", "failure" or "unknown" (ECS event.outcome)
  std::string reason;   // violation reason (outside-window, unapproved-source, …) or text
  std::string message;  // one human sentence

  // Attribution.
  std::string site;
  std::optional<std::uint64_t> serial;  // policy serial in force
  std::string provider;                 // when the source (or destination) is a provider
  std::string link;
  std::string ticket;  // grant ticket, when a grant (not a window) allowed the session
  std::string rule;    // the NFLOG subject: "link/<name>", "provider/<name>" or "guard"

  std::optional<Flow> flow;
  std::optional<Instant> first_seen, last_seen;  // violation aggregation / session start & end
  std::uint64_t packets = 0;  // violations: packets aggregated; sessions: packets both ways
  std::optional<std::uint64_t> bytes;
  bool rate_limited = false;  // the kernel's rate limit dropped some logs of this flow

  std::map<std::string, std::string> labels;  // extra facts (e.g. lost counts), sorted
};

// Who is speaking: the same for every event of one enforcer.
struct Observer {
  std::string hostname;
  std::string product = "drawbridge-enforcer";
  std::string vendor = "Drawbridge";
  std::string version;
  std::string organization;  // optional, from the config
};

// A protocol number as events name it in messages: "tcp", "udp", "icmp", "ipv6-icmp", or
// "proto N".
[[nodiscard]] std::string transport_name(std::uint8_t protocol);

// Community ID v1 (https://github.com/corelight/community-id-spec) of a flow, "1:<base64>", so
// events join with Suricata and Zeek records of the same connection. Seed 0.
std::string community_id(const Flow& flow, std::uint16_t seed = 0);

}  // namespace drawbridge
