#include "enforcer/soc/event_pipeline.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/window_schedule.h"
#include "enforcer/soc/audit_log.h"
#include "enforcer/soc/event_format.h"
#include "enforcer/soc/event_sink.h"
#include "enforcer/soc/event_spool.h"
#include "enforcer/soc/nflog_reader.h"
#include "enforcer/soc/session_tracker.h"
#include "enforcer/soc/upstream_output.h"
#include "enforcer/soc/violation.h"
#include "enforcer/state_store.h"

namespace drawbridge {

namespace {

// Loss is reported at most this often, with the increments since the last report.
constexpr auto kLossReportEvery = std::chrono::seconds(5);
constexpr auto kStatusEvery = std::chrono::seconds(5);
constexpr auto kStatusUnchangedEvery = std::chrono::minutes(5);
// The logging rules' counters are read this often. The shortfall check lags one reading, so
// this is also how long a logged packet may take to arrive before it counts as lost.
constexpr auto kCountersEvery = std::chrono::seconds(10);

// The tamper-evident local file as an output: it takes events in spool order, so its hash chain
// and sequence numbers follow the spool's exactly.
class AuditFileOutput final : public EventOutput {
 public:
  AuditFileOutput(AuditLog log, Observer observer)
      : log_(std::move(log)), observer_(std::move(observer)) {}
  [[nodiscard]] std::string name() const override { return "audit-file"; }
  Result<void> deliver(const SocEvent& event) override {
    return log_.append(format_ecs_json(event, observer_), event.timestamp);
  }

 private:
  AuditLog log_;
  Observer observer_;
};

SyslogTransport transport_of(SyslogOutputConfig::Transport t) {
  switch (t) {
    case SyslogOutputConfig::Transport::udp:
      return SyslogTransport::udp;
    case SyslogOutputConfig::Transport::tcp:
      return SyslogTransport::tcp;
    case SyslogOutputConfig::Transport::tls:
      return SyslogTransport::tls;
  }
  return SyslogTransport::tcp;
}

}  // namespace

SocEvent audit_event(const char* action, std::string outcome, std::string message) {
  SocEvent e;
  e.kind = EventKind::audit;
  e.action = action;
  e.outcome = std::move(outcome);
  e.message = std::move(message);
  return e;
}

struct EventPipeline::Impl {
  EventPipelineOptions opt;
  std::unique_ptr<EventSpool> spool;
  std::unique_ptr<Delivery> delivery;
  std::shared_ptr<UpstreamChannel> upstream;
  std::optional<NflogReader> nflog;
  std::optional<ConntrackListener> conntrack;
  SessionTracker sessions;
  ViolationAggregator aggregator;
  std::vector<SocEvent> batch;  // made during one read, spooled together (one sync)
  std::uint64_t emitted = 0;
  std::uint64_t append_failures = 0;
  NflogCounters reported{};  // the reader's counters as of the last loss report
  std::uint64_t lost_reported = 0;
  bool stopping = false;  // drained and read for the last time: no packet is still on its way
  std::uint64_t conntrack_lost_reported = 0;
  LogAccounting accounting;
  std::uint64_t logged_while_down = 0;
  std::map<std::string, std::uint64_t> rate_limited_reported;  // by log prefix
  // "reason:rule" of rate-limited deny points → the reading that last saw their count grow.
  std::map<std::string, Instant> limited_at;
  Instant next_counters{};
  Instant next_loss_check{};
  // Something arrived (a logged packet, a session, an event) since the last loss check (a
  // counter reading makes its own): only then is another one due, so that an idle daemon's timer
  // stays quiet.
  bool active = true;
  Instant next_status{};
  std::optional<LogCounterReading> counters_saved;  // as last written to log-counters.json
  std::string last_status_body;  // events.json as last written, without its updated_at
  Instant status_written_at{};

