// HttpProxy: http mode below JS, for HTTP/1.1 over TLS (ALPN http/1.1 or
// none). Each request head is parsed and rewritten here (hop-by-hop and
// Connection-listed fields out, client-sent X-SSL-*/X-Forwarded-*/
// Forwarded out, X-Forwarded-For/-Proto and the host's X-SSL-* in), goes
// to a pooled keep-alive backend connection, and the response head comes
// back rewritten the same way; bodies (length, chunked, until close) pass
// through unchanged, with backpressure both ways. Anything else (HTTP/1.0,
// Upgrade, CONNECT, Expect, a Host naming another host, a malformed head,
// an ACME http-01 path) is handed to JS at that request boundary with the
// bytes untouched: Node's parser and lib/terminator/http-backend.ts answer
// it as on the JS data plane, and the connection stays there.
#ifndef RUSTLS_NODE_HTTP_PROXY_H
#define RUSTLS_NODE_HTTP_PROXY_H

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "plane/backend_conn.h"
#include "plane/backend_pool.h"
#include "proto/http_parse.h"
#include "plane/listener.h"

namespace rustls_node {

class BackendTarget;

class HttpProxy final : public Owned, public Timed, public BackendOwner {
 public:
  // Takes over a connection whose handshake completed.
  static void Start(Listener* listener, Handshaken h, BackendTarget* target);
  ~HttpProxy() override;
  void Abort() override { delete this; }
  void Drain() override;
  uint64_t BytesIn() const override { return client_->bytes_in; }
  uint64_t BytesOut() const override { return client_->bytes_out; }
  void OnDeadline() override;
  void OnBackendReady(BackendConn* b) override;
  void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) override;
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  enum State {
    kIdle,      // between requests (keep-alive)
    kHead,      // part of a request head arrived
    kConnect,   // a request waits for its backend connection
    kExchange,  // request and response under way
    kClosing,   // our close_notify and FIN are out; waiting for the client's end
  };
  HttpProxy(Listener* listener, Handshaken h, BackendTarget* target);
  static void OnClientPoll(uv_poll_t* handle, int status, int events);
  void OnClientReadable();
  // Each returns false once the proxy was deleted (or handed to JS).
  bool OnClientData(const uint8_t* p, size_t n);
  bool NextRequest();
  bool Begin(const http::Head& head);
  bool SendRequest();
  bool OnBackendData(const uint8_t* p, size_t n);
  bool OnResponseHead();
  bool FinishExchange();
  // The backend failed before a response began: retry once on a fresh
  // connection (a pooled one the backend had closed), or answer 502/504.
  bool BackendLost(const char* kind, uint32_t code, int sys_errno);
  // Our own short answer (502, 504), then on as after any response.
  bool Answer(int status, const char* text);
  // close_notify and FIN; the proxy goes once the client ended too. Each
  // returns false once the proxy was deleted.
  bool Close();
  bool Update();
  void HandOff();
  size_t Buffered() const { return in_.size() - in_off_; }

  std::unique_ptr<TlsEndpoint> client_;
  BackendConn* backend_ = nullptr;
  RouteSet* set_;
  int host_;
  int certificate_;
  std::string sni_;
  BackendTarget* target_;
  State state_ = kIdle;
  // Client plaintext not consumed yet (from in_off_ on).
  std::vector<uint8_t> in_;
  size_t in_off_ = 0;
  // The request as it goes to the backend, kept until the response begins
  // (for one retry of a body-less request).
  std::string request_;
  bool replayable_ = false;
  bool retried_ = false;
  bool head_request_ = false;
  http::Body request_body_;
  // Backend plaintext of the response head being parsed.
  std::vector<uint8_t> resp_;
  bool response_started_ = false;  // a response byte arrived
  bool response_sent_ = false;     // its head went to the client
  bool backend_reusable_ = false;
  http::Body response_body_;
  bool close_after_ = false;  // the client's connection ends after this response
  bool client_ended_ = false;
  std::string forwarded_;
  bool forwarded_made_ = false;
};

}  // namespace rustls_node

#endif
