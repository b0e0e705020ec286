// ACME state in the store (mod_md's store, shared): accounts, certificates
// with their keys, and the challenges of orders in progress, so that one
// instance orders (under the lock `lock:acme:<serverName>`) and every
// instance answers the CA's validation and serves the result.
//
// Records are JSON; private keys inside are sealed (sealing.ts). Everything
// read back is checked before use: a certificate must parse, cover its
// names and load with its key through the library; a challenge must be of a
// known type for a well-formed token. Anything else is refused (counted,
// logged) and never served.
import crypto, { X509Certificate } from 'node:crypto'

import type { AcmeChallenge } from '../../acme'
import { loadCertificate } from '../../certs'
import type { Sealer } from './sealing'
import { invalidValue, type SharedStore, StoreError } from './shared-store'

/** How long a challenge stays in the store if its order never removes it (orders time out after 120 s). */
export const CHALLENGE_TTL_MS = 10 * 60_000
/** Longest wait for every instance to acknowledge a new challenge before the CA is told to validate. */
export const CHALLENGE_ACK_WAIT_MS = 5000

export const acmeKeys = {
  account: (directory: string): string => `acme:account:${crypto.createHash('sha256').update(directory).digest('hex').slice(0, 16)}`,
  certificate: (serverName: string): string => `acme:certificate:${serverName.toLowerCase()}`,
  challenge: (token: string): string => `acme:challenge:${token}`,
  /** The instances that put the challenge in place (a set). Not matched by `acme:challenge:*`. */
  challengeAcks: (token: string): string => `acme:challenge-ack:${token}`,
  /** Lock name (the key is `lock:acme:<serverName>`). */
  orderLock: (serverName: string): string => `acme:${serverName.toLowerCase()}`,
}

export interface StoredCertificate {
  /** PEM chain, leaf first. */
  cert: string
  /** PEM private key (opened). */
  key: string
  /** DNS names of the leaf, lower case. */
  names: string[]
  notBefore: number
  notAfter: number
  fingerprint: string
}

/** The DNS names of a leaf (its subjectAltName), lower case. */
export function leafNames (leaf: X509Certificate): string[] {
  return (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase())
}

/** Parses and checks a chain + key pair; throws ERR_STORE_INVALID_VALUE with `kind` otherwise. */
export function checkCertificatePair (kind: string, where: string, cert: string, key: string): StoredCertificate {
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(cert)
  } catch {
    throw invalidValue(kind, `${where}: the certificate does not parse`)
  }
  try {
    // The pair must load (and match) through the library before it is served.
    loadCertificate({ cert, key }, where).native.destroy()
  } catch (err) {
    throw invalidValue(kind, `${where}: the certificate and key do not load: ${(err as Error).message}`)
  }
  return { cert, key, names: leafNames(leaf), notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo), fingerprint: leaf.fingerprint256 }
}

export function encodeCertificate (serverName: string, cert: string, key: string, sealer: Sealer): string {
  const leaf = new X509Certificate(cert)
  return JSON.stringify({
    v: 1,
    names: leafNames(leaf),
    notAfter: new Date(leaf.validTo).toISOString(),
    cert,
    key: sealer.seal(`${acmeKeys.certificate(serverName)}#key`, key),
  })
}

export function decodeCertificate (serverName: string, text: string, sealer: Sealer): StoredCertificate {
  const where = acmeKeys.certificate(serverName)
  const r = jsonObject('acme-certificate', where, text)
  if (r.v !== 1) throw invalidValue('acme-certificate', `${where}: unknown format version ${JSON.stringify(r.v)}`)
  if (typeof r.cert !== 'string') throw invalidValue('acme-certificate', `${where}: no certificate`)
  const key = sealer.open('acme-certificate', `${where}#key`, r.key).toString('utf8')
  return checkCertificatePair('acme-certificate', where, r.cert, key)
}

export function encodeChallenge (c: AcmeChallenge, sealer: Sealer): string {
  const v = c.validationCertificate
  return JSON.stringify({
    v: 1,
    type: c.type,
    identifier: c.identifier,
    token: c.token,
    keyAuthorization: c.keyAuthorization,
    ...(v === undefined ? {} : { cert: v.cert, key: sealer.seal(`${acmeKeys.challenge(c.token)}#key`, v.key) }),
  })
}

export function decodeChallenge (token: string, text: string, sealer: Sealer): AcmeChallenge {
  const where = acmeKeys.challenge(token)
  const r = jsonObject('acme-challenge', where, text)
  if (r.v !== 1) throw invalidValue('acme-challenge', `${where}: unknown format version ${JSON.stringify(r.v)}`)
  // RFC 8555 §8.1: tokens are base64url; the key authorization is token "." thumbprint.
  if (r.token !== token || !/^[A-Za-z0-9_-]+$/.test(token)) throw invalidValue('acme-challenge', `${where}: the token does not match its key`)
  if (typeof r.keyAuthorization !== 'string' || !r.keyAuthorization.startsWith(`${token}.`) || !/^[A-Za-z0-9_.-]+$/.test(r.keyAuthorization)) {
    throw invalidValue('acme-challenge', `${where}: bad key authorization`)
  }
  if (typeof r.identifier !== 'string' || !/^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$/.test(r.identifier)) throw invalidValue('acme-challenge', `${where}: bad identifier`)
  if (r.type === 'http-01') return { type: 'http-01', identifier: r.identifier, token, keyAuthorization: r.keyAuthorization }
  if (r.type !== 'tls-alpn-01') throw invalidValue('acme-challenge', `${where}: unknown challenge type`)
  if (typeof r.cert !== 'string') throw invalidValue('acme-challenge', `${where}: no validation certificate`)
  const key = sealer.open('acme-challenge', `${where}#key`, r.key).toString('utf8')
  try {
    // Only the parse: the validation certificate's critical acmeIdentifier
    // extension is refused by webpki, so the library loads it unchecked.
    const leaf = new X509Certificate(r.cert)
    if (!leafNames(leaf).includes(r.identifier)) throw new Error('wrong name')
    crypto.createPrivateKey(key)
  } catch {
    throw invalidValue('acme-challenge', `${where}: bad validation certificate`)
  }
  return { type: 'tls-alpn-01', identifier: r.identifier, token, keyAuthorization: r.keyAuthorization, validationCertificate: { cert: r.cert, key } }
}

