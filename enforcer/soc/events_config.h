// The `[events]` table of the enforcer's config: what the SOC is told and where it goes. Every
// key is documented in docs/configuration.md.
//
//   [events]
//   organization        = "Clinic East"       # organization.name in every event
//   aggregation_seconds = 60                  # repeated denials of one flow → one event
//   spool_dir           = "/var/lib/drawbridge/spool"   # default: <state_dir>/spool
//   spool_max_mb        = 256
//   upstream            = true                # to the controller, when [controller] is set
//
//   [events.audit_file]                       # tamper-evident JSON lines (docs/audit-log.md)
//   path           = "/var/log/drawbridge/audit.jsonl"
//   retention_days = 180
//   max_mb         = 64
//
//   [[events.syslog]]                         # any number of collectors
//   name          = "soc"                     # names the output in status and the spool
//   transport     = "tls"                     # udp | tcp | tls
//   host          = "192.0.2.50"
//   port          = 6514
//   format        = "cef"                     # ecs | cef | leef (the syslog MSG)
//   facility      = 13
//   ca_file       = "/etc/drawbridge/soc-ca.pem"   # tls: who may be the collector
//   server_name   = "soc.example"                  # tls: the name its certificate must carry
//   pinned_sha256 = "…"                            # tls, optional: the certificate's fingerprint
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace toml {
inline namespace v3 {
class node;
}
}  // namespace toml

namespace drawbridge {

struct SyslogOutputConfig {
  std::string name;
  enum class Transport : std::uint8_t { udp, tcp, tls } transport = Transport::tcp;
  std::string host;
  std::uint16_t port = 0;
  std::string format = "ecs";  // ecs | cef | leef
  int facility = 13;           // log audit
  std::string ca_file;
  std::string server_name;
  std::string pinned_sha256;
  bool operator==(const SyslogOutputConfig&) const = default;
};

struct AuditFileConfig {
  std::string path;
  std::chrono::days retention{180};
  std::uint64_t max_bytes = 64ull << 20;
  bool operator==(const AuditFileConfig&) const = default;
};

// The upstream output's name in status and its consumer name in the spool; no syslog output
// may take it.
inline constexpr const char* kUpstreamOutputName = "controller";

struct EventsConfig {
  std::string organization;
  // Events also go to the controller over the control channel (enforcer/soc/upstream_output.h)
  // when the enforcer has a [controller] table; false keeps them local.
  bool upstream = true;
  std::chrono::seconds aggregation{60};
  std::string spool_dir;  // empty: <state_dir>/spool
  std::uint64_t spool_max_bytes = 256ull << 20;
  std::optional<AuditFileConfig> audit_file;
  std::vector<SyslogOutputConfig> syslog;
  // SIGHUP compares the running outputs with the config's: a change needs a restart.
  bool operator==(const EventsConfig&) const = default;
};

// Strict: unknown keys, wrong types, out-of-range values, duplicate output names, TLS without
// a CA file are errors at file:line:column.
[[nodiscard]] Result<EventsConfig> read_events_config(const toml::node& node,
                                                      const std::string& path);

}  // namespace drawbridge
