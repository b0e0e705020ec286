// BackendTarget: one host's backend as the native data plane reaches it
// (the JS handle is built from configuration by lib/terminator/backend.ts).
#ifndef RUSTLS_NODE_JS_BACKEND_TARGET_H
#define RUSTLS_NODE_JS_BACKEND_TARGET_H

#include <string>
#include <vector>

#include "io/net_io.h"
#include "js/common.h"

namespace rustls_node {

class ClientConfig;

// One host's backend: where to connect (an address JS resolved, at load and
// again after a failed connect), how (TLS or not, PROXY header), and the
// facts the PROXY v2 header needs that only configuration knows.
class BackendTarget : public Napi::ObjectWrap<BackendTarget> {
 public:
  static Napi::Function Init(Napi::Env env);
  static BackendTarget* FromValue(Napi::Value value, const char* name);

  // new BackendTarget({address: {kind:'tcp', ip, port, name} | {kind:'unix', path},
  //   connectTimeout, proxyProtocol: 0|1|2, tls?: {config, serverName},
  //   keyAlgs?: string[] (per certificate of the host)})
  // `ip` is an address JS resolved `name` to (never a name: no DNS on the
  // loop thread); empty while the name does not resolve, and then every
  // connect fails (EAFNOSUPPORT) until setAddress().
  explicit BackendTarget(const Napi::CallbackInfo& info);
  ~BackendTarget() override { Close(); }

  bool live() const { return !destroyed_; }
  const ConnectTarget& target() const { return target_; }
  uint64_t connect_timeout_ms() const { return connect_timeout_ms_; }
  int proxy_protocol() const { return proxy_protocol_; }
  // NULL for a plain backend, or once the ClientConfig was destroyed.
  const rustls_client_config* tls_config() const;
  bool tls() const { return !config_ref_.IsEmpty(); }
  const std::string& server_name() const { return server_name_; }
  const std::string& key_alg(int certificate) const;

  // http mode (options.http): what the native exchange needs to know. The
  // durations come from configuration (lib/terminator/config.ts DEFAULTS).
  struct Http {
    bool enabled = false;
    uint64_t timeout_ms = 0;  // the backend sends nothing for this long: 504
    bool std_env_vars = false;
    bool export_cert_data = false;
    bool client_auth = false;  // the host verifies client certificates
    std::string version_interface;
    std::string version_library;
    std::vector<std::string> server_certs;  // URL-encoded PEM per certificate
    // Hosts whose keys are equal (same certificates, compatible TLS
    // settings) serve each other's requests (plane/request_route.h).
    std::string coalesce_key;
    // backend.httpVersion "2": requests go to the backend as HTTP/2 streams
    // (plane/h2_upstream.h; h2c with prior knowledge, or h2 by ALPN over
    // TLS); HTTP/1.1 clients get 505 (the configuration offers them h2 only).
    bool backend_h2 = false;
    // HTTP/2 front (plane/h2_front.h).
    uint32_t h2_max_streams = 0;
    uint64_t h2_idle_ms = 0;
    uint64_t h2_send_timeout_ms = 0;
  };
  const Http& http() const { return http_; }

 private:
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  // setAddress(ip): new connections go there (the name resolved anew).
  Napi::Value SetAddress(const Napi::CallbackInfo& info);
  void Close();

  ConnectTarget target_;
  int port_ = 0;
  uint64_t connect_timeout_ms_ = 0;
  int proxy_protocol_ = 0;
  Napi::ObjectReference config_ref_;
  ClientConfig* config_ = nullptr;
  std::string server_name_;
  std::vector<std::string> key_algs_;
  Http http_;
  bool destroyed_ = false;
  HandleCount count_;
};

// setCipherNames(ids, opensslNames, ianaNames): the names of cipher suites,
// set once from lib/cipher-table.ts: OpenSSL's for the PROXY v2 SSL_CIPHER
// sub-TLV (HAProxy sends them so), IANA's for X-SSL-CIPHER.
Napi::Value SetCipherNames(const Napi::CallbackInfo& info);

}  // namespace rustls_node

#endif
