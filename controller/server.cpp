#include "controller/server.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "common/log_throttle.h"
#include "common/policy_parser.h"
#include "common/service_notify.h"
#include "common/signing.h"
#include "common/text_encoding.h"
#include "common/wire_protocol.h"
#include "controller/fleet_store.h"
#include "controller/push_rule.h"
#include "controller/soc_tally.h"

namespace drawbridge {

namespace {

// ZMQ_ZAP_ENFORCE_DOMAIN: without it a CURVE server may skip the ZAP handler for sockets without
// a domain and admit any client key. libzmq 4.3 implements it; Debian's header still lists it
// under ZMQ_BUILD_DRAFT_API, hence the number.
constexpr int kZapEnforceDomain = 93;
constexpr const char* kZapDomain = "drawbridge";
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// The most recent SOC events kept per site for `drawbridge-controller events`; the tallies keep
// counting beyond them.
constexpr std::size_t kEventsKeptPerSite = 1000;
constexpr std::size_t kMaxEventsListed = 10000;

FleetTime fleet_now() {
  return std::chrono::time_point_cast<std::chrono::milliseconds>(FleetClock::now());
}

std::int64_t ms(FleetTime t) {
  return t.time_since_epoch().count();
}

nlohmann::json opt_time(const std::optional<FleetTime>& t) {
  return t ? nlohmann::json(ms(*t)) : nlohmann::json(nullptr);
}
nlohmann::json opt_serial(const std::optional<std::uint64_t>& s) {
  return s ? nlohmann::json(*s) : nlohmann::json(nullptr);
}

// A connection as ZeroMQ sees it. Peers are identified by the ZAP User-Id (their CURVE key),
// never by the routing id, which the peer chooses.
struct Peer {
  std::string routing_id;
  std::string key;
  FleetTime last_seen{};
  std::string in_flight_hash;  // a bundle sent and not acknowledged yet
  FleetTime in_flight_at{};
  std::uint64_t bad_messages = 0;
};

class Controller {
 public:
  Controller(ControllerConfig config, std::string config_path)
      : cfg_(std::move(config)),
        config_path_(std::move(config_path)),
        log_(spdlog::stderr_color_mt("controller")) {}

  int run() {
    if (auto ok = prepare_state_dir(); !ok.ok()) return fail(ok.error().message);
    auto store = FleetStore::open(cfg_.database_path());
    if (!store.ok()) return fail(store.error().message);
    store_.emplace(std::move(*store));
    if (auto ok = sync_config(); !ok.ok()) return fail(ok.error().message);
    if (auto ok = load_soc_tallies(); !ok.ok()) return fail(ok.error().message);

    raise_file_limit();
    ctx_.set(zmq::ctxopt::max_sockets, 65536);
    ctx_.set(zmq::ctxopt::io_threads, 2);
    zmq::socket_t zap(ctx_, zmq::socket_type::rep);
    zmq::socket_t router(ctx_, zmq::socket_type::router);
    zmq::socket_t admin(ctx_, zmq::socket_type::rep);
    if (auto ok = bind_sockets(zap, router, admin); !ok.ok()) return fail(ok.error().message);
    router_ = &router;
    // Failed handshakes (a wrong server key, garbage on the port, oversized messages) never reach
    // the application; the socket monitor is where they can be counted.
    zmq::socket_t router_events(ctx_, zmq::socket_type::pair);
    try {
      if (zmq_socket_monitor(router.handle(), "inproc://router-monitor",
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_DISCONNECTED) ==
          0) {
        router_events.set(zmq::sockopt::linger, 0);
        router_events.connect("inproc://router-monitor");
      }
    } catch (const zmq::error_t& e) {
      log_->warn("no socket monitor ({}): failed handshakes will not be counted", e.what());
    }

    sigset_t mask;
    sigemptyset(&mask);
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&mask, s);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    const int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sigfd < 0)
      return fail(std::string("cannot create a signal descriptor: ") + strerror(errno));

