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

constexpr size_t kMaxResponseHead = 64 * 1024;
constexpr size_t kMaxBuffered = 64 * 1024;  // client input held while an exchange runs
// How many close timeouts a client that keeps sending after our close is
// read for (15 x closeTimeout 2 s: 30 s, a web server's lingering close).
constexpr int kMaxCloseWaits = 15;
constexpr std::string_view kText = "text/plain; charset=utf-8";

using http::Head;
using http::IEquals;

// Fields this proxy does not forward: hop-by-hop ones, those the
// Connection field lists (but the framing fields: bodies pass through as
// framed), and `also` (the reserved ones, for requests).
bool Dropped(std::string_view name, const http::ConnectionOptions& connection, uint32_t also) {
  uint32_t rules = http::FieldRules(name);
  if ((rules & (http::kFieldHopByHop | also)) != 0) return true;
  return (rules & (http::kFieldFraming | http::kFieldLength)) == 0 && !connection.listed.empty() &&
         connection.Lists(name);
}

std::string_view View(const std::vector<uint8_t>& v, size_t from = 0) {
  return std::string_view(reinterpret_cast<const char*>(v.data()) + from, v.size() - from);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Head& SharedHead() {
  thread_local Head head;
  return head;
}

// Body::Decode's sink for a body decoded into a string.
void AppendTo(void* ctx, const uint8_t* data, size_t len) {
  static_cast<std::string*>(ctx)->append(reinterpret_cast<const char*>(data), len);
}

// What Begin reads from a request's fields.
struct RequestFields {
  int hosts = 0;
  std::string_view host;
  int transfer_encodings = 0;  // Transfer-Encoding fields
  int codings = 0;             // transfer codings they list
  bool chunked_last = false;   // the last of them is chunked
  bool expect = false;
  std::string_view expectation;
  std::string upgrade;  // the Upgrade fields' protocols, joined
};

RequestFields ReadFields(const Head& head) {
  RequestFields r;
  for (const http::Field& f : head.fields) {
    if (IEquals(f.name, "host")) {
      r.hosts++;
      r.host = f.value;
    } else if (IEquals(f.name, "transfer-encoding")) {
      r.transfer_encodings++;
      std::string_view v = f.value;
      while (!v.empty()) {
        size_t comma = v.find(',');
        std::string_view coding = Trim(v.substr(0, comma));
        if (!coding.empty()) {
          r.codings++;
          r.chunked_last = IEquals(coding, "chunked");
        }
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
    } else if (IEquals(f.name, "expect")) {
      r.expect = true;
      r.expectation = f.value;
    } else if (IEquals(f.name, "upgrade") && !f.value.empty()) {
      if (!r.upgrade.empty()) r.upgrade.append(", ");
      r.upgrade.append(f.value);
    }
  }
  return r;
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
  // The first request head, too, has the headers timeout.
  h->listener_->Arm(h, h->listener_->timeouts().headers_ms);
  if (!early.empty() && !h->OnClientData(early.data(), early.size())) return;
  h->Step();
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
  // Became a tunnel: the connection lives on in the splice, with its endpoint.
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
  self->Step();
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
    if (client_->drained()) break;
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
  Step();
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
      if (!BackendLost("connect", 0, err)) return false;
    }
    p += used;
    n -= used;
  }
  if (n > 0) in_.insert(in_.end(), p, p + n);
  return NextRequest();
}

bool HttpProxy::NextRequest() {
  while (state_ == kIdle || state_ == kHead) {
    if (Buffered() == 0) {
      in_.clear();
      in_off_ = 0;
      if (in_.capacity() > kMaxHead) in_.shrink_to_fit();
      return true;
    }
    if (in_off_ > 0) {
      in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(in_off_));
      in_off_ = 0;
    }
    if (state_ == kIdle) {
      state_ = kHead;
      listener_->Arm(this, listener_->timeouts().headers_ms);
    }
    Head& head = SharedHead();
    http::Parse r = http::ParseHead(View(in_), true, &head);
    if (r == http::Parse::kIncomplete) return in_.size() > kMaxHead ? Refuse(431) : true;
    // As Node's http answered them: a head its parser refuses, one over
    // maxHeaderSize.
    if (r == http::Parse::kBad) return Refuse(400);
    if (head.length > kMaxHead) return Refuse(431);
    if (!Begin(head)) return false;
  }
  return true;
}

