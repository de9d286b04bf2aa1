// SIGHUP's split of a re-read config into what applies at once and what needs a restart.
#include <gtest/gtest.h>

#include "enforcer/daemon.h"

namespace drawbridge {
namespace {

using Keys = std::vector<std::string>;

TEST(SettingsNeedingRestart, NothingWhenOnlyLiveSettingsChange) {
  DaemonOptions running;
  DaemonOptions reread = running;
  reread.policy_path = "/etc/drawbridge/other.toml";
  reread.trust_path = "/etc/drawbridge/trust.toml";
  reread.expiry_warning = std::chrono::hours(72);
  EXPECT_EQ(settings_needing_restart(running, reread), Keys{});
}

TEST(SettingsNeedingRestart, NamesEachKeyThatNeedsARestart) {
  DaemonOptions running;
  DaemonOptions reread = running;
  reread.compile.table = "other";
  reread.compile.log_group = 7;
  reread.compile.log_rate_per_source = 50;
  reread.compile.priority = -20;
  reread.state_dir = "/srv/drawbridge";
  EXPECT_EQ(settings_needing_restart(running, reread),
            (Keys{"table", "log_group", "log_rate_per_source", "priority", "state_dir"}));
}

TEST(SettingsNeedingRestart, SeesChangesInsideTheEventsAndControllerTables) {
  DaemonOptions running;
  SyslogOutputConfig soc;
  soc.name = "soc";
  soc.host = "192.0.2.50";
  running.events.syslog.push_back(soc);
  running.controller.emplace();
  running.controller->endpoint = "tcp://192.0.2.10:7400";
  DaemonOptions reread = running;
  reread.events.syslog[0].port = 6514;
  EXPECT_EQ(settings_needing_restart(running, reread), Keys{"[events]"});
  reread = running;
  reread.controller->heartbeat = std::chrono::seconds(30);
  EXPECT_EQ(settings_needing_restart(running, reread), Keys{"[controller]"});
  reread.controller.reset();
  EXPECT_EQ(settings_needing_restart(running, reread), Keys{"[controller]"});
}

}  // namespace
}  // namespace drawbridge
