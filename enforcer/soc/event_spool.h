// The bounded on-disk spool between the event makers and the outputs (docs/soc-delivery.md):
// every event is written here first, and each output (a "consumer") reads it back in order and
// acknowledges what its collector took. A collector outage or an enforcer restart therefore
// loses nothing; a spool that fills up compacts its oldest undelivered events into one loss
// summary per consumer and counts them, so that no event is ever dropped silently.
//
//   event makers → append() → segments on disk → next()/ack() per consumer → event_sink outputs
//
// On disk, in one directory owned by one process (an exclusive flock refuses a second):
//   <first sequence, 20 digits>.seg  append-only segment: "DBSPOOL1", then records of
//                                    [u32 length][u32 CRC-32 of sequence+payload][u64 sequence]
//                                    [payload: event_codec JSON], little-endian
//   <consumer>.cursor                JSON: the consumer's next sequence, its compacted count and
//                                    the events it must be given before that sequence (an event
//                                    it was sending when its segment was compacted, and a loss
//                                    summary)
// A record torn by a crash is detected by its length or CRC when the spool is opened and cut
// away together with everything after it in that segment.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "common/result.h"
#include "enforcer/soc/event.h"

namespace drawbridge {

// Builds the one event that stands for events the spool had to drop. `dropped` is in sequence
// order and may begin with an earlier summary (action::kSpoolLoss) for the same consumer, which
// the new summary must include, so that one summary keeps accounting for every loss until it is
// delivered. The spool sets the summary's sequence itself.
using LossSummarizer = std::function<SocEvent(const std::vector<SocEvent>& dropped)>;

// The default summarizer: action "event-loss", kind audit, outcome failure; first_seen/last_seen
// span the dropped events' times, packets is their sum, and the labels say
//   lost                  how many events (earlier summaries count with their own "lost")
//   lost.<action>         how many of each action
//   first_sequence, last_sequence, first_time, last_time (RFC 3339)
SocEvent summarize_lost_events(const std::vector<SocEvent>& dropped);

struct SpoolOptions {
  std::string directory;
  // Who reads the spool: one name per output (letters, digits, '.', '_', '-'). Cursor files of
  // names not listed are left alone but no longer hold records back.
  std::vector<std::string> consumers;
  std::uint64_t max_bytes = 256ull << 20;  // all segment files together
  // 0: max_bytes / 16. Compaction drops the oldest segment, so this is its granularity.
  std::uint64_t segment_bytes = 0;
  LossSummarizer summarize;  // empty: summarize_lost_events
  // fdatasync after each append() (one per batch). Without it a crash of the process still loses
  // nothing (the data is in the page cache), a power loss may lose the last appends.
  bool sync_appends = true;
};

struct SpoolRecord {
  SocEvent event;
  bool summary = false;  // made by the spool's compaction, stands for `lost` dropped events
};

struct SpoolConsumerStats {
  std::string name;
  std::uint64_t next_sequence = 0;  // the cursor in the segments
  std::uint64_t backlog = 0;        // records waiting, loss summaries included
  std::uint64_t acknowledged = 0;   // records acknowledged since open
  std::uint64_t compacted = 0;      // events dropped into loss summaries, ever (persisted)
  std::uint64_t damaged = 0;        // records skipped because the disk returned garbage
};

struct SpoolStats {
  std::uint64_t bytes = 0;
  std::uint64_t max_bytes = 0;
  std::uint64_t segments = 0;
  std::uint64_t first_sequence = 0;  // oldest record still on disk
  std::uint64_t next_sequence = 0;   // what the next append gets
  std::uint64_t appended = 0;        // since open
  std::uint64_t repaired_bytes = 0;  // torn or damaged bytes cut away when opened
  std::vector<SpoolConsumerStats> consumers;
};

class EventSpool {
 public:
  // Opens or creates the spool, repairs a torn tail and drops segments every consumer is past.
  // What it repaired is added to `notes` as sentences for the caller to log.
  static Result<std::unique_ptr<EventSpool>> open(SpoolOptions options,
                                                  std::vector<std::string>* notes = nullptr);
  ~EventSpool();
  EventSpool(const EventSpool&) = delete;
  EventSpool& operator=(const EventSpool&) = delete;

  // Assigns the next sequence number to the event (SocEvent::sequence: strictly increasing for
  // the life of the spool directory, across restarts), stores it and wakes the consumers.
  // Returns the sequence. Makes room by compaction when the spool is full.
  Result<std::uint64_t> append(SocEvent event);
  // The same for several events with one sync. On an error the events before the failing one
  // are stored. Returns the last sequence.
  Result<std::uint64_t> append(std::vector<SocEvent> events);

  // The consumer's next record (the same one until it is acknowledged), waiting up to `wait`
  // for one to arrive (kUntilStopped: as long as it takes); nullopt after the wait or when
  // `stop` is requested.
  static constexpr std::chrono::milliseconds kUntilStopped = std::chrono::milliseconds::max();
  Result<std::optional<SpoolRecord>> next(const std::string& consumer,
                                          std::chrono::milliseconds wait,
                                          std::stop_token stop = {});
  // The consumer's collector has taken the record with this sequence: move on. Acknowledging
  // anything but the record next() returns is an error.
  Result<void> ack(const std::string& consumer, std::uint64_t sequence);

  [[nodiscard]] SpoolStats stats() const;

 private:
  struct Impl;
  explicit EventSpool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drawbridge
