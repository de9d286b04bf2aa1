// event_format and community_id: golden lines for each kind of event in each format, escaping
// (with a round-trip property over generated strings), the RFC 5424 structure, and Community ID
// against the spec's published baseline (corelight/community-id-spec, baseline/).
#include "enforcer/soc/event_format.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace drawbridge {
namespace {

Instant utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms = 0) {
  using namespace std::chrono;
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         milliseconds{ms};
}

Address ip(std::string_view text) {
  const auto a = Address::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(Address{});
}

Flow flow(std::string_view src, std::uint16_t sport, std::string_view dst, std::uint16_t dport,
          std::uint8_t protocol = 6) {
  Flow f;
  f.source = ip(src);
  f.destination = ip(dst);
  f.protocol = protocol;
  f.source_port = sport;
  f.destination_port = dport;
  return f;
}

Flow icmp(std::string_view src, std::string_view dst, std::uint8_t type, std::uint8_t code) {
  Flow f = flow(src, 0, dst, 0, ip(src).family == Family::v4 ? 1 : 58);
  f.icmp_type = type;
  f.icmp_code = code;
  return f;
}

Observer gateway() {
  Observer o;
  o.hostname = "gw1.clinic-north.example";
  o.version = "0.1.0";
  o.organization = "Clinic North";
  return o;
}

// An aggregated denial: three SYNs from an address that is not the provider's, at RDP.
SocEvent violation() {
  SocEvent e;
  e.sequence = 1042;
  e.timestamp = utc(2026, 11, 25, 4, 29, 42, 123);
  e.kind = EventKind::violation;
  e.action = action::kConnectionDenied;
  e.outcome = "failure";
  e.reason = "unapproved-source";
  e.message =
      "3 more denial(s) of tcp 198.51.100.23 -> 10.20.0.10:3389 (unapproved-source, link "
      "rdp-servers)";
  e.site = "clinic-north";
  e.serial = 17;
  e.link = "rdp-servers";
  e.rule = "link/rdp-servers";
  Flow f = flow("198.51.100.23", 51234, "10.20.0.10", 3389);
  f.in_interface = "wan0";
  f.out_interface = "lan0";
  f.direction = FlowDirection::inbound;
  f.tcp_flags = "SYN";
  e.flow = f;
  e.first_seen = utc(2026, 11, 25, 4, 29, 12, 0);
  e.last_seen = utc(2026, 11, 25, 4, 29, 41, 900);
  e.packets = 3;
  e.bytes = 180;
  e.rate_limited = true;
  e.labels["aggregated"] = "true";
  return e;
}

// The provider connects by a grant (change ticket).
SocEvent session_start() {
  SocEvent e;
  e.sequence = 1043;
  e.timestamp = utc(2026, 11, 25, 9, 0, 3, 5);
  e.kind = EventKind::session_start;
  e.action = action::kSessionStarted;
  e.outcome = "success";
  e.message =
      "acme-msp opened tcp 203.0.113.5:50000 -> 10.20.0.10:3389 (link rdp-servers, "
      "grant CHG-7)";
  e.site = "clinic-north";
  e.serial = 17;
  e.provider = "acme-msp";
  e.link = "rdp-servers";
  e.ticket = "CHG-7";
  e.rule = "link/rdp-servers";
  Flow f = flow("203.0.113.5", 50000, "10.20.0.10", 3389);
  f.in_interface = "wan0";
  f.out_interface = "lan0";
  f.direction = FlowDirection::inbound;
  e.flow = f;
  e.first_seen = e.timestamp;
  return e;
}

// An SSH session over IPv6 ends: duration, packets and bytes both ways.
SocEvent session_end() {
  SocEvent e;
  e.sequence = 1044;
  e.timestamp = utc(2026, 11, 25, 10, 31, 15, 250);
  e.kind = EventKind::session_end;
  e.action = action::kSessionEnded;
  e.outcome = "success";
  e.message = "acme-msp closed tcp [2001:db8:100::5]:50514 -> [2001:db8:20::10]:22 after 31m12s";
  e.site = "clinic-north";
  e.serial = 17;
  e.provider = "acme-msp";
  e.link = "ssh-servers";
  e.rule = "link/ssh-servers";
  Flow f = flow("2001:db8:100::5", 50514, "2001:db8:20::10", 22);
  f.in_interface = "wan0";
  f.out_interface = "lan0";
  f.direction = FlowDirection::inbound;
  e.flow = f;
  e.first_seen = utc(2026, 11, 25, 10, 0, 3, 0);
  e.last_seen = utc(2026, 11, 25, 10, 31, 15, 250);
  e.packets = 5120;
  e.bytes = 1843200;
  return e;
}

// A bundle refused: the audit fact the SOC must see first.
SocEvent audit() {
  SocEvent e;
  e.sequence = 1045;
  e.timestamp = utc(2026, 11, 25, 11, 2, 0, 0);
  e.kind = EventKind::audit;
  e.action = action::kPolicyRejected;
  e.outcome = "failure";
  e.reason = "signature-invalid";
  e.message = "policy serial 18 rejected: no valid signature by a trusted key";
  e.site = "clinic-north";
  e.serial = 17;
  e.labels["rejected_serial"] = "18";
  return e;
}

// ---- golden lines -----------------------------------------------------------------------------
// Complete expected lines: every value here was checked by hand (epoch milliseconds, Community
// IDs with an independent implementation, PRI = 13 * 8 + severity).

const std::string kBom = "\xEF\xBB\xBF";

const std::string kViolationEcs =
    R"g({"@timestamp":"2026-11-25T04:29:42.123Z","message":"3 more denial(s) of tcp )g"
    R"g(198.51.100.23 -> 10.20.0.10:3389 (unapproved-source, link rdp-servers)",)g"
    R"g("ecs":{"version":"8.11.0"},"event":{"kind":"event","category":["network"],)g"
    R"g("type":["denied","connection"],"action":"connection-denied","outcome":"failure",)g"
    R"g("reason":"unapproved-source","severity":8,"sequence":1042,)g"
    R"g("dataset":"drawbridge.events","start":"2026-11-25T04:29:12.000Z",)g"
    R"g("end":"2026-11-25T04:29:41.900Z"},"source":{"ip":"198.51.100.23","port":51234},)g"
    R"g("destination":{"ip":"10.20.0.10","port":3389},"network":{"transport":"tcp",)g"
    R"g("type":"ipv4","iana_number":"6","direction":"inbound",)g"
    R"g("community_id":"1:EhIXmIi0QWswt1noSIE5/nRx5KU=","packets":3,"bytes":180},)g"
    R"g("observer":{"hostname":"gw1.clinic-north.example","product":"drawbridge-enforcer",)g"
    R"g("vendor":"Drawbridge","version":"0.1.0","type":"firewall",)g"
    R"g("ingress":{"interface":{"name":"wan0"}},"egress":{"interface":{"name":"lan0"}}},)g"
    R"g("rule":{"name":"link/rdp-servers","ruleset":"drawbridge site clinic-north serial 17",)g"
    R"g("id":"drawbridge:unapproved-source:link/rdp-servers"},"organization":{"name":"Clinic )g"
    R"g(North"},"labels":{"aggregated":"true","tcp_flags":"SYN","site":"clinic-north",)g"
    R"g("link":"rdp-servers","rate_limited":"true"}})g";
