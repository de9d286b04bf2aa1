#include "enforcer/netlink_batch.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace drawbridge {

namespace {

// RAII for libnftnl objects: each type has its own free function.
template <class T, auto Free>
struct Freer {
  void operator()(T* p) const noexcept { Free(p); }
};
using TablePtr = std::unique_ptr<nftnl_table, Freer<nftnl_table, nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Freer<nftnl_chain, nftnl_chain_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Freer<nftnl_set, nftnl_set_free>>;
using ElemPtr = std::unique_ptr<nftnl_set_elem, Freer<nftnl_set_elem, nftnl_set_elem_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Freer<nftnl_rule, nftnl_rule_free>>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, Freer<nftnl_udata_buf, nftnl_udata_buf_free>>;

// A single message never exceeds this: element lists are cut at kElementChunk.
constexpr std::size_t kScratch = 96 * 1024;
// The element list attribute's length is 16 bits; stay well below 64 KiB.
constexpr std::uint32_t kElementChunk = 60 * 1024;

// nftables datatype ids, as nft (src/datatype.h) numbers them; concatenations shift by 6 bits.
constexpr std::uint32_t kTypeIpv4 = 7, kTypeIpv6 = 8, kTypeInetProto = 12, kTypeInetService = 13;
constexpr std::uint32_t kTypeBits = 6;
// nft's byteorder enum, stored in set user data so `nft list` prints keys correctly.
constexpr std::uint32_t kByteorderBigEndian = 2;
constexpr std::uint32_t kExprConcat = 13;  // nft's EXPR_CONCAT, recorded for concatenated keys

std::uint32_t addr_type(Family f) {
  return f == Family::v4 ? kTypeIpv4 : kTypeIpv6;
}
std::uint32_t addr_len(Family f) {
  return f == Family::v4 ? 4 : 16;
}

std::uint32_t key_type(const SetPlan& s) {
  switch (s.shape) {
    case KeyShape::address:
      return addr_type(s.family);
    case KeyShape::address_service:
      return (((addr_type(s.family) << kTypeBits) | kTypeInetProto) << kTypeBits) |
             kTypeInetService;
    case KeyShape::service:
      return (kTypeInetProto << kTypeBits) | kTypeInetService;
  }
  return 0;
}

// Field lengths in bytes, and the key length in 32-bit registers.
std::vector<std::uint8_t> field_lengths(const SetPlan& s) {
  switch (s.shape) {
    case KeyShape::address:
      return {static_cast<std::uint8_t>(addr_len(s.family))};
    case KeyShape::address_service:
      return {static_cast<std::uint8_t>(addr_len(s.family)), 1, 2};
    case KeyShape::service:
      return {1, 2};
  }
  return {};
}

std::uint32_t key_len(const SetPlan& s) {
  std::uint32_t len = 0;
  for (auto f : field_lengths(s)) len += (f + 3u) & ~3u;
  return s.shape == KeyShape::address ? addr_len(s.family) : len;
}

// Key bytes as registers hold them: each field padded to 4 bytes, network byte order.
std::vector<std::uint8_t> key_bytes(const SetPlan& s, const Address* a, Protocol proto,
                                    std::uint16_t port) {
  std::vector<std::uint8_t> k;
  if (s.shape != KeyShape::service)
    k.insert(k.end(), a->bytes.begin(), a->bytes.begin() + a->size());
  if (s.shape != KeyShape::address) {
    const std::uint8_t p[4] = {static_cast<std::uint8_t>(proto), 0, 0, 0};
    k.insert(k.end(), p, p + 4);
    const std::uint8_t q[4] = {static_cast<std::uint8_t>(port >> 8),
                               static_cast<std::uint8_t>(port), 0, 0};
    k.insert(k.end(), q, q + 4);
  }
  return k;
}

std::uint32_t verdict_code(Verdict::Kind k) {
  switch (k) {
    case Verdict::Kind::accept:
      return NF_ACCEPT;
    case Verdict::Kind::drop:
      return NF_DROP;
    case Verdict::Kind::jump:
      return static_cast<std::uint32_t>(NFT_JUMP);
    case Verdict::Kind::go_to:
      return static_cast<std::uint32_t>(NFT_GOTO);
  }
  return NF_DROP;
}

void set_verdict(nftnl_set_elem* e, const Verdict& v) {
  nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, verdict_code(v.kind));
  if (!v.chain.empty()) nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, v.chain.c_str());
}

// The kernel elements for one planned element. Concatenated sets take a range per element
// (key, key_end); plain interval sets take a start element and an end element at last+1.
std::vector<ElemPtr> kernel_elements(const SetPlan& s, const SetElement& pe, bool with_data) {
  std::vector<ElemPtr> out;
  ElemPtr e(nftnl_set_elem_alloc());
  if (s.shape == KeyShape::address) {
    const auto k = key_bytes(s, &pe.address->first, Protocol::tcp, 0);
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, k.data(), static_cast<std::uint32_t>(k.size()));
  } else {
    const Address* first = pe.address ? &pe.address->first : nullptr;
    const Address* last = pe.address ? &pe.address->last : nullptr;
    const auto k = key_bytes(s, first, pe.service->protocol, pe.service->first);
    const auto ke = key_bytes(s, last, pe.service->protocol, pe.service->last);
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, k.data(), static_cast<std::uint32_t>(k.size()));
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY_END, ke.data(),
                       static_cast<std::uint32_t>(ke.size()));
  }
  if (with_data) {
    if (pe.verdict) set_verdict(e.get(), *pe.verdict);
    if (pe.timeout) {
      nftnl_set_elem_set_u64(
          e.get(), NFTNL_SET_ELEM_TIMEOUT,
          static_cast<std::uint64_t>(std::max<std::int64_t>(1, pe.timeout->count())));
    }
  }
  out.push_back(std::move(e));
  return out;
}

