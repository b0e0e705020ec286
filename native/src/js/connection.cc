#include "js/connection.h"

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "js/config.h"
#include "js/router.h"
#include "js/session.h"
#include "plane/listener.h"

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

// A slab region ciphertext is copied into (rustls_write_vectored_callback
// userdata): copies what fits; EAGAIN when nothing does, so the stream
// keeps the rest queued.
int WriteToSlab(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n) {
  auto* slab = static_cast<PlainOut*>(userdata);
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

// Everything queued, appended to a vector (userdata).
int AppendVectored(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n) {
  auto* out = static_cast<std::vector<uint8_t>*>(userdata);
  const struct iovec* v = reinterpret_cast<const struct iovec*>(iov);
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(v[i].iov_base);
    out->insert(out->end(), p, p + v[i].iov_len);
    total += v[i].iov_len;
  }
  *out_n = total;
  return 0;
}

void FlushToSlab(TlsStream& tls, PlainOut& out) {
  while (tls.WantsWrite()) {
    size_t n = 0;
    if (tls.WriteTls(WriteToSlab, &out, &n) != 0 || n == 0) break;
  }
}

// Reads (buffer, offset, length) arguments, checking the range lies inside
// the buffer: a wrong offset from JS must throw, never read or write out of
// bounds.
bool GetRange(const Napi::CallbackInfo& info, size_t first, const char* name, uint8_t** base, size_t* len) {
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
                         InstanceMethod<&Connection::ResumeSession>("resumeSession"),
                         InstanceMethod<&Connection::SessionKey>("sessionKey"),
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
                         InstanceMethod<&Connection::ConnectSocket>("connectSocket"),
                         InstanceMethod<&Connection::PairPlain>("pairPlain"),
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

Napi::Object Connection::Adopt(Napi::Env env, std::unique_ptr<TlsEndpoint> ep, std::shared_ptr<ListenerStats> stats) {
  Napi::Object object = Data(env)->connection.New({Napi::External<int>::New(env, &kAdoptMarker)});
  // Without a shell (an exception pending) `ep` is freed on return: its
  // descriptor closes and nothing leaks.
  if (env.IsExceptionPending()) return object;
  Connection* c = Unwrap(object);
  c->adopted_ = true;
  c->ep_ = std::move(ep);
  c->ep_->Rebind(c);
  c->addresses_.Read(c->ep_->fd());
  // A hello paused for the application is continued by accept(), which
  // needs no router; the listener's may go away with its route set.
  c->ep_->set_router(nullptr);
  c->stats_ = std::move(stats);
  return object;
}

Connection::Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info), count_(kConnectionHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kConnectionTag);
  if (info[0].IsExternal() && info[0].As<Napi::External<int>>().Data() == &kAdoptMarker) {
    // Filled by Adopt().
  } else if (HasTag(info[0], kHostRouterTag)) {
    if (HostRouter::FromValue(info[0], "router") == nullptr) return;
    router_ = Napi::Persistent(info[0].As<Napi::Object>());
    stream_ = TlsStream::Server();
    // {sessionLookup: {tls12, tls13, cache?}}: ask JS about sessions
    // (node:tls 'resumeSession') the server's own store lacks.
    if (info[1].IsObject()) {
      Napi::Value v = info[1].As<Napi::Object>().Get("sessionLookup");
      if (v.IsObject()) {
        Napi::Object o = v.As<Napi::Object>();
        TlsStream::SessionLookup lookup;
        lookup.tls12 = o.Get("tls12").ToBoolean().Value();
        lookup.tls13 = o.Get("tls13").ToBoolean().Value();
        bool ok = true;
        lookup.local = SessionCacheRef(SessionCache::FromOptional(o.Get("cache"), &ok));
        if (!ok) return;
        stream_->set_session_lookup(lookup);
      }
    }
  } else {
    ClientConfig* config = ClientConfig::FromValue(info[0], "config");
    if (config == nullptr) return;
    if (!info[1].IsString()) {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "serverName must be a string");
      return;
    }
    std::string name = info[1].As<Napi::String>().Utf8Value();
    rustls_connection* conn = nullptr;
    // Copies the name; keeps its own reference to the config.
    rustls_result r = rustls_client_connection_new(config->get(), name.c_str(), &conn);
    if (r != RUSTLS_RESULT_OK) {
      ThrowResult(env, r, "servername");
      return;
    }
    stream_ = TlsStream::Client(conn);
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

const Router* Connection::router() {
  if (router_.IsEmpty()) return nullptr;
  return &HostRouter::Unwrap(router_.Value())->router();
}

Napi::Value Connection::Finish(Napi::Env env, int32_t flags, size_t consumed, size_t plain, size_t cipher) {
  int32_t* out = Data(env)->results_data;
  TlsStream& t = tls();
  out[kResultFlags] = flags | (t.failed() ? kFlagError : 0);
  out[kResultConsumed] = static_cast<int32_t>(consumed);
  out[kResultPlain] = static_cast<int32_t>(plain);
  out[kResultCipher] = static_cast<int32_t>(cipher);
  out[kResultError] = static_cast<int32_t>(t.error());
  out[kResultHost] = t.host();
  return env.Undefined();
}

