// HostRouter: the virtual hosts of a server port. A server connection starts
// on a rustls_acceptor; once the ClientHello is read, the router picks the
// host by SNI and the connection continues with that host's config
// (rustls_accepted_into_connection). Configs are built once per host, never
// per connection.
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
  static constexpr int kRefused = -1;  // strict SNI and no host for the name

  // new HostRouter([{names: string[], config: ServerConfig}], {strictSNI, deferred})
  explicit HostRouter(const Napi::CallbackInfo& info);
  ~HostRouter() override { Close(); }

  bool closed() const { return hosts_.empty(); }
  bool live() const { return !closed(); }
  // With `deferred`, the ClientHello is handed to JS (SNICallback-style)
  // instead of being routed here.
  bool deferred() const { return deferred_; }
  // Host index for the SNI the client sent (empty: none sent).
  int Select(std::string_view server_name) const;
  // NULL if the host's config was destroyed.
  const rustls_server_config* ConfigAt(int index) const;

 private:
  Napi::Value SelectJs(const Napi::CallbackInfo& info);
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
  bool strict_ = true;
  bool deferred_ = false;
  HandleCount count_;
};

// Lower-cases ASCII and drops one trailing dot: DNS names compare that way
// (RFC 4343; a trailing dot names the same host).
std::string NormalizeHostName(std::string_view name);

}  // namespace rustls_node

#endif
