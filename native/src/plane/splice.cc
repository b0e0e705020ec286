#include "plane/splice.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>

#include "js/config.h"

namespace rustls_node {

namespace {

// After the backend closed, a client that keeps its side open is dropped
// after this long (as lib/terminator/tcp-backend.ts does).
constexpr uint64_t kLingerMs = 5000;
constexpr int kMovesPerEvent = 4;

std::unordered_map<uint16_t, std::string>& CipherNames() {
  static std::unordered_map<uint16_t, std::string> names;
  return names;
}

std::unordered_map<uint16_t, std::string>& IanaNames() {
  static std::unordered_map<uint16_t, std::string> names;
  return names;
}

const std::string kEmpty;

// ---- PROXY protocol (HAProxy, "The PROXY protocol", versions 1 and 2) ---

const uint8_t kProxyV2Signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
enum : uint8_t {
  kPp2TypeAlpn = 0x01,
  kPp2TypeAuthority = 0x02,
  kPp2TypeSsl = 0x20,
  kPp2SubtypeSslVersion = 0x21,
  kPp2SubtypeSslCn = 0x22,
  kPp2SubtypeSslCipher = 0x23,
  kPp2SubtypeSslKeyAlg = 0x25,
  kPp2ClientSsl = 0x01,
  kPp2ClientCertConn = 0x02,
  kPp2ClientCertSess = 0x04,
};

// An endpoint address as the header carries it: IPv4 (also when the socket
// is IPv6 with an IPv4-mapped address) or IPv6.
struct HeaderAddress {
  bool valid = false;
  bool v4 = false;
  uint8_t bytes[16] = {0};
  uint16_t port = 0;
};

HeaderAddress ReadAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  HeaderAddress out;
  if (r != 0) return out;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    out.valid = true;
    out.v4 = true;
    std::memcpy(out.bytes, &a->sin_addr, 4);
    out.port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    out.valid = true;
    out.port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      out.v4 = true;
      std::memcpy(out.bytes, reinterpret_cast<const uint8_t*>(&a->sin6_addr) + 12, 4);
    } else {
      std::memcpy(out.bytes, &a->sin6_addr, 16);
    }
  }
  return out;
}

// IPv4 as IPv4-mapped IPv6, for a TCP6 header with one v4 end.
void MapToV6(HeaderAddress& a) {
  if (!a.v4) return;
  uint8_t v4[4];
  std::memcpy(v4, a.bytes, 4);
  std::memset(a.bytes, 0, 16);
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(a.bytes + 12, v4, 4);
  a.v4 = false;
}

std::string AddressText(const HeaderAddress& a) {
  char text[INET6_ADDRSTRLEN] = {0};
  inet_ntop(a.v4 ? AF_INET : AF_INET6, a.bytes, text, sizeof text);
  return text;
}

void PutTlv(std::vector<uint8_t>& out, uint8_t type, const uint8_t* value, size_t len) {
  out.push_back(type);
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len));
  out.insert(out.end(), value, value + len);
}

void PutTlv(std::vector<uint8_t>& out, uint8_t type, const std::string& value) {
  PutTlv(out, type, reinterpret_cast<const uint8_t*>(value.data()), value.size());
}

// ---- DER, just enough for a certificate's subject Common Name ------------

struct Der {
  const uint8_t* p;
  size_t len;
};

// Reads one TLV at *in; false if it does not fit.
bool DerNext(Der* in, uint8_t* tag, Der* value) {
  if (in->len < 2) return false;
  *tag = in->p[0];
  size_t n = in->p[1];
  size_t head = 2;
  if (n & 0x80) {
    size_t bytes = n & 0x7f;
    if (bytes == 0 || bytes > 4 || in->len < 2 + bytes) return false;
    n = 0;
    for (size_t i = 0; i < bytes; i++) n = (n << 8) | in->p[2 + i];
    head += bytes;
  }
  if (in->len - head < n) return false;
  value->p = in->p + head;
  value->len = n;
  in->p += head + n;
  in->len -= head + n;
  return true;
}

