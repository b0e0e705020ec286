#include "connection.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "acceptor.h"
#include "config.h"
#include "listener.h"

namespace rustls_node {

namespace {

// rustls fragments application data into records of at most 16 KiB of
// plaintext (RFC 8446 §5.1); the per-record expansion is at most 5 (header)
// + 8 (TLS 1.2 explicit nonce) + 16 (tag) + 1 (TLS 1.3 content type), padded
// here for safety.
constexpr size_t kMaxPlainRecord = 16 * 1024;
constexpr size_t kRecordOverhead = 64;
// Rough native footprint of a live connection, reported to V8 so that
// garbage collection sees what idle handles cost.
constexpr int64_t kConnectionBytes = 8 * 1024;

}  // namespace

// Ciphertext produced during feed/accept: handshake flights, alerts, tickets.
// One buffer per thread, reused across calls; copied out once per call (or
// written to the socket, in socket mode).
thread_local std::vector<uint8_t> scratch;

namespace {

int AppendVectoredToScratch(void*, const rustls_iovec* iov, size_t count, size_t* out_n) {
  const struct iovec* v = reinterpret_cast<const struct iovec*>(iov);
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(v[i].iov_base);
    scratch.insert(scratch.end(), p, p + v[i].iov_len);
    total += v[i].iov_len;
  }
  *out_n = total;
  return 0;
}

}  // namespace


namespace {

// rustls_write_vectored_callback into the caller's slab: copies what fits;
// EAGAIN when nothing does, so rustls keeps the rest queued.
int WriteToSlab(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n) {
  auto* slab = static_cast<Connection::Slab*>(userdata);
  const struct iovec* v = reinterpret_cast<const struct iovec*>(iov);
  size_t total = 0;
  for (size_t i = 0; i < count && slab->len < slab->cap; i++) {
    size_t k = std::min(v[i].iov_len, slab->cap - slab->len);
    std::memcpy(slab->base + slab->len, v[i].iov_base, k);
    slab->len += k;
    total += k;
    if (k < v[i].iov_len) break;
  }
  if (total == 0) return EAGAIN;
  *out_n = total;
  return 0;
}

// Reads (buffer, offset, length) arguments, checking the range lies inside
// the buffer: a wrong offset from JS must throw, never read or write out of
// bounds.
bool GetRange(const Napi::CallbackInfo& info, size_t first, const char* name, uint8_t** base,
              size_t* len) {
  const uint8_t* data;
  size_t size;
  if (!GetBytes(info[first], name, &data, &size)) return false;
  if (!info[first + 1].IsNumber() || !info[first + 2].IsNumber()) {
    ThrowCode(info.Env(), "ERR_INVALID_ARG_TYPE", std::string(name) + " offset and length must be numbers");
    return false;
  }
  int64_t off = info[first + 1].As<Napi::Number>().Int64Value();
  int64_t n = info[first + 2].As<Napi::Number>().Int64Value();
  if (off < 0 || n < 0 || static_cast<uint64_t>(off) + static_cast<uint64_t>(n) > size) {
    ThrowCode(info.Env(), "ERR_OUT_OF_RANGE", std::string(name) + " range is outside the buffer");
    return false;
  }
  *base = const_cast<uint8_t*>(data) + off;
  *len = static_cast<size_t>(n);
  return true;
}

}  // namespace

