#include "plane/h2_front.h"

#include <algorithm>
#include <cstring>

#include "plane/forwarded_fields.h"
#include "plane/h2_stream.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

// Flow control of request bodies (RFC 9113 §6.9): what a client may send
// before the backend took it.
constexpr int32_t kStreamWindow = 64 * 1024;
constexpr int32_t kConnWindow = 1024 * 1024;
// Plaintext gathered for one TLS write; nghttp2 is asked for more only
// once the endpoint sent it all.
constexpr size_t kOutBatch = 128 * 1024;

// Abuse (issue 18 part 5). Each closes the offending connection with GOAWAY
// ENHANCE_YOUR_CALM and is counted under its reason (kAbuseReasons):
//   rapid_reset            RST_STREAM from the client over kResets (CVE-2023-44487)
//   continuation_flood     more than kMaxContinuations CONTINUATION frames for one header block
//   header_list_too_large  a header list over kMaxHeaderList bytes, HPACK bombs included
//   settings_flood         SETTINGS over kSettings
//   ping_flood             PING over kPings
//   empty_frames           empty DATA without END_STREAM, empty CONTINUATION, over kEmpty (CVE-2019-9518)
//   too_many_streams       a stream past SETTINGS_MAX_CONCURRENT_STREAMS once the client acknowledged it
//   slow_reader            response data waiting and none taken for sendTimeout (a window never opened;
//                          a socket never read is closed without the GOAWAY, which could not reach it)
//   flood                  nghttp2's own flood guard: too many frames for us to answer queued (CVE-2019-9512/9515)
//   glitches               nghttp2's suspicious-activity budget (refused streams, PRIORITY and unknown frames)
//   protocol_error         anything else RFC 9113 calls a connection error
constexpr double kResetsBurst = 1000, kResetsRate = 33;  // nghttp2's defaults, here attributed
constexpr double kSettingsBurst = 100, kSettingsRate = 10;
constexpr double kPingsBurst = 100, kPingsRate = 10;
constexpr double kEmptyBurst = 100, kEmptyRate = 10;
constexpr size_t kMaxContinuations = 8;

std::vector<uint8_t>& SharedOut() {
  thread_local std::vector<uint8_t> out = [] {
    std::vector<uint8_t> v;
    v.reserve(kOutBatch + 32 * 1024);
    return v;
  }();
  return out;
}

nghttp2_session_callbacks* Callbacks(nghttp2_send_callback2 send, nghttp2_send_data_callback send_data,
                                     nghttp2_on_begin_frame_callback begin_frame,
                                     nghttp2_on_begin_headers_callback begin_headers, nghttp2_on_header_callback header,
                                     nghttp2_on_frame_recv_callback frame_recv,
                                     nghttp2_on_data_chunk_recv_callback data_chunk,
                                     nghttp2_on_stream_close_callback stream_close,
                                     nghttp2_on_frame_send_callback frame_send) {
  // Copied into each session: made once per thread.
  thread_local nghttp2_session_callbacks* cbs = nullptr;
  if (cbs != nullptr) return cbs;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return nullptr;
  nghttp2_session_callbacks_set_send_callback2(cbs, send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, frame_send);
  return cbs;
}

nghttp2_option* Options() {
  thread_local nghttp2_option* opt = nullptr;
  if (opt != nullptr) return opt;
  if (nghttp2_option_new(&opt) != 0) return nullptr;
  // Windows reopen when the backend took the bytes (H2Stream::Consume).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // nghttp2's own guards stay as a backstop behind ours, which name the
  // reason: twice our limits.
  nghttp2_option_set_max_continuations(opt, kMaxContinuations * 2);
  nghttp2_option_set_stream_reset_rate_limit(opt, static_cast<uint64_t>(kResetsBurst * 2),
                                             static_cast<uint64_t>(kResetsRate * 2));
  return opt;
}

}  // namespace

