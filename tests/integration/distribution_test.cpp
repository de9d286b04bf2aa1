// Distribution end to end: a real `drawbridge-controller serve` in the msp namespace, real
// enforcer daemons in the gw namespace dialling it over ZeroMQ with CURVE, bundles signed and
// published with the controller's own command line, and what counts checked where it happens:
// `status --json` for what the controller knows, the nftables tables for what the kernel holds,
// and real packets through the gateway for what that means.
//
// The controller listens on 203.0.113.2:7400, an address inside provider acme's prefix: the
// control channel must keep working whatever the policy it carries says about that address.
// Several enforcers share the gw namespace, each with its own table, state directory, trust file
// and CURVE key. Heartbeats are one second, so that nothing here waits long; every wait is on a
// condition with a deadline.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "lab.h"

namespace drawbridge::lab {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using SysClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::sys_seconds;

constexpr const char* kControllerAddress = addr::kAcme;  // inside acme's 203.0.113.0/28
constexpr const char* kControllerEndpoint = "tcp://203.0.113.2:7400";
constexpr int kStaleAfterSeconds = 3;

// --- policies -----------------------------------------------------------------------------------

std::string rfc3339(sys_seconds t) {
  const std::time_t seconds = t.time_since_epoch().count();
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

sys_seconds now_seconds() {
  return std::chrono::floor<std::chrono::seconds>(SysClock::now());
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SysClock::now().time_since_epoch())
      .count();
}

struct LinkSpec {
  std::string name;
  std::vector<std::string> hosts;
  std::vector<std::string> ports;
  std::vector<std::string> windows;
  std::string direction = "inbound";
};

struct GrantSpec {
  std::string link;
  std::string ticket;
  sys_seconds from;
  sys_seconds until;
};

struct PolicySpec {
  std::string site = "a";
  std::uint64_t serial = 1;
  std::vector<LinkSpec> links{};
  std::vector<GrantSpec> grants{};
  std::vector<std::string> guard{"tcp/22", "tcp/5900"};
};

std::string toml_list(const std::vector<std::string>& items) {
  std::string text = "[";
  for (const auto& item : items) {
    if (text.size() > 1) text += ", ";
    text += "\"" + item + "\"";
  }
  return text + "]";
}

std::string to_toml(const PolicySpec& spec) {
  std::ostringstream toml;
  toml << "version = 1\n"
       << "site = \"" << spec.site << "\"\n"
       << "serial = " << spec.serial << "\n"
       << "timezone = \"UTC\"\n\n"
       << "[providers.acme]\n"
       << "addresses = [\"203.0.113.0/28\", \"2001:db8:100::/48\"]\n";
  for (const auto& link : spec.links) {
    toml << "\n[[links]]\n"
         << "name = \"" << link.name << "\"\n"
         << "provider = \"acme\"\n"
         << "direction = \"" << link.direction << "\"\n"
         << "hosts = " << toml_list(link.hosts) << "\n"
         << "ports = " << toml_list(link.ports) << "\n"
         << "windows = " << toml_list(link.windows) << "\n";
  }
  for (const auto& grant : spec.grants) {
    toml << "\n[[grants]]\n"
         << "link = \"" << grant.link << "\"\n"
         << "ticket = \"" << grant.ticket << "\"\n"
         << "from = " << rfc3339(grant.from) << "\n"
         << "until = " << rfc3339(grant.until) << "\n";
  }
  toml << "\n[guard]\n"
       << "ports = " << toml_list(spec.guard) << "\n";
  return toml.str();
}

// acme may use RDP on the first server at any time.
LinkSpec rdp_to(std::vector<std::string> hosts) {
  return {"rdp", std::move(hosts), {"tcp/3389"}, {"always"}};
}

// --- nft listings -------------------------------------------------------------------------------

// A listing made comparable: counters zeroed, `expires` (time left) and timeouts taken out, set
// elements sorted (hash sets list in hash order).
std::string normalise(const std::string& listing) {
  static const std::regex counters(R"(packets \d+ bytes \d+)");
  static const std::regex expires(R"( expires [0-9dhms]+)");
  static const std::regex timeout(R"(timeout [0-9]+[dhms][0-9dhms]*)");
  std::string text = std::regex_replace(listing, counters, "packets 0 bytes 0");
  text = std::regex_replace(text, expires, "");
  text = std::regex_replace(text, timeout, "timeout *");

  std::string sorted;
  std::size_t at = 0;
  for (;;) {
    const auto open = text.find("elements = {", at);
    if (open == std::string::npos) break;
    const auto body = open + std::string_view("elements = {").size();
    const auto close = text.find('}', body);
    if (close == std::string::npos) break;
    std::vector<std::string> elements;
    std::stringstream in(text.substr(body, close - body));
    std::string element;
    while (std::getline(in, element, ',')) {
      std::istringstream words(element);
      std::string word;
      std::string tidy;
      while (words >> word) tidy += (tidy.empty() ? "" : " ") + word;
      if (!tidy.empty()) elements.push_back(tidy);
    }
    std::sort(elements.begin(), elements.end());
    sorted += text.substr(at, body - at) + " ";
    for (std::size_t i = 0; i < elements.size(); ++i) sorted += (i ? ", " : "") + elements[i];
    sorted += " ";
    at = close;
  }
  return sorted + text.substr(at);
}

// "drawbridge site a serial 3 plan …": the gate chain's comment names what the kernel holds.
std::string gate_comment(const std::string& listing) {
  static const std::regex comment(R"re(comment "(drawbridge site [^"]*)")re");
  std::smatch m;
  return std::regex_search(listing, m, comment) ? m[1].str() : std::string();
}

// --- the test's own ZeroMQ peer -----------------------------------------------------------------

// Runs `body` on a thread that has entered network namespace `ns`. setns() changes only the
// calling thread, and threads it starts inherit it: a zmq context whose first socket is made in
// `body` has its I/O thread — where TCP connections are made — in `ns` for good.
void in_network_namespace(const std::string& ns, const std::function<void()>& body) {
  std::exception_ptr error;
  std::thread worker([&] {
    try {
      const std::string path = "/run/netns/" + ns;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error("cannot open " + path);
      const int rc = ::setns(fd, CLONE_NEWNET);
      ::close(fd);
      if (rc != 0) throw std::runtime_error("setns " + path + " failed");
      body();
    } catch (...) {
      error = std::current_exception();
    }
  });
  worker.join();
  if (error) std::rethrow_exception(error);
}

std::string first_word_of(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  if (word.empty()) throw std::runtime_error("cannot read " + path);
  return word;
}

// "curve:<Z85>" / "curve-secret:<Z85>" → the 40 Z85 characters.
std::string z85_of(const std::string& text) {
  const auto colon = text.find(':');
  return colon == std::string::npos ? text : text.substr(colon + 1);
}

#define ASSERT_RAN(result) ASSERT_TRUE((result).ok()) << (result).describe()

// --- the fixture --------------------------------------------------------------------------------

struct EnforcerSetup {
  std::string name;           // its [[enforcer]] name; also names its table, keys and files
  std::string site = "a";     // the site the controller has it under
  std::string trust_site{};   // the site its trust file names; empty: the same as `site`
  bool configured = true;     // its CURVE key is in the controller's [[enforcer]] list
  bool insecure = false;      // plain TCP, no CURVE
  std::string trust_extra{};  // more trust file lines (customer_keys, ceiling)
};

struct Enforcer {
  EnforcerSetup setup;
  std::string table;
  std::string config;
  std::string state_dir;
  std::string curve_public;  // "curve:<Z85>"
  std::optional<Process> process;
};

class DistributionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!running_as_root()) GTEST_SKIP() << "integration tests need root (network namespaces)";
    lab_.emplace();
    dir_ = lab_->temp_dir();
    controller_config_ = dir_ + "/controller.toml";
    controller_state_ = dir_ + "/ctl";
    ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/provider"}));
    ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/controller", "--curve"}));
    provider_key_ = first_word_of(dir_ + "/provider.pub");
    controller_curve_ = first_word_of(dir_ + "/controller.curve.pub");
  }

