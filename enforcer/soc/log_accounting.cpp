#include "enforcer/soc/log_accounting.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "common/window_schedule.h"

namespace drawbridge {

namespace {

// Increase of each rule since `before`: a counter that went down belongs to a new rule that
// got an old handle number (handles are never reused within a table, but the table itself may
// have been deleted and made again), so it counts whole.
template <class Visit>
void increases(const std::vector<LogRuleCount>& before, const std::vector<LogRuleCount>& now,
               Visit&& visit) {
  std::map<std::uint64_t, std::uint64_t> old;
  for (const auto& r : before) old[r.handle] = r.packets;
  for (const auto& r : now) {
    const auto it = old.find(r.handle);
    const bool continued = it != old.end() && r.packets >= it->second;
    visit(r, continued ? r.packets - it->second : r.packets);
  }
}

}  // namespace

void LogAccounting::observe(const LogCounterReading& reading) {
  logged_lagged_ = logged_;
  if (last_) {
    increases(last_->rules, reading.rules, [&](const LogRuleCount& r, std::uint64_t delta) {
      if (!r.rate_limited) {
        logged_ += delta;
        return;
      }
      rate_limited_ += delta;
      if (delta == 0) return;
      auto it = std::find_if(by_prefix_.begin(), by_prefix_.end(),
                             [&](const auto& p) { return p.first == r.prefix; });
      if (it == by_prefix_.end()) {
        by_prefix_.emplace_back(r.prefix, delta);
      } else {
        it->second += delta;
      }
    });
    logged_lagged_ = std::min(logged_lagged_, logged_);
  }
  // The first reading is the baseline: what it holds was counted before this run read anything.
  last_ = reading;
}

std::uint64_t LogAccounting::lost(std::uint64_t received, std::uint64_t seq_lost) const {
  const std::uint64_t shortfall = logged_lagged_ > received ? logged_lagged_ - received : 0;
  return std::max(seq_lost, shortfall);
}

std::uint64_t LogAccounting::lost_now(std::uint64_t received, std::uint64_t seq_lost) const {
  const std::uint64_t shortfall = logged_ > received ? logged_ - received : 0;
  return std::max(seq_lost, shortfall);
}

LoggedWhileDown LogAccounting::logged_while_down(const SavedLogCounters& saved,
                                                 const LogCounterReading& now) {
  LoggedWhileDown down;
  down.upper_bound = !saved.clean_stop;
  increases(saved.reading.rules, now.rules, [&](const LogRuleCount& r, std::uint64_t delta) {
    if (!r.rate_limited) down.packets += delta;
  });
  for (const auto& s : saved.reading.rules) {
    const bool kept = std::any_of(now.rules.begin(), now.rules.end(),
                                  [&](const LogRuleCount& r) { return r.handle == s.handle; });
    if (!kept && !s.rate_limited) down.lower_bound = true;
  }
  return down;
}

std::string encode_saved_log_counters(const SavedLogCounters& saved) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : saved.reading.rules) {
    rules.push_back({{"handle", r.handle},
                     {"packets", r.packets},
                     {"rate_limited", r.rate_limited},
                     {"prefix", r.prefix}});
  }
  nlohmann::json j{{"read_at", format_instant(saved.reading.at)},
                   {"clean_stop", saved.clean_stop},
                   {"rules", rules}};
  return j.dump(2) + "\n";
}

Result<SavedLogCounters> decode_saved_log_counters(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return make_error("not a JSON object");
  SavedLogCounters saved;
  const auto at = j.find("read_at");
  const auto clean = j.find("clean_stop");
  const auto rules = j.find("rules");
  if (at == j.end() || !at->is_string() || clean == j.end() || !clean->is_boolean() ||
      rules == j.end() || !rules->is_array()) {
    return make_error("needs read_at (string), clean_stop (boolean) and rules (array)");
  }
  const auto when = parse_instant(at->get<std::string>());
  if (!when) return make_error("read_at is not an RFC 3339 time");
  saved.reading.at = *when;
  saved.clean_stop = clean->get<bool>();
  for (const auto& r : *rules) {
    if (!r.is_object() || !r.contains("handle") || !r["handle"].is_number_unsigned() ||
        !r.contains("packets") || !r["packets"].is_number_unsigned() ||
        !r.contains("rate_limited") || !r["rate_limited"].is_boolean() || !r.contains("prefix") ||
        !r["prefix"].is_string()) {
      return make_error("a rule needs handle, packets (unsigned), rate_limited and prefix");
    }
    saved.reading.rules.push_back({r["handle"].get<std::uint64_t>(),
                                   r["packets"].get<std::uint64_t>(), r["rate_limited"].get<bool>(),
                                   r["prefix"].get<std::string>()});
  }
  return saved;
}

}  // namespace drawbridge
