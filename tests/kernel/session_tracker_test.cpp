// Provider sessions from real conntrack events: what the kernel sends parses, an allowed
// connection gives exactly one start and one end whose counters match what was sent, and a
// connection that an nftables rule drops gives no event at all.
//
// Each test runs in a network namespace of its own; the two-namespace tests put a "provider" in a
// second one, joined by a veth pair, so that its packets arrive from outside and are filtered on
// input the way a gateway filters them (traffic over lo would be confirmed on output, before any
// input rule could drop it).
//
// Conntrack ends a connection only when its entry expires (after TIME_WAIT for TCP, the UDP
// timeout for UDP) and the kernel's garbage collector, which runs at most about once a minute,
// notices; the tests shorten the timeouts in their namespace and wait up to kEndWait.
//
// Fixtures: with DRAWBRIDGE_CAPTURE_CONNTRACK=<dir> set, LoopbackEventsParse writes the raw bytes
// of the messages it receives to <dir>/{tcp4,udp4,tcp6}_{new,destroy}.bin (what
// tests/unit/fixtures/conntrack/ holds).
#include "enforcer/soc/session_tracker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "common/policy_parser.h"
#include "enforcer/kernel_state.h"
#include "enforcer/ruleset_plan.h"

namespace drawbridge {
namespace {

using namespace std::chrono_literals;

constexpr auto kEndWait = 150s;

void in_fresh_netns(const std::function<void()>& body) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, conntrack, nftables)";
  std::thread t([&] {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET) failed";
    body();
  });
  t.join();
}

// Commands run from the calling thread inherit its network namespace.
bool sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  return rc == 0;
}

std::string sh_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

void write_sysctl(const std::string& name, const std::string& value) {
  std::ofstream f("/proc/sys/net/netfilter/" + name);
  f << value << "\n";
  EXPECT_TRUE(f.good()) << name;
}

// Conntrack only runs in a namespace once some rule needs it, as Drawbridge's table does (its
// reply rules match `ct direction`). The short timeouts make ends arrive within the test.
void enable_conntrack() {
  sh("nft add table inet ct_on && "
     "nft add chain inet ct_on in '{ type filter hook input priority 0; }' && "
     "nft add rule inet ct_on in ct state new counter");
  write_sysctl("nf_conntrack_tcp_timeout_time_wait", "1");
  write_sysctl("nf_conntrack_tcp_timeout_close_wait", "1");
  write_sysctl("nf_conntrack_tcp_timeout_last_ack", "1");
  write_sysctl("nf_conntrack_tcp_timeout_fin_wait", "1");
  write_sysctl("nf_conntrack_udp_timeout", "1");
  write_sysctl("nf_conntrack_udp_timeout_stream", "1");
}

// A thread living in a second network namespace, running what it is given.
class NetnsThread {
 public:
  NetnsThread() : thread_([this] { loop(); }) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return started_; });
  }
  ~NetnsThread() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  [[nodiscard]] bool ok() const { return ok_; }
  // /proc path of the namespace, for `ip link set … netns`.
  [[nodiscard]] std::string ns_path() const {
    return "/proc/" + std::to_string(getpid()) + "/task/" + std::to_string(tid_) + "/ns/net";
  }
  std::future<void> post(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    auto done = task.get_future();
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_all();
    return done;
  }
  void run(std::function<void()> fn) { post(std::move(fn)).get(); }

 private:
  void loop() {
    const bool unshared = unshare(CLONE_NEWNET) == 0;
    {
      std::lock_guard lock(mu_);
      ok_ = unshared;
      tid_ = static_cast<pid_t>(syscall(SYS_gettid));
      started_ = true;
    }
    cv_.notify_all();
    while (true) {
      std::packaged_task<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool started_ = false, stop_ = false, ok_ = false;
  pid_t tid_ = 0;
  std::thread thread_;
};

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_storage sockaddr_of(const char* ip, std::uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (std::strchr(ip, ':') != nullptr) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &s6->sin6_addr);
    len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    inet_pton(AF_INET, ip, &s4->sin_addr);
    len = sizeof(sockaddr_in);
  }
  return ss;
}

