#include "enforcer/kernel_state.h"

#include <linux/netfilter/nf_tables.h>

#include <map>

namespace drawbridge {

namespace {

const std::string& structure_of(const RulesetPlan& plan, std::string& scratch) {
  if (!plan.fingerprint.empty()) return plan.fingerprint;
  scratch = plan_fingerprint(plan);  // a plan not made by compile()
  return scratch;
}

// An open element by its key, with the absolute instant it closes.
struct OpenEntry {
  SetElement element;
  Instant until;
};
using OpenKey = std::pair<std::optional<AddressRange>, std::optional<PortRange>>;

std::map<OpenKey, OpenEntry> open_entries(const std::vector<SetElement>& elements, Instant at) {
  std::map<OpenKey, OpenEntry> out;
  for (const auto& e : elements) {
    const Instant until = e.timeout ? at + *e.timeout : Instant::max();
    out[{e.address, e.service}] = {e, until};
  }
  return out;
}

}  // namespace

NftablesWriter::Committed NftablesWriter::Committed::of(const RulesetPlan& plan) {
  Committed c;
  std::string scratch;
  c.fingerprint = structure_of(plan, scratch);
  c.compiled_at = plan.compiled_at;
  for (const auto& s : plan.sets) {
    if (s.has_timeouts) c.open_sets.push_back(s.elements);
  }
  return c;
}

Result<NftBatch> NftablesWriter::replacement(const RulesetPlan& plan) {
  auto existing = sock_.read_table(plan.table);
  if (!existing.ok()) return existing.error();
  NftBatch batch;
  batch.add_table(plan.table);
  // Flush every chain first so that no rule still references a set or chain deleted below;
  // then sets (their verdict elements reference chains), then chains.
  for (const auto& c : existing->chains) batch.flush_chain(plan.table, c.name);
  for (const auto& s : existing->sets) batch.delete_set(plan.table, s);
  for (const auto& c : existing->chains) {
    bool keep = false;
    if (c.base) {
      // A base chain stays hooked when the plan has it with the same hook and priority.
      const auto* p = plan.chain(c.name);
      keep = p && p->hook &&
             c.hook == (p->hook->point == Hook::Point::forward ? 2u /*NF_INET_FORWARD*/
                                                               : 1u /*NF_INET_LOCAL_IN*/) &&
             c.priority == p->hook->priority;
    }
    if (!keep) batch.delete_chain(plan.table, c.name);
  }
  // Chains before sets: verdict map elements name their target chains.
  for (const auto& c : plan.chains) batch.add_chain(plan.table, c);
  for (const auto& s : plan.sets) batch.add_set(plan.table, s);
  for (const auto& c : plan.chains) {
    for (const auto& r : c.rules) batch.add_rule(plan.table, c.name, r, plan.log_group);
  }
  return batch;
}

Result<void> NftablesWriter::replace(const RulesetPlan& plan) {
  auto batch = replacement(plan);
  if (!batch.ok()) return batch.error();
  stats_ = ApplyStats{batch->message_count(), batch->size_bytes(), 0, 0, false};
  auto sent = sock_.send(*batch, true);
  if (!sent.ok()) {
    // The replacement was built from a reading of the table; another process may have changed
    // the table between that reading and the commit (the kernel refused the batch whole, so
    // nothing changed). Build it once more from a fresh reading.
    batch = replacement(plan);
    if (!batch.ok()) return batch.error();
    stats_ = ApplyStats{batch->message_count(), batch->size_bytes(), 0, 0, false};
    if (sock_.send(*batch, true).ok()) {
      committed_ = Committed::of(plan);
      return {};
    }
  }
  if (!sent.ok()) {
    committed_.reset();  // the kernel kept its previous state, which we may not know exactly
    return sent;
  }
  committed_ = Committed::of(plan);
  return {};
}

Result<void> NftablesWriter::validate(const RulesetPlan& plan) {
  auto batch = replacement(plan);
  if (!batch.ok()) return batch.error();
  return sock_.send(*batch, false);
}

Result<void> NftablesWriter::update_windows(const RulesetPlan& plan) {
  std::string scratch;
  if (!committed_ || committed_->fingerprint != structure_of(plan, scratch)) return replace(plan);
  const Instant now = plan.compiled_at;
  NftBatch batch;
  std::size_t added = 0, deleted = 0, open_index = 0;
  for (const SetPlan& want : plan.sets) {
    if (!want.has_timeouts) continue;
    // Same structure, so the same open sets in the same order.
    auto have = open_entries(committed_->open_sets.at(open_index++), committed_->compiled_at);
    const auto need = open_entries(want.elements, now);
    std::vector<SetElement> to_delete, to_add;
    for (const auto& [key, entry] : have) {
      if (entry.until <= now) continue;  // already expired in the kernel
      const auto it = need.find(key);
      if (it == need.end() || it->second.until != entry.until ||
          it->second.element.verdict != entry.element.verdict) {
        to_delete.push_back(entry.element);
      }
    }
    for (const auto& [key, entry] : need) {
      const auto it = have.find(key);
      if (it == have.end() || it->second.until <= now || it->second.until != entry.until ||
          it->second.element.verdict != entry.element.verdict) {
        to_add.push_back(entry.element);
      }
    }
    // Delete and re-add in one transaction: the element's timeout is refreshed on every kernel
    // and there is no instant where the key is absent.
    batch.delete_elements(plan.table, want, to_delete);
    batch.add_elements(plan.table, want, to_add);
    added += to_add.size();
    deleted += to_delete.size();
  }
  stats_ = ApplyStats{batch.message_count(), batch.size_bytes(), added, deleted, true};
  if (batch.empty()) {
    committed_ = Committed::of(plan);
    return {};
  }
  auto sent = sock_.send(batch, true);
  if (!sent.ok()) {
    // Someone changed the table behind our back, or an element expired in the meantime:
    // reconcile by replacing everything.
    return replace(plan);
  }
  committed_ = Committed::of(plan);
  return {};
}

namespace {

// Open elements as the kernel holds them, in the plan's terms; nullopt if they do not decode.
std::optional<std::vector<SetElement>> decode_open(const SetPlan& set,
                                                   const std::vector<KernelElement>& kernel) {
  std::vector<SetElement> out;
  for (const auto& k : kernel) {
    auto e = decode_address_service(k, set.family);
    if (!e) return std::nullopt;
    out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace

Result<bool> NftablesWriter::holds(const RulesetPlan& plan) {
  auto existing = sock_.read_table(plan.table);
  if (!existing.ok()) return existing.error();
  const ChainPlan* want_gate = plan.chain("gate");
  if (!existing->exists || existing->flags != 0 || !want_gate) return false;
  if (existing->chains.size() != plan.chains.size() || existing->sets.size() != plan.sets.size()) {
    return false;
  }
  for (const auto& name : existing->sets) {
    if (!plan.set(name)) return false;
  }
  std::map<std::string, std::size_t> rules_per_chain;
  for (const auto& c : existing->chains) {
    const ChainPlan* want = plan.chain(c.name);
    if (!want || (c.name == "gate" && c.comment != want_gate->comment)) return false;
    rules_per_chain[c.name] = 0;
  }
  // Rules are few (tens) whatever the policy size; set elements are never read here.
  auto rules = sock_.read_rules(plan.table);
  if (!rules.ok()) return rules.error();
  for (const auto& r : *rules) ++rules_per_chain[r.chain];
  for (const auto& c : plan.chains) {
    if (rules_per_chain[c.name] != c.rules.size()) return false;
  }
  return true;
}

Result<void> NftablesWriter::reconcile(const RulesetPlan& plan) {
  auto in_place = holds(plan);
  if (!in_place.ok()) return in_place.error();
  if (!*in_place) return replace(plan);
  Committed current = Committed::of(plan);
  std::size_t open_index = 0;
  for (const auto& set : plan.sets) {
    if (!set.has_timeouts) continue;
    auto kernel = sock_.read_elements(plan.table, set.name);
    if (!kernel.ok()) return replace(plan);
    auto decoded = decode_open(set, *kernel);
    if (!decoded) return replace(plan);
    // The kernel counts timeouts in jiffies: an element that closes within a second of when
    // the plan says is the same element, not one to refresh.
    const SetPlan* wanted = plan.set(set.name);
    for (auto& e : *decoded) {
      for (const auto& w : wanted->elements) {
        if (w.address == e.address && w.service == e.service && w.verdict == e.verdict &&
            w.timeout && e.timeout &&
            std::chrono::abs(*w.timeout - *e.timeout) <= std::chrono::seconds(1)) {
          e.timeout = w.timeout;
        }
      }
    }
    current.open_sets.at(open_index++) = std::move(*decoded);
  }
  committed_ = std::move(current);
  auto r = update_windows(plan);
  stats_.reconciled = stats_.incremental;
  return r;
}

Result<bool> NftablesWriter::remove_table(const std::string& table) {
  auto existing = sock_.read_table(table);
  if (!existing.ok()) return existing.error();
  if (!existing->exists) return false;
  NftBatch batch;
  batch.delete_table(table);
  auto sent = sock_.send(batch, true);
  if (!sent.ok()) return sent.error();
  committed_.reset();
  return true;
}

}  // namespace drawbridge
