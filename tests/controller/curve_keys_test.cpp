// CURVE keys for the control channel (common/curve_keys.h): the files, what loading refuses, the
// text form, and that a pair really secures a ZeroMQ connection.
#include "common/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <zmq.hpp>

#include "common/signing.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;

// A valid key from the ZeroMQ reference (RFC 32 test vector).
constexpr std::string_view kKnownZ85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

class CurveKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(init_sodium().ok());
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-curve-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  [[nodiscard]] std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    ASSERT_EQ(::chmod(path(name).c_str(), mode), 0);
  }
  [[nodiscard]] std::string read(const std::string& name) const {
    std::ifstream in(dir_ / name, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  [[nodiscard]] unsigned mode(const std::string& name) const {
    struct stat st {};
    EXPECT_EQ(::stat(path(name).c_str(), &st), 0) << name;
    return st.st_mode & 07777;
  }
  static bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  fs::path dir_;
};

TEST_F(CurveKeysTest, SaveThenLoadGivesTheSameKey) {
  const auto key = CurveSecretKey::generate();
  ASSERT_TRUE(key.save(path("k.curve")).ok());

  const auto secret_file = read("k.curve");
  EXPECT_EQ(secret_file, "curve-secret:" + std::string(key.z85_secret()) + "\n");
  EXPECT_EQ(read("k.curve.pub"), key.public_key().str() + "\n");
  EXPECT_EQ(mode("k.curve"), 0600u);
  EXPECT_EQ(mode("k.curve.pub"), 0644u);

  const auto loaded = CurveSecretKey::load(path("k.curve"));
  ASSERT_TRUE(loaded.ok()) << loaded.error().str();
  EXPECT_EQ(loaded->public_key(), key.public_key());
  EXPECT_STREQ(loaded->z85_secret(), key.z85_secret());
  EXPECT_EQ(std::strlen(loaded->z85_secret()), 40u);
}

TEST_F(CurveKeysTest, GeneratedKeysDiffer) {
  const auto a = CurveSecretKey::generate();
  const auto b = CurveSecretKey::generate();
  EXPECT_NE(a.public_key(), b.public_key());
  EXPECT_STRNE(a.z85_secret(), b.z85_secret());
}

TEST_F(CurveKeysTest, MovedKeyKeepsItsSecretAndPublicKey) {
  auto a = CurveSecretKey::generate();
  const std::string secret = a.z85_secret();
  const auto pub = a.public_key();
  CurveSecretKey b = std::move(a);
  EXPECT_EQ(b.z85_secret(), secret);
  EXPECT_EQ(b.public_key(), pub);
  auto c = CurveSecretKey::generate();
  c = std::move(b);
  EXPECT_EQ(c.z85_secret(), secret);
  EXPECT_EQ(c.public_key(), pub);
}

TEST_F(CurveKeysTest, SaveNeverOverwritesAndLeavesNothingBehind) {
  const auto key = CurveSecretKey::generate();
  ASSERT_TRUE(key.save(path("k")).ok());
  const auto before = read("k");
  const auto again = CurveSecretKey::generate().save(path("k"));
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(contains(again.error().message, "already exists")) << again.error().message;
  EXPECT_EQ(read("k"), before);

  // Only the public half is in the way: refused before the secret is written.
  write("other.pub", "curve:x\n", 0644);
  const auto blocked = key.save(path("other"));
  ASSERT_FALSE(blocked.ok());
  EXPECT_TRUE(contains(blocked.error().message, "other.pub already exists"))
      << blocked.error().message;
  EXPECT_FALSE(fs::exists(dir_ / "other"));
}

TEST_F(CurveKeysTest, KeyFileThatGroupOrOthersMayReadIsRefused) {
  const auto key = CurveSecretKey::generate();
  ASSERT_TRUE(key.save(path("k")).ok());
  for (const mode_t m : {0640, 0604, 0660, 0700}) {
    ASSERT_EQ(::chmod(path("k").c_str(), m), 0);
    const auto loaded = CurveSecretKey::load(path("k"));
    if (m == 0700) {
      EXPECT_TRUE(loaded.ok()) << "only the owner's bits are set";
      continue;
    }
    ASSERT_FALSE(loaded.ok()) << std::oct << m;
    EXPECT_TRUE(contains(loaded.error().message, "chmod 600")) << loaded.error().message;
    EXPECT_TRUE(contains(loaded.error().message, "group or others")) << loaded.error().message;
  }
}

TEST_F(CurveKeysTest, MalformedSecretFilesAreRefusedWithoutEchoingTheSecret) {
  const std::string good(kKnownZ85);
  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {"", "must be one line, 'curve-secret:<Z85>'"},
      {"drawbridge-ed25519-secret 1\nAAAA\n", "must be one line"},
      {"curve:" + good + "\n", "must be one line"},
      {"curve-secret:" + good, "exactly one line ending in a newline"},
      {"curve-secret:" + good + "\n\n", "exactly one line ending in a newline"},
      {"curve-secret:" + good.substr(1) + "\n", "has 39 characters, expected 40"},
      {"curve-secret:" + good + "0\n", "has 41 characters, expected 40"},
      {"curve-secret:" + good.substr(0, 10) + "\"" + good.substr(11) + "\n",
       "a character at position 11 that is not in the Z85 alphabet"},
      {"curve-secret:" + std::string(40, '#') + "\n", "not valid Z85"},
  };
  for (const auto& c : cases) {
    fs::remove(dir_ / "bad");
    write("bad", c.text);
    const auto loaded = CurveSecretKey::load(path("bad"));
    ASSERT_FALSE(loaded.ok()) << c.text;
    EXPECT_TRUE(contains(loaded.error().message, "is not a CURVE secret key file"))
        << loaded.error().message;
    EXPECT_TRUE(contains(loaded.error().message, c.expected)) << loaded.error().message;
    EXPECT_FALSE(contains(loaded.error().message, good.substr(0, 10))) << loaded.error().message;
  }
  EXPECT_FALSE(CurveSecretKey::load(path("missing")).ok());
  fs::create_directory(dir_ / "dir");
  ASSERT_EQ(::chmod(path("dir").c_str(), 0700), 0);
  EXPECT_FALSE(CurveSecretKey::load(path("dir")).ok());
}

