#include "js/common.h"

#include <string>

namespace rustls_node {

// Arbitrary but fixed 128-bit tags, one per wrapped class.
const napi_type_tag kCertifiedKeyTag = {0x7a1c3e5b9d2f4a61ULL, 0x8b0e6c4d2a193f57ULL};
const napi_type_tag kServerConfigTag = {0x3d6f8a1b5c7e9d20ULL, 0x4e2a6b8c0d1f3a59ULL};
const napi_type_tag kClientConfigTag = {0x9e1b3c5d7f2a4b68ULL, 0x1c3e5f7a9b2d4c60ULL};
const napi_type_tag kSessionCacheTag = {0x5a7c9e1b3d5f7a82ULL, 0x6d8f0a2c4e6b8d14ULL};
const napi_type_tag kTicketerTag = {0x2b4d6f8a0c2e4a93ULL, 0x7e9a1c3e5a7c9e25ULL};
const napi_type_tag kHostRouterTag = {0x8c0e2a4c6e8a0c36ULL, 0x3f5b7d9f1b3d5f47ULL};
const napi_type_tag kConnectionTag = {0x4d6f8b0d2f4b6d58ULL, 0x9a2c4e6a8c0e2a69ULL};
const napi_type_tag kBackendTargetTag = {0x6e8a0c2e4a6c8e71ULL, 0x2d4f6b8d0f2b4d83ULL};

void ThrowResult(Napi::Env env, uint32_t result, const std::string& step) {
  char buf[512];
  size_t n = 0;
  rustls_error(result, buf, sizeof buf, &n);
  std::string message(buf, n);
  if (message.empty()) message = "rustls error " + std::to_string(result);
  Napi::Error err = Napi::Error::New(env, step.empty() ? message : step + ": " + message);
  err.Set("rustlsResult", Napi::Number::New(env, result));
  err.Set("step", Napi::String::New(env, step));
  err.ThrowAsJavaScriptException();
}

void ThrowCode(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::TypeError::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  err.ThrowAsJavaScriptException();
}

bool HasTag(Napi::Value value, const napi_type_tag& tag) {
  if (!value.IsObject()) return false;
  bool result = false;
  napi_status status = napi_check_object_type_tag(value.Env(), value, &tag, &result);
  return status == napi_ok && result;
}

void SetTag(Napi::Object object, const napi_type_tag& tag) { napi_type_tag_object(object.Env(), object, &tag); }

bool GetBytes(Napi::Value value, const char* name, const uint8_t** data, size_t* len) {
  // One call for a Buffer (a Uint8Array), the common case.
  napi_typedarray_type type;
  size_t length = 0;
  void* bytes = nullptr;
  if (napi_get_typedarray_info(value.Env(), value, &type, &length, &bytes, nullptr, nullptr) == napi_ok) {
    static constexpr size_t kElementSize[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 2};
    size_t index = static_cast<size_t>(type);
    *data = static_cast<const uint8_t*>(bytes);
    *len = length * (index < sizeof(kElementSize) / sizeof(kElementSize[0]) ? kElementSize[index] : 1);
    return true;
  }
  ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE",
            std::string("The \"") + name + "\" argument must be a Buffer or Uint8Array");
  return false;
}

bool AppendString(Napi::Value value, bool latin1, std::vector<uint8_t>* out) {
  napi_env env = value.Env();
  auto get = latin1 ? napi_get_value_string_latin1 : napi_get_value_string_utf8;
  size_t len = 0;
  if (get(env, value, nullptr, 0, &len) != napi_ok) {
    ThrowCode(value.Env(), "ERR_INVALID_ARG_TYPE", "The \"data\" argument must be a Buffer or a string");
    return false;
  }
  size_t at = out->size();
  // The copy ends with a NUL, which is dropped again.
  out->resize(at + len + 1);
  size_t copied = 0;
  get(env, value, reinterpret_cast<char*>(out->data() + at), len + 1, &copied);
  out->resize(at + copied);
  return true;
}

}  // namespace rustls_node
