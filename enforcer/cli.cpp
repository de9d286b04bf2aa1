#include "enforcer/cli.h"

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/command_line.h"
#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "enforcer/bundle_acceptance.h"
#include "enforcer/daemon.h"
#include "enforcer/enforcer_config.h"
#include "enforcer/explain.h"
#include "enforcer/kernel_state.h"
#include "enforcer/nft_render.h"
#include "enforcer/soc/audit_log.h"
#include "enforcer/state_store.h"
#include "enforcer/status_report.h"

namespace drawbridge {

namespace {

constexpr int kOk = kExitOk, kFailed = kExitFailed, kUsage = kExitUsage;

// Settings that come from defaults, then the config file, then command-line flags.
struct Settings {
  std::string config_path;
  std::string policy;
  std::string table;
  int log_group = -1;
  int priority = 1000;  // 1000 = not given
  std::string state_dir;

  void add_kernel_flags(CLI::App* app, bool with_compile) {
    app->add_option("--config", config_path,
                    "Enforcer config file (TOML; see docs/configuration.md)")
        ->check(CLI::ExistingFile);
    app->add_option("--table", table, "nftables table (family inet) to own [drawbridge]");
    app->add_option("--state-dir", state_dir,
                    "Where the applied state is recorded [/var/lib/drawbridge]");
    if (with_compile) {
      app->add_option("--log-group", log_group, "NFLOG group for denied packets [100]")
          ->check(CLI::Range(0, 65535));
      app->add_option("--priority", priority, "Priority of the base chains [-10]")
          ->check(CLI::Range(-300, 300));
    }
  }