const std::string kViolationCef =
    R"g(CEF:0|Drawbridge|drawbridge-enforcer|0.1.0|connection-denied|Connection )g"
    R"g(denied|8|rt=1795580982123 cat=network act=deny outcome=failure )g"
    R"g(reason=unapproved-source msg=3 more denial(s) of tcp 198.51.100.23 -> 10.20.0.10:3389 )g"
    R"g((unapproved-source, link rdp-servers) src=198.51.100.23 dst=10.20.0.10 spt=51234 )g"
    R"g(dpt=3389 proto=TCP start=1795580952000 end=1795580981900 cnt=3 in=180 )g"
    R"g(deviceDirection=0 deviceInboundInterface=wan0 deviceOutboundInterface=lan0 )g"
    R"g(cs1Label=site cs1=clinic-north cs3Label=link cs3=rdp-servers cs5Label=communityId )g"
    R"g(cs5=1:EhIXmIi0QWswt1noSIE5/nRx5KU\= cs6Label=rule cs6=link/rdp-servers )g"
    R"g(cn1Label=serial cn1=17 externalId=1042 dvchost=gw1.clinic-north.example )g"
    R"g(rateLimited=true tcpFlags=SYN labelAggregated=true)g";
const std::string kViolationLeef =
    R"g(LEEF:2.0|Drawbridge|drawbridge-enforcer|0.1.0|connection-denied|^)g"
    R"g(|devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2026-11-25T04:29:42.123+0000^)g"
    R"g(cat=unapproved-source^sev=8^src=198.51.100.23^dst=10.20.0.10^srcPort=51234^)g"
    R"g(dstPort=3389^proto=TCP^totalPackets=3^srcBytes=180^outcome=failure^)g"
    R"g(reason=unapproved-source^msg=3 more denial(s) of tcp 198.51.100.23 -> 10.20.0.10:3389 )g"
    R"g((unapproved-source, link rdp-servers)^startTime=2026-11-25T04:29:12.000+0000^)g"
    R"g(endTime=2026-11-25T04:29:41.900+0000^direction=inbound^inInterface=wan0^)g"
    R"g(outInterface=lan0^site=clinic-north^serial=17^link=rdp-servers^rule=link/rdp-servers^)g"
    R"g(communityId=1:EhIXmIi0QWswt1noSIE5/nRx5KU=^sequence=1042^rateLimited=true^)g"
    R"g(tcpFlags=SYN^labelAggregated=true)g";
const std::string kViolationSyslogHeader =
    R"g(<107>1 2026-11-25T04:29:42.123Z gw1.clinic-north.example drawbridge-enforcer 812 )g"
    R"g(connection-denied [meta sequenceId="1042"][drawbridge@32473 site="clinic-north" )g"
    R"g(serial="17" link="rdp-servers" reason="unapproved-source" rule="link/rdp-servers" )g"
    R"g(communityId="1:EhIXmIi0QWswt1noSIE5/nRx5KU="] )g";
const std::string kSessionStartEcs =
    R"g({"@timestamp":"2026-11-25T09:00:03.005Z","message":"acme-msp opened tcp )g"
    R"g(203.0.113.5:50000 -> 10.20.0.10:3389 (link rdp-servers, grant CHG-7)",)g"
    R"g("ecs":{"version":"8.11.0"},"event":{"kind":"event","category":["network"],)g"
    R"g("type":["start","allowed","connection"],"action":"provider-session-started",)g"
    R"g("outcome":"success","severity":3,"sequence":1043,"dataset":"drawbridge.events",)g"
    R"g("start":"2026-11-25T09:00:03.005Z"},"source":{"ip":"203.0.113.5","port":50000},)g"
    R"g("destination":{"ip":"10.20.0.10","port":3389},"network":{"transport":"tcp",)g"
    R"g("type":"ipv4","iana_number":"6","direction":"inbound",)g"
    R"g("community_id":"1:ppMk4POl4o6Sck7+yYGc7P0tUbY="},)g"
    R"g("observer":{"hostname":"gw1.clinic-north.example","product":"drawbridge-enforcer",)g"
    R"g("vendor":"Drawbridge","version":"0.1.0","type":"firewall",)g"
    R"g("ingress":{"interface":{"name":"wan0"}},"egress":{"interface":{"name":"lan0"}}},)g"
    R"g("rule":{"name":"link/rdp-servers","ruleset":"drawbridge site clinic-north serial 17"},)g"
    R"g("organization":{"name":"Clinic North"},"labels":{"site":"clinic-north",)g"
    R"g("provider":"acme-msp","link":"rdp-servers","ticket":"CHG-7"}})g";
const std::string kSessionStartCef =
    R"g(CEF:0|Drawbridge|drawbridge-enforcer|0.1.0|provider-session-started|Provider session )g"
    R"g(started|3|rt=1795597203005 cat=network act=allow outcome=success msg=acme-msp opened )g"
    R"g(tcp 203.0.113.5:50000 -> 10.20.0.10:3389 (link rdp-servers, grant CHG-7) )g"
    R"g(src=203.0.113.5 dst=10.20.0.10 spt=50000 dpt=3389 proto=TCP start=1795597203005 )g"
    R"g(deviceDirection=0 deviceInboundInterface=wan0 deviceOutboundInterface=lan0 )g"
    R"g(cs1Label=site cs1=clinic-north cs2Label=provider cs2=acme-msp cs3Label=link )g"
    R"g(cs3=rdp-servers cs4Label=ticket cs4=CHG-7 cs5Label=communityId )g"
    R"g(cs5=1:ppMk4POl4o6Sck7+yYGc7P0tUbY\= cs6Label=rule cs6=link/rdp-servers )g"
    R"g(cn1Label=serial cn1=17 externalId=1043 dvchost=gw1.clinic-north.example)g";
