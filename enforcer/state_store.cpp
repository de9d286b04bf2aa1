#include "enforcer/state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/window_schedule.h"

namespace drawbridge {

namespace {

std::string state_path(const std::string& dir, const std::string& table) {
  return dir + "/" + table + ".applied.json";
}

Error sys_error(const std::string& what, const std::string& path) {
  return make_error(what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

Result<void> save_applied(const std::string& state_dir, const AppliedState& s) {
  nlohmann::json j{{"table", s.table},
                   {"site", s.site},
                   {"serial", s.serial},
                   {"policy", s.policy_path},
                   {"applied_at", format_instant(s.applied_at)}};
  if (s.expires) j["expires"] = format_instant(*s.expires);
  return write_file_atomically(state_path(state_dir, s.table), j.dump(2) + "\n");
}

Result<std::optional<AppliedState>> load_applied(const std::string& state_dir,
                                                 const std::string& table) {
  const auto path = state_path(state_dir, table);
  auto text = read_file_if_exists(path);
  if (!text.ok()) return text.error();
  if (!*text) return std::optional<AppliedState>{};
  try {
    const auto j = nlohmann::json::parse(**text);
    AppliedState s;
    s.table = j.at("table").get<std::string>();
    s.site = j.at("site").get<std::string>();
    s.serial = j.at("serial").get<std::uint64_t>();
    s.policy_path = j.at("policy").get<std::string>();
    const auto at = parse_instant(j.at("applied_at").get<std::string>());
    if (!at) return make_error(path + ": bad applied_at");
    s.applied_at = *at;
    if (j.contains("expires")) s.expires = parse_instant(j.at("expires").get<std::string>());
    return std::optional<AppliedState>{s};
  } catch (const std::exception& e) {
    return make_error(path + " is damaged (" + e.what() + "); delete it and apply again");
  }
}

namespace {

std::string skeleton_path(const std::string& dir, const std::string& table) {
  return dir + "/" + table + ".closed.json";
}

nlohmann::json elements_json(const std::vector<SetElement>& elements) {
  auto out = nlohmann::json::array();
  for (const auto& e : elements) {
    nlohmann::json j;
    if (e.address) {
      j["first"] = e.address->first.str();
      j["last"] = e.address->last.str();
    }
    if (e.service) j["service"] = e.service->str();
    out.push_back(std::move(j));
  }
  return out;
}

// Elements of `family` (address . service), or services only without one.
Result<std::vector<SetElement>> elements_from(const nlohmann::json& array,
                                              std::optional<Family> family) {
  std::vector<SetElement> out;
  for (const auto& j : array) {
    SetElement e;
    if (family) {
      const auto first = Address::parse(j.at("first").get<std::string>());
      const auto last = Address::parse(j.at("last").get<std::string>());
      if (!first || !last || first->family != *family || last->family != *family ||
          *last < *first) {
        return make_error("bad address range " + j.dump());
      }
      e.address = AddressRange{*first, *last};
    }
    auto service = PortRange::parse(j.at("service").get<std::string>());
    if (!service.ok()) return service.error();
    e.service = *service;
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

Result<void> save_closed_skeleton(const std::string& state_dir, const std::string& table,
                                  const ClosedSkeleton& skeleton) {
  if (auto saved = load_closed_skeleton(state_dir, table); saved.ok() && *saved == skeleton) {
    return {};
  }
  const nlohmann::json j{{"linked_v4", elements_json(skeleton.linked_v4)},
                         {"linked_v6", elements_json(skeleton.linked_v6)},
                         {"guarded", elements_json(skeleton.guarded)}};
  return write_file_atomically(skeleton_path(state_dir, table), j.dump(1) + "\n");
}

Result<std::optional<ClosedSkeleton>> load_closed_skeleton(const std::string& state_dir,
                                                           const std::string& table) {
  const auto path = skeleton_path(state_dir, table);
  auto text = read_file_if_exists(path);
  if (!text.ok()) return text.error();
  if (!*text) return std::optional<ClosedSkeleton>{};
  try {
    const auto j = nlohmann::json::parse(**text);
    ClosedSkeleton k;
    auto v4 = elements_from(j.at("linked_v4"), Family::v4);
    auto v6 = elements_from(j.at("linked_v6"), Family::v6);
    auto guarded = elements_from(j.at("guarded"), std::nullopt);
    for (const auto* r : {&v4, &v6, &guarded}) {
      if (!r->ok()) return make_error(path + " is damaged: " + r->error().message);
    }
    k.linked_v4 = std::move(*v4);
    k.linked_v6 = std::move(*v6);
    k.guarded = std::move(*guarded);
    return std::optional<ClosedSkeleton>{std::move(k)};
  } catch (const std::exception& e) {
    return make_error(path + " is damaged (" + e.what() + ")");
  }
}

namespace {
std::string lockdown_path(const std::string& dir) {
  return dir + "/lockdown.json";
}
}  // namespace

Result<void> save_lockdown(const std::string& state_dir, const Lockdown& lockdown) {
  nlohmann::json j{{"since", format_instant(lockdown.since)}};
  if (lockdown.until) j["until"] = format_instant(*lockdown.until);
  return write_file_atomically(lockdown_path(state_dir), j.dump(2) + "\n");
}

Result<void> release_lockdown(const std::string& state_dir) {
  std::error_code ec;
  std::filesystem::remove(lockdown_path(state_dir), ec);
  if (ec) return make_error("cannot remove " + lockdown_path(state_dir) + ": " + ec.message());
  return {};
}

std::optional<Instant> lockdown_until(const std::string& state_dir, Instant now) {
  std::ifstream in(lockdown_path(state_dir));
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(ss.str());
    if (!j.contains("until")) return Instant::max();
    const auto until = parse_instant(j.at("until").get<std::string>());
    if (!until) return Instant::max();
    if (*until <= now) return std::nullopt;
    return until;
  } catch (const std::exception&) {
    return Instant::max();
  }
}

namespace {

std::string link_path(const std::string& state_dir) {
  return state_dir + "/controller-link.json";
}

}  // namespace

Result<void> save_link_state(const std::string& state_dir, const LinkState& s) {
  nlohmann::json j{{"endpoint", s.endpoint},
                   {"connected", s.connected},
                   {"bundles_received", s.bundles_received},
                   {"bundles_applied", s.bundles_applied},
                   {"bundles_rejected", s.bundles_rejected},
                   {"bad_messages", s.bad_messages},
                   {"refused_by_controller", s.refused_by_controller},
                   {"handshake_failures", s.handshake_failures},
                   {"last_rejection", s.last_rejection},
                   {"updated_at", format_instant(s.updated_at)}};
  j["last_heard"] = s.last_heard ? nlohmann::json(format_instant(*s.last_heard)) : nullptr;
  return write_file_atomically(link_path(state_dir), j.dump(2) + "\n");
}

Result<std::optional<LinkState>> load_link_state(const std::string& state_dir) {
  const auto path = link_path(state_dir);
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<LinkState>{};
    return sys_error("cannot read", path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(ss.str());
    LinkState s;
    s.endpoint = j.at("endpoint").get<std::string>();
    s.connected = j.at("connected").get<bool>();
    s.bundles_received = j.at("bundles_received").get<std::uint64_t>();
    s.bundles_applied = j.at("bundles_applied").get<std::uint64_t>();
    s.bundles_rejected = j.at("bundles_rejected").get<std::uint64_t>();
    s.bad_messages = j.at("bad_messages").get<std::uint64_t>();
    s.refused_by_controller = j.at("refused_by_controller").get<std::uint64_t>();
    s.handshake_failures = j.at("handshake_failures").get<std::uint64_t>();
    s.last_rejection = j.at("last_rejection").get<std::string>();
    if (!j.at("last_heard").is_null())
      s.last_heard = parse_instant(j.at("last_heard").get<std::string>());
    if (auto at = parse_instant(j.at("updated_at").get<std::string>())) s.updated_at = *at;
    return std::optional<LinkState>{s};
  } catch (const std::exception& e) {
    return make_error(path + " is damaged (" + e.what() + "); the daemon rewrites it");
  }
}

}  // namespace drawbridge
