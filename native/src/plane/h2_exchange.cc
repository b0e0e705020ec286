#include "plane/h2_exchange.h"

#include <cerrno>
#include <cstring>

#include "plane/backend_pool.h"
#include "plane/h2_upstream.h"
#include "plane/listener.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

void Lower(std::string* s) {
  for (char& c : *s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
}

std::string_view Trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// HTTP/1.1 field lines ("Name: value\r\n") as name/value pairs, names
// lower-cased (RFC 9113 §8.2.1).
template <typename Each>
void ForEachLine(std::string_view lines, Each each) {
  while (!lines.empty()) {
    size_t end = lines.find("\r\n");
    std::string_view line = lines.substr(0, end);
    lines = end == std::string_view::npos ? std::string_view() : lines.substr(end + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name(line.substr(0, colon));
    Lower(&name);
    each(std::move(name), Trim(line.substr(colon + 1)));
  }
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  return nv;
}

}  // namespace

H2Exchange::H2Exchange(Listener* listener, RouteSet* set, int host, BackendTarget* target,
                       const UpstreamRequest& request, ExchangeOwner* owner)
    : listener_(listener), set_(set), host_(host), target_(target), owner_(owner) {
  method_.assign(request.method);
  path_.assign(request.path);
  ForEachLine(request.fields, [&](std::string name, std::string_view value) {
    // Host becomes :authority (RFC 9113 §8.3.1); the front put it first.
    if (name == "host") {
      if (authority_.empty()) authority_.assign(value);
      return;
    }
    fields_.emplace_back(std::move(name), std::string(value));
  });
  te_trailers_ = request.te_trailers;
  has_body_ = request.body != UpstreamRequest::kNone;
  body_ended_ = !has_body_;
  replayable_ = request.replayable;
  Attach();
}

H2Exchange::~H2Exchange() {
  listener_->deadlines().Remove(this);
  // A response that ended while the request did not: the rest of it is not
  // wanted (RFC 9113 §8.1); anything else was cut short by the client.
  Detach(done_ ? kH2NoError : kH2Cancel);
}

void H2Exchange::Attach() {
  deferred_ = false;
  // Each try opens the stream on a connection with room; one that cannot
  // take it (stream ids ran out) is draining from then on.
  for (int tries = 0; tries < 2; tries++) {
    BackendConn::StartError err;
    H2Upstream* u = listener_->pool().H2For(target_, &err);
    if (u == nullptr) {
      Fail(err.kind, err.code, err.sys_errno);
      return;
    }
    thread_local std::vector<nghttp2_nv> nva;
    nva.clear();
    nva.push_back(Nv(":method", method_));
    nva.push_back(Nv(":scheme", target_->tls() ? "https" : "http"));
    if (!authority_.empty()) nva.push_back(Nv(":authority", authority_));
    nva.push_back(Nv(":path", path_));
    for (const auto& [name, value] : fields_) nva.push_back(Nv(name, value));
    if (te_trailers_) nva.push_back(Nv("te", "trailers"));
    if (u->Open(this, nva.data(), nva.size(), has_body_)) {
      Arm();
      return;
    }
  }
  Fail("connect", 0, EPROTO);
}

void H2Exchange::Detach(uint32_t code) {
  if (upstream_ != nullptr) upstream_->Close(this, code);
}

void H2Exchange::Arm() {
  if (done_ || paused_) return;
  listener_->deadlines().Add(this, target_->http().timeout_ms);
}

// ---- the request ------------------------------------------------------------

void H2Exchange::SendBody(const uint8_t* data, size_t len) {
  if (len == 0) return;
  if (done_ || upstream_ == nullptr) {
    // Ended, failed or cancelled: the rest of the body goes nowhere.
    owner_->OnBodyTaken(len);
    return;
  }
  if (body_off_ > 0 && body_off_ == body_.size() && frame_ == 0) {
    body_.clear();
    body_off_ = 0;
  }
  body_.insert(body_.end(), data, data + len);
  if (deferred_) {
    deferred_ = false;
    upstream_->ResumeData(stream_id_);
  } else {
    upstream_->Schedule();
  }
}

void H2Exchange::EndBody(std::string_view trailers) {
  if (body_ended_) return;
  body_ended_ = true;
  trailers_out_.assign(trailers);
  if (upstream_ == nullptr) return;
  if (deferred_) {
    deferred_ = false;
    upstream_->ResumeData(stream_id_);
  } else {
    upstream_->Schedule();
  }
}

nghttp2_ssize H2Exchange::ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                                   uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
  auto* x = static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(session, stream_id));
  // Its exchange left; the stream's reset is on its way.
  if (x == nullptr) return NGHTTP2_ERR_DEFERRED;
  size_t avail = x->body_.size() - x->body_off_;
  size_t n = avail < length ? avail : length;
  // OnSendData copies the bytes from body_ (TakeBody).
  if (n > 0) {
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    x->frame_ = n;
    // Committed to a frame: this request can no longer be sent again.
    x->body_started_ = true;
  }
  if (n == avail && x->body_ended_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!x->trailers_out_.empty()) {
      // The client's trailers, as trailing HEADERS with END_STREAM.
      thread_local std::vector<std::pair<std::string, std::string>> pairs;
      thread_local std::vector<nghttp2_nv> nva;
      pairs.clear();
      nva.clear();
      ForEachLine(x->trailers_out_, [&](std::string name, std::string_view value) {
        pairs.emplace_back(std::move(name), std::string(value));
      });
      for (const auto& [name, value] : pairs) nva.push_back(Nv(name, value));
      if (nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size()) == 0)
        *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      x->trailers_out_.clear();
    }
    return static_cast<nghttp2_ssize>(n);
  }
  if (n == 0) {
    x->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<nghttp2_ssize>(n);
}

