// The session stage: connection-tracking events from the kernel become provider-session events
// for the SOC, so it sees what the provider did through an approved opening and not only what
// was refused. Every allowed provider connection yields one start and one end event, the end
// carrying duration, packets and bytes, both attributed to the link and to the window or grant
// ticket that let it in.
//
//   ConntrackListener (ctnetlink socket) → parse_conntrack_event → SessionTracker
//     (attribute_session) → event_format → event_sink
//
// Why conntrack events and not NFLOG or rule counters: a NEW event is sent only when the kernel
// confirms a connection, which happens after every filter hook has accepted its first packet
// (conntrack confirms at the very end of input/postrouting). Drawbridge's chains drop at
// priority filter-10 on input and forward, so a connection they refuse is never confirmed and
// produces no event: NEW events are exactly the connections that were allowed. The DESTROY event
// then carries the kernel's own packet and byte counters and start/stop timestamps
// (net.netfilter.nf_conntrack_acct / nf_conntrack_timestamp), so nothing has to be counted per
// packet in userspace. Locally originated traffic is the exception: it is confirmed on output,
// before Drawbridge's input chain sees it, which is why only inbound/forwarded provider traffic
// is described by this rule (and why the tests use a second network namespace, not lo).
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"
#include "enforcer/ruleset_plan.h"
#include "enforcer/soc/event.h"

struct mnl_socket;

namespace drawbridge {

// One ctnetlink event, reduced to what a session needs.
struct ConntrackEvent {
  enum class Type : std::uint8_t { started, ended };
  Type type = Type::started;
  std::uint32_t id = 0;  // CTA_ID: the kernel's id of the entry, the same in its NEW and DESTROY
  // The original direction (the first packet's source, destination, protocol, ports), as seen
  // before any NAT.
  Flow flow;
  // The reply direction. Its source is the original destination after DNAT: the address the
  // forward hook (and so Drawbridge's rules) saw. nullopt only if the kernel left it out.
  std::optional<Flow> reply;
  std::uint64_t packets_orig = 0, bytes_orig = 0, packets_reply = 0, bytes_reply = 0;
  bool has_counters = false;           // CTA_COUNTERS_* were present (accounting was on)
  std::optional<Instant> start, stop;  // CTA_TIMESTAMP_START/STOP (timestamps were on)
  // CTA_TIMESTAMP_EVENT (Linux 6.14+, timestamps on): when the kernel noted the event; for a
  // start, when the connection was created. Start events carry no CTA_TIMESTAMP.
  std::optional<Instant> event_time;
  std::uint16_t zone = 0;             // CTA_ZONE; 0 = the default zone
  std::optional<std::uint32_t> mark;  // CTA_MARK, when the kernel sent one
};

// One ctnetlink event message → a ConntrackEvent. IPCTNL_MSG_CT_NEW with NLM_F_CREATE is a start,
// IPCTNL_MSG_CT_DELETE an end; updates (NEW without NLM_F_CREATE) and other ctnetlink messages
// are nullopt. A message that is not ctnetlink's, or whose attributes are truncated or malformed,
// is an error. Pure. `nlh` must point to at least nlh->nlmsg_len readable bytes (what
// mnl_nlmsg_ok guarantees for a received buffer); the byte-buffer overload checks that itself.
[[nodiscard]] Result<std::optional<ConntrackEvent>> parse_conntrack_event(const nlmsghdr* nlh);
[[nodiscard]] Result<std::optional<ConntrackEvent>> parse_conntrack_event(const void* bytes,
                                                                          std::size_t size);

// Is this connection a provider session under `policy`, and what let it in? Inbound: the source
// is one of a provider's addresses, the destination one of its link's hosts and the destination
// port one of the link's ports; outbound: the source is a link host, the destination the
// provider's and the port the link's. The destination is taken after DNAT (the reply's source),
// as Drawbridge's forward rules saw it. The plan's openings say whether the link is open by a
// window or by a grant (ticket); a window is preferred when both are. An end whose start was not
// seen is attributed to what was open when it started (CTA_TIMESTAMP_START), if known.
//
// Returns the SocEvent (session_start/session_end, provider-session-started/-ended, outcome
// success; site, serial, provider, link, ticket for a grant, flow with direction, first_seen =
// start, last_seen = stop, packets and bytes of both directions; labels "conntrack_id",
// "opened_by" (window, grant or none), "window" (its name, when known), "duration_ms" for ends)
// or nullopt when the connection is not a provider session (no link matches: not a provider's
// address, or a provider's address to a host or port no link names). A matching connection that
// no opening in the plan covers is still reported, with reason "link-closed": the kernel let it
// through, and the SOC must know.
[[nodiscard]] std::optional<SocEvent> attribute_session(const ConntrackEvent& event,
                                                        const Policy& policy,
                                                        const RulesetPlan& plan, Instant now);

struct SessionTrackerOptions {
  // Sessions remembered at once. Beyond it the oldest is forgotten (its end is still reported,
  // as one whose start was not seen): a lost DESTROY event must not grow memory forever.
  std::size_t max_sessions = 65'536;
};

// Pairs starts with ends. A start's attribution is remembered, so the end names the same link,
// window or ticket even when the window has closed or the policy changed in between. An end
// whose start was not seen (the enforcer was down, the start event was lost, or the session was
// forgotten) is still reported, attributed afresh, with label "start_seen" = "false".
class SessionTracker {
 public:
  explicit SessionTracker(SessionTrackerOptions options = {}) : opt_(options) {}