  void TearDown() override {
    // Stop the processes before the lab goes, and leave their logs in the report on failure.
    if (HasFailure()) std::cerr << logs();
    for (auto& [name, e] : enforcers_) e.process.reset();
    controller_.reset();
  }

  // The controller's command line on the host (publish and status reach the running controller
  // through its admin socket, a Unix socket in its state directory).
  static RunResult ctl(std::vector<std::string> args, Millis timeout = 20s) {
    args.insert(args.begin(), controller_bin());
    return run_host(args, timeout);
  }

  // --- enforcers ---

  Enforcer& add_enforcer(EnforcerSetup setup) {
    const std::string name = setup.name;
    const std::string base = dir_ + "/" + name;
    const auto keygen = ctl({"keygen", "--out", base, "--curve"});
    if (!keygen.ok()) throw std::runtime_error("keygen: " + keygen.describe());
    Enforcer e;
    e.table = "db_" + name;
    e.state_dir = base + "-state";
    e.config = base + "-enforcer.toml";
    e.curve_public = first_word_of(base + ".curve.pub");
    const std::string trust_site = setup.trust_site.empty() ? setup.site : setup.trust_site;
    lab_->write_file(name + "-trust.toml", "site = \"" + trust_site + "\"\nprovider_keys = [\"" +
                                               provider_key_ + "\"]\n" + setup.trust_extra);
    std::ostringstream cfg;
    cfg << "table = \"" << e.table << "\"\n"
        << "state_dir = \"" << e.state_dir << "\"\n"
        << "trust = \"" << base << "-trust.toml\"\n\n"
        << "[controller]\n"
        << "endpoint = \"" << kControllerEndpoint << "\"\n"
        << "heartbeat_seconds = 1\n";
    if (setup.insecure) {
      cfg << "insecure = true\n";
    } else {
      cfg << "server_key = \"" << controller_curve_ << "\"\n"
          << "client_key = \"" << base << ".curve\"\n";
    }
    lab_->write_file(name + "-enforcer.toml", cfg.str());
    e.setup = std::move(setup);
    return enforcers_[name] = std::move(e);
  }

  Enforcer& enforcer(const std::string& name) { return enforcers_.at(name); }

  void start_enforcer(const std::string& name) {
    auto& e = enforcer(name);
    e.process = lab_->spawn_enforcer({"run", "--config", e.config});
  }

  // --- the controller ---

  // `extra` is appended (more [[enforcer]] entries).
  void write_controller_config(bool insecure = false, const std::string& extra = "") {
    std::ostringstream cfg;
    cfg << "listen = \"" << kControllerEndpoint << "\"\n"
        << "state_dir = \"" << controller_state_ << "\"\n"
        << "heartbeat_seconds = 1\n"
        << "stale_after_seconds = " << kStaleAfterSeconds << "\n";
    if (insecure) {
      cfg << "insecure = true\n";
    } else {
      cfg << "curve_key = \"" << dir_ << "/controller.curve\"\n";
    }
    for (const auto& [name, e] : enforcers_) {
      if (!e.setup.configured || e.setup.insecure) continue;
      cfg << "\n[[enforcer]]\nsite = \"" << e.setup.site << "\"\nname = \"" << name
          << "\"\nkey = \"" << e.curve_public << "\"\n";
    }
    cfg << extra;
    lab_->write_file("controller.toml", cfg.str());
  }

