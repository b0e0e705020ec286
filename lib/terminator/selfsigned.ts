// A self-signed X.509 certificate for the embedded demo (SPEC §5: "a
// self-signed certificate for localhost generated at start"). Node 20 can
// make keys and signatures but not certificates, so the DER is assembled
// here: just enough of X.690 DER for one RFC 5280 certificate.
import crypto from 'node:crypto'
import net from 'node:net'

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

// ---- DER (X.690 §8, §10): definite lengths, minimal encodings -------------

function length (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv (tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content])
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner)
const octetString = (b: Buffer): Buffer => tlv(0x04, b)
const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'))
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]))

/** BIT STRING with no unused bits (signatures, whole-byte masks). */
const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]))

function integer (value: Buffer): Buffer {
  let v = value
  while (v.length > 1 && v[0] === 0 && (v[1] & 0x80) === 0) v = v.subarray(1)
  // A set high bit would make the INTEGER negative (X.690 §8.3.3).
  if ((v[0] & 0x80) !== 0) v = Buffer.concat([Buffer.from([0]), v])
  return tlv(0x02, v)
}

function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const bytes = [parts[0] * 40 + parts[1]]
  for (const part of parts.slice(2)) {
    const chunk: number[] = []
    let v = part
    do {
      chunk.unshift(v & 0x7f)
      v = Math.floor(v / 128)
    } while (v > 0)
    for (let i = 0; i < chunk.length - 1; i++) chunk[i] |= 0x80
    bytes.push(...chunk)
  }
  return tlv(0x06, Buffer.from(bytes))
}

/** UTCTime until 2049, GeneralizedTime after (RFC 5280 §4.1.2.5). */
function time (date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'
  const year = date.getUTCFullYear()
  return year < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'latin1')) : tlv(0x18, Buffer.from(iso, 'latin1'))
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
