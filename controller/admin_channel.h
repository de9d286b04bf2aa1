// The controller's local admin socket (ZeroMQ REP on ipc://STATE_DIR/admin.sock, reachable only
// by users who may enter the state directory): `publish`, `status` and `events` talk to the running
// controller through it. Requests and replies are multipart messages:
//
//   ["publish", <bundle bytes>, "force" | ""]  →  ["ok", <text>] | ["error", <text>]
//   ["status"]                                 →  ["ok", <JSON fleet status>] | ["error", <text>]
//   ["events", <site or "">, <limit>]          →  ["ok", <JSON array, newest first>] | ["error", …]
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/result.h"

namespace drawbridge {

// Sends one request and waits up to `timeout` for the reply; the reply's second frame on "ok",
// an error (with the controller's text, or why it could not be reached) otherwise.
Result<std::string> admin_request(const std::string& endpoint,
                                  const std::vector<std::string>& frames,
                                  std::chrono::milliseconds timeout);

}  // namespace drawbridge
