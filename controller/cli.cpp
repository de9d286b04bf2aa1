#include "controller/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/atomic_file.h"
#include "common/command_line.h"
#include "common/curve_keys.h"
#include "common/policy_parser.h"
#include "common/signing.h"
#include "common/trust.h"
#include "controller/fleet_commands.h"
#include "controller/verdict.h"

namespace drawbridge {

namespace {

constexpr int kOk = kExitOk, kFailed = kExitFailed, kUsage = kExitUsage;
constexpr std::string_view kBundlePrefix = "drawbridge-bundle 1\n";
// A bundle is the policy plus a header of at most kMaxSignatures short lines.
constexpr std::size_t kMaxBundleBytes = kMaxPolicyBytes + 64 * 1024;

int fail(const std::string& message) {
  std::cerr << message << "\n";
  return kFailed;
}

// Reads a whole file, refusing anything larger than `limit` (checked while reading, so a huge
// or growing file cannot exhaust memory).
Result<std::string> read_file(const std::string& path, std::size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read " + path + ": " + std::strerror(errno));
  std::string data;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<std::size_t>(in.gcount()));
    if (data.size() > limit) {
      return make_error(path + " is larger than " + std::to_string(limit) + " bytes");
    }
  }
  if (in.bad()) return make_error("cannot read " + path);
  return data;
}

std::string signer_list(const Bundle& b) {
  std::string out;
  for (const auto& s : b.signatures) out += (out.empty() ? "" : ", ") + s.signer.id();
  return out;
}

int cmd_keygen(const std::string& out, bool curve) {
  const std::string curve_out = out + ".curve";
  if (curve) {
    // All four files or none: refuse before writing the first if any of them exists.
    for (const auto& p : {out, out + ".pub", curve_out, curve_out + ".pub"}) {
      std::error_code ec;
      if (std::filesystem::exists(std::filesystem::symlink_status(p, ec))) {
        return fail(p + " already exists; refusing to overwrite it");
      }
    }
  }
  const auto key = SecretKey::generate();
  if (auto saved = key.save(out); !saved) return fail(saved.error().str());
  std::optional<CurveSecretKey> curve_key;
  if (curve) {
    curve_key = CurveSecretKey::generate();
    if (auto saved = curve_key->save(curve_out); !saved) {
      ::unlink(out.c_str());  // created by us just now (never overwritten): no half pair left
      ::unlink((out + ".pub").c_str());
      return fail(saved.error().str());
    }
  }
  const auto pub = key.public_key();
  std::cout << "public key: " << pub.str() << "\n"
            << "key id:     " << pub.id() << "\n"
            << "secret key written to " << out << " (mode 0600), public key to " << out << ".pub\n";
  if (curve_key) {
    std::cout << "curve key:  " << curve_key->public_key().str() << "\n"
              << "CURVE secret key written to " << curve_out << " (mode 0600), public key to "
              << curve_out << ".pub\n";
  }
  return kOk;
}

int cmd_sign(const std::string& input, const std::string& key_path, std::string out) {
  auto key = SecretKey::load(key_path);
  if (!key) return fail(key.error().str());
  auto data = read_file(input, kMaxBundleBytes);
  if (!data) return fail(data.error().str());

  Bundle bundle;
  const bool cosign = data->starts_with(kBundlePrefix);
  if (cosign) {
    auto decoded = Bundle::decode(*data);
    if (!decoded) return fail(input + ": " + decoded.error().message);
    bundle = std::move(*decoded);
    // Adding a good signature to a tampered bundle would only make it look endorsed.
    if (const auto bad = bundle.invalid_signers(); !bad.empty()) {
      return fail(input + ": the signature by key " + bad.front().id() + " (" + bad.front().str() +
                  ") does not verify; refusing to co-sign");
    }
    const auto signer = key->public_key();
    const bool present = std::any_of(bundle.signatures.begin(), bundle.signatures.end(),
                                     [&](const auto& s) { return s.signer == signer; });
    if (!present && bundle.signatures.size() >= kMaxSignatures) {
      return fail(input + ": already has the maximum of " + std::to_string(kMaxSignatures) +
                  " signatures");
    }
    if (out.empty()) out = input;
  } else {
    // Signing is over bytes: the policy is checked for content by the enforcer, after it has
    // verified the signatures. Here only what the bundle format itself requires.
    if (data->empty()) return fail(input + ": the policy is empty");
    if (data->size() > kMaxPolicyBytes) {
      return fail(input + ": the policy is larger than " + std::to_string(kMaxPolicyBytes) +
                  " bytes");
    }
    bundle.policy = std::move(*data);
    if (out.empty()) {
      out = std::filesystem::path(input).replace_extension(".bundle").string();
      if (out == input) return fail(input + ": the bundle would replace the policy; give --out");
    }
  }

  bundle.sign_with(*key);
  if (auto written = write_file_atomically(out, bundle.encode()); !written) {
    return fail(written.error().str());
  }
  const auto pub = key->public_key();
  std::cout << (cosign ? "co-signed" : "signed") << " by " << pub.id() << " (" << pub.str() << ")\n"
            << out << ": " << bundle.signatures.size() << " signature(s): " << signer_list(bundle)
            << "\n";
  return kOk;
}

