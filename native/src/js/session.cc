#include "js/session.h"

namespace rustls_node {

Napi::Function SessionCache::Init(Napi::Env env) {
  return DefineClass(
      env, "SessionCache",
      {InstanceMethod<&SessionCache::SetReport>("setReport"), InstanceMethod<&SessionCache::TakeNew>("takeNew"),
       InstanceMethod<&SessionCache::Destroy>("destroy")});
}

const rn_session_cache* SessionCache::FromOptional(Napi::Value value, bool* ok) {
  *ok = true;
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  SessionCache* handle = UnwrapLive<SessionCache>(value, kSessionCacheTag, "sessionCache", "SessionCache");
  *ok = handle != nullptr;
  return handle == nullptr ? nullptr : handle->cache_;
}

SessionCache::SessionCache(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<SessionCache>(info), count_(kSessionCacheHandle) {
  SetTag(info.This().As<Napi::Object>(), kSessionCacheTag);
  int64_t size = info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0;
  bool report = info[1].IsObject() && info[1].As<Napi::Object>().Get("report").ToBoolean().Value();
  // 0: no memory of its own, only the application's store (report on).
  if (size < 0 || (size == 0 && !report)) {
    ThrowCode(info.Env(), "ERR_OUT_OF_RANGE", "session cache size must be >= 1 (0 only with report)");
    return;
  }
  cache_ = rn_session_cache_new(static_cast<size_t>(size), report);
  if (cache_ == nullptr) {
    {
      ThrowResult(info.Env(), RUSTLS_RESULT_PANIC, "sessionCache");
      return;
    }
  }
  count_.Acquire(info.Env());
}

Napi::Value SessionCache::SetReport(const Napi::CallbackInfo& info) {
  if (cache_ != nullptr) rn_session_cache_set_report(cache_, info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

// takeNew() → [sessionId, sessionData, ...]: sessions stored since the last
// call (only while reporting), oldest first.
Napi::Value SessionCache::TakeNew(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  if (cache_ == nullptr) return out;
  struct Sink {
    Napi::Env env;
    Napi::Array out;
    uint32_t k = 0;
  } sink{env, out};
  rn_session_cache_take_new(
      cache_,
      [](void* userdata, const uint8_t* key, size_t key_len, const uint8_t* value, size_t value_len) {
        auto* s = static_cast<Sink*>(userdata);
        s->out.Set(s->k++, Napi::Buffer<uint8_t>::Copy(s->env, key, key_len));
        s->out.Set(s->k++, Napi::Buffer<uint8_t>::Copy(s->env, value, value_len));
      },
      &sink);
  return out;
}

Napi::Value SessionCache::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void SessionCache::Close() {
  // Configs using the cache keep their own reference to the Rust store.
  rn_session_cache_free(cache_);
  cache_ = nullptr;
  count_.Release();
}

Napi::Function Ticketer::Init(Napi::Env env) {
  return DefineClass(env, "Ticketer",
                     {InstanceMethod<&Ticketer::SetKeys>("setKeys"), InstanceMethod<&Ticketer::Destroy>("destroy")});
}

const rn_ticketer* Ticketer::FromOptional(Napi::Value value, bool* ok) {
  *ok = true;
  if (value.IsUndefined() || value.IsNull()) return nullptr;
  Ticketer* handle = UnwrapLive<Ticketer>(value, kTicketerTag, "ticketer", "Ticketer");
  *ok = handle != nullptr;
  return handle == nullptr ? nullptr : handle->ticketer_;
}

Ticketer::Ticketer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ticketer>(info), count_(kTicketerHandle) {
  SetTag(info.This().As<Napi::Object>(), kTicketerTag);
  const uint8_t* material;
  size_t len;
  if (!GetBytes(info[0], "ticketKeys", &material, &len)) {
    return;
  }
  uint32_t lifetime = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  // Copies the key material; the caller's buffer is not retained.
  rustls_result r = rn_ticketer_new(material, len, lifetime, &ticketer_);
  if (r != RUSTLS_RESULT_OK) {
    {
      ThrowResult(info.Env(), r, "ticketKeys");
      return;
    }
  }
  count_.Acquire(info.Env());
}

Napi::Value Ticketer::SetKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (ticketer_ == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_HANDLE_DESTROYED", "ticketer was destroyed");
    return env.Undefined();
  }
  const uint8_t* material;
  size_t len;
  if (!GetBytes(info[0], "ticketKeys", &material, &len)) return env.Undefined();
  uint32_t lifetime = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  // Copies the material; on error the previous keys stay in use.
  rustls_result r = rn_ticketer_set_keys(ticketer_, material, len, lifetime);
  if (r != RUSTLS_RESULT_OK) ThrowResult(env, r, "ticketKeys");
  return env.Undefined();
}

Napi::Value Ticketer::Destroy(const Napi::CallbackInfo& info) {
  Close();
  return info.Env().Undefined();
}

void Ticketer::Close() {
  rn_ticketer_free(ticketer_);
  ticketer_ = nullptr;
  count_.Release();
}

}  // namespace rustls_node
