#include "js/config.h"

#include <string>

#include "js/certified_key.h"
#include "js/session.h"

namespace rustls_node {

namespace {

// Owns one rustls-ffi object and frees it with the matching function unless
// released. rustls-ffi documents, per builder, whether `*_build` consumes it;
// see each use below.
template <typename T, void (*Free)(T*)>
class Owned {
 public:
  Owned() = default;
  explicit Owned(T* p) : p_(p) {}
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() { reset(); }
  T* get() const { return p_; }
  T** out() { return &p_; }
  T* release() {
    T* p = p_;
    p_ = nullptr;
    return p;
  }
  void reset() {
    if (p_ != nullptr) Free(p_);
    p_ = nullptr;
  }

 private:
  T* p_ = nullptr;
};

void FreeProvider(const rustls_crypto_provider* p) { rustls_crypto_provider_free(p); }
void FreeRootStore(const rustls_root_cert_store* p) { rustls_root_cert_store_free(p); }
void FreeServerConfig(const rustls_server_config* p) { rustls_server_config_free(p); }
using ProviderPtr = Owned<const rustls_crypto_provider, FreeProvider>;
using RootStorePtr = Owned<const rustls_root_cert_store, FreeRootStore>;
using ServerConfigPtr = Owned<const rustls_server_config, FreeServerConfig>;
using ProviderBuilderPtr = Owned<rustls_crypto_provider_builder, rustls_crypto_provider_builder_free>;
using RootBuilderPtr = Owned<rustls_root_cert_store_builder, rustls_root_cert_store_builder_free>;
using ClientVerifierBuilderPtr =
    Owned<rustls_web_pki_client_cert_verifier_builder, rustls_web_pki_client_cert_verifier_builder_free>;
using ClientVerifierPtr = Owned<rustls_client_cert_verifier, rustls_client_cert_verifier_free>;
using ServerVerifierBuilderPtr =
    Owned<rustls_web_pki_server_cert_verifier_builder, rustls_web_pki_server_cert_verifier_builder_free>;
using ServerVerifierPtr = Owned<rustls_server_cert_verifier, rustls_server_cert_verifier_free>;

Napi::Value Option(Napi::Object options, const char* key) { return options.Get(key); }

bool ReadU16List(Napi::Value value, const char* name, std::vector<uint16_t>* out) {
  if (value.IsUndefined()) return true;
  if (!value.IsArray()) {
    ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", std::string(name) + " must be an array");
    return false;
  }
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array.Get(i);
    if (!v.IsNumber()) {
      ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", std::string(name) + " must hold numbers");
      return false;
    }
    out->push_back(static_cast<uint16_t>(v.As<Napi::Number>().Uint32Value()));
  }
  return true;
}

// ALPN protocol ids as byte strings; `slices` points into `storage`.
bool ReadAlpn(Napi::Value value, std::vector<std::string>* storage, std::vector<rustls_slice_bytes>* slices) {
  if (value.IsUndefined()) return true;
  if (!value.IsArray()) {
    ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", "alpn must be an array");
    return false;
  }
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value v = array.Get(i);
    if (v.IsString()) {
      storage->push_back(v.As<Napi::String>().Utf8Value());
    } else {
      const uint8_t* data;
      size_t len;
      if (!GetBytes(v, "alpn[]", &data, &len)) return false;
      storage->emplace_back(reinterpret_cast<const char*>(data), len);
    }
  }
  for (const std::string& s : *storage) {
    slices->push_back({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  return true;
}

bool ReadKeys(Napi::Value value, std::vector<const rustls_certified_key*>* out) {
  if (value.IsUndefined()) return true;
  if (!value.IsArray()) {
    ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", "certifiedKeys must be an array");
    return false;
  }
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    CertifiedKey* key = CertifiedKey::FromValue(array.Get(i), "certifiedKeys[]");
    if (key == nullptr) return false;
    out->push_back(key->get());
  }
  return true;
}

// The options server and client configs share: certified keys, protocol
// versions, cipher suites, ALPN. `alpn` points into `alpn_storage`.
struct CommonOptions {
  std::vector<const rustls_certified_key*> keys;
  std::vector<uint16_t> versions;
  std::vector<uint16_t> suites;
  std::vector<std::string> alpn_storage;
  std::vector<rustls_slice_bytes> alpn;

  bool Read(Napi::Object options) {
    return ReadKeys(Option(options, "certifiedKeys"), &keys) &&
           ReadU16List(Option(options, "versions"), "versions", &versions) &&
           ReadU16List(Option(options, "cipherSuites"), "cipherSuites", &suites) &&
           ReadAlpn(Option(options, "alpn"), &alpn_storage, &alpn);
  }
};

// A crypto provider with the given cipher suites in the given order (the
// order is the server's preference), or the default provider if `suites` is
// empty. Unknown ids are the caller's bug: lib/ciphers.ts only passes ids
// that supportedCipherSuites() listed.
const rustls_crypto_provider* BuildProvider(Napi::Env env, const std::vector<uint16_t>& suites) {
  ProviderBuilderPtr builder;
  rustls_result r = rustls_crypto_provider_builder_new_from_default(builder.out());
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "cipherSuites");
    return nullptr;
  }
  if (!suites.empty()) {
    std::vector<const rustls_supported_ciphersuite*> chosen;
    size_t n = rustls_default_crypto_provider_ciphersuites_len();
    for (uint16_t id : suites) {
      const rustls_supported_ciphersuite* found = nullptr;
      for (size_t i = 0; i < n; i++) {
        const rustls_supported_ciphersuite* s = rustls_default_crypto_provider_ciphersuites_get(i);
        if (rustls_supported_ciphersuite_get_suite(s) == id) found = s;
      }
      if (found == nullptr) {
        ThrowResult(env, RUSTLS_RESULT_INVALID_PARAMETER,
                    "cipherSuites: 0x" + std::to_string(id) + " is not supported by this build");
        return nullptr;
      }
      chosen.push_back(found);
    }
    r = rustls_crypto_provider_builder_set_cipher_suites(builder.get(), chosen.data(), chosen.size());
    if (r != RUSTLS_RESULT_OK) {
      ThrowResult(env, r, "cipherSuites");
      return nullptr;
    }
  }
  const rustls_crypto_provider* provider = nullptr;
  // Consumes the builder's contents; the builder itself is still freed by
  // its owner.
  r = rustls_crypto_provider_builder_build(builder.get(), &provider);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "cipherSuites");
    return nullptr;
  }
  return provider;
}

