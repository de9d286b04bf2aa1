// The SOC's view, end to end through the real parts: denied and allowed packets through the lab
// gateway → the daemon (NFLOG, conntrack) → its spool → syslog over TCP and TLS → a real rsyslogd,
// the SOC collector, which runs in the lab's `msp` namespace on 203.0.113.2 (tests/README.md says
// why there) and writes every message as it arrived.
//
// The daemon has three outputs: the audit file, `soc-tcp` (RFC 5424 over TCP, ECS JSON body) and
// `soc-tls` (RFC 5424 over TLS with CA pinning, CEF body). What rsyslog received is parsed back
// (RFC 5424 header and structured data, then the ECS or CEF body) and compared with the packets
// that were sent, with the kernel's own counters and with the audit file.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lab.h"
#include "tests/support/rsyslog_harness.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// The collector's ports inside msp: the well-known ones, free in a fresh namespace. No policy
// here guards them, and the enforcer does not filter the gateway's own output (docs/ruleset.md:
// only forward and input are hooked; input accepts the replies to the gateway's connections).
constexpr std::uint16_t kSyslogTcpPort = 601;
constexpr std::uint16_t kSyslogTlsPort = 6514;
constexpr std::uint16_t kSyslogUdpPort = 514;
constexpr const char* kTcp = "soc-tcp";
constexpr const char* kTls = "soc-tls";

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm utc{};
  ::gmtime_r(&s, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// --- reading back what rsyslog received --------------------------------------------------------

// One message as the collector received it: the RFC 5424 envelope (docs/events.md) and the body,
// reduced to the fields the assertions compare whatever the body's format.
struct Received {
  std::string output;  // kTcp (ECS body) or kTls (CEF body)
  std::string line;
  std::string msgid;
  std::uint64_t sequence = 0;              // [meta sequenceId]
  std::map<std::string, std::string> sd;   // [drawbridge@32473 …]
  std::string body;                        // after the BOM
  json ecs;                                // the body, for kTcp
  std::map<std::string, std::string> cef;  // the extension, labelled keys resolved, for kTls

  // Normalised from the body.
  std::string action, reason, site, serial, provider, link, rule, ticket, window, opened_by;
  std::string src, dst, transport;
  int sport = 0, dport = 0;
  std::uint64_t packets = 0, bytes = 0;
  std::uint64_t event_sequence = 0;  // the body's own 64-bit sequence
  std::optional<std::int64_t> duration_ms;
  bool scan = false;
  int distinct_ports = 0;
};

// SD-PARAM values escape `\`, `"` and `]` with a backslash (RFC 5424 §6.3.3).
bool parse_sd(const std::string& line, std::size_t& at, Received& r) {
  while (at < line.size() && line[at] == '[') {
    const auto id_end = line.find_first_of(" ]", at);
    if (id_end == std::string::npos) return false;
    const std::string id = line.substr(at + 1, id_end - at - 1);
    at = id_end;
    while (at < line.size() && line[at] == ' ') {
      const auto eq = line.find("=\"", at);
      if (eq == std::string::npos) return false;
      const std::string name = line.substr(at + 1, eq - at - 1);
      std::string value;
      std::size_t i = eq + 2;
      for (; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        value += line[i];
      }
      if (i >= line.size()) return false;
      at = i + 1;
      if (id == "meta" && name == "sequenceId") r.sequence = std::stoull(value);
      if (id.starts_with("drawbridge@")) r.sd[name] = value;
    }
    if (at >= line.size() || line[at] != ']') return false;
    ++at;
  }
  return true;
}

// CEF extension: `key=value` pairs separated by spaces; `=` and `\` in values are escaped, so an
// unescaped `=` always ends a key (the token after the last space before it).
std::map<std::string, std::string> parse_cef_extension(const std::string& ext) {
  std::vector<std::pair<std::size_t, std::size_t>> keys;  // (key start, position of '=')
  for (std::size_t i = 0; i < ext.size(); ++i) {
    if (ext[i] != '=') continue;
    std::size_t slashes = 0;
    for (std::size_t j = i; j > 0 && ext[j - 1] == '\\'; --j) ++slashes;
    if (slashes % 2 == 1) continue;
    const auto space = ext.rfind(' ', i);
    keys.emplace_back(space == std::string::npos ? 0 : space + 1, i);
  }
  std::map<std::string, std::string> out;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const auto [start, eq] = keys[k];
    const std::size_t end = k + 1 < keys.size() ? keys[k + 1].first - 1 : ext.size();
    std::string value;
    for (std::size_t i = eq + 1; i < end; ++i) {
      if (ext[i] == '\\' && i + 1 < end) {
        ++i;
        value += ext[i] == 'n' ? '\n' : ext[i] == 'r' ? '\r' : ext[i];
      } else {
        value += ext[i];
      }
    }
    out[ext.substr(start, eq - start)] = value;
  }
  // cs1Label=site cs1=lab → site=lab (a labelled slot is known by its label).
  std::map<std::string, std::string> labelled;
  for (const auto& [key, value] : out) {
    if (key.ends_with("Label")) {
      const auto slot = out.find(key.substr(0, key.size() - 5));
      if (slot != out.end()) labelled[value] = slot->second;
    }
  }
  for (auto& [label, value] : labelled) out.emplace("label:" + label, value);
  return out;
}

