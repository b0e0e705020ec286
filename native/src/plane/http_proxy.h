// HttpProxy: the HTTP/1.1 front of http mode (ALPN http/1.1 or none), below
// JS, for every request a client sends. Each request head is parsed strictly
// and rewritten here (hop-by-hop and Connection-listed fields out, client-sent
// X-SSL-*/X-Forwarded-*/Forwarded out, X-Forwarded-For/-Proto and the host's
// X-SSL-* in), goes to a pooled keep-alive backend connection, and the
// response head comes back rewritten the same way; bodies (length, chunked,
// until close) pass through as framed, with backpressure both ways.
//
// Answered here, without a backend: ACME http-01 (Listener::AcmeAnswer), 403
// and 421 (SPEC §4.2, plane/request_route.h; a coalescing host's requests go
// to its own backend), 405 for CONNECT, 417 for an expectation other than
// 100-continue, 400 for a head or framing this parser refuses, 431 for a head
// over kMaxHead, 501 for a transfer coding other than chunked, 502 and 504
// when the backend fails, 408 when a head does not arrive in time.
//
// HTTP/1.0 clients (RFC 9112 §9.3, Appendix C.2.2): the connection persists
// only when the request asks for it (Connection: keep-alive) and the response
// has a length; a chunked response is decoded for them and ends with the
// connection; no 1xx goes to them. Expect: 100-continue goes to the backend,
// whose 100 Continue is relayed (RFC 9110 §10.1.1). An Upgrade request
// (WebSocket) goes to the backend with Connection: Upgrade; a 101 answer is
// relayed as sent and the connection becomes a byte tunnel client TLS <->
// backend (plane/splice.h); another answer is relayed and the connection
// closes after it.
#ifndef RUSTLS_NODE_HTTP_PROXY_H
#define RUSTLS_NODE_HTTP_PROXY_H

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "plane/backend_conn.h"
#include "plane/backend_pool.h"
#include "plane/listener.h"
#include "proto/http_parse.h"

namespace rustls_node {

class BackendTarget;

class HttpProxy final : public Owned, public Timed, public BackendOwner {
 public:
  // Takes over a connection whose handshake completed.
  static void Start(Listener* listener, Handshaken h, BackendTarget* target);
  ~HttpProxy() override;
  void Abort() override { delete this; }
  void Drain() override;
  uint64_t BytesIn() const override { return client_ != nullptr ? client_->bytes_in : 0; }
  uint64_t BytesOut() const override { return client_ != nullptr ? client_->bytes_out : 0; }
  void OnDeadline() override;
  void OnBackendReady(BackendConn* b) override;
  void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) override;
  void OnBackendEvent(BackendConn* b, int status, int events) override;

  // Node's default maxHeaderSize: a longer request head gets 431.
  static constexpr size_t kMaxHead = 16 * 1024;

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
  // Each returns false once the proxy was deleted (or became a tunnel).
  bool OnClientData(const uint8_t* p, size_t n);
  // Takes the buffered request heads one after the other: those answered
  // here at once, until one waits for its backend (or for more bytes).
  bool NextRequest();
  bool Begin(const http::Head& head);
  bool SendRequest();
  bool OnBackendData(const uint8_t* p, size_t n);
  bool OnResponseHead();
  // Response body bytes to the client as framed, or decoded (decode_).
  bool RelayBody(const uint8_t* p, size_t n, size_t* used, std::string* out);
  // After a 101: the connection becomes a Splice.
  bool Tunnel(const http::Head& head);
  // The exchange ended (response sent): the backend connection goes back to
  // the pool (or closes) and the next request may begin.
  bool FinishExchange();
  // The backend failed before a response began: retry once on a fresh
  // connection (a pooled one the backend had closed), or answer 502/504.
  bool BackendLost(const char* kind, uint32_t code, int sys_errno);
  // A whole response of ours for the current request, then on as after any.
  bool Reply(int status, std::string_view type, std::string_view body);
  // A request this proxy cannot read (its framing is unknown): the status
  // with no body, then the connection closes.
  bool Refuse(int status);
  // close_notify and FIN; the proxy goes once the client ended too.
  bool Close();
  // What the client and backend are polled for now.
  bool Update();
  bool Step() { return NextRequest() && Update(); }
  size_t Buffered() const { return in_.size() - in_off_; }

  std::unique_ptr<TlsEndpoint> client_;
  BackendConn* backend_ = nullptr;
  RouteSet* set_;
  int host_;
  int certificate_;
  std::string sni_;
  BackendTarget* target_;  // the connection's host's
  State state_ = kIdle;
  // Client plaintext not consumed yet (from in_off_ on).
  std::vector<uint8_t> in_;
  size_t in_off_ = 0;
  // The current request: where it goes (the connection's host, or a
  // coalescing one), as it goes to the backend (kept until the response
  // begins, for one retry of a body-less request), and what it is.
  BackendTarget* exchange_target_ = nullptr;
  int exchange_host_ = -1;
  std::string request_;
  bool replayable_ = false;
  bool retried_ = false;
  bool head_request_ = false;
  bool http10_ = false;   // the client speaks HTTP/1.0
  bool upgrade_ = false;  // the request asks for an Upgrade (WebSocket)
  http::Body request_body_;
  // Backend plaintext of the response head being parsed.
  std::vector<uint8_t> resp_;
  bool response_started_ = false;  // a response byte arrived
  bool response_sent_ = false;     // its head went to the client
  bool backend_reusable_ = false;
  bool decode_ = false;  // the chunked response is decoded for an HTTP/1.0 client
  http::Body response_body_;
  bool close_after_ = false;  // the client's connection ends after this response
  bool client_ended_ = false;
  // Closing: the client's byte count at the last close timeout, and how
  // many timeouts the close has waited through (OnDeadline).
  uint64_t closing_mark_ = 0;
  int closing_waits_ = 0;
  std::string forwarded_;
  bool forwarded_made_ = false;
};

}  // namespace rustls_node

#endif