// A root store from PEM; `step` names the option for errors.
const rustls_root_cert_store* BuildRoots(Napi::Env env, Napi::Value pem, const std::string& step) {
  const uint8_t* data;
  size_t len;
  if (!GetBytes(pem, step.c_str(), &data, &len)) return nullptr;
  RootBuilderPtr builder(rustls_root_cert_store_builder_new());
  // strict: a CA bundle that does not parse is a configuration error.
  rustls_result r = rustls_root_cert_store_builder_add_pem(builder.get(), data, len, true);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, step);
    return nullptr;
  }
  const rustls_root_cert_store* store = nullptr;
  r = rustls_root_cert_store_builder_build(builder.get(), &store);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, step);
    return nullptr;
  }
  return store;
}

// Iterates an optional array of PEM CRLs, calling add(data, len) for each.
template <typename Add>
bool AddCrls(Napi::Env env, Napi::Value crls, const std::string& step, Add add) {
  if (crls.IsUndefined() || crls.IsNull()) return true;
  if (!crls.IsArray()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", step + " must be an array");
    return false;
  }
  Napi::Array array = crls.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    std::string item = step + "[" + std::to_string(i) + "]";
    const uint8_t* data;
    size_t len;
    if (!GetBytes(array.Get(i), item.c_str(), &data, &len)) return false;
    rustls_result r = add(data, len);
    if (r != RUSTLS_RESULT_OK) {
      ThrowResult(env, r, item);
      return false;
    }
  }
  return true;
}

rustls_client_cert_verifier* BuildClientVerifier(Napi::Env env, const rustls_crypto_provider* provider,
                                                 Napi::Object auth) {
  RootStorePtr roots(BuildRoots(env, auth.Get("ca"), "clientAuth.ca"));
  if (roots.get() == nullptr) return nullptr;
  // Takes its own reference to provider and store.
  ClientVerifierBuilderPtr builder(
      rustls_web_pki_client_cert_verifier_builder_new_with_provider(provider, roots.get()));
  if (!AddCrls(env, auth.Get("crls"), "clientAuth.crls", [&](const uint8_t* d, size_t n) {
        return rustls_web_pki_client_cert_verifier_builder_add_crl(builder.get(), d, n);
      })) {
    return nullptr;
  }
  if (auth.Get("optional").ToBoolean().Value()) {
    rustls_web_pki_client_cert_verifier_builder_allow_unauthenticated(builder.get());
  }
  rustls_client_cert_verifier* verifier = nullptr;
  // Consumes the builder's contents; the builder is still freed by its owner.
  rustls_result r = rustls_web_pki_client_cert_verifier_builder_build(builder.get(), &verifier);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "clientAuth");
    return nullptr;
  }
  return verifier;
}

