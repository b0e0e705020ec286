// TlsStream: one TLS session, server or client, as a byte pump with no
// N-API and no descriptor. Every path of the addon runs its TLS through
// this one class: the library's sockets (js/connection.cc, over a JS
// stream's slabs or over a descriptor), the native listener's handshakes,
// the tcp splice, the HTTP front ends and backend connections (through
// io/endpoint.h).
//
//   ciphertext in   Feed(in, out) / FeedEof(out)   → plaintext into `out`
//   plaintext in    Write(data, len)               → ciphertext queued
//   ciphertext out  WriteTls(callback)             → any vectored sink
//   close           SendCloseNotify()
//
// A server stream starts on rustls' acceptor: AcceptHello() reads the
// ClientHello, routes it (tls/router.h) and continues with the chosen
// host's config; the one accept, route and alert path of the addon.
// Alerts for a connection that never came to exist (a refused name, a
// malformed hello) are queued here too and leave through WriteTls first.
//
// Respects rustls-ffi's limits: read_tls takes at most one buffer's worth
// per call (looped); plaintext is drained after every step, so rustls'
// received-plaintext limit cannot make read_tls fail; write_tls is always
// offered after the handshake and after errors (alerts).
#ifndef RUSTLS_NODE_TLS_STREAM_H
#define RUSTLS_NODE_TLS_STREAM_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "abi.h"
#include "glue.h"
#include "tls/router.h"

namespace rustls_node {

// A byte range that rustls reads from (rustls_read_callback userdata).
struct InputCursor {
  const uint8_t* data = nullptr;
  size_t len = 0;
  size_t pos = 0;
};

// rustls_read_callback over an InputCursor. Returning 0 bytes tells rustls
// the peer closed the stream, so it is only called with input left, or on
// purpose to signal EOF.
int ReadFromCursor(void* userdata, uint8_t* buf, size_t n, size_t* out_n);

// Where plaintext goes: a fixed region (a JS slab; decryption stops when
// it is full) or, with `grow`, a vector that grows instead. The bytes are
// initialized memory, as rustls_connection_read requires.
struct PlainOut {
  uint8_t* base = nullptr;
  size_t cap = 0;
  size_t len = 0;
  std::vector<uint8_t>* grow = nullptr;

  // A growable vector from its start (its bytes keep their size between
  // uses, so they stay initialized without being zero-filled each time).
  static PlainOut Growing(std::vector<uint8_t>* v) {
    PlainOut out;
    out.grow = v;
    out.base = v->data();
    out.cap = v->size();
    return out;
  }
  // Room for at least `min` more bytes (growable), or any room (fixed).
  bool Reserve(size_t min);
};

// A handle of one's own on a session store (rn_session_cache_clone), freed
// with the last owner.
std::shared_ptr<rn_session_cache> SessionCacheRef(const rn_session_cache* cache);

class TlsStream {
 public:
  // Server: reads the ClientHello with rustls' acceptor first.
  static std::unique_ptr<TlsStream> Server();
  // Client: `conn` from rustls_client_connection_new, owned from here on.
  static std::unique_ptr<TlsStream> Client(rustls_connection* conn);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // ---- server, until a connection exists ------------------------------
  enum class Accept {
    kConnection,  // a connection exists; the rest of `in` is for Feed()
    kMore,        // the ClientHello is incomplete; all of `in` was taken
    kDeferred,    // the router leaves the choice to the application: Continue()
    kSession,     // the hello asks for a session the application looks up: ContinueSession()
    kFailed,      // see error(); an alert may be queued (WantsWrite())
  };
  // Which sessions the application is asked about before a hello is
  // processed (node:tls 'resumeSession', a store shared between servers):
  // TLS 1.2 session ids, TLS 1.3 PSK identities (only meaningful for a
  // server that issues stateful tickets), unless `local` (the server's own
  // store) has the session already.
  struct SessionLookup {
    bool tls12 = false;
    bool tls13 = false;
    // A handle of its own (SessionCacheRef): JS may destroy the server's.
    std::shared_ptr<rn_session_cache> local;
  };
  void set_session_lookup(const SessionLookup& lookup) { lookup_ = lookup; }
  // Reads ClientHello bytes from `in`, routes the hello with `router` and
  // continues with the chosen host's config. `router` is borrowed for the
  // call only.
  Accept AcceptHello(InputCursor& in, const Router& router);
  // Deferred routing: continues with `config` as host `host`, or refuses
  // the name when `config` is NULL (unrecognized_name, nothing else sent).
  Accept Continue(const ConfigRef& config, int host);
  // After kSession: the application's answer (`data` NULL: none, or no
  // answer in time) is handed to rustls as the stored session, then the
  // hello is processed. rustls refuses an answer it cannot decode: then
  // the handshake is a full one (session_refused()).
  Accept ContinueSession(const uint8_t* data, size_t len);
  bool accepting() const { return conn_ == nullptr && error_ == 0 && server_; }
  // The ClientHello while a choice is pending (routing or a session), else NULL.
  const rustls_accepted* hello() const { return accepted_; }
  // A deferred routing choice is pending (Continue()).
  bool awaiting_config() const { return accepted_ != nullptr && pending_ref_ == nullptr; }
  // A session lookup is pending (ContinueSession()); the key asked for.
  bool awaiting_session() const { return accepted_ != nullptr && pending_ref_ != nullptr; }
  const std::vector<uint8_t>& session_key() const { return session_key_; }
  // The application's answer was asked for by rustls and yet the handshake
  // is a full one: the answer was not a session rustls could use.
  bool session_refused() const { return session_used_ && conn_ != nullptr && !handshaking() && !resumed(); }
  // The application's answer is used up and its store should forget it:
  // rustls refused it, or it resumed a TLS 1.3 handshake (a stateful TLS
  // 1.3 session is single-use, RFC 8446 §8.1, as rustls' own cache takes it).
  bool session_spent() const {
    return session_refused() || (session_used_ && resumed() && rustls_connection_get_protocol_version(conn_) == 0x0304);
  }
  bool resumed() const {
    return conn_ != nullptr && rustls_connection_handshake_kind(conn_) == RUSTLS_HANDSHAKE_KIND_RESUMED;
  }

