// OCSP for stapling (RFC 6960): the request for a certificate, the fetch
// from the responder its AIA names (HTTP GET for short requests, POST
// otherwise, RFC 6960 appendix A / RFC 5019 §5), and the verification of
// the answer against the issuer before anything is stapled: the signature,
// the signer (the issuer itself or a certificate it delegated with
// id-kp-OCSPSigning, §4.2.2.2), the CertID, thisUpdate and nextUpdate.
import crypto, { X509Certificate } from 'node:crypto'
import http from 'node:http'

import { RustlsAgent } from './agent'
import * as der from './der'

export class OcspError extends Error {
  readonly code: `ERR_OCSP_${string}`

  constructor (code: `ERR_OCSP_${string}`, message: string) {
    super(message)
    this.name = 'OcspError'
    this.code = code
  }
}

export type OcspStatus = 'good' | 'revoked' | 'unknown'

export interface OcspResult {
  status: OcspStatus
  thisUpdate: Date
  nextUpdate: Date
  /** When the certificate was revoked (status 'revoked'). */
  revokedAt?: Date
  /** The DER response, as served in the stapled status_request answer. */
  der: Buffer
}

const OID_SHA1 = '1.3.14.3.2.26'
const OID_SHA256 = '2.16.840.1.101.3.4.2.1'
const OID_BASIC = '1.3.6.1.5.5.7.48.1.1'
const OID_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'
/** Signature algorithm → digest for crypto.verify (null: the key type decides, Ed25519). */
const SIGNATURE_DIGESTS: Record<string, string | null> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
}
const HASHES: Record<string, string> = { [OID_SHA1]: 'sha1', [OID_SHA256]: 'sha256' }
/** Clock skew tolerated on thisUpdate. */
const SKEW_MS = 5 * 60_000
const MAX_RESPONSE = 64 * 1024

/** The parts of a certificate a CertID is made from. */
function certParts (cert: X509Certificate): { serial: Buffer, subject: Buffer, keyBits: Buffer } {
  const tbs = der.children(der.children(der.parse(cert.raw))[0])
  // version [0] is optional; serial, signature, issuer, validity, subject, spki follow.
  const fields = tbs[0].tag === 0xa0 ? tbs.slice(1) : tbs
  const spki = der.children(der.expect(fields[5], 0x30, 'subjectPublicKeyInfo'))
  return {
    serial: der.expect(fields[0], 0x02, 'serialNumber').content,
    subject: der.expect(fields[4], 0x30, 'subject').raw,
    // The BIT STRING's bytes after its unused-bits octet (§4.1.1 issuerKeyHash).
    keyBits: der.expect(spki[1], 0x03, 'subjectPublicKey').content.subarray(1),
  }
}

function certId (leaf: X509Certificate, issuer: X509Certificate, hashOid: string): Buffer {
  const hash = HASHES[hashOid]
  const i = certParts(issuer)
  return der.seq(
    der.seq(der.oid(hashOid), der.nullValue()),
    der.octetString(crypto.createHash(hash).update(i.subject).digest()),
    der.octetString(crypto.createHash(hash).update(i.keyBits).digest()),
    der.tlv(0x02, certParts(leaf).serial),
  )
}

/** The responder URL of the certificate's Authority Information Access, if any. */
export function ocspResponderUrl (cert: X509Certificate): string | undefined {
  const aia = cert.infoAccess ?? ''
  const m = /OCSP - URI:(\S+)/.exec(aia)
  return m?.[1]
}

/** DER OCSPRequest for one certificate (SHA-1 CertID, as RFC 5019 §2.1.1 asks; no nonce, so answers can be cached). */
export function ocspRequest (leaf: X509Certificate, issuer: X509Certificate): Buffer {
  return der.seq(der.seq(der.seq(der.seq(certId(leaf, issuer, OID_SHA1)))))
}

/**
 * Fetches the response for `request` from `url`: GET when the base64 form
 * is short (RFC 5019 §5: cacheable), POST otherwise. Rejects with an
 * OcspError on network failure, a non-200 answer or an oversized body.
 */
