// The outputs that carry spooled events to the SOC, and the Delivery that feeds them
// (docs/soc-delivery.md):
//
//   event_spool (on disk) → Delivery: one thread per output, in order, backoff → EventOutput
//                                                                   → syslog UDP | TCP | TLS
//
// Delivery is at least once: a record is acknowledged in the spool only after its output
// reported success, and a failed record is sent again, unchanged, after a reconnect. Syslog has
// no application-level acknowledgement, so the only duplicate possible is the one record that
// was in flight when a connection failed; it carries the same RFC 5424 sequenceId, which is
// what the SOC deduplicates on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "enforcer/soc/event.h"
#include "enforcer/soc/event_spool.h"

namespace drawbridge {

// Where events go. Implementations are used by one delivery thread at a time; only cancel()
// may be called from another thread.
class EventOutput {
 public:
  virtual ~EventOutput() = default;
  // Names the output in status and is its consumer name in the spool.
  [[nodiscard]] virtual std::string name() const = 0;
  // Sends one event; success means the collector has it as far as the transport can tell (see
  // SyslogOutputOptions::confirm). A failure leaves the output ready to try again.
  virtual Result<void> deliver(const SocEvent& event) = 0;
  // Makes a deliver() that waits for the network return promptly with an error, and every later
  // one too: for stopping. Thread-safe.
  virtual void cancel() {}
};

enum class SyslogTransport : std::uint8_t {
  udp,  // RFC 5426: one datagram per event, no confirmation of any kind
  tcp,  // RFC 6587 octet counting: "<length> <message>"
  tls,  // RFC 5425: the same framing inside TLS (1.2 or 1.3)
};

struct SyslogOutputOptions {
  std::string name;
  SyslogTransport transport = SyslogTransport::tcp;
  std::string host;  // IP address or DNS name of the collector
  std::uint16_t port = 0;
  // Renders the syslog message (e.g. event_format's RFC 5424 line), without framing or newline.
  std::function<std::string(const SocEvent&)> format;

  std::chrono::milliseconds connect_timeout{5000};  // TCP connect plus TLS handshake
  std::chrono::milliseconds send_timeout{10000};    // writing one event and its confirmation
  // TCP/TLS: success only once the collector's TCP stack has acknowledged every byte (the send
  // queue is empty) and the connection is still established. Costs one round trip per event;
  // without it a collector that vanishes silently takes a whole socket buffer of events with it.
  bool confirm = true;

  // TLS. The collector's certificate must chain to a CA in ca_file (and only there: the system
  // store is not used) and carry server_name (empty: host) as a DNS or IP subjectAltName.
  std::string ca_file;
  std::string server_name;
  // Optional pin, 64 hex digits (colons and case ignored): the SHA-256 of the collector's
  // certificate (`openssl x509 -noout -fingerprint -sha256`) or of its public key's DER
  // SubjectPublicKeyInfo (the same as curl's --pinnedpubkey; survives renewal with the same
  // key). Checked in addition to the chain and the name.
  std::string pinned_sha256;
  // Optional client certificate for collectors that authenticate their senders (mutual TLS).
  std::string client_cert_file;
  std::string client_key_file;
};

class SyslogOutput final : public EventOutput {
 public:
  // Checks the options and, for TLS, loads the CA file and the client certificate; connects
  // lazily, on the first deliver().
  static Result<std::unique_ptr<SyslogOutput>> create(SyslogOutputOptions options);
  ~SyslogOutput() override;
  SyslogOutput(const SyslogOutput&) = delete;
  SyslogOutput& operator=(const SyslogOutput&) = delete;

  [[nodiscard]] std::string name() const override;
  Result<void> deliver(const SocEvent& event) override;
  void cancel() override;

  // Whether a connection is open now (UDP: whether the socket exists).
  [[nodiscard]] bool connected() const;

 private:
  struct Impl;
  explicit SyslogOutput(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The octet-counting frame of RFC 6587 section 3.4.1: "<decimal length> <message>".
[[nodiscard]] std::string octet_counted(const std::string& message);

struct DeliveryOptions {
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30000};
  // Called, from a delivery thread, when an output starts failing or recovers: one sentence for
  // the operator's log. Must be thread-safe and must not throw.
  std::function<void(const std::string&)> on_change;
};

struct OutputStatus {
  std::string name;
  std::uint64_t delivered = 0;  // records the output confirmed since start (summaries included)
  std::uint64_t summaries = 0;  // of those, loss summaries
  std::uint64_t failures = 0;   // failed attempts
  std::uint64_t retries = 0;    // attempts that repeated a failed one
  bool failing = false;         // the last attempt failed
  std::string last_error;
  std::optional<Instant> last_delivered;
  std::chrono::milliseconds backoff{0};  // the current wait between attempts
};

class Delivery {
 public:
  // One thread per output; each output's name must be a consumer of the spool. The spool must
  // outlive the Delivery.
  static Result<std::unique_ptr<Delivery>> start(EventSpool& spool,
                                                 std::vector<std::unique_ptr<EventOutput>> outputs,
                                                 DeliveryOptions options = {});
  ~Delivery();  // stop()
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // Returns promptly (within a connect or send that cannot be interrupted: none of ours) and
  // leaves every unacknowledged record in the spool.
  void stop();
  [[nodiscard]] std::vector<OutputStatus> status() const;

 private:
  struct Impl;
  explicit Delivery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace drawbridge
