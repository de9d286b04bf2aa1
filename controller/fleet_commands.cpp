#include "controller/fleet_commands.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/command_line.h"
#include "common/signing.h"
#include "controller/admin_channel.h"
#include "controller/controller_config.h"
#include "controller/server.h"

namespace drawbridge {

namespace {

constexpr auto kAdminTimeout = std::chrono::seconds(10);

int fail(const std::string& message) {
  std::cerr << message << "\n";
  return kExitFailed;
}

Result<ControllerConfig> config_for_admin(const std::string& path) {
  auto cfg = load_controller_config(path);
  if (!cfg.ok()) return make_error(cfg.error().str());
  const auto sock = cfg->state_dir + "/admin.sock";
  // A running controller holds the lock; if we can take it, nobody will answer the socket.
  bool running = false;
  if (const int fd = ::open((cfg->state_dir + "/controller.lock").c_str(), O_RDONLY | O_CLOEXEC);
      fd >= 0) {
    running = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
  }
  if (!running || !std::filesystem::exists(sock)) {
    return make_error("no controller is running with state directory " + cfg->state_dir + " (" +
                      "its lock is free): start `drawbridge-controller serve --config " + path +
                      "` first");
  }
  return cfg;
}

std::string age(const nlohmann::json& at, std::int64_t now) {
  if (!at.is_number()) return "-";
  const auto s = (now - at.get<std::int64_t>()) / 1000;
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 7200) return std::to_string(s / 60) + "m ago";
  if (s < 172800) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

std::string serial(const nlohmann::json& v) {
  return v.is_number() ? std::to_string(v.get<std::uint64_t>()) : "-";
}

// One line of a rejection reason: the first line carries the gist; `--json` has all of it.
std::string first_line(const std::string& text, std::size_t max) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > max) line = line.substr(0, max - 3) + "...";
  return line.empty() ? "-" : line;
}

std::string count_text(const nlohmann::json& v) {
  return v.is_number() ? std::to_string(v.get<std::uint64_t>()) : "0";
}

// "2m ago 198.51.100.66 unapproved-source": enough to tell whether to look closer.
std::string last_violation(const nlohmann::json& last, std::int64_t now) {
  if (!last.is_object()) return "-";
  std::string text = age(last["at"], now);
  const auto source = last.value("source", "");
  if (!source.empty()) text += " " + source;
  const auto reason = last.value("reason", "");
  if (!reason.empty()) text += " " + reason;
  return text;
}