// Interval end markers for plain (non-concatenated) interval sets, the way nft sends them: an
// end at address zero when the first range starts above it, and an end after each range that
// the next range does not start right after.
std::vector<ElemPtr> rbtree_elements(const SetPlan& s, const std::vector<SetElement>& elements,
                                     bool with_data) {
  std::vector<ElemPtr> out;
  const auto end_marker = [&](const Address& a) {
    ElemPtr e(nftnl_set_elem_alloc());
    const auto k = key_bytes(s, &a, Protocol::tcp, 0);
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, k.data(), static_cast<std::uint32_t>(k.size()));
    nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    return e;
  };
  if (!elements.empty() && elements.front().address->first != Address::lowest(s.family)) {
    out.push_back(end_marker(Address::lowest(s.family)));
  }
  for (std::size_t i = 0; i < elements.size(); ++i) {
    for (auto& e : kernel_elements(s, elements[i], with_data)) out.push_back(std::move(e));
    const auto after = elements[i].address->last.next();
    const bool next_starts_here =
        i + 1 < elements.size() && after && elements[i + 1].address->first == *after;
    if (after && !next_starts_here) out.push_back(end_marker(*after));
  }
  return out;
}

void put_comment(nftnl_udata_buf* buf, std::uint8_t type, const std::string& comment) {
  nftnl_udata_put_strz(buf, type, comment.c_str());
}

void add_expr(nftnl_rule* r, nftnl_expr* e) {
  nftnl_rule_add_expr(r, e);
}

nftnl_expr* expr(const char* name) {
  return nftnl_expr_alloc(name);
}

void meta_nfproto(nftnl_rule* r, Family f) {
  auto* m = expr("meta");
  nftnl_expr_set_u32(m, NFTNL_EXPR_META_KEY, NFT_META_NFPROTO);
  nftnl_expr_set_u32(m, NFTNL_EXPR_META_DREG, NFT_REG_1);
  add_expr(r, m);
  auto* c = expr("cmp");
  nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  const std::uint8_t proto = f == Family::v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
  nftnl_expr_set(c, NFTNL_EXPR_CMP_DATA, &proto, 1);
  add_expr(r, c);
}

// cmp eq reg 1 <one byte>
void cmp_byte(nftnl_rule* r, std::uint8_t value) {
  auto* c = expr("cmp");
  nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(c, NFTNL_EXPR_CMP_DATA, &value, 1);
  add_expr(r, c);
}

void payload(nftnl_rule* r, std::uint32_t base, std::uint32_t offset, std::uint32_t len,
             std::uint32_t dreg) {
  auto* p = expr("payload");
  nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(p, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  add_expr(r, p);
}

// Loads `key` into registers the way nft does: the first field in NFT_REG_1, each following
// field in the next free 32-bit register, with the family check before the first address load.
void load_key(nftnl_rule* r, const RulePlan& rule) {
  bool checked_family = false;
  std::uint32_t word = 0;  // next free 32-bit register, counted from NFT_REG32_00
  for (Field f : rule.key) {
    const std::uint32_t dreg = word == 0 ? static_cast<std::uint32_t>(NFT_REG_1)
                                         : static_cast<std::uint32_t>(NFT_REG32_00) + word;
    switch (f) {
      case Field::saddr:
      case Field::daddr: {
        if (!checked_family) {
          meta_nfproto(r, rule.family);
          checked_family = true;
        }
        const bool v4 = rule.family == Family::v4;
        const std::uint32_t off = v4 ? (f == Field::saddr ? 12 : 16) : (f == Field::saddr ? 8 : 24);
        payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, v4 ? 4 : 16, dreg);
        word += v4 ? 1 : 4;
        break;
      }
      case Field::l4proto: {
        auto* m = expr("meta");
        nftnl_expr_set_u32(m, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
        nftnl_expr_set_u32(m, NFTNL_EXPR_META_DREG, dreg);
        add_expr(r, m);
        if (rule.key.size() > 1) {
          // nft converts the 1-byte protocol in a concatenation (a no-op on the value).
          auto* b = expr("byteorder");
          nftnl_expr_set_u32(b, NFTNL_EXPR_BYTEORDER_SREG, dreg);
          nftnl_expr_set_u32(b, NFTNL_EXPR_BYTEORDER_DREG, dreg);
          nftnl_expr_set_u32(b, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
          nftnl_expr_set_u32(b, NFTNL_EXPR_BYTEORDER_LEN, 1);
          nftnl_expr_set_u32(b, NFTNL_EXPR_BYTEORDER_SIZE, 2);
          add_expr(r, b);
        }
        word += 1;
        break;
      }
      case Field::sport:
      case Field::dport:
        payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, f == Field::sport ? 0 : 2, 2, dreg);
        word += 1;
        break;
    }
  }
}

}  // namespace

