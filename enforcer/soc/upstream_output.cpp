#include "enforcer/soc/upstream_output.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "common/atomic_file.h"
#include "enforcer/soc/event_codec.h"
#include "enforcer/soc/events_config.h"

namespace drawbridge {

namespace {

constexpr std::size_t kStreamHexDigits = 32;

bool is_stream_name(const std::string& s) {
  if (s.size() != kStreamHexDigits) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::string> load_or_make_stream(const std::string& path) {
  {
    std::ifstream in(path);
    std::string word;
    if (in >> word && is_stream_name(word)) return word;
  }
  // 128 random bits: two spools of one enforcer never share a name.
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name;
  for (std::size_t i = 0; i < kStreamHexDigits; i += 8) {
    std::uint32_t r = rd();
    for (int k = 0; k < 8; ++k, r >>= 4) name += kHex[r & 0xf];
  }
  if (auto ok = write_file_atomically(path, name + "\n"); !ok.ok()) {
    return make_error("cannot record the upstream stream name: " + ok.error().message);
  }
  return name;
}

// At most `max` bytes, cut before a UTF-8 continuation byte, never inside a character.
void cut(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  s += "…";
}

}  // namespace

std::string upstream_json(const SocEvent& event) {
  std::string text = encode_event(event);
  if (text.size() <= kMaxUpstreamEventBytes) return text;
  const auto original = std::to_string(text.size());
  SocEvent s = event;
  cut(s.message, 1024);
  cut(s.reason, 1024);
  s.labels = {{"upstream_truncated_from_bytes", original}};
  text = encode_event(s);
  if (text.size() <= kMaxUpstreamEventBytes) return text;
  // Only names from the enforcer's own policy remain long; keep what identifies the event.
  SocEvent t;
  t.sequence = event.sequence;
  t.timestamp = event.timestamp;
  t.kind = event.kind;
  t.action = event.action;
  t.outcome = event.outcome;
  t.serial = event.serial;
  t.packets = event.packets;
  t.message = "event of " + original + " bytes shortened for the controller; the audit file has it";
  t.labels = s.labels;
  return encode_event(t);
}

std::string ControllerUpstream::name() const {
  return kUpstreamOutputName;
}

UpstreamChannel::UpstreamChannel(UpstreamOptions options, std::string stream, int wake_fd)
    : opt_(std::move(options)), stream_(std::move(stream)), wake_fd_(wake_fd) {}

UpstreamChannel::~UpstreamChannel() {
  ::close(wake_fd_);
}

Result<std::shared_ptr<UpstreamChannel>> UpstreamChannel::create(const UpstreamOptions& options) {
  auto stream = load_or_make_stream(options.stream_file);
  if (!stream.ok()) return stream.error();
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return make_error(std::string("eventfd: ") + std::strerror(errno));
  return std::shared_ptr<UpstreamChannel>(new UpstreamChannel(options, std::move(*stream), fd));
}

int UpstreamChannel::wake_fd() const {
  return wake_fd_;
}

std::optional<EventsUpMessage> UpstreamChannel::take_outgoing(const std::string& site) {
  std::uint64_t count = 0;
  [[maybe_unused]] const auto n = ::read(wake_fd_, &count, sizeof count);
  std::lock_guard lock(mu_);
  if (!outbox_ || outbox_->taken) return std::nullopt;
  outbox_->taken = true;
  EventsUpMessage m;
  m.events.site = site;
  m.events.stream = stream_;
  m.events.events.push_back(outbox_->event);
  return m;
}

void UpstreamChannel::send_failed(const std::string& why) {
  std::lock_guard lock(mu_);
  if (outbox_ && outbox_->failure.empty()) outbox_->failure = why;
  cv_.notify_all();
}

void UpstreamChannel::acknowledged(std::uint64_t through) {
  std::lock_guard lock(mu_);
  acked_through_ = std::max(acked_through_.value_or(0), through);
  cv_.notify_all();
}

void UpstreamChannel::connection_changed(bool up) {
  std::lock_guard lock(mu_);
  connected_ = up;
  if (!up && outbox_ && outbox_->taken && outbox_->failure.empty()) {
    outbox_->failure = "disconnected from the controller before it acknowledged the event";
  }
  cv_.notify_all();
}

void UpstreamChannel::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  cv_.notify_all();
}

Result<void> UpstreamChannel::deliver(const SocEvent& event) {
  std::unique_lock lock(mu_);
  const auto acked = [&] { return acked_through_ && *acked_through_ >= event.sequence; };
  // A late acknowledgement of an attempt that timed out already covers this event.
  if (acked()) return {};
  if (!connected_) {
    cv_.wait_for(lock, opt_.connect_wait, [&] { return connected_ || cancelled_; });
    if (cancelled_) return make_error("cancelled");
    if (!connected_) return make_error("not connected to the controller");
  }
  if (cancelled_) return make_error("cancelled");
  outbox_ = Pending{UpstreamEvent{}, false, {}};
  outbox_->event.json = upstream_json(event);
  outbox_->event.sequence = event.sequence;
  const std::uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) != sizeof one) {
    outbox_.reset();
    return make_error(std::string("cannot wake the daemon: ") + std::strerror(errno));
  }
  const bool done = cv_.wait_for(
      lock, opt_.ack_timeout, [&] { return acked() || cancelled_ || !outbox_->failure.empty(); });
  const std::string failure = outbox_->failure;
  outbox_.reset();
  if (acked()) return {};
  if (cancelled_) return make_error("cancelled");
  if (!failure.empty()) return make_error(failure);
  (void)done;
  return make_error("the controller did not acknowledge event " + std::to_string(event.sequence) +
                    " within " + std::to_string(opt_.ack_timeout.count() / 1000) +
                    " s (an older controller ignores events; is it up to date?)");
}

}  // namespace drawbridge