export async function fetchOcsp (url: string, request: Buffer, timeoutMs = 10_000): Promise<Buffer> {
  let target: URL
  try {
    target = new URL(url)
  } catch {
    throw new OcspError('ERR_OCSP_URL', `responder URL "${url}" is not a URL`)
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new OcspError('ERR_OCSP_URL', `responder URL "${url}" is not http(s)`)
  const encoded = encodeURIComponent(request.toString('base64'))
  const useGet = encoded.length < 255
  const agent = target.protocol === 'https:' ? new RustlsAgent({ ca: 'system', keepAlive: false }) : undefined
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const fail = (text: string): void => reject(new OcspError('ERR_OCSP_UNREACHABLE', `${url}: ${text}`))
      const path = useGet ? `${target.pathname.replace(/\/?$/, '/')}${encoded}` : `${target.pathname}${target.search}`
      const req = http.request({
        host: target.hostname,
        port: target.port === '' ? undefined : Number(target.port),
        path,
        method: useGet ? 'GET' : 'POST',
        agent,
        headers: useGet ? { host: target.host } : { host: target.host, 'content-type': 'application/ocsp-request', 'content-length': request.length },
        timeout: timeoutMs,
      })
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      req.on('error', (err: Error & { code?: string }) => fail(err.code ?? err.message))
      req.on('response', (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > MAX_RESPONSE) res.destroy(new Error(`response larger than ${MAX_RESPONSE} bytes`))
          else chunks.push(c)
        })
        res.on('error', (err) => fail(err.message))
        res.on('end', () => {
          if (res.statusCode !== 200) fail(`HTTP ${res.statusCode ?? '?'}`)
          else resolve(Buffer.concat(chunks))
        })
      })
      req.end(useGet ? undefined : request)
    })
  } finally {
    agent?.destroy()
  }
}

/**
 * Verifies an OCSPResponse for `leaf` issued by `issuer` at `now`. Throws
 * an OcspError (ERR_OCSP_INVALID, ERR_OCSP_UNSUCCESSFUL, ERR_OCSP_EXPIRED)
 * for anything that must not be stapled; a 'revoked' or 'unknown' answer
 * that verifies is returned as such.
 */
export function verifyOcspResponse (response: Buffer, leaf: X509Certificate, issuer: X509Certificate, now = new Date()): OcspResult {
  try {
    return verify(response, leaf, issuer, now)
  } catch (err) {
    if (err instanceof der.DerError) throw new OcspError('ERR_OCSP_INVALID', `malformed OCSP response: ${err.message}`)
    throw err
  }
}

function verify (response: Buffer, leaf: X509Certificate, issuer: X509Certificate, now: Date): OcspResult {
  const top = der.children(der.expect(der.parse(response), 0x30, 'OCSPResponse'))
  const status = der.expect(top[0], 0x0a, 'responseStatus').content[0]
  if (status !== 0) {
    const names = ['successful', 'malformedRequest', 'internalError', 'tryLater', '', 'sigRequired', 'unauthorized']
    throw new OcspError('ERR_OCSP_UNSUCCESSFUL', `responder answered ${names[status] ?? `status ${status}`}`)
  }
  const bytes = der.children(der.expect(der.children(der.expect(top[1], 0xa0, 'responseBytes'))[0], 0x30, 'ResponseBytes'))
  if (der.oidString(bytes[0]) !== OID_BASIC) throw new OcspError('ERR_OCSP_INVALID', 'not a basic OCSP response')
  const basic = der.children(der.expect(der.parse(der.expect(bytes[1], 0x04, 'response').content), 0x30, 'BasicOCSPResponse'))
  const tbs = der.expect(basic[0], 0x30, 'tbsResponseData')
  const algorithm = der.oidString(der.children(der.expect(basic[1], 0x30, 'signatureAlgorithm'))[0])
  const signature = der.expect(basic[2], 0x03, 'signature').content.subarray(1)
  const certs = basic[3]?.tag === 0xa0
    ? der.children(der.expect(der.children(basic[3])[0], 0x30, 'certs')).map((c) => new X509Certificate(c.raw))
    : []

  const data = der.children(tbs)
  const fields = data[0].tag === 0xa0 ? data.slice(1) : data
  const responderId = fields[0]
  const signer = findSigner(responderId, issuer, certs, now)
  if (!(algorithm in SIGNATURE_DIGESTS)) throw new OcspError('ERR_OCSP_INVALID', `unsupported signature algorithm ${algorithm}`)
  if (!crypto.verify(SIGNATURE_DIGESTS[algorithm], tbs.raw, signer.publicKey, signature)) {
    throw new OcspError('ERR_OCSP_INVALID', 'the response signature does not verify')
  }

  const responses = der.children(der.expect(fields[2], 0x30, 'responses'))
  for (const single of responses) {
    const parts = der.children(der.expect(single, 0x30, 'SingleResponse'))
    const id = der.expect(parts[0], 0x30, 'CertID')
    const hashOid = der.oidString(der.children(der.children(id)[0])[0])
    if (!(hashOid in HASHES) || !certId(leaf, issuer, hashOid).equals(id.raw)) continue
    const certStatus = parts[1]
    const thisUpdate = der.readTime(parts[2])
    const next = parts.slice(3).find((p) => p.tag === 0xa0)
    if (next === undefined) throw new OcspError('ERR_OCSP_INVALID', 'the response has no nextUpdate, so nobody can tell when it stops being valid')
    const nextUpdate = der.readTime(der.children(next)[0])
    if (thisUpdate.getTime() > now.getTime() + SKEW_MS) throw new OcspError('ERR_OCSP_INVALID', `thisUpdate ${thisUpdate.toISOString()} is in the future`)
    if (nextUpdate.getTime() <= now.getTime()) throw new OcspError('ERR_OCSP_EXPIRED', `the response expired at ${nextUpdate.toISOString()}`)
    const result: OcspResult = { status: 'good', thisUpdate, nextUpdate, der: response }
    if (certStatus.tag === 0xa1) {
      result.status = 'revoked'
      result.revokedAt = der.readTime(der.children(certStatus)[0])
    } else if (certStatus.tag === 0x82) {
      result.status = 'unknown'
    } else if (certStatus.tag !== 0x80) {
      throw new OcspError('ERR_OCSP_INVALID', 'unknown certStatus')
    }
    return result
  }
  throw new OcspError('ERR_OCSP_INVALID', 'the response is not about this certificate (no matching CertID)')
}

