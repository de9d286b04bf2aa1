// The controller's configuration file (controller/controller_config.h): values, defaults, and
// every refusal with its file:line:column.
#include "controller/controller_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/signing.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

class ControllerConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(init_sodium().ok());
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-ctlcfg-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  Result<ControllerConfig> load(const std::string& text) {
    std::ofstream(dir_ / "c.toml", std::ios::binary) << text;
    return load_controller_config((dir_ / "c.toml").string());
  }

  // The error as printed, with the temporary directory left out: "c.toml:3:1: …".
  std::string error(const std::string& text) {
    const auto r = load(text);
    if (r.ok()) return "(accepted)";
    auto s = r.error().str();
    const auto dir = dir_.string() + "/";
    if (s.starts_with(dir)) s.erase(0, dir.size());
    return s;
  }

  static std::string enforcer(const std::string& site, const std::string& key,
                              const std::string& name = "") {
    std::string out = "\n[[enforcer]]\nsite = \"" + site + "\"\n";
    if (!name.empty()) out += "name = \"" + name + "\"\n";
    return out + "key = \"" + key + "\"\n";
  }

  fs::path dir_;
  std::string key1_ = CurveSecretKey::generate().public_key().str();
  std::string key2_ = CurveSecretKey::generate().public_key().str();
  std::string key3_ = CurveSecretKey::generate().public_key().str();
};

TEST_F(ControllerConfigTest, FullFileIsReadExactly) {
  const auto bare = CurvePublicKey::parse(key3_)->z85();
  const auto r = load(
      "listen = \"tcp://192.0.2.1:7500\"\n"
      "curve_key = \"/etc/drawbridge/controller.curve\"\n"
      "state_dir = \"/srv/dbc\"\n"
      "heartbeat_seconds = 10\n"
      "stale_after_seconds = 20\n"
      "insecure = false\n" +
      enforcer("clinic-east", key1_, "gw1") + enforcer("clinic-east", key2_, "gw2") +
      enforcer("dental3", bare));
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->listen, "tcp://192.0.2.1:7500");
  EXPECT_EQ(r->curve_key, "/etc/drawbridge/controller.curve");
  EXPECT_EQ(r->state_dir, "/srv/dbc");
  EXPECT_EQ(r->heartbeat, std::chrono::seconds(10));
  EXPECT_EQ(r->stale_after, std::chrono::seconds(20));
  EXPECT_FALSE(r->insecure);
  EXPECT_EQ(r->admin_endpoint(), "ipc:///srv/dbc/admin.sock");
  EXPECT_EQ(r->database_path(), "/srv/dbc/fleet.db");
  ASSERT_EQ(r->enforcers.size(), 3u);
  EXPECT_EQ(r->enforcers[0].site, "clinic-east");
  EXPECT_EQ(r->enforcers[0].name, "gw1");
  EXPECT_EQ(r->enforcers[0].key.str(), key1_);
  EXPECT_EQ(r->enforcers[1].name, "gw2");
  EXPECT_EQ(r->enforcers[1].key.str(), key2_);
  EXPECT_EQ(r->enforcers[2].site, "dental3");
  EXPECT_EQ(r->enforcers[2].name, "dental3") << "the name defaults to the site";
  EXPECT_EQ(r->enforcers[2].key.str(), key3_) << "the bare Z85 form is accepted";
}

