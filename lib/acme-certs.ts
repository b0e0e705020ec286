// The two X.509 objects an ACME client makes itself, built with node:crypto
// and lib/der.ts: the certificate request sent to finalize an order
// (PKCS#10, RFC 2986, names in a subjectAltName extension request, RFC 8555
// §7.4) and the tls-alpn-01 validation certificate (RFC 8737 §3).
import crypto from 'node:crypto'

import * as der from './der'

const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2'
const OID_RSA_SHA256 = '1.2.840.113549.1.1.11'
const OID_COMMON_NAME = '2.5.4.3'
const OID_SUBJECT_ALT_NAME = '2.5.29.17'
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14'
/** id-pe-acmeIdentifier (RFC 8737 §6.1). */
export const OID_ACME_IDENTIFIER = '1.3.6.1.5.5.7.1.31'

function signatureAlgorithm (key: crypto.KeyObject): Buffer {
  if (key.asymmetricKeyType === 'ec') return der.seq(der.oid(OID_ECDSA_SHA256))
  if (key.asymmetricKeyType === 'rsa') return der.seq(der.oid(OID_RSA_SHA256), der.nullValue())
  throw new Error(`unsupported key type ${key.asymmetricKeyType ?? '?'} (ECDSA or RSA)`)
}

function name (commonName: string | undefined): Buffer {
  if (commonName === undefined) return der.seq()
  return der.seq(der.set(der.seq(der.oid(OID_COMMON_NAME), der.utf8String(commonName))))
}

function subjectAltName (names: readonly string[]): Buffer {
  // GeneralName dNSName: [2] IMPLICIT IA5String.
  const general = names.map((n) => der.tlv(0x82, Buffer.from(n, 'ascii')))
  return der.seq(der.oid(OID_SUBJECT_ALT_NAME), der.octetString(der.seq(...general)))
}

function spki (key: crypto.KeyObject): Buffer {
  return crypto.createPublicKey(key).export({ type: 'spki', format: 'der' })
}

/** A fresh certificate key: ECDSA P-256 (what rustls and every client handle fastest). */
export function generateCertificateKey (): crypto.KeyObject {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
}

/**
 * DER PKCS#10 request for `names` (all in subjectAltName, the first also as
 * the CN), signed with `key`.
 */
export function certificateRequest (names: readonly string[], key: crypto.KeyObject): Buffer {
  const info = der.seq(
    der.integer(0),
    name(names[0]),
    spki(key),
    // attributes [0] IMPLICIT SET OF Attribute: one extensionRequest.
    der.tlv(0xa0, der.seq(der.oid(OID_EXTENSION_REQUEST), der.set(der.seq(subjectAltName(names))))),
  )
  return der.seq(info, signatureAlgorithm(key), der.bitString(crypto.sign('sha256', info, key)))
}

export interface ValidationCertificate {
  /** PEM certificate. */
  cert: string
  /** PEM PKCS#8 key. */
  key: string
}

/**
 * The tls-alpn-01 validation certificate for `identifier` (RFC 8737 §3):
 * self-signed, one dNSName, and the critical id-pe-acmeIdentifier extension
 * holding SHA-256 of the key authorization. Valid for a week around now;
 * the ACME server does not check its dates or signature.
 */
export function acmeValidationCertificate (identifier: string, keyAuthorization: string): ValidationCertificate {
  const key = generateCertificateKey()
  const digest = crypto.createHash('sha256').update(keyAuthorization).digest()
  const serial = crypto.randomBytes(16)
  serial[0] &= 0x7f
  const now = Date.now()
  const tbs = der.seq(
    der.explicit(0, der.integer(2)),
    der.integer(serial),
    signatureAlgorithm(key),
    name(identifier),
    der.seq(der.time(new Date(now - 86_400_000)), der.time(new Date(now + 6 * 86_400_000))),
    name(identifier),
    spki(key),
    der.explicit(3, der.seq(
      subjectAltName([identifier]),
      der.seq(der.oid(OID_ACME_IDENTIFIER), der.bool(true), der.octetString(der.octetString(digest))),
    )),
  )
  const certDer = der.seq(tbs, signatureAlgorithm(key), der.bitString(crypto.sign('sha256', tbs, key)))
  const b64 = certDer.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    key: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
  }
}
