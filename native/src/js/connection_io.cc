// The fd pump of Connection: native code polls the socket's descriptor on
// the Node event loop through an endpoint (io/endpoint.h), reads
// ciphertext, runs the TLS stream and writes ciphertext itself. JS sees one
// callback per readable event (plaintext and flags) and makes one call per
// outbound batch; no Buffer crosses for ciphertext at all.
//
// The descriptor is one the native listener accepted (Adopt) or one this
// connection connected itself (connectSocket); no net.Socket is involved.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "io/relay.h"
#include "js/connection.h"
#include "plane/listener.h"

namespace rustls_node {

namespace {

// How much plaintext writeSocket() encrypts ahead of what the kernel took.
constexpr size_t kEncryptAhead = 64 * 1024;
// Size of the plaintext slab of fd-pump events; more plaintext than a
// quarter of it gets a Buffer of its own.
constexpr size_t kPlainSlab = 128 * 1024;
// The largest Buffer of its own one event hands to JS; more plaintext goes
// as several. malloc serves blocks this size from its free lists, where one
// Buffer of a whole batch (up to kReadsPerEvent reads) is past its mmap
// threshold: fresh pages to fault in, zero and unmap again per event, which
// was most of the kernel's time in a bulk upload.
constexpr size_t kPlainPiece = 64 * 1024;
// writeSocket() copies chunks smaller than this into one record with their
// neighbours, and encrypts what it gathered once it reaches this size.
constexpr size_t kGatherLimit = 16 * 1024;

// Plaintext of an fd-pump event goes to JS as a range of an environment-wide
// slab (the Buffer returned, *start): no Buffer is allocated per event. A
// slab is only ever filled forward and then replaced, never rewritten, so a
// view JS code keeps (a 'data' listener may keep its chunk) is never
// overwritten; a slab lives while views of it do, as Node's Buffer pool.
Napi::Value PlainToSlab(Napi::Env env, const uint8_t* plain, size_t len, size_t* start) {
  *start = 0;
  if (len > kPlainSlab / 4) return Napi::Buffer<uint8_t>::Copy(env, plain, len);
  AddonData* d = Data(env);
  if (d->plain_slab.IsEmpty() || kPlainSlab - d->plain_slab_used < len) {
    Napi::Buffer<uint8_t> slab = Napi::Buffer<uint8_t>::New(env, kPlainSlab);
    d->plain_slab.Reset(slab, 1);
    d->plain_slab_base = slab.Data();
    d->plain_slab_used = 0;
  }
  *start = d->plain_slab_used;
  std::memcpy(d->plain_slab_base + d->plain_slab_used, plain, len);
  d->plain_slab_used += len;
  return d->plain_slab.Value();
}

}  // namespace

Napi::Value Connection::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!adopted_ || !onevent_.IsEmpty() || !info[1].IsFunction()) {
    ThrowCode(env, "ERR_INVALID_STATE", "start(-1, onevent) is for a connection the native listener handed over, once");
    return env.Undefined();
  }
  // Accepted (and handshook, or paused at its hello) natively: the
  // endpoint is ours already.
  onevent_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "RustlsSocket");
  Hold();
  want_read_ = true;
  if (!FlushSocket()) {
    Emit(kFlagIoError);
    return env.Undefined();
  }
  UpdatePoll();
  return env.Undefined();
}

Napi::Value Connection::ConnectSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (fd_pump() && connect_failed_) {
    // Nothing reached the failed descriptor: the stream is as new.
    CloseSocket();
    stream_ = ep_->ReleaseStream();
    ep_.reset();
    connect_failed_ = false;
  }
  if (fd_pump() || stream_ == nullptr || stream_->server()) {
    ThrowCode(env, "ERR_INVALID_STATE", "connectSocket() is for a client connection that runs on no transport yet");
    return env.Undefined();
  }
  if (!info[0].IsObject() || !info[1].IsFunction()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "connectSocket(address, onevent) needs an address object and a function");
    return env.Undefined();
  }
  Napi::Object a = info[0].As<Napi::Object>();
  ConnectTarget target;
  std::string err;
  bool ok =
      a.Get("path").IsString()
          ? TargetFromPath(a.Get("path").As<Napi::String>().Utf8Value(), &target, &err)
          : TargetFromIp(a.Get("host").IsString() ? a.Get("host").As<Napi::String>().Utf8Value() : "",
                         a.Get("port").IsNumber() ? a.Get("port").As<Napi::Number>().Int32Value() : -1, &target, &err);
  if (!ok) {
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", "connectSocket: " + err);
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_SOCKET", "no event loop");
    return env.Undefined();
  }
  int fd = ConnectNonBlocking(target);
  if (fd < 0) return Napi::Number::New(env, errno);
  auto ep = std::make_unique<TlsEndpoint>(fd, std::move(stream_));
  if (!ep->StartPoll(loop, this)) {
    // The endpoint closes the descriptor; the stream goes with it.
    return Napi::Number::New(env, EBADF);
  }
  ep_ = std::move(ep);
  onevent_ = Napi::Persistent(info[1].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "RustlsSocket");
  Hold();
  connecting_ = true;
  want_read_ = true;
  UpdatePoll();
  return Napi::Number::New(env, 0);
}

