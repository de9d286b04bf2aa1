// The event spool: order, persistence, one cursor per consumer, repair of torn tails, and the
// bound: a full spool compacts into loss summaries whose counts are exact, so that for every
// consumer  appended = delivered (non-summary) + compacted. Also Delivery with a fake output:
// in order, retried with backoff, stopped promptly.
#include "enforcer/soc/event_spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "enforcer/soc/event_codec.h"
#include "enforcer/soc/event_sink.h"

namespace drawbridge {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "drawbridge-spool-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

SocEvent event(int i, const char* what = action::kConnectionDenied) {
  SocEvent e;
  e.timestamp = Instant{milliseconds{1767225600000LL + i}};
  e.kind = EventKind::violation;
  e.action = what;
  e.site = "clinic-east";
  e.message = "event number " + std::to_string(i);
  e.packets = static_cast<std::uint64_t>(i % 7);
  e.labels["i"] = std::to_string(i);
  return e;
}

std::unique_ptr<EventSpool> open_spool(const std::string& dir, std::vector<std::string> consumers,
                                       std::uint64_t max_bytes = 256ull << 20,
                                       std::uint64_t segment_bytes = 0,
                                       std::vector<std::string>* notes = nullptr) {
  SpoolOptions o;
  o.directory = dir;
  o.consumers = std::move(consumers);
  o.max_bytes = max_bytes;
  o.segment_bytes = segment_bytes;
  o.sync_appends = false;  // the page cache is enough for a process that does not crash
  auto s = EventSpool::open(o, notes);
  EXPECT_TRUE(s) << s.error().str();
  return s ? std::move(*s) : nullptr;
}

// Takes everything the consumer has now, acknowledging each record.
std::vector<SpoolRecord> drain(EventSpool& spool, const std::string& consumer) {
  std::vector<SpoolRecord> out;
  for (;;) {
    auto r = spool.next(consumer, milliseconds{0});
    EXPECT_TRUE(r) << r.error().str();
    if (!r || !*r) return out;
    auto ack = spool.ack(consumer, (*r)->event.sequence);
    EXPECT_TRUE(ack) << ack.error().str();
    out.push_back(std::move(**r));
  }
}

std::uint64_t lost_in(const std::vector<SpoolRecord>& records) {
  std::uint64_t lost = 0;
  for (const auto& r : records) {
    if (r.summary) lost += std::stoull(r.event.labels.at("lost"));
  }
  return lost;
}

std::uint64_t real_in(const std::vector<SpoolRecord>& records) {
  return static_cast<std::uint64_t>(
      std::count_if(records.begin(), records.end(), [](const auto& r) { return !r.summary; }));
}

void expect_increasing(const std::vector<SpoolRecord>& records) {
  for (std::size_t i = 1; i < records.size(); ++i) {
    ASSERT_LT(records[i - 1].event.sequence, records[i].event.sequence) << "at " << i;
  }
}

std::vector<fs::path> segment_files(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".seg") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(EventSpool, AssignsSequencesAndGivesRecordsBackInOrder) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"soc"});
  for (int i = 1; i <= 100; ++i) {
    auto seq = spool->append(event(i));
    ASSERT_TRUE(seq) << seq.error().str();
    EXPECT_EQ(*seq, static_cast<std::uint64_t>(i));
  }
  const auto got = drain(*spool, "soc");
  ASSERT_EQ(got.size(), 100u);
  for (int i = 1; i <= 100; ++i) {
    auto want = event(i);
    want.sequence = static_cast<std::uint64_t>(i);
    EXPECT_TRUE(same_event(got[static_cast<std::size_t>(i - 1)].event, want)) << i;
    EXPECT_FALSE(got[static_cast<std::size_t>(i - 1)].summary);
  }
}

TEST(EventSpool, GivesTheSameRecordUntilAcknowledged) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"soc"});
  ASSERT_TRUE(spool->append(std::vector<SocEvent>{event(1), event(2)}));
  auto a = spool->next("soc", milliseconds{0});
  auto b = spool->next("soc", milliseconds{0});
  ASSERT_TRUE(a && *a && b && *b);
  EXPECT_EQ((*a)->event.sequence, 1u);
  EXPECT_EQ((*b)->event.sequence, 1u);
  EXPECT_FALSE(spool->ack("soc", 2)) << "acknowledging ahead of the cursor";
  EXPECT_FALSE(spool->ack("nobody", 1));
  EXPECT_FALSE(spool->next("nobody", milliseconds{0}));
  ASSERT_TRUE(spool->ack("soc", 1));
  auto c = spool->next("soc", milliseconds{0});
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->event.sequence, 2u);
}