  explicit Impl(const EventPipelineOptions& o)
      : opt(o), aggregator(AggregationOptions{o.events.aggregation, 10, 100'000}) {}

  void stamp(SocEvent& e, const Policy* policy, Instant now) const {
    if (e.timestamp == Instant{}) e.timestamp = now;
    if (policy != nullptr) {
      if (e.site.empty()) e.site = policy->site;
      if (!e.serial) e.serial = policy->serial;
    }
  }

  void flush_batch() {
    if (batch.empty()) return;
    const auto n = batch.size();
    auto r = spool->append(std::move(batch));
    batch.clear();
    if (r.ok()) {
      emitted += n;
    } else {
      // The spool counts what it could not keep; nothing else can be done from here.
      append_failures += n;
    }
  }

  // A summary of a deny point that was rate-limited meanwhile says so: its count is only what
  // was logged.
  // Aggregated summaries also carry the reader's totals, so that the SOC sees in every one of
  // them how complete the picture is.
  void annotate_summary(SocEvent& e) const {
    if (e.kind != EventKind::violation) return;
    if (nflog) {
      e.labels["log_received_total"] = std::to_string(nflog->totals().received);
      e.labels["log_lost_total"] = std::to_string(denied_lost());
    }
    mark_rate_limited(e);
  }

  void mark_rate_limited(SocEvent& e) const {
    if (e.kind != EventKind::violation || !e.first_seen || !e.last_seen) return;
    const auto it = limited_at.find(e.reason + ":" + e.rule);
    // The reading at t saw packets limited in (t - kCountersEvery, t]: did that overlap?
    if (it != limited_at.end() && it->second >= *e.first_seen &&
        it->second - kCountersEvery <= *e.last_seen) {
      e.rate_limited = true;
    }
  }

  [[nodiscard]] std::string counters_path() const { return opt.state_dir + "/log-counters.json"; }

  // Gaps and shortfall together, as a lower bound of what the kernel logged and we never read.
  [[nodiscard]] std::uint64_t denied_lost() const {
    if (!nflog) return 0;
    const auto& t = nflog->totals();
    return std::max(lost_reported, stopping ? accounting.lost_now(t.received, t.seq_lost)
                                            : accounting.lost(t.received, t.seq_lost));
  }

  void report_loss(const Policy* policy, Instant now) {
    if (!nflog) return;
    const auto& t = nflog->totals();
    const auto lost_total = denied_lost();
    const auto lost = lost_total > lost_reported ? lost_total - lost_reported : 0;
    const auto overflows = t.enobufs - reported.enobufs;
    if (lost == 0 && overflows == 0) return;
    auto e =
        audit_event(action::kLogLoss, "failure",
                    std::to_string(lost) +
                        " denied packet(s) were logged by the kernel but not read (socket "
                        "queue overflowed " +
                        std::to_string(overflows) + " time(s)); the packets were still dropped");
    e.labels["lost"] = std::to_string(lost);
    e.labels["enobufs"] = std::to_string(overflows);
    e.labels["lost_total"] = std::to_string(lost_total);
    e.labels["sequence_gaps_total"] = std::to_string(t.seq_lost);
    e.labels["received_total"] = std::to_string(t.received);
    if (accounting.last())
      e.labels["kernel_logged_total"] = std::to_string(accounting.kernel_logged());
    e.packets = lost;
    stamp(e, policy, now);
    batch.push_back(std::move(e));
    reported = t;
    lost_reported = std::max(lost_reported, lost_total);
  }

  void save_status(Instant now) {
    if (now < next_status) return;
    next_status = now + kStatusEvery;
    const auto st = status();
    nlohmann::json j{{"denied_received", st.denied_received},
                     {"denied_lost", st.denied_lost},
                     {"denied_logged_by_kernel", st.denied_logged_by_kernel},
                     {"denied_rate_limited", st.denied_rate_limited},
                     {"denied_logged_while_down", st.denied_logged_while_down},
                     {"enobufs", st.enobufs},
                     {"parse_errors", st.parse_errors},
                     {"events_emitted", st.events_emitted},
                     {"sessions_open", st.sessions_open},
                     {"conntrack_lost", st.conntrack_lost}};
    j["outputs"] = nlohmann::json::array();
    for (const auto& o : st.outputs) {
      j["outputs"].push_back({{"name", o.name},
                              {"delivered", o.delivered},
                              {"backlog", o.backlog},
                              {"compacted", o.compacted},
                              {"failures", o.failures},
                              {"failing", o.failing},
                              {"last_error", o.last_error}});
    }
    // Rewritten (with its fsyncs) only when a number changed, or once in a while to say it is
    // still current: an idle daemon should sleep, not rewrite the same file every 5 s.
    std::string body = j.dump();
    if (body == last_status_body && now < status_written_at + kStatusUnchangedEvery) return;
    j["updated_at"] = format_instant(now);
    if (write_file_atomically(opt.state_dir + "/events.json", j.dump(2) + "\n")) {
      last_status_body = std::move(body);
      status_written_at = now;
    }
  }

  EventPipelineStatus status() const {
    EventPipelineStatus st;
    if (nflog) {
      const auto& t = nflog->totals();
      st.denied_received = t.received;
      st.denied_lost = denied_lost();
      st.denied_logged_by_kernel = accounting.kernel_logged();
      st.denied_rate_limited = accounting.rate_limited();
      st.denied_logged_while_down = logged_while_down;
      st.enobufs = t.enobufs;
      st.parse_errors = t.parse_errors;
    }
    st.events_emitted = emitted;
    st.sessions_open = sessions.open_sessions();
    if (conntrack) st.conntrack_lost = conntrack->lost();
    const auto spool_stats = spool->stats();
    const auto outputs = delivery->status();
    for (const auto& o : outputs) {
      EventPipelineStatus::Output out;
      out.name = o.name;
      out.delivered = o.delivered;
      out.failures = o.failures;
      out.failing = o.failing;
      out.last_error = o.last_error;
      for (const auto& c : spool_stats.consumers) {
        if (c.name == o.name) {
          out.backlog = c.backlog;
          out.compacted = c.compacted;
        }
      }
      st.outputs.push_back(out);
    }
    return st;
  }
};

EventPipeline::EventPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EventPipeline::~EventPipeline() {
  if (impl_ && impl_->delivery) impl_->delivery->stop();
}

Result<std::unique_ptr<EventPipeline>> EventPipeline::start(const EventPipelineOptions& options,
                                                            Instant now,
                                                            std::vector<std::string>* notes) {
  auto impl = std::make_unique<Impl>(options);
  const auto& ev = options.events;

  std::vector<std::unique_ptr<EventOutput>> outputs;
  // With no output configured, events still go somewhere an operator can read and verify: the
  // audit file in the state directory.
  std::optional<AuditFileConfig> audit = ev.audit_file;
  if (!audit && ev.syslog.empty()) {
    audit = AuditFileConfig{};
    audit->path = options.state_dir + "/audit.jsonl";
  }
  if (audit) {
    AuditLogOptions ao;
    ao.path = audit->path;
    ao.retention = audit->retention;
    ao.max_bytes = audit->max_bytes;
    auto log = AuditLog::open(ao, now, notes);
    if (!log.ok()) return make_error("audit file: " + log.error().message);
    outputs.push_back(std::make_unique<AuditFileOutput>(std::move(*log), options.observer));
  }
  for (const auto& s : ev.syslog) {
    auto format = parse_event_format(s.format);
    if (!format.ok()) return make_error("syslog output " + s.name + ": " + format.error().message);
    SyslogOutputOptions so;
    so.name = s.name;
    so.transport = transport_of(s.transport);
    so.host = s.host;
    so.port = s.port;
    so.ca_file = s.ca_file;
    so.server_name = s.server_name;
    so.pinned_sha256 = s.pinned_sha256;
    const Observer observer = options.observer;
    const EventFormat body = *format;
    const int facility = s.facility;
    const int pid = static_cast<int>(::getpid());
    so.format = [observer, body, facility, pid](const SocEvent& e) {
      return format_syslog(e, observer, body, facility, pid);
    };
    auto out = SyslogOutput::create(std::move(so));
    if (!out.ok()) return make_error("syslog output " + s.name + ": " + out.error().message);
    outputs.push_back(std::move(*out));
  }

  SpoolOptions spool;
  spool.directory = ev.spool_dir.empty() ? options.state_dir + "/spool" : ev.spool_dir;
  if (options.upstream) {
    // The stream name lives with the spool: a new spool directory restarts the sequence, and
    // the controller must see a new stream rather than old sequence numbers.
    UpstreamOptions uo;
    uo.stream_file = spool.directory + "/" + kUpstreamOutputName + ".stream";
    auto channel = UpstreamChannel::create(uo);
    if (!channel.ok()) return make_error("upstream output: " + channel.error().message);
    impl->upstream = *channel;
    outputs.push_back(std::make_unique<ControllerUpstream>(impl->upstream));
  }
  spool.max_bytes = ev.spool_max_bytes;
  for (const auto& o : outputs) spool.consumers.push_back(o->name());
  auto opened = EventSpool::open(std::move(spool), notes);
  if (!opened.ok()) return make_error("event spool: " + opened.error().message);
  impl->spool = std::move(*opened);

  auto delivery = Delivery::start(*impl->spool, std::move(outputs));
  if (!delivery.ok()) return make_error("event delivery: " + delivery.error().message);
  impl->delivery = std::move(*delivery);

  if (options.capture) {
    auto nflog = NflogReader::open(options.log_group);
    if (!nflog.ok()) {
      // Without it denied packets are still dropped, but the SOC would not hear of them.
      return make_error("NFLOG group " + std::to_string(options.log_group) + ": " +
                        nflog.error().message);
    }
    impl->nflog.emplace(std::move(*nflog));
    auto ct = ConntrackListener::open();
    if (ct.ok()) {
      for (const auto& w : ct->warnings()) {
        if (notes) notes->push_back(w);
      }
      impl->conntrack.emplace(std::move(*ct));
    } else if (notes) {
      notes->push_back("no provider session events: " + ct.error().message);
    }
  }
  auto pipeline = std::unique_ptr<EventPipeline>(new EventPipeline(std::move(impl)));
  auto started = audit_event(action::kEnforcerStarted, "success",
                             "drawbridge-enforcer " + options.observer.version + " started");
  pipeline->emit(std::move(started), nullptr, now);
  if (options.capture) {
    // The kernel logs nothing while no socket is bound and restarts the sequence on a new
    // bind: the SOC learns where a new count begins.
    auto epoch = audit_event(action::kLogEpoch, "success",
                             "reading denied packets from NFLOG group " +
                                 std::to_string(options.log_group) + " (sequence restarts)");
    epoch.labels["nflog_group"] = std::to_string(options.log_group);
    pipeline->emit(std::move(epoch), nullptr, now);
  }
  return pipeline;
}

void EventPipeline::emit(SocEvent event, const Policy* policy, Instant now) {
  impl_->active = true;
  impl_->stamp(event, policy, now);
  impl_->batch.push_back(std::move(event));
  impl_->flush_batch();
}

int EventPipeline::nflog_fd() const {
  return impl_->nflog ? impl_->nflog->fd() : -1;
}
int EventPipeline::conntrack_fd() const {
  return impl_->conntrack ? impl_->conntrack->fd() : -1;
}

void EventPipeline::on_nflog_readable(const Policy* policy, Instant now) {
  impl_->active = true;
  if (!impl_->nflog) return;
  auto& im = *impl_;
  im.nflog->read_available([&](const LoggedPacket& p) {
    auto prefix = parse_log_prefix(p.prefix);
    if (!prefix.ok()) return;  // another tool's rule logging to our group: not ours to report
    const Instant seen = p.kernel_time.value_or(now);
    SocEvent denial = attribute_denial(*prefix, p.flow, seen, policy);
    if (auto e = im.aggregator.observe(denial, now)) {
      im.stamp(*e, policy, now);
      im.batch.push_back(std::move(*e));
    }
  });
  im.flush_batch();
}

void EventPipeline::on_conntrack_readable(const Policy* policy, const RulesetPlan* plan,
                                          Instant now) {
  impl_->active = true;
  if (!impl_->conntrack) return;
  auto& im = *impl_;
  im.conntrack->read_available([&](const ConntrackEvent& ct) {
    if (policy == nullptr || plan == nullptr) return;
    if (auto e = im.sessions.observe(ct, *policy, *plan, now)) {
      im.stamp(*e, policy, now);
      im.batch.push_back(std::move(*e));
    }
  });
  im.flush_batch();
}

void EventPipeline::tick(const Policy* policy, Instant now) {
  auto& im = *impl_;
  for (auto& e : im.aggregator.flush_due(now)) {
    im.annotate_summary(e);
    im.stamp(e, policy, now);
    im.batch.push_back(std::move(e));
  }
  if (now >= im.next_loss_check && im.active) {
    im.active = false;
    im.next_loss_check = now + kLossReportEvery;
    im.report_loss(policy, now);
    if (im.conntrack && im.conntrack->lost() > im.conntrack_lost_reported) {
      auto e = audit_event(action::kLogLoss, "failure",
                           "provider session events were lost (conntrack socket overflowed)");
      e.labels["conntrack_overflows"] =
          std::to_string(im.conntrack->lost() - im.conntrack_lost_reported);
      im.conntrack_lost_reported = im.conntrack->lost();
      im.stamp(e, policy, now);
      im.batch.push_back(std::move(e));
    }
  }
  im.flush_batch();
  im.save_status(now);
}

std::optional<Instant> EventPipeline::next_due() const {
  auto due = impl_->aggregator.next_due();
  const Instant loss = impl_->next_loss_check;
  if (impl_->nflog && impl_->active) due = due ? std::min(*due, loss) : loss;
  return due;
}

void EventPipeline::drain(const Policy* policy, std::chrono::milliseconds budget) {
  if (!impl_->nflog) return;
  const auto until = std::chrono::steady_clock::now() + budget;
  const auto now = [] {
    return std::chrono::time_point_cast<std::chrono::milliseconds>(
        std::chrono::system_clock::now());
  };
  // A packet logged just before may wait in the kernel for the flush timeout (timeout_cs).
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    while (std::chrono::steady_clock::now() < until) {
      const auto before = impl_->nflog->totals();
      on_nflog_readable(policy, now());
      const auto& after = impl_->nflog->totals();
      if (after.received == before.received && after.parse_errors == before.parse_errors) break;
    }
  }
}

void EventPipeline::stop(const Policy* policy, Instant now) {
  auto& im = *impl_;
  im.stopping = true;
  for (auto& e : im.aggregator.flush_all(now)) {
    im.annotate_summary(e);
    im.stamp(e, policy, now);
    im.batch.push_back(std::move(e));
  }
  im.report_loss(policy, now);
  if (im.accounting.last()) {
    // The next run tells what the kernel logged while nobody read, from here.
    (void)write_file_atomically(im.counters_path(),
                                encode_saved_log_counters({*im.accounting.last(), true}));
  }
  auto stopped = audit_event(action::kEnforcerStopped, "success", "drawbridge-enforcer stopped");
  im.stamp(stopped, policy, now);
  im.batch.push_back(std::move(stopped));
  im.flush_batch();
  // Give working outputs a moment to take what is spooled (a failing one keeps it spooled for
  // the next start), so that the last status says what really is still waiting.
  for (int i = 0; i < 40; ++i) {
    const auto st = im.status();
    if (std::none_of(st.outputs.begin(), st.outputs.end(),
                     [](const auto& o) { return o.backlog > 0 && !o.failing; })) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  im.next_status = Instant{};
  im.save_status(now);
}

bool EventPipeline::capturing() const {
  return impl_->nflog.has_value();
}

Instant EventPipeline::counters_due() const {
  return impl_->next_counters;
}

void EventPipeline::account(const LogCounterReading& reading, const Policy* policy, Instant now) {
  auto& im = *impl_;
  if (!im.nflog) return;
  im.next_counters = now + kCountersEvery;
  if (!im.accounting.last()) {
    std::string text;
    if (std::ifstream in(im.counters_path()); in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    auto saved = text.empty() ? Result<SavedLogCounters>(make_error("none"))
                              : decode_saved_log_counters(text);
    // With no record (first start, or a damaged file) every count in the kernel was logged
    // while no enforcer read.
    const SavedLogCounters previous = saved.ok() ? *saved : SavedLogCounters{{}, false};
    const auto down = LogAccounting::logged_while_down(previous, reading);
    if (down.packets > 0) {
      const std::string how = down.upper_bound ? "up to " : down.lower_bound ? "at least " : "";
      auto e = audit_event(
          action::kLogLoss, "failure",
          how + std::to_string(down.packets) +
              " denied packet(s) were logged by the kernel while no enforcer was reading" +
              (saved.ok() ? " (since " + format_instant(previous.reading.at) + ")" : "") +
              "; they were dropped, but their details are lost");
      e.labels["logged_while_down"] = std::to_string(down.packets);
      if (down.upper_bound) e.labels["bound"] = "upper";
      if (down.lower_bound) e.labels["bound"] = "lower";
      e.packets = down.packets;
      im.stamp(e, policy, now);
      im.batch.push_back(std::move(e));
      im.logged_while_down = down.packets;
    }
  }
  im.accounting.observe(reading);
  for (const auto& [prefix, total] : im.accounting.rate_limited_by_prefix()) {
    auto& reported = im.rate_limited_reported[prefix];
    if (total <= reported) continue;
    const auto n = total - reported;
    reported = total;
    auto e =
        audit_event(action::kLogRateLimited, "success",
                    std::to_string(n) + " denied packet(s) from sources over the log rate of " +
                        std::to_string(im.opt.log_rate_per_source) +
                        "/s were dropped without being logged (" + prefix + ")");
    e.packets = n;
    e.rate_limited = true;
    e.labels["not_logged"] = std::to_string(n);
    e.labels["prefix"] = prefix;
    if (auto parsed = parse_log_prefix(prefix); parsed.ok()) {
      e.reason = parsed->reason;
      e.rule =
          parsed->subject_kind + (parsed->subject_name.empty() ? "" : "/" + parsed->subject_name);
      im.limited_at[e.reason + ":" + e.rule] = now;
    }
    e.labels["rate_limited_total"] = std::to_string(total);
    im.stamp(e, policy, now);
    im.batch.push_back(std::move(e));
  }
  im.report_loss(policy, now);
  im.flush_batch();
  // Saved for the next run only when a count moved: an idle gateway does not rewrite the file.
  if (!im.counters_saved || im.counters_saved->rules != reading.rules) {
    if (write_file_atomically(im.counters_path(), encode_saved_log_counters({reading, false}))) {
      im.counters_saved = reading;
    }
  }
}

EventPipelineStatus EventPipeline::status() const {
  return impl_->status();
}

UpstreamChannel* EventPipeline::upstream() const {
  return impl_->upstream.get();
}

}  // namespace drawbridge