bool RateLimit::Take(uint64_t now_ms, double burst, double rate) {
  if (tokens < 0) {
    tokens = burst;
    last_ms = now_ms;
  }
  tokens = std::min(burst, tokens + static_cast<double>(now_ms - last_ms) * rate / 1000.0);
  last_ms = now_ms;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

Napi::Value Nghttp2Version(const Napi::CallbackInfo& info) {
  nghttp2_info* v = nghttp2_version(0);
  return Napi::String::New(info.Env(), v != nullptr && v->version_str != nullptr ? v->version_str : "");
}

// ---- lifecycle --------------------------------------------------------------

void H2Front::Start(Listener* listener, Handshaken h, BackendTarget* target) {
  std::vector<uint8_t> early;
  early.swap(h.early);
  auto* f = new H2Front(listener, std::move(h), target);
  if (!f->Init()) {
    delete f;
    return;
  }
  if (!early.empty() && !f->Feed(early.data(), early.size())) return;
  f->Pump();
}

H2Front::H2Front(Listener* listener, Handshaken h, BackendTarget* target)
    : Owned(listener),
      target_(target),
      turn_(listener->loop(), this, [](void* self) { static_cast<H2Front*>(self)->Pump(); }) {
  client_ = std::move(h.ep);
  set_ = h.set;
  const TlsStream& tls = client_->stream();
  host_ = tls.host();
  certificate_ = tls.certificate();
  sni_ = tls.sni();
  client_->Rebind(this);
  const BackendTarget::Http& s = target_->http();
  // Every deadline of this connection is checked on one tick.
  tick_ms_ = std::clamp<uint64_t>(std::min(s.h2_idle_ms, s.h2_send_timeout_ms) / 4, 100, 5000);
}

bool H2Front::Init() {
  forwarded_ = ForwardedFieldLines(target_->http(), client_->fd(), client_->conn(), sni_, certificate_);
  nghttp2_session_callbacks* cbs = Callbacks(OnSend, OnSendData, OnBeginFrame, OnBeginHeaders, OnHeader, OnFrameRecv,
                                             OnDataChunk, OnStreamClose, OnFrameSend);
  nghttp2_option* opt = Options();
  if (cbs == nullptr || opt == nullptr || nghttp2_session_server_new3(&session_, cbs, this, opt, nullptr) != 0)
    return false;
  const BackendTarget::Http& s = target_->http();
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s.h2_max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxHeaderList)},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]) != 0)
    return false;
  if (nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnWindow) != 0) return false;
  uint64_t now = uv_now(listener_->loop());
  last_active_ms_ = stall_since_ms_ = now;
  listener_->deadlines().Add(this, tick_ms_);
  return true;
}

H2Front::~H2Front() {
  listener_->deadlines().Remove(this);
  while (streams_ != nullptr) {
    H2Stream* s = streams_;
    streams_ = s->next;
    delete s;
  }
  nghttp2_session_del(session_);
  if (client_->fd() >= 0) listener_->stats()->Closed(client_->bytes_in, client_->bytes_out);
  listener_->Release(set_);
}

void H2Front::StreamClosed(H2Stream* s) {
  if (s->prev != nullptr)
    s->prev->next = s->next;
  else
    streams_ = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  live_streams_--;
  delete s;
}

// ---- events -----------------------------------------------------------------

void H2Front::OnClientPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<H2Front*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    delete self;
    return;
  }
  if ((events & UV_WRITABLE) != 0 && self->client_->Flush() == Io::kFailed) {
    delete self;
    return;
  }
  if ((events & UV_READABLE) != 0 && !self->ReadClient()) return;
  self->Pump();
}

void H2Front::Schedule() { turn_.Schedule(); }

bool H2Front::ReadClient() {
  for (int i = 0; i < kReadsPerEvent; i++) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    Io r = client_->Read(plain);
    if (plain.len > 0) {
      last_active_ms_ = uv_now(listener_->loop());
      if (closing_ || abuse_ != nullptr) {
        // After a fatal error or our GOAWAY: read to see the end, drop the rest.
      } else if (!Feed(plain.base, plain.len)) {
        return false;
      }
    }
    if (r == Io::kWouldBlock) break;
    if (r == Io::kFailed) {
      // A bad record or a truncated stream ends this connection only.
      if (client_->tls_error != 0 && client_->tls_error != RUSTLS_RESULT_UNEXPECTED_EOF) client_->Flush();
      delete this;
      return false;
    }
    if (r == Io::kEnd) {
      // close_notify: nothing more comes; ours follows (RFC 8446 §6.1).
      if (closing_) {
        delete this;
        return false;
      }
      return Close();
    }
    if (client_->drained()) break;
  }
  return true;
}

bool H2Front::Feed(const uint8_t* data, size_t len) {
  nghttp2_ssize rv = nghttp2_session_mem_recv2(session_, data, len);
  if (rv >= 0) return true;
  if (abuse_ == nullptr) {
    switch (rv) {
      case NGHTTP2_ERR_FLOODED:
        Abuse("flood");
        break;
      case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
        Abuse("continuation_flood");
        break;
      default:
        Abuse("protocol_error");
        break;
    }
  }
  return true;
}

