// The local audit file (enforcer/soc/audit_log.h): the exact record format, the hash chain and
// what verification says about every kind of tampering, rotation by size and by UTC day with the
// chain kept across files, retention, crash repair on open, and the real `verify-log` command.
#include "enforcer/soc/audit_log.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/window_schedule.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Instant at(const char* rfc3339) {
  return *parse_instant(rfc3339);
}

std::string sha256_hex(const std::string& bytes) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> d{};
  crypto_hash_sha256(d.data(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  std::string hex(2 * d.size() + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), d.data(), d.size());
  hex.pop_back();
  return hex;
}

// An ECS-like event as the formatter would render it; `n` makes each one different.
std::string event(int n) {
  return R"({"@timestamp":"2026-11-26T10:00:00Z","event":{"action":"policy-applied","sequence":)" +
         std::to_string(n) + R"(},"message":"applied serial )" + std::to_string(n) + R"("})";
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-audit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "audit.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  AuditLogOptions options() const {
    AuditLogOptions o;
    o.path = path_;
    return o;
  }

  // Appends `n` records at `when`, one second apart, through a log opened for the purpose.
  void write_records(int n, Instant when = at("2026-11-26T10:00:00Z")) {
    auto log = AuditLog::open(options(), when);
    ASSERT_TRUE(log.ok()) << log.error().str();
    for (int i = 0; i < n; ++i) {
      auto ok = log->append(event(i + 1), when + std::chrono::seconds(i));
      ASSERT_TRUE(ok.ok()) << ok.error().str();
    }
  }

  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  // The lines of a file, each with its newline.
  static std::vector<std::string> lines(const std::string& path) {
    std::vector<std::string> out;
    std::istringstream in(read(path));
    for (std::string l; std::getline(in, l);) out.push_back(l + "\n");
    return out;
  }
  static std::string join(const std::vector<std::string>& ls) {
    std::string s;
    for (const auto& l : ls) s += l;
    return s;
  }

  AuditVerifyResult verify(const std::vector<std::string>& files) const {
    auto r = verify_audit_log(files);
    EXPECT_TRUE(r.ok()) << r.error().str();
    return r.ok() ? *r : AuditVerifyResult{};
  }
  AuditVerifyResult verify() const { return verify({path_}); }

  std::vector<std::string> rotated() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const auto name = e.path().filename().string();
      if (name.starts_with("audit.jsonl.")) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(AuditLogTest, RecordsAreExactlyTheDocumentedBytes) {
  // Spacing inside the event is kept byte for byte: the hash covers what was given.
  const std::string ev = R"({"a": 1,  "b":"x"})";
  {
    auto log = AuditLog::open(options(), at("2026-11-26T10:00:00Z"));
    ASSERT_TRUE(log.ok()) << log.error().str();
    EXPECT_EQ(log->head_hash(), kAuditGenesis);
    EXPECT_EQ(log->next_seq(), 1u);
    ASSERT_TRUE(log->append(ev, at("2026-11-26T10:00:00.250Z")).ok());
    ASSERT_TRUE(log->append(event(2), at("2026-11-26T10:00:01Z")).ok());
  }
  const auto ls = lines(path_);
  ASSERT_EQ(ls.size(), 2u);
  const std::string body1 = R"({"seq":1,"time":"2026-11-26T10:00:00.250Z","prev":")" +
                            std::string(kAuditGenesis) + R"(","event":)" + ev;
  const std::string hash1 = sha256_hex(body1);
  EXPECT_EQ(ls[0], body1 + R"(,"hash":")" + hash1 + "\"}\n");
  const std::string body2 =
      R"({"seq":2,"time":"2026-11-26T10:00:01Z","prev":")" + hash1 + R"(","event":)" + event(2);
  EXPECT_EQ(ls[1], body2 + R"(,"hash":")" + sha256_hex(body2) + "\"}\n");
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::others_all, fs::perms::none);
}

