// The names of cipher suites by id, set once from lib/cipher-table.ts
// (setCipherNames): OpenSSL's, which the PROXY v2 SSL_CIPHER sub-TLV carries
// (HAProxy sends them so), and IANA's, for X-SSL-CIPHER.
#ifndef RUSTLS_NODE_PROTO_CIPHER_NAMES_H
#define RUSTLS_NODE_PROTO_CIPHER_NAMES_H

#include <cstdint>
#include <string>

namespace rustls_node {

// Empty for an id the table does not have.
const std::string& CipherName(uint16_t id, bool iana);
void SetCipherName(uint16_t id, bool iana, std::string name);

}  // namespace rustls_node

#endif