Napi::Function Connection::Init(Napi::Env env) {
  return DefineClass(env, "Connection",
                     {
                         InstanceMethod<&Connection::Feed>("feed"),
                         InstanceMethod<&Connection::Accept>("accept"),
                         InstanceMethod<&Connection::Write>("write"),
                         InstanceMethod<&Connection::Flush>("flush"),
                         InstanceMethod<&Connection::SendCloseNotify>("sendCloseNotify"),
                         InstanceMethod<&Connection::Info>("info"),
                         InstanceMethod<&Connection::ServerName>("serverName"),
                         InstanceMethod<&Connection::AlpnProtocol>("alpnProtocol"),
                         InstanceMethod<&Connection::GroupName>("groupName"),
                         InstanceMethod<&Connection::ClientHello>("clientHello"),
                         InstanceMethod<&Connection::PeerCertificate>("peerCertificate"),
                         InstanceMethod<&Connection::Destroy>("destroy"),
                         InstanceMethod<&Connection::Start>("start"),
                         InstanceMethod<&Connection::ReadStart>("readStart"),
                         InstanceMethod<&Connection::ReadStop>("readStop"),
                         InstanceMethod<&Connection::WriteSocket>("writeSocket"),
                         InstanceMethod<&Connection::FlushSocketJs>("flushSocket"),
                         InstanceMethod<&Connection::ShutdownSocket>("shutdownSocket"),
                         InstanceMethod<&Connection::CloseSocketJs>("closeSocket"),
                         InstanceMethod<&Connection::SetRef>("setRef"),
                         InstanceMethod<&Connection::Counters>("counters"),
                         InstanceMethod<&Connection::Addresses>("addresses"),
                         InstanceMethod<&Connection::SetSocketOption>("setSocketOption"),
                     });
}

namespace {
// new Connection(External(&kAdoptMarker)): an empty shell Adopt() fills.
int kAdoptMarker = 0;
}  // namespace

Napi::Object Connection::Adopt(Napi::Env env, Adopted&& a) {
  Napi::Object object =
      Data(env)->connection.New({Napi::External<int>::New(env, &kAdoptMarker)});
  if (env.IsExceptionPending()) {
    // The shell could not be made: nothing may leak.
    CloseAndFree(a.poll);
    if (a.fd >= 0) close(a.fd);
    rustls_connection_free(a.conn);
    return object;
  }
  Connection* c = Unwrap(object);
  c->adopted_ = true;
  c->server_ = true;
  c->conn_ = a.conn;
  c->fd_ = a.fd;
  c->owns_fd_ = true;
  c->poll_ = a.poll;
  c->poll_->data = c;
  c->poll_events_ = 0;
  c->server_name_ = std::move(a.server_name);
  c->host_ = a.host;
  c->certificate_ = a.certificate;
  c->bytes_read_ = a.bytes_in;
  c->bytes_written_ = a.bytes_out;
  c->handshake_done_ = true;
  c->peer_closed_ = a.peer_closed;
  c->socket_eof_ = a.transport_end;
  c->eof_fed_ = a.transport_end;
  c->stats_ = std::move(a.stats);
  rustls_connection_set_buffer_limit(c->conn_, SIZE_MAX);
  return object;
}

Connection::Connection(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Connection>(info), count_(kConnectionHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kConnectionTag);
  if (info[0].IsExternal() && info[0].As<Napi::External<int>>().Data() == &kAdoptMarker) {
    // Filled by Adopt().
  } else if (HasTag(info[0], kHostRouterTag)) {
    if (HostRouter::FromValue(info[0], "router") == nullptr) return;
    server_ = true;
    router_ = Napi::Persistent(info[0].As<Napi::Object>());
    acceptor_ = rustls_acceptor_new();
  } else {
    ClientConfig* config = ClientConfig::FromValue(info[0], "config");
    if (config == nullptr) return;
    if (!info[1].IsString()) {
      {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "serverName must be a string");
      return;
    }
    }
    std::string name = info[1].As<Napi::String>().Utf8Value();
    // Copies the name; keeps its own reference to the config.
    rustls_result r = rustls_client_connection_new(config->get(), name.c_str(), &conn_);
    if (r != RUSTLS_RESULT_OK) {
      ThrowResult(env, r, "servername");
      return;
    }
  }
  count_.Acquire(env);
  Napi::MemoryManagement::AdjustExternalMemory(env, kConnectionBytes);
  external_bytes_ = kConnectionBytes;
}

bool Connection::CheckOpen(Napi::Env env) {
  if (closed_) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "the TLS connection was destroyed");
    return false;
  }
  return true;
}

void Connection::Fail(uint32_t result, int32_t* flags) {
  if (error_ == 0) error_ = result;
  *flags |= kFlagError;
}

void Connection::FreeAcceptState() {
  rustls_accepted_free(accepted_);
  accepted_ = nullptr;
  rustls_acceptor_free(acceptor_);
  acceptor_ = nullptr;
  if (!router_.IsEmpty()) router_.Reset();
}

