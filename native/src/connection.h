// Connection: the TLS byte pump for one socket, server or client.
//
// JS calls native once per inbound chunk (feed) and once per outbound batch
// (write); each call runs the whole read_tls → process_new_packets → read
// (or write → write_tls) cycle here and reports through the shared results
// array (kResult* below, mirrored in lib/native.ts). No rustls callback ever
// calls into JS, and nothing here calls into JS either.
//
// Plaintext from feed and ciphertext from write/flush go into a caller
// supplied "slab" (a Buffer region JS then hands on with subarray, no copy);
// ciphertext that feed produces (handshake flights, alerts, tickets) comes
// back as one Buffer per call.
#ifndef RUSTLS_NODE_CONNECTION_H
#define RUSTLS_NODE_CONNECTION_H

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "net_io.h"

namespace rustls_node {

enum ResultSlot : int {
  kResultFlags = 0,
  kResultConsumed = 1,  // input bytes taken (feed) / plaintext bytes taken (write)
  kResultPlain = 2,     // plaintext bytes written to the slab (feed)
  kResultCipher = 3,    // ciphertext bytes: returned Buffer (feed) / slab (write, flush)
  kResultError = 4,     // rustls_result or LocalResult once an error occurred
  kResultHost = 5,      // server: index of the host chosen, -1 before
  kResultErrno = 6,     // socket mode: errno of a failed system call
  kResultSlots = 8,
};

// Slots of info(), which reuses the results array.
enum InfoSlot : int {
  kInfoVersion = 0,
  kInfoSuite = 1,
  kInfoResumed = 2,
  kInfoPeerCertificates = 3,
  kInfoHost = 4,
  kInfoCertificate = 5,
};

enum ResultFlag : int32_t {
  kFlagHandshakeDone = 1 << 0,  // the handshake completed during this call
  kFlagPeerClosed = 1 << 1,     // close_notify received and all plaintext read
  kFlagError = 1 << 2,          // the connection failed; see kResultError
  kFlagWantsWrite = 1 << 3,     // ciphertext is pending that did not fit: flush
  kFlagPlainFull = 1 << 4,      // the plaintext region filled up: call again
  kFlagHello = 1 << 5,          // server: ClientHello routed to a host
  kFlagNeedConfig = 1 << 6,     // server, deferred router: call accept(config)
  // Socket mode only (see connection_io.cc):
  kFlagDrained = 1 << 7,        // every pending ciphertext byte reached the kernel
  kFlagIoError = 1 << 8,        // a read/write system call failed; errno in the event
  kFlagTransportEnd = 1 << 9,   // the peer's FIN arrived
};

class HostRouter;
struct AcceptFailure;
struct ListenerStats;

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new Connection(router)                          server
  // new Connection(clientConfig, serverName, alpn?)  client
  explicit Connection(const Napi::CallbackInfo& info);
  ~Connection() override { Close(); }

  // Input chunk and plaintext output of one pump call; public for the
  // rustls I/O callbacks.
  using Input = InputCursor;

  // A server connection the native listener accepted and handshook
  // (listener.cc), handed to JS in socket mode: start() polls its
  // descriptor with the poll handle the listener made for it.
  struct Adopted {
    int fd = -1;
    uv_poll_t* poll = nullptr;
    rustls_connection* conn = nullptr;
    std::string server_name;
    int host = -1;
    int certificate = -1;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    bool peer_closed = false;
    bool transport_end = false;
    std::shared_ptr<ListenerStats> stats;
  };
  static Napi::Object Adopt(Napi::Env env, Adopted&& adopted);

  struct Slab {
    uint8_t* base = nullptr;
    size_t cap = 0;
    size_t len = 0;
    // Socket mode: plaintext goes into a vector that grows instead of
    // stopping at `cap` (JS applies backpressure by stopping reads instead).
    std::vector<uint8_t>* grow = nullptr;
  };

 private:

