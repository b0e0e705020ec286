#include "plane/h1_exchange.h"

#include <cstdio>
#include <cstring>

#include "plane/backend_pool.h"
#include "plane/listener.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

constexpr size_t kMaxResponseHead = 64 * 1024;

std::string_view View(const std::vector<uint8_t>& v, size_t from = 0) {
  return std::string_view(reinterpret_cast<const char*>(v.data()) + from, v.size() - from);
}

http::Head& SharedHead() {
  thread_local http::Head head;
  return head;
}

}  // namespace

H1Exchange::H1Exchange(Listener* listener, RouteSet* set, int host, BackendTarget* target,
                       const UpstreamRequest& request, ExchangeOwner* owner)
    : listener_(listener), set_(set), host_(host), target_(target), owner_(owner), body_kind_(request.body) {
  head_request_ = request.method == "HEAD";
  replayable_ = request.replayable;
  head_.reserve(request.method.size() + request.path.size() + request.fields.size() + 48);
  head_.append(request.method).append(" ").append(request.path).append(" HTTP/1.1\r\n").append(request.fields);
  if (body_kind_ == UpstreamRequest::kStream) head_.append("Transfer-Encoding: chunked\r\n");
  head_.append("\r\n");
  body_ended_ = body_kind_ == UpstreamRequest::kNone;
  backend_ = listener_->pool().Take(target_, this);
  if (backend_ != nullptr) {
    // A pooled connection may have been closed by the backend meanwhile:
    // that one failure earns a retry (as HttpProxy does).
    SendPending();
    Poll();
    return;
  }
  retried_ = true;
  Connect();
}

H1Exchange::~H1Exchange() { delete backend_; }

void H1Exchange::Connect() {
  BackendConn::StartError err;
  backend_ = BackendConn::Connect(listener_, target_, this, {}, &err);
  head_sent_ = false;
  if (backend_ == nullptr) Lost(err.kind, err.code, err.sys_errno);
}

void H1Exchange::OnBackendReady(BackendConn* b) {
  SendPending();
  Poll();
}

void H1Exchange::OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) {
  // The connection deletes itself after this.
  backend_ = nullptr;
  Lost(kind, code, sys_errno);
}

void H1Exchange::SendPending() {
  backend_->uses++;
  head_sent_ = true;
  BackendConn* b = backend_;
  // Head and what body waited, in one write when they fit one buffer.
  if (pending_.empty()) {
    Write(reinterpret_cast<const uint8_t*>(head_.data()), head_.size());
  } else {
    pending_.insert(pending_.begin(), head_.begin(), head_.end());
    untaken_ += waiting_body_;
    waiting_body_ = 0;
    std::vector<uint8_t> out;
    out.swap(pending_);
    Write(out.data(), out.size());
  }
  if (backend_ != b) return;  // failed (and maybe retried)
  // Kept for one retry only while nothing but the head went out.
  if (!replayable_) {
    head_.clear();
    head_.shrink_to_fit();
  }
  // As http.request's timeout: the backend sends nothing for this long.
  backend_->Arm(target_->http().timeout_ms);
  ReportTaken();
}

void H1Exchange::Write(const uint8_t* data, size_t len) {
  Endpoint& be = backend_->endpoint();
  if (be.Write(data, len) != Io::kFailed) return;
  int err = be.sys_errno;
  delete backend_;
  backend_ = nullptr;
  if (started_)
    Broken();
  else
    Lost("connect", 0, err);
}

void H1Exchange::ReportTaken() {
  if (backend_ == nullptr || backend_->endpoint().HasQueued()) return;
  body_sent_ = body_ended_ && pending_.empty() && head_sent_;
  if (untaken_ == 0) return;
  size_t n = untaken_;
  untaken_ = 0;
  owner_->OnBodyTaken(n);
}

