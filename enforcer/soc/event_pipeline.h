// The SOC side of the daemon, in one place: denied packets from NFLOG are attributed and
// aggregated (violation.h), allowed provider sessions come from conntrack (session_tracker.h),
// audit facts come from the daemon; every event is stamped with a sequence by the on-disk spool
// and delivered by one thread per output (the tamper-evident audit file, syslog collectors).
//
//   nflog_reader → violation ─┐
//   session_tracker ──────────┼→ emit → event_spool → Delivery → audit file / syslog …
//   daemon (audit) ───────────┘
//
// Used from the daemon's thread only; the outputs run in threads of their own behind the spool.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"
#include "enforcer/ruleset_plan.h"
#include "enforcer/soc/event.h"
#include "enforcer/soc/events_config.h"
#include "enforcer/soc/log_accounting.h"

namespace drawbridge {

struct EventPipelineOptions {
  EventsConfig events;
  std::string state_dir;    // the spool lives in <state_dir>/spool unless configured
  std::uint16_t log_group;  // the NFLOG group the ruleset logs to
  Observer observer;
  bool capture = true;  // read NFLOG and conntrack (false: audit events only, e.g. in tests)
  std::uint32_t log_rate_per_source = 0;  // the ruleset's, for the rate-limited events' text
  // Also deliver to the controller (upstream_output.h): the daemon sets it when it has a
  // [controller] table and [events] upstream is not false.
  bool upstream = false;
};

class UpstreamChannel;

// What `status` shows about the SOC side (saved as <state_dir>/events.json).
struct EventPipelineStatus {
  std::uint64_t denied_received = 0;  // NFLOG packets read
  // Logged by the kernel, never read: sequence gaps or the shortfall against the logging rules'
  // counters, whichever shows more (log_accounting.h).
  std::uint64_t denied_lost = 0;
  std::uint64_t denied_logged_by_kernel = 0;   // the logging rules' counters, since start
  std::uint64_t denied_rate_limited = 0;       // dropped without logging: source over the rate
  std::uint64_t denied_logged_while_down = 0;  // logged before this run started reading
  std::uint64_t enobufs = 0;                   // times the socket queue overflowed
  std::uint64_t parse_errors = 0;
  std::uint64_t events_emitted = 0;
  std::uint64_t sessions_open = 0;
  std::uint64_t conntrack_lost = 0;
  struct Output {
    std::string name;
    std::uint64_t delivered = 0, backlog = 0, compacted = 0, failures = 0;
    bool failing = false;
    std::string last_error;
  };
  std::vector<Output> outputs;
};

class EventPipeline {
 public:
  // Opens the spool, starts the outputs' delivery threads, binds NFLOG and conntrack, and emits
  // an enforcer-started and a log-epoch event. What it repaired or could not do is added to
  // `notes` for the caller to log; an output that cannot be created is an error.
  static Result<std::unique_ptr<EventPipeline>> start(const EventPipelineOptions& options,
                                                      Instant now, std::vector<std::string>* notes);
  ~EventPipeline();  // flushes the aggregator and stops the outputs (events stay spooled)
  EventPipeline(const EventPipeline&) = delete;
  EventPipeline& operator=(const EventPipeline&) = delete;

  // An audit fact (or any made event): attributed with the policy in force when it has none,
  // stamped and spooled.
  void emit(SocEvent event, const Policy* policy, Instant now);

  // Descriptors the daemon polls (-1 when not capturing).
  [[nodiscard]] int nflog_fd() const;
  [[nodiscard]] int conntrack_fd() const;
  void on_nflog_readable(const Policy* policy, Instant now);
  void on_conntrack_readable(const Policy* policy, const RulesetPlan* plan, Instant now);

  // Reconciles the kernel's counters on the logging rules with what was read (log_accounting.h)
  // and reports packets logged while no enforcer read, shortfalls and rate-limited denials. Call
  // with a fresh reading once at start before the table is changed, before every replacement
  // of the table, before stop(), and whenever counters_due() has passed.
  void account(const LogCounterReading& reading, const Policy* policy, Instant now);
  [[nodiscard]] bool capturing() const;
  [[nodiscard]] Instant counters_due() const;

  // Emits aggregated summaries that are due and loss reports; call when next_due() passes.
  void tick(const Policy* policy, Instant now);
  [[nodiscard]] std::optional<Instant> next_due() const;

  // Reads NFLOG dry, waiting once for the kernel's flush timeout, for at most `budget`: before
  // the last reading of the counters at stop, so that what is still queued is read, not lost.
  void drain(const Policy* policy, std::chrono::milliseconds budget);

  // Emits the enforcer-stopped event and what the aggregator still holds; a loss against the
  // last reading is counted without the usual lag (call drain() and account() first).
  void stop(const Policy* policy, Instant now);

  [[nodiscard]] EventPipelineStatus status() const;

  // The hand-over to the control channel when `upstream` is on (nullptr otherwise): the daemon
  // polls its wake_fd(), sends what it takes and reports acknowledgements and the connection.
  [[nodiscard]] UpstreamChannel* upstream() const;

 private:
  struct Impl;
  explicit EventPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A small helper for the daemon's audit facts.
[[nodiscard]] SocEvent audit_event(const char* action, std::string outcome, std::string message);

}  // namespace drawbridge
