#include "plane/pending.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "js/router.h"
#include "plane/h2_front.h"
#include "plane/http_proxy.h"
#include "plane/splice.h"

namespace rustls_node {

Pending::Pending(Listener* listener, int fd, RouteSet* set)
    : Owned(listener), ep_(std::make_unique<TlsEndpoint>(fd, TlsStream::Server())), set_(set) {
  listener->stats()->live++;
  set_->live++;
  ep_->set_router(&set_->router->router());
  ep_->stream().set_session_lookup(listener->session_lookup());
  lookup_timer_.pending = this;
}

Pending::~Pending() {
  listener_->deadlines().Remove(this);
  listener_->deadlines().Remove(&lookup_timer_);
  if (lookup_id_ != 0) listener_->ForgetLookup(lookup_id_);
  // Still ours (not handed on): the connection ends here, and freeing the
  // endpoint frees rustls' state and closes the descriptor.
  if (ep_ != nullptr) listener_->stats()->Closed(ep_->bytes_in, ep_->bytes_out);
  listener_->Release(set_);
}

bool Pending::Start() {
  if (!ep_->StartPoll(listener_->loop(), static_cast<Pending*>(this))) return false;
  ep_->SetEvents(UV_READABLE, OnPoll);
  if (listener_->handshake_timeout_ms_ > 0) listener_->deadlines().Add(this, listener_->handshake_timeout_ms_);
  return true;
}

void Pending::OnDeadline() {
  // Nothing is sent to a client that did not finish its handshake in time.
  Fail(kHandshakeTimeout, false);
}

void Pending::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Pending*>(handle->data);
  if (self == nullptr) return;
  if (status < 0) {
    self->ep_->sys_errno = SocketError(self->ep_->fd());
    self->Fail(kTransportError, false);
    return;
  }
  self->Advance(events);
}

void Pending::Advance(int events) {
  TlsEndpoint& ep = *ep_;
  if ((events & UV_READABLE) != 0) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    for (int i = 0; i < kReadsPerEvent && ep.handshaking(); i++) {
      Io r = ep.Read(plain);
      if (r == Io::kWouldBlock) break;
      if (r == Io::kFailed) {
        // A TLS failure gets its alert (queued by rustls or the acceptor);
        // a failed system call or a client gone before its hello, nothing.
        bool tls_failure = ep.tls_error != 0 && ep.tls_error != RUSTLS_RESULT_UNEXPECTED_EOF;
        Fail(ep.tls_error != 0 ? ep.tls_error : static_cast<uint32_t>(kTransportError), tls_failure);
        return;
      }
      if (r == Io::kEnd || ep.drained()) break;
    }
    if (plain.len > 0) early_.insert(early_.end(), plain.base, plain.base + plain.len);
  }
  Progress();
}

void Pending::Progress() {
  TlsEndpoint& ep = *ep_;
  if (ep.Flush() == Io::kFailed) {
    Fail(kTransportError, false);
    return;
  }
  if (!ep.handshaking()) {
    Established();
    return;
  }
  TlsStream& tls = ep.stream();
  if (tls.awaiting_session()) {
    // The hello asks to resume a session the server's own store lacks: the
    // application looks it up (its 'resumeSession', a shared store) while
    // nothing more is read; a bound keeps a slow store from stalling it.
    if (lookup_id_ == 0) {
      lookup_id_ = listener_->LookupSession(this, tls.session_key());
      listener_->deadlines().Add(&lookup_timer_, listener_->session_lookup_timeout_ms());
    }
    ep.SetEvents(ep.HasQueued() ? UV_WRITABLE : 0, OnPoll);
    return;
  }
  if (tls.hello() != nullptr) {
    // A deferred router (SNICallback): the application picks the config,
    // so the connection goes to JS now, paused at its ClientHello; its
    // handshake continues on the fd pump once JS answers.
    listener_->deadlines().Remove(this);
    Listener* listener = listener_;
    Handshaken h = Handover();
    delete this;
    listener->Deliver(std::move(h));
    return;
  }
  if (ep.input_ended()) {
    Fail(static_cast<uint32_t>(RUSTLS_RESULT_UNEXPECTED_EOF), false);
    return;
  }
  ep.SetEvents(UV_READABLE | (ep.HasQueued() ? UV_WRITABLE : 0), OnPoll);
}

