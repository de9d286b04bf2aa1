// The control channel's messages: what one side encodes the other decodes unchanged, and
// anything malformed is a clear error, never an exception or a half-read message.
#include "common/wire_protocol.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "controller/push_rule.h"

namespace drawbridge {
namespace {

EnforcerState sample_state() {
  EnforcerState s;
  s.site = "clinic-east";
  s.serial = 42;
  s.bundle_hash = std::string(64, 'a');
  s.ruleset_hash = "d1a12f054bf3e151";
  s.version = "0.3.0";
  s.locked_down = true;
  return s;
}

TEST(WireProtocol, HelloAndHeartbeatRoundTrip) {
  const auto hello = encode(HelloMessage{sample_state()});
  EXPECT_EQ(hello.type, "hello");
  auto decoded = decode_enforcer_message(hello.type, hello.body);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  const auto* h = std::get_if<HelloMessage>(&*decoded);
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->state.site, "clinic-east");
  EXPECT_EQ(h->state.serial, 42u);
  EXPECT_EQ(h->state.bundle_hash, std::string(64, 'a'));
  EXPECT_EQ(h->state.ruleset_hash, "d1a12f054bf3e151");
  EXPECT_TRUE(h->state.locked_down);
  EXPECT_FALSE(h->state.expired);

  EnforcerState fresh;  // nothing applied yet: serial null
  fresh.site = "s";
  const auto beat = encode(HeartbeatMessage{fresh});
  auto d2 = decode_enforcer_message(beat.type, beat.body);
  ASSERT_TRUE(d2.ok()) << d2.error().message;
  const auto* hb = std::get_if<HeartbeatMessage>(&*d2);
  ASSERT_NE(hb, nullptr);
  EXPECT_FALSE(hb->state.serial.has_value());
}

TEST(WireProtocol, AckRoundTripKeepsTheWholeReason) {
  BundleAck ack;
  ack.result = AckResult::rejected;
  ack.bundle_hash = "abc";
  ack.reason =
      "bundle refused: serial 2 is not newer than the last accepted serial 3\n  \"quoted\"";
  const auto f = encode(AckMessage{ack});
  auto d = decode_enforcer_message(f.type, f.body);
  ASSERT_TRUE(d.ok()) << d.error().message;
  const auto& a = std::get<AckMessage>(*d).ack;
  EXPECT_EQ(a.result, AckResult::rejected);
  EXPECT_EQ(a.reason, ack.reason);
  EXPECT_FALSE(a.serial.has_value());
}

TEST(WireProtocol, BundleBytesPassUntouched) {
  const std::string bytes("drawbridge-bundle 1\n\0\xff binary", 30);
  const auto f = encode(BundleMessage{bytes});
  auto d = decode_controller_message(f.type, f.body);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(std::get<BundleMessage>(*d).bytes, bytes);
}

TEST(WireProtocol, ControllerHeartbeatRoundTrip) {
  const auto f = encode(ControllerHeartbeat{ControllerBeat{7}});
  auto d = decode_controller_message(f.type, f.body);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(std::get<ControllerHeartbeat>(*d).beat.desired_serial, 7u);
}

struct BadMessage {
  const char* type;
  const char* body;
  const char* expected;  // a part of the error message
};

class WireProtocolRejects : public ::testing::TestWithParam<BadMessage> {};

TEST_P(WireProtocolRejects, WithAClearError) {
  const auto& p = GetParam();
  auto d = decode_enforcer_message(p.type, p.body);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find(p.expected), std::string::npos) << d.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, WireProtocolRejects,
    ::testing::Values(
        BadMessage{"gossip", "{}", "unknown message type 'gossip'"},
        BadMessage{"hello", "{not json", "not valid JSON"},
        BadMessage{"hello", "[1,2]", "not a JSON object"},
        BadMessage{"hello", R"({"protocol":1})", "missing 'site'"},
        BadMessage{
            "hello",
            R"({"protocol":1,"site":5,"serial":null,"bundle_hash":"","ruleset_hash":"","version":""})",
            "'site' must be a string"},
        BadMessage{
            "hello",
            R"({"protocol":1,"site":"s","serial":-1,"bundle_hash":"","ruleset_hash":"","version":""})",
            "'serial' must be a non-negative integer"},
        BadMessage{
            "hello",
            R"({"protocol":2,"site":"s","serial":null,"bundle_hash":"","ruleset_hash":"","version":""})",
            "speaks protocol 2"},
        BadMessage{
            "heartbeat",
            R"({"protocol":1,"site":"s","serial":null,"bundle_hash":"","ruleset_hash":"","version":"","evil":1})",
            "unknown field 'evil'"},
        BadMessage{
            "ack",
            R"({"result":"maybe","bundle_hash":"","serial":null,"ruleset_hash":"","reason":""})",
            "'result' must be"},
        BadMessage{"ack", R"({"result":"applied"})", "missing 'bundle_hash'"},
        BadMessage{"events", R"({"site":"s","stream":"ab"})", "missing 'events'"},
        BadMessage{"events", R"({"site":"s","stream":"","events":[]})", "'stream' must not be"},
        BadMessage{"events", R"({"site":"s","stream":"ab","events":[]})", "1 to 64 events"},
        BadMessage{"events", R"({"site":"s","stream":"ab","events":{}})", "must be an array"},
        BadMessage{"events", R"({"site":"s","stream":"ab","events":[{"ts":1,"kind":"audit"}]})",
                   "event 0 needs 'seq'"},
        BadMessage{"events",
                   R"({"site":"s","stream":"ab","events":[{"seq":1,"ts":1,"kind":"gossip"}]})",
                   "event 0 has an unknown kind 'gossip'"},
        BadMessage{
            "events",
            R"({"site":"s","stream":"ab","events":[{"seq":1,"ts":1,"kind":"violation","packets":-3}]})",
            "'packets' must be a non-negative integer"},
        BadMessage{
            "events",
            R"({"site":"s","stream":"ab","events":[{"seq":1,"ts":1,"kind":"violation","flow":{"src":"nope"}}]})",
            "'flow.src' must be an IP address"},
        BadMessage{
            "events",
            R"({"site":"s","stream":"ab","events":[{"seq":2,"ts":1,"kind":"audit"},{"seq":2,"ts":1,"kind":"audit"}]})",
            "event 1 does not follow"},
        BadMessage{"events",
                   R"({"site":"s","stream":"ab","events":[{"seq":1,"ts":1,"kind":"audit"}],"x":1})",
                   "unknown field 'x'"}));