// A connection that failed before it had a rustls_connection: the code is
// reported and the alert goes out with this call's ciphertext.
void Connection::SendAcceptFailure(const AcceptFailure& failure, int32_t* flags) {
  Fail(failure.code, flags);
  scratch.insert(scratch.end(), failure.alert.begin(), failure.alert.end());
}

// Server before the handshake: collect the ClientHello, then route it.
// Returns true once conn_ exists and the pump can continue.
bool Connection::Accepting(Input& in, bool eof, int32_t* flags) {
  if (accepted_ != nullptr) {
    // Waiting for accept(config); take nothing more.
    *flags |= kFlagNeedConfig;
    return false;
  }
  if (eof) {
    Fail(RUSTLS_RESULT_UNEXPECTED_EOF, flags);
    return false;
  }
  for (;;) {
    if (in.pos < in.len) {
      size_t n = 0;
      if (rustls_acceptor_read_tls(acceptor_, ReadFromCursor, &in, &n) != 0) {
        Fail(RUSTLS_RESULT_IO, flags);
        return false;
      }
    }
    rustls_accepted_alert* alert = nullptr;
    rustls_result r = rustls_acceptor_accept(acceptor_, &accepted_, &alert);
    if (r == RUSTLS_RESULT_OK) break;
    if (r == RUSTLS_RESULT_ACCEPTOR_NOT_READY) {
      if (in.pos >= in.len) return false;
      continue;
    }
    SendAcceptFailure(DecideAcceptFailure(r, alert), flags);
    FreeAcceptState();
    return false;
  }
  rustls_str sni = rustls_accepted_server_name(accepted_);
  server_name_.assign(sni.data, sni.len);
  HostRouter* router = router_.IsEmpty() ? nullptr : HostRouter::Unwrap(router_.Value());
  if (router == nullptr || router->closed()) {
    Fail(kNoHost, flags);
    FreeAcceptState();
    return false;
  }
  HostRouter::Route route = router->Choose(server_name_, accepted_);
  if (route.host == HostRouter::kDeferred) {
    *flags |= kFlagNeedConfig;
    return false;
  }
  int host = route.host;
  const rustls_server_config* config = route.config;
  if (config == nullptr) {
    // Refused before any certificate is sent.
    SendAcceptFailure(DecideAcceptFailure(host == HostRouter::kRefused ? kUnrecognizedName : kNoHost, nullptr), flags);
    FreeAcceptState();
    return false;
  }
  return IntoConnection(config, host, flags);
}

bool Connection::IntoConnection(const rustls_server_config* config, int host, int32_t* flags) {
  rustls_accepted_alert* alert = nullptr;
  // The resolver records its choice on this thread during the call.
  rn_reset_chosen_certificate();
  // Takes its own reference to the config; consumes `accepted_`'s contents
  // either way (the shell is freed below).
  rustls_result r = rustls_accepted_into_connection(accepted_, config, &conn_, &alert);
  certificate_ = static_cast<int>(rn_last_chosen_certificate());
  host_ = host;
  FreeAcceptState();
  *flags |= kFlagHello;
  if (r != RUSTLS_RESULT_OK) {
    SendAcceptFailure(DecideAcceptFailure(r, alert), flags);
    return false;
  }
  // In socket mode whole batches are encrypted at once (see start()).
  if (socket_mode()) rustls_connection_set_buffer_limit(conn_, SIZE_MAX);
  // Records that arrived with the ClientHello are buffered in the
  // connection; process them now rather than on the next chunk.
  r = rustls_connection_process_new_packets(conn_);
  if (r != RUSTLS_RESULT_OK) {
    Fail(r, flags);
    FlushToScratch();
    return false;
  }
  return true;
}

void Connection::CheckHandshake(int32_t* flags) {
  if (!handshake_done_ && !rustls_connection_is_handshaking(conn_)) {
    handshake_done_ = true;
    *flags |= kFlagHandshakeDone;
    // RFC 8737 §3: a tls-alpn-01 handshake carries no data; the server's
    // close_notify goes out with (or right after) its last flight, and JS
    // ends the transport once it sees the challenge host index.
    if (host_ == HostRouter::kChallenge) rustls_connection_send_close_notify(conn_);
  }
}