  // Starts `serve` in msp and waits until its admin socket answers.
  ::testing::AssertionResult start_controller() {
    controller_ =
        lab_->spawn(lab_->msp(), {controller_bin(), "serve", "--config", controller_config_});
    const auto deadline = SteadyClock::now() + 10s;
    for (;;) {
      if (!controller_->running()) {
        return ::testing::AssertionFailure()
               << "the controller exited: " << controller_->wait(1s).describe();
      }
      if (fs::exists(controller_state_ + "/admin.sock") && status()) {
        return ::testing::AssertionSuccess();
      }
      if (SteadyClock::now() >= deadline) {
        return ::testing::AssertionFailure() << "the controller did not answer within 10 s:\n"
                                             << controller_->err();
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  // `status --json`, or nullopt if it did not answer.
  std::optional<json> status() {
    const auto r = ctl({"status", "--config", controller_config_, "--json"});
    if (!r.ok()) {
      last_status_error_ = r.describe();
      return std::nullopt;
    }
    auto doc = json::parse(r.out, nullptr, false);
    if (doc.is_discarded()) {
      last_status_error_ = "not JSON: " + r.out;
      return std::nullopt;
    }
    last_status_ = doc;
    return doc;
  }

  // `status --json` now; a failure (and an empty object) if the controller does not answer.
  json current_status() {
    auto st = status();
    if (!st) {
      ADD_FAILURE() << "status --json: " << last_status_error_;
      return json::object();
    }
    return *st;
  }

  // The status entry of the enforcer named `name` (null json if none).
  static json entry(const json& st, const std::string& name) {
    for (const auto& e : st.value("enforcers", json::array())) {
      if (e.value("name", "") == name) return e;
    }
    return nullptr;
  }

  static std::uint64_t counter(const json& st, const std::string& name) {
    const auto counters = st.value("counters", json::object());
    return counters.contains(name) ? counters.at(name).get<std::uint64_t>() : 0;
  }

  static bool serial_is(const json& v, std::uint64_t serial) {
    return v.is_number_unsigned() && v.get<std::uint64_t>() == serial;
  }

  // The enforcer holds `serial` as the controller sees it: desired, applied and acknowledged.
  static bool applied(const json& st, const std::string& name, std::uint64_t serial) {
    const json e = entry(st, name);
    return e.is_object() && serial_is(e["desired_serial"], serial) &&
           serial_is(e["applied_serial"], serial) && e.value("last_ack", "") == "applied";
  }

  static bool rejected(const json& st, const std::string& name, const std::string& reason) {
    const json e = entry(st, name);
    return e.is_object() && e.value("last_ack", "") == "rejected" &&
           e.value("last_rejection", "").find(reason) != std::string::npos;
  }

  static bool connected(const json& st, const std::string& name) {
    const json e = entry(st, name);
    return e.is_object() && e.value("state", "") == "connected";
  }

  // Polls `status --json` until `done` holds for it; the failure names what was awaited and
  // shows the last status and every process's stderr.
  ::testing::AssertionResult wait_status(const std::string& what,
                                         const std::function<bool(const json&)>& done,
                                         Millis timeout = 10s) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (auto st = status(); st && done(*st)) return ::testing::AssertionSuccess();
      if (SteadyClock::now() >= deadline) {
        return ::testing::AssertionFailure()
               << "not within " << timeout.count() << " ms: " << what << "\nlast status: "
               << (last_status_.is_null() ? last_status_error_ : last_status_.dump(2));
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  RunResult publish(const std::string& bundle, bool force = false) {
    std::vector<std::string> args{"publish", bundle, "--config", controller_config_};
    if (force) args.push_back("--force");
    return ctl(args);
  }

  // Signs `spec` with the key `key` (provider, customer, stranger) into dir/<name>.bundle.
  std::string sign(const PolicySpec& spec, const std::string& name,
                   const std::string& key = "provider") {
    const auto policy = lab_->write_file(name + ".toml", to_toml(spec));
    const std::string bundle = dir_ + "/" + name + ".bundle";
    const auto r = ctl({"sign", policy, "--key", dir_ + "/" + key, "--out", bundle});
    if (!r.ok()) throw std::runtime_error("sign: " + r.describe());
    return bundle;
  }

  // --- the kernel ---

  std::optional<std::string> table(const std::string& enforcer_name) {
    const auto r = lab_->nft({"list", "table", "inet", enforcer(enforcer_name).table});
    if (!r.ok()) return std::nullopt;
    return r.out;
  }

  std::string kernel_serial_comment(const std::string& enforcer_name) {
    const auto listing = table(enforcer_name);
    return listing ? gate_comment(*listing) : std::string("(no table)");
  }

  static std::string holds(const std::string& site, std::uint64_t serial) {
    return "drawbridge site " + site + " serial " + std::to_string(serial) + " plan ";
  }

  // `drawbridge-enforcer status --json` for an enforcer, in gw (it reads the kernel there).
  json local_status(const std::string& enforcer_name) {
    const auto r = lab_->enforcer({"status", "--config", enforcer(enforcer_name).config, "--json"});
    auto doc = json::parse(r.out, nullptr, false);
    if (doc.is_discarded()) {
      ADD_FAILURE() << "enforcer status --json: " << r.describe();
      return json::object();
    }
    return doc;
  }

  std::string logs() const {
    std::ostringstream out;
    if (controller_) out << "--- controller stderr ---\n" << controller_->err() << "\n";
    for (const auto& [name, e] : enforcers_) {
      if (e.process) out << "--- enforcer " << name << " stderr ---\n" << e.process->err() << "\n";
    }
    return out.str();
  }

  // Starts the controller and the named enforcers and waits until the controller sees them all.
  void start_all(const std::vector<std::string>& names, bool insecure = false,
                 const std::string& extra = "") {
    write_controller_config(insecure, extra);
    ASSERT_TRUE(start_controller());
    for (const auto& n : names) start_enforcer(n);
    ASSERT_TRUE(wait_status("every configured enforcer connected", [&](const json& st) {
      return std::all_of(names.begin(), names.end(), [&](const std::string& n) {
        return !enforcer(n).setup.configured || connected(st, n);
      });
    }));
  }

  std::optional<NamespaceLab> lab_;
  std::string dir_;
  std::string controller_config_;
  std::string controller_state_;
  std::string provider_key_;
  std::string controller_curve_;
  std::map<std::string, Enforcer> enforcers_;
  std::optional<Process> controller_;
  json last_status_;
  std::string last_status_error_;
};

// --- tests --------------------------------------------------------------------------------------

// One publish reaches every enforcer of the site, each applies it to its own table and says so;
// an enforcer of another site is not touched.
TEST_F(DistributionTest, PublishReachesEveryEnforcerOfTheSiteAndIsAcknowledged) {
  add_enforcer({.name = "a1", .site = "a"});
  add_enforcer({.name = "a2", .site = "a"});
  add_enforcer({.name = "b1", .site = "b"});
  ASSERT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "lab broken";
  ASSERT_NO_FATAL_FAILURE(start_all({"a1", "a2", "b1"}));

  const auto bundle = sign({.site = "a", .serial = 5, .links = {rdp_to({addr::kServer})}}, "a5");
  const auto published = publish(bundle);
  ASSERT_RAN(published);
  EXPECT_NE(published.out.find("sent to 2 of 2 connected enforcer(s)"), std::string::npos)
      << published.out;

  ASSERT_TRUE(wait_status("a1 and a2 applied serial 5", [&](const json& st) {
    return applied(st, "a1", 5) && applied(st, "a2", 5);
  }));
  for (const char* name : {"a1", "a2"}) {
    EXPECT_TRUE(kernel_serial_comment(name).starts_with(holds("a", 5)))
        << name << ": " << kernel_serial_comment(name);
    const json e = entry(current_status(), name);
    EXPECT_EQ(e.value("applied_hash", ""), e.value("desired_hash", "")) << e.dump(2);
    EXPECT_EQ(e.value("last_rejection", "x"), "") << e.dump(2);
    EXPECT_TRUE(serial_is(e["last_ack_serial"], 5)) << e.dump(2);
    EXPECT_TRUE(fs::exists(enforcer(name).state_dir + "/accepted.bundle")) << name;
    // The enforcer's own view of the channel.
    const json local = local_status(name);
    const json link = local.value("controller", json::object());
    EXPECT_TRUE(link.value("connected", false)) << local.dump(2);
    EXPECT_EQ(link.value("bundles_applied", 0), 1) << local.dump(2);
    EXPECT_TRUE(serial_is(local["serial"], 5)) << local.dump(2);
  }
  // What serial 5 says, in real packets through the gateway.
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the approved provider";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "an attacker";
  EXPECT_FALSE(lab_->probe(addr::kUnapproved, addr::kServer, "tcp/3389")) << "outside acme's /28";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/3389")) << "an unlinked host";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "a guarded port";

  // Site b: nothing published for it, nothing sent, nothing in its table.
  const json b = entry(current_status(), "b1");
  EXPECT_EQ(b.value("state", ""), "connected") << b.dump(2);
  EXPECT_TRUE(b["desired_serial"].is_null()) << b.dump(2);
  EXPECT_TRUE(b["applied_serial"].is_null()) << b.dump(2);
  EXPECT_EQ(b.value("last_ack", "x"), "") << b.dump(2);
  EXPECT_FALSE(table("b1").has_value()) << "site b's enforcer installed a table";
  EXPECT_FALSE(fs::exists(enforcer("b1").state_dir + "/accepted.bundle"));
  const json b_local = local_status("b1");
  EXPECT_EQ(b_local.value("controller", json::object()).value("bundles_received", -1), 0)
      << b_local.dump(2);
}

// (a) A replayed older serial, pushed with --force, is refused as a rollback; the kernel keeps
// the newer serial exactly as it was.
TEST_F(DistributionTest, ForcedOlderSerialIsRefusedAsRollbackAndTheKernelKeepsTheNewer) {
  add_enforcer({.name = "a1"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1"}));
  const auto v2 = sign({.serial = 2, .links = {rdp_to({addr::kServer})}}, "v2");
  const auto v3 = sign({.serial = 3, .links = {rdp_to({addr::kServer, addr::kServer3})}}, "v3");
  ASSERT_RAN(publish(v2));
  ASSERT_TRUE(
      wait_status("serial 2 applied", [&](const json& st) { return applied(st, "a1", 2); }));
  ASSERT_RAN(publish(v3));
  ASSERT_TRUE(
      wait_status("serial 3 applied", [&](const json& st) { return applied(st, "a1", 3); }));
  const auto before = table("a1");
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(gate_comment(*before).starts_with(holds("a", 3))) << *before;

  const auto refused_publish = publish(v2);
  EXPECT_EQ(refused_publish.exit_code, 1)
      << "publish of an older serial without --force: " << refused_publish.describe();
  EXPECT_NE(refused_publish.err.find("rollback"), std::string::npos) << refused_publish.err;
  ASSERT_RAN(publish(v2, /*force=*/true));
  ASSERT_TRUE(wait_status("the forced serial 2 rejected as a rollback", [&](const json& st) {
    return rejected(st, "a1", "serial 2 is not newer than the last accepted serial 3");
  }));
  const json e = entry(current_status(), "a1");
  EXPECT_NE(e.value("last_rejection", "").find("rollback"), std::string::npos) << e.dump(2);
  EXPECT_TRUE(serial_is(e["desired_serial"], 2)) << e.dump(2);
  EXPECT_TRUE(serial_is(e["applied_serial"], 3)) << e.dump(2);
  EXPECT_TRUE(serial_is(e["last_ack_serial"], 2))
      << "the refused serial is not named: " << e.dump(2);
  EXPECT_FALSE(e["last_rejection_at"].is_null()) << e.dump(2);

  const auto after = table("a1");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(gate_comment(*after), gate_comment(*before));
  EXPECT_EQ(normalise(*after), normalise(*before)) << "a refused bundle changed the kernel";
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389")) << "serial 3 not enforced";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer3, "tcp/3389"));
  EXPECT_NE(enforcer("a1").process->err().find("not newer than the last accepted serial 3"),
            std::string::npos);
}

// (b) An enforcer whose key the controller has under site a, but whose trust file says site x:
// it is sent site a's bundles and refuses them as another site's.
TEST_F(DistributionTest, BundleForAnotherSiteIsRefusedAndReported) {
  add_enforcer({.name = "a1"});
  add_enforcer({.name = "x1", .site = "a", .trust_site = "x"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1", "x1"}));
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "site-a-1")));

  ASSERT_TRUE(wait_status("a1 applies, x1 refuses", [&](const json& st) {
    return applied(st, "a1", 1) && rejected(st, "x1", "it is for site 'a', this enforcer is 'x'");
  }));
  const auto st = current_status();
  EXPECT_GE(counter(st, "site_mismatch"), 1u) << st.dump(2);
  EXPECT_GE(counter(st, "acks_rejected"), 1u) << st.dump(2);
  EXPECT_TRUE(entry(st, "x1")["applied_serial"].is_null()) << st.dump(2);
  EXPECT_FALSE(table("x1").has_value()) << "the refused bundle reached x1's kernel table";
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 1)));
  EXPECT_NE(controller_->err().find("says it is site 'x'"), std::string::npos)
      << controller_->err();
}

// (c) A bundle signed by a key the trust file does not list is refused; the kernel keeps what it
// had.
TEST_F(DistributionTest, BundleSignedByAnUntrustedKeyIsRefusedAndReported) {
  add_enforcer({.name = "a1"});
  ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/stranger"}));
  ASSERT_NO_FATAL_FAILURE(start_all({"a1"}));
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "v1")));
  ASSERT_TRUE(
      wait_status("serial 1 applied", [&](const json& st) { return applied(st, "a1", 1); }));
  const auto before = table("a1");
  ASSERT_TRUE(before.has_value());

  // Everything opened, signed by someone the gateway does not trust.
  ASSERT_RAN(publish(sign({.serial = 2,
                           .links = {rdp_to({addr::kServer, addr::kServer2, addr::kServer3})},
                           .guard = {}},
                          "stranger2", "stranger")));
  ASSERT_TRUE(wait_status("the stranger's bundle refused", [&](const json& st) {
    return rejected(st, "a1", "no valid signature is from a trusted key");
  }));
  const json e = entry(current_status(), "a1");
  EXPECT_TRUE(serial_is(e["desired_serial"], 2)) << e.dump(2);
  EXPECT_TRUE(serial_is(e["applied_serial"], 1)) << e.dump(2);
  const auto after = table("a1");
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(gate_comment(*after).starts_with(holds("a", 1))) << gate_comment(*after);
  EXPECT_EQ(normalise(*after), normalise(*before)) << "a refused bundle changed the kernel";
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer2, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22"));
}