TEST(EventSpool, WaitsForANewRecordAndStopsOnRequest) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"soc"});
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds{50});
    ASSERT_TRUE(spool->append(event(1)));
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto r = spool->next("soc", milliseconds{5000});
  writer.join();
  ASSERT_TRUE(r && *r);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds{2000});
  ASSERT_TRUE(spool->ack("soc", 1));

  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(milliseconds{50});
    stop.request_stop();
  });
  const auto t1 = std::chrono::steady_clock::now();
  auto none = spool->next("soc", milliseconds{10000}, stop.get_token());
  stopper.join();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, milliseconds{2000});
}

TEST(EventSpool, SurvivesReopenAndKeepsNumbering) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), {"soc"});
    for (int i = 1; i <= 50; ++i) ASSERT_TRUE(spool->append(event(i)));
    for (int i = 1; i <= 20; ++i) {
      auto r = spool->next("soc", milliseconds{0});
      ASSERT_TRUE(r && *r);
      ASSERT_TRUE(spool->ack("soc", (*r)->event.sequence));
    }
  }
  {
    auto spool = open_spool(dir.path(), {"soc"});
    auto r = spool->next("soc", milliseconds{0});
    ASSERT_TRUE(r && *r);
    EXPECT_EQ((*r)->event.sequence, 21u);
    EXPECT_EQ((*r)->event.labels.at("i"), "21");
    auto seq = spool->append(event(51));
    ASSERT_TRUE(seq);
    EXPECT_EQ(*seq, 51u);
    const auto rest = drain(*spool, "soc");
    ASSERT_EQ(rest.size(), 31u);
    EXPECT_EQ(rest.back().event.sequence, 51u);
  }
  {
    // Everything delivered: the numbering still goes on after a restart.
    auto spool = open_spool(dir.path(), {"soc"});
    EXPECT_EQ(spool->stats().consumers.at(0).backlog, 0u);
    auto seq = spool->append(event(52));
    ASSERT_TRUE(seq);
    EXPECT_EQ(*seq, 52u);
  }
}

TEST(EventSpool, ATornAcknowledgementCostsOneRepeatNotTheCursor) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), {"soc"});
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(spool->append(event(i)));
    for (std::uint64_t seq = 1; seq <= 5; ++seq) {
      ASSERT_TRUE(spool->next("soc", milliseconds{0}));
      ASSERT_TRUE(spool->ack("soc", seq));
    }
  }
  // The fifth acknowledgement went to the second slot (bytes 24..47); tear it.
  {
    const int fd = ::open((dir.path() + "/soc.ack").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const char junk[4] = {1, 2, 3, 4};
    ASSERT_EQ(::pwrite(fd, junk, sizeof junk, 24 + 18), 4);
    ::close(fd);
  }
  auto spool = open_spool(dir.path(), {"soc"});
  auto r = spool->next("soc", milliseconds{0});
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->event.sequence, 5u) << "the older slot: event 5 is sent again";
}

TEST(EventSpool, RefusesASecondOpenOfTheSameDirectory) {
  TempDir dir;
  auto first = open_spool(dir.path(), {"soc"});
  SpoolOptions o;
  o.directory = dir.path();
  o.consumers = {"soc"};
  auto second = EventSpool::open(o);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("in use"), std::string::npos);
}

TEST(EventSpool, RefusesBadOptions) {
  TempDir dir;
  SpoolOptions o;
  o.directory = dir.path();
  o.consumers = {"../escape"};
  EXPECT_FALSE(EventSpool::open(o));
  o.consumers = {"a", "a"};
  EXPECT_FALSE(EventSpool::open(o));
  o.consumers = {"a"};
  o.max_bytes = 8192;
  o.segment_bytes = 4096;
  EXPECT_FALSE(EventSpool::open(o)) << "fewer than four segments";
}