// The first CN (2.5.4.3) of the certificate's subject, or empty.
std::string SubjectCommonName(const uint8_t* der, size_t len) {
  static const uint8_t kCnOid[] = {0x55, 0x04, 0x03};
  Der in{der, len};
  Der cert, tbs;
  uint8_t tag;
  if (!DerNext(&in, &tag, &cert) || tag != 0x30) return "";
  if (!DerNext(&cert, &tag, &tbs) || tag != 0x30) return "";
  Der field;
  // [0] version (optional), serial, signature, issuer, validity, subject.
  if (!DerNext(&tbs, &tag, &field)) return "";
  if (tag == 0xa0 && !DerNext(&tbs, &tag, &field)) return "";
  for (int i = 0; i < 3; i++) {
    if (!DerNext(&tbs, &tag, &field)) return "";
  }
  Der subject;
  if (!DerNext(&tbs, &tag, &subject) || tag != 0x30) return "";
  Der rdn;
  while (DerNext(&subject, &tag, &rdn)) {
    Der attr;
    while (DerNext(&rdn, &tag, &attr)) {
      Der oid, value;
      uint8_t otag, vtag;
      if (!DerNext(&attr, &otag, &oid) || otag != 0x06) continue;
      if (!DerNext(&attr, &vtag, &value)) continue;
      if (oid.len == sizeof kCnOid && std::memcmp(oid.p, kCnOid, sizeof kCnOid) == 0) {
        return std::string(reinterpret_cast<const char*>(value.p), value.len);
      }
    }
  }
  return "";
}

}  // namespace

const std::string& CipherName(uint16_t id, bool iana) {
  auto& table = iana ? IanaNames() : CipherNames();
  auto it = table.find(id);
  return it == table.end() ? kEmpty : it->second;
}

Napi::Value SetCipherNames(const Napi::CallbackInfo& info) {
  auto fill = [&](Napi::Value list, std::unordered_map<uint16_t, std::string>& table) {
    if (!info[0].IsArray() || !list.IsArray()) return;
    Napi::Array ids = info[0].As<Napi::Array>();
    Napi::Array names = list.As<Napi::Array>();
    for (uint32_t i = 0; i < ids.Length() && i < names.Length(); i++) {
      if (!ids.Get(i).IsNumber() || !names.Get(i).IsString()) continue;
      table[static_cast<uint16_t>(ids.Get(i).As<Napi::Number>().Uint32Value())] = names.Get(i).As<Napi::String>().Utf8Value();
    }
  };
  fill(info[1], CipherNames());
  fill(info[2], IanaNames());
  return info.Env().Undefined();
}

// ---- BackendTarget --------------------------------------------------------

Napi::Function BackendTarget::Init(Napi::Env env) {
  return DefineClass(env, "BackendTarget", {InstanceMethod<&BackendTarget::Destroy>("destroy")});
}

BackendTarget* BackendTarget::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<BackendTarget>(value, kBackendTargetTag, name, "BackendTarget");
}