TEST_F(AuditLogTest, AppendedRecordsVerifyIntact) {
  std::string head;
  {
    auto log = AuditLog::open(options(), at("2026-11-26T10:00:00Z"));
    ASSERT_TRUE(log.ok());
    for (int i = 1; i <= 20; ++i)
      ASSERT_TRUE(log->append(event(i), at("2026-11-26T10:00:00Z")).ok());
    head = log->head_hash();
  }
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.records, 20u);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, 20u);
  EXPECT_EQ(r.anchor, kAuditGenesis);
  EXPECT_EQ(r.head, head);
  const auto text = format_verify_result(r, 1);
  EXPECT_NE(text.find("intact: 20 records (seq 1..20) in 1 file\n"), std::string::npos) << text;
  EXPECT_NE(text.find("anchor: genesis"), std::string::npos) << text;
  EXPECT_NE(text.find("head:   " + head + " (seq 20, 2026-11-26T10:00:00Z)"), std::string::npos)
      << text;
}

TEST_F(AuditLogTest, EventsThatAreNotOneJsonObjectOnOneLineAreRefused) {
  auto log = AuditLog::open(options(), at("2026-11-26T10:00:00Z"));
  ASSERT_TRUE(log.ok());
  for (const char* bad :
       {"", "not json", "[1,2]", "{\"a\":\n1}", "{\"a\":1} ", "{\"a\":}", "{\"a\":1}{\"b\":2}"}) {
    EXPECT_FALSE(log->append(bad, at("2026-11-26T10:00:00Z")).ok()) << bad;
  }
  EXPECT_EQ(log->next_seq(), 1u);
  EXPECT_EQ(read(path_), "");
}

// Every single changed byte, anywhere in any record (its seq, time, prev, the event, the hash,
// the punctuation, its newline), is reported at exactly that record's line.
TEST_F(AuditLogTest, EveryChangedByteNamesItsRecord) {
  write_records(5);
  const auto original = lines(path_);
  std::size_t checked = 0;
  for (std::size_t l = 0; l < original.size(); ++l) {
    const std::string seq_digits = std::to_string(l + 1);
    for (std::size_t i = 0; i < original[l].size(); ++i) {
      auto tampered = original;
      char& c = tampered[l][i];
      c = c == '0' ? '1' : '0';
      write(path_, join(tampered));
      const auto r = verify();
      ASSERT_FALSE(r.intact) << "line " << l + 1 << " byte " << i;
      EXPECT_EQ(r.broken_file, path_);
      EXPECT_EQ(r.broken_line, l + 1) << "byte " << i << ": " << r.why;
      // The line's own seq is reported unless the change hit `{"seq":N,` itself.
      const bool in_seq = i <= 7 + seq_digits.size();
      if (!in_seq) {
        EXPECT_EQ(r.broken_seq, l + 1) << "byte " << i << ": " << r.why;
      }
      EXPECT_EQ(r.records, l);
      ++checked;
    }
  }
  EXPECT_GT(checked, 5u * 150u);
}

TEST_F(AuditLogTest, ChangedEventIsNamedWithItsLineAndSeq) {
  write_records(4);
  auto ls = lines(path_);
  const auto pos = ls[2].find("applied serial 3");
  ASSERT_NE(pos, std::string::npos);
  ls[2].replace(pos, 16, "applied serial 9");
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 3u);
  EXPECT_EQ(r.broken_seq, 3u);
  EXPECT_EQ(r.records, 2u);
  const auto text = format_verify_result(r, 1);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            path_ +
                ":3: record seq 3 is broken: its hash does not match its content: the record was "
                "changed after it was written");
}

// A forger who recomputes the hash of the record they changed still breaks the link to it.
TEST_F(AuditLogTest, RehashedRecordBreaksTheNextLink) {
  write_records(4);
  auto ls = lines(path_);
  std::string& line = ls[1];
  line.replace(line.find("applied serial 2"), 16, "applied serial 7");
  const std::size_t body_end = line.size() - 1 - 75;  // newline, then the fixed-size hash suffix
  const std::string body = line.substr(0, body_end);
  line = body + R"(,"hash":")" + sha256_hex(body) + "\"}\n";
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 3u);
  EXPECT_EQ(r.broken_seq, 3u);
  EXPECT_NE(r.why.find("prev does not match the hash of seq 2"), std::string::npos) << r.why;
}