std::optional<SetElement> decode_address_service(const KernelElement& k, Family family) {
  const std::size_t alen = family == Family::v4 ? 4 : 16;
  if (k.key.size() != alen + 8 || k.key_end.size() != alen + 8) return std::nullopt;
  Address first, last;
  first.family = last.family = family;
  std::copy_n(k.key.begin(), alen, first.bytes.begin());
  std::copy_n(k.key_end.begin(), alen, last.bytes.begin());
  const auto port = [&](const std::vector<std::uint8_t>& b) {
    return static_cast<std::uint16_t>((b[alen + 4] << 8) | b[alen + 5]);
  };
  SetElement e;
  e.address = AddressRange{first, last};
  e.service = PortRange{static_cast<Protocol>(k.key[alen]), port(k.key), port(k.key_end)};
  if (!k.chain.empty()) e.verdict = Verdict{Verdict::Kind::go_to, k.chain};
  if (k.timeout) e.timeout = k.expires.value_or(std::chrono::milliseconds(0));
  return e;
}

NftBatch::NftBatch() = default;

std::uint32_t NftBatch::set_id(const std::string& name) {
  for (const auto& [n, id] : set_ids_) {
    if (n == name) return id;
  }
  const auto id = static_cast<std::uint32_t>(set_ids_.size() + 1);
  set_ids_.emplace_back(name, id);
  return id;
}

void NftBatch::append(const std::function<void(char*)>& build, std::string what) {
  std::vector<char> scratch(kScratch);
  build(scratch.data());
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(scratch.data());
  msg_offset_.push_back(static_cast<std::uint32_t>(buf_.size()));
  buf_.insert(buf_.end(), scratch.data(), scratch.data() + NLMSG_ALIGN(nlh->nlmsg_len));
  what_.push_back(std::move(what));
}

void NftBatch::add_table(const std::string& table) {
  append(
      [&](char* b) {
        TablePtr t(nftnl_table_alloc());
        nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
        // Flags 0: never dormant, and no "owner" flag that would make the table vanish (and
        // the gateway fail open) when the process that created it exits.
        nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
        auto* nlh =
            nftnl_nlmsg_build_hdr(b, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, 0);
        nftnl_table_nlmsg_build_payload(nlh, t.get());
      },
      "creating table inet " + table);
}

void NftBatch::delete_table(const std::string& table) {
  append(
      [&](char* b) {
        TablePtr t(nftnl_table_alloc());
        nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
        nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
        auto* nlh = nftnl_nlmsg_build_hdr(b, NFT_MSG_DELTABLE, NFPROTO_INET, NLM_F_ACK, 0);
        nftnl_table_nlmsg_build_payload(nlh, t.get());
      },
      "deleting table inet " + table);
}

void NftBatch::flush_chain(const std::string& table, const std::string& chain) {
  append(
      [&](char* b) {
        RulePtr r(nftnl_rule_alloc());
        nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
        nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
        nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
        auto* nlh = nftnl_nlmsg_build_hdr(b, NFT_MSG_DELRULE, NFPROTO_INET, NLM_F_ACK, 0);
        nftnl_rule_nlmsg_build_payload(nlh, r.get());
      },
      "flushing chain " + chain);
}

void NftBatch::delete_chain(const std::string& table, const std::string& chain) {
  append(
      [&](char* b) {
        ChainPtr c(nftnl_chain_alloc());
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain.c_str());
        auto* nlh = nftnl_nlmsg_build_hdr(b, NFT_MSG_DELCHAIN, NFPROTO_INET, NLM_F_ACK, 0);
        nftnl_chain_nlmsg_build_payload(nlh, c.get());
      },
      "deleting chain " + chain);
}

void NftBatch::delete_set(const std::string& table, const std::string& set) {
  append(
      [&](char* b) {
        SetPtr s(nftnl_set_alloc());
        nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
        auto* nlh = nftnl_nlmsg_build_hdr(b, NFT_MSG_DELSET, NFPROTO_INET, NLM_F_ACK, 0);
        nftnl_set_nlmsg_build_payload(nlh, s.get());
      },
      "deleting set " + set);
}

