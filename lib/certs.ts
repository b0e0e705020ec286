// Certificates and keys as given by users (PEM string | Buffer, as in
// node:tls), turned into native certified keys. Encrypted private keys are
// decrypted with node:crypto; the passphrase never reaches a log or an error.
import crypto from 'node:crypto'

import { ConfigError, configErrorFromNative, keyPathJoin } from './errors'
import { addon, type NativeCertifiedKey } from './native'

export type PemInput = string | Buffer

/** One certificate of a host: chain (leaf first), key, optional OCSP response. */
export interface CertificateEntry {
  /** PEM chain, leaf first. May also hold the private key when `key` is omitted. */
  cert: PemInput
  /** PEM private key (PKCS#8, SEC1 or PKCS#1; encrypted with `passphrase`). */
  key?: PemInput
  /** Passphrase of an encrypted `key`. */
  passphrase?: string
  /** DER OCSP response stapled when the client asks (status_request). */
  ocsp?: Buffer
}

export interface LoadedCertificate {
  native: NativeCertifiedKey
  /** DER of the leaf. */
  leaf: Buffer
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/

function text (value: PemInput | undefined): string {
  if (value === undefined) return ''
  return typeof value === 'string' ? value : value.toString('latin1')
}

/** PEM certificate blocks of `pem`, in order. */
export function certificateBlocks (pem: PemInput): string[] {
  return text(pem).match(CERT_BLOCK) ?? []
}

function requireCertificates (value: PemInput | undefined, keyPath: string): string[] {
  if (value === undefined || value === null) {
    throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', keyPath, 'certificate is missing')
  }
  if (typeof value !== 'string' && !Buffer.isBuffer(value)) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be a PEM string or Buffer')
  }
  const blocks = certificateBlocks(value)
  if (blocks.length === 0) {
    throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', keyPath,
      text(value).trim() === '' ? 'certificate is empty' : 'no PEM certificate found')
  }
  return blocks
}

/**
 * The private key as unencrypted PEM. Encrypted keys (PKCS#8 "ENCRYPTED
 * PRIVATE KEY" or legacy "Proc-Type: 4,ENCRYPTED") are decrypted with
 * node:crypto and re-exported as PKCS#8, which rustls reads.
 */
function plainKey (pem: string, passphrase: string | undefined, keyPath: string): string {
  const match = pem.match(KEY_BLOCK)
  if (match === null) {
    throw new ConfigError('ERR_TLS_CONFIG_KEY', keyPath, 'no PEM private key found')
  }
  const block = match[0]
  const encrypted = match[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block)
  // As in node:tls, a passphrase given for a clear key is not an error.
  if (!encrypted) return block
  if (passphrase === undefined) {
    throw new ConfigError('ERR_TLS_CONFIG_KEY', keyPath, 'the private key is encrypted and no passphrase was given')
  }
  try {
    const key = crypto.createPrivateKey({ key: block, format: 'pem', passphrase })
    return key.export({ format: 'pem', type: 'pkcs8' }).toString()
  } catch {
    // The crypto error text is not forwarded: keep secrets out of messages.
    throw new ConfigError('ERR_TLS_CONFIG_KEY', keyPath, 'cannot decrypt the private key (wrong passphrase?)')
  }
}

/**
 * Builds the native certified key for one certificate entry. `keyPath`
 * names the entry in errors (`hosts[0].certificates[1]`).
 */
export function loadCertificate (entry: CertificateEntry, keyPath: string): LoadedCertificate {
  if (entry === null || typeof entry !== 'object') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be an object {cert, key?, passphrase?, ocsp?}')
  }
  const blocks = requireCertificates(entry.cert, keyPathJoin(keyPath, 'cert'))
  const keySource = entry.key !== undefined ? text(entry.key) : text(entry.cert)
  const keyKeyPath = entry.key !== undefined ? keyPathJoin(keyPath, 'key') : keyPathJoin(keyPath, 'cert')
  if (entry.key !== undefined && keySource.trim() === '') {
    throw new ConfigError('ERR_TLS_CONFIG_KEY', keyKeyPath, 'private key is empty')
  }
  const key = plainKey(keySource, entry.passphrase, keyKeyPath)
  if (entry.ocsp !== undefined && (!Buffer.isBuffer(entry.ocsp) || entry.ocsp.length === 0)) {
    throw new ConfigError('ERR_TLS_CONFIG_OCSP', keyPathJoin(keyPath, 'ocsp'), 'must be a non-empty DER Buffer')
  }
  let native: NativeCertifiedKey
  try {
    native = new addon.CertifiedKey(Buffer.from(blocks.join('\n')), Buffer.from(key), entry.ocsp)
  } catch (err) {
    throw nativeCertificateError(err, keyPath)
  }
  const leaf = native.certificate(0)
  if (leaf === undefined) {
    native.destroy()
    throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', keyPathJoin(keyPath, 'cert'), 'no leaf certificate')
  }
  return { native, leaf }
}

function nativeCertificateError (err: unknown, keyPath: string): Error {
  const step = (err as { step?: string }).step
  const result = (err as { rustlsResult?: number }).rustlsResult
  if (step === 'keysMatch') {
    return configErrorFromNative(err, 'ERR_TLS_CONFIG_KEY_MISMATCH', keyPathJoin(keyPath, 'key'))
  }
  if (step === 'ocsp') return configErrorFromNative(err, 'ERR_TLS_CONFIG_OCSP', keyPathJoin(keyPath, 'ocsp'))
  // rustls_result 7006: PRIVATE_KEY_PARSE_ERROR; the rest concern the chain.
  if (result === 7006) return configErrorFromNative(err, 'ERR_TLS_CONFIG_KEY', keyPathJoin(keyPath, 'key'))
  return configErrorFromNative(err, 'ERR_TLS_CONFIG_CERTIFICATE', keyPathJoin(keyPath, 'cert'))
}

/** Joins CA inputs (PEM string | Buffer | array of them) into one PEM Buffer. */
export function pemBundle (value: PemInput | readonly PemInput[] | undefined, keyPath: string, code: `ERR_TLS_CONFIG_${string}`): Buffer | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value as PemInput]
  const parts: string[] = []
  list.forEach((item, i) => {
    if (typeof item !== 'string' && !Buffer.isBuffer(item)) {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', Array.isArray(value) ? `${keyPath}[${i}]` : keyPath, 'must be a PEM string or Buffer')
    }
    parts.push(text(item))
  })
  const joined = parts.join('\n')
  if (joined.trim() === '') throw new ConfigError(code, keyPath, 'is empty')
  return Buffer.from(joined)
}

/** DER → PEM "CERTIFICATE" block. */
export function derToPem (der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}
