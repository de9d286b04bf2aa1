// The spool's storage format: every field survives a round trip exactly, and anything that is
// not exactly what encode_event writes is refused with the key named.
#include "enforcer/soc/event_codec.h"

#include <gtest/gtest.h>

#include <limits>

namespace drawbridge {
namespace {

Instant at_ms(std::int64_t ms) {
  return Instant{std::chrono::milliseconds{ms}};
}

SocEvent full_event() {
  SocEvent e;
  e.sequence = std::numeric_limits<std::uint64_t>::max();
  e.timestamp = at_ms(1767225600123);
  e.kind = EventKind::violation;
  e.action = action::kConnectionDenied;
  e.outcome = "failure";
  e.reason = "outside-window";
  e.message = "Denied \"RDP\" from 203.0.113.9 — ünïcode, tab\t, newline\n";
  e.site = "clinic-east";
  e.serial = 42;
  e.provider = "acme-msp";
  e.link = "rdp-to-ehr";
  e.ticket = "CHG-1234";
  e.rule = "link/rdp-to-ehr";
  Flow f;
  f.source = *Address::parse("2001:db8::9");
  f.destination = *Address::parse("2001:db8:1::5");
  f.protocol = 58;
  f.source_port = 1;
  f.destination_port = 65535;
  f.icmp_type = 128;
  f.icmp_code = 0;
  f.in_interface = "wan0";
  f.out_interface = "lan0";
  f.direction = FlowDirection::inbound;
  f.tcp_flags = "SYN,ACK";
  e.flow = f;
  e.first_seen = at_ms(-5);  // before 1970: still exact
  e.last_seen = at_ms(1767225600999);
  e.packets = 17;
  e.bytes = 0;  // present but zero differs from absent
  e.rate_limited = true;
  e.labels = {{"a", "1"}, {"lost.connection-denied", "3"}, {"", "empty key"}};
  return e;
}

TEST(EventCodec, FullEventRoundTripsExactly) {
  const auto e = full_event();
  const auto text = encode_event(e);
  EXPECT_EQ(text.find('\n'), std::string::npos) << "one line: " << text;
  auto back = decode_event(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(same_event(e, *back));
  EXPECT_EQ(encode_event(*back), text);
}

TEST(EventCodec, MinimalEventIsCompactAndRoundTrips) {
  SocEvent e;
  e.sequence = 1;
  e.timestamp = at_ms(1000);
  const auto text = encode_event(e);
  EXPECT_EQ(text, R"({"kind":"audit","seq":1,"ts":1000})");
  auto back = decode_event(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(same_event(e, *back));
  EXPECT_FALSE(back->flow);
  EXPECT_FALSE(back->serial);
  EXPECT_FALSE(back->bytes);
}

TEST(EventCodec, Ipv4FlowWithDefaultsRoundTrips) {
  SocEvent e;
  e.sequence = 9;
  e.kind = EventKind::session_end;
  Flow f;
  f.source = *Address::parse("198.51.100.7");
  f.destination = *Address::parse("10.0.0.1");
  f.protocol = 6;
  f.destination_port = 22;
  e.flow = f;
  auto back = decode_event(encode_event(e));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_TRUE(same_event(e, *back));
  EXPECT_EQ(back->flow->direction, FlowDirection::unknown);
  EXPECT_FALSE(back->flow->icmp_type);
}

TEST(EventCodec, SameEventNoticesEveryDifference) {
  const auto a = full_event();
  auto b = a;
  b.flow->icmp_code.reset();
  EXPECT_FALSE(same_event(a, b));
  b = a;
  b.labels["a"] = "2";
  EXPECT_FALSE(same_event(a, b));
  b = a;
  b.bytes.reset();
  EXPECT_FALSE(same_event(a, b));
}

TEST(EventCodec, InvalidUtf8IsReplacedNotThrown) {
  SocEvent e;
  e.sequence = 3;
  e.message = std::string("bad \xff byte");
  const auto text = encode_event(e);
  auto back = decode_event(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->message, "bad \xEF\xBF\xBD byte");
}

struct Refused {
  const char* json;
  const char* mentions;
};

class EventCodecRefuses : public ::testing::TestWithParam<Refused> {};

TEST_P(EventCodecRefuses, WithTheKeyNamed) {
  auto r = decode_event(GetParam().json);
  ASSERT_FALSE(r) << GetParam().json;
  EXPECT_NE(r.error().message.find(GetParam().mentions), std::string::npos) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Strict, EventCodecRefuses,
    ::testing::Values(
        Refused{R"({"seq":1,"ts":0,"kind":"audit")", "not JSON"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit"} trailing)", "not JSON"},
        Refused{R"([1,2])", "object"}, Refused{R"({"ts":0,"kind":"audit"})", "seq is missing"},
        Refused{R"({"seq":1,"kind":"audit"})", "ts is missing"},
        Refused{R"({"seq":1,"ts":0})", "kind is missing"},
        Refused{R"({"seq":1,"ts":0,"kind":"nope"})", "kind"},
        Refused{R"({"seq":-1,"ts":0,"kind":"audit"})", "seq"},
        Refused{R"({"seq":1.5,"ts":0,"kind":"audit"})", "seq"},
        Refused{R"({"seq":"1","ts":0,"kind":"audit"})", "seq"},
        Refused{R"({"seq":1,"ts":1.5,"kind":"audit"})", "ts"},
        Refused{R"({"seq":1,"ts":18446744073709551615,"kind":"audit"})", "ts"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","extra":1})", "extra is not a known field"},
        Refused{R"({"seq":1,"seq":2,"ts":0,"kind":"audit"})", "duplicate key seq"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","labels":{"a":"1","a":"2"}})", "duplicate key a"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","labels":{"a":1}})", "labels.a"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","labels":[]})", "labels"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","rate_limited":1})", "rate_limited"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","message":7})", "message"},
        Refused{R"({"seq":1,"ts":0,"kind":"audit","flow":{"dst":"10.0.0.1","proto":6}})",
                "flow.src is missing"},
        Refused{
            R"({"seq":1,"ts":0,"kind":"audit","flow":{"src":"10.0.0.300","dst":"10.0.0.1","proto":6}})",
            "flow.src"},
        Refused{
            R"({"seq":1,"ts":0,"kind":"audit","flow":{"src":"10.0.0.1","dst":"10.0.0.1","proto":256}})",
            "flow.proto"},
        Refused{
            R"({"seq":1,"ts":0,"kind":"audit","flow":{"src":"10.0.0.1","dst":"10.0.0.1","proto":6,"dport":65536}})",
            "flow.dport"},
        Refused{
            R"({"seq":1,"ts":0,"kind":"audit","flow":{"src":"10.0.0.1","dst":"10.0.0.1","proto":6,"dir":"sideways"}})",
            "flow.dir"},
        Refused{
            R"({"seq":1,"ts":0,"kind":"audit","flow":{"src":"10.0.0.1","dst":"10.0.0.1","proto":6,"x":1}})",
            "flow.x is not a known field"}));

}  // namespace
}  // namespace drawbridge