  Result<EnforcerConfig> resolve() const {
    EnforcerConfig cfg;
    if (!config_path.empty()) {
      auto loaded = load_config(config_path);
      if (!loaded.ok()) return loaded.error();
      cfg = *loaded;
    }
    if (!policy.empty()) cfg.policy = policy;
    if (!table.empty()) cfg.table = table;
    if (log_group >= 0) cfg.log_group = static_cast<std::uint16_t>(log_group);
    if (priority != 1000) cfg.priority = priority;
    if (!state_dir.empty()) cfg.state_dir = state_dir;
    if (auto ok = check_table_name(cfg.table); !ok.ok()) return ok.error();
    return cfg;
  }
};

CompileOptions compile_options(const EnforcerConfig& c,
                               std::optional<Instant> lockdown = std::nullopt) {
  return CompileOptions{c.table, c.log_group, c.priority, lockdown, c.log_rate_per_source};
}

std::optional<Policy> load_policy_or_report(const std::string& path) {
  auto parsed = parse_policy_file(path);
  if (!parsed.ok()) {
    std::cerr << parsed.diagnostics.rejection(path) << "\n";
    return std::nullopt;
  }
  return std::move(parsed.policy);
}

Result<Instant> resolve_time(const std::string& at) {
  if (at.empty() || at == "now") return now_ms();
  if (auto t = parse_instant(at)) return *t;
  return make_error("--at '" + at + "' is not a time: use RFC 3339, e.g. 2026-11-26T14:00:00Z");
}

std::string direction_name(Direction d) {
  return d == Direction::inbound ? "inbound" : "outbound";
}

int cmd_check(const std::string& path, const std::string& at_text) {
  auto policy = load_policy_or_report(path);
  if (!policy) return kFailed;
  auto at = resolve_time(at_text);
  if (!at.ok()) {
    std::cerr << at.error().message << "\n";
    return kUsage;
  }
  const auto& p = *policy;
  std::cout << path << ": valid. site " << p.site << ", serial " << p.serial << ", time zone "
            << p.timezone << ", "
            << (p.expires ? "expires " + format_instant(*p.expires) : std::string("no expiry"))
            << "\n";
  if (p.expires && *at >= *p.expires) std::cout << "WARNING: this policy has already expired\n";
  std::cout << "providers:\n";
  for (const auto& pr : p.providers) {
    std::cout << "  " << pr.name << ": " << pr.addresses.size() << " address range(s)";
    for (std::size_t i = 0; i < pr.addresses.size() && i < 3; ++i)
      std::cout << (i ? ", " : " ") << pr.addresses[i].str();
    if (pr.addresses.size() > 3) std::cout << ", …";
    std::cout << "\n";
  }
  std::cout << "links (at " << format_instant(*at) << "):\n";
  const auto plan = compile(p, *at, CompileOptions{});
  for (const auto& l : p.links) {
    std::string ports;
    for (const auto& port : l.ports) ports += (ports.empty() ? "" : ",") + port.str();
    std::cout << "  " << l.name << ": " << direction_name(l.direction) << ", provider "
              << l.provider << ", " << l.hosts.size() << " host range(s), " << ports << "\n";
    bool open = false;
    for (const auto& o : plan.openings) {
      if (o.link != l.name) continue;
      open = true;
      std::cout << "    OPEN now by " << (o.ticket ? "grant " + *o.ticket : std::string("window"))
                << (o.until == Instant::max() ? ", no end" : " until " + format_instant(o.until))
                << "\n";
    }
    if (auto next = next_opening(p, l, *at)) {
      std::cout << "    next opening " << format_instant(next->from) << " until "
                << format_instant(next->until) << "\n";
    } else if (!open) {
      std::cout << "    no opening ahead\n";
    }
  }
  std::cout << "guarded ports:";
  for (const auto& g : p.guard.ports) std::cout << " " << g.str();
  std::cout << (p.guard.ports.empty() ? " none" : "") << "\n";
  return kOk;
}

int cmd_render(const EnforcerConfig& cfg, const std::string& at_text) {
  auto policy = load_policy_or_report(cfg.policy);
  if (!policy) return kFailed;
  auto at = resolve_time(at_text);
  if (!at.ok()) {
    std::cerr << at.error().message << "\n";
    return kUsage;
  }
  std::cout << render_nft(compile(*policy, *at, compile_options(cfg)));
  return kOk;
}

int cmd_explain(const std::string& path, const std::string& from, const std::string& to,
                const std::string& port_text, const std::string& at_text) {
  auto policy = load_policy_or_report(path);
  if (!policy) return kFailed;
  const auto f = Address::parse(from), t = Address::parse(to);
  auto port = PortRange::parse(port_text);
  auto at = resolve_time(at_text);
  if (!f || !t || !port.ok() || port->first != port->last || f->family != t->family || !at.ok()) {
    std::cerr << "explain needs --from and --to as addresses of one family, --port as a single "
                 "port like tcp/3389, and --at as RFC 3339 time\n";
    return kUsage;
  }
  const auto plan = compile(*policy, *at, CompileOptions{});
  const auto ex = explain(*policy, plan, Connection{*f, *t, port->protocol, port->first});
  std::cout << ex.text;
  return ex.allowed ? kOk : kFailed;
}

int cmd_apply(const EnforcerConfig& cfg, bool dry_run) {
  auto loaded = load_enforced_policy(cfg.policy, cfg.trust, cfg.state_dir, now_ms(), false);
  if (!loaded.ok()) {
    std::cerr << loaded.error().message << "\n";
    return kFailed;
  }
  for (const auto& note : loaded->notes) std::cout << note << "\n";
  const Policy* policy = &loaded->policy;
  auto sock = NetlinkSocket::open();
  if (!sock.ok()) {
    std::cerr << sock.error().message << "\n";
    return kFailed;
  }
  NftablesWriter writer(std::move(*sock));
  const Instant now = now_ms();
  const auto plan = compile(*policy, now, compile_options(cfg, lockdown_until(cfg.state_dir, now)));
  if (plan.locked_down) {
    std::cout << "LOCKDOWN is on: all provider access stays closed until `lockdown --release`\n";
  }
  if (dry_run) {
    auto ok = writer.validate(plan);
    if (!ok.ok()) {
      std::cerr << "the kernel would refuse it: " << ok.error().message << "\n";
      return kFailed;
    }
    std::cout << "dry run: the kernel accepts serial " << plan.serial << " for table inet "
              << plan.table << "; nothing was changed\n";
    return kOk;
  }
  auto ok = writer.reconcile(plan);
  if (!ok.ok()) {
    std::cerr << "apply failed, the previous ruleset is intact: " << ok.error().message << "\n";
    return kFailed;
  }
  if (loaded->bundle_to_record) {
    if (auto recorded = AcceptedStore(cfg.state_dir).record(*loaded->bundle_to_record, *policy);
        !recorded.ok()) {
      std::cerr << "applied, but the accepted serial could not be recorded: "
                << recorded.error().message << "\n";
      return kFailed;
    }
  }
  auto saved =
      save_applied(cfg.state_dir, AppliedState{cfg.table, plan.site, plan.serial,
                                               std::filesystem::absolute(cfg.policy).string(),
                                               plan.compiled_at, policy->expires});
  if (auto kept = save_closed_skeleton(cfg.state_dir, cfg.table, skeleton_of(plan)); !kept.ok()) {
    std::cerr << "warning: cannot keep what the daemon's cold start closes first: "
              << kept.error().message << "\n";
  }
  const auto& st = writer.last_stats();
  if (st.reconciled) {
    std::cout << "site " << plan.site << " serial " << plan.serial << " was already in table inet "
              << plan.table << "; brought its windows up to date (" << st.added << " added, "
              << st.deleted << " removed)\n";
  } else {
    std::cout << "applied site " << plan.site << " serial " << plan.serial << " to table inet "
              << plan.table << " (" << st.messages << " netlink messages, " << st.bytes
              << " bytes, one transaction)\n";
  }
  for (const auto& o : plan.openings) {
    std::cout << "  open: " << o.link << " by "
              << (o.ticket ? "grant " + *o.ticket : std::string("window"))
              << (o.until == Instant::max() ? ", no end" : " until " + format_instant(o.until))
              << "\n";
  }
  if (plan.expired) std::cout << "WARNING: the policy has expired; all provider access is closed\n";
  std::cout << "windows open and close on schedule only while `drawbridge-enforcer run` runs; "
               "open windows close on time regardless\n";
  if (!saved.ok()) {
    std::cerr << "warning: could not record the applied state: " << saved.error().message << "\n";
  }
  return kOk;
}

// The customer's break-glass: record it, then re-apply the policy in force with it.
int cmd_lockdown(EnforcerConfig cfg, const std::string& until_text, bool release) {
  const Instant now = now_ms();
  if (release) {
    if (auto r = release_lockdown(cfg.state_dir); !r.ok()) {
      std::cerr << r.error().message << "\n";
      return kFailed;
    }
  } else {
    Lockdown lockdown{now, std::nullopt};
    if (!until_text.empty()) {
      auto until = parse_instant(until_text);
      if (!until || *until <= now) {
        std::cerr << "--until '" << until_text << "' must be a future RFC 3339 time\n";
        return kUsage;
      }
      lockdown.until = *until;
    }
    if (auto r = save_lockdown(cfg.state_dir, lockdown); !r.ok()) {
      std::cerr << "lockdown not recorded: " << r.error().message << "\n";
      return kFailed;
    }
  }
  if (cfg.policy.empty()) {
    auto applied = load_applied(cfg.state_dir, cfg.table);
    if (applied.ok() && applied->has_value()) cfg.policy = (*applied)->policy_path;
  }
  if (cfg.policy.empty()) {
    std::cout << (release ? "lockdown released" : "lockdown recorded")
              << "; no policy is applied yet, so there was nothing to change in the kernel\n";
    return kOk;
  }
  const int rc = cmd_apply(cfg, false);
  if (rc == kOk) {
    std::cout << (release ? "lockdown released: the policy's windows and grants apply again\n"
                          : "LOCKDOWN: all provider access is closed" +
                                (until_text.empty() ? std::string(" until `lockdown --release`")
                                                    : " until " + until_text) +
                                "; whatever policy arrives stays closed until then\n");
  }
  return rc;
}

int cmd_status(const EnforcerConfig& cfg, bool json) {
  auto sock = NetlinkSocket::open();
  if (!sock.ok()) {
    std::cerr << sock.error().message << "\n";
    return kFailed;
  }
  auto report = read_status(*sock, cfg.table, cfg.state_dir);
  if (!report.ok()) {
    std::cerr << report.error().message << "\n";
    return kFailed;
  }
  std::cout << (json ? status_json(*report) + "\n" : format_status(*report));
  return report->problems.empty() ? kOk : kFailed;
}

int cmd_flush(const EnforcerConfig& cfg) {
  auto sock = NetlinkSocket::open();
  if (!sock.ok()) {
    std::cerr << sock.error().message << "\n";
    return kFailed;
  }
  NftablesWriter writer(std::move(*sock));
  auto removed = writer.remove_table(cfg.table);
  if (!removed.ok()) {
    std::cerr << removed.error().message << "\n";
    return kFailed;
  }
  std::cout << (*removed ? "removed table inet " + cfg.table +
                               "; provider access is no longer restricted by drawbridge\n"
                         : "table inet " + cfg.table + " was not there; nothing to do\n");
  return kOk;
}

// Checks the audit file's hash chain; with `rotated`, each FILE is a live file and its rotated
// predecessors are checked before it.
int cmd_verify_log(const std::vector<std::string>& given, bool rotated) {
  std::vector<std::string> files;
  for (const auto& f : given) {
    if (!rotated) {
      files.push_back(f);
      continue;
    }
    auto set = audit_log_files(f);
    if (!set.ok()) {
      std::cerr << set.error().str() << "\n";
      return kFailed;
    }
    files.insert(files.end(), set->begin(), set->end());
  }
  auto result = verify_audit_log(files);
  if (!result.ok()) {
    std::cerr << result.error().str() << "\n";
    return kFailed;
  }
  std::cout << format_verify_result(*result, files.size());
  return result->intact ? kOk : kFailed;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{
      "drawbridge-enforcer: lets a managed service provider in only from approved addresses, to "
      "approved hosts and ports, inside approved windows (nftables, kernel-enforced)"};
  app.set_version_flag("--version", std::string("drawbridge-enforcer ") + DRAWBRIDGE_VERSION);
  app.require_subcommand(1);

  std::string policy_path, at, from, to, port;
  bool dry_run = false, json = false;
  Settings settings;

  auto* check = app.add_subcommand(
      "check", "Validate a policy and summarise it (providers, links, next openings)");
  check->add_option("POLICY", policy_path, "Policy file (TOML)")->required();
  check->add_option("--at", at, "Evaluate at this time (RFC 3339) instead of now");

  auto* render = app.add_subcommand("render",
                                    "Print the nftables ruleset the policy gives at a time, in nft "
                                    "syntax (loadable with nft -f)");
  render->add_option("POLICY", settings.policy, "Policy file (TOML)")->required();
  render->add_option("--at", at, "Render for this time (RFC 3339) instead of now");
  settings.add_kernel_flags(render, true);

  auto* expl = app.add_subcommand("explain", "Say whether a connection would pass, and why");
  expl->add_option("POLICY", policy_path, "Policy file (TOML)")->required();
  expl->add_option("--from", from, "Source address")->required();
  expl->add_option("--to", to, "Destination address")->required();
  expl->add_option("--port", port, "Destination port, e.g. tcp/3389")->required();
  expl->add_option("--at", at, "At this time (RFC 3339) instead of now");

  auto* apply = app.add_subcommand("apply", "Install the policy now, in one atomic transaction");
  apply->add_option("POLICY", settings.policy,
                    "Policy file (TOML) or signed bundle; defaults to the config's policy");
  apply->add_flag("--dry-run", dry_run,
                  "Have the kernel check the transaction without committing it");
  settings.add_kernel_flags(apply, true);

  auto* run = app.add_subcommand(
      "run", "Run the daemon: apply, open and close windows on schedule, reload on SIGHUP");
  run->add_option("--policy", settings.policy, "Policy file (TOML), instead of the config's");
  settings.add_kernel_flags(run, true);

  auto* status = app.add_subcommand(
      "status", "Show the applied policy, open links with remaining time, per-link counters");
  status->add_flag("--json", json, "Machine-readable output");
  settings.add_kernel_flags(status, false);

  bool release = false;
  auto* lockdown = app.add_subcommand(
      "lockdown", "Close all provider access now, whatever any policy says, until released");
  auto* until_opt =
      lockdown->add_option("--until", at, "End the lockdown by itself at this time (RFC 3339)");
  lockdown->add_flag("--release", release, "End the lockdown; the policy applies again")
      ->excludes(until_opt);
  settings.add_kernel_flags(lockdown, true);

  auto* flush = app.add_subcommand("flush", "Remove drawbridge's table (and nothing else)");
  settings.add_kernel_flags(flush, false);

  std::vector<std::string> log_files;
  bool with_rotated = false;
  auto* verify_log = app.add_subcommand(
      "verify-log", "Check the hash chain of the local audit file; name the first broken record");
  verify_log->add_option("FILE", log_files, "Audit files, oldest first, checked as one chain")
      ->required();
  verify_log->add_flag("--rotated", with_rotated,
                       "FILE is the live audit file: check its rotated files (FILE.<time>) first");

  if (auto exit_code = parse_command_line(app, argc, argv)) return *exit_code;

  if (*check) return cmd_check(policy_path, at);
  if (*expl) return cmd_explain(policy_path, from, to, port, at);
  if (*verify_log) return cmd_verify_log(log_files, with_rotated);

  auto cfg = settings.resolve();
  if (!cfg.ok()) {
    std::cerr << cfg.error().str() << "\n";
    return kUsage;
  }
  if (*render) return cmd_render(*cfg, at);
  if (*status) return cmd_status(*cfg, json);
  if (*flush) return cmd_flush(*cfg);
  if (*lockdown) return cmd_lockdown(*cfg, at, release);
  // With a controller, the daemon needs no local policy: it starts from the bundle accepted
  // last and takes newer ones from the controller.
  if (cfg->policy.empty() && !(*run && cfg->controller)) {
    std::cerr << "no policy: give one (" << (*run ? "--policy FILE" : "POLICY")
              << ") or a --config with a `policy` key" << (*run ? " or a [controller] table" : "")
              << "\n";
    return kUsage;
  }
  if (*apply) return cmd_apply(*cfg, dry_run);
  if (*run) {
    const auto daemon_options = [](const EnforcerConfig& c) {
      return DaemonOptions{c.policy,         compile_options(c), c.state_dir, c.trust,
                           c.expiry_warning, c.controller,       c.events,    {}};
    };
    DaemonOptions options = daemon_options(*cfg);
    // SIGHUP layers the same way again: the config file as it is now, then the same flags.
    options.reread = [settings, daemon_options]() -> Result<DaemonOptions> {
      auto fresh = settings.resolve();
      if (!fresh.ok()) return fresh.error();
      return daemon_options(*fresh);
    };
    return run_daemon(options);
  }
  return kUsage;
}

}  // namespace drawbridge
