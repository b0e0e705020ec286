#include "proto/der.h"

#include <cstring>

namespace rustls_node {

bool DerNext(Der* in, uint8_t* tag, Der* value) {
  if (in->len < 2) return false;
  *tag = in->p[0];
  size_t n = in->p[1];
  size_t head = 2;
  if (n & 0x80) {
    size_t bytes = n & 0x7f;
    if (bytes == 0 || bytes > 4 || in->len < 2 + bytes) return false;
    n = 0;
    for (size_t i = 0; i < bytes; i++) n = (n << 8) | in->p[2 + i];
    head += bytes;
  }
  if (in->len - head < n) return false;
  value->p = in->p + head;
  value->len = n;
  in->p += head + n;
  in->len -= head + n;
  return true;
}

std::string SubjectCommonName(const uint8_t* der, size_t len) {
  static const uint8_t kCnOid[] = {0x55, 0x04, 0x03};
  Der in{der, len};
  Der cert, tbs;
  uint8_t tag;
  if (!DerNext(&in, &tag, &cert) || tag != 0x30) return "";
  if (!DerNext(&cert, &tag, &tbs) || tag != 0x30) return "";
  Der field;
  // [0] version (optional), serial, signature, issuer, validity, subject.
  if (!DerNext(&tbs, &tag, &field)) return "";
  if (tag == 0xa0 && !DerNext(&tbs, &tag, &field)) return "";
  for (int i = 0; i < 3; i++) {
    if (!DerNext(&tbs, &tag, &field)) return "";
  }
  Der subject;
  if (!DerNext(&tbs, &tag, &subject) || tag != 0x30) return "";
  Der rdn;
  while (DerNext(&subject, &tag, &rdn)) {
    Der attr;
    while (DerNext(&rdn, &tag, &attr)) {
      Der oid, value;
      uint8_t otag, vtag;
      if (!DerNext(&attr, &otag, &oid) || otag != 0x06) continue;
      if (!DerNext(&attr, &vtag, &value)) continue;
      if (oid.len == sizeof kCnOid && std::memcmp(oid.p, kCnOid, sizeof kCnOid) == 0) {
        return std::string(reinterpret_cast<const char*>(value.p), value.len);
      }
    }
  }
  return "";
}

}  // namespace rustls_node
