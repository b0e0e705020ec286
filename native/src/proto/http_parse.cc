#include "proto/http_parse.h"

#include <cstring>

namespace rustls_node {
namespace http {

namespace {

// RFC 9110 §5.6.2 tchar.
bool IsTchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

// Field value bytes (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB.
bool IsValueByte(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f); }

bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }

int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "HTTP/1.<digit>" at the start of s.
bool ParseVersion(std::string_view s, int* minor) {
  if (s.size() != 8 || s.compare(0, 7, "HTTP/1.") != 0 || !IsDigit(static_cast<unsigned char>(s[7]))) return false;
  *minor = s[7] - '0';
  return true;
}

bool ParseRequestLine(std::string_view line, Head* out) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  for (size_t i = 0; i < sp1; i++) {
    if (!IsTchar(static_cast<unsigned char>(line[i]))) return false;
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  for (size_t i = sp1 + 1; i < sp2; i++) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if (c < 0x21 || c > 0x7e) return false;
  }
  out->method = line.substr(0, sp1);
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  return ParseVersion(line.substr(sp2 + 1), &out->minor);
}

bool ParseStatusLine(std::string_view line, Head* out) {
  if (line.size() < 12 || !ParseVersion(line.substr(0, 8), &out->minor) || line[8] != ' ') return false;
  for (int i = 9; i < 12; i++) {
    if (!IsDigit(static_cast<unsigned char>(line[i]))) return false;
  }
  out->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (line.size() == 12) return true;
  if (line[12] != ' ') return false;
  out->reason = line.substr(13);
  for (char c : out->reason) {
    if (!IsValueByte(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool ParseField(std::string_view line, std::string_view with_crlf, Head* out) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (size_t i = 0; i < colon; i++) {
    if (!IsTchar(static_cast<unsigned char>(line[i]))) return false;
  }
  std::string_view value = line.substr(colon + 1);
  for (char c : value) {
    if (!IsValueByte(static_cast<unsigned char>(c))) return false;
  }
  out->fields.push_back({line.substr(0, colon), TrimOws(value), with_crlf});
  return true;
}

}  // namespace

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] + 32) : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] + 32) : b[i];
    if (x != y) return false;
  }
  return true;
}

bool IStartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && IEquals(s.substr(0, prefix.size()), prefix);
}

bool ConnectionOptions::Lists(std::string_view name) const {
  for (std::string_view t : listed) {
    if (IEquals(t, name)) return true;
  }
  return false;
}