TEST_F(CurveKeysTest, PublicFileOfAnotherKeyIsRefused) {
  const auto a = CurveSecretKey::generate();
  const auto b = CurveSecretKey::generate();
  ASSERT_TRUE(a.save(path("a")).ok());
  ASSERT_TRUE(b.save(path("b")).ok());
  fs::copy_file(dir_ / "b.pub", dir_ / "a.pub", fs::copy_options::overwrite_existing);
  const auto loaded = CurveSecretKey::load(path("a"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_TRUE(contains(loaded.error().message, "do not belong together")) << loaded.error().message;
  EXPECT_TRUE(contains(loaded.error().message, a.public_key().str())) << loaded.error().message;

  write("a.pub", "garbage\n", 0644);
  EXPECT_FALSE(CurveSecretKey::load(path("a")).ok());

  // A secret deployed without its public file is fine.
  fs::remove(dir_ / "a.pub");
  const auto alone = CurveSecretKey::load(path("a"));
  ASSERT_TRUE(alone.ok()) << alone.error().str();
  EXPECT_EQ(alone->public_key(), a.public_key());
}

TEST_F(CurveKeysTest, PublicKeyTextForms) {
  const auto key = CurveSecretKey::generate().public_key();
  EXPECT_EQ(key.z85().size(), 40u);
  EXPECT_EQ(key.str(), "curve:" + key.z85());
  const auto parsed = CurvePublicKey::parse(key.str());
  ASSERT_TRUE(parsed.ok()) << parsed.error().str();
  EXPECT_EQ(*parsed, key);
  const auto bare = CurvePublicKey::parse(key.z85());
  ASSERT_TRUE(bare.ok()) << bare.error().str();
  EXPECT_EQ(*bare, key);

  const auto known = CurvePublicKey::parse(kKnownZ85);
  ASSERT_TRUE(known.ok()) << known.error().str();
  EXPECT_EQ(known->z85(), kKnownZ85);
}

TEST_F(CurveKeysTest, PublicKeyParseErrorsSayWhatIsWrong) {
  const std::string good(kKnownZ85);
  struct Case {
    std::string text;
    std::string expected;
  };
  const Case cases[] = {
      {"", "must be 'curve:' followed by 40 Z85 characters"},
      {good.substr(2), "must be 'curve:' followed by 40 Z85 characters"},
      {"curve:", "has 0 characters, expected 40"},
      {"curve:" + good.substr(1), "has 39 characters, expected 40"},
      {"curve:" + good + " ", "has 41 characters, expected 40"},
      {"curve:" + good.substr(0, 39) + "\"",
       "character '\"' at position 40, which is not in the Z85 alphabet"},
      {"curve: " + good.substr(1), "character 0x20 at position 1"},
      {"curve:" + std::string(40, '#'), "not valid Z85"},
      {"ed25519:Ve4NiqpHfCHCPDDZbRk6aQHSiHRup4WA65qTreuuWlM=", "Ed25519 signing key"},
      {"curve-secret:" + good, "secret key, not a public key"},
  };
  for (const auto& c : cases) {
    const auto r = CurvePublicKey::parse(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_TRUE(contains(r.error().message, c.expected)) << c.text << " → " << r.error().message;
  }
}

// The keys as libzmq uses them: a CURVE REQ/REP pair over loopback TCP exchanges a message when
// the client pins the server's public key, and nothing at all when it pins another one.
class CurveChannelTest : public CurveKeysTest {
 protected:
  // A REP server on an ephemeral port; returns its endpoint.
  std::string serve(zmq::socket_t& rep, const CurveSecretKey& key) {
    rep.set(zmq::sockopt::linger, 0);
    rep.set(zmq::sockopt::curve_server, true);
    rep.set(zmq::sockopt::curve_secretkey, std::string_view(key.z85_secret()));
    rep.set(zmq::sockopt::rcvtimeo, 5000);
    rep.bind("tcp://127.0.0.1:*");
    return rep.get(zmq::sockopt::last_endpoint);
  }

  static void dial(zmq::socket_t& req, const std::string& endpoint, const CurvePublicKey& server,
                   const CurveSecretKey& client, int timeout_ms) {
    req.set(zmq::sockopt::linger, 0);
    req.set(zmq::sockopt::curve_serverkey, server.z85());
    req.set(zmq::sockopt::curve_publickey, client.public_key().z85());
    req.set(zmq::sockopt::curve_secretkey, std::string_view(client.z85_secret()));
    req.set(zmq::sockopt::rcvtimeo, timeout_ms);
    req.connect(endpoint);
  }

  static std::optional<std::string> receive(zmq::socket_t& s) {
    zmq::message_t m;
    if (!s.recv(m)) return std::nullopt;
    return m.to_string();
  }

  zmq::context_t ctx_;
};

TEST_F(CurveChannelTest, KeysFromFilesSecureARealConnection) {
  // Through the files, as the daemons will get them.
  ASSERT_TRUE(CurveSecretKey::generate().save(path("server")).ok());
  ASSERT_TRUE(CurveSecretKey::generate().save(path("client")).ok());
  auto server = CurveSecretKey::load(path("server"));
  auto client = CurveSecretKey::load(path("client"));
  ASSERT_TRUE(server.ok() && client.ok());
  const auto pinned = CurvePublicKey::parse(read("server.pub").substr(0, 46));
  ASSERT_TRUE(pinned.ok()) << pinned.error().str();

  zmq::socket_t rep(ctx_, zmq::socket_type::rep);
  zmq::socket_t req(ctx_, zmq::socket_type::req);
  const auto endpoint = serve(rep, *server);
  dial(req, endpoint, *pinned, *client, 5000);

  ASSERT_TRUE(req.send(zmq::str_buffer("ping")));
  EXPECT_EQ(receive(rep), "ping");
  ASSERT_TRUE(rep.send(zmq::str_buffer("pong")));
  EXPECT_EQ(receive(req), "pong");
}

TEST_F(CurveChannelTest, WrongServerKeyExchangesNothing) {
  const auto server = CurveSecretKey::generate();
  const auto impostor = CurveSecretKey::generate();
  const auto client = CurveSecretKey::generate();

  zmq::socket_t rep(ctx_, zmq::socket_type::rep);
  zmq::socket_t req(ctx_, zmq::socket_type::req);
  const auto endpoint = serve(rep, server);
  rep.set(zmq::sockopt::rcvtimeo, 300);
  dial(req, endpoint, impostor.public_key(), client, 300);

  // The send is only queued: the handshake fails, so nothing reaches the server and no reply
  // comes back.
  ASSERT_TRUE(req.send(zmq::str_buffer("ping")));
  EXPECT_EQ(receive(rep), std::nullopt);
  EXPECT_EQ(receive(req), std::nullopt);
}

}  // namespace
}  // namespace drawbridge
