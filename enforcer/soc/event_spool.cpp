#include "enforcer/soc/event_spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/window_schedule.h"
#include "enforcer/soc/event_codec.h"

namespace drawbridge {

namespace {

constexpr char kMagic[] = "DBSPOOL1";
constexpr std::uint64_t kMagicSize = 8;
constexpr std::uint64_t kHeaderSize = 16;  // u32 length, u32 crc, u64 sequence
// Far above any real event (a few hundred bytes): a larger length is damage, not data.
constexpr std::uint32_t kMaxPayload = 1u << 20;
constexpr std::uint64_t kMinSegment = 4096;
// <consumer>.ack: two slots of [u32 magic][u32 CRC-32 of the rest][u64 write number][u64 cursor]
// written in turn, so that a torn write leaves the other, older, slot intact.
constexpr std::uint32_t kAckMagic = 0x4B434144;  // "DACK"
constexpr std::uint64_t kAckSlot = 24;

// A file descriptor that closes itself.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

Error sys_error(const std::string& what, const std::string& path) {
  return make_error(what + " " + path + ": " + std::strerror(errno));
}

// CRC-32 (IEEE 802.3, the zlib one): enough to tell a torn or bit-rotten record from a whole one.
std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

std::uint64_t get_le(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::uint32_t record_crc(std::uint64_t sequence, std::string_view payload) {
  std::string seq;
  put_le(seq, sequence, 8);
  const auto c = crc32(reinterpret_cast<const std::uint8_t*>(seq.data()), seq.size());
  return crc32(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), c);
}

std::string make_record(std::uint64_t sequence, const std::string& payload) {
  std::string r;
  r.reserve(kHeaderSize + payload.size());
  put_le(r, payload.size(), 4);
  put_le(r, record_crc(sequence, payload), 4);
  put_le(r, sequence, 8);
  r += payload;
  return r;
}

Result<void> write_all(int fd, const char* data, std::size_t size, std::uint64_t offset,
                       const std::string& path) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot write", path);
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

// Reads exactly `size` bytes; false at end of file (a short read means a torn tail).
Result<bool> read_exact(int fd, std::uint8_t* data, std::size_t size, std::uint64_t offset,
                        const std::string& path) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot read", path);
    }
    if (n == 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void sync_directory(const std::string& dir) {
  const Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) ::fsync(d.get());
}

std::string segment_name(std::uint64_t first) {
  std::string digits = std::to_string(first);
  return std::string(20 - std::min<std::size_t>(20, digits.size()), '0') + digits + ".seg";
}

bool valid_consumer_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::uint64_t label_number(const SocEvent& e, const std::string& key, std::uint64_t fallback) {
  const auto it = e.labels.find(key);
  if (it == e.labels.end()) return fallback;
  try {
    return std::stoull(it->second);
  } catch (const std::exception&) {
    return fallback;
  }
}

}  // namespace