bool HttpProxy::Begin(const Head& head) {
  listener_->deadlines().Remove(this);
  in_off_ += head.length;
  http10_ = head.minor == 0;
  head_request_ = IEquals(head.method, "HEAD");
  upgrade_ = false;
  decode_ = false;
  // Framing (RFC 9112 §6.1, §6.3) and Host (§3.2): a request whose length
  // or authority cannot be read safely is refused, and the connection
  // closes (its next bytes cannot be told from this body's).
  RequestFields fields = ReadFields(head);
  bool has_length = false;
  uint64_t length = 0;
  if (!http::ContentLength(head, &has_length, &length)) return Refuse(400);
  if (fields.transfer_encodings > 0) {
    // HTTP/1.0 has no transfer coding; chunked must come last, and alone
    // with a Content-Length it would be a smuggling vector.
    if (http10_ || has_length || !fields.chunked_last) return Refuse(400);
    // Codings under the chunked one would have to be forwarded as such.
    if (fields.codings > 1) return Refuse(501);
  }
  if (fields.hosts > 1 || (!http10_ && fields.hosts == 0)) return Refuse(400);
  bool chunked = fields.transfer_encodings > 0;
  request_body_.Reset(chunked ? http::Body::kChunked : has_length ? http::Body::kLength : http::Body::kNone, length);
  http::ConnectionOptions connection = http::ConnectionTokens(head);
  // RFC 9112 §9.3: an HTTP/1.0 connection persists only when asked to.
  if (connection.close || listener_->draining() || (http10_ && !connection.Lists("keep-alive"))) close_after_ = true;

  if (const std::string* answer = listener_->AcmeAnswer(head.method, head.target))
    return Reply(200, "application/octet-stream", *answer);
  if (IEquals(head.method, "CONNECT")) {
    // What follows a CONNECT is a tunnel's bytes, never another request.
    close_after_ = true;
    return Reply(405, kText, "CONNECT is not supported\n");
  }
  // RFC 9110 §10.1.1: 100-continue goes to the backend, which sends 100
  // Continue (relayed) or its final answer; HTTP/1.0's is ignored; any
  // other expectation cannot be met (Node's 417).
  if (fields.expect && !http10_ && !IEquals(fields.expectation, "100-continue")) {
    close_after_ = true;
    return Reply(417, kText, "Expectation Failed\n");
  }
  // SPEC §4.2: 403 without SNI on a port of several hosts, 421 for another
  // host's name, or that host's backend when the two may coalesce.
  RequestRoute route = RouteRequest(*set_, host_, target_, !sni_.empty(), fields.host);
  if (route.status != 0) {
    listener_->HttpNotice(set_, host_, route.reason, route.status, client_->fd(), sni_, fields.host);
    return Reply(route.status, kText, std::string(http::ReasonPhrase(route.status)) + ": " + route.reason + "\n");
  }
  // An HTTP/2-only backend (backend.httpVersion "2", whose host offers h2
  // alone): a client that negotiated no ALPN is told so, and the connection closes.
  if (route.target->http().backend_h2) {
    close_after_ = true;
    return Reply(505, kText, "This host is served over HTTP/2 only\n");
  }
  exchange_target_ = route.target;
  exchange_host_ = route.host;
  // RFC 9110 §7.8: an HTTP/1.0 request's Upgrade is ignored.
  upgrade_ = !http10_ && !fields.upgrade.empty();

  // The request line, Host for an HTTP/1.0 request without one, the
  // client's fields but the hop-by-hop, listed and reserved ones, then ours.
  request_.clear();
  request_.append(head.method).append(" ").append(head.target).append(" HTTP/1.1\r\n");
  if (fields.hosts == 0 && static_cast<size_t>(host_) < set_->plans.size()) {
    request_.append("Host: ").append(set_->plans[host_].server_name).append("\r\n");
  }
  for (const http::Field& f : head.fields) {
    if (Dropped(f.name, connection, http::kFieldReserved)) continue;
    if (http10_ && IEquals(f.name, "expect")) continue;
    request_.append(f.line);
  }
  if (upgrade_) request_.append("Connection: Upgrade\r\nUpgrade: ").append(fields.upgrade).append("\r\n");
  if (!forwarded_made_) {
    forwarded_made_ = true;
    forwarded_ = ForwardedFieldLines(target_->http(), client_->fd(), client_->conn(), sni_, certificate_);
  }
  request_.append(forwarded_).append("\r\n");
  replayable_ =
      request_body_.done() && (IEquals(head.method, "GET") || head_request_ || IEquals(head.method, "OPTIONS"));
  resp_.clear();
  response_started_ = false;
  response_sent_ = false;
  backend_reusable_ = false;
  backend_ = listener_->pool().Take(exchange_target_, this);
  if (backend_ != nullptr) {
    // A pooled connection may have been closed by the backend meanwhile:
    // that one failure earns a retry.
    retried_ = false;
    state_ = kExchange;
    return SendRequest();
  }
  retried_ = true;
  state_ = kConnect;
  BackendConn::StartError err;
  backend_ = BackendConn::Connect(listener_, exchange_target_, this, {}, &err);
  if (backend_ == nullptr) return BackendLost(err.kind, err.code, err.sys_errno);
  return true;
}

