#include "plane/http_proxy.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "js/router.h"
#include "plane/forwarded_fields.h"
#include "plane/request_route.h"
#include "plane/splice.h"
#include "proto/http_fields.h"

namespace rustls_node {

namespace {

constexpr size_t kMaxHead = 16 * 1024;           // Node's default maxHeaderSize
constexpr size_t kMaxResponseHead = 64 * 1024;
constexpr size_t kMaxBuffered = 64 * 1024;       // client input held while an exchange runs
constexpr uint64_t kKeepAliveMs = 5000;          // Node's keepAliveTimeout
constexpr uint64_t kHeadTimeoutMs = 60000;       // Node's headersTimeout
constexpr uint64_t kClosingMs = 2000;            // a client that never closes after ours
constexpr int kReadsPerEvent = 4;

using http::Head;
using http::IEquals;

// Fields this proxy does not forward: hop-by-hop ones, those the
// Connection field lists (but the framing fields: bodies pass through as
// framed), and `also` (the reserved ones, for requests).
bool Dropped(std::string_view name, const http::ConnectionOptions& connection, uint32_t also) {
  uint32_t rules = http::FieldRules(name);
  if ((rules & (http::kFieldHopByHop | also)) != 0) return true;
  return (rules & (http::kFieldFraming | http::kFieldLength)) == 0 && !connection.listed.empty() && connection.Lists(name);
}

const char* Reason(int status) {
  switch (status) {
    case 408: return "Request Timeout";
    case 502: return "Bad Gateway";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

std::string_view View(const std::vector<uint8_t>& v, size_t from = 0) {
  return std::string_view(reinterpret_cast<const char*>(v.data()) + from, v.size() - from);
}

Head& SharedHead() {
  thread_local Head head;
  return head;
}

}  // namespace

// ---- HttpProxy ------------------------------------------------------------

void HttpProxy::Start(Listener* listener, Handshaken hs, BackendTarget* target) {
  std::vector<uint8_t> early;
  early.swap(hs.early);
  auto* h = new HttpProxy(listener, std::move(hs), target);
  // Tickets and anything else the handshake left queued.
  if (h->client_->Flush() == Io::kFailed) {
    delete h;
    return;
  }
  h->listener_->deadlines().Add(h, kHeadTimeoutMs);
  if (!early.empty() && !h->OnClientData(early.data(), early.size())) return;
  h->Update();
}

HttpProxy::HttpProxy(Listener* listener, Handshaken hs, BackendTarget* target)
    : Owned(listener), client_(std::move(hs.ep)), set_(hs.set), target_(target) {
  const TlsStream& tls = client_->stream();
  host_ = tls.host();
  certificate_ = tls.certificate();
  sni_ = tls.sni();
  client_->Rebind(this);
}

HttpProxy::~HttpProxy() {
  listener_->deadlines().Remove(this);
  delete backend_;
  // Handed to JS: the connection lives on there, with its endpoint.
  if (client_ != nullptr) listener_->stats()->Closed(client_->bytes_in, client_->bytes_out);
  listener_->Release(set_);
}

void HttpProxy::OnClientPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<HttpProxy*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    delete self;
    return;
  }
  if ((events & UV_WRITABLE) != 0 && self->client_->Flush() == Io::kFailed) {
    delete self;
    return;
  }
  if ((events & UV_READABLE) != 0) {
    self->OnClientReadable();
    return;
  }
  self->Update();
}

void HttpProxy::OnClientReadable() {
  PlainOut plain = PlainOut::Growing(&SharedPlain());
  for (int i = 0; i < kReadsPerEvent && !client_ended_; i++) {
    if (backend_ != nullptr && backend_->ready() && backend_->endpoint().HasQueued()) break;
    if (Buffered() > kMaxBuffered) break;
    plain.len = 0;
    Io r = client_->Read(plain);
    // TLS reads may queue records of their own (key updates, alerts).
    if (client_->HasQueued() && client_->Flush() == Io::kFailed) {
      delete this;
      return;
    }
    if (plain.len > 0 && !OnClientData(plain.base, plain.len)) return;
    if (r == Io::kWouldBlock) break;
    if (r == Io::kFailed) {
      // A bad record or a truncated stream ends this connection only.
      if (client_->tls_error != 0 && client_->tls_error != RUSTLS_RESULT_UNEXPECTED_EOF) client_->Flush();
      delete this;
      return;
    }
    if (r == Io::kEnd) client_ended_ = true;
  }
  if (client_ended_) {
    // close_notify: between requests we answer with ours; during an
    // exchange whose request is complete the response still goes out.
    if (state_ == kIdle || state_ == kHead) {
      Close();
      return;
    }
    if (state_ == kClosing) {
      Update();
      return;
    }
    if (!request_body_.done()) {
      delete this;
      return;
    }
    close_after_ = true;
  }
  Update();
}

bool HttpProxy::OnClientData(const uint8_t* p, size_t n) {
  if (state_ == kClosing) return true;
  if (state_ == kExchange && !request_body_.done()) {
    size_t used = 0;
    if (!request_body_.Consume(p, n, &used)) {
      delete this;
      return false;
    }
    if (used > 0 && backend_->endpoint().Write(p, used) == Io::kFailed) {
      int err = backend_->endpoint().sys_errno;
      delete backend_;
      backend_ = nullptr;
      if (response_started_) {
        delete this;
        return false;
      }
      return BackendLost("connect", 0, err);
    }
    p += used;
    n -= used;
  }
  if (n > 0) in_.insert(in_.end(), p, p + n);
  if (state_ == kIdle || state_ == kHead) return NextRequest();
  return true;
}

bool HttpProxy::NextRequest() {
  if (Buffered() == 0) {
    in_.clear();
    in_off_ = 0;
    if (in_.capacity() > kMaxHead) in_.shrink_to_fit();
    if (state_ != kIdle) {
      state_ = kIdle;
      listener_->deadlines().Add(this, kKeepAliveMs);
    }
    return true;
  }
  if (in_off_ > 0) {
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(in_off_));
    in_off_ = 0;
  }
  if (state_ == kIdle) {
    state_ = kHead;
    listener_->deadlines().Add(this, kHeadTimeoutMs);
  }
  Head& head = SharedHead();
  http::Parse r = http::ParseHead(View(in_), true, &head);
  if (r == http::Parse::kIncomplete) {
    // Node answers an oversized head with 431; it gets these bytes.
    if (in_.size() > kMaxHead) {
      HandOff();
      return false;
    }
    return true;
  }
  if (r == http::Parse::kBad || head.length > kMaxHead) {
    HandOff();
    return false;
  }
  return Begin(head);
}

