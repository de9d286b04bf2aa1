// The enforcer's side of the control channel: a ZeroMQ DEALER that dials out to the controller
// (client sites sit behind NAT; nothing listens at the client), with CURVE and the controller's
// public key pinned. ZeroMQ reconnects by itself; the daemon's hello/heartbeats make a restarted
// controller catch up. Nothing here decides what to enforce: bundles are checked by their
// signatures (bundle_acceptance.h) exactly as if they had been copied by hand.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/wire_protocol.h"
#include "enforcer/enforcer_config.h"

namespace drawbridge {

class ControllerLink {
 public:
  // Loads the client key, checks the server key, and starts connecting (in the background).
  static Result<ControllerLink> open(const ControllerLinkConfig& config);
  ControllerLink(ControllerLink&&) noexcept;
  ControllerLink& operator=(ControllerLink&&) noexcept;
  ~ControllerLink();

  // The socket handle to put in a zmq_pollitem_t.
  [[nodiscard]] void* socket_handle() const;
  // The monitor socket's handle: readable when the connection changed (see events()).
  [[nodiscard]] void* monitor_handle() const;

  // What happened to the connection since the last call, without blocking. A completed handshake
  // is when to say hello: a message sent before it is dropped (ZMQ_IMMEDIATE).
  enum class Event : std::uint8_t { connected, disconnected, refused_auth, handshake_failed };
  std::vector<Event> events();

  // Queues one message; false when it could not be queued (not connected: with ZMQ_IMMEDIATE a
  // message is never kept for a controller that is not there — the next heartbeat says it all).
  bool send(const Frames& frames);

  // One received message without blocking: nullopt when there is none, an Error for anything
  // malformed (to be logged and counted; the link stays up).
  std::optional<Result<ControllerMessage>> receive();

 private:
  struct Sockets;
  explicit ControllerLink(std::unique_ptr<Sockets> s);
  std::unique_ptr<Sockets> s_;
};

}  // namespace drawbridge
