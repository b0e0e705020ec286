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

std::vector<uint8_t>& SharedPlain() {
  thread_local std::vector<uint8_t> plain;
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
  if (events == 0)
    uv_poll_stop(poll_);
  else
    uv_poll_start(poll_, events, cb);
}

void Endpoint::Rebind(void* owner) {
  if (poll_ == nullptr) return;
  uv_poll_stop(poll_);
  poll_->data = owner;
  events_ = 0;
}

void Endpoint::SetRef(bool ref) {
  if (poll_ == nullptr) return;
  if (ref)
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  else
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
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
  last_read = 0;
  ssize_t r = ReadRaw(buf, kReadSize);
  if (r < 0) {
    if (WouldBlock(errno)) return Io::kWouldBlock;
    sys_errno = errno;
    return Io::kFailed;
  }
  *n = static_cast<size_t>(r);
  last_read = *n;
  if (r == 0) {
    input_ended_ = true;
    fin_received_ = true;
    return Io::kEnd;
  }
  return Io::kOk;
}

Io PlainEndpoint::Read(PlainOut& out) {
  if (!out.Reserve(kReadSize)) return Io::kWouldBlock;
  size_t n = 0;
  Io r = ReadSome(out.base + out.len, &n);
  out.len += n;
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

Io TlsEndpoint::Run(InputCursor& in, PlainOut& out) {
  TlsStream& tls = *tls_;
  if (tls.accepting() && tls.hello() != nullptr) {
    // A routing choice or a session lookup is pending: what came after the
    // hello waits with the rest.
    if (in.pos < in.len) held_.insert(held_.end(), in.data + in.pos, in.data + in.len);
    return Io::kOk;
  }
  if (tls.accepting()) {
    if (router_ == nullptr) {
      tls.Fail(kNoHost);
      tls_error = tls.error();
      return Io::kFailed;
    }
    TlsStream::Accept a = tls.AcceptHello(in, *router_);
    if (a == TlsStream::Accept::kFailed) {
      tls_error = tls.error();
      return Io::kFailed;
    }
    if (a != TlsStream::Accept::kConnection) {
      // Deferred (routing or a session lookup): what came after the hello
      // waits for Continue() / ContinueSession().
      if (in.pos < in.len) held_.insert(held_.end(), in.data + in.pos, in.data + in.len);
      return Io::kOk;
    }
  }
  if (!tls.Feed(in, out)) {
    tls_error = tls.error();
    return Io::kFailed;
  }
  if (tls.peer_closed()) {
    // After close_notify nothing more is read (RFC 8446 §6.1).
    input_ended_ = true;
    return Io::kEnd;
  }
  return Io::kOk;
}

Io TlsEndpoint::Read(PlainOut& out) {
  TlsStream& tls = *tls_;
  if (tls.peer_closed()) return Io::kEnd;
  if (tls.failed()) {
    tls_error = tls.error();
    return Io::kFailed;
  }
  // A deferred routing choice is pending: nothing is read meanwhile.
  if (tls.hello() != nullptr) return Io::kWouldBlock;
  uint8_t* buf = ReadBuffer();
  size_t n = 0;
  Io r = ReadSome(buf, &n);
  if (r == Io::kWouldBlock || r == Io::kFailed) return r;
  if (r == Io::kEnd) {
    if (!tls.FeedEof(out)) {
      tls_error = tls.error();
      return Io::kFailed;
    }
    return Io::kEnd;
  }
  InputCursor in{buf, n, 0};
  return Run(in, out);
}

Io TlsEndpoint::Resume(PlainOut& out) {
  std::vector<uint8_t> held;
  held.swap(held_);
  if (tls_->failed()) {
    tls_error = tls_->error();
    return Io::kFailed;
  }
  router_ = nullptr;
  InputCursor in{held.data(), held.size(), 0};
  return Run(in, out);
}

Io TlsEndpoint::DiscardUntilFin() {
  if (fin_received_) return Io::kEnd;
  size_t n = 0;
  return ReadSome(ReadBuffer(), &n);
}

Io TlsEndpoint::Write(const uint8_t* data, size_t len) {
  if (!tls_->Write(data, len)) {
    tls_error = tls_->error();
    return Io::kFailed;
  }
  return Flush();
}

Io TlsEndpoint::FlushQueued() {
  FdWriter target{fd_, &bytes_out, end_requested_ && !fin_sent_};
  while (tls_->WantsWrite()) {
    size_t n = 0;
    int err = tls_->WriteTls(WritevToFd, &target, &n);
    if (err != 0) {
      if (WouldBlock(err)) return Io::kWouldBlock;
      sys_errno = err;
      return Io::kFailed;
    }
    if (n == 0) break;
  }
  return Io::kOk;
}

}  // namespace rustls_node
