// The transaction layer against the real kernel: what is committed is what was planned, a batch
// the kernel refuses changes nothing and names the message it refused, a dry run changes nothing,
// and big sets are split into messages the kernel takes.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <thread>

#include "common/policy_parser.h"
#include "common/window_schedule.h"
#include "enforcer/kernel_state.h"

namespace drawbridge {
namespace {

// Runs `body` on a thread that has a fresh, empty network namespace of its own; the namespace
// disappears with the thread's last socket.
void in_fresh_netns(const std::function<void()>& body) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, nftables)";
  std::thread t([&] {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET) failed";
    body();
  });
  t.join();
}

Policy policy_from(const std::string& text) {
  auto parsed = parse_policy_text(text, "test.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.diagnostics.str();
  return *parsed.policy;
}

const char* kPolicy = R"(
version = 1
site = "kernel-test"
serial = 3
timezone = "UTC"
[providers.acme]
addresses = ["203.0.113.0/28", "2001:db8:100::/48"]
[[links]]
name = "rdp"
provider = "acme"
hosts = ["10.20.0.10", "10.20.0.0/28", "2001:db8:20::10"]
ports = ["tcp/3389", "udp/3389"]
windows = ["always"]
[guard]
ports = ["tcp/22"]
)";

std::size_t count_rules(NetlinkSocket& s, const std::string& table) {
  auto rules = s.read_rules(table);
  EXPECT_TRUE(rules.ok());
  return rules.ok() ? rules->size() : 0;
}

std::string gate_comment(NetlinkSocket& s, const std::string& table) {
  auto t = s.read_table(table);
  if (!t.ok()) return "error";
  for (const auto& c : t->chains) {
    if (c.name == "gate") return c.comment;
  }
  return "";
}

TEST(KernelTransaction, CommittedTableMatchesThePlan) {
  in_fresh_netns([] {
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok()) << sock.error().message;
    NftablesWriter writer(std::move(*sock));
    const auto plan = compile(policy_from(kPolicy), Instant(std::chrono::hours(24 * 20000)), {});
    ASSERT_TRUE(writer.replace(plan).ok());
    auto table = writer.socket().read_table("drawbridge");
    ASSERT_TRUE(table.ok());
    EXPECT_TRUE(table->exists);
    EXPECT_EQ(table->flags, 0u) << "the table must be neither dormant nor owned";
    EXPECT_EQ(table->sets.size(), plan.sets.size());
    EXPECT_EQ(table->chains.size(), plan.chains.size());
    std::size_t planned_rules = 0;
    for (const auto& c : plan.chains) planned_rules += c.rules.size();
    EXPECT_EQ(count_rules(writer.socket(), "drawbridge"), planned_rules);
    EXPECT_EQ(gate_comment(writer.socket(), "drawbridge"), plan.chain("gate")->comment);
    // The open map holds the merged host range (10.20.0.0/28 contains .10) for both protocols.
    auto open = writer.socket().read_elements("drawbridge", "l1_open_v4");
    ASSERT_TRUE(open.ok());
    EXPECT_EQ(open->size(), 2u);
  });
}

TEST(KernelTransaction, RefusedBatchChangesNothingAndNamesTheMessage) {
  in_fresh_netns([] {
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok());
    NftablesWriter writer(std::move(*sock));
    const auto plan = compile(policy_from(kPolicy), Instant(std::chrono::hours(24 * 20000)), {});
    ASSERT_TRUE(writer.replace(plan).ok());
    const auto rules_before = count_rules(writer.socket(), "drawbridge");
    const auto comment_before = gate_comment(writer.socket(), "drawbridge");

    // Flush the gate chain, then add a rule that looks up a set that does not exist: the flush
    // must not survive the refusal.
    NftBatch bad;
    bad.flush_chain("drawbridge", "gate");
    RulePlan broken;
    broken.key = {Field::daddr};
    broken.set = "no_such_set";
    broken.verdict = Verdict{Verdict::Kind::drop, {}};
    bad.add_rule("drawbridge", "gate", broken, 0);
    auto r = writer.socket().send(bad, true);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("adding a rule to chain gate"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos)
        << r.error().message;
    EXPECT_EQ(count_rules(writer.socket(), "drawbridge"), rules_before);
    EXPECT_EQ(gate_comment(writer.socket(), "drawbridge"), comment_before);
  });
}

