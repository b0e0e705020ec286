#include "acceptor.h"

#include "config.h"

namespace rustls_node {

std::string NormalizeHostName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool OffersAcmeTls(const rustls_accepted* hello) {
  static constexpr std::string_view kAcmeTls = "acme-tls/1";
  if (hello == nullptr) return false;
  for (size_t i = 0;; i++) {
    // Borrowed from `hello`; an empty slice ends the list.
    rustls_slice_bytes p = rustls_accepted_alpn(hello, i);
    if (p.data == nullptr || p.len == 0) return false;
    if (std::string_view(reinterpret_cast<const char*>(p.data), p.len) == kAcmeTls) return true;
  }
}

namespace {

// TLS AlertDescription values (RFC 8446 §6).
constexpr uint8_t kUnexpectedMessage = 10;
constexpr uint8_t kHandshakeFailure = 40;
constexpr uint8_t kAccessDenied = 49;
constexpr uint8_t kInternalError = 80;
constexpr uint8_t kUnrecognizedNameAlert = 112;

// One fatal alert record in the clear, as rustls writes it before any
// version is negotiated (record version TLS 1.2).
std::vector<uint8_t> FatalAlert(uint8_t description) {
  return {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description};
}

int AppendAlertBytes(void* userdata, const uint8_t* buf, size_t n, size_t* out_n) {
  auto* out = static_cast<std::vector<uint8_t>*>(userdata);
  out->insert(out->end(), buf, buf + n);
  *out_n = n;
  return 0;
}

}  // namespace

AcceptFailure DecideAcceptFailure(uint32_t code, rustls_accepted_alert* queued) {
  AcceptFailure out{code, {}};
  if (queued != nullptr) {
    size_t n = 0;
    while (rustls_accepted_alert_write_tls(queued, AppendAlertBytes, &out.alert, &n) == 0 && n > 0) {
    }
    rustls_accepted_alert_free(queued);
  }
  if (code == kUnrecognizedName) {
    out.alert = FatalAlert(kUnrecognizedNameAlert);
  } else if (code == kNoHost) {
    out.alert = FatalAlert(kInternalError);
  } else if (code == RUSTLS_RESULT_INAPPROPRIATE_HANDSHAKE_MESSAGE && out.alert.empty()) {
    out.alert = FatalAlert(kUnexpectedMessage);
  } else if (code == RUSTLS_RESULT_GENERAL && out.alert.size() == 7 && out.alert[0] == 0x15 &&
             out.alert[5] == 0x02 && out.alert[6] == kAccessDenied) {
    // On the accept path rustls sends access_denied only when the resolver
    // returns no certificate (rustls 0.23 server/hs.rs); the record header
    // stays as rustls wrote it.
    out.alert[6] = kHandshakeFailure;
    out.code = RUSTLS_RESULT_PEER_INCOMPATIBLE_ERROR;
  }
  return out;
}

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

HostRouter::HostRouter(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<HostRouter>(info), count_(kHostRouterHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kHostRouterTag);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
    {
      ThrowCode(env, "ERR_INVALID_ARG_VALUE", "hosts must be a non-empty array");
      return;
    }
  }
  if (info[1].IsObject()) {
    Napi::Object options = info[1].As<Napi::Object>();
    Napi::Value strict = options.Get("strictSNI");
    strict_ = strict.IsUndefined() || strict.ToBoolean().Value();
    deferred_ = options.Get("deferred").ToBoolean().Value();
  }
  Napi::Array hosts = info[0].As<Napi::Array>();
  std::vector<Host> parsed;
  for (uint32_t i = 0; i < hosts.Length(); i++) {
    Napi::Value entry = hosts.Get(i);
    if (!entry.IsObject()) {
      {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "hosts[] must be objects");
      return;
    }
    }
    Napi::Object host = entry.As<Napi::Object>();
    ServerConfig* config = ServerConfig::FromValue(host.Get("config"), "hosts[].config");
    if (config == nullptr) return;
    Napi::Value names = host.Get("names");
    if (names.IsArray()) {
      Napi::Array list = names.As<Napi::Array>();
      for (uint32_t j = 0; j < list.Length(); j++) {
        Napi::Value name = list.Get(j);
        if (!name.IsString()) continue;
        std::string n = NormalizeHostName(name.As<Napi::String>().Utf8Value());
        // The first host that names a name owns it, as in mod_tls.
        if (n.size() > 2 && n[0] == '*' && n[1] == '.') {
          wildcard_.emplace(n.substr(1), static_cast<int>(i));
        } else if (!n.empty()) {
          exact_.emplace(n, static_cast<int>(i));
        }
      }
    }
    parsed.push_back({Napi::Persistent(host.Get("config").As<Napi::Object>()), config});
  }
  hosts_ = std::move(parsed);
  count_.Acquire(env);
}

HostRouter::Route HostRouter::Choose(std::string_view server_name,
                                     const rustls_accepted* hello) const {
  if (hosts_.empty()) return {kRefused, nullptr};
  // RFC 8737 §3: the validation certificate only for a client that asks
  // for acme-tls/1, so ordinary clients of the name keep getting the host.
  if (!challenges_.empty() && !server_name.empty() && OffersAcmeTls(hello)) {
    auto hit = challenges_.find(NormalizeHostName(server_name));
    if (hit != challenges_.end()) return {kChallenge, hit->second.config->get()};
  }
  if (deferred_) return {kDeferred, nullptr};
  int host = Select(server_name);
  return {host, host >= 0 ? ConfigAt(host) : nullptr};
}

int HostRouter::Select(std::string_view server_name) const {
  if (hosts_.empty()) return kRefused;
  // No SNI: the first host of the port.
  if (server_name.empty()) return 0;
  int found = Find(server_name);
  if (found >= 0) return found;
  return strict_ ? kRefused : 0;
}

int HostRouter::Find(std::string_view name_in) const {
  std::string name = NormalizeHostName(name_in);
  auto hit = exact_.find(name);
  if (hit != exact_.end()) return hit->second;
  // "*.example.com" covers exactly one more label (RFC 6125 §6.4.3).
  size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    auto wild = wildcard_.find(name.substr(dot));
    if (wild != wildcard_.end()) return wild->second;
  }
  return -1;
}

const rustls_server_config* HostRouter::ConfigAt(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= hosts_.size()) return nullptr;
  return hosts_[index].config->get();
}

Napi::Value HostRouter::SelectJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed()) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "HostRouter was destroyed");
    return env.Undefined();
  }
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  return Napi::Number::New(env, Select(name));
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
    challenges_.erase(name);
    return env.Undefined();
  }
  ServerConfig* config = ServerConfig::FromValue(info[1], "config");
  if (config == nullptr) return env.Undefined();
  // Connections already accepted with a replaced entry hold their own Rust
  // reference to its config.
  challenges_.insert_or_assign(name, Host{Napi::Persistent(info[1].As<Napi::Object>()), config});
  return env.Undefined();
}

Napi::Value HostRouter::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void HostRouter::Close() {
  // Drops the references to the configs; connections already accepted hold
  // their own Rust references.
  hosts_.clear();
  challenges_.clear();
  exact_.clear();
  wildcard_.clear();
  count_.Release();
}

}  // namespace rustls_node