// Sends what nghttp2 has, in batches of up to kOutBatch plaintext bytes per
// TLS write, while the endpoint takes them; closes once the session is done.
bool H2Front::Pump() {
  std::vector<uint8_t>& out = SharedOut();
  if (!client_->HasQueued() && !closing_) {
    out.clear();
    for (;;) {
      int rv = nghttp2_session_send(session_);
      if (rv != 0) {
        // Fatal (out of memory, a callback failure): nothing more to say.
        if (abuse_ == nullptr) Abuse(rv == NGHTTP2_ERR_FLOODED ? "flood" : "protocol_error");
        out.clear();
        delete this;
        return false;
      }
      if (out.size() < kOutBatch) break;
      if (client_->Write(out.data(), out.size()) == Io::kFailed) {
        delete this;
        return false;
      }
      out.clear();
      if (client_->HasQueued()) break;
    }
    if (!out.empty()) {
      Io w = client_->Write(out.data(), out.size());
      out.clear();
      if (w == Io::kFailed) {
        delete this;
        return false;
      }
    }
    // Room again: the exchanges that waited read their backends.
    if (paused_ > 0) {
      for (H2Stream* s = streams_; s != nullptr; s = s->next) {
        if (s->ResumeIfPaused()) paused_--;
      }
    }
  }
  if (!closing_ && nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0)
    return Close();
  bool c_out = client_->HasQueued() || (client_->end_requested() && !client_->fin_sent());
  client_->SetEvents(UV_READABLE | (c_out ? UV_WRITABLE : 0), OnClientPoll);
  return true;
}

// Our close_notify and FIN; the connection goes once the client ended too
// (or the close timeout later).
bool H2Front::Close() {
  if (closing_) return true;
  closing_ = true;
  closing_since_ms_ = uv_now(listener_->loop());
  client_->EndWrite();
  if (client_->Flush() == Io::kFailed) {
    delete this;
    return false;
  }
  bool c_out = client_->HasQueued() || !client_->fin_sent();
  client_->SetEvents(UV_READABLE | (c_out ? UV_WRITABLE : 0), OnClientPoll);
  return true;
}

void H2Front::Drain() {
  if (closing_) return;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  Pump();
}

void H2Front::Abuse(const char* reason) {
  if (abuse_ != nullptr) return;
  abuse_ = reason;
  listener_->HttpNotice(set_, host_, reason, 0, client_->fd(), sni_, {});
  nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
}

void H2Front::Misdirected(const char* reason, int status, std::string_view authority) {
  listener_->HttpNotice(set_, host_, reason, status, client_->fd(), sni_, authority);
}

void H2Front::OnDeadline() {
  uint64_t now = uv_now(listener_->loop());
  const BackendTarget::Http& s = target_->http();
  if (closing_) {
    // A client that never closes after our GOAWAY and close_notify.
    if (now - closing_since_ms_ >= listener_->timeouts().close_ms) {
      delete this;
      return;
    }
  } else {
    // A client that takes no response data for sendTimeout while some
    // waits for it (a window never opened, a socket never read): closed,
    // whatever else it keeps sending (PINGs make no progress here).
    bool waiting = buffered > 0 || client_->HasQueued();
    bool progress = data_sent_ != stall_data_ || (client_->HasQueued() && client_->bytes_out != stall_out_);
    if (!waiting || progress) {
      stall_since_ms_ = now;
      stall_data_ = data_sent_;
      stall_out_ = client_->bytes_out;
    } else if (now - stall_since_ms_ >= s.h2_send_timeout_ms) {
      Abuse("slow_reader");
      // A socket never read: nothing more reaches the client. A window
      // never opened: the socket still takes bytes, so the GOAWAY goes out
      // and the connection ends as every other abuse close does.
      if (client_->HasQueued()) {
        delete this;
        return;
      }
      if (!Pump()) return;
    }
    // No stream for idleTimeout: GOAWAY, then closed (as Node's http2
    // server timeout).
    if (live_streams_ == 0 && now - last_active_ms_ >= s.h2_idle_ms) {
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      if (!Pump()) return;
    }
  }
  listener_->deadlines().Add(this, tick_ms_);
}

// ---- nghttp2 callbacks -----------------------------------------------------