TEST(EventSpool, EachConsumerHasItsOwnCursor) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), {"fast", "slow"}, 1 << 20, 4096);
    for (int i = 1; i <= 200; ++i) ASSERT_TRUE(spool->append(event(i)));
    EXPECT_EQ(drain(*spool, "fast").size(), 200u);
    // Nothing is deleted while "slow" still needs it.
    EXPECT_EQ(spool->stats().consumers.at(1).backlog, 200u);
    EXPECT_EQ(spool->stats().first_sequence, 1u);
  }
  {
    auto spool = open_spool(dir.path(), {"fast", "slow"}, 1 << 20, 4096);
    EXPECT_EQ(drain(*spool, "fast").size(), 0u);
    const auto slow = drain(*spool, "slow");
    ASSERT_EQ(slow.size(), 200u);
    expect_increasing(slow);
    // Both are past every record: only the newest segment is left.
    EXPECT_EQ(spool->stats().segments, 1u);
    EXPECT_EQ(segment_files(dir.path()).size(), 1u);
  }
  {
    // A consumer added later is given what is still spooled, from the oldest record.
    auto spool = open_spool(dir.path(), {"fast", "slow", "new"}, 1 << 20, 4096);
    const auto got = drain(*spool, "new");
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.back().event.sequence, 200u);
  }
}

TEST(EventSpool, TornTailIsCutOnOpenAndNumberingResumesThere) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), {"soc"});
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(spool->append(event(i)));
  }
  const auto seg = segment_files(dir.path()).back();
  const auto size = fs::file_size(seg);
  fs::resize_file(seg, size - 5);  // a crash in the middle of writing record 10
  {
    std::vector<std::string> notes;
    auto spool = open_spool(dir.path(), {"soc"}, 256ull << 20, 0, &notes);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("torn tail"), std::string::npos) << notes[0];
    EXPECT_GT(spool->stats().repaired_bytes, 0u);
    auto seq = spool->append(event(10));
    ASSERT_TRUE(seq);
    EXPECT_EQ(*seq, 10u);
    const auto got = drain(*spool, "soc");
    ASSERT_EQ(got.size(), 10u);
    EXPECT_EQ(got.back().event.labels.at("i"), "10");
  }
  // Garbage after the last record (a torn header) and a flipped bit in the last record.
  {
    std::ofstream out(seg, std::ios::app | std::ios::binary);
    out << "\x07\x00";
  }
  {
    std::vector<std::string> notes;
    auto spool = open_spool(dir.path(), {"soc"}, 256ull << 20, 0, &notes);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("incomplete record header"), std::string::npos) << notes[0];
    ASSERT_TRUE(spool->append(event(11)));
  }
  {
    const int fd = ::open(seg.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const auto end = fs::file_size(seg);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(end - 3)), 1);
    c = static_cast<char>(c ^ 0x20);
    ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(end - 3)), 1);
    ::close(fd);
  }
  {
    std::vector<std::string> notes;
    auto spool = open_spool(dir.path(), {"soc"}, 256ull << 20, 0, &notes);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("CRC mismatch"), std::string::npos) << notes[0];
    EXPECT_EQ(spool->stats().next_sequence, 11u);
  }
}

