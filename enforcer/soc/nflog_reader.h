// The capture stage: packets the ruleset dropped and logged to an NFLOG group, read from the
// kernel over nfnetlink (NFNL_SUBSYS_ULOG) with libmnl, and accounted so that every logged
// packet is either delivered or counted as lost.
//
//   nflog_reader → violation (attribute, aggregate) → event_format → event_sink
//
// Two halves: pure functions (one netlink message → LoggedPacket; sequence accounting) that the
// unit tests drive with captured bytes, and NflogReader, which owns the socket.
#pragma once

#include <linux/netlink.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/policy_model.h"
#include "common/result.h"
#include "enforcer/soc/event.h"

struct mnl_socket;

namespace drawbridge {

// One packet as NFLOG reported it.
struct LoggedPacket {
  std::string prefix;  // NFULA_PREFIX without the NUL: "drawbridge:<reason>:<subject>"
  // Addresses, protocol, ports (TCP/UDP), ICMP type/code, TCP flags and interface names.
  // direction stays unknown: only the attribution stage knows which side is the provider.
  Flow flow;
  std::optional<Instant> kernel_time;  // NFULA_TIMESTAMP (microseconds cut to milliseconds)
  std::optional<std::uint32_t> seq;    // per-group sequence (NFULA_SEQ)
  std::optional<std::uint32_t> seq_global;
  // From the IP header: IPv4 total length, IPv6 payload length + 40. 0 when the header says 0
  // (a GSO/BIG TCP aggregate whose length is only known to the kernel).
  std::uint32_t length = 0;
  // Interface indexes as the kernel sent them (0 = absent). Names are only meaningful in the
  // network namespace the packet was logged in, so the indexes are kept next to them.
  std::uint32_t in_ifindex = 0, out_ifindex = 0;
  std::uint16_t group = 0;  // the NFLOG group (res_id)
  std::uint8_t hook = 0;    // netfilter hook (NF_INET_LOCAL_IN, NF_INET_FORWARD, …)
};

// Interface index → name. Resolution depends on the network namespace and changes when an
// interface is renamed, so it is a parameter of the parser rather than a hidden lookup.
using InterfaceNamer = std::function<std::string(std::uint32_t ifindex)>;

// if_indextoname in the calling thread's network namespace; the index as decimal text when no
// interface has it (any more).
std::string kernel_interface_name(std::uint32_t ifindex);

// Pure: one NFULNL_MSG_PACKET message → LoggedPacket, or an error that says what is wrong
// (truncated attribute, unknown family, payload too short for the header it claims, …).
// Reads nothing beyond nlh->nlmsg_len: the caller guarantees that many bytes are readable
// (recv's length checked with mnl_nlmsg_ok). Interface names come from `namer`.
[[nodiscard]] Result<LoggedPacket> parse_nflog_packet(const nlmsghdr* nlh,
                                                      const InterfaceNamer& namer);
// The same, naming interfaces with kernel_interface_name.
[[nodiscard]] Result<LoggedPacket> parse_nflog_packet(const nlmsghdr* nlh);
// For bytes of unknown provenance: checks that the message's own length fits in `size` first.
[[nodiscard]] Result<LoggedPacket> parse_nflog_message(const void* data, std::size_t size,
                                                       const InterfaceNamer& namer);

// Pure sequence accounting for one group's NFULA_SEQ. The kernel numbers every message it
// builds for the group, before it knows whether the socket has room, so a gap of k between
// consecutive received numbers means k packets were logged and lost (ENOBUFS). Wraps at 2^32.
class SequenceTracker {
 public:
  // Returns how many packets were lost just before this one. The first number after
  // construction or reset() starts a new epoch: nothing is counted for it. A number that is not
  // ahead of the last one by less than 2^31 (a repeat, or a jump backwards: the kernel's
  // instance was recreated) also starts a new epoch instead of counting ~4 billion losses.
  std::uint64_t observe(std::uint32_t seq);
  // Forget the last number (after a rebind the kernel numbers from 0 again). lost() is kept.
  void reset() { last_.reset(); }
  [[nodiscard]] std::uint64_t lost() const { return lost_; }
  [[nodiscard]] std::uint64_t epochs() const { return epochs_; }