Fd bound_socket(int type, const char* ip, std::uint16_t port) {
  socklen_t len = 0;
  const auto ss = sockaddr_of(ip, port, len);
  Fd s(socket(ss.ss_family, type | SOCK_CLOEXEC, 0));
  const int on = 1;
  setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  EXPECT_EQ(bind(s.fd, reinterpret_cast<const sockaddr*>(&ss), len), 0)
      << ip << " port " << port << ": " << std::strerror(errno);
  return s;
}

Fd tcp_listen(const char* ip, std::uint16_t port) {
  Fd s = bound_socket(SOCK_STREAM, ip, port);
  EXPECT_EQ(listen(s.fd, 16), 0);
  return s;
}

bool connect_to(const Fd& s, const char* ip, std::uint16_t port) {
  socklen_t len = 0;
  const auto ss = sockaddr_of(ip, port, len);
  return connect(s.fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0;
}

void send_all(const Fd& s, std::size_t n, char fill) {
  const std::string data(n, fill);
  std::size_t sent = 0;
  while (sent < n) {
    const ssize_t k = send(s.fd, data.data() + sent, n - sent, MSG_NOSIGNAL);
    ASSERT_GT(k, 0) << std::strerror(errno);
    sent += static_cast<std::size_t>(k);
  }
}

// Reads until the peer closes; returns how much came.
std::size_t recv_to_eof(const Fd& s) {
  char buf[8192];
  std::size_t total = 0;
  while (true) {
    const ssize_t k = recv(s.fd, buf, sizeof buf, 0);
    if (k <= 0) return total;
    total += static_cast<std::size_t>(k);
  }
}

// One TCP exchange: the client sends `up` bytes and half-closes, the server answers `down`
// bytes and closes, the client reads them and closes.
void tcp_exchange(const char* client_ip, std::uint16_t client_port, const char* server_ip,
                  std::uint16_t server_port, std::size_t up, std::size_t down) {
  Fd server = tcp_listen(server_ip, server_port);
  Fd client = bound_socket(SOCK_STREAM, client_ip, client_port);
  ASSERT_TRUE(connect_to(client, server_ip, server_port)) << std::strerror(errno);
  Fd conn(accept(server.fd, nullptr, nullptr));
  ASSERT_GE(conn.fd, 0);
  send_all(client, up, 'u');
  shutdown(client.fd, SHUT_WR);
  EXPECT_EQ(recv_to_eof(conn), up);
  send_all(conn, down, 'd');
  shutdown(conn.fd, SHUT_WR);
  EXPECT_EQ(recv_to_eof(client), down);
}

void udp_exchange(const char* client_ip, std::uint16_t client_port, const char* server_ip,
                  std::uint16_t server_port, const std::string& ask, const std::string& answer) {
  Fd server = bound_socket(SOCK_DGRAM, server_ip, server_port);
  Fd client = bound_socket(SOCK_DGRAM, client_ip, client_port);
  ASSERT_TRUE(connect_to(client, server_ip, server_port));
  ASSERT_EQ(send(client.fd, ask.data(), ask.size(), 0), static_cast<ssize_t>(ask.size()));
  char buf[512];
  sockaddr_storage from{};
  socklen_t from_len = sizeof from;
  const ssize_t n =
      recvfrom(server.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
  ASSERT_EQ(n, static_cast<ssize_t>(ask.size()));
  ASSERT_EQ(sendto(server.fd, answer.data(), answer.size(), 0,
                   reinterpret_cast<const sockaddr*>(&from), from_len),
            static_cast<ssize_t>(answer.size()));
  ASSERT_EQ(recv(client.fd, buf, sizeof buf, 0), static_cast<ssize_t>(answer.size()));
}

struct Captured {
  ConntrackEvent event;
  std::vector<std::uint8_t> bytes;  // the raw message
};

// Reads events until `done` says so or `limit` passes.
std::vector<Captured> collect(ConntrackListener& l, std::chrono::steady_clock::duration limit,
                              const std::function<bool(const std::vector<Captured>&)>& done) {
  std::vector<Captured> out;
  std::vector<std::uint8_t> last_raw;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline && !done(out)) {
    pollfd p{l.fd(), POLLIN, 0};
    poll(&p, 1, 200);
    l.read_available(
        [&](const ConntrackEvent& e) {
          out.push_back({e, last_raw});
        },
        [&](const nlmsghdr* nlh) {
          const auto* b = reinterpret_cast<const std::uint8_t*>(nlh);
          last_raw.assign(b, b + nlh->nlmsg_len);
        });
  }
  return out;
}

bool same_flow(const ConntrackEvent& e, std::uint8_t proto, const char* src, std::uint16_t sport,
               const char* dst, std::uint16_t dport) {
  return e.flow.protocol == proto && e.flow.source == *Address::parse(src) &&
         e.flow.source_port == sport && e.flow.destination == *Address::parse(dst) &&
         e.flow.destination_port == dport;
}

std::size_t count_of(const std::vector<Captured>& events, ConntrackEvent::Type type,
                     std::uint8_t proto, const char* src, std::uint16_t sport, const char* dst,
                     std::uint16_t dport) {
  std::size_t n = 0;
  for (const auto& c : events) {
    if (c.event.type == type && same_flow(c.event, proto, src, sport, dst, dport)) ++n;
  }
  return n;
}

const Captured* find(const std::vector<Captured>& events, ConntrackEvent::Type type,
                     std::uint8_t proto, const char* src, std::uint16_t sport, const char* dst,
                     std::uint16_t dport) {
  for (const auto& c : events) {
    if (c.event.type == type && same_flow(c.event, proto, src, sport, dst, dport)) return &c;
  }
  return nullptr;
}

// --- loopback: what the kernel sends parses (and is captured for the unit tests) ------------

TEST(KernelSessionTracker, LoopbackEventsParse) {
  in_fresh_netns([] {
    ASSERT_TRUE(
        sh("ip link set lo up && ip addr add 192.0.2.10/32 dev lo && "
           "ip addr add 203.0.113.5/32 dev lo && "
           "ip addr add 2001:db8:20::10/128 dev lo nodad && "
           "ip addr add 2001:db8:100::5/128 dev lo nodad"));
    enable_conntrack();
    auto listener = ConntrackListener::open();
    ASSERT_TRUE(listener.ok()) << listener.error().message;
    EXPECT_TRUE(listener->accounting());
    EXPECT_TRUE(listener->timestamps());
    for (const auto& w : listener->warnings()) ADD_FAILURE() << w;

    const auto t0 = std::chrono::system_clock::now();
    tcp_exchange("203.0.113.5", 40001, "192.0.2.10", 3389, 10, 2);
    udp_exchange("203.0.113.5", 40002, "192.0.2.10", 3389, "ping", "pong");
    tcp_exchange("2001:db8:100::5", 40003, "2001:db8:20::10", 22, 9, 2);

    using T = ConntrackEvent::Type;
    const auto all_ended = [](const std::vector<Captured>& ev) {
      return find(ev, T::ended, 6, "203.0.113.5", 40001, "192.0.2.10", 3389) &&
             find(ev, T::ended, 17, "203.0.113.5", 40002, "192.0.2.10", 3389) &&
             find(ev, T::ended, 6, "2001:db8:100::5", 40003, "2001:db8:20::10", 22);
    };
    const auto events = collect(*listener, kEndWait, all_ended);
    ASSERT_TRUE(all_ended(events)) << "no end for every flow within the wait";
    EXPECT_EQ(listener->lost(), 0u);
    EXPECT_EQ(listener->malformed(), 0u);

    struct Case {
      const char* name;
      std::uint8_t proto;
      const char *src, *dst;
      std::uint16_t sport, dport;
      std::uint64_t up, down;  // payload bytes each way
    };
    const Case cases[] = {{"tcp4", 6, "203.0.113.5", "192.0.2.10", 40001, 3389, 10, 2},
                          {"udp4", 17, "203.0.113.5", "192.0.2.10", 40002, 3389, 4, 4},
                          {"tcp6", 6, "2001:db8:100::5", "2001:db8:20::10", 40003, 22, 9, 2}};
    const char* capture_dir = std::getenv("DRAWBRIDGE_CAPTURE_CONNTRACK");
    for (const auto& c : cases) {
      SCOPED_TRACE(c.name);
      EXPECT_EQ(count_of(events, T::started, c.proto, c.src, c.sport, c.dst, c.dport), 1u);
      EXPECT_EQ(count_of(events, T::ended, c.proto, c.src, c.sport, c.dst, c.dport), 1u);
      const auto* s = find(events, T::started, c.proto, c.src, c.sport, c.dst, c.dport);
      const auto* e = find(events, T::ended, c.proto, c.src, c.sport, c.dst, c.dport);
      ASSERT_TRUE(s && e);
      EXPECT_EQ(s->event.id, e->event.id);
      ASSERT_TRUE(e->event.reply);
      EXPECT_EQ(e->event.reply->source, *Address::parse(c.dst));
      EXPECT_EQ(e->event.reply->source_port, c.dport);
      // Counters and times come with the end only.
      EXPECT_TRUE(e->event.has_counters);
      EXPECT_GE(e->event.bytes_orig, c.up + 28 * e->event.packets_orig);
      EXPECT_GE(e->event.bytes_reply, c.down + 28 * e->event.packets_reply);
      ASSERT_TRUE(e->event.start && e->event.stop);
      EXPECT_LE(*e->event.start, *e->event.stop);
      EXPECT_GE(*e->event.start, std::chrono::floor<std::chrono::milliseconds>(t0) - 1s);
      std::printf(
          "%s: id %u start %lld stop %lld orig %llu/%llu reply %llu/%llu (start event %s "
          "start time)\n",
          c.name, e->event.id, static_cast<long long>(e->event.start->time_since_epoch().count()),
          static_cast<long long>(e->event.stop->time_since_epoch().count()),
          static_cast<unsigned long long>(e->event.packets_orig),
          static_cast<unsigned long long>(e->event.bytes_orig),
          static_cast<unsigned long long>(e->event.packets_reply),
          static_cast<unsigned long long>(e->event.bytes_reply),
          s->event.start ? "with" : "without");
      if (capture_dir != nullptr) {
        for (const auto& [suffix, cap] : {std::pair{"_new.bin", s}, std::pair{"_destroy.bin", e}}) {
          std::ofstream out(std::string(capture_dir) + "/" + c.name + suffix, std::ios::binary);
          out.write(reinterpret_cast<const char*>(cap->bytes.data()),
                    static_cast<std::streamsize>(cap->bytes.size()));
          EXPECT_TRUE(out.good());
        }
      }
    }
  });
}

// --- two namespaces: a provider outside, filtering on input ----------------------------------

// This thread's namespace is the gateway (host 10.20.0.10 on lo, 192.0.2.1 towards the
// provider); `peer` is the provider (203.0.113.5 on lo, 192.0.2.2 towards the gateway).
bool join_provider(NetnsThread& peer) {
  if (!peer.ok()) return false;
  bool ok =
      sh("ip link set lo up && ip addr add 10.20.0.10/32 dev lo && "
         "ip link add veth-gw type veth peer name veth-msp netns " +
         peer.ns_path() +
         " && ip addr add 192.0.2.1/24 dev veth-gw && ip link set veth-gw up && "
         "ip route add 203.0.113.0/24 via 192.0.2.2");
  peer.run([&] {
    ok = ok && sh("ip link set lo up && ip addr add 203.0.113.5/32 dev lo && "
                  "ip addr add 192.0.2.2/24 dev veth-msp && ip link set veth-msp up && "
                  "ip route add 10.20.0.0/24 via 192.0.2.1");
  });
  return ok;
}

const char* kPolicy = R"(
version = 1
site = "kernel-test"
serial = 9
timezone = "UTC"
[providers.acme]
addresses = ["203.0.113.0/28"]
[[links]]
name = "rdp"
provider = "acme"
hosts = ["10.20.0.10"]
ports = ["tcp/3389"]
windows = ["always"]
)";

