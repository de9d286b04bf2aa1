// The hand-over between a delivery thread and the daemon's thread for events upstream: the test
// plays the daemon (polls the eventfd, takes the message, answers for the controller).
#include "enforcer/soc/upstream_output.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>

#include <filesystem>
#include <future>
#include <thread>

#include "enforcer/soc/event_codec.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class UpstreamChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-upstream-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::shared_ptr<UpstreamChannel> channel(std::chrono::milliseconds ack_timeout = 5s,
                                           std::chrono::milliseconds connect_wait = 5s) {
    UpstreamOptions o;
    o.stream_file = (dir_ / "spool" / "controller.stream").string();
    o.ack_timeout = ack_timeout;
    o.connect_wait = connect_wait;
    auto c = UpstreamChannel::create(o);
    EXPECT_TRUE(c.ok()) << c.error().message;
    return *c;
  }

  // What the daemon does when the eventfd is readable.
  static std::optional<EventsUpMessage> daemon_takes(UpstreamChannel& c) {
    pollfd p{c.wake_fd(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return std::nullopt;
    return c.take_outgoing("clinic-east");
  }

  static SocEvent denial(std::uint64_t seq) {
    SocEvent e;
    e.sequence = seq;
    e.timestamp = Instant{std::chrono::milliseconds{1'767'225'600'000}};
    e.kind = EventKind::violation;
    e.action = action::kConnectionDenied;
    e.packets = 3;
    return e;
  }

  fs::path dir_;
};

TEST_F(UpstreamChannelTest, DeliverSucceedsOnceTheControllerAcknowledges) {
  auto c = channel();
  c->connection_changed(true);
  auto done = std::async(std::launch::async, [&] { return c->deliver(denial(7)); });
  auto m = daemon_takes(*c);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->events.site, "clinic-east");
  EXPECT_EQ(m->events.stream, c->stream());
  ASSERT_EQ(m->events.events.size(), 1u);
  EXPECT_EQ(m->events.events[0].sequence, 7u);
  // What goes on the wire is what the controller decodes.
  const auto frames = encode(*m);
  auto decoded = decode_enforcer_message(frames.type, frames.body);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(std::get<EventsUpMessage>(*decoded).events.events[0].packets, 3u);
  EXPECT_FALSE(c->take_outgoing("clinic-east")) << "taken once per attempt";
  c->acknowledged(6);
  EXPECT_EQ(done.wait_for(100ms), std::future_status::timeout) << "6 does not cover 7";
  c->acknowledged(7);
  const auto r = done.get();
  EXPECT_TRUE(r.ok()) << r.error().message;
  // An acknowledgement that already covers an event (it came late) completes it at once.
  c->acknowledged(9);
  EXPECT_TRUE(c->deliver(denial(8)).ok());
}

TEST_F(UpstreamChannelTest, ASendTheLinkRefusedOrADisconnectFailsAtOnce) {
  auto c = channel();
  c->connection_changed(true);
  auto first = std::async(std::launch::async, [&] { return c->deliver(denial(1)); });
  ASSERT_TRUE(daemon_takes(*c));
  c->send_failed("the controller is not connected");
  const auto r1 = first.get();
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.error().message, "the controller is not connected");

  auto second = std::async(std::launch::async, [&] { return c->deliver(denial(1)); });
  ASSERT_TRUE(daemon_takes(*c));
  c->connection_changed(false);
  const auto r2 = second.get();
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("disconnected"), std::string::npos) << r2.error().message;
}

TEST_F(UpstreamChannelTest, NoAcknowledgementIsAFailureAfterTheTimeout) {
  // An older controller counts "events" as an unknown type and never answers.
  auto c = channel(200ms);
  c->connection_changed(true);
  auto done = std::async(std::launch::async, [&] { return c->deliver(denial(1)); });
  ASSERT_TRUE(daemon_takes(*c));
  const auto r = done.get();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("did not acknowledge event 1"), std::string::npos);
}

TEST_F(UpstreamChannelTest, WaitsForTheConnectionThenGivesUpAndCancelIsPrompt) {
  auto c = channel(5s, 200ms);
  const auto r = c->deliver(denial(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "not connected to the controller");

  auto slow = channel(60s, 60s);
  auto done = std::async(std::launch::async, [&] { return slow->deliver(denial(1)); });
  std::this_thread::sleep_for(50ms);
  const auto t0 = std::chrono::steady_clock::now();
  slow->cancel();
  EXPECT_FALSE(done.get().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(UpstreamChannelTest, TheStreamNameIsKeptWithTheSpool) {
  const auto first = channel()->stream();
  EXPECT_EQ(first.size(), 32u);
  EXPECT_EQ(channel()->stream(), first) << "the same spool, the same stream";
  fs::remove_all(dir_ / "spool");
  EXPECT_NE(channel()->stream(), first) << "a new spool is a new stream";
}

TEST(UpstreamJson, AnOversizedEventIsShortenedToFit) {
  SocEvent e;
  e.sequence = 12;
  e.kind = EventKind::audit;
  e.action = action::kPolicyRejected;
  e.message = std::string(100'000, 'm');
  e.reason = "ü" + std::string(70'000, 'r');
  for (int i = 0; i < 1000; ++i) e.labels["l" + std::to_string(i)] = std::string(100, 'v');
  const auto text = upstream_json(e);
  EXPECT_LE(text.size(), kMaxUpstreamEventBytes);
  auto back = decode_event(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->sequence, 12u);
  EXPECT_EQ(back->action, action::kPolicyRejected);
  EXPECT_TRUE(back->labels.contains("upstream_truncated_from_bytes"));

  SocEvent small;
  small.sequence = 1;
  EXPECT_EQ(upstream_json(small), encode_event(small)) << "small events go unchanged";
}

}  // namespace
}  // namespace drawbridge