TEST(EventSpool, DamageInAnOlderSegmentIsSkippedAndCounted) {
  TempDir dir;
  {
    auto spool = open_spool(dir.path(), {"soc"}, 1 << 20, 4096);
    for (int i = 1; i <= 100; ++i) ASSERT_TRUE(spool->append(event(i)));
  }
  const auto segs = segment_files(dir.path());
  ASSERT_GE(segs.size(), 3u);
  {
    // Flip a byte in the middle of the first segment.
    const int fd = ::open(segs[0].c_str(), O_RDWR);
    const auto mid = static_cast<off_t>(fs::file_size(segs[0]) / 2);
    char c = 0;
    ASSERT_EQ(::pread(fd, &c, 1, mid), 1);
    c = static_cast<char>(c ^ 0x01);
    ASSERT_EQ(::pwrite(fd, &c, 1, mid), 1);
    ::close(fd);
  }
  std::vector<std::string> notes;
  auto spool = open_spool(dir.path(), {"soc"}, 1 << 20, 4096, &notes);
  ASSERT_GE(notes.size(), 2u);
  EXPECT_NE(notes[0].find("damaged record"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("lost to damage"), std::string::npos) << notes[1];
  const auto got = drain(*spool, "soc");
  expect_increasing(got);
  const auto damaged = spool->stats().consumers.at(0).damaged;
  EXPECT_GT(damaged, 0u);
  EXPECT_EQ(got.size() + damaged, 100u) << "every record is delivered or counted";
  EXPECT_EQ(got.back().event.sequence, 100u);
}

TEST(EventSpool, FullSpoolCompactsOldestIntoOneExactSummary) {
  TempDir dir;
  const std::uint64_t max_bytes = 32 * 1024, segment = 4096;
  auto spool = open_spool(dir.path(), {"soc"}, max_bytes, segment);
  const int n = 2000;
  std::uint64_t packets = 0;
  for (int i = 1; i <= n; ++i) {
    const char* what = i % 3 == 0 ? action::kSessionStarted : action::kConnectionDenied;
    auto e = event(i, what);
    packets += e.packets;
    ASSERT_TRUE(spool->append(e));
    ASSERT_LE(spool->stats().bytes, max_bytes) << "after " << i;
  }
  const auto before = spool->stats().consumers.at(0);
  EXPECT_GT(before.compacted, 0u);
  const auto got = drain(*spool, "soc");
  expect_increasing(got);
  // The record the output may have been sending is kept, then ONE summary, then the rest.
  ASSERT_GE(got.size(), 3u);
  EXPECT_FALSE(got[0].summary);
  EXPECT_EQ(got[0].event.sequence, 1u);
  ASSERT_TRUE(got[1].summary);
  EXPECT_EQ(got[1].event.sequence, 2u);
  EXPECT_EQ(std::count_if(got.begin(), got.end(), [](const auto& r) { return r.summary; }), 1);
  const auto& summary = got[1].event;
  EXPECT_EQ(summary.action, action::kSpoolLoss);
  const auto lost = std::stoull(summary.labels.at("lost"));
  EXPECT_EQ(lost, before.compacted);
  EXPECT_EQ(real_in(got) + lost, static_cast<std::uint64_t>(n)) << "nothing silently lost";
  EXPECT_EQ(summary.labels.at("first_sequence"), "2");
  EXPECT_EQ(std::stoull(summary.labels.at("last_sequence")) + 1, got[2].event.sequence);
  EXPECT_EQ(std::stoull(summary.labels.at("lost.connection-denied")) +
                std::stoull(summary.labels.at("lost.provider-session-started")),
            lost);
  std::uint64_t delivered_packets = 0;
  for (const auto& r : got) {
    if (!r.summary) delivered_packets += r.event.packets;
  }
  EXPECT_EQ(summary.packets + delivered_packets, packets);
  EXPECT_EQ(summary.first_seen, event(2).timestamp);
  EXPECT_EQ(spool->stats().consumers.at(0).compacted, lost);
}

TEST(EventSpool, CompactionIsExactPerConsumerAndSurvivesReopen) {
  TempDir dir;
  const std::uint64_t max_bytes = 32 * 1024, segment = 4096;
  const int n = 1500;
  std::vector<SpoolRecord> a, b;
  {
    auto spool = open_spool(dir.path(), {"a", "b"}, max_bytes, segment);
    for (int i = 1; i <= n; ++i) {
      ASSERT_TRUE(spool->append(event(i)));
      // "a" keeps up for a while, then falls behind; "b" never reads.
      if (i == 300) {
        auto part = drain(*spool, "a");
        a.insert(a.end(), part.begin(), part.end());
      }
      if (i == 700) {
        // "a" is given a record but has not acknowledged it when its segment goes.
        auto r = spool->next("a", milliseconds{0});
        ASSERT_TRUE(r && *r);
        EXPECT_EQ((*r)->event.sequence, 301u);
      }
    }
  }
  auto spool = open_spool(dir.path(), {"a", "b"}, max_bytes, segment);
  auto rest = drain(*spool, "a");
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest[0].event.sequence, 301u) << "the record in flight survived compaction";
  EXPECT_FALSE(rest[0].summary);
  a.insert(a.end(), rest.begin(), rest.end());
  b = drain(*spool, "b");
  expect_increasing(a);
  expect_increasing(b);
  const auto stats = spool->stats();
  EXPECT_EQ(real_in(a) + stats.consumers.at(0).compacted, static_cast<std::uint64_t>(n));
  EXPECT_EQ(real_in(b) + stats.consumers.at(1).compacted, static_cast<std::uint64_t>(n));
  EXPECT_EQ(lost_in(a), stats.consumers.at(0).compacted);
  EXPECT_EQ(lost_in(b), stats.consumers.at(1).compacted);
  EXPECT_GT(stats.consumers.at(1).compacted, stats.consumers.at(0).compacted);
}