void H2Exchange::TakeBody(size_t len, std::vector<uint8_t>* out) {
  if (len > body_.size() - body_off_) len = body_.size() - body_off_;
  out->insert(out->end(), body_.begin() + static_cast<ptrdiff_t>(body_off_),
              body_.begin() + static_cast<ptrdiff_t>(body_off_ + len));
  body_off_ += len;
  frame_ = 0;
  sent_ += len;
  if (len > 0) body_started_ = true;
  if (body_off_ == body_.size()) {
    body_.clear();
    body_off_ = 0;
    // At most a client's stream window waits here; more was a burst.
    if (body_.capacity() > static_cast<size_t>(H2Upstream::kStreamWindow) * 2) body_.shrink_to_fit();
  } else if (body_off_ >= static_cast<size_t>(H2Upstream::kStreamWindow) / 2) {
    body_.erase(body_.begin(), body_.begin() + static_cast<ptrdiff_t>(body_off_));
    body_off_ = 0;
  }
}

void H2Exchange::ReportTaken() {
  if (sent_ == 0) return;
  size_t n = sent_;
  sent_ = 0;
  // Progress: the backend took request bytes.
  Arm();
  owner_->OnBodyTaken(n);
}

// ---- the response -------------------------------------------------------------

void H2Exchange::OnBeginHeaders() {
  in_trailers_ = head_done_;
  header_bytes_ = 0;
  resp_fields_.clear();
}