SocEvent summarize_lost_events(const std::vector<SocEvent>& dropped) {
  SocEvent s;
  s.kind = EventKind::audit;
  s.action = action::kSpoolLoss;
  s.outcome = "failure";
  s.reason = "spool-full";
  s.timestamp =
      std::chrono::time_point_cast<std::chrono::milliseconds>(std::chrono::system_clock::now());
  std::uint64_t lost = 0;
  std::map<std::string, std::uint64_t> by_action;
  std::optional<std::uint64_t> first_seq, last_seq;
  for (const auto& e : dropped) {
    const bool summary = e.action == action::kSpoolLoss && e.labels.contains("lost");
    const Instant first = e.first_seen.value_or(e.timestamp);
    const Instant last = e.last_seen.value_or(e.timestamp);
    if (!s.first_seen || first < *s.first_seen) s.first_seen = first;
    if (!s.last_seen || last > *s.last_seen) s.last_seen = last;
    s.packets += e.packets;
    const std::uint64_t fs = summary ? label_number(e, "first_sequence", e.sequence) : e.sequence;
    const std::uint64_t ls = summary ? label_number(e, "last_sequence", e.sequence) : e.sequence;
    if (!first_seq || fs < *first_seq) first_seq = fs;
    if (!last_seq || ls > *last_seq) last_seq = ls;
    if (s.site.empty()) s.site = e.site;
    if (summary) {
      lost += label_number(e, "lost", 0);
      for (const auto& [key, value] : e.labels) {
        if (key.starts_with("lost.")) by_action[key.substr(5)] += label_number(e, key, 0);
      }
    } else {
      ++lost;
      ++by_action[e.action.empty() ? "unknown" : e.action];
    }
  }
  s.labels["lost"] = std::to_string(lost);
  for (const auto& [name, count] : by_action) s.labels["lost." + name] = std::to_string(count);
  if (first_seq) s.labels["first_sequence"] = std::to_string(*first_seq);
  if (last_seq) s.labels["last_sequence"] = std::to_string(*last_seq);
  if (s.first_seen) s.labels["first_time"] = format_instant(*s.first_seen);
  if (s.last_seen) s.labels["last_time"] = format_instant(*s.last_seen);
  s.message = std::to_string(lost) +
              " events were compacted into this summary because the event spool was full "
              "(a collector has been unreachable for long)";
  return s;
}

struct EventSpool::Impl {
  struct Segment {
    std::uint64_t first = 0;
    std::uint64_t bytes = 0;             // file size
    std::vector<std::uint64_t> offsets;  // of each record, in sequence order
    Fd fd;
    std::string path;
    [[nodiscard]] std::uint64_t end() const { return first + offsets.size(); }
  };
  struct Queued {
    SocEvent event;
    bool summary = false;
  };
  struct Consumer {
    std::string name;
    std::uint64_t cursor = 1;
    // Before the cursor: at most [the record it was given when its segment was compacted] and
    // [one loss summary]; the head is never changed, as an output may be sending it.
    std::deque<Queued> front;
    std::uint64_t compacted = 0;
    std::uint64_t acknowledged = 0;
    std::uint64_t damaged = 0;
    Fd ack_fd;                     // <name>.ack, see save_cursor()
    std::uint64_t ack_writes = 0;  // picks the slot and orders the two
  };

  SpoolOptions opt;
  Fd lock;
  mutable std::mutex mu;
  std::condition_variable_any cv;
  std::deque<Segment> segments;
  std::map<std::string, Consumer> consumers;
  std::uint64_t next_seq = 1;
  std::uint64_t total_bytes = 0;
  std::uint64_t appended = 0;
  std::uint64_t repaired = 0;

  std::string path_of(const std::string& file) const { return opt.directory + "/" + file; }
  std::string cursor_path(const std::string& name) const { return path_of(name + ".cursor"); }

  // --- opening -----------------------------------------------------------------------------

