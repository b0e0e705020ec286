// An upstream exchange: one request of a native front end (today the
// HTTP/2 front) and its response, with whichever backend protocol carries
// it. H1Exchange (plane/h1_exchange.h) sends it as HTTP/1.1 over the
// listener's keep-alive pool; an HTTP/2 backend connection type would be a
// second implementation of Exchange beside it, the front unchanged.
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

struct UpstreamRequest {
  std::string_view method;
  std::string_view path;
  // HTTP/1.1 field lines ("Name: value\r\n"), Host first, already filtered
  // (http::FieldRules) and with the terminator's own fields appended; an
  // HTTP/2 upstream reads them back as name/value pairs.
  std::string_view fields;
  enum Body { kNone, kLength, kStream } body = kNone;  // kStream: length unknown
  uint64_t length = 0;                                 // kLength
  bool replayable = false;  // no body, safe method: may be sent again once
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
  // The response broke after it began: the client's stream is reset.
  virtual void OnExchangeBroken() = 0;
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
  // The request body ended (HTTP/2 END_STREAM).
  virtual void EndBody() = 0;
  // The owner has room again (Room() turned true).
  virtual void Resume() = 0;
};

}  // namespace rustls_node

#endif