bool HttpProxy::Begin(const Head& head) {
  const BackendTarget::Http& settings = target_->http();
  // An HTTP/2-only backend (backend.httpVersion "2", whose host offers h2
  // alone): a client that negotiated no ALPN is told so, and the connection closes.
  if (settings.backend_h2) {
    close_after_ = true;
    return Answer(505, "This host is served over HTTP/2 only\n");
  }
  // What this exchange does not take on goes to JS, which answers it as
  // the JS data plane does (400, 405, 421, 403, upgrades, http-01...).
  bool mine = head.minor == 1 && !IEquals(head.method, "CONNECT");
  int hosts = 0;
  std::string_view host_value;
  bool chunked = false;
  for (const http::Field& f : head.fields) {
    if (IEquals(f.name, "host")) {
      hosts++;
      host_value = f.value;
    } else if (IEquals(f.name, "transfer-encoding")) {
      if (chunked || !IEquals(f.value, "chunked")) mine = false;
      chunked = true;
    } else if (IEquals(f.name, "expect") || IEquals(f.name, "upgrade")) {
      mine = false;
    }
  }
  bool has_length = false;
  uint64_t length = 0;
  if (!http::ContentLength(head, &has_length, &length) || (has_length && chunked) || hosts != 1 || host_value.empty()) mine = false;
  if (mine && settings.acme && head.target.rfind("/.well-known/acme-challenge/", 0) == 0) mine = false;
  if (mine) {
    // SPEC §4.2: this connection's host serves the request natively;
    // another host's name (421 or coalescing) and no SNI on a port of
    // several hosts (403) are JS's to answer.
    RequestRoute route = RouteRequest(*set_, host_, target_, !sni_.empty(), host_value);
    if (route.status != 0 || route.host != host_) mine = false;
  }
  if (!mine) {
    HandOff();
    return false;
  }
  http::ConnectionOptions connection = http::ConnectionTokens(head);
  if (connection.close || listener_->draining()) close_after_ = true;
  // The request line, the client's fields but the hop-by-hop, listed and
  // reserved ones, then ours.
  request_.clear();
  request_.append(head.method).append(" ").append(head.target).append(" HTTP/1.1\r\n");
  for (const http::Field& f : head.fields) {
    if (Dropped(f.name, connection, http::kFieldReserved)) continue;
    request_.append(f.line);
  }
  if (!forwarded_made_) {
    forwarded_made_ = true;
    forwarded_ = ForwardedFieldLines(target_->http(), client_->fd(), client_->conn(), sni_, certificate_);
  }
  request_.append(forwarded_).append("\r\n");
  head_request_ = IEquals(head.method, "HEAD");
  request_body_.Reset(chunked ? http::Body::kChunked : has_length ? http::Body::kLength : http::Body::kNone, length);
  replayable_ = request_body_.done() && (IEquals(head.method, "GET") || head_request_ || IEquals(head.method, "OPTIONS"));
  in_off_ += head.length;
  resp_.clear();
  response_started_ = false;
  response_sent_ = false;
  backend_reusable_ = false;
  listener_->deadlines().Remove(this);
  backend_ = listener_->pool().Take(target_, this);
  if (backend_ != nullptr) {
    // A pooled connection may have been closed by the backend meanwhile:
    // that one failure earns a retry (as http-backend.ts reusedSocket).
    retried_ = false;
    state_ = kExchange;
    return SendRequest();
  }
  retried_ = true;
  BackendConn::StartError err;
  backend_ = BackendConn::Connect(listener_, target_, this, {}, &err);
  if (backend_ == nullptr) return BackendLost(err.kind, err.code, err.sys_errno);
  state_ = kConnect;
  return true;
}

