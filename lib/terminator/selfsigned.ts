// A self-signed X.509 certificate for the embedded demo (SPEC §5: "a
// self-signed certificate for localhost generated at start"). Node 20 can
// make keys and signatures but not certificates, so the DER is assembled
// here with lib/der.ts.
import crypto from 'node:crypto'
import net from 'node:net'

import { bitString, bool, explicit, integer, octetString, oid, seq as sequence, set, time, tlv, utf8String } from '../der'

export interface SelfSignedOptions {
  /** DNS names for the subjectAltName; the first one is also the subject CN. Default ['localhost']. */
  dnsNames?: readonly string[]
  /** IP addresses (v4 or v6) for the subjectAltName. Default ['127.0.0.1']. */
  ipAddresses?: readonly string[]
  /** Validity in days from now. Default 30. */
  days?: number
  /** Start of validity, for tests. Default: now minus one hour (clock skew). */
  notBefore?: Date
}

export interface SelfSigned {
  /** PEM certificate. */
  cert: string
  /** PEM PKCS#8 private key (P-256). */
  key: string
  /** DER of the certificate. */
  der: Buffer
}

const OID = {
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
}

function extension (id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [bool(true)] : []), octetString(value))
}

function ipBytes (ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number))
  if (!net.isIPv6(ip)) throw new TypeError(`not an IP address: ${ip}`)
  const [head, tail = ''] = ip.includes('::') ? ip.split('::') : [ip, undefined]
  const words = (s: string | undefined): number[] => s === undefined || s === '' ? [] : s.split(':').map((w) => parseInt(w, 16))
  const left = words(head)
  const right = words(tail)
  const all = ip.includes('::') ? [...left, ...new Array(8 - left.length - right.length).fill(0), ...right] : left
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  return out
}

/**
 * Generates a P-256 key and a self-signed certificate for it: subject CN =
 * first DNS name, SAN = the DNS names and IPs, serverAuth EKU, CA:FALSE.
 * CA:FALSE matters: webpki (rustls) refuses an end-entity certificate that
 * claims to be a CA, while a self-signed leaf may still be trusted as its
 * own anchor (and `openssl verify -CAfile cert cert` accepts it).
 */
export function createSelfSigned (options: SelfSignedOptions = {}): SelfSigned {
  const dnsNames = options.dnsNames ?? ['localhost']
  const ips = options.ipAddresses ?? ['127.0.0.1']
  const notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000)
  const notAfter = new Date(notBefore.getTime() + (options.days ?? 30) * 24 * 60 * 60 * 1000)
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  // RFC 5280 §4.2.1.2 method 1 is SHA-1 of the key bits; any unique value
  // will do, and SHA-256 truncated avoids SHA-1.
  const keyId = crypto.createHash('sha256').update(spki).digest().subarray(0, 20)

  const name = sequence(
    set(sequence(oid(OID.organizationName), utf8String('rustls-node demo'))),
    set(sequence(oid(OID.commonName), utf8String(dnsNames[0] ?? 'localhost'))),
  )
  const san = sequence(
    ...dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'latin1'))), // [2] dNSName
    ...ips.map((ip) => tlv(0x87, ipBytes(ip))), // [7] iPAddress
  )
  const extensions = sequence(
    extension(OID.basicConstraints, true, sequence()),
    // digitalSignature (bit 0): what an ECDSA TLS server key does.
    extension(OID.keyUsage, true, tlv(0x03, Buffer.from([7, 0x80]))),
    extension(OID.extKeyUsage, false, sequence(oid(OID.serverAuth))),
    extension(OID.subjectKeyIdentifier, false, octetString(keyId)),
    extension(OID.subjectAltName, false, san),
  )
  const serial = crypto.randomBytes(16)
  serial[0] = (serial[0] & 0x7f) | 0x40
  const algorithm = sequence(oid(OID.ecdsaWithSha256))
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    algorithm,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    spki,
    explicit(3, extensions),
  )
  // crypto.sign's default dsaEncoding is DER, the ECDSA-Sig-Value of RFC 5480.
  const signature = crypto.sign('sha256', tbs, privateKey)
  const der = sequence(tbs, algorithm, bitString(signature))
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    der,
  }
}
