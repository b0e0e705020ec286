// DER, just enough to read a certificate's subject Common Name (the PROXY
// v2 SSL_CN TLV): no general ASN.1 parser, every length checked.
#ifndef RUSTLS_NODE_PROTO_DER_H
#define RUSTLS_NODE_PROTO_DER_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace rustls_node {

struct Der {
  const uint8_t* p;
  size_t len;
};

// Reads one TLV at *in (advancing it); false if it does not fit.
bool DerNext(Der* in, uint8_t* tag, Der* value);

// The first CN (2.5.4.3) of the certificate's subject, or empty.
std::string SubjectCommonName(const uint8_t* der, size_t len);

}  // namespace rustls_node

#endif