nghttp2_ssize H2Front::OnSend(nghttp2_session* session, const uint8_t* data, size_t length, int flags,
                              void* user_data) {
  std::vector<uint8_t>& out = SharedOut();
  if (out.size() >= kOutBatch) return NGHTTP2_ERR_WOULDBLOCK;
  out.insert(out.end(), data, data + length);
  return static_cast<nghttp2_ssize>(length);
}

int H2Front::OnSendData(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                        nghttp2_data_source* source, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  std::vector<uint8_t>& out = SharedOut();
  if (out.size() >= kOutBatch) return NGHTTP2_ERR_WOULDBLOCK;
  out.insert(out.end(), framehd, framehd + 9);
  static_cast<H2Stream*>(source->ptr)->TakeOut(length, &out);
  self->data_sent_ += length;
  return 0;
}

int H2Front::OnBeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  if (self->abuse_ != nullptr) return NGHTTP2_ERR_CALLBACK_FAILURE;
  uint64_t now = uv_now(self->listener_->loop());
  const char* reason = nullptr;
  switch (hd->type) {
    case NGHTTP2_SETTINGS:
      if ((hd->flags & NGHTTP2_FLAG_ACK) == 0 && !self->settings_.Take(now, kSettingsBurst, kSettingsRate))
        reason = "settings_flood";
      break;
    case NGHTTP2_PING:
      if ((hd->flags & NGHTTP2_FLAG_ACK) == 0 && !self->pings_.Take(now, kPingsBurst, kPingsRate))
        reason = "ping_flood";
      break;
    case NGHTTP2_RST_STREAM:
      if (!self->resets_.Take(now, kResetsBurst, kResetsRate)) reason = "rapid_reset";
      break;
    case NGHTTP2_DATA:
      if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0 &&
          !self->empty_.Take(now, kEmptyBurst, kEmptyRate))
        reason = "empty_frames";
      break;
    case NGHTTP2_HEADERS:
      self->continuations_ = 0;
      // A new stream past the limit the client acknowledged (RFC 9113
      // §5.1.2); before the acknowledgement nghttp2 refuses it (REFUSED_STREAM).
      if (self->settings_acked_ && self->live_streams_ >= self->target_->http().h2_max_streams &&
          nghttp2_session_find_stream(session, static_cast<int32_t>(hd->stream_id)) == nullptr) {
        reason = "too_many_streams";
      }
      break;
    case NGHTTP2_CONTINUATION:
      if (++self->continuations_ > kMaxContinuations)
        reason = "continuation_flood";
      else if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_HEADERS) == 0 &&
               !self->empty_.Take(now, kEmptyBurst, kEmptyRate))
        reason = "empty_frames";
      break;
    default:
      break;
  }
  if (reason == nullptr) return 0;
  self->Abuse(reason);
  // Stops nghttp2_session_mem_recv2 here: the rest of the input is dropped.
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int H2Front::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  auto* s = new H2Stream(self, frame->hd.stream_id);
  s->next = self->streams_;
  if (self->streams_ != nullptr) self->streams_->prev = s;
  self->streams_ = s;
  self->live_streams_++;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, s);
  return 0;
}

int H2Front::OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (s == nullptr) return 0;
  bool trailer = frame->headers.cat != NGHTTP2_HCAT_REQUEST;
  if (!s->OnHeader(name, namelen, value, valuelen, trailer)) {
    self->Abuse("header_list_too_large");
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int H2Front::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) self->settings_acked_ = true;
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
      auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (s == nullptr) return 0;
      bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        s->OnRequestHead(end);
      else if (end)
        s->OnRequestEnd();
      return 0;
    }
    default:
      return 0;
  }
}

int H2Front::OnDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* user_data) {
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr) {
    // A stream we no longer serve: its bytes still count in the windows.
    nghttp2_session_consume(session, stream_id, len);
    return 0;
  }
  s->OnRequestData(data, len);
  return 0;
}

int H2Front::OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, nullptr);
  self->last_active_ms_ = uv_now(self->listener_->loop());
  s->OnClosed(error_code);
  self->StreamClosed(s);
  return 0;
}

int H2Front::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  auto* self = static_cast<H2Front*>(user_data);
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
    // The response is complete while the request is not: the client may
    // stop sending it (RFC 9113 §8.1).
    auto* s = static_cast<H2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (s != nullptr && !s->request_ended())
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && self->abuse_ == nullptr) {
    // nghttp2 ended the session itself (a connection error, RFC 9113 §5.4.1).
    self->Abuse(frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? "glitches" : "protocol_error");
  }
  return 0;
}

}  // namespace rustls_node
