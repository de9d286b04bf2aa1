// drawbridge-window-bench: the kernel-facing costs that whole-process timings cannot separate,
// measured on a real nftables table in a network namespace private to this process (unshare), so
// nothing outside it is ever touched and nothing is left behind when it exits.
//
// For one policy (bench/gen_policy.py N):
//   commit  the kernel's own time for the full install: the replacement batch that
//           `apply` sends into an empty table, timed from the batch's sendmsg to the last ack
//           (NetlinkSocket::send), then the table deleted again; --commits times.
//   open    one link's window opening while the table holds the whole policy: the daemon's path
//           at a window edge, advance() of the plan in force to the edge's instant (only the
//           open-window sets are recomputed) then NftablesWriter::update_windows (an
//           incremental add of that link's open elements); timed separately and together.
//   close   the same link closing (an incremental delete).
// The link toggled is gen_policy.py's link-20 (5 hosts × 5 ports), opened by a grant from
// 2098-01-01 to 2098-01-02: the plans are compiled at instants just before and inside the grant.
// Prints one JSON object with the raw samples (milliseconds); bench/report.py summarises it.
#include <sched.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/policy_parser.h"
#include "enforcer/kernel_state.h"
#include "enforcer/netlink_batch.h"
#include "enforcer/ruleset_plan.h"

namespace {

using drawbridge::Instant;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

Instant at(int year, unsigned month, unsigned day, int hour) {
  using namespace std::chrono;
  return time_point_cast<milliseconds>(sys_days{std::chrono::year{year} / month / day} +
                                       hours{hour});
}

// The batch `apply` sends into an empty table (NftablesWriter::replacement with nothing to
// remove first).
drawbridge::NftBatch full_install(const drawbridge::RulesetPlan& plan) {
  drawbridge::NftBatch batch;
  batch.add_table(plan.table);
  for (const auto& c : plan.chains) batch.add_chain(plan.table, c);
  for (const auto& s : plan.sets) batch.add_set(plan.table, s);
  for (const auto& c : plan.chains) {
    for (const auto& r : c.rules) batch.add_rule(plan.table, c.name, r, plan.log_group);
  }
  return batch;
}

int fail(const std::string& what) {
  std::cerr << "drawbridge-window-bench: " << what << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Kernel commit time of a full install, and one link's window open/close latency, "
      "on a real table in a private network namespace (root)"};
  std::string policy_path;
  int commits = 5;
  int toggles = 200;
  app.add_option("--policy", policy_path, "Policy file (bench/gen_policy.py N)")->required();
  app.add_option("--commits", commits, "Full installs to time")->check(CLI::Range(0, 1000));
  app.add_option("--toggles", toggles, "Open/close pairs to time")->check(CLI::Range(1, 100000));
  CLI11_PARSE(app, argc, argv);

  // A namespace of our own: the table lives and dies with this process.
  if (unshare(CLONE_NEWNET) != 0) {
    return fail(std::string("unshare(CLONE_NEWNET) failed: ") + std::strerror(errno) +
                " (run as root)");
  }

  auto t0 = Clock::now();
  auto parsed = drawbridge::parse_policy_file(policy_path);
  const double parse_ms = ms_since(t0);
  if (!parsed.ok()) return fail(parsed.diagnostics.rejection(policy_path));
  const drawbridge::Policy& policy = *parsed.policy;

  const drawbridge::CompileOptions options;
  const Instant closed_at = at(2097, 12, 31, 12);  // link-20's grant not yet begun
  const Instant open_at = at(2098, 1, 1, 12);      // inside it
  t0 = Clock::now();
  const auto closed_plan = drawbridge::compile(policy, closed_at, options);
  const double compile_ms = ms_since(t0);

  auto sock = drawbridge::NetlinkSocket::open();
  if (!sock.ok()) return fail(sock.error().str());

  nlohmann::json out;
  out["policy"] = policy_path;
  out["parse_ms"] = parse_ms;
  out["compile_ms"] = compile_ms;
  std::vector<double> commit_ms;
  std::size_t commit_bytes = 0, commit_messages = 0;
  for (int i = 0; i < commits; ++i) {
    const auto batch = full_install(closed_plan);
    commit_bytes = batch.size_bytes();
    commit_messages = batch.message_count();
    t0 = Clock::now();
    auto sent = sock->send(batch, true);
    commit_ms.push_back(ms_since(t0));
    if (!sent.ok()) return fail("full install refused: " + sent.error().str());
    drawbridge::NftBatch del;
    del.delete_table(closed_plan.table);
    if (auto d = sock->send(del, true); !d.ok()) return fail("delete table: " + d.error().str());
  }
  out["commit_ms"] = commit_ms;
  out["commit_messages"] = commit_messages;
  out["commit_bytes"] = commit_bytes;

  drawbridge::NftablesWriter writer(std::move(*sock));
  if (auto r = writer.replace(closed_plan); !r.ok()) return fail("install: " + r.error().str());

  std::vector<double> open_update, open_total, close_update, close_total;
  std::size_t added = 0, deleted = 0;
  // The plan in force, brought to each edge as the daemon does (Daemon::tick).
  drawbridge::RulesetPlan plan = closed_plan;
  for (int i = 0; i < toggles; ++i) {
    // A different instant every time, as at real edges; the grant's end stays the same.
    const auto shift = std::chrono::milliseconds(i);
    t0 = Clock::now();
    if (!drawbridge::advance(plan, policy, open_at + shift, options)) {
      return fail("open: advance() wanted a full compile");
    }
    const auto t1 = Clock::now();
    if (auto r = writer.update_windows(plan); !r.ok()) return fail("open: " + r.error().str());
    open_update.push_back(ms_since(t1));
    open_total.push_back(ms_since(t0));
    const auto& so = writer.last_stats();
    if (!so.incremental || so.added == 0) return fail("open was not an incremental add");
    added = so.added;

    t0 = Clock::now();
    if (!drawbridge::advance(plan, policy, closed_at + shift, options)) {
      return fail("close: advance() wanted a full compile");
    }
    const auto t2 = Clock::now();
    if (auto r = writer.update_windows(plan); !r.ok()) {
      return fail("close: " + r.error().str());
    }
    close_update.push_back(ms_since(t2));
    close_total.push_back(ms_since(t0));
    const auto& sc = writer.last_stats();
    if (!sc.incremental || sc.deleted == 0) return fail("close was not an incremental delete");
    deleted = sc.deleted;
  }
  out["open_update_ms"] = open_update;
  out["open_total_ms"] = open_total;
  out["close_update_ms"] = close_update;
  out["close_total_ms"] = close_total;
  out["elements_added"] = added;
  out["elements_deleted"] = deleted;
  std::cout << out.dump() << "\n";
  return 0;
}
