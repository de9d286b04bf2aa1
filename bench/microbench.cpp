// drawbridge_microbench: in-process micro-benchmarks (Google Benchmark) of the pure stages whose
// cost the whole-process timings of bench/run.sh fold together: the policy parser, compile(),
// render_nft(), and the SOC event formatters. No I/O, no root.
//
// The policies have the shape of bench/gen_policy.py (N provider prefixes over 4 providers, 20
// links of 5 hosts on 5 ports), generated here so that the binary needs no input files.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "common/policy_parser.h"
#include "enforcer/nft_render.h"
#include "enforcer/ruleset_plan.h"
#include "enforcer/soc/event.h"
#include "enforcer/soc/event_format.h"

namespace {

using drawbridge::Instant;

// Prefix i: 4 addresses after prefix i-1 in 198.18.0.0/15, then 10.64.0.0/10, every fourth a
// /31, so none overlap or touch (the compiler would merge adjacent ones).
std::string prefix(long i) {
  const unsigned long base = i < 32768 ? (198UL << 24 | 18UL << 16) + 4UL * i
                                       : (10UL << 24 | 64UL << 16) + 4UL * (i - 32768);
  std::string s = std::to_string(base >> 24) + "." + std::to_string(base >> 16 & 255) + "." +
                  std::to_string(base >> 8 & 255) + "." + std::to_string(base & 255);
  return i % 4 == 3 ? s + "/31" : s;
}

std::string policy_text(long n) {
  const long providers = n < 4 ? n : 4;
  std::string t = "version = 1\nsite = \"bench\"\nserial = 1\ntimezone = \"UTC\"\n";
  for (long k = 0; k < providers; ++k) {
    t += "[providers.p" + std::to_string(k) + "]\naddresses = [";
    for (long i = k * n / providers; i < (k + 1) * n / providers; ++i) {
      t += "\"" + prefix(i) + "\",";
    }
    t += "]\n";
  }
  for (int link = 0; link < 20; ++link) {
    t += "[[links]]\nname = \"link-" + std::to_string(link + 1) + "\"\nprovider = \"p" +
         std::to_string(link % providers) + "\"\ndirection = \"inbound\"\nhosts = [";
    for (int j = 0; j < 5; ++j) {
      t += "\"10.20." + std::to_string(link) + "." + std::to_string(10 + 2 * j) + "\",";
    }
    t += "]\nports = [\"tcp/22\", \"tcp/3389\", \"udp/3389\", \"tcp/5900\", \"tcp/8040-8041\"]\n";
    t += link < 18 ? "windows = [\"always\"]\n" : "windows = []\n";
  }
  t += "[guard]\nports = [\"tcp/22\", \"tcp/3389\", \"tcp/5900\", \"tcp/5938\"]\n";
  return t;
}

Instant now() {
  using namespace std::chrono;
  return time_point_cast<milliseconds>(sys_days{year{2026} / 11 / 25} + hours{12});
}

const drawbridge::Policy& policy(long n) {
  // One parsed policy per size, kept for the whole run (benchmarks of one size run together).
  static long cached_n = -1;
  static drawbridge::ParsedPolicy cached;
  if (cached_n != n) {
    cached = drawbridge::parse_policy_text(policy_text(n), "bench");
    cached_n = n;
  }
  return *cached.policy;
}

void BM_ParsePolicy(benchmark::State& state) {
  const std::string text = policy_text(state.range(0));
  for (auto _ : state) {
    auto parsed = drawbridge::parse_policy_text(text, "bench");
    if (!parsed.ok()) state.SkipWithError(parsed.diagnostics.str().c_str());
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}
BENCHMARK(BM_ParsePolicy)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

void BM_Compile(benchmark::State& state) {
  const auto& p = policy(state.range(0));
  for (auto _ : state) {
    auto plan = drawbridge::compile(p, now(), drawbridge::CompileOptions{});
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Compile)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

// What the daemon does at a window edge instead of BM_Compile: the plan in force brought to a
// new instant by recomputing only its open-window sets (one link opening or closing a minute
// apart). It should not grow with N.
void BM_Advance(benchmark::State& state) {
  const auto& p = policy(state.range(0));
  auto plan = drawbridge::compile(p, now(), drawbridge::CompileOptions{});
  std::int64_t i = 0;
  for (auto _ : state) {
    const auto at = now() + std::chrono::minutes(++i % 2);
    if (!drawbridge::advance(plan, p, at, drawbridge::CompileOptions{})) {
      state.SkipWithError("advance() wanted a full compile");
      break;
    }
    benchmark::DoNotOptimize(plan);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Advance)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

void BM_RenderNft(benchmark::State& state) {
  const auto plan = drawbridge::compile(policy(state.range(0)), now(), {});
  for (auto _ : state) {
    auto text = drawbridge::render_nft(plan);
    benchmark::DoNotOptimize(text);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RenderNft)->Arg(10)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

// An aggregated denial as the pipeline emits it under a flood.
drawbridge::SocEvent denial() {
  drawbridge::SocEvent e;
  e.sequence = 123456;
  e.timestamp = now();
  e.kind = drawbridge::EventKind::violation;
  e.action = drawbridge::action::kConnectionDenied;
  e.outcome = "failure";
  e.reason = "unapproved-source";
  e.message = "Denied tcp 198.51.100.66:40000 -> 10.20.0.10:3389: source is not approved";
  e.site = "clinic-north";
  e.serial = 42;
  e.rule = "guard";
  drawbridge::Flow f;
  f.source = *drawbridge::Address::parse("198.51.100.66");
  f.destination = *drawbridge::Address::parse("10.20.0.10");
  f.protocol = 6;
  f.source_port = 40000;
  f.destination_port = 3389;
  f.in_interface = "wan0";
  f.out_interface = "lan0";
  f.direction = drawbridge::FlowDirection::inbound;
  f.tcp_flags = "SYN";
  e.flow = f;
  e.first_seen = now();
  e.last_seen = now() + std::chrono::seconds(5);
  e.packets = 17;
  return e;
}

drawbridge::Observer observer() {
  drawbridge::Observer o;
  o.hostname = "gw1.clinic-north.example";
  o.version = "0.1.0";
  o.organization = "Clinic North";
  return o;
}

// Arg: 0 ECS JSON, 1 CEF, 2 LEEF, 3 RFC 5424 syslog carrying ECS JSON.
void BM_FormatEvent(benchmark::State& state) {
  const auto e = denial();
  const auto o = observer();
  const auto kind = state.range(0);
  for (auto _ : state) {
    std::string line =
        kind == 3 ? drawbridge::format_syslog(e, o, drawbridge::EventFormat::ecs_json,
                                              drawbridge::kDefaultSyslogFacility, 1)
                  : drawbridge::format_event(e, o, static_cast<drawbridge::EventFormat>(kind));
    benchmark::DoNotOptimize(line);
  }
  state.SetItemsProcessed(state.iterations());
  static const char* const names[] = {"ecs", "cef", "leef", "syslog+ecs"};
  state.SetLabel(names[kind]);
}
BENCHMARK(BM_FormatEvent)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

void BM_CommunityId(benchmark::State& state) {
  const auto e = denial();
  for (auto _ : state) benchmark::DoNotOptimize(drawbridge::community_id(*e.flow));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CommunityId)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
