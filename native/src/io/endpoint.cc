#include "io/endpoint.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace rustls_node {

namespace {

// Pending plaintext a plain endpoint keeps beyond this is released once
// sent, so that a connection that was busy once does not keep its peak.
constexpr size_t kKeepPending = 16 * 1024;

}  // namespace

uint8_t* ReadBuffer() {
  thread_local std::vector<uint8_t> buffer(kReadSize);
  return buffer.data();
}

PlainBuffer& SharedPlain() {
  thread_local PlainBuffer plain;
  return plain;
}

bool Endpoint::StartPoll(uv_loop_t* loop, void* owner) {
  auto* poll = new uv_poll_t;
  if (uv_poll_init(loop, poll, fd_) != 0) {
    delete poll;
    return false;
  }
  poll->data = owner;
  poll_ = poll;
  events_ = 0;
  return true;
}

void Endpoint::SetEvents(int events, uv_poll_cb cb) {
  if (poll_ == nullptr || events == events_) return;
  events_ = events;
  if (events == 0) uv_poll_stop(poll_);
  else uv_poll_start(poll_, events, cb);
}

uv_poll_t* Endpoint::TakePoll() {
  uv_poll_t* poll = poll_;
  if (poll != nullptr) uv_poll_stop(poll);
  poll_ = nullptr;
  events_ = 0;
  return poll;
}

int Endpoint::TakeFd() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void Endpoint::Close() {
  CloseAndFree(poll_);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

ssize_t Endpoint::ReadRaw(uint8_t* buf, size_t cap) {
  ssize_t n;
  do {
    n = read(fd_, buf, cap);
  } while (n < 0 && errno == EINTR);
  if (n > 0) bytes_in += static_cast<uint64_t>(n);
  return n;
}

Io Endpoint::Flush() {
  if (fd_ < 0) return Io::kFailed;
  Io r = FlushQueued();
  if (r != Io::kOk) return r;
  if (end_requested_ && !fin_sent_) {
    fin_sent_ = true;
    shutdown(fd_, SHUT_WR);
  }
  return Io::kOk;
}

void Endpoint::EndWrite() {
  if (end_requested_) return;
  end_requested_ = true;
  QueueCloseNotify();
}

// ---- plain --------------------------------------------------------------

Io Endpoint::ReadSome(uint8_t* buf, size_t* n) {
  ssize_t r = ReadRaw(buf, kReadSize);
  if (r < 0) {
    if (WouldBlock(errno)) return Io::kWouldBlock;
    sys_errno = errno;
    return Io::kFailed;
  }
  *n = static_cast<size_t>(r);
  if (r == 0) {
    input_ended_ = true;
    return Io::kEnd;
  }
  return Io::kOk;
}

Io PlainEndpoint::Read(PlainBuffer* out) {
  size_t n = 0;
  Io r = ReadSome(out->Room(kReadSize), &n);
  out->len += n;
  return r;
}

Io PlainEndpoint::Write(const uint8_t* data, size_t len) {
  if (len == 0) return HasQueued() ? Io::kWouldBlock : Io::kOk;
  if (!HasQueued()) {
    ssize_t n;
    do {
      n = write(fd_, data, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (!WouldBlock(errno)) {
        sys_errno = errno;
        return Io::kFailed;
      }
      n = 0;
    }
    bytes_out += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) == len) return Io::kOk;
    data += n;
    len -= static_cast<size_t>(n);
  }
  pending_.insert(pending_.end(), data, data + len);
  return Io::kWouldBlock;
}

void PlainEndpoint::Prepend(const uint8_t* data, size_t len) {
  pending_.insert(pending_.begin() + static_cast<ptrdiff_t>(pending_off_), data, data + len);
}

Io PlainEndpoint::FlushQueued() {
  while (pending_off_ < pending_.size()) {
    ssize_t n;
    do {
      n = write(fd_, pending_.data() + pending_off_, pending_.size() - pending_off_);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (WouldBlock(errno)) return Io::kWouldBlock;
      sys_errno = errno;
      return Io::kFailed;
    }
    bytes_out += static_cast<uint64_t>(n);
    pending_off_ += static_cast<size_t>(n);
  }
  pending_.clear();
  pending_off_ = 0;
  if (pending_.capacity() > kKeepPending) pending_.shrink_to_fit();
  return Io::kOk;
}

// ---- TLS ----------------------------------------------------------------

