// Module entry: registers the wrapped classes and the few free functions.
// lib/native.ts is the only importer of this addon.
#include <napi.h>

#include "abi.h"
#include "js/certified_key.h"
#include "js/common.h"
#include "js/config.h"
#include "js/connection.h"
#include "js/router.h"
#include "js/session.h"
#include "plane/h2_front.h"
#include "plane/listener.h"
#include "plane/splice.h"

namespace rustls_node {
namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  rustls_str v = rustls_version();
  return Napi::String::New(info.Env(), v.data, v.len);
}

// errorMessage(code): rustls-ffi's text for a rustls_result.
Napi::Value ErrorMessage(const Napi::CallbackInfo& info) {
  uint32_t code = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  char buf[512];
  size_t n = 0;
  rustls_error(code, buf, sizeof buf, &n);
  return Napi::String::New(info.Env(), buf, n);
}

Napi::Value IsCertError(const Napi::CallbackInfo& info) {
  uint32_t code = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Boolean::New(info.Env(), rustls_result_is_cert_error(code));
}

// liveHandles(): open native handles per kind, for leak checks.
Napi::Value LiveHandles(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonData* data = Data(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("certifiedKeys", static_cast<double>(data->live[kCertifiedKeyHandle]));
  o.Set("serverConfigs", static_cast<double>(data->live[kServerConfigHandle]));
  o.Set("clientConfigs", static_cast<double>(data->live[kClientConfigHandle]));
  o.Set("sessionCaches", static_cast<double>(data->live[kSessionCacheHandle]));
  o.Set("ticketers", static_cast<double>(data->live[kTicketerHandle]));
  o.Set("hostRouters", static_cast<double>(data->live[kHostRouterHandle]));
  o.Set("connections", static_cast<double>(data->live[kConnectionHandle]));
  o.Set("listeners", static_cast<double>(data->live[kListenerHandle]));
  o.Set("backendTargets", static_cast<double>(data->live[kBackendTargetHandle]));
  return o;
}

// abi: every table of abi.h as {Name: value}, so that JS checks at load
// that it was built against the same numbers (lib/native.ts).
Napi::Object AbiTables(Napi::Env env) {
  Napi::Object abi = Napi::Object::New(env);
  auto table = [&](const char* name) {
    Napi::Object t = Napi::Object::New(env);
    abi.Set(name, t);
    return t;
  };
#define RN_ABI_EXPORT(name, value, doc) t.Set(#name, Napi::Number::New(env, static_cast<double>(value)));
  {
    Napi::Object t = table("Slot");
    RN_ABI_SLOT(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("InfoSlot");
    RN_ABI_INFO(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("Flag");
    RN_ABI_FLAG(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("LocalResult");
    RN_ABI_LOCAL_RESULT(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("ListenerEvent");
    RN_ABI_LISTENER_EVENT(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("PlanKind");
    RN_ABI_PLAN_KIND(RN_ABI_EXPORT)
  }
  {
    Napi::Object t = table("HostIndex");
    RN_ABI_HOST(RN_ABI_EXPORT)
  }
#undef RN_ABI_EXPORT
  return abi;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);

  Napi::Function certified_key = CertifiedKey::Init(env);
  Napi::Function server_config = ServerConfig::Init(env);
  Napi::Function client_config = ClientConfig::Init(env);
  Napi::Function session_cache = SessionCache::Init(env);
  Napi::Function ticketer = Ticketer::Init(env);
  Napi::Function host_router = HostRouter::Init(env);
  Napi::Function connection = Connection::Init(env);
  Napi::Function listener = Listener::Init(env);
  Napi::Function backend_target = BackendTarget::Init(env);
  data->certified_key = Napi::Persistent(certified_key);
  data->server_config = Napi::Persistent(server_config);
  data->client_config = Napi::Persistent(client_config);
  data->session_cache = Napi::Persistent(session_cache);
  data->ticketer = Napi::Persistent(ticketer);
  data->host_router = Napi::Persistent(host_router);
  data->connection = Napi::Persistent(connection);
  data->listener = Napi::Persistent(listener);
  data->backend_target = Napi::Persistent(backend_target);

  Napi::Int32Array results = Napi::Int32Array::New(env, kResultSlots);
  data->results = Napi::Persistent(results);
  data->results_data = results.Data();

  exports.Set("CertifiedKey", certified_key);
  exports.Set("ServerConfig", server_config);
  exports.Set("ClientConfig", client_config);
  exports.Set("SessionCache", session_cache);
  exports.Set("Ticketer", ticketer);
  exports.Set("HostRouter", host_router);
  exports.Set("Connection", connection);
  exports.Set("Listener", listener);
  exports.Set("BackendTarget", backend_target);
  exports.Set("setCipherNames", Napi::Function::New(env, SetCipherNames));
  exports.Set("bindListener", Napi::Function::New(env, BindListener));
  exports.Set("results", results);
  exports.Set("abi", AbiTables(env));
  exports.Set("supportedCipherSuites", Napi::Function::New(env, SupportedCipherSuites));
  exports.Set("version", Napi::Function::New(env, Version));
  exports.Set("nghttp2Version", Napi::Function::New(env, Nghttp2Version));
  exports.Set("errorMessage", Napi::Function::New(env, ErrorMessage));
  exports.Set("isCertError", Napi::Function::New(env, IsCertError));
  exports.Set("liveHandles", Napi::Function::New(env, LiveHandles));
  return exports;
}

}  // namespace
}  // namespace rustls_node

static Napi::Object InitRustlsNode(Napi::Env env, Napi::Object exports) { return rustls_node::Init(env, exports); }

NODE_API_MODULE(rustls_node, InitRustlsNode)