void H1Exchange::SendBody(const uint8_t* data, size_t len) {
  if (len == 0) return;
  if (done_) {
    // The response ended first: the rest of the body goes nowhere.
    owner_->OnBodyTaken(len);
    return;
  }
  const uint8_t* p = data;
  size_t n = len;
  thread_local std::vector<uint8_t> framed;
  if (body_kind_ == UpstreamRequest::kStream) {
    char size[24];
    int k = std::snprintf(size, sizeof size, "%zx\r\n", len);
    framed.clear();
    framed.insert(framed.end(), size, size + k);
    framed.insert(framed.end(), data, data + len);
    framed.push_back('\r');
    framed.push_back('\n');
    p = framed.data();
    n = framed.size();
  }
  if (backend_ == nullptr || !backend_->ready() || !head_sent_) {
    pending_.insert(pending_.end(), p, p + n);
    waiting_body_ += len;
    return;
  }
  untaken_ += len;
  Write(p, n);
  ReportTaken();
  Poll();
}

void H1Exchange::EndBody(std::string_view trailers) {
  if (body_ended_) return;
  body_ended_ = true;
  if (done_ || body_kind_ != UpstreamRequest::kStream) {
    // A body of known length has no room for trailers: they are dropped.
    ReportTaken();
    return;
  }
  // The last chunk with the client's trailer section (RFC 9112 §7.1.2).
  thread_local std::string last;
  last.assign("0\r\n").append(trailers).append("\r\n");
  const auto* p = reinterpret_cast<const uint8_t*>(last.data());
  if (backend_ == nullptr || !backend_->ready() || !head_sent_) {
    pending_.insert(pending_.end(), p, p + last.size());
    return;
  }
  Write(p, last.size());
  ReportTaken();
  Poll();
}

void H1Exchange::Resume() { Poll(); }

void H1Exchange::Poll() {
  if (backend_ == nullptr || !backend_->ready()) return;
  bool out = backend_->endpoint().HasQueued();
  bool in = !done_ && owner_->Room();
  backend_->SetEvents((in ? UV_READABLE : 0) | (out ? UV_WRITABLE : 0));
}

void H1Exchange::OnBackendEvent(BackendConn* b, int status, int events) {
  Endpoint& be = b->endpoint();
  if (status == UV_ETIMEDOUT || status < 0 || ((events & UV_WRITABLE) != 0 && be.Flush() == Io::kFailed)) {
    bool timeout = status == UV_ETIMEDOUT;
    int err = timeout ? ETIMEDOUT : status < 0 ? SocketError(be.fd()) : be.sys_errno;
    delete backend_;
    backend_ = nullptr;
    if (started_)
      Broken();
    else
      Lost(timeout ? "timeout" : "connect", 0, err);
    return;
  }
  if ((events & UV_WRITABLE) != 0) ReportTaken();
  if ((events & UV_READABLE) != 0) {
    for (int i = 0; i < kReadsPerEvent && backend_ == b && !done_ && owner_->Room(); i++) {
      PlainOut plain = PlainOut::Growing(&SharedPlain());
      Io r = be.Read(plain);
      if (plain.len > 0) {
        b->Arm(target_->http().timeout_ms);
        OnData(plain.base, plain.len);
        if (backend_ != b) return;  // ended (pooled or closed) or failed
      }
      if (r == Io::kWouldBlock || (r == Io::kOk && be.drained())) break;
      if (r == Io::kOk) continue;
      // The backend ended or failed.
      int err = be.sys_errno != 0 ? be.sys_errno : ECONNRESET;
      bool close_delimited = r == Io::kEnd && head_done_ && response_body_.kind() == http::Body::kUntilClose;
      delete backend_;
      backend_ = nullptr;
      if (close_delimited) {
        reusable_ = false;
        Finish();
      } else if (started_) {
        Broken();
      } else {
        Lost("connect", 0, err);
      }
      return;
    }
  }
  Poll();
}

void H1Exchange::Sink(void* ctx, const uint8_t* data, size_t len) {
  static_cast<H1Exchange*>(ctx)->owner_->OnResponseData(data, len);
}