const std::string kSessionStartLeef =
    R"g(LEEF:2.0|Drawbridge|drawbridge-enforcer|0.1.0|provider-session-started|^)g"
    R"g(|devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2026-11-25T09:00:03.005+0000^)g"
    R"g(cat=network^sev=3^src=203.0.113.5^dst=10.20.0.10^srcPort=50000^dstPort=3389^proto=TCP^)g"
    R"g(outcome=success^msg=acme-msp opened tcp 203.0.113.5:50000 -> 10.20.0.10:3389 (link )g"
    R"g(rdp-servers, grant CHG-7)^startTime=2026-11-25T09:00:03.005+0000^direction=inbound^)g"
    R"g(inInterface=wan0^outInterface=lan0^site=clinic-north^serial=17^provider=acme-msp^)g"
    R"g(link=rdp-servers^ticket=CHG-7^rule=link/rdp-servers^)g"
    R"g(communityId=1:ppMk4POl4o6Sck7+yYGc7P0tUbY=^sequence=1043)g";
const std::string kSessionStartSyslogHeader =
    R"g(<110>1 2026-11-25T09:00:03.005Z gw1.clinic-north.example drawbridge-enforcer 812 )g"
    R"g(provider-session-started [meta sequenceId="1043"][drawbridge@32473 )g"
    R"g(site="clinic-north" serial="17" provider="acme-msp" link="rdp-servers" ticket="CHG-7" )g"
    R"g(rule="link/rdp-servers" communityId="1:ppMk4POl4o6Sck7+yYGc7P0tUbY="] )g";
const std::string kSessionEndEcs =
    R"g({"@timestamp":"2026-11-25T10:31:15.250Z","message":"acme-msp closed tcp )g"
    R"g([2001:db8:100::5]:50514 -> [2001:db8:20::10]:22 after 31m12s",)g"
    R"g("ecs":{"version":"8.11.0"},"event":{"kind":"event","category":["network"],)g"
    R"g("type":["end","allowed","connection"],"action":"provider-session-ended",)g"
    R"g("outcome":"success","severity":3,"sequence":1044,"dataset":"drawbridge.events",)g"
    R"g("start":"2026-11-25T10:00:03.000Z","end":"2026-11-25T10:31:15.250Z",)g"
    R"g("duration":1872250000000},"source":{"ip":"2001:db8:100::5","port":50514},)g"
    R"g("destination":{"ip":"2001:db8:20::10","port":22},"network":{"transport":"tcp",)g"
    R"g("type":"ipv6","iana_number":"6","direction":"inbound",)g"
    R"g("community_id":"1:oaa85kLpNx8eRDw5cFhiJlhZgFE=","packets":5120,"bytes":1843200},)g"
    R"g("observer":{"hostname":"gw1.clinic-north.example","product":"drawbridge-enforcer",)g"
    R"g("vendor":"Drawbridge","version":"0.1.0","type":"firewall",)g"
    R"g("ingress":{"interface":{"name":"wan0"}},"egress":{"interface":{"name":"lan0"}}},)g"
    R"g("rule":{"name":"link/ssh-servers","ruleset":"drawbridge site clinic-north serial 17"},)g"
    R"g("organization":{"name":"Clinic North"},"labels":{"site":"clinic-north",)g"
    R"g("provider":"acme-msp","link":"ssh-servers"}})g";
const std::string kSessionEndCef =
    R"g(CEF:0|Drawbridge|drawbridge-enforcer|0.1.0|provider-session-ended|Provider session )g"
    R"g(ended|3|rt=1795602675250 cat=network act=allow outcome=success msg=acme-msp closed )g"
    R"g(tcp [2001:db8:100::5]:50514 -> [2001:db8:20::10]:22 after 31m12s c6a2Label=Source )g"
    R"g(IPv6 Address c6a2=2001:db8:100::5 c6a3Label=Destination IPv6 Address )g"
    R"g(c6a3=2001:db8:20::10 spt=50514 dpt=22 proto=TCP start=1795600803000 end=1795602675250 )g"
    R"g(cn2Label=packets cn2=5120 cn3Label=bytes cn3=1843200 deviceDirection=0 )g"
    R"g(deviceInboundInterface=wan0 deviceOutboundInterface=lan0 cs1Label=site )g"
    R"g(cs1=clinic-north cs2Label=provider cs2=acme-msp cs3Label=link cs3=ssh-servers )g"
    R"g(cs5Label=communityId cs5=1:oaa85kLpNx8eRDw5cFhiJlhZgFE\= cs6Label=rule )g"
    R"g(cs6=link/ssh-servers cn1Label=serial cn1=17 externalId=1044 )g"
    R"g(dvchost=gw1.clinic-north.example)g";
const std::string kSessionEndLeef =
    R"g(LEEF:2.0|Drawbridge|drawbridge-enforcer|0.1.0|provider-session-ended|^)g"
    R"g(|devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2026-11-25T10:31:15.250+0000^)g"
    R"g(cat=network^sev=3^src=2001:db8:100::5^dst=2001:db8:20::10^srcPort=50514^dstPort=22^)g"
    R"g(proto=TCP^totalPackets=5120^totalBytes=1843200^outcome=success^msg=acme-msp closed )g"
    R"g(tcp [2001:db8:100::5]:50514 -> [2001:db8:20::10]:22 after 31m12s^)g"
    R"g(startTime=2026-11-25T10:00:03.000+0000^endTime=2026-11-25T10:31:15.250+0000^)g"
    R"g(direction=inbound^inInterface=wan0^outInterface=lan0^site=clinic-north^serial=17^)g"
    R"g(provider=acme-msp^link=ssh-servers^rule=link/ssh-servers^)g"
    R"g(communityId=1:oaa85kLpNx8eRDw5cFhiJlhZgFE=^sequence=1044)g";
const std::string kSessionEndSyslogHeader =
    R"g(<110>1 2026-11-25T10:31:15.250Z gw1.clinic-north.example drawbridge-enforcer 812 )g"
    R"g(provider-session-ended [meta sequenceId="1044"][drawbridge@32473 site="clinic-north" )g"
    R"g(serial="17" provider="acme-msp" link="ssh-servers" rule="link/ssh-servers" )g"
    R"g(communityId="1:oaa85kLpNx8eRDw5cFhiJlhZgFE="] )g";
