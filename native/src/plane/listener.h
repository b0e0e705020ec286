// Listener: the native accept path. The addon owns the listening socket,
// accepts with accept4() on the Node loop (uv_poll_t), reads the
// ClientHello, routes it by SNI (HostRouter), runs the handshake and its
// timeout, and only then decides what becomes of the connection:
//   - a host whose plan is "js" (the library): a Connection object in
//     socket mode is handed to JS (secureConnection, HTTP/2, ...);
//   - a host whose plan is "tcp" (the terminator): a Splice joins it to its
//     backend (splice.h);
//   - a host whose plan is "http" (the terminator): the HTTP/1.1 proxy or
//     the HTTP/2 front by ALPN (http_proxy.h, h2_front.h).
// The terminator's connections never reach JS.
// Refused, failed and timed-out handshakes never reach JS: they are counted
// and, when JS asks for them, reported in batches (one call per loop turn)
// for logging.
#ifndef RUSTLS_NODE_LISTENER_H
#define RUSTLS_NODE_LISTENER_H

#include <uv.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "abi.h"
#include "io/deadlines.h"
#include "io/endpoint.h"
#include "js/common.h"

namespace rustls_node {

class HostRouter;
class BackendTarget;
class BackendPool;
class Listener;
class TlsEndpoint;

// Counts shared by a listener and every connection it accepted, including
// the ones handed to JS; outlives the listener while they live.
struct ListenerStats {
  int64_t live = 0;
  int64_t max = 0;  // 0: no limit
  uint64_t accepted = 0;
  uint64_t rejected = 0;
  uint64_t closed = 0;
  // Raw bytes of connections that closed.
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  // Told when the last connection of a closed listener ends; cleared when
  // the listener goes away first.
  Listener* owner = nullptr;

  void Closed(uint64_t in, uint64_t out);
};

// What becomes of an established connection of one host.
struct Plan {
  PlanKind kind = kPlanJs;
  BackendTarget* target = nullptr;  // kPlanTcp, kPlanHttp
  // The host's primary name: the Host of an HTTP/1.0 request that sent none.
  std::string server_name;
};

// The timeouts of the data plane's connections after their handshake. Their
// values are written once, in lib/terminator/config.ts (DEFAULTS), and come
// through setOptions({timeouts}); 0 (unset) means none.
struct PlaneTimeouts {
  uint64_t headers_ms = 0;     // a request head must be complete this long after its first byte (408)
  uint64_t keep_alive_ms = 0;  // an idle keep-alive HTTP/1.1 connection is closed
  uint64_t close_ms = 0;       // a client that does not close after our close_notify (or GOAWAY)
  uint64_t linger_ms = 0;      // after the backend closed, a client that keeps its side open (tcp, tunnels)
  uint64_t pool_idle_ms = 0;   // an idle pooled backend connection is closed
};

// A router and its plans as one reload generation set them. Connections
// count on their set; a retired set with no connection left is freed and
// reported to JS (which then releases what it built for it).
struct RouteSet {
  int id = 0;
  Napi::ObjectReference router_ref;
  HostRouter* router = nullptr;
  std::vector<Plan> plans;
  std::vector<Napi::ObjectReference> target_refs;
  int64_t live = 0;
  bool retired = false;
};

// A connection the listener owns; in the listener's list until it closes.
class Owned {
 public:
  explicit Owned(Listener* listener);
  virtual ~Owned();
  virtual void Abort() = 0;
  // Shutdown: finish what is under way, take nothing new (http mode).
  virtual void Drain() {}
  virtual uint64_t BytesIn() const = 0;
  virtual uint64_t BytesOut() const = 0;
  Listener* listener() const { return listener_; }

