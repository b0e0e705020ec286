#include "plane/h2_upstream.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "plane/backend_pool.h"
#include "plane/h2_exchange.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

// Plaintext gathered for one write; nghttp2 is asked for more only once the
// endpoint sent it all.
constexpr size_t kOutBatch = 128 * 1024;
// A request header block may carry a client's whole 64 KiB list plus the
// forwarding fields (two URL-encoded certificates): nghttp2's 64 KiB
// default would refuse some.
constexpr size_t kMaxSendHeaderBlock = 256 * 1024;
// What the backend is assumed to allow before its SETTINGS arrive (RFC
// 9113 §6.5.2 recommends no less than 100).
constexpr uint32_t kAssumedStreams = 100;

std::vector<uint8_t>& SharedOut() {
  thread_local std::vector<uint8_t> out = [] {
    std::vector<uint8_t> v;
    v.reserve(kOutBatch + 32 * 1024);
    return v;
  }();
  return out;
}

nghttp2_option* Options() {
  thread_local nghttp2_option* opt = nullptr;
  if (opt != nullptr) return opt;
  if (nghttp2_option_new(&opt) != 0) return nullptr;
  // Windows reopen when the client took the bytes (H2Upstream::Consume).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, kAssumedStreams);
  nghttp2_option_set_max_send_header_block_length(opt, kMaxSendHeaderBlock);
  return opt;
}

H2Exchange* ExchangeOf(nghttp2_session* session, int32_t stream_id) {
  return static_cast<H2Exchange*>(nghttp2_session_get_stream_user_data(session, stream_id));
}

}  // namespace

H2Upstream* H2Upstream::Connect(Listener* listener, BackendPool* pool, BackendTarget* target,
                                BackendConn::StartError* err) {
  auto* u = new H2Upstream(listener, pool, target);
  if (!u->Init()) {
    *err = {"connect", 0, ENOMEM};
    delete u;
    return nullptr;
  }
  u->conn_ = BackendConn::Connect(listener, target, u, {}, err);
  if (u->conn_ == nullptr) {
    delete u;
    return nullptr;
  }
  return u;
}

H2Upstream::H2Upstream(Listener* listener, BackendPool* pool, BackendTarget* target)
    : listener_(listener),
      pool_(pool),
      target_(target),
      turn_(listener->loop(), this, [](void* self) { static_cast<H2Upstream*>(self)->Pump(); }) {}

bool H2Upstream::Init() {
  thread_local nghttp2_session_callbacks* cbs = nullptr;
  if (cbs == nullptr) {
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_send_callback2(cbs, OnSend);
    nghttp2_session_callbacks_set_send_data_callback(cbs, OnSendData);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, OnFrameSend);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, OnFrameNotSend);
  }
  nghttp2_option* opt = Options();
  if (opt == nullptr || nghttp2_session_client_new3(&session_, cbs, this, opt, nullptr) != 0) return false;
  // The client connection preface (RFC 9113 §3.4) goes first with these,
  // as soon as the connection is up: prior knowledge over TCP (§3.3).
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxHeaderList)},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]) != 0)
    return false;
  return nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnWindow) == 0;
}

H2Upstream::~H2Upstream() {
  if (pool_ != nullptr) pool_->H2Closed(this);
  // Exchanges still here (the pool going away) hear that it did.
  while (exchanges_ != nullptr) {
    H2Exchange* x = exchanges_;
    Unlink(x);
    x->OnConnectionLost("connect", 0, ECONNRESET, false);
  }
  if (conn_ != nullptr && ready_) {
    // Our close_notify (TLS) and FIN, as far as the socket takes them now.
    conn_->endpoint().EndWrite();
    conn_->endpoint().Flush();
  }
  delete conn_;
  nghttp2_session_del(session_);
}

bool H2Upstream::HasRoom() const {
  if (draining_ || failed_) return false;
  // Until this connection's SETTINGS come, what the backend said last on
  // another (so a burst opens enough connections at once), or 100.
  uint32_t limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  if (!settings_seen_) {
    uint32_t learned = pool_ != nullptr ? pool_->H2Limit(target_) : 0;
    limit = learned != 0 ? learned : kAssumedStreams;
  }
  return streams_ < std::min(limit, kMaxStreams);
}

void H2Upstream::Drain() {
  draining_ = true;
  if (streams_ == 0) Schedule();
}

// ---- exchanges --------------------------------------------------------------