const std::string kAuditEcs =
    R"g({"@timestamp":"2026-11-25T11:02:00.000Z","message":"policy serial 18 rejected: no )g"
    R"g(valid signature by a trusted key","ecs":{"version":"8.11.0"},"event":{"kind":"event",)g"
    R"g("category":["configuration"],"type":["change"],"action":"policy-rejected",)g"
    R"g("outcome":"failure","reason":"signature-invalid","severity":8,"sequence":1045,)g"
    R"g("dataset":"drawbridge.events"},"observer":{"hostname":"gw1.clinic-north.example",)g"
    R"g("product":"drawbridge-enforcer","vendor":"Drawbridge","version":"0.1.0",)g"
    R"g("type":"firewall"},"rule":{"ruleset":"drawbridge site clinic-north serial 17"},)g"
    R"g("organization":{"name":"Clinic North"},"labels":{"rejected_serial":"18",)g"
    R"g("site":"clinic-north"}})g";
const std::string kAuditCef =
    R"g(CEF:0|Drawbridge|drawbridge-enforcer|0.1.0|policy-rejected|Policy )g"
    R"g(rejected|8|rt=1795604520000 cat=configuration outcome=failure )g"
    R"g(reason=signature-invalid msg=policy serial 18 rejected: no valid signature by a )g"
    R"g(trusted key cs1Label=site cs1=clinic-north cn1Label=serial cn1=17 externalId=1045 )g"
    R"g(dvchost=gw1.clinic-north.example labelRejectedSerial=18)g";
const std::string kAuditLeef =
    R"g(LEEF:2.0|Drawbridge|drawbridge-enforcer|0.1.0|policy-rejected|^)g"
    R"g(|devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2026-11-25T11:02:00.000+0000^)g"
    R"g(cat=configuration^sev=8^outcome=failure^reason=signature-invalid^msg=policy serial 18 )g"
    R"g(rejected: no valid signature by a trusted key^site=clinic-north^serial=17^)g"
    R"g(sequence=1045^labelRejectedSerial=18)g";
const std::string kAuditSyslogHeader =
    R"g(<107>1 2026-11-25T11:02:00.000Z gw1.clinic-north.example drawbridge-enforcer 812 )g"
    R"g(policy-rejected [meta sequenceId="1045"][drawbridge@32473 site="clinic-north" )g"
    R"g(serial="17" reason="signature-invalid"] )g";

TEST(EventFormatGolden, Violation) {
  const SocEvent e = violation();
  EXPECT_EQ(format_ecs_json(e, gateway()), kViolationEcs);
  EXPECT_EQ(format_cef(e, gateway()), kViolationCef);
  EXPECT_EQ(format_leef(e, gateway()), kViolationLeef);
  EXPECT_EQ(format_syslog(e, gateway(), EventFormat::ecs_json, kDefaultSyslogFacility, 812),
            kViolationSyslogHeader + kBom + kViolationEcs);
}

TEST(EventFormatGolden, SessionStart) {
  const SocEvent e = session_start();
  EXPECT_EQ(format_ecs_json(e, gateway()), kSessionStartEcs);
  EXPECT_EQ(format_cef(e, gateway()), kSessionStartCef);
  EXPECT_EQ(format_leef(e, gateway()), kSessionStartLeef);
  EXPECT_EQ(format_syslog(e, gateway(), EventFormat::leef, kDefaultSyslogFacility, 812),
            kSessionStartSyslogHeader + kBom + kSessionStartLeef);
}

TEST(EventFormatGolden, SessionEnd) {
  const SocEvent e = session_end();
  EXPECT_EQ(format_ecs_json(e, gateway()), kSessionEndEcs);
  EXPECT_EQ(format_cef(e, gateway()), kSessionEndCef);
  EXPECT_EQ(format_leef(e, gateway()), kSessionEndLeef);
  EXPECT_EQ(format_syslog(e, gateway(), EventFormat::cef, kDefaultSyslogFacility, 812),
            kSessionEndSyslogHeader + kBom + kSessionEndCef);
}

TEST(EventFormatGolden, Audit) {
  const SocEvent e = audit();
  EXPECT_EQ(format_ecs_json(e, gateway()), kAuditEcs);
  EXPECT_EQ(format_cef(e, gateway()), kAuditCef);
  EXPECT_EQ(format_leef(e, gateway()), kAuditLeef);
  EXPECT_EQ(format_syslog(e, gateway(), EventFormat::cef, kDefaultSyslogFacility, 812),
            kAuditSyslogHeader + kBom + kAuditCef);
}

// `--gtest_filter=EventFormatExamples.*` prints the lines docs/events.md shows.
TEST(EventFormatExamples, PrintOneOfEachFormat) {
  const Observer o = gateway();
  for (const SocEvent& e : {violation(), session_start(), session_end(), audit()}) {
    std::cout << format_ecs_json(e, o) << "\n"
              << format_cef(e, o) << "\n"
              << format_leef(e, o) << "\n"
              << format_syslog(e, o, EventFormat::cef, kDefaultSyslogFacility, 812) << "\n\n";
  }
}

// ---- fields present and absent ----------------------------------------------------------------

bool has_null(const nlohmann::json& j) {
  if (j.is_null()) return true;
  if (j.is_structured()) {
    for (const auto& item : j) {
      if (has_null(item)) return true;
    }
  }
  return false;
}

TEST(EventFormatEcs, AbsentFieldsAreLeftOutNeverNull) {
  SocEvent e;
  e.sequence = 7;
  e.timestamp = utc(2026, 11, 25, 0, 0, 0);
  e.kind = EventKind::audit;
  e.action = action::kEnforcerStarted;
  Observer o;  // no hostname, version or organization
  const auto j = nlohmann::json::parse(format_ecs_json(e, o));
  EXPECT_FALSE(has_null(j));
  for (const char* absent :
       {"message", "source", "destination", "network", "rule", "organization", "labels"}) {
    EXPECT_FALSE(j.contains(absent)) << absent;
  }
  EXPECT_EQ(j["event"]["category"], nlohmann::json::array({"process"}));
  EXPECT_EQ(j["event"]["type"], nlohmann::json::array({"start"}));
  EXPECT_FALSE(j["event"].contains("outcome"));
  EXPECT_FALSE(j["event"].contains("duration"));
  EXPECT_EQ(j["observer"], nlohmann::json::parse(R"({"product":"drawbridge-enforcer",
      "vendor":"Drawbridge","type":"firewall"})"));
}