bool H2Exchange::OnHeader(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen) {
  // RFC 9113 §6.5.2 counting, per header block, as the front counts.
  header_bytes_ += namelen + valuelen + 32;
  if (header_bytes_ > H2Upstream::kMaxHeaderList) {
    header_too_large_ = true;
    return false;
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  // nghttp2 validated the block (RFC 9113 §8.3.2): one :status, first.
  if (!n.empty() && n[0] == ':') {
    if (n == ":status" && !in_trailers_ && v.size() == 3)
      status_ = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
    return true;
  }
  resp_fields_.emplace_back(std::string(n), std::string(v));
  return true;
}

void H2Exchange::OnHeaders(bool end_stream) {
  if (done_) return;
  Arm();
  if (in_trailers_) {
    // gRPC's status lives here: the trailers go on as they are.
    std::string lines;
    for (const auto& [name, value] : resp_fields_) lines.append(name).append(": ").append(value).append("\r\n");
    resp_fields_.clear();
    Finish(lines);
    return;
  }
  http::Head head;
  head.status = status_;
  head.fields.reserve(resp_fields_.size());
  for (const auto& [name, value] : resp_fields_) head.fields.push_back({name, value, {}});
  if (status_ < 200) {
    // 1xx (103 Early Hints): relayed; the final head follows.
    owner_->OnResponseHead(head, {}, false);
    resp_fields_.clear();
    return;
  }
  head_done_ = true;
  // No retry once a response came: the request head is not needed again.
  method_ = std::string();
  path_ = std::string();
  fields_ = {};
  owner_->OnResponseHead(head, {}, !end_stream);
  resp_fields_ = {};
  if (end_stream) Finish({});
}

void H2Exchange::OnData(const uint8_t* data, size_t len) {
  if (done_) {
    upstream_->Consume(stream_id_, len);
    return;
  }
  owner_->OnResponseData(data, len);
  // The window reopens once the client took the bytes (Resume).
  if (!paused_ && owner_->Room()) {
    upstream_->Consume(stream_id_, len);
    Arm();
    return;
  }
  unconsumed_ += len;
  if (!paused_) {
    paused_ = true;
    // Waiting for our client, not the backend (its sendTimeout applies).
    listener_->deadlines().Remove(this);
  }
}

void H2Exchange::Resume() {
  if (!paused_) return;
  paused_ = false;
  size_t n = unconsumed_;
  unconsumed_ = 0;
  if (upstream_ != nullptr) upstream_->Consume(stream_id_, n);
  Arm();
}

void H2Exchange::OnDataEnd() { Finish({}); }

// ---- the end ------------------------------------------------------------------

void H2Exchange::Finish(std::string_view trailers) {
  if (done_) return;
  done_ = true;
  listener_->deadlines().Remove(this);
  owner_->OnResponseEnd(trailers);
}

void H2Exchange::OnStreamClosed(uint32_t code) {
  // Off the connection already (H2Upstream::Unlink).
  if (done_) return;
  bool nothing_yet = !head_done_ && status_ == 0;
  if (code == kH2RefusedStream && nothing_yet && !body_started_ && !retried_ && !unsendable_) {
    // Never processed (RFC 9113 §8.7): safe to send again, once.
    retried_ = true;
    Attach();
    return;
  }
  if (peer_reset_ > 0) {
    // The backend reset the stream: the client's is reset with its code.
    Broken(static_cast<uint32_t>(peer_reset_));
    return;
  }
  if (!head_done_)
    Fail("connect", 0, header_too_large_ || unsendable_ ? E2BIG : EPROTO);
  else
    Broken(kH2InternalError);
}

void H2Exchange::OnConnectionLost(const char* kind, uint32_t code, int sys_errno, bool may_retry) {
  if (done_) return;
  bool nothing_yet = !head_done_ && status_ == 0;
  if (may_retry && nothing_yet && !body_started_ && !retried_ && replayable_ && reused_) {
    // A pooled connection the backend closed as this request went out.
    retried_ = true;
    Attach();
    return;
  }
  if (!head_done_)
    Fail(kind, code, sys_errno);
  else
    Broken(kH2InternalError);
}

void H2Exchange::OnDeadline() {
  if (done_) return;
  // `timeout` with nothing moving: the backend stream is cancelled.
  if (!head_done_)
    Fail("timeout", 0, ETIMEDOUT);
  else
    Broken(kH2InternalError);
}

void H2Exchange::Cancel(uint32_t code) {
  if (done_) return;
  done_ = true;
  listener_->deadlines().Remove(this);
  Detach(code == kH2NoError ? kH2Cancel : code);
}

void H2Exchange::ReleaseBody() {
  // What the client sent and the backend will never take: the client's
  // window reopens for it (its stream ends anyway).
  size_t n = sent_ + (body_.size() - body_off_);
  sent_ = 0;
  body_.clear();
  body_off_ = 0;
  if (n > 0) owner_->OnBodyTaken(n);
}

void H2Exchange::Fail(const char* kind, uint32_t code, int sys_errno) {
  if (done_) return;
  done_ = true;
  listener_->deadlines().Remove(this);
  Detach(kH2Cancel);
  listener_->BackendFailed(set_, host_, kind, code, sys_errno);
  ReleaseBody();
  owner_->OnExchangeFailed(std::strcmp(kind, "timeout") == 0 ? 504 : 502);
}

void H2Exchange::Broken(uint32_t code) {
  if (done_) return;
  done_ = true;
  listener_->deadlines().Remove(this);
  Detach(kH2Cancel);
  ReleaseBody();
  owner_->OnExchangeBroken(code);
}

}  // namespace rustls_node
