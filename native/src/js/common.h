// Shared pieces of the addon: per-environment data, handle accounting and the
// error convention.
//
// Convention (STYLE.md): native code reports numbers. A failed rustls call
// becomes a JS Error carrying `rustlsResult` (the rustls_result code) and
// `step` (what was being built, e.g. "certificates[1]"); lib/errors.ts turns
// it into a typed error with a stable `code`. Programmer errors (wrong
// argument types, use after destroy) throw with their final `code` here.
// The addon is compiled without C++ exceptions: nothing can unwind across
// the N-API or rustls-ffi boundary.
#ifndef RUSTLS_NODE_COMMON_H
#define RUSTLS_NODE_COMMON_H

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "abi.h"
#include "glue.h"

namespace rustls_node {

enum HandleKind {
  kCertifiedKeyHandle,
  kServerConfigHandle,
  kClientConfigHandle,
  kSessionCacheHandle,
  kTicketerHandle,
  kHostRouterHandle,
  kConnectionHandle,
  kListenerHandle,
  kBackendTargetHandle,
  kHandleKinds,
};

struct AddonData {
  Napi::FunctionReference certified_key;
  Napi::FunctionReference server_config;
  Napi::FunctionReference client_config;
  Napi::FunctionReference session_cache;
  Napi::FunctionReference ticketer;
  Napi::FunctionReference host_router;
  Napi::FunctionReference connection;
  Napi::FunctionReference listener;
  Napi::FunctionReference backend_target;
  // Results of the last pump call (see connection.h), shared by all
  // connections of this environment: JS reads them right after each call.
  Napi::Reference<Napi::Int32Array> results;
  int32_t* results_data = nullptr;
  // The slab fd-pump events copy plaintext into (connection_io.cc): filled
  // forward only, then replaced, never rewritten.
  Napi::Reference<Napi::Buffer<uint8_t>> plain_slab;
  uint8_t* plain_slab_base = nullptr;
  size_t plain_slab_used = 0;
  // Where writeSocket() gathers small chunks into one record (connection_io.cc).
  std::vector<uint8_t> write_gather;
  int64_t live[kHandleKinds] = {};
};

inline AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// Counts open native handles per kind so tests can assert that none leak.
// A handle counts from a successful construction (Acquire) until it is
// closed (Release); both are idempotent.
class HandleCount {
 public:
  explicit HandleCount(HandleKind kind) : kind_(kind) {}
  HandleCount(const HandleCount&) = delete;
  HandleCount& operator=(const HandleCount&) = delete;
  ~HandleCount() { Release(); }

  void Acquire(Napi::Env env) {
    if (data_ == nullptr) {
      data_ = Data(env);
      data_->live[kind_]++;
    }
  }
  void Release() {
    if (data_ != nullptr) {
      data_->live[kind_]--;
      data_ = nullptr;
    }
  }

 private:
  AddonData* data_ = nullptr;
  HandleKind kind_;
};

// Throws a JS Error describing a failed rustls call; returns nothing useful.
void ThrowResult(Napi::Env env, uint32_t result, const std::string& step);

// Throws a programmer error with a final `code`.
void ThrowCode(Napi::Env env, const char* code, const std::string& message);

// Type tags (better-sqlite3 style): each wrapped object is tagged at
// construction, and an argument claiming to be a handle is checked against
// the tag before its native pointer is trusted.
extern const napi_type_tag kCertifiedKeyTag;
extern const napi_type_tag kServerConfigTag;
extern const napi_type_tag kClientConfigTag;
extern const napi_type_tag kSessionCacheTag;
extern const napi_type_tag kTicketerTag;
extern const napi_type_tag kHostRouterTag;
extern const napi_type_tag kConnectionTag;
extern const napi_type_tag kBackendTargetTag;

bool HasTag(Napi::Value value, const napi_type_tag& tag);
void SetTag(Napi::Object object, const napi_type_tag& tag);

// The live native object `value` wraps, or nullptr after throwing: a value
// without T's tag is a type error, a destroyed handle ERR_RUSTLS_HANDLE_DESTROYED.
// T::Unwrap is only reached once the tag proved the object is a T.
template <typename T>
T* UnwrapLive(Napi::Value value, const napi_type_tag& tag, const char* name, const char* type) {
  if (!HasTag(value, tag)) {
    ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", std::string("The \"") + name + "\" argument must be a " + type);
    return nullptr;
  }
  T* object = T::Unwrap(value.As<Napi::Object>());
  if (!object->live()) {
    ThrowCode(value.Env(), "ERR_RUSTLS_HANDLE_DESTROYED", std::string(name) + " was destroyed");
    return nullptr;
  }
  return object;
}

// Reads a Buffer/TypedArray argument as bytes; throws ERR_INVALID_ARG_TYPE.
bool GetBytes(Napi::Value value, const char* name, const uint8_t** data, size_t* len);
// Appends a JS string's bytes to *out, in latin1 or else utf8 (JS turns
// other encodings into Buffers first); false with a JS error pending for a
// value that is no string.
bool AppendString(Napi::Value value, bool latin1, std::vector<uint8_t>* out);

}  // namespace rustls_node

#endif