  Result<void> scan_segment(Segment& s, bool is_tail, std::vector<std::string>* notes) {
    struct stat st {};
    if (::fstat(s.fd.get(), &st) != 0) return sys_error("cannot stat", s.path);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::array<std::uint8_t, kMagicSize> magic{};
    auto got = read_exact(s.fd.get(), magic.data(), magic.size(), 0, s.path);
    if (!got) return got.error();
    if (*got && std::memcmp(magic.data(), kMagic, kMagicSize) != 0) {
      return make_error(s.path + " is not a spool segment (bad magic); move it away");
    }
    std::uint64_t off = kMagicSize;
    std::string why;
    if (!*got) {
      // Created, but the crash came before its header: only ever the newest file.
      if (size > 0 && notes) notes->push_back(s.path + ": torn segment header rewritten");
      if (::ftruncate(s.fd.get(), 0) != 0) return sys_error("cannot truncate", s.path);
      if (auto w = write_all(s.fd.get(), kMagic, kMagicSize, 0, s.path); !w) return w;
      repaired += size;
      s.bytes = kMagicSize;
      return {};
    }
    std::vector<std::uint8_t> buf;
    while (off < size) {
      std::array<std::uint8_t, kHeaderSize> h{};
      auto ok = read_exact(s.fd.get(), h.data(), h.size(), off, s.path);
      if (!ok) return ok.error();
      if (!*ok) {
        why = "incomplete record header";
        break;
      }
      const auto len = static_cast<std::uint32_t>(get_le(h.data(), 4));
      const auto crc = static_cast<std::uint32_t>(get_le(h.data() + 4, 4));
      const auto seq = get_le(h.data() + 8, 8);
      if (len > kMaxPayload) {
        why = "impossible record length";
        break;
      }
      buf.resize(len);
      ok = read_exact(s.fd.get(), buf.data(), len, off + kHeaderSize, s.path);
      if (!ok) return ok.error();
      if (!*ok) {
        why = "incomplete record";
        break;
      }
      const std::string_view payload(reinterpret_cast<const char*>(buf.data()), len);
      if (record_crc(seq, payload) != crc) {
        why = "CRC mismatch";
        break;
      }
      if (seq != s.end()) {
        why = "sequence " + std::to_string(seq) + " where " + std::to_string(s.end()) +
              " was expected";
        break;
      }
      s.offsets.push_back(off);
      off += kHeaderSize + len;
    }
    if (off < size) {
      // A torn tail is what a crash during append leaves; anywhere else it is damage, and the
      // records after it cannot be trusted to be in sequence either.
      if (notes) {
        notes->push_back(s.path + ": " + (is_tail ? "torn tail" : "damaged record") + " (" + why +
                         ") at byte " + std::to_string(off) + "; cut " +
                         std::to_string(size - off) + " bytes");
      }
      if (::ftruncate(s.fd.get(), static_cast<off_t>(off)) != 0) {
        return sys_error("cannot truncate", s.path);
      }
      if (::fdatasync(s.fd.get()) != 0) return sys_error("cannot sync", s.path);
      repaired += size - off;
    }
    s.bytes = off;
    return {};
  }

