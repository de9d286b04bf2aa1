// Replacing a file so that readers see the old content or the new, never a torn write, and a
// crash leaves one of the two on disk: temp file next to it, fsync, rename, fsync of the
// directory. Used for state records (enforcer) and bundles (controller).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace drawbridge {

// Creates missing parent directories. The file gets mode 0644: what is written this way is
// state or signed bundles, not secrets.
Result<void> write_file_atomically(const std::string& path, std::string_view content);

// A small file's whole content (a state record, a config); nullopt when it does not exist.
Result<std::optional<std::string>> read_file_if_exists(const std::string& path);

}  // namespace drawbridge
