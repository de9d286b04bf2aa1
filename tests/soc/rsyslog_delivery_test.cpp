// Delivery against a real rsyslogd (tests/support/rsyslog_harness.h), started by each test on
// loopback ports of its own (no service is assumed) and killed when the test ends, pass or fail:
//   imudp, imtcp (RFC 6587 octet counting) and imtcp with the gtls stream driver (RFC 5425), all
//   into one file written with the raw message, which the tests read back.
// Events go spool → Delivery → SyslogOutput exactly as in the daemon; the formatter here is a
// trivial RFC 5424 line so that these tests do not depend on event_format.
//
// The binary has a second mode, `--deliver-child <spool> <port>`, used as an "enforcer" process
// that the restart test kills with SIGKILL in the middle of delivering.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include "enforcer/soc/event_sink.h"
#include "enforcer/soc/event_spool.h"
#include "tests/support/rsyslog_harness.h"

namespace drawbridge {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string self_exe;  // this binary, for the child mode

using test_support::eventually;
using test_support::Pki;
using test_support::read_file;
using test_support::reap;
using test_support::Rsyslog;
using test_support::spawn;
using test_support::TempDir;

// The syslog line of an event: RFC 5424 with the spool sequence as meta sequenceId, tagged with
// the output's name so that one file can hold what several outputs sent.
std::string test_line(const std::string& output, const SocEvent& e) {
  return "<110>1 2026-01-01T00:00:00.000Z gw.clinic.test drawbridge-enforcer - " + e.action +
         " [meta sequenceId=\"" + std::to_string(e.sequence) + "\"] " + output + " " + e.message;
}

SocEvent numbered(int i) {
  SocEvent e;
  e.timestamp = Instant{milliseconds{1767225600000LL + i}};
  e.kind = EventKind::violation;
  e.action = action::kConnectionDenied;
  e.message = "denied 203.0.113." + std::to_string(i % 250) +
              " → 10.1.0.5:3389 (outside-window) #" + std::to_string(i);
  return e;
}

// The sequence ids that arrived for one output, in arrival order.
std::vector<std::uint64_t> sequences_of(const std::vector<std::string>& lines,
                                        const std::string& output) {
  static const std::regex re(R"re(sequenceId="(\d+)"\] (\S+) )re");
  std::vector<std::uint64_t> out;
  for (const auto& line : lines) {
    std::smatch m;
    if (std::regex_search(line, m, re) && m[2] == output) out.push_back(std::stoull(m[1]));
  }
  return out;
}

std::unique_ptr<SyslogOutput> make_output(const std::string& name, SyslogTransport transport,
                                          std::uint16_t port, const Pki* pki = nullptr) {
  SyslogOutputOptions o;
  o.name = name;
  o.transport = transport;
  o.host = "127.0.0.1";
  o.port = port;
  o.format = [name](const SocEvent& e) { return test_line(name, e); };
  o.connect_timeout = seconds{3};
  o.send_timeout = seconds{3};
  if (pki != nullptr) o.ca_file = pki->ca;
  auto out = SyslogOutput::create(o);
  EXPECT_TRUE(out) << out.error().str();
  return out ? std::move(*out) : nullptr;
}

std::unique_ptr<SyslogOutput> make_tls(const std::string& name, std::uint16_t port,
                                       const std::string& ca, const std::string& server_name,
                                       const std::string& pin) {
  SyslogOutputOptions o;
  o.name = name;
  o.transport = SyslogTransport::tls;
  o.host = "127.0.0.1";
  o.port = port;
  o.format = [name](const SocEvent& e) { return test_line(name, e); };
  o.connect_timeout = seconds{3};
  o.send_timeout = seconds{3};
  o.ca_file = ca;
  o.server_name = server_name;
  o.pinned_sha256 = pin;
  auto out = SyslogOutput::create(o);
  EXPECT_TRUE(out) << out.error().str();
  return out ? std::move(*out) : nullptr;
}

std::unique_ptr<EventSpool> open_spool(const std::string& dir,
                                       const std::vector<std::string>& consumers) {
  SpoolOptions o;
  o.directory = dir;
  o.consumers = consumers;
  auto s = EventSpool::open(o);
  EXPECT_TRUE(s) << s.error().str();
  return s ? std::move(*s) : nullptr;
}

DeliveryOptions quick_backoff() {
  DeliveryOptions o;
  o.initial_backoff = milliseconds{100};
  o.max_backoff = milliseconds{1000};
  return o;
}

bool drained(const EventSpool& spool) {
  for (const auto& c : spool.stats().consumers) {
    if (c.backlog != 0) return false;
  }
  return true;
}

class RsyslogDelivery : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.make(tmp_.path())) << "openssl could not make the test certificates";
    rsyslog_ = std::make_unique<Rsyslog>(tmp_.path(), pki_);
    ASSERT_TRUE(rsyslog_->start());
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "rsyslogd said:\n" << read_file(tmp_.path() + "/rsyslogd.out");
    }
    rsyslog_.reset();  // killed here, whatever happened
  }

  TempDir tmp_;
  Pki pki_;
  std::unique_ptr<Rsyslog> rsyslog_;
};

