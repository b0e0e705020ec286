// ServerConfig and ClientConfig: read-only rustls configs built once from a
// plain options object (see lib/native.ts for its shape) and shared by every
// connection that uses them.
#ifndef RUSTLS_NODE_CONFIG_H
#define RUSTLS_NODE_CONFIG_H

#include <memory>
#include <vector>

#include "js/common.h"
#include "tls/router.h"

namespace rustls_node {

class ServerConfig : public Napi::ObjectWrap<ServerConfig> {
 public:
  static Napi::Function Init(Napi::Env env);
  static ServerConfig* FromValue(Napi::Value value, const char* name);

  explicit ServerConfig(const Napi::CallbackInfo& info);
  ~ServerConfig() override { Close(); }

  // NULL once destroyed: users of a config check before each use.
  const rustls_server_config* get() const { return slot_->config; }
  bool live() const { return slot_->config != nullptr; }
  // What routers hold: it reads NULL once this handle is destroyed.
  ConfigRef ref() const { return slot_; }

 private:
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  std::shared_ptr<ServerConfigSlot> slot_ = std::make_shared<ServerConfigSlot>();
  HandleCount count_;
};

class ClientConfig : public Napi::ObjectWrap<ClientConfig> {
 public:
  static Napi::Function Init(Napi::Env env);
  static ClientConfig* FromValue(Napi::Value value, const char* name);

  explicit ClientConfig(const Napi::CallbackInfo& info);
  ~ClientConfig() override { Close(); }

  const rustls_client_config* get() const { return config_; }
  bool live() const { return config_ != nullptr; }

 private:
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  const rustls_client_config* config_ = nullptr;
  HandleCount count_;
};

// supportedCipherSuites(): [{id, name, version}] in the provider's order.
Napi::Value SupportedCipherSuites(const Napi::CallbackInfo& info);

}  // namespace rustls_node

#endif
