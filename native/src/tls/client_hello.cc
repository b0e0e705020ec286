#include "tls/client_hello.h"

namespace rustls_node {

namespace {

struct Reader {
  const uint8_t* p;
  size_t left;
  bool ok = true;

  size_t Int(size_t bytes) {
    if (!ok || left < bytes) {
      ok = false;
      return 0;
    }
    size_t v = 0;
    for (size_t i = 0; i < bytes; i++) v = (v << 8) | p[i];
    p += bytes;
    left -= bytes;
    return v;
  }
  Reader Sub(size_t n) {
    if (!ok || left < n) {
      ok = false;
      return Reader{p, 0, false};
    }
    Reader r{p, n};
    p += n;
    left -= n;
    return r;
  }
};

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kSupportedVersions = 43;
constexpr size_t kPreSharedKey = 41;

}  // namespace

std::vector<uint8_t> SessionKeyOf(const uint8_t* records, size_t len, bool tls12, bool tls13) {
  // The handshake bytes, record layer removed (a hello may span records).
  std::vector<uint8_t> hs;
  Reader in{records, len};
  while (in.ok && in.left > 0) {
    size_t type = in.Int(1);
    in.Int(2);
    size_t n = in.Int(2);
    Reader body = in.Sub(n);
    if (!in.ok || type != kHandshakeRecord) break;
    hs.insert(hs.end(), body.p, body.p + body.left);
  }
  Reader h{hs.data(), hs.size()};
  if (h.Int(1) != kClientHello) return {};
  Reader hello = h.Sub(h.Int(3));
  hello.Int(2);   // legacy_version
  hello.Sub(32);  // random
  Reader session_id = hello.Sub(hello.Int(1));
  hello.Sub(hello.Int(2));  // cipher_suites
  hello.Sub(hello.Int(1));  // compression_methods
  if (!hello.ok) return {};
  bool offers13 = false;
  std::vector<uint8_t> identity;
  if (hello.left >= 2) {
    Reader exts = hello.Sub(hello.Int(2));
    while (exts.ok && exts.left >= 4) {
      size_t type = exts.Int(2);
      Reader ext = exts.Sub(exts.Int(2));
      if (!exts.ok) return {};
      if (type == kSupportedVersions) {
        Reader list = ext.Sub(ext.Int(1));
        while (list.ok && list.left >= 2) {
          if (list.Int(2) == 0x0304) offers13 = true;
        }
      } else if (type == kPreSharedKey) {
        Reader ids = ext.Sub(ext.Int(2));
        Reader first = ids.Sub(ids.Int(2));
        if (ids.ok && first.ok && first.left > 0) identity.assign(first.p, first.p + first.left);
      }
    }
  }
  if (offers13) return tls13 ? identity : std::vector<uint8_t>();
  if (!tls12 || session_id.left == 0) return {};
  return std::vector<uint8_t>(session_id.p, session_id.p + session_id.left);
}

}  // namespace rustls_node