TEST(EventSpool, UsesTheCallersSummarizerAndFallsBackWhenItThrows) {
  TempDir dir;
  SpoolOptions o;
  o.directory = dir.path();
  o.consumers = {"soc"};
  o.max_bytes = 16 * 1024;
  o.segment_bytes = 4096;
  o.sync_appends = false;
  std::atomic<int> calls{0};
  o.summarize = [&](const std::vector<SocEvent>& dropped) {
    if (++calls == 2) throw std::runtime_error("summarizer bug");
    SocEvent s = summarize_lost_events(dropped);
    s.labels["by"] = "caller";
    return s;
  };
  auto spool = EventSpool::open(o);
  ASSERT_TRUE(spool);
  for (int i = 1; i <= 500; ++i) ASSERT_TRUE((*spool)->append(event(i)));
  EXPECT_GE(calls.load(), 3);
  const auto got = drain(**spool, "soc");
  EXPECT_EQ(real_in(got) + lost_in(got), 500u);
  EXPECT_EQ(lost_in(got), (*spool)->stats().consumers.at(0).compacted);
}

TEST(EventSpool, ConcurrentWriterAndConsumersLoseNothing) {
  TempDir dir;
  // Small enough that compaction runs while the consumers read.
  auto spool = open_spool(dir.path(), {"a", "b"}, 64 * 1024, 4096);
  const int n = 3000;
  std::vector<SpoolRecord> got_a, got_b;
  std::atomic<bool> done{false};
  auto consume = [&](const std::string& name, std::vector<SpoolRecord>& got, int slow_every) {
    int k = 0;
    for (;;) {
      auto r = spool->next(name, milliseconds{20});
      ASSERT_TRUE(r) << r.error().str();
      if (!*r) {
        if (done.load()) return;
        continue;
      }
      if (slow_every != 0 && ++k % slow_every == 0) std::this_thread::sleep_for(milliseconds{1});
      ASSERT_TRUE(spool->ack(name, (*r)->event.sequence));
      got.push_back(std::move(**r));
    }
  };
  std::thread ta(consume, "a", std::ref(got_a), 0);
  std::thread tb(consume, "b", std::ref(got_b), 5);
  for (int i = 1; i <= n; ++i) ASSERT_TRUE(spool->append(event(i)));
  // Let the consumers catch up, then stop them.
  for (int i = 0; i < 500; ++i) {
    const auto s = spool->stats();
    if (s.consumers.at(0).backlog == 0 && s.consumers.at(1).backlog == 0) break;
    std::this_thread::sleep_for(milliseconds{10});
  }
  done = true;
  ta.join();
  tb.join();
  expect_increasing(got_a);
  expect_increasing(got_b);
  const auto s = spool->stats();
  EXPECT_EQ(real_in(got_a) + s.consumers.at(0).compacted, static_cast<std::uint64_t>(n));
  EXPECT_EQ(real_in(got_b) + s.consumers.at(1).compacted, static_cast<std::uint64_t>(n));
  EXPECT_EQ(lost_in(got_a), s.consumers.at(0).compacted);
  EXPECT_EQ(lost_in(got_b), s.consumers.at(1).compacted);
}

// --- Delivery with a fake output -------------------------------------------------------------