TEST_F(RsyslogDelivery, UdpTcpAndTlsEventsArriveIntact) {
  auto spool = open_spool(tmp_.path() + "/spool", {"udp", "tcp", "tls"});
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(make_output("udp", SyslogTransport::udp, rsyslog_->udp_port));
  outputs.push_back(make_output("tcp", SyslogTransport::tcp, rsyslog_->tcp_port));
  outputs.push_back(make_output("tls", SyslogTransport::tls, rsyslog_->tls_port, &pki_));
  auto delivery = Delivery::start(*spool, std::move(outputs), quick_backoff());
  ASSERT_TRUE(delivery) << delivery.error().str();

  const int n = 40;
  std::vector<SocEvent> sent;
  for (int i = 1; i <= n; ++i) {
    auto e = numbered(i);
    // Long enough to need several TCP segments and TLS records: the frame length must hold.
    if (i == 7) e.message += " " + std::string(20000, 'x');
    auto seq = spool->append(e);
    ASSERT_TRUE(seq);
    e.sequence = *seq;
    sent.push_back(e);
  }
  ASSERT_TRUE(eventually([&] { return drained(*spool); }, seconds{30}));
  ASSERT_TRUE(eventually([&] { return rsyslog_->lines().size() >= 3 * n; }, seconds{10}));
  const auto lines = rsyslog_->lines();
  EXPECT_EQ(lines.size(), 3u * n);
  for (const std::string output : {"udp", "tcp", "tls"}) {
    std::vector<std::string> mine;
    for (const auto& line : lines) {
      if (line.find("\"] " + output + " ") != std::string::npos) mine.push_back(line);
    }
    ASSERT_EQ(mine.size(), static_cast<std::size_t>(n)) << output;
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(mine[static_cast<std::size_t>(i)],
                test_line(output, sent[static_cast<std::size_t>(i)]))
          << output << " event " << i + 1;
    }
  }
  for (const auto& st : (*delivery)->status()) {
    EXPECT_EQ(st.delivered, static_cast<std::uint64_t>(n)) << st.name;
    EXPECT_EQ(st.failures, 0u) << st.name << ": " << st.last_error;
  }
}

TEST_F(RsyslogDelivery, TlsSendsOnlyToTheCollectorItWasToldToTrust) {
  const std::vector<std::string> names = {"pin-cert", "pin-spki", "wrong-pin", "rogue-ca",
                                          "wrong-name"};
  auto spool = open_spool(tmp_.path() + "/spool", names);
  const auto port = rsyslog_->tls_port;
  std::string wrong_pin = pki_.spki_sha256;
  wrong_pin[0] = wrong_pin[0] == 'a' ? 'b' : 'a';
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(make_tls("pin-cert", port, pki_.ca, "", pki_.cert_sha256));
  outputs.push_back(make_tls("pin-spki", port, pki_.ca, "localhost", pki_.spki_sha256));
  outputs.push_back(make_tls("wrong-pin", port, pki_.ca, "", wrong_pin));
  outputs.push_back(make_tls("rogue-ca", port, pki_.rogue_ca, "", ""));
  outputs.push_back(make_tls("wrong-name", port, pki_.ca, "collector.example", ""));
  auto delivery = Delivery::start(*spool, std::move(outputs), quick_backoff());
  ASSERT_TRUE(delivery) << delivery.error().str();
  const int n = 5;
  for (int i = 1; i <= n; ++i) ASSERT_TRUE(spool->append(numbered(i)));

  const auto status_of = [&](const std::string& name) {
    for (const auto& st : (*delivery)->status()) {
      if (st.name == name) return st;
    }
    return OutputStatus{};
  };
  ASSERT_TRUE(eventually(
      [&] {
        return status_of("pin-cert").delivered == n && status_of("pin-spki").delivered == n &&
               status_of("wrong-pin").failures >= 3 && status_of("rogue-ca").failures >= 3 &&
               status_of("wrong-name").failures >= 3;
      },
      seconds{30}));
  EXPECT_NE(status_of("wrong-pin").last_error.find("does not match pinned_sha256"),
            std::string::npos)
      << status_of("wrong-pin").last_error;
  EXPECT_NE(status_of("rogue-ca").last_error.find("not trusted"), std::string::npos)
      << status_of("rogue-ca").last_error;
  EXPECT_NE(status_of("wrong-name").last_error.find("not trusted"), std::string::npos)
      << status_of("wrong-name").last_error;
  (*delivery)->stop();

  // The refused outputs sent nothing and keep every event spooled.
  const auto lines = rsyslog_->lines();
  EXPECT_EQ(sequences_of(lines, "pin-cert").size(), static_cast<std::size_t>(n));
  EXPECT_EQ(sequences_of(lines, "pin-spki").size(), static_cast<std::size_t>(n));
  for (const auto& c : spool->stats().consumers) {
    if (c.name.starts_with("pin-")) {
      EXPECT_EQ(c.backlog, 0u) << c.name;
    } else {
      EXPECT_TRUE(sequences_of(lines, c.name).empty()) << c.name;
      EXPECT_EQ(c.backlog, static_cast<std::uint64_t>(n)) << c.name;
    }
  }
}

