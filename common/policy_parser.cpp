#include "common/policy_parser.h"

#include <date/tz.h>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace drawbridge {

std::string PolicyDiagnostics::rejection(std::string_view source) const {
  return str() + "\n" + std::string(source) + ": rejected (" + std::to_string(errors.size()) +
         (errors.size() == 1 ? " error" : " errors") + "); nothing was applied";
}

std::string PolicyDiagnostics::str() const {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += '\n';
    out += e.str();
  }
  return out;
}

namespace {

constexpr std::int64_t kSupportedVersion = 1;
constexpr std::size_t kMaxSiteLength = 64;
// Provider, window and link names end up in kernel log prefixes, which are short.
constexpr std::size_t kMaxNameLength = 48;

// ---------------------------------------------------------------------------------------------
// Pure helpers

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [A-Za-z0-9][A-Za-z0-9._-]{0,max_len-1}
bool is_valid_name(std::string_view s, std::size_t max_len) {
  if (s.empty() || s.size() > max_len || !is_alnum(s.front())) return false;
  return std::all_of(s.begin() + 1, s.end(),
                     [](char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::array:
      return "array";
    case toml::node_type::table:
      return "table";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// The value as TOML writes it: 7, 2026-11-26T14:00:00Z, "text".
std::string toml_text(const toml::node& node) {
  std::ostringstream out;
  node.visit([&](const auto& value) { out << value; });
  return out.str();
}

// What was found where something else was expected: "string \"7\"", "integer 7", "array".
std::string describe(const toml::node& node) {
  if (node.is_array() || node.is_table()) return std::string(type_name(node.type()));
  if (const auto* s = node.as_string()) return "string \"" + s->get() + "\"";
  return std::string(type_name(node.type())) + " " + toml_text(node);
}

Instant to_instant(const toml::date_time& dt) {
  using namespace std::chrono;
  const sys_days date{year{dt.date.year} / month{dt.date.month} / day{dt.date.day}};
  const auto local = date + hours{dt.time.hour} + minutes{dt.time.minute} +
                     seconds{dt.time.second} + floor<milliseconds>(nanoseconds{dt.time.nanosecond});
  return local - minutes{dt.offset->minutes};
}

// The bit index of a day is date::weekday::c_encoding(): 0 = sun … 6 = sat.
Result<int> parse_day(std::string_view text) {
  static constexpr std::array<std::string_view, 7> kDays = {"sun", "mon", "tue", "wed",
                                                            "thu", "fri", "sat"};
  for (std::size_t i = 0; i < kDays.size(); ++i) {
    if (text == kDays[i]) return static_cast<int>(i);
  }
  return make_error(quoted(text) + " is not a day; use mon, tue, wed, thu, fri, sat or sun");
}

// "HH:MM", 00:00-23:59, as minutes after midnight.
std::optional<std::chrono::minutes> parse_clock(std::string_view text) {
  const auto digit = [&](std::size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  if (text.size() != 5 || !digit(0) || !digit(1) || text[2] != ':' || !digit(3) || !digit(4)) {
    return std::nullopt;
  }
  const int h = (text[0] - '0') * 10 + (text[1] - '0');
  const int m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return std::chrono::minutes{h * 60 + m};
}

std::string format_clock(std::chrono::minutes m) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "%02d:%02d", static_cast<int>(m.count() / 60),
                static_cast<int>(m.count() % 60));
  return buf.data();
}

bool is_whole_address_space(const AddressRange& r) {
  return r.first == Address::lowest(r.family()) && r.last == Address::highest(r.family());
}

// ---------------------------------------------------------------------------------------------
// Reading typed values out of TOML tables, reporting every problem with its location

// Where a value was written, without the file name: a policy may list 100,000 addresses, and a
// copy of the path for each is most of what parsing them allocates.
struct TextPosition {
  int line = 0;
  int column = 0;
  static TextPosition of(const toml::source_region& region) {
    return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }
};

class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  [[nodiscard]] SourceLocation at(const toml::source_region& region) const {
    return {source_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }
  [[nodiscard]] SourceLocation at(const TextPosition& p) const {
    return {source_, p.line, p.column};
  }
  void add(const SourceLocation& where, std::string message) {
    errors_.push_back(make_error(std::move(message), where));
  }
  void add(const TextPosition& where, std::string message) { add(at(where), std::move(message)); }
  void add(const toml::source_region& region, std::string message) {
    add(at(region), std::move(message));
  }
  [[nodiscard]] bool empty() const { return errors_.empty(); }
  // In file order, the way a reader fixes them (they are found section by section).
  std::vector<Error> take() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    return std::move(errors_);
  }

 private:
  std::string source_;
  std::vector<Error> errors_;
};

// A value with the text it was written as (quoted in messages) and where it was written.
template <class T>
struct Located {
  T value;
  std::string text;
  TextPosition where;
};

template <class T>
using Converter = std::function<Result<T>(std::string_view)>;

Result<std::string> as_is(std::string_view text) {
  return std::string(text);
}

enum class Need : std::uint8_t { required, optional };
enum class Empty : std::uint8_t { allowed, refused };

using KeyList = std::span<const std::string_view>;

// The keys each table may contain, in the order the README documents them.
constexpr std::array<std::string_view, 10> kTopLevelKeys = {
    "version",   "site",    "serial", "timezone", "expires",
    "providers", "windows", "links",  "grants",   "guard"};
constexpr std::array<std::string_view, 1> kProviderKeys = {"addresses"};
constexpr std::array<std::string_view, 3> kWindowKeys = {"days", "from", "to"};
constexpr std::array<std::string_view, 6> kLinkKeys = {"name",  "provider", "direction",
                                                       "hosts", "ports",    "windows"};
constexpr std::array<std::string_view, 5> kGrantKeys = {"link", "ticket", "from", "until", "hosts"};
constexpr std::array<std::string_view, 1> kGuardKeys = {"ports"};

// Levenshtein distance, to recognise a misspelt key.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// One TOML table and its path in the document ("providers.acme", "links[0]"). Constructing it
// reports every key not in `allowed`.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string path, KeyList allowed, Diagnostics& diag)
      : table_(table), path_(std::move(path)), diag_(diag) {
    report_unknown_keys(allowed);
  }

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] SourceLocation where() const { return diag_.at(table_.source()); }
  [[nodiscard]] std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // The node under `key`; nullptr when absent, which is an error when required (unless an
  // unknown key already reported looks like a misspelling of it: one mistake, one error).
  [[nodiscard]] const toml::node* get(std::string_view key, Need need) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr && need == Need::required && !misspelt(key)) {
      diag_.add(table_.source(), "missing required key " + quoted(key_path(key)));
    }
    return node;
  }

  void type_error(std::string_view key, std::string_view expected, const toml::node& found) const {
    diag_.add(found.source(), quoted(key_path(key)) + " must be " + std::string(expected) +
                                  ", got " + describe(found));
  }

  [[nodiscard]] std::optional<Located<std::string>> string(std::string_view key, Need need) const {
    const toml::node* node = get(key, need);
    if (node == nullptr) return std::nullopt;
    const auto* s = node->as_string();
    if (s == nullptr) {
      type_error(key, "a string", *node);
      return std::nullopt;
    }
    return Located<std::string>{s->get(), s->get(), TextPosition::of(node->source())};
  }

  [[nodiscard]] std::optional<Located<std::int64_t>> integer(std::string_view key,
                                                             Need need) const {
    const toml::node* node = get(key, need);
    if (node == nullptr) return std::nullopt;
    const auto* i = node->as_integer();
    if (i == nullptr) {
      type_error(key, "an integer", *node);
      return std::nullopt;
    }
    return Located<std::int64_t>{i->get(), toml_text(*node), TextPosition::of(node->source())};
  }

  // Only a date-time with a UTC offset names one instant; a local date-time or a bare date would
  // depend on the gateway's time zone, which is exactly the ambiguity a policy must not have.
  [[nodiscard]] std::optional<Located<Instant>> instant(std::string_view key, Need need) const {
    const toml::node* node = get(key, need);
    if (node == nullptr) return std::nullopt;
    const auto* dt = node->as_date_time();
    if (dt != nullptr && dt->get().offset) {
      return Located<Instant>{to_instant(dt->get()), toml_text(*node),
                              TextPosition::of(node->source())};
    }
    std::string found = describe(*node);
    if (dt != nullptr) {
      found = "local date-time " + toml_text(*node) + " without a UTC offset (add Z or +HH:MM)";
    } else if (node->is_date()) {
      found += " without a time and UTC offset";
    } else if (node->is_string()) {
      found += " (write the date-time without quotes)";
    }
    diag_.add(node->source(), quoted(key_path(key)) +
                                  " must be a date-time with a UTC offset such as "
                                  "2026-12-31T00:00:00Z, got " +
                                  found);
    return std::nullopt;
  }

  // An array of strings, each converted; nullopt if absent or if anything in it is wrong (every
  // problem reported), so that cross-checks only ever see complete lists.
  template <class T>
  [[nodiscard]] std::optional<std::vector<Located<T>>> list(std::string_view key, Need need,
                                                            Empty empty,
                                                            const Converter<T>& convert) const {
    const toml::node* node = get(key, need);
    if (node == nullptr) return std::nullopt;
    const auto* array = node->as_array();
    if (array == nullptr) {
      type_error(key, "an array of strings", *node);
      return std::nullopt;
    }
    if (array->empty() && empty == Empty::refused) {
      diag_.add(node->source(), quoted(key_path(key)) + " must not be empty");
      return std::nullopt;
    }
    std::vector<Located<T>> out;
    bool complete = true;
    out.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const auto* s = element.as_string();
      if (s == nullptr) {
        type_error(std::string(key) + "[" + std::to_string(i) + "]", "a string", element);
        complete = false;
        continue;
      }
      auto converted = convert(s->get());
      if (!converted) {
        diag_.add(element.source(), converted.error().message);
        complete = false;
        continue;
      }
      out.push_back({std::move(converted).value(), s->get(), TextPosition::of(element.source())});
    }
    if (!complete) return std::nullopt;
    return out;
  }

  // A sub-table; nullptr when absent (an error when required) or not a table.
  [[nodiscard]] const toml::table* subtable(std::string_view key, Need need) const {
    const toml::node* node = get(key, need);
    if (node == nullptr) return nullptr;
    const auto* t = node->as_table();
    if (t == nullptr) {
      type_error(key, "a table ([" + key_path(key) + "])", *node);
    }
    return t;
  }

 private:
  void report_unknown_keys(KeyList allowed) {
    const std::vector<std::string> expected(allowed.begin(), allowed.end());
    const std::string in = path_.empty() ? "at the top level" : "in " + path_;
    for (const auto& [key, node] : table_) {
      if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
      diag_.add(key.source(), "unknown key " + quoted(key.str()) + " " + in +
                                  " (expected: " + join(expected) + ")");
      unknown_keys_.emplace_back(key.str());
    }
  }

  [[nodiscard]] bool misspelt(std::string_view key) const {
    return std::any_of(unknown_keys_.begin(), unknown_keys_.end(), [&](const std::string& unknown) {
      return edit_distance(unknown, key) <= 2;
    });
  }

  const toml::table& table_;
  std::string path_;
  Diagnostics& diag_;
  std::vector<std::string> unknown_keys_;
};