std::optional<Received> parse_received(const std::string& line) {
  static const std::regex header(R"(^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) )");
  std::smatch m;
  if (!std::regex_search(line, m, header)) return std::nullopt;
  Received r;
  r.line = line;
  r.msgid = m[6];
  std::size_t at = static_cast<std::size_t>(m.length(0));
  if (!parse_sd(line, at, r)) return std::nullopt;
  static const std::string kBom = " \xEF\xBB\xBF";
  if (line.compare(at, kBom.size(), kBom) != 0) return std::nullopt;
  r.body = line.substr(at + kBom.size());

  const auto get = [](const std::map<std::string, std::string>& m, const std::string& k) {
    const auto it = m.find(k);
    return it == m.end() ? std::string{} : it->second;
  };
  if (r.body.starts_with("{")) {
    r.output = kTcp;
    r.ecs = json::parse(r.body, nullptr, false);
    if (r.ecs.is_discarded()) return std::nullopt;
    const json& e = r.ecs;
    const json labels = e.value("labels", json::object());
    r.action = e["event"].value("action", "");
    r.reason = e["event"].value("reason", "");
    r.event_sequence = e["event"].value("sequence", std::uint64_t{0});
    r.site = labels.value("site", "");
    r.provider = labels.value("provider", "");
    r.link = labels.value("link", "");
    r.ticket = labels.value("ticket", "");
    r.window = labels.value("window", "");
    r.opened_by = labels.value("opened_by", "");
    r.scan = labels.value("scan", "") == "true";
    r.distinct_ports = std::stoi(labels.value("distinct_ports", "0"));
    if (labels.contains("duration_ms")) r.duration_ms = std::stoll(labels.value("duration_ms", ""));
    if (e.contains("rule")) {
      r.rule = e["rule"].value("name", "");
      // "drawbridge site <site> serial <serial>"
      const std::string ruleset = e["rule"].value("ruleset", "");
      const auto s = ruleset.rfind(" serial ");
      if (s != std::string::npos) r.serial = ruleset.substr(s + 8);
    }
    if (e.contains("source")) {
      r.src = e["source"].value("ip", "");
      r.sport = e["source"].value("port", 0);
    }
    if (e.contains("destination")) {
      r.dst = e["destination"].value("ip", "");
      r.dport = e["destination"].value("port", 0);
    }
    if (e.contains("network")) {
      r.transport = e["network"].value("transport", "");
      r.packets = e["network"].value("packets", std::uint64_t{0});
      r.bytes = e["network"].value("bytes", std::uint64_t{0});
    }
  } else if (r.body.starts_with("CEF:0|")) {
    r.output = kTls;
    // Seven header fields, `|` escaped in them; the extension follows the seventh `|`.
    std::size_t bars = 0, i = 0;
    for (; i < r.body.size() && bars < 7; ++i) {
      if (r.body[i] == '\\') {
        ++i;
      } else if (r.body[i] == '|') {
        ++bars;
      }
    }
    if (bars != 7) return std::nullopt;
    r.cef = parse_cef_extension(r.body.substr(i));
    const auto& c = r.cef;
    r.action = r.msgid;
    r.reason = get(c, "reason");
    r.site = get(c, "label:site");
    r.serial = get(c, "label:serial");
    r.provider = get(c, "label:provider");
    r.link = get(c, "label:link");
    r.ticket = get(c, "label:ticket");
    r.rule = get(c, "label:rule");
    r.window = get(c, "labelWindow");
    r.opened_by = get(c, "labelOpenedBy");
    r.scan = get(c, "labelScan") == "true";
    if (!get(c, "labelDistinctPorts").empty())
      r.distinct_ports = std::stoi(get(c, "labelDistinctPorts"));
    if (!get(c, "labelDurationMs").empty()) r.duration_ms = std::stoll(get(c, "labelDurationMs"));
    if (!get(c, "externalId").empty()) r.event_sequence = std::stoull(get(c, "externalId"));
    r.src = get(c, "src");
    r.dst = get(c, "dst");
    if (!get(c, "spt").empty()) r.sport = std::stoi(get(c, "spt"));
    if (!get(c, "dpt").empty()) r.dport = std::stoi(get(c, "dpt"));
    r.transport = get(c, "proto");
    std::transform(r.transport.begin(), r.transport.end(), r.transport.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    // Violations count packets in cnt and bytes in `in`; sessions in the labelled cn2/cn3.
    const std::string packets = !get(c, "cnt").empty() ? get(c, "cnt") : get(c, "label:packets");
    const std::string bytes = !get(c, "in").empty() ? get(c, "in") : get(c, "label:bytes");
    if (!packets.empty()) r.packets = std::stoull(packets);
    if (!bytes.empty()) r.bytes = std::stoull(bytes);
  } else {
    return std::nullopt;
  }
  return r;
}

// The audit file's events (ECS objects), in file order.
std::vector<json> audit_events(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const auto record = json::parse(line, nullptr, false);
    if (!record.is_discarded() && record.contains("event")) out.push_back(record["event"]);
  }
  return out;
}

