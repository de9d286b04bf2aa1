// The lab itself, without the enforcer: if these fail, enforcement tests prove nothing.
#include "lab.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace drawbridge::lab {
namespace {

class LabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root()) GTEST_SKIP() << "integration tests need root (network namespaces)";
    lab_.emplace();
  }
  std::optional<NamespaceLab> lab_;
};

TEST_F(LabTest, ProviderReachesLanOverTcpAndUdp) {
  for (const char* port : {"tcp/3389", "udp/3389"}) {
    const auto r = lab_->probe_from(lab_->msp(), addr::kAcme, addr::kServer, port);
    EXPECT_TRUE(r.allowed) << port << ": " << r.detail;
  }
  EXPECT_TRUE(lab_->probe(addr::kAcme2, addr::kServer2, "tcp/3389"));
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kServer3, "udp/3389"));
}

TEST_F(LabTest, ProviderReachesLanOverIpv6) {
  for (const char* port : {"tcp/3389", "udp/3389"}) {
    const auto r = lab_->probe_from(lab_->msp(), addr::kAcmeV6, addr::kServerV6, port);
    EXPECT_TRUE(r.allowed) << port << ": " << r.detail;
  }
  EXPECT_TRUE(lab_->probe(addr::kAttackerV6, addr::kServer2V6, "tcp/22"));
}

TEST_F(LabTest, GatewayServicesReachableFromMsp) {
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kGwWan, "tcp/22"));
  EXPECT_TRUE(lab_->probe(addr::kAttacker, addr::kGwWanAttackerNet, "tcp/22"));
  EXPECT_TRUE(lab_->probe(addr::kAttackerV6, addr::kGwWanAttackerNetV6, "tcp/22"));
}

TEST_F(LabTest, LanReachesMspSideThroughGateway) {
  // Replies and the reverse direction route through gw too (lan → gw's WAN address).
  EXPECT_TRUE(lab_->probe(addr::kServer, addr::kGwWan, "tcp/8443"));
  EXPECT_TRUE(lab_->probe(addr::kServerV6, addr::kGwWanV6, "udp/3389"));
}

TEST_F(LabTest, ClosedPortIsReportedBlockedNotAnError) {
  const auto r = lab_->probe_from(lab_->msp(), addr::kAcme, addr::kServer, "tcp/4444");
  EXPECT_FALSE(r.allowed);
  EXPECT_NE(r.detail.find("refused"), std::string::npos) << r.detail;
}

TEST_F(LabTest, ProbeFromAnAddressNotInTheNamespaceIsAnError) {
  // A mistaken lab must fail loudly, not look like a blocked path.
  EXPECT_THROW((void)lab_->probe_from(lab_->lan(), addr::kAcme, addr::kServer, "tcp/3389"),
               std::runtime_error);
}

TEST_F(LabTest, StreamGetsEchoes) {
  using namespace std::chrono;
  const auto before = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto stream = lab_->stream(addr::kAcme, addr::kServer, "tcp/3389", 50ms, 600ms);
  const auto r = stream.wait(5s);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto s = parse_stream(r);
  EXPECT_GE(s.echoes, 8) << s.raw;
  EXPECT_GE(s.first_echo_ms, before);
  EXPECT_GE(s.last_echo_ms, s.first_echo_ms + 300) << s.raw;
}

TEST_F(LabTest, StreamWithoutAnswerReportsNoEcho) {
  auto stream = lab_->stream(addr::kAcme, addr::kServer, "tcp/4444", 50ms, 300ms);
  const auto r = stream.wait(5s);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(parse_stream(r).echoes, 0);
}

TEST_F(LabTest, ForeignDropIsSeenAsBlocked) {
  // A drop rule in gw (the way the enforcer will drop) reads as blocked for TCP and UDP.
  const auto loaded = lab_->nft_script(
      "table inet labtest {\n"
      "  chain forward { type filter hook forward priority 0; policy accept;\n"
      "    ip saddr 203.0.113.2 drop\n"
      "  }\n"
      "}\n");
  ASSERT_TRUE(loaded.ok()) << loaded.describe();
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer, "udp/3389"));
  EXPECT_TRUE(lab_->probe(addr::kAcme2, addr::kServer, "tcp/3389"));
}

TEST_F(LabTest, NamespacesAreGoneAfterDestruction) {
  const std::string names[] = {lab_->msp(), lab_->gw(), lab_->lan()};
  const std::string temp = lab_->temp_dir();
  for (const auto& name : names) EXPECT_TRUE(NamespaceLab::namespace_exists(name)) << name;
  // A background process left running must not keep anything alive.
  auto straggler = lab_->stream(addr::kAcme, addr::kServer, "tcp/3389", 100ms, 60000ms);
  lab_.reset();
  for (const auto& name : names) EXPECT_FALSE(NamespaceLab::namespace_exists(name)) << name;
  EXPECT_FALSE(std::filesystem::exists(temp)) << temp;
  EXPECT_FALSE(straggler.running());
}

TEST_F(LabTest, MovedLabOwnsTheNamespaces) {
  const std::string gw = lab_->gw();
  {
    NamespaceLab moved = std::move(*lab_);
    EXPECT_TRUE(NamespaceLab::namespace_exists(gw));
    EXPECT_TRUE(moved.probe(addr::kAcme, addr::kServer, "tcp/22"));
  }
  EXPECT_FALSE(NamespaceLab::namespace_exists(gw));
}

}  // namespace
}  // namespace drawbridge::lab
