#include "common/trust.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "common/toml_location.h"

namespace drawbridge {

namespace {

bool contains(const std::vector<PublicKey>& keys, const PublicKey& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

Result<std::vector<PublicKey>> read_keys(const toml::node& node, const std::string& name,
                                         const std::string& path) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    return make_error("'" + name + "' must be an array of \"ed25519:<base64>\" strings",
                      where(path, node.source()));
  }
  std::vector<PublicKey> keys;
  for (const auto& element : *array) {
    const auto loc = where(path, element.source());
    const auto* text = element.as_string();
    if (text == nullptr) return make_error("'" + name + "' entries must be strings", loc);
    auto key = PublicKey::parse(text->get());
    if (!key) return make_error(key.error().message, loc);
    if (contains(keys, *key)) {
      return make_error("key " + key->id() + " is listed twice in '" + name + "'", loc);
    }
    keys.push_back(*key);
  }
  return keys;
}

}  // namespace

const char* role_name(KeyRole role) {
  switch (role) {
    case KeyRole::provider:
      return "provider";
    case KeyRole::customer:
      return "customer";
    case KeyRole::unknown:
      break;
  }
  return "unknown";
}

KeyRole TrustConfig::role_of(const PublicKey& key) const {
  if (contains(provider_keys, key)) return KeyRole::provider;
  if (contains(customer_keys, key)) return KeyRole::customer;
  return KeyRole::unknown;
}

Result<TrustConfig> parse_trust(std::string_view text, const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return make_error(std::string(e.description()), where(path, e.source()));
  }
  TrustConfig trust;
  for (const auto& [key, node] : doc) {
    const auto loc = where(path, node.source());
    const std::string k(key.str());
    if (k == "site") {
      const auto* v = node.as_string();
      if (v == nullptr || v->get().empty()) {
        return make_error("'site' must be a non-empty string", loc);
      }
      trust.site = v->get();
    } else if (k == "provider_keys" || k == "customer_keys") {
      auto keys = read_keys(node, k, path);
      if (!keys) return keys.error();
      (k == "provider_keys" ? trust.provider_keys : trust.customer_keys) = std::move(*keys);
    } else if (k == "ceiling") {
      const auto* v = node.as_string();
      if (v == nullptr || v->get().empty()) {
        return make_error("'ceiling' must be a non-empty path string", loc);
      }
      // Relative to the trust file, so the pair can be moved together.
      const std::filesystem::path p(v->get());
      trust.ceiling =
          p.is_absolute() ? p.string() : (std::filesystem::path(path).parent_path() / p).string();
    } else {
      return make_error(
          "unknown key '" + k + "' (expected: site, provider_keys, customer_keys, ceiling)",
          where(path, key.source()));
    }
  }
  // A key in both roles would let the provider co-sign as the customer: the veto would be void.
  if (const auto* customers = doc["customer_keys"].as_array()) {
    for (const auto& element : *customers) {
      auto key = PublicKey::parse(element.as_string()->get());
      if (contains(trust.provider_keys, *key)) {
        return make_error("key " + key->id() + " is listed both as provider and as customer key",
                          where(path, element.source()));
      }
    }
  }
  if (trust.provider_keys.empty() && trust.customer_keys.empty()) {
    return make_error("the trust file names no provider_keys or customer_keys",
                      SourceLocation{path, 0, 0});
  }
  return trust;
}

Result<TrustedSigners> check_signatures(const Bundle& bundle, const TrustConfig& trust) {
  const auto invalid = bundle.invalid_signers();
  if (!invalid.empty()) {
    return make_error("the signature by key " + invalid.front().id() + " (" +
                      invalid.front().str() +
                      ") does not verify: the policy was altered or signed by another key");
  }
  TrustedSigners out;
  for (const auto& key : bundle.valid_signers()) {
    switch (trust.role_of(key)) {
      case KeyRole::provider:
        out.providers.push_back(key);
        break;
      case KeyRole::customer:
        out.customers.push_back(key);
        break;
      case KeyRole::unknown:
        break;
    }
  }
  if (out.providers.empty() && out.customers.empty()) {
    std::string signers;
    for (const auto& key : bundle.valid_signers()) {
      signers += (signers.empty() ? "" : ", ") + key.id() + " (" + key.str() + ")";
    }
    return make_error("no valid signature is from a trusted key: signed only by " +
                      (signers.empty() ? std::string("nobody") : signers) +
                      ", which the trust file does not list");
  }
  return out;
}

Result<TrustConfig> load_trust(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read trust file " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return parse_trust(text.str(), path);
}

}  // namespace drawbridge
