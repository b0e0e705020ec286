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

#include <string>

#include "common.h"

namespace rustls_node {

enum ResultSlot : int {
  kResultFlags = 0,
  kResultConsumed = 1,  // input bytes taken (feed) / plaintext bytes taken (write)
  kResultPlain = 2,     // plaintext bytes written to the slab (feed)
  kResultCipher = 3,    // ciphertext bytes: returned Buffer (feed) / slab (write, flush)
  kResultError = 4,     // rustls_result or LocalResult once an error occurred
  kResultHost = 5,      // server: index of the host chosen, -1 before
  kResultSlots = 8,
};

enum ResultFlag : int32_t {
  kFlagHandshakeDone = 1 << 0,  // the handshake completed during this call
  kFlagPeerClosed = 1 << 1,     // close_notify received and all plaintext read
  kFlagError = 1 << 2,          // the connection failed; see kResultError
  kFlagWantsWrite = 1 << 3,     // ciphertext is pending that did not fit: flush
  kFlagPlainFull = 1 << 4,      // the plaintext region filled up: call again
  kFlagHello = 1 << 5,          // server: ClientHello routed to a host
  kFlagNeedConfig = 1 << 6,     // server, deferred router: call accept(config)
};

class HostRouter;

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new Connection(router)                          server
  // new Connection(clientConfig, serverName, alpn?)  client
  explicit Connection(const Napi::CallbackInfo& info);
  ~Connection() override { Close(); }

 // Exposed for the rustls I/O callbacks in connection.cc.
  struct Input;
  struct Slab;

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
  Napi::Value ClientHello(const Napi::CallbackInfo& info);
  Napi::Value PeerCertificate(const Napi::CallbackInfo& info);
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  void Close();

  bool CheckOpen(Napi::Env env);
  bool Accepting(Input& in, bool eof, int32_t* flags);
  bool IntoConnection(const rustls_server_config* config, int host, int32_t* flags);
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
  HandleCount count_;
};

}  // namespace rustls_node

#endif