 private:
  std::optional<std::uint32_t> last_;
  std::uint64_t lost_ = 0;
  std::uint64_t epochs_ = 0;
};

// received + parse_errors + seq_lost = packets the kernel logged to the group, once a later
// packet has arrived (a loss at the very end shows only in the next packet's number). A garbled
// message whose sequence number is readable counts as a parse error only, not also as lost.
struct NflogCounters {
  std::uint64_t received = 0;      // parsed and delivered to on_packet
  std::uint64_t parse_errors = 0;  // messages that did not parse (and truncated datagrams)
  std::uint64_t seq_lost = 0;      // packets the sequence numbers show as lost
  std::uint64_t enobufs = 0;       // times the kernel reported its queue to us overflowed
};

// Batching parameters sent to the kernel. The defaults keep one delivery to a 16 KiB
// allocation (nlbufsiz leaves room for the skb's shared info, so the kernel never rounds the
// buffer up to the next power of two) and bound the latency of a lone packet to 50 ms.
struct NflogTuning {
  std::uint32_t nlbufsiz = 16384 - 512;  // bytes per kernel → user datagram (kernel max 128 KiB)
  std::uint32_t qthresh = 40;            // messages per datagram (~330 bytes each at range 128)
  std::uint32_t timeout_cs = 5;          // flush after this many 1/100 s
};

// An NFLOG group bound to this process. Move-only; unbinds and closes on destruction.
class NflogReader {
 public:
  // Binds `group` (NFULNL_CFG_CMD_BIND; the legacy PF_BIND/PF_UNBIND commands are not sent:
  // nftables' `log group` uses the per-type NFLOG logger, and PF_(UN)BIND would only change the
  // namespace's default logger for other subsystems), copy mode packet with `copy_range` bytes
  // (128 covers IPv6 + a full TCP header), flags SEQ|SEQ_GLOBAL, `tuning` for bursts, a receive
  // buffer of `rcvbuf` bytes (SO_RCVBUFFORCE, SO_RCVBUF when not permitted). Non-blocking.
  // NETLINK_NO_ENOBUFS stays off: an overflow is reported, counted, and reading continues.
  // Fails when another socket holds the group (the kernel answers EPERM, as it does without
  // CAP_NET_ADMIN; the error names both).
  static Result<NflogReader> open(std::uint16_t group, int rcvbuf = 8 << 20,
                                  std::uint32_t copy_range = 128, NflogTuning tuning = {});

  [[nodiscard]] int fd() const;
  [[nodiscard]] std::uint16_t group() const { return group_; }

  // Reads what is queued now without blocking and calls on_packet for each parsed packet, in
  // order; returns this call's increments (also added to totals()). Stops after a bounded
  // number of datagrams so that a flood cannot starve the caller's event loop: poll again.
  // on_packet must not throw. If it does, the exception propagates; the packets after it in the
  // same datagram are not delivered, and the next packet's sequence number counts them as lost.
  // on_message, when set, sees every netlink message first, raw (capture and diagnostics).
  NflogCounters read_available(const std::function<void(const LoggedPacket&)>& on_packet,
                               const std::function<void(const nlmsghdr*)>& on_message = {});

  [[nodiscard]] const NflogCounters& totals() const { return totals_; }
  // Why the last message that did not parse was refused (for the daemon's log).
  [[nodiscard]] const std::string& last_parse_error() const { return last_parse_error_; }

  NflogReader(NflogReader&& o) noexcept;
  NflogReader& operator=(NflogReader&& o) noexcept;
  NflogReader(const NflogReader&) = delete;
  NflogReader& operator=(const NflogReader&) = delete;
  ~NflogReader();

 private:
  struct SocketCloser {
    void operator()(mnl_socket* s) const noexcept;
  };
  using SocketPtr = std::unique_ptr<mnl_socket, SocketCloser>;

  NflogReader(SocketPtr sock, std::uint16_t group);
  void unbind() noexcept;
  void process_datagram(const char* data, std::size_t size, bool truncated,
                        const std::function<void(const LoggedPacket&)>& on_packet,
                        const std::function<void(const nlmsghdr*)>& on_message,
                        NflogCounters& delta);

  SocketPtr sock_;
  std::uint16_t group_ = 0;
  SequenceTracker seq_;
  NflogCounters totals_;
  std::string last_parse_error_;
  // Interface names by index, each looked up again after a second (if_indextoname costs a
  // socket and an ioctl: too much per packet in a flood), so a rename shows within a second.
  struct InterfaceName {
    std::string name;
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::uint32_t, InterfaceName> if_names_;
  std::vector<char> buf_;
  // Datagrams that arrived while open() waited for the kernel's acknowledgement.
  std::vector<std::vector<char>> early_;
};

}  // namespace drawbridge