Instant now_ms() {
  return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

TEST(KernelSessionTracker, AllowedConnectionGivesOneStartAndOneEndWithItsCounts) {
  in_fresh_netns([] {
    NetnsThread peer;
    ASSERT_TRUE(join_provider(peer));
    enable_conntrack();
    auto listener = ConntrackListener::open();
    ASSERT_TRUE(listener.ok()) << listener.error().message;

    constexpr std::size_t kUp = 100'000, kDown = 20'000;
    Fd server = tcp_listen("10.20.0.10", 3389);
    auto client = peer.post([&] {
      Fd c = bound_socket(SOCK_STREAM, "203.0.113.5", 41000);
      ASSERT_TRUE(connect_to(c, "10.20.0.10", 3389)) << std::strerror(errno);
      send_all(c, kUp, 'u');
      shutdown(c.fd, SHUT_WR);
      EXPECT_EQ(recv_to_eof(c), kDown);
    });
    {
      Fd conn(accept(server.fd, nullptr, nullptr));
      ASSERT_GE(conn.fd, 0);
      EXPECT_EQ(recv_to_eof(conn), kUp);
      send_all(conn, kDown, 'd');
    }
    client.get();

    using T = ConntrackEvent::Type;
    const auto ended = [](const std::vector<Captured>& ev) {
      return find(ev, T::ended, 6, "203.0.113.5", 41000, "10.20.0.10", 3389) != nullptr;
    };
    const auto events = collect(*listener, kEndWait, ended);
    ASSERT_TRUE(ended(events)) << "no end within the wait";
    EXPECT_EQ(count_of(events, T::started, 6, "203.0.113.5", 41000, "10.20.0.10", 3389), 1u);
    EXPECT_EQ(count_of(events, T::ended, 6, "203.0.113.5", 41000, "10.20.0.10", 3389), 1u);
    EXPECT_EQ(listener->lost(), 0u);

    const auto& end = find(events, T::ended, 6, "203.0.113.5", 41000, "10.20.0.10", 3389)->event;
    ASSERT_TRUE(end.has_counters);
    // Bytes are counted at the IP layer: payload plus 20 bytes of IPv4 and 20 to 60 of TCP
    // header per packet (the veth may hand conntrack coalesced segments, hence per counted
    // packet). Packets include the handshake and the FINs.
    EXPECT_GE(end.packets_orig, 3u);
    EXPECT_GE(end.packets_reply, 2u);
    EXPECT_GE(end.bytes_orig, kUp + 40 * end.packets_orig);
    EXPECT_LE(end.bytes_orig, kUp + 80 * end.packets_orig);
    EXPECT_GE(end.bytes_reply, kDown + 40 * end.packets_reply);
    EXPECT_LE(end.bytes_reply, kDown + 80 * end.packets_reply);

    // And through the tracker, as the daemon will use it: attributed to the link and window.
    auto parsed = parse_policy_text(kPolicy, "kernel-test.toml");
    ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
    const Policy& policy = *parsed.policy;
    const auto plan = compile(policy, now_ms(), {});
    SessionTracker tracker;
    std::vector<SocEvent> out;
    for (const auto& c : events) {
      if (auto e = tracker.observe(c.event, policy, plan, now_ms())) out.push_back(*e);
    }
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].action, action::kSessionStarted);
    EXPECT_EQ(out[1].action, action::kSessionEnded);
    for (const auto& e : out) {
      EXPECT_EQ(e.link, "rdp");
      EXPECT_EQ(e.provider, "acme");
      EXPECT_EQ(e.labels.at("opened_by"), "window");
      EXPECT_EQ(e.labels.at("window"), "always");
      EXPECT_EQ(e.labels.at("conntrack_id"), std::to_string(end.id));
      ASSERT_TRUE(e.flow);
      EXPECT_EQ(e.flow->direction, FlowDirection::inbound);
    }
    EXPECT_EQ(out[1].labels.at("start_seen"), "true");
    EXPECT_EQ(out[1].packets, end.packets_orig + end.packets_reply);
    EXPECT_EQ(out[1].bytes, end.bytes_orig + end.bytes_reply);
    EXPECT_TRUE(out[1].labels.contains("duration_ms"));
    EXPECT_EQ(tracker.open_sessions(), 0u);
  });
}