void HttpProxy::OnBackendReady(BackendConn* b) {
  if (state_ != kConnect) return;
  state_ = kExchange;
  if (SendRequest()) Step();
}

void HttpProxy::OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) {
  // The connection deletes itself after this.
  backend_ = nullptr;
  if (BackendLost(kind, code, sys_errno)) Step();
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
  backend_->Arm(exchange_target_->http().timeout_ms);
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
    if (BackendLost(timeout ? "timeout" : "connect", 0, err)) Step();
    return;
  }
  if ((events & UV_READABLE) != 0) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    for (int i = 0; i < kReadsPerEvent && backend_ == b && !client_->HasQueued(); i++) {
      plain.len = 0;
      Io r = be.Read(plain);
      if (plain.len > 0) {
        b->Arm(exchange_target_->http().timeout_ms);
        if (!OnBackendData(plain.base, plain.len)) return;
        if (backend_ != b) break;  // the exchange ended; `b` is pooled or gone
      }
      if (r == Io::kWouldBlock || (r == Io::kOk && be.drained())) break;
      if (r == Io::kOk) continue;
      // The backend ended or failed.
      int err = be.sys_errno != 0 ? be.sys_errno : ECONNRESET;
      bool close_delimited = r == Io::kEnd && response_sent_ && response_body_.kind() == http::Body::kUntilClose;
      delete backend_;
      backend_ = nullptr;
      if (close_delimited) {
        // The body ended with the connection; the client's ends after it.
        backend_reusable_ = false;
        if (FinishExchange()) Step();
        return;
      }
      if (response_started_) {
        delete this;
        return;
      }
      if (BackendLost("connect", 0, err)) Step();
      return;
    }
  }
  Step();
}

bool HttpProxy::RelayBody(const uint8_t* p, size_t n, size_t* used, std::string* out) {
  if (decode_) return response_body_.Decode(p, n, used, AppendTo, out, nullptr);
  if (!response_body_.Consume(p, n, used)) return false;
  out->append(reinterpret_cast<const char*>(p), *used);
  return true;
}

