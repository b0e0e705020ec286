// HTTP/1.1 message heads and body framing (RFC 9112), as much as the native
// http mode needs: strict parsing (a head that is not exactly well-formed is
// refused: 400), message framing, Connection options.
#ifndef RUSTLS_NODE_HTTP_PARSE_H
#define RUSTLS_NODE_HTTP_PARSE_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rustls_node {
namespace http {

enum class Parse { kIncomplete, kOk, kBad };

struct Field {
  std::string_view name;
  std::string_view value;
  // The whole field line with its CRLF, to forward as received.
  std::string_view line;
};

struct Head {
  // Request: method, target; response: status, reason.
  std::string_view method;
  std::string_view target;
  int status = 0;
  std::string_view reason;
  int minor = 1;  // HTTP/1.<minor>
  std::vector<Field> fields;
  size_t length = 0;  // up to and including the empty line
};

// Parses a request (is_request) or response head at the start of `data`.
// kIncomplete: no empty line yet within `data`; kBad: not a head this
// parser accepts (bare LF, obs-fold, a control byte, ...).
Parse ParseHead(std::string_view data, bool is_request, Head* out);

// The options of every Connection field of a message (RFC 9110 §7.6.1):
// "close", and the field names it lists (views into the head).
struct ConnectionOptions {
  bool close = false;
  std::vector<std::string_view> listed;
  bool Lists(std::string_view name) const;
};
ConnectionOptions ConnectionTokens(const Head& head);

// Content-Length (RFC 9110 §8.6): digits only, at most 15 of them; repeated
// fields must agree. false: invalid.
bool ParseContentLength(std::string_view value, uint64_t* length);
bool ContentLength(const Head& head, bool* present, uint64_t* length);

// The reason phrase of a status code this addon answers with itself (RFC
// 9110 §15), "" for others.
const char* ReasonPhrase(int status);

// Case-insensitive ASCII comparison.
bool IEquals(std::string_view a, std::string_view b);
bool IStartsWith(std::string_view s, std::string_view prefix);

// Where a message body ends: a length, chunked coding (passed through as
// is, parsed only to find its end), until the connection closes, or none.
class Body {
 public:
  enum Kind { kNone, kLength, kChunked, kUntilClose };
  void Reset(Kind kind, uint64_t length = 0);
  Kind kind() const { return kind_; }
  bool done() const { return done_; }
  // How many of the n bytes at p belong to the body (all of them until it
  // ends); false on a chunked coding error.
  bool Consume(const uint8_t* p, size_t n, size_t* used) { return Decode(p, n, used, nullptr, nullptr, nullptr); }
  // Consume, and also hand the payload (chunked coding removed) to `sink`
  // in pieces, and append the trailer section's field lines to `trailers`
  // (false when they pass kMaxTrailers). For a front end that frames the
  // body anew (HTTP/2).
  using Sink = void (*)(void* ctx, const uint8_t* data, size_t len);
  bool Decode(const uint8_t* p, size_t n, size_t* used, Sink sink, void* ctx, std::string* trailers);
  static constexpr size_t kMaxTrailers = 16 * 1024;

 private:
  enum ChunkState { kSize, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailerStart, kTrailer, kTrailerLf, kEndLf };
  Kind kind_ = kNone;
  uint64_t left_ = 0;
  ChunkState chunk_ = kSize;
  int digits_ = 0;
  bool done_ = true;
};

// How a final response's body is framed (RFC 9112 §6.3): none for a HEAD
// request, 204 and 304; chunked when that is the only coding; a valid
// Content-Length; otherwise until the connection closes. Returns whether
// the backend connection may carry another request after it.
bool FrameResponse(const Head& head, bool head_request, const ConnectionOptions& connection, Body* body);

// encodeURIComponent for ASCII text (what the X-SSL-*-CERT headers carry).
std::string UriComponent(std::string_view s);

}  // namespace http
}  // namespace rustls_node

#endif