TEST(EventFormatEcs, IcmpHasNoPortsButTypeAndCode) {
  SocEvent e = violation();
  e.flow = icmp("198.51.100.23", "10.20.0.10", 8, 0);
  const auto j = nlohmann::json::parse(format_ecs_json(e, gateway()));
  EXPECT_FALSE(j["source"].contains("port"));
  EXPECT_FALSE(j["destination"].contains("port"));
  EXPECT_EQ(j["network"]["transport"], "icmp");
  EXPECT_EQ(j["network"]["iana_number"], "1");
  EXPECT_EQ(j["labels"]["icmp_type"], "8");
  EXPECT_EQ(j["labels"]["icmp_code"], "0");
  EXPECT_EQ(j["network"]["community_id"], community_id(*e.flow));
  const std::string cef = format_cef(e, gateway());
  EXPECT_EQ(cef.find(" spt="), std::string::npos);
  EXPECT_NE(cef.find(" proto=ICMP "), std::string::npos);
  EXPECT_NE(cef.find(" icmpType=8 icmpCode=0"), std::string::npos);
}

TEST(EventFormatEcs, FixedLabelsWinOverEventLabels) {
  SocEvent e = violation();
  e.labels["site"] = "spoofed";
  e.labels["odd.key with space"] = "x";
  const auto j = nlohmann::json::parse(format_ecs_json(e, gateway()));
  EXPECT_EQ(j["labels"]["site"], "clinic-north");
  EXPECT_EQ(j["labels"]["odd_key_with_space"], "x");
  EXPECT_NE(format_cef(e, gateway()).find(" labelOddKeyWithSpace=x"), std::string::npos);
  EXPECT_NE(format_leef(e, gateway()).find("^labelOddKeyWithSpace=x"), std::string::npos);
}

TEST(EventFormatParse, NamesRoundTrip) {
  for (const EventFormat f : {EventFormat::ecs_json, EventFormat::cef, EventFormat::leef}) {
    const auto parsed = parse_event_format(event_format_name(f));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, f);
  }
  const auto bad = parse_event_format("json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "unknown event format \"json\": expected ecs, cef or leef");
  EXPECT_FALSE(parse_event_format("ECS").ok());
  EXPECT_FALSE(parse_event_format("").ok());
}

TEST(EventFormatSeverity, MappingPerKindReasonAndAction) {
  SocEvent v = violation();
  const std::pair<const char*, int> reasons[] = {
      {"unapproved-source", 8}, {"unapproved-host", 7}, {"unapproved-port", 7},
      {"lockdown", 7},          {"outside-window", 6},  {"policy-expired", 6},
  };
  for (const auto& [reason, severity] : reasons) {
    v.reason = reason;
    EXPECT_EQ(event_severity(v), severity) << reason;
  }
  EXPECT_EQ(event_severity(session_start()), 3);
  EXPECT_EQ(event_severity(session_end()), 3);
  SocEvent a = audit();
  const std::pair<const char*, int> actions[] = {
      {action::kPolicyRejected, 8},  {action::kPolicyExpired, 7}, {action::kLogLoss, 7},
      {action::kSpoolLoss, 7},       {action::kExpiryWarning, 5}, {action::kEnforcerStopped, 5},
      {action::kPolicyApplied, 3},   {action::kWindowOpened, 3},  {action::kWindowClosed, 3},
      {action::kEnforcerStarted, 3}, {action::kLogEpoch, 3},
  };
  for (const auto& [name, severity] : actions) {
    a.action = name;
    EXPECT_EQ(event_severity(a), severity) << name;
  }
  a.action = "something-new";
  EXPECT_EQ(event_severity(a), 6);  // outcome failure
  a.outcome = "success";
  EXPECT_EQ(event_severity(a), 3);

  EXPECT_EQ(syslog_severity(10), 2);
  EXPECT_EQ(syslog_severity(8), 3);
  EXPECT_EQ(syslog_severity(7), 4);
  EXPECT_EQ(syslog_severity(6), 5);
  EXPECT_EQ(syslog_severity(5), 5);
  EXPECT_EQ(syslog_severity(3), 6);
  EXPECT_EQ(syslog_severity(0), 6);
}

// ---- escaping ---------------------------------------------------------------------------------

// A hostile config: every special character of every format, line breaks, a terminal escape,
// DEL, a C1 CSI, non-ASCII and invalid UTF-8.
SocEvent hostile() {
  SocEvent e = violation();
  e.message = "a|b=c\\d^e\"f]g\nh\ri\tj";
  e.site = "Zürich \"HQ\"] \\ ^=|";
  e.link = "rdp\x1b[31m\x7f\xC2\x9B";
  e.provider = "bad\xff\xfeutf8\xe2\x82";
  e.flow->in_interface = "wan0\nCEF:0|forged";
  return e;
}

TEST(EventFormatEscape, CefHeaderAndExtension) {
  Observer o = gateway();
  o.vendor = "Draw|bridge\\";
  const std::string cef = format_cef(hostile(), o);
  EXPECT_EQ(cef.rfind("CEF:0|Draw\\|bridge\\\\|drawbridge-enforcer|0.1.0|", 0), 0u) << cef;
  EXPECT_NE(cef.find(" msg=a|b\\=c\\\\d^e\"f]g\\nh\\ri\\tj "), std::string::npos) << cef;
  EXPECT_NE(cef.find(" cs1=Zürich \"HQ\"] \\\\ ^\\=| "), std::string::npos) << cef;
  EXPECT_NE(cef.find(" cs3=rdp\\u001b[31m\\u007f\\u009b "), std::string::npos) << cef;
  EXPECT_NE(cef.find(" cs2=bad\uFFFD\uFFFDutf8\uFFFD "), std::string::npos) << cef;
  EXPECT_NE(cef.find(" deviceInboundInterface=wan0\\nCEF:0|forged "), std::string::npos) << cef;
}

TEST(EventFormatEscape, LeefValues) {
  const std::string leef = format_leef(hostile(), gateway());
  EXPECT_NE(leef.find("^msg=a|b=c\\\\d\\^e\"f]g\\nh\\ri\\tj^"), std::string::npos) << leef;
  EXPECT_NE(leef.find("^site=Zürich \"HQ\"] \\\\ \\^=|^"), std::string::npos) << leef;
  EXPECT_NE(leef.find("^link=rdp\\u001b[31m\\u007f\\u009b^"), std::string::npos) << leef;
  EXPECT_NE(leef.find("^provider=bad\uFFFD\uFFFDutf8\uFFFD^"), std::string::npos) << leef;
}