void Connection::OnConnected() {
  // A failed connect shows as POLLERR or as writable with SO_ERROR set.
  int err = SocketError(ep_->fd());
  connecting_ = false;
  if (err != 0) {
    errno_ = err;
    connect_failed_ = true;
    ep_->SetEvents(0, OnPoll);
    Emit(kFlagIoError);
    return;
  }
  addresses_.Read(ep_->fd());
  // The ClientHello leaves now; then the handshake runs on the fd pump.
  int32_t flags = kFlagConnected;
  if (!FlushSocket()) flags |= kFlagIoError;
  UpdatePoll();
  Emit(flags);
}

void Connection::UpdatePoll() {
  // Relayed: the relay polls both sides itself (Relay()).
  if (ep_ == nullptr || pair_ != nullptr) return;
  if (connecting_) {
    ep_->SetEvents(UV_WRITABLE, OnPoll);
    return;
  }
  TlsStream& t = ep_->stream();
  int events = 0;
  if (want_read_ && !ep_->fin_received() && !t.failed() && t.hello() == nullptr) events |= UV_READABLE;
  if (write_blocked_) events |= UV_WRITABLE;
  ep_->SetEvents(events, OnPoll);
}

void Connection::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self == nullptr || self->closed_) return;
  Napi::HandleScope scope(self->Env());
  if (self->pair_ != nullptr) {
    self->RelayStep(*self->ep_, *self->pair_, status, events);
    return;
  }
  if (self->connecting_) {
    self->OnConnected();
    return;
  }
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF; the socket's pending error says
    // what happened (ECONNRESET, ...).
    int err = SocketError(self->ep_->fd());
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
  TlsEndpoint& ep = *ep_;
  TlsStream& t = ep.stream();
  PlainOut plain = PlainOut::Growing(&SharedPlain());
  int32_t flags = 0;
  for (int i = 0; i < kReadsPerEvent && want_read_ && !t.failed() && !ep.fin_received(); i++) {
    Io r;
    if (t.peer_closed()) {
      // Nothing after close_notify is processed; its FIN still ends the
      // transport (kFlagTransportEnd), which JS waits for.
      r = ep.DiscardUntilFin();
    } else {
      r = ep.Read(plain);
    }
    if (r == Io::kWouldBlock) break;
    if (r == Io::kFailed) {
      if (ep.tls_error == 0) {
        errno_ = ep.sys_errno;
        flags |= kFlagIoError;
      }
      break;
    }
    // A deferred routing choice: JS picks the config (accept()).
    if (t.hello() != nullptr) break;
    if (r == Io::kEnd && ep.fin_received()) break;
    if (ep.drained()) break;
  }
  if (ep.fin_received()) flags |= kFlagTransportEnd;
  flags |= t.TakeFlags();
  if ((flags & kFlagIoError) == 0 && !FlushSocket()) flags |= kFlagIoError;
  UpdatePoll();
  if (flags != 0 || plain.len > 0) Emit(flags, plain.base, plain.len);
}

Napi::Value Connection::PairPlain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!fd_pump() || ep_->fd() < 0 || onevent_.IsEmpty() || pair_ != nullptr || connecting_ || !tls().handshake_done() ||
      tls().failed()) {
    ThrowCode(env, "ERR_INVALID_STATE", "pairPlain() is for a started fd-pump connection past its handshake, once");
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_SOCKET", "no event loop");
    return env.Undefined();
  }
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    return Napi::Number::New(env, -errno);
  auto pair = std::make_unique<PlainEndpoint>(fds[0]);
  if (!pair->StartPoll(loop, this)) {
    close(fds[1]);
    return Napi::Number::New(env, -EBADF);
  }
  pair_ = std::move(pair);
  if (info[0].IsBuffer()) {
    Napi::Buffer<uint8_t> first = info[0].As<Napi::Buffer<uint8_t>>();
    // Queued if the socketpair cannot take it all; the relay sends it first.
    if (pair_->Write(first.Data(), first.Length()) == Io::kFailed) {
      close(fds[1]);
      pair_.reset();
      return Napi::Number::New(env, -EPIPE);
    }
  }
  // The client may have ended its side before the pairing.
  if (ep_->input_ended()) pair_->EndWrite();
  Relay();
  return Napi::Number::New(env, fds[1]);
}

