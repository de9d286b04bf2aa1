// policy_model → ruleset_plan: what the table `inet <name>` must contain at one instant.
//
// The plan is a pure value: compile() does no I/O, so the renderer (nft syntax), the netlink
// writer (libnftnl) and `explain` all work from the same description of the kernel state.
//
// Shape of the table (for each family; see docs/ruleset.md):
//   forward/input (base, priority filter-10, policy accept) → jump gate
//   gate:   saddr/daddr vmap @provider_hosts_vN (single addresses, hash)
//           saddr/daddr vmap @providers_vN (prefixes, intervals) → goto p<i>_<name>
//           daddr . l4proto . dport vmap @linked_vN → goto l<j>_foreign (unapproved source)
//           l4proto . dport @guarded           → log + drop (unapproved source)
//   p<i>:   open windows: per link, @l<j>_open_vN (plain sets, timeouts) → goto l<j>_allow
//           closed links: vmap @p<i>_scope_*  → goto l<j>_closed (outside window)
//           @p<i>_hosts_vN → unapproved port; other providers' links → unapproved source;
//           anything else → unapproved host
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net_types.h"
#include "common/policy_model.h"

namespace drawbridge {

struct Verdict {
  enum class Kind : std::uint8_t { accept, drop, jump, go_to };
  Kind kind = Kind::accept;
  std::string chain;  // for jump / go_to
  auto operator<=>(const Verdict&) const = default;
};

// The key layouts Drawbridge uses. Every set's key is one of these.
enum class KeyShape : std::uint8_t {
  address,          // ipv4_addr | ipv6_addr
  address_service,  // ipv4_addr . inet_proto . inet_service
  service,          // inet_proto . inet_service
};

struct SetElement {
  std::optional<AddressRange> address;  // address, address_service
  std::optional<PortRange> service;     // address_service, service (protocol is the inet_proto)
  std::optional<Verdict> verdict;       // maps only
  // Remaining lifetime when committed; nullopt = no timeout (stays until removed).
  std::optional<std::chrono::milliseconds> timeout;
  auto operator<=>(const SetElement&) const = default;
};

struct SetPlan {
  std::string name;
  KeyShape shape = KeyShape::address;
  Family family = Family::v4;  // of the address field; unused for KeyShape::service
  bool verdict_map = false;
  bool has_timeouts = false;         // open windows: elements expire in the kernel
  std::vector<SetElement> elements;  // disjoint, sorted
  // Interval sets hold ranges (rbtree or, concatenated, pipapo); the others are hash sets of
  // single keys, which the kernel loads about twice as fast.
  bool interval = true;
  // A meter: filled by the rules themselves (`update @set { ... }`), never by a commit; entries
  // expire `entry_timeout` after their last update and there are at most `size` of them.
  bool dynamic = false;
  std::uint32_t size = 0;
  std::chrono::milliseconds entry_timeout{0};
};

// Packet fields a rule can look up. Address fields take the rule's family.
enum class Field : std::uint8_t { saddr, daddr, l4proto, sport, dport };

// A per-source rate on a logging rule: the packet's source address is looked up in the meter
// `set` (added when missing) and the rule goes on only while that source stays under
// `rate` packets per second with bursts of `burst`. Past it the rule does not match, and the
// rule after it drops the packet without logging and counts it (kRateLimitedComment).
struct LogMeter {
  std::string set;
  Family family = Family::v4;
  std::uint32_t rate = 0;
  std::uint32_t burst = 0;
  auto operator<=>(const LogMeter&) const = default;
};

// The comment of the rule that counts denied packets not logged because of the per-source
// rate, followed by the deny point's log prefix.
inline constexpr std::string_view kRateLimitedComment = "rate-limited ";

struct RulePlan {
  // ICMPv6 type to match (neighbour discovery must reach the gateway from any address).
  std::optional<std::uint8_t> icmpv6_type;
  bool reply_only = false;        // ct direction reply
  Family family = Family::v4;     // for address fields in `key`
  std::vector<Field> key;         // empty = no lookup (matches every packet)
  std::string set;                // the set/map the key is looked up in
  bool verdict_map = false;       // `vmap @set` instead of `@set`
  std::optional<LogMeter> meter;  // before the counter: counts only what it lets through
  bool counter = false;
  std::optional<std::string> log_prefix;
  std::optional<Verdict> verdict;
  std::string comment;
};

inline constexpr std::uint8_t kNeighborSolicit = 135;
inline constexpr std::uint8_t kNeighborAdvert = 136;

struct Hook {
  enum class Point : std::uint8_t { input, forward };
  Point point = Point::forward;
  int priority = -10;  // filter (0) − 10: before the usual filter chains
};

struct ChainPlan {
  std::string name;
  std::optional<Hook> hook;  // base chains only; their policy is always accept
  std::vector<RulePlan> rules;
  std::string comment;
};

struct CompileOptions {
  std::string table = "drawbridge";
  std::uint16_t log_group = 100;  // the same default as EnforcerConfig
  int priority = -10;
  // Local lockdown: while it lasts, no window or grant opens anything, whatever the policy says.
  // Instant::max() = until released.
  std::optional<Instant> lockdown_until;
  // Denied packets logged per source address and second (bursts of as many); the rest are
  // still dropped and counted, not logged. 0: every denied packet is logged.
  std::uint32_t log_rate_per_source = 0;
};

// Meter sets of the per-source log rate.
inline constexpr std::uint32_t kLogMeterSize = 65536;
inline constexpr std::chrono::seconds kLogMeterTimeout{60};

// Why a packet was dropped; the first word of the NFLOG prefix after "drawbridge:".
enum class DenyReason : std::uint8_t {
  outside_window,
  unapproved_source,
  unapproved_host,
  unapproved_port,
  policy_expired,
  lockdown,  // the customer's break-glass is on
  starting,  // a cold start: the table is closed until the policy is in force (closed_plan)
};
std::string_view deny_reason_name(DenyReason r);

// Where an open element came from, so status/explain can say which link, window or grant.
struct Opening {
  std::string link;
  std::string provider;
  Direction direction = Direction::inbound;
  std::optional<std::string> ticket;  // set for grants
  std::vector<AddressRange> hosts;    // hosts it opens
  Instant until = Instant::max();     // Instant::max() = no end
};

struct RulesetPlan {
  std::string table;
  std::uint16_t log_group = 0;  // NFLOG group of every log statement
  std::vector<SetPlan> sets;
  std::vector<ChainPlan> chains;
  // What the plan was made from.
  std::string site;
  std::uint64_t serial = 0;
  Instant compiled_at;
  bool expired = false;
  bool locked_down = false;
  std::vector<Opening> openings;  // links open at compiled_at
  // plan_fingerprint() of this plan, computed once by compile(): what changes at a window edge
  // must not cost O(policy size).
  std::string fingerprint;

