#include "enforcer/enforcer_config.h"

#include <toml++/toml.h>

#include <regex>

namespace drawbridge {

namespace {

SourceLocation where(const std::string& path, const toml::source_region& r) {
  return SourceLocation{path, static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
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
    } else {
      return make_error("unknown key '" + k +
                            "' (expected: policy, table, log_group, priority, state_dir, trust, "
                            "expiry_warning_hours)",
                        loc);
    }
  }
  if (auto ok = check_table_name(cfg.table); !ok.ok())
    return make_error(ok.error().message, {path, 0, 0});
  return cfg;
}

}  // namespace drawbridge