void NftBatch::add_set(const std::string& table, const SetPlan& plan) {
  const auto id = set_id(plan.name);
  append(
      [&](char* b) {
        SetPtr s(nftnl_set_alloc());
        nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
        nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, plan.name.c_str());
        std::uint32_t flags = plan.interval ? NFT_SET_INTERVAL : 0;
        if (plan.verdict_map) flags |= NFT_SET_MAP;
        if (plan.has_timeouts) flags |= NFT_SET_TIMEOUT;
        if (plan.dynamic) {
          // Rules add to it (`update @set { ... }`), which needs NFT_SET_EVAL.
          flags |= NFT_SET_EVAL | NFT_SET_TIMEOUT;
          nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT,
                            static_cast<std::uint64_t>(plan.entry_timeout.count()));
          nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, plan.size);
        }
        if (plan.shape != KeyShape::address) flags |= NFT_SET_CONCAT;
        nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, flags);
        nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, key_type(plan));
        nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, key_len(plan));
        if (plan.verdict_map) {
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
          nftnl_set_set_u32(s.get(), NFTNL_SET_DATA_LEN, 0);
        }
        nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
        if (plan.shape != KeyShape::address) {
          std::uint8_t lens[NFT_REG32_COUNT] = {};
          const auto fl = field_lengths(plan);
          std::copy(fl.begin(), fl.end(), lens);
          nftnl_set_set_data(s.get(), NFTNL_SET_DESC_CONCAT, lens,
                             static_cast<std::uint32_t>(fl.size()));
        }
        // User data that nft reads back to print keys and data in the right form.
        UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
        if (plan.shape == KeyShape::address) {
          nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderBigEndian);
          if (plan.verdict_map) {
            nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
            nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
          }
        } else {
          nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, 0);
          if (plan.verdict_map) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATABYTEORDER, 0);
          auto* typeof_nest = nftnl_udata_nest_start(ud.get(), NFTNL_UDATA_SET_KEY_TYPEOF);
          nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kExprConcat);
          auto* data_nest = nftnl_udata_nest_start(ud.get(), NFTNL_UDATA_SET_TYPEOF_DATA);
          nftnl_udata_nest_end(ud.get(), data_nest);
          nftnl_udata_nest_end(ud.get(), typeof_nest);
          if (plan.verdict_map) nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_DATA_INTERVAL, 0);
        }
        nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                           nftnl_udata_buf_len(ud.get()));
        auto* nlh =
            nftnl_nlmsg_build_hdr(b, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, 0);
        nftnl_set_nlmsg_build_payload(nlh, s.get());
      },
      "creating set " + plan.name);
  add_elements(table, plan, plan.elements);
}

void NftBatch::add_elements(const std::string& table, const SetPlan& set,
                            const std::vector<SetElement>& elements) {
  element_messages(NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, set, elements);
}

void NftBatch::delete_elements(const std::string& table, const SetPlan& set,
                               const std::vector<SetElement>& elements) {
  element_messages(NFT_MSG_DELSETELEM, 0, table, set, elements);
}

void NftBatch::element_messages(std::uint16_t type, std::uint16_t flags, const std::string& table,
                                const SetPlan& set, const std::vector<SetElement>& elements) {
  if (elements.empty()) return;
  const bool adding = type == NFT_MSG_NEWSETELEM;
  std::vector<ElemPtr> kernel;
  if (set.shape == KeyShape::address && set.interval) {
    kernel = rbtree_elements(set, elements, adding);
  } else {
    for (const auto& e : elements) {
      for (auto& k : kernel_elements(set, e, adding)) kernel.push_back(std::move(k));
    }
  }
  const auto id = set_id(set.name);
  std::size_t next = 0;
  while (next < kernel.size()) {
    append(
        [&](char* b) {
          SetPtr s(nftnl_set_alloc());
          nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
          nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str());
          nftnl_set_set_u32(s.get(), NFTNL_SET_ID, id);
          auto* nlh = nftnl_nlmsg_build_hdr(b, type, NFPROTO_INET, flags | NLM_F_ACK, 0);
          nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
          auto* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
          int index = 0;
          while (next < kernel.size() && nlh->nlmsg_len < kElementChunk) {
            auto* one = mnl_attr_nest_start(nlh, ++index);
            nftnl_set_elem_nlmsg_build_payload(nlh, kernel[next].get());
            mnl_attr_nest_end(nlh, one);
            ++next;
          }
          mnl_attr_nest_end(nlh, list);
        },
        std::string(adding ? "adding" : "deleting") + " elements of set " + set.name);
  }
}

void NftBatch::add_chain(const std::string& table, const ChainPlan& plan) {
  append(
      [&](char* b) {
        ChainPtr c(nftnl_chain_alloc());
        nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
        nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, plan.name.c_str());
        if (plan.hook) {
          nftnl_chain_set_u32(
              c.get(), NFTNL_CHAIN_HOOKNUM,
              plan.hook->point == Hook::Point::forward ? NF_INET_FORWARD : NF_INET_LOCAL_IN);
          nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, plan.hook->priority);
          nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
          nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
        }
        if (!plan.comment.empty()) {
          UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
          put_comment(ud.get(), NFTNL_UDATA_CHAIN_COMMENT, plan.comment);
          nftnl_chain_set_data(c.get(), NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(ud.get()),
                               nftnl_udata_buf_len(ud.get()));
        }
        auto* nlh =
            nftnl_nlmsg_build_hdr(b, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, 0);
        nftnl_chain_nlmsg_build_payload(nlh, c.get());
      },
      "creating chain " + plan.name);
}

