// H2Exchange: an upstream exchange (plane/upstream.h) as one stream of a
// pooled HTTP/2 backend connection (plane/h2_upstream.h). The request's
// HTTP/1.1 field lines become an HTTP/2 header list (names lower-cased;
// Host to :authority; :scheme http for h2c, https over TLS, the client's
// scheme being in X-Forwarded-Proto as on the HTTP/1.1 path; "te: trailers"
// when the client sent it), its body goes out as DATA as the backend's
// windows allow, its trailers as trailing HEADERS. The response head,
// DATA and trailers go to the owner as they come.
//
// Errors, as on the HTTP/1.1 path: 502 when the connection fails before a
// response head (504 for a timeout), each reported to the listener
// (backend errors, "backend unavailable"); a stream the backend refused
// unprocessed (REFUSED_STREAM, or above a GOAWAY's last stream) is sent
// again once on another connection while no body byte went out, as is a
// replayable request whose pooled connection closed under it. A backend
// reset reaches the client with the backend's code; the client's reset
// (Cancel) reaches the backend with the client's. `timeout`: nothing moved
// either way on the stream for that long (the backend silent, or its
// window closed) → 504, or a reset once the response began.
#ifndef RUSTLS_NODE_H2_EXCHANGE_H
#define RUSTLS_NODE_H2_EXCHANGE_H

#include <nghttp2/nghttp2.h>

#include <string>
#include <utility>
#include <vector>

#include "io/deadlines.h"
#include "plane/upstream.h"

namespace rustls_node {

class BackendTarget;
class H2Upstream;
class Listener;
struct RouteSet;

class H2Exchange final : public Exchange, public Timed {
 public:
  // Starts the exchange; the owner may hear OnExchangeFailed before this
  // returns (no connection could even be started).
  H2Exchange(Listener* listener, RouteSet* set, int host, BackendTarget* target, const UpstreamRequest& request,
             ExchangeOwner* owner);
  ~H2Exchange() override;

  void SendBody(const uint8_t* data, size_t len) override;
  void EndBody(std::string_view trailers) override;
  void Resume() override;
  void Cancel(uint32_t code) override;
  void OnDeadline() override;

 private:
  friend class H2Upstream;

  // Finds a connection with room and opens the stream there.
  void Attach();
  // Detaches from the connection (resetting an open stream with `code`).
  void Detach(uint32_t code);
  void Arm();

  // From the connection (nghttp2 callbacks and connection events).
  static nghttp2_ssize ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                                uint32_t* data_flags, nghttp2_data_source* source, void* user_data);
  void TakeBody(size_t len, std::vector<uint8_t>* out);
  void OnBeginHeaders();
  bool OnHeader(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen);
  void OnHeaders(bool end_stream);
  void OnData(const uint8_t* data, size_t len);
  void OnDataEnd();
  void OnPeerReset(uint32_t code) { peer_reset_ = static_cast<int64_t>(code); }
  // The stream closed with `code` (ours or the backend's).
  void OnStreamClosed(uint32_t code);
  // The connection ended under this exchange (already off it); a request
  // may be sent again once when `may_retry` (it was up).
  void OnConnectionLost(const char* kind, uint32_t code, int sys_errno, bool may_retry);
  // Request body bytes that reached the socket since the last report.
  void ReportTaken();

  // The end of this exchange for the owner.
  void Finish(std::string_view trailers);
  void Fail(const char* kind, uint32_t code, int sys_errno);
  void Broken(uint32_t code);
  void ReleaseBody();

  Listener* listener_;
  RouteSet* set_;
  int host_;
  BackendTarget* target_;
  ExchangeOwner* owner_;
  H2Upstream* upstream_ = nullptr;
  int32_t stream_id_ = -1;
  // The request head, kept until the response head came (a retry sends it again).
  std::string method_;
  std::string path_;
  std::string authority_;
  std::vector<std::pair<std::string, std::string>> fields_;
  bool te_trailers_ = false;
  bool has_body_ = false;
  bool replayable_ = false;
  bool retried_ = false;
  bool reused_ = false;  // the connection carried streams before this one
  // Request body bytes not yet handed to nghttp2 (from body_off_ on).
  std::vector<uint8_t> body_;
  size_t body_off_ = 0;
  bool body_ended_ = false;
  bool body_started_ = false;  // a body byte went to the connection
  bool deferred_ = false;      // nghttp2 waits for ResumeData
  size_t frame_ = 0;           // body bytes ReadBody gave to the DATA frame nghttp2 is sending
  size_t sent_ = 0;            // body bytes written, not yet reported taken
  std::string trailers_out_;   // the client's trailers (HTTP/1.1 lines)
  // Response.
  bool head_done_ = false;    // the final head came
  bool in_trailers_ = false;  // the header block being read is the trailer section
  int status_ = 0;
  size_t header_bytes_ = 0;
  bool header_too_large_ = false;
  bool unsendable_ = false;  // nghttp2 could not send the request head
  std::vector<std::pair<std::string, std::string>> resp_fields_;
  size_t unconsumed_ = 0;  // response bytes the owner holds and its client did not take yet
  bool paused_ = false;
  bool done_ = false;        // ended, failed, broken or cancelled: the owner hears nothing more
  int64_t peer_reset_ = -1;  // RST_STREAM code from the backend
  // The exchanges of one connection.
  H2Exchange* prev_ = nullptr;
  H2Exchange* next_ = nullptr;
};

}  // namespace rustls_node

#endif