std::vector<std::uint64_t> audit_sequences(const std::string& path) {
  std::vector<std::uint64_t> out;
  for (const auto& e : audit_events(path)) out.push_back(e["event"].value("sequence", 0ull));
  return out;
}

// A nftables counter in gw: {packets, bytes} of the first `counter` in `chain` whose rule text
// contains `marker` (empty: any).
std::pair<std::uint64_t, std::uint64_t> chain_counter(const NamespaceLab& lab,
                                                      const std::string& chain,
                                                      const std::string& marker = "") {
  const auto listed = lab.nft({"list", "chain", "inet", "drawbridge", chain});
  static const std::regex counter(R"(counter packets (\d+) bytes (\d+))");
  std::istringstream in(listed.out);
  for (std::string line; std::getline(in, line);) {
    if (!marker.empty() && line.find(marker) == std::string::npos) continue;
    std::smatch m;
    if (std::regex_search(line, m, counter)) return {std::stoull(m[1]), std::stoull(m[2])};
  }
  ADD_FAILURE() << "no counter in chain " << chain << " (" << marker << "): " << listed.describe();
  return {0, 0};
}

class SocRsyslogLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    lab_.emplace();
    state_ = lab_->temp_dir() + "/state";
    collector_ = lab_->temp_dir() + "/collector";
    fs::create_directories(state_);
    fs::create_directories(collector_);
    audit_ = state_ + "/audit.jsonl";
    ASSERT_TRUE(pki_.make(collector_, {addr::kAcme})) << "openssl could not make the test PKI";
    test_support::RsyslogOptions o;
    o.address = addr::kAcme;
    o.netns = lab_->msp();
    o.tcp_port = kSyslogTcpPort;
    o.tls_port = kSyslogTlsPort;
    o.udp_port = kSyslogUdpPort;
    rsyslog_.emplace(collector_, pki_, o);
    ASSERT_TRUE(rsyslog_->start());
  }

  void TearDown() override {
    if (HasFailure() && rsyslog_) std::cerr << "rsyslogd said:\n" << rsyslog_->diagnostics();
    daemon_.reset();
    rsyslog_.reset();  // killed before its namespace goes
  }

  // Site "lab", serial 7: acme (203.0.113.0/28) may reach rdp (10.20.0.10 tcp/3389) always,
  // vnc (10.20.0.11 tcp/5900) under grant CHG-4711 for the next hour, later (10.20.0.12
  // tcp/3389) never; tcp/22 is guarded.
  void start_daemon() {
    const auto now = std::chrono::system_clock::now();
    const auto policy = lab_->write_file(
        "policy.toml",
        "version = 1\nsite = \"lab\"\nserial = 7\ntimezone = \"UTC\"\n"
        "[providers.acme]\naddresses = [\"203.0.113.0/28\"]\n"
        "[[links]]\nname = \"rdp\"\nprovider = \"acme\"\ndirection = \"inbound\"\n"
        "hosts = [\"10.20.0.10\"]\nports = [\"tcp/3389\"]\nwindows = [\"always\"]\n"
        "[[links]]\nname = \"later\"\nprovider = \"acme\"\ndirection = \"inbound\"\n"
        "hosts = [\"10.20.0.12\"]\nports = [\"tcp/3389\"]\nwindows = []\n"
        "[[links]]\nname = \"vnc\"\nprovider = \"acme\"\ndirection = \"inbound\"\n"
        "hosts = [\"10.20.0.11\"]\nports = [\"tcp/5900\"]\nwindows = []\n"
        "[[grants]]\nlink = \"vnc\"\nticket = \"CHG-4711\"\n"
        "from = " +
            rfc3339(now - std::chrono::minutes(5)) +
            "\n"
            "until = " +
            rfc3339(now + std::chrono::hours(1)) +
            "\n"
            "[guard]\nports = [\"tcp/22\"]\n");
    std::ostringstream config;
    config << "policy = \"" << policy << "\"\nstate_dir = \"" << state_ << "\"\n"
           << "[events]\naggregation_seconds = 2\norganization = \"Lab\"\n"
           << "[events.audit_file]\npath = \"" << audit_ << "\"\n"
           << "[[events.syslog]]\nname = \"" << kTcp << "\"\ntransport = \"tcp\"\nhost = \""
           << addr::kAcme << "\"\nport = " << kSyslogTcpPort << "\nformat = \"ecs\"\n"
           << "[[events.syslog]]\nname = \"" << kTls << "\"\ntransport = \"tls\"\nhost = \""
           << addr::kAcme << "\"\nport = " << kSyslogTlsPort << "\nformat = \"cef\"\n"
           << "ca_file = \"" << pki_.ca << "\"\npinned_sha256 = \"" << pki_.spki_sha256 << "\"\n";
    const auto path = lab_->write_file("enforcer.toml", config.str());
    daemon_.emplace(lab_->spawn_enforcer({"run", "--config", path}));
    ASSERT_TRUE(wait_received(
        [](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
          const auto applied = [](const Received& r) { return r.action == "policy-applied"; };
          return std::any_of(tcp.begin(), tcp.end(), applied) &&
                 std::any_of(tls.begin(), tls.end(), applied);
        },
        10s))
        << daemon_->err();
  }

  // What rsyslog has so far, per output, in arrival order. A line that does not parse fails the
  // test: the collector must be able to read everything it is sent.
  std::map<std::string, std::vector<Received>> received() const {
    std::map<std::string, std::vector<Received>> out{{kTcp, {}}, {kTls, {}}};
    for (const auto& line : rsyslog_->lines()) {
      auto r = parse_received(line);
      EXPECT_TRUE(r.has_value()) << "rsyslog received an unreadable line: " << line;
      if (r) out[r->output].push_back(std::move(*r));
    }
    return out;
  }

  bool wait_received(
      const std::function<bool(const std::vector<Received>&, const std::vector<Received>&)>& ok,
      Millis timeout) const {
    const auto until = SteadyClock::now() + timeout;
    for (;;) {
      auto r = received();
      if (ok(r[kTcp], r[kTls])) return true;
      if (SteadyClock::now() >= until) return false;
      std::this_thread::sleep_for(100ms);
    }
  }

  // TCP SYNs from msp with fixed source ports, so the whole 5-tuple is known: non-blocking
  // connects (one SYN each), closed before any retransmission.
  void send_syns(const std::vector<std::tuple<std::string, int, std::string, int>>& flows) {
    std::ostringstream py;
    py << "import socket, time\nsocks = []\nfor src, sport, dst, dport in [";
    for (const auto& [src, sport, dst, dport] : flows) {
      py << "('" << src << "', " << sport << ", '" << dst << "', " << dport << "),";
    }
    py << "]:\n  s = socket.socket(); s.setblocking(False); s.bind((src, sport))\n"
          "  s.connect_ex((dst, dport)); socks.append(s)\n"
          "time.sleep(0.3)\nfor s in socks: s.close()\n";
    const auto r = lab_->run(lab_->msp(), {"python3", "-c", py.str()});
    ASSERT_TRUE(r.ok()) << r.describe();
  }

  std::string status() const { return lab_->enforcer({"status", "--state-dir", state_}).out; }

  std::optional<NamespaceLab> lab_;
  std::string state_, collector_, audit_;
  test_support::Pki pki_;
  std::optional<test_support::Rsyslog> rsyslog_;
  std::optional<Process> daemon_;
};