  // feed(input|null, inOffset, inLength, slab, slabOffset, slabCapacity)
  //   → Buffer of ciphertext to send, or undefined. null input means EOF.
  Napi::Value Feed(const Napi::CallbackInfo& info);
  // accept(serverConfig, hostIndex) → Buffer|undefined (deferred routers)
  Napi::Value Accept(const Napi::CallbackInfo& info);
  // write(data, offset, length, slab, slabOffset, slabCapacity)
  Napi::Value Write(const Napi::CallbackInfo& info);
  // flush(slab, slabOffset, slabCapacity)
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value SendCloseNotify(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value ServerName(const Napi::CallbackInfo& info);
  Napi::Value AlpnProtocol(const Napi::CallbackInfo& info);
  Napi::Value GroupName(const Napi::CallbackInfo& info);
  Napi::Value ClientHello(const Napi::CallbackInfo& info);
  Napi::Value PeerCertificate(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  // Socket mode (connection_io.cc): native code polls the TCP socket's
  // descriptor (a duplicate only while libuv still watches it) and does the
  // reads, writes and the pump itself; JS gets one callback per readable
  // event and makes one call per write batch.
  // start(fd, onevent(flags, plaintext|undefined, error, errno, host))
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value ReadStart(const Napi::CallbackInfo& info);
  Napi::Value ReadStop(const Napi::CallbackInfo& info);
  // writeSocket(buffer | buffer[], defer?) → 0 sent, 1 pending (kFlagDrained
  // follows), -1 failed; with defer, encrypted only, sent by flushSocket().
  Napi::Value WriteSocket(const Napi::CallbackInfo& info);
  Napi::Value FlushSocketJs(const Napi::CallbackInfo& info);
  // shutdownSocket() → close_notify, then FIN once everything is sent
  Napi::Value ShutdownSocket(const Napi::CallbackInfo& info);
  Napi::Value CloseSocketJs(const Napi::CallbackInfo& info);
  Napi::Value SetRef(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  // addresses() → {remoteAddress, remotePort, remoteFamily, localAddress,
  // localPort, localFamily} of the descriptor (no net.Socket to ask).
  Napi::Value Addresses(const Napi::CallbackInfo& info);
  // setSocketOption('noDelay' | 'keepAlive', enable, initialDelayMs?)
  Napi::Value SetSocketOption(const Napi::CallbackInfo& info);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  void OnReadable();
  void OnWritable();
  bool FlushSocket();
  Napi::Value FinishSocketWrite(Napi::Env env);
  void UpdatePoll();
  // Calls JS with the flags and a copy of plain_len bytes of plaintext.
  void Emit(int32_t flags, const uint8_t* plain = nullptr, size_t plain_len = 0);
  void CloseSocket();
  bool socket_mode() const { return fd_ >= 0; }

  bool CheckOpen(Napi::Env env);
  bool Accepting(Input& in, bool eof, int32_t* flags);
  bool IntoConnection(const rustls_server_config* config, int host, int32_t* flags);
  void SendAcceptFailure(const AcceptFailure& failure, int32_t* flags);
  void Pump(Input& in, bool eof, Slab& plain, int32_t* flags);
  bool DrainPlaintext(Slab& plain, int32_t* flags);
  void FlushToScratch();
  void FlushToSlab(Slab& out, int32_t* flags);
  void CheckHandshake(int32_t* flags);
  void FreeAcceptState();
  void Fail(uint32_t result, int32_t* flags);
  Napi::Value Finish(Napi::Env env, int32_t flags, size_t consumed, size_t plain,
                     size_t cipher);
  Napi::Value TakeScratch(Napi::Env env, int32_t flags, size_t consumed, size_t plain);

  rustls_acceptor* acceptor_ = nullptr;
  rustls_accepted* accepted_ = nullptr;
  rustls_connection* conn_ = nullptr;
  Napi::ObjectReference router_;
  std::string server_name_;
  uint32_t error_ = 0;
  int host_ = -1;
  int certificate_ = -1;
  bool server_ = false;
  bool handshake_done_ = false;
  bool peer_closed_ = false;
  bool eof_fed_ = false;
  bool closed_ = false;
  int64_t external_bytes_ = 0;
  // Socket mode.
  int fd_ = -1;
  bool owns_fd_ = false;  // a duplicate we made, closed by us
  uv_poll_t* poll_ = nullptr;
  int poll_events_ = 0;
  bool want_read_ = false;
  bool socket_eof_ = false;
  bool shutdown_pending_ = false;
  bool shut_down_ = false;
  bool write_blocked_ = false;
  // Adopted from the native listener: the descriptor and poll wait for start().
  bool adopted_ = false;
  std::shared_ptr<ListenerStats> stats_;
  // Plaintext taken by writeSocket() since the kernel last took everything:
  // past kEncryptAhead it is sent at once, so a writer that never waits
  // cannot pile up ciphertext in rustls' queue.
  size_t unflushed_ = 0;
  int errno_ = 0;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
  // Ciphertext that did not come from rustls' own queue (acceptor alerts)
  // or that the kernel did not take yet.
  std::vector<uint8_t> out_pending_;
  Napi::FunctionReference onevent_;
  std::unique_ptr<Napi::AsyncContext> async_;
  HandleCount count_;
};

}  // namespace rustls_node

#endif
