// The controller's fleet subcommands: `serve` (the daemon), and `publish`, `status` and
// `events`, which talk to a running `serve` through its local admin socket.
#pragma once

#include <cstddef>
#include <string>

namespace drawbridge {

int cmd_serve(const std::string& config_path);
int cmd_publish(const std::string& config_path, const std::string& bundle_path, bool force);
int cmd_status(const std::string& config_path, bool json);
// The most recent SOC events the enforcers sent upstream (of one site when `site` is set).
int cmd_events(const std::string& config_path, const std::string& site, std::size_t limit,
               bool json);

}  // namespace drawbridge