// (d) The customer's ceiling refuses a wider provider-only bundle; once the customer co-signs the
// same bundle and it is published again, it is applied.
TEST_F(DistributionTest, CeilingRefusesProviderOnlyBundleUntilTheCustomerCoSigns) {
  ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/customer"}));
  const std::string customer = first_word_of(dir_ + "/customer.pub");
  lab_->write_file("a1-ceiling.toml", to_toml({.serial = 1, .links = {rdp_to({addr::kServer})}}));
  add_enforcer(
      {.name = "a1",
       .trust_extra = "customer_keys = [\"" + customer + "\"]\nceiling = \"a1-ceiling.toml\"\n"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1"}));

  const auto wider = sign({.serial = 2, .links = {rdp_to({addr::kServer, addr::kServer3})}}, "w2");
  ASSERT_RAN(publish(wider));
  ASSERT_TRUE(wait_status("the provider-only bundle refused by the ceiling", [&](const json& st) {
    return rejected(st, "a1", "exceeds the customer's ceiling");
  }));
  const json e = entry(current_status(), "a1");
  EXPECT_NE(e.value("last_rejection", "").find(addr::kServer3), std::string::npos) << e.dump(2);
  EXPECT_TRUE(e["applied_serial"].is_null()) << e.dump(2);
  EXPECT_FALSE(table("a1").has_value()) << "a refused bundle installed a table";

  ASSERT_RAN(ctl({"sign", wider, "--key", dir_ + "/customer"}));  // co-signs in place
  const auto republished = publish(wider);
  ASSERT_RAN(republished);
  ASSERT_TRUE(wait_status("the co-signed bundle applied",
                          [&](const json& st) { return applied(st, "a1", 2); }));
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 2)));
  EXPECT_NE(enforcer("a1").process->err().find("signed by customer key"), std::string::npos)
      << enforcer("a1").process->err();
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer3, "tcp/3389"));
}

