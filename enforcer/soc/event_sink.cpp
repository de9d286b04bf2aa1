#include "enforcer/soc/event_sink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <stop_token>
#include <system_error>
#include <thread>
#include <utility>

#include "common/text_encoding.h"

namespace drawbridge {

namespace {

using Clock = std::chrono::steady_clock;

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

struct SslCtxFree {
  void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const noexcept { SSL_free(p); }
};
struct X509Free {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

std::string errno_text(int err) {
  return std::strerror(err);
}

// The OpenSSL error queue as one sentence, emptied so the next call starts clean.
std::string ssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no details" : out;
}

// OpenSSL writes with write(2), which raises SIGPIPE on a connection the peer reset; that
// would kill the daemon. Blocks it for this thread while in scope and swallows one that the
// scope caused, so that the write just fails with EPIPE.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t pending;
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{0, 0};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
  bool blocked_ = false;
};

std::optional<std::string> normalize_pin(const std::string& pin) {
  std::string hex;
  for (const char c : pin) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (hex.size() != 64) return std::nullopt;
  return hex;
}

std::string sha256_hex(const unsigned char* data, std::size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr) != 1) return {};
  return to_hex(std::span<const std::uint8_t>(md, len));
}

// SHA-256 of the DER certificate and of its DER SubjectPublicKeyInfo.
std::pair<std::string, std::string> fingerprints(X509* cert) {
  std::pair<std::string, std::string> out;
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len > 0) {
    out.first = sha256_hex(der, static_cast<std::size_t>(len));
    OPENSSL_free(der);
  }
  der = nullptr;
  len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len > 0) {
    out.second = sha256_hex(der, static_cast<std::size_t>(len));
    OPENSSL_free(der);
  }
  return out;
}

const char* transport_name(SyslogTransport t) {
  switch (t) {
    case SyslogTransport::udp:
      return "udp";
    case SyslogTransport::tcp:
      return "tcp";
    case SyslogTransport::tls:
      return "tls";
  }
  return "?";
}

}  // namespace

std::string octet_counted(const std::string& message) {
  return std::to_string(message.size()) + " " + message;
}

// --- SyslogOutput -------------------------------------------------------------------------------

struct SyslogOutput::Impl {
  SyslogOutputOptions opt;
  std::string pin;  // normalized, empty when none
  SslCtxPtr ctx;
  Fd cancel_fd;  // eventfd: readable once cancel() was called
  std::atomic<bool> cancelled{false};
  Fd sock;
  SslPtr ssl;

  [[nodiscard]] std::string where() const {
    return opt.name + " (" + transport_name(opt.transport) + " " + opt.host + ":" +
           std::to_string(opt.port) + ")";
  }
  Error fail(const std::string& what) const { return make_error(where() + ": " + what); }

  void disconnect() {
    if (ssl) {
      // No close_notify: the connection is being dropped because it failed or is stopping, and
      // a shutdown could block on a peer that no longer reads.
      ssl.reset();
    }
    sock.reset();
  }