int cmd_verify(const std::string& path, const std::string& trust_path) {
  auto trust = load_trust(trust_path);
  if (!trust) return fail(trust.error().str());
  auto data = read_file(path, kMaxBundleBytes);
  if (!data) return fail(data.error().str());
  auto bundle = Bundle::decode(*data);
  if (!bundle) {
    std::cout << "refuse: the bundle does not decode: " << bundle.error().message << "\n";
    return kFailed;
  }

  std::optional<Policy> ceiling;
  if (trust->ceiling) {
    auto parsed = parse_policy_file(*trust->ceiling);
    if (parsed.ok()) {
      ceiling = std::move(parsed.policy);
    } else {
      std::cout << "ceiling " << *trust->ceiling << " is invalid:\n"
                << parsed.diagnostics.str() << "\n";
    }
  }
  const auto v =
      evaluate(*bundle, *trust, ceiling ? &*ceiling : nullptr, std::chrono::system_clock::now());
  for (const auto& s : v.signers) {
    std::cout << "signature " << s.key.id() << " " << s.key.str() << " " << role_name(s.role) << " "
              << (s.valid ? "valid" : "INVALID") << "\n";
  }
  if (v.site) std::cout << "site " << *v.site << "\n";
  if (v.serial) {
    std::cout << "serial " << *v.serial
              << " (an enforcer accepts it only if greater than the last serial it accepted; "
                 "the controller cannot know that)\n";
  }
  if (v.expires) std::cout << "expires " << *v.expires << "\n";
  if (!v.accept) {
    std::cout << "refuse: " << v.reason << "\n";
    return kFailed;
  }
  std::cout << "accept\n";
  return kOk;
}

}  // namespace

int run_controller_cli(int argc, char** argv) {
  CLI::App app{
      "drawbridge-controller: signs policies for Drawbridge enforcers, checks signed bundles "
      "against a trust file, and serves them to the fleet over ZeroMQ (CURVE)"};
  app.set_version_flag("--version", std::string("drawbridge-controller ") + DRAWBRIDGE_VERSION);
  app.require_subcommand(1);

  std::string out, input, key_path, trust_path;

  bool curve = false;
  auto* keygen = app.add_subcommand(
      "keygen",
      "Create an Ed25519 signing key pair: NAME (secret, mode 0600) and NAME.pub; with --curve "
      "also a CURVE pair for the control channel: NAME.curve (secret, mode 0600) and "
      "NAME.curve.pub");
  keygen->add_option("--out", out, "Secret key file to create (never overwritten)")->required();
  keygen->add_flag("--curve", curve,
                   "Also create a CURVE key pair, which authenticates the ZeroMQ channel between "
                   "controller and enforcers (it never authorises a policy: signatures do)");

  auto* sign = app.add_subcommand(
      "sign", "Sign a policy into a bundle, or add a signature to an existing bundle (co-sign)");
  sign->add_option("POLICY", input, "Policy file (TOML) or bundle")->required();
  sign->add_option("--key", key_path, "Secret key file (from keygen)")->required();
  sign->add_option("--out", out,
                   "Bundle to write [POLICY with extension .bundle; a bundle in place]");

  auto* verify = app.add_subcommand(
      "verify", "Say who signed a bundle and whether an enforcer with this trust file accepts it");
  verify->add_option("BUNDLE", input, "Bundle file")->required();
  verify->add_option("--trust", trust_path, "Trust file (TOML; see docs/signing.md)")->required();

  std::string config_path = "/etc/drawbridge/controller.toml";
  bool force = false, json = false;
  auto* serve = app.add_subcommand(
      "serve",
      "Run the controller: accept enforcers (CURVE keys from the config only), push them the "
      "newest bundle of their site, record their acknowledgements in the fleet database");
  serve
      ->add_option("--config", config_path,
                   "Controller config file (TOML; see "
                   "docs/configuration.md)")
      ->capture_default_str();
  auto* publish = app.add_subcommand(
      "publish", "Hand a signed bundle to the running controller, which pushes it to its site");
  publish->add_option("BUNDLE", input, "Bundle file (from sign)")->required();
  publish->add_option("--config", config_path, "Controller config file (finds the admin socket)")
      ->capture_default_str();
  publish->add_flag("--force", force,
                    "Publish even an older serial or an expired policy (enforcers will refuse "
                    "it; useful to check that they do)");
  auto* status = app.add_subcommand(
      "status",
      "Show the fleet: per enforcer, connected or stale, desired and applied serial, "
      "last acknowledgement and last rejection; and what its SOC events upstream add up to: "
      "violations, denied packets, sessions, loss reports, the last violation and the upstream "
      "sequence");
  status->add_option("--config", config_path, "Controller config file (finds the admin socket)")
      ->capture_default_str();
  status->add_flag("--json", json, "Print the full status as JSON");
  std::string site;
  std::size_t limit = 50;
  auto* events = app.add_subcommand(
      "events",
      "List the most recent SOC events the enforcers sent upstream (denied connections, provider "
      "sessions, audit facts; the controller keeps the last 1,000 per site), oldest first");
  events->add_option("--config", config_path, "Controller config file (finds the admin socket)")
      ->capture_default_str();
  events->add_option("--site", site, "Only this site's events");
  events->add_option("--limit", limit, "How many of the most recent events")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}))
      ->capture_default_str();
  events->add_flag("--json", json,
                   "Print them as JSON, newest first: site, enforcer, sequence, received_at and "
                   "the enforcer's event as it sent it");

  if (auto exit_code = parse_command_line(app, argc, argv)) return *exit_code;

  if (auto ok = init_sodium(); !ok) return fail(ok.error().str());
  if (*serve) return cmd_serve(config_path);
  if (*publish) return cmd_publish(config_path, input, force);
  if (*status) return cmd_status(config_path, json);
  if (*events) return cmd_events(config_path, site, limit, json);
  if (*keygen) return cmd_keygen(out, curve);
  if (*sign) return cmd_sign(input, key_path, out);
  if (*verify) return cmd_verify(input, trust_path);
  return kUsage;
}

}  // namespace drawbridge