void Connection::OnPairPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Connection*>(handle->data);
  if (self == nullptr || self->closed_ || self->pair_ == nullptr) return;
  Napi::HandleScope scope(self->Env());
  self->RelayStep(*self->pair_, *self->ep_, status, events);
}

void Connection::RelayStep(Endpoint& polled, Endpoint& other, int status, int events) {
  if (status < 0 || ((events & UV_WRITABLE) != 0 && polled.Flush() == Io::kFailed) ||
      ((events & UV_READABLE) != 0 && !RelayMove(polled, other))) {
    RelayFailed();
    return;
  }
  Relay();
}

void Connection::Relay() {
  RelayPolls p = RelayEvents(*ep_, *pair_);
  ep_->SetEvents(p.a, OnPoll);
  pair_->SetEvents(p.b, OnPairPoll);
  int32_t flags = 0;
  if (pair_->input_ended() && !plain_end_reported_) {
    plain_end_reported_ = true;
    flags |= kFlagPlainEnd;
  }
  if (p.done) flags |= kFlagRelayDone;
  if (flags != 0) Emit(flags);
}

void Connection::RelayFailed() {
  // Node's side of the pair reads its end, the TLS side stops here (an
  // alert the failure queued went out in RelayMove), and JS closes the
  // connection: what failed is Node's socket's to report.
  pair_->Close();
  ep_->SetEvents(0, OnPoll);
  Emit(kFlagRelayDone);
}

bool Connection::FlushSocket() {
  if (ep_ == nullptr || ep_->fd() < 0) return true;
  Io r = ep_->Flush();
  if (r == Io::kFailed) {
    errno_ = ep_->sys_errno;
    return false;
  }
  // Only the writable event clears the block: it is what tells JS (Drained).
  if (r == Io::kWouldBlock)
    write_blocked_ = true;
  else
    unflushed_ = 0;
  return true;
}

void Connection::Emit(int32_t flags, const uint8_t* plain, size_t plain_len) {
  if (closed_ || onevent_.IsEmpty()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  // Every piece is copied before JS runs: `plain` is the shared plaintext
  // buffer, which a callback may reuse (another connection's accept()).
  // The flags go with the last piece.
  std::vector<Napi::Value> pieces;
  for (; plain_len > kPlainPiece; plain += kPlainPiece, plain_len -= kPlainPiece)
    pieces.push_back(Napi::Buffer<uint8_t>::Copy(env, plain, kPlainPiece));
  for (const Napi::Value& piece : pieces) {
    EmitPiece(env, 0, piece, 0, kPlainPiece);
    // JS may close the connection in any callback; the rest goes with it.
    if (closed_) return;
  }
  size_t start = 0;
  Napi::Value data = plain_len > 0 ? PlainToSlab(env, plain, plain_len, &start) : env.Undefined();
  EmitPiece(env, flags, data, start, plain_len);
}

void Connection::EmitPiece(Napi::Env env, int32_t flags, Napi::Value data, size_t start, size_t len) {
  // The numbers go through the results array (JS reads them first thing).
  Finish(env, flags, 0, len, 0);
  int32_t* out = Data(env)->results_data;
  out[kResultErrno] = errno_;
  out[kResultPlainStart] = static_cast<int32_t>(start);
  // MakeCallback: async hooks see the socket, and ticks/microtasks run after.
  onevent_.MakeCallback(Value(), {data}, *async_);
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
  if (!fd_pump() || ep_->fd() < 0 || tls().conn() == nullptr || tls().failed() || shutdown_requested_) {
    if (!tls().failed()) tls().Fail(RUSTLS_RESULT_GENERAL);
    return FinishSocketWrite(env);
  }
  TlsStream& t = tls();
  bool io_failed = false;
  auto encrypt = [&](const uint8_t* data, size_t len) {
    size_t off = 0;
    while (off < len && !t.failed()) {
      // In slices, so that what the kernel takes leaves between them.
      size_t slice = std::min(len - off, kEncryptAhead);
      if (!t.Write(data + off, slice)) break;
      off += slice;
      unflushed_ += slice;
      if (unflushed_ >= kEncryptAhead && !write_blocked_ && !io_failed) {
        // A failure is reported by the final flush below, which meets it again.
        io_failed = !FlushSocket();
      }
    }
  };
  // Small chunks (an HTTP response's header string and body) are gathered
  // into one record; a large Buffer, or a last Buffer with nothing gathered
  // before it, is encrypted from where it lies.
  // Arguments: defer, the latin1 mask, then the chunks.
  std::vector<uint8_t>& gather = Data(env)->write_gather;
  gather.clear();
  uint32_t latin1 = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  for (size_t i = 2; i < info.Length() && !t.failed(); i++) {
    Napi::Value value = info[i];
    size_t index = i - 2;
    if (value.IsString()) {
      bool as_latin1 = index < 32 && (latin1 & (1u << index)) != 0;
      if (!AppendString(value, as_latin1, &gather)) return env.Undefined();
    } else {
      const uint8_t* data;
      size_t len;
      if (!GetBytes(value, "data", &data, &len)) return env.Undefined();
      if (len >= kGatherLimit || (gather.empty() && i + 1 == info.Length())) {
        encrypt(gather.data(), gather.size());
        gather.clear();
        encrypt(data, len);
        continue;
      }
      gather.insert(gather.end(), data, data + len);
    }
    if (gather.size() >= kGatherLimit) {
      encrypt(gather.data(), gather.size());
      gather.clear();
    }
  }
  if (!gather.empty() && !t.failed()) encrypt(gather.data(), gather.size());
  gather.clear();
  if (gather.capacity() > 4 * kGatherLimit) gather.shrink_to_fit();
  // Deferred: the records wait in rustls' queue for flushSocket(), so that
  // the writes of one event-loop turn leave in a single writev().
  if (info[0].ToBoolean().Value() && unflushed_ < kEncryptAhead && !io_failed) {
    Finish(env, t.TakeFlags(), 0, 0, 0);
    return Napi::Number::New(env, t.failed() ? -1 : 0);
  }
  return FinishSocketWrite(env);
}

Napi::Value Connection::FlushSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (!fd_pump()) return Napi::Number::New(env, 0);
  return FinishSocketWrite(env);
}

