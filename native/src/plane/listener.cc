#include "plane/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "io/bind.h"
#include "js/config.h"
#include "js/connection.h"
#include "js/router.h"
#include "js/session.h"
#include "plane/h2_front.h"
#include "plane/http_proxy.h"
#include "plane/pending.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

// Accepts per readable event of the listening socket, so that a burst of
// connections cannot starve the ones already accepted.
constexpr int kAcceptsPerEvent = 64;
// After EMFILE and the like, accepting resumes after this long.
constexpr uint64_t kAcceptPauseMs = 100;

// A Node-style system error (code, errno, syscall, address, port).
void ThrowSystemError(Napi::Env env, int err, const char* syscall, const std::string& address, int port) {
  int uv = uv_translate_sys_error(err);
  std::string message = std::string(syscall) + " " + uv_err_name(uv) + ": " + uv_strerror(uv);
  if (!address.empty()) message += " " + address + (port >= 0 ? ":" + std::to_string(port) : "");
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, uv_err_name(uv)));
  e.Set("errno", Napi::Number::New(env, uv));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (!address.empty()) e.Set("address", Napi::String::New(env, address));
  if (port >= 0) e.Set("port", Napi::Number::New(env, port));
  e.ThrowAsJavaScriptException();
}

Napi::Object AddressObject(Napi::Env env, const SocketAddress& a) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("address", Napi::String::New(env, a.address));
  o.Set("family", Napi::String::New(env, a.family == 6 ? "IPv6" : "IPv4"));
  o.Set("port", Napi::Number::New(env, a.port));
  return o;
}

}  // namespace

void ListenerStats::Closed(uint64_t in, uint64_t out) {
  live--;
  closed++;
  bytes_in += in;
  bytes_out += out;
  if (live == 0 && owner != nullptr && owner->closed()) owner->Drained();
}

// ---- Owned ----------------------------------------------------------------

Owned::Owned(Listener* listener) : listener_(listener) { listener->Link(this); }

Owned::~Owned() { listener_->Unlink(this); }

// ---- Listener ------------------------------------------------------------

Napi::Function Listener::Init(Napi::Env env) {
  return DefineClass(env, "Listener",
                     {
                         InstanceMethod<&Listener::Listen>("listen"),
                         InstanceMethod<&Listener::SetRoutes>("setRoutes"),
                         InstanceMethod<&Listener::SetOptions>("setOptions"),
                         InstanceMethod<&Listener::CloseJs>("close"),
                         InstanceMethod<&Listener::AbortAll>("abortAll"),
                         InstanceMethod<&Listener::Counters>("counters"),
                         InstanceMethod<&Listener::SetRef>("setRef"),
                         InstanceMethod<&Listener::DrainJs>("drain"),
                         InstanceMethod<&Listener::AnswerSessionJs>("answerSession"),
                         InstanceMethod<&Listener::SetSessionCache>("setSessionCache"),
                         InstanceMethod<&Listener::SetHttpChallenge>("setHttpChallenge"),
                     });
}

Listener::Listener(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<Listener>(info), stats_(std::make_shared<ListenerStats>()), count_(kListenerHandle) {
  stats_->owner = this;
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "new Listener(onevent, options) needs a function");
    return;
  }
  if (napi_get_uv_event_loop(env, &loop_) != napi_ok || loop_ == nullptr) {
    ThrowCode(env, "ERR_RUSTLS_SOCKET", "no event loop");
    return;
  }
  onevent_ = Napi::Persistent(info[0].As<Napi::Function>());
  async_ = std::make_unique<Napi::AsyncContext>(env, "RustlsListener");
  deadlines_ = std::make_unique<Deadlines>(loop_);
  pool_ = std::make_unique<BackendPool>(this);
  check_ = new uv_check_t;
  uv_check_init(loop_, check_);
  // Active only while reports wait, and then it must keep the loop alive
  // until they are delivered.
  check_->data = this;
  if (info[1].IsObject()) SetOptions(info);
  count_.Acquire(env);
}