TEST_F(RsyslogDelivery, CollectorOutageLosesNothingAndRepeatsNothing) {
  auto spool = open_spool(tmp_.path() + "/spool", {"tcp", "tls", "udp"});
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(make_output("tcp", SyslogTransport::tcp, rsyslog_->tcp_port));
  outputs.push_back(make_output("tls", SyslogTransport::tls, rsyslog_->tls_port, &pki_));
  outputs.push_back(make_output("udp", SyslogTransport::udp, rsyslog_->udp_port));
  auto delivery = Delivery::start(*spool, std::move(outputs), quick_backoff());
  ASSERT_TRUE(delivery) << delivery.error().str();

  // Connected and delivering before the outage.
  for (int i = 1; i <= 10; ++i) ASSERT_TRUE(spool->append(numbered(i)));
  ASSERT_TRUE(eventually([&] { return drained(*spool); }, seconds{20}));

  rsyslog_->stop();
  const int n = 500;
  for (int i = 11; i < 11 + n; ++i) ASSERT_TRUE(spool->append(numbered(i)));
  ASSERT_TRUE(eventually(
      [&] {
        const auto st = (*delivery)->status();
        return st.at(0).failures >= 2 && st.at(1).failures >= 2 && st.at(2).failures >= 2;
      },
      seconds{20}));
  for (const auto& c : spool->stats().consumers) {
    EXPECT_GE(c.backlog, static_cast<std::uint64_t>(n - 1)) << c.name << " while down";
  }

  ASSERT_TRUE(rsyslog_->start());
  ASSERT_TRUE(eventually([&] { return drained(*spool); }, seconds{60}));
  const auto total = static_cast<std::size_t>(10 + n);
  ASSERT_TRUE(eventually(
      [&] {
        const auto now = rsyslog_->lines();
        return sequences_of(now, "tcp").size() >= total && sequences_of(now, "tls").size() >= total;
      },
      seconds{10}));
  // UDP may have lost some (see below): give it a moment, but do not insist.
  eventually([&] { return sequences_of(rsyslog_->lines(), "udp").size() >= total; }, seconds{2});
  const auto lines = rsyslog_->lines();
  for (const std::string output : {"tcp", "tls"}) {
    const auto seqs = sequences_of(lines, output);
    ASSERT_EQ(seqs.size(), total) << output << ": every event exactly once";
    for (std::size_t i = 0; i < total; ++i) {
      ASSERT_EQ(seqs[i], i + 1) << output << ": in order";
    }
  }
  const auto stats = spool->stats();
  EXPECT_EQ(stats.next_sequence, total + 1);
  for (const auto& c : stats.consumers) EXPECT_EQ(c.next_sequence, total + 1) << c.name;
  for (const auto& st : (*delivery)->status()) {
    EXPECT_EQ(st.delivered, total) << st.name;
    EXPECT_GT(st.retries, 0u) << st.name;
    EXPECT_FALSE(st.failing) << st.name;
  }
  // UDP has no acknowledgement: a datagram the collector's socket did not take is gone unless
  // an ICMP error came back in time (on loopback it nearly always does). What arrives is still
  // in order and never repeated, and the SOC sees any loss as a gap in sequenceId.
  const auto udp = sequences_of(lines, "udp");
  for (std::size_t i = 1; i < udp.size(); ++i) EXPECT_LT(udp[i - 1], udp[i]) << "udp in order";
  std::cout << "[ note     ] udp: " << udp.size() << " of " << total << " arrived\n";
}