TEST_F(AuditLogTest, DeletedLineIsNamed) {
  write_records(5);
  auto ls = lines(path_);
  ls.erase(ls.begin() + 2);
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 3u);
  EXPECT_EQ(r.broken_seq, 4u);
  EXPECT_NE(r.why.find("sequence 4 where 3 was expected"), std::string::npos) << r.why;
}

TEST_F(AuditLogTest, SwappedLinesAreNamed) {
  write_records(5);
  auto ls = lines(path_);
  std::swap(ls[1], ls[2]);
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 2u);
  EXPECT_EQ(r.broken_seq, 3u);
}

TEST_F(AuditLogTest, DuplicatedLineIsNamed) {
  write_records(5);
  auto ls = lines(path_);
  ls.insert(ls.begin() + 2, ls[1]);
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 3u);
  EXPECT_EQ(r.broken_seq, 2u);
  EXPECT_NE(r.why.find("sequence 2 where 3 was expected"), std::string::npos) << r.why;
}

// What the chain alone cannot tell (docs/audit-log.md): the oldest records removed look like
// retention, and the newest removed look like a log that ends earlier. The anchor and the head
// are printed so that they can be compared with copies kept elsewhere.
TEST_F(AuditLogTest, RemovedEndsShowOnlyInAnchorAndHead) {
  write_records(5);
  const auto full = verify();
  auto ls = lines(path_);
  const std::string hash1 = ls[0].substr(ls[0].size() - 67, 64);
  ls.erase(ls.begin());
  ls.pop_back();
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_TRUE(r.intact);
  EXPECT_EQ(r.first_seq, 2u);
  EXPECT_EQ(r.anchor, hash1);
  EXPECT_NE(r.head, full.head);
  EXPECT_NE(format_verify_result(r, 1).find("the prev of seq 2: earlier records were deleted"),
            std::string::npos);
}

TEST_F(AuditLogTest, FakeGenesisIsBroken) {
  write_records(3);
  auto ls = lines(path_);
  ls.erase(ls.begin());
  // Record 2 rewritten to claim genesis (and rehashed): only seq 1 may.
  std::string& line = ls[0];
  const auto prev = line.find(R"("prev":")") + 8;
  line.replace(prev, 64, std::string(kAuditGenesis));
  const std::string body = line.substr(0, line.size() - 1 - 75);
  line = body + R"(,"hash":")" + sha256_hex(body) + "\"}\n";
  write(path_, join(ls));
  const auto r = verify();
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_line, 1u);
  EXPECT_EQ(r.broken_seq, 2u);
}

TEST_F(AuditLogTest, RotatesBySizeAndKeepsTheChainAcrossFiles) {
  auto o = options();
  o.max_bytes = 1000;  // three records of ~312 bytes per file
  std::vector<std::string> notes;
  auto log = AuditLog::open(o, at("2026-11-26T10:00:00Z"), &notes);
  ASSERT_TRUE(log.ok());
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(log->append(event(i), at("2026-11-26T10:00:00Z") + std::chrono::seconds(i)).ok());
  }
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok()) << files.error().str();
  ASSERT_EQ(files->size(), 4u);
  EXPECT_EQ(files->back(), path_);
  std::uint64_t total = 0;
  for (const auto& f : *files) {
    EXPECT_LE(fs::file_size(f), 1000u) << f;
    total += lines(f).size();
  }
  EXPECT_EQ(total, 10u);
  // The new file's first record links to the old file's last one.
  const auto last_of_previous = lines((*files)[2]).back();
  const auto first_of_live = lines(path_).front();
  EXPECT_NE(
      first_of_live.find(R"("prev":")" + last_of_previous.substr(last_of_previous.size() - 67, 64)),
      std::string::npos);
  const auto r = verify(*files);
  EXPECT_TRUE(r.intact) << r.broken_file << ":" << r.broken_line << ": " << r.why;
  EXPECT_EQ(r.records, 10u);
  EXPECT_EQ(r.anchor, kAuditGenesis);
  EXPECT_EQ(r.head, log->head_hash());
  EXPECT_TRUE(notes.empty());
}

