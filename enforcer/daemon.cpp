#include "enforcer/daemon.h"

#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "common/log_throttle.h"
#include "common/policy_parser.h"
#include "common/service_notify.h"
#include "common/trust.h"
#include "common/window_schedule.h"
#include "common/wire_protocol.h"
#include "enforcer/bundle_acceptance.h"
#include "enforcer/controller_link.h"
#include "enforcer/kernel_state.h"
#include "enforcer/soc/event_pipeline.h"
#include "enforcer/soc/upstream_output.h"
#include "enforcer/state_store.h"

namespace drawbridge {

Instant now_ms() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

namespace {

// A file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

// Between edges the daemon still wakes this often to check the table is intact (someone may
// have run `nft flush ruleset`); it reads only headers and rules, never the sets.
constexpr auto kReconcileEvery = std::chrono::minutes(1);
// After an nftables change notification, how long to wait before checking the table.
constexpr auto kSettle = std::chrono::milliseconds(100);

class Daemon {
 public:
  explicit Daemon(const DaemonOptions& o) : opt_(o), log_(spdlog::stderr_color_mt("enforcer")) {}

  int run() {
    // Blocked before any thread starts (event delivery, ZeroMQ): threads inherit the mask, so
    // these signals reach only the signalfd below and never kill the process from elsewhere.
    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&mask, s);
    pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    auto sock = NetlinkSocket::open();
    if (!sock.ok()) {
      log_->critical("{}", sock.error().message);
      return 1;
    }
    writer_.emplace(std::move(*sock));
    close_until_applied();
    start_events();
    if (!initial_policy()) {
      if (!opt_.controller) return 1;
      log_->warn(
          "no policy and no stored bundle: nothing to enforce until the controller sends the "
          "first bundle (no table is installed until then)");
    }
    if (policy_ && !apply("start", Mode::reconcile)) return 1;
    if (opt_.controller && !connect_controller()) return 1;

    Fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC));
    Fd timer(timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC));
    // Any change to any nftables table wakes us; the check that follows reads only chain
    // headers, and our own commits pass it.
    auto monitor = NetlinkSocket::open_monitor();
    if (!monitor.ok())
      log_->warn("{}; checking the table once a minute only", monitor.error().message);
    if (sigfd.get() < 0 || timer.get() < 0) {
      log_->critical("cannot create signal/timer descriptors: {}", std::strerror(errno));
      return 1;
    }
    // The table is in the kernel (or there is none to install yet): units ordered after this one
    // start with the gateway protected.
    service::ready(service_status());

    while (true) {
      arm(timer.get());
      // zmq_poll waits on the control channel and on plain descriptors alike. Without a
      // monitor its slot watches the timer twice; without a controller the last slot is unused.
      // Slots that do not exist (no monitor, no controller, no event capture) watch the timer
      // again with no events, so that the indexes stay fixed.
      const int nflog = events_ ? events_->nflog_fd() : -1;
      const int conntrack = events_ ? events_->conntrack_fd() : -1;
      const auto fd_item = [&](int fd) {
        return zmq_pollitem_t{nullptr, fd >= 0 ? fd : timer.get(),
                              static_cast<short>(fd >= 0 ? ZMQ_POLLIN : 0), 0};
      };
      UpstreamChannel* upstream = events_ ? events_->upstream() : nullptr;
      zmq_pollitem_t fds[8] = {fd_item(sigfd.get()),
                               fd_item(timer.get()),
                               fd_item(monitor.ok() ? monitor->fd() : -1),
                               fd_item(nflog),
                               fd_item(conntrack),
                               {link_ ? link_->socket_handle() : nullptr, 0, ZMQ_POLLIN, 0},
                               {link_ ? link_->monitor_handle() : nullptr, 0, ZMQ_POLLIN, 0},
                               fd_item(upstream ? upstream->wake_fd() : -1)};
      const int nfds = link_ ? 8 : 5;
      if (zmq_poll(fds, nfds, heartbeat_timeout_ms()) < 0) {
        if (zmq_errno() == EINTR) continue;
        log_->critical("poll failed: {}", zmq_strerror(zmq_errno()));
        return 1;
      }
      if (events_) {
        const Instant now = now_ms();
        const Policy* in_force = policy_ ? &*policy_ : nullptr;
        if (fds[3].revents & ZMQ_POLLIN) events_->on_nflog_readable(in_force, now);
        if (fds[4].revents & ZMQ_POLLIN) {
          events_->on_conntrack_readable(in_force, plan_ ? &*plan_ : nullptr, now);
        }
      }
      if (link_) {
        if (fds[6].revents & ZMQ_POLLIN) on_link_events();
        if (fds[7].revents & ZMQ_POLLIN) send_events_upstream();
        if (fds[5].revents & ZMQ_POLLIN) serve_controller();
        heartbeat_if_due();
      }
      if (fds[0].revents & ZMQ_POLLIN) {
        signalfd_siginfo si{};
        if (read(sigfd.get(), &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGHUP) {
            service::reloading("reloading");
            if (opt_.reread) reread_settings();
            if (opt_.policy_path.empty()) {
              log_->info("SIGHUP: no local policy configured; re-applying what is held");
              if (policy_) apply("reload", Mode::reconcile);
            } else {
              log_->info("SIGHUP: reloading {}", opt_.policy_path);
              if (load_policy()) apply("reload", Mode::reconcile);
            }
            service::ready(service_status());
          } else {
            log_->info(
                "stopping on signal {}; table inet {} stays in place and open windows "
                "still close on their kernel timeouts",
                si.ssi_signo, opt_.compile.table);
            service::stopping("stopping; table inet " + opt_.compile.table + " stays in place");
            // What the kernel still queues is read before the last count, so that only
            // what really was lost is reported as lost.
            if (events_) events_->drain(policy_ ? &*policy_ : nullptr, std::chrono::seconds(2));
            count_logged();
            if (events_) events_->stop(policy_ ? &*policy_ : nullptr, now_ms());
            return 0;
          }
        }
      }
      if ((fds[2].revents & ZMQ_POLLIN) && monitor->drain()) {
        // Let a burst of changes settle, then check.
        next_reconcile_ = std::min(next_reconcile_, now_ms() + kSettle);
      }
      if (fds[1].revents & ZMQ_POLLIN) {
        std::uint64_t expirations = 0;
        const ssize_t n = read(timer.get(), &expirations, sizeof expirations);
        if (n < 0 && errno == ECANCELED) {
          // The wall clock was set: element timeouts run on kernel time and no longer match the
          // windows, so recompute every timeout from scratch.
          log_->warn("system clock changed; re-applying with fresh window timeouts");
          apply("clock change", Mode::replace);
        } else if (now_ms() >= policy_wake_) {
          // Wakes for the SOC side alone (counters, summaries) need no recompile of the policy.
          tick();
        }
      }
    }
  }

 private:
  // SIGHUP: the settings that can change under a running daemon take effect now; the rest are
  // named, so that nobody believes a changed table or SOC output is already in use.
  void reread_settings() {
    auto fresh = opt_.reread();
    if (!fresh.ok()) {
      log_->error("SIGHUP: the config is invalid, keeping the running settings: {}",
                  fresh.error().str());
      return;
    }
    for (const auto& key : settings_needing_restart(opt_, *fresh)) {
      log_->warn("SIGHUP: {} changed in the config; takes effect at the next restart", key);
    }
    if (fresh->policy_path != opt_.policy_path) {
      log_->info("SIGHUP: policy is now {}",
                 fresh->policy_path.empty() ? std::string("(none)") : fresh->policy_path);
    }
    opt_.policy_path = fresh->policy_path;
    opt_.trust_path = fresh->trust_path;
    opt_.expiry_warning = fresh->expiry_warning;
  }

  // The one-line state `systemctl status` shows.
  std::string service_status() const {
    if (!policy_) return "no policy yet: waiting for the controller's first bundle";
    return "enforcing site " + policy_->site + " serial " + std::to_string(policy_->serial) +
           " in table inet " + opt_.compile.table;
  }

  bool load_policy() {
    // At start-up an unreadable policy path falls back to the bundle accepted last, so the
    // gateway is protected from boot even before anything else delivers a policy.
    auto loaded = load_enforced_policy(opt_.policy_path, opt_.trust_path, opt_.state_dir, now_ms(),
                                       /*fall_back_to_stored=*/true);
    if (!loaded.ok()) {
      log_->error("policy {} rejected, keeping what is applied:\n{}", opt_.policy_path,
                  loaded.error().message);
      emit_audit(action::kPolicyRejected, "failure",
                 opt_.policy_path + " rejected: " + loaded.error().message);
      return false;
    }
    for (const auto& note : loaded->notes) log_->info("{}", note);
    policy_ = std::move(loaded->policy);
    bundle_to_record_ = std::move(loaded->bundle_to_record);
    bundle_hash_ = loaded->bundle_hash;
    policy_source_ = std::filesystem::exists(opt_.policy_path) ? opt_.policy_path : stored_path();
    return true;
  }

  std::string stored_path() const { return opt_.state_dir + "/accepted.bundle"; }

  bool initial_policy() {
    if (opt_.trust_path.empty()) {
      if (opt_.controller)
        log_->error(
            "a controller is configured but no trust file: every bundle it sends will be refused");
    } else if (auto trust = load_trust(opt_.trust_path); trust.ok() && trust->site) {
      site_ = *trust->site;
    }
    if (!opt_.policy_path.empty() && load_policy()) return true;
    return load_stored_bundle();
  }

  // When the configured policy is refused at start-up, the bundle accepted last still protects.
  bool load_stored_bundle() {
    const std::string stored = opt_.state_dir + "/accepted.bundle";
    if (!std::filesystem::exists(stored)) return false;
    auto loaded = load_enforced_policy(stored, opt_.trust_path, opt_.state_dir, now_ms(), false);
    if (!loaded.ok()) {
      log_->error("the stored bundle is refused too:\n{}", loaded.error().message);
      return false;
    }
    log_->warn("enforcing the bundle accepted last ({}) until a valid policy arrives", stored);
    policy_ = std::move(loaded->policy);
    bundle_hash_ = loaded->bundle_hash;
    policy_source_ = stored;
    return true;
  }

  // A cold start (no table in the kernel, as after a reboot): before the policy is verified,
  // parsed and compiled — half a second at 100,000 prefixes — the inbound linked services and
  // guarded ports of the last applied policy are closed to everyone. Then the policy replaces
  // that table in one transaction. A restart finds its table in place and skips this.
  void close_until_applied() {
    auto existing = writer_->socket().read_table(opt_.compile.table);
    if (!existing.ok() || existing->exists) return;
    auto skeleton = load_closed_skeleton(opt_.state_dir, opt_.compile.table);
    if (!skeleton.ok()) {
      log_->warn("cold start: {}; nothing is closed until the policy is applied",
                 skeleton.error().message);
      return;
    }
    if (!*skeleton) return;  // nothing was ever applied with this state directory
    const auto applied = load_applied(opt_.state_dir, opt_.compile.table);
    const std::string site = applied.ok() && *applied ? (*applied)->site : site_;
    const auto plan = closed_plan(**skeleton, site, now_ms(), opt_.compile);
    if (auto r = writer_->replace(plan); !r.ok()) {
      log_->error("cold start: closing linked and guarded services failed: {}", r.error().message);
      return;
    }
    log_->info(
        "cold start: table inet {} closes the last policy's linked services ({} IPv4, {} IPv6 "
        "elements) and guarded ports to everyone until the policy is in force",
        opt_.compile.table, skeleton->value().linked_v4.size(), skeleton->value().linked_v6.size());
    service::status(
        "closed: linked services and guarded ports closed until the policy is in force");
  }

  enum class Mode { reconcile, replace };

  bool apply(const char* why, Mode mode) {
    // A replacement restarts the counters of the rules it replaces: read them first.
    count_logged();
    const Instant now = now_ms();
    auto compiled = compile(*policy_, now, options(now));
    next_reconcile_ = compiled.compiled_at + kReconcileEvery;
    auto r = mode == Mode::replace ? writer_->replace(compiled) : writer_->reconcile(compiled);
    if (!r.ok()) {
      log_->error("{}: applying serial {} failed, the kernel kept its previous state: {}", why,
                  policy_->serial, r.error().message);
      last_apply_error_ = r.error().message;
      emit_audit(action::kPolicyRejected, "failure",
                 std::string(why) + ": the kernel refused serial " +
                     std::to_string(policy_->serial) + ": " + r.error().message);
      return false;
    }
    plan_ = std::move(compiled);
    const RulesetPlan& plan = *plan_;
    ruleset_hash_ = plan.fingerprint;
    {
      const auto& st = writer_->last_stats();
      auto e = audit_event(action::kPolicyApplied, "success",
                           std::string(why) + ": site " + plan.site + " serial " +
                               std::to_string(plan.serial) +
                               (st.reconciled ? " already in the kernel" : " installed"));
      e.labels["source"] = policy_source_;
      e.labels["ruleset_hash"] = ruleset_hash_;
      if (!bundle_hash_.empty()) e.labels["bundle_hash"] = bundle_hash_;
      if (plan.locked_down) e.labels["lockdown"] = "true";
      emit(std::move(e));
    }
    log_open(plan, why);
    if (bundle_to_record_) {
      // Only once the kernel holds it does its serial become the one to beat.
      auto recorded = AcceptedStore(opt_.state_dir).record(*bundle_to_record_, *policy_);
      if (!recorded.ok()) log_->error("applied, but not recorded: {}", recorded.error().message);
      bundle_to_record_.reset();
    }
    if (auto kept = save_closed_skeleton(opt_.state_dir, opt_.compile.table, skeleton_of(plan));
        !kept.ok()) {
      log_->warn("cannot keep what a cold start closes first: {}", kept.error().message);
    }
    auto saved = save_applied(opt_.state_dir,
                              AppliedState{opt_.compile.table, policy_->site, policy_->serial,
                                           std::filesystem::absolute(policy_source_).string(),
                                           plan.compiled_at, policy_->expires});
    if (!saved.ok()) log_->error("applied, but could not record it: {}", saved.error().message);
    service::status(service_status());  // a bundle from the controller changes it too
    // Parsing, compiling and the netlink batch of a large policy peak at several times what the
    // daemon keeps; glibc holds on to freed pages unless asked, and the RSS would stay at that
    // peak for the daemon's lifetime.
    malloc_trim(0);
    return true;
  }

  void tick() {
    if (!policy_) return;
    const Instant now = now_ms();
    const auto opts = options(now);
    // At an edge only the open-window sets change: advance() recomputes them alone, where a
    // compile() of a policy with 100,000 prefixes costs tens of milliseconds.
    if (!plan_ || plan_->serial != policy_->serial || !advance(*plan_, *policy_, now, opts)) {
      plan_ = compile(*policy_, now, opts);
    }
    const RulesetPlan& plan = *plan_;
    if (now >= next_reconcile_) {
      next_reconcile_ = now + kReconcileEvery;
      auto intact = writer_->holds(plan);
      if (intact.ok() && !*intact) {
        log_->error("table inet {} was removed or altered by someone else; restoring it",
                    opt_.compile.table);
        apply("restore", Mode::replace);
        return;
      }
    }
    auto r = writer_->update_windows(plan);
    if (!r.ok()) {
      log_->error("updating windows failed: {}", r.error().message);
      return;
    }
    const auto& st = writer_->last_stats();
    if (st.added || st.deleted || !st.incremental) {
      log_open(plan, "window edge");
    } else {
      // A grant or window that ended by its kernel timeout left nothing to delete, but the SOC
      // must still hear that it closed.
      report_access_changes(plan);
      warn_if_expiring(now);
    }
  }

  // Once per serial: the policy will expire soon, and then every provider link closes.
  void warn_if_expiring(Instant now) {
    if (!policy_->expires || now >= *policy_->expires || warned_serial_ == policy_->serial) return;
    if (*policy_->expires - now > opt_.expiry_warning) return;
    warned_serial_ = policy_->serial;
    emit_audit(action::kExpiryWarning, "unknown",
               "policy serial " + std::to_string(policy_->serial) + " expires " +
                   format_instant(*policy_->expires) +
                   ": after that all provider access closes until a newer policy is applied");
    log_->warn(
        "policy serial {} expires {} (in {} min): after that all provider access closes "
        "until a newer policy is applied",
        policy_->serial, format_instant(*policy_->expires),
        std::chrono::duration_cast<std::chrono::minutes>(*policy_->expires - now).count());
  }

  void log_open(const RulesetPlan& plan, const char* why) {
    const auto& st = writer_->last_stats();
    log_->info("{}: site {} serial {}: {} ({} messages, {} bytes{})", why, plan.site, plan.serial,
               st.reconciled    ? "already in the kernel, windows brought up to date"
               : st.incremental ? "windows updated"
                                : "table replaced",
               st.messages, st.bytes,
               st.incremental ? fmt::format(", +{} −{} elements", st.added, st.deleted) : "");
    for (const auto& o : plan.openings) {
      log_->info("  open: link {} {} until {}", o.link,
                 o.ticket ? "grant " + *o.ticket : std::string("window"), format_instant(o.until));
    }
    if (plan.locked_down) log_->warn("LOCKDOWN: all provider access is closed");
    warn_if_expiring(plan.compiled_at);
    if (plan.expired)
      log_->warn("policy serial {} has expired: all provider access is closed", plan.serial);
    report_access_changes(plan);
    // The controller hears of every change at once (lockdown, expiry), not at the next beat.
    say(false);
  }

  // --- Events for the SOC ------------------------------------------------------------------
  void start_events() {
    EventPipelineOptions o;
    o.events = opt_.events;
    o.state_dir = opt_.state_dir;
    o.log_group = opt_.compile.log_group;
    o.log_rate_per_source = opt_.compile.log_rate_per_source;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) o.observer.hostname = host;
    o.observer.version = DRAWBRIDGE_VERSION;
    o.observer.organization = opt_.events.organization;
    o.upstream = opt_.controller.has_value() && opt_.events.upstream;
    std::vector<std::string> notes;
    auto started = EventPipeline::start(o, now_ms(), &notes);
    for (const auto& n : notes) log_->warn("events: {}", n);
    if (!started.ok()) {
      // Protection comes first: the kernel still drops what the policy denies. But the SOC
      // will not hear of it, which must not go unnoticed.
      log_->critical("events for the SOC are OFF: {}", started.error().message);
      return;
    }
    events_ = std::move(*started);
    // Before anything changes the table: what its counters say was logged while nobody read.
    count_logged();
  }

  // Hands the logging rules' counters to the event pipeline (log_accounting.h).
  void count_logged() {
    if (!events_ || !events_->capturing()) return;
    const Instant now = now_ms();
    auto rules = writer_->socket().read_rules(opt_.compile.table);
    if (!rules.ok()) {
      if (worth_logging(++count_failures_)) {
        log_->warn("cannot read the logging rules' counters: {}", rules.error().message);
      }
      return;
    }
    LogCounterReading reading{now, {}};
    for (const auto& r : *rules) {
      if (!r.has_counter) continue;
      if (r.log_prefix) {
        reading.rules.push_back({r.handle, r.packets, false, *r.log_prefix});
      } else if (r.comment.starts_with(kRateLimitedComment)) {
        reading.rules.push_back(
            {r.handle, r.packets, true, r.comment.substr(kRateLimitedComment.size())});
      }
    }
    events_->account(reading, policy_ ? &*policy_ : nullptr, now);
  }

  void emit(SocEvent e) {
    if (events_) events_->emit(std::move(e), policy_ ? &*policy_ : nullptr, now_ms());
  }
  void emit_audit(const char* action, const char* outcome, std::string message) {
    emit(audit_event(action, outcome, std::move(message)));
  }

  // Window opened/closed (link and ticket), and the policy's expiry, as the kernel now holds them.
  void report_access_changes(const RulesetPlan& plan) {
    std::set<std::pair<std::string, std::string>> now_open;
    for (const auto& o : plan.openings) now_open.emplace(o.link, o.ticket.value_or(""));
    for (const auto& o : plan.openings) {
      if (open_links_.contains({o.link, o.ticket.value_or("")})) continue;
      auto e = audit_event(action::kWindowOpened, "success",
                           "link " + o.link + " opened by " +
                               (o.ticket ? "grant " + *o.ticket : std::string("its window")) +
                               (o.until == Instant::max() ? std::string(", no end")
                                                          : " until " + format_instant(o.until)));
      e.link = o.link;
      e.provider = o.provider;
      if (o.ticket) e.ticket = *o.ticket;
      if (o.until != Instant::max()) e.last_seen = o.until;
      emit(std::move(e));
    }
    for (const auto& [link, ticket] : open_links_) {
      if (now_open.contains({link, ticket})) continue;
      auto e = audit_event(action::kWindowClosed, "success",
                           "link " + link + " closed" +
                               (ticket.empty() ? std::string() : " (grant " + ticket + ")"));
      e.link = link;
      e.ticket = ticket;
      emit(std::move(e));
    }
    open_links_ = std::move(now_open);
    if (plan.expired && expired_reported_ != plan.serial) {
      expired_reported_ = plan.serial;
      emit_audit(action::kPolicyExpired, "failure",
                 "policy serial " + std::to_string(plan.serial) +
                     " has expired: all provider access is closed until a newer policy is "
                     "applied");
    }
  }

  // --- Control channel ---------------------------------------------------------------------
  bool connect_controller() {
    const auto& c = *opt_.controller;
    auto link = ControllerLink::open(c);
    if (!link.ok()) {
      log_->critical("{}", link.error().message);
      return false;
    }
    link_.emplace(std::move(*link));
    link_started_at_ = now_ms();
    if (c.insecure) {
      log_->warn(
          "INSECURE: `insecure = true` — the control channel to {} is plain TCP without CURVE: "
          "anyone on the path can read it and pose as the controller. Bundles are still checked "
          "by signature; use this only in a lab.",
          c.endpoint);
    }
    log_->info("dialling the controller at {}{}", c.endpoint,
               c.insecure ? "" : " (CURVE, pinned server key)");
    save_link_state_now();
    say(true);
    return true;
  }

  EnforcerState state() const {
    EnforcerState s;
    s.site = !site_.empty() ? site_ : policy_ ? policy_->site : "";
    if (policy_) s.serial = policy_->serial;
    s.bundle_hash = bundle_hash_;
    s.ruleset_hash = ruleset_hash_;
    s.version = DRAWBRIDGE_VERSION;
    const Instant now = now_ms();
    s.locked_down = lockdown_until(opt_.state_dir, now).has_value();
    s.expired = policy_ && policy_->expires && now >= *policy_->expires;
    return s;
  }

  // Hello on start, heartbeats after; both carry everything the controller needs to catch up.
  void say(bool hello) {
    if (!link_) return;
    const auto frames = hello ? encode(HelloMessage{state()}) : encode(HeartbeatMessage{state()});
    link_->send(frames);
    next_heartbeat_ = now_ms() + opt_.controller->heartbeat;
  }

  void heartbeat_if_due() {
    const Instant now = now_ms();
    if (now >= next_heartbeat_) say(false);
    // Silence is worth one line each way (also when it was never heard since this start, e.g.
    // a reboot while the controller is down); protection does not depend on the controller.
    const auto silent_for = now - std::max(last_heard_, link_started_at_);
    if (!silence_reported_ && silent_for > 3 * opt_.controller->heartbeat) {
      silence_reported_ = true;
      controller_heard_ = false;
      log_->warn("the controller at {} has not answered for {} s; enforcing {} until it is back",
                 opt_.controller->endpoint,
                 std::chrono::duration_cast<std::chrono::seconds>(silent_for).count(),
                 policy_ ? "serial " + std::to_string(policy_->serial)
                         : std::string("nothing (no policy yet)"));
    }
  }

  void on_link_events() {
    for (const auto e : link_->events()) {
      switch (e) {
        case ControllerLink::Event::connected:
          link_up_ = true;
          if (auto* up = events_ ? events_->upstream() : nullptr) up->connection_changed(true);
          say(true);  // at once: a restarted controller learns what we hold without waiting
          save_link_state_now();
          break;
        case ControllerLink::Event::disconnected:
          if (link_up_) {
            log_->info("disconnected from the controller; reconnecting in the background");
            link_up_ = false;
            if (auto* up = events_ ? events_->upstream() : nullptr) up->connection_changed(false);
            save_link_state_now();
          }
          break;
        case ControllerLink::Event::refused_auth:
          if (worth_logging(++link_state_.refused_by_controller, 3)) {
            log_->error(
                "the controller refused this enforcer's CURVE key ({} time(s)): is its public "
                "key in the controller's config?",
                link_state_.refused_by_controller);
            save_link_state_now();
          }
          break;
        case ControllerLink::Event::handshake_failed:
          if (worth_logging(++link_state_.handshake_failures, 3)) {
            log_->error(
                "CURVE handshake with {} failed ({} time(s)): is `server_key` the controller's "
                "public key?",
                opt_.controller->endpoint, link_state_.handshake_failures);
            save_link_state_now();
          }
          break;
      }
    }
  }

  long heartbeat_timeout_ms() const {
    if (!link_) return -1;
    const auto left = next_heartbeat_ - now_ms();
    return std::max<long>(0, static_cast<long>(left.count()) + 1);
  }

  void serve_controller() {
    for (int i = 0; i < 64; ++i) {
      auto msg = link_->receive();
      if (!msg) return;
      if (!msg->ok()) {
        ++link_state_.bad_messages;
        if (worth_logging(link_state_.bad_messages, 3)) {
          log_->warn("from the controller: {} (dropped; {} bad message(s) so far)",
                     msg->error().message, link_state_.bad_messages);
          save_link_state_now();
        }
        continue;
      }
      last_heard_ = now_ms();
      link_state_.last_heard = last_heard_;
      silence_reported_ = false;
      if (!controller_heard_) {
        controller_heard_ = true;
        log_->info("the controller at {} answers", opt_.controller->endpoint);
        save_link_state_now();
      }
      if (auto* b = std::get_if<BundleMessage>(&**msg)) on_bundle(b->bytes);
      if (auto* a = std::get_if<EventsAckMessage>(&**msg)) {
        if (auto* up = events_ ? events_->upstream() : nullptr) up->acknowledged(a->ack.through);
      }
    }
  }

  // The delivery thread has an event for the controller: only this thread may use the socket.
  void send_events_upstream() {
    auto* up = events_ ? events_->upstream() : nullptr;
    if (up == nullptr) return;
    // The site as the hello says it (state() would also read the lockdown record each time).
    auto m = up->take_outgoing(!site_.empty() ? site_ : policy_ ? policy_->site : "");
    if (!m) return;
    if (!link_->send(encode(*m))) up->send_failed("the controller is not connected");
  }

  // A bundle from the controller is checked exactly like one copied by hand: by its signatures,
  // site, serial, expiry and the customer's ceiling. Every bundle is acknowledged.
  void on_bundle(const std::string& bytes) {
    ++link_state_.bundles_received;
    BundleAck ack;
    ack.bundle_hash = bundle_hash(bytes);
    if (policy_ && ack.bundle_hash == bundle_hash_) {
      ack.result = AckResult::applied;
      ack.serial = policy_->serial;
      ack.ruleset_hash = ruleset_hash_;
      link_->send(encode(AckMessage{ack}));
      ++link_state_.bundles_applied;
      save_link_state_now();
      return;
    }
    auto loaded = enforced_policy_from_bundle(bytes, "from the controller", opt_.trust_path,
                                              opt_.state_dir, now_ms());
    if (!loaded.ok()) {
      log_->error("{}", loaded.error().message);
      ack.reason = loaded.error().message;
      emit_audit(action::kPolicyRejected, "failure", loaded.error().message);
      link_->send(encode(AckMessage{ack}));
      ++link_state_.bundles_rejected;
      link_state_.last_rejection = ack.reason;
      save_link_state_now();
      return;
    }
    for (const auto& note : loaded->notes) log_->info("{}", note);
    std::optional<Policy> previous = std::move(policy_);
    const std::string previous_source = policy_source_, previous_hash = bundle_hash_;
    policy_ = std::move(loaded->policy);
    bundle_to_record_ = std::move(loaded->bundle_to_record);
    policy_source_ = stored_path();
    if (apply("bundle from the controller", Mode::reconcile)) {
      bundle_hash_ = loaded->bundle_hash;
      ack.result = AckResult::applied;
      ack.serial = policy_->serial;
      ack.ruleset_hash = ruleset_hash_;
    } else {
      // The kernel kept the previous state; so does the daemon.
      ack.serial = policy_->serial;
      ack.reason = "the kernel refused it: " + last_apply_error_;
      policy_ = std::move(previous);
      policy_source_ = previous_source;
      bundle_hash_ = previous_hash;
      bundle_to_record_.reset();
    }
    link_->send(encode(AckMessage{ack}));
    if (ack.result == AckResult::applied) {
      ++link_state_.bundles_applied;
    } else {
      ++link_state_.bundles_rejected;
      link_state_.last_rejection = ack.reason;
    }
    save_link_state_now();
    say(false);
  }

  void save_link_state_now() {
    link_state_.endpoint = opt_.controller->endpoint;
    link_state_.connected = link_up_;
    link_state_.updated_at = now_ms();
    if (auto ok = save_link_state(opt_.state_dir, link_state_); !ok.ok()) {
      log_->warn("cannot record the control channel's state: {}", ok.error().message);
    }
  }

  // The compile options now: the lockdown record is read at every compile, so a `lockdown` run
  // from the command line holds against the daemon's own window edges.
  CompileOptions options(Instant now) const {
    CompileOptions o = opt_.compile;
    o.lockdown_until = lockdown_until(opt_.state_dir, now);
    return o;
  }

  void arm(int timer) {
    const Instant now = now_ms();
    if (events_ && events_->capturing() && now >= events_->counters_due()) count_logged();
    if (events_) events_->tick(policy_ ? &*policy_ : nullptr, now);
    policy_wake_ = policy_ ? policy_wake(now) : Instant::max();
    Instant wake = policy_wake_;
    if (events_) {
      if (auto due = events_->next_due()) wake = std::min(wake, *due);
      if (events_->capturing()) wake = std::min(wake, events_->counters_due());
    }
    if (wake != Instant::max()) set_timer(timer, wake);
  }

  // When the policy side next has something to do: a window edge, the table check, the end of
  // a lockdown or the expiry warning.
  Instant policy_wake(Instant now) const {
    Instant wake = next_reconcile_;
    if (auto edge = next_edge(*policy_, now)) wake = std::min(wake, *edge);
    if (auto until = lockdown_until(opt_.state_dir, now); until && *until != Instant::max()) {
      wake = std::min(wake, *until);
    }
    if (policy_->expires && warned_serial_ != policy_->serial) {
      const Instant warn_at = *policy_->expires - opt_.expiry_warning;
      if (warn_at > now) wake = std::min(wake, warn_at);
    }
    return wake;
  }

  void set_timer(int timer, Instant wake) {
    const auto since_epoch = wake.time_since_epoch();
    itimerspec its{};
    its.it_value.tv_sec = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    its.it_value.tv_nsec = (since_epoch.count() % 1000) * 1'000'000;
    if (timerfd_settime(timer, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, nullptr) != 0) {
      log_->error("cannot arm the window timer: {}", std::strerror(errno));
    }
  }

  DaemonOptions opt_;
  std::shared_ptr<spdlog::logger> log_;
  std::optional<NftablesWriter> writer_;
  std::optional<Policy> policy_;
  std::optional<std::string> bundle_to_record_;
  std::optional<std::uint64_t> warned_serial_;  // the serial whose expiry was warned about
  Instant next_reconcile_{};
  Instant policy_wake_{};      // see policy_wake(); Instant{} = due at the first wake
  std::string policy_source_;  // the file the applied policy came from (status, lockdown)
  std::string site_;           // from the trust file: what the hello says before any policy
  std::string bundle_hash_;    // of the applied bundle; empty for a plain policy file
  std::string ruleset_hash_;   // plan fingerprint last put in the kernel
  std::string last_apply_error_;
  std::optional<ControllerLink> link_;
  std::unique_ptr<EventPipeline> events_;
  // What the kernel holds (the last plan applied or brought up to date at an edge); it
  // attributes provider sessions. One copy: at 100,000 prefixes a plan is tens of MB.
  std::optional<RulesetPlan> plan_;
  std::set<std::pair<std::string, std::string>> open_links_;  // (link, ticket) open now
  std::optional<std::uint64_t> expired_reported_;
  Instant next_heartbeat_{};
  Instant last_heard_{};
  bool controller_heard_ = false;
  bool silence_reported_ = false;
  std::uint64_t count_failures_ = 0;  // reading the logging rules' counters
  Instant link_started_at_{};
  bool link_up_ = false;  // handshake done and not disconnected since
  LinkState link_state_;  // counters for `status`, saved when they change
};

}  // namespace

std::vector<std::string> settings_needing_restart(const DaemonOptions& running,
                                                  const DaemonOptions& reread) {
  std::vector<std::string> keys;
  const auto& a = running.compile;
  const auto& b = reread.compile;
  if (a.table != b.table) keys.emplace_back("table");
  if (a.log_group != b.log_group) keys.emplace_back("log_group");
  // The SOC side quotes the rate in its rate-limited events: kernel and events change together.
  if (a.log_rate_per_source != b.log_rate_per_source) keys.emplace_back("log_rate_per_source");
  if (a.priority != b.priority) keys.emplace_back("priority");
  if (running.state_dir != reread.state_dir) keys.emplace_back("state_dir");
  if (!(running.events == reread.events)) keys.emplace_back("[events]");
  if (running.controller != reread.controller) keys.emplace_back("[controller]");
  return keys;
}

int run_daemon(const DaemonOptions& options) {
  try {
    return Daemon(options).run();
  } catch (const std::exception& e) {
    spdlog::critical("enforcer stopped: {}", e.what());
    return 1;
  }
}

}  // namespace drawbridge