// A CURVE key the controller was not configured with is refused at the handshake: that enforcer
// never gets a bundle, and both sides say so.
TEST_F(DistributionTest, UnknownCurveKeyIsRefusedAndNeverGetsABundle) {
  add_enforcer({.name = "a1"});
  add_enforcer({.name = "rogue", .site = "a", .configured = false});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1", "rogue"}));
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "v1")));
  ASSERT_TRUE(wait_status("a1 applied and the rogue key refused", [&](const json& st) {
    return applied(st, "a1", 1) && counter(st, "auth_refused") >= 1;
  }));
  const auto st = current_status();
  EXPECT_TRUE(entry(st, "rogue").is_null()) << st.dump(2);
  for (const auto& e : st["enforcers"]) {
    EXPECT_NE(e.value("key", ""), enforcer("rogue").curve_public) << st.dump(2);
  }
  EXPECT_FALSE(table("rogue").has_value()) << "the unknown key got a bundle into the kernel";
  EXPECT_FALSE(fs::exists(enforcer("rogue").state_dir + "/accepted.bundle"));
  const std::string refused = "key " + enforcer("rogue").curve_public + " is not configured";
  EXPECT_NE(controller_->err().find(refused), std::string::npos) << controller_->err();
  // The enforcer hears why: a wrong key in the config is the operator's to fix.
  const auto deadline = SteadyClock::now() + 5s;
  while (enforcer("rogue").process->err().find("refused this enforcer's CURVE key") ==
             std::string::npos &&
         SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(enforcer("rogue").process->err().find("refused this enforcer's CURVE key"),
            std::string::npos)
      << enforcer("rogue").process->err();
  EXPECT_TRUE(enforcer("rogue").process->running()) << "the refused enforcer exited";
  const json local = local_status("rogue");
  const json link = local.value("controller", json::object());
  EXPECT_GE(link.value("refused_by_controller", 0), 1) << local.dump(2);
  EXPECT_EQ(link.value("bundles_received", -1), 0) << local.dump(2);
  EXPECT_FALSE(link.value("connected", true)) << local.dump(2);
}

