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
            "e.toml:1:9: unknown key 'polcy' (expected: policy, table, log_group, "
            "log_rate_per_source, priority, state_dir, trust, expiry_warning_hours, controller, "
            "events)");
}

TEST_F(EnforcerConfigTest, LogRatePerSourceIsOffByDefaultAndBounded) {
  const auto plain = load("policy = \"/p.toml\"\n");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->log_rate_per_source, 0u);
  const auto set = load("log_rate_per_source = 200\n");
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->log_rate_per_source, 200u);
  EXPECT_EQ(error("log_rate_per_source = -1\n"),
            "e.toml:1:23: 'log_rate_per_source' must be an integer from 0 (log every denied "
            "packet) to 1000000 packets per second");
  EXPECT_NE(error("log_rate_per_source = \"fast\"\n"), "");
}

TEST_F(EnforcerConfigTest, EventsTableIsReadExactly) {
  const auto r = load(R"(policy = "/p.toml"
[events]
organization = "Clinic East"
aggregation_seconds = 30
spool_max_mb = 16
[events.audit_file]
path = "/var/log/drawbridge/audit.jsonl"
retention_days = 365
[[events.syslog]]
name = "soc"
transport = "tls"
host = "192.0.2.50"
format = "cef"
ca_file = "/etc/drawbridge/soc-ca.pem"
server_name = "soc.example"
pinned_sha256 = "AA:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99"
[[events.syslog]]
transport = "udp"
host = "192.0.2.51"
)");
  ASSERT_TRUE(r.ok()) << r.error().str();
  const auto& e = r->events;
  EXPECT_EQ(e.organization, "Clinic East");
  EXPECT_EQ(e.aggregation, std::chrono::seconds(30));
  EXPECT_EQ(e.spool_max_bytes, 16u << 20);
  ASSERT_TRUE(e.audit_file);
  EXPECT_EQ(e.audit_file->retention, std::chrono::days(365));
  EXPECT_EQ(e.audit_file->max_bytes, 64u << 20) << "default";
  ASSERT_EQ(e.syslog.size(), 2u);
  EXPECT_EQ(e.syslog[0].name, "soc");
  EXPECT_EQ(e.syslog[0].port, 6514) << "TLS default port";
  EXPECT_EQ(e.syslog[0].pinned_sha256,
            "aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899");
  EXPECT_EQ(e.syslog[1].name, "syslog2");
  EXPECT_EQ(e.syslog[1].port, 514);
  EXPECT_EQ(e.syslog[1].format, "ecs") << "default";
}

TEST_F(EnforcerConfigTest, NoEventsTableMeansDefaults) {
  const auto r = load("policy = \"/p.toml\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->events.audit_file);
  EXPECT_TRUE(r->events.syslog.empty());
  EXPECT_EQ(r->events.aggregation, std::chrono::seconds(60));
  EXPECT_TRUE(r->events.upstream) << "on by default (used only with a [controller] table)";
}

TEST_F(EnforcerConfigTest, UpstreamCanBeTurnedOff) {
  const auto r = load("policy = \"/p.toml\"\n[events]\nupstream = false\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_FALSE(r->events.upstream);
}

TEST_F(EnforcerConfigTest, EventsErrorsAreLocated) {
  EXPECT_EQ(error("[events]\naggregation_seconds = 0\n"),
            "e.toml:2:23: 'aggregation_seconds' must be an integer from 1 to 3600");
  EXPECT_EQ(error("[events]\ncolour = 1\n"),
            "e.toml:2:10: unknown key 'colour' in [events] (expected: organization, "
            "aggregation_seconds, spool_dir, spool_max_mb, upstream, audit_file, syslog)");
  EXPECT_EQ(error("[events]\nupstream = \"no\"\n"),
            "e.toml:2:12: 'upstream' must be true or false");
  EXPECT_EQ(error("[[events.syslog]]\nname = \"controller\"\nhost = \"h\"\n"),
            "e.toml:1:1: [[events.syslog]] may not be named 'controller': that name is the "
            "upstream output's (to the controller)");
  EXPECT_EQ(error("[[events.syslog]]\nhost = \"h\"\ntransport = \"carrier-pigeon\"\n"),
            "e.toml:3:13: 'transport' must be \"udp\", \"tcp\" or \"tls\"");
  EXPECT_EQ(error("[[events.syslog]]\nhost = \"h\"\ntransport = \"tls\"\n"),
            "e.toml:1:1: [[events.syslog]] 'syslog1' uses TLS and needs 'ca_file': the CA that "
            "signed the collector's certificate (anything else could pose as the SOC)");
  EXPECT_EQ(error("[[events.syslog]]\nhost = \"h\"\nca_file = \"/ca.pem\"\n"),
            "e.toml:1:1: [[events.syslog]] 'syslog1': ca_file, server_name and pinned_sha256 "
            "apply only to transport = \"tls\"");
  EXPECT_EQ(error("[[events.syslog]]\nname = \"a\"\nhost = \"h\"\n[[events.syslog]]\nname = "
                  "\"a\"\nhost = \"h\"\n"),
            "e.toml:1:1: two [[events.syslog]] outputs are named 'a'");
  EXPECT_EQ(error("[events.audit_file]\nretention_days = 7\n"),
            "e.toml:1:1: [events.audit_file] needs 'path'");
}

}  // namespace
}  // namespace drawbridge
