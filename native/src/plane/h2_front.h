// H2Front: the HTTP/2 front of http mode, below JS. An established client
// TLS connection whose ALPN is h2, on an http-mode host, is served by an
// nghttp2 server session (frames, HPACK, flow control, SETTINGS, PING,
// GOAWAY and RST_STREAM are nghttp2's): plaintext from TlsEndpoint::Read
// goes to nghttp2_session_mem_recv2, and what nghttp2 sends is gathered in
// large writes (one TLS write and one Flush per poll event or loop turn),
// produced only while the endpoint's queue is empty. Each stream
// (h2_stream.h) becomes an upstream exchange (upstream.h), today HTTP/1.1
// on the listener's backend pool (h1_exchange.h).
//
// Limits: max concurrent streams (SETTINGS, default 100), a header list of
// kMaxHeaderList bytes (RFC 9113 §6.5.2 counting), a 64 KiB stream window
// and 1 MiB connection window for request bodies, 64 KiB of response per
// stream and 1 MiB per connection waiting for the client's windows.
// Clients that misbehave lose their connection (GOAWAY ENHANCE_YOUR_CALM),
// never another's: the reason is logged and counted per reason (Listener::
// HttpNotice); the reasons are listed at kAbuseReasons in h2_front.cc.
#ifndef RUSTLS_NODE_H2_FRONT_H
#define RUSTLS_NODE_H2_FRONT_H

#include <nghttp2/nghttp2.h>

#include <memory>
#include <string>
#include <vector>

#include "io/endpoint.h"
#include "js/common.h"
#include "plane/end_of_turn.h"
#include "plane/listener.h"

namespace rustls_node {

class BackendTarget;
class H2Stream;

// A token bucket: `burst` events at once, `rate` more per second.
struct RateLimit {
  double tokens = -1;
  uint64_t last_ms = 0;
  bool Take(uint64_t now_ms, double burst, double rate);
};

class H2Front final : public Owned, public Timed {
 public:
  // Takes over `p`'s connection (and deletes `p`).
  // Takes over a connection whose handshake completed (ALPN h2).
  static void Start(Listener* listener, Handshaken h, BackendTarget* target);
  ~H2Front() override;
  void Abort() override { delete this; }
  // GOAWAY: streams under way finish, no new ones (SIGTERM).
  void Drain() override;
  uint64_t BytesIn() const override { return client_->bytes_in; }
  uint64_t BytesOut() const override { return client_->bytes_out; }
  void OnDeadline() override;

  // For streams.
  nghttp2_session* session() const { return session_; }
  RouteSet* set() const { return set_; }
  int host() const { return host_; }
  BackendTarget* target() const { return target_; }
  const std::string& sni() const { return sni_; }
  const std::string& forwarded() const { return forwarded_; }
  // A pump at the end of this loop turn (backend news).
  void Schedule();
  // Response bytes waiting for the client, over every stream.
  size_t buffered = 0;
  bool Room() const { return buffered < kConnOut; }
  void Paused() { paused_++; }
  // A request answered 403 or 421: logged (info) by JS.
  void Misdirected(const char* reason, int status, std::string_view authority);
  // Ends the connection for a misbehaving client (see kAbuseReasons).
  void Abuse(const char* reason);
  void StreamClosed(H2Stream* s);

  static constexpr size_t kConnOut = 1024 * 1024;
  static constexpr size_t kMaxHeaderList = 64 * 1024;

 private:
  H2Front(Listener* listener, Handshaken h, BackendTarget* target);
  bool Init();
  static void OnClientPoll(uv_poll_t* handle, int status, int events);
  // Each returns false once the front was deleted.
  bool ReadClient();
  bool Feed(const uint8_t* data, size_t len);
  bool Pump();
  bool Close();

  // nghttp2 callbacks (user_data is the front).
  static nghttp2_ssize OnSend(nghttp2_session* session, const uint8_t* data, size_t length, int flags, void* user_data);
  static int OnSendData(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd, size_t length,
                        nghttp2_data_source* source, void* user_data);
  static int OnBeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user_data);
  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t flags, void* user_data);
  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);
  static int OnDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data, size_t len,
                         void* user_data);
  static int OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code, void* user_data);
  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user_data);

  std::unique_ptr<TlsEndpoint> client_;
  nghttp2_session* session_ = nullptr;
  RouteSet* set_;
  int host_;
  int certificate_;
  std::string sni_;
  BackendTarget* target_;
  std::string forwarded_;  // X-Forwarded-*, X-SSL-* lines of this connection
  EndOfTurn turn_;         // Pump() at the end of this loop turn
  bool closing_ = false;
  const char* abuse_ = nullptr;
  H2Stream* streams_ = nullptr;
  size_t live_streams_ = 0;
  size_t paused_ = 0;
  bool settings_acked_ = false;
  size_t continuations_ = 0;
  RateLimit settings_;
  RateLimit pings_;
  RateLimit resets_;
  RateLimit empty_;
  // Deadline bookkeeping (OnDeadline runs every tick_ms_).
  uint64_t tick_ms_;
  uint64_t last_active_ms_ = 0;
  uint64_t stall_since_ms_ = 0;
  uint64_t data_sent_ = 0;
  uint64_t stall_data_ = 0;
  uint64_t stall_out_ = 0;
  uint64_t closing_since_ms_ = 0;
};

// nghttp2Version(): the version of the nghttp2 linked into the addon (ours,
// not Node's: its symbols are hidden and our calls bind to our copy).
Napi::Value Nghttp2Version(const Napi::CallbackInfo& info);

}  // namespace rustls_node

#endif