BackendTarget::BackendTarget(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BackendTarget>(info), count_(kBackendTargetHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kBackendTargetTag);
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().Get("address").IsObject()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "new BackendTarget(options) needs an address");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Object address = o.Get("address").As<Napi::Object>();
  std::string kind = address.Get("kind").IsString() ? address.Get("kind").As<Napi::String>().Utf8Value() : "";
  if (kind == "unix") {
    std::string path = address.Get("path").IsString() ? address.Get("path").As<Napi::String>().Utf8Value() : "";
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "backend unix path is empty or too long: " + path);
      return;
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&target_.addr, &un, sizeof un);
    target_.len = sizeof un;
    target_.text = "unix:" + path;
  } else {
    std::string host = address.Get("host").IsString() ? address.Get("host").As<Napi::String>().Utf8Value() : "";
    int port = address.Get("port").IsNumber() ? address.Get("port").As<Napi::Number>().Int32Value() : 0;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    // Resolved once per configuration (start, reload), never per connection.
    int r = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (r != 0 || res == nullptr) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "cannot resolve backend " + host + ": " + gai_strerror(r));
      return;
    }
    std::memcpy(&target_.addr, res->ai_addr, res->ai_addrlen);
    target_.len = res->ai_addrlen;
    freeaddrinfo(res);
    target_.text = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + service;
  }
  Napi::Value v = o.Get("connectTimeout");
  if (v.IsNumber()) connect_timeout_ms_ = static_cast<uint64_t>(std::max<int64_t>(1, v.As<Napi::Number>().Int64Value()));
  v = o.Get("proxyProtocol");
  if (v.IsNumber()) proxy_protocol_ = v.As<Napi::Number>().Int32Value();
  v = o.Get("tls");
  if (v.IsObject()) {
    Napi::Object tls = v.As<Napi::Object>();
    config_ = ClientConfig::FromValue(tls.Get("config"), "tls.config");
    if (config_ == nullptr) return;
    config_ref_ = Napi::Persistent(tls.Get("config").As<Napi::Object>());
    server_name_ = tls.Get("serverName").IsString() ? tls.Get("serverName").As<Napi::String>().Utf8Value() : "";
  }
  v = o.Get("http");
  if (v.IsObject()) {
    Napi::Object h = v.As<Napi::Object>();
    http_.enabled = true;
    if (h.Get("timeout").IsNumber()) http_.timeout_ms = static_cast<uint64_t>(std::max<int64_t>(1, h.Get("timeout").As<Napi::Number>().Int64Value()));
    http_.std_env_vars = h.Get("stdEnvVars").ToBoolean().Value();
    http_.export_cert_data = h.Get("exportCertData").ToBoolean().Value();
    http_.client_auth = h.Get("clientAuth").ToBoolean().Value();
    http_.acme = h.Get("acme").ToBoolean().Value();
    if (h.Get("versionInterface").IsString()) http_.version_interface = h.Get("versionInterface").As<Napi::String>().Utf8Value();
    if (h.Get("versionLibrary").IsString()) http_.version_library = h.Get("versionLibrary").As<Napi::String>().Utf8Value();
    if (h.Get("coalesceKey").IsString()) http_.coalesce_key = h.Get("coalesceKey").As<Napi::String>().Utf8Value();
    if (h.Get("h2").IsObject()) {
      Napi::Object h2 = h.Get("h2").As<Napi::Object>();
      http_.h2 = !h2.Get("off").ToBoolean().Value();
      auto ms = [&](const char* key, uint64_t* out) {
        if (h2.Get(key).IsNumber()) *out = static_cast<uint64_t>(std::max<int64_t>(1, h2.Get(key).As<Napi::Number>().Int64Value()));
      };
      uint64_t streams = http_.h2_max_streams;
      ms("maxConcurrentStreams", &streams);
      http_.h2_max_streams = static_cast<uint32_t>(std::min<uint64_t>(streams, 1000));
      ms("idleTimeout", &http_.h2_idle_ms);
      ms("sendTimeout", &http_.h2_send_timeout_ms);
    }
    if (h.Get("serverCerts").IsArray()) {
      Napi::Array list = h.Get("serverCerts").As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); i++) {
        http_.server_certs.push_back(list.Get(i).IsString() ? list.Get(i).As<Napi::String>().Utf8Value() : "");
      }
    }
  }
  v = o.Get("keyAlgs");
  if (v.IsArray()) {
    Napi::Array list = v.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      key_algs_.push_back(list.Get(i).IsString() ? list.Get(i).As<Napi::String>().Utf8Value() : "");
    }
  }
  count_.Acquire(env);
}

const rustls_client_config* BackendTarget::tls_config() const {
  return config_ != nullptr && !config_ref_.IsEmpty() ? config_->get() : nullptr;
}

const std::string& BackendTarget::key_alg(int certificate) const {
  if (certificate < 0 || static_cast<size_t>(certificate) >= key_algs_.size()) return kEmpty;
  return key_algs_[certificate];
}

Napi::Value BackendTarget::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void BackendTarget::Close() {
  destroyed_ = true;
  config_ = nullptr;
  if (!config_ref_.IsEmpty()) config_ref_.Reset();
  count_.Release();
}

// ---- Splice ---------------------------------------------------------------

void Splice::Start(Listener* listener, Handshaken h, BackendTarget* target) {
  auto* s = new Splice(listener, std::move(h), target);
  s->Begin();
}

Splice::Splice(Listener* listener, Handshaken h, BackendTarget* target)
    : Owned(listener), client_(std::move(h.ep)), set_(h.set), target_(target) {
  const TlsStream& tls = client_->stream();
  host_ = tls.host();
  certificate_ = tls.certificate();
  sni_ = tls.sni();
  early_.swap(h.early);
  client_->Rebind(this);
}

