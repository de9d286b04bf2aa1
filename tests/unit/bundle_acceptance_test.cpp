// Acceptance of signed bundles by the enforcer, with real libsodium keys and signatures.
#include "enforcer/bundle_acceptance.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/policy_parser.h"
#include "common/window_schedule.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

std::string policy_text(std::string_view site, int serial, std::string_view expires = "") {
  std::string text = "version = 1\nsite = \"" + std::string(site) +
                     "\"\nserial = " + std::to_string(serial) + "\ntimezone = \"UTC\"\n";
  if (!expires.empty()) text += "expires = " + std::string(expires) + "\n";
  text += "[providers.acme]\naddresses = [\"203.0.113.0/28\"]\n";
  return text;
}

class BundleAcceptance : public testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(init_sodium().ok()); }

  std::string bundle(const std::string& policy, std::initializer_list<const SecretKey*> keys) {
    Bundle b;
    b.policy = policy;
    for (const auto* k : keys) b.sign_with(*k);
    return b.encode();
  }

  Result<AcceptedBundle> accept(const std::string& bytes, std::optional<std::uint64_t> last = {}) {
    return accept_bundle(bytes, "test.bundle", trust_, ceiling_ ? &*ceiling_ : nullptr, last, now_);
  }

  SecretKey provider_ = SecretKey::generate();
  SecretKey customer_ = SecretKey::generate();
  SecretKey stranger_ = SecretKey::generate();
  TrustConfig trust_{
      "clinic-east", {provider_.public_key()}, {customer_.public_key()}, std::nullopt};
  Instant now_ = *parse_instant("2026-11-25T12:00:00Z");
  std::optional<Policy> ceiling_;
};