  Result<void> load_segments(std::vector<std::string>* notes) {
    std::vector<std::pair<std::uint64_t, std::string>> found;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(opt.directory, ec)) {
      const auto name = entry.path().filename().string();
      if (name.size() != 24 || !name.ends_with(".seg")) continue;
      const auto digits = name.substr(0, 20);
      if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        continue;
      try {
        found.emplace_back(std::stoull(digits), entry.path().string());
      } catch (const std::exception&) {
        return make_error(entry.path().string() + ": sequence out of range; move it away");
      }
    }
    if (ec) return make_error("cannot list " + opt.directory + ": " + ec.message());
    std::sort(found.begin(), found.end());
    for (std::size_t i = 0; i < found.size(); ++i) {
      Segment s;
      s.first = found[i].first;
      s.path = found[i].second;
      s.fd = Fd(::open(s.path.c_str(), O_RDWR | O_CLOEXEC));
      if (!s.fd.valid()) return sys_error("cannot open", s.path);
      const bool is_tail = i + 1 == found.size();
      if (auto r = scan_segment(s, is_tail, notes); !r) return r;
      if (!segments.empty() && s.first < segments.back().end()) {
        return make_error(s.path +
                          " overlaps the segment before it; the spool was edited by "
                          "hand, move it away");
      }
      if (s.offsets.empty() && !is_tail) {
        // Nothing in it (all of it was damage): keep the sequence numbering, drop the file.
        if (::unlink(s.path.c_str()) != 0) return sys_error("cannot remove", s.path);
        if (notes) notes->push_back(s.path + ": empty segment removed");
        continue;
      }
      if (!segments.empty() && s.first > segments.back().end() && notes) {
        notes->push_back("sequences " + std::to_string(segments.back().end()) + " to " +
                         std::to_string(s.first - 1) + " were lost to damage");
      }
      total_bytes += s.bytes;
      segments.push_back(std::move(s));
    }
    if (!segments.empty()) next_seq = std::max(next_seq, segments.back().end());
    return {};
  }

  // Reads a consumer's cursor file; false when it has none yet.
  Result<bool> load_consumer(Consumer& c) {
    const auto path = cursor_path(c.name);
    const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno != ENOENT) return sys_error("cannot open", path);
      // Acks without a .cursor file: the consumer existed before a crash that came before its
      // first compaction.
      if (auto r = load_acks(c); !r) return r.error();
      return c.ack_writes > 0;
    }
    std::string text;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return sys_error("cannot read", path);
      }
      if (n == 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    try {
      const auto j = nlohmann::json::parse(text);
      c.cursor = j.at("next").get<std::uint64_t>();
      c.compacted = j.at("compacted").get<std::uint64_t>();
      c.damaged = j.value("damaged", std::uint64_t{0});
      for (const auto& q : j.at("front")) {
        auto e = decode_event(q.at("event").get<std::string>());
        if (!e) return make_error(path + ": " + e.error().message);
        c.front.push_back({std::move(*e), q.at("summary").get<bool>()});
      }
    } catch (const std::exception& e) {
      // Guessing a cursor would either lose or repeat events; the operator decides.
      return make_error(path + " is damaged (" + e.what() +
                        "); remove it to resend everything still spooled to " + c.name);
    }
    if (auto r = load_acks(c); !r) return r.error();
    // Records removed by hand behind our back: never hand out a sequence twice.
    next_seq = std::max(next_seq, c.cursor);
    return true;
  }

  // The cursor is monotonic and both files only ever move it forward, so the later of the
  // two is right: the .cursor file (rewritten on compaction) or the newest intact .ack slot.
  Result<void> load_acks(Consumer& c) {
    const auto path = path_of(c.name + ".ack");
    c.ack_fd = Fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!c.ack_fd.valid()) return sys_error("cannot open", path);
    std::uint64_t best_write = 0;
    for (std::uint64_t slot = 0; slot < 2; ++slot) {
      std::array<std::uint8_t, kAckSlot> b{};
      auto ok = read_exact(c.ack_fd.get(), b.data(), b.size(), slot * kAckSlot, path);
      if (!ok) return ok.error();
      if (!*ok || get_le(b.data(), 4) != kAckMagic) continue;
      if (crc32(b.data() + 8, kAckSlot - 8) != get_le(b.data() + 4, 4)) continue;
      const auto writes = get_le(b.data() + 8, 8);
      if (writes < best_write) continue;
      best_write = writes;
      c.cursor = std::max(c.cursor, get_le(b.data() + 16, 8));
    }
    c.ack_writes = best_write;
    return {};
  }

  Result<void> load_consumers(std::vector<std::string>* notes) {
    std::vector<Consumer*> fresh;
    for (auto& [name, c] : consumers) {
      auto had = load_consumer(c);
      if (!had) return had.error();
      if (!*had) fresh.push_back(&c);
    }
    const std::uint64_t first = segments.empty() ? next_seq : segments.front().first;
    for (auto* c : fresh) {
      // A new output is given what is still spooled: it has had none of it.
      c->cursor = first;
    }
    for (auto& [name, c] : consumers) {
      if (c.cursor >= first) continue;
      const auto gone = first - c.cursor;
      c.damaged += gone;
      c.cursor = first;
      if (notes) {
        notes->push_back(name + ": " + std::to_string(gone) +
                         " spooled events are missing from disk (never delivered to it)");
      }
    }
    return {};
  }

  // --- state ---------------------------------------------------------------------------------

  // Written by rename, so a crash leaves the old or the new cursor, never a mix. `durable`
  // also fsyncs: needed before a segment is deleted (the cursor must not point into a file that
  // is gone); after an ack a lost update only means that an event is sent again.
  Result<void> save_consumer(const Consumer& c, bool durable) const {
    nlohmann::json front = nlohmann::json::array();
    for (const auto& q : c.front) {
      front.push_back({{"summary", q.summary}, {"event", encode_event(q.event)}});
    }
    const nlohmann::json j{
        {"next", c.cursor}, {"compacted", c.compacted}, {"damaged", c.damaged}, {"front", front}};
    const std::string content = j.dump() + "\n";
    const auto path = cursor_path(c.name);
    const auto tmp = path + ".tmp";
    const Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return sys_error("cannot create", tmp);
    if (auto w = write_all(fd.get(), content.data(), content.size(), 0, tmp); !w) return w;
    if (durable && ::fsync(fd.get()) != 0) return sys_error("cannot sync", tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error("cannot rename onto", path);
    if (durable) sync_directory(opt.directory);
    return {};
  }

  // An acknowledgement moves the cursor: one small write in place, no rename and no fsync, as it
  // happens for every event. A crash may lose the last one or two writes, which only means
  // that those events are sent again.
  Result<void> save_cursor(Consumer& c) {
    const std::uint64_t writes = ++c.ack_writes;
    std::string slot;
    put_le(slot, writes, 8);
    put_le(slot, c.cursor, 8);
    const auto crc = crc32(reinterpret_cast<const std::uint8_t*>(slot.data()), slot.size());
    std::string b;
    put_le(b, kAckMagic, 4);
    put_le(b, crc, 4);
    b += slot;
    return write_all(c.ack_fd.get(), b.data(), b.size(), (writes % 2) * kAckSlot,
                     path_of(c.name + ".ack"));
  }

  // Moves a cursor that points into a gap (records lost to damage or removed by hand) to the
  // next record that exists, counting what it skipped.
  void skip_gap(Consumer& c) {
    for (const auto& s : segments) {
      if (c.cursor < s.end()) {
        if (c.cursor < s.first) {
          c.damaged += s.first - c.cursor;
          c.cursor = s.first;
        }
        return;
      }
    }
    if (c.cursor < next_seq) {
      c.damaged += next_seq - c.cursor;
      c.cursor = next_seq;
    }
  }

  [[nodiscard]] bool has_record(const Consumer& c) const {
    return !c.front.empty() || c.cursor < next_seq;
  }

  Segment* segment_of(std::uint64_t seq) {
    for (auto& s : segments) {
      if (seq >= s.first && seq < s.end()) return &s;
    }
    return nullptr;
  }

  // The record's event; an error when the disk no longer holds what was written.
  Result<SocEvent> read_record(const Segment& s, std::uint64_t seq) const {
    const auto off = s.offsets[seq - s.first];
    std::array<std::uint8_t, kHeaderSize> h{};
    auto ok = read_exact(s.fd.get(), h.data(), h.size(), off, s.path);
    if (!ok) return ok.error();
    if (!*ok) return make_error(s.path + ": record " + std::to_string(seq) + " is truncated");
    const auto len = static_cast<std::uint32_t>(get_le(h.data(), 4));
    if (len > kMaxPayload || get_le(h.data() + 8, 8) != seq) {
      return make_error(s.path + ": record " + std::to_string(seq) + " is damaged");
    }
    std::string payload(len, '\0');
    ok = read_exact(s.fd.get(), reinterpret_cast<std::uint8_t*>(payload.data()), len,
                    off + kHeaderSize, s.path);
    if (!ok) return ok.error();
    if (!*ok || record_crc(seq, payload) != get_le(h.data() + 4, 4)) {
      return make_error(s.path + ": record " + std::to_string(seq) + " is damaged");
    }
    auto e = decode_event(payload);
    if (!e) {
      return make_error(s.path + ": record " + std::to_string(seq) + ": " + e.error().message);
    }
    return e;
  }

  // Deletes segments that every consumer is past (never the newest: its name keeps the
  // sequence numbering going when everything has been delivered).
  void collect_garbage() {
    std::uint64_t min_cursor = next_seq;
    for (const auto& [name, c] : consumers) min_cursor = std::min(min_cursor, c.cursor);
    while (segments.size() > 1 && segments.front().end() <= min_cursor) {
      ::unlink(segments.front().path.c_str());
      total_bytes -= segments.front().bytes;
      segments.pop_front();
    }
  }

  // --- appending and compaction --------------------------------------------------------------

  Result<void> new_segment() {
    if (!segments.empty() && opt.sync_appends && ::fdatasync(segments.back().fd.get()) != 0) {
      return sys_error("cannot sync", segments.back().path);
    }
    Segment s;
    s.first = next_seq;
    s.path = path_of(segment_name(next_seq));
    s.fd = Fd(::open(s.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!s.fd.valid()) return sys_error("cannot create", s.path);
    if (auto w = write_all(s.fd.get(), kMagic, kMagicSize, 0, s.path); !w) {
      ::unlink(s.path.c_str());
      return w;
    }
    if (opt.sync_appends) sync_directory(opt.directory);
    s.bytes = kMagicSize;
    total_bytes += s.bytes;
    segments.push_back(std::move(s));
    return {};
  }

  SocEvent summarize(const std::vector<SocEvent>& dropped) const {
    if (opt.summarize) {
      try {
        return opt.summarize(dropped);
      } catch (...) {
        // The caller's summarizer failed; the loss must still be reported, so use ours.
      }
    }
    return summarize_lost_events(dropped);
  }

  // Drops the oldest segment. For each consumer that had not got past it: the record it may be
  // sending is kept (queued before its cursor), the rest go into its loss summary and are
  // counted. Every cursor is saved durably before the file is removed.
  Result<void> compact_oldest() {
    Segment& s = segments.front();
    std::uint64_t from = s.end();
    for (auto& [name, c] : consumers) {
      skip_gap(c);
      from = std::min(from, std::max(c.cursor, s.first));
    }
    std::vector<SocEvent> events;
    events.reserve(s.end() - from);
    for (std::uint64_t seq = from; seq < s.end(); ++seq) {
      auto e = read_record(s, seq);
      if (e) {
        events.push_back(std::move(*e));
      } else {
        // Unreadable, but still an event that is lost: count it under its own name.
        SocEvent placeholder;
        placeholder.sequence = seq;
        placeholder.action = "unreadable-spool-record";
        events.push_back(std::move(placeholder));
      }
    }
    for (auto& [name, c] : consumers) {
      if (c.cursor >= s.end()) continue;
      const auto begin = std::max(c.cursor, s.first);
      std::vector<SocEvent> dropped(events.begin() + static_cast<std::ptrdiff_t>(begin - from),
                                    events.end());
      if (c.front.empty() && !dropped.empty()) {
        c.front.push_back({std::move(dropped.front()), false});
        dropped.erase(dropped.begin());
      }
      if (!dropped.empty()) {
        const auto count = dropped.size();
        if (c.front.size() >= 2 && c.front.back().summary) {
          const auto sequence = c.front.back().event.sequence;
          dropped.insert(dropped.begin(), std::move(c.front.back().event));
          c.front.back().event = summarize(dropped);
          c.front.back().event.sequence = sequence;
        } else {
          const auto sequence = dropped.front().sequence;
          c.front.push_back({summarize(dropped), true});
          c.front.back().event.sequence = sequence;
        }
        c.compacted += count;
      }
      c.cursor = s.end();
      // Durable before the segment goes, unless the caller chose speed over power-loss safety.
      if (auto w = save_consumer(c, opt.sync_appends); !w) return w;
    }
    if (::unlink(s.path.c_str()) != 0) return sys_error("cannot remove", s.path);
    total_bytes -= s.bytes;
    segments.pop_front();
    return {};
  }

  Result<std::uint64_t> append_locked(std::vector<SocEvent>& events) {
    const std::uint64_t segment_limit = opt.segment_bytes;
    bool wrote = false;
    std::uint64_t last = 0;
    Result<void> status{};
    for (auto& e : events) {
      e.sequence = next_seq;
      const std::string record = make_record(next_seq, encode_event(e));
      if (record.size() - kHeaderSize > kMaxPayload || record.size() + kMagicSize > segment_limit) {
        status = make_error("event " + std::to_string(next_seq) + " is too large for the spool (" +
                            std::to_string(record.size()) + " bytes)");
        break;
      }
      // A tail that does not end at next_seq (a cursor file said later sequences were handed
      // out) cannot take the record: a segment's records are numbered from its name.
      if (segments.empty() || segments.back().end() != next_seq ||
          segments.back().bytes + record.size() > segment_limit) {
        if (auto r = new_segment(); !r) {
          status = r;
          break;
        }
      }
      while (total_bytes + record.size() > opt.max_bytes && segments.size() > 1) {
        if (auto r = compact_oldest(); !r) {
          status = r;
          break;
        }
      }
      if (!status) break;
      Segment& tail = segments.back();
      if (auto w = write_all(tail.fd.get(), record.data(), record.size(), tail.bytes, tail.path);
          !w) {
        // Leave no half record for the next open to find.
        if (::ftruncate(tail.fd.get(), static_cast<off_t>(tail.bytes)) != 0) {
          // The torn record is detected and cut when the spool is opened.
        }
        status = w;
        break;
      }
      tail.offsets.push_back(tail.bytes);
      tail.bytes += record.size();
      total_bytes += record.size();
      last = next_seq++;
      ++appended;
      wrote = true;
    }
    if (wrote) {
      if (opt.sync_appends && ::fdatasync(segments.back().fd.get()) != 0) {
        status = sys_error("cannot sync", segments.back().path);
      }
      cv.notify_all();
    }
    if (!status) return status.error();
    return last;
  }
};

EventSpool::EventSpool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventSpool::~EventSpool() = default;

Result<std::unique_ptr<EventSpool>> EventSpool::open(SpoolOptions options,
                                                     std::vector<std::string>* notes) {
  if (options.directory.empty()) return make_error("the spool needs a directory");
  if (options.segment_bytes == 0) options.segment_bytes = options.max_bytes / 16;
  options.segment_bytes = std::max(options.segment_bytes, kMinSegment);
  if (options.max_bytes < 4 * options.segment_bytes) {
    // Compaction drops whole segments and never the one being written: it needs a few.
    return make_error("spool max_bytes (" + std::to_string(options.max_bytes) +
                      ") must be at least four segments (" +
                      std::to_string(4 * options.segment_bytes) + " bytes)");
  }
  auto impl = std::make_unique<Impl>();
  for (const auto& name : options.consumers) {
    if (!valid_consumer_name(name)) {
      return make_error("spool consumer name '" + name +
                        "' must be letters, digits, '.', '_' or '-'");
    }
    if (impl->consumers.contains(name)) return make_error("spool consumer '" + name + "' twice");
    impl->consumers[name].name = name;
  }
  impl->opt = std::move(options);
  const auto& dir = impl->opt.directory;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);  // events name hosts and providers: not for every local user
  const auto lock_path = dir + "/lock";
  impl->lock = Fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!impl->lock.valid()) return sys_error("cannot open", lock_path);
  if (::flock(impl->lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return make_error(dir + " is in use by another process (" + std::strerror(errno) + ")");
  }
  if (auto r = impl->load_segments(notes); !r) return r.error();
  if (auto r = impl->load_consumers(notes); !r) return r.error();
  impl->collect_garbage();
  return std::unique_ptr<EventSpool>(new EventSpool(std::move(impl)));
}