// The controller dies: nothing can be published. It comes back on the same state directory; the
// enforcers reconnect by themselves, report what they hold, and take the next serial.
TEST_F(DistributionTest, EnforcersReconnectToARestartedControllerAndConverge) {
  add_enforcer({.name = "a1"});
  add_enforcer({.name = "a2"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1", "a2"}));
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "v1")));
  ASSERT_TRUE(wait_status("serial 1 applied by both", [&](const json& st) {
    return applied(st, "a1", 1) && applied(st, "a2", 1);
  }));

  controller_->kill(SIGKILL);
  const auto killed = controller_->wait(5s);
  ASSERT_EQ(killed.signal, SIGKILL) << killed.describe();
  const auto v2 = sign({.serial = 2, .links = {rdp_to({addr::kServer, addr::kServer3})}}, "v2");
  const auto impossible = publish(v2);
  EXPECT_NE(impossible.exit_code, 0)
      << "published with the controller dead: " << impossible.describe();
  EXPECT_FALSE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389")) << "serial 2 got through";
  for (const char* name : {"a1", "a2"}) {
    EXPECT_TRUE(enforcer(name).process->running()) << name << " exited with the controller";
  }

  const std::int64_t restarted_at = now_ms();
  ASSERT_TRUE(start_controller());
  ASSERT_TRUE(wait_status(
      "both enforcers reconnected by themselves, holding serial 1",
      [&](const json& st) {
        for (const char* n : {"a1", "a2"}) {
          const json e = entry(st, n);
          if (!connected(st, n) || !e["last_seen"].is_number() ||
              e["last_seen"].get<std::int64_t>() < restarted_at ||
              !serial_is(e["applied_serial"], 1)) {
            return false;
          }
        }
        return true;
      },
      30s));
  const auto published = publish(v2);
  ASSERT_RAN(published);
  ASSERT_TRUE(wait_status("serial 2 applied by both after the restart", [&](const json& st) {
    return applied(st, "a1", 2) && applied(st, "a2", 2);
  }));
  for (const char* name : {"a1", "a2"}) {
    EXPECT_TRUE(kernel_serial_comment(name).starts_with(holds("a", 2)))
        << name << ": " << kernel_serial_comment(name);
  }
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer3, "tcp/3389"));
}

// With the controller gone, an enforcer killed and started again protects from the bundle it
// accepted last, says the controller is not there, and keeps running.
TEST_F(DistributionTest, EnforcerRestartedWithTheControllerDownProtectsFromItsStoredBundle) {
  add_enforcer({.name = "a1"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1"}));
  ASSERT_TRUE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "lab broken";
  ASSERT_RAN(publish(sign({.serial = 7, .links = {rdp_to({addr::kServer})}}, "v7")));
  ASSERT_TRUE(
      wait_status("serial 7 applied", [&](const json& st) { return applied(st, "a1", 7); }));

  controller_->kill(SIGTERM);
  ASSERT_EQ(controller_->wait(10s).exit_code, 0) << controller_->err();
  auto& a1 = enforcer("a1");
  a1.process->kill(SIGKILL);
  (void)a1.process->wait(5s);
  const std::string first_run = a1.process->err();

  start_enforcer("a1");
  const auto started = SteadyClock::now();
  // It starts from the stored bundle and re-establishes (here: keeps) serial 7 in the kernel.
  const auto deadline = started + 5s;
  while (a1.process->err().find("enforcing the bundle accepted last") == std::string::npos &&
         a1.process->running() && SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(a1.process->err().find("enforcing the bundle accepted last"), std::string::npos)
      << a1.process->err();
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 7)))
      << kernel_serial_comment("a1");
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389")) << "the approved provider";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389")) << "an attacker";
  EXPECT_FALSE(lab_->probe(addr::kUnapproved, addr::kServer, "tcp/3389")) << "outside acme's /28";
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/22")) << "a guarded port";

  // Several heartbeats without a controller: it says so, and it does not give up.
  static const std::regex unreachable(
      R"(controller[^\n]*(unreachable|silent|not answer|no answer|cannot reach|not reachable))",
      std::regex::icase);
  const auto said_deadline = started + 8s;
  while (!std::regex_search(a1.process->err(), unreachable) && a1.process->running() &&
         SteadyClock::now() < said_deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(std::regex_search(a1.process->err(), unreachable))
      << "no word that the controller is unreachable after "
      << std::chrono::duration_cast<Millis>(SteadyClock::now() - started).count()
      << " ms; stderr:\n"
      << a1.process->err();
  EXPECT_TRUE(a1.process->running()) << a1.process->wait(1s).describe();
  const json local = local_status("a1");
  EXPECT_TRUE(local.value("table_present", false) && serial_is(local["serial"], 7))
      << local.dump(2);
  EXPECT_FALSE(local.value("controller", json::object()).value("connected", true)) << local.dump(2);
}

