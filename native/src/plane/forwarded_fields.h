// The fields http mode adds to every request it forwards (SPEC §5):
// X-Forwarded-For, X-Forwarded-Proto: https, and with the host's
// StdEnvVars / ExportCertData the TLS variables of SPEC §4.5 as X-SSL-*
// fields, in the order getEnvVars() gives them (SSL_PROTOCOL as
// X-SSL-PROTOCOL, PEM values URL-encoded). Built once per connection, for
// every front end; what a client sent under these names is removed first
// (http::kFieldReserved).
#ifndef RUSTLS_NODE_FORWARDED_FIELDS_H
#define RUSTLS_NODE_FORWARDED_FIELDS_H

#include <string>

// rustls types come through js/common.h, which includes napi.h before
// glue.h (glue.h reads rustls.h as C23, which must not be the first
// include of <stdarg.h>).
#include "plane/splice.h"

namespace rustls_node {

// As HTTP/1.1 field lines ("Name: value\r\n" each), the same for every
// request of a connection: computed once per connection. `certificate` is
// the index of the certificate the handshake chose (SSL_SERVER_CERT).
std::string ForwardedFieldLines(const BackendTarget::Http& settings, int client_fd, rustls_connection* conn,
                                const std::string& sni, int certificate);

}  // namespace rustls_node

#endif