void NftBatch::add_rule(const std::string& table, const std::string& chain, const RulePlan& rule,
                        std::uint16_t log_group) {
  const std::uint32_t lookup_set_id = rule.key.empty() ? 0 : set_id(rule.set);
  const std::uint32_t meter_set_id = rule.meter ? set_id(rule.meter->set) : 0;
  append(
      [&](char* b) {
        RulePtr r(nftnl_rule_alloc());
        nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
        nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
        nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
        if (rule.icmpv6_type) {
          meta_nfproto(r.get(), Family::v6);
          auto* m = expr("meta");
          nftnl_expr_set_u32(m, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
          nftnl_expr_set_u32(m, NFTNL_EXPR_META_DREG, NFT_REG_1);
          add_expr(r.get(), m);
          cmp_byte(r.get(), IPPROTO_ICMPV6);
          payload(r.get(), NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1, NFT_REG_1);
          cmp_byte(r.get(), *rule.icmpv6_type);
        }
        if (rule.reply_only) {
          auto* ct = expr("ct");
          nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_DIRECTION);
          nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
          add_expr(r.get(), ct);
          auto* c = expr("cmp");
          nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
          nftnl_expr_set_u32(c, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
          const std::uint8_t reply = 1;  // IP_CT_DIR_REPLY
          nftnl_expr_set(c, NFTNL_EXPR_CMP_DATA, &reply, 1);
          add_expr(r.get(), c);
        }
        if (!rule.key.empty()) {
          load_key(r.get(), rule);
          auto* l = expr("lookup");
          nftnl_expr_set_u32(l, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
          nftnl_expr_set_str(l, NFTNL_EXPR_LOOKUP_SET, rule.set.c_str());
          nftnl_expr_set_u32(l, NFTNL_EXPR_LOOKUP_SET_ID, lookup_set_id);
          if (rule.verdict_map) nftnl_expr_set_u32(l, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_VERDICT);
          add_expr(r.get(), l);
        }
        if (rule.meter) {
          // update @set { saddr limit rate R/second burst B packets }: past the rate the limit
          // ends the rule here, and the next rule counts and drops without logging.
          const bool v4 = rule.meter->family == Family::v4;
          meta_nfproto(r.get(), rule.meter->family);
          payload(r.get(), NFT_PAYLOAD_NETWORK_HEADER, v4 ? 12 : 8, v4 ? 4 : 16, NFT_REG_1);
          auto* limit = expr("limit");
          nftnl_expr_set_u64(limit, NFTNL_EXPR_LIMIT_RATE, rule.meter->rate);
          nftnl_expr_set_u64(limit, NFTNL_EXPR_LIMIT_UNIT, 1);  // per second
          nftnl_expr_set_u32(limit, NFTNL_EXPR_LIMIT_BURST, rule.meter->burst);
          nftnl_expr_set_u32(limit, NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
          nftnl_expr_set_u32(limit, NFTNL_EXPR_LIMIT_FLAGS, 0);
          auto* d = expr("dynset");
          nftnl_expr_set_u32(d, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
          nftnl_expr_set_u32(d, NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
          nftnl_expr_set_str(d, NFTNL_EXPR_DYNSET_SET_NAME, rule.meter->set.c_str());
          nftnl_expr_set_u32(d, NFTNL_EXPR_DYNSET_SET_ID, meter_set_id);
          nftnl_expr_set(d, NFTNL_EXPR_DYNSET_EXPR, limit, 0);  // the dynset owns it now
          add_expr(r.get(), d);
        }
        if (rule.counter) {
          auto* c = expr("counter");
          nftnl_expr_set_u64(c, NFTNL_EXPR_CTR_PACKETS, 0);
          nftnl_expr_set_u64(c, NFTNL_EXPR_CTR_BYTES, 0);
          add_expr(r.get(), c);
        }
        if (rule.log_prefix) {
          auto* l = expr("log");
          nftnl_expr_set_str(l, NFTNL_EXPR_LOG_PREFIX, rule.log_prefix->c_str());
          nftnl_expr_set_u16(l, NFTNL_EXPR_LOG_GROUP, log_group);
          add_expr(r.get(), l);
        }
        if (rule.verdict) {
          auto* i = expr("immediate");
          nftnl_expr_set_u32(i, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
          nftnl_expr_set_u32(i, NFTNL_EXPR_IMM_VERDICT, verdict_code(rule.verdict->kind));
          if (!rule.verdict->chain.empty()) {
            nftnl_expr_set_str(i, NFTNL_EXPR_IMM_CHAIN, rule.verdict->chain.c_str());
          }
          add_expr(r.get(), i);
        }
        if (!rule.comment.empty()) {
          UdataPtr ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
          put_comment(ud.get(), NFTNL_UDATA_RULE_COMMENT, rule.comment);
          nftnl_rule_set_data(r.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud.get()),
                              nftnl_udata_buf_len(ud.get()));
        }
        auto* nlh = nftnl_nlmsg_build_hdr(b, NFT_MSG_NEWRULE, NFPROTO_INET,
                                          NLM_F_APPEND | NLM_F_CREATE | NLM_F_ACK, 0);
        nftnl_rule_nlmsg_build_payload(nlh, r.get());
      },
      "adding a rule to chain " + chain);
}

// ---------------------------------------------------------------------------------------------
// The socket.

namespace {

// strerror, with what to do about the one error an operator can fix at once.
std::string errno_text(int err) {
  std::string text = std::strerror(err);
  if (err == EPERM) text += " (nftables needs root or CAP_NET_ADMIN)";
  return text;
}

// The kernel's extended ack message (NLMSGERR_ATTR_MSG), when it sent one.
std::string extack_message(const nlmsghdr* nlh) {
  if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(const_cast<nlmsghdr*>(nlh)));
  std::size_t offset = sizeof(nlmsgerr);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) offset += mnl_nlmsg_get_payload_len(&err->msg);
  std::string msg;
  // mnl_attr_for_each, spelled out: the macro's casts do not compile as C++.
  auto* msg_start = const_cast<nlmsghdr*>(nlh);
  for (auto* attr = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(msg_start, offset));
       mnl_attr_ok(attr,
                   static_cast<int>(static_cast<char*>(mnl_nlmsg_get_payload_tail(msg_start)) -
                                    reinterpret_cast<char*>(attr)));
       attr = mnl_attr_next(attr)) {
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG) msg = mnl_attr_get_str(attr);
  }
  return msg;
}

}  // namespace

NetlinkSocket::NetlinkSocket(mnl_socket* s) : sock_(s), portid_(mnl_socket_get_portid(s)) {}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& o) noexcept
    : sock_(std::exchange(o.sock_, nullptr)), portid_(o.portid_), seq_(o.seq_) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& o) noexcept {
  if (this != &o) {
    if (sock_) mnl_socket_close(sock_);
    sock_ = std::exchange(o.sock_, nullptr);
    portid_ = o.portid_;
    seq_ = o.seq_;
  }
  return *this;
}

