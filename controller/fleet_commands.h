// The controller's fleet subcommands: `serve` (the daemon), and `publish` and `status`, which
// talk to a running `serve` through its local admin socket.
#pragma once

#include <string>

namespace drawbridge {

int cmd_serve(const std::string& config_path);
int cmd_publish(const std::string& config_path, const std::string& bundle_path, bool force);
int cmd_status(const std::string& config_path, bool json);

}  // namespace drawbridge
