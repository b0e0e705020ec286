#include "js/certified_key.h"

namespace rustls_node {

Napi::Function CertifiedKey::Init(Napi::Env env) {
  return DefineClass(env, "CertifiedKey",
                     {
                         InstanceMethod<&CertifiedKey::Certificate>("certificate"),
                         InstanceMethod<&CertifiedKey::Destroy>("destroy"),
                     });
}

CertifiedKey* CertifiedKey::FromValue(Napi::Value value, const char* name) {
  return UnwrapLive<CertifiedKey>(value, kCertifiedKeyTag, name, "CertifiedKey");
}

CertifiedKey::CertifiedKey(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<CertifiedKey>(info), count_(kCertifiedKeyHandle) {
  Napi::Env env = info.Env();
  SetTag(info.This().As<Napi::Object>(), kCertifiedKeyTag);
  const uint8_t *chain, *pkey;
  size_t chain_len, pkey_len;
  if (!GetBytes(info[0], "cert", &chain, &chain_len) || !GetBytes(info[1], "key", &pkey, &pkey_len)) {
    return;
  }
  const rustls_certified_key* built = nullptr;
  // Copies and parses both inputs; the PEM buffers are not retained.
  rustls_result r = rustls_certified_key_build(chain, chain_len, pkey, pkey_len, &built);
  if (r != RUSTLS_RESULT_OK) {
    {
      ThrowResult(env, r, "build");
      return;
    }
  }
  // The chain and key parse independently: a leaf that does not belong to
  // the key must fail at configuration time, not at the first handshake.
  // The check parses the leaf with webpki, which refuses the critical
  // id-pe-acmeIdentifier extension of a tls-alpn-01 validation certificate
  // (RFC 8737 §3); the code that makes such a pair skips it with
  // {keysMatch: false}, the only option.
  Napi::Value options = info.Length() > 3 ? info[3] : env.Undefined();
  bool check =
      !options.IsObject() || !options.As<Napi::Object>().Get("keysMatch").StrictEquals(Napi::Boolean::New(env, false));
  r = check ? rustls_certified_key_keys_match(built) : RUSTLS_RESULT_OK;
  if (r != RUSTLS_RESULT_OK) {
    rustls_certified_key_free(built);
    {
      ThrowResult(env, r, "keysMatch");
      return;
    }
  }
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    const uint8_t* ocsp;
    size_t ocsp_len;
    if (!GetBytes(info[2], "ocsp", &ocsp, &ocsp_len)) {
      rustls_certified_key_free(built);
      return;
    }
    rustls_slice_bytes slice{ocsp, ocsp_len};
    const rustls_certified_key* stapled = nullptr;
    // Makes an independently owned copy carrying the response.
    r = rustls_certified_key_clone_with_ocsp(built, &slice, &stapled);
    rustls_certified_key_free(built);
    if (r != RUSTLS_RESULT_OK) {
      {
        ThrowResult(env, r, "ocsp");
        return;
      }
    }
    built = stapled;
  }
  key_ = built;
  count_.Acquire(env);
}

Napi::Value CertifiedKey::Certificate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (key_ == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "CertifiedKey was destroyed");
    return env.Undefined();
  }
  size_t index = info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
  // Valid until the certified key is freed; we copy at once.
  const rustls_certificate* cert = rustls_certified_key_get_certificate(key_, index);
  if (cert == nullptr) return env.Undefined();
  const uint8_t* der;
  size_t der_len;
  if (rustls_certificate_get_der(cert, &der, &der_len) != RUSTLS_RESULT_OK) return env.Undefined();
  return Napi::Buffer<uint8_t>::Copy(env, der, der_len);
}

Napi::Value CertifiedKey::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void CertifiedKey::Close() {
  if (key_ != nullptr) {
    // Configs built from this key hold their own references.
    rustls_certified_key_free(key_);
    key_ = nullptr;
  }
  count_.Release();
}

}  // namespace rustls_node