const Received* find(const std::vector<Received>& events,
                     const std::function<bool(const Received&)>& pred) {
  const auto it = std::find_if(events.begin(), events.end(), pred);
  return it == events.end() ? nullptr : &*it;
}

// The delivery contract (enforcer/soc/event_sink.h, docs/soc-delivery.md): at least once, in
// spool order; the only duplicate is the record in flight when a connection failed, repeated
// right after itself. `arrived` against `expected` (the audit file's sequences): every one, in
// order; returns how many were repeats.
int check_delivery(const std::string& output, const std::vector<std::uint64_t>& arrived,
                   const std::vector<std::uint64_t>& expected) {
  int repeats = 0;
  std::size_t next = 0;
  for (std::size_t i = 0; i < arrived.size(); ++i) {
    if (i > 0 && arrived[i] == arrived[i - 1]) {
      ++repeats;
      continue;
    }
    if (next >= expected.size() || arrived[i] != expected[next]) {
      ADD_FAILURE() << output << ": sequence " << arrived[i] << " arrived where "
                    << (next < expected.size() ? std::to_string(expected[next]) : "nothing")
                    << " was due (out of order, lost or unknown)";
      return repeats;
    }
    ++next;
  }
  EXPECT_EQ(next, expected.size()) << output << ": not every audit-file event reached rsyslog";
  return repeats;
}