bool Connection::DrainPlaintext(Slab& plain, int32_t* flags) {
  for (;;) {
    if (plain.len >= plain.cap && plain.grow != nullptr) {
      // resize() zero-fills: rustls_connection_read wants initialized memory.
      plain.grow->resize(plain.len + 16 * 1024);
      plain.base = plain.grow->data();
      plain.cap = plain.grow->size();
    }
    if (plain.len >= plain.cap) {
      *flags |= kFlagPlainFull;
      return false;
    }
    size_t n = 0;
    // The slab is initialized memory (JS allocates it zero-filled), as this
    // function requires.
    rustls_result r =
        rustls_connection_read(conn_, plain.base + plain.len, plain.cap - plain.len, &n);
    if (r == RUSTLS_RESULT_OK) {
      if (n == 0) {
        // Ok(0): close_notify received and every byte before it read.
        if (!peer_closed_) {
          peer_closed_ = true;
          *flags |= kFlagPeerClosed;
        }
        return true;
      }
      plain.len += n;
      continue;
    }
    if (r == RUSTLS_RESULT_PLAINTEXT_EMPTY) return true;
    // UNEXPECTED_EOF: the transport ended without close_notify (truncation).
    Fail(r, flags);
    return false;
  }
}

void Connection::FlushToScratch() {
  // Socket mode: FlushSocket() writev()s rustls' queue straight to the
  // kernel, and every caller there flushes the socket next; a copy into
  // scratch would only add two copies of each flight.
  if (socket_mode()) return;
  while (rustls_connection_wants_write(conn_)) {
    size_t n = 0;
    if (rustls_connection_write_tls_vectored(conn_, AppendVectoredToScratch, nullptr, &n) != 0 ||
        n == 0) {
      break;
    }
  }
}

void Connection::FlushToSlab(Slab& out, int32_t* flags) {
  while (rustls_connection_wants_write(conn_)) {
    size_t n = 0;
    if (rustls_connection_write_tls_vectored(conn_, WriteToSlab, &out, &n) != 0 || n == 0) break;
  }
  if (rustls_connection_wants_write(conn_)) *flags |= kFlagWantsWrite;
}

void Connection::Pump(Input& in, bool eof, Slab& plain, int32_t* flags) {
  for (;;) {
    if (!DrainPlaintext(plain, flags)) break;
    // After close_notify nothing more is read (RFC 8446 §6.1).
    if (peer_closed_) {
      in.pos = in.len;
      break;
    }
    size_t n = 0;
    if (in.pos < in.len) {
      // rustls takes at most one buffer's worth per call; loop until the
      // chunk is consumed. Plaintext was drained above, so rustls' 16 KiB
      // received-plaintext limit cannot make this fail.
      if (rustls_connection_read_tls(conn_, ReadFromCursor, &in, &n) != 0) {
        Fail(RUSTLS_RESULT_IO, flags);
        break;
      }
    } else if (eof && !eof_fed_) {
      // A read of 0 bytes tells rustls about the transport EOF.
      eof_fed_ = true;
      rustls_connection_read_tls(conn_, ReadFromCursor, &in, &n);
    } else {
      break;
    }
    rustls_result r = rustls_connection_process_new_packets(conn_);
    if (r != RUSTLS_RESULT_OK) {
      Fail(r, flags);
      break;
    }
    CheckHandshake(flags);
  }
  // Before the flush: a challenge connection's close_notify joins it.
  if (error_ == 0) CheckHandshake(flags);
  // Handshake messages, tickets, or the alert rustls queued on an error:
  // always flushed (rustls-ffi: write_tls after errors to send alerts).
  FlushToScratch();
}

Napi::Value Connection::Finish(Napi::Env env, int32_t flags, size_t consumed, size_t plain,
                               size_t cipher) {
  int32_t* out = Data(env)->results_data;
  out[kResultFlags] = flags | (error_ != 0 ? kFlagError : 0);
  out[kResultConsumed] = static_cast<int32_t>(consumed);
  out[kResultPlain] = static_cast<int32_t>(plain);
  out[kResultCipher] = static_cast<int32_t>(cipher);
  out[kResultError] = static_cast<int32_t>(error_);
  out[kResultHost] = host_;
  return env.Undefined();
}