std::string utc_time(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace

int cmd_serve(const std::string& config_path) {
  auto cfg = load_controller_config(config_path);
  if (!cfg.ok()) return fail(cfg.error().str());
  if (auto ok = init_sodium(); !ok.ok()) return fail(ok.error().message);
  return run_controller(*cfg, config_path);
}

int cmd_publish(const std::string& config_path, const std::string& bundle_path, bool force) {
  auto cfg = config_for_admin(config_path);
  if (!cfg.ok()) return fail(cfg.error().message);
  std::ifstream in(bundle_path, std::ios::binary);
  if (!in) return fail("cannot read " + bundle_path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (bytes.str().size() > kMaxPolicyBytes + 64 * 1024) return fail(bundle_path + " is too large");
  auto reply = admin_request(cfg->admin_endpoint(), {"publish", bytes.str(), force ? "force" : ""},
                             kAdminTimeout);
  if (!reply.ok()) return fail(bundle_path + ": " + reply.error().message);
  std::cout << *reply << "\n";
  return kExitOk;
}

int cmd_status(const std::string& config_path, bool json) {
  auto cfg = config_for_admin(config_path);
  if (!cfg.ok()) return fail(cfg.error().message);
  auto reply = admin_request(cfg->admin_endpoint(), {"status"}, kAdminTimeout);
  if (!reply.ok()) return fail(reply.error().message);
  const auto doc = nlohmann::json::parse(*reply, nullptr, false);
  if (doc.is_discarded()) return fail("the controller sent a malformed status");
  if (json) {
    std::cout << doc.dump(2) << "\n";
    return kExitOk;
  }
  const auto now = doc.value("now", std::int64_t{0});
  std::ostringstream out;
  out << std::left << std::setw(16) << "SITE" << std::setw(12) << "ENFORCER" << std::setw(11)
      << "STATE" << std::setw(10) << "SEEN" << std::setw(8) << "DESIRED" << std::setw(8)
      << "APPLIED" << std::setw(20) << "LAST ACK"
      << "LAST REJECTION\n";
  for (const auto& e : doc.value("enforcers", nlohmann::json::array())) {
    std::string state = e.value("state", "?");
    if (e.value("locked_down", false)) state += ",lockdown";
    if (e.value("expired", false)) state += ",expired";
    const std::string ack = e.value("last_ack", "").empty()
                                ? "-"
                                : e.value("last_ack", "") + " " + serial(e["last_ack_serial"]) +
                                      " " + age(e["last_ack_at"], now);
    out << std::left << std::setw(16) << e.value("site", "") << std::setw(12) << e.value("name", "")
        << std::setw(11) << state << std::setw(10) << age(e["last_seen"], now) << std::setw(8)
        << serial(e["desired_serial"]) << std::setw(8) << serial(e["applied_serial"])
        << std::setw(20) << ack << first_line(e.value("last_rejection", ""), 100) << "\n";
  }
  // The SOC side, per enforcer: what its events upstream added up to.
  out << "\n"
      << std::left << std::setw(16) << "SITE" << std::setw(12) << "ENFORCER" << std::setw(12)
      << "VIOLATIONS" << std::setw(14) << "DENIED PKTS" << std::setw(10) << "SESSIONS"
      << std::setw(8) << "LOSS" << std::setw(12) << "UPSTREAM"
      << "LAST VIOLATION\n";
  for (const auto& e : doc.value("enforcers", nlohmann::json::array())) {
    const auto soc = e.value("soc", nlohmann::json::object());
    const auto seq = soc.value("last_sequence", std::uint64_t{0});
    out << std::left << std::setw(16) << e.value("site", "") << std::setw(12) << e.value("name", "")
        << std::setw(12) << count_text(soc["violations"]) << std::setw(14)
        << count_text(soc["denied_packets"]) << std::setw(10) << count_text(soc["sessions"])
        << std::setw(8) << count_text(soc["loss_events"]) << std::setw(12)
        << (seq == 0 ? std::string("-") : "seq " + std::to_string(seq))
        << last_violation(soc["last_violation"], now) << "\n";
  }
  const auto counters = doc.value("counters", nlohmann::json::object());
  if (!counters.empty()) {
    out << "counters:";
    for (const auto& [k, v] : counters.items()) out << " " << k << "=" << v;
    out << "\n";
  }
  std::cout << out.str();
  return kExitOk;
}

}  // namespace drawbridge

namespace drawbridge {

int cmd_events(const std::string& config_path, const std::string& site, std::size_t limit,
               bool json) {
  auto cfg = config_for_admin(config_path);
  if (!cfg.ok()) return fail(cfg.error().message);
  auto reply =
      admin_request(cfg->admin_endpoint(), {"events", site, std::to_string(limit)}, kAdminTimeout);
  if (!reply.ok()) return fail(reply.error().message);
  const auto doc = nlohmann::json::parse(*reply, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) return fail("the controller sent malformed events");
  if (json) {
    std::cout << doc.dump(2) << "\n";
    return kExitOk;
  }
  // Oldest first, as a log reads.
  std::ostringstream out;
  out << std::left << std::setw(22) << "TIME" << std::setw(14) << "SITE" << std::setw(10) << "SEQ"
      << std::setw(26) << "ACTION" << std::setw(18) << "SOURCE"
      << "REASON / MESSAGE\n";
  for (auto it = doc.rbegin(); it != doc.rend(); ++it) {
    const auto& ev = (*it)["event"];
    if (!ev.is_object()) continue;
    const auto flow = ev.value("flow", nlohmann::json::object());
    std::string what = ev.value("reason", "");
    if (what.empty()) what = first_line(ev.value("message", ""), 60);
    const auto packets = ev.value("packets", std::uint64_t{0});
    if (ev.value("kind", "") == "violation" && packets > 0) {
      what += " (" + std::to_string(packets) + " pkts)";
    }
    out << std::left << std::setw(22) << utc_time(ev.value("ts", std::int64_t{0})) << std::setw(14)
        << it->value("site", "") << std::setw(10) << it->value("sequence", std::uint64_t{0})
        << std::setw(26) << ev.value("action", "") << std::setw(18)
        << flow.value("src", std::string("-")) << what << "\n";
  }
  std::cout << out.str();
  return kExitOk;
}

}  // namespace drawbridge