TEST(KernelTransaction, DryRunValidatesWithoutCommitting) {
  in_fresh_netns([] {
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok());
    NftablesWriter writer(std::move(*sock));
    const auto policy = policy_from(kPolicy);
    const Instant t0(std::chrono::hours(24 * 20000));
    ASSERT_TRUE(writer.replace(compile(policy, t0, {})).ok());
    const auto comment_before = gate_comment(writer.socket(), "drawbridge");

    auto other = policy;
    other.serial = 4;
    other.guard.ports.push_back(*PortRange::parse("tcp/5900"));
    const auto next = compile(other, t0, {});
    ASSERT_NE(next.chain("gate")->comment, comment_before);
    ASSERT_TRUE(writer.validate(next).ok());
    EXPECT_EQ(gate_comment(writer.socket(), "drawbridge"), comment_before)
        << "a dry run must not commit";

    // And a dry run of a batch the kernel refuses reports the refusal.
    NftBatch bad;
    RulePlan broken;
    broken.key = {Field::daddr};
    broken.set = "no_such_set";
    bad.add_rule("drawbridge", "gate", broken, 0);
    EXPECT_FALSE(writer.socket().send(bad, false).ok());
  });
}

TEST(KernelTransaction, LargeProviderSetsAreSplitIntoMessagesTheKernelTakes) {
  in_fresh_netns([] {
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok());
    NftablesWriter writer(std::move(*sock));
    auto policy = policy_from(kPolicy);
    // 50,000 separate /32s (not adjacent, so they cannot merge): 198.18.0.0/15, every other one;
    // and 2,000 /30 prefixes for the interval map.
    policy.providers[0].addresses.clear();
    for (std::uint32_t i = 0; i < 50000; ++i) {
      const std::uint32_t a = (198u << 24) | (18u << 16) | (i * 2);
      policy.providers[0].addresses.push_back(*AddressRange::parse(
          std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
          std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255)));
    }
    for (std::uint32_t i = 0; i < 2000; ++i) {
      policy.providers[0].addresses.push_back(*AddressRange::parse(
          "100.64." + std::to_string(i / 32) + "." + std::to_string((i % 32) * 8) + "/30"));
    }
    const auto plan = compile(policy, Instant(std::chrono::hours(24 * 20000)), {});
    ASSERT_TRUE(writer.replace(plan).ok());
    auto prefixes = writer.socket().read_elements("drawbridge", "providers_v4");
    ASSERT_TRUE(prefixes.ok());
    EXPECT_EQ(prefixes->size(), 2u * 2000u + 1u) << "start and end per prefix, end marker at 0";
    // Single addresses are one element each, in the hash map.
    auto elements = writer.socket().read_elements("drawbridge", "provider_hosts_v4");
    ASSERT_TRUE(elements.ok());
    EXPECT_EQ(elements->size(), 50000u);
    EXPECT_GT(writer.last_stats().messages, 30u) << "element lists must be split";
    EXPECT_LT(writer.last_stats().bytes / writer.last_stats().messages, 64u * 1024u);

    // Replacing it again (a new generation of every set) works and leaves one table.
    policy.serial = 4;
    ASSERT_TRUE(writer.replace(compile(policy, Instant(std::chrono::hours(24 * 20000)), {})).ok());
    auto again = writer.socket().read_elements("drawbridge", "provider_hosts_v4");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->size(), 50000u);
  });
}

TEST(KernelTransaction, ReconcileKeepsAnIdenticalTable) {
  in_fresh_netns([] {
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok());
    NftablesWriter first(std::move(*sock));
    const auto policy = policy_from(kPolicy);
    const auto now =
        std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
    ASSERT_TRUE(first.reconcile(compile(policy, now, {})).ok());
    EXPECT_FALSE(first.last_stats().reconciled) << "nothing was there: a full replace";

    // A second writer (a restarted enforcer) finds the same plan and replaces nothing.
    auto sock2 = NetlinkSocket::open();
    ASSERT_TRUE(sock2.ok());
    NftablesWriter second(std::move(*sock2));
    ASSERT_TRUE(second.reconcile(compile(policy, now + std::chrono::seconds(1), {})).ok());
    EXPECT_TRUE(second.last_stats().reconciled);
    EXPECT_EQ(second.last_stats().added, 0u);
    EXPECT_EQ(second.last_stats().deleted, 0u);

    // A different plan is a replacement.
    auto changed = policy;
    changed.serial = 9;
    ASSERT_TRUE(second.reconcile(compile(changed, now + std::chrono::seconds(2), {})).ok());
    EXPECT_FALSE(second.last_stats().reconciled);
    EXPECT_NE(gate_comment(second.socket(), "drawbridge").find("serial 9"), std::string::npos);
  });
}

}  // namespace
}  // namespace drawbridge