// The enforcer's spool record, as event_codec writes it.
constexpr const char* kDenial =
    R"({"seq":7,"ts":1767225600000,"kind":"violation","action":"connection-denied",)"
    R"("reason":"unapproved-source","site":"clinic-east","rule":"link/rdp",)"
    R"("flow":{"src":"198.51.100.66","dst":"10.1.0.5","proto":6,"dport":3389},"packets":3,)"
    R"("labels":{"a":"b"}})";

TEST(WireProtocol, EventsRoundTripReadingWhatTheControllerCounts) {
  EventsMessage m;
  m.site = "clinic-east";
  m.stream = "0123456789abcdef";
  UpstreamEvent e;
  e.json = kDenial;
  m.events.push_back(e);
  const auto f = encode(EventsUpMessage{m});
  EXPECT_EQ(f.type, "events");
  EXPECT_LT(f.body.size(), static_cast<std::size_t>(kMaxEnforcerMessageBytes));
  auto d = decode_enforcer_message(f.type, f.body);
  ASSERT_TRUE(d.ok()) << d.error().message;
  const auto& got = std::get<EventsUpMessage>(*d).events;
  EXPECT_EQ(got.site, "clinic-east");
  EXPECT_EQ(got.stream, "0123456789abcdef");
  ASSERT_EQ(got.events.size(), 1u);
  const auto& g = got.events[0];
  EXPECT_EQ(g.sequence, 7u);
  EXPECT_EQ(g.time_ms, 1767225600000);
  EXPECT_EQ(g.kind, "violation");
  EXPECT_EQ(g.action, "connection-denied");
  EXPECT_EQ(g.reason, "unapproved-source");
  EXPECT_EQ(g.rule, "link/rdp");
  EXPECT_EQ(g.source, "198.51.100.66");
  EXPECT_EQ(g.packets, 3u);
  // Kept verbatim, fields the controller does not read included.
  EXPECT_EQ(nlohmann::json::parse(g.json), nlohmann::json::parse(kDenial));
}