void Pending::AnswerSession(const uint8_t* data, size_t len, bool timed_out) {
  if (lookup_id_ == 0) return;
  listener_->deadlines().Remove(&lookup_timer_);
  listener_->ForgetLookup(lookup_id_);
  lookup_id_ = 0;
  listener_->SessionAnswered(data != nullptr, timed_out);
  TlsEndpoint& ep = *ep_;
  ep.stream().ContinueSession(data, len);
  // Records that came behind the hello, kept while it waited.
  PlainOut plain = PlainOut::Growing(&SharedPlain());
  Io r = ep.Resume(plain);
  if (r == Io::kFailed) {
    bool tls_failure = ep.tls_error != 0 && ep.tls_error != RUSTLS_RESULT_UNEXPECTED_EOF;
    Fail(ep.tls_error != 0 ? ep.tls_error : static_cast<uint32_t>(kTransportError), tls_failure);
    return;
  }
  if (plain.len > 0) early_.insert(early_.end(), plain.base, plain.base + plain.len);
  Progress();
}

void Pending::Fail(uint32_t code, bool send_alert) {
  const int sys_errno = code == kTransportError ? (ep_->sys_errno != 0 ? ep_->sys_errno : errno) : 0;
  // The alert first, so that the report counts the bytes it took.
  if (send_alert) EndGracefully();
  listener_->Failed(code, sys_errno, ep_->stream().sni(), *ep_);
  delete this;
}

void Pending::EndGracefully() {
  int fd = ep_->fd();
  if (fd < 0) return;
  // What the stream queued last (an alert on an error, rustls-ffi:
  // write_tls after errors; a close_notify), then the FIN. What the client
  // sent meanwhile is read and dropped, so that close() does not turn the
  // FIN into a reset.
  ep_->Flush();
  shutdown(fd, SHUT_WR);
  uint8_t* buf = ReadBuffer();
  for (int i = 0; i < 4 && read(fd, buf, kReadSize) > 0; i++) {
  }
}

Handshaken Pending::Handover() {
  Handshaken h;
  h.ep = std::move(ep_);
  h.early.swap(early_);
  h.set = set_;
  set_ = nullptr;
  return h;
}

void Pending::Established() {
  listener_->deadlines().Remove(this);
  TlsStream& tls = ep_->stream();
  rustls_connection* conn = tls.conn();
  int host = tls.host();
  if (host == kHostChallenge) {
    // RFC 8737 §3: a tls-alpn-01 validation carries no data. It is
    // reported (the library emits 'acmeChallenge') and closed here; the
    // stream queued its close_notify with the last flight.
    listener_->Handshook(this, true);
    EndGracefully();
    delete this;
    return;
  }
  listener_->HandshakeDone(rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED,
                           tls.session_refused(), tls.session_spent() ? &tls.session_key() : nullptr);
  const Plan* plan = host >= 0 && static_cast<size_t>(host) < set_->plans.size() ? &set_->plans[host] : nullptr;
  if (plan != nullptr && plan->kind == kPlanTcp) {
    // JS logs the others' handshakes itself.
    listener_->Handshook(this);
    Splice::Start(listener_, Handover(), plan->target);
    delete this;
    return;
  }
  if (plan != nullptr && plan->kind == kPlanHttp) {
    const uint8_t* alpn = nullptr;
    size_t alpn_len = 0;
    rustls_connection_get_alpn_protocol(conn, &alpn, &alpn_len);
    // The protocol layer by ALPN: HTTP/2 to the h2 front, HTTP/1.1 (or no
    // ALPN) to the HTTP/1.1 proxy.
    listener_->Handshook(this);
    if (alpn_len == 2 && std::memcmp(alpn, "h2", 2) == 0)
      H2Front::Start(listener_, Handover(), plan->target);
    else
      HttpProxy::Start(listener_, Handover(), plan->target);
    delete this;
    return;
  }
  Listener* listener = listener_;
  Handshaken h = Handover();
  delete this;
  listener->Deliver(std::move(h));
}

}  // namespace rustls_node