// The callback behind `dangerouslyDisableVerification`: accepts any chain.
// rustls still checks the handshake signatures with the presented key.
uint32_t AcceptAnyServerCert(void*, const rustls_verify_server_cert_params*) { return RUSTLS_RESULT_OK; }

}  // namespace

Napi::Function ServerConfig::Init(Napi::Env env) {
  return DefineClass(env, "ServerConfig", {InstanceMethod<&ServerConfig::Destroy>("destroy")});
}

ServerConfig* ServerConfig::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<ServerConfig>(value, kServerConfigTag, name, "ServerConfig");
}

// new ServerConfig({certifiedKeys, versions, cipherSuites?, ignoreClientOrder,
//                   alpn?, clientAuth?: {ca, crls?, optional}, sessionCache?,
//                   ticketer?, sendTickets})
ServerConfig::ServerConfig(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ServerConfig>(info), count_(kServerConfigHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kServerConfigTag);
  if (!info[0].IsObject()) {
    {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options must be an object");
      return;
    }
  }
  Napi::Object options = info[0].As<Napi::Object>();
  CommonOptions common;
  if (!common.Read(options)) return;
  std::vector<const rustls_certified_key*>& keys = common.keys;
  if (keys.empty()) {
    ThrowResult(env, RUSTLS_RESULT_NO_CERT_RESOLVER, "certificates");
    return;
  }
  bool ok;
  const rn_session_cache* cache = SessionCache::FromOptional(Option(options, "sessionCache"), &ok);
  if (!ok) return;
  const rn_ticketer* ticketer = Ticketer::FromOptional(Option(options, "ticketer"), &ok);
  if (!ok) return;
  Napi::Value send_tickets_value = Option(options, "sendTickets");
  size_t send_tickets = send_tickets_value.IsNumber() ? send_tickets_value.As<Napi::Number>().Uint32Value() : 2;

  ProviderPtr provider(BuildProvider(env, common.suites));
  if (provider.get() == nullptr) return;

  rustls_server_config_builder* builder = nullptr;
  // Borrows provider and keeps its own reference.
  rustls_result r =
      rustls_server_config_builder_new_custom(provider.get(), common.versions.data(), common.versions.size(), &builder);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "versions");
    return;
  }

  Napi::Value auth = Option(options, "clientAuth");
  if (auth.IsObject()) {
    ClientVerifierPtr verifier(BuildClientVerifier(env, provider.get(), auth.As<Napi::Object>()));
    if (verifier.get() == nullptr) {
      rustls_server_config_builder_free(builder);
      return;
    }
    // Takes its own reference; ours is freed by `verifier`.
    rustls_server_config_builder_set_client_verifier(builder, verifier.get());
  }
  // The builder keeps its own references to the keys.
  r = rustls_server_config_builder_set_certified_keys(builder, keys.data(), keys.size());
  if (r == RUSTLS_RESULT_OK && !common.alpn.empty()) {
    r = rustls_server_config_builder_set_alpn_protocols(builder, common.alpn.data(), common.alpn.size());
  }
  if (r == RUSTLS_RESULT_OK) {
    r = rustls_server_config_builder_set_ignore_client_order(builder,
                                                             Option(options, "ignoreClientOrder").ToBoolean().Value());
  }
  if (r != RUSTLS_RESULT_OK) {
    rustls_server_config_builder_free(builder);
    {
      ThrowResult(env, r, "options");
      return;
    }
  }
  ServerConfigPtr built;
  // Consumes the builder whatever the result.
  r = rustls_server_config_builder_build(builder, built.out());
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "build");
    return;
  }

  // The glue clones the config and attaches the session store, ticketer and
  // a resolver that records which certificate was chosen.
  r = rn_server_config_finish(built.get(), keys.data(), keys.size(), cache, ticketer, send_tickets, &slot_->config);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "finish");
    return;
  }
  count_.Acquire(env);
}

Napi::Value ServerConfig::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void ServerConfig::Close() {
  // Live connections hold their own reference to the Rust config.
  rustls_server_config_free(slot_->config);
  slot_->config = nullptr;
  count_.Release();
}

Napi::Function ClientConfig::Init(Napi::Env env) {
  return DefineClass(env, "ClientConfig", {InstanceMethod<&ClientConfig::Destroy>("destroy")});
}

