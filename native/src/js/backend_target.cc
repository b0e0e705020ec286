#include "js/backend_target.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "js/config.h"
#include "proto/cipher_names.h"

namespace rustls_node {

namespace {

const std::string kNoKeyAlg;

}  // namespace

Napi::Value SetCipherNames(const Napi::CallbackInfo& info) {
  auto fill = [&](Napi::Value list, bool iana) {
    if (!info[0].IsArray() || !list.IsArray()) return;
    Napi::Array ids = info[0].As<Napi::Array>();
    Napi::Array names = list.As<Napi::Array>();
    for (uint32_t i = 0; i < ids.Length() && i < names.Length(); i++) {
      if (!ids.Get(i).IsNumber() || !names.Get(i).IsString()) continue;
      SetCipherName(static_cast<uint16_t>(ids.Get(i).As<Napi::Number>().Uint32Value()), iana,
                    names.Get(i).As<Napi::String>().Utf8Value());
    }
  };
  fill(info[1], false);
  fill(info[2], true);
  return info.Env().Undefined();
}

Napi::Function BackendTarget::Init(Napi::Env env) {
  return DefineClass(
      env, "BackendTarget",
      {InstanceMethod<&BackendTarget::Destroy>("destroy"), InstanceMethod<&BackendTarget::SetAddress>("setAddress")});
}

BackendTarget* BackendTarget::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<BackendTarget>(value, kBackendTargetTag, name, "BackendTarget");
}

BackendTarget::BackendTarget(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<BackendTarget>(info), count_(kBackendTargetHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kBackendTargetTag);
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().Get("address").IsObject()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "new BackendTarget(options) needs an address");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Object address = o.Get("address").As<Napi::Object>();
  std::string kind = address.Get("kind").IsString() ? address.Get("kind").As<Napi::String>().Utf8Value() : "";
  std::string err;
  if (kind == "unix") {
    std::string path = address.Get("path").IsString() ? address.Get("path").As<Napi::String>().Utf8Value() : "";
    if (!TargetFromPath(path, &target_, &err)) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "backend " + err);
      return;
    }
  } else {
    std::string ip = address.Get("ip").IsString() ? address.Get("ip").As<Napi::String>().Utf8Value() : "";
    std::string name = address.Get("name").IsString() ? address.Get("name").As<Napi::String>().Utf8Value() : ip;
    port_ = address.Get("port").IsNumber() ? address.Get("port").As<Napi::Number>().Int32Value() : 0;
    if (!ip.empty() && !TargetFromIp(ip, port_, &target_, &err)) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "backend " + err);
      return;
    }
    // As configured, for logs: the name, not what it resolved to.
    target_.text = (name.find(':') != std::string::npos ? "[" + name + "]" : name) + ":" + std::to_string(port_);
  }
  Napi::Value v = o.Get("connectTimeout");
  if (v.IsNumber())
    connect_timeout_ms_ = static_cast<uint64_t>(std::max<int64_t>(1, v.As<Napi::Number>().Int64Value()));
  v = o.Get("proxyProtocol");
  if (v.IsNumber()) proxy_protocol_ = v.As<Napi::Number>().Int32Value();
  v = o.Get("tls");
  if (v.IsObject()) {
    Napi::Object tls = v.As<Napi::Object>();
    config_ = ClientConfig::FromValue(tls.Get("config"), "tls.config");
    if (config_ == nullptr) return;
    config_ref_ = Napi::Persistent(tls.Get("config").As<Napi::Object>());
    server_name_ = tls.Get("serverName").IsString() ? tls.Get("serverName").As<Napi::String>().Utf8Value() : "";
  }
  v = o.Get("http");
  if (v.IsObject()) {
    Napi::Object h = v.As<Napi::Object>();
    http_.enabled = true;
    if (h.Get("timeout").IsNumber())
      http_.timeout_ms = static_cast<uint64_t>(std::max<int64_t>(1, h.Get("timeout").As<Napi::Number>().Int64Value()));
    http_.std_env_vars = h.Get("stdEnvVars").ToBoolean().Value();
    http_.export_cert_data = h.Get("exportCertData").ToBoolean().Value();
    http_.client_auth = h.Get("clientAuth").ToBoolean().Value();
    if (h.Get("versionInterface").IsString())
      http_.version_interface = h.Get("versionInterface").As<Napi::String>().Utf8Value();
    if (h.Get("versionLibrary").IsString())
      http_.version_library = h.Get("versionLibrary").As<Napi::String>().Utf8Value();
    http_.backend_h2 = h.Get("backendH2").ToBoolean().Value();
    if (h.Get("coalesceKey").IsString()) http_.coalesce_key = h.Get("coalesceKey").As<Napi::String>().Utf8Value();
    if (h.Get("h2").IsObject()) {
      Napi::Object h2 = h.Get("h2").As<Napi::Object>();
      auto ms = [&](const char* key, uint64_t* out) {
        if (h2.Get(key).IsNumber())
          *out = static_cast<uint64_t>(std::max<int64_t>(1, h2.Get(key).As<Napi::Number>().Int64Value()));
      };
      uint64_t streams = http_.h2_max_streams;
      ms("maxConcurrentStreams", &streams);
      http_.h2_max_streams = static_cast<uint32_t>(std::min<uint64_t>(streams, 1000));
      ms("idleTimeout", &http_.h2_idle_ms);
      ms("sendTimeout", &http_.h2_send_timeout_ms);
    }
    if (h.Get("serverCerts").IsArray()) {
      Napi::Array list = h.Get("serverCerts").As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); i++) {
        http_.server_certs.push_back(list.Get(i).IsString() ? list.Get(i).As<Napi::String>().Utf8Value() : "");
      }
    }
  }
  v = o.Get("keyAlgs");
  if (v.IsArray()) {
    Napi::Array list = v.As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      key_algs_.push_back(list.Get(i).IsString() ? list.Get(i).As<Napi::String>().Utf8Value() : "");
    }
  }
  count_.Acquire(env);
}

const rustls_client_config* BackendTarget::tls_config() const {
  return config_ != nullptr && !config_ref_.IsEmpty() ? config_->get() : nullptr;
}

const std::string& BackendTarget::key_alg(int certificate) const {
  if (certificate < 0 || static_cast<size_t>(certificate) >= key_algs_.size()) return kNoKeyAlg;
  return key_algs_[certificate];
}

Napi::Value BackendTarget::SetAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string ip = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (target_.addr.ss_family == AF_UNIX || ip.empty()) {
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", "setAddress(ip) needs an IP address, for a TCP backend");
    return env.Undefined();
  }
  ConnectTarget next;
  std::string err;
  if (!TargetFromIp(ip, port_, &next, &err)) {
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", "backend " + err);
    return env.Undefined();
  }
  // Connections made from now on; the ones open keep their address.
  next.text = target_.text;
  target_ = next;
  return env.Undefined();
}

Napi::Value BackendTarget::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void BackendTarget::Close() {
  destroyed_ = true;
  config_ = nullptr;
  if (!config_ref_.IsEmpty()) config_ref_.Reset();
  count_.Release();
}

}  // namespace rustls_node