ConnectionOptions ConnectionTokens(const Head& head) {
  ConnectionOptions out;
  for (const Field& f : head.fields) {
    if (!IEquals(f.name, "connection")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view token = TrimOws(v.substr(0, comma));
      if (IEquals(token, "close"))
        out.close = true;
      else if (!token.empty())
        out.listed.push_back(token);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool ParseContentLength(std::string_view value, uint64_t* length) {
  if (value.empty() || value.size() > 15) return false;
  uint64_t n = 0;
  for (char c : value) {
    if (!IsDigit(static_cast<unsigned char>(c))) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *length = n;
  return true;
}

bool ContentLength(const Head& head, bool* present, uint64_t* length) {
  *present = false;
  for (const Field& f : head.fields) {
    if (!IEquals(f.name, "content-length")) continue;
    uint64_t n = 0;
    if (!ParseContentLength(f.value, &n)) return false;
    if (*present && n != *length) return false;
    *present = true;
    *length = n;
  }
  return true;
}

bool FrameResponse(const Head& head, bool head_request, const ConnectionOptions& connection, Body* body) {
  bool chunked = false;
  bool other_coding = false;
  for (const Field& f : head.fields) {
    if (!IEquals(f.name, "transfer-encoding")) continue;
    if (IEquals(f.value, "chunked"))
      chunked = true;
    else
      other_coding = true;
  }
  bool has_length = false;
  uint64_t length = 0;
  bool length_ok = ContentLength(head, &has_length, &length);
  if (head_request || head.status == 204 || head.status == 304)
    body->Reset(Body::kNone);
  else if (chunked && !other_coding)
    body->Reset(Body::kChunked);
  else if (has_length && length_ok && !chunked && !other_coding)
    body->Reset(Body::kLength, length);
  else
    body->Reset(Body::kUntilClose);
  return head.minor == 1 && !connection.close && body->kind() != Body::kUntilClose;
}

Parse ParseHead(std::string_view data, bool is_request, Head* out) {
  out->fields.clear();
  out->status = 0;
  out->reason = {};
  size_t pos = 0;
  bool first = true;
  for (;;) {
    size_t lf = data.find('\n', pos);
    if (lf == std::string_view::npos) return Parse::kIncomplete;
    // Every line ends with CRLF; a bare LF is refused (RFC 9112 §2.2
    // allows it, Node's parser does not, and two parsers must agree).
    if (lf == pos || data[lf - 1] != '\r') return Parse::kBad;
    std::string_view line = data.substr(pos, lf - 1 - pos);
    std::string_view with_crlf = data.substr(pos, lf + 1 - pos);
    pos = lf + 1;
    if (first) {
      first = false;
      if (!(is_request ? ParseRequestLine(line, out) : ParseStatusLine(line, out))) return Parse::kBad;
      continue;
    }
    if (line.empty()) {
      out->length = pos;
      return Parse::kOk;
    }
    // obs-fold (RFC 9112 §5.2) is not accepted here.
    if (line.front() == ' ' || line.front() == '\t') return Parse::kBad;
    if (!ParseField(line, with_crlf, out)) return Parse::kBad;
  }
}

void Body::Reset(Kind kind, uint64_t length) {
  kind_ = kind;
  left_ = length;
  chunk_ = kSize;
  digits_ = 0;
  done_ = kind == kNone || (kind == kLength && length == 0);
}

bool Body::Decode(const uint8_t* p, size_t n, size_t* used, Sink sink, void* ctx, std::string* trailers) {
  *used = 0;
  if (done_) return true;
  if (kind_ == kUntilClose) {
    *used = n;
    if (sink != nullptr && n > 0) sink(ctx, p, n);
    return true;
  }
  if (kind_ == kLength) {
    size_t k = left_ < n ? static_cast<size_t>(left_) : n;
    left_ -= k;
    *used = k;
    done_ = left_ == 0;
    if (sink != nullptr && k > 0) sink(ctx, p, k);
    return true;
  }
  auto keep = [&](char c) {
    if (trailers == nullptr) return true;
    trailers->push_back(c);
    return trailers->size() <= kMaxTrailers;
  };
  size_t i = 0;
  while (i < n && !done_) {
    unsigned char c = p[i];
    switch (chunk_) {
      case kSize: {
        int v = HexValue(c);
        if (v >= 0) {
          // 15 hex digits: far beyond any body, short of overflow.
          if (++digits_ > 15) return false;
          left_ = left_ * 16 + static_cast<uint64_t>(v);
        } else if (digits_ > 0 && (c == ';' || c == ' ' || c == '\t')) {
          chunk_ = kExtension;
        } else if (digits_ > 0 && c == '\r') {
          chunk_ = kSizeLf;
        } else {
          return false;
        }
        i++;
        break;
      }
      case kExtension:
        if (c == '\r')
          chunk_ = kSizeLf;
        else if (c == '\n' || c == 0)
          return false;
        i++;
        break;
      case kSizeLf:
        if (c != '\n') return false;
        chunk_ = left_ == 0 ? kTrailerStart : kData;
        i++;
        break;
      case kData: {
        size_t k = left_ < n - i ? static_cast<size_t>(left_) : n - i;
        left_ -= k;
        if (sink != nullptr && k > 0) sink(ctx, p + i, k);
        i += k;
        if (left_ == 0) chunk_ = kDataCr;
        break;
      }
      case kDataCr:
        if (c != '\r') return false;
        chunk_ = kDataLf;
        i++;
        break;
      case kDataLf:
        if (c != '\n') return false;
        chunk_ = kSize;
        digits_ = 0;
        left_ = 0;
        i++;
        break;
      case kTrailerStart:
        chunk_ = c == '\r' ? kEndLf : kTrailer;
        if (c == '\n') return false;
        if (c != '\r' && !keep(static_cast<char>(c))) return false;
        i++;
        break;
      case kTrailer:
        if (c == '\r')
          chunk_ = kTrailerLf;
        else if (c == '\n')
          return false;
        if (!keep(static_cast<char>(c))) return false;
        i++;
        break;
      case kTrailerLf:
        if (c != '\n') return false;
        if (!keep('\n')) return false;
        chunk_ = kTrailerStart;
        i++;
        break;
      case kEndLf:
        if (c != '\n') return false;
        done_ = true;
        i++;
        break;
    }
  }
  *used = i;
  return true;
}

std::string UriComponent(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        std::strchr("-_.!~*'()", c) != nullptr) {
      if (c != 0) {
        out.push_back(static_cast<char>(c));
        continue;
      }
    }
    out.push_back('%');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace http
}  // namespace rustls_node
