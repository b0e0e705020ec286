// SessionCache and Ticketer: handles on the Rust glue's server session store
// and shared-key ticketer (native/rust), attached to server configs.
#ifndef RUSTLS_NODE_SESSION_H
#define RUSTLS_NODE_SESSION_H

#include "js/common.h"

namespace rustls_node {

class SessionCache : public Napi::ObjectWrap<SessionCache> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Returns nullptr for undefined/null; throws on anything but a live cache.
  static const rn_session_cache* FromOptional(Napi::Value value, bool* ok);

  // new SessionCache(size, {report}?): `report` queues every new session
  // for takeNew(); size 0 (only with report) keeps none in memory.
  explicit SessionCache(const Napi::CallbackInfo& info);
  ~SessionCache() override { Close(); }

  bool live() const { return cache_ != nullptr; }

 private:
  Napi::Value SetReport(const Napi::CallbackInfo& info);
  Napi::Value TakeNew(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  rn_session_cache* cache_ = nullptr;
  HandleCount count_;
};

class Ticketer : public Napi::ObjectWrap<Ticketer> {
 public:
  static Napi::Function Init(Napi::Env env);
  static const rn_ticketer* FromOptional(Napi::Value value, bool* ok);

  // new Ticketer(keyMaterial, lifetimeSeconds)
  explicit Ticketer(const Napi::CallbackInfo& info);
  ~Ticketer() override { Close(); }

  bool live() const { return ticketer_ != nullptr; }

 private:
  // setKeys(keyMaterial, lifetimeSeconds): rotates the keys of every config
  // built with this ticketer, in place (rn_ticketer_set_keys).
  Napi::Value SetKeys(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  rn_ticketer* ticketer_ = nullptr;
  HandleCount count_;
};

}  // namespace rustls_node

#endif
