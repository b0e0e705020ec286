// PROXY protocol headers sent to tcp-mode backends before any other byte
// (HAProxy, "The PROXY protocol", versions 1 and 2). Version 2 carries the
// TLS facts as TLVs (§2.2): ALPN, authority (SNI) and the SSL TLV with the
// version, cipher and client certificate sub-TLVs.
import type { X509Certificate } from 'node:crypto'
import net from 'node:net'

import type { RustlsSocket } from '../tls-socket/socket'

/** §2.2: the 12-byte version 2 signature. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

/** §2.2 TLV types and SSL sub-types. */
export const PP2 = {
  TYPE_ALPN: 0x01,
  TYPE_AUTHORITY: 0x02,
  TYPE_SSL: 0x20,
  SUBTYPE_SSL_VERSION: 0x21,
  SUBTYPE_SSL_CN: 0x22,
  SUBTYPE_SSL_CIPHER: 0x23,
  SUBTYPE_SSL_SIG_ALG: 0x24,
  SUBTYPE_SSL_KEY_ALG: 0x25,
  CLIENT_SSL: 0x01,
  CLIENT_CERT_CONN: 0x02,
  CLIENT_CERT_SESS: 0x04,
} as const

export interface Endpoint {
  address: string
  port: number
}

/** What a header says about one client connection. */
export interface ProxyInfo {
  /** Client and our own (accepting) end; undefined when not TCP. */
  source?: Endpoint
  destination?: Endpoint
  /** Negotiated ALPN protocol. */
  alpn?: string
  /** SNI the client sent. */
  authority?: string
  ssl?: {
    /** "TLSv1.3" */
    version: string
    /** OpenSSL name of the suite, as HAProxy sends it ("ECDHE-RSA-AES128-GCM-SHA256"). */
    cipher: string
    /** The client presented a certificate on this connection (a full handshake). */
    certConn: boolean
    /** A client certificate belongs to this TLS session (including resumed ones). */
    certSess: boolean
    /** The certificate was verified (rustls refuses unverifiable ones, so: presented). */
    verified: boolean
    /** Common Name of the client certificate's subject. */
    cn?: string
    /** Key algorithm of the certificate we presented, e.g. "EC256", "RSA2048". */
    keyAlg?: string
  }
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) as plain IPv4. */
function unmapped (address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return m === null ? address : m[1]
}

/** IPv4 written as IPv4-mapped IPv6, for a TCP6 header with one v4 end. */
function mapped (address: string): string {
  return net.isIPv4(address) ? `::ffff:${address}` : address
}

function family (info: ProxyInfo): { src: string, dst: string, v6: boolean } | undefined {
  if (info.source === undefined || info.destination === undefined) return undefined
  const src = unmapped(info.source.address)
  const dst = unmapped(info.destination.address)
  if (net.isIP(src) === 0 || net.isIP(dst) === 0) return undefined
  if (net.isIPv4(src) && net.isIPv4(dst)) return { src, dst, v6: false }
  return { src: mapped(src), dst: mapped(dst), v6: true }
}

/**
 * Version 1 (§2.1): "PROXY TCP4 <src> <dst> <sport> <dport>\r\n", or
 * "PROXY UNKNOWN\r\n" when the addresses are not TCP/IP. At most 107 bytes.
 */
export function proxyHeaderV1 (info: ProxyInfo): Buffer {
  const f = family(info)
  if (f === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1')
  return Buffer.from(`PROXY ${f.v6 ? 'TCP6' : 'TCP4'} ${f.src} ${f.dst} ${info.source?.port ?? 0} ${info.destination?.port ?? 0}\r\n`, 'latin1')
}

function ipBytes (address: string): Buffer {
  if (net.isIPv4(address)) return Buffer.from(address.split('.').map(Number))
  // Expand "::" and an embedded IPv4 tail into 8 words.
  let text = address
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const b = v4[1].split('.').map(Number)
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, '']
  const words = (s: string): number[] => s === '' ? [] : s.split(':').map((w) => parseInt(w, 16))
  const left = words(head)
  const right = words(tail)
  const all = text.includes('::') ? [...left, ...new Array(8 - left.length - right.length).fill(0), ...right] : left
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  return out
}

function tlv (type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3)
  head[0] = type
  head.writeUInt16BE(value.length, 1)
  return Buffer.concat([head, value])
}

/**
 * Version 2 (§2.2): signature, version 2 + PROXY command, family and
 * transport, length, addresses, then TLVs. With no TCP/IP addresses the
 * family is AF_UNSPEC and the receiver uses its own (§2.2: "the receiver
 * must accept this connection ... and ignore the address information").
 */
