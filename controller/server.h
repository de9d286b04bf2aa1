// `serve`: the controller's event loop. One thread polls the ROUTER socket the enforcers dial,
// the ZAP handler that admits only configured CURVE keys, the local admin socket (`publish`,
// `status`) and a signal descriptor. Fleet state lives in SQLite (controller/fleet_store.h).
//
// The controller is not trusted by the enforcers: it only carries signed bundles. What it
// checks here (signatures verify, the policy parses, the serial does not go backwards) is to
// catch an operator's mistake early, not to protect anyone.
#pragma once

#include "controller/controller_config.h"

namespace drawbridge {

// Returns the process exit code. Stops cleanly on SIGTERM/SIGINT; SIGHUP re-reads the config's
// list of enforcers.
int run_controller(const ControllerConfig& config, const std::string& config_path);

}  // namespace drawbridge
