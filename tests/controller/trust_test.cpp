// Trust files (strict, with locations) and the verdict an enforcer holding one would reach.
#include "common/trust.h"

#include <gtest/gtest.h>

#include "common/policy_parser.h"
#include "controller/verdict.h"

namespace drawbridge {
namespace {

using namespace std::chrono;

class TrustTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(init_sodium().ok()); }

  [[nodiscard]] std::string trust_text(const std::string& extra = "") const {
    return "site = \"dental3\"\nprovider_keys = [\"" + provider_.public_key().str() +
           "\"]\ncustomer_keys = [\"" + customer_.public_key().str() + "\"]\n" + extra;
  }

  [[nodiscard]] TrustConfig trust(const std::string& extra = "") const {
    auto t = parse_trust(trust_text(extra), "/etc/drawbridge/trust.toml");
    EXPECT_TRUE(t.ok()) << t.error().str();
    return *t;
  }

  static Bundle bundle(const std::string& policy, std::initializer_list<const SecretKey*> keys) {
    Bundle b;
    b.policy = policy;
    for (const auto* k : keys) b.sign_with(*k);
    return b;
  }

  static std::string policy(const std::string& site = "dental3",
                            const std::string& expires = "2030-01-01T00:00:00Z") {
    return "version = 1\nsite = \"" + site +
           "\"\nserial = 42\ntimezone = \"UTC\"\nexpires = " + expires + "\n";
  }

  const system_clock::time_point now_ = sys_days{year{2027} / 1 / 1};
  SecretKey provider_ = SecretKey::generate();
  SecretKey customer_ = SecretKey::generate();
  SecretKey stranger_ = SecretKey::generate();
};

// ---- trust file

TEST_F(TrustTest, ParsesRolesSiteAndCeiling) {
  const auto t = trust("ceiling = \"ceiling.toml\"\n");
  EXPECT_EQ(t.site, "dental3");
  EXPECT_EQ(t.role_of(provider_.public_key()), KeyRole::provider);
  EXPECT_EQ(t.role_of(customer_.public_key()), KeyRole::customer);
  EXPECT_EQ(t.role_of(stranger_.public_key()), KeyRole::unknown);
  EXPECT_EQ(t.ceiling, "/etc/drawbridge/ceiling.toml");  // relative to the trust file
}

struct BadTrust {
  std::string text;
  std::string message;
  int line;
  int column;
};