TEST_F(BundleAcceptance, ProviderSignedBundleForThisSiteIsAccepted) {
  auto r = accept(bundle(policy_text("clinic-east", 7), {&provider_}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->policy.serial, 7u);
  ASSERT_EQ(r->provider_signers.size(), 1u);
  EXPECT_EQ(r->provider_signers[0], provider_.public_key());
  EXPECT_TRUE(r->customer_signers.empty());
}

TEST_F(BundleAcceptance, AlteredPolicyByteIsRefusedNamingTheKey) {
  auto bytes = bundle(policy_text("clinic-east", 7), {&provider_});
  bytes[bytes.rfind("serial = 7") + 9] = '8';  // the signed bytes no longer match
  auto r = accept(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not verify"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(provider_.public_key().id()), std::string::npos);
}

TEST_F(BundleAcceptance, UnknownSignerIsRefused) {
  auto r = accept(bundle(policy_text("clinic-east", 7), {&stranger_}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no valid signature is from a trusted key"), std::string::npos)
      << r.error().message;
}

TEST_F(BundleAcceptance, WrongSiteIsRefused) {
  auto r = accept(bundle(policy_text("other-site", 7), {&provider_}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("it is for site 'other-site', this enforcer is 'clinic-east'"),
            std::string::npos)
      << r.error().message;
}

TEST_F(BundleAcceptance, ReplayedOrOlderSerialIsRefused) {
  const auto bytes = bundle(policy_text("clinic-east", 7), {&provider_});
  EXPECT_TRUE(accept(bytes, 6).ok());
  for (std::uint64_t last : {7u, 9u}) {
    auto r = accept(bytes, last);
    ASSERT_FALSE(r.ok()) << "last " << last;
    EXPECT_NE(r.error().message.find("not newer than the last accepted serial"), std::string::npos);
  }
}

TEST_F(BundleAcceptance, ExpiredBundleIsRefused) {
  auto r = accept(bundle(policy_text("clinic-east", 7, "2026-11-25T11:00:00Z"), {&provider_}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("expired 2026-11-25T11:00:00Z"), std::string::npos);
}

TEST_F(BundleAcceptance, InvalidPolicyIsRefusedAfterSignaturesVerify) {
  auto r = accept(bundle("version = 1\nsite = \"clinic-east\"\n", {&provider_}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("its policy is invalid"), std::string::npos)
      << r.error().message;
}

TEST_F(BundleAcceptance, ProviderOnlyBundlesMustFitTheCeilingCustomerSignedMayExceedIt) {
  trust_.ceiling = "ceiling.toml";
  auto parsed = parse_policy_text(policy_text("clinic-east", 1), "ceiling.toml");
  ASSERT_TRUE(parsed.ok());
  ceiling_ = *parsed.policy;  // acme may come from 203.0.113.0/28, nothing else

  EXPECT_TRUE(accept(bundle(policy_text("clinic-east", 7), {&provider_})).ok()) << "fits exactly";
  std::string wider = policy_text("clinic-east", 7);
  wider.replace(wider.find("203.0.113.0/28"), 14, "203.0.113.0/24");
  auto provider_only = accept(bundle(wider, {&provider_}));
  ASSERT_FALSE(provider_only.ok());
  EXPECT_NE(provider_only.error().message.find("exceeds the customer's ceiling"), std::string::npos)
      << provider_only.error().message;
  EXPECT_NE(provider_only.error().message.find("203.0.113.0/24"), std::string::npos)
      << provider_only.error().message;
  auto cosigned = accept(bundle(wider, {&provider_, &customer_}));
  ASSERT_TRUE(cosigned.ok()) << cosigned.error().message;
  EXPECT_EQ(cosigned->customer_signers.size(), 1u);

  ceiling_.reset();  // configured but not loadable: fail closed
  EXPECT_FALSE(accept(bundle(policy_text("clinic-east", 7), {&provider_})).ok());
}

TEST_F(BundleAcceptance, AStrangersExtraSignatureDoesNotCountButDoesNotHurt) {
  auto r = accept(bundle(policy_text("clinic-east", 7), {&stranger_, &provider_}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->provider_signers.size(), 1u);
  EXPECT_TRUE(r->customer_signers.empty());
}

// The bundle accepted last, loaded again (restart, boot): same serial is fine, and an expired one
// is still installed — the compiler turns it into a closed table; refusing it would leave none.
TEST_F(BundleAcceptance, AlreadyAcceptedBundleKeepsItsSerialAndIsInstalledEvenWhenExpired) {
  const auto bytes = bundle(policy_text("clinic-east", 7, "2026-11-25T11:00:00Z"), {&provider_});
  auto r = accept_bundle(bytes, "stored", trust_, nullptr, 7, now_, Freshness::already_accepted);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->policy.serial, 7u);
  auto mismatch =
      accept_bundle(bytes, "stored", trust_, nullptr, 8, now_, Freshness::already_accepted);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().message.find("recorded serial is 8"), std::string::npos);
  // Signatures are checked again all the same.
  auto forged = bytes;
  forged[forged.rfind("serial = 7") + 9] = '8';
  EXPECT_FALSE(
      accept_bundle(forged, "stored", trust_, nullptr, 8, now_, Freshness::already_accepted).ok());
}

TEST_F(BundleAcceptance, TrustFileWithoutASiteIsRefused) {
  trust_.site.reset();
  auto r = accept(bundle(policy_text("clinic-east", 7), {&provider_}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("names no site"), std::string::npos) << r.error().message;
}

TEST(AcceptedStore, SerialAndBundleSurviveARestartAndDamageIsAnError) {
  const fs::path dir = fs::temp_directory_path() / ("db-accepted-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string bytes = "drawbridge-bundle 1\n...";
  Policy p;
  p.site = "clinic-east";
  p.serial = 41;
  {
    const AcceptedStore store(dir.string());
    ASSERT_TRUE(store.last_serial().ok());
    EXPECT_FALSE(store.last_serial()->has_value());
    ASSERT_TRUE(store.record(bytes, p).ok());
  }
  const AcceptedStore reopened(dir.string());  // a new process would see the same
  ASSERT_TRUE(reopened.last_serial().ok());
  EXPECT_EQ(reopened.last_serial()->value_or(0), 41u);
  EXPECT_EQ(reopened.last_bundle()->value_or(""), bytes);
  { std::ofstream(dir / "accepted.json") << "{ not json"; }
  EXPECT_FALSE(reopened.last_serial().ok()) << "a damaged serial record must not read as 'none'";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace drawbridge
