// The command-line conventions both executables follow: exit 0 ok, 1 refused or failed, 2 usage.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>

namespace drawbridge {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Parses the command line. Returns the exit code when parsing ends the program (--help and
// --version: 0, a usage error: 2, after printing what CLI11 prints), nullopt to go on.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  } catch (const CLI::CallForVersion& e) {
    app.exit(e);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  return std::nullopt;
}

}  // namespace drawbridge