// Reports a socket write through the results array and the return value:
// 0 all sent, 1 pending (kFlagDrained follows), -1 failed (see results).
Napi::Value Connection::FinishSocketWrite(Napi::Env env) {
  int32_t flags = tls().TakeFlags();
  if (!tls().failed() && !FlushSocket()) flags |= kFlagIoError;
  UpdatePoll();
  Finish(env, flags, 0, 0, 0);
  Data(env)->results_data[kResultErrno] = errno_;
  if (tls().failed() || (flags & kFlagIoError) != 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, write_blocked_ ? 1 : 0);
}

Napi::Value Connection::ShutdownSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env) || !fd_pump() || shutdown_requested_) return env.Undefined();
  shutdown_requested_ = true;
  // close_notify first (once the handshake completed and nothing failed),
  // then the FIN once it left (RFC 8446 §6.1).
  ep_->EndWrite();
  if (tls().failed()) {
    // The alert (if any) is already queued: it leaves, then the FIN.
    FlushSocket();
  }
  return FinishSocketWrite(env);
}

// closeSocket(): stops polling the descriptor (and closes it if it is our
// duplicate) but keeps the TLS state; for a transport closed underneath.
Napi::Value Connection::CloseSocketJs(const Napi::CallbackInfo& info) {
  CloseSocket();
  return info.Env().Undefined();
}

Napi::Value Connection::SetRef(const Napi::CallbackInfo& info) {
  if (ep_ != nullptr) ep_->SetRef(info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

Napi::Value Connection::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesRead", static_cast<double>(ep_ != nullptr ? ep_->bytes_in : final_in_));
  o.Set("bytesWritten", static_cast<double>(ep_ != nullptr ? ep_->bytes_out : final_out_));
  return o;
}

Napi::Value Connection::Addresses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  auto put = [&](const SocketAddress& a, const char* address, const char* port, const char* family) {
    if (a.family == 0) return;
    o.Set(address, Napi::String::New(env, a.address));
    o.Set(port, Napi::Number::New(env, a.port));
    o.Set(family, Napi::String::New(env, a.family == 6 ? "IPv6" : "IPv4"));
  };
  put(addresses_.Peer(), "remoteAddress", "remotePort", "remoteFamily");
  put(addresses_.Local(), "localAddress", "localPort", "localFamily");
  return o;
}

Napi::Value Connection::SetSocketOption(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ep_ == nullptr || ep_->fd() < 0 || !info[0].IsString()) return env.Undefined();
  int fd = ep_->fd();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int on = info[1].ToBoolean().Value() ? 1 : 0;
  if (name == "noDelay") {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  } else if (name == "keepAlive") {
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    if (on != 0 && info[2].IsNumber()) {
      int delay = static_cast<int>(info[2].As<Napi::Number>().Int64Value() / 1000);
      if (delay > 0) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &delay, sizeof delay);
    }
  }
  return env.Undefined();
}

void Connection::Hold() {
  if (held_) return;
  held_ = true;
  Ref();
}

void Connection::CloseSocket() {
  if (pair_ != nullptr) pair_->Close();
  if (ep_ != nullptr) ep_->Close();
  if (!onevent_.IsEmpty()) onevent_.Reset();
  async_.reset();
  if (held_) {
    held_ = false;
    Unref();
  }
}

}  // namespace rustls_node