/**
 * The certificate that signed the response (RFC 6960 §4.2.2.2): the issuer
 * itself, or a certificate from the response that the issuer signed for
 * OCSP signing and that is valid now. Chosen by the ResponderID.
 */
function findSigner (responderId: der.Node, issuer: X509Certificate, certs: X509Certificate[], now: Date): X509Certificate {
  const inner = der.children(responderId)[0]
  const matches = (cert: X509Certificate): boolean => {
    if (responderId.tag === 0xa1) return certParts(cert).subject.equals(inner.raw)
    if (responderId.tag === 0xa2) return crypto.createHash('sha1').update(certParts(cert).keyBits).digest().equals(der.expect(inner, 0x04, 'byKey').content)
    return false
  }
  if (matches(issuer)) return issuer
  const delegate = certs.find(matches)
  if (delegate === undefined) throw new OcspError('ERR_OCSP_INVALID', 'the response is signed neither by the issuer nor by a certificate it carries')
  if (!delegate.checkIssued(issuer) || !delegate.verify(issuer.publicKey)) {
    throw new OcspError('ERR_OCSP_INVALID', `the responder certificate (${delegate.subject.replace(/\n/g, ', ')}) is not issued by the certificate's issuer`)
  }
  if (!(delegate.keyUsage ?? []).includes(OID_OCSP_SIGNING)) {
    throw new OcspError('ERR_OCSP_INVALID', 'the responder certificate lacks the OCSP signing extended key usage')
  }
  if (new Date(delegate.validFrom) > now || new Date(delegate.validTo) < now) {
    throw new OcspError('ERR_OCSP_INVALID', 'the responder certificate is not valid now')
  }
  return delegate
}

/**
 * Fetches and verifies a staple for the leaf of `chain` (PEM, leaf first):
 * the responder from the leaf's AIA, the issuer the chain's second
 * certificate unless given. The result's `der` goes into a certificate
 * entry's `ocsp`.
 */
export async function fetchOcspStaple (chain: string | Buffer, options: { issuer?: string | Buffer, timeoutMs?: number } = {}): Promise<OcspResult> {
  const blocks = String(chain).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  const issuerPem = options.issuer ?? blocks[1]
  if (blocks[0] === undefined || issuerPem === undefined) {
    throw new OcspError('ERR_OCSP_ISSUER', 'the chain needs the leaf and its issuer (or give issuer)')
  }
  const leaf = new X509Certificate(blocks[0])
  const issuer = new X509Certificate(issuerPem)
  const url = ocspResponderUrl(leaf)
  if (url === undefined) throw new OcspError('ERR_OCSP_URL', 'the certificate names no OCSP responder (no AIA OCSP URI)')
  return verifyOcspResponse(await fetchOcsp(url, ocspRequest(leaf, issuer), options.timeoutMs), leaf, issuer)
}