void HttpProxy::OnBackendReady(BackendConn* b) {
  if (state_ != kConnect) return;
  state_ = kExchange;
  if (SendRequest()) Update();
}

void HttpProxy::OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) {
  // The connection deletes itself after this.
  backend_ = nullptr;
  if (BackendLost(kind, code, sys_errno)) Update();
}

bool HttpProxy::SendRequest() {
  Endpoint& be = backend_->endpoint();
  backend_->uses++;
  Io w = be.Write(reinterpret_cast<const uint8_t*>(request_.data()), request_.size());
  if (w != Io::kFailed && Buffered() > 0 && !request_body_.done()) {
    size_t used = 0;
    if (!request_body_.Consume(in_.data() + in_off_, Buffered(), &used)) {
      delete this;
      return false;
    }
    w = be.Write(in_.data() + in_off_, used);
    in_off_ += used;
  }
  // Kept for one retry only while nothing but the head went out.
  if (!replayable_) request_.clear();
  if (w == Io::kFailed) {
    int err = be.sys_errno;
    delete backend_;
    backend_ = nullptr;
    return BackendLost("connect", 0, err);
  }
  // As http.request's timeout: the backend sends nothing for this long.
  backend_->Arm(target_->http().timeout_ms);
  return true;
}

void HttpProxy::OnBackendEvent(BackendConn* b, int status, int events) {
  Endpoint& be = b->endpoint();
  if (status == UV_ETIMEDOUT || status < 0 || ((events & UV_WRITABLE) != 0 && be.Flush() == Io::kFailed)) {
    bool timeout = status == UV_ETIMEDOUT;
    int err = timeout ? ETIMEDOUT : status < 0 ? SocketError(be.fd()) : be.sys_errno;
    delete backend_;
    backend_ = nullptr;
    if (response_sent_ || response_started_) {
      delete this;
      return;
    }
    if (BackendLost(timeout ? "timeout" : "connect", 0, err)) Update();
    return;
  }
  if ((events & UV_READABLE) != 0) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    for (int i = 0; i < kReadsPerEvent && backend_ == b && !client_->HasQueued(); i++) {
      plain.len = 0;
      Io r = be.Read(plain);
      if (plain.len > 0) {
        b->Arm(target_->http().timeout_ms);
        if (!OnBackendData(plain.base, plain.len)) return;
        if (backend_ != b) break;  // the exchange ended; `b` is pooled or gone
      }
      if (r == Io::kWouldBlock) break;
      if (r == Io::kOk) continue;
      // The backend ended or failed.
      int err = be.sys_errno != 0 ? be.sys_errno : ECONNRESET;
      bool close_delimited = r == Io::kEnd && response_sent_ && response_body_.kind() == http::Body::kUntilClose;
      delete backend_;
      backend_ = nullptr;
      if (close_delimited) {
        // The body ended with the connection; the client's ends after it.
        backend_reusable_ = false;
        if (FinishExchange()) Update();
        return;
      }
      if (response_started_) {
        delete this;
        return;
      }
      if (BackendLost("connect", 0, err)) Update();
      return;
    }
  }
  Update();
}

