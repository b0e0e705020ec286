#include "plane/splice.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <unordered_map>

#include "io/relay.h"
#include "proto/proxy_header.h"

namespace rustls_node {

// ---- Splice ---------------------------------------------------------------

void Splice::Start(Listener* listener, Handshaken h, BackendTarget* target) {
  auto* s = new Splice(listener, std::move(h), target);
  s->Begin();
}

void Splice::Join(Listener* listener, std::unique_ptr<TlsEndpoint> client, RouteSet* set, BackendConn* backend,
                  std::vector<uint8_t> to_client, std::vector<uint8_t> to_backend) {
  Handshaken h;
  h.ep = std::move(client);
  h.set = set;
  auto* s = new Splice(listener, std::move(h), backend->target());
  s->backend_ = backend;
  backend->set_owner(s);
  backend->Arm(0);
  // As a backend that greets first: its bytes reach the client before any
  // of the client's reach it.
  backend->greeting().swap(to_client);
  s->early_.swap(to_backend);
  s->OnBackendReady(backend);
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
  backend_ = BackendConn::Connect(listener_, target_, this,
                                  target_->proxy_protocol() != 0 ? ProxyHeader() : std::vector<uint8_t>(), &err);
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
  greeting.clear();
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
  return BuildProxyHeader(target_->proxy_protocol(), client_->fd(), client_->conn(), sni_,
                          target_->key_alg(certificate_));
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
  if ((events & UV_READABLE) != 0 && self->backend_->ready() && !self->Move(*self->client_, self->backend_->endpoint()))
    return;
  self->Update();
}

bool Splice::Move(Endpoint& src, Endpoint& dst) {
  if (RelayMove(src, dst)) return true;
  delete this;
  return false;
}

void Splice::Update() {
  if (!backend_->ready()) return;
  Endpoint& c = *client_;
  Endpoint& b = backend_->endpoint();
  RelayPolls p = RelayEvents(c, b);
  c.SetEvents(p.a, OnClientPoll);
  backend_->SetEvents(p.b);
  if (p.done) {
    // Both ways ended and flushed: the connection is over.
    delete this;
    return;
  }
  if (b.input_ended() && !c.input_ended() && !lingering_ && c.fin_sent()) {
    lingering_ = true;
    // After the backend closed, a client that keeps its side open goes.
    listener_->Arm(this, listener_->timeouts().linger_ms);
  }
}

}  // namespace rustls_node