Napi::Value Connection::TakeScratch(Napi::Env env, int32_t flags, size_t consumed, size_t plain) {
  size_t cipher = scratch.size();
  Finish(env, flags, consumed, plain, cipher);
  if (cipher == 0) return env.Undefined();
  Napi::Value out = Napi::Buffer<uint8_t>::Copy(env, scratch.data(), cipher);
  scratch.clear();
  return out;
}

Napi::Value Connection::Feed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  Input in;
  bool eof = info[0].IsNull() || info[0].IsUndefined();
  if (!eof) {
    uint8_t* data;
    if (!GetRange(info, 0, "input", &data, &in.len)) return env.Undefined();
    in.data = data;
  }
  Slab plain;
  if (!GetRange(info, 3, "slab", &plain.base, &plain.cap)) return env.Undefined();
  scratch.clear();
  int32_t flags = 0;
  if (error_ == 0) {
    bool ready = conn_ != nullptr || Accepting(in, eof, &flags);
    if (ready && error_ == 0) Pump(in, eof, plain, &flags);
  }
  return TakeScratch(env, flags, in.pos, plain.len);
}

Napi::Value Connection::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  if (accepted_ == nullptr) {
    ThrowCode(env, "ERR_INVALID_STATE", "accept() is only valid after a ClientHello was read");
    return env.Undefined();
  }
  scratch.clear();
  int32_t flags = 0;
  if (info[0].IsNull() || info[0].IsUndefined()) {
    // The application refused the name (strict SNI or its own choice).
    SendAcceptFailure(DecideAcceptFailure(kUnrecognizedName, nullptr), &flags);
    FreeAcceptState();
    return TakeScratch(env, flags, 0, 0);
  }
  ServerConfig* config = ServerConfig::FromValue(info[0], "config");
  if (config == nullptr) return env.Undefined();
  int host = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  if (IntoConnection(config->get(), host, &flags)) {
    FlushToScratch();
    CheckHandshake(&flags);
  }
  if (socket_mode()) {
    // The flight goes straight to the socket; reading resumes.
    if (!FlushSocket()) flags |= kFlagIoError;
    want_read_ = error_ == 0;
    UpdatePoll();
    Finish(env, flags, 0, 0, 0);
    return env.Undefined();
  }
  return TakeScratch(env, flags, 0, 0);
}

Napi::Value Connection::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  uint8_t* data;
  size_t len;
  Slab out;
  if (!GetRange(info, 0, "data", &data, &len) || !GetRange(info, 3, "slab", &out.base, &out.cap)) {
    return env.Undefined();
  }
  int32_t flags = 0;
  size_t consumed = 0;
  if (conn_ == nullptr || error_ != 0) {
    Fail(error_ != 0 ? error_ : RUSTLS_RESULT_HANDSHAKE_NOT_COMPLETE, &flags);
    return Finish(env, flags, 0, 0, 0);
  }
  // One record at a time, flushed at once, so that rustls' buffer limit is
  // never reached and each record's ciphertext fits the slab.
  while (consumed < len && out.cap - out.len >= kMaxPlainRecord + kRecordOverhead) {
    size_t n = 0;
    rustls_result r = rustls_connection_write(conn_, data + consumed,
                                              std::min(len - consumed, kMaxPlainRecord), &n);
    if (r != RUSTLS_RESULT_OK) {
      Fail(r, &flags);
      break;
    }
    consumed += n;
    FlushToSlab(out, &flags);
    if (n == 0) break;
  }
  FlushToSlab(out, &flags);
  return Finish(env, flags, consumed, 0, out.len);
}

Napi::Value Connection::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  Slab out;
  if (!GetRange(info, 0, "slab", &out.base, &out.cap)) return env.Undefined();
  int32_t flags = 0;
  if (conn_ != nullptr) FlushToSlab(out, &flags);
  return Finish(env, flags, 0, 0, out.len);
}

Napi::Value Connection::SendCloseNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  // Queued for the next flush. Before a connection exists (server still
  // reading the ClientHello) there is no session to close.
  if (conn_ != nullptr) rustls_connection_send_close_notify(conn_);
  return env.Undefined();
}

