#include "enforcer/daemon.h"

#include <poll.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "enforcer/bundle_acceptance.h"
#include "enforcer/kernel_state.h"
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
    auto sock = NetlinkSocket::open();
    if (!sock.ok()) {
      log_->critical("{}", sock.error().message);
      return 1;
    }
    writer_.emplace(std::move(*sock));
    if (!load_policy() && !load_stored_bundle()) return 1;
    if (!apply("start", Mode::reconcile)) return 1;

    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
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

    while (true) {
      arm(timer.get());
      pollfd fds[3] = {{sigfd.get(), POLLIN, 0},
                       {timer.get(), POLLIN, 0},
                       {monitor.ok() ? monitor->fd() : -1, POLLIN, 0}};
      if (poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        log_->critical("poll failed: {}", std::strerror(errno));
        return 1;
      }
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si{};
        if (read(sigfd.get(), &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGHUP) {
            log_->info("SIGHUP: reloading {}", opt_.policy_path);
            if (load_policy()) apply("reload", Mode::reconcile);
          } else {
            log_->info(
                "stopping on signal {}; table inet {} stays in place and open windows "
                "still close on their kernel timeouts",
                si.ssi_signo, opt_.compile.table);
            return 0;
          }
        }
      }
      if ((fds[2].revents & POLLIN) && monitor->drain()) {
        // Let a burst of changes settle, then check.
        next_reconcile_ = std::min(next_reconcile_, now_ms() + kSettle);
      }
      if (fds[1].revents & POLLIN) {
        std::uint64_t expirations = 0;
        const ssize_t n = read(timer.get(), &expirations, sizeof expirations);
        if (n < 0 && errno == ECANCELED) {
          // The wall clock was set: element timeouts run on kernel time and no longer match the
          // windows, so recompute every timeout from scratch.
          log_->warn("system clock changed; re-applying with fresh window timeouts");
          apply("clock change", Mode::replace);
        } else {
          tick();
        }
      }
    }
  }

 private:
  bool load_policy() {
    // At start-up an unreadable policy path falls back to the bundle accepted last, so the
    // gateway is protected from boot even before anything else delivers a policy.
    auto loaded = load_enforced_policy(opt_.policy_path, opt_.trust_path, opt_.state_dir, now_ms(),
                                       /*fall_back_to_stored=*/true);
    if (!loaded.ok()) {
      log_->error("policy {} rejected, keeping what is applied:\n{}", opt_.policy_path,
                  loaded.error().message);
      return false;
    }
    for (const auto& note : loaded->notes) log_->info("{}", note);
    policy_ = std::move(loaded->policy);
    bundle_to_record_ = std::move(loaded->bundle_to_record);
    return true;
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
    return true;
  }

  enum class Mode { reconcile, replace };

  bool apply(const char* why, Mode mode) {
    const Instant now = now_ms();
    const auto plan = compile(*policy_, now, options(now));
    next_reconcile_ = plan.compiled_at + kReconcileEvery;
    auto r = mode == Mode::replace ? writer_->replace(plan) : writer_->reconcile(plan);
    if (!r.ok()) {
      log_->error("{}: applying serial {} failed, the kernel kept its previous state: {}", why,
                  policy_->serial, r.error().message);
      return false;
    }
    log_open(plan, why);
    if (bundle_to_record_) {
      // Only once the kernel holds it does its serial become the one to beat.
      auto recorded = AcceptedStore(opt_.state_dir).record(*bundle_to_record_, *policy_);
      if (!recorded.ok()) log_->error("applied, but not recorded: {}", recorded.error().message);
      bundle_to_record_.reset();
    }
    auto saved = save_applied(opt_.state_dir,
                              AppliedState{opt_.compile.table, policy_->site, policy_->serial,
                                           std::filesystem::absolute(opt_.policy_path).string(),
                                           plan.compiled_at, policy_->expires});
    if (!saved.ok()) log_->error("applied, but could not record it: {}", saved.error().message);
    return true;
  }

  void tick() {
    const Instant now = now_ms();
    const auto plan = compile(*policy_, now, options(now));
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
      warn_if_expiring(now);
    }
  }

  // Once per serial: the policy will expire soon, and then every provider link closes.
  void warn_if_expiring(Instant now) {
    if (!policy_->expires || now >= *policy_->expires || warned_serial_ == policy_->serial) return;
    if (*policy_->expires - now > opt_.expiry_warning) return;
    warned_serial_ = policy_->serial;
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
    Instant wake = next_reconcile_;
    if (auto edge = next_edge(*policy_, now)) wake = std::min(wake, *edge);
    if (auto until = lockdown_until(opt_.state_dir, now); until && *until != Instant::max()) {
      wake = std::min(wake, *until);
    }
    if (policy_->expires && warned_serial_ != policy_->serial) {
      const Instant warn_at = *policy_->expires - opt_.expiry_warning;
      if (warn_at > now) wake = std::min(wake, warn_at);
    }
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
};

}  // namespace

int run_daemon(const DaemonOptions& options) {
  try {
    return Daemon(options).run();
  } catch (const std::exception& e) {
    spdlog::critical("enforcer stopped: {}", e.what());
    return 1;
  }
}

}  // namespace drawbridge