  // Waits until fd is ready for `events`, the deadline passes or cancel() is called.
  Result<void> wait_fd(int fd, short events, Clock::time_point deadline, const char* what) const {
    for (;;) {
      if (cancelled.load()) return fail("cancelled");
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return fail(std::string("timed out ") + what);
      pollfd p[2] = {{fd, events, 0}, {cancel_fd.get(), POLLIN, 0}};
      const int n = ::poll(p, 2, static_cast<int>(std::min<long long>(left, 1000)));
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail(std::string("poll: ") + errno_text(errno));
      }
      if (p[1].revents != 0) return fail("cancelled");
      if (p[0].revents != 0) return {};
    }
  }

  // Sleeps up to `d` unless cancelled.
  void pause(std::chrono::microseconds d) const {
    pollfd p{cancel_fd.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::max<long long>(1, d.count() / 1000)));
  }

  Result<void> open_socket(Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = opt.transport == SyslogTransport::udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const auto port = std::to_string(opt.port);
    if (const int rc = ::getaddrinfo(opt.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      return fail(std::string("cannot resolve: ") + gai_strerror(rc));
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
    std::string last = "no address";
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
      Fd s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
      if (!s.valid()) {
        last = errno_text(errno);
        continue;
      }
      if (::connect(s.get(), a->ai_addr, a->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
          last = errno_text(errno);
          continue;
        }
        if (auto w = wait_fd(s.get(), POLLOUT, deadline, "connecting"); !w) return w;
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          last = errno_text(err);
          continue;
        }
      }
      if (opt.transport != SyslogTransport::udp) {
        const int one = 1;
        // Each event is written whole and then waited for: Nagle would only add delay.
        ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      sock = std::move(s);
      return {};
    }
    return fail("cannot connect: " + last);
  }

  Result<void> handshake(Clock::time_point deadline) {
    ssl.reset(SSL_new(ctx.get()));
    if (!ssl) return fail("SSL_new: " + ssl_errors());
    SSL_set_fd(ssl.get(), sock.get());
    const std::string& name = opt.server_name.empty() ? opt.host : opt.server_name;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    in6_addr probe{};
    const bool is_ip = ::inet_pton(AF_INET, name.c_str(), &probe) == 1 ||
                       ::inet_pton(AF_INET6, name.c_str(), &probe) == 1;
    if (is_ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
        return fail("bad server name " + name);
      }
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0) != 1) {
        return fail("bad server name " + name);
      }
      SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    }
    const SigpipeBlock no_sigpipe;
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_connect(ssl.get());
      if (rc == 1) break;
      const int err = SSL_get_error(ssl.get(), rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        const short ev = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if (auto w = wait_fd(sock.get(), ev, deadline, "in the TLS handshake"); !w) return w;
        continue;
      }
      const long verify = SSL_get_verify_result(ssl.get());
      if (verify != X509_V_OK) {
        return fail(std::string("the collector's certificate is not trusted: ") +
                    X509_verify_cert_error_string(verify) + " (expected " + name +
                    " signed by a CA in " + opt.ca_file + ")");
      }
      return fail("TLS handshake failed: " + ssl_errors());
    }
    if (!pin.empty()) {
      const X509Ptr cert(SSL_get1_peer_certificate(ssl.get()));
      if (!cert) return fail("the collector sent no certificate");
      const auto [cert_fp, spki_fp] = fingerprints(cert.get());
      if (pin != cert_fp && pin != spki_fp) {
        return fail("the collector's certificate does not match pinned_sha256 (certificate " +
                    cert_fp + ", public key " + spki_fp + ")");
      }
    }
    return {};
  }

  Result<void> connect() {
    const auto deadline = Clock::now() + opt.connect_timeout;
    if (auto r = open_socket(deadline); !r) return r;
    if (opt.transport == SyslogTransport::tls) {
      if (auto r = handshake(deadline); !r) {
        disconnect();
        return r;
      }
    }
    return {};
  }

  // A syslog collector never sends application data, so a readable stream socket means the
  // collector closed or reset it (or, under TLS, sent a post-handshake message such as a
  // session ticket, which is read and ignored). Catching this before writing avoids handing an
  // event to a connection that is already gone.
  [[nodiscard]] bool still_open() {
    if (!sock.valid()) return false;
    if (opt.transport == SyslogTransport::tcp) {
      char c;
      const ssize_t n = ::recv(sock.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      char sink[512];
      while (::recv(sock.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
      return true;
    }
    const SigpipeBlock no_sigpipe;
    char sink[512];
    for (;;) {
      ERR_clear_error();
      const int n = SSL_read(ssl.get(), sink, sizeof sink);
      if (n > 0) continue;
      const int err = SSL_get_error(ssl.get(), n);
      return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE;
    }
  }

  Result<void> write_stream(const std::string& frame, Clock::time_point deadline) {
    std::size_t done = 0;
    while (done < frame.size()) {
      if (cancelled.load()) return fail("cancelled");
      if (opt.transport == SyslogTransport::tcp) {
        const ssize_t n = ::send(sock.get(), frame.data() + done, frame.size() - done,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
          done += static_cast<std::size_t>(n);
          continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          return fail("send: " + errno_text(errno));
        }
        if (auto w = wait_fd(sock.get(), POLLOUT, deadline, "sending"); !w) return w;
        continue;
      }
      const SigpipeBlock no_sigpipe;
      ERR_clear_error();
      const int n =
          SSL_write(ssl.get(), frame.data() + done,
                    static_cast<int>(std::min<std::size_t>(frame.size() - done, 1 << 30)));
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      const int err = SSL_get_error(ssl.get(), n);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        const short ev = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
        if (auto w = wait_fd(sock.get(), ev, deadline, "sending"); !w) return w;
        continue;
      }
      return fail("TLS write failed: " +
                  (err == SSL_ERROR_SYSCALL ? errno_text(errno) : ssl_errors()));
    }
    return {};
  }

  // Waits until the collector's TCP stack has acknowledged every byte written. A connection
  // that left ESTABLISHED meanwhile (reset, or closed by the collector) counts as a failure
  // even when the queue is empty: a reset empties it too, and we cannot tell whether the
  // collector read the event first.
  Result<void> confirm(Clock::time_point deadline) {
    auto nap = std::chrono::microseconds{50};
    for (;;) {
      tcp_info info{};
      socklen_t len = sizeof info;
      if (::getsockopt(sock.get(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
        return fail("TCP_INFO: " + errno_text(errno));
      }
      if (info.tcpi_state != TCP_ESTABLISHED) {
        return fail("the collector closed the connection");
      }
      int unacked = 0;
      if (::ioctl(sock.get(), SIOCOUTQ, &unacked) != 0) {
        return fail("SIOCOUTQ: " + errno_text(errno));
      }
      if (unacked == 0) return {};
      if (cancelled.load()) return fail("cancelled");
      if (Clock::now() >= deadline) {
        return fail("timed out waiting for the collector to acknowledge " +
                    std::to_string(unacked) + " bytes");
      }
      pause(nap);
      nap = std::min(nap * 2, std::chrono::microseconds{20000});
    }
  }

  Result<void> send_datagram(const std::string& message) {
    const ssize_t n = ::send(sock.get(), message.data(), message.size(), MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      // ECONNREFUSED is an ICMP port unreachable that came back for an earlier datagram: that
      // one may be lost (UDP cannot tell), but this one is sent again.
      return fail("send: " + errno_text(err));
    }
    if (static_cast<std::size_t>(n) != message.size()) return fail("datagram truncated");
    // On the local network the ICMP error for this datagram may already be here.
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      return fail("the collector refused the datagram: " + errno_text(err));
    }
    return {};
  }

  Result<void> deliver(const SocEvent& event) {
    if (cancelled.load()) return fail("cancelled");
    std::string message;
    try {
      message = opt.format(event);
    } catch (const std::exception& e) {
      return fail(std::string("cannot format event: ") + e.what());
    }
    if (opt.transport == SyslogTransport::udp) {
      if (message.size() > 65507) return fail("event too large for one UDP datagram");
      if (!sock.valid()) {
        if (auto r = connect(); !r) return r;
      }
      return send_datagram(message);
    }
    if (!still_open()) {
      disconnect();
      if (auto r = connect(); !r) return r;
    }
    const auto deadline = Clock::now() + opt.send_timeout;
    auto written = write_stream(octet_counted(message), deadline);
    if (written && opt.confirm) written = confirm(deadline);
    if (!written) {
      // The stream may now hold part of a frame: only a new connection is safe to frame on.
      disconnect();
      return written;
    }
    return {};
  }
};

SyslogOutput::SyslogOutput(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SyslogOutput::~SyslogOutput() = default;

Result<std::unique_ptr<SyslogOutput>> SyslogOutput::create(SyslogOutputOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  const auto& o = impl->opt;
  if (o.name.empty()) return make_error("a syslog output needs a name");
  if (o.host.empty()) return impl->fail("no host");
  if (o.port == 0) return impl->fail("no port");
  if (!o.format) return impl->fail("no format function");
  if (o.transport == SyslogTransport::tls) {
    if (o.ca_file.empty()) {
      return impl->fail("TLS needs ca_file: the CA that signed the collector's certificate");
    }
    if (!o.pinned_sha256.empty()) {
      auto pin = normalize_pin(o.pinned_sha256);
      if (!pin) return impl->fail("pinned_sha256 must be 64 hex digits (colons allowed)");
      impl->pin = *pin;
    }
    impl->ctx.reset(SSL_CTX_new(TLS_client_method()));
    if (!impl->ctx) return impl->fail("SSL_CTX_new: " + ssl_errors());
    SSL_CTX_set_min_proto_version(impl->ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(impl->ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_mode(impl->ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_load_verify_file(impl->ctx.get(), o.ca_file.c_str()) != 1) {
      return impl->fail("cannot load ca_file " + o.ca_file + ": " + ssl_errors());
    }
    if (o.client_cert_file.empty() != o.client_key_file.empty()) {
      return impl->fail("client_cert_file and client_key_file go together");
    }
    if (!o.client_cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(impl->ctx.get(), o.client_cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(impl->ctx.get(), o.client_key_file.c_str(),
                                      SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(impl->ctx.get()) != 1) {
        return impl->fail("cannot load the client certificate: " + ssl_errors());
      }
    }
  } else if (!o.ca_file.empty() || !o.pinned_sha256.empty() || !o.client_cert_file.empty()) {
    return impl->fail("ca_file, pinned_sha256 and client certificates are for TLS only");
  }
  impl->cancel_fd = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->cancel_fd.valid()) return impl->fail("eventfd: " + errno_text(errno));
  return std::unique_ptr<SyslogOutput>(new SyslogOutput(std::move(impl)));
}

std::string SyslogOutput::name() const {
  return impl_->opt.name;
}

Result<void> SyslogOutput::deliver(const SocEvent& event) {
  return impl_->deliver(event);
}

void SyslogOutput::cancel() {
  impl_->cancelled.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(impl_->cancel_fd.get(), &one, sizeof one);
}

bool SyslogOutput::connected() const {
  return impl_->sock.valid();
}

// --- Delivery
// -------------------------------------------------------------------------------------

struct Delivery::Impl {
  struct Slot {
    std::unique_ptr<EventOutput> output;
    std::string name;
    OutputStatus status;
    std::jthread thread;
  };

  EventSpool* spool = nullptr;
  DeliveryOptions opt;
  mutable std::mutex mu;  // guards every Slot::status
  std::condition_variable_any sleeper;
  std::mutex sleep_mu;
  std::vector<std::unique_ptr<Slot>> slots;

  void note(const std::string& sentence) const {
    if (!opt.on_change) return;
    try {
      opt.on_change(sentence);
    } catch (...) {
      // A logger that throws must not take the delivery thread with it.
    }
  }

  // Sleeps for the backoff (with up to 25% jitter, so that many enforcers do not reconnect to a
  // restarted collector in lockstep); false when stopping.
  bool wait(std::stop_token st, std::chrono::milliseconds d, std::minstd_rand& rng) {
    const auto jitter = std::uniform_int_distribution<long long>(0, d.count() / 4)(rng);
    std::unique_lock lock(sleep_mu);
    sleeper.wait_for(lock, st, d + std::chrono::milliseconds{jitter}, [] { return false; });
    return !st.stop_requested();
  }

  void failed(Slot& slot, const std::string& error, std::chrono::milliseconds backoff) {
    bool first = false;
    {
      const std::lock_guard lock(mu);
      ++slot.status.failures;
      first = !slot.status.failing;
      slot.status.failing = true;
      slot.status.last_error = error;
      slot.status.backoff = backoff;
    }
    if (first) note(slot.name + ": delivery failing, retrying with backoff: " + error);
  }

  void run(std::stop_token st, Slot& slot) {
    // Writes to a reset connection must fail with EPIPE, not kill the process.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    const std::stop_callback cancel_io(st, [&slot] { slot.output->cancel(); });
    std::minstd_rand rng(static_cast<unsigned>(std::hash<std::string>{}(slot.name) ^
                                               static_cast<unsigned>(::getpid())));
    auto backoff = opt.initial_backoff;
    try {
      while (!st.stop_requested()) {
        // No timeout: an append or the stop request wakes it, so an idle daemon sleeps.
        auto next = spool->next(slot.name, EventSpool::kUntilStopped, st);
        if (!next) {
          failed(slot, next.error().message, backoff);
          if (!wait(st, backoff, rng)) break;
          backoff = std::min(backoff * 2, opt.max_backoff);
          continue;
        }
        if (!*next) continue;
        const SpoolRecord& record = **next;
        bool retry = false;
        while (!st.stop_requested()) {
          if (retry) {
            const std::lock_guard lock(mu);
            ++slot.status.retries;
          }
          Result<void> sent = make_error("not sent");
          try {
            sent = slot.output->deliver(record.event);
          } catch (const std::exception& e) {
            sent = make_error(slot.name + ": " + e.what());
          } catch (...) {
            sent = make_error(slot.name + ": unknown exception");
          }
          if (sent) {
            // Acknowledge only now: a crash before this line sends the record again.
            const auto acked = spool->ack(slot.name, record.event.sequence);
            bool recovered = false;
            {
              const std::lock_guard lock(mu);
              ++slot.status.delivered;
              if (record.summary) ++slot.status.summaries;
              recovered = slot.status.failing;
              slot.status.failing = false;
              slot.status.backoff = std::chrono::milliseconds{0};
              slot.status.last_delivered = std::chrono::time_point_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now());
              if (!acked) slot.status.last_error = acked.error().message;
            }
            if (recovered) note(slot.name + ": delivering again");
            backoff = opt.initial_backoff;
            break;
          }
          if (st.stop_requested()) break;  // a cancelled send is not a failure of the output
          failed(slot, sent.error().message, backoff);
          if (!wait(st, backoff, rng)) break;
          backoff = std::min(backoff * 2, opt.max_backoff);
          retry = true;
        }
      }
    } catch (const std::exception& e) {
      // Only allocation failures get here; never let them out of the thread.
      failed(slot, std::string("delivery thread stopped: ") + e.what(), backoff);
    } catch (...) {
      failed(slot, "delivery thread stopped", backoff);
    }
  }
};

Delivery::Delivery(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Delivery>> Delivery::start(EventSpool& spool,
                                                  std::vector<std::unique_ptr<EventOutput>> outputs,
                                                  DeliveryOptions options) {
  if (options.initial_backoff <= std::chrono::milliseconds{0} ||
      options.max_backoff < options.initial_backoff) {
    return make_error("delivery backoff must be positive and initial <= max");
  }
  const auto stats = spool.stats();
  auto impl = std::make_unique<Impl>();
  impl->spool = &spool;
  impl->opt = std::move(options);
  for (auto& output : outputs) {
    if (!output) return make_error("a delivery output is missing");
    const auto name = output->name();
    const bool known = std::any_of(stats.consumers.begin(), stats.consumers.end(),
                                   [&](const SpoolConsumerStats& c) { return c.name == name; });
    if (!known) return make_error("output " + name + " is not a consumer of the spool");
    for (const auto& s : impl->slots) {
      if (s->name == name) return make_error("two outputs named " + name);
    }
    auto slot = std::make_unique<Impl::Slot>();
    slot->name = name;
    slot->status.name = name;
    slot->output = std::move(output);
    impl->slots.push_back(std::move(slot));
  }
  auto* raw = impl.get();
  try {
    for (auto& slot : impl->slots) {
      Impl::Slot* s = slot.get();
      s->thread = std::jthread([raw, s](std::stop_token st) { raw->run(st, *s); });
    }
  } catch (const std::system_error& e) {
    // The threads already started are stopped and joined by their jthreads' destructors.
    return make_error(std::string("cannot start a delivery thread: ") + e.what());
  }
  return std::unique_ptr<Delivery>(new Delivery(std::move(impl)));
}

Delivery::~Delivery() {
  stop();
}

void Delivery::stop() {
  for (auto& slot : impl_->slots) slot->thread.request_stop();
  for (auto& slot : impl_->slots) {
    if (slot->thread.joinable()) slot->thread.join();
  }
}

std::vector<OutputStatus> Delivery::status() const {
  const std::lock_guard lock(impl_->mu);
  std::vector<OutputStatus> out;
  for (const auto& slot : impl_->slots) out.push_back(slot->status);
  return out;
}

}  // namespace drawbridge
