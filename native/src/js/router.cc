#include "js/router.h"

#include "js/config.h"

namespace rustls_node {

Napi::Function HostRouter::Init(Napi::Env env) {
  return DefineClass(env, "HostRouter",
                     {
                         InstanceMethod<&HostRouter::SelectJs>("select"),
                         InstanceMethod<&HostRouter::SetChallenge>("setChallenge"),
                         InstanceMethod<&HostRouter::Destroy>("destroy"),
                     });
}

HostRouter* HostRouter::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<HostRouter>(value, kHostRouterTag, name, "HostRouter");
}

HostRouter::HostRouter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HostRouter>(info), count_(kHostRouterHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kHostRouterTag);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", "hosts must be a non-empty array");
    return;
  }
  bool strict = true;
  bool deferred = false;
  if (info[1].IsObject()) {
    Napi::Object options = info[1].As<Napi::Object>();
    Napi::Value s = options.Get("strictSNI");
    strict = s.IsUndefined() || s.ToBoolean().Value();
    deferred = options.Get("deferred").ToBoolean().Value();
  }
  Router router(strict, deferred);
  std::vector<Napi::ObjectReference> refs;
  Napi::Array hosts = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < hosts.Length(); i++) {
    Napi::Value entry = hosts.Get(i);
    if (!entry.IsObject()) {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "hosts[] must be objects");
      return;
    }
    Napi::Object host = entry.As<Napi::Object>();
    ServerConfig* config = ServerConfig::FromValue(host.Get("config"), "hosts[].config");
    if (config == nullptr) return;
    std::vector<std::string> names;
    Napi::Value list = host.Get("names");
    if (list.IsArray()) {
      Napi::Array a = list.As<Napi::Array>();
      for (uint32_t j = 0; j < a.Length(); j++) {
        Napi::Value name = a.Get(j);
        if (name.IsString()) names.push_back(name.As<Napi::String>().Utf8Value());
      }
    }
    router.AddHost(config->ref(), names);
    refs.push_back(Napi::Persistent(host.Get("config").As<Napi::Object>()));
  }
  router_ = std::move(router);
  host_refs_ = std::move(refs);
  count_.Acquire(env);
}

Napi::Value HostRouter::SelectJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed()) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "HostRouter was destroyed");
    return env.Undefined();
  }
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return Napi::Number::New(env, router_.Select(name));
}

Napi::Value HostRouter::SetChallenge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed()) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "HostRouter was destroyed");
    return env.Undefined();
  }
  if (!info[0].IsString()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "setChallenge(name, config | null): name must be a string");
    return env.Undefined();
  }
  std::string name = NormalizeHostName(info[0].As<Napi::String>().Utf8Value());
  if (name.empty() || name[0] == '*') {
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", "setChallenge: a challenge names one exact host");
    return env.Undefined();
  }
  if (info[1].IsNull() || info[1].IsUndefined()) {
    router_.SetChallenge(name, nullptr);
    challenge_refs_.erase(name);
    return env.Undefined();
  }
  ServerConfig* config = ServerConfig::FromValue(info[1], "config");
  if (config == nullptr) return env.Undefined();
  // Connections already accepted with a replaced entry hold their own Rust
  // reference to its config.
  router_.SetChallenge(name, config->ref());
  challenge_refs_.insert_or_assign(name, Napi::Persistent(info[1].As<Napi::Object>()));
  return env.Undefined();
}

Napi::Value HostRouter::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void HostRouter::Close() {
  // Connections already accepted hold their own Rust references.
  router_.Clear();
  host_refs_.clear();
  challenge_refs_.clear();
  count_.Release();
}

}  // namespace rustls_node
