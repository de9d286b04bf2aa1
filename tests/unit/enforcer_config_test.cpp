// The enforcer's configuration file (enforcer/enforcer_config.h), here its [controller] table:
// values, defaults, and every refusal with its file:line:column.
#include "enforcer/enforcer_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/curve_keys.h"
#include "common/signing.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

class EnforcerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(init_sodium().ok());
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-enfcfg-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<EnforcerConfig> load(const std::string& text) {
    std::ofstream(dir_ / "e.toml", std::ios::binary) << text;
    return load_config((dir_ / "e.toml").string());
  }

  // The error as printed, with the temporary directory left out: "e.toml:3:1: …".
  std::string error(const std::string& text) {
    const auto r = load(text);
    if (r.ok()) return "(accepted)";
    auto s = r.error().str();
    const auto dir = dir_.string() + "/";
    if (s.starts_with(dir)) s.erase(0, dir.size());
    return s;
  }

  fs::path dir_;
  CurvePublicKey server_ = CurveSecretKey::generate().public_key();
};

TEST_F(EnforcerConfigTest, NoControllerTableMeansNoController) {
  const auto r = load("policy = \"/etc/drawbridge/policy.toml\"\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_FALSE(r->controller.has_value());
  EXPECT_EQ(r->policy, "/etc/drawbridge/policy.toml");
}

TEST_F(EnforcerConfigTest, ControllerTableIsReadExactly) {
  const auto r = load(
      "trust = \"/etc/drawbridge/trust.toml\"\n"
      "\n[controller]\n"
      "endpoint = \"tcp://192.0.2.10:7400\"\n"
      "server_key = \"" +
      server_.str() +
      "\"\n"
      "client_key = \"/etc/drawbridge/gw1.curve\"\n"
      "heartbeat_seconds = 30\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->trust, "/etc/drawbridge/trust.toml");
  EXPECT_TRUE(r->policy.empty());
  ASSERT_TRUE(r->controller.has_value());
  EXPECT_EQ(r->controller->endpoint, "tcp://192.0.2.10:7400");
  EXPECT_EQ(r->controller->server_key, server_.str());
  EXPECT_EQ(r->controller->client_key, "/etc/drawbridge/gw1.curve");
  EXPECT_FALSE(r->controller->insecure);
  EXPECT_EQ(r->controller->heartbeat, std::chrono::seconds(30));
}

TEST_F(EnforcerConfigTest, ServerKeyIsStoredInItsCanonicalForm) {
  const auto r = load("[controller]\nendpoint = \"ipc:///run/dbc.sock\"\nserver_key = \"" +
                      server_.z85() + "\"\nclient_key = \"k.curve\"\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->controller->server_key, server_.str());
  EXPECT_EQ(r->controller->heartbeat, std::chrono::seconds(5)) << "default";
}

TEST_F(EnforcerConfigTest, InsecureNeedsNoKeys) {
  const auto r = load("[controller]\nendpoint = \"tcp://127.0.0.1:7400\"\ninsecure = true\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_TRUE(r->controller->insecure);
  EXPECT_TRUE(r->controller->server_key.empty());
  EXPECT_TRUE(r->controller->client_key.empty());
}

TEST_F(EnforcerConfigTest, ControllerErrorsAreLocated) {
  const std::string key = "server_key = \"" + server_.str() + "\"\n";
  const std::string client = "client_key = \"k.curve\"\n";
  const std::string endpoint = "endpoint = \"tcp://192.0.2.10:7400\"\n";
  // [controller] is on line 2 in each case.
  const std::string head = "table = \"drawbridge\"\n[controller]\n";

  EXPECT_EQ(error(head + key + client),
            "e.toml:2:1: [controller] needs 'endpoint' (e.g. \"tcp://192.0.2.10:7400\")");
  EXPECT_EQ(error(head + endpoint + client),
            "e.toml:2:1: [controller] needs 'server_key', the controller's CURVE public key "
            "('curve:<Z85>'), unless insecure = true");
  EXPECT_EQ(error(head + endpoint + key),
            "e.toml:2:1: [controller] needs 'client_key', the path of this enforcer's CURVE "
            "secret key (drawbridge-controller keygen --out NAME --curve writes NAME.curve), "
            "unless insecure = true");
  EXPECT_EQ(error(head + "endpoint = \"udp://192.0.2.10:7400\"\n" + key + client),
            "e.toml:3:12: 'endpoint' must be a tcp:// or ipc:// endpoint (e.g. "
            "\"tcp://192.0.2.10:7400\"), got 'udp://192.0.2.10:7400'");
  EXPECT_EQ(error(head + "endpoint = 7400\n"),
            "e.toml:3:12: 'endpoint' must be a non-empty string");
  EXPECT_EQ(error(head + endpoint + "server_key = \"curve:short\"\n" + client),
            "e.toml:4:14: 'server_key': CURVE public key has 5 characters, expected 40 (Z85)");
  EXPECT_EQ(
      error(head + endpoint +
            "server_key = \"ed25519:Ve4NiqpHfCHCPDDZbRk6aQHSiHRup4WA65qTreuuWlM=\"\n" + client)
          .substr(0, 58),
      "e.toml:4:14: 'server_key': this is an Ed25519 signing key;");
  EXPECT_EQ(error(head + endpoint + key + "client_key = \"\"\n"),
            "e.toml:5:14: 'client_key' must be a non-empty string");
  EXPECT_EQ(error(head + endpoint + key + client + "insecure = 1\n"),
            "e.toml:6:12: 'insecure' must be true or false");
  EXPECT_EQ(error(head + endpoint + key + client + "heartbeat_seconds = 0\n"),
            "e.toml:6:21: 'heartbeat_seconds' must be an integer from 1 to 3600");
  EXPECT_EQ(error(head + endpoint + key + client + "heartbeat_seconds = 3601\n"),
            "e.toml:6:21: 'heartbeat_seconds' must be an integer from 1 to 3600");
  EXPECT_EQ(error(head + endpoint + key + client + "server = \"x\"\n"),
            "e.toml:6:1: unknown key 'server' in [controller] (expected: endpoint, server_key, "
            "client_key, insecure, heartbeat_seconds)");
  EXPECT_EQ(error("controller = \"tcp://192.0.2.10:7400\"\n"),
            "e.toml:1:14: 'controller' must be a table ([controller])");
}

TEST_F(EnforcerConfigTest, UnknownTopLevelKeyListsController) {
  EXPECT_EQ(error("polcy = \"p.toml\"\n"),
            "e.toml:1:9: unknown key 'polcy' (expected: policy, table, log_group, priority, "
            "state_dir, trust, expiry_warning_hours, controller)");
}

}  // namespace
}  // namespace drawbridge