Listener::~Listener() { Close(); }

Napi::Value Listener::SetOptions(const Napi::CallbackInfo& info) {
  if (!info[1].IsObject()) return info.Env().Undefined();
  Napi::Object o = info[1].As<Napi::Object>();
  Napi::Value v = o.Get("handshakeTimeout");
  if (v.IsNumber())
    handshake_timeout_ms_ = static_cast<uint64_t>(std::max<int64_t>(0, v.As<Napi::Number>().Int64Value()));
  v = o.Get("noDelay");
  if (v.IsBoolean()) no_delay_ = v.As<Napi::Boolean>().Value();
  v = o.Get("keepAlive");
  if (v.IsBoolean()) keep_alive_ = v.As<Napi::Boolean>().Value();
  v = o.Get("keepAliveInitialDelay");
  if (v.IsNumber()) keep_alive_delay_s_ = std::max(1, static_cast<int>(v.As<Napi::Number>().Int64Value() / 1000));
  v = o.Get("maxConnections");
  if (v.IsNumber()) stats_->max = std::max<int64_t>(0, v.As<Napi::Number>().Int64Value());
  v = o.Get("reportFailures");
  if (v.IsBoolean()) report_failures_ = v.As<Napi::Boolean>().Value();
  v = o.Get("reportHandshakes");
  if (v.IsBoolean()) report_handshakes_ = v.As<Napi::Boolean>().Value();
  v = o.Get("sessionLookups");
  if (v.IsBoolean()) session_lookups_ = v.As<Napi::Boolean>().Value();
  v = o.Get("sessionLookupsTls13");
  if (v.IsBoolean()) session_lookups_tls13_ = v.As<Napi::Boolean>().Value();
  v = o.Get("sessionLookupTimeout");
  if (v.IsNumber())
    session_lookup_timeout_ms_ = static_cast<uint64_t>(std::max<int64_t>(1, v.As<Napi::Number>().Int64Value()));
  v = o.Get("reportNewSessions");
  if (v.IsBoolean()) report_new_sessions_ = v.As<Napi::Boolean>().Value();
  v = o.Get("timeouts");
  if (v.IsObject()) {
    Napi::Object t = v.As<Napi::Object>();
    auto ms = [&](const char* key, uint64_t* out) {
      Napi::Value n = t.Get(key);
      if (n.IsNumber()) *out = static_cast<uint64_t>(std::max<int64_t>(0, n.As<Napi::Number>().Int64Value()));
    };
    ms("headersTimeout", &timeouts_.headers_ms);
    ms("keepAliveTimeout", &timeouts_.keep_alive_ms);
    ms("closeTimeout", &timeouts_.close_ms);
    ms("lingerTimeout", &timeouts_.linger_ms);
    ms("poolIdleTimeout", &timeouts_.pool_idle_ms);
  }
  return info.Env().Undefined();
}

Napi::Value Listener::SetHttpChallenge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "setHttpChallenge(token, keyAuthorization | null) needs a token");
    return env.Undefined();
  }
  std::string token = info[0].As<Napi::String>().Utf8Value();
  if (info[1].IsString())
    http_challenges_[token] = info[1].As<Napi::String>().Utf8Value();
  else
    http_challenges_.erase(token);
  return env.Undefined();
}

const std::string* Listener::AcmeAnswer(std::string_view method, std::string_view target) const {
  static constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";
  if (http_challenges_.empty() || (method != "GET" && method != "HEAD") || target.substr(0, kPrefix.size()) != kPrefix)
    return nullptr;
  std::string_view token = target.substr(kPrefix.size());
  token = token.substr(0, token.find('?'));
  auto it = http_challenges_.find(std::string(token));
  return it == http_challenges_.end() ? nullptr : &it->second;
}

