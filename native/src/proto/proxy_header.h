// The PROXY header (HAProxy, "The PROXY protocol", versions 1 and 2) that
// goes to a backend before anything else: the one builder of the addon.
#ifndef RUSTLS_NODE_PROTO_PROXY_HEADER_H
#define RUSTLS_NODE_PROTO_PROXY_HEADER_H

#include <cstdint>
#include <string>
#include <vector>

#include "glue.h"

namespace rustls_node {

// Version 1 (text, §2.1) or 2 (binary, §2.2) for the client connection on
// `fd`: its addresses (IPv4, IPv6, IPv4-mapped shown as IPv4; anything else
// UNKNOWN / LOCAL family), and for v2 the TLVs: ALPN, authority (the SNI),
// and SSL (version, client CN, cipher by OpenSSL name, `key_alg` of the
// certificate we presented, e.g. "EC256").
std::vector<uint8_t> BuildProxyHeader(int version, int fd, rustls_connection* conn, const std::string& sni,
                                      const std::string& key_alg);

}  // namespace rustls_node

#endif