bool HttpProxy::OnBackendData(const uint8_t* p, size_t n) {
  response_started_ = true;
  if (!response_sent_) {
    resp_.insert(resp_.end(), p, p + n);
    return OnResponseHead();
  }
  size_t used = 0;
  if (decode_) {
    thread_local std::string decoded;
    decoded.clear();
    if (!RelayBody(p, n, &used, &decoded) ||
        (!decoded.empty() &&
         client_->Write(reinterpret_cast<const uint8_t*>(decoded.data()), decoded.size()) == Io::kFailed)) {
      delete this;
      return false;
    }
  } else {
    // As framed: straight from the read buffer.
    if (!response_body_.Consume(p, n, &used) || (used > 0 && client_->Write(p, used) == Io::kFailed)) {
      delete this;
      return false;
    }
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
    if (r != http::Parse::kOk || head.status < 100 || (head.status == 101 && !upgrade_)) {
      // Not a response this proxy can relay: 502, as Node's client would
      // fail on it; the backend connection is dropped.
      delete backend_;
      backend_ = nullptr;
      response_started_ = false;
      retried_ = true;
      return BackendLost("connect", 0, 0);
    }
    if (head.status == 101) return Tunnel(head);
    http::ConnectionOptions connection = http::ConnectionTokens(head);
    bool informational = head.status < 200;
    if (informational && http10_) {
      // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
      resp_.erase(resp_.begin(), resp_.begin() + static_cast<ptrdiff_t>(head.length));
      continue;
    }
    if (!informational) {
      backend_reusable_ = http::FrameResponse(head, head_request_, connection, &response_body_);
      // An HTTP/1.0 client reads no chunked coding (RFC 9112 §6.1): the
      // body is decoded and ends with the connection.
      decode_ = http10_ && response_body_.kind() == http::Body::kChunked;
      // A declined upgrade: the client may have sent bytes meant for the
      // protocol it asked for; the connection ends after this answer.
      if (!request_body_.done() || response_body_.kind() == http::Body::kUntilClose || decode_ || upgrade_ ||
          listener_->draining()) {
        close_after_ = true;
      }
    }
    std::string out;
    out.reserve(head.length + 64);
    out.append("HTTP/1.1 ").append(std::to_string(head.status)).append(" ").append(head.reason).append("\r\n");
    for (const http::Field& f : head.fields) {
      if (Dropped(f.name, connection, 0)) continue;
      if (decode_ && (http::FieldRules(f.name) & http::kFieldFraming) != 0) continue;
      out.append(f.line);
    }
    if (!informational && close_after_)
      out.append("Connection: close\r\n");
    else if (!informational && http10_)
      out.append("Connection: keep-alive\r\n");
    out.append("\r\n");
    size_t rest_at = head.length;
    if (informational) {
      // 1xx (100 Continue, 103 Early Hints): relayed; the final response follows.
      if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
        delete this;
        return false;
      }
      resp_.erase(resp_.begin(), resp_.begin() + static_cast<ptrdiff_t>(rest_at));
      continue;
    }
    size_t used = 0;
    if (!RelayBody(resp_.data() + rest_at, resp_.size() - rest_at, &used, &out)) {
      delete this;
      return false;
    }
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

bool HttpProxy::Tunnel(const Head& head) {
  // The 101 as the backend sent it: its Connection and Upgrade fields are
  // the switch itself (RFC 9110 §15.2.2).
  std::string out;
  out.reserve(head.length + 16);
  out.append("HTTP/1.1 101 ").append(head.reason).append("\r\n");
  for (const http::Field& f : head.fields) out.append(f.line);
  out.append("\r\n");
  listener_->HttpResponse(101);
  if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
    delete this;
    return false;
  }
  // What each side sent past the switch goes to the other first.
  std::vector<uint8_t> to_client(resp_.begin() + static_cast<ptrdiff_t>(head.length), resp_.end());
  std::vector<uint8_t> to_backend(in_.begin() + static_cast<ptrdiff_t>(in_off_), in_.end());
  BackendConn* b = backend_;
  backend_ = nullptr;
  RouteSet* set = set_;
  set_ = nullptr;
  listener_->deadlines().Remove(this);
  Splice::Join(listener_, std::move(client_), set, b, std::move(to_client), std::move(to_backend));
  delete this;
  return false;
}

