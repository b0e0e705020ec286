// HostRouter: the JS handle on a Router (tls/router.h), the virtual hosts of
// a server port. It keeps the ServerConfig objects it routes to alive, and
// lets JS add and remove ACME tls-alpn-01 challenge entries.
#ifndef RUSTLS_NODE_JS_ROUTER_H
#define RUSTLS_NODE_JS_ROUTER_H

#include <string>
#include <unordered_map>
#include <vector>

#include "js/common.h"
#include "tls/router.h"

namespace rustls_node {

class HostRouter : public Napi::ObjectWrap<HostRouter> {
 public:
  static Napi::Function Init(Napi::Env env);
  static HostRouter* FromValue(Napi::Value value, const char* name);

  // new HostRouter([{names: string[], config: ServerConfig}], {strictSNI, deferred})
  explicit HostRouter(const Napi::CallbackInfo& info);
  ~HostRouter() override { Close(); }

  bool closed() const { return router_.empty(); }
  bool live() const { return !closed(); }
  const Router& router() const { return router_; }

 private:
  Napi::Value SelectJs(const Napi::CallbackInfo& info);
  // setChallenge(name, config | null): adds, replaces or removes one entry.
  Napi::Value SetChallenge(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  Router router_{true, false};
  // Keep the ServerConfig objects (and so their Rust configs) alive.
  std::vector<Napi::ObjectReference> host_refs_;
  std::unordered_map<std::string, Napi::ObjectReference> challenge_refs_;
  HandleCount count_;
};

}  // namespace rustls_node

#endif