// A silent enforcer is shown as stale once stale_after_seconds have passed without a word.
TEST_F(DistributionTest, KilledEnforcerShowsAsStaleAfterStaleAfterSeconds) {
  add_enforcer({.name = "a1"});
  add_enforcer({.name = "a2"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1", "a2"}));
  const auto st = current_status();
  EXPECT_EQ(st.value("stale_after_ms", 0), kStaleAfterSeconds * 1000) << st.dump(2);
  const std::int64_t last_seen_before = entry(st, "a1")["last_seen"].get<std::int64_t>();

  enforcer("a1").process->kill(SIGKILL);
  (void)enforcer("a1").process->wait(5s);
  const auto killed = SteadyClock::now();
  ASSERT_TRUE(wait_status(
      "a1 stale", [&](const json& s) { return entry(s, "a1").value("state", "") == "stale"; },
      Millis((kStaleAfterSeconds + 5) * 1000)));
  const auto took = std::chrono::duration_cast<Millis>(SteadyClock::now() - killed);
  // Its last word came at most one heartbeat before the kill (and status is polled every 0.1 s).
  EXPECT_GE(took.count(), kStaleAfterSeconds * 1000 - 1000 - 300)
      << "stale too early: " << took.count() << " ms after the kill";
  const json after = current_status();
  const json a1 = entry(after, "a1");
  EXPECT_GE(a1["last_seen"].get<std::int64_t>(), last_seen_before);
  EXPECT_GT(after["now"].get<std::int64_t>() - a1["last_seen"].get<std::int64_t>(),
            kStaleAfterSeconds * 1000)
      << after.dump(2);
  EXPECT_TRUE(connected(after, "a2")) << "the live enforcer went stale too: " << after.dump(2);
}

// The controller sits on an address inside the provider's prefix, and the policy it delivers
// closes that address and port to everything else (a closed outbound link and a guarded port).
// The gateway's own control channel keeps working: a second publish is applied and acknowledged,
// and a fresh connection after a controller restart works too.
TEST_F(DistributionTest, ControlChannelIsNeverCutByThePolicyItCarries) {
  add_enforcer({.name = "a1"});
  ASSERT_NO_FATAL_FAILURE(start_all({"a1"}));
  // Before: the LAN reaches the controller's port (a TCP handshake is all this checks).
  const std::vector<std::string> connect_from_lan{
      "timeout", "2", "bash", "-c",
      std::string("exec 3<>/dev/tcp/") + kControllerAddress + "/7400"};
  const auto open_before = lab_->run(lab_->lan(), connect_from_lan);
  ASSERT_TRUE(open_before.ok()) << "lab broken: " << open_before.describe();

  const auto now = now_seconds();
  LinkSpec control{"ctl", {addr::kServer}, {"tcp/7400"}, {}, "outbound"};
  const auto policy = [&](std::uint64_t serial) {
    return PolicySpec{.serial = serial,
                      .links = {rdp_to({addr::kServer}), control},
                      .grants = {{"ctl", "CHG-LATER", now + 24h, now + 25h}},  // closed now
                      .guard = {"tcp/22", "tcp/5900", "tcp/7400"}};
  };
  ASSERT_RAN(publish(sign(policy(1), "v1")));
  ASSERT_TRUE(
      wait_status("serial 1 applied", [&](const json& st) { return applied(st, "a1", 1); }));
  const auto listing = table("a1");
  ASSERT_TRUE(listing.has_value());
  EXPECT_NE(listing->find("7400"), std::string::npos) << *listing;
  const auto closed = lab_->run(lab_->lan(), connect_from_lan);
  EXPECT_FALSE(closed.ok()) << "the policy does not close the controller's port: "
                            << closed.describe();

  // A few heartbeats over the guarded channel, then the next serial.
  const std::int64_t applied_at = now_ms();
  ASSERT_TRUE(wait_status("heartbeats still arrive", [&](const json& st) {
    const json e = entry(st, "a1");
    return connected(st, "a1") && e["last_seen"].get<std::int64_t>() >= applied_at + 2000;
  }));
  ASSERT_RAN(publish(sign(policy(2), "v2")));
  ASSERT_TRUE(wait_status("serial 2 applied over the guarded channel",
                          [&](const json& st) { return applied(st, "a1", 2); }));
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 2)));

  // A new connection (SYN from the gateway, replies from a provider address on a guarded port).
  controller_->kill(SIGTERM);
  ASSERT_EQ(controller_->wait(10s).exit_code, 0) << controller_->err();
  const std::int64_t restarted_at = now_ms();
  ASSERT_TRUE(start_controller());
  ASSERT_TRUE(wait_status(
      "a1 reconnected through its own policy",
      [&](const json& st) {
        const json e = entry(st, "a1");
        return connected(st, "a1") && e["last_seen"].get<std::int64_t>() >= restarted_at;
      },
      20s));
  ASSERT_RAN(publish(sign(policy(3), "v3")));
  ASSERT_TRUE(wait_status("serial 3 applied over a fresh connection",
                          [&](const json& st) { return applied(st, "a1", 3); }));
  EXPECT_FALSE(lab_->run(lab_->lan(), connect_from_lan).ok());
}