 protected:
  Listener* listener_;
  Owned* prev_ = nullptr;
  Owned* next_ = nullptr;
  friend class Listener;
};

// A connection whose handshake completed, as it moves from the listener to
// its owner (a splice, an HTTP front end, JS): one object. The endpoint
// carries the descriptor, its poll handle, the TLS session and what the
// handshake chose (SNI, host, certificate).
struct Handshaken {
  std::unique_ptr<TlsEndpoint> ep;
  // Plaintext that arrived with the client's last handshake flight.
  std::vector<uint8_t> early;
  // The route set this connection counts on; the new owner releases it.
  RouteSet* set = nullptr;
};

// bindListener(options) → {fd, address, family, port}: a listening socket
// nobody accepts on yet, for another process to inherit (a cluster
// primary binds, its workers accept).
Napi::Value BindListener(const Napi::CallbackInfo& info);

class Listener : public Napi::ObjectWrap<Listener> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new Listener(onevent, {handshakeTimeout, noDelay, keepAlive, keepAliveDelay})
  explicit Listener(const Napi::CallbackInfo& info);
  ~Listener() override;

  uv_loop_t* loop() const { return loop_; }
  Deadlines& deadlines() { return *deadlines_; }
  const PlaneTimeouts& timeouts() const { return timeouts_; }
  // Arms `item` for `ms` from now, or disarms it when `ms` is 0 (unset).
  void Arm(Timed* item, uint64_t ms) {
    if (ms == 0)
      deadlines_->Remove(item);
    else
      deadlines_->Add(item, ms);
  }
  // ACME http-01 (RFC 8555 §8.3): the key authorization to answer a GET or
  // HEAD of /.well-known/acme-challenge/<token> with, for a token an order
  // waits on (setHttpChallenge from lib/terminator/acme.ts), whichever host
  // the request names; NULL for every other request.
  const std::string* AcmeAnswer(std::string_view method, std::string_view target) const;
  const std::shared_ptr<ListenerStats>& stats() const { return stats_; }
  bool closed() const { return closed_; }

  // Called by connections.
  void Link(Owned* o);
  void Unlink(Owned* o);
  void Release(RouteSet* set);
  void Failed(uint32_t code, int sys_errno, const std::string& sni, const Endpoint& ep);
  void BackendFailed(RouteSet* set, int host, const char* kind, uint32_t code, int sys_errno);
  // `spent`: the key of a looked-up session the application's store should
  // forget (TlsStream::session_spent()), reported to JS.
  void HandshakeDone(bool resumed, bool session_refused = false, const std::vector<uint8_t>* spent = nullptr);
  // Session lookups (node:tls 'resumeSession', a shared store): what
  // pending hellos ask, reported in batches; JS answers each by id.
  TlsStream::SessionLookup session_lookup() const;
  uint64_t session_lookup_timeout_ms() const { return session_lookup_timeout_ms_; }
  uint32_t LookupSession(class Pending* p, const std::vector<uint8_t>& key);
  void ForgetLookup(uint32_t id) { lookups_.erase(id); }
  void SessionAnswered(bool found, bool timed_out);
  // A connection for JS, established or paused at a ClientHello that a
  // deferred router leaves to the application: a Connection on the fd pump
  // takes it over, with the plaintext not consumed yet; the set's count
  // passes to JS.
  void Deliver(Handshaken h);
  BackendPool& pool() { return *pool_; }
  bool draining() const { return draining_; }
  void HttpResponse(int status) { http_responses_[status]++; }
  // The HTTP fronts: a request answered 403 or 421 (`status`; `reason` as
  // the answer words it; `authority` as sent), or an HTTP/2 connection
  // closed because the client misbehaved (`status` 0, `reason` one of
  // H2Front's abuse reasons, counted in counters().h2Abuse). Reported to JS
  // in batches for the log (kEventHttpNotices).
  void HttpNotice(RouteSet* set, int host, const char* reason, int status, int fd, const std::string& sni,
                  std::string_view authority);

  // Records a completed handshake for a debug log line (reportHandshakes).
  // `always`: reported even when JS did not ask (ACME challenges).
  void Handshook(class Pending* p, bool always = false);
  void Drained();