TEST(EventFormatEscape, SyslogStructuredData) {
  const std::string line =
      format_syslog(hostile(), gateway(), EventFormat::cef, kDefaultSyslogFacility, 1);
  EXPECT_NE(line.find(" site=\"Zürich \\\"HQ\\\"\\] \\\\ ^=|\" "), std::string::npos) << line;
  EXPECT_NE(line.find(" link=\"rdp\\u001b[31m\\u007f\\u009b\" "), std::string::npos) << line;
}

TEST(EventFormatEscape, EcsJson) {
  const SocEvent e = hostile();
  const std::string line = format_ecs_json(e, gateway());
  EXPECT_NE(line.find(R"("link":"rdp\u001b[31m\u007f\u009b")"), std::string::npos) << line;
  EXPECT_NE(line.find("\"site\":\"Zürich \\\"HQ\\\"] \\\\ ^=|\""), std::string::npos) << line;
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["message"], e.message);
  EXPECT_EQ(j["labels"]["link"], e.link);
  EXPECT_EQ(j["labels"]["provider"], "bad\uFFFD\uFFFDutf8\uFFFD");
  EXPECT_EQ(j["observer"]["ingress"]["interface"]["name"], e.flow->in_interface);
}

// No format may carry a raw control character (C0, DEL, C1) or invalid UTF-8.
::testing::AssertionResult clean(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i) {
    const auto b = static_cast<unsigned char>(line[i]);
    if (b < 0x20 || b == 0x7F ||
        (b == 0xC2 && i + 1 < line.size() && static_cast<unsigned char>(line[i + 1]) <= 0x9F &&
         static_cast<unsigned char>(line[i + 1]) >= 0x80)) {
      return ::testing::AssertionFailure() << "control at " << i << " in " << line;
    }
  }
  if (event_escape::valid_utf8(line) != line) {
    return ::testing::AssertionFailure() << "invalid UTF-8 in " << line;
  }
  return ::testing::AssertionSuccess();
}

TEST(EventFormatEscape, NoRawControlsInAnyFormat) {
  const SocEvent e = hostile();
  EXPECT_TRUE(clean(format_ecs_json(e, gateway())));
  EXPECT_TRUE(clean(format_cef(e, gateway())));
  EXPECT_TRUE(clean(format_leef(e, gateway())));
  for (const EventFormat body : {EventFormat::ecs_json, EventFormat::cef, EventFormat::leef}) {
    EXPECT_TRUE(clean(format_syslog(e, gateway(), body, kDefaultSyslogFacility, 1)));
  }
}

TEST(EventFormatEscape, InvalidUtf8BecomesReplacementCharacters) {
  using event_escape::valid_utf8;
  EXPECT_EQ(valid_utf8("plain ASCII"), "plain ASCII");
  EXPECT_EQ(valid_utf8("Genève → 東京 😀"), "Genève → 東京 😀");
  EXPECT_EQ(valid_utf8("a\xff"
                       "b"),
            "a\uFFFDb");
  EXPECT_EQ(valid_utf8("\xe2\x82x"), "\uFFFDx");                // truncated: one for the subpart
  EXPECT_EQ(valid_utf8("\xf0\x9f\x98"), "\uFFFD");              // truncated at the end
  EXPECT_EQ(valid_utf8("\xc0\xaf"), "\uFFFD\uFFFD");            // overlong '/'
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), "\uFFFD\uFFFD\uFFFD");  // a surrogate
  EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");  // past U+10FFFF
  EXPECT_EQ(valid_utf8(std::string("nul\0kept", 8)), std::string("nul\0kept", 8));
}

// ---- round trip: unescape(escape(x)) == x -----------------------------------------------------

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The reader's side, written independently of the escaper: '\' + one of `specials`, n, r, t or
// uXXXX; any other backslash sequence, or a raw special, is a failure.
std::optional<std::string> unescape(std::string_view text, std::string_view specials) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\\') {
      if (specials.find(c) != specials.npos) return std::nullopt;
      out += c;
      continue;
    }
    if (++i == text.size()) return std::nullopt;
    const char n = text[i];
    if (n == '\\' || specials.find(n) != specials.npos) {
      out += n;
    } else if (n == 'n') {
      out += '\n';
    } else if (n == 'r') {
      out += '\r';
    } else if (n == 't') {
      out += '\t';
    } else if (n == 'u' && i + 4 < text.size()) {
      append_utf8(
          out, static_cast<char32_t>(std::stoul(std::string(text.substr(i + 1, 4)), nullptr, 16)));
      i += 4;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// Strings built to hit every case: the specials of all formats, controls, random ASCII, random
// code points (C1 and astral included) and, when `arbitrary`, random bytes that are not UTF-8.
std::string generate(std::mt19937& rng, bool arbitrary) {
  static const std::string kSpecials = std::string("\\=|^\"]\n\r\t\x1b\x7f", 11) + '\0';
  std::uniform_int_distribution<int> length(0, 40), kind(0, arbitrary ? 3 : 2);
  std::string out;
  for (int n = length(rng); n > 0; --n) {
    switch (kind(rng)) {
      case 0:
        out += kSpecials[std::uniform_int_distribution<std::size_t>(0, kSpecials.size() - 1)(rng)];
        break;
      case 1:
        out += static_cast<char>(std::uniform_int_distribution<int>(0, 127)(rng));
        break;
      case 2: {
        char32_t cp = 0;
        do {
          cp = std::uniform_int_distribution<char32_t>(0x80, 0x10FFFF)(rng);
          if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) cp = 0x80 + cp % 0x780;
        } while (cp >= 0xD800 && cp <= 0xDFFF);
        append_utf8(out, cp);
        break;
      }
      default:
        out += static_cast<char>(std::uniform_int_distribution<int>(0x80, 0xFF)(rng));
    }
  }
  return out;
}

struct Escaper {
  const char* name;
  std::string (*escape)(std::string_view);
  std::string_view specials;
};

const Escaper kEscapers[] = {
    {"cef_header", event_escape::cef_header, "|"},
    {"cef_value", event_escape::cef_value, "="},
    {"leef_value", event_escape::leef_value, "^"},
    {"sd_param_value", event_escape::sd_param_value, "\"]"},
};