// info(): the negotiated parameters as numbers in the results array (see
// InfoSlot), so that reading them creates no object; strings come from
// serverName(), alpnProtocol() and groupName(), only when asked for.
Napi::Value Connection::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int32_t* out = Data(env)->results_data;
  out[kInfoHost] = host_;
  out[kInfoCertificate] = certificate_;
  if (conn_ == nullptr) {
    out[kInfoVersion] = out[kInfoSuite] = out[kInfoResumed] = out[kInfoPeerCertificates] = 0;
    return env.Undefined();
  }
  out[kInfoVersion] = rustls_connection_get_protocol_version(conn_);
  out[kInfoSuite] = rustls_connection_get_negotiated_ciphersuite(conn_);
  out[kInfoResumed] = rustls_connection_handshake_kind(conn_) == RUSTLS_HANDSHAKE_KIND_RESUMED ? 1 : 0;
  int32_t peers = 0;
  while (rustls_connection_get_peer_certificate(conn_, static_cast<size_t>(peers)) != nullptr) peers++;
  out[kInfoPeerCertificates] = peers;
  return env.Undefined();
}

// The SNI the client sent (server side), also after a refusal; undefined if none.
Napi::Value Connection::ServerName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!server_ || server_name_.empty()) return env.Undefined();
  return Napi::String::New(env, server_name_);
}

Napi::Value Connection::AlpnProtocol(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || conn_ == nullptr) return env.Undefined();
  const uint8_t* alpn = nullptr;
  size_t len = 0;
  // Borrowed until the next mutating call: copied at once.
  rustls_connection_get_alpn_protocol(conn_, &alpn, &len);
  if (alpn == nullptr) return env.Undefined();
  return Napi::String::New(env, std::string(reinterpret_cast<const char*>(alpn), len));
}

Napi::Value Connection::GroupName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || conn_ == nullptr) return env.Undefined();
  rustls_str group = rustls_connection_get_negotiated_key_exchange_group_name(conn_);
  if (group.len == 0) return env.Undefined();
  return Napi::String::New(env, group.data, group.len);
}

Napi::Value Connection::ClientHello(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (accepted_ == nullptr) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("serverName", Napi::String::New(env, server_name_));
  Napi::Array alpn = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    rustls_slice_bytes p = rustls_accepted_alpn(accepted_, i);
    if (p.data == nullptr || p.len == 0) break;
    alpn.Set(static_cast<uint32_t>(i),
             Napi::String::New(env, std::string(reinterpret_cast<const char*>(p.data), p.len)));
  }
  o.Set("alpn", alpn);
  Napi::Array suites = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    uint16_t s = rustls_accepted_cipher_suite(accepted_, i);
    if (s == 0) break;
    suites.Set(static_cast<uint32_t>(i), static_cast<uint32_t>(s));
  }
  o.Set("cipherSuites", suites);
  Napi::Array schemes = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    uint16_t s = rustls_accepted_signature_scheme(accepted_, i);
    if (s == 0) break;
    schemes.Set(static_cast<uint32_t>(i), static_cast<uint32_t>(s));
  }
  o.Set("signatureSchemes", schemes);
  return o;
}

Napi::Value Connection::PeerCertificate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env) || conn_ == nullptr) return env.Undefined();
  size_t index = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  const rustls_certificate* cert = rustls_connection_get_peer_certificate(conn_, index);
  if (cert == nullptr) return env.Undefined();
  const uint8_t* der;
  size_t len;
  if (rustls_certificate_get_der(cert, &der, &len) != RUSTLS_RESULT_OK) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, der, len);
}

Napi::Value Connection::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void Connection::Close() {
  if (closed_) return;
  closed_ = true;
  CloseSocket();
  FreeAcceptState();
  rustls_connection_free(conn_);
  conn_ = nullptr;
  if (stats_ != nullptr) {
    stats_->Closed(bytes_read_, bytes_written_);
    stats_.reset();
  }
  count_.Release();
  if (external_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
    external_bytes_ = 0;
  }
}

}  // namespace rustls_node