  // ---- the connection --------------------------------------------------
  // Runs ciphertext from `in` through rustls into `out`, stopping early
  // (PlainFull, `in` not all taken) when a fixed `out` is full. False once
  // the stream failed.
  bool Feed(InputCursor& in, PlainOut& out);
  // The transport ended: after close_notify that is the orderly end;
  // otherwise the stream fails with UNEXPECTED_EOF (a truncation cannot
  // pass as a clean end, RFC 8446 §6.1). With a full `out` it stops early
  // (PlainFull) and must be called again.
  bool FeedEof(PlainOut& out);
  // Encrypts all of `data` (no buffer limit: callers bound what they
  // write). False once the stream failed.
  bool Write(const uint8_t* data, size_t len);
  // Encrypts at most one record's worth; *n bytes taken.
  bool WriteRecord(const uint8_t* data, size_t len, size_t* n);
  // close_notify (RFC 8446 §6.1), once the handshake completed and while
  // the stream has not failed; queued for WriteTls.
  void SendCloseNotify();
  // Ciphertext waits: alerts made before a connection existed, or rustls'
  // own queue (flights, tickets, records, alerts after an error).
  bool WantsWrite() const;
  // Hands queued ciphertext to `cb` (rustls_write_vectored_callback
  // semantics: 0 and *n bytes taken, or an errno; EAGAIN keeps the rest).
  int WriteTls(rustls_write_vectored_callback cb, void* userdata, size_t* n);

  // Records a failure the stream did not see itself (the transport).
  void Fail(uint32_t code);
  // Flags (abi.h: HandshakeDone, PeerClosed, Error, PlainFull, Hello,
  // NeedConfig) raised since the last call.
  int32_t TakeFlags() {
    int32_t f = flags_;
    flags_ = 0;
    return f;
  }

  bool server() const { return server_; }
  rustls_connection* conn() const { return conn_; }
  uint32_t error() const { return error_; }
  bool failed() const { return error_ != 0; }
  bool handshaking() const { return conn_ == nullptr || rustls_connection_is_handshaking(conn_); }
  bool handshake_done() const { return handshake_done_; }
  bool peer_closed() const { return peer_closed_; }
  bool eof_fed() const { return eof_fed_; }
  // Server: the SNI the client sent (also after a refusal), the host and
  // the certificate (index in that host) chosen; -1 before.
  const std::string& sni() const { return sni_; }
  int host() const { return host_; }
  int certificate() const { return certificate_; }

 private:
  explicit TlsStream(bool server) : server_(server) {}
  Accept Into(const rustls_server_config* config, int host);
  // Routing is decided: ask for the session first when lookups are on.
  Accept Route(const ConfigRef& config, int host);
  bool Drain(PlainOut& out);
  void CheckHandshake();
  // Fails a connection that has no rustls_connection yet, with the alert
  // its client is owed (taking `queued`, rustls' own, which may be NULL).
  void FailAccept(uint32_t code, rustls_accepted_alert* queued);
  void FreeAccept();

  bool server_;
  rustls_acceptor* acceptor_ = nullptr;
  rustls_accepted* accepted_ = nullptr;
  rustls_connection* conn_ = nullptr;
  std::string sni_;
  int host_ = -1;
  int certificate_ = -1;
  uint32_t error_ = 0;
  int32_t flags_ = 0;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool eof_fed_ = false;
  // Alert bytes made outside rustls' connection queue; sent before it.
  std::vector<uint8_t> alert_;
  size_t alert_off_ = 0;
  // Session lookups: the hello's records as read (while lookups are on),
  // and the routing decision that waits for the answer.
  SessionLookup lookup_;
  std::vector<uint8_t> hello_records_;
  std::vector<uint8_t> session_key_;
  ConfigRef pending_ref_;
  int pending_host_ = -1;
  bool session_used_ = false;
};

}  // namespace rustls_node

#endif
