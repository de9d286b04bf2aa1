#pragma once

namespace drawbridge {

// Parses the command line and runs the subcommand. Exit codes: 0 ok, 1 refused or failed,
// 2 usage error.
int run_cli(int argc, char** argv);

}  // namespace drawbridge
