// H2Stream: one request stream of the native HTTP/2 front (h2_front.h). It
// turns the request's header list into an upstream request (RFC 9113 §8.3:
// :method and :path to the request line, :authority to Host; cookie crumbs
// joined with "; ", §8.2.3; the field rules of proto/http_fields.h; the
// terminator's forwarding fields), answers ACME http-01 (Listener::
// AcmeAnswer) and CONNECT (405), applies SPEC §4.2 (403, 421, or the
// coalesced host's backend), passes the body on as it arrives (and its
// trailers, by the same field rules), and maps the upstream response back:
// its head to HEADERS (fields lower-cased, minus hop-by-hop, framing and
// Connection-listed ones), its decoded body to DATA, its trailers (chunked
// or HTTP/2) to trailing HEADERS. The upstream is HTTP/1.1 or HTTP/2 as the
// backend says (backend.httpVersion); resets pass both ways with their code.
//
// Memory is bounded both ways. Request body bytes are acknowledged to the
// client (nghttp2_session_consume, which sends WINDOW_UPDATE) only once the
// backend's socket took them, so the client's window bounds what waits here.
// Response bytes wait in `out_` until nghttp2 sends them as the client's
// window allows; the exchange reads its backend only while Room().
#ifndef RUSTLS_NODE_H2_STREAM_H
#define RUSTLS_NODE_H2_STREAM_H

#include <nghttp2/nghttp2.h>

#include <memory>
#include <string>
#include <vector>

#include "plane/upstream.h"

namespace rustls_node {

class H2Front;

class H2Stream final : public ExchangeOwner {
 public:
  H2Stream(H2Front* front, int32_t id);
  ~H2Stream() override;
  int32_t id() const { return id_; }

  // One field of the request's header list (or of its trailers). false:
  // the list passed the front's limit.
  bool OnHeader(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer);
  // The header list is complete (END_HEADERS); `end_stream`: no body.
  void OnRequestHead(bool end_stream);
  void OnRequestData(const uint8_t* data, size_t len);
  void OnRequestEnd();
  bool request_ended() const { return request_ended_; }
  // nghttp2 closed the stream with `code` (RFC 9113 §7): a client's reset
  // cancels the exchange (an HTTP/2 backend stream with the same code).
  void OnClosed(uint32_t code);

  // nghttp2's data source read callback for this stream's response.
  static nghttp2_ssize Read(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                            uint32_t* data_flags, nghttp2_data_source* source, void* user_data);
  // nghttp2 sends `len` bytes of a DATA frame: they go to `out`.
  void TakeOut(size_t len, std::vector<uint8_t>* out);
  // Room() turned true again after the exchange was paused.
  bool ResumeIfPaused();

  void OnResponseHead(const http::Head& head, const http::ConnectionOptions& connection, bool body) override;
  void OnResponseData(const uint8_t* data, size_t len) override;
  void OnResponseEnd(std::string_view trailers) override;
  void OnExchangeFailed(int status) override;
  void OnExchangeBroken(uint32_t code) override;
  void OnBodyTaken(size_t n) override;
  bool Room() const override;

  // The front's list of streams.
  H2Stream* prev = nullptr;
  H2Stream* next = nullptr;

 private:
  // Our own short answer (403, 405, 421, 502, 504).
  void Answer(int status, const char* reason);
  // A whole response of ours: `body` (copied) with its type and length;
  // `head_only` (HEAD): the head alone.
  void Reply(int status, std::string_view type, std::string_view body, bool head_only);
  void Submit(int status, const http::Head* head, const http::ConnectionOptions* connection, bool body, bool final);
  void SubmitTrailers();
  void Consume(size_t n);
  void Wake();

  H2Front* front_;
  int32_t id_;
  // The request's header list until it is complete.
  std::string method_;
  std::string path_;
  std::string authority_;
  std::string host_field_;
  std::string fields_;  // the client's fields that are forwarded, as HTTP/1.1 lines
  std::string cookie_;
  std::string request_trailers_;  // HTTP/1.1 field lines of the client's trailers, filtered
  bool te_trailers_ = false;
  size_t header_bytes_ = 0;
  bool has_length_ = false;
  uint64_t length_ = 0;
  bool head_done_ = false;
  bool request_ended_ = false;
  size_t unconsumed_ = 0;  // body bytes received and not yet acknowledged
  std::unique_ptr<Exchange> exchange_;
  // The response.
  bool submitted_ = false;  // a final head went to nghttp2
  bool has_body_ = false;   // ...with a data source
  bool ended_ = false;      // every body byte is in out_
  bool deferred_ = false;   // nghttp2 waits for resume_data
  mutable bool paused_ = false;
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  std::string trailers_;  // HTTP/1.1 field lines of a chunked response's trailer section
};

}  // namespace rustls_node

#endif