TEST(WireProtocol, AnEventLargerThanTheLimitIsRefusedNotTruncated) {
  EventsMessage m;
  m.site = "s";
  m.stream = "ab";
  UpstreamEvent e;
  e.json = R"({"seq":1,"ts":1,"kind":"audit","message":")" +
           std::string(kMaxUpstreamEventBytes, 'x') + R"("})";
  m.events.push_back(e);
  const auto f = encode(EventsUpMessage{m});
  auto d = decode_enforcer_message(f.type, f.body);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("bytes, more than"), std::string::npos) << d.error().message;
}

TEST(WireProtocol, EventsAckRoundTripAndStrictness) {
  const auto f = encode(EventsAckMessage{EventsAck{123}});
  EXPECT_EQ(f.type, "events-ack");
  auto d = decode_controller_message(f.type, f.body);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(std::get<EventsAckMessage>(*d).ack.through, 123u);
  EXPECT_FALSE(decode_controller_message("events-ack", R"({"through":null})").ok());
  EXPECT_FALSE(decode_controller_message("events-ack", R"({"through":-1})").ok());
  EXPECT_FALSE(decode_controller_message("events-ack", R"({"through":1,"more":2})").ok());
  EXPECT_FALSE(decode_controller_message("events-ack", R"({})").ok());
}

TEST(WireProtocol, OversizedFieldsAreRefused) {
  EnforcerState s = sample_state();
  s.site = std::string(300, 'x');
  const auto f = encode(HelloMessage{s});
  auto d = decode_enforcer_message(f.type, f.body);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("'site' is too long"), std::string::npos);
}

TEST(WireProtocol, UnknownControllerMessageIsAnError) {
  EXPECT_FALSE(decode_controller_message("policy", "x").ok());
  EXPECT_FALSE(decode_controller_message("heartbeat", "{\"desired_serial\":\"7\"}").ok());
}

TEST(WireProtocol, BundleHashIsBlake2b256Hex) {
  const auto h = bundle_hash("abc");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h, bundle_hash("abc"));
  EXPECT_NE(h, bundle_hash("abd"));
  // BLAKE2b-256("abc"), RFC 7693 family test value.
  EXPECT_EQ(h, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

// --- the controller's push rule ---------------------------------------------------------------

PushInputs behind() {
  PushInputs in;
  in.desired_hash = "new";
  in.desired_serial = 5;
  in.applied_serial = 4;
  in.applied_hash = "old";
  return in;
}

TEST(PushRule, SendsToAnEnforcerThatIsBehind) {
  EXPECT_TRUE(should_push(behind()));
}

TEST(PushRule, SendsToAnEnforcerWithNothingYet) {
  auto in = behind();
  in.applied_serial.reset();
  in.applied_hash.clear();
  EXPECT_TRUE(should_push(in));
}

TEST(PushRule, NothingPublishedNothingSent) {
  auto in = behind();
  in.desired_hash.clear();
  EXPECT_FALSE(should_push(in));
}

TEST(PushRule, NotToAnEnforcerThatHoldsIt) {
  auto in = behind();
  in.applied_hash = "new";
  in.applied_serial = 5;
  EXPECT_FALSE(should_push(in));
}

TEST(PushRule, NotAgainToAnEnforcerThatRefusedIt) {
  auto in = behind();
  in.rejected_hash = "new";
  EXPECT_FALSE(should_push(in));
}

TEST(PushRule, NotAnOlderSerialUnlessForced) {
  auto in = behind();
  in.applied_serial = 9;
  EXPECT_FALSE(should_push(in));
  in.desired_forced = true;
  EXPECT_TRUE(should_push(in));
}

TEST(PushRule, SameSerialOtherSignaturesIsNotResentOverANewerOne) {
  // A co-signed bundle has the same serial as the provider-only one the enforcer holds.
  auto in = behind();
  in.applied_serial = 5;
  EXPECT_FALSE(should_push(in));
}

TEST(PushRule, InFlightIsNotResentUntilThreeHeartbeatsPass) {
  auto in = behind();
  in.in_flight_hash = "new";
  in.heartbeat = std::chrono::milliseconds(1000);
  in.in_flight_for = std::chrono::milliseconds(2999);
  EXPECT_FALSE(should_push(in));
  in.in_flight_for = std::chrono::milliseconds(3000);
  EXPECT_TRUE(should_push(in));
}

}  // namespace
}  // namespace drawbridge
