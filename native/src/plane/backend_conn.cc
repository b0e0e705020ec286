#include "plane/backend_conn.h"

#include <sys/socket.h>
#include <unistd.h>

#include "plane/splice.h"

namespace rustls_node {

BackendConn* BackendConn::Connect(Listener* listener, BackendTarget* target, BackendOwner* owner,
                                  std::vector<uint8_t> preface, StartError* err) {
  rustls_connection* conn = nullptr;
  if (target->tls()) {
    const rustls_client_config* config = target->tls_config();
    rustls_result r = config == nullptr ? RUSTLS_RESULT_GENERAL
                                        : rustls_client_connection_new(config, target->server_name().c_str(), &conn);
    if (r != RUSTLS_RESULT_OK) {
      *err = {"tls", r, 0};
      return nullptr;
    }
  }
  int fd = ConnectNonBlocking(target->target());
  if (fd < 0) {
    *err = {"connect", 0, errno};
    rustls_connection_free(conn);
    return nullptr;
  }
  auto* b = new BackendConn(listener, target, owner, std::move(preface));
  if (conn != nullptr) {
    auto tls = std::make_unique<TlsEndpoint>(fd, TlsStream::Client(conn));
    b->tls_ = tls.get();
    b->ep_ = std::move(tls);
  } else {
    b->ep_ = std::make_unique<PlainEndpoint>(fd);
  }
  if (!b->ep_->StartPoll(listener->loop(), b)) {
    *err = {"connect", 0, EBADF};
    delete b;
    return nullptr;
  }
  listener->deadlines().Add(b, target->connect_timeout_ms());
  b->ep_->SetEvents(UV_WRITABLE, OnPoll);
  return b;
}

BackendConn::BackendConn(Listener* listener, BackendTarget* target, BackendOwner* owner, std::vector<uint8_t> preface)
    : listener_(listener), target_(target), owner_(owner), preface_(std::move(preface)) {}

BackendConn::~BackendConn() { listener_->deadlines().Remove(this); }

void BackendConn::Arm(uint64_t ms) {
  if (ms == 0)
    listener_->deadlines().Remove(this);
  else
    listener_->deadlines().Add(this, ms);
}

void BackendConn::OnDeadline() {
  if (!ready_) {
    // Not connected (or TLS not done) within connectTimeout.
    Fail("timeout", 0, ETIMEDOUT);
    return;
  }
  owner_->OnBackendEvent(this, UV_ETIMEDOUT, 0);
}

void BackendConn::Fail(const char* kind, uint32_t code, int sys_errno) {
  owner_->OnBackendFailed(this, kind, code, sys_errno);
  delete this;
}

void BackendConn::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<BackendConn*>(handle->data);
  if (self == nullptr) return;
  if (self->connecting_) {
    // A failed connect shows as POLLERR, which libuv reports as UV_EBADF:
    // SO_ERROR has the real reason.
    if (status < 0 || (events & UV_WRITABLE) != 0) self->OnConnected();
    return;
  }
  if (!self->ready_) {
    if (status < 0) {
      self->Fail("tls", 0, ECONNRESET);
      return;
    }
    self->Advance(events);
    return;
  }
  self->owner_->OnBackendEvent(self, status, events);
}

void BackendConn::OnConnected() {
  int err = SocketError(ep_->fd());
  if (err != 0) {
    Fail("connect", 0, err);
    return;
  }
  connecting_ = false;
  if (tls_ == nullptr) {
    // The PROXY header goes first; whatever the owner writes queues behind it.
    if (!preface_.empty()) static_cast<PlainEndpoint*>(ep_.get())->Prepend(preface_.data(), preface_.size());
    preface_.clear();
    ready_ = true;
    listener_->deadlines().Remove(this);
    owner_->OnBackendReady(this);
    return;
  }
  Advance(UV_WRITABLE);
}

bool BackendConn::WritePreface() {
  while (preface_off_ < preface_.size()) {
    ssize_t n = write(ep_->fd(), preface_.data() + preface_off_, preface_.size() - preface_off_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && WouldBlock(errno)) return true;
    if (n < 0) {
      ep_->sys_errno = errno;
      return false;
    }
    ep_->bytes_out += static_cast<uint64_t>(n);
    preface_off_ += static_cast<size_t>(n);
  }
  return true;
}

// The TLS handshake with the backend; the PROXY header before any record.
void BackendConn::Advance(int events) {
  if ((events & UV_WRITABLE) != 0) {
    if (!WritePreface()) {
      Fail("connect", 0, ep_->sys_errno);
      return;
    }
    if (preface_off_ < preface_.size()) {
      ep_->SetEvents(UV_WRITABLE, OnPoll);
      return;
    }
    if (ep_->Flush() == Io::kFailed) {
      Fail("tls", ep_->tls_error, ep_->sys_errno);
      return;
    }
  }
  if ((events & UV_READABLE) != 0) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    Io r = ep_->Read(plain);
    if (r == Io::kFailed || r == Io::kEnd) {
      // Our alert (a certificate we refuse, say) goes out before the close.
      if (ep_->tls_error != 0) ep_->Flush();
      Fail("tls", ep_->tls_error, ep_->tls_error != 0 ? 0 : (ep_->sys_errno != 0 ? ep_->sys_errno : ECONNRESET));
      return;
    }
    if (ep_->Flush() == Io::kFailed) {
      Fail("tls", 0, ep_->sys_errno);
      return;
    }
    if (plain.len > 0) greeting_.insert(greeting_.end(), plain.base, plain.base + plain.len);
  }
  if (!tls_->handshaking()) {
    ready_ = true;
    listener_->deadlines().Remove(this);
    owner_->OnBackendReady(this);
    return;
  }
  ep_->SetEvents(UV_READABLE | (ep_->HasQueued() ? UV_WRITABLE : 0), OnPoll);
}

}  // namespace rustls_node