NetlinkSocket::~NetlinkSocket() {
  if (sock_) mnl_socket_close(sock_);
}

Result<NetlinkSocket> NetlinkSocket::open() {
  mnl_socket* s = mnl_socket_open(NETLINK_NETFILTER);
  if (!s) return make_error("cannot open a netfilter netlink socket: " + errno_text(errno));
  if (mnl_socket_bind(s, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(s);
    return make_error("cannot bind the netfilter netlink socket: " + errno_text(err));
  }
  int on = 1;
  // Errors carry the kernel's explanation, without echoing our (possibly huge) message back.
  mnl_socket_setsockopt(s, NETLINK_EXT_ACK, &on, sizeof on);
  mnl_socket_setsockopt(s, NETLINK_CAP_ACK, &on, sizeof on);
  NetlinkSocket sock(s);
  sock.seq_ = static_cast<std::uint32_t>(time(nullptr));
  return sock;
}

Result<NetlinkSocket> NetlinkSocket::open_monitor() {
  mnl_socket* s = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!s) return make_error("cannot open a netfilter netlink socket: " + errno_text(errno));
  if (mnl_socket_bind(s, 1u << (NFNLGRP_NFTABLES - 1), MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(s);
    return make_error("cannot subscribe to nftables notifications: " + errno_text(err));
  }
  return NetlinkSocket(s);
}

int NetlinkSocket::fd() const {
  return mnl_socket_get_fd(sock_);
}

bool NetlinkSocket::drain() {
  std::vector<char> buf(1 << 16);
  bool any = false;
  while (true) {
    const ssize_t n = recv(fd(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n > 0) {
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) {
      any = true;  // events were lost: something changed, we do not know what
      continue;
    }
    return any;
  }
}

Result<void> NetlinkSocket::send(const NftBatch& batch, bool commit) {
  if (batch.empty()) return {};
  // Number the messages and frame them with batch begin (and end, when committing).
  std::vector<char> out;
  out.reserve(batch.buf_.size() + 64);
  std::vector<char> hdr_buf(4096);
  char* hdr = hdr_buf.data();
  const std::uint32_t first_seq = next_seq();
  auto* begin = nftnl_batch_begin(hdr, first_seq);
  out.insert(out.end(), hdr, hdr + NLMSG_ALIGN(begin->nlmsg_len));
  std::map<std::uint32_t, std::size_t> seq_to_msg;
  for (std::size_t i = 0; i < batch.what_.size(); ++i) {
    const std::size_t off = out.size();
    const std::uint32_t start = batch.msg_offset_[i];
    const std::uint32_t end = i + 1 < batch.msg_offset_.size()
                                  ? batch.msg_offset_[i + 1]
                                  : static_cast<std::uint32_t>(batch.buf_.size());
    out.insert(out.end(), batch.buf_.begin() + start, batch.buf_.begin() + end);
    auto* nlh = reinterpret_cast<nlmsghdr*>(out.data() + off);
    nlh->nlmsg_seq = next_seq();
    seq_to_msg[nlh->nlmsg_seq] = i;
  }
  if (commit) {
    auto* end = nftnl_batch_end(hdr, next_seq());
    out.insert(out.end(), hdr, hdr + NLMSG_ALIGN(end->nlmsg_len));
  }

  // One transaction is one sendmsg: size both buffers for it (SO_*BUFFORCE needs CAP_NET_ADMIN,
  // which writing rules needs anyway; the plain option is the fallback).
  const int sndbuf = static_cast<int>(out.size() + 4096);
  if (setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) <
      0) {
    setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  const int rcvbuf = static_cast<int>(std::max<std::size_t>(1 << 20, batch.what_.size() * 256));
  if (setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) <
      0) {
    setsockopt(mnl_socket_get_fd(sock_), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (mnl_socket_sendto(sock_, out.data(), out.size()) < 0) {
    return make_error("sending the nftables transaction (" + std::to_string(out.size()) +
                      " bytes) failed: " + errno_text(errno));
  }

  // The kernel processes a batch inside sendmsg, so every answer is already queued: read
  // without blocking until the queue is empty.
  std::optional<Error> first_error;
  std::vector<char> rbuf(1 << 16);
  std::size_t acks = 0;
  while (true) {
    const ssize_t n = recv(mnl_socket_get_fd(sock_), rbuf.data(), rbuf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return make_error("reading the kernel's answer failed: " + errno_text(errno));
    }
    int remaining = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(nlh, remaining);
         nlh = mnl_nlmsg_next(nlh, &remaining)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      ++acks;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0 && !first_error) {
        const auto it = seq_to_msg.find(err->msg.nlmsg_seq);
        const std::string what =
            it != seq_to_msg.end() ? batch.what_[it->second] : "the transaction";
        std::string msg = "the kernel refused " + what + ": " + errno_text(-err->error);
        if (const auto ext = extack_message(nlh); !ext.empty()) msg += " (" + ext + ")";
        first_error = make_error(msg);
      }
    }
  }
  if (first_error) return *first_error;
  if (commit && acks < batch.what_.size()) {
    return make_error("the kernel acknowledged " + std::to_string(acks) + " of " +
                      std::to_string(batch.what_.size()) + " messages; state unknown");
  }
  return {};
}

Result<void> NetlinkSocket::dump(std::vector<char> request,
                                 const std::function<int(const nlmsghdr*)>& on_msg) {
  last_errno_ = 0;
  auto* nlh = reinterpret_cast<nlmsghdr*>(request.data());
  const std::uint32_t seq = nlh->nlmsg_seq = next_seq();
  if (mnl_socket_sendto(sock_, request.data(), nlh->nlmsg_len) < 0) {
    return make_error("netlink request failed: " + errno_text(errno));
  }
  struct Ctx {
    const std::function<int(const nlmsghdr*)>* fn;
  } ctx{&on_msg};
  const auto cb = [](const nlmsghdr* n, void* data) -> int {
    return (*static_cast<Ctx*>(data)->fn)(n);
  };
  std::vector<char> buf(32768);
  while (true) {
    const ssize_t n = mnl_socket_recvfrom(sock_, buf.data(), buf.size());
    if (n < 0) return make_error("reading from netlink failed: " + errno_text(errno));
    const int ret = mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq, portid_, cb, &ctx);
    if (ret < 0) {
      last_errno_ = errno;
      return make_error(errno_text(last_errno_));
    }
    if (ret == MNL_CB_STOP) break;
  }
  return {};
}

