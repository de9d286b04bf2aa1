// The event_format stage: one SocEvent becomes one line for the SOC — ECS JSON, ArcSight CEF,
// QRadar LEEF 2.0, or RFC 5424 syslog carrying one of those. Pure functions, no I/O; every field
// of every format is documented in docs/events.md.
//
//   nflog_reader → violation → event_format → event_sink
//
// Lines never end in a newline and never contain a raw control character: values from configs
// (interface, policy and provider names) are escaped or replaced, so nothing in an event can
// forge a second line or split a field. Invalid UTF-8 becomes U+FFFD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "enforcer/soc/event.h"

namespace drawbridge {

enum class EventFormat : std::uint8_t { ecs_json, cef, leef };

// "ecs", "cef" or "leef" (the names in the enforcer config).
[[nodiscard]] Result<EventFormat> parse_event_format(std::string_view name);
[[nodiscard]] std::string_view event_format_name(EventFormat format);

// Elastic Common Schema 8.11 as one JSON object; absent fields are left out, never null.
[[nodiscard]] std::string format_ecs_json(const SocEvent& event, const Observer& observer);
// ArcSight CEF:0 with the standard extension dictionary (plus cs/cn custom slots).
[[nodiscard]] std::string format_cef(const SocEvent& event, const Observer& observer);
// QRadar LEEF:2.0 with '^' as the attribute delimiter.
[[nodiscard]] std::string format_leef(const SocEvent& event, const Observer& observer);
[[nodiscard]] std::string format_event(const SocEvent& event, const Observer& observer,
                                       EventFormat format);

// Facility 13, "log audit" (RFC 5424 §6.2.1): these are security audit records, and a facility
// of their own lets a relay route them apart from the host's logs.
inline constexpr int kDefaultSyslogFacility = 13;

// An RFC 5424 message: header, `meta` sequenceId, the drawbridge@32473 structured data, and
// BOM + the body in `body` format. `facility` is 0..23 (anything else is taken as the default;
// the config validates it); `pid` <= 0 writes the nil PROCID "-".
[[nodiscard]] std::string format_syslog(const SocEvent& event, const Observer& observer,
                                        EventFormat body, int facility, int pid);

// One severity for every format, 0 (lowest) .. 10 (CEF's scale; LEEF uses it clamped to 1..10).
[[nodiscard]] int event_severity(const SocEvent& event);
// The RFC 5424 severity (0 emergency .. 7 debug) for event_severity().
[[nodiscard]] int syslog_severity(int severity);

// The escapers every format uses, exposed so tests can prove them reversible. All of them
// replace invalid UTF-8 with U+FFFD and write control characters (C0, DEL, C1) as \n, \r, \t or
// \uXXXX, and a literal backslash as "\\", so the escaped text is unambiguous.
namespace event_escape {
// Invalid sequences → U+FFFD (one per maximal ill-formed subpart, as Unicode recommends).
[[nodiscard]] std::string valid_utf8(std::string_view text);
// CEF (and LEEF) header fields: '\' and '|'.
[[nodiscard]] std::string cef_header(std::string_view text);
// CEF extension values: '\' and '='.
[[nodiscard]] std::string cef_value(std::string_view text);
// LEEF 2.0 attribute values: '\' and the '^' delimiter.
[[nodiscard]] std::string leef_value(std::string_view text);
// RFC 5424 SD-PARAM values: '"', '\' and ']' (§6.3.3).
[[nodiscard]] std::string sd_param_value(std::string_view text);
}  // namespace event_escape

}  // namespace drawbridge
