// An upstream exchange: one request of a native front end (today the
// HTTP/2 front) and its response, with whichever backend protocol carries
// it, chosen per backend (backend.httpVersion): H1Exchange (plane/
// h1_exchange.h) sends it as HTTP/1.1 over the listener's keep-alive pool,
// H2Exchange (plane/h2_exchange.h) as one stream of a pooled HTTP/2
// backend connection (plane/h2_upstream.h); the front is the same for both.
//
// The front gives the request as an UpstreamRequest and the body as it
// arrives (decoded: no transfer coding), and hears back through
// ExchangeOwner: the response head, decoded body bytes, the end (with
// trailers), or a failure before any response byte (502/504 to answer).
// Backpressure is explicit both ways: the exchange reads its backend only
// while the owner has Room(), and tells the owner when request body bytes
// were taken by the backend's socket, which is when the front may reopen
// the client's flow-control window.
#ifndef RUSTLS_NODE_UPSTREAM_H
#define RUSTLS_NODE_UPSTREAM_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proto/http_parse.h"

namespace rustls_node {

// RFC 9113 §7 error codes, as exchanges and owners pass them.
constexpr uint32_t kH2NoError = 0x0;
constexpr uint32_t kH2InternalError = 0x2;
constexpr uint32_t kH2RefusedStream = 0x7;
constexpr uint32_t kH2Cancel = 0x8;

struct UpstreamRequest {
  std::string_view method;
  std::string_view path;
  // HTTP/1.1 field lines ("Name: value\r\n"), Host first, already filtered
  // (http::FieldRules) and with the terminator's own fields appended; an
  // HTTP/2 upstream reads them back as name/value pairs.
  std::string_view fields;
  enum Body { kNone, kLength, kStream } body = kNone;  // kStream: length unknown
  uint64_t length = 0;                                 // kLength
  bool replayable = false;                             // no body, safe method: may be sent again once
  // The client sent "te: trailers" (the one TE value HTTP/2 carries, RFC
  // 9113 §8.2.2; gRPC requires it): an HTTP/2 upstream passes it on.
  bool te_trailers = false;
};

class ExchangeOwner {
 public:
  virtual ~ExchangeOwner() = default;
  // A response head: 1xx (informational, more follow) or final. `head`'s
  // views live until this returns.
  virtual void OnResponseHead(const http::Head& head, const http::ConnectionOptions& connection, bool body) = 0;
  // Decoded response body bytes (the owner copies them).
  virtual void OnResponseData(const uint8_t* data, size_t len) = 0;
  // The response ended; `trailers` are HTTP/1.1 field lines (maybe empty).
  virtual void OnResponseEnd(std::string_view trailers) = 0;
  // No response can come: `status` 502 or 504 for the client. The kind
  // ("connect", "tls", "timeout") was reported to the listener already.
  virtual void OnExchangeFailed(int status) = 0;
  // The response broke (after it began, or the backend reset the stream):
  // the client's stream is reset with `code`, an RFC 9113 §7 error code
  // (the backend's own for a backend reset).
  virtual void OnExchangeBroken(uint32_t code) = 0;
  // `n` request body bytes reached the backend's socket.
  virtual void OnBodyTaken(size_t n) = 0;
  // Whether the owner takes more response bytes now.
  virtual bool Room() const = 0;
};

class Exchange {
 public:
  virtual ~Exchange() = default;
  // Request body bytes (decoded). They are kept until the backend takes
  // them; the owner bounds them by its flow control.
  virtual void SendBody(const uint8_t* data, size_t len) = 0;
  // The request body ended (HTTP/2 END_STREAM), with the client's trailer
  // section as HTTP/1.1 field lines (maybe empty; already filtered).
  virtual void EndBody(std::string_view trailers) = 0;
  // The owner has room again (Room() turned true).
  virtual void Resume() = 0;
  // The client reset its stream with `code` (RFC 9113 §7): the exchange
  // stops, and an HTTP/2 backend stream is reset with the same code. The
  // owner hears nothing more; the exchange is deleted right after.
  virtual void Cancel(uint32_t code) {}
};

}  // namespace rustls_node

#endif