bool HttpProxy::FinishExchange() {
  BackendConn* b = backend_;
  backend_ = nullptr;
  if (b != nullptr) {
    b->Arm(0);
    if (backend_reusable_ && request_body_.done())
      listener_->pool().Put(b);
    else
      delete b;
  }
  if (!request_body_.done()) close_after_ = true;
  upgrade_ = false;
  decode_ = false;
  state_ = kIdle;
  if (close_after_ || client_ended_) return Close();
  // keepAliveTimeout, until the next request's first byte.
  listener_->Arm(this, listener_->timeouts().keep_alive_ms);
  return true;
}

bool HttpProxy::BackendLost(const char* kind, uint32_t code, int sys_errno) {
  // A pooled connection the backend closed as we reused it: once more on a
  // fresh one, for a request that can be sent again (no body).
  if (!response_started_ && replayable_ && !retried_ && !request_.empty()) {
    retried_ = true;
    BackendConn::StartError err;
    backend_ = BackendConn::Connect(listener_, exchange_target_, this, {}, &err);
    if (backend_ != nullptr) {
      state_ = kConnect;
      return true;
    }
    kind = err.kind;
    code = err.code;
    sys_errno = err.sys_errno;
  }
  listener_->BackendFailed(set_, exchange_host_, kind, code, sys_errno);
  int status = std::strcmp(kind, "timeout") == 0 ? 504 : 502;
  return Reply(status, kText, std::string(http::ReasonPhrase(status)) + "\n");
}

bool HttpProxy::Reply(int status, std::string_view type, std::string_view body) {
  // The request's body is not read: the connection ends after the answer.
  if (!request_body_.done() || listener_->draining()) close_after_ = true;
  std::string out;
  out.reserve(128 + body.size());
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(http::ReasonPhrase(status));
  out.append("\r\ncontent-type: ")
      .append(type)
      .append("\r\ncontent-length: ")
      .append(std::to_string(body.size()))
      .append("\r\n");
  if (close_after_)
    out.append("connection: close\r\n");
  else if (http10_)
    out.append("connection: keep-alive\r\n");
  out.append("\r\n");
  if (!head_request_) out.append(body);
  listener_->HttpResponse(status);
  if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
    delete this;
    return false;
  }
  backend_reusable_ = false;
  return FinishExchange();
}

bool HttpProxy::Refuse(int status) {
  // Exactly Node's answer to a client error (its http server's default).
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + http::ReasonPhrase(status) +
                    "\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
  listener_->HttpResponse(status);
  if (client_->Write(reinterpret_cast<const uint8_t*>(out.data()), out.size()) == Io::kFailed) {
    delete this;
    return false;
  }
  close_after_ = true;
  return Close();
}

bool HttpProxy::Close() {
  if (state_ == kClosing) return true;
  state_ = kClosing;
  delete backend_;
  backend_ = nullptr;
  // Nothing more is read as requests: what the client still sends is dropped.
  in_.clear();
  in_.shrink_to_fit();
  in_off_ = 0;
  client_->EndWrite();
  closing_mark_ = client_->bytes_in;
  listener_->Arm(this, listener_->timeouts().close_ms);
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
      // A lingering close: a client still sending (a body after a refusal,
      // a flood) is read and dropped while it keeps sending, since closing
      // with its bytes unread sends a reset, which can destroy our answer
      // before the client read it. At most kMaxCloseWaits timeouts in all.
      if (client_->bytes_in != closing_mark_ && ++closing_waits_ < kMaxCloseWaits) {
        closing_mark_ = client_->bytes_in;
        listener_->Arm(this, listener_->timeouts().close_ms);
        return;
      }
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

}  // namespace rustls_node