export function proxyHeaderV2 (info: ProxyInfo): Buffer {
  const f = family(info)
  let famByte = 0x00
  let addresses = Buffer.alloc(0)
  if (f !== undefined) {
    famByte = f.v6 ? 0x21 : 0x11 // AF_INET6 / AF_INET, STREAM
    const ports = Buffer.alloc(4)
    ports.writeUInt16BE(info.source?.port ?? 0, 0)
    ports.writeUInt16BE(info.destination?.port ?? 0, 2)
    addresses = Buffer.concat([ipBytes(f.src), ipBytes(f.dst), ports])
  }
  const tlvs: Buffer[] = []
  if (info.alpn !== undefined) tlvs.push(tlv(PP2.TYPE_ALPN, Buffer.from(info.alpn, 'latin1')))
  if (info.authority !== undefined) tlvs.push(tlv(PP2.TYPE_AUTHORITY, Buffer.from(info.authority, 'utf8')))
  if (info.ssl !== undefined) {
    const s = info.ssl
    const head = Buffer.alloc(5)
    head[0] = PP2.CLIENT_SSL | (s.certConn ? PP2.CLIENT_CERT_CONN : 0) | (s.certSess ? PP2.CLIENT_CERT_SESS : 0)
    // §2.2.5: verify is 0 only when a certificate was presented and verified.
    head.writeUInt32BE(s.verified ? 0 : 1, 1)
    const subs = [tlv(PP2.SUBTYPE_SSL_VERSION, Buffer.from(s.version, 'latin1'))]
    if (s.cn !== undefined) subs.push(tlv(PP2.SUBTYPE_SSL_CN, Buffer.from(s.cn, 'utf8')))
    subs.push(tlv(PP2.SUBTYPE_SSL_CIPHER, Buffer.from(s.cipher, 'latin1')))
    if (s.keyAlg !== undefined) subs.push(tlv(PP2.SUBTYPE_SSL_KEY_ALG, Buffer.from(s.keyAlg, 'latin1')))
    tlvs.push(tlv(PP2.TYPE_SSL, Buffer.concat([head, ...subs])))
  }
  const body = Buffer.concat([addresses, ...tlvs])
  const header = Buffer.alloc(16)
  PROXY_V2_SIGNATURE.copy(header, 0)
  header[12] = 0x21 // version 2, PROXY
  header[13] = famByte
  header.writeUInt16BE(body.length, 14)
  return Buffer.concat([header, body])
}

/** The Common Name of an X509Certificate subject ("CN=x\nO=y" lines). */
function commonName (subject: string): string | undefined {
  for (const line of subject.split('\n')) {
    if (line.startsWith('CN=')) return line.slice(3)
  }
  return undefined
}

/** The key algorithm of a certificate as the SSL_KEY_ALG sub-TLV names it: "EC256", "RSA2048". */
export function keyAlgorithm (cert: X509Certificate): string | undefined {
  const key = cert.publicKey
  const details = key.asymmetricKeyDetails
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return `RSA${details?.modulusLength ?? ''}`
  if (key.asymmetricKeyType === 'ec') return `EC${({ prime256v1: 256, secp384r1: 384, secp521r1: 521 } as Record<string, number>)[details?.namedCurve ?? ''] ?? ''}`
  return key.asymmetricKeyType?.toUpperCase()
}

/** The facts of one established client connection. */
export function proxyInfoFromSocket (socket: RustlsSocket): ProxyInfo {
  const tcp = (address: string | undefined, port: number | undefined): Endpoint | undefined =>
    address === undefined || port === undefined ? undefined : { address, port }
  const peer = socket.getPeerX509Certificate()
  const own = socket.getX509Certificate()
  const keyAlg = own === undefined ? undefined : keyAlgorithm(own)
  const cipher = socket.getCipher()
  return {
    source: tcp(socket.remoteAddress, socket.remotePort),
    destination: tcp(socket.localAddress, socket.localPort),
    alpn: socket.alpnProtocol === false ? undefined : socket.alpnProtocol,
    authority: socket.servername === false ? undefined : socket.servername,
    ssl: {
      version: socket.getProtocol() ?? '',
      cipher: cipher?.name ?? '',
      certConn: peer !== undefined && !socket.isSessionReused(),
      certSess: peer !== undefined,
      verified: peer !== undefined,
      cn: peer === undefined ? undefined : commonName(peer.subject),
      keyAlg,
    },
  }
}