Napi::Value Connection::TakeCiphertext(Napi::Env env, int32_t flags, size_t consumed, size_t plain) {
  TlsStream& t = tls();
  if (!t.WantsWrite()) return Finish(env, flags, consumed, plain, 0);
  // Handshake flights, alerts and tickets: rare, so a vector per call.
  std::vector<uint8_t> out;
  while (t.WantsWrite()) {
    size_t n = 0;
    if (t.WriteTls(AppendVectored, &out, &n) != 0 || n == 0) break;
  }
  Finish(env, flags, consumed, plain, out.size());
  if (out.empty()) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

Napi::Value Connection::Feed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  InputCursor in;
  bool eof = info[0].IsNull() || info[0].IsUndefined();
  if (!eof) {
    uint8_t* data;
    if (!GetRange(info, 0, "input", &data, &in.len)) return env.Undefined();
    in.data = data;
  }
  PlainOut plain;
  if (!GetRange(info, 3, "slab", &plain.base, &plain.cap)) return env.Undefined();
  TlsStream& t = tls();
  bool ready = !t.accepting();
  if (!ready && !eof) {
    const Router* r = router();
    TlsStream::Accept a = r != nullptr ? t.AcceptHello(in, *r) : TlsStream::Accept::kFailed;
    if (r == nullptr) t.Fail(kNoHost);
    ready = a == TlsStream::Accept::kConnection;
    if (a != TlsStream::Accept::kMore && a != TlsStream::Accept::kDeferred && a != TlsStream::Accept::kSession)
      router_.Reset();
  }
  if (eof)
    t.FeedEof(plain);
  else if (ready)
    t.Feed(in, plain);
  return TakeCiphertext(env, t.TakeFlags(), in.pos, plain.len);
}

Napi::Value Connection::Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  TlsStream& t = tls();
  if (!t.awaiting_config()) {
    ThrowCode(env, "ERR_INVALID_STATE", "accept() is only valid after a ClientHello was read");
    return env.Undefined();
  }
  ConfigRef config;
  int host = kHostDeferred;
  if (!info[0].IsNull() && !info[0].IsUndefined()) {
    ServerConfig* c = ServerConfig::FromValue(info[0], "config");
    if (c == nullptr) return env.Undefined();
    config = c->ref();
    host = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  }
  // NULL: the application refused the name (unrecognized_name).
  t.Continue(config, host);
  if (!t.awaiting_session()) router_.Reset();
  return AfterContinue(env);
}

// resumeSession(data | null): the application's answer to NeedSession.
Napi::Value Connection::ResumeSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  TlsStream& t = tls();
  if (!t.awaiting_session()) {
    ThrowCode(env, "ERR_INVALID_STATE", "resumeSession() is only valid while a session lookup is pending");
    return env.Undefined();
  }
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (!info[0].IsNull() && !info[0].IsUndefined() && !GetBytes(info[0], "sessionData", &data, &len))
    return env.Undefined();
  t.ContinueSession(data, len);
  router_.Reset();
  return AfterContinue(env);
}

// The session id (or PSK identity) a pending lookup asks for.
Napi::Value Connection::SessionKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || !tls().awaiting_session()) return env.Undefined();
  const std::vector<uint8_t>& key = tls().session_key();
  return Napi::Buffer<uint8_t>::Copy(env, key.data(), key.size());
}

// After accept() or resumeSession(): the handshake goes on from where the
// hello stopped it.
Napi::Value Connection::AfterContinue(Napi::Env env) {
  TlsStream& t = tls();
  if (fd_pump()) {
    // Records that came behind the hello; during a handshake they carry
    // no application data, so no plaintext can come of them.
    std::vector<uint8_t> scratch;
    PlainOut plain = PlainOut::Growing(&scratch);
    ep_->Resume(plain);
    // The flight goes straight to the socket; reading resumes.
    int32_t flags = t.TakeFlags();
    if (!FlushSocket()) flags |= kFlagIoError;
    want_read_ = !t.failed();
    UpdatePoll();
    Finish(env, flags, 0, 0, 0);
    return env.Undefined();
  }
  return TakeCiphertext(env, t.TakeFlags(), 0, 0);
}

Napi::Value Connection::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  uint8_t* data;
  size_t len;
  PlainOut out;
  if (!GetRange(info, 0, "data", &data, &len) || !GetRange(info, 3, "slab", &out.base, &out.cap)) {
    return env.Undefined();
  }
  TlsStream& t = tls();
  size_t consumed = 0;
  // One record at a time, flushed at once, so that each record's
  // ciphertext fits the slab.
  while (consumed < len && out.cap - out.len >= kMaxPlainRecord + kRecordOverhead) {
    size_t n = 0;
    if (!t.WriteRecord(data + consumed, len - consumed, &n)) break;
    consumed += n;
    FlushToSlab(t, out);
  }
  if (len == 0 && !t.failed() && t.conn() == nullptr) t.Fail(RUSTLS_RESULT_HANDSHAKE_NOT_COMPLETE);
  FlushToSlab(t, out);
  int32_t flags = t.TakeFlags() | (t.WantsWrite() ? kFlagWantsWrite : 0);
  return Finish(env, flags, consumed, 0, out.len);
}