bool H2Upstream::Open(H2Exchange* x, const nghttp2_nv* nva, size_t nvlen, bool body) {
  nghttp2_data_provider2 provider;
  provider.source.ptr = nullptr;  // the stream's exchange is found by its user data
  provider.read_callback = H2Exchange::ReadBody;
  int32_t id = nghttp2_submit_request2(session_, nullptr, nva, nvlen, body ? &provider : nullptr, x);
  if (id < 0) {
    // Stream ids ran out (RFC 9113 §5.1.1): a new connection takes over.
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) draining_ = true;
    return false;
  }
  x->reused_ = uses_ > 0;
  x->stream_id_ = id;
  x->upstream_ = this;
  Link(x);
  uses_++;
  if (idle_armed_) {
    idle_armed_ = false;
    conn_->Arm(0);
  }
  Schedule();
  return true;
}

void H2Upstream::Close(H2Exchange* x, uint32_t code) {
  int32_t id = x->stream_id_;
  size_t unconsumed = x->unconsumed_;
  Unlink(x);
  if (id > 0) {
    // Not closed yet (it would have left this connection): reset with the
    // code the client gave (or CANCEL). A request still queued behind the
    // backend's stream limit is dropped before it leaves (nghttp2 cancels
    // queued HEADERS on RST_STREAM).
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
    // Bytes its client never took still count in the connection's window.
    if (unconsumed > 0) nghttp2_session_consume(session_, id, unconsumed);
  }
  Schedule();
}

void H2Upstream::Consume(int32_t id, size_t n) {
  if (n == 0) return;
  // WINDOW_UPDATE once half a window was consumed (nghttp2's rule).
  nghttp2_session_consume(session_, id, n);
  Schedule();
}

void H2Upstream::ResumeData(int32_t id) {
  nghttp2_session_resume_data(session_, id);
  Schedule();
}

void H2Upstream::Link(H2Exchange* x) {
  x->prev_ = nullptr;
  x->next_ = exchanges_;
  if (exchanges_ != nullptr) exchanges_->prev_ = x;
  exchanges_ = x;
  streams_++;
}

void H2Upstream::Unlink(H2Exchange* x) {
  if (x->upstream_ != this) return;
  if (x->prev_ != nullptr)
    x->prev_->next_ = x->next_;
  else
    exchanges_ = x->next_;
  if (x->next_ != nullptr) x->next_->prev_ = x->prev_;
  x->prev_ = x->next_ = nullptr;
  int32_t id = x->stream_id_;
  if (id > 0) {
    nghttp2_session_set_stream_user_data(session_, id, nullptr);
    if (x->frame_ > 0) {
      // nghttp2 packed a DATA frame of these bytes and sends it whole
      // (OnSendData), even once the stream is reset after it.
      std::vector<uint8_t>& bytes = orphans_[id];
      const uint8_t* p = x->body_.data() + x->body_off_;
      bytes.assign(p, p + x->frame_);
      x->body_off_ += x->frame_;
      x->frame_ = 0;
    }
  }
  x->upstream_ = nullptr;
  x->stream_id_ = -1;
  x->unconsumed_ = 0;
  streams_--;
  if (streams_ == 0) Idle();
}

// No stream left: kept for the next ones (the pool idle timeout), or closed now.
void H2Upstream::Idle() {
  if (draining_ || pool_ == nullptr || listener_->closed() || pool_->Retired(target_)) {
    draining_ = true;
    Schedule();
    return;
  }
  if (ready_ && !idle_armed_) {
    idle_armed_ = true;
    conn_->Arm(listener_->timeouts().pool_idle_ms);
  }
}

void H2Upstream::ReportTaken() {
  // Collected first: an owner's answer may reach back here.
  thread_local std::vector<H2Exchange*> list;
  list.clear();
  for (H2Exchange* x = exchanges_; x != nullptr; x = x->next_) {
    if (x->sent_ > 0) list.push_back(x);
  }
  for (H2Exchange* x : list) {
    if (x->upstream_ == this) x->ReportTaken();
  }
}

void H2Upstream::Lost(const char* kind, uint32_t code, int sys_errno) {
  // A connection the backend closed under a request may be retried; one
  // that broke the protocol is not trusted with it again.
  bool may_retry = ready_ && !failed_;
  failed_ = true;
  draining_ = true;
  // Leaves the pool first: a retry must not pick this connection.
  if (pool_ != nullptr) pool_->H2Closed(this);
  pool_ = nullptr;
  std::vector<H2Exchange*> list;
  for (H2Exchange* x = exchanges_; x != nullptr; x = x->next_) list.push_back(x);
  for (H2Exchange* x : list) Unlink(x);
  for (H2Exchange* x : list) x->OnConnectionLost(kind, code, sys_errno, may_retry);
  delete this;
}

// ---- I/O ----------------------------------------------------------------------

void H2Upstream::Schedule() { turn_.Schedule(); }

