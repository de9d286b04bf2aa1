#include "enforcer/enforcer_config.h"

#include <toml++/toml.h>

#include <optional>
#include <regex>
#include <string_view>

#include "common/curve_keys.h"
#include "common/toml_location.h"

namespace drawbridge {

namespace {

bool is_endpoint(std::string_view s) {
  for (const std::string_view scheme : {"tcp://", "ipc://"}) {
    if (s.starts_with(scheme) && s.size() > scheme.size()) return true;
  }
  return false;
}

// The [controller] table. Keys are checked as they come; what is required is checked after,
// since `insecure` may come last.
Result<ControllerLinkConfig> read_controller(const toml::node& node, const std::string& path) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    return make_error("'controller' must be a table ([controller])", where(path, node.source()));
  }
  ControllerLinkConfig link;
  bool has_server_key = false;
  for (const auto& [key, value] : *table) {
    const auto loc = where(path, value.source());
    const std::string k(key.str());
    if (k == "endpoint" || k == "server_key" || k == "client_key") {
      const auto* v = value.as_string();
      if (v == nullptr || v->get().empty()) {
        return make_error("'" + k + "' must be a non-empty string", loc);
      }
      if (k == "endpoint") {
        if (!is_endpoint(v->get())) {
          return make_error(
              "'endpoint' must be a tcp:// or ipc:// endpoint (e.g. "
              "\"tcp://192.0.2.10:7400\"), got '" +
                  v->get() + "'",
              loc);
        }
        link.endpoint = v->get();
      } else if (k == "server_key") {
        auto parsed = CurvePublicKey::parse(v->get());
        if (!parsed) return make_error("'server_key': " + parsed.error().message, loc);
        // Stored in its one canonical spelling, whichever of the accepted forms was written.
        link.server_key = parsed->str();
        has_server_key = true;
      } else {
        link.client_key = v->get();
      }
    } else if (k == "insecure") {
      const auto* v = value.as_boolean();
      if (v == nullptr) return make_error("'insecure' must be true or false", loc);
      link.insecure = v->get();
    } else if (k == "heartbeat_seconds") {
      const auto* v = value.as_integer();
      if (v == nullptr || v->get() < 1 || v->get() > 3600) {
        return make_error("'heartbeat_seconds' must be an integer from 1 to 3600", loc);
      }
      link.heartbeat = std::chrono::seconds(v->get());
    } else {
      return make_error("unknown key '" + k +
                            "' in [controller] (expected: endpoint, server_key, client_key, "
                            "insecure, heartbeat_seconds)",
                        where(path, key.source()));
    }
  }
  const auto table_at = where(path, table->source());
  if (link.endpoint.empty()) {
    return make_error("[controller] needs 'endpoint' (e.g. \"tcp://192.0.2.10:7400\")", table_at);
  }
  if (!link.insecure) {
    if (!has_server_key) {
      return make_error(
          "[controller] needs 'server_key', the controller's CURVE public key ('curve:<Z85>'), "
          "unless insecure = true",
          table_at);
    }
    if (link.client_key.empty()) {
      return make_error(
          "[controller] needs 'client_key', the path of this enforcer's CURVE secret key "
          "(drawbridge-controller keygen --out NAME --curve writes NAME.curve), unless "
          "insecure = true",
          table_at);
    }
  }
  return link;
}

}  // namespace

Result<void> check_table_name(const std::string& name) {
  static const std::regex ok("[A-Za-z][A-Za-z0-9_]{0,31}");
  if (!std::regex_match(name, ok)) {
    return make_error("table name '" + name +
                      "' is not allowed: use 1-32 letters, digits or '_', starting with a letter");
  }
  return {};
}

Result<EnforcerConfig> load_config(const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return make_error(std::string(e.description()), where(path, e.source()));
  }
  EnforcerConfig cfg;
  for (const auto& [key, node] : doc) {
    const auto loc = where(path, node.source());
    const std::string k(key.str());
    if (k == "policy" || k == "table" || k == "state_dir" || k == "trust") {
      const auto* v = node.as_string();
      if (!v) return make_error("'" + k + "' must be a string", loc);
      if (k == "policy") cfg.policy = v->get();
      if (k == "table") cfg.table = v->get();
      if (k == "state_dir") cfg.state_dir = v->get();
      if (k == "trust") cfg.trust = v->get();
    } else if (k == "expiry_warning_hours") {
      const auto* v = node.as_integer();
      if (!v || v->get() < 0 || v->get() > 24 * 366) {
        return make_error("'expiry_warning_hours' must be an integer from 0 to 8784", loc);
      }
      cfg.expiry_warning = std::chrono::hours(v->get());
    } else if (k == "log_group" || k == "priority") {
      const auto* v = node.as_integer();
      if (!v) return make_error("'" + k + "' must be an integer", loc);
      const auto n = v->get();
      if (k == "log_group") {
        if (n < 0 || n > 65535)
          return make_error("'log_group' must be 0-65535, got " + std::to_string(n), loc);
        cfg.log_group = static_cast<std::uint16_t>(n);
      } else {
        // Below the usual filter priority, above security (50): restrict before others accept.
        if (n < -300 || n > 300)
          return make_error("'priority' must be between -300 and 300, got " + std::to_string(n),
                            loc);
        cfg.priority = static_cast<int>(n);
      }
    } else if (k == "log_rate_per_source") {
      const auto* v = node.as_integer();
      if (!v || v->get() < 0 || v->get() > 1'000'000) {
        return make_error(
            "'log_rate_per_source' must be an integer from 0 (log every denied packet) to "
            "1000000 packets per second",
            loc);
      }
      cfg.log_rate_per_source = static_cast<std::uint32_t>(v->get());
    } else if (k == "events") {
      auto events = read_events_config(node, path);
      if (!events.ok()) return events.error();
      cfg.events = std::move(*events);
    } else if (k == "controller") {
      auto link = read_controller(node, path);
      if (!link) return link.error();
      cfg.controller = std::move(*link);
    } else {
      return make_error("unknown key '" + k +
                            "' (expected: policy, table, log_group, log_rate_per_source, priority, "
                            "state_dir, trust, expiry_warning_hours, controller, events)",
                        loc);
    }
  }
  if (auto ok = check_table_name(cfg.table); !ok.ok())
    return make_error(ok.error().message, {path, 0, 0});
  return cfg;
}

}  // namespace drawbridge
