#include "controller/admin_channel.h"

#include <zmq.hpp>
#include <zmq_addon.hpp>

namespace drawbridge {

Result<std::string> admin_request(const std::string& endpoint,
                                  const std::vector<std::string>& frames,
                                  std::chrono::milliseconds timeout) {
  try {
    zmq::context_t ctx;
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
    req.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout.count()));
    req.connect(endpoint);
    std::vector<zmq::const_buffer> parts;
    for (const auto& f : frames) parts.push_back(zmq::buffer(f));
    if (!zmq::send_multipart(req, parts)) {
      return make_error("the controller does not answer on " + endpoint);
    }
    std::vector<zmq::message_t> reply;
    if (!zmq::recv_multipart(req, std::back_inserter(reply))) {
      return make_error("no answer from the controller on " + endpoint + " within " +
                        std::to_string(timeout.count()) +
                        " ms: is `drawbridge-controller serve` "
                        "running with this state directory?");
    }
    if (reply.size() != 2) return make_error("malformed reply from the controller");
    if (reply[0].to_string() != "ok") return make_error(reply[1].to_string());
    return reply[1].to_string();
  } catch (const zmq::error_t& e) {
    return make_error("cannot reach the controller on " + endpoint + ": " + e.what());
  }
}

}  // namespace drawbridge
