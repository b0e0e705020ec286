// Router: the virtual hosts of a server port, as plain data (no N-API). A
// server stream reads the ClientHello with rustls' acceptor; the router
// then picks the host by SNI and the stream continues with that host's
// config (rustls_accepted_into_connection). Configs are built once per
// host, never per connection.
//
// Besides the hosts, a challenge table answers ACME tls-alpn-01 (RFC 8737):
// name -> a config whose only ALPN protocol is acme-tls/1 and whose
// certificate is the validation certificate. It is consulted before host
// selection, and only for a ClientHello that offers acme-tls/1, so normal
// clients never see a validation certificate. Entries come and go without
// touching the hosts' configs.
//
// js/router.cc wraps it for JS (HostRouter); every accept path
// (TlsStream::Accept) routes through Choose.
#ifndef RUSTLS_NODE_TLS_ROUTER_H
#define RUSTLS_NODE_TLS_ROUTER_H

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "abi.h"
#include "glue.h"

namespace rustls_node {

// A server config as routers see it: JS may destroy the config (its
// ServerConfig handle frees the Rust reference and clears `config`), after
// which routing to it refuses the connection instead of touching freed
// memory. Connections already accepted hold their own Rust reference.
struct ServerConfigSlot {
  const rustls_server_config* config = nullptr;
};
using ConfigRef = std::shared_ptr<const ServerConfigSlot>;

class Router {
 public:
  // The outcome of routing one ClientHello: `host` is a host index or a
  // HostIndex (kHostRefused, kHostChallenge, kHostDeferred); `config` is
  // what the connection continues with (NULL for refused, deferred, or a
  // destroyed config).
  struct Route {
    int host;
    const rustls_server_config* config;
    // What `config` came from: read again after a pause (it may have been
    // destroyed meanwhile). NULL when `config` is.
    ConfigRef ref;
  };

  Router(bool strict_sni, bool deferred) : strict_(strict_sni), deferred_(deferred) {}

  // Adds host number size(); its names are exact or "*." wildcards. The
  // first host that names a name owns it, as in mod_tls.
  void AddHost(ConfigRef config, const std::vector<std::string>& names);
  // Adds, replaces (`config` set) or removes (NULL) one tls-alpn-01 entry
  // for an exact, already normalized name.
  void SetChallenge(const std::string& name, ConfigRef config);
  // Forgets every host and challenge: routing refuses from now on.
  void Clear();

  bool empty() const { return hosts_.empty(); }
  size_t size() const { return hosts_.size(); }
  bool deferred() const { return deferred_; }

  // The whole routing decision for a ClientHello, in order: an ACME
  // challenge (the client offers acme-tls/1 and the SNI names a challenge
  // entry), deferred routing, then host selection by SNI. `hello` is
  // borrowed for the call only.
  Route Choose(std::string_view server_name, const rustls_accepted* hello) const;
  // Host index for the SNI the client sent (empty: none sent).
  int Select(std::string_view server_name) const;
  // The host a name (exact, then "*." alias) belongs to, or -1; no
  // strict-SNI fallback (lib/authority.ts hostIndexFor, natively).
  int Find(std::string_view name) const;
  // NULL if out of range or the host's config was destroyed.
  const rustls_server_config* ConfigAt(int index) const;

 private:
  std::vector<ConfigRef> hosts_;
  // Lower-case names; wildcard keys are the suffix after "*" (".example.com").
  std::unordered_map<std::string, int> exact_;
  std::unordered_map<std::string, int> wildcard_;
  // Lower-case exact names (RFC 8737 §3: no wildcards) → validation config.
  std::unordered_map<std::string, ConfigRef> challenges_;
  bool strict_;
  bool deferred_;
};

// Lower-cases ASCII and drops one trailing dot: DNS names compare that way
// (RFC 4343; a trailing dot names the same host).
std::string NormalizeHostName(std::string_view name);

// Whether the ClientHello offers the ALPN protocol "acme-tls/1" (RFC 8737 §6).
bool OffersAcmeTls(const rustls_accepted* hello);

}  // namespace rustls_node

#endif