TEST(EventFormatProperty, EscapeIsReversibleForValidUtf8) {
  std::mt19937 rng(20261125);
  for (int i = 0; i < 3000; ++i) {
    const std::string x = generate(rng, false);
    ASSERT_EQ(event_escape::valid_utf8(x), x);
    for (const Escaper& esc : kEscapers) {
      const std::string escaped = esc.escape(x);
      ASSERT_TRUE(clean(escaped)) << esc.name;
      const auto back = unescape(escaped, esc.specials);
      ASSERT_TRUE(back.has_value()) << esc.name << ": " << escaped;
      ASSERT_EQ(*back, x) << esc.name << ": " << escaped;
    }
  }
}

TEST(EventFormatProperty, ArbitraryBytesComeBackAsTheirValidUtf8) {
  std::mt19937 rng(4242);
  for (int i = 0; i < 3000; ++i) {
    const std::string x = generate(rng, true);
    const std::string valid = event_escape::valid_utf8(x);
    ASSERT_EQ(event_escape::valid_utf8(valid), valid);
    for (const Escaper& esc : kEscapers) {
      const auto back = unescape(esc.escape(x), esc.specials);
      ASSERT_TRUE(back.has_value()) << esc.name;
      ASSERT_EQ(*back, valid) << esc.name;
    }
    // JSON: nlohmann's replacement matches ours, DEL and C1 are escaped on top.
    SocEvent e = audit();
    e.message = x;
    const std::string line = format_ecs_json(e, gateway());
    ASSERT_TRUE(clean(line));
    ASSERT_EQ(nlohmann::json::parse(line).value("message", ""), valid);  // empty: left out
  }
}

// ---- RFC 5424 structure -----------------------------------------------------------------------

struct Syslog {
  int pri = -1;
  std::string timestamp, hostname, app, procid, msgid;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> sd;
  std::string msg;
};

bool sd_name(std::string_view name) {
  if (name.empty() || name.size() > 32) return false;
  for (const char c : name) {
    if (c < 33 || c > 126 || c == '=' || c == ']' || c == '"') return false;
  }
  return true;
}

// A strict reader of the grammar in RFC 5424 §6, with SD-PARAM values unescaped per §6.3.3.
std::optional<Syslog> parse_syslog(const std::string& line) {
  static const std::regex header(
      R"(^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([!-~]{1,255}) ([!-~]{1,48}) )"
      R"(([!-~]{1,128}) ([!-~]{1,32}) )");
  std::smatch m;
  if (!std::regex_search(line, m, header)) return std::nullopt;
  Syslog s;
  s.pri = std::stoi(m[1]);
  s.timestamp = m[2], s.hostname = m[3], s.app = m[4], s.procid = m[5], s.msgid = m[6];
  std::size_t i = static_cast<std::size_t>(m.length(0));
  if (line.compare(i, 1, "-") == 0) {
    ++i;
  } else {
    while (i < line.size() && line[i] == '[') {
      const std::size_t name_end = line.find_first_of(" ]", i);
      if (name_end == std::string::npos || !sd_name(line.substr(i + 1, name_end - i - 1))) {
        return std::nullopt;
      }
      s.sd.push_back({line.substr(i + 1, name_end - i - 1), {}});
      i = name_end;
      while (line[i] == ' ') {
        const std::size_t eq = line.find('=', i);
        if (eq == std::string::npos || line.compare(eq, 2, "=\"") != 0) return std::nullopt;
        const std::string param = line.substr(i + 1, eq - i - 1);
        if (!sd_name(param)) return std::nullopt;
        std::string value;
        for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size() &&
              (line[i + 1] == '"' || line[i + 1] == '\\' || line[i + 1] == ']')) {
            ++i;
          } else if (line[i] == ']') {
            return std::nullopt;  // must have been escaped
          }
          value += line[i];
        }
        if (i == line.size()) return std::nullopt;
        s.sd.back().second.emplace_back(param, value);
        ++i;
      }
      if (line[i] != ']') return std::nullopt;
      ++i;
    }
  }
  if (line.compare(i, 1, " ") != 0) return std::nullopt;
  s.msg = line.substr(i + 1);
  return s;
}

TEST(EventFormatSyslog, StructureFieldsAndStructuredData) {
  SocEvent e = hostile();
  e.site = "quote\" backslash\\ bracket] = done";
  const auto s = parse_syslog(format_syslog(e, gateway(), EventFormat::leef, 20, 4711));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->pri, 20 * 8 + 3);  // local4, error (unapproved-source is severity 8)
  EXPECT_EQ(s->timestamp, "2026-11-25T04:29:42.123Z");
  EXPECT_EQ(s->hostname, "gw1.clinic-north.example");
  EXPECT_EQ(s->app, "drawbridge-enforcer");
  EXPECT_EQ(s->procid, "4711");
  EXPECT_EQ(s->msgid, "connection-denied");
  ASSERT_EQ(s->sd.size(), 2u);
  EXPECT_EQ(s->sd[0].first, "meta");
  EXPECT_EQ(s->sd[0].second,
            (std::vector<std::pair<std::string, std::string>>{{"sequenceId", "1042"}}));
  EXPECT_EQ(s->sd[1].first, "drawbridge@32473");
  const std::vector<std::pair<std::string, std::string>> params = s->sd[1].second;
  std::vector<std::string> names;
  for (const auto& [name, value] : params) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"site", "serial", "provider", "link", "reason", "rule",
                                             "communityId"}));  // no ticket: left out
  EXPECT_EQ(params[0].second, e.site);
  EXPECT_EQ(params[1].second, "17");
  EXPECT_EQ(params[2].second, "bad\uFFFD\uFFFDutf8\uFFFD");
  EXPECT_EQ(params[3].second, "rdp\\u001b[31m\\u007f\\u009b");
  EXPECT_EQ(params[6].second, community_id(*e.flow));
  EXPECT_EQ(s->msg, kBom + format_leef(e, gateway()));
}

TEST(EventFormatSyslog, SequenceIdWrapsWithinOneTo2147483647) {
  const std::pair<std::uint64_t, const char*> cases[] = {
      {1, "1"},          {2147483646, "2147483646"}, {2147483647, "2147483647"},
      {2147483648, "1"}, {0, "2147483647"},          {4294967295, "1"},
  };
  for (const auto& [sequence, id] : cases) {
    SocEvent e = audit();
    e.sequence = sequence;
    const auto s = parse_syslog(format_syslog(e, gateway(), EventFormat::cef, 13, 1));
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->sd[0].second[0].second, id) << sequence;
  }
}