function jsonObject (kind: string, where: string, text: string): Record<string, unknown> {
  let r: unknown
  try {
    r = JSON.parse(text)
  } catch {
    throw invalidValue(kind, `${where}: not JSON`)
  }
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalidValue(kind, `${where}: not a JSON object`)
  return r as Record<string, unknown>
}

/** The ACME records of one store, decoded and checked. Operations reject with StoreError. */
export class AcmeStoreState {
  readonly store: SharedStore
  readonly #sealer: Sealer

  constructor (store: SharedStore, sealer: Sealer) {
    this.store = store
    this.#sealer = sealer
  }

  /** Reads `key` and decodes it; an invalid value is counted, logged and read as absent. */
  async #read<T>(kind: string, key: string, decode: (text: string) => T): Promise<T | undefined> {
    const text = await this.store.get(key)
    if (text === undefined) return undefined
    try {
      return decode(text)
    } catch (err) {
      if (!(err instanceof StoreError)) throw err
      this.store.invalid(kind, key, err.message)
      return undefined
    }
  }

  /**
   * The account key for `directory`: the stored one, else `local()` (the
   * one in stateDir) or a new one, stored if nobody stored one meanwhile
   * (SET NX), so that every instance orders on one account.
   */
  async accountKey (directory: string, local: () => string): Promise<string> {
    const key = acmeKeys.account(directory)
    const open = (text: string): string => {
      const pem = this.#sealer.open('acme-account', key, text).toString('utf8')
      try {
        const k = crypto.createPrivateKey(pem)
        if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not P-256')
      } catch {
        throw invalidValue('acme-account', `${key}: not an ECDSA P-256 private key`)
      }
      return pem
    }
    const stored = await this.#read('acme-account', key, open)
    if (stored !== undefined) return stored
    const mine = local()
    const invalid = await this.store.get(key) !== undefined
    // An invalid record is replaced; a missing one only if still missing.
    const written = await this.store.set(key, this.#sealer.seal(key, mine), { ifAbsent: !invalid })
    if (written) return mine
    return await this.#read('acme-account', key, open) ?? mine
  }

  async certificate (serverName: string): Promise<StoredCertificate | undefined> {
    return await this.#read('acme-certificate', acmeKeys.certificate(serverName), (t) => decodeCertificate(serverName, t, this.#sealer))
  }

  /** Stores the pair of `serverName` and tells every instance. */
  async putCertificate (serverName: string, cert: string, key: string): Promise<void> {
    await this.store.set(acmeKeys.certificate(serverName), encodeCertificate(serverName, cert, key, this.#sealer))
    await this.store.publish({ type: 'acme-certificate', serverName: serverName.toLowerCase() }).catch(() => 0)
  }

  async challenge (token: string): Promise<AcmeChallenge | undefined> {
    return await this.#read('acme-challenge', acmeKeys.challenge(token), (t) => decodeChallenge(token, t, this.#sealer))
  }

  /** Tokens of every challenge in the store. */
  async challengeTokens (): Promise<string[]> {
    const prefix = acmeKeys.challenge('')
    return (await this.store.scan(`${prefix}*`)).map((k) => k.slice(prefix.length))
  }

  /**
   * Stores `c` and tells every instance, then waits until as many as
   * received the event have put it in place (their acknowledgements), at
   * most CHALLENGE_ACK_WAIT_MS: the CA may ask any of them as soon as it
   * is told to validate. Resolves with [acknowledged, expected].
   */
  async putChallenge (c: AcmeChallenge, waitMs = CHALLENGE_ACK_WAIT_MS): Promise<[number, number]> {
    await this.store.set(acmeKeys.challenge(c.token), encodeChallenge(c, this.#sealer), { ttlMs: CHALLENGE_TTL_MS })
    const expected = await this.store.publish({ type: 'acme-challenge', token: c.token })
    const deadline = Date.now() + waitMs
    let acked = 0
    for (;;) {
      acked = await this.store.count(acmeKeys.challengeAcks(c.token))
      if (acked >= expected || Date.now() >= deadline) return [acked, expected]
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  /** This instance put the challenge in place. */
  async acknowledge (token: string): Promise<void> {
    await this.store.mark(acmeKeys.challengeAcks(token), this.store.instanceId, CHALLENGE_TTL_MS)
  }

  async removeChallenge (token: string): Promise<void> {
    await this.store.del(acmeKeys.challenge(token))
    await this.store.del(acmeKeys.challengeAcks(token))
    await this.store.publish({ type: 'acme-challenge-removed', token }).catch(() => 0)
  }
}