template <class T>
std::vector<T> values(const std::vector<Located<T>>& located) {
  std::vector<T> out;
  out.reserve(located.size());
  for (const auto& l : located) out.push_back(l.value);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building the Policy, section by section, then checking references across sections

class PolicyBuilder {
 public:
  explicit PolicyBuilder(std::string source) : diag_(source) { policy_.source = std::move(source); }

  ParsedPolicy build(const toml::table& root_table) {
    // A document for another schema version is not checked further: its other keys would only
    // produce misleading errors.
    if (is_unsupported_version(root_table)) return finish();
    const TableReader root(root_table, "", kTopLevelKeys, diag_);
    read_header(root);
    read_providers(root);
    read_windows(root);
    read_links(root);
    read_grants(root);
    read_guard(root);
    return finish();
  }

 private:
  ParsedPolicy finish() {
    ParsedPolicy result;
    if (diag_.empty()) {
      result.policy = std::move(policy_);
    } else {
      result.diagnostics.errors = diag_.take();
    }
    return result;
  }

  // What the cross-checks need beyond the model: where things were written, and whether a
  // list was read completely (an incomplete one would produce follow-on errors).
  struct ProviderAddress {
    std::size_t provider;  // index into policy_.providers
    Located<AddressRange> range;
  };
  struct LinkInfo {
    SourceLocation where;
    std::optional<std::vector<AddressRange>> hosts;  // nullopt when they had errors
  };

  bool is_unsupported_version(const toml::table& root) {
    const auto* version = root.get_as<std::int64_t>("version");
    if (version == nullptr || version->get() == kSupportedVersion) return false;
    diag_.add(version->source(), "unsupported policy version " + std::to_string(version->get()) +
                                     "; this enforcer understands version " +
                                     std::to_string(kSupportedVersion));
    return true;
  }

  void read_header(const TableReader& root) {
    (void)root.integer("version", Need::required);  // its value was checked first
    if (const auto site = root.string("site", Need::required)) {
      if (!is_valid_name(site->value, kMaxSiteLength)) {
        diag_.add(site->where, "site " + quoted(site->value) + " is not a valid name (1-64 of " +
                                   "A-Z a-z 0-9 . _ -, starting with a letter or digit)");
      }
      policy_.site = site->value;
    }
    if (const auto serial = root.integer("serial", Need::required)) {
      if (serial->value < 1) {
        diag_.add(serial->where, "'serial' must be at least 1, got " + serial->text);
      } else {
        policy_.serial = static_cast<std::uint64_t>(serial->value);
      }
    }
    if (const auto tz = root.string("timezone", Need::required)) {
      try {
        (void)date::locate_zone(tz->value);
        policy_.timezone = tz->value;
      } catch (const std::runtime_error&) {
        diag_.add(tz->where, "unknown time zone " + quoted(tz->value) +
                                 " (expected an IANA name such as \"America/Chicago\")");
      }
    }
    if (const auto expires = root.instant("expires", Need::optional)) {
      policy_.expires = expires->value;
      expires_text_ = expires->text;
    }
  }

  // ---- providers

  void read_providers(const TableReader& root) {
    const toml::table* providers = root.subtable("providers", Need::optional);
    if (providers == nullptr) return;
    for (const auto& [key, node] : *providers) {
      const std::string path = "providers." + std::string(key.str());
      const auto* table = node.as_table();
      if (table == nullptr) {
        diag_.add(node.source(),
                  quoted(path) + " must be a table ([" + path + "]), got " + describe(node));
        continue;
      }
      check_name("provider", key);
      provider_names_.insert(std::string(key.str()));
      read_provider(TableReader(*table, path, kProviderKeys, diag_), std::string(key.str()));
    }
    check_provider_overlaps();
  }

  void read_provider(const TableReader& reader, std::string name) {
    Provider provider{std::move(name), {}, reader.where()};
    auto addresses = reader.list<AddressRange>("addresses", Need::required, Empty::refused,
                                               &AddressRange::parse);
    if (!addresses) addresses.emplace();
    const std::size_t index = policy_.providers.size();
    // A policy may list 100,000 addresses: grow once, not by doubling through them.
    provider.addresses.reserve(addresses->size());
    const std::size_t need = provider_addresses_.size() + addresses->size();
    if (need > provider_addresses_.capacity()) {
      provider_addresses_.reserve(std::max(need, 2 * provider_addresses_.capacity()));
    }
    for (auto& address : *addresses) {
      if (is_whole_address_space(address.value)) {
        diag_.add(address.where, "address " + quoted(address.text) + " of provider " +
                                     quoted(provider.name) +
                                     " would treat every address as the provider");
        continue;
      }
      provider.addresses.push_back(address.value);
      provider_addresses_.push_back({index, std::move(address)});
    }
    policy_.providers.push_back(std::move(provider));
  }

  // A packet's source (or destination) must identify one provider, or the logs and the
  // per-provider rules would attribute it arbitrarily.
  void check_provider_overlaps() {
    // Sorted by start, an address overlaps an earlier one of another provider exactly when it
    // starts before the furthest end reached by another provider so far. Keeping the furthest
    // reaching address of the two leading providers answers that in one pass: O(n log n) where
    // a pairwise check would take minutes for 100,000 prefixes.
    sort_provider_addresses();
    const ProviderAddress* lead = nullptr;    // reaches furthest
    const ProviderAddress* second = nullptr;  // reaches furthest among other providers than lead's
    Family family = Family::v4;
    for (const auto* cur : sorted_addresses_) {
      if (cur->range.value.family() != family) {
        family = cur->range.value.family();
        lead = second = nullptr;
      }
      const ProviderAddress* other = lead && lead->provider != cur->provider ? lead : second;
      if (other && cur->range.value.first <= other->range.value.last) report_overlap(*other, *cur);
      const auto reach = [](const ProviderAddress* p) { return p->range.value.last; };
      if (!lead || reach(cur) > reach(lead)) {
        if (lead && lead->provider != cur->provider) second = lead;
        lead = cur;
      } else if (cur->provider != lead->provider && (!second || reach(cur) > reach(second))) {
        second = cur;
      }
    }
  }

  void report_overlap(const ProviderAddress& x, const ProviderAddress& y) {
    const auto* a = &x;
    const auto* b = &y;
    if (std::pair(b->range.where.line, b->range.where.column) <
        std::pair(a->range.where.line, a->range.where.column)) {
      std::swap(a, b);  // report at the one written later
    }
    diag_.add(b->range.where, "address " + quoted(b->range.text) + " of provider " +
                                  quoted(provider_name(b->provider)) + " overlaps address " +
                                  quoted(a->range.text) + " of provider " +
                                  quoted(provider_name(a->provider)) +
                                  "; a packet must be attributable to one provider");
  }

  const std::string& provider_name(std::size_t index) const {
    return policy_.providers[index].name;
  }

  // Provider addresses by (family, start), with the furthest end reached up to each position,
  // so that overlap questions are answered by binary search.
  void sort_provider_addresses() {
    sorted_addresses_.clear();
    sorted_addresses_.reserve(provider_addresses_.size());
    reach_so_far_.reserve(provider_addresses_.size());
    for (const auto& p : provider_addresses_) sorted_addresses_.push_back(&p);
    std::sort(sorted_addresses_.begin(), sorted_addresses_.end(), [](const auto* x, const auto* y) {
      return x->range.value.first < y->range.value.first;
    });
    reach_so_far_.clear();
    for (std::size_t i = 0; i < sorted_addresses_.size(); ++i) {
      const auto& r = sorted_addresses_[i]->range.value;
      const bool same_family = i > 0 && reach_so_far_.back().family == r.family();
      reach_so_far_.push_back(same_family ? std::max(reach_so_far_.back(), r.last) : r.last);
    }
  }

  // ---- windows

  void read_windows(const TableReader& root) {
    const toml::table* windows = root.subtable("windows", Need::optional);
    if (windows == nullptr) return;
    for (const auto& [key, node] : *windows) {
      const std::string path = "windows." + std::string(key.str());
      const auto* table = node.as_table();
      if (table == nullptr) {
        diag_.add(node.source(),
                  quoted(path) + " must be a table ([" + path + "]), got " + describe(node));
        continue;
      }
      if (key.str() == kAlwaysWindow) {
        diag_.add(key.source(),
                  "window name 'always' is reserved: it is the built-in window "
                  "that is open round the clock");
      } else {
        check_name("window", key);
      }
      window_names_.insert(std::string(key.str()));
      read_window(TableReader(*table, path, kWindowKeys, diag_), std::string(key.str()));
    }
  }

  void read_window(const TableReader& reader, std::string name) {
    Window window{std::move(name), {}, {}, {}, false, reader.where()};
    if (const auto days = reader.list<int>("days", Need::required, Empty::refused, &parse_day)) {
      for (const auto& day : *days) {
        if (window.days.test(static_cast<std::size_t>(day.value))) {
          diag_.add(day.where, "day " + quoted(day.text) + " is listed twice in " + reader.path());
        }
        window.days.set(static_cast<std::size_t>(day.value));
      }
    }
    const auto from = read_clock(reader, "from");
    const auto to = read_clock(reader, "to");
    if (from && to && from->value == to->value) {
      diag_.add(to->where, "a window from " + from->text + " to " + to->text +
                               " is empty; use the built-in \"always\" for round the clock");
    }
    if (from) window.from = from->value;
    if (to) window.to = to->value;
    policy_.windows.push_back(std::move(window));
  }

  std::optional<Located<std::chrono::minutes>> read_clock(const TableReader& reader,
                                                          std::string_view key) {
    const auto text = reader.string(key, Need::required);
    if (!text) return std::nullopt;
    const auto minutes = parse_clock(text->value);
    if (!minutes) {
      std::string message = quoted(reader.key_path(key)) +
                            " must be a time of day \"HH:MM\" (00:00 to 23:59), got " +
                            quoted(text->value);
      if (text->value == "24:00") message += "; use \"00:00\" for midnight";
      diag_.add(text->where, std::move(message));
      return std::nullopt;
    }
    return Located<std::chrono::minutes>{*minutes, format_clock(*minutes), text->where};
  }

  // ---- links

  void read_links(const TableReader& root) {
    for_each_table_in_array(root, "links", kLinkKeys,
                            [&](const TableReader& reader) { read_link(reader); });
  }

  void read_link(const TableReader& reader) {
    Link link;
    link.where = reader.where();
    const auto name = reader.string("name", Need::required);
    if (name) {
      link.name = name->value;
      check_link_name(*name);
    }
    if (const auto provider = reader.string("provider", Need::required)) {
      if (provider_names_.count(provider->value) == 0) {
        diag_.add(provider->where, "unknown provider " + quoted(provider->value) +
                                       " (defined: " + names_or_none(provider_names_) + ")");
      }
      link.provider = provider->value;
    }
    if (const auto direction = reader.string("direction", Need::optional)) {
      if (direction->value == "outbound") {
        link.direction = Direction::outbound;
      } else if (direction->value != "inbound") {
        diag_.add(direction->where, quoted(reader.key_path("direction")) +
                                        " must be \"inbound\" or \"outbound\", got " +
                                        quoted(direction->value));
      }
    }
    const auto hosts =
        reader.list<AddressRange>("hosts", Need::required, Empty::refused, &AddressRange::parse);
    if (hosts) {
      link.hosts = values(*hosts);
      check_hosts_apart_from_providers(*hosts, link.name);
    }
    if (const auto ports =
            reader.list<PortRange>("ports", Need::required, Empty::refused, &PortRange::parse)) {
      link.ports = values(*ports);
    }
    if (const auto windows =
            reader.list<std::string>("windows", Need::optional, Empty::allowed, &as_is)) {
      check_window_references(*windows);
      link.windows = values(*windows);
    }
    if (name && links_.count(name->value) == 0) {
      links_.emplace(name->value,
                     LinkInfo{link.where, hosts ? std::optional(link.hosts) : std::nullopt});
    }
    policy_.links.push_back(std::move(link));
  }

  void check_link_name(const Located<std::string>& name) {
    if (!is_valid_name(name.value, kMaxNameLength)) {
      diag_.add(name.where, invalid_name_message("link", name.value));
    }
    if (const auto first = links_.find(name.value); first != links_.end()) {
      diag_.add(name.where, "duplicate link name " + quoted(name.value) +
                                " (first defined at line " +
                                std::to_string(first->second.where.line) + ")");
    }
  }

  void check_window_references(const std::vector<Located<std::string>>& windows) {
    for (const auto& window : windows) {
      if (window.value == kAlwaysWindow || window_names_.count(window.value) != 0) continue;
      std::set<std::string> defined = window_names_;
      defined.insert(std::string(kAlwaysWindow));
      diag_.add(window.where, "unknown window " + quoted(window.value) +
                                  " (defined: " + names_or_none(defined) + ")");
    }
  }

  // Client-side hosts and provider addresses must be distinct, or "from the provider" and "to
  // the client" would match the same packets.
  void check_hosts_apart_from_providers(const std::vector<Located<AddressRange>>& hosts,
                                        const std::string& link) {
    for (const auto& host : hosts) {
      // Candidates start at or before the host's end; walk back while something earlier could
      // still reach the host's start.
      auto it = std::upper_bound(
          sorted_addresses_.begin(), sorted_addresses_.end(), host.value.last,
          [](const Address& a, const auto* p) { return a < p->range.value.first; });
      for (auto i = static_cast<std::size_t>(it - sorted_addresses_.begin()); i-- > 0;) {
        if (reach_so_far_[i] < host.value.first || reach_so_far_[i].family != host.value.family())
          break;
        const auto& address = *sorted_addresses_[i];
        if (!host.value.overlaps(address.range.value)) continue;
        diag_.add(host.where, "host " + quoted(host.text) + " of link " + quoted(link) +
                                  " overlaps address " + quoted(address.range.text) +
                                  " of provider " + quoted(provider_name(address.provider)));
      }
    }
  }

  // ---- grants

  void read_grants(const TableReader& root) {
    for_each_table_in_array(root, "grants", kGrantKeys,
                            [&](const TableReader& reader) { read_grant(reader); });
  }

  void read_grant(const TableReader& reader) {
    Grant grant;
    grant.where = reader.where();
    const LinkInfo* link = nullptr;
    if (const auto name = reader.string("link", Need::required)) {
      grant.link = name->value;
      if (const auto found = links_.find(name->value); found != links_.end()) {
        link = &found->second;
      } else {
        diag_.add(name->where, "unknown link " + quoted(name->value) +
                                   " (defined: " + names_or_none(link_names()) + ")");
      }
    }
    if (const auto ticket = reader.string("ticket", Need::required)) {
      grant.ticket = ticket->value;
      check_ticket(*ticket, grant.link);
    }
    const auto from = reader.instant("from", Need::required);
    const auto until = reader.instant("until", Need::required);
    if (from) grant.from = from->value;
    if (until) {
      grant.until = until->value;
      check_grant_end(*until, from, grant.ticket);
    }
    if (const auto hosts = reader.list<AddressRange>("hosts", Need::optional, Empty::refused,
                                                     &AddressRange::parse)) {
      grant.hosts = values(*hosts);
      if (link != nullptr && link->hosts) check_grant_hosts(*hosts, *link->hosts, grant);
    }
    policy_.grants.push_back(std::move(grant));
  }

  void check_ticket(const Located<std::string>& ticket, const std::string& link) {
    if (ticket.value.empty()) {
      diag_.add(ticket.where,
                "'ticket' must not be empty: a grant needs the change ticket "
                "that approved it");
      return;
    }
    const auto key = std::make_pair(link, ticket.value);
    if (const auto first = grant_tickets_.find(key); first != grant_tickets_.end()) {
      diag_.add(ticket.where, "duplicate grant: ticket " + quoted(ticket.value) + " for link " +
                                  quoted(link) + " already appears at line " +
                                  std::to_string(first->second.line));
      return;
    }
    grant_tickets_.emplace(key, ticket.where);
  }

  void check_grant_end(const Located<Instant>& until, const std::optional<Located<Instant>>& from,
                       const std::string& ticket) {
    if (from && until.value <= from->value) {
      diag_.add(until.where, "grant " + quoted(ticket) + " ends (until = " + until.text +
                                 ") at or before it starts (from = " + from->text + ")");
    }
    if (policy_.expires && until.value > *policy_.expires) {
      diag_.add(until.where, "grant " + quoted(ticket) + " lasts until " + until.text +
                                 ", after the policy expires (" + expires_text_ + ")");
    }
  }

  void check_grant_hosts(const std::vector<Located<AddressRange>>& hosts,
                         const std::vector<AddressRange>& link_hosts, const Grant& grant) {
    for (const auto& host : hosts) {
      const bool inside =
          std::any_of(link_hosts.begin(), link_hosts.end(),
                      [&](const AddressRange& r) { return r.contains(host.value); });
      if (!inside) {
        diag_.add(host.where, "host " + quoted(host.text) + " of grant " + quoted(grant.ticket) +
                                  " is not within the hosts of link " + quoted(grant.link));
      }
    }
  }

  // ---- guard

  void read_guard(const TableReader& root) {
    const toml::table* table = root.subtable("guard", Need::optional);
    if (table == nullptr) return;
    const TableReader reader(*table, "guard", kGuardKeys, diag_);
    policy_.guard.where = reader.where();
    if (const auto ports =
            reader.list<PortRange>("ports", Need::optional, Empty::allowed, &PortRange::parse)) {
      policy_.guard.ports = values(*ports);
    }
  }

  // ---- shared

  // [[key]]: an array of tables, each read in file order as "key[i]".
  void for_each_table_in_array(const TableReader& root, std::string_view key, KeyList allowed,
                               const std::function<void(const TableReader&)>& read) {
    const toml::node* node = root.get(key, Need::optional);
    if (node == nullptr) return;
    const auto* array = node->as_array();
    if (array == nullptr || (!array->empty() && !array->is_array_of_tables())) {
      root.type_error(key, "an array of tables ([[" + std::string(key) + "]])", *node);
      return;
    }
    for (std::size_t i = 0; i < array->size(); ++i) {
      const std::string path = std::string(key) + "[" + std::to_string(i) + "]";
      read(TableReader(*array->get(i)->as_table(), path, allowed, diag_));
    }
  }

  void check_name(std::string_view kind, const toml::key& key) {
    if (!is_valid_name(key.str(), kMaxNameLength)) {
      diag_.add(key.source(), invalid_name_message(kind, key.str()));
    }
  }

  static std::string invalid_name_message(std::string_view kind, std::string_view name) {
    return std::string(kind) + " name " + quoted(name) +
           " is not valid (1-48 of A-Z a-z 0-9 . _ -, starting with a letter or digit; names "
           "appear in kernel log prefixes)";
  }

  static std::string names_or_none(const std::set<std::string>& names) {
    return names.empty() ? "none" : join({names.begin(), names.end()});
  }

  [[nodiscard]] std::set<std::string> link_names() const {
    std::set<std::string> names;
    for (const auto& [name, info] : links_) names.insert(name);
    return names;
  }

  Diagnostics diag_;
  Policy policy_;
  std::string expires_text_;
  std::set<std::string> provider_names_;  // every provider table, even one with errors
  std::set<std::string> window_names_;
  std::vector<ProviderAddress> provider_addresses_;
  std::vector<const ProviderAddress*> sorted_addresses_;  // by (family, start)
  std::vector<Address> reach_so_far_;                     // furthest end up to each index
  std::map<std::string, LinkInfo> links_;                 // first definition of each name
  std::map<std::pair<std::string, std::string>, TextPosition> grant_tickets_;
};

}  // namespace

ParsedPolicy parse_policy_text(std::string_view toml_text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, std::string(source_name));
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    ParsedPolicy failed;
    failed.diagnostics.errors.push_back(make_error(
        std::string(e.description()),
        {std::string(source_name), static_cast<int>(begin.line), static_cast<int>(begin.column)}));
    return failed;
  }
  return PolicyBuilder(std::string(source_name)).build(root);
}

ParsedPolicy parse_policy_file(const std::string& path) {
  const auto unreadable = [&](int error) {
    ParsedPolicy failed;
    failed.diagnostics.errors.push_back(
        make_error("cannot read policy file: " + std::string(std::strerror(error)), {path}));
    return failed;
  };
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                             &std::fclose);
  if (!file) return unreadable(errno);
  std::string text;
  std::array<char, 8192> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    text.append(buffer.data(), n);
  }
  if (std::ferror(file.get()) != 0) return unreadable(errno);
  return parse_policy_text(text, path);
}

}  // namespace drawbridge