std::vector<std::uint64_t> sequences(const std::vector<Received>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& r : events) out.push_back(r.sequence);
  return out;
}

TEST_F(SocRsyslogLabTest, DenialsReachTheCollectorAttributedCountedAndAfterAnOutage) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());

  // (a) Three kinds of denial, each one SYN with a known 5-tuple.
  struct Expected {
    const char* what;
    const char* src;
    int sport;
    const char* dst;
    int dport;
    const char* reason;
    const char* provider;
    const char* link;
    const char* rule;
  };
  const std::vector<Expected> denials = {
      {"attacker at the RDP link", addr::kAttacker, 40001, addr::kServer, 3389, "unapproved-source",
       "", "rdp", "link/rdp"},
      {"provider outside its window", addr::kAcme, 40002, addr::kServer3, 3389, "outside-window",
       "acme", "later", "link/later"},
      {"provider at an unapproved port", addr::kAcme, 40003, addr::kServer, 8080, "unapproved-port",
       "acme", "", "provider/acme"},
      {"attacker at a guarded port", addr::kAttacker, 40004, addr::kServer, 22, "unapproved-source",
       "", "", "guard"},
  };
  std::vector<std::tuple<std::string, int, std::string, int>> flows;
  for (const auto& d : denials) flows.emplace_back(d.src, d.sport, d.dst, d.dport);
  ASSERT_NO_FATAL_FAILURE(send_syns(flows));

  // (b) A scan of 1,000 ports by the provider's address: unapproved ports, all denied and logged.
  const auto scan = lab_->run(
      lab_->msp(), {"python3", "-c",
                    "import socket\n"
                    "socks=[]\n"
                    "for p in range(20000, 21000):\n"
                    "  s=socket.socket(); s.setblocking(False); s.bind(('203.0.113.2',0))\n"
                    "  s.connect_ex(('10.20.0.10',p)); socks.append(s)\n"
                    "for s in socks: s.close()\n"});
  ASSERT_TRUE(scan.ok()) << scan.describe();

  const auto is = [](const Expected& d) {
    return [&d](const Received& r) {
      return r.action == "connection-denied" && r.src == d.src && r.sport == d.sport &&
             r.dst == d.dst && r.dport == d.dport && r.reason == d.reason;
    };
  };
  // Packets the kernel dropped as acme's unapproved ports (the scan plus the tcp/8080 SYN).
  const auto port_denials = [](const std::vector<Received>& events) {
    std::uint64_t packets = 0;
    for (const auto& r : events) {
      if (r.action == "connection-denied" && r.src == addr::kAcme &&
          r.reason == "unapproved-port") {
        packets += r.packets;
      }
    }
    return packets;
  };
  std::uint64_t dropped = 0;
  const bool all_arrived = wait_received(
      [&](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
        for (const auto& d : denials) {
          if (!find(tcp, is(d)) || !find(tls, is(d))) return false;
        }
        // The aggregator flushes the scan at its interval (2 s); wait until every dropped packet
        // is in some event.
        dropped = chain_counter(*lab_, "p1_acme", "unapproved-port").first;
        return dropped >= 1001 && port_denials(tcp) == dropped && port_denials(tls) == dropped;
      },
      20s);
  auto got = received();
  ASSERT_TRUE(all_arrived) << "denials missing at rsyslog; kernel dropped " << dropped
                           << " at unapproved ports, tcp has " << port_denials(got[kTcp])
                           << ", tls has " << port_denials(got[kTls]) << "\n"
                           << daemon_->err();

  for (const char* output : {kTcp, kTls}) {
    const auto& events = got[output];
    for (const auto& d : denials) {
      const Received* r = find(events, is(d));
      ASSERT_NE(r, nullptr) << output << ": " << d.what;
      SCOPED_TRACE(std::string(output) + ": " + d.what + ": " + r->line);
      EXPECT_EQ(r->site, "lab");
      EXPECT_EQ(r->serial, "7");
      EXPECT_EQ(r->provider, d.provider);
      EXPECT_EQ(r->link, d.link);
      EXPECT_EQ(r->rule, d.rule);
      EXPECT_EQ(r->transport, "tcp");
      EXPECT_EQ(r->packets, 1u);
      EXPECT_EQ(r->event_sequence, r->sequence) << "body and meta sequenceId agree";
      // The structured data says the same, for relays that do not parse the body.
      EXPECT_EQ(r->sd.at("site"), "lab");
      EXPECT_EQ(r->sd.at("serial"), "7");
      EXPECT_EQ(r->sd.at("reason"), d.reason);
      EXPECT_EQ(r->sd.at("rule"), d.rule);
      EXPECT_EQ(r->sd.count("provider") ? r->sd.at("provider") : "", d.provider);
      EXPECT_EQ(r->sd.count("link") ? r->sd.at("link") : "", d.link);
    }
    // The scan: a handful of events whose packet counts add up to what the kernel dropped.
    std::size_t scan_events = 0, summaries = 0;
    for (const auto& r : events) {
      if (r.action != "connection-denied" || r.src != addr::kAcme ||
          r.reason != "unapproved-port" || r.dport == 8080) {
        continue;
      }
      ++scan_events;
      if (r.scan) {
        ++summaries;
        EXPECT_GE(r.distinct_ports, 980) << output << ": " << r.line;
      }
    }
    EXPECT_LE(scan_events, 15u) << output << ": a scan must not become thousands of events";
    EXPECT_EQ(summaries, 1u) << output;
    std::cout << "[ note     ] " << output << ": the 1,000-port scan (" << dropped - 1
              << " SYNs dropped) arrived as " << scan_events << " events\n";
  }
  // The TCP output's ECS body is the audit file's record, byte for byte the same JSON.
  {
    std::map<std::uint64_t, json> audit;
    for (auto& e : audit_events(audit_)) audit[e["event"].value("sequence", 0ull)] = e;
    for (const auto& r : got[kTcp]) {
      ASSERT_TRUE(audit.count(r.sequence)) << r.line;
      EXPECT_EQ(r.ecs, audit[r.sequence]) << "sequence " << r.sequence;
    }
  }

  // (c) The collector stops (SIGTERM) while every event so far has arrived; more denials come in.
  ASSERT_TRUE(wait_received(
      [&](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
        const auto want = audit_sequences(audit_);
        return !want.empty() && !tcp.empty() && !tls.empty() &&
               tcp.back().sequence == want.back() && tls.back().sequence == want.back();
      },
      10s));
  const auto before_outage = audit_sequences(audit_).size();
  const auto stopped_at = SteadyClock::now();
  rsyslog_->stop();
  std::vector<std::tuple<std::string, int, std::string, int>> during;
  for (int i = 0; i < 8; ++i) during.emplace_back(addr::kAcme2, 41000 + i, addr::kServer, 9000 + i);
  during.emplace_back(addr::kAttacker, 41100, addr::kServer, 3389);
  during.emplace_back(addr::kAttacker, 41101, addr::kServer3, 3389);
  during.emplace_back(addr::kUnapproved, 41102, addr::kServer, 3389);
  ASSERT_NO_FATAL_FAILURE(send_syns(during));
  // Both outputs notice (status is refreshed every 5 s) and the events wait in the spool.
  const bool failing = test_support::eventually(
      [&] {
        const auto s = status();
        return std::regex_search(s, std::regex(std::string("output ") + kTcp + ":[^\n]*FAILING")) &&
               std::regex_search(s, std::regex(std::string("output ") + kTls + ":[^\n]*FAILING"));
      },
      15s);
  EXPECT_TRUE(failing) << status();
  // Repeats of two of those flows: folded into aggregated events at the interval's end, still
  // during the outage, which lasts at least 6 s (several failed attempts with backoff).
  ASSERT_NO_FATAL_FAILURE(send_syns({{addr::kAttacker, 41103, addr::kServer3, 3389},
                                     {addr::kAcme2, 41200, addr::kServer, 9000}}));
  std::this_thread::sleep_until(stopped_at + 6s);
  const auto during_outage = audit_sequences(audit_).size() - before_outage;
  EXPECT_GE(during_outage, during.size()) << "each new flow is an event at once";

  const auto outage_ms =
      std::chrono::duration_cast<Millis>(SteadyClock::now() - stopped_at).count();
  ASSERT_TRUE(rsyslog_->start());
  const bool caught_up = wait_received(
      [&](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
        const auto want = audit_sequences(audit_).back();
        return !tcp.empty() && !tls.empty() && tcp.back().sequence >= want &&
               tls.back().sequence >= want;
      },
      40s);
  EXPECT_TRUE(caught_up) << status();

  // The daemon stops (its last event, enforcer-stopped, is delivered while it drains), and then
  // what rsyslog holds is compared with the audit file: same sequences, in order, no gaps.
  daemon_->kill(SIGTERM);
  EXPECT_EQ(daemon_->wait(15s).exit_code, 0) << daemon_->err();
  const auto expected = audit_sequences(audit_);
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(std::is_sorted(expected.begin(), expected.end()));
  EXPECT_EQ(expected.front(), 1u);
  EXPECT_EQ(expected.back(), expected.size()) << "the audit file has every sequence";
  ASSERT_TRUE(wait_received(
      [&](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
        return !tcp.empty() && !tls.empty() && tcp.back().sequence == expected.back() &&
               tls.back().sequence == expected.back();
      },
      5s))
      << "the enforcer-stopped event did not reach rsyslog";
  got = received();
  for (const char* output : {kTcp, kTls}) {
    const int repeats = check_delivery(output, sequences(got[output]), expected);
    // One connection failure (the collector's stop), so at most the one record in flight then.
    EXPECT_LE(repeats, 1) << output;
    std::cout << "[ note     ] " << output << ": " << expected.size() << " events, "
              << during_outage << " of them while rsyslog was down for " << outage_ms << " ms, "
              << repeats << " sent twice\n";
  }
  const auto final_status = status();
  EXPECT_NE(final_status.find("waiting 0, compacted 0"), std::string::npos) << final_status;
}

