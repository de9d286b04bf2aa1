// Keys and signed bundles (common/signing.h): what verifies, what does not, and what the strict
// decoder refuses.
#include "common/signing.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

const std::string kPolicy = "version = 1\nsite = \"dental3\"\nserial = 7\n";

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(init_sodium().ok()); }

  static Bundle signed_bundle(const SecretKey& key, const std::string& policy = kPolicy) {
    Bundle b;
    b.policy = policy;
    b.sign_with(key);
    return b;
  }

  // The encoded bundle with its header line `index` (0-based) replaced.
  static std::string with_line(const std::string& encoded, std::size_t index,
                               const std::string& line) {
    std::size_t begin = 0;
    for (std::size_t i = 0; i < index; ++i) begin = encoded.find('\n', begin) + 1;
    const auto end = encoded.find('\n', begin);
    return encoded.substr(0, begin) + line + encoded.substr(end);
  }

  SecretKey provider_ = SecretKey::generate();
  SecretKey customer_ = SecretKey::generate();
};

TEST_F(SigningTest, GoodSignatureVerifies) {
  const auto b = signed_bundle(provider_);
  const auto decoded = Bundle::decode(b.encode());
  ASSERT_TRUE(decoded.ok()) << decoded.error().str();
  EXPECT_EQ(decoded->policy, kPolicy);
  ASSERT_EQ(decoded->valid_signers().size(), 1u);
  EXPECT_EQ(decoded->valid_signers()[0], provider_.public_key());
  EXPECT_TRUE(decoded->invalid_signers().empty());
}

TEST_F(SigningTest, EncodeDecodeRoundTripsExactly) {
  auto b = signed_bundle(provider_);
  b.sign_with(customer_);
  const auto text = b.encode();
  const auto decoded = Bundle::decode(text);
  ASSERT_TRUE(decoded.ok()) << decoded.error().str();
  EXPECT_EQ(decoded->encode(), text);
}

TEST_F(SigningTest, SignatureUnderWrongKeyDoesNotVerify) {
  auto b = signed_bundle(provider_);
  // Claim the customer's key for the provider's signature.
  b.signatures[0].signer = customer_.public_key();
  EXPECT_TRUE(b.valid_signers().empty());
  ASSERT_EQ(b.invalid_signers().size(), 1u);
  EXPECT_EQ(b.invalid_signers()[0], customer_.public_key());
}

TEST_F(SigningTest, BitFlippedPolicyByteDoesNotVerify) {
  const auto b = signed_bundle(provider_);
  for (std::size_t i = 0; i < kPolicy.size(); i += 5) {
    auto text = b.encode();
    text[text.size() - kPolicy.size() + i] ^= 0x01;
    const auto decoded = Bundle::decode(text);
    ASSERT_TRUE(decoded.ok()) << decoded.error().str();
    EXPECT_TRUE(decoded->valid_signers().empty()) << "byte " << i;
    EXPECT_EQ(decoded->invalid_signers().size(), 1u);
  }
}

TEST_F(SigningTest, BitFlippedSignatureDoesNotVerify) {
  auto b = signed_bundle(provider_);
  b.signatures[0].signature[17] ^= 0x80;
  const auto decoded = Bundle::decode(b.encode());
  ASSERT_TRUE(decoded.ok()) << decoded.error().str();
  EXPECT_TRUE(decoded->valid_signers().empty());
  EXPECT_EQ(decoded->invalid_signers().size(), 1u);
}

TEST_F(SigningTest, SignatureWithoutDomainPrefixDoesNotVerify) {
  Bundle b;
  b.policy = kPolicy;
  // A signature over the bare policy (what a key used for something else might have signed).
  b.signatures.push_back({provider_.public_key(), provider_.sign(kPolicy)});
  EXPECT_TRUE(b.valid_signers().empty());
  EXPECT_EQ(b.invalid_signers().size(), 1u);
  // …while the same key over the prefixed bytes does.
  b.signatures[0].signature = provider_.sign(std::string(kSignatureDomain) + kPolicy);
  EXPECT_EQ(b.valid_signers().size(), 1u);
}

TEST_F(SigningTest, CoSigningKeepsBothSignaturesAndBothVerify) {
  const auto first = signed_bundle(provider_).encode();
  auto b = Bundle::decode(first);
  ASSERT_TRUE(b.ok());
  b->sign_with(customer_);
  const auto second = b->encode();
  // The provider's line is untouched: a co-signer only appends.
  EXPECT_EQ(second.find(first.substr(0, first.find("policy "))), 0u);
  const auto decoded = Bundle::decode(second);
  ASSERT_TRUE(decoded.ok()) << decoded.error().str();
  ASSERT_EQ(decoded->signatures.size(), 2u);
  const auto valid = decoded->valid_signers();
  ASSERT_EQ(valid.size(), 2u);
  EXPECT_EQ(valid[0], provider_.public_key());
  EXPECT_EQ(valid[1], customer_.public_key());
}

