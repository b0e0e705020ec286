// H1Exchange: an upstream exchange (plane/upstream.h) as HTTP/1.1 over the
// listener's pooled keep-alive backend connections, the way HttpProxy uses
// them: a pooled connection first (a failure before any response byte on
// it earns one retry of a replayable request on a fresh one), else a new
// one under connectTimeout; 502 when the backend cannot be reached or its
// TLS fails, 504 when it sends nothing for `timeout`; each reported to the
// listener (backend errors, "backend unavailable" log lines). Request
// bodies of unknown length go chunked. The response body is decoded
// (length, chunked with its trailers, until close) for the owner, and the
// connection goes back to the pool when both messages ended cleanly.
#ifndef RUSTLS_NODE_H1_EXCHANGE_H
#define RUSTLS_NODE_H1_EXCHANGE_H

#include <string>
#include <vector>

#include "plane/backend_conn.h"
#include "plane/upstream.h"

namespace rustls_node {

class Listener;
struct RouteSet;

class H1Exchange final : public Exchange, public BackendOwner {
 public:
  // Starts the exchange; the owner may hear OnExchangeFailed before this
  // returns (no connection could even be started).
  H1Exchange(Listener* listener, RouteSet* set, int host, BackendTarget* target, const UpstreamRequest& request,
             ExchangeOwner* owner);
  ~H1Exchange() override;

  void SendBody(const uint8_t* data, size_t len) override;
  void EndBody(std::string_view trailers) override;
  void Resume() override;

  void OnBackendReady(BackendConn* b) override;
  void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) override;
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  void Connect();
  // Writes what waits (head, body) to the ready backend.
  void SendPending();
  void Write(const uint8_t* data, size_t len);
  void ReportTaken();
  void Lost(const char* kind, uint32_t code, int sys_errno);
  void OnData(const uint8_t* p, size_t n);
  void OnHead();
  void Finish();
  void Fail(int status);
  void Broken();
  void Poll();
  static void Sink(void* ctx, const uint8_t* data, size_t len);

  Listener* listener_;
  RouteSet* set_;
  int host_;
  BackendTarget* target_;
  ExchangeOwner* owner_;
  BackendConn* backend_ = nullptr;
  UpstreamRequest::Body body_kind_;
  bool head_request_ = false;
  bool replayable_ = false;
  bool retried_ = false;
  // The head (kept for one retry while replayable) and body bytes that
  // wait for the connection.
  std::string head_;
  std::vector<uint8_t> pending_;
  bool head_sent_ = false;  // the head went to the current connection
  bool body_ended_ = false;
  bool body_sent_ = false;   // the whole request reached the backend's socket
  size_t untaken_ = 0;       // body bytes written but still queued in the endpoint
  size_t waiting_body_ = 0;  // body bytes in pending_
  // Response.
  std::vector<uint8_t> resp_;
  bool started_ = false;  // a response byte arrived
  bool head_done_ = false;
  bool done_ = false;  // ended, failed or broken: nothing more for the owner
  bool reusable_ = false;
  http::Body response_body_;
  std::string trailers_;
};

}  // namespace rustls_node

#endif