namespace {

// The ListenSpec of listen()'s options: {fd} (adopted), {path} (Unix) or
// {host, port, backlog, reusePort, ipv6Only}.
ListenSpec ListenSpecOf(Napi::Object o) {
  ListenSpec spec;
  spec.backlog = o.Get("backlog").IsNumber() ? o.Get("backlog").As<Napi::Number>().Int32Value() : 511;
  if (o.Get("fd").IsNumber()) spec.fd = o.Get("fd").As<Napi::Number>().Int32Value();
  if (o.Get("path").IsString()) spec.path = o.Get("path").As<Napi::String>().Utf8Value();
  spec.host = o.Get("host").IsString() ? o.Get("host").As<Napi::String>().Utf8Value() : "";
  spec.port = o.Get("port").IsNumber() ? o.Get("port").As<Napi::Number>().Int32Value() : 0;
  spec.reuse_port = o.Get("reusePort").ToBoolean().Value();
  spec.v6only = o.Get("ipv6Only").ToBoolean().Value();
  return spec;
}

// A listening socket, or -1 after throwing (a Node-style system error, or
// ERR_INVALID_ARG_VALUE for a host that is not an address).
int BindListening(Napi::Env env, Napi::Object o, bool* is_unix) {
  BindError err;
  int fd = BindListening(ListenSpecOf(o), is_unix, &err);
  if (fd >= 0) return fd;
  if (err.sys_errno == 0)
    ThrowCode(env, "ERR_INVALID_ARG_VALUE", err.message);
  else
    ThrowSystemError(env, err.sys_errno, err.syscall, err.address, err.port);
  return -1;
}

}  // namespace

Napi::Value BindListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "bindListener(options) needs an object");
    return env.Undefined();
  }
  bool is_unix = false;
  int fd = BindListening(env, info[0].As<Napi::Object>(), &is_unix);
  if (fd < 0) return env.Undefined();
  Napi::Object o = is_unix ? Napi::Object::New(env) : AddressObject(env, LocalAddress(fd));
  o.Set("fd", Napi::Number::New(env, fd));
  return o;
}

// listen(options) → {address, family, port}: see BindListening; throws a
// system error (EADDRINUSE ...).
Napi::Value Listener::Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (closed_ || listen_fd_ >= 0) {
    ThrowCode(env, "ERR_SERVER_ALREADY_LISTEN", "the listener is already listening or closed");
    return env.Undefined();
  }
  if (!info[0].IsObject()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "listen(options) needs an object");
    return env.Undefined();
  }
  bool is_unix = false;
  int fd = BindListening(env, info[0].As<Napi::Object>(), &is_unix);
  if (fd < 0) return env.Undefined();
  auto* poll = new uv_poll_t;
  if (uv_poll_init(loop_, poll, fd) != 0) {
    delete poll;
    close(fd);
    ThrowCode(env, "ERR_RUSTLS_SOCKET", "cannot poll the listening socket");
    return env.Undefined();
  }
  poll->data = this;
  listen_poll_ = poll;
  listen_fd_ = fd;
  if (is_unix) {
    // TCP options have no meaning on a Unix socket.
    no_delay_ = false;
    keep_alive_ = false;
  }
  uv_poll_start(listen_poll_, UV_READABLE, OnListenPoll);
  if (!referenced_) uv_unref(reinterpret_cast<uv_handle_t*>(listen_poll_));
  // Kept alive by its socket and connections, not by JS references alone.
  if (!self_ref_) {
    self_ref_ = true;
    Ref();
  }
  if (is_unix) return Napi::Object::New(env);
  return AddressObject(env, LocalAddress(fd));
}