Splice::~Splice() {
  listener_->deadlines().Remove(this);
  delete backend_;
  listener_->stats()->Closed(client_->bytes_in, client_->bytes_out);
  listener_->Release(set_);
}

void Splice::Begin() {
  // The client is not read until the backend is ready; its early bytes wait.
  client_->SetEvents(0, OnClientPoll);
  // Tickets and anything else the handshake left queued.
  if (client_->Flush() == Io::kFailed) {
    delete this;
    return;
  }
  BackendConn::StartError err;
  backend_ = BackendConn::Connect(listener_, target_, this, target_->proxy_protocol() != 0 ? ProxyHeader() : std::vector<uint8_t>(), &err);
  if (backend_ == nullptr) {
    listener_->BackendFailed(set_, host_, err.kind, err.code, err.sys_errno);
    delete this;
  }
}

void Splice::OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) {
  // The connection deletes itself after this.
  backend_ = nullptr;
  listener_->BackendFailed(set_, host_, kind, code, sys_errno);
  delete this;
}

void Splice::OnBackendReady(BackendConn* b) {
  Endpoint& backend = b->endpoint();
  // A backend that speaks first may have sent its greeting already.
  std::vector<uint8_t>& greeting = b->greeting();
  if (!greeting.empty() && client_->Write(greeting.data(), greeting.size()) == Io::kFailed) {
    delete this;
    return;
  }
  if (!early_.empty()) {
    std::vector<uint8_t> early;
    early.swap(early_);
    if (backend.Write(early.data(), early.size()) == Io::kFailed) {
      delete this;
      return;
    }
  }
  if (client_->peer_closed()) backend.EndWrite();
  Update();
}

void Splice::OnBackendEvent(BackendConn* b, int status, int events) {
  if (status < 0) {
    delete this;
    return;
  }
  Endpoint& backend = b->endpoint();
  if ((events & UV_WRITABLE) != 0 && backend.Flush() == Io::kFailed) {
    delete this;
    return;
  }
  if ((events & UV_READABLE) != 0 && !Move(backend, *client_)) return;
  Update();
}

std::vector<uint8_t> Splice::ProxyHeader() {
  int fd = client_->fd();
  HeaderAddress src = ReadAddress(fd, true);
  HeaderAddress dst = ReadAddress(fd, false);
  bool ip = src.valid && dst.valid;
  bool v4 = ip && src.v4 && dst.v4;
  if (ip && !v4) {
    MapToV6(src);
    MapToV6(dst);
  }
  std::vector<uint8_t> out;
  if (target_->proxy_protocol() == 1) {
    // §2.1: at most 107 bytes.
    std::string line = !ip ? "PROXY UNKNOWN\r\n"
                           : std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + AddressText(src) + " " + AddressText(dst) + " " +
                                 std::to_string(src.port) + " " + std::to_string(dst.port) + "\r\n";
    out.assign(line.begin(), line.end());
    return out;
  }
  // §2.2: addresses, then TLVs.
  std::vector<uint8_t> body;
  uint8_t family = 0x00;
  if (ip) {
    family = v4 ? 0x11 : 0x21;  // AF_INET / AF_INET6, STREAM
    size_t n = v4 ? 4 : 16;
    body.insert(body.end(), src.bytes, src.bytes + n);
    body.insert(body.end(), dst.bytes, dst.bytes + n);
    body.push_back(static_cast<uint8_t>(src.port >> 8));
    body.push_back(static_cast<uint8_t>(src.port));
    body.push_back(static_cast<uint8_t>(dst.port >> 8));
    body.push_back(static_cast<uint8_t>(dst.port));
  }
  rustls_connection* conn = client_->conn();
  const uint8_t* alpn = nullptr;
  size_t alpn_len = 0;
  rustls_connection_get_alpn_protocol(conn, &alpn, &alpn_len);
  if (alpn != nullptr) PutTlv(body, kPp2TypeAlpn, alpn, alpn_len);
  if (!sni_.empty()) PutTlv(body, kPp2TypeAuthority, sni_);
  const rustls_certificate* peer = rustls_connection_get_peer_certificate(conn, 0);
  bool resumed = rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED;
  std::vector<uint8_t> ssl;
  ssl.push_back(kPp2ClientSsl | (peer != nullptr && !resumed ? kPp2ClientCertConn : 0) | (peer != nullptr ? kPp2ClientCertSess : 0));
  // §2.2.5: verify is 0 only when a certificate was presented and verified
  // (rustls refuses one it cannot verify).
  uint32_t verify = peer != nullptr ? 0 : 1;
  for (int shift = 24; shift >= 0; shift -= 8) ssl.push_back(static_cast<uint8_t>(verify >> shift));
  uint16_t version = rustls_connection_get_protocol_version(conn);
  PutTlv(ssl, kPp2SubtypeSslVersion, version == 0x0304 ? "TLSv1.3" : version == 0x0303 ? "TLSv1.2" : "");
  if (peer != nullptr) {
    const uint8_t* der = nullptr;
    size_t der_len = 0;
    if (rustls_certificate_get_der(peer, &der, &der_len) == RUSTLS_RESULT_OK) {
      std::string cn = SubjectCommonName(der, der_len);
      if (!cn.empty()) PutTlv(ssl, kPp2SubtypeSslCn, cn);
    }
  }
  PutTlv(ssl, kPp2SubtypeSslCipher, CipherName(rustls_connection_get_negotiated_ciphersuite(conn), false));
  const std::string& key_alg = target_->key_alg(certificate_);
  if (!key_alg.empty()) PutTlv(ssl, kPp2SubtypeSslKeyAlg, key_alg);
  PutTlv(body, kPp2TypeSsl, ssl.data(), ssl.size());
  out.assign(kProxyV2Signature, kProxyV2Signature + sizeof kProxyV2Signature);
  out.push_back(0x21);  // version 2, PROXY
  out.push_back(family);
  out.push_back(static_cast<uint8_t>(body.size() >> 8));
  out.push_back(static_cast<uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void Splice::OnClientPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Splice*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    delete self;
    return;
  }
  if ((events & UV_WRITABLE) != 0 && self->client_->Flush() == Io::kFailed) {
    delete self;
    return;
  }
  if ((events & UV_READABLE) != 0 && self->backend_->ready() && !self->Move(*self->client_, self->backend_->endpoint())) return;
  self->Update();
}

