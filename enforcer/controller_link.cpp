#include "enforcer/controller_link.h"

#include <cstring>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/curve_keys.h"
#include "common/signing.h"

namespace drawbridge {

struct ControllerLink::Sockets {
  zmq::context_t ctx{1};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  zmq::socket_t monitor{ctx, zmq::socket_type::pair};
};

ControllerLink::ControllerLink(std::unique_ptr<Sockets> s) : s_(std::move(s)) {}
ControllerLink::ControllerLink(ControllerLink&&) noexcept = default;
ControllerLink& ControllerLink::operator=(ControllerLink&&) noexcept = default;
ControllerLink::~ControllerLink() = default;

Result<ControllerLink> ControllerLink::open(const ControllerLinkConfig& config) {
  auto s = std::make_unique<Sockets>();
  try {
    auto& d = s->dealer;
    d.set(zmq::sockopt::linger, 0);
    d.set(zmq::sockopt::immediate, 1);
    // A bundle is at most the policy limit plus its signature header.
    d.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxPolicyBytes + 64 * 1024));
    d.set(zmq::sockopt::reconnect_ivl, 500);
    d.set(zmq::sockopt::reconnect_ivl_max, 10'000);
    const int beat_ms = static_cast<int>(config.heartbeat.count() * 1000);
    d.set(zmq::sockopt::heartbeat_ivl, beat_ms);
    d.set(zmq::sockopt::heartbeat_timeout, 3 * beat_ms);
    if (!config.insecure) {
      auto server = CurvePublicKey::parse(config.server_key);
      if (!server.ok()) return make_error("controller server_key: " + server.error().message);
      auto client = CurveSecretKey::load(config.client_key);
      if (!client.ok()) return make_error(client.error().message);
      d.set(zmq::sockopt::curve_serverkey, server->z85());
      d.set(zmq::sockopt::curve_publickey, client->public_key().z85());
      d.set(zmq::sockopt::curve_secretkey, std::string(client->z85_secret()));
    }
    // Connection events arrive on a PAIR socket of our own (the monitor's inproc endpoint).
    const std::string monitor_endpoint = "inproc://controller-link-monitor";
    if (zmq_socket_monitor(d.handle(), monitor_endpoint.c_str(),
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
      throw zmq::error_t();
    }
    s->monitor.set(zmq::sockopt::linger, 0);
    s->monitor.connect(monitor_endpoint);
    d.connect(config.endpoint);
  } catch (const zmq::error_t& e) {
    return make_error("cannot set up the connection to the controller " + config.endpoint + ": " +
                      e.what());
  }
  return ControllerLink(std::move(s));
}

void* ControllerLink::socket_handle() const {
  return s_->dealer.handle();
}
void* ControllerLink::monitor_handle() const {
  return s_->monitor.handle();
}

std::vector<ControllerLink::Event> ControllerLink::events() {
  std::vector<Event> out;
  try {
    while (true) {
      // Each event is two frames: 16-bit event number + 32-bit value, then the endpoint.
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(s_->monitor, std::back_inserter(parts), zmq::recv_flags::dontwait))
        break;
      if (parts.empty() || parts[0].size() < 2) continue;
      std::uint16_t event = 0;
      std::memcpy(&event, parts[0].data(), sizeof event);
      switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
          out.push_back(Event::connected);
          break;
        case ZMQ_EVENT_DISCONNECTED:
          out.push_back(Event::disconnected);
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
          out.push_back(Event::refused_auth);
          break;
        default:
          out.push_back(Event::handshake_failed);
          break;
      }
    }
  } catch (const zmq::error_t&) {
    // The monitor is advisory: heartbeats still run without it.
  }
  return out;
}

bool ControllerLink::send(const Frames& frames) {
  try {
    std::array<zmq::const_buffer, 2> parts = {zmq::buffer(frames.type), zmq::buffer(frames.body)};
    return zmq::send_multipart(s_->dealer, parts, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

std::optional<Result<ControllerMessage>> ControllerLink::receive() {
  std::vector<zmq::message_t> parts;
  try {
    if (!zmq::recv_multipart(s_->dealer, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
      return std::nullopt;
    }
  } catch (const zmq::error_t& e) {
    return Result<ControllerMessage>(make_error(std::string("receive failed: ") + e.what()));
  }
  if (parts.size() != 2) {
    return Result<ControllerMessage>(make_error("malformed message of " +
                                                std::to_string(parts.size()) +
                                                " frames (expected type and body)"));
  }
  return decode_controller_message(parts[0].to_string_view(), parts[1].to_string_view());
}

}  // namespace drawbridge
