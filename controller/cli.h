#pragma once

namespace drawbridge {

// Parses the controller's command line and runs the subcommand. Exit codes: 0 ok (for verify:
// accept), 1 refused or failed, 2 usage error.
int run_controller_cli(int argc, char** argv);

}  // namespace drawbridge