    log_->info("serving {} enforcer(s) on {} ({}); admin socket {}", cfg_.enforcers.size(),
               cfg_.listen, cfg_.insecure ? "INSECURE: plain TCP" : "CURVE, ZAP-checked keys",
               cfg_.admin_endpoint());
    service::ready("serving " + std::to_string(cfg_.enforcers.size()) + " enforcer(s) on " +
                   cfg_.listen);
    int code = 0;
    while (true) {
      zmq::pollitem_t items[] = {{zap.handle(), 0, ZMQ_POLLIN, 0},
                                 {router.handle(), 0, ZMQ_POLLIN, 0},
                                 {admin.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, sigfd, ZMQ_POLLIN, 0},
                                 {router_events.handle(), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 5, std::chrono::milliseconds(1000));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        code = fail(std::string("poll failed: ") + e.what());
        break;
      }
      if (items[3].revents & ZMQ_POLLIN) {
        signalfd_siginfo si{};
        if (read(sigfd, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo != SIGHUP) {
            log_->info("stopping on signal {}", si.ssi_signo);
            service::stopping("stopping");
            break;
          }
          service::reloading("reloading " + config_path_);
          reload();
          service::ready("serving " + std::to_string(cfg_.enforcers.size()) + " enforcer(s) on " +
                         cfg_.listen);
        }
      }
      // Drain in bounded batches so that no socket starves the others under a flood.
      for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); ++i) {
        if (!serve_zap(zap)) break;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        const bool batch = store_->begin_batch().ok();
        for (int i = 0; i < 1024; ++i) {
          if (!serve_enforcer(router)) break;
        }
        bool committed = true;
        if (batch) {
          if (auto ok = store_->end_batch(); !ok.ok()) {
            log_->error("{}", ok.error().message);
            committed = false;
          }
        }
        acknowledge_events(committed);
      }
      if (items[2].revents & ZMQ_POLLIN) serve_admin(admin);
      if (items[4].revents & ZMQ_POLLIN) count_connection_events(router_events);
    }
    ::close(sigfd);
    router_ = nullptr;
    return code;
  }

 private:
  int fail(const std::string& message) {
    log_->critical("{}", message);
    return 1;
  }

  Result<void> prepare_state_dir() {
    std::error_code ec;
    std::filesystem::create_directories(cfg_.state_dir, ec);
    if (ec) return make_error("cannot create " + cfg_.state_dir + ": " + ec.message());
    // The admin socket inside it lets anyone who can enter the directory publish bundles.
    ::chmod(cfg_.state_dir.c_str(), 0700);
    const std::string lock = cfg_.state_dir + "/controller.lock";
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) return make_error("cannot open " + lock + ": " + std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return make_error("another controller is running with state directory " + cfg_.state_dir);
    }
    return {};
  }

  // Each connected enforcer costs a descriptor or two; the default soft limit (1024) would cap
  // the fleet, so take what the hard limit allows.
  void raise_file_limit() {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      setrlimit(RLIMIT_NOFILE, &lim);
    }
  }

  Result<void> bind_sockets(zmq::socket_t& zap, zmq::socket_t& router, zmq::socket_t& admin) {
    try {
      for (auto* s : {&zap, &router, &admin}) s->set(zmq::sockopt::linger, 0);
      // The ZAP handler must exist before the first client connects.
      zap.bind(kZapEndpoint);
      router.set(zmq::sockopt::router_mandatory, 1);
      // A restarted controller is redialled by its whole fleet at once; libzmq's default listen
      // backlog (100) drops the rest, which retry after a second (capped by net.core.somaxconn).
      router.set(zmq::sockopt::backlog, 4096);
      router.set(zmq::sockopt::maxmsgsize, kMaxEnforcerMessageBytes);
      router.set(zmq::sockopt::sndhwm, 64);
      // ZMTP heartbeats notice dead TCP peers; the application heartbeats say what they hold.
      router.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(cfg_.heartbeat.count() * 1000));
      router.set(zmq::sockopt::heartbeat_timeout,
                 static_cast<int>(cfg_.stale_after.count() * 1000));
      if (cfg_.insecure) {
        log_->warn(
            "INSECURE: `insecure = true` — the control channel is plain TCP without CURVE; "
            "anyone can connect and read it. Bundles stay signed, but use this only in a lab.");
      } else {
        auto key = CurveSecretKey::load(cfg_.curve_key);
        if (!key.ok()) return make_error(key.error().message);
        router.set(zmq::sockopt::curve_server, 1);
        router.set(zmq::sockopt::curve_secretkey, std::string(key->z85_secret()));
        router.set(zmq::sockopt::zap_domain, kZapDomain);
        const int one = 1;
        if (zmq_setsockopt(router.handle(), kZapEnforceDomain, &one, sizeof one) != 0) {
          return make_error(
              "this libzmq cannot enforce the ZAP domain (ZMQ_ZAP_ENFORCE_DOMAIN); "
              "refusing to serve CURVE without client authentication");
        }
        log_->info("controller public key {}", key->public_key().str());
      }
      router.bind(cfg_.listen);
      admin.bind(cfg_.admin_endpoint());
      ::chmod((cfg_.state_dir + "/admin.sock").c_str(), 0600);
    } catch (const zmq::error_t& e) {
      return make_error(std::string("cannot set up the sockets (") + cfg_.listen + ", " +
                        cfg_.admin_endpoint() + "): " + e.what());
    }
    return {};
  }

  Result<void> sync_config() {
    std::vector<EnforcerRecord> configured;
    known_keys_.clear();
    for (const auto& e : cfg_.enforcers) {
      EnforcerRecord r;
      r.key = e.key.str();
      r.site = e.site;
      r.name = e.name;
      configured.push_back(r);
      known_keys_.insert(r.key);
    }
    if (auto ok = store_->sync_enforcers(configured); !ok.ok()) return ok;
    auto all = store_->enforcers();
    if (!all.ok()) return all.error();
    records_.clear();
    for (auto& r : *all) records_[r.key] = std::move(r);
    return {};
  }

  void reload() {
    auto fresh = load_controller_config(config_path_);
    if (!fresh.ok()) {
      log_->error("SIGHUP: {} is invalid, keeping the running configuration: {}", config_path_,
                  fresh.error().str());
      return;
    }
    if (fresh->listen != cfg_.listen || fresh->curve_key != cfg_.curve_key ||
        fresh->state_dir != cfg_.state_dir || fresh->insecure != cfg_.insecure) {
      log_->warn("SIGHUP: listen, curve_key, state_dir and insecure change only on restart");
    }
    cfg_.enforcers = fresh->enforcers;
    cfg_.heartbeat = fresh->heartbeat;
    cfg_.stale_after = fresh->stale_after;
    if (auto ok = sync_config(); !ok.ok()) {
      log_->error("SIGHUP: {}", ok.error().message);
      return;
    }
    // Connections of keys no longer configured are forgotten; their messages are dropped.
    std::erase_if(peers_, [&](const auto& p) { return !records_.contains(p.second.key); });
    log_->info("SIGHUP: {} enforcer(s) configured", cfg_.enforcers.size());
  }

  void count(const std::string& what, std::uint64_t by = 1) {
    counters_[what] += by;
    if (auto ok = store_->count(what, by); !ok.ok()) log_->error("{}", ok.error().message);
  }

  // --- ZAP (RFC 27): admit exactly the configured CURVE keys -------------------------------
  bool serve_zap(zmq::socket_t& zap) {
    std::vector<zmq::message_t> req;
    try {
      if (!zmq::recv_multipart(zap, std::back_inserter(req), zmq::recv_flags::dontwait)) {
        return false;
      }
    } catch (const zmq::error_t&) {
      return false;
    }
    auto frame = [&](std::size_t i) { return i < req.size() ? req[i].to_string() : ""; };
    const std::string version = frame(0), request_id = frame(1), domain = frame(2),
                      address = frame(3), mechanism = frame(5);
    std::string status = "400", text = "denied", user_id;
    if (version != "1.0") {
      status = "500";
      text = "unsupported ZAP version";
    } else if (domain != kZapDomain) {
      text = "wrong ZAP domain";
    } else if (mechanism != "CURVE" || req.size() < 7 || req[6].size() != 32) {
      text = "CURVE required";
    } else {
      CurvePublicKey key;
      std::memcpy(key.bytes.data(), req[6].data(), 32);
      user_id = key.str();
      if (known_keys_.contains(user_id)) {
        status = "200";
        text = "OK";
      } else {
        text = "unknown enforcer key";
        count("auth_refused");
        if (worth_logging(counters_["auth_refused"])) {
          log_->warn("refused a connection from {}: key {} is not configured ({} refused so far)",
                     address, user_id, counters_["auth_refused"]);
        }
        user_id.clear();
      }
    }
    try {
      std::vector<zmq::message_t> reply;
      reply.emplace_back(std::string("1.0"));
      reply.emplace_back(request_id);
      reply.emplace_back(status);
      reply.emplace_back(text);
      reply.emplace_back(user_id);
      reply.emplace_back();
      zmq::send_multipart(zap, reply);
    } catch (const zmq::error_t& e) {
      log_->error("ZAP reply failed: {}", e.what());
    }
    return true;
  }

  // --- Enforcers -----------------------------------------------------------------------
  bool serve_enforcer(zmq::socket_t& router) {
    std::vector<zmq::message_t> msg;
    try {
      if (!zmq::recv_multipart(router, std::back_inserter(msg), zmq::recv_flags::dontwait)) {
        return false;
      }
    } catch (const zmq::error_t& e) {
      log_->error("receive failed: {}", e.what());
      return false;
    }
    const auto now = fleet_now();
    if (msg.size() != 3) {
      count("malformed_frames");
      if (worth_logging(counters_["malformed_frames"])) {
        log_->warn("dropped a message of {} frames (expected type and body; {} so far)",
                   msg.size() - 1, counters_["malformed_frames"]);
      }
      return true;
    }
    const std::string routing_id = msg[0].to_string();
    std::string user_id;
    if (!cfg_.insecure) {
      const char* uid = zmq_msg_gets(msg[1].handle(), "User-Id");
      user_id = uid ? uid : "";
      if (!records_.contains(user_id)) {
        // Admitted by ZAP under a key since removed from the config (SIGHUP).
        count("unknown_peer");
        return true;
      }
    }
    auto decoded = decode_enforcer_message(msg[1].to_string_view(), msg[2].to_string_view());
    if (!decoded.ok()) {
      Peer& p = peers_[routing_id];
      const std::string who = user_id.empty() ? "peer " + to_hex(routing_id) : describe(user_id);
      count(decoded.error().message.starts_with("unknown message type") ? "unknown_type"
                                                                        : "malformed_messages");
      if (worth_logging(++p.bad_messages)) {
        log_->warn("{}: {} (dropped; {} bad message(s) from it)", who, decoded.error().message,
                   p.bad_messages);
      }
      return true;
    }
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, AckMessage>) {
            on_ack(routing_id, user_id, m.ack, now);
          } else if constexpr (std::is_same_v<T, EventsUpMessage>) {
            on_events(routing_id, user_id, m.events, now);
          } else {
            on_state(routing_id, user_id, m.state, std::is_same_v<T, HelloMessage>, now);
          }
        },
        *decoded);
    return true;
  }

  std::string describe(const std::string& key) const {
    const auto it = records_.find(key);
    if (it == records_.end()) return key;
    return "enforcer " + it->second.name + " (site " + it->second.site + ")";
  }

  void on_state(const std::string& routing_id, std::string key, const EnforcerState& st, bool hello,
                FleetTime now) {
    if (cfg_.insecure) {
      // Without CURVE there is no authenticated identity: the enforcer's word is all there is.
      key = "insecure:" + st.site;
      if (!records_.contains(key)) {
        EnforcerRecord fresh;
        fresh.key = key;
        fresh.site = fresh.name = st.site;
        records_[key] = fresh;
      }
    }
    EnforcerRecord& r = records_[key];
    if (st.site != r.site) {
      count("site_mismatch");
      log_->warn(
          "{} says it is site '{}', but its key is configured for site '{}': it will be "
          "sent site '{}' bundles, which it will refuse",
          describe(key), st.site, r.site, r.site);
    }
    Peer& peer = peers_[routing_id];
    // The same key from a new connection (the enforcer restarted): forget the old one.
    if (peer.key != key) {
      std::erase_if(peers_,
                    [&](const auto& p) { return p.first != routing_id && p.second.key == key; });
      peer.key = key;
      peer.in_flight_hash.clear();
    }
    peer.routing_id = routing_id;
    const bool was_silent = !r.last_seen || now - *r.last_seen > cfg_.stale_after;
    peer.last_seen = now;
    if (hello || was_silent) {
      log_->info("{} connected: serial {}, ruleset {}{}{}", describe(key),
                 st.serial ? std::to_string(*st.serial) : "none",
                 st.ruleset_hash.empty() ? "none" : st.ruleset_hash.substr(0, 12),
                 st.locked_down ? ", LOCKED DOWN by the customer" : "",
                 st.expired ? ", policy EXPIRED" : "");
    }
    // Changes the MSP must notice: the customer pulled the break-glass, or the policy expired
    // and every provider link at that site is now closed.
    if (st.locked_down != r.locked_down) {
      log_->warn("{} {}", describe(key),
                 st.locked_down ? "is LOCKED DOWN by the customer: all provider access is closed"
                                : "is no longer locked down");
    }
    if (st.expired && !r.expired) {
      log_->warn(
          "{}: policy serial {} has EXPIRED: all provider access is closed until a newer "
          "bundle is published",
          describe(key), st.serial ? std::to_string(*st.serial) : "?");
    }
    r.last_seen = now;
    r.applied_serial = st.serial;
    r.applied_bundle_hash = st.bundle_hash;
    r.ruleset_hash = st.ruleset_hash;
    r.version = st.version;
    r.locked_down = st.locked_down;
    r.expired = st.expired;
    save(r);
    if (!push_if_behind(peer, r, now)) {
      ControllerBeat beat;
      if (const auto* desired = desired_bundle(r.site)) beat.desired_serial = desired->serial;
      send(routing_id, encode(ControllerHeartbeat{beat}));
    }
  }

  void on_ack(const std::string& routing_id, std::string key, const BundleAck& ack, FleetTime now) {
    auto peer = peers_.find(routing_id);
    if (cfg_.insecure) {
      if (peer == peers_.end()) {
        count("ack_without_hello");
        return;
      }
      key = peer->second.key;
    }
    EnforcerRecord& r = records_[key];
    r.last_seen = now;
    r.last_ack_at = now;
    r.last_ack = ack_result_name(ack.result);
    r.last_ack_serial = ack.serial;
    // A refused bundle may not say its serial (the enforcer reads it only from a verified
    // policy); the controller knows which bundle it sent.
    if (!r.last_ack_serial) {
      if (const auto* d = desired_bundle(r.site); d != nullptr && d->hash == ack.bundle_hash) {
        r.last_ack_serial = d->serial;
      }
    }
    if (peer != peers_.end()) {
      peer->second.last_seen = now;
      if (peer->second.in_flight_hash == ack.bundle_hash) peer->second.in_flight_hash.clear();
    }
    if (ack.result == AckResult::applied) {
      r.applied_serial = ack.serial;
      r.applied_bundle_hash = ack.bundle_hash;
      r.ruleset_hash = ack.ruleset_hash;
      log_->info("{} applied serial {} (ruleset {})", describe(key),
                 ack.serial ? std::to_string(*ack.serial) : "?", ack.ruleset_hash.substr(0, 12));
      count("acks_applied");
    } else {
      r.last_rejection_at = now;
      r.last_rejection = ack.reason;
      r.rejected_bundle_hash = ack.bundle_hash;
      log_->warn("{} REJECTED bundle {} (serial {}): {}", describe(key),
                 ack.bundle_hash.substr(0, 12), ack.serial ? std::to_string(*ack.serial) : "?",
                 ack.reason);
      count("acks_rejected");
    }
    save(r);
  }

  // --- SOC events upstream ----------------------------------------------------------------
  Result<void> load_soc_tallies() {
    auto all = store_->soc_tallies();
    if (!all.ok()) return all.error();
    soc_.clear();
    for (auto& t : *all) soc_[t.key] = std::move(t);
    return {};
  }

  // Stores what is new, counts it into the enforcer's tally and queues the acknowledgement,
  // which goes out only once the batch holding these writes is committed.
  void on_events(const std::string& routing_id, std::string key, const EventsMessage& m,
                 FleetTime now) {
    if (cfg_.insecure) key = "insecure:" + m.site;
    const auto record = records_.find(key);
    if (record == records_.end()) {
      // Insecure mode knows an enforcer only from its hello; it says hello again on reconnect.
      count("events_without_hello");
      return;
    }
    if (m.site != record->second.site) {
      count("site_mismatch");
      if (worth_logging(counters_["site_mismatch"])) {
        log_->warn("{} sent events for site '{}', but its key is configured for site '{}': dropped",
                   describe(key), m.site, record->second.site);
      }
      return;
    }
    SocTally& tally = soc_[key];
    tally.key = key;
    tally.site = record->second.site;
    if (!tally.stream.empty() && tally.stream != m.stream) {
      log_->info("{} starts a new event stream (its spool was replaced): sequences restart",
                 describe(key));
    }
    std::uint64_t counted = 0, duplicates = 0;
    bool stored_all = true;
    for (const auto& e : m.events) {
      if (!tally_event(tally, m.stream, e)) {
        ++duplicates;
        continue;
      }
      ++counted;
      StoredEvent stored;
      stored.site = tally.site;
      stored.key = key;
      stored.sequence = e.sequence;
      stored.time = FleetTime{std::chrono::milliseconds{e.time_ms}};
      stored.received_at = now;
      stored.kind = e.kind;
      stored.action = e.action;
      stored.json = e.json;
      if (auto ok = store_->add_event(stored, kEventsKeptPerSite); !ok.ok()) {
        log_->error("{}", ok.error().message);
        stored_all = false;
      }
    }
    if (auto ok = store_->save_soc_tally(tally); !ok.ok()) {
      log_->error("{}", ok.error().message);
      stored_all = false;
    }
    if (!stored_all) {
      // Not acknowledged: the enforcer sends them again, and the tally must not count them yet.
      if (auto ok = load_soc_tallies(); !ok.ok()) log_->error("{}", ok.error().message);
      return;
    }
    if (counted > 0) count("events_received", counted);
    if (duplicates > 0) count("events_duplicate", duplicates);
    pending_event_acks_.emplace_back(routing_id, tally.last_sequence);
  }

  // After the batch: acknowledged only what is committed. A failed commit leaves the tallies in
  // memory ahead of the database; they are read back and the enforcers send the events again.
  void acknowledge_events(bool committed) {
    if (pending_event_acks_.empty()) return;
    if (!committed) {
      pending_event_acks_.clear();
      if (auto ok = load_soc_tallies(); !ok.ok()) log_->error("{}", ok.error().message);
      return;
    }
    for (const auto& [routing_id, through] : pending_event_acks_) {
      send(routing_id, encode(EventsAckMessage{EventsAck{through}}));
    }
    pending_event_acks_.clear();
  }

  std::pair<bool, std::string> list_events(const std::string& site, const std::string& limit) {
    std::size_t n = 0;
    try {
      n = std::stoul(limit);
    } catch (const std::exception&) {
      return {false, "the limit must be a number"};
    }
    auto events = store_->recent_events(site, std::min(n, kMaxEventsListed));
    if (!events.ok()) return {false, events.error().message};
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : *events) {
      const auto r = records_.find(e.key);
      auto body = nlohmann::json::parse(e.json, nullptr, false);
      out.push_back({{"site", e.site},
                     {"enforcer", r == records_.end() ? "" : r->second.name},
                     {"key", e.key},
                     {"sequence", e.sequence},
                     {"received_at", ms(e.received_at)},
                     {"event", body.is_discarded() ? nlohmann::json(e.json) : body}});
    }
    return {true, out.dump()};
  }

  nlohmann::json soc_json(const std::string& key) const {
    const auto it = soc_.find(key);
    SocTally t;
    if (it != soc_.end()) t = it->second;
    nlohmann::json last = nullptr;
    if (t.last_violation_at) {
      last = {{"at", ms(*t.last_violation_at)},
              {"source", t.last_violation_source},
              {"reason", t.last_violation_reason},
              {"rule", t.last_violation_rule}};
    }
    return {{"stream", t.stream},
            {"last_sequence", t.last_sequence},
            {"events", t.events},
            {"violations", t.violations},
            {"denied_packets", t.denied_packets},
            {"sessions", t.sessions},
            {"loss_events", t.loss_events},
            {"duplicates", t.duplicates},
            {"last_event_at", opt_time(t.last_event_at)},
            {"last_violation", last}};
  }

  // The site's desired bundle, read from the database once and kept (every heartbeat asks).
  const PublishedBundle* desired_bundle(const std::string& site) {
    auto it = desired_.find(site);
    if (it == desired_.end()) {
      auto d = store_->desired(site);
      if (!d.ok()) {
        log_->error("{}", d.error().message);
        return nullptr;
      }
      it = desired_.emplace(site, std::move(*d)).first;
    }
    return it->second ? &*it->second : nullptr;
  }

  void save(const EnforcerRecord& r) {
    if (auto ok = store_->save_enforcer(r); !ok.ok()) log_->error("{}", ok.error().message);
  }

  // Sends the site's desired bundle when this enforcer does not hold it, has not refused it and
  // is not applying it right now. True when it sent one.
  bool push_if_behind(Peer& peer, const EnforcerRecord& r, FleetTime now) {
    const PublishedBundle* desired = desired_bundle(r.site);
    if (desired == nullptr) return false;
    const PublishedBundle& b = *desired;
    PushInputs in;
    in.desired_hash = b.hash;
    in.desired_serial = b.serial;
    in.desired_forced = forced_.contains(b.hash);
    in.applied_serial = r.applied_serial;
    in.applied_hash = r.applied_bundle_hash;
    in.rejected_hash = r.rejected_bundle_hash;
    in.in_flight_hash = peer.in_flight_hash;
    in.in_flight_for = now - peer.in_flight_at;
    in.heartbeat = cfg_.heartbeat;
    if (!should_push(in)) return false;
    if (!send_bundle(peer.routing_id, b)) return false;
    peer.in_flight_hash = b.hash;
    peer.in_flight_at = now;
    count("bundles_sent");
    return true;
  }

  // A bundle goes to many enforcers: one zmq message holds its bytes and each send shares it
  // (zmq_msg_copy counts references), instead of one copy per enforcer in the send queues.
  bool send_bundle(const std::string& routing_id, const PublishedBundle& b) {
    auto it = bundle_msgs_.find(b.hash);
    if (it == bundle_msgs_.end()) {
      it = bundle_msgs_.emplace(b.hash, zmq::message_t(b.bytes.data(), b.bytes.size())).first;
    }
    try {
      zmq::message_t body;
      body.copy(it->second);
      if (!router_->send(zmq::buffer(routing_id),
                         zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        count("send_dropped");
        return false;
      }
      // With the routing frame accepted, the rest of a multipart message is always queued.
      router_->send(zmq::buffer(std::string_view("bundle")), zmq::send_flags::sndmore);
      router_->send(body, zmq::send_flags::none);
      return true;
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) {
        peers_.erase(routing_id);
      } else {
        log_->error("send failed: {}", e.what());
      }
      count("send_failed");
      return false;
    }
  }

  bool send(const std::string& routing_id, const Frames& f) {
    try {
      std::array<zmq::const_buffer, 3> parts = {zmq::buffer(routing_id), zmq::buffer(f.type),
                                                zmq::buffer(f.body)};
      if (!zmq::send_multipart(*router_, parts, zmq::send_flags::dontwait)) {
        count("send_dropped");
        return false;
      }
      return true;
    } catch (const zmq::error_t& e) {
      // EHOSTUNREACH: the peer is gone (router_mandatory); it reconnects with a hello.
      if (e.num() == EHOSTUNREACH) {
        peers_.erase(routing_id);
      } else {
        log_->error("send failed: {}", e.what());
      }
      count("send_failed");
      return false;
    }
  }

  void count_connection_events(zmq::socket_t& events) {
    for (int i = 0; i < 256; ++i) {
      std::vector<zmq::message_t> parts;
      try {
        if (!zmq::recv_multipart(events, std::back_inserter(parts), zmq::recv_flags::dontwait))
          return;
      } catch (const zmq::error_t&) {
        return;
      }
      if (parts.size() != 2 || parts[0].size() < 2) continue;
      std::uint16_t event = 0;
      std::memcpy(&event, parts[0].data(), sizeof event);
      if (event == ZMQ_EVENT_DISCONNECTED) {
        count("disconnects");
      } else {
        count("handshake_failed");
        if (worth_logging(counters_["handshake_failed"])) {
          log_->warn(
              "a connection failed its CURVE handshake (wrong server key, or not a "
              "Drawbridge enforcer; {} so far)",
              counters_["handshake_failed"]);
        }
      }
    }
  }

  // --- Admin -----------------------------------------------------------------------------
  void serve_admin(zmq::socket_t& admin) {
    std::vector<zmq::message_t> req;
    try {
      if (!zmq::recv_multipart(admin, std::back_inserter(req), zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t&) {
      return;
    }
    std::pair<bool, std::string> reply{false, "empty request"};
    if (!req.empty()) {
      const std::string cmd = req[0].to_string();
      if (cmd == "publish" && (req.size() == 2 || req.size() == 3)) {
        reply = publish(req[1].to_string(), req.size() == 3 && req[2].to_string() == "force");
      } else if (cmd == "status" && req.size() == 1) {
        reply = {true, status_json().dump()};
      } else if (cmd == "events" && req.size() == 3) {
        reply = list_events(req[1].to_string(), req[2].to_string());
      } else {
        reply = {false, "unknown admin request '" + cmd.substr(0, 32) + "'"};
      }
    }
    try {
      std::array<zmq::const_buffer, 2> parts = {
          zmq::buffer(std::string_view(reply.first ? "ok" : "error")), zmq::buffer(reply.second)};
      zmq::send_multipart(admin, parts);
    } catch (const zmq::error_t& e) {
      log_->error("admin reply failed: {}", e.what());
    }
  }

  std::pair<bool, std::string> publish(const std::string& bytes, bool force) {
    auto bundle = Bundle::decode(bytes);
    if (!bundle.ok()) return {false, "not a bundle: " + bundle.error().message};
    if (!bundle->invalid_signers().empty()) {
      return {false, "signature of key " + bundle->invalid_signers().front().id() +
                         " does not verify: the bundle was altered after signing"};
    }
    if (bundle->valid_signers().empty()) return {false, "the bundle is not signed"};
    auto parsed = parse_policy_text(bundle->policy, "bundle");
    if (!parsed.ok()) return {false, parsed.diagnostics.rejection("the bundle's policy")};
    const Policy& policy = *parsed.policy;
    const auto now = fleet_now();
    if (policy.expires && now >= *policy.expires && !force) {
      return {false, "serial " + std::to_string(policy.serial) +
                         " has already expired; enforcers would refuse it"};
    }
    const PublishedBundle* current = desired_bundle(policy.site);
    const std::string hash = bundle_hash(bytes);
    if (current != nullptr && !force) {
      const PublishedBundle& c = *current;
      if (policy.serial < c.serial) {
        return {false, "site " + policy.site + " already has serial " + std::to_string(c.serial) +
                           "; enforcers refuse an older serial as a rollback (use --force to "
                           "send it anyway)"};
      }
      if (policy.serial == c.serial && c.hash != hash) {
        auto prev = Bundle::decode(c.bytes);
        if (!prev.ok() || prev->policy != bundle->policy) {
          return {false, "serial " + std::to_string(c.serial) + " of site " + policy.site +
                             " was published with a different policy; give the new one a "
                             "higher serial"};
        }
        // Same policy, other signatures (a customer co-signed): it replaces the published one.
      }
    }
    if (force) forced_.insert(hash);
    PublishedBundle pb{policy.site, policy.serial, hash, bytes, now};
    if (auto ok = store_->publish(pb); !ok.ok()) return {false, ok.error().message};
    desired_[policy.site] = pb;
    // Only desired bundles are ever sent: drop the shared messages of replaced ones.
    std::erase_if(bundle_msgs_, [&](const auto& m) {
      return std::none_of(desired_.begin(), desired_.end(),
                          [&](const auto& d) { return d.second && d.second->hash == m.first; });
    });
    count("bundles_published");
    // Publishing again is how an operator retries enforcers that refused it.
    std::size_t configured = 0, pushed = 0, connected = 0;
    for (auto& [key, r] : records_) {
      if (r.site != policy.site) continue;
      ++configured;
      if (r.rejected_bundle_hash == hash) r.rejected_bundle_hash.clear();
    }
    const bool batch = store_->begin_batch().ok();
    for (auto& [rid, peer] : peers_) {
      auto it = records_.find(peer.key);
      if (it == records_.end() || it->second.site != policy.site) continue;
      ++connected;
      peer.in_flight_hash.clear();
      if (push_if_behind(peer, it->second, now)) ++pushed;
    }
    if (batch) {
      if (auto ok = store_->end_batch(); !ok.ok()) log_->error("{}", ok.error().message);
    }
    log_->info("published site {} serial {} ({}): sent to {} of {} connected enforcer(s)",
               policy.site, policy.serial, hash.substr(0, 12), pushed, connected);
    std::string text = "published site " + policy.site + " serial " +
                       std::to_string(policy.serial) + " (" + hash.substr(0, 12) + "): sent to " +
                       std::to_string(pushed) + " of " + std::to_string(connected) +
                       " connected enforcer(s)";
    if (configured == 0) text += "; warning: no enforcer of site " + policy.site + " is configured";
    return {true, text};
  }

  nlohmann::json status_json() {
    const auto now = fleet_now();
    nlohmann::json out;
    out["now"] = ms(now);
    out["stale_after_ms"] = std::chrono::milliseconds(cfg_.stale_after).count();
    out["enforcers"] = nlohmann::json::array();
    std::set<std::string> sites;
    for (const auto& [key, r] : records_) sites.insert(r.site);
    std::map<std::string, const PublishedBundle*> desired;
    for (const auto& site : sites) desired[site] = desired_bundle(site);
    std::vector<const EnforcerRecord*> ordered;
    for (const auto& [key, r] : records_) ordered.push_back(&r);
    std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) {
      return std::tie(a->site, a->name) < std::tie(b->site, b->name);
    });
    for (const auto* r : ordered) {
      const auto& d = desired[r->site];
      const char* state = !r->last_seen                             ? "never-seen"
                          : now - *r->last_seen <= cfg_.stale_after ? "connected"
                                                                    : "stale";
      out["enforcers"].push_back({{"site", r->site},
                                  {"name", r->name},
                                  {"key", r->key},
                                  {"state", state},
                                  {"last_seen", opt_time(r->last_seen)},
                                  {"desired_serial", d ? nlohmann::json(d->serial) : nullptr},
                                  {"desired_hash", d ? d->hash : ""},
                                  {"applied_serial", opt_serial(r->applied_serial)},
                                  {"applied_hash", r->applied_bundle_hash},
                                  {"ruleset_hash", r->ruleset_hash},
                                  {"version", r->version},
                                  {"locked_down", r->locked_down},
                                  {"expired", r->expired},
                                  {"last_ack", r->last_ack},
                                  {"last_ack_at", opt_time(r->last_ack_at)},
                                  {"last_ack_serial", opt_serial(r->last_ack_serial)},
                                  {"last_rejection", r->last_rejection},
                                  {"last_rejection_at", opt_time(r->last_rejection_at)},
                                  {"soc", soc_json(r->key)}});
    }
    // Per site: what its enforcers' events add up to (usually one enforcer per site).
    nlohmann::json per_site = nlohmann::json::object();
    for (const auto* r : ordered) {
      const auto soc = soc_json(r->key);
      auto& site = per_site[r->site];
      if (site.is_null()) {
        site = {{"violations", 0},
                {"denied_packets", 0},
                {"sessions", 0},
                {"loss_events", 0},
                {"last_violation", nullptr}};
      }
      for (const char* k : {"violations", "denied_packets", "sessions", "loss_events"}) {
        site[k] = site[k].get<std::uint64_t>() + soc[k].get<std::uint64_t>();
      }
      const auto& last = soc["last_violation"];
      if (last.is_object() &&
          (site["last_violation"].is_null() ||
           last["at"].get<std::int64_t>() > site["last_violation"]["at"].get<std::int64_t>())) {
        site["last_violation"] = last;
      }
    }
    out["sites"] = per_site;
    auto counters = store_->counters();
    out["counters"] = counters.ok() ? nlohmann::json(*counters) : nlohmann::json::object();
    return out;
  }

  ControllerConfig cfg_;
  std::string config_path_;
  std::shared_ptr<spdlog::logger> log_;
  zmq::context_t ctx_;
  zmq::socket_t* router_ = nullptr;
  std::optional<FleetStore> store_;
  int lock_fd_ = -1;
  std::set<std::string> known_keys_;
  std::map<std::string, EnforcerRecord> records_;                  // by key
  std::map<std::string, Peer> peers_;                              // by routing id
  std::set<std::string> forced_;                                   // hashes published with --force
  std::map<std::string, std::optional<PublishedBundle>> desired_;  // by site, from the store
  std::map<std::string, zmq::message_t> bundle_msgs_;              // by hash, shared by sends
  std::map<std::string, std::uint64_t> counters_;  // this run's, for rate-limiting logs
  std::map<std::string, SocTally> soc_;            // by key, as stored
  std::vector<std::pair<std::string, std::uint64_t>> pending_event_acks_;  // routing id, through
};

}  // namespace

int run_controller(const ControllerConfig& config, const std::string& config_path) {
  try {
    return Controller(config, config_path).run();
  } catch (const std::exception& e) {
    spdlog::critical("controller stopped: {}", e.what());
    return 1;
  }
}

}  // namespace drawbridge
