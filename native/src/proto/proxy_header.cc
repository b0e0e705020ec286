#include "proto/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "proto/cipher_names.h"
#include "proto/der.h"

namespace rustls_node {

namespace {

const uint8_t kProxyV2Signature[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
enum : uint8_t {
  kPp2TypeAlpn = 0x01,
  kPp2TypeAuthority = 0x02,
  kPp2TypeSsl = 0x20,
  kPp2SubtypeSslVersion = 0x21,
  kPp2SubtypeSslCn = 0x22,
  kPp2SubtypeSslCipher = 0x23,
  kPp2SubtypeSslKeyAlg = 0x25,
  kPp2ClientSsl = 0x01,
  kPp2ClientCertConn = 0x02,
  kPp2ClientCertSess = 0x04,
};

// An endpoint address as the header carries it: IPv4 (also when the socket
// is IPv6 with an IPv4-mapped address) or IPv6.
struct HeaderAddress {
  bool valid = false;
  bool v4 = false;
  uint8_t bytes[16] = {0};
  uint16_t port = 0;
};

HeaderAddress ReadAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  HeaderAddress out;
  if (r != 0) return out;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    out.valid = true;
    out.v4 = true;
    std::memcpy(out.bytes, &a->sin_addr, 4);
    out.port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    out.valid = true;
    out.port = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      out.v4 = true;
      std::memcpy(out.bytes, reinterpret_cast<const uint8_t*>(&a->sin6_addr) + 12, 4);
    } else {
      std::memcpy(out.bytes, &a->sin6_addr, 16);
    }
  }
  return out;
}

// IPv4 as IPv4-mapped IPv6, for a TCP6 header with one v4 end.
void MapToV6(HeaderAddress& a) {
  if (!a.v4) return;
  uint8_t v4[4];
  std::memcpy(v4, a.bytes, 4);
  std::memset(a.bytes, 0, 16);
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(a.bytes + 12, v4, 4);
  a.v4 = false;
}

std::string AddressText(const HeaderAddress& a) {
  char text[INET6_ADDRSTRLEN] = {0};
  inet_ntop(a.v4 ? AF_INET : AF_INET6, a.bytes, text, sizeof text);
  return text;
}

void PutTlv(std::vector<uint8_t>& out, uint8_t type, const uint8_t* value, size_t len) {
  out.push_back(type);
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len));
  out.insert(out.end(), value, value + len);
}

void PutTlv(std::vector<uint8_t>& out, uint8_t type, const std::string& value) {
  PutTlv(out, type, reinterpret_cast<const uint8_t*>(value.data()), value.size());
}

}  // namespace

std::vector<uint8_t> BuildProxyHeader(int version, int fd, rustls_connection* conn, const std::string& sni,
                                      const std::string& key_alg) {
  HeaderAddress src = ReadAddress(fd, true);
  HeaderAddress dst = ReadAddress(fd, false);
  bool ip = src.valid && dst.valid;
  bool v4 = ip && src.v4 && dst.v4;
  if (ip && !v4) {
    MapToV6(src);
    MapToV6(dst);
  }
  std::vector<uint8_t> out;
  if (version == 1) {
    // §2.1: at most 107 bytes.
    std::string line = !ip ? "PROXY UNKNOWN\r\n"
                           : std::string("PROXY ") + (v4 ? "TCP4 " : "TCP6 ") + AddressText(src) + " " +
                                 AddressText(dst) + " " + std::to_string(src.port) + " " + std::to_string(dst.port) +
                                 "\r\n";
    out.assign(line.begin(), line.end());
    return out;
  }
  // §2.2: addresses, then TLVs.
  std::vector<uint8_t> body;
  uint8_t family = 0x00;
  if (ip) {
    family = v4 ? 0x11 : 0x21;  // AF_INET / AF_INET6, STREAM
    size_t n = v4 ? 4 : 16;
    body.insert(body.end(), src.bytes, src.bytes + n);
    body.insert(body.end(), dst.bytes, dst.bytes + n);
    body.push_back(static_cast<uint8_t>(src.port >> 8));
    body.push_back(static_cast<uint8_t>(src.port));
    body.push_back(static_cast<uint8_t>(dst.port >> 8));
    body.push_back(static_cast<uint8_t>(dst.port));
  }
  const uint8_t* alpn = nullptr;
  size_t alpn_len = 0;
  rustls_connection_get_alpn_protocol(conn, &alpn, &alpn_len);
  if (alpn != nullptr) PutTlv(body, kPp2TypeAlpn, alpn, alpn_len);
  if (!sni.empty()) PutTlv(body, kPp2TypeAuthority, sni);
  const rustls_certificate* peer = rustls_connection_get_peer_certificate(conn, 0);
  bool resumed = rustls_connection_handshake_kind(conn) == RUSTLS_HANDSHAKE_KIND_RESUMED;
  std::vector<uint8_t> ssl;
  ssl.push_back(kPp2ClientSsl | (peer != nullptr && !resumed ? kPp2ClientCertConn : 0) |
                (peer != nullptr ? kPp2ClientCertSess : 0));
  // §2.2.5: verify is 0 only when a certificate was presented and verified
  // (rustls refuses one it cannot verify).
  uint32_t verify = peer != nullptr ? 0 : 1;
  for (int shift = 24; shift >= 0; shift -= 8) ssl.push_back(static_cast<uint8_t>(verify >> shift));
  uint16_t tls_version = rustls_connection_get_protocol_version(conn);
  PutTlv(ssl, kPp2SubtypeSslVersion, tls_version == 0x0304 ? "TLSv1.3" : tls_version == 0x0303 ? "TLSv1.2" : "");
  if (peer != nullptr) {
    const uint8_t* der = nullptr;
    size_t der_len = 0;
    if (rustls_certificate_get_der(peer, &der, &der_len) == RUSTLS_RESULT_OK) {
      std::string cn = SubjectCommonName(der, der_len);
      if (!cn.empty()) PutTlv(ssl, kPp2SubtypeSslCn, cn);
    }
  }
  PutTlv(ssl, kPp2SubtypeSslCipher, CipherName(rustls_connection_get_negotiated_ciphersuite(conn), false));
  if (!key_alg.empty()) PutTlv(ssl, kPp2SubtypeSslKeyAlg, key_alg);
  PutTlv(body, kPp2TypeSsl, ssl.data(), ssl.size());
  out.assign(kProxyV2Signature, kProxyV2Signature + sizeof kProxyV2Signature);
  out.push_back(0x21);  // version 2, PROXY
  out.push_back(family);
  out.push_back(static_cast<uint8_t>(body.size() >> 8));
  out.push_back(static_cast<uint8_t>(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

}  // namespace rustls_node
