// The real drawbridge-controller binary, as an operator uses it, in a temporary directory:
// keygen (with and without --curve), sign, co-sign, verify.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/curve_keys.h"

namespace {

namespace fs = std::filesystem;

struct Output {
  int code = -1;
  std::string out;  // stdout and stderr together
};

class ControllerCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-cli-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs the controller in the temp dir. Arguments are fixed test strings without quotes.
  Output controller(const std::string& args) const {
    const std::string cmd =
        "cd '" + dir_.string() + "' && '" DRAWBRIDGE_CONTROLLER_BIN "' " + args + " 2>&1";
    Output r;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    if (pipe == nullptr) return r;
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
    const int status = ::pclose(pipe);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  [[nodiscard]] std::string read(const std::string& name) const {
    std::ifstream in(dir_ / name, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // The public key line keygen wrote, without its newline.
  [[nodiscard]] std::string pub(const std::string& name) const {
    auto text = read(name + ".pub");
    if (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  static std::string policy(const std::string& site = "dental3",
                            const std::string& expires = "2099-01-01T00:00:00Z") {
    return "version = 1\nsite = \"" + site +
           "\"\nserial = 5\ntimezone = \"UTC\"\nexpires = " + expires +
           "\n\n[providers.msp]\naddresses = [\"192.0.2.0/24\"]\n";
  }

  // Keys for both parties, a policy, and a trust file naming both keys for site dental3.
  void setup_site(const std::string& trust_extra = "") {
    ASSERT_EQ(controller("keygen --out provider").code, 0);
    ASSERT_EQ(controller("keygen --out customer").code, 0);
    write("policy.toml", policy());
    write("trust.toml", "site = \"dental3\"\nprovider_keys = [\"" + pub("provider") +
                            "\"]\ncustomer_keys = [\"" + pub("customer") + "\"]\n" + trust_extra);
  }

  static bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  fs::path dir_;
};

TEST_F(ControllerCliTest, HelpAndVersion) {
  EXPECT_EQ(controller("--help").code, 0);
  EXPECT_EQ(controller("sign --help").code, 0);
  EXPECT_EQ(controller("verify --help").code, 0);
  const auto v = controller("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_TRUE(contains(v.out, "drawbridge-controller")) << v.out;
  EXPECT_EQ(controller("").code, 2);
  EXPECT_EQ(controller("keygen").code, 2);
  const auto keygen_help = controller("keygen --help");
  EXPECT_EQ(keygen_help.code, 0);
  EXPECT_TRUE(contains(keygen_help.out, "--curve")) << keygen_help.out;
  EXPECT_EQ(controller("keygen --curve").code, 2) << "--out is still required";
  EXPECT_EQ(controller("sign policy.toml").code, 2);
}

TEST_F(ControllerCliTest, KeygenWritesAPrivateKeyAndNeverOverwrites) {
  const auto r = controller("keygen --out provider");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "public key: " + pub("provider"))) << r.out;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "provider").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const auto before = read("provider");
  const auto again = controller("keygen --out provider");
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(contains(again.out, "already exists")) << again.out;
  EXPECT_EQ(read("provider"), before);
}

TEST_F(ControllerCliTest, KeygenCurveWritesBothPairs) {
  const auto r = controller("keygen --out gw1 --curve");
  ASSERT_EQ(r.code, 0) << r.out;
  // The Ed25519 pair as without --curve, and the CURVE pair next to it.
  EXPECT_TRUE(contains(r.out, "public key: " + pub("gw1"))) << r.out;
  const auto curve_pub = pub("gw1.curve");
  EXPECT_TRUE(curve_pub.starts_with("curve:")) << curve_pub;
  EXPECT_TRUE(contains(r.out, "curve key:  " + curve_pub + "\n")) << r.out;
  const auto printed = r.out.substr(r.out.find("curve key:  ") + 12, 46);
  const auto parsed = drawbridge::CurvePublicKey::parse(printed);
  ASSERT_TRUE(parsed.ok()) << parsed.error().str();
  EXPECT_EQ(parsed->str(), curve_pub);

  for (const auto& [name, mode] : {std::pair<std::string, unsigned>{"gw1", 0600},
                                   {"gw1.pub", 0644},
                                   {"gw1.curve", 0600},
                                   {"gw1.curve.pub", 0644}}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777, mode) << name;
  }
  EXPECT_TRUE(read("gw1.curve").starts_with("curve-secret:"));
  const auto loaded = drawbridge::CurveSecretKey::load((dir_ / "gw1.curve").string());
  ASSERT_TRUE(loaded.ok()) << loaded.error().str();
  EXPECT_EQ(loaded->public_key(), *parsed);

  // Without --curve nothing CURVE is written.
  ASSERT_EQ(controller("keygen --out plain").code, 0);
  EXPECT_FALSE(fs::exists(dir_ / "plain.curve"));
  EXPECT_FALSE(fs::exists(dir_ / "plain.curve.pub"));
}

TEST_F(ControllerCliTest, KeygenCurveWritesNothingWhenAnyFileExists) {
  write("gw2.curve.pub", "someone else's\n");
  const auto r = controller("keygen --out gw2 --curve");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "gw2.curve.pub already exists")) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "gw2"));
  EXPECT_FALSE(fs::exists(dir_ / "gw2.pub"));
  EXPECT_FALSE(fs::exists(dir_ / "gw2.curve"));
  EXPECT_EQ(read("gw2.curve.pub"), "someone else's\n");
}

