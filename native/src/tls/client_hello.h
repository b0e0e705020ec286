// Reading the one thing rustls-ffi's acceptor does not expose about a
// ClientHello: which stored session it asks to resume (RFC 5246 §7.4.1.2
// session_id; RFC 8446 §4.2.11 pre_shared_key identities). Strict: any
// length that does not fit gives "none", never a read past the bytes.
#ifndef RUSTLS_NODE_TLS_CLIENT_HELLO_H
#define RUSTLS_NODE_TLS_CLIENT_HELLO_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rustls_node {

// `records`: the TLS records that carried the ClientHello, as read. The key
// a server's session store would be asked for: with TLS 1.3 offered
// (supported_versions), the first PSK identity when `tls13` (a server that
// issues stateful tickets: its identities are store keys), else none (a
// TLS 1.3 client's legacy_session_id is random, RFC 8446 §4.1.2); without
// TLS 1.3, the legacy session id when `tls12`. Empty: nothing to look up.
std::vector<uint8_t> SessionKeyOf(const uint8_t* records, size_t len, bool tls12, bool tls13);

}  // namespace rustls_node

#endif