void H2Upstream::OnBackendReady(BackendConn* b) {
  ready_ = true;
  if (conn_->endpoint().tls()) {
    // RFC 9113 §3.2: h2 over TLS only when the backend selected it by ALPN.
    const uint8_t* alpn = nullptr;
    size_t alpn_len = 0;
    rustls_connection_get_alpn_protocol(static_cast<TlsEndpoint&>(conn_->endpoint()).conn(), &alpn, &alpn_len);
    if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
      Lost("tls", RUSTLS_RESULT_NO_APPLICATION_PROTOCOL, 0);
      return;
    }
  }
  // The backend's SETTINGS may have come with its last handshake flight.
  std::vector<uint8_t> greeting;
  greeting.swap(conn_->greeting());
  if (!greeting.empty() && !Feed(greeting.data(), greeting.size())) return;
  if (streams_ == 0) Idle();
  Pump();
}

void H2Upstream::OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) {
  // The connection deletes itself after this.
  conn_ = nullptr;
  Lost(kind, code, sys_errno);
}

void H2Upstream::OnBackendEvent(BackendConn* b, int status, int events) {
  Endpoint& ep = conn_->endpoint();
  if (status == UV_ETIMEDOUT) {
    // The pool idle timeout without a stream: GOAWAY and closed.
    idle_armed_ = false;
    if (streams_ == 0) draining_ = true;
    Pump();
    return;
  }
  if (status < 0) {
    Lost("connect", 0, SocketError(ep.fd()));
    return;
  }
  if ((events & UV_WRITABLE) != 0 && ep.Flush() == Io::kFailed) {
    Lost("connect", ep.tls_error, ep.sys_errno);
    return;
  }
  if ((events & UV_READABLE) != 0 && !ReadBackend()) return;
  Pump();
}

bool H2Upstream::ReadBackend() {
  Endpoint& ep = conn_->endpoint();
  for (int i = 0; i < kReadsPerEvent; i++) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    Io r = ep.Read(plain);
    if (plain.len > 0 && !Feed(plain.base, plain.len)) return false;
    if (r == Io::kWouldBlock || (r == Io::kOk && ep.drained())) break;
    if (r == Io::kOk) continue;
    if (r == Io::kFailed && ep.tls_error != 0) ep.Flush();  // our alert first
    // The backend left (or its TLS failed): what was under way is lost.
    Lost("connect", ep.tls_error, ep.sys_errno != 0 ? ep.sys_errno : ECONNRESET);
    return false;
  }
  return true;
}

bool H2Upstream::Feed(const uint8_t* data, size_t len) {
  nghttp2_ssize rv = nghttp2_session_mem_recv2(session_, data, len);
  if (rv >= 0) return true;
  // Fatal for the session (a flood, out of memory): this connection only.
  failed_ = true;
  Lost("connect", 0, EPROTO);
  return false;
}

// Sends what nghttp2 has, in batches of up to kOutBatch bytes per write,
// while the socket takes them; closes the connection once its session is
// over (our GOAWAY out, or the backend's and no stream left).
bool H2Upstream::Pump() {
  if (conn_ == nullptr || !ready_) return true;  // nghttp2 holds everything until then
  if (draining_ && streams_ == 0 && !terminated_) {
    terminated_ = true;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  }
  Endpoint& ep = conn_->endpoint();
  std::vector<uint8_t>& out = SharedOut();
  if (!ep.HasQueued()) {
    out.clear();
    for (;;) {
      int rv = nghttp2_session_send(session_);
      if (rv != 0) {
        out.clear();
        failed_ = true;
        Lost("connect", 0, EPROTO);
        return false;
      }
      if (out.size() < kOutBatch) break;
      if (ep.Write(out.data(), out.size()) == Io::kFailed) {
        out.clear();
        Lost("connect", ep.tls_error, ep.sys_errno);
        return false;
      }
      out.clear();
      if (ep.HasQueued()) break;
    }
    if (!out.empty()) {
      Io w = ep.Write(out.data(), out.size());
      out.clear();
      if (w == Io::kFailed) {
        Lost("connect", ep.tls_error, ep.sys_errno);
        return false;
      }
    }
    // Request body bytes that reached the socket: their clients may send more.
    if (!ep.HasQueued()) ReportTaken();
  }
  if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0 && !ep.HasQueued()) {
    // Over: our GOAWAY went out (idle, drained, a connection error), or the
    // backend's came and no stream is left.
    Lost("connect", 0, ECONNRESET);
    return false;
  }
  conn_->SetEvents(UV_READABLE | (ep.HasQueued() ? UV_WRITABLE : 0));
  return true;
}

// ---- nghttp2 callbacks -----------------------------------------------------

