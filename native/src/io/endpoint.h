// Endpoint: one non-blocking socket of the native data plane (listener,
// splice), plain or TLS, polled on the Node loop and never seen by JS.
//
// Read() takes what one read() returns and hands back plaintext; Write()
// queues plaintext and sends what the kernel takes; Flush() sends the rest
// once the socket is writable; EndWrite() ends our direction (TLS:
// close_notify first, RFC 8446 §6.1) and the FIN follows the last byte.
// An endpoint owns its descriptor and its uv_poll_t.
#ifndef RUSTLS_NODE_ENDPOINT_H
#define RUSTLS_NODE_ENDPOINT_H

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/net_io.h"

namespace rustls_node {

enum class Io {
  kOk,          // progress (maybe no plaintext: a handshake record, a ticket)
  kWouldBlock,  // nothing to read / the kernel took only part
  kEnd,         // the peer ended its direction (close_notify, or FIN for plain)
  kFailed,      // see tls_error / sys_errno
};

// Plaintext of one pump step. The vector only grows, so its bytes stay
// initialized (rustls_connection_read wants initialized memory) without
// being zero-filled for every read.
struct PlainBuffer {
  std::vector<uint8_t> bytes;
  size_t len = 0;
  // Room for at least `min` more bytes after len.
  uint8_t* Room(size_t min) {
    if (bytes.size() - len < min) bytes.resize(len + min);
    return bytes.data() + len;
  }
  size_t room() const { return bytes.size() - len; }
};

// How much one read() takes.
constexpr size_t kReadSize = 64 * 1024;

class Endpoint {
 public:
  explicit Endpoint(int fd) : fd_(fd) {}
  virtual ~Endpoint() { Close(); }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  virtual Io Read(PlainBuffer* out) = 0;
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
  // Hands the poll handle to a new owner (the JS Connection); the endpoint
  // no longer stops or frees it.
  uv_poll_t* TakePoll();
  // Gives up the descriptor without closing it.
  int TakeFd();
  void Close();

  // read() with EINTR handled; counts bytes_in. -1: see errno.
  ssize_t ReadRaw(uint8_t* buf, size_t cap);
  // One read of up to kReadSize into buf: kOk with *n bytes, kEnd (FIN),
  // kWouldBlock, or kFailed (sys_errno).
  Io ReadSome(uint8_t* buf, size_t* n);
  // Takes a poll handle made for this descriptor by a previous owner.
  void AdoptPoll(uv_poll_t* poll, void* owner) {
    poll_ = poll;
    poll_->data = owner;
    events_ = 0;
  }

  int fd() const { return fd_; }
  bool input_ended() const { return input_ended_; }
  bool end_requested() const { return end_requested_; }
  bool fin_sent() const { return fin_sent_; }

  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint32_t tls_error = 0;
  int sys_errno = 0;

 protected:
  virtual Io FlushQueued() = 0;
  virtual void QueueCloseNotify() {}

  int fd_;
  uv_poll_t* poll_ = nullptr;
  int events_ = 0;
  bool input_ended_ = false;
  bool end_requested_ = false;
  bool fin_sent_ = false;
};

class PlainEndpoint final : public Endpoint {
 public:
  explicit PlainEndpoint(int fd) : Endpoint(fd) {}
  Io Read(PlainBuffer* out) override;
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
  // Takes ownership of `conn` (freed with the endpoint).
  TlsEndpoint(int fd, rustls_connection* conn) : Endpoint(fd), conn_(conn) {
    // Writes are bounded by the owner's flow control, not by rustls.
    if (conn_ != nullptr) rustls_connection_set_buffer_limit(conn_, SIZE_MAX);
  }
  ~TlsEndpoint() override;
  // A new endpoint that takes over `from`'s descriptor, poll handle (its
  // events now go to `owner`), connection and byte counts; `from` keeps
  // nothing to close or free.
  static std::unique_ptr<TlsEndpoint> TakeOver(TlsEndpoint& from, void* owner);
  Io Read(PlainBuffer* out) override;
  // Processes ciphertext already read (the rest of a ClientHello chunk).
  Io Feed(InputCursor& in, PlainBuffer* out);
  Io Write(const uint8_t* data, size_t len) override;
  bool HasQueued() const override { return conn_ != nullptr && rustls_connection_wants_write(conn_); }
  bool tls() const override { return true; }
  bool handshaking() const { return conn_ == nullptr || rustls_connection_is_handshaking(conn_); }
  bool peer_closed() const { return peer_closed_; }
  rustls_connection* conn() const { return conn_; }
  rustls_connection* TakeConnection() {
    rustls_connection* c = conn_;
    conn_ = nullptr;
    return c;
  }
  // Sets the connection once the acceptor made it.
  void SetConnection(rustls_connection* conn) {
    conn_ = conn;
    rustls_connection_set_buffer_limit(conn_, SIZE_MAX);
  }

 private:
  Io FlushQueued() override;
  void QueueCloseNotify() override;
  // Moves decrypted bytes to `out`; false on a TLS error.
  bool Drain(PlainBuffer* out);

  rustls_connection* conn_;
  bool peer_closed_ = false;
  bool eof_fed_ = false;
};

// Thread-local buffers of the data plane: one read buffer and one plaintext
// buffer serve every endpoint on the loop thread, so an idle connection
// holds none.
uint8_t* ReadBuffer();
PlainBuffer& SharedPlain();

}  // namespace rustls_node

#endif
