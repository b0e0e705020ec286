// H2Upstream: one HTTP/2 connection to a backend (backend.httpVersion "2"),
// an nghttp2 client session over a BackendConn: h2c with prior knowledge to
// a plain backend (RFC 9113 §3.3), h2 by ALPN over TLS (the host's backend
// ClientConfig offers only h2; a backend that selects nothing else is a
// "tls" failure). It carries many exchanges (plane/h2_exchange.h) at once,
// up to the backend's SETTINGS_MAX_CONCURRENT_STREAMS (and kMaxStreams);
// the listener's BackendPool keeps a few per target and opens another when
// all are full.
//
// Flow control both ways is nghttp2's windows, reopened by hand
// (no_auto_window_update): a response stream's window (kStreamWindow) is
// reopened only once its client took the bytes, so a backend can never
// send more than a window ahead of its slowest reader, and the connection
// window (kConnWindow) is as large as every stream's together, so one
// stalled stream does not stop the others. Request bodies are written as
// the backend's windows allow; the front reopens its client's window when
// the bytes reached this connection's socket (ExchangeOwner::OnBodyTaken).
//
// What nghttp2 sends is gathered into large writes (one TLS write per poll
// event or loop turn), produced only while the socket takes them. A GOAWAY
// from the backend drains the connection (streams it did not process are
// retried on another); a connection error (a malformed frame, a flood, the
// socket lost) ends this connection only, its exchanges getting 502 (no
// response yet) or a reset. No stream for the pool idle timeout (PlaneTimeouts): closed.
#ifndef RUSTLS_NODE_H2_UPSTREAM_H
#define RUSTLS_NODE_H2_UPSTREAM_H

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "plane/backend_conn.h"
#include "plane/end_of_turn.h"

namespace rustls_node {

class BackendPool;
class H2Exchange;

class H2Upstream final : public BackendOwner {
 public:
  // Response bytes a stream may have in flight (its window).
  static constexpr int32_t kStreamWindow = 64 * 1024;
  // Streams one connection carries at most, whatever the backend allows.
  static constexpr uint32_t kMaxStreams = 128;
  static constexpr int32_t kConnWindow = kStreamWindow * static_cast<int32_t>(kMaxStreams);
  // Response header list (RFC 9113 §6.5.2 counting), as the front's.
  static constexpr size_t kMaxHeaderList = 64 * 1024;

  // Starts a connection to `target` for `pool`; NULL (and *err) when it
  // could not start.
  static H2Upstream* Connect(Listener* listener, BackendPool* pool, BackendTarget* target,
                             BackendConn::StartError* err);
  ~H2Upstream() override;

  BackendTarget* target() const { return target_; }
  // Another stream fits: not draining, under the backend's limit and ours.
  bool HasRoom() const;
  bool draining() const { return draining_; }
  size_t streams() const { return streams_; }
  // Streams ever opened here before (0: a fresh connection).
  uint64_t uses() const { return uses_; }
  // No new streams; closed once the last one ends (a retired target).
  void Drain();
  // The pool is going away (and deletes this next).
  void Orphan() { pool_ = nullptr; }

  // For exchanges. Open submits `x`'s request as a new stream (false: this
  // connection cannot take it now). Close detaches `x`, resetting its
  // stream with `code` if it is still open.
  bool Open(H2Exchange* x, const nghttp2_nv* nva, size_t nvlen, bool body);
  void Close(H2Exchange* x, uint32_t code);
  // Response bytes of stream `id` taken by its client: its window reopens.
  void Consume(int32_t id, size_t n);
  // Request body bytes (or its end) wait for stream `id`.
  void ResumeData(int32_t id);
  nghttp2_session* session() const { return session_; }
  // A pump at the end of this loop turn.
  void Schedule();

  void OnBackendReady(BackendConn* b) override;
  void OnBackendFailed(BackendConn* b, const char* kind, uint32_t code, int sys_errno) override;
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  H2Upstream(Listener* listener, BackendPool* pool, BackendTarget* target);
  bool Init();
  // Each returns false once the upstream was deleted.
  bool ReadBackend();
  bool Feed(const uint8_t* data, size_t len);
  bool Pump();
  // The connection is over: every exchange still on it hears why, then it
  // is deleted (and leaves the pool).
  void Lost(const char* kind, uint32_t code, int sys_errno);
  void Link(H2Exchange* x);
  // Takes `x` off this connection: its stream's data source and user data
  // are cleared, and the bytes of a DATA frame nghttp2 already packed for
  // it are kept (orphans_) for the frame to go out whole.
  void Unlink(H2Exchange* x);
  void ReportTaken();
  void Idle();

  static nghttp2_ssize OnSend(nghttp2_session* session, const uint8_t* data, size_t length, int flags, void* user_data);
  static int OnSendData(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                        nghttp2_data_source* source, void* user_data);
  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user_data);
  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int OnDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* user_data);
  static int OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code, void* user_data);
  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int OnFrameNotSend(nghttp2_session* session, const nghttp2_frame* frame, int lib_error_code, void* user_data);

  Listener* listener_;
  BackendPool* pool_;  // NULL once out of it (lost, or the pool going away)
  BackendTarget* target_;
  BackendConn* conn_ = nullptr;
  nghttp2_session* session_ = nullptr;
  EndOfTurn turn_;  // Pump() at the end of this loop turn
  bool ready_ = false;
  bool draining_ = false;
  bool failed_ = false;  // a connection error: nothing new, closed after the GOAWAY went out
  bool idle_armed_ = false;
  bool settings_seen_ = false;  // the backend's SETTINGS came
  bool terminated_ = false;     // our GOAWAY is submitted
  H2Exchange* exchanges_ = nullptr;
  std::unordered_map<int32_t, std::vector<uint8_t>> orphans_;
  size_t streams_ = 0;
  uint64_t uses_ = 0;
};

}  // namespace rustls_node

#endif
