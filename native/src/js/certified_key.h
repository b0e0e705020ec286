// CertifiedKey: a certificate chain and its private key
// (rustls_certified_key), optionally with a stapled OCSP response.
#ifndef RUSTLS_NODE_CERTIFIED_KEY_H
#define RUSTLS_NODE_CERTIFIED_KEY_H

#include "js/common.h"

namespace rustls_node {

class CertifiedKey : public Napi::ObjectWrap<CertifiedKey> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Returns the wrapped key if `value` is a live CertifiedKey, else throws
  // and returns nullptr.
  static CertifiedKey* FromValue(Napi::Value value, const char* name);

  // new CertifiedKey(certChainPem, privateKeyPem, ocspDer?, {keysMatch?: false})
  explicit CertifiedKey(const Napi::CallbackInfo& info);
  ~CertifiedKey() override { Close(); }

  const rustls_certified_key* get() const { return key_; }
  bool live() const { return key_ != nullptr; }

 private:
  // certificate(i): DER of the i-th certificate of the chain (0 = leaf).
  Napi::Value Certificate(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  const rustls_certified_key* key_ = nullptr;
  HandleCount count_;
};

}  // namespace rustls_node

#endif