Result<std::uint64_t> EventSpool::append(SocEvent event) {
  std::vector<SocEvent> one;
  one.push_back(std::move(event));
  return append(std::move(one));
}

Result<std::uint64_t> EventSpool::append(std::vector<SocEvent> events) {
  if (events.empty()) return make_error("nothing to append");
  const std::lock_guard lock(impl_->mu);
  return impl_->append_locked(events);
}

Result<std::optional<SpoolRecord>> EventSpool::next(const std::string& consumer,
                                                    std::chrono::milliseconds wait,
                                                    std::stop_token stop) {
  std::unique_lock lock(impl_->mu);
  const auto it = impl_->consumers.find(consumer);
  if (it == impl_->consumers.end()) return make_error("no spool consumer named " + consumer);
  Impl::Consumer& c = it->second;
  for (;;) {
    if (wait == kUntilStopped) {
      impl_->cv.wait(lock, stop, [&] { return impl_->has_record(c); });
    } else {
      impl_->cv.wait_for(lock, stop, wait, [&] { return impl_->has_record(c); });
    }
    if (!impl_->has_record(c)) return std::optional<SpoolRecord>{};
    if (!c.front.empty()) {
      return std::optional<SpoolRecord>{
          SpoolRecord{c.front.front().event, c.front.front().summary}};
    }
    impl_->skip_gap(c);
    const auto* s = impl_->segment_of(c.cursor);
    if (s == nullptr) return std::optional<SpoolRecord>{};
    auto e = impl_->read_record(*s, c.cursor);
    if (e) return std::optional<SpoolRecord>{SpoolRecord{std::move(*e), false}};
    // The disk returned something else than was written: skip it, counted, rather than stall
    // every later event behind it forever.
    ++c.damaged;
    ++c.cursor;
    if (auto w = impl_->save_cursor(c); !w) return w.error();
    wait = std::chrono::milliseconds{0};
  }
}