// setRoutes(router, plans[], id): the hosts (and what happens to each
// host's connections) for connections accepted from now on.
Napi::Value Listener::SetRoutes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  HostRouter* router = HostRouter::FromValue(info[0], "router");
  if (router == nullptr) return env.Undefined();
  auto set = std::make_unique<RouteSet>();
  set->id = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  set->router_ref = Napi::Persistent(info[0].As<Napi::Object>());
  set->router = router;
  if (info[1].IsArray()) {
    Napi::Array plans = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < plans.Length(); i++) {
      Plan plan;
      Napi::Value entry = plans.Get(i);
      if (entry.IsObject()) {
        Napi::Object p = entry.As<Napi::Object>();
        int kind = p.Get("kind").IsNumber() ? p.Get("kind").As<Napi::Number>().Int32Value() : kPlanJs;
        if (kind == kPlanTcp || kind == kPlanHttp) {
          BackendTarget* target = BackendTarget::FromValue(p.Get("target"), "plans[].target");
          if (target == nullptr) return env.Undefined();
          plan.kind = static_cast<PlanKind>(kind);
          plan.target = target;
          if (p.Get("serverName").IsString()) plan.server_name = p.Get("serverName").As<Napi::String>().Utf8Value();
          set->target_refs.push_back(Napi::Persistent(p.Get("target").As<Napi::Object>()));
        }
      }
      set->plans.push_back(plan);
    }
  }
  RouteSet* previous = current_;
  current_ = set.release();
  if (previous != nullptr) {
    previous->retired = true;
    // Its backends' idle connections close; busy ones close after use.
    for (const Plan& p : previous->plans) {
      if (p.target != nullptr) pool_->Retire(p.target);
    }
    retired_.push_back(previous);
    previous->live++;  // Release() below does the bookkeeping once
    Release(previous);
  }
  return env.Undefined();
}

void Listener::Release(RouteSet* set) {
  if (set == nullptr) return;
  set->live--;
  if (!set->retired || set->live > 0) return;
  retired_.erase(std::remove(retired_.begin(), retired_.end(), set), retired_.end());
  idle_sets_.push_back(set->id);
  // Its targets go away with it (JS destroys them once told).
  for (const Plan& p : set->plans) {
    if (p.target != nullptr) pool_->Forget(p.target);
  }
  delete set;
  ScheduleFlush();
}

void Listener::Link(Owned* o) {
  o->next_ = head_;
  if (head_ != nullptr) head_->prev_ = o;
  head_ = o;
}

void Listener::Unlink(Owned* o) {
  if (o->prev_ != nullptr)
    o->prev_->next_ = o->next_;
  else if (head_ == o)
    head_ = o->next_;
  if (o->next_ != nullptr) o->next_->prev_ = o->prev_;
  o->prev_ = o->next_ = nullptr;
  MaybeRelease();
}

void Listener::MaybeRelease() {
  if (!closed_ || head_ != nullptr || finalizing_) return;
  // Closed and nothing left: JS references alone decide from now on.
  count_.Release();
  if (self_ref_) {
    self_ref_ = false;
    Unref();
  }
}

void Listener::OnListenPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Listener*>(handle->data);
  if (self == nullptr || self->closed_) return;
  self->AcceptAll();
}

void Listener::OnResume(uv_timer_t* timer) {
  auto* self = static_cast<Listener*>(timer->data);
  if (self == nullptr || self->closed_ || self->listen_poll_ == nullptr) return;
  uv_poll_start(self->listen_poll_, UV_READABLE, OnListenPoll);
}

void Listener::AcceptAll() {
  for (int i = 0; i < kAcceptsPerEvent && listen_fd_ >= 0; i++) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: stop polling for a moment rather
        // than spin on a readable socket we cannot accept from.
        uv_poll_stop(listen_poll_);
        if (resume_timer_ == nullptr) {
          resume_timer_ = new uv_timer_t;
          uv_timer_init(loop_, resume_timer_);
          resume_timer_->data = this;
          uv_unref(reinterpret_cast<uv_handle_t*>(resume_timer_));
        }
        uv_timer_start(resume_timer_, OnResume, kAcceptPauseMs, 0);
      }
      return;
    }
    stats_->accepted++;
    if ((stats_->max > 0 && stats_->live >= stats_->max) || current_ == nullptr) {
      stats_->rejected++;
      close(fd);
      continue;
    }
    int one = 1;
    if (no_delay_) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (keep_alive_) {
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      if (keep_alive_delay_s_ > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keep_alive_delay_s_, sizeof keep_alive_delay_s_);
    }
    auto* p = new Pending(this, fd, current_);
    if (!p->Start()) delete p;
  }
}

