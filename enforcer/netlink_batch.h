// ruleset_plan → kernel: nftables netlink messages built with libnftnl, sent with libmnl.
//
// A NftBatch is one transaction: the kernel applies all of it or none of it. Committing it
// without the batch-end message makes the kernel check every message and then abort, which is
// how `apply --dry-run` validates without changing anything (what `nft --check` does).
#pragma once

#include <linux/netlink.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "enforcer/ruleset_plan.h"

struct mnl_socket;

namespace drawbridge {

class NftBatch {
 public:
  NftBatch();

  void add_table(const std::string& table);  // creates it or, when it exists, clears its flags
  void delete_table(const std::string& table);
  void flush_chain(const std::string& table, const std::string& chain);
  void delete_chain(const std::string& table, const std::string& chain);
  void delete_set(const std::string& table, const std::string& set);
  // The set and its elements, in messages of about 64 KB each.
  void add_set(const std::string& table, const SetPlan& set);
  void add_elements(const std::string& table, const SetPlan& set,
                    const std::vector<SetElement>& elements);
  void delete_elements(const std::string& table, const SetPlan& set,
                       const std::vector<SetElement>& elements);
  void add_chain(const std::string& table, const ChainPlan& chain);
  void add_rule(const std::string& table, const std::string& chain, const RulePlan& rule,
                std::uint16_t log_group);

  [[nodiscard]] std::size_t message_count() const { return what_.size(); }
  [[nodiscard]] std::size_t size_bytes() const { return buf_.size(); }
  [[nodiscard]] bool empty() const { return what_.empty(); }

 private:
  friend class NetlinkSocket;
  // Appends one message built by `build` into a scratch buffer; `what` names it in errors.
  void append(const std::function<void(char* scratch)>& build, std::string what);
  void element_messages(std::uint16_t type, std::uint16_t flags, const std::string& table,
                        const SetPlan& set, const std::vector<SetElement>& elements);
  // The set id ties elements and lookups to a set created in the same transaction.
  std::uint32_t set_id(const std::string& name);

  std::vector<char> buf_;          // the messages, back to back, without begin/end
  std::vector<std::string> what_;  // one per message, in order
  std::vector<std::uint32_t> msg_offset_;
  std::vector<std::pair<std::string, std::uint32_t>> set_ids_;
};

// One chain, rule or set as the kernel reports it.
struct KernelChain {
  std::string name;
  bool base = false;
  std::uint32_t hook = 0;
  int priority = 0;
  std::string comment;
};

struct KernelTable {
  bool exists = false;
  std::uint32_t flags = 0;  // NFT_TABLE_F_*
  std::vector<KernelChain> chains;
  std::vector<std::string> sets;
};

struct KernelElement {
  std::vector<std::uint8_t> key;
  std::vector<std::uint8_t> key_end;
  std::string chain;  // verdict map target
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::chrono::milliseconds> expires;  // remaining
  bool interval_end = false;
};

// An element of an address . inet_proto . inet_service map as the plan describes it (the
// inverse of how NftBatch encodes it); nullopt when the key does not have that shape.
std::optional<SetElement> decode_address_service(const KernelElement& element, Family family);

struct KernelRule {
  std::string chain;
  std::uint64_t handle = 0;
  std::string comment;
  std::optional<std::string> log_prefix;  // of its log statement, if it has one
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  bool has_counter = false;
};

// An open NETLINK_NETFILTER socket. Move-only; closes on destruction.
class NetlinkSocket {
 public:
  static Result<NetlinkSocket> open();
  // A socket subscribed to nftables change notifications (NFNLGRP_NFTABLES), non-blocking.
  static Result<NetlinkSocket> open_monitor();
  [[nodiscard]] int fd() const;
  // Reads every queued notification; true if there was any (or the queue overflowed, which
  // means there were too many to keep).
  bool drain();
  NetlinkSocket(NetlinkSocket&& o) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& o) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;
  ~NetlinkSocket();

  // Sends the batch as one transaction. With commit=false the kernel validates it and aborts.
  Result<void> send(const NftBatch& batch, bool commit = true);

  // A consistent view of one table: the chain and set lists are dumps that another process's
  // commit (to any table) can interrupt or skew, so they are read between two reads of the
  // ruleset generation and read again until the generation held still.
  Result<KernelTable> read_table(const std::string& table);
  // The ruleset generation id, which every nftables commit increments.
  Result<std::uint32_t> generation();
  Result<std::vector<KernelElement>> read_elements(const std::string& table,
                                                   const std::string& set);
  Result<std::vector<KernelRule>> read_rules(const std::string& table);

 private:
  explicit NetlinkSocket(mnl_socket* s);
  Result<KernelTable> read_table_once(const std::string& table);
  Result<void> dump(std::vector<char> request, const std::function<int(const nlmsghdr*)>& on_msg);
  std::uint32_t next_seq() { return ++seq_; }

  mnl_socket* sock_ = nullptr;
  std::uint32_t portid_ = 0;
  std::uint32_t seq_ = 0;
  int last_errno_ = 0;  // of the last failed dump
};

}  // namespace drawbridge