  [[nodiscard]] const SetPlan* set(std::string_view name) const;
  [[nodiscard]] const ChainPlan* chain(std::string_view name) const;
};

// The NFLOG prefix for a denial; parsed back by the SOC pipeline.
// Format: "drawbridge:<reason>:<subject>" (no trailing space); subject is link/<name>,
// provider/<name> or guard.
std::string log_prefix(DenyReason reason, std::string_view subject);

RulesetPlan compile(const Policy& policy, Instant now, const CompileOptions& options);

// What a window edge needs: `plan`, compiled from `policy` with `options`, brought to `now` by
// recomputing only its open-window sets and openings (O(links), not O(prefixes)); the result
// equals compile(policy, now, options). Returns false, leaving `plan` as it was, when the
// structure changes as well (the policy expired, a lockdown began or ended): compile() then.
bool advance(RulesetPlan& plan, const Policy& policy, Instant now, const CompileOptions& options);

// What a cold start commits first, before the policy is parsed and compiled (half a second at
// 100,000 prefixes): the last applied plan's inbound linked services (host . proto . port) and
// guarded ports, dropped and logged for every source — the provider's included — until the
// policy is in force. Kept in the state directory by every apply. Like every drawbridge table it
// can only take access away, so a stale or altered record can deny, never open.
struct ClosedSkeleton {
  std::vector<SetElement> linked_v4, linked_v6;  // address_service, no verdicts
  std::vector<SetElement> guarded;               // service
  bool operator==(const ClosedSkeleton&) const = default;
};
ClosedSkeleton skeleton_of(const RulesetPlan& plan);
RulesetPlan closed_plan(const ClosedSkeleton& skeleton, const std::string& site, Instant now,
                        const CompileOptions& options);

// A digest of everything in the plan except open-window elements (which change with time). It is
// stored in the gate chain's comment, so a restarted enforcer can tell cheaply — without dumping
// any set — whether the kernel already holds this plan's structure.
std::string plan_fingerprint(const RulesetPlan& plan);

}  // namespace drawbridge
