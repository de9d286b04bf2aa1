#include "common/service_notify.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace drawbridge::service {

namespace {

// A status line is one line: a newline would start a new assignment in the datagram.
std::string one_line(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

void notify(std::string_view state, std::string_view status) {
  std::string message(state);
  if (!status.empty()) message += (message.empty() ? "" : "\n") + ("STATUS=" + one_line(status));
  // Failure to reach the service manager is not the daemon's problem: it keeps working, and
  // systemd itself reports a unit that never became ready.
  (void)sd_notify(/*unset_environment=*/0, message.c_str());
}

}  // namespace

void ready(std::string_view status) {
  notify("READY=1", status);
}
void reloading(std::string_view status) {
  notify("RELOADING=1", status);
}
void stopping(std::string_view status) {
  notify("STOPPING=1", status);
}
void status(std::string_view status) {
  notify("", status);
}

}  // namespace drawbridge::service
