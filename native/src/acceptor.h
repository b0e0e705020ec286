// HostRouter: the virtual hosts of a server port. A server connection starts
// on a rustls_acceptor; once the ClientHello is read, the router picks the
// host by SNI and the connection continues with that host's config
// (rustls_accepted_into_connection). Configs are built once per host, never
// per connection.
//
// Besides the hosts, a challenge table answers ACME tls-alpn-01 (RFC 8737):
// name -> a config whose only ALPN protocol is acme-tls/1 and whose
// certificate is the validation certificate. It is consulted before host
// selection, and only for a ClientHello that offers acme-tls/1, so normal
// clients never see a validation certificate. Entries come and go without
// touching the hosts' configs.
#ifndef RUSTLS_NODE_ACCEPTOR_H
#define RUSTLS_NODE_ACCEPTOR_H

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace rustls_node {

class ServerConfig;

class HostRouter : public Napi::ObjectWrap<HostRouter> {
 public:
  static Napi::Function Init(Napi::Env env);
  static HostRouter* FromValue(Napi::Value value, const char* name);

  // Selection results besides a host index.
  static constexpr int kRefused = -1;    // strict SNI and no host for the name
  static constexpr int kChallenge = -2;  // an ACME tls-alpn-01 validation handshake
  static constexpr int kDeferred = -3;   // the application picks the config (SNICallback)

  // The outcome of routing one ClientHello: `host` is a host index or one of
  // the values above; `config` is what the connection continues with (NULL
  // for kRefused, kDeferred, or a destroyed config).
  struct Route {
    int host;
    const rustls_server_config* config;
  };

  // new HostRouter([{names: string[], config: ServerConfig}], {strictSNI, deferred})
  explicit HostRouter(const Napi::CallbackInfo& info);
  ~HostRouter() override { Close(); }

  bool closed() const { return hosts_.empty(); }
  bool live() const { return !closed(); }
  // With `deferred`, the ClientHello is handed to JS (SNICallback-style)
  // instead of being routed here.
  bool deferred() const { return deferred_; }
  // The whole routing decision for a ClientHello, in order: an ACME
  // challenge (the client offers acme-tls/1 and the SNI names a challenge
  // entry), deferred routing, then host selection by SNI. Every accept path
  // (Connection::Accepting, a native listener) calls this one method; it
  // calls no JS. `hello` is borrowed for the call only.
  Route Choose(std::string_view server_name, const rustls_accepted* hello) const;
  // Host index for the SNI the client sent (empty: none sent).
  int Select(std::string_view server_name) const;
  // The host a name (exact, then "*." alias) belongs to, or -1; no
  // strict-SNI fallback (lib/authority.ts hostIndexFor, natively).
  int Find(std::string_view name) const;
  size_t size() const { return hosts_.size(); }
  // NULL if the host's config was destroyed.
  const rustls_server_config* ConfigAt(int index) const;

 private:
  Napi::Value SelectJs(const Napi::CallbackInfo& info);
  // setChallenge(name, config | null): adds, replaces or removes one entry.
  Napi::Value SetChallenge(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  struct Host {
    Napi::ObjectReference ref;  // keeps the ServerConfig object alive
    ServerConfig* config;
  };
  std::vector<Host> hosts_;
  // Lower-case names; wildcard keys are the suffix after "*" (".example.com").
  std::unordered_map<std::string, int> exact_;
  std::unordered_map<std::string, int> wildcard_;
  // Lower-case exact names (RFC 8737 §3: no wildcards) → validation config.
  std::unordered_map<std::string, Host> challenges_;
  bool strict_ = true;
  bool deferred_ = false;
  HandleCount count_;
};

// Lower-cases ASCII and drops one trailing dot: DNS names compare that way
// (RFC 4343; a trailing dot names the same host).
std::string NormalizeHostName(std::string_view name);

// Whether the ClientHello offers the ALPN protocol "acme-tls/1" (RFC 8737 §6).
bool OffersAcmeTls(const rustls_accepted* hello);

// What a client is told, and what is reported, when a connection fails
// before it has a rustls_connection: rustls_acceptor_accept or
// rustls_accepted_into_connection returned `code` with the alert rustls
// queued (`queued`, may be NULL; taken and freed here), or the router
// refused the name (`code` kUnrecognizedName or kNoHost, `queued` NULL). Every accept
// path calls this one function and sends `alert` as it is (plaintext: no
// keys exist yet). Where rustls' acceptor differs from what rustls itself
// sends on a connection, or from the RFCs:
// - strict SNI refusal: unrecognized_name (RFC 6066 §3); no host at all
//   (`code` kNoHost: the server is closing): internal_error, a local fault;
// - no configured certificate can sign with a scheme the client offers, or
//   the client offers no suite we have: rustls' resolver contract makes
//   that access_denied ("no server certificate chain resolved"), which
//   clients read as an authorization failure; the peer is owed
//   handshake_failure (RFC 8446 §4.1.1, RFC 5246 §7.4.1.3), which is also
//   what rustls sends when it finds no common suite, and the code reported
//   is rustls' for that case (PEER_INCOMPATIBLE_ERROR);
// - a first handshake message that is not a ClientHello: the acceptor
//   queues nothing; rustls sends unexpected_message for an out-of-order
//   handshake message everywhere else (RFC 8446 §6.2).
struct AcceptFailure {
  uint32_t code;
  std::vector<uint8_t> alert;  // bytes to send; empty: none
};
AcceptFailure DecideAcceptFailure(uint32_t code, rustls_accepted_alert* queued);

}  // namespace rustls_node

#endif