TEST_F(RsyslogDelivery, KilledEnforcerLosesNothingAndRepeatsAtMostOnePerKill) {
  const std::string spool_dir = tmp_.path() + "/spool";
  const int n = 600;
  {
    auto spool = open_spool(spool_dir, {"tcp"});
    std::vector<SocEvent> batch;
    for (int i = 1; i <= n; ++i) batch.push_back(numbered(i));
    ASSERT_TRUE(spool->append(std::move(batch)));
  }
  const std::vector<std::string> child = {self_exe, "--deliver-child", spool_dir,
                                          std::to_string(rsyslog_->tcp_port)};
  const auto arrived = [&] { return sequences_of(rsyslog_->lines(), "tcp").size(); };
  int kills = 0;
  for (const std::size_t kill_after : {100u, 300u}) {
    const pid_t pid = spawn(child, tmp_.path() + "/child.out");
    ASSERT_GT(pid, 0);
    const bool reached = eventually([&] { return arrived() >= kill_after; }, seconds{30});
    ::kill(pid, SIGKILL);  // no chance to acknowledge what is in flight
    ASSERT_TRUE(reap(pid, seconds{10}));
    ++kills;
    ASSERT_TRUE(reached) << read_file(tmp_.path() + "/child.out");
    ASSERT_LT(arrived(), static_cast<std::size_t>(n)) << "killed too late to test anything";
  }
  const pid_t pid = spawn(child, tmp_.path() + "/child.out");
  const bool all = eventually(
      [&] {
        const auto seqs = sequences_of(rsyslog_->lines(), "tcp");
        return !seqs.empty() && seqs.back() == static_cast<std::uint64_t>(n);
      },
      seconds{60});
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(reap(pid, seconds{10}));
  ASSERT_TRUE(all) << read_file(tmp_.path() + "/child.out");

  // Every sequence, in order; a repeat only of the record right before it (the one in flight
  // when the process died), and at most one per kill.
  const auto seqs = sequences_of(rsyslog_->lines(), "tcp");
  std::uint64_t expect = 1;
  int repeats = 0;
  for (const auto s : seqs) {
    if (s + 1 == expect) {
      ++repeats;
      continue;
    }
    ASSERT_EQ(s, expect) << "out of order or lost";
    ++expect;
  }
  EXPECT_EQ(expect, static_cast<std::uint64_t>(n + 1));
  EXPECT_LE(repeats, kills);
  std::cout << "[ note     ] " << kills << " kills, " << repeats << " events sent twice\n";
  // The spool's cursor caught up (the child is gone, so the spool can be opened again).
  auto spool = open_spool(spool_dir, {"tcp"});
  EXPECT_EQ(spool->stats().consumers.at(0).next_sequence, static_cast<std::uint64_t>(n + 1));
  EXPECT_EQ(spool->stats().consumers.at(0).backlog, 0u);
}

// Slows an output down to a steady pace, so that a kill lands in the middle of the stream.
class Paced : public EventOutput {
 public:
  explicit Paced(std::unique_ptr<EventOutput> inner) : inner_(std::move(inner)) {}
  [[nodiscard]] std::string name() const override { return inner_->name(); }
  Result<void> deliver(const SocEvent& e) override {
    std::this_thread::sleep_for(milliseconds{4});
    return inner_->deliver(e);
  }
  void cancel() override { inner_->cancel(); }

 private:
  std::unique_ptr<EventOutput> inner_;
};

// The child "enforcer": delivers the spool to rsyslog over TCP until it is killed.
int deliver_child(const std::string& spool_dir, const std::string& port) {
  SpoolOptions so;
  so.directory = spool_dir;
  so.consumers = {"tcp"};
  auto spool = EventSpool::open(so);
  if (!spool) {
    std::fprintf(stderr, "spool: %s\n", spool.error().str().c_str());
    return 1;
  }
  std::vector<std::unique_ptr<EventOutput>> outputs;
  auto tcp = make_output("tcp", SyslogTransport::tcp, static_cast<std::uint16_t>(std::stoi(port)));
  if (!tcp) return 1;
  outputs.push_back(std::make_unique<Paced>(std::move(tcp)));
  auto delivery = Delivery::start(**spool, std::move(outputs), quick_backoff());
  if (!delivery) {
    std::fprintf(stderr, "delivery: %s\n", delivery.error().str().c_str());
    return 1;
  }
  for (;;) std::this_thread::sleep_for(seconds{1});
}

}  // namespace
}  // namespace drawbridge

int main(int argc, char** argv) {
  drawbridge::self_exe = std::filesystem::read_symlink("/proc/self/exe").string();
  if (argc == 4 && std::string(argv[1]) == "--deliver-child") {
    return drawbridge::deliver_child(argv[2], argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
