// The controller's configuration file (TOML). Every key is documented in docs/configuration.md.
//
//   listen = "tcp://0.0.0.0:7400"        # ROUTER endpoint the enforcers dial
//   curve_key = "/etc/drawbridge/controller.curve"   # CURVE secret (keygen --curve)
//   state_dir = "/var/lib/drawbridge-controller"     # fleet.db and admin.sock
//   heartbeat_seconds = 5                # how often enforcers are expected to speak
//   stale_after_seconds = 15             # silent longer than this: shown as stale
//   insecure = false                     # true: plain TCP, no CURVE, no ZAP (loudly)
//
//   [[enforcer]]                         # one per enforcer allowed to connect
//   site = "clinic-east"
//   name = "gw1"                         # optional, default: the site
//   key = "curve:<Z85>"                  # its CURVE public key (its keygen --curve .pub)
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/curve_keys.h"
#include "common/result.h"

namespace drawbridge {

struct ConfiguredEnforcer {
  std::string site;
  std::string name;
  CurvePublicKey key;
};

struct ControllerConfig {
  std::string listen = "tcp://0.0.0.0:7400";
  std::string curve_key;  // path of the secret key file; required unless insecure
  std::string state_dir = "/var/lib/drawbridge-controller";
  std::chrono::seconds heartbeat{5};
  std::chrono::seconds stale_after{15};
  bool insecure = false;
  std::vector<ConfiguredEnforcer> enforcers;

  // ipc:// endpoint of the local admin socket (publish, status) inside state_dir.
  [[nodiscard]] std::string admin_endpoint() const;
  [[nodiscard]] std::string database_path() const;
};

// Strict: unknown keys, wrong types, a malformed key, a key listed twice, a duplicate
// (site, name), stale_after below twice the heartbeat, and a missing curve_key without
// `insecure = true` are errors located at file:line:column.
[[nodiscard]] Result<ControllerConfig> load_controller_config(const std::string& path);

}  // namespace drawbridge