 private:
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value SetRoutes(const Napi::CallbackInfo& info);
  Napi::Value SetOptions(const Napi::CallbackInfo& info);
  Napi::Value CloseJs(const Napi::CallbackInfo& info);
  Napi::Value AbortAll(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value SetRef(const Napi::CallbackInfo& info);
  // drain(): no new exchanges on kept-alive connections (SIGTERM).
  Napi::Value DrainJs(const Napi::CallbackInfo& info);
  // answerSession(lookupId, sessionData | null)
  Napi::Value AnswerSessionJs(const Napi::CallbackInfo& info);
  // setSessionCache(cache | null): the server's own store, checked before
  // asking JS, and drained of new sessions for JS when it reports them.
  Napi::Value SetSessionCache(const Napi::CallbackInfo& info);
  // setHttpChallenge(token, keyAuthorization | null): adds or removes one
  // ACME http-01 answer.
  Napi::Value SetHttpChallenge(const Napi::CallbackInfo& info);
  void Close();
  void StopListening();
  void MaybeRelease();

  static void OnListenPoll(uv_poll_t* handle, int status, int events);
  static void OnCheck(uv_check_t* handle);
  static void OnResume(uv_timer_t* timer);
  void AcceptAll();
  void Flush();
  void ScheduleFlush();

  uv_loop_t* loop_ = nullptr;
  std::unique_ptr<Deadlines> deadlines_;
  int listen_fd_ = -1;
  uv_poll_t* listen_poll_ = nullptr;
  uv_timer_t* resume_timer_ = nullptr;  // after EMFILE: accept again later
  uv_check_t* check_ = nullptr;
  bool check_active_ = false;
  bool closed_ = false;
  bool referenced_ = true;
  bool self_ref_ = false;
  bool finalizing_ = false;

  uint64_t handshake_timeout_ms_ = 0;  // every caller sets it (lib/server.ts, lib/terminator/config.ts)
  bool no_delay_ = true;
  bool keep_alive_ = false;
  int keep_alive_delay_s_ = 0;
  bool report_failures_ = false;
  bool report_handshakes_ = false;
  bool session_lookups_ = false;
  bool session_lookups_tls13_ = false;
  uint64_t session_lookup_timeout_ms_ = 50;
  std::shared_ptr<rn_session_cache> session_cache_;
  bool report_new_sessions_ = false;
  uint32_t next_lookup_ = 1;
  std::unordered_map<uint32_t, class Pending*> lookups_;
  std::vector<std::pair<uint32_t, std::vector<uint8_t>>> lookups_out_;
  // Keys of looked-up sessions used up, for the application's store (SpentSessions).
  std::vector<std::vector<uint8_t>> spent_out_;
  uint64_t session_lookups_total_ = 0;
  uint64_t session_lookup_hits_ = 0;
  uint64_t session_lookup_timeouts_ = 0;
  uint64_t sessions_refused_ = 0;
  PlaneTimeouts timeouts_;
  std::unordered_map<std::string, std::string> http_challenges_;

  RouteSet* current_ = nullptr;
  std::vector<RouteSet*> retired_;
  std::shared_ptr<ListenerStats> stats_;
  Owned* head_ = nullptr;

  uint64_t handshakes_ = 0;
  uint64_t resumed_ = 0;
  std::map<uint32_t, uint64_t> failures_by_code_;
  std::map<std::string, uint64_t> backend_errors_;
  std::map<int, uint64_t> http_responses_;
  std::map<std::string, uint64_t> h2_abuse_;
  std::unique_ptr<BackendPool> pool_;
  bool draining_ = false;

  struct Failure {
    uint32_t code;
    int sys_errno;
    std::string sni;
    SocketAddress peer;
    uint64_t bytes_in;
    uint64_t bytes_out;
  };
  std::vector<Failure> failures_;
  struct BackendFailure {
    int set;
    int host;
    const char* kind;
    uint32_t code;
    int sys_errno;
  };
  std::vector<BackendFailure> backend_failures_;
  struct Handshake {
    int set;
    int host;
    std::string sni;
    SocketAddress peer;
    uint16_t version;
    uint16_t suite;
    std::string alpn;
    bool resumed;
  };
  std::vector<Handshake> handshakes_done_;
  struct HttpNoticeItem {
    int set;
    int host;
    const char* reason;
    int status;
    std::string sni;
    SocketAddress peer;
    std::string authority;
  };
  std::vector<HttpNoticeItem> http_notices_;
  std::vector<int> idle_sets_;
  bool drained_ = false;

  Napi::FunctionReference onevent_;
  std::unique_ptr<Napi::AsyncContext> async_;
  HandleCount count_;
  friend class Pending;
};

}  // namespace rustls_node

#endif