class FakeOutput : public EventOutput {
 public:
  FakeOutput(std::string name, int fail_first) : name_(std::move(name)), fail_(fail_first) {}
  [[nodiscard]] std::string name() const override { return name_; }
  Result<void> deliver(const SocEvent& e) override {
    const std::lock_guard lock(mu_);
    if (fail_ > 0) {
      --fail_;
      return make_error("collector down");
    }
    if (throw_next_) {
      throw_next_ = false;
      throw std::runtime_error("bug in an output");
    }
    got_.push_back(e.sequence);
    return {};
  }
  std::vector<std::uint64_t> got() const {
    const std::lock_guard lock(mu_);
    return got_;
  }
  void fail_next(int n) {
    const std::lock_guard lock(mu_);
    fail_ = n;
  }
  void throw_next() {
    const std::lock_guard lock(mu_);
    throw_next_ = true;
  }

 private:
  std::string name_;
  mutable std::mutex mu_;
  int fail_;
  bool throw_next_ = false;
  std::vector<std::uint64_t> got_;
};

template <class Pred>
bool eventually(Pred pred, milliseconds limit = milliseconds{10000}) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds{5});
  }
  return pred();
}

TEST(Delivery, DeliversInOrderAndRetriesWithBackoff) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"fake"});
  auto out = std::make_unique<FakeOutput>("fake", 3);
  auto* fake = out.get();
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(std::move(out));
  DeliveryOptions opt;
  opt.initial_backoff = milliseconds{10};
  opt.max_backoff = milliseconds{40};
  std::vector<std::string> notes;
  std::mutex notes_mu;
  opt.on_change = [&](const std::string& s) {
    const std::lock_guard lock(notes_mu);
    notes.push_back(s);
  };
  auto delivery = Delivery::start(*spool, std::move(outputs), opt);
  ASSERT_TRUE(delivery) << delivery.error().str();
  for (int i = 1; i <= 50; ++i) ASSERT_TRUE(spool->append(event(i)));
  ASSERT_TRUE(eventually([&] { return fake->got().size() == 50; }));
  fake->throw_next();
  ASSERT_TRUE(spool->append(event(51)));
  ASSERT_TRUE(eventually([&] { return fake->got().size() == 51; }));
  const auto got = fake->got();
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i + 1);
  ASSERT_TRUE(eventually([&] { return spool->stats().consumers.at(0).backlog == 0; }));
  const auto st = (*delivery)->status().at(0);
  EXPECT_EQ(st.delivered, 51u);
  EXPECT_EQ(st.failures, 4u);
  EXPECT_EQ(st.retries, 4u);
  EXPECT_FALSE(st.failing);
  EXPECT_EQ(st.last_error, "fake: bug in an output");
  const std::lock_guard lock(notes_mu);
  ASSERT_EQ(notes.size(), 4u);  // failing, again, failing (the exception), again
  EXPECT_NE(notes[0].find("collector down"), std::string::npos);
}

TEST(Delivery, StopsPromptlyWhileBackingOffAndKeepsTheRecord) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"fake"});
  auto out = std::make_unique<FakeOutput>("fake", 1000000);
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(std::move(out));
  DeliveryOptions opt;  // 0.5 s doubling to 30 s
  auto delivery = Delivery::start(*spool, std::move(outputs), opt);
  ASSERT_TRUE(delivery);
  ASSERT_TRUE(spool->append(event(1)));
  ASSERT_TRUE(eventually([&] { return (*delivery)->status().at(0).failures >= 2; }));
  const auto t0 = std::chrono::steady_clock::now();
  (*delivery)->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, milliseconds{500});
  EXPECT_EQ((*delivery)->status().at(0).backoff, milliseconds{1000});
  EXPECT_EQ(spool->stats().consumers.at(0).backlog, 1u);
}

TEST(Delivery, RefusesAnOutputThatIsNotASpoolConsumer) {
  TempDir dir;
  auto spool = open_spool(dir.path(), {"soc"});
  std::vector<std::unique_ptr<EventOutput>> outputs;
  outputs.push_back(std::make_unique<FakeOutput>("other", 0));
  EXPECT_FALSE(Delivery::start(*spool, std::move(outputs)));
}

TEST(OctetCounting, PrefixesTheLengthInBytes) {
  EXPECT_EQ(octet_counted("<13>1 - h a - - - hé"), "21 <13>1 - h a - - - hé");
  EXPECT_EQ(octet_counted(""), "0 ");
}

}  // namespace
}  // namespace drawbridge