void Listener::HandshakeDone(bool resumed, bool session_refused, const std::vector<uint8_t>* spent) {
  handshakes_++;
  if (resumed) resumed_++;
  if (session_refused) sessions_refused_++;
  if (spent != nullptr) {
    spent_out_.push_back(*spent);
    ScheduleFlush();
  }
  // The handshake may have stored a session the application wants.
  if (report_new_sessions_ && session_cache_ != nullptr) ScheduleFlush();
}

TlsStream::SessionLookup Listener::session_lookup() const {
  TlsStream::SessionLookup l;
  l.tls12 = session_lookups_;
  l.tls13 = session_lookups_ && session_lookups_tls13_;
  l.local = session_cache_;
  return l;
}

uint32_t Listener::LookupSession(Pending* p, const std::vector<uint8_t>& key) {
  uint32_t id = next_lookup_++;
  if (next_lookup_ == 0) next_lookup_ = 1;
  lookups_[id] = p;
  lookups_out_.emplace_back(id, key);
  session_lookups_total_++;
  ScheduleFlush();
  return id;
}

void Listener::SessionAnswered(bool found, bool timed_out) {
  if (found) session_lookup_hits_++;
  if (timed_out) session_lookup_timeouts_++;
}

Napi::Value Listener::AnswerSessionJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) {
    ThrowCode(env, "ERR_INVALID_ARG_TYPE", "answerSession(lookupId, sessionData | null)");
    return env.Undefined();
  }
  auto it = lookups_.find(info[0].As<Napi::Number>().Uint32Value());
  // Answered too late (the bound ran out) or the client left: nothing to do.
  if (it == lookups_.end()) return Napi::Boolean::New(env, false);
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (!info[1].IsNull() && !info[1].IsUndefined() && !GetBytes(info[1], "sessionData", &data, &len))
    return env.Undefined();
  // The answer is copied into rustls before this returns (ContinueSession).
  it->second->AnswerSession(data, len, false);
  return Napi::Boolean::New(env, true);
}

Napi::Value Listener::SetSessionCache(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ok = true;
  const rn_session_cache* cache = SessionCache::FromOptional(info[0], &ok);
  if (!ok) return env.Undefined();
  // A handle of our own: JS may destroy the server's at any time.
  session_cache_ = SessionCacheRef(cache);
  return env.Undefined();
}

void Listener::Failed(uint32_t code, int sys_errno, const std::string& sni, const Endpoint& ep) {
  failures_by_code_[code]++;
  if (!report_failures_) return;
  failures_.push_back({code, sys_errno, sni, PeerAddress(ep.fd()), ep.bytes_in, ep.bytes_out});
  ScheduleFlush();
}

void Listener::Handshook(Pending* p, bool always) {
  if (!report_handshakes_ && !always) return;
  const TlsStream& tls = p->endpoint().stream();
  rustls_connection* conn = tls.conn();
  const uint8_t* alpn = nullptr;
  size_t alpn_len = 0;
  rustls_connection_get_alpn_protocol(conn, &alpn, &alpn_len);
  handshakes_done_.push_back(
      {p->set()->id, tls.host(), tls.sni(), PeerAddress(p->endpoint().fd()),
       rustls_connection_get_protocol_version(conn), rustls_connection_get_negotiated_ciphersuite(conn),
       alpn == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(alpn), alpn_len),
       rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED});
  ScheduleFlush();
}

void Listener::Drained() {
  drained_ = true;
  ScheduleFlush();
}

void Listener::BackendFailed(RouteSet* set, int host, const char* kind, uint32_t code, int sys_errno) {
  backend_errors_[kind]++;
  backend_failures_.push_back({set != nullptr ? set->id : 0, host, kind, code, sys_errno});
  ScheduleFlush();
}