  [[nodiscard]] std::optional<SocEvent> observe(const ConntrackEvent& event, const Policy& policy,
                                                const RulesetPlan& plan, Instant now);

  [[nodiscard]] std::size_t open_sessions() const { return open_.size(); }
  // Sessions forgotten because max_sessions was reached.
  [[nodiscard]] std::uint64_t forgotten() const { return forgotten_; }

 private:
  struct Open {
    SocEvent start;
    std::uint64_t order = 0;  // arrival order, to forget the oldest first
  };
  SessionTrackerOptions opt_;
  std::map<std::uint32_t, Open> open_;             // by conntrack id
  std::map<std::uint64_t, std::uint32_t> by_age_;  // order → id
  std::uint64_t next_order_ = 0;
  std::uint64_t forgotten_ = 0;
};

// The ctnetlink event socket. open() subscribes to the NEW and DESTROY groups (not UPDATE: a
// session needs only its ends), makes the socket non-blocking and its receive buffer large, and
// switches on, in the current network namespace, what the events need to be complete:
//   nf_conntrack_acct = 1       packet and byte counters in DESTROY events;
//   nf_conntrack_timestamp = 1  start and stop times in DESTROY events;
//   nf_conntrack_events = 1     events for every connection, also those that begin while no
//                               listener exists (the default 2 = "auto" gives connections made
//                               while the enforcer is down no events at all, so their ends
//                               would never be reported).
// The settings apply to connections created after they are set. What could not be set is in
// warnings(); the socket still works, with less in its events.
class ConntrackListener {
 public:
  [[nodiscard]] static Result<ConntrackListener> open(int rcvbuf = 4 << 20);

  ConntrackListener(ConntrackListener&&) noexcept = default;
  ConntrackListener& operator=(ConntrackListener&&) noexcept = default;
  ~ConntrackListener() = default;

  [[nodiscard]] int fd() const;

  // Reads what is queued without blocking and calls `on_event` for each start and end, in the
  // order the kernel sent them; returns how many. At most kMaxDatagramsPerRead datagrams are
  // read per call, so that a flood cannot starve the caller's loop: call again while the fd
  // stays readable. `on_message`, when set, sees every raw message first (captures, debugging).
  // A message that does not parse is counted in malformed() and skipped.
  std::size_t read_available(const std::function<void(const ConntrackEvent&)>& on_event,
                             const std::function<void(const nlmsghdr*)>& on_message = nullptr);

  // Times the kernel reported ENOBUFS: each means at least one event was dropped because the
  // receive buffer was full, so a session's start or end may be missing. Reported, never silent.
  [[nodiscard]] std::uint64_t lost() const { return lost_; }
  [[nodiscard]] std::uint64_t malformed() const { return malformed_; }

  [[nodiscard]] bool accounting() const { return accounting_; }
  [[nodiscard]] bool timestamps() const { return timestamps_; }
  // One sentence per setting that could not be made (and the receive buffer, if refused).
  [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }

  static constexpr int kMaxDatagramsPerRead = 1024;

 private:
  struct Closer {
    void operator()(mnl_socket* s) const noexcept;
  };
  explicit ConntrackListener(mnl_socket* s) : sock_(s) {}

  std::unique_ptr<mnl_socket, Closer> sock_;
  std::vector<char> buf_;
  std::uint64_t lost_ = 0;
  std::uint64_t malformed_ = 0;
  bool accounting_ = false;
  bool timestamps_ = false;
  std::vector<std::string> warnings_;
};

}  // namespace drawbridge