// A connection Drawbridge drops is never confirmed by conntrack, so it gives no NEW event: the
// drop happens on input at priority filter-10, and conntrack confirms (and only then reports)
// at the very end of the input hook. This is what makes NEW events exactly the allowed ones.
TEST(KernelSessionTracker, DroppedConnectionGivesNoEvent) {
  in_fresh_netns([] {
    NetnsThread peer;
    ASSERT_TRUE(join_provider(peer));
    enable_conntrack();
    // Drawbridge's own hook and priority (ruleset_plan.h), with one rule: drop tcp/3390.
    ASSERT_TRUE(
        sh("nft add table inet dbtest && "
           "nft add chain inet dbtest input '{ type filter hook input priority filter - 10; "
           "policy accept; }' && "
           "nft add rule inet dbtest input tcp dport 3390 counter drop"));
    auto listener = ConntrackListener::open();
    ASSERT_TRUE(listener.ok()) << listener.error().message;

    // Something listens on both ports, so only the rule stops the first connection.
    Fd dropped_server = tcp_listen("10.20.0.10", 3390);
    Fd allowed_server = tcp_listen("10.20.0.10", 3389);
    peer.run([&] {
      Fd c = bound_socket(SOCK_STREAM, "203.0.113.5", 42000);
      const timeval tv{1, 500'000};  // the SYN and one retransmission, then give up
      setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      EXPECT_FALSE(connect_to(c, "10.20.0.10", 3390)) << "the rule did not drop the connection";
    });
    // Then an allowed one: its start proves events flow and comes after anything the dropped
    // attempt could have caused.
    peer.run([&] {
      Fd c = bound_socket(SOCK_STREAM, "203.0.113.5", 42001);
      EXPECT_TRUE(connect_to(c, "10.20.0.10", 3389)) << std::strerror(errno);
    });

    using T = ConntrackEvent::Type;
    const auto control = [](const std::vector<Captured>& ev) {
      return find(ev, T::started, 6, "203.0.113.5", 42001, "10.20.0.10", 3389) != nullptr;
    };
    auto events = collect(*listener, 10s, control);
    ASSERT_TRUE(control(events)) << "the allowed connection gave no start";
    // A little longer, in case anything about the dropped one were still on its way.
    const auto more = collect(*listener, 1s, [](const auto&) { return false; });
    events.insert(events.end(), more.begin(), more.end());
    for (const auto& c : events) {
      EXPECT_FALSE(c.event.flow.destination_port == 3390)
          << (c.event.type == T::started ? "start" : "end") << " event for a dropped connection";
    }
    // The rule did see (and drop) the SYNs.
    const auto rule = sh_output("nft list chain inet dbtest input");
    const auto at = rule.find("packets ");
    ASSERT_NE(at, std::string::npos) << rule;
    EXPECT_GE(std::atoi(rule.c_str() + at + 8), 2) << rule;
  });
}

// The same through Drawbridge's own ruleset, committed as the daemon commits it: a provider
// connection to a link outside its window is dropped by the table and gives no event, one to an
// open link gives its start.
const char* kTwoLinks = R"(
version = 1
site = "kernel-test"
serial = 10
timezone = "UTC"
[providers.acme]
addresses = ["203.0.113.0/28"]
[[links]]
name = "rdp"
provider = "acme"
hosts = ["10.20.0.10"]
ports = ["tcp/3389"]
[[grants]]
link = "rdp"
ticket = "CHG-9"
from = 2000-01-01T00:00:00Z
until = 2000-01-01T01:00:00Z
[[links]]
name = "vnc"
provider = "acme"
hosts = ["10.20.0.10"]
ports = ["tcp/5900"]
windows = ["always"]
)";