bool HttpProxy::OnBackendData(const uint8_t* p, size_t n) {
  response_started_ = true;
  if (!response_sent_) {
    resp_.insert(resp_.end(), p, p + n);
    return OnResponseHead();
  }
  size_t used = 0;
  if (!response_body_.Consume(p, n, &used)) {
    delete this;
    return false;
  }
  if (used > 0 && client_->Write(p, used) == Io::kFailed) {
    delete this;
    return false;
  }
  // Bytes past the response: this backend connection is not trusted again.
  if (used < n) backend_reusable_ = false;
  if (response_body_.done()) return FinishExchange();
  return true;
}

bool HttpProxy::OnResponseHead() {
  Head& head = SharedHead();
  for (;;) {
    http::Parse r = http::ParseHead(View(resp_), false, &head);
    if (r == http::Parse::kIncomplete && resp_.size() <= kMaxResponseHead) return true;
    if (r != http::Parse::kOk || head.status == 101 || head.status < 100) {
      // Not a response this proxy can relay: 502, as Node's client would
      // fail on it; the backend connection is dropped.
      delete backend_;
      backend_ = nullptr;
      response_started_ = false;
      retried_ = true;
      return BackendLost("connect", 0, 0);
    }
    http::ConnectionOptions connection = http::ConnectionTokens(head);
    bool informational = head.status < 200;
    bool chunked = false;
    bool other_coding = false;
    for (const http::Field& f : head.fields) {
      if (IEquals(f.name, "transfer-encoding")) {
        if (IEquals(f.value, "chunked")) chunked = true;
        else other_coding = true;
      }
    }
    bool has_length = false;
    uint64_t length = 0;
    bool length_ok = http::ContentLength(head, &has_length, &length);
    if (!informational) {
      if (head_request_ || head.status == 204 || head.status == 304) response_body_.Reset(http::Body::kNone);
      else if (chunked && !other_coding) response_body_.Reset(http::Body::kChunked);
      else if (has_length && length_ok && !chunked && !other_coding) response_body_.Reset(http::Body::kLength, length);
      else response_body_.Reset(http::Body::kUntilClose);
      backend_reusable_ = head.minor == 1 && !connection.close && response_body_.kind() != http::Body::kUntilClose;
      if (!request_body_.done() || response_body_.kind() == http::Body::kUntilClose || listener_->draining()) close_after_ = true;
    }
    std::string out;
    out.reserve(head.length + 64);
    out.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ").append(head.reason).append("\r\n");
    for (const http::Field& f : head.fields) {
      if (Dropped(f.name, connection, 0)) continue;
      out.append(f.line);
    }
    if (!informational && close_after_) out.append("Connection: close\r\n");
    out.append("\r\n");
    size_t rest_at = head.length;
    if (informational) {
      // 1xx (103 Early Hints): relayed; the final response follows.
      if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
        delete this;
        return false;
      }
      resp_.erase(resp_.begin(), resp_.begin() + static_cast<ptrdiff_t>(rest_at));
      continue;
    }
    size_t used = 0;
    if (!response_body_.Consume(resp_.data() + rest_at, resp_.size() - rest_at, &used)) {
      delete this;
      return false;
    }
    out.append(reinterpret_cast<const char*>(resp_.data() + rest_at), used);
    if (rest_at + used < resp_.size()) backend_reusable_ = false;
    response_sent_ = true;
    request_.clear();
    resp_.clear();
    if (resp_.capacity() > kMaxHead) resp_.shrink_to_fit();
    listener_->HttpResponse(head.status);
    // Head and the body bytes that came with it: one TLS write.
    if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
      delete this;
      return false;
    }
    if (response_body_.done()) return FinishExchange();
    return true;
  }
}