// `insecure = true` on both sides: plain TCP works, and both sides say loudly that it is insecure.
TEST_F(DistributionTest, InsecureModeWorksAndBothSidesWarnLoudly) {
  add_enforcer({.name = "a1", .insecure = true});
  ASSERT_NO_FATAL_FAILURE(start_all({}, /*insecure=*/true));
  start_enforcer("a1");
  // Without CURVE the controller knows the enforcer only by the site it claims.
  const auto site_a_connected = [&](const json& st) {
    for (const auto& e : st["enforcers"]) {
      if (e.value("site", "") == "a" && e.value("state", "") == "connected") return true;
    }
    return false;
  };
  ASSERT_TRUE(wait_status("the insecure enforcer connected", site_a_connected));
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "v1")));
  ASSERT_TRUE(wait_status("serial 1 applied over plain TCP", [&](const json& st) {
    for (const auto& e : st["enforcers"]) {
      if (e.value("site", "") == "a" && serial_is(e["applied_serial"], 1) &&
          e.value("last_ack", "") == "applied") {
        return true;
      }
    }
    return false;
  }));
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 1)));
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389"));
  EXPECT_NE(controller_->err().find("INSECURE"), std::string::npos) << controller_->err();
  EXPECT_NE(enforcer("a1").process->err().find("INSECURE"), std::string::npos)
      << enforcer("a1").process->err();
}

// Garbage from an authenticated peer: wrong frame counts, unknown types, bad JSON and a message
// over 64 KiB. Each is counted, the controller keeps serving, and a real enforcer connected at
// the same time still gets a bundle applied.
TEST_F(DistributionTest, BadInputOnTheWireIsCountedAndHarmsNoOne) {
  add_enforcer({.name = "a1"});
  ASSERT_RAN(ctl({"keygen", "--out", dir_ + "/noisy", "--curve"}));
  const std::string noisy_public = first_word_of(dir_ + "/noisy.curve.pub");
  const std::string noisy_secret = first_word_of(dir_ + "/noisy.curve");
  ASSERT_NO_FATAL_FAILURE(start_all(
      {"a1"}, false,
      "\n[[enforcer]]\nsite = \"z\"\nname = \"noisy\"\nkey = \"" + noisy_public + "\"\n"));
  const json base = current_status();

  // The test's own DEALER, in gw like the enforcers, with a configured CURVE key.
  zmq::context_t ctx;
  std::optional<zmq::socket_t> dealer;
  in_network_namespace(lab_->gw(), [&] {
    dealer.emplace(ctx, zmq::socket_type::dealer);
    dealer->set(zmq::sockopt::linger, 0);
    dealer->set(zmq::sockopt::curve_serverkey, z85_of(controller_curve_));
    dealer->set(zmq::sockopt::curve_publickey, z85_of(noisy_public));
    dealer->set(zmq::sockopt::curve_secretkey, z85_of(noisy_secret));
    dealer->connect(kControllerEndpoint);
  });
  const auto send = [&](const std::vector<std::string>& frames) {
    std::vector<zmq::const_buffer> parts;
    for (const auto& f : frames) parts.push_back(zmq::buffer(f));
    ASSERT_TRUE(zmq::send_multipart(*dealer, parts)) << "could not queue " << frames.size();
  };
  send({"hello"});                                  // one frame
  send({"heartbeat", "{}", "an extra frame"});      // three frames
  send({"launch", "{}"});                           // unknown type
  send({"hello", "{\"protocol\": 1, \"site\": "});  // not JSON
  send({"heartbeat", "{\"protocol\": \"one\"}"});   // JSON of the wrong shape
  send({"ack", "[1, 2, 3]"});                       // not an object
  ASSERT_TRUE(wait_status("every bad message counted", [&](const json& st) {
    return counter(st, "malformed_frames") >= counter(base, "malformed_frames") + 2 &&
           counter(st, "unknown_type") >= counter(base, "unknown_type") + 1 &&
           counter(st, "malformed_messages") >= counter(base, "malformed_messages") + 3;
  }));
  const json counted = current_status();
  EXPECT_EQ(entry(counted, "noisy").value("state", ""), "never-seen") << counted.dump(2);

  // Over 64 KiB: libzmq refuses it before it is read, and drops the connection.
  send({"hello", std::string(70 * 1024, 'x')});
  ASSERT_TRUE(wait_status("the oversized message dropped the connection", [&](const json& st) {
    return counter(st, "disconnects") >= counter(counted, "disconnects") + 1;
  }));
  ASSERT_TRUE(controller_->running()) << controller_->wait(1s).describe();
  EXPECT_NE(controller_->err().find("unknown message type"), std::string::npos)
      << controller_->err();

  // Meanwhile the real enforcer was never disturbed, and still takes a publish.
  ASSERT_RAN(publish(sign({.serial = 1, .links = {rdp_to({addr::kServer})}}, "v1")));
  ASSERT_TRUE(wait_status("serial 1 applied next to the noise",
                          [&](const json& st) { return applied(st, "a1", 1); }));
  EXPECT_TRUE(kernel_serial_comment("a1").starts_with(holds("a", 1)));
  EXPECT_TRUE(lab_->probe(addr::kAcme, addr::kServer, "tcp/3389"));
  EXPECT_FALSE(lab_->probe(addr::kAttacker, addr::kServer, "tcp/3389"));
  const json end = current_status();
  EXPECT_TRUE(connected(end, "a1")) << end.dump(2);
  EXPECT_TRUE(controller_->running());
  dealer.reset();
}

}  // namespace
}  // namespace drawbridge::lab
