#include "controller/controller_config.h"

#include <sys/un.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/toml_location.h"

namespace drawbridge {

namespace {

constexpr std::size_t kMaxNameLength = 64;
constexpr std::int64_t kMaxHeartbeatSeconds = 3600;
constexpr std::int64_t kMaxStaleSeconds = 7 * 24 * 3600;
constexpr std::string_view kAdminSocket = "/admin.sock";

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The rule policies apply to `site` (common/policy_parser.cpp, not exported), so a site named
// here can be the site of a policy: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
bool is_valid_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength || !is_alnum(s.front())) return false;
  return std::all_of(s.begin() + 1, s.end(),
                     [](char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

bool is_endpoint(std::string_view s) {
  for (const std::string_view scheme : {"tcp://", "ipc://"}) {
    if (s.starts_with(scheme) && s.size() > scheme.size()) return true;
  }
  return false;
}

std::string line_of(const SourceLocation& loc) {
  return "line " + std::to_string(loc.line);
}

std::string enforcer_label(const ConfiguredEnforcer& e) {
  return e.name == e.site ? "'" + e.site + "'" : "'" + e.name + "' of site '" + e.site + "'";
}

// Locations of an accepted [[enforcer]], for duplicate messages.
struct EnforcerPlace {
  SourceLocation key;
  SourceLocation identity;  // its name, or its site when the name defaulted
};

Result<void> read_enforcer(const toml::node& element, const std::string& path,
                           ControllerConfig& cfg, std::vector<EnforcerPlace>& places) {
  const auto* table = element.as_table();
  if (table == nullptr) {
    return make_error("each 'enforcer' entry must be a table ([[enforcer]])",
                      where(path, element.source()));
  }
  ConfiguredEnforcer e;
  std::optional<SourceLocation> site_at, name_at, key_at;
  for (const auto& [key, node] : *table) {
    const std::string k(key.str());
    const auto loc = where(path, node.source());
    if (k != "site" && k != "name" && k != "key") {
      return make_error("unknown key '" + k + "' in [[enforcer]] (expected: site, name, key)",
                        where(path, key.source()));
    }
    const auto* v = node.as_string();
    if (v == nullptr) return make_error("'" + k + "' must be a string", loc);
    if (k == "key") {
      auto parsed = CurvePublicKey::parse(v->get());
      if (!parsed) return make_error("'key': " + parsed.error().message, loc);
      e.key = *parsed;
      key_at = loc;
    } else {
      if (!is_valid_name(v->get())) {
        return make_error(k + " '" + v->get() +
                              "' is not a valid name (1-64 of A-Z a-z 0-9 . _ -, starting with a "
                              "letter or digit)",
                          loc);
      }
      (k == "site" ? e.site : e.name) = v->get();
      (k == "site" ? site_at : name_at) = loc;
    }
  }
  const auto table_at = where(path, table->source());
  if (!site_at) return make_error("[[enforcer]] needs 'site'", table_at);
  if (!key_at) {
    return make_error("[[enforcer]] needs 'key' (its CURVE public key, 'curve:<Z85>')", table_at);
  }
  if (!name_at) e.name = e.site;
  const SourceLocation identity_at = name_at ? *name_at : *site_at;

  for (std::size_t i = 0; i < cfg.enforcers.size(); ++i) {
    const auto& other = cfg.enforcers[i];
    // One key, one enforcer: otherwise a connection could not be told apart from another.
    if (other.key == e.key) {
      return make_error("key " + e.key.str() + " is already the key of enforcer " +
                            enforcer_label(other) + " (" + line_of(places[i].key) + ")",
                        *key_at);
    }
    if (other.site == e.site && other.name == e.name) {
      return make_error("enforcer " + enforcer_label(e) + " is listed twice (first at " +
                            line_of(places[i].identity) + "); give each a distinct 'name'",
                        identity_at);
    }
  }
  cfg.enforcers.push_back(std::move(e));
  places.push_back({*key_at, identity_at});
  return {};
}

}  // namespace

std::string ControllerConfig::admin_endpoint() const {
  return "ipc://" + state_dir + std::string(kAdminSocket);
}

std::string ControllerConfig::database_path() const {
  return state_dir + "/fleet.db";
}

Result<ControllerConfig> load_controller_config(const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return make_error(std::string(e.description()), where(path, e.source()));
  }
  ControllerConfig cfg;
  std::optional<SourceLocation> stale_at;
  std::vector<EnforcerPlace> places;
  for (const auto& [key, node] : doc) {
    const auto loc = where(path, node.source());
    const std::string k(key.str());
    if (k == "listen" || k == "curve_key" || k == "state_dir") {
      const auto* v = node.as_string();
      if (v == nullptr || v->get().empty()) {
        return make_error("'" + k + "' must be a non-empty string", loc);
      }
      if (k == "listen") {
        if (!is_endpoint(v->get())) {
          return make_error(
              "'listen' must be a tcp:// or ipc:// endpoint (e.g. \"tcp://0.0.0.0:7400\"), got '" +
                  v->get() + "'",
              loc);
        }
        cfg.listen = v->get();
      } else if (k == "curve_key") {
        cfg.curve_key = v->get();
      } else {
        // The admin socket lives in state_dir, and a Unix socket address has a fixed size.
        const std::size_t socket_path = v->get().size() + kAdminSocket.size();
        const std::size_t fits = sizeof(sockaddr_un::sun_path) - 1;
        if (socket_path > fits) {
          return make_error("'state_dir' is too long: its admin socket path would have " +
                                std::to_string(socket_path) + " characters, at most " +
                                std::to_string(fits) + " fit in a Unix socket address",
                            loc);
        }
        cfg.state_dir = v->get();
      }
    } else if (k == "heartbeat_seconds" || k == "stale_after_seconds") {
      const auto* v = node.as_integer();
      if (v == nullptr) return make_error("'" + k + "' must be an integer", loc);
      if (k == "heartbeat_seconds") {
        if (v->get() < 1 || v->get() > kMaxHeartbeatSeconds) {
          return make_error(
              "'heartbeat_seconds' must be from 1 to 3600, got " + std::to_string(v->get()), loc);
        }
        cfg.heartbeat = std::chrono::seconds(v->get());
      } else {
        // Checked against the heartbeat once the whole file is read (the order of keys is free).
        if (v->get() < 1 || v->get() > kMaxStaleSeconds) {
          return make_error("'stale_after_seconds' must be from 1 to 604800 (a week), got " +
                                std::to_string(v->get()),
                            loc);
        }
        cfg.stale_after = std::chrono::seconds(v->get());
        stale_at = loc;
      }
    } else if (k == "insecure") {
      const auto* v = node.as_boolean();
      if (v == nullptr) return make_error("'insecure' must be true or false", loc);
      cfg.insecure = v->get();
    } else if (k == "enforcer") {
      const auto* list = node.as_array();
      if (list == nullptr) {
        return make_error("'enforcer' must be an array of tables ([[enforcer]])", loc);
      }
      for (const auto& element : *list) {
        if (auto ok = read_enforcer(element, path, cfg, places); !ok) return ok.error();
      }
    } else {
      return make_error("unknown key '" + k +
                            "' (expected: listen, curve_key, state_dir, heartbeat_seconds, "
                            "stale_after_seconds, insecure, enforcer)",
                        where(path, key.source()));
    }
  }

  if (!stale_at) {
    // Three missed heartbeats, so the default follows a configured heartbeat (15 s for 5 s).
    cfg.stale_after = 3 * cfg.heartbeat;
  } else if (cfg.stale_after < 2 * cfg.heartbeat) {
    // One late heartbeat must not make an enforcer look stale.
    return make_error("'stale_after_seconds' (" + std::to_string(cfg.stale_after.count()) +
                          ") must be at least twice 'heartbeat_seconds' (" +
                          std::to_string(cfg.heartbeat.count()) + ")",
                      *stale_at);
  }
  if (cfg.curve_key.empty() && !cfg.insecure) {
    return make_error(
        "'curve_key' is required: the path of the controller's CURVE secret key "
        "(drawbridge-controller keygen --out NAME --curve writes NAME.curve); only a lab "
        "without encryption may set insecure = true instead",
        SourceLocation{path, 0, 0});
  }
  return cfg;
}

}  // namespace drawbridge