void Listener::HttpNotice(RouteSet* set, int host, const char* reason, int status, int fd, const std::string& sni,
                          std::string_view authority) {
  if (status == 0) h2_abuse_[reason]++;
  // Bounded: a flood of notices between two loop turns keeps the first ones.
  if (http_notices_.size() >= 1000) return;
  http_notices_.push_back({set != nullptr ? set->id : 0, host, reason, status, sni, PeerAddress(fd),
                           std::string(authority.substr(0, 256))});
  ScheduleFlush();
}

void Listener::ScheduleFlush() {
  if (check_active_ || check_ == nullptr) return;
  check_active_ = true;
  uv_check_start(check_, OnCheck);
}

void Listener::OnCheck(uv_check_t* handle) {
  auto* self = static_cast<Listener*>(handle->data);
  if (self == nullptr) return;
  self->check_active_ = false;
  uv_check_stop(handle);
  self->Flush();
}

// One JS call per kind of news per loop turn; each list goes flat, a fixed
// number of values per entry.
void Listener::Flush() {
  if (onevent_.IsEmpty()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  auto call = [&](std::initializer_list<napi_value> args) {
    onevent_.MakeCallback(Value(), args, *async_);
    if (env.IsExceptionPending()) {
      Napi::Error err = env.GetAndClearPendingException();
      napi_fatal_exception(env, err.Value());
    }
  };
  auto text = [&](const std::string& s) -> Napi::Value {
    return s.empty() ? env.Undefined() : Napi::String::New(env, s);
  };
  auto num = [&](double n) -> Napi::Value { return Napi::Number::New(env, n); };
  auto errno_name = [&](int e) -> Napi::Value {
    return e != 0 ? Napi::String::New(env, ErrnoName(e)) : env.Undefined();
  };
  auto report = [&](auto& pending, ListenerEvent kind, auto&& put) {
    if (pending.empty()) return;
    std::remove_reference_t<decltype(pending)> list;
    list.swap(pending);
    Napi::Array a = Napi::Array::New(env);
    uint32_t k = 0;
    auto add = [&](Napi::Value v) { a.Set(k++, v); };
    for (const auto& item : list) put(item, add);
    call({num(kind), a});
  };
  report(failures_, kEventFailures, [&](const Failure& f, auto& add) {
    add(num(f.code));
    add(errno_name(f.sys_errno));
    add(text(f.sni));
    add(text(f.peer.address));
    add(num(f.peer.port));
    add(num(static_cast<double>(f.bytes_in)));
    add(num(static_cast<double>(f.bytes_out)));
  });
  report(backend_failures_, kEventBackend, [&](const BackendFailure& f, auto& add) {
    add(num(f.set));
    add(num(f.host));
    add(Napi::String::New(env, f.kind));
    add(num(f.code));
    add(errno_name(f.sys_errno));
  });
  report(handshakes_done_, kEventHandshakes, [&](const Handshake& h, auto& add) {
    add(num(h.set));
    add(num(h.host));
    add(text(h.sni));
    add(text(h.peer.address));
    add(num(h.peer.port));
    add(num(h.version));
    add(num(h.suite));
    add(text(h.alpn));
    add(Napi::Boolean::New(env, h.resumed));
  });
  report(http_notices_, kEventHttpNotices, [&](const HttpNoticeItem& n, auto& add) {
    add(num(n.set));
    add(num(n.host));
    add(Napi::String::New(env, n.reason));
    add(num(n.status));
    add(text(n.sni));
    add(text(n.peer.address));
    add(num(n.peer.port));
    add(text(n.authority));
  });
  if (!lookups_out_.empty()) {
    std::vector<std::pair<uint32_t, std::vector<uint8_t>>> list;
    list.swap(lookups_out_);
    Napi::Array a = Napi::Array::New(env);
    uint32_t k = 0;
    for (auto& [id, key] : list) {
      // A lookup answered (or timed out) before this turn ended is gone.
      if (lookups_.count(id) == 0) continue;
      a.Set(k++, num(id));
      a.Set(k++, Napi::Buffer<uint8_t>::Copy(env, key.data(), key.size()));
    }
    if (k > 0) call({num(kEventSessionLookups), a});
  }
  if (!spent_out_.empty()) {
    std::vector<std::vector<uint8_t>> list;
    list.swap(spent_out_);
    Napi::Array a = Napi::Array::New(env);
    uint32_t k = 0;
    for (auto& key : list) a.Set(k++, Napi::Buffer<uint8_t>::Copy(env, key.data(), key.size()));
    call({num(kEventSpentSessions), a});
  }
  if (report_new_sessions_ && session_cache_ != nullptr) {
    std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> made;
    rn_session_cache_take_new(
        session_cache_.get(),
        [](void* userdata, const uint8_t* key, size_t key_len, const uint8_t* value, size_t value_len) {
          static_cast<std::vector<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>>*>(userdata)->emplace_back(
              std::vector<uint8_t>(key, key + key_len), std::vector<uint8_t>(value, value + value_len));
        },
        &made);
    if (!made.empty()) {
      Napi::Array a = Napi::Array::New(env);
      uint32_t k = 0;
      for (auto& [key, value] : made) {
        a.Set(k++, Napi::Buffer<uint8_t>::Copy(env, key.data(), key.size()));
        a.Set(k++, Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size()));
      }
      call({num(kEventNewSessions), a});
    }
  }
  std::vector<int> idle;
  idle.swap(idle_sets_);
  for (int id : idle) call({num(kEventIdle), num(id)});
  if (drained_) {
    drained_ = false;
    call({num(kEventClosed)});
  }
}

