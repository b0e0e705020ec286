// Pending: an accepted connection until its handshake ends, on the native
// listener. It reads the ClientHello and routes it through the one TLS
// stream (tls/stream.h), runs the handshake under handshakeTimeout, sends
// the alert a failed one is owed, and then hands the connection on as one
// Handshaken: to the splice (tcp mode), an HTTP front end (http mode) or JS.
#ifndef RUSTLS_NODE_PLANE_PENDING_H
#define RUSTLS_NODE_PLANE_PENDING_H

#include <memory>
#include <vector>

#include "plane/listener.h"

namespace rustls_node {

// An accepted connection until its handshake ends.
class Pending final : public Owned, public Timed {
 public:
  Pending(Listener* listener, int fd, RouteSet* set);
  ~Pending() override;
  bool Start();
  // Closed without a word (shutdown): not a client failure.
  void Abort() override { delete this; }
  uint64_t BytesIn() const override { return ep_->bytes_in; }
  uint64_t BytesOut() const override { return ep_->bytes_out; }
  void OnDeadline() override;

  TlsEndpoint& endpoint() { return *ep_; }
  RouteSet* set() const { return set_; }
  // The application's answer to this hello's session lookup (`data` NULL:
  // none), or the lookup's bound ran out; `data` is borrowed for the call.
  // The handshake goes on (and may end: `this` may be deleted).
  void AnswerSession(const uint8_t* data, size_t len, bool timed_out);

 private:
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void Advance(int events);
  // After input was processed: flush, hand over a finished handshake, ask
  // for a session, or poll for more. `this` may be deleted.
  void Progress();
  void Fail(uint32_t code, bool send_alert);
  // Flushes what rustls queued, then the FIN.
  void EndGracefully();
  void Established();
  // The connection as it leaves for its owner (this Pending keeps nothing).
  Handshaken Handover();

  std::unique_ptr<TlsEndpoint> ep_;
  RouteSet* set_;
  std::vector<uint8_t> early_;
  // A session lookup in flight: its id at the listener, and its bound.
  uint32_t lookup_id_ = 0;
  struct LookupTimer final : Timed {
    Pending* pending = nullptr;
    void OnDeadline() override { pending->AnswerSession(nullptr, 0, true); }
  } lookup_timer_;
};

}  // namespace rustls_node

#endif