Result<void> EventSpool::ack(const std::string& consumer, std::uint64_t sequence) {
  const std::lock_guard lock(impl_->mu);
  const auto it = impl_->consumers.find(consumer);
  if (it == impl_->consumers.end()) return make_error("no spool consumer named " + consumer);
  Impl::Consumer& c = it->second;
  if (!c.front.empty()) {
    if (c.front.front().event.sequence != sequence) {
      return make_error(consumer + " acknowledged " + std::to_string(sequence) + ", expected " +
                        std::to_string(c.front.front().event.sequence));
    }
    c.front.pop_front();
    ++c.acknowledged;
    return impl_->save_consumer(c, false);
  }
  impl_->skip_gap(c);
  if (c.cursor != sequence || c.cursor >= impl_->next_seq) {
    return make_error(consumer + " acknowledged " + std::to_string(sequence) + ", expected " +
                      std::to_string(c.cursor));
  }
  ++c.cursor;
  ++c.acknowledged;
  auto saved = impl_->save_cursor(c);
  impl_->collect_garbage();
  return saved;
}

SpoolStats EventSpool::stats() const {
  const std::lock_guard lock(impl_->mu);
  SpoolStats s;
  s.bytes = impl_->total_bytes;
  s.max_bytes = impl_->opt.max_bytes;
  s.segments = impl_->segments.size();
  s.first_sequence = impl_->segments.empty() ? impl_->next_seq : impl_->segments.front().first;
  s.next_sequence = impl_->next_seq;
  s.appended = impl_->appended;
  s.repaired_bytes = impl_->repaired;
  for (const auto& [name, c] : impl_->consumers) {
    SpoolConsumerStats cs;
    cs.name = name;
    cs.next_sequence = c.cursor;
    cs.backlog = c.front.size();
    for (const auto& seg : impl_->segments) {
      if (seg.end() > c.cursor) cs.backlog += seg.end() - std::max(seg.first, c.cursor);
    }
    cs.acknowledged = c.acknowledged;
    cs.compacted = c.compacted;
    cs.damaged = c.damaged;
    s.consumers.push_back(std::move(cs));
  }
  return s;
}

}  // namespace drawbridge