TEST_F(ControllerConfigTest, Defaults) {
  const auto r = load("curve_key = \"k.curve\"\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->listen, "tcp://0.0.0.0:7400");
  EXPECT_EQ(r->state_dir, "/var/lib/drawbridge-controller");
  EXPECT_EQ(r->admin_endpoint(), "ipc:///var/lib/drawbridge-controller/admin.sock");
  EXPECT_EQ(r->database_path(), "/var/lib/drawbridge-controller/fleet.db");
  EXPECT_EQ(r->heartbeat, std::chrono::seconds(5));
  EXPECT_EQ(r->stale_after, std::chrono::seconds(15));
  EXPECT_FALSE(r->insecure);
  EXPECT_TRUE(r->enforcers.empty());
}

TEST_F(ControllerConfigTest, StaleAfterDefaultsToThreeHeartbeats) {
  const auto r = load("curve_key = \"k\"\nheartbeat_seconds = 60\n");
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_EQ(r->stale_after, std::chrono::seconds(180));
}

TEST_F(ControllerConfigTest, InsecureNeedsNoCurveKey) {
  const auto r = load("insecure = true\nlisten = \"ipc:///tmp/x.sock\"\n" + enforcer("lab", key1_));
  ASSERT_TRUE(r.ok()) << r.error().str();
  EXPECT_TRUE(r->insecure);
  EXPECT_TRUE(r->curve_key.empty());
  EXPECT_EQ(r->listen, "ipc:///tmp/x.sock");
}

TEST_F(ControllerConfigTest, TopLevelErrorsAreLocated) {
  EXPECT_EQ(error("insecure = false\n"),
            "c.toml: 'curve_key' is required: the path of the controller's CURVE secret key "
            "(drawbridge-controller keygen --out NAME --curve writes NAME.curve); only a lab "
            "without encryption may set insecure = true instead");
  EXPECT_EQ(error("curve_key = \"k\"\nlisen = \"tcp://x:1\"\n"),
            "c.toml:2:1: unknown key 'lisen' (expected: listen, curve_key, state_dir, "
            "heartbeat_seconds, stale_after_seconds, insecure, enforcer)");
  EXPECT_EQ(error("curve_key = \"k\"\nlisten = \"udp://0.0.0.0:7400\"\n"),
            "c.toml:2:10: 'listen' must be a tcp:// or ipc:// endpoint (e.g. "
            "\"tcp://0.0.0.0:7400\"), got 'udp://0.0.0.0:7400'");
  EXPECT_EQ(error("curve_key = \"k\"\nlisten = \"tcp://\"\n"),
            "c.toml:2:10: 'listen' must be a tcp:// or ipc:// endpoint (e.g. "
            "\"tcp://0.0.0.0:7400\"), got 'tcp://'");
  EXPECT_EQ(error("curve_key = \"k\"\nlisten = \"\"\n"),
            "c.toml:2:10: 'listen' must be a non-empty string");
  EXPECT_EQ(error("curve_key = 7\n"), "c.toml:1:13: 'curve_key' must be a non-empty string");
  EXPECT_EQ(error("curve_key = \"k\"\nstate_dir = [\"/x\"]\n"),
            "c.toml:2:13: 'state_dir' must be a non-empty string");
  EXPECT_EQ(error("curve_key = \"k\"\nheartbeat_seconds = 0\n"),
            "c.toml:2:21: 'heartbeat_seconds' must be from 1 to 3600, got 0");
  EXPECT_EQ(error("curve_key = \"k\"\nheartbeat_seconds = 3601\n"),
            "c.toml:2:21: 'heartbeat_seconds' must be from 1 to 3600, got 3601");
  EXPECT_EQ(error("curve_key = \"k\"\nheartbeat_seconds = 1.5\n"),
            "c.toml:2:21: 'heartbeat_seconds' must be an integer");
  EXPECT_EQ(error("curve_key = \"k\"\nstale_after_seconds = 0\n"),
            "c.toml:2:23: 'stale_after_seconds' must be from 1 to 604800 (a week), got 0");
  EXPECT_EQ(error("curve_key = \"k\"\ninsecure = \"no\"\n"),
            "c.toml:2:12: 'insecure' must be true or false");
  EXPECT_EQ(error("curve_key = \"k\"\nenforcer = \"gw1\"\n"),
            "c.toml:2:12: 'enforcer' must be an array of tables ([[enforcer]])");
  EXPECT_EQ(error("curve_key = \"k\"\nenforcer = [1]\n"),
            "c.toml:2:13: each 'enforcer' entry must be a table ([[enforcer]])");
}

TEST_F(ControllerConfigTest, StaleAfterBelowTwoHeartbeatsIsRefusedWhereverItIsWritten) {
  // The check needs both values; it points at stale_after_seconds even when it comes first.
  EXPECT_EQ(error("stale_after_seconds = 19\ncurve_key = \"k\"\nheartbeat_seconds = 10\n"),
            "c.toml:1:23: 'stale_after_seconds' (19) must be at least twice "
            "'heartbeat_seconds' (10)");
  EXPECT_EQ(error("curve_key = \"k\"\nstale_after_seconds = 9\n"),
            "c.toml:2:23: 'stale_after_seconds' (9) must be at least twice "
            "'heartbeat_seconds' (5)");
  EXPECT_EQ(error("curve_key = \"k\"\nstale_after_seconds = 10\n"), "(accepted)");
}

TEST_F(ControllerConfigTest, StateDirMustLeaveRoomForTheAdminSocket) {
  const std::string fits = "/" + std::string(96, 'd');  // + "/admin.sock" = 108 > 107
  EXPECT_EQ(error("curve_key = \"k\"\nstate_dir = \"" + fits.substr(0, 96) + "\"\n"), "(accepted)");
  EXPECT_EQ(error("curve_key = \"k\"\nstate_dir = \"" + fits + "\"\n"),
            "c.toml:2:13: 'state_dir' is too long: its admin socket path would have 108 "
            "characters, at most 107 fit in a Unix socket address");
}

TEST_F(ControllerConfigTest, EnforcerErrorsAreLocated) {
  const std::string head = "curve_key = \"k\"\n";  // line 1; [[enforcer]] is on line 3
  EXPECT_EQ(error(head + "\n[[enforcer]]\nkey = \"" + key1_ + "\"\n"),
            "c.toml:3:1: [[enforcer]] needs 'site'");
  EXPECT_EQ(error(head + "\n[[enforcer]]\nsite = \"a\"\n"),
            "c.toml:3:1: [[enforcer]] needs 'key' (its CURVE public key, 'curve:<Z85>')");
  EXPECT_EQ(error(head + enforcer("-east", key1_)),
            "c.toml:4:8: site '-east' is not a valid name (1-64 of A-Z a-z 0-9 . _ -, starting "
            "with a letter or digit)");
  EXPECT_EQ(error(head + enforcer(std::string(65, 'a'), key1_)).substr(0, 19),
            "c.toml:4:8: site 'a");
  EXPECT_EQ(error(head + enforcer("east", key1_, "gw 1")),
            "c.toml:5:8: name 'gw 1' is not a valid name (1-64 of A-Z a-z 0-9 . _ -, starting "
            "with a letter or digit)");
  EXPECT_EQ(error(head + enforcer("east", "curve:abc")),
            "c.toml:5:7: 'key': CURVE public key has 3 characters, expected 40 (Z85)");
  EXPECT_EQ(error(head + "\n[[enforcer]]\nsite = 5\nkey = \"" + key1_ + "\"\n"),
            "c.toml:4:8: 'site' must be a string");
  EXPECT_EQ(error(head + enforcer("east", key1_) + "port = 1\n"),
            "c.toml:6:1: unknown key 'port' in [[enforcer]] (expected: site, name, key)");
}

TEST_F(ControllerConfigTest, DuplicatesAreRefusedAtTheSecondOccurrence) {
  const std::string head = "curve_key = \"k\"\n";
  // Lines: 3 [[enforcer]], 4 site, 5 key; 7 [[enforcer]], 8 site, 9 name, 10 key.
  EXPECT_EQ(error(head + enforcer("east", key1_) + enforcer("west", key1_, "gw")),
            "c.toml:10:7: key " + key1_ + " is already the key of enforcer 'east' (line 5)");
  EXPECT_EQ(error(head + enforcer("east", key1_) + enforcer("east", key2_, "east")),
            "c.toml:9:8: enforcer 'east' is listed twice (first at line 4); give each a "
            "distinct 'name'");
  EXPECT_EQ(error(head + enforcer("east", key1_, "gw") + enforcer("east", key2_, "gw")),
            "c.toml:10:8: enforcer 'gw' of site 'east' is listed twice (first at line 5); give "
            "each a distinct 'name'");
  // The same name at different sites, and different names at one site, are distinct.
  EXPECT_EQ(error(head + enforcer("east", key1_, "gw") + enforcer("west", key2_, "gw") +
                  enforcer("east", key3_, "gw2")),
            "(accepted)");
}

TEST_F(ControllerConfigTest, SyntaxErrorsAndMissingFilesAreReported) {
  EXPECT_EQ(error("curve_key = \"k\"\nlisten = \n").substr(0, 11), "c.toml:2:10");
  const auto missing = load_controller_config((dir_ / "nope.toml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().str().find("nope.toml"), std::string::npos);
  // The same TOML key twice is TOML's own error.
  EXPECT_EQ(error("curve_key = \"k\"\ncurve_key = \"j\"\n").substr(0, 9), "c.toml:2:");
}

}  // namespace
}  // namespace drawbridge