std::unique_ptr<TlsEndpoint> TlsEndpoint::TakeOver(TlsEndpoint& from, void* owner) {
  uv_poll_t* poll = from.TakePoll();
  int fd = from.TakeFd();
  auto to = std::make_unique<TlsEndpoint>(fd, from.TakeConnection());
  to->bytes_in = from.bytes_in;
  to->bytes_out = from.bytes_out;
  to->AdoptPoll(poll, owner);
  return to;
}

TlsEndpoint::~TlsEndpoint() {
  rustls_connection_free(conn_);
  conn_ = nullptr;
}

bool TlsEndpoint::Drain(PlainBuffer* out) {
  for (;;) {
    size_t n = 0;
    uint8_t* room = out->Room(16 * 1024);
    rustls_result r = rustls_connection_read(conn_, room, out->room(), &n);
    if (r == RUSTLS_RESULT_OK) {
      if (n == 0) {
        // Ok(0): close_notify received and every byte before it read.
        peer_closed_ = true;
        input_ended_ = true;
        return true;
      }
      out->len += n;
      continue;
    }
    if (r == RUSTLS_RESULT_PLAINTEXT_EMPTY) return true;
    // UNEXPECTED_EOF: the transport ended without close_notify (truncation).
    tls_error = r;
    return false;
  }
}

Io TlsEndpoint::Feed(InputCursor& in, PlainBuffer* out) {
  while (in.pos < in.len && !peer_closed_) {
    size_t n = 0;
    // rustls takes at most one buffer's worth per call. Plaintext is
    // drained after each step, so rustls' received-plaintext limit cannot
    // make this fail.
    if (rustls_connection_read_tls(conn_, ReadFromCursor, &in, &n) != 0) {
      tls_error = RUSTLS_RESULT_IO;
      return Io::kFailed;
    }
    rustls_result r = rustls_connection_process_new_packets(conn_);
    if (r != RUSTLS_RESULT_OK) {
      tls_error = r;
      return Io::kFailed;
    }
    if (!Drain(out)) return Io::kFailed;
  }
  // After close_notify nothing more is read (RFC 8446 §6.1).
  return peer_closed_ ? Io::kEnd : Io::kOk;
}

Io TlsEndpoint::Read(PlainBuffer* out) {
  if (peer_closed_) return Io::kEnd;
  uint8_t* buf = ReadBuffer();
  size_t n = 0;
  Io r = ReadSome(buf, &n);
  if (r == Io::kWouldBlock || r == Io::kFailed) return r;
  if (r == Io::kEnd) {
    if (!eof_fed_) {
      // A read of 0 bytes tells rustls about the transport EOF; before
      // close_notify it reports UNEXPECTED_EOF on the next read.
      eof_fed_ = true;
      InputCursor none;
      size_t k = 0;
      rustls_connection_read_tls(conn_, ReadFromCursor, &none, &k);
      rustls_result r = rustls_connection_process_new_packets(conn_);
      if (r != RUSTLS_RESULT_OK) {
        tls_error = r;
        return Io::kFailed;
      }
      if (!Drain(out)) return Io::kFailed;
    }
    if (peer_closed_) return Io::kEnd;
    if (tls_error == 0) tls_error = RUSTLS_RESULT_UNEXPECTED_EOF;
    return Io::kFailed;
  }
  InputCursor in{buf, n, 0};
  return Feed(in, out);
}

Io TlsEndpoint::Write(const uint8_t* data, size_t len) {
  size_t off = 0;
  while (off < len) {
    size_t n = 0;
    rustls_result r = rustls_connection_write(conn_, data + off, len - off, &n);
    if (r != RUSTLS_RESULT_OK || n == 0) {
      tls_error = r != RUSTLS_RESULT_OK ? r : RUSTLS_RESULT_GENERAL;
      return Io::kFailed;
    }
    off += n;
  }
  return Flush();
}

Io TlsEndpoint::FlushQueued() {
  FdWriter target{fd_, &bytes_out};
  while (rustls_connection_wants_write(conn_)) {
    size_t n = 0;
    int err = rustls_connection_write_tls_vectored(conn_, WritevToFd, &target, &n);
    if (err != 0) {
      if (WouldBlock(err)) return Io::kWouldBlock;
      sys_errno = err;
      return Io::kFailed;
    }
    if (n == 0) break;
  }
  return Io::kOk;
}

void TlsEndpoint::QueueCloseNotify() {
  if (conn_ != nullptr && !rustls_connection_is_handshaking(conn_)) rustls_connection_send_close_notify(conn_);
}

}  // namespace rustls_node