TEST_F(AuditLogTest, SameSecondRotationsGetDistinctNames) {
  auto o = options();
  o.max_bytes = 1;  // every record in a file of its own
  auto log = AuditLog::open(o, at("2026-11-26T10:00:00Z"));
  ASSERT_TRUE(log.ok());
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(log->append(event(i), at("2026-11-26T10:00:00Z")).ok());
  EXPECT_EQ(rotated(), (std::vector<std::string>{"audit.jsonl.20261126T100000Z",
                                                 "audit.jsonl.20261126T100000Z-1",
                                                 "audit.jsonl.20261126T100000Z-2"}));
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(verify(*files).intact);
}

TEST_F(AuditLogTest, RotatesWhenTheUtcDayChanges) {
  auto log = AuditLog::open(options(), at("2026-11-26T23:59:00Z"));
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE(log->append(event(1), at("2026-11-26T23:59:00Z")).ok());
  ASSERT_TRUE(log->append(event(2), at("2026-11-26T23:59:59.999Z")).ok());
  EXPECT_TRUE(rotated().empty());
  ASSERT_TRUE(log->append(event(3), at("2026-11-27T00:00:01Z")).ok());
  ASSERT_TRUE(log->append(event(4), at("2026-11-27T08:00:00Z")).ok());
  EXPECT_EQ(rotated(), std::vector<std::string>{"audit.jsonl.20261127T000001Z"});
  EXPECT_EQ(lines(dir_ / "audit.jsonl.20261127T000001Z").size(), 2u);
  EXPECT_EQ(lines(path_).size(), 2u);
  const auto r = verify({(dir_ / "audit.jsonl.20261127T000001Z").string(), path_});
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.records, 4u);
}

TEST_F(AuditLogTest, FilesOutOfOrderFailClearly) {
  auto o = options();
  o.max_bytes = 1000;
  {
    auto log = AuditLog::open(o, at("2026-11-26T10:00:00Z"));
    ASSERT_TRUE(log.ok());
    for (int i = 1; i <= 8; ++i)
      ASSERT_TRUE(log->append(event(i), at("2026-11-26T10:00:00Z")).ok());
  }
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 3u);
  const auto r = verify({(*files)[1], (*files)[0], (*files)[2]});
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.broken_file, (*files)[0]);
  EXPECT_EQ(r.broken_line, 1u);
  EXPECT_EQ(r.broken_seq, 1u);
  EXPECT_NE(r.why.find("the files are not given oldest first"), std::string::npos) << r.why;
}

TEST_F(AuditLogTest, RetentionDeletesOnlyOldRotatedFiles) {
  auto o = options();
  o.retention = std::chrono::days{3};
  // Files that are not ours stay whatever their age.
  write((dir_ / "audit.jsonl.old").string(), "keep\n");
  write((dir_ / "audit.jsonl.20200101T000000Z.gz").string(), "keep\n");
  std::vector<std::string> notes;
  auto log = AuditLog::open(o, at("2026-11-01T12:00:00Z"), &notes);
  ASSERT_TRUE(log.ok());
  // One record a day for ten days: each day rotates the day before away.
  for (int day = 1; day <= 10; ++day) {
    const Instant t = at("2026-11-01T12:00:00Z") + std::chrono::days{day - 1};
    ASSERT_TRUE(log->append(event(day), t, &notes).ok());
  }
  // Now is 2026-11-10T12:00Z: records older than 2026-11-07T12:00Z are gone, the one from
  // exactly then is kept.
  EXPECT_EQ(rotated(), (std::vector<std::string>{
                           "audit.jsonl.20200101T000000Z.gz", "audit.jsonl.20261108T120000Z",
                           "audit.jsonl.20261109T120000Z", "audit.jsonl.20261110T120000Z",
                           "audit.jsonl.old"}));
  ASSERT_EQ(notes.size(), 6u);
  EXPECT_NE(notes[0].find("deleted " + (dir_ / "audit.jsonl.20261102T120000Z").string() +
                          " (records seq 1..1, the newest of 2026-11-01T12:00:00Z, older than 3 "
                          "days)"),
            std::string::npos)
      << notes[0];
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 4u);
  const auto r = verify(*files);
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.first_seq, 7u);
  EXPECT_NE(r.anchor, kAuditGenesis);
  EXPECT_EQ(r.records, 4u);
}

