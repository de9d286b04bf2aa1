// Events upstream to the controller, over the control channel the daemon already holds
// (docs/distribution.md), so that the fleet status shows violations per site:
//
//   event_spool → Delivery thread → ControllerUpstream::deliver ─┐ outbox + eventfd
//                                                                ▼
//   daemon thread (owns the ZeroMQ socket) → "events" → controller → "events-ack" → daemon
//                                                                   → completes deliver()
//
// ZeroMQ sockets are not thread-safe, so the delivery thread never touches the DEALER: it puts
// its one event in the channel's outbox, wakes the daemon through an eventfd and waits until the
// daemon reports the controller's acknowledgement (success), a disconnect or a timeout
// (failure: Delivery retries with backoff). The controller deduplicates by sequence, so a retry
// after a lost acknowledgement is counted once.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/wire_protocol.h"
#include "enforcer/soc/event.h"
#include "enforcer/soc/event_sink.h"

namespace drawbridge {

struct UpstreamOptions {
  // Where the stream name is kept (a file in the spool directory, so that a new spool is a new
  // stream). Created when missing.
  std::string stream_file;
  // How long one event may wait for the controller's acknowledgement once sent.
  std::chrono::milliseconds ack_timeout{10'000};
  // How long deliver() waits for the control channel to come up before it fails. Longer than
  // Delivery's largest backoff, so that after a controller outage an event is usually already
  // waiting and goes out as soon as the connection is back.
  std::chrono::milliseconds connect_wait{60'000};
};

// The hand-over between the delivery thread and the daemon. Thread-safe.
class UpstreamChannel {
 public:
  static Result<std::shared_ptr<UpstreamChannel>> create(const UpstreamOptions& options);
  ~UpstreamChannel();
  UpstreamChannel(const UpstreamChannel&) = delete;
  UpstreamChannel& operator=(const UpstreamChannel&) = delete;

  // --- the daemon's side (its thread only) ---
  // Readable when an event waits to be sent: put it in the zmq_poll set.
  [[nodiscard]] int wake_fd() const;
  // Clears the wake-up and returns the waiting event as a message for `site`, once per attempt
  // (nullopt when there is nothing new to send).
  std::optional<EventsUpMessage> take_outgoing(const std::string& site);
  // The control channel did not take the message: the waiting deliver() fails at once.
  void send_failed(const std::string& why);
  // The controller's "events-ack".
  void acknowledged(std::uint64_t through);
  // The connection's state as the link's monitor reports it; a disconnect fails a deliver()
  // that waits for an acknowledgement.
  void connection_changed(bool up);

  // --- the delivery thread's side ---
  Result<void> deliver(const SocEvent& event);
  void cancel();  // any thread

  [[nodiscard]] const std::string& stream() const { return stream_; }

 private:
  UpstreamChannel(UpstreamOptions options, std::string stream, int wake_fd);

  const UpstreamOptions opt_;
  const std::string stream_;
  const int wake_fd_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool connected_ = false;
  bool cancelled_ = false;
  std::optional<std::uint64_t> acked_through_;
  struct Pending {
    UpstreamEvent event;
    bool taken = false;   // handed to the daemon
    std::string failure;  // set by the daemon: why this attempt failed
  };
  std::optional<Pending> outbox_;
};

// The EventOutput the Delivery runs; named kUpstreamOutputName ("controller").
class ControllerUpstream final : public EventOutput {
 public:
  explicit ControllerUpstream(std::shared_ptr<UpstreamChannel> channel)
      : channel_(std::move(channel)) {}
  [[nodiscard]] std::string name() const override;
  Result<void> deliver(const SocEvent& event) override { return channel_->deliver(event); }
  void cancel() override { channel_->cancel(); }

 private:
  std::shared_ptr<UpstreamChannel> channel_;
};

// The event as it goes upstream: event_codec JSON, shortened to at most kMaxUpstreamEventBytes
// (message and reason cut, labels replaced by the original size) when it is larger.
[[nodiscard]] std::string upstream_json(const SocEvent& event);

}  // namespace drawbridge