TEST_F(SigningTest, SigningAgainReplacesTheSameSignersSignature) {
  auto b = signed_bundle(provider_);
  b.sign_with(provider_);
  EXPECT_EQ(b.signatures.size(), 1u);
  EXPECT_EQ(b.valid_signers().size(), 1u);
}

TEST_F(SigningTest, TruncatedBundleIsRefused) {
  const auto text = signed_bundle(provider_).encode();
  const auto r = Bundle::decode(text.substr(0, text.size() - 1));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
  // Cut inside the header: no policy line at all.
  const auto header = Bundle::decode(text.substr(0, 40));
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.error().message.find("truncated"), std::string::npos);
}

TEST_F(SigningTest, TrailingBytesAreRefused) {
  const auto r = Bundle::decode(signed_bundle(provider_).encode() + "\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unexpected bytes after the policy"), std::string::npos)
      << r.error().message;
}

TEST_F(SigningTest, DuplicatedSignerLineIsRefused) {
  const auto text = signed_bundle(provider_).encode();
  const auto line_end = text.find('\n', text.find("signature ")) + 1;
  const auto line_begin = text.find("signature ");
  const auto doubled = text.substr(0, line_end) + text.substr(line_begin, line_end - line_begin) +
                       text.substr(line_end);
  const auto r = Bundle::decode(doubled);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("signs twice"), std::string::npos) << r.error().message;
}

TEST_F(SigningTest, TooManySignaturesAreRefused) {
  Bundle b;
  b.policy = kPolicy;
  std::vector<SecretKey> keys;
  for (std::size_t i = 0; i < kMaxSignatures; ++i) {
    keys.push_back(SecretKey::generate());
    b.sign_with(keys.back());
  }
  ASSERT_TRUE(Bundle::decode(b.encode()).ok());  // exactly the limit is fine
  keys.push_back(SecretKey::generate());
  b.sign_with(keys.back());
  const auto r = Bundle::decode(b.encode());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than 16 signatures"), std::string::npos)
      << r.error().message;
}

TEST_F(SigningTest, UnknownHeaderLineIsRefused) {
  const auto text = signed_bundle(provider_).encode();
  const auto r = Bundle::decode(with_line(text, 1, "comment hello"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("unknown header line"), std::string::npos) << r.error().message;
  EXPECT_FALSE(Bundle::decode("drawbridge-bundle 2\n" + text.substr(text.find('\n') + 1)).ok());
  EXPECT_FALSE(Bundle::decode("").ok());
}

TEST_F(SigningTest, BadBase64IsRefused) {
  const auto b = signed_bundle(provider_);
  const auto sig = "signature " + provider_.public_key().str() + " ";
  for (const std::string bad : {"not*base64", "", "AAAA AAAA", "AAA"}) {
    const auto r = Bundle::decode(with_line(b.encode(), 1, sig + bad));
    ASSERT_FALSE(r.ok()) << bad;
  }
  const auto r = Bundle::decode(with_line(b.encode(), 1, sig + "@@@@"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not valid base64"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
  // Unpadded and non-canonical spellings are refused, so each key has one textual form.
  const auto key = provider_.public_key().str();
  EXPECT_FALSE(PublicKey::parse(key.substr(0, key.size() - 1)).ok());
  auto noncanonical = key;
  noncanonical[noncanonical.size() - 2] = noncanonical[noncanonical.size() - 2] == 'A' ? 'B' : 'A';
  // Either a different key or refused, never silently the same key.
  const auto parsed = PublicKey::parse(noncanonical);
  EXPECT_TRUE(!parsed.ok() || !(*parsed == provider_.public_key()));
}

TEST_F(SigningTest, WrongByteCountsAreRefused) {
  const auto b = signed_bundle(provider_);
  // A 48-byte "signature" and a 33-byte "key": valid base64, wrong size.
  const std::string b64_48(64, 'A');
  const auto r = Bundle::decode(
      with_line(b.encode(), 1, "signature " + provider_.public_key().str() + " " + b64_48));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("48 bytes, expected 64"), std::string::npos)
      << r.error().message;
  const auto key = PublicKey::parse("ed25519:" + std::string(44, 'A'));
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().message.find("33 bytes, expected 32"), std::string::npos)
      << key.error().message;
  // The policy byte count must be plain decimal within the limit.
  const auto text = b.encode();
  const auto policy_line = text.substr(0, text.find("policy "));
  EXPECT_FALSE(
      Bundle::decode(policy_line + "policy 0" + std::to_string(kPolicy.size()) + "\n" + kPolicy)
          .ok());
  EXPECT_FALSE(
      Bundle::decode(policy_line + "policy +" + std::to_string(kPolicy.size()) + "\n" + kPolicy)
          .ok());
  EXPECT_FALSE(
      Bundle::decode(policy_line + "policy " + std::to_string(kMaxPolicyBytes + 1) + "\n").ok());
}

TEST_F(SigningTest, BundleWithoutSignatureIsRefused) {
  EXPECT_FALSE(Bundle::decode("drawbridge-bundle 1\npolicy 3\nabc").ok());
}

TEST_F(SigningTest, KeyIdIsStableAndEightHexDigits) {
  const auto pub = provider_.public_key();
  const auto id = pub.id();
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9a-f]{8}"))) << id;
  EXPECT_EQ(id, pub.id());
  const auto reparsed = PublicKey::parse(pub.str());
  ASSERT_TRUE(reparsed.ok()) << reparsed.error().str();
  EXPECT_EQ(reparsed->id(), id);
  EXPECT_NE(customer_.public_key().id(), id);
  // A fixed key has a fixed id (BLAKE2b of the 32 key bytes; pins the algorithm).
  const auto zero = PublicKey::parse("ed25519:" + std::string(43, 'A') + "=");
  ASSERT_TRUE(zero.ok()) << zero.error().str();
  EXPECT_EQ(zero->id(), PublicKey{}.id());
  EXPECT_EQ(zero->id().size(), 8u);
}