TEST_F(SocRsyslogLabTest, ProviderSessionsStartAndEndWithCountsAndAttribution) {
  // Conntrack reports an end when the entry is deleted: after TCP's TIME_WAIT (120 s by default)
  // and when the garbage collector gets to it. Short timeouts in gw only (they are per network
  // namespace).
  for (const char* timeout : {"time_wait", "close_wait", "last_ack", "fin_wait", "close"}) {
    const auto set = lab_->run(
        lab_->gw(),
        {"sysctl", "-w", std::string("net.netfilter.nf_conntrack_tcp_timeout_") + timeout + "=1"});
    ASSERT_TRUE(set.ok()) << set.describe();
  }
  ASSERT_NO_FATAL_FAILURE(start_daemon());

  // Two sessions: one in the rdp link's standing window, one through the vnc link's grant.
  auto window_stream = lab_->stream(addr::kAcme, addr::kServer, "tcp/3389", 50ms, 1000ms);
  auto grant_stream = lab_->stream(addr::kAcme, addr::kServer2, "tcp/5900", 50ms, 1000ms);
  const auto window_run = window_stream.wait(10s);
  const auto grant_run = grant_stream.wait(10s);
  const auto closed_at = SteadyClock::now();
  const auto window_echoes = parse_stream(window_run).echoes;
  const auto grant_echoes = parse_stream(grant_run).echoes;
  ASSERT_GE(window_echoes, 10) << window_run.describe();
  ASSERT_GE(grant_echoes, 10) << grant_run.describe();

  const auto session = [](const char* action, const char* dst, int dport) {
    return [=](const Received& r) {
      return r.action == action && r.src == addr::kAcme && r.dst == dst && r.dport == dport;
    };
  };
  const auto both = [&](const char* action) {
    return [=](const std::vector<Received>& tcp, const std::vector<Received>& tls) {
      for (const auto* events : {&tcp, &tls}) {
        if (!find(*events, session(action, addr::kServer, 3389)) ||
            !find(*events, session(action, addr::kServer2, 5900))) {
          return false;
        }
      }
      return true;
    };
  };
  ASSERT_TRUE(wait_received(both("provider-session-started"), 5s)) << daemon_->err();

  // The entries expire a second after the close, but the kernel deletes an expired entry (and
  // only then sends the DESTROY event) when its garbage collector passes: the interval averages
  // the remaining timeouts of all entries on the host, biased towards 60 s and clamped to
  // 1-60 s (nf_conntrack_core.c, gc_worker). Without help the ends arrived here 1.3 to 35 s after
  // the close. Reading the conntrack table deletes expired entries on the way (kernel commit
  // 58e207e4983d, "evict stale entries when user reads /proc/net/nf_conntrack"), so the test
  // reads it while it waits: ~1.3 s. The DESTROY event and everything after it are the same as
  // when the collector does it. The bound covers a kernel without that file (one GC interval).
  const bool ended = [&] {
    const auto until = SteadyClock::now() + 70s;
    for (;;) {
      auto r = received();
      if (both("provider-session-ended")(r[kTcp], r[kTls])) return true;
      if (SteadyClock::now() >= until) return false;
      (void)lab_->run(lab_->gw(), {"cat", "/proc/net/nf_conntrack"});
      std::this_thread::sleep_for(250ms);
    }
  }();
  const auto end_latency =
      std::chrono::duration_cast<Millis>(SteadyClock::now() - closed_at).count();
  ASSERT_TRUE(ended) << "no session end within 70 s\n" << daemon_->err();
  std::cout << "[ note     ] session ends arrived at rsyslog " << end_latency
            << " ms after the streams closed\n";

  // Attribution and counts, in both formats. The kernel's per-link counters (l<j>_allow) saw
  // the same packets as conntrack: each link carried exactly this one session.
  const auto got = received();
  struct Case {
    const char* dst;
    int dport;
    const char* link;
    const char* chain;
    const char* opened_by;
    const char* window;
    const char* ticket;
    int echoes;
  };
  const std::vector<Case> cases = {
      {addr::kServer, 3389, "rdp", "l1_rdp_allow", "window", "always", "", window_echoes},
      {addr::kServer2, 5900, "vnc", "l3_vnc_allow", "grant", "", "CHG-4711", grant_echoes},
  };
  for (const auto& c : cases) {
    const auto [kernel_packets, kernel_bytes] = chain_counter(*lab_, c.chain);
    for (const char* output : {kTcp, kTls}) {
      const Received* start =
          find(got.at(output), session("provider-session-started", c.dst, c.dport));
      const Received* end = find(got.at(output), session("provider-session-ended", c.dst, c.dport));
      ASSERT_NE(start, nullptr);
      ASSERT_NE(end, nullptr);
      SCOPED_TRACE(std::string(output) + " " + c.link + ":\n  " + start->line + "\n  " + end->line);
      EXPECT_LT(start->sequence, end->sequence);
      for (const Received* r : {start, end}) {
        EXPECT_EQ(r->site, "lab");
        EXPECT_EQ(r->serial, "7");
        EXPECT_EQ(r->provider, "acme");
        EXPECT_EQ(r->link, c.link);
        EXPECT_EQ(r->rule, std::string("link/") + c.link);
        EXPECT_EQ(r->opened_by, c.opened_by);
        EXPECT_EQ(r->window, c.window);
        EXPECT_EQ(r->ticket, c.ticket);
        EXPECT_EQ(r->transport, "tcp");
        EXPECT_GT(r->sport, 0);
      }
      EXPECT_EQ(start->sport, end->sport);
      // About one second of streaming.
      ASSERT_TRUE(end->duration_ms.has_value());
      EXPECT_GE(*end->duration_ms, 900);
      EXPECT_LE(*end->duration_ms, 5000);
      // Both directions: every line and its echo, the handshake and the close.
      EXPECT_GE(end->packets, 2u * static_cast<std::uint64_t>(c.echoes) + 3) << "packets";
      EXPECT_EQ(end->packets, kernel_packets) << "conntrack and the link's nft counter";
      EXPECT_EQ(end->bytes, kernel_bytes) << "conntrack and the link's nft counter";
      EXPECT_GE(end->bytes, end->packets * 40) << "IP and TCP headers at least";
    }
  }
}

}  // namespace
}  // namespace drawbridge::lab