TEST_F(TrustTest, ErrorsCarryFileLineAndColumn) {
  const auto p = provider_.public_key().str();
  const std::vector<BadTrust> cases = {
      {"provider_keys = [\"" + p + "\"]\nsites = \"x\"\n", "unknown key 'sites'", 2, 1},
      {"site = 3\nprovider_keys = [\"" + p + "\"]\n", "'site' must be a non-empty string", 1, 8},
      {"provider_keys = \"" + p + "\"\n", "must be an array", 1, 17},
      {"provider_keys = [\n  3,\n]\n", "entries must be strings", 2, 3},
      {"provider_keys = [\"ed25519:AAAA\"]\n", "3 bytes, expected 32", 1, 18},
      {"provider_keys = [\"rsa:AAAA\"]\n", "must start with 'ed25519:'", 1, 18},
      {"provider_keys = [\"" + p + "\"]\ncustomer_keys = [\"" + p + "\"]\n",
       "both as provider and as customer", 2, 18},
      {"provider_keys = [\"" + p + "\", \"" + p + "\"]\n", "listed twice", 1, 22 + int(p.size())},
      {"provider_keys = [\"" + p + "\"]\nceiling = false\n", "'ceiling' must be", 2, 11},
      {"site = \"a\"\nsite = \"b\"\n", "cannot redefine", 2, 8},  // toml++'s duplicate-key error
      {"site = \"a\"\n", "names no provider_keys or customer_keys", 0, 0},
  };
  for (const auto& c : cases) {
    const auto r = parse_trust(c.text, "trust.toml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.text << " → " << r.error().str();
    EXPECT_EQ(r.error().where.file, "trust.toml");
    EXPECT_EQ(r.error().where.line, c.line) << c.text << " → " << r.error().str();
    EXPECT_EQ(r.error().where.column, c.column) << c.text << " → " << r.error().str();
  }
}

TEST_F(TrustTest, MissingFileIsAnError) {
  EXPECT_FALSE(load_trust("/nonexistent/trust.toml").ok());
}

// ---- verdict

TEST_F(TrustTest, AcceptsProviderSignedForItsSite) {
  const auto v = evaluate(bundle(policy(), {&provider_}), trust(), nullptr, now_);
  EXPECT_TRUE(v.accept) << v.reason;
  ASSERT_EQ(v.signers.size(), 1u);
  EXPECT_EQ(v.signers[0].role, KeyRole::provider);
  EXPECT_TRUE(v.signers[0].valid);
  EXPECT_EQ(v.site, "dental3");
  EXPECT_EQ(v.serial, 42);
  EXPECT_EQ(v.expires, "2030-01-01T00:00:00Z");
}

TEST_F(TrustTest, RefusesWhenAnySignatureIsInvalidAndNamesTheKey) {
  auto b = bundle(policy(), {&provider_, &customer_});
  b.policy[10] ^= 1;
  b.signatures[0].signature = provider_.sign(std::string(kSignatureDomain) + b.policy);
  const auto v = evaluate(b, trust(), nullptr, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_TRUE(v.signers[0].valid);
  EXPECT_FALSE(v.signers[1].valid);
  EXPECT_NE(v.reason.find(customer_.public_key().id()), std::string::npos) << v.reason;
  EXPECT_FALSE(v.site) << "an unverified policy must not be read";
}

TEST_F(TrustTest, RefusesWithoutATrustedSigner) {
  const auto v = evaluate(bundle(policy(), {&stranger_}), trust(), nullptr, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_EQ(v.signers[0].role, KeyRole::unknown);
  EXPECT_EQ(v.reason, "no valid signature is from a trusted key: signed only by " +
                          stranger_.public_key().id() + " (" + stranger_.public_key().str() +
                          "), which the trust file does not list");
}

TEST_F(TrustTest, RefusesAnotherSitesPolicy) {
  const auto v = evaluate(bundle(policy("dental4"), {&provider_}), trust(), nullptr, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_NE(v.reason.find("\"dental4\""), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("\"dental3\""), std::string::npos) << v.reason;
}

TEST_F(TrustTest, RefusesAnExpiredPolicy) {
  const auto v = evaluate(bundle(policy("dental3", "2026-06-01T12:00:00+02:00"), {&provider_}),
                          trust(), nullptr, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_NE(v.reason.find("expired"), std::string::npos) << v.reason;
  // The offset counts: 2027-01-01T00:30:00+01:00 is 23:30 UTC on Dec 31, already past.
  const auto offset = evaluate(bundle(policy("dental3", "2027-01-01T00:30:00+01:00"), {&provider_}),
                               trust(), nullptr, now_);
  EXPECT_FALSE(offset.accept);
  const auto local = evaluate(bundle(policy("dental3", "2030-01-01T00:00:00"), {&provider_}),
                              trust(), nullptr, now_);
  EXPECT_FALSE(local.accept);
  EXPECT_NE(local.reason.find("UTC offset"), std::string::npos) << local.reason;
}

TEST_F(TrustTest, RefusesSignedGarbage) {
  const auto v = evaluate(bundle("site = [", {&provider_}), trust(), nullptr, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_NE(v.reason.find("not valid TOML"), std::string::npos) << v.reason;
  const auto no_serial =
      evaluate(bundle("site = \"dental3\"\n", {&provider_}), trust(), nullptr, now_);
  EXPECT_FALSE(no_serial.accept);
  EXPECT_NE(no_serial.reason.find("serial"), std::string::npos) << no_serial.reason;
}

TEST_F(TrustTest, ProviderOnlyBundlesAreCheckedAgainstTheCeiling) {
  const auto t = trust("ceiling = \"ceiling.toml\"\n");
  auto ceiling_policy = parse_policy_text(policy(), "ceiling.toml");
  ASSERT_TRUE(ceiling_policy.ok()) << ceiling_policy.diagnostics.str();
  const Policy& ceiling = *ceiling_policy.policy;
  EXPECT_TRUE(evaluate(bundle(policy(), {&provider_}), t, &ceiling, now_).accept) << "fits";

  // A provider the ceiling does not know about exceeds it.
  const std::string wider = policy() + "[providers.acme]\naddresses = [\"203.0.113.0/28\"]\n";
  const auto v = evaluate(bundle(wider, {&provider_}), t, &ceiling, now_);
  EXPECT_FALSE(v.accept);
  EXPECT_NE(v.reason.find("exceeds the customer's ceiling"), std::string::npos) << v.reason;
  EXPECT_NE(v.reason.find("acme"), std::string::npos) << v.reason;
  // A customer co-signature may go beyond the ceiling.
  EXPECT_TRUE(evaluate(bundle(wider, {&provider_, &customer_}), t, &ceiling, now_).accept);
  // A ceiling that could not be loaded refuses provider-only bundles, as the enforcer does.
  const auto unloaded = evaluate(bundle(policy(), {&provider_}), t, nullptr, now_);
  EXPECT_FALSE(unloaded.accept);
  EXPECT_NE(unloaded.reason.find("could not be loaded"), std::string::npos) << unloaded.reason;
}

TEST_F(TrustTest, SiteIsOptionalInTheTrustFile) {
  auto t = trust();
  t.site.reset();
  EXPECT_TRUE(evaluate(bundle(policy("anywhere"), {&customer_}), t, nullptr, now_).accept);
}

}  // namespace
}  // namespace drawbridge