nghttp2_ssize H2Upstream::OnSend(nghttp2_session* session, const uint8_t* data, size_t length, int flags,
                                 void* user_data) {
  std::vector<uint8_t>& out = SharedOut();
  if (out.size() >= kOutBatch) return NGHTTP2_ERR_WOULDBLOCK;
  out.insert(out.end(), data, data + length);
  return static_cast<nghttp2_ssize>(length);
}

int H2Upstream::OnSendData(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                           nghttp2_data_source* source, void* user_data) {
  auto* self = static_cast<H2Upstream*>(user_data);
  std::vector<uint8_t>& out = SharedOut();
  if (out.size() >= kOutBatch) return NGHTTP2_ERR_WOULDBLOCK;
  out.insert(out.end(), framehd, framehd + 9);
  int32_t id = frame->hd.stream_id;
  H2Exchange* x = ExchangeOf(session, id);
  if (x != nullptr) {
    x->TakeBody(length, &out);
    return 0;
  }
  // The exchange left after nghttp2 packed this frame: its bytes were kept.
  auto it = self->orphans_.find(id);
  size_t have = 0;
  if (it != self->orphans_.end()) {
    have = std::min(length, it->second.size());
    out.insert(out.end(), it->second.begin(), it->second.begin() + static_cast<ptrdiff_t>(have));
    self->orphans_.erase(it);
  }
  out.resize(out.size() + (length - have), 0);
  return 0;
}

int H2Upstream::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  H2Exchange* x = ExchangeOf(session, frame->hd.stream_id);
  if (x != nullptr) x->OnBeginHeaders();
  return 0;
}

int H2Upstream::OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                         const uint8_t* value, size_t valuelen, uint8_t flags, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  H2Exchange* x = ExchangeOf(session, frame->hd.stream_id);
  if (x == nullptr) return 0;
  // Over the limit: the stream is reset (INTERNAL_ERROR), the client gets 502.
  return x->OnHeader(name, namelen, value, valuelen) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int H2Upstream::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Upstream*>(user_data);
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      H2Exchange* x = ExchangeOf(session, frame->hd.stream_id);
      if (x == nullptr) return 0;
      bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (frame->hd.type == NGHTTP2_HEADERS)
        x->OnHeaders(end);
      else if (end)
        x->OnDataEnd();
      return 0;
    }
    case NGHTTP2_RST_STREAM: {
      H2Exchange* x = ExchangeOf(session, frame->hd.stream_id);
      if (x != nullptr) x->OnPeerReset(frame->rst_stream.error_code);
      return 0;
    }
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
        self->settings_seen_ = true;
        uint32_t streams = nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (self->pool_ != nullptr) self->pool_->SetH2Limit(self->target_, streams);
      }
      return 0;
    case NGHTTP2_GOAWAY:
      // RFC 9113 §6.8: no new streams here; nghttp2 closes those above
      // last_stream_id (REFUSED_STREAM: never processed, sent again elsewhere).
      self->draining_ = true;
      return 0;
    default:
      return 0;
  }
}

int H2Upstream::OnDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                            void* user_data) {
  H2Exchange* x = ExchangeOf(session, stream_id);
  if (x == nullptr) {
    // A stream no exchange reads any more: its bytes still count in the window.
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  x->OnData(data, len);
  return 0;
}

int H2Upstream::OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code, void* user_data) {
  auto* self = static_cast<H2Upstream*>(user_data);
  self->orphans_.erase(stream_id);
  H2Exchange* x = ExchangeOf(session, stream_id);
  if (x == nullptr) return 0;
  size_t unconsumed = x->unconsumed_;
  self->Unlink(x);
  if (unconsumed > 0) nghttp2_session_consume_connection(session, unconsumed);
  x->OnStreamClosed(error_code);
  return 0;
}

int H2Upstream::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Upstream*>(user_data);
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
    // nghttp2 found a connection error in what the backend sent (RFC 9113
    // §5.4.1): this connection ends once the GOAWAY is out.
    self->failed_ = true;
    self->draining_ = true;
  }
  return 0;
}

int H2Upstream::OnFrameNotSend(nghttp2_session* session, const nghttp2_frame* frame, int lib_error_code,
                               void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  // A request that never left: nghttp2 closes its stream as REFUSED_STREAM
  // next. After the backend's GOAWAY that is true and it is sent again
  // elsewhere; a header block nghttp2 cannot send fails (502).
  H2Exchange* x = ExchangeOf(session, frame->hd.stream_id);
  if (x != nullptr && lib_error_code != NGHTTP2_ERR_START_STREAM_NOT_ALLOWED) x->unsendable_ = true;
  return 0;
}

}  // namespace rustls_node
