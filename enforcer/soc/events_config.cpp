#include "enforcer/soc/events_config.h"

#include <toml++/toml.h>

#include <set>

#include "common/toml_location.h"

namespace drawbridge {

namespace {

// Reads the keys of one table through `on_key`, which returns an error or nullopt; a key it does
// not know is reported with the list of the keys it does.
template <class F>
Result<void> each_key(const toml::table& t, const std::string& path, const char* table_name,
                      const char* known, F on_key) {
  for (const auto& [key, value] : t) {
    const std::string k(key.str());
    auto r = on_key(k, value, where(path, value.source()));
    if (!r) {
      return make_error("unknown key '" + k + "' in " + table_name + " (expected: " + known + ")",
                        where(path, value.source()));
    }
    if (!r->ok()) return r->error();
  }
  return {};
}

std::optional<std::string> text(const toml::node& n) {
  if (const auto* v = n.as_string()) return v->get();
  return std::nullopt;
}

std::optional<std::int64_t> integer(const toml::node& n) {
  if (const auto* v = n.as_integer()) return v->get();
  return std::nullopt;
}

using KeyResult = std::optional<Result<void>>;

KeyResult bad(const std::string& message, const SourceLocation& loc) {
  return Result<void>(make_error(message, loc));
}

KeyResult need_int(const toml::node& n, const std::string& k, std::int64_t lo, std::int64_t hi,
                   const SourceLocation& loc, std::int64_t& out) {
  const auto v = integer(n);
  if (!v || *v < lo || *v > hi) {
    return bad(
        "'" + k + "' must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi),
        loc);
  }
  out = *v;
  return Result<void>();
}

KeyResult need_text(const toml::node& n, const std::string& k, const SourceLocation& loc,
                    std::string& out) {
  const auto v = text(n);
  if (!v || v->empty()) return bad("'" + k + "' must be a non-empty string", loc);
  out = *v;
  return Result<void>();
}

Result<SyslogOutputConfig> read_syslog(const toml::node& node, const std::string& path,
                                       std::size_t index) {
  const auto* t = node.as_table();
  const auto at = where(path, node.source());
  if (t == nullptr) return make_error("each [[events.syslog]] must be a table", at);
  SyslogOutputConfig out;
  out.name = "syslog" + std::to_string(index + 1);
  auto ok = each_key(
      *t, path, "[[events.syslog]]",
      "name, transport, host, port, format, facility, ca_file, server_name, pinned_sha256",
      [&](const std::string& k, const toml::node& v, const SourceLocation& loc) -> KeyResult {
        std::int64_t n = 0;
        if (k == "name") return need_text(v, k, loc, out.name);
        if (k == "host") return need_text(v, k, loc, out.host);
        if (k == "ca_file") return need_text(v, k, loc, out.ca_file);
        if (k == "server_name") return need_text(v, k, loc, out.server_name);
        if (k == "pinned_sha256") {
          if (auto r = need_text(v, k, loc, out.pinned_sha256); !r->ok()) return r;
          std::string hex;
          for (char c : out.pinned_sha256) {
            if (c == ':') continue;
            if (!std::isxdigit(static_cast<unsigned char>(c))) hex = "bad";
            hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          }
          if (hex.size() != 64) {
            return bad("'pinned_sha256' must be 64 hex digits (colons allowed)", loc);
          }
          out.pinned_sha256 = hex;
          return Result<void>();
        }
        if (k == "port") {
          auto r = need_int(v, k, 1, 65535, loc, n);
          out.port = static_cast<std::uint16_t>(n);
          return r;
        }
        if (k == "facility") {
          auto r = need_int(v, k, 0, 23, loc, n);
          out.facility = static_cast<int>(n);
          return r;
        }
        if (k == "transport") {
          const auto s = text(v);
          if (s == "udp")
            out.transport = SyslogOutputConfig::Transport::udp;
          else if (s == "tcp")
            out.transport = SyslogOutputConfig::Transport::tcp;
          else if (s == "tls")
            out.transport = SyslogOutputConfig::Transport::tls;
          else
            return bad("'transport' must be \"udp\", \"tcp\" or \"tls\"", loc);
          return Result<void>();
        }
        if (k == "format") {
          const auto s = text(v);
          if (s != "ecs" && s != "cef" && s != "leef") {
            return bad("'format' must be \"ecs\", \"cef\" or \"leef\"", loc);
          }
          out.format = *s;
          return Result<void>();
        }
        return std::nullopt;
      });
  if (!ok.ok()) return ok.error();
  if (out.host.empty()) return make_error("[[events.syslog]] '" + out.name + "' needs 'host'", at);
  if (out.port == 0) {
    out.port = out.transport == SyslogOutputConfig::Transport::tls ? 6514 : 514;
  }
  if (out.transport == SyslogOutputConfig::Transport::tls && out.ca_file.empty()) {
    return make_error("[[events.syslog]] '" + out.name +
                          "' uses TLS and needs 'ca_file': the CA that signed the collector's "
                          "certificate (anything else could pose as the SOC)",
                      at);
  }
  if (out.transport != SyslogOutputConfig::Transport::tls &&
      (!out.ca_file.empty() || !out.pinned_sha256.empty() || !out.server_name.empty())) {
    return make_error("[[events.syslog]] '" + out.name +
                          "': ca_file, server_name and pinned_sha256 apply only to "
                          "transport = \"tls\"",
                      at);
  }
  return out;
}

}  // namespace

Result<EventsConfig> read_events_config(const toml::node& node, const std::string& path) {
  const auto* t = node.as_table();
  if (t == nullptr)
    return make_error("'events' must be a table ([events])", where(path, node.source()));
  EventsConfig cfg;
  std::set<std::string> names;
  auto ok = each_key(
      *t, path, "[events]",
      "organization, aggregation_seconds, spool_dir, spool_max_mb, upstream, audit_file, syslog",
      [&](const std::string& k, const toml::node& v, const SourceLocation& loc) -> KeyResult {
        std::int64_t n = 0;
        if (k == "organization") return need_text(v, k, loc, cfg.organization);
        if (k == "upstream") {
          const auto* b = v.as_boolean();
          if (b == nullptr) return bad("'upstream' must be true or false", loc);
          cfg.upstream = b->get();
          return Result<void>();
        }
        if (k == "spool_dir") return need_text(v, k, loc, cfg.spool_dir);
        if (k == "aggregation_seconds") {
          auto r = need_int(v, k, 1, 3600, loc, n);
          cfg.aggregation = std::chrono::seconds(n);
          return r;
        }
        if (k == "spool_max_mb") {
          auto r = need_int(v, k, 1, 1 << 20, loc, n);
          cfg.spool_max_bytes = static_cast<std::uint64_t>(n) << 20;
          return r;
        }
        if (k == "audit_file") {
          const auto* a = v.as_table();
          if (a == nullptr) return bad("'audit_file' must be a table ([events.audit_file])", loc);
          AuditFileConfig af;
          auto r = each_key(*a, path, "[events.audit_file]", "path, retention_days, max_mb",
                            [&](const std::string& ak, const toml::node& av,
                                const SourceLocation& aloc) -> KeyResult {
                              std::int64_t m = 0;
                              if (ak == "path") return need_text(av, ak, aloc, af.path);
                              if (ak == "retention_days") {
                                auto rr = need_int(av, ak, 1, 36600, aloc, m);
                                af.retention = std::chrono::days(m);
                                return rr;
                              }
                              if (ak == "max_mb") {
                                auto rr = need_int(av, ak, 1, 1 << 20, aloc, m);
                                af.max_bytes = static_cast<std::uint64_t>(m) << 20;
                                return rr;
                              }
                              return std::nullopt;
                            });
          if (!r.ok()) return Result<void>(r.error());
          if (af.path.empty()) return bad("[events.audit_file] needs 'path'", loc);
          cfg.audit_file = af;
          return Result<void>();
        }
        if (k == "syslog") {
          const auto* arr = v.as_array();
          if (arr == nullptr)
            return bad("'syslog' must be an array of tables ([[events.syslog]])", loc);
          for (std::size_t i = 0; i < arr->size(); ++i) {
            auto out = read_syslog(*arr->get(i), path, i);
            if (!out.ok()) return Result<void>(out.error());
            if (out->name == kUpstreamOutputName) {
              return bad("[[events.syslog]] may not be named '" + out->name +
                             "': that name is the upstream output's (to the controller)",
                         loc);
            }
            if (!names.insert(out->name).second) {
              return bad("two [[events.syslog]] outputs are named '" + out->name + "'", loc);
            }
            cfg.syslog.push_back(std::move(*out));
          }
          return Result<void>();
        }
        return std::nullopt;
      });
  if (!ok.ok()) return ok.error();
  return cfg;
}

}  // namespace drawbridge
