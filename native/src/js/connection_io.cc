// Socket mode of Connection: the byte pump below JS.
//
// Native code polls the TCP socket's descriptor on the Node event loop
// (uv_poll_t), reads ciphertext, runs rustls and writes ciphertext itself. JS sees one callback per readable event (plaintext and
// flags) and makes one call per outbound batch; no Buffer crosses for
// ciphertext at all, and nothing is copied through JS streams.
//
// The net.Socket stays open but inert (lib/socket.ts: no reads, writes or
// shutdown of its own; its destroy closes our poll first, then the
// descriptor) so the server's connection accounting is unchanged. When
// libuv still watches the descriptor, a dup() is polled instead.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

#include "js/connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "io/net_io.h"

namespace rustls_node {

extern thread_local std::vector<uint8_t> scratch;

namespace {

// One read of up to this much per readable event and iteration.
constexpr size_t kReadSize = 64 * 1024;
// How much plaintext writeSocket() encrypts ahead of what the kernel took.
constexpr size_t kEncryptAhead = 64 * 1024;
// Reads per readable event before yielding to the event loop, so one busy
// connection cannot starve the others.
constexpr int kReadsPerEvent = 4;

thread_local std::vector<uint8_t> read_buffer;
thread_local std::vector<uint8_t> plaintext;

}  // namespace

Napi::Value Connection::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (adopted_ && onevent_.IsEmpty() && info[1].IsFunction()) {
    // Accepted and handshook natively: the descriptor is ours already.
    onevent_ = Napi::Persistent(info[1].As<Napi::Function>());
    async_ = std::make_unique<Napi::AsyncContext>(env, "RustlsSocket");
    want_read_ = true;
    if (!FlushSocket()) {
      Emit(kFlagIoError);
      return env.Undefined();
    }
    UpdatePoll();
    return env.Undefined();
  }
  if (socket_mode()) {
    ThrowCode(env, "ERR_INVALID_STATE", "the connection already runs on a socket");
    return env.Undefined();
  }
  if (!info[0].IsNumber() || !info[1].IsFunction()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "start(fd, onevent) needs a descriptor and a function");
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_SOCKET", "no event loop");
    return env.Undefined();
  }
  auto* poll = new uv_poll_t;
  // The descriptor itself, when libuv no longer watches it (the net.Socket
  // stopped reading and has no write queued): one descriptor per
  // connection, as without TLS. JS makes the net.Socket inert first (no
  // reads, writes or shutdown of its own) and closes this poll before the
  // net.Socket closes the descriptor (lib/socket.ts).
  int poll_fd = fd;
  bool owned = false;
  int r = uv_poll_init(loop, poll, fd);
  if (r == UV_EEXIST) {
    // Still watched by libuv: poll a duplicate instead (same socket).
    poll_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (poll_fd < 0) {
      delete poll;
      ThrowCode(env, "ERR_RUSTLS_SOCKET", std::string("cannot duplicate the socket: ") + strerror(errno));
      return env.Undefined();
    }
    owned = true;
    r = uv_poll_init(loop, poll, poll_fd);
  }
  if (r != 0) {
    delete poll;
    if (owned) close(poll_fd);
    ThrowCode(env, "ERR_RUSTLS_SOCKET", std::string("cannot poll the socket: ") + uv_strerror(r));
    return env.Undefined();
  }
  poll->data = this;
  poll_ = poll;
  fd_ = poll_fd;
  owns_fd_ = owned;
  onevent_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "RustlsSocket");
  // Whole batches are encrypted at once; pending ciphertext is bounded by
  // what JS writes before waiting for kFlagDrained.
  if (conn_ != nullptr) rustls_connection_set_buffer_limit(conn_, SIZE_MAX);
  want_read_ = true;
  // A client's ClientHello (or anything queued before start) leaves now.
  if (conn_ != nullptr && !FlushSocket()) {
    Emit(kFlagIoError);
    return env.Undefined();
  }
  UpdatePoll();
  return env.Undefined();
}

void Connection::UpdatePoll() {
  if (poll_ == nullptr) return;
  int events = 0;
  if (want_read_ && !socket_eof_ && error_ == 0 && accepted_ == nullptr) events |= UV_READABLE;
  if (write_blocked_) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) uv_poll_stop(poll_);
  else uv_poll_start(poll_, events, OnPoll);
}

void Connection::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self == nullptr || self->closed_) return;
  Napi::HandleScope scope(self->Env());
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF; the socket's pending error says
    // what happened (ECONNRESET, ...).
    int err = SocketError(self->fd_);
    self->errno_ = err != 0 ? err : -status;
    self->Emit(kFlagIoError);
    return;
  }
  if ((events & UV_WRITABLE) != 0) self->OnWritable();
  if (!self->closed_ && (events & UV_READABLE) != 0) self->OnReadable();
}