TEST(EventFormatSyslog, HeaderFieldsArePrintableAsciiOrNil) {
  Observer o = gateway();
  o.hostname = "gw 1 Zürich";
  o.product = "";
  SocEvent e = audit();
  e.action = std::string(40, 'x');
  e.site.clear();
  e.serial.reset();
  e.reason.clear();
  const std::string line = format_syslog(e, o, EventFormat::cef, 99, 0);
  const auto s = parse_syslog(line);
  ASSERT_TRUE(s.has_value()) << line;
  // A facility out of range is the default; an unknown action that failed is a notice.
  EXPECT_EQ(s->pri, kDefaultSyslogFacility * 8 + 5);
  EXPECT_EQ(s->hostname, "gw_1_Z__rich");
  EXPECT_EQ(s->app, "-");
  EXPECT_EQ(s->procid, "-");
  EXPECT_EQ(s->msgid, std::string(32, 'x'));
  ASSERT_EQ(s->sd.size(), 1u);  // nothing for drawbridge@32473 to say
}

// ---- Community ID -----------------------------------------------------------------------------

struct Vector {
  Flow flow;
  const char* id;
};

// From corelight/community-id-spec baseline/baseline_deflt.json (real packets of the spec's
// pcaps) and the README tables of baseline/.
TEST(CommunityId, SpecBaselineVectors) {
  const Vector vectors[] = {
      {flow("128.232.110.120", 34855, "66.35.250.204", 80), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
      {flow("66.35.250.204", 80, "128.232.110.120", 34855), "1:LQU9qZlK+B5F3KDmev6m5PMibrg="},
      {flow("192.168.1.52", 54585, "8.8.8.8", 53, 17), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="},
      {flow("8.8.8.8", 53, "192.168.1.52", 54585, 17), "1:d/FP5EW3wiY1vCndhwleRRKHowQ="},
      {flow("2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25),
       "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
      {flow("2607:f8b0:400c:c03::1a", 25, "2001:470:e5bf:dead:4957:2174:e82c:4887", 63943),
       "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="},
      {flow("192.168.170.8", 7, "192.168.170.56", 7, 132), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="},
      {flow("192.168.170.56", 7, "192.168.170.8", 7, 132), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="},
      {flow("1.2.3.4", 1122, "5.6.7.8", 3344), "1:wCb3OG7yAFWelaUydu0D+125CLM="},
      {flow("1.2.3.4", 1122, "5.6.7.8", 3344, 17), "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="},
      // ICMP echo and its reply: a two-way pair, one ID.
      {icmp("192.168.0.89", "192.168.0.1", 8, 0), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="},
      {icmp("192.168.0.1", "192.168.0.89", 0, 0), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="},
      {icmp("1.2.3.4", "5.6.7.8", 8, 0), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="},
      {icmp("5.6.7.8", "1.2.3.4", 0, 0), "1:crodRHL2FEsHjbv3UkRrfbs4bZ0="},
      // Time exceeded: one-way, type and code hashed as they are.
      {icmp("10.0.0.1", "10.0.0.2", 11, 0), "1:YHxtAirCG//0OzkcVAukqKQN9xM="},
      {icmp("1.2.3.4", "5.6.7.8", 11, 0), "1:f/YiSyWqczrTgfUCZlBUnvHRcPk="},
      // ICMPv6 neighbour solicitation/advertisement: two-way...
      {icmp("fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0),
       "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="},
      {icmp("fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0),
       "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="},
      // ...so a solicitation the other way is another flow.
      {icmp("fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 135, 0),
       "1:zavyT/cezQr1fmImYCwYnMXbgck="},
      {icmp("fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 136, 0),
       "1:zavyT/cezQr1fmImYCwYnMXbgck="},
      // One-way ICMPv6: time exceeded, destination unreachable (code 4: port).
      {icmp("3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0),
       "1:2ObVBgIn28oZvibYZhZMBgh7WdQ="},
      {icmp("3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4),
       "1:hLZd0XGWojozrvxqE0dWB1iM6R0="},
      {icmp("3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 0),
       "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="},
      {icmp("3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 0),
       "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="},
      {icmp("fe80::200:86ff:fe05:80da", "ff02::2", 133, 0), "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="},
      {icmp("fe80::260:97ff:fe07:69ea", "ff02::1", 134, 0), "1:pkvHqCL88/tg1k4cPigmZXUtL00="},
      {icmp("fe80:1:203:405:607:809:a0b:c0d", "fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 146, 0),
       "1:fYC8+pz24E+EhANP1EZhpX0Dw10="},
      // A protocol without ports (RSVP): addresses only.
      {flow("10.1.12.1", 0, "10.1.12.2", 0, 46), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="},
      {flow("10.1.12.2", 0, "10.1.12.1", 0, 46), "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="},
      {flow("fe80:1011:1213:1415:1617:1819:1a1b:1c1d", 0, "fe80:1:203:405:607:809:a0b:c0d", 0, 46),
       "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0="},
  };
  for (const Vector& v : vectors) {
    EXPECT_EQ(community_id(v.flow), v.id)
        << v.flow.source.str() << " -> " << v.flow.destination.str() << " proto "
        << int{v.flow.protocol};
  }
}

TEST(CommunityId, SeedOneVectors) {
  EXPECT_EQ(community_id(flow("1.2.3.4", 1122, "5.6.7.8", 3344), 1),
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=");
  EXPECT_EQ(community_id(icmp("5.6.7.8", "1.2.3.4", 0, 0), 1), "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=");
  EXPECT_EQ(community_id(icmp("fe80:1011:1213:1415:1617:1819:1a1b:1c1d",
                              "fe80:1:203:405:607:809:a0b:c0d", 129, 0),
                         1),
            "1:IO27GQzPuCtNnwFvjWALMHu5tJE=");
}

TEST(CommunityId, EmptyWhenTheTupleCannotBeHashed) {
  EXPECT_EQ(community_id(flow("192.0.2.1", 1, "2001:db8::1", 2)), "");
  Flow f = icmp("192.0.2.1", "192.0.2.2", 8, 0);
  f.icmp_type.reset();
  EXPECT_EQ(community_id(f), "");
}

}  // namespace
}  // namespace drawbridge
