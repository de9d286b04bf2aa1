// Where a toml++ node came from, as this project reports it in errors: file:line:column.
// For the .cpp files that already parse TOML (it includes toml++).
#pragma once

#include <toml++/toml.h>

#include <string>

#include "common/result.h"

namespace drawbridge {

[[nodiscard]] inline SourceLocation where(const std::string& path, const toml::source_region& r) {
  return SourceLocation{path, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

}  // namespace drawbridge
