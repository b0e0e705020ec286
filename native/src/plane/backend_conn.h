// BackendConn: one connection of the native data plane to a backend, plain
// or TLS: a non-blocking connect with a deadline, an optional PROXY header
// in the clear first, then (TLS) the client handshake. Its owner (a splice,
// an HTTP exchange, the pool while it idles) hears when it is ready, when
// it failed before that, and every poll event after.
#ifndef RUSTLS_NODE_BACKEND_CONN_H
#define RUSTLS_NODE_BACKEND_CONN_H

#include <memory>
#include <vector>

#include "io/endpoint.h"
#include "plane/listener.h"

namespace rustls_node {

class BackendTarget;
class BackendConn;

class BackendOwner {
 public:
  virtual ~BackendOwner() = default;
  virtual void OnBackendReady(BackendConn* b) = 0;
  // Before ready: kind is "connect", "tls" or "timeout"; the connection is
  // deleted right after this returns.
  virtual void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) = 0;
  // After ready: the poll's events (status < 0: an error).
  virtual void OnBackendEvent(BackendConn* b, int status, int events) = 0;
};

class BackendConn final : public Timed {
 public:
  // Why a connect could not even start.
  struct StartError {
    const char* kind = "connect";
    uint32_t code = 0;
    int sys_errno = 0;
  };
  // Starts connecting; NULL (and *err) when it could not start.
  static BackendConn* Connect(Listener* listener, BackendTarget* target, BackendOwner* owner,
                              std::vector<uint8_t> preface, StartError* err);
  ~BackendConn() override;

  Endpoint& endpoint() { return *ep_; }
  bool ready() const { return ready_; }
  BackendTarget* target() const { return target_; }
  void set_owner(BackendOwner* owner) { owner_ = owner; }
  BackendOwner* owner() const { return owner_; }
  // Polls for what the owner needs now (ready connections only).
  void SetEvents(int events) { ep_->SetEvents(events, OnPoll); }
  // Deadlines of the owner's choosing once ready (idle in the pool,
  // waiting for a response); 0 clears.
  void Arm(uint64_t ms);
  void OnDeadline() override;
  // Plaintext a TLS backend sent with its last handshake flight (a
  // server that speaks first), for the owner to pass on once ready.
  std::vector<uint8_t>& greeting() { return greeting_; }
  // Times this connection carried an exchange (0: fresh).
  int uses = 0;

 private:
  BackendConn(Listener* listener, BackendTarget* target, BackendOwner* owner, std::vector<uint8_t> preface);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void OnConnected();
  void Advance(int events);
  void Fail(const char* kind, uint32_t code, int sys_errno);
  bool WritePreface();

  Listener* listener_;
  BackendTarget* target_;
  BackendOwner* owner_;
  std::unique_ptr<Endpoint> ep_;
  TlsEndpoint* tls_ = nullptr;
  std::vector<uint8_t> preface_;
  size_t preface_off_ = 0;
  std::vector<uint8_t> greeting_;
  bool connecting_ = true;
  bool ready_ = false;
};

}  // namespace rustls_node

#endif
