// Readiness and state for the service manager (systemd `Type=notify`, sd_notify(3)). Both
// daemons use it so that `systemctl start` returns only once the daemon is doing its job (for the
// enforcer: its table is in the kernel), and `systemctl status` shows a one-line status.
// Outside systemd (no NOTIFY_SOCKET) every call does nothing, so the daemons run the same from a
// shell, a test or a unit.
#pragma once

#include <string_view>

namespace drawbridge::service {

// READY=1 with a status line: start-up (or a reload) is complete.
void ready(std::string_view status);
// RELOADING=1: a reload (SIGHUP) has begun; ready() ends it.
void reloading(std::string_view status);
// STOPPING=1: the daemon is shutting down on purpose (not a crash).
void stopping(std::string_view status);
// Only the status line, e.g. "waiting for the controller's first bundle".
void status(std::string_view status);

}  // namespace drawbridge::service