bool Splice::Move(Endpoint& src, Endpoint& dst) {
  for (int i = 0; i < kMovesPerEvent && !dst.HasQueued() && !src.input_ended(); i++) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    Io r = src.Read(plain);
    if (plain.len > 0 && dst.Write(plain.base, plain.len) == Io::kFailed) {
      delete this;
      return false;
    }
    // TLS reads may queue records of their own (key updates, alerts).
    if (src.tls() && src.HasQueued() && src.Flush() == Io::kFailed) {
      delete this;
      return false;
    }
    if (r == Io::kWouldBlock) break;
    if (r == Io::kEnd) {
      dst.EndWrite();
      if (dst.Flush() == Io::kFailed) {
        delete this;
        return false;
      }
      break;
    }
    if (r == Io::kFailed) {
      // A TLS error queued an alert; it goes out before the close.
      if (src.tls() && src.tls_error != 0 && src.tls_error != RUSTLS_RESULT_UNEXPECTED_EOF) src.Flush();
      delete this;
      return false;
    }
  }
  return true;
}

void Splice::Update() {
  if (!backend_->ready()) return;
  Endpoint& c = *client_;
  Endpoint& b = backend_->endpoint();
  bool c_out = c.HasQueued() || (c.end_requested() && !c.fin_sent());
  bool b_out = b.HasQueued() || (b.end_requested() && !b.fin_sent());
  int ce = (!c.input_ended() && !b_out ? UV_READABLE : 0) | (c_out ? UV_WRITABLE : 0);
  int be = (!b.input_ended() && !c_out ? UV_READABLE : 0) | (b_out ? UV_WRITABLE : 0);
  c.SetEvents(ce, OnClientPoll);
  backend_->SetEvents(be);
  if (c.input_ended() && b.input_ended() && !c_out && !b_out) {
    // Both ways ended and flushed: the connection is over.
    delete this;
    return;
  }
  if (b.input_ended() && !c.input_ended() && !lingering_ && c.fin_sent()) {
    lingering_ = true;
    listener_->deadlines().Add(this, kLingerMs);
  }
}

}  // namespace rustls_node