void H1Exchange::OnData(const uint8_t* p, size_t n) {
  started_ = true;
  if (!head_done_) {
    resp_.insert(resp_.end(), p, p + n);
    OnHead();
    return;
  }
  size_t used = 0;
  bool chunked = response_body_.kind() == http::Body::kChunked;
  if (!response_body_.Decode(p, n, &used, Sink, this, chunked ? &trailers_ : nullptr)) {
    Broken();
    return;
  }
  // Bytes past the response: this connection is not trusted again.
  if (used < n) reusable_ = false;
  if (response_body_.done()) Finish();
}

void H1Exchange::OnHead() {
  http::Head& head = SharedHead();
  for (;;) {
    http::Parse r = http::ParseHead(View(resp_), false, &head);
    if (r == http::Parse::kIncomplete && resp_.size() <= kMaxResponseHead) return;
    if (r != http::Parse::kOk || head.status == 101 || head.status < 100) {
      // Not a response to relay: 502, as Node's client would fail on it.
      delete backend_;
      backend_ = nullptr;
      started_ = false;
      retried_ = true;
      Lost("connect", 0, 0);
      return;
    }
    http::ConnectionOptions connection = http::ConnectionTokens(head);
    if (head.status < 200) {
      // 1xx (100 Continue, 103 Early Hints): relayed; the final one follows.
      owner_->OnResponseHead(head, connection, false);
      resp_.erase(resp_.begin(), resp_.begin() + static_cast<ptrdiff_t>(head.length));
      continue;
    }
    reusable_ = http::FrameResponse(head, head_request_, connection, &response_body_);
    head_done_ = true;
    owner_->OnResponseHead(head, connection, !response_body_.done());
    size_t rest_at = head.length;
    std::vector<uint8_t> rest;
    rest.swap(resp_);
    if (rest.size() > rest_at)
      OnData(rest.data() + rest_at, rest.size() - rest_at);
    else if (response_body_.done())
      Finish();
    return;
  }
}

void H1Exchange::Finish() {
  if (done_) return;
  done_ = true;
  BackendConn* b = backend_;
  backend_ = nullptr;
  if (b != nullptr) {
    b->Arm(0);
    bool sent = body_ended_ && pending_.empty() && head_sent_ && !b->endpoint().HasQueued();
    if (reusable_ && sent)
      listener_->pool().Put(b);
    else
      delete b;
  }
  if (untaken_ > 0) {
    size_t n = untaken_;
    untaken_ = 0;
    owner_->OnBodyTaken(n);
  }
  owner_->OnResponseEnd(trailers_);
}

void H1Exchange::Lost(const char* kind, uint32_t code, int sys_errno) {
  // A pooled connection the backend closed as we reused it: once more on a
  // fresh one, for a request that can be sent again (no body).
  if (!started_ && replayable_ && !retried_ && !head_.empty()) {
    retried_ = true;
    Connect();
    return;
  }
  listener_->BackendFailed(set_, host_, kind, code, sys_errno);
  Fail(std::strcmp(kind, "timeout") == 0 ? 504 : 502);
}

void H1Exchange::Fail(int status) {
  if (done_) return;
  done_ = true;
  delete backend_;
  backend_ = nullptr;
  size_t n = untaken_ + waiting_body_;
  untaken_ = waiting_body_ = 0;
  pending_.clear();
  if (n > 0) owner_->OnBodyTaken(n);
  owner_->OnExchangeFailed(status);
}

void H1Exchange::Broken() {
  if (done_) return;
  done_ = true;
  delete backend_;
  backend_ = nullptr;
  size_t n = untaken_ + waiting_body_;
  untaken_ = waiting_body_ = 0;
  pending_.clear();
  if (n > 0) owner_->OnBodyTaken(n);
  owner_->OnExchangeBroken(kH2InternalError);
}

}  // namespace rustls_node
