#include "js/backend_target.h"

#include <netdb.h>
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
      SetCipherName(static_cast<uint16_t>(ids.Get(i).As<Napi::Number>().Uint32Value()), iana, names.Get(i).As<Napi::String>().Utf8Value());
    }
  };
  fill(info[1], false);
  fill(info[2], true);
  return info.Env().Undefined();
}

Napi::Function BackendTarget::Init(Napi::Env env) {
  return DefineClass(env, "BackendTarget", {InstanceMethod<&BackendTarget::Destroy>("destroy")});
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
  if (kind == "unix") {
    std::string path = address.Get("path").IsString() ? address.Get("path").As<Napi::String>().Utf8Value() : "";
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof un.sun_path) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "backend unix path is empty or too long: " + path);
      return;
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&target_.addr, &un, sizeof un);
    target_.len = sizeof un;
    target_.text = "unix:" + path;
  } else {
    std::string host = address.Get("host").IsString() ? address.Get("host").As<Napi::String>().Utf8Value() : "";
    int port = address.Get("port").IsNumber() ? address.Get("port").As<Napi::Number>().Int32Value() : 0;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string service = std::to_string(port);
    // Resolved once per configuration (start, reload), never per connection.
    int r = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (r != 0 || res == nullptr) {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "cannot resolve backend " + host + ": " + gai_strerror(r));
      return;
    }
    std::memcpy(&target_.addr, res->ai_addr, res->ai_addrlen);
    target_.len = res->ai_addrlen;
    freeaddrinfo(res);
    target_.text = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + service;
  }
  Napi::Value v = o.Get("connectTimeout");
  if (v.IsNumber()) connect_timeout_ms_ = static_cast<uint64_t>(std::max<int64_t>(1, v.As<Napi::Number>().Int64Value()));
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
    if (h.Get("timeout").IsNumber()) http_.timeout_ms = static_cast<uint64_t>(std::max<int64_t>(1, h.Get("timeout").As<Napi::Number>().Int64Value()));
    http_.std_env_vars = h.Get("stdEnvVars").ToBoolean().Value();
    http_.export_cert_data = h.Get("exportCertData").ToBoolean().Value();
    http_.client_auth = h.Get("clientAuth").ToBoolean().Value();
    http_.acme = h.Get("acme").ToBoolean().Value();
    if (h.Get("versionInterface").IsString()) http_.version_interface = h.Get("versionInterface").As<Napi::String>().Utf8Value();
    if (h.Get("versionLibrary").IsString()) http_.version_library = h.Get("versionLibrary").As<Napi::String>().Utf8Value();
    http_.backend_h2 = h.Get("backendH2").ToBoolean().Value();
    if (h.Get("coalesceKey").IsString()) http_.coalesce_key = h.Get("coalesceKey").As<Napi::String>().Utf8Value();
    if (h.Get("h2").IsObject()) {
      Napi::Object h2 = h.Get("h2").As<Napi::Object>();
      http_.h2 = !h2.Get("off").ToBoolean().Value();
      auto ms = [&](const char* key, uint64_t* out) {
        if (h2.Get(key).IsNumber()) *out = static_cast<uint64_t>(std::max<int64_t>(1, h2.Get(key).As<Napi::Number>().Int64Value()));
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