void Listener::Deliver(Handshaken h) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  TlsEndpoint& ep = *h.ep;
  int host = ep.stream().host();
  // What the stream raised while the listener owned it is said here, once,
  // in `flags`: JS must not hear it again from the next call.
  ep.stream().TakeFlags();
  // Established, or paused at a ClientHello the application routes.
  int32_t flags = ep.stream().hello() != nullptr
                      ? kFlagNeedConfig
                      : kFlagHandshakeDone | kFlagHello | (ep.peer_closed() ? kFlagPeerClosed : 0) |
                            (ep.fin_received() ? kFlagTransportEnd : 0);
  int set_id = h.set != nullptr ? h.set->id : 0;
  Napi::Value plain = env.Undefined();
  if (!h.early.empty()) plain = Napi::Buffer<uint8_t>::Copy(env, h.early.data(), h.early.size());
  // JS accounts for the connection from here on; the set only counted it
  // while its router and backends were needed here.
  Release(h.set);
  Napi::Object conn = Connection::Adopt(env, std::move(h.ep), stats_);
  if (env.IsExceptionPending()) {
    Napi::Error err = env.GetAndClearPendingException();
    napi_fatal_exception(env, err.Value());
    return;
  }
  onevent_.MakeCallback(Value(),
                        {Napi::Number::New(env, kEventSecure), conn, Napi::Number::New(env, set_id),
                         Napi::Number::New(env, host), Napi::Number::New(env, flags), plain},
                        *async_);
  if (env.IsExceptionPending()) {
    Napi::Error err = env.GetAndClearPendingException();
    napi_fatal_exception(env, err.Value());
  }
}

Napi::Value Listener::DrainJs(const Napi::CallbackInfo& info) {
  draining_ = true;
  for (Owned* o = head_; o != nullptr;) {
    // Drain may end (and unlink) the connection it is called on.
    Owned* next = o->next_;
    o->Drain();
    o = next;
  }
  return info.Env().Undefined();
}