TEST_F(AuditLogTest, RetentionOnOpenNeverDeletesTheLiveFile) {
  auto o = options();
  o.max_bytes = 1;
  {
    auto log = AuditLog::open(o, at("2026-01-01T00:00:00Z"));
    ASSERT_TRUE(log.ok());
    for (int i = 1; i <= 3; ++i)
      ASSERT_TRUE(log->append(event(i), at("2026-01-01T00:00:00Z")).ok());
  }
  ASSERT_EQ(rotated().size(), 2u);
  std::vector<std::string> notes;
  auto log = AuditLog::open(options(), at("2026-12-31T00:00:00Z"), &notes);  // 364 days later
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(rotated().empty());
  EXPECT_EQ(notes.size(), 2u);
  EXPECT_EQ(lines(path_).size(), 1u);
  EXPECT_EQ(log->next_seq(), 4u);
}

TEST_F(AuditLogTest, SeqAndChainContinueAcrossReopen) {
  write_records(3);
  std::string head;
  {
    std::vector<std::string> notes;
    auto log = AuditLog::open(options(), at("2026-11-26T11:00:00Z"), &notes);
    ASSERT_TRUE(log.ok());
    EXPECT_TRUE(notes.empty());
    EXPECT_EQ(log->next_seq(), 4u);
    EXPECT_EQ(log->head_hash(), verify().head);
    ASSERT_TRUE(log->append(event(4), at("2026-11-26T11:00:00Z")).ok());
    head = log->head_hash();
  }
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.records, 4u);
  EXPECT_EQ(r.head, head);
}

// A crash between renaming the live file and writing to the new one: the chain goes on from the
// rotated file.
TEST_F(AuditLogTest, EmptyLiveFileContinuesFromTheNewestRotatedFile) {
  write_records(3);
  fs::rename(path_, dir_ / "audit.jsonl.20261126T100003Z");
  write(path_, "");
  auto log = AuditLog::open(options(), at("2026-11-26T11:00:00Z"));
  ASSERT_TRUE(log.ok()) << log.error().str();
  EXPECT_EQ(log->next_seq(), 4u);
  ASSERT_TRUE(log->append(event(4), at("2026-11-26T11:00:00Z")).ok());
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok());
  const auto r = verify(*files);
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.records, 4u);
}

TEST_F(AuditLogTest, TornLastLineIsRepairedOnOpen) {
  write_records(3);
  const std::string good = read(path_);
  write(path_, good + R"({"seq":4,"time":"2026-11-26T10:00:03Z","prev":"ab)");
  {
    const auto r = verify();
    EXPECT_FALSE(r.intact);
    EXPECT_EQ(r.broken_line, 4u);
    EXPECT_EQ(r.broken_seq, 4u);
    EXPECT_NE(r.why.find("does not end in a newline"), std::string::npos);
  }
  std::vector<std::string> notes;
  auto log = AuditLog::open(options(), at("2026-11-26T11:00:00Z"), &notes);
  ASSERT_TRUE(log.ok()) << log.error().str();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("removed an incomplete last line (49 bytes)"), std::string::npos)
      << notes[0];
  EXPECT_EQ(read(path_), good);
  EXPECT_EQ(log->next_seq(), 4u);
  ASSERT_TRUE(log->append(event(4), at("2026-11-26T11:00:00Z")).ok());
  const auto r = verify();
  EXPECT_TRUE(r.intact) << r.why;
  EXPECT_EQ(r.records, 4u);
}

// Power loss after the file grew but before its data reached the disk leaves NULs.
TEST_F(AuditLogTest, UnwrittenNulTailIsRepairedOnOpen) {
  write_records(2);
  const std::string good = read(path_);
  write(path_, good + std::string(40, '\0') + "gh\"}\n" + std::string(10, '\0'));
  std::vector<std::string> notes;
  auto log = AuditLog::open(options(), at("2026-11-26T11:00:00Z"), &notes);
  ASSERT_TRUE(log.ok()) << log.error().str();
  EXPECT_EQ(notes.size(), 2u);
  EXPECT_EQ(read(path_), good);
  EXPECT_EQ(log->next_seq(), 3u);
}