TEST(KernelSessionTracker, DrawbridgeRulesetLetsOnlyOpenLinksStart) {
  in_fresh_netns([] {
    NetnsThread peer;
    ASSERT_TRUE(join_provider(peer));
    auto parsed = parse_policy_text(kTwoLinks, "two-links.toml");
    ASSERT_TRUE(parsed.ok()) << parsed.diagnostics.str();
    const Policy& policy = *parsed.policy;
    const auto plan = compile(policy, now_ms(), {});
    auto sock = NetlinkSocket::open();
    ASSERT_TRUE(sock.ok()) << sock.error().message;
    NftablesWriter writer(std::move(*sock));
    ASSERT_TRUE(writer.replace(plan).ok());
    // The table's reply rules match on conntrack, which is what turns it on in the namespace.
    auto listener = ConntrackListener::open();
    ASSERT_TRUE(listener.ok()) << listener.error().message;

    Fd closed_server = tcp_listen("10.20.0.10", 3389);
    Fd open_server = tcp_listen("10.20.0.10", 5900);
    peer.run([&] {
      Fd c = bound_socket(SOCK_STREAM, "203.0.113.5", 43000);
      const timeval tv{1, 500'000};
      setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      EXPECT_FALSE(connect_to(c, "10.20.0.10", 3389)) << "Drawbridge let a closed link through";
    });
    peer.run([&] {
      Fd c = bound_socket(SOCK_STREAM, "203.0.113.5", 43001);
      EXPECT_TRUE(connect_to(c, "10.20.0.10", 5900)) << std::strerror(errno);
    });
    using T = ConntrackEvent::Type;
    const auto control = [](const std::vector<Captured>& ev) {
      return find(ev, T::started, 6, "203.0.113.5", 43001, "10.20.0.10", 5900) != nullptr;
    };
    auto events = collect(*listener, 10s, control);
    ASSERT_TRUE(control(events)) << "the open link gave no start";
    const auto more = collect(*listener, 1s, [](const auto&) { return false; });
    events.insert(events.end(), more.begin(), more.end());
    SessionTracker tracker;
    std::vector<SocEvent> out;
    for (const auto& c : events) {
      EXPECT_NE(c.event.flow.destination_port, 3389)
          << "an event for a connection Drawbridge dropped";
      if (auto e = tracker.observe(c.event, policy, plan, now_ms())) out.push_back(*e);
    }
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].link, "vnc");
    EXPECT_EQ(out[0].labels.at("window"), "always");
  });
}

