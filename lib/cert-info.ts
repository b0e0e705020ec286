// Certificates in node:tls' legacy object form (getPeerCertificate()), built
// from DER with node:crypto's X509Certificate.
import { X509Certificate } from 'node:crypto'

export type DistinguishedName = Record<string, string | string[]>

export interface PeerCertificate {
  subject: DistinguishedName
  issuer: DistinguishedName
  subjectaltname?: string
  infoAccess?: Record<string, string[]>
  ca: boolean
  bits?: number
  exponent?: string
  modulus?: string
  asn1Curve?: string
  nistCurve?: string
  pubkey: Buffer
  valid_from: string
  valid_to: string
  fingerprint: string
  fingerprint256: string
  fingerprint512: string
  ext_key_usage?: string[]
  serialNumber: string
  raw: Buffer
  issuerCertificate?: PeerCertificate
}

/** "CN=a\nO=b" (X509Certificate's form) → {CN: 'a', O: 'b'}; repeats become arrays. */
function parseName (name: string): DistinguishedName {
  const out: DistinguishedName = {}
  for (const line of name.split('\n')) {
    const eq = line.indexOf('=')
    if (eq <= 0) continue
    const key = line.slice(0, eq)
    const value = line.slice(eq + 1)
    const prev = out[key]
    if (prev === undefined) out[key] = value
    else out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value]
  }
  return out
}

function parseInfoAccess (text: string | undefined): Record<string, string[]> | undefined {
  if (text === undefined) return undefined
  const out: Record<string, string[]> = {}
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep <= 0) continue
    const key = line.slice(0, sep)
    ;(out[key] ??= []).push(line.slice(sep + 3))
  }
  return out
}

function describe (der: Buffer): PeerCertificate {
  const x = new X509Certificate(der)
  const key = x.publicKey
  const details = key.asymmetricKeyDetails ?? {}
  const cert: PeerCertificate = {
    subject: parseName(x.subject),
    issuer: parseName(x.issuer),
    ca: x.ca,
    pubkey: key.export({ type: 'spki', format: 'der' }),
    valid_from: x.validFrom,
    valid_to: x.validTo,
    fingerprint: x.fingerprint,
    fingerprint256: x.fingerprint256,
    fingerprint512: x.fingerprint512,
    serialNumber: x.serialNumber.toUpperCase(),
    raw: der,
  }
  if (x.subjectAltName !== undefined) cert.subjectaltname = x.subjectAltName
  const info = parseInfoAccess(x.infoAccess)
  if (info !== undefined) cert.infoAccess = info
  if (x.keyUsage !== undefined && x.keyUsage.length > 0) cert.ext_key_usage = x.keyUsage
  if (details.modulusLength !== undefined) cert.bits = details.modulusLength
  if (details.publicExponent !== undefined) cert.exponent = `0x${details.publicExponent.toString(16)}`
  if (details.namedCurve !== undefined) {
    cert.asn1Curve = details.namedCurve
    const nist: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
    if (nist[details.namedCurve] !== undefined) cert.nistCurve = nist[details.namedCurve]
  }
  return cert
}

/**
 * The leaf of `chain` (DER, leaf first) as node:tls reports it; `detailed`
 * links each certificate to the next one the peer sent as its
 * issuerCertificate, the last one to itself when self-issued.
 */
export function certificateObject (chain: Buffer[], detailed: boolean): PeerCertificate {
  const certs = chain.map(describe)
  if (detailed) {
    for (let i = 0; i < certs.length - 1; i++) certs[i].issuerCertificate = certs[i + 1]
    const last = certs[certs.length - 1]
    if (last.subject !== undefined && JSON.stringify(last.subject) === JSON.stringify(last.issuer)) {
      last.issuerCertificate = last
    }
  }
  return certs[0]
}