Result<std::uint32_t> NetlinkSocket::generation() {
  std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
  nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, 0);
  std::optional<std::uint32_t> id;
  auto r = dump(std::move(req), [&](const nlmsghdr* n) {
    std::unique_ptr<nftnl_gen, decltype(&nftnl_gen_free)> gen(nftnl_gen_alloc(), nftnl_gen_free);
    if (gen && nftnl_gen_nlmsg_parse(n, gen.get()) == 0)
      id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
    return MNL_CB_OK;
  });
  if (!r.ok()) return make_error("reading the ruleset generation: " + r.error().message);
  if (!id) return make_error("the kernel did not report the ruleset generation");
  return *id;
}

Result<KernelTable> NetlinkSocket::read_table(const std::string& table) {
  constexpr int kAttempts = 20;
  Error last = make_error("");
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    auto before = generation();
    if (!before.ok()) return before.error();
    auto t = read_table_once(table);
    auto after = generation();
    if (!after.ok()) return after.error();
    if (t.ok() && *before == *after) return t;
    // EINTR is libmnl's report of NLM_F_DUMP_INTR: a commit happened during the dump.
    if (!t.ok() && last_errno_ != EINTR && *before == *after) return t;
    last = t.ok() ? make_error("the ruleset kept changing while it was read") : t.error();
  }
  return make_error("reading table inet " + table + ": " + last.message + " (" +
                    std::to_string(kAttempts) +
                    " attempts; is something rewriting nftables "
                    "in a loop?)");
}

Result<KernelTable> NetlinkSocket::read_table_once(const std::string& table) {
  KernelTable out;
  {
    std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
    auto* nlh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, 0);
    TablePtr t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    auto r = dump(std::move(req), [&](const nlmsghdr* n) {
      TablePtr got(nftnl_table_alloc());
      if (nftnl_table_nlmsg_parse(n, got.get()) == 0) {
        out.exists = true;
        out.flags = nftnl_table_get_u32(got.get(), NFTNL_TABLE_FLAGS);
      }
      return MNL_CB_OK;
    });
    if (!r.ok()) {
      if (last_errno_ == ENOENT) return out;
      return make_error("reading table inet " + table + ": " + r.error().message);
    }
  }
  if (!out.exists) return out;
  {
    std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
    auto* nlh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, 0);
    ChainPtr c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
    auto r = dump(std::move(req), [&](const nlmsghdr* n) {
      ChainPtr got(nftnl_chain_alloc());
      if (nftnl_chain_nlmsg_parse(n, got.get()) == 0 &&
          table == nftnl_chain_get_str(got.get(), NFTNL_CHAIN_TABLE)) {
        KernelChain kc;
        kc.name = nftnl_chain_get_str(got.get(), NFTNL_CHAIN_NAME);
        kc.base = nftnl_chain_is_set(got.get(), NFTNL_CHAIN_HOOKNUM);
        if (kc.base) {
          kc.hook = nftnl_chain_get_u32(got.get(), NFTNL_CHAIN_HOOKNUM);
          kc.priority = nftnl_chain_get_s32(got.get(), NFTNL_CHAIN_PRIO);
        }
        std::uint32_t len = 0;
        if (const void* ud = nftnl_chain_get_data(got.get(), NFTNL_CHAIN_USERDATA, &len)) {
          const auto cb = [](const nftnl_udata* attr, void* data) -> int {
            if (nftnl_udata_type(attr) == NFTNL_UDATA_CHAIN_COMMENT) {
              *static_cast<std::string*>(data) = static_cast<const char*>(nftnl_udata_get(attr));
            }
            return MNL_CB_OK;
          };
          nftnl_udata_parse(ud, len, cb, &kc.comment);
        }
        out.chains.push_back(std::move(kc));
      }
      return MNL_CB_OK;
    });
    if (!r.ok()) return make_error("listing chains of inet " + table + ": " + r.error().message);
  }
  {
    std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
    auto* nlh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, 0);
    SetPtr s(nftnl_set_alloc());
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_nlmsg_build_payload(nlh, s.get());
    auto r = dump(std::move(req), [&](const nlmsghdr* n) {
      SetPtr got(nftnl_set_alloc());
      if (nftnl_set_nlmsg_parse(n, got.get()) == 0 &&
          table == nftnl_set_get_str(got.get(), NFTNL_SET_TABLE)) {
        out.sets.emplace_back(nftnl_set_get_str(got.get(), NFTNL_SET_NAME));
      }
      return MNL_CB_OK;
    });
    if (!r.ok()) return make_error("listing sets of inet " + table + ": " + r.error().message);
  }
  return out;
}