TEST_F(ControllerCliTest, SignVerifyTamperAndCoSign) {
  setup_site();
  const auto signed_ = controller("sign policy.toml --key provider");
  ASSERT_EQ(signed_.code, 0) << signed_.out;
  ASSERT_TRUE(fs::exists(dir_ / "policy.bundle"));

  const auto ok = controller("verify policy.bundle --trust trust.toml");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_TRUE(contains(ok.out, pub("provider") + " provider valid")) << ok.out;
  EXPECT_TRUE(contains(ok.out, "greater than the last serial")) << ok.out;
  EXPECT_TRUE(ok.out.ends_with("accept\n")) << ok.out;

  // One byte of the policy changed: refused, naming the key whose signature broke.
  auto bundle = read("policy.bundle");
  write("tampered.bundle", bundle.replace(bundle.find("192.0.2.0"), 3, "193"));
  const auto bad = controller("verify tampered.bundle --trust trust.toml");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_TRUE(contains(bad.out, "INVALID")) << bad.out;
  EXPECT_TRUE(contains(bad.out, "refuse: the signature by key")) << bad.out;
  EXPECT_TRUE(contains(bad.out, pub("provider"))) << bad.out;
  // Nobody co-signs a tampered bundle.
  EXPECT_EQ(controller("sign tampered.bundle --key customer").code, 1);

  // The customer co-signs in place; both signatures are kept and verify.
  const auto cosign = controller("sign policy.bundle --key customer");
  ASSERT_EQ(cosign.code, 0) << cosign.out;
  EXPECT_TRUE(contains(cosign.out, "2 signature(s)")) << cosign.out;
  const auto both = controller("verify policy.bundle --trust trust.toml");
  EXPECT_EQ(both.code, 0) << both.out;
  EXPECT_TRUE(contains(both.out, pub("provider") + " provider valid")) << both.out;
  EXPECT_TRUE(contains(both.out, pub("customer") + " customer valid")) << both.out;
}

TEST_F(ControllerCliTest, GarbageBundleIsRefusedWithTheReason) {
  setup_site();
  write("junk.bundle", "drawbridge-bundle 1\npolicy 100\nshort");
  const auto r = controller("verify junk.bundle --trust trust.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "refuse: the bundle does not decode: ")) << r.out;
}

TEST_F(ControllerCliTest, UnknownKeyIsRefused) {
  setup_site();
  ASSERT_EQ(controller("keygen --out stranger").code, 0);
  ASSERT_EQ(controller("sign policy.toml --key stranger --out s.bundle").code, 0);
  const auto r = controller("verify s.bundle --trust trust.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, pub("stranger") + " unknown valid")) << r.out;
  EXPECT_TRUE(contains(r.out, "refuse: no valid signature is from a trusted key")) << r.out;
}

TEST_F(ControllerCliTest, WrongSiteIsRefused) {
  setup_site();
  write("other.toml", policy("dental4"));
  ASSERT_EQ(controller("sign other.toml --key provider").code, 0);
  const auto r = controller("verify other.bundle --trust trust.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "refuse: the policy is for site \"dental4\"")) << r.out;
}

TEST_F(ControllerCliTest, ExpiredIsRefused) {
  setup_site();
  write("old.toml", policy("dental3", "2020-01-01T00:00:00Z"));
  ASSERT_EQ(controller("sign old.toml --key provider").code, 0);
  const auto r = controller("verify old.bundle --trust trust.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "refuse: the policy expired at 2020-01-01T00:00:00Z")) << r.out;
}

// verify applies the enforcer's ceiling check to provider-only bundles.
TEST_F(ControllerCliTest, ProviderOnlyBundlesAreCheckedAgainstTheCeiling) {
  setup_site("ceiling = \"ceiling.toml\"\n");
  ASSERT_EQ(controller("sign policy.toml --key provider").code, 0);
  const auto missing = controller("verify policy.bundle --trust trust.toml");
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(contains(missing.out, "could not be loaded")) << missing.out;

  write("ceiling.toml", policy());
  const auto fits = controller("verify policy.bundle --trust trust.toml");
  EXPECT_EQ(fits.code, 0) << fits.out;

  write("wider.toml", policy() + "[providers.acme]\naddresses = [\"203.0.113.0/28\"]\n");
  ASSERT_EQ(controller("sign wider.toml --key provider").code, 0);
  const auto wider = controller("verify wider.bundle --trust trust.toml");
  EXPECT_EQ(wider.code, 1);
  EXPECT_TRUE(contains(wider.out, "exceeds the customer's ceiling")) << wider.out;
  ASSERT_EQ(controller("sign wider.bundle --key customer").code, 0);
  EXPECT_EQ(controller("verify wider.bundle --trust trust.toml").code, 0) << "co-signed";
}

TEST_F(ControllerCliTest, KeyReadableByOthersIsRefused) {
  setup_site();
  ASSERT_EQ(::chmod((dir_ / "provider").c_str(), 0644), 0);
  const auto r = controller("sign policy.toml --key provider");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "chmod 600")) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "policy.bundle"));
}

TEST_F(ControllerCliTest, BadTrustFileNamesTheLocation) {
  setup_site();
  write("bad-trust.toml", "provider_keys = [\"" + pub("provider") + "\"]\nfoo = 1\n");
  ASSERT_EQ(controller("sign policy.toml --key provider").code, 0);
  const auto r = controller("verify policy.bundle --trust bad-trust.toml");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.out, "bad-trust.toml:2:1: unknown key 'foo'")) << r.out;
}

TEST_F(ControllerCliTest, EmptyPolicyIsNotSigned) {
  setup_site();
  write("empty.toml", "");
  EXPECT_EQ(controller("sign empty.toml --key provider").code, 1);
  EXPECT_FALSE(fs::exists(dir_ / "empty.bundle"));
}

}  // namespace