// ---- secret key files

class KeyFileTest : public SigningTest {
 protected:
  void SetUp() override {
    SigningTest::SetUp();
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-keys-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  fs::path dir_;
};

TEST_F(KeyFileTest, SavedWithMode0600AndPublicFile) {
  const auto path = (dir_ / "provider").string();
  ASSERT_TRUE(provider_.save(path).ok());
  EXPECT_EQ(mode_of(path), 0600u);
  std::ifstream pub(path + ".pub");
  std::string line;
  ASSERT_TRUE(std::getline(pub, line));
  EXPECT_EQ(line, provider_.public_key().str());

  std::ifstream secret(path);
  ASSERT_TRUE(std::getline(secret, line));
  EXPECT_EQ(line, "drawbridge-ed25519-secret 1");

  const auto loaded = SecretKey::load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error().str();
  EXPECT_EQ(loaded->public_key(), provider_.public_key());
  // The loaded key signs bundles that verify under the saved public key.
  EXPECT_EQ(signed_bundle(*loaded).valid_signers().at(0), provider_.public_key());
}

TEST_F(KeyFileTest, ModeAllowsOthersIsRefused) {
  const auto path = (dir_ / "provider").string();
  ASSERT_TRUE(provider_.save(path).ok());
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  const auto r = SecretKey::load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_FALSE(SecretKey::load(path).ok());
}

TEST_F(KeyFileTest, NeverOverwritten) {
  const auto path = (dir_ / "provider").string();
  ASSERT_TRUE(provider_.save(path).ok());
  const auto r = customer_.save(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("already exists"), std::string::npos) << r.error().message;
  const auto loaded = SecretKey::load(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->public_key(), provider_.public_key());
  // A stale NAME.pub also stops it, and nothing is left behind.
  const auto other = (dir_ / "other").string();
  std::ofstream(other + ".pub") << "stale\n";
  EXPECT_FALSE(customer_.save(other).ok());
  EXPECT_FALSE(fs::exists(other));
}

TEST_F(KeyFileTest, CorruptFilesAreRefused) {
  const auto path = dir_ / "bad";
  const auto write = [&](const std::string& text) {
    fs::remove(path);
    std::ofstream(path) << text;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  };
  write("hello\n");
  EXPECT_FALSE(SecretKey::load(path).ok());
  write("drawbridge-ed25519-secret 1\nAAAA\n");
  EXPECT_FALSE(SecretKey::load(path).ok());
  // 64 bytes whose public half does not match the seed.
  write("drawbridge-ed25519-secret 1\n" + std::string(86, 'A') + "==\n");
  const auto r = SecretKey::load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;
  EXPECT_FALSE(SecretKey::load((dir_ / "missing").string()).ok());
}

}  // namespace
}  // namespace drawbridge