ClientConfig* ClientConfig::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<ClientConfig>(value, kClientConfigTag, name, "ClientConfig");
}

// new ClientConfig({ca?, crls?, systemRoots?, dangerouslyDisableVerification, versions,
//                   cipherSuites?, alpn?, certifiedKeys?, enableSni})
ClientConfig::ClientConfig(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ClientConfig>(info), count_(kClientConfigHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kClientConfigTag);
  if (!info[0].IsObject()) {
    {
      ThrowCode(env, "ERR_INVALID_ARG_TYPE", "options must be an object");
      return;
    }
  }
  Napi::Object options = info[0].As<Napi::Object>();
  CommonOptions common;
  if (!common.Read(options)) return;
  std::vector<const rustls_certified_key*>& keys = common.keys;
  ProviderPtr provider(BuildProvider(env, common.suites));
  if (provider.get() == nullptr) return;
  rustls_client_config_builder* builder = nullptr;
  rustls_result r =
      rustls_client_config_builder_new_custom(provider.get(), common.versions.data(), common.versions.size(), &builder);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "versions");
    return;
  }

  if (Option(options, "dangerouslyDisableVerification").ToBoolean().Value()) {
    r = rustls_client_config_builder_dangerous_set_certificate_verifier(builder, AcceptAnyServerCert);
  } else if (Option(options, "systemRoots").ToBoolean().Value()) {
    // The operating system's trust store (rustls-platform-verifier).
    ServerVerifierPtr verifier;
    r = rustls_platform_server_cert_verifier_try_with_provider(provider.get(), verifier.out());
    if (r == RUSTLS_RESULT_OK) rustls_client_config_builder_set_server_verifier(builder, verifier.get());
  } else if (!Option(options, "ca").IsUndefined()) {
    RootStorePtr roots(BuildRoots(env, Option(options, "ca"), "ca"));
    if (roots.get() == nullptr) {
      rustls_client_config_builder_free(builder);
      return;
    }
    ServerVerifierBuilderPtr vb(
        rustls_web_pki_server_cert_verifier_builder_new_with_provider(provider.get(), roots.get()));
    if (!AddCrls(env, Option(options, "crls"), "crls", [&](const uint8_t* d, size_t n) {
          return rustls_web_pki_server_cert_verifier_builder_add_crl(vb.get(), d, n);
        })) {
      rustls_client_config_builder_free(builder);
      return;
    }
    ServerVerifierPtr verifier;
    r = rustls_web_pki_server_cert_verifier_builder_build(vb.get(), verifier.out());
    if (r == RUSTLS_RESULT_OK) {
      // Takes its own reference.
      rustls_client_config_builder_set_server_verifier(builder, verifier.get());
    }
  }
  // Without a verifier, build fails with NO_SERVER_CERT_VERIFIER: there is no
  // silent "trust everything".
  if (r == RUSTLS_RESULT_OK && !common.alpn.empty()) {
    r = rustls_client_config_builder_set_alpn_protocols(builder, common.alpn.data(), common.alpn.size());
  }
  if (r == RUSTLS_RESULT_OK && !keys.empty()) {
    r = rustls_client_config_builder_set_certified_key(builder, keys.data(), keys.size());
  }
  if (r != RUSTLS_RESULT_OK) {
    rustls_client_config_builder_free(builder);
    {
      ThrowResult(env, r, "options");
      return;
    }
  }
  Napi::Value sni = Option(options, "enableSni");
  rustls_client_config_builder_set_enable_sni(builder, sni.IsUndefined() || sni.ToBoolean());
  // Consumes the builder whatever the result.
  r = rustls_client_config_builder_build(builder, &config_);
  if (r != RUSTLS_RESULT_OK) {
    ThrowResult(env, r, "build");
    return;
  }
  count_.Acquire(env);
}

Napi::Value ClientConfig::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void ClientConfig::Close() {
  rustls_client_config_free(config_);
  config_ = nullptr;
  count_.Release();
}

Napi::Value SupportedCipherSuites(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t n = rustls_default_crypto_provider_ciphersuites_len();
  Napi::Array out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    const rustls_supported_ciphersuite* s = rustls_default_crypto_provider_ciphersuites_get(i);
    rustls_str name = rustls_supported_ciphersuite_get_name(s);
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", rustls_supported_ciphersuite_get_suite(s));
    o.Set("name", Napi::String::New(env, name.data, name.len));
    o.Set("version", static_cast<uint32_t>(rustls_supported_ciphersuite_protocol_version(s)));
    out.Set(i, o);
  }
  return out;
}

}  // namespace rustls_node