Napi::Value Listener::CloseJs(const Napi::CallbackInfo& info) {
  StopListening();
  if (!closed_) {
    closed_ = true;
    // No new connections: the current routes retire like a replaced set.
    if (current_ != nullptr) {
      RouteSet* set = current_;
      current_ = nullptr;
      set->retired = true;
      for (const Plan& p : set->plans) {
        if (p.target != nullptr) pool_->Retire(p.target);
      }
      retired_.push_back(set);
      set->live++;
      Release(set);
    }
    if (stats_->live == 0) Drained();
  }
  MaybeRelease();
  return info.Env().Undefined();
}

void Listener::StopListening() {
  CloseAndFree(listen_poll_);
  CloseAndFree(resume_timer_);
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

Napi::Value Listener::AbortAll(const Napi::CallbackInfo& info) {
  while (head_ != nullptr) head_->Abort();
  return info.Env().Undefined();
}

Napi::Value Listener::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const ListenerStats& s = *stats_;
  uint64_t live_in = 0;
  uint64_t live_out = 0;
  uint64_t owned = 0;
  for (Owned* c = head_; c != nullptr; c = c->next_) {
    live_in += c->BytesIn();
    live_out += c->BytesOut();
    owned++;
  }
  o.Set("accepted", static_cast<double>(s.accepted));
  o.Set("rejected", static_cast<double>(s.rejected));
  o.Set("live", static_cast<double>(s.live));
  o.Set("owned", static_cast<double>(owned));
  o.Set("closed", static_cast<double>(s.closed));
  o.Set("bytesIn", static_cast<double>(s.bytes_in));
  o.Set("bytesOut", static_cast<double>(s.bytes_out));
  o.Set("liveBytesIn", static_cast<double>(live_in));
  o.Set("liveBytesOut", static_cast<double>(live_out));
  o.Set("handshakes", static_cast<double>(handshakes_));
  o.Set("resumed", static_cast<double>(resumed_));
  o.Set("sessionLookups", static_cast<double>(session_lookups_total_));
  o.Set("sessionLookupHits", static_cast<double>(session_lookup_hits_));
  o.Set("sessionLookupTimeouts", static_cast<double>(session_lookup_timeouts_));
  o.Set("sessionsRefused", static_cast<double>(sessions_refused_));
  Napi::Object failures = Napi::Object::New(env);
  for (auto& [code, n] : failures_by_code_) failures.Set(std::to_string(code), static_cast<double>(n));
  o.Set("failures", failures);
  Napi::Object backend = Napi::Object::New(env);
  for (auto& [kind, n] : backend_errors_) backend.Set(kind, static_cast<double>(n));
  o.Set("backendErrors", backend);
  Napi::Object responses = Napi::Object::New(env);
  for (auto& [status, n] : http_responses_) responses.Set(std::to_string(status), static_cast<double>(n));
  o.Set("httpResponses", responses);
  Napi::Object abuse = Napi::Object::New(env);
  for (auto& [reason, n] : h2_abuse_) abuse.Set(reason, static_cast<double>(n));
  o.Set("h2Abuse", abuse);
  return o;
}

Napi::Value Listener::SetRef(const Napi::CallbackInfo& info) {
  referenced_ = info[0].ToBoolean().Value();
  if (listen_poll_ != nullptr) {
    if (referenced_)
      uv_ref(reinterpret_cast<uv_handle_t*>(listen_poll_));
    else
      uv_unref(reinterpret_cast<uv_handle_t*>(listen_poll_));
  }
  return info.Env().Undefined();
}

void Listener::Close() {
  // Finalizer or environment teardown: nothing may outlive us.
  finalizing_ = true;
  stats_->owner = nullptr;
  StopListening();
  closed_ = true;
  while (head_ != nullptr) head_->Abort();
  if (current_ != nullptr) {
    delete current_;
    current_ = nullptr;
  }
  for (RouteSet* s : retired_) delete s;
  retired_.clear();
  lookups_.clear();
  session_cache_ = nullptr;
  CloseAndFree(check_);
  pool_.reset();
  deadlines_.reset();
  count_.Release();
}

}  // namespace rustls_node
