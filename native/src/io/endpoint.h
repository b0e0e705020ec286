// Endpoint: one non-blocking socket descriptor, plain or TLS, polled on the
// Node loop (uv_poll_t). The TLS kind runs the one TLS stream of the addon
// (tls/stream.h) over its descriptor; every native path that owns a socket
// (the listener's handshakes, the tcp splice, the HTTP front ends, backend
// connections, the library's sockets on the fd pump) uses it.
//
// Read() takes what one read() returns and hands back plaintext; Write()
// queues plaintext and sends what the kernel takes; Flush() sends the rest
// once the socket is writable (one writev per call for TLS); EndWrite()
// ends our direction (TLS: close_notify first, RFC 8446 §6.1) and the FIN
// follows the last byte. An endpoint owns its descriptor and its
// uv_poll_t; a live connection changes owner by moving its endpoint
// (Rebind points the poll at the new owner).
#ifndef RUSTLS_NODE_ENDPOINT_H
#define RUSTLS_NODE_ENDPOINT_H

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/net_io.h"
#include "tls/stream.h"

namespace rustls_node {

class Router;

enum class Io {
  kOk,          // progress (maybe no plaintext: a handshake record, a ticket)
  kWouldBlock,  // nothing to read / the kernel took only part
  kEnd,         // the peer ended its direction (close_notify, or FIN for plain)
  kFailed,      // see tls_error / sys_errno
};

// How much one read() takes.
constexpr size_t kReadSize = 64 * 1024;
// How many reads one readiness event makes at most, so that a busy
// connection leaves the loop to the others between batches.
constexpr int kReadsPerEvent = 4;

// The loop thread's read buffer and plaintext vector: every endpoint reads
// and decrypts into them and its owner consumes the plaintext within the
// same event, so an idle connection holds neither.
uint8_t* ReadBuffer();
std::vector<uint8_t>& SharedPlain();

class Endpoint {
 public:
  explicit Endpoint(int fd) : fd_(fd) {}
  virtual ~Endpoint() { Close(); }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  virtual Io Read(PlainOut& out) = 0;
  // Takes all of `data`; kWouldBlock: some of it waits for Flush().
  virtual Io Write(const uint8_t* data, size_t len) = 0;
  // kOk: nothing queued any more (and the FIN left if EndWrite was called).
  Io Flush();
  virtual bool HasQueued() const = 0;
  void EndWrite();
  virtual bool tls() const { return false; }

  // Polls the descriptor on `loop`; events go to `cb` with `owner` as the
  // handle's data.
  bool StartPoll(uv_loop_t* loop, void* owner);
  void SetEvents(int events, uv_poll_cb cb);
  int events() const { return events_; }
  // The endpoint changed owner: the poll stops, and its events go to
  // `owner` once it calls SetEvents with its own callback.
  void Rebind(void* owner);
  void SetRef(bool ref);
  // Stops polling and closes the descriptor (if owned); counts stay.
  void Close();

  // read() with EINTR handled; counts bytes_in. -1: see errno.
  ssize_t ReadRaw(uint8_t* buf, size_t cap);
  // One read of up to kReadSize into buf: kOk with *n bytes, kEnd (FIN),
  // kWouldBlock, or kFailed (sys_errno).
  Io ReadSome(uint8_t* buf, size_t* n);

  int fd() const { return fd_; }
  // No more input: the FIN arrived, or (TLS) the peer's close_notify.
  bool input_ended() const { return input_ended_; }
  // The transport itself ended (read() returned 0).
  bool fin_received() const { return fin_received_; }
  bool end_requested() const { return end_requested_; }
  bool fin_sent() const { return fin_sent_; }

  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Bytes the last ReadSome() took.
  size_t last_read = 0;
  // The last read took fewer than kReadSize bytes: the kernel had no more
  // (a stream socket's read() returns what is queued), so a further read in
  // this event would only meet EAGAIN; read loops stop here and the poll
  // reports what arrives meanwhile.
  bool drained() const { return last_read < kReadSize; }
  uint32_t tls_error = 0;
  int sys_errno = 0;

 protected:
  virtual Io FlushQueued() = 0;
  virtual void QueueCloseNotify() {}

  int fd_;
  uv_poll_t* poll_ = nullptr;
  int events_ = 0;
  bool input_ended_ = false;
  bool fin_received_ = false;
  bool end_requested_ = false;
  bool fin_sent_ = false;
};

class PlainEndpoint final : public Endpoint {
 public:
  explicit PlainEndpoint(int fd) : Endpoint(fd) {}
  Io Read(PlainOut& out) override;
  Io Write(const uint8_t* data, size_t len) override;
  bool HasQueued() const override { return pending_off_ < pending_.size(); }
  // Bytes that go out before anything else (a PROXY header).
  void Prepend(const uint8_t* data, size_t len);

 private:
  Io FlushQueued() override;
  std::vector<uint8_t> pending_;
  size_t pending_off_ = 0;
};

class TlsEndpoint final : public Endpoint {
 public:
  TlsEndpoint(int fd, std::unique_ptr<TlsStream> tls) : Endpoint(fd), tls_(std::move(tls)) {}

  TlsStream& stream() { return *tls_; }
  // Takes the stream out (the endpoint keeps none): a client whose connect
  // failed before anything was sent tries the next address with it.
  std::unique_ptr<TlsStream> ReleaseStream() { return std::move(tls_); }
  const TlsStream& stream() const { return *tls_; }
  rustls_connection* conn() const { return tls_->conn(); }
  bool handshaking() const { return tls_->handshaking(); }
  bool peer_closed() const { return tls_->peer_closed(); }

  // Server streams before their connection exists: the router their
  // ClientHello is routed with (borrowed; its owner keeps it alive).
  void set_router(const Router* router) { router_ = router; }
  // Reads once and runs the bytes through the stream: the ClientHello
  // (routed with the router) and then the connection. A deferred routing
  // choice keeps what came after the hello until Continue().
  Io Read(PlainOut& out) override;
  // After the stream's Continue(): the bytes kept behind the hello.
  Io Resume(PlainOut& out);
  // After the peer's close_notify nothing more is processed (RFC 8446
  // §6.1), but the transport may carry bytes until its FIN: reads and drops
  // them; kEnd at the FIN.
  Io DiscardUntilFin();
  Io Write(const uint8_t* data, size_t len) override;
  bool HasQueued() const override { return tls_->WantsWrite(); }
  bool tls() const override { return true; }

 private:
  Io FlushQueued() override;
  void QueueCloseNotify() override { tls_->SendCloseNotify(); }
  Io Run(InputCursor& in, PlainOut& out);

  std::unique_ptr<TlsStream> tls_;
  const Router* router_ = nullptr;
  std::vector<uint8_t> held_;
};

}  // namespace rustls_node

#endif
