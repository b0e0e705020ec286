// Connection: the JS handle on one TLS stream (tls/stream.h), server or
// client, with one of two pumps beneath it:
//
// - the stream pump, for a transport that is a JS stream: JS calls native
//   once per inbound chunk (feed) and once per outbound batch (write); each
//   call runs the whole read_tls → process_new_packets → read (or write →
//   write_tls) cycle here and reports through the shared results array
//   (abi.h). Plaintext from feed and ciphertext from write/flush go into a
//   caller-supplied "slab" (a Buffer region JS hands on with subarray, no
//   copy); ciphertext that feed produces (handshake flights, alerts,
//   tickets) comes back as one Buffer per call.
// - the fd pump (connection_io.cc), for a socket descriptor: native code
//   polls it (io/endpoint.h), reads, decrypts, encrypts and writes itself;
//   JS gets one callback per readable event and makes one call per write
//   batch. A connection the native listener accepted arrives here by
//   moving its endpoint (Adopt).
//
// No rustls callback ever calls into JS, and nothing here calls into JS
// except the fd pump's event callback.
#ifndef RUSTLS_NODE_CONNECTION_H
#define RUSTLS_NODE_CONNECTION_H

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "abi.h"
#include "io/endpoint.h"
#include "io/net_io.h"
#include "js/common.h"

namespace rustls_node {

struct ListenerStats;

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new Connection(router)                          server
  // new Connection(clientConfig, serverName, alpn?)  client
  explicit Connection(const Napi::CallbackInfo& info);
  // Finalized only while not held (see held_); at the environment's
  // teardown the reference is going away with it, so no Unref().
  ~Connection() override {
    held_ = false;
    Close();
  }

  // A server connection the native listener accepted and handshook,
  // handed to JS on the fd pump: the endpoint (descriptor, poll, TLS
  // session) moves in; start() begins polling it.
  static Napi::Object Adopt(Napi::Env env, std::unique_ptr<TlsEndpoint> ep, std::shared_ptr<ListenerStats> stats);

 private:
  // ---- stream pump (connection.cc) ----
  // feed(input|null, inOffset, inLength, slab, slabOffset, slabCapacity)
  //   → Buffer of ciphertext to send, or undefined. null input means EOF.
  Napi::Value Feed(const Napi::CallbackInfo& info);
  // accept(serverConfig | null, hostIndex) → Buffer|undefined (deferred routers)
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value ResumeSession(const Napi::CallbackInfo& info);
  Napi::Value SessionKey(const Napi::CallbackInfo& info);
  Napi::Value AfterContinue(Napi::Env env);
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

  // ---- fd pump (connection_io.cc) ----
  // start(-1, onevent(flags, plaintext|undefined, error, errno, host)):
  // begins polling an adopted connection's descriptor.
  Napi::Value Start(const Napi::CallbackInfo& info);
  // connectSocket({host: ip, port} | {path}, onevent) → 0, or an errno when
  // the connect could not even start: a client stream connects natively
  // (non-blocking), Connected follows, then the handshake on the fd pump.
  Napi::Value ConnectSocket(const Napi::CallbackInfo& info);
  // pairPlain(first?) → descriptor, or -errno: from now on the plaintext
  // goes between the TLS stream and a socketpair whose other end (the
  // descriptor returned) JS wraps in a net.Socket; native code relays both
  // ways (io/relay.h) and JS only hears PlainEnd and RelayDone. `first`:
  // plaintext JS holds already, sent ahead.
  Napi::Value PairPlain(const Napi::CallbackInfo& info);
  static void OnPairPoll(uv_poll_t* handle, int status, int events);
  // One poll event on a relayed side: flush it when writable, move what it
  // has to the other side when readable, then Relay() or RelayFailed().
  void RelayStep(Endpoint& polled, Endpoint& other, int status, int events);
  // After relay progress: polls what each side needs, reports the ends.
  void Relay();
  // A relay side failed: the pair closes (Node's socket sees its end).
  void RelayFailed();
  Napi::Value ReadStart(const Napi::CallbackInfo& info);
  Napi::Value ReadStop(const Napi::CallbackInfo& info);
  // writeSocket(buffer | buffer[], defer?) → 0 sent, 1 pending (Drained
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
  void OnConnected();
  // Sends what is queued; false when the socket failed (errno_).
  bool FlushSocket();
  Napi::Value FinishSocketWrite(Napi::Env env);
  void UpdatePoll();
  // Calls JS with the flags and a copy of plain_len bytes of plaintext.
  void Emit(int32_t flags, const uint8_t* plain = nullptr, size_t plain_len = 0);
  void EmitPiece(Napi::Env env, int32_t flags, Napi::Value data, size_t start, size_t len);
  void CloseSocket();
  // Keeps the JS object alive while the descriptor is polled (held_).
  void Hold();
  bool fd_pump() const { return ep_ != nullptr; }

  bool CheckOpen(Napi::Env env);
  TlsStream& tls() { return ep_ != nullptr ? ep_->stream() : *stream_; }
  // The router of a server stream still reading its ClientHello (NULL once
  // routed or for clients).
  const Router* router();
  Napi::Value Finish(Napi::Env env, int32_t flags, size_t consumed, size_t plain, size_t cipher);
  // Ciphertext the stream queued, copied into one Buffer (stream pump).
  Napi::Value TakeCiphertext(Napi::Env env, int32_t flags, size_t consumed, size_t plain);

  // The stream until the fd pump starts; then the endpoint owns it.
  std::unique_ptr<TlsStream> stream_;
  std::unique_ptr<TlsEndpoint> ep_;
  // Relayed (pairPlain): our end of the socketpair.
  std::unique_ptr<PlainEndpoint> pair_;
  bool plain_end_reported_ = false;
  Napi::ObjectReference router_;
  bool closed_ = false;
  int64_t external_bytes_ = 0;
  // fd pump.
  bool want_read_ = false;
  bool connecting_ = false;
  // The last connectSocket() failed before the connection existed: another
  // address may be tried with the same, untouched stream.
  bool connect_failed_ = false;
  bool write_blocked_ = false;
  bool shutdown_requested_ = false;
  // Accepted and handshook by the native listener: the endpoint waits for start().
  bool adopted_ = false;
  // Plaintext taken by writeSocket() since the kernel last took everything:
  // past kEncryptAhead it is sent at once, so a writer that never waits
  // cannot pile up ciphertext in rustls' queue.
  size_t unflushed_ = 0;
  int errno_ = 0;
  uint64_t final_in_ = 0;
  uint64_t final_out_ = 0;
  // Read once connected; addresses() formats them when JS asks, also after
  // the descriptor closed.
  RawAddresses addresses_;
  std::shared_ptr<ListenerStats> stats_;
  Napi::FunctionReference onevent_;
  // While native code polls the descriptor the JS object is held strongly
  // (Ref): its callback is shared by all connections and reaches the
  // socket only through this object, so nothing else keeps an idle
  // connection from being collected (and closed) by GC.
  bool held_ = false;
  std::unique_ptr<Napi::AsyncContext> async_;
  HandleCount count_;
};

}  // namespace rustls_node

#endif
