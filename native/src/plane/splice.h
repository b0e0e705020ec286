// Splice: a byte tunnel below JS between a client TLS connection and a
// backend connection, plain TCP / Unix or TLS (rustls client). tcp mode
// starts one for an established connection (after an optional PROXY
// header); http mode joins one to a request its backend upgraded (101
// Switching Protocols: WebSocket). Bytes move both ways in native code with
// backpressure (a side is read only while the other side has nothing
// queued), half-close (close_notify ends the backend's way in with a FIN;
// the backend's FIN ends ours with close_notify and a FIN), and no JS call
// per chunk. JS only sees counters and backend failures.
#ifndef RUSTLS_NODE_SPLICE_H
#define RUSTLS_NODE_SPLICE_H

#include <memory>
#include <string>
#include <vector>

#include "io/endpoint.h"
#include "js/backend_target.h"
#include "js/common.h"
#include "plane/backend_conn.h"
#include "plane/listener.h"

namespace rustls_node {

class Splice final : public Owned, public Timed, public BackendOwner {
 public:
  // Takes over a connection whose handshake completed.
  static void Start(Listener* listener, Handshaken h, BackendTarget* target);
  // Joins `client` to `backend`, a ready connection (http mode, after 101):
  // `to_client` (what the backend sent after its 101 head) and `to_backend`
  // (what the client sent after its request) go first. The splice counts on
  // `set` and ends the connection's accounting, as a started one does.
  static void Join(Listener* listener, std::unique_ptr<TlsEndpoint> client, RouteSet* set, BackendConn* backend,
                   std::vector<uint8_t> to_client, std::vector<uint8_t> to_backend);
  ~Splice() override;
  void Abort() override { delete this; }
  uint64_t BytesIn() const override { return client_->bytes_in; }
  uint64_t BytesOut() const override { return client_->bytes_out; }
  // The linger after the backend closed.
  void OnDeadline() override { delete this; }
  void OnBackendReady(BackendConn* b) override;
  void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) override;
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  Splice(Listener* listener, Handshaken h, BackendTarget* target);
  void Begin();
  static void OnClientPoll(uv_poll_t* handle, int status, int events);
  // Moves what `src` has to `dst`; false once the splice was deleted.
  bool Move(Endpoint& src, Endpoint& dst);
  // Polls what each side needs now; deletes the splice when both ways are done.
  void Update();
  std::vector<uint8_t> ProxyHeader();

  std::unique_ptr<TlsEndpoint> client_;
  BackendConn* backend_ = nullptr;
  RouteSet* set_;
  int host_;
  int certificate_;
  std::string sni_;
  std::vector<uint8_t> early_;
  bool lingering_ = false;
  // Alive as long as the route set, which this splice counts on.
  BackendTarget* target_;
};

}  // namespace rustls_node

#endif