void Connection::OnWritable() {
  write_blocked_ = false;
  bool ok = FlushSocket();
  UpdatePoll();
  if (!ok) {
    Emit(kFlagIoError);
  } else if (!write_blocked_) {
    Emit(kFlagDrained);
  }
}

void Connection::OnReadable() {
  if (read_buffer.size() < kReadSize) read_buffer.resize(kReadSize);
  // plaintext keeps its size from event to event, so its bytes stay
  // initialized (as rustls_connection_read requires) without being
  // zero-filled again for every event; plain.len says how many are new.
  Slab plain;
  plain.base = plaintext.data();
  plain.cap = plaintext.size();
  plain.grow = &plaintext;
  int32_t flags = 0;
  scratch.clear();
  for (int i = 0; i < kReadsPerEvent && want_read_ && error_ == 0 && !socket_eof_; i++) {
    ssize_t n;
    do {
      n = read(fd_, read_buffer.data(), kReadSize);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (WouldBlock(errno)) break;
      errno_ = errno;
      flags |= kFlagIoError;
      break;
    }
    Input in;
    bool eof = n == 0;
    if (eof) {
      socket_eof_ = true;
      flags |= kFlagTransportEnd;
    } else {
      bytes_read_ += static_cast<uint64_t>(n);
      in.data = read_buffer.data();
      in.len = static_cast<size_t>(n);
    }
    bool ready = conn_ != nullptr || Accepting(in, eof, &flags);
    if (ready && error_ == 0) Pump(in, eof, plain, &flags);
    if (accepted_ != nullptr) break;  // deferred routing: JS picks the config
    if (static_cast<size_t>(n) < kReadSize) break;
  }
  if ((flags & kFlagIoError) == 0 && !FlushSocket()) flags |= kFlagIoError;
  UpdatePoll();
  if (flags != 0 || plain.len > 0) Emit(flags, plain.base, plain.len);
}

bool Connection::FlushSocket() {
  if (fd_ < 0) return true;
  // Bytes produced outside rustls' queue (the acceptor's alerts, written
  // before any connection exists) go first.
  if (!scratch.empty()) {
    out_pending_.insert(out_pending_.end(), scratch.begin(), scratch.end());
    scratch.clear();
  }
  while (!out_pending_.empty()) {
    ssize_t n;
    do {
      n = write(fd_, out_pending_.data(), out_pending_.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (WouldBlock(errno)) {
        write_blocked_ = true;
        return true;
      }
      errno_ = errno;
      return false;
    }
    bytes_written_ += static_cast<uint64_t>(n);
    out_pending_.erase(out_pending_.begin(), out_pending_.begin() + n);
  }
  if (conn_ != nullptr) {
    FdWriter target{fd_, &bytes_written_};
    while (rustls_connection_wants_write(conn_)) {
      size_t n = 0;
      int err = rustls_connection_write_tls_vectored(conn_, WritevToFd, &target, &n);
      if (err != 0) {
        if (WouldBlock(err)) {
          write_blocked_ = true;
          return true;
        }
        errno_ = err;
        return false;
      }
      if (n == 0) break;
    }
  }
  unflushed_ = 0;
  if (shutdown_pending_ && !shut_down_) {
    // Everything (close_notify last) reached the kernel: now the FIN.
    shut_down_ = true;
    shutdown(fd_, SHUT_WR);
  }
  return true;
}

void Connection::Emit(int32_t flags, const uint8_t* plain, size_t plain_len) {
  if (closed_ || onevent_.IsEmpty()) return;
  Napi::Env env = Env();
  Napi::Value data = env.Undefined();
  if (plain_len > 0) data = Napi::Buffer<uint8_t>::Copy(env, plain, plain_len);
  flags |= error_ != 0 ? kFlagError : 0;
  // MakeCallback: async hooks see the socket, and ticks/microtasks run after.
  onevent_.MakeCallback(Value(), {Napi::Number::New(env, flags), data, Napi::Number::New(env, error_),
                                  Napi::Number::New(env, errno_), Napi::Number::New(env, host_)},
                        *async_);
  if (env.IsExceptionPending()) {
    // As for any event callback: the exception is the process's uncaught one.
    Napi::Error err = env.GetAndClearPendingException();
    napi_fatal_exception(env, err.Value());
  }
}

Napi::Value Connection::ReadStart(const Napi::CallbackInfo& info) {
  if (!closed_ && !want_read_) {
    want_read_ = true;
    UpdatePoll();
  }
  return info.Env().Undefined();
}

Napi::Value Connection::ReadStop(const Napi::CallbackInfo& info) {
  if (!closed_ && want_read_) {
    want_read_ = false;
    UpdatePoll();
  }
  return info.Env().Undefined();
}

Napi::Value Connection::WriteSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!socket_mode() || conn_ == nullptr || error_ != 0 || shutdown_pending_) {
    int32_t flags = 0;
    if (error_ == 0) Fail(RUSTLS_RESULT_GENERAL, &flags);
    return FinishSocketWrite(env);
  }
  bool io_failed = false;
  auto encrypt = [&](Napi::Value value) -> bool {
    const uint8_t* data;
    size_t len;
    if (!GetBytes(value, "data", &data, &len)) return false;
    size_t off = 0;
    while (off < len) {
      size_t n = 0;
      // With no buffer limit (set in start()) rustls takes everything; in
      // slices, so that what the kernel takes leaves between them.
      size_t slice = std::min(len - off, kEncryptAhead);
      rustls_result r = rustls_connection_write(conn_, data + off, slice, &n);
      if (r != RUSTLS_RESULT_OK || n == 0) {
        int32_t flags = 0;
        Fail(r != RUSTLS_RESULT_OK ? r : RUSTLS_RESULT_GENERAL, &flags);
        return true;
      }
      off += n;
      unflushed_ += n;
      if (unflushed_ >= kEncryptAhead && !write_blocked_ && !io_failed) {
        // A failure is reported by the final flush below, which meets it again.
        io_failed = !FlushSocket();
      }
    }
    return true;
  };
  if (info[0].IsArray()) {
    Napi::Array chunks = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < chunks.Length() && error_ == 0; i++) {
      if (!encrypt(chunks.Get(i))) return env.Undefined();
    }
  } else if (!encrypt(info[0])) {
    return env.Undefined();
  }
  // Deferred: the records wait in rustls' queue for flushSocket(), so that
  // the writes of one event-loop turn leave in a single writev().
  if (info[1].ToBoolean().Value() && unflushed_ < kEncryptAhead && !io_failed) {
    Finish(env, error_ != 0 ? kFlagError : 0, 0, 0, 0);
    return Napi::Number::New(env, error_ != 0 ? -1 : 0);
  }
  return FinishSocketWrite(env);
}