TEST_F(AuditLogTest, DamagedCompleteLastLineIsRefusedNotRepaired) {
  write_records(3);
  auto ls = lines(path_);
  ls[2].replace(ls[2].find("applied serial 3"), 16, "applied serial 8");
  write(path_, join(ls));
  auto log = AuditLog::open(options(), at("2026-11-26T11:00:00Z"));
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find(path_ + ":3: the last record is damaged"), std::string::npos)
      << log.error().message;
  EXPECT_EQ(read(path_), join(ls));  // evidence untouched
}

TEST_F(AuditLogTest, SecondWriterIsRefused) {
  auto first = AuditLog::open(options(), at("2026-11-26T10:00:00Z"));
  ASSERT_TRUE(first.ok());
  auto second = AuditLog::open(options(), at("2026-11-26T10:00:00Z"));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("in use by another process"), std::string::npos);
}

TEST_F(AuditLogTest, FlushWithoutFsyncEach) {
  auto o = options();
  o.fsync_each = false;
  auto log = AuditLog::open(o, at("2026-11-26T10:00:00Z"));
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE(log->append(event(1), at("2026-11-26T10:00:00Z")).ok());
  EXPECT_TRUE(log->flush().ok());
  EXPECT_TRUE(log->flush().ok());
  EXPECT_EQ(lines(path_).size(), 1u);
}

// --- the real binary ---------------------------------------------------------------------------

struct Output {
  int code = -1;
  std::string out;  // stdout and stderr together
};

// The enforcer binary of this build tree: next to tests/ in enforcer/ (or
// $DRAWBRIDGE_ENFORCER_BIN).
std::string enforcer_binary() {
  if (const char* env = std::getenv("DRAWBRIDGE_ENFORCER_BIN")) return env;
#ifdef DRAWBRIDGE_ENFORCER_BIN
  return DRAWBRIDGE_ENFORCER_BIN;
#else
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (self.parent_path().parent_path() / "enforcer" / "drawbridge-enforcer").string();
#endif
}

Output run(const std::string& args) {
  const std::string cmd = "'" + enforcer_binary() + "' " + args + " 2>&1";
  Output r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST_F(AuditLogTest, VerifyLogCommand) {
  if (!fs::exists(enforcer_binary())) GTEST_SKIP() << "no enforcer binary at " << enforcer_binary();
  auto o = options();
  o.max_bytes = 1000;
  std::string head;
  {
    auto log = AuditLog::open(o, at("2026-11-26T10:00:00Z"));
    ASSERT_TRUE(log.ok());
    for (int i = 1; i <= 5; ++i)
      ASSERT_TRUE(log->append(event(i), at("2026-11-26T10:00:00Z")).ok());
    head = log->head_hash();
  }
  const auto files = audit_log_files(path_);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 2u);
  const std::string rotated_file = (*files)[0];

  auto r = run("verify-log '" + rotated_file + "' '" + path_ + "'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out,
            "intact: 5 records (seq 1..5) in 2 files\n"
            "anchor: genesis (the first record ever written)\n"
            "head:   " +
                head + " (seq 5, 2026-11-26T10:00:00Z)\n");
  r = run("verify-log --rotated '" + path_ + "'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("intact: 5 records (seq 1..5) in 2 files"), std::string::npos) << r.out;

  // Out of order.
  r = run("verify-log '" + path_ + "' '" + rotated_file + "'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(
      r.out.find(rotated_file + ":1: record seq 1 is broken: sequence 1 where 6 was expected"),
      std::string::npos)
      << r.out;

  // Tampered: the second record of the rotated file.
  auto ls = lines(rotated_file);
  ls[1].replace(ls[1].find("applied serial 2"), 16, "applied serial 6");
  write(rotated_file, join(ls));
  r = run("verify-log --rotated '" + path_ + "'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(
      r.out.find(rotated_file + ":2: record seq 2 is broken: its hash does not match its content"),
      std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("intact before it: 1 record (seq 1..1)"), std::string::npos) << r.out;

  r = run("verify-log '" + (dir_ / "missing.jsonl").string() + "'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("cannot open " + (dir_ / "missing.jsonl").string()), std::string::npos)
      << r.out;

  r = run("verify-log");
  EXPECT_EQ(r.code, 2) << r.out;
}

}  // namespace
}  // namespace drawbridge