bool HttpProxy::FinishExchange() {
  BackendConn* b = backend_;
  backend_ = nullptr;
  if (b != nullptr) {
    b->Arm(0);
    if (backend_reusable_ && request_body_.done()) listener_->pool().Put(b);
    else delete b;
  }
  if (!request_body_.done()) close_after_ = true;
  state_ = kHead;  // NextRequest makes it kIdle if nothing waits
  if (close_after_ || client_ended_) return Close();
  return NextRequest();
}

bool HttpProxy::BackendLost(const char* kind, uint32_t code, int sys_errno) {
  // A pooled connection the backend closed as we reused it: once more on a
  // fresh one, for a request that can be sent again (no body).
  if (!response_started_ && replayable_ && !retried_ && !request_.empty()) {
    retried_ = true;
    BackendConn::StartError err;
    backend_ = BackendConn::Connect(listener_, target_, this, {}, &err);
    if (backend_ != nullptr) {
      state_ = kConnect;
      return true;
    }
    kind = err.kind;
    code = err.code;
    sys_errno = err.sys_errno;
  }
  listener_->BackendFailed(set_, host_, kind, code, sys_errno);
  bool timeout = std::strcmp(kind, "timeout") == 0;
  return Answer(timeout ? 504 : 502, timeout ? "Gateway Timeout\n" : "Bad Gateway\n");
}

bool HttpProxy::Answer(int status, const char* text) {
  if (!request_body_.done() || listener_->draining()) close_after_ = true;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
                    "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: " + std::to_string(std::strlen(text)) + "\r\n";
  if (close_after_) out += "connection: close\r\n";
  out += "\r\n";
  out += text;
  listener_->HttpResponse(status);
  if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
    delete this;
    return false;
  }
  backend_reusable_ = false;
  return FinishExchange();
}

bool HttpProxy::Close() {
  if (state_ == kClosing) return true;
  state_ = kClosing;
  client_->EndWrite();
  listener_->deadlines().Add(this, kClosingMs);
  return Update();
}

void HttpProxy::Drain() {
  close_after_ = true;
  if (state_ == kIdle) Close();
}

void HttpProxy::OnDeadline() {
  switch (state_) {
    case kIdle:
      // keepAliveTimeout: the idle connection ends, politely.
      Close();
      return;
    case kHead: {
      // headersTimeout: as Node's 408 for ERR_HTTP_REQUEST_TIMEOUT.
      static const char kTimeout[] = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
      listener_->HttpResponse(408);
      if (client_->Write(reinterpret_cast<const uint8_t*>(kTimeout), sizeof kTimeout - 1) == Io::kFailed) {
        delete this;
        return;
      }
      Close();
      return;
    }
    case kClosing:
      delete this;
      return;
    default:
      return;
  }
}

bool HttpProxy::Update() {
  Endpoint& c = *client_;
  bool c_out = c.HasQueued() || (c.end_requested() && !c.fin_sent());
  if (state_ == kClosing && client_ended_ && !c_out) {
    delete this;
    return false;
  }
  bool backend_ready = backend_ != nullptr && backend_->ready();
  bool b_out = backend_ready && backend_->endpoint().HasQueued();
  bool read_client = !client_ended_ && !b_out && Buffered() <= kMaxBuffered;
  c.SetEvents((read_client ? UV_READABLE : 0) | (c_out ? UV_WRITABLE : 0), OnClientPoll);
  if (backend_ready) backend_->SetEvents((!c_out ? UV_READABLE : 0) | (b_out ? UV_WRITABLE : 0));
  return true;
}

void HttpProxy::HandOff() {
  // At a request boundary: no response is under way, and the bytes from
  // in_off_ on are this request's (and whatever followed it).
  listener_->deadlines().Remove(this);
  delete backend_;
  backend_ = nullptr;
  Handshaken h;
  h.ep = std::move(client_);
  h.set = set_;
  set_ = nullptr;
  h.early.assign(in_.begin() + static_cast<ptrdiff_t>(in_off_), in_.end());
  Listener* listener = listener_;
  delete this;
  listener->Deliver(std::move(h));
}

}  // namespace rustls_node