Napi::Value Connection::FlushSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!socket_mode()) return Napi::Number::New(env, 0);
  return FinishSocketWrite(env);
}

// Reports a socket write through the results array and the return value:
// 0 all sent, 1 pending (kFlagDrained follows), -1 failed (see results).
Napi::Value Connection::FinishSocketWrite(Napi::Env env) {
  int32_t flags = 0;
  if (error_ == 0 && !FlushSocket()) flags |= kFlagIoError;
  UpdatePoll();
  Finish(env, flags, 0, 0, 0);
  Data(env)->results_data[kResultErrno] = errno_;
  if (error_ != 0 || (flags & kFlagIoError) != 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, write_blocked_ ? 1 : 0);
}

Napi::Value Connection::ShutdownSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env) || !socket_mode() || shutdown_pending_) return env.Undefined();
  // close_notify first, then the FIN once it left (RFC 8446 §6.1).
  if (conn_ != nullptr && error_ == 0 && handshake_done_) rustls_connection_send_close_notify(conn_);
  shutdown_pending_ = true;
  return FinishSocketWrite(env);
}

// closeSocket(): stops polling the descriptor (and closes it if it is our
// duplicate) but keeps the TLS state; for a transport closed underneath.
Napi::Value Connection::CloseSocketJs(const Napi::CallbackInfo& info) {
  CloseSocket();
  return info.Env().Undefined();
}

Napi::Value Connection::SetRef(const Napi::CallbackInfo& info) {
  if (poll_ != nullptr) {
    if (info[0].ToBoolean().Value()) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    else uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  return info.Env().Undefined();
}

Napi::Value Connection::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesRead", static_cast<double>(bytes_read_));
  o.Set("bytesWritten", static_cast<double>(bytes_written_));
  return o;
}

Napi::Value Connection::Addresses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (fd_ < 0) return o;
  auto put = [&](const char* prefix, const SocketAddress& a) {
    if (a.family == 0) return;
    std::string p(prefix);
    o.Set(p + "Address", Napi::String::New(env, a.address));
    o.Set(p + "Port", Napi::Number::New(env, a.port));
    o.Set(p + "Family", Napi::String::New(env, a.family == 6 ? "IPv6" : "IPv4"));
  };
  put("remote", PeerAddress(fd_));
  put("local", LocalAddress(fd_));
  return o;
}

Napi::Value Connection::SetSocketOption(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0 || !info[0].IsString()) return env.Undefined();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int on = info[1].ToBoolean().Value() ? 1 : 0;
  if (name == "noDelay") {
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  } else if (name == "keepAlive") {
    setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    if (on != 0 && info[2].IsNumber()) {
      int delay = static_cast<int>(info[2].As<Napi::Number>().Int64Value() / 1000);
      if (delay > 0) setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &delay, sizeof delay);
    }
  }
  return env.Undefined();
}

void Connection::CloseSocket() {
  CloseAndFree(poll_);
  // A borrowed descriptor stays open: the net.Socket closes it right after.
  if (fd_ >= 0 && owns_fd_) close(fd_);
  fd_ = -1;
  if (!onevent_.IsEmpty()) onevent_.Reset();
  async_.reset();
  out_pending_.clear();
  out_pending_.shrink_to_fit();
}

}  // namespace rustls_node
