#include "plane/forwarded_fields.h"

#include "io/net_io.h"
#include "proto/cipher_names.h"
#include "proto/http_parse.h"

namespace rustls_node {

namespace {

std::string DerToPem(const uint8_t* der, size_t len) {
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = static_cast<uint32_t>(der[i]) << 16;
    if (i + 1 < len) v |= static_cast<uint32_t>(der[i + 1]) << 8;
    if (i + 2 < len) v |= der[i + 2];
    b64.push_back(kB64[(v >> 18) & 63]);
    b64.push_back(kB64[(v >> 12) & 63]);
    b64.push_back(i + 1 < len ? kB64[(v >> 6) & 63] : '=');
    b64.push_back(i + 2 < len ? kB64[v & 63] : '=');
  }
  // As lib/certs.ts derToPem: 64 characters per line.
  std::string out = "-----BEGIN CERTIFICATE-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) {
    out.append(b64, i, 64);
    out.push_back('\n');
  }
  out += "-----END CERTIFICATE-----\n";
  return out;
}

}  // namespace

std::string ForwardedFieldLines(const BackendTarget::Http& s, int client_fd, rustls_connection* conn,
                                const std::string& sni, int certificate) {
  std::string out;
  out.append("X-Forwarded-For: ").append(PeerAddress(client_fd).address).append("\r\nX-Forwarded-Proto: https\r\n");
  if (!s.std_env_vars && !s.export_cert_data) return out;
  auto add = [&](const char* name, std::string_view value) {
    out.append("X-SSL-").append(name).append(": ").append(value).append("\r\n");
  };
  if (!sni.empty()) add("TLS-SNI", sni);
  uint16_t version = rustls_connection_get_protocol_version(conn);
  add("PROTOCOL", version == 0x0304 ? "TLSv1.3" : "TLSv1.2");
  add("CIPHER", CipherName(rustls_connection_get_negotiated_ciphersuite(conn), true));
  const rustls_certificate* peer = rustls_connection_get_peer_certificate(conn, 0);
  if (s.std_env_vars) {
    add("VERSION-INTERFACE", s.version_interface);
    add("VERSION-LIBRARY", s.version_library);
    add("SECURE-RENEG", "false");
    add("COMPRESS-METHOD", "NULL");
    add("CIPHER-EXPORT", "false");
    // rustls refuses a certificate it cannot verify: one is there or none.
    add("CLIENT-VERIFY", s.client_auth && peer != nullptr ? "SUCCESS" : "NONE");
    add("SESSION-RESUMED",
        rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED ? "Resumed" : "Initial");
  }
  if (s.export_cert_data) {
    if (certificate >= 0 && static_cast<size_t>(certificate) < s.server_certs.size())
      add("SERVER-CERT", s.server_certs[certificate]);
    const uint8_t* der = nullptr;
    size_t len = 0;
    if (peer != nullptr && rustls_certificate_get_der(peer, &der, &len) == RUSTLS_RESULT_OK)
      add("CLIENT-CERT", http::UriComponent(DerToPem(der, len)));
  }
  return out;
}

}  // namespace rustls_node
