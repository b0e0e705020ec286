// Which host serves an HTTP request on a connection of http mode, by the
// rules of SPEC §4.2 (as lib/authority.ts checkAuthority decides them for
// the library's createHttpsServer), for both native fronts:
//   - no SNI on a port with several hosts: 403;
//   - a Host / :authority naming another configured host: 421, unless both
//     hosts have the same certificates and compatible TLS settings (equal
//     BackendTarget::Http::coalesce_key) and the other is in http mode: then
//     that host's backend serves it (clients may coalesce such connections,
//     RFC 9113 §9.1.1);
//   - no authority, an IP address, or a name no host lists: the connection's
//     host.
#ifndef RUSTLS_NODE_REQUEST_ROUTE_H
#define RUSTLS_NODE_REQUEST_ROUTE_H

#include <string>
#include <string_view>

#include "plane/listener.h"

namespace rustls_node {

struct RequestRoute {
  int status = 0;  // 0: forward to `target`; 403 or 421: answer so
  int host = -1;
  BackendTarget* target = nullptr;
  const char* reason = nullptr;  // of a 403 / 421, for the answer and the log line
};

RequestRoute RouteRequest(const RouteSet& set, int host, BackendTarget* own, bool sni_sent, std::string_view authority);

// The host part of a Host / :authority value: no port, no brackets, lower
// case, no trailing dot (lib/authority.ts authorityHost).
std::string AuthorityHost(std::string_view authority);

}  // namespace rustls_node

#endif