// A receive buffer that overflows loses events; the loss is counted, not hidden.
TEST(KernelSessionTracker, OverflowIsCountedAsLost) {
  in_fresh_netns([] {
    ASSERT_TRUE(
        sh("ip link set lo up && ip addr add 192.0.2.10/32 dev lo && "
           "ip addr add 203.0.113.5/32 dev lo"));
    enable_conntrack();
    auto listener = ConntrackListener::open(4096);  // a few events' worth
    ASSERT_TRUE(listener.ok()) << listener.error().message;
    constexpr int kFlows = 200;
    Fd server = bound_socket(SOCK_DGRAM, "192.0.2.10", 3389);
    for (int i = 0; i < kFlows; ++i) {
      Fd c = bound_socket(SOCK_DGRAM, "203.0.113.5", static_cast<std::uint16_t>(44000 + i));
      ASSERT_TRUE(connect_to(c, "192.0.2.10", 3389));
      ASSERT_EQ(send(c.fd, "x", 1, 0), 1);
    }
    std::size_t starts = 0;
    listener->read_available([&](const ConntrackEvent& e) {
      if (e.type == ConntrackEvent::Type::started) ++starts;
    });
    EXPECT_LT(starts, static_cast<std::size_t>(kFlows));
    EXPECT_GE(listener->lost(), 1u);
    EXPECT_EQ(listener->malformed(), 0u);
  });
}

}  // namespace
}  // namespace drawbridge