Result<std::vector<KernelElement>> NetlinkSocket::read_elements(const std::string& table,
                                                                const std::string& set) {
  std::vector<KernelElement> out;
  std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, 0);
  SetPtr s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.c_str());
  nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  auto r = dump(std::move(req), [&](const nlmsghdr* n) {
    SetPtr got(nftnl_set_alloc());
    if (nftnl_set_elems_nlmsg_parse(n, got.get()) < 0) return MNL_CB_OK;
    auto* it = nftnl_set_elems_iter_create(got.get());
    while (auto* e = nftnl_set_elems_iter_next(it)) {
      KernelElement ke;
      std::uint32_t len = 0;
      if (const auto* k =
              static_cast<const std::uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len))) {
        ke.key.assign(k, k + len);
      }
      if (const auto* k = static_cast<const std::uint8_t*>(
              nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY_END, &len))) {
        ke.key_end.assign(k, k + len);
      }
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN))
        ke.chain = nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN);
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT)) {
        ke.timeout = std::chrono::milliseconds(nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT));
      }
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_EXPIRATION)) {
        ke.expires =
            std::chrono::milliseconds(nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_EXPIRATION));
      }
      if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS)) {
        ke.interval_end =
            (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END) != 0;
      }
      out.push_back(std::move(ke));
    }
    nftnl_set_elems_iter_destroy(it);
    return MNL_CB_OK;
  });
  if (!r.ok()) return make_error("reading set " + set + ": " + r.error().message);
  return out;
}

Result<std::vector<KernelRule>> NetlinkSocket::read_rules(const std::string& table) {
  std::vector<KernelRule> out;
  std::vector<char> req(MNL_SOCKET_BUFFER_SIZE);
  auto* nlh = nftnl_nlmsg_build_hdr(req.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, 0);
  RulePtr rule(nftnl_rule_alloc());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_nlmsg_build_payload(nlh, rule.get());
  auto r = dump(std::move(req), [&](const nlmsghdr* n) {
    RulePtr got(nftnl_rule_alloc());
    if (nftnl_rule_nlmsg_parse(n, got.get()) < 0) return MNL_CB_OK;
    if (table != nftnl_rule_get_str(got.get(), NFTNL_RULE_TABLE)) return MNL_CB_OK;
    KernelRule kr;
    kr.chain = nftnl_rule_get_str(got.get(), NFTNL_RULE_CHAIN);
    kr.handle = nftnl_rule_get_u64(got.get(), NFTNL_RULE_HANDLE);
    auto* it = nftnl_expr_iter_create(got.get());
    while (auto* e = nftnl_expr_iter_next(it)) {
      const char* name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
      if (std::strcmp(name, "counter") == 0) {
        kr.has_counter = true;
        kr.packets = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        kr.bytes = nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
      } else if (std::strcmp(name, "log") == 0 && nftnl_expr_is_set(e, NFTNL_EXPR_LOG_PREFIX)) {
        kr.log_prefix = nftnl_expr_get_str(e, NFTNL_EXPR_LOG_PREFIX);
      }
    }
    nftnl_expr_iter_destroy(it);
    std::uint32_t len = 0;
    if (const void* ud = nftnl_rule_get_data(got.get(), NFTNL_RULE_USERDATA, &len)) {
      const auto cb = [](const nftnl_udata* attr, void* data) -> int {
        if (nftnl_udata_type(attr) == NFTNL_UDATA_RULE_COMMENT) {
          *static_cast<std::string*>(data) = static_cast<const char*>(nftnl_udata_get(attr));
        }
        return MNL_CB_OK;
      };
      nftnl_udata_parse(ud, len, cb, &kr.comment);
    }
    out.push_back(std::move(kr));
    return MNL_CB_OK;
  });
  if (!r.ok()) return make_error("reading rules of inet " + table + ": " + r.error().message);
  return out;
}

}  // namespace drawbridge