Napi::Value Connection::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  PlainOut out;
  if (!GetRange(info, 0, "slab", &out.base, &out.cap)) return env.Undefined();
  TlsStream& t = tls();
  FlushToSlab(t, out);
  int32_t flags = t.TakeFlags() | (t.WantsWrite() ? kFlagWantsWrite : 0);
  return Finish(env, flags, 0, 0, out.len);
}

Napi::Value Connection::SendCloseNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  // Queued for the next flush; only a completed handshake has a session
  // to close.
  tls().SendCloseNotify();
  return env.Undefined();
}

// info(): the negotiated parameters as numbers in the results array (see
// abi.h Info), so that reading them creates no object; strings come from
// serverName(), alpnProtocol() and groupName(), only when asked for.
Napi::Value Connection::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env)) return env.Undefined();
  int32_t* out = Data(env)->results_data;
  TlsStream& t = tls();
  out[kInfoHost] = t.host();
  out[kInfoCertificate] = t.certificate();
  rustls_connection* conn = t.conn();
  if (conn == nullptr) {
    out[kInfoVersion] = out[kInfoSuite] = out[kInfoResumed] = out[kInfoPeerCertificates] = 0;
    return env.Undefined();
  }
  out[kInfoVersion] = rustls_connection_get_protocol_version(conn);
  out[kInfoSuite] = rustls_connection_get_negotiated_ciphersuite(conn);
  out[kInfoResumed] = rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED ? 1 : 0;
  int32_t peers = 0;
  while (rustls_connection_get_peer_certificate(conn, static_cast<size_t>(peers)) != nullptr) peers++;
  out[kInfoPeerCertificates] = peers;
  return env.Undefined();
}

// The SNI the client sent (server side), also after a refusal; undefined if none.
Napi::Value Connection::ServerName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || !tls().server() || tls().sni().empty()) return env.Undefined();
  return Napi::String::New(env, tls().sni());
}

Napi::Value Connection::AlpnProtocol(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || tls().conn() == nullptr) return env.Undefined();
  const uint8_t* alpn = nullptr;
  size_t len = 0;
  // Borrowed until the next mutating call: copied at once.
  rustls_connection_get_alpn_protocol(tls().conn(), &alpn, &len);
  if (alpn == nullptr) return env.Undefined();
  return Napi::String::New(env, std::string(reinterpret_cast<const char*>(alpn), len));
}

Napi::Value Connection::GroupName(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || tls().conn() == nullptr) return env.Undefined();
  rustls_str group = rustls_connection_get_negotiated_key_exchange_group_name(tls().conn());
  if (group.len == 0) return env.Undefined();
  return Napi::String::New(env, group.data, group.len);
}

Napi::Value Connection::ClientHello(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const rustls_accepted* hello = closed_ ? nullptr : tls().hello();
  if (hello == nullptr) return env.Undefined();
  Napi::Object o = Napi::Object::New(env);
  o.Set("serverName", Napi::String::New(env, tls().sni()));
  Napi::Array alpn = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    rustls_slice_bytes p = rustls_accepted_alpn(hello, i);
    if (p.data == nullptr || p.len == 0) break;
    alpn.Set(static_cast<uint32_t>(i),
             Napi::String::New(env, std::string(reinterpret_cast<const char*>(p.data), p.len)));
  }
  o.Set("alpn", alpn);
  Napi::Array suites = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    uint16_t s = rustls_accepted_cipher_suite(hello, i);
    if (s == 0) break;
    suites.Set(static_cast<uint32_t>(i), static_cast<uint32_t>(s));
  }
  o.Set("cipherSuites", suites);
  Napi::Array schemes = Napi::Array::New(env);
  for (size_t i = 0;; i++) {
    uint16_t s = rustls_accepted_signature_scheme(hello, i);
    if (s == 0) break;
    schemes.Set(static_cast<uint32_t>(i), static_cast<uint32_t>(s));
  }
  o.Set("signatureSchemes", schemes);
  return o;
}

Napi::Value Connection::PeerCertificate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!CheckOpen(env) || tls().conn() == nullptr) return env.Undefined();
  size_t index = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  const rustls_certificate* cert = rustls_connection_get_peer_certificate(tls().conn(), index);
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
  if (ep_ != nullptr) {
    final_in_ = ep_->bytes_in;
    final_out_ = ep_->bytes_out;
  }
  ep_.reset();
  pair_.reset();
  stream_.reset();
  if (!router_.IsEmpty()) router_.Reset();
  if (stats_ != nullptr) {
    stats_->Closed(final_in_, final_out_);
    stats_.reset();
  }
  count_.Release();
  if (external_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
    external_bytes_ = 0;
  }
}

}  // namespace rustls_node
