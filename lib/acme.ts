// ACME client (RFC 8555): account, order, authorization by tls-alpn-01
// (RFC 8737) or http-01 (RFC 8555 §8.3), finalize with a CSR, download the
// chain. JWS (ES256, RFC 7515/7518) and the JWK thumbprint (RFC 7638) are
// node:crypto; the HTTPS requests to the CA run over rustls (RustlsAgent).
//
// The client answers no challenge itself: a ChallengeResponder puts the
// answer where the CA will look (the server's challenge table for
// tls-alpn-01, an HTTP handler for http-01) and takes it away afterwards.
import crypto from 'node:crypto'
import http from 'node:http'

import { acmeValidationCertificate, certificateRequest, generateCertificateKey, type ValidationCertificate } from './acme-certs'
import { RustlsAgent } from './agent'
import type { PemInput } from './certs'
import { rustlsVersion } from './diagnostics'
import { AcmeError } from './errors'
import { type Logger, silentLogger } from './log'
import type { Server } from './server'

export type AcmeChallengeType = 'tls-alpn-01' | 'http-01'

/** One challenge the responder must make answerable (and later remove). */
export interface AcmeChallenge {
  type: AcmeChallengeType
  /** The DNS name being validated. */
  identifier: string
  token: string
  /** token "." JWK thumbprint: the http-01 response body. */
  keyAuthorization: string
  /** tls-alpn-01: the validation certificate to present for `identifier`. */
  validationCertificate?: ValidationCertificate
}

export interface ChallengeResponder {
  add: (challenge: AcmeChallenge) => void | Promise<void>
  remove: (challenge: AcmeChallenge) => void | Promise<void>
}

export interface AcmeClientOptions {
  /** Directory URL (https), e.g. https://acme-v02.api.letsencrypt.org/directory. */
  directory: string
  /** Account key (ECDSA P-256, PEM or KeyObject); see generateAccountKey(). */
  accountKey: PemInput | crypto.KeyObject
  /** Contact address of the account (mailto:). */
  email?: string
  /** The CA's terms of service are accepted (RFC 8555 §7.3 termsOfServiceAgreed). */
  termsOfServiceAgreed?: boolean
  /** Trust for the directory's HTTPS: PEM CA(s) or 'system' (default). */
  ca?: PemInput | readonly PemInput[] | 'system'
  /** Per HTTP request (default 30 s). */
  requestTimeout?: number
  /** Longest wait for the CA to validate and issue (default 120 s). */
  orderTimeout?: number
  logger?: Logger
}

export interface ObtainOptions {
  /** DNS names; the first is the CN. */
  names: readonly string[]
  challenge: AcmeChallengeType
  responder: ChallengeResponder
  /** ACME profile (draft-ietf-acme-profiles), when the CA offers several. */
  profile?: string
  /** Certificate key; default a new ECDSA P-256 key. */
  key?: crypto.KeyObject
}

export interface IssuedCertificate {
  /** PEM chain, leaf first, as the CA sent it. */
  cert: string
  /** PEM PKCS#8 key. */
  key: string
}

interface Directory {
  newNonce: string
  newAccount: string
  newOrder: string
  meta?: { termsOfService?: string, profiles?: Record<string, string> }
}

interface Response {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

const MAX_RESPONSE = 1 << 20
const USER_AGENT = `rustls-node-acme (${rustlsVersion()})`
const ACME_PROBLEM = 'urn:ietf:params:acme:error:'

/** A new ACME account key (ECDSA P-256, for ES256), as PEM PKCS#8. */
export function generateAccountKey (): string {
  return generateCertificateKey().export({ type: 'pkcs8', format: 'pem' }).toString()
}

function b64url (data: Buffer | string): string {
  return Buffer.from(data).toString('base64url')
}

export class AcmeClient {
  readonly #directoryUrl: string
  readonly #key: crypto.KeyObject
  readonly #jwk: Record<string, string>
  readonly #options: AcmeClientOptions
  readonly #agent: RustlsAgent
  readonly #logger: Logger
  #directory: Directory | undefined
  #nonce: string | undefined
  #kid: string | undefined

  constructor (options: AcmeClientOptions) {
    let url: URL
    try {
      url = new URL(options.directory)
    } catch {
      throw new AcmeError('ERR_ACME_CONFIG', `directory "${options.directory}" is not a URL`)
    }
    // RFC 8555 §6.1: HTTPS only.
    if (url.protocol !== 'https:') throw new AcmeError('ERR_ACME_CONFIG', `directory "${options.directory}" must be an https: URL`)
    this.#directoryUrl = url.href
    this.#key = options.accountKey instanceof crypto.KeyObject ? options.accountKey : crypto.createPrivateKey(options.accountKey)
    if (this.#key.asymmetricKeyType !== 'ec' || this.#key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new AcmeError('ERR_ACME_CONFIG', 'the account key must be ECDSA P-256 (ES256)')
    }
    const jwk = crypto.createPublicKey(this.#key).export({ format: 'jwk' }) as Record<string, string>
    // RFC 7638 §3.2: the required members only, in lexicographic order.
    this.#jwk = { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
    this.#options = options
    this.#logger = options.logger ?? silentLogger
    this.#agent = new RustlsAgent({ ca: options.ca ?? 'system', keepAlive: true, maxSockets: 4 })
  }

  /** RFC 7638 thumbprint of the account key (base64url). */
  get thumbprint (): string {
    return b64url(crypto.createHash('sha256').update(JSON.stringify(this.#jwk)).digest())
  }

  /** The account URL once registered. */
  get accountUrl (): string | undefined {
    return this.#kid
  }

  /** Closes pooled connections to the CA. */
  close (): void {
    this.#agent.destroy()
  }

  async #request (url: string, method: 'GET' | 'HEAD' | 'POST', body?: string): Promise<Response> {
    const timeout = this.#options.requestTimeout ?? 30_000
    return await new Promise<Response>((resolve, reject) => {
      let req: http.ClientRequest
      try {
        // http.request with an https: URL and a RustlsAgent: the agent makes the TLS connection.
        req = http.request(url, {
          method,
          agent: this.#agent,
          // RFC 8555 §6.1: every request names its client.
          headers: body === undefined
            ? { 'user-agent': USER_AGENT }
            : { 'user-agent': USER_AGENT, 'content-type': 'application/jose+json', 'content-length': Buffer.byteLength(body) },
          timeout,
        })
      } catch (err) {
        reject(new AcmeError('ERR_ACME_UNREACHABLE', `${method} ${url}: ${(err as Error).message}`))
        return
      }
      req.on('timeout', () => req.destroy(new AcmeError('ERR_ACME_UNREACHABLE', `${method} ${url}: no answer within ${timeout} ms`)))
      req.on('error', (err: Error & { code?: string }) => {
        reject(err instanceof AcmeError ? err : new AcmeError('ERR_ACME_UNREACHABLE', `${method} ${url}: ${err.code ?? err.message}`))
      })
      req.on('response', (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (c: Buffer) => {
          size += c.length
          if (size > MAX_RESPONSE) res.destroy(new AcmeError('ERR_ACME_PROTOCOL', `${url}: response larger than ${MAX_RESPONSE} bytes`))
          else chunks.push(c)
        })
        res.on('error', (err) => reject(err instanceof AcmeError ? err : new AcmeError('ERR_ACME_UNREACHABLE', `${url}: ${err.message}`)))
        res.on('end', () => {
          const nonce = res.headers['replay-nonce']
          if (typeof nonce === 'string' && nonce !== '') this.#nonce = nonce
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) })
        })
      })
      req.end(body)
    })
  }

  async directory (): Promise<Directory> {
    if (this.#directory !== undefined) return this.#directory
    const res = await this.#request(this.#directoryUrl, 'GET')
    const dir = parseJson(res, this.#directoryUrl) as Partial<Directory>
    if (res.status !== 200 || typeof dir.newNonce !== 'string' || typeof dir.newAccount !== 'string' || typeof dir.newOrder !== 'string') {
      throw new AcmeError('ERR_ACME_PROTOCOL', `${this.#directoryUrl}: not an ACME directory (HTTP ${res.status})`)
    }
    this.#directory = dir as Directory
    return this.#directory
  }

  async #freshNonce (): Promise<string> {
    const dir = await this.directory()
    const res = await this.#request(dir.newNonce, 'HEAD')
    const nonce = this.#nonce
    if (nonce === undefined || res.status >= 400) throw new AcmeError('ERR_ACME_PROTOCOL', `${dir.newNonce}: no Replay-Nonce (HTTP ${res.status})`)
    return nonce
  }

  /**
   * A signed POST (payload undefined: POST-as-GET, RFC 8555 §6.3). A
   * badNonce answer is retried with the nonce it carried (§6.5).
   */
  async #post (url: string, payload: unknown, useJwk = false): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const nonce = this.#nonce ?? await this.#freshNonce()
      this.#nonce = undefined
      const header: Record<string, unknown> = { alg: 'ES256', nonce, url }
      if (useJwk || this.#kid === undefined) header.jwk = this.#jwk
      else header.kid = this.#kid
      const protectedB64 = b64url(JSON.stringify(header))
      const payloadB64 = payload === undefined ? '' : b64url(JSON.stringify(payload))
      const signature = crypto.sign('sha256', Buffer.from(`${protectedB64}.${payloadB64}`), { key: this.#key, dsaEncoding: 'ieee-p1363' })
      const res = await this.#request(url, 'POST', JSON.stringify({ protected: protectedB64, payload: payloadB64, signature: b64url(signature) }))
      if (res.status < 400) return res
      const problem = problemOf(res)
      if (problem.type === `${ACME_PROBLEM}badNonce` && attempt < 5) continue
      throw new AcmeError('ERR_ACME_PROBLEM', `${url}: ${problem.detail ?? `HTTP ${res.status}`}`, problem.type, res.status)
    }
  }

  /**
   * Registers the account (or finds the existing one for this key). Orders
   * started together share one registration: concurrent newAccount
   * requests for one key race in the CA (pebble answers one of them
   * serverInternal, "Error saving account").
   */
  register (): Promise<string> {
    if (this.#kid !== undefined) return Promise.resolve(this.#kid)
    this.#registering ??= this.#register().finally(() => { this.#registering = undefined })
    return this.#registering
  }

  #registering: Promise<string> | undefined

  async #register (): Promise<string> {
    const dir = await this.directory()
    const payload: Record<string, unknown> = { termsOfServiceAgreed: this.#options.termsOfServiceAgreed === true }
    if (this.#options.email !== undefined) payload.contact = [`mailto:${this.#options.email}`]
    const res = await this.#post(dir.newAccount, payload, true)
    const location = res.headers.location
    if (typeof location !== 'string') throw new AcmeError('ERR_ACME_PROTOCOL', `${dir.newAccount}: no account URL (Location)`)
    this.#kid = location
    return location
  }

  /** Orders, validates and downloads a certificate for `options.names`. */
  async obtain (options: ObtainOptions): Promise<IssuedCertificate> {
    const deadline = Date.now() + (this.#options.orderTimeout ?? 120_000)
    await this.register()
    const dir = await this.directory()
    const newOrder: Record<string, unknown> = { identifiers: options.names.map((value) => ({ type: 'dns', value })) }
    if (options.profile !== undefined) newOrder.profile = options.profile
    const created = await this.#post(dir.newOrder, newOrder)
    const orderUrl = created.headers.location
    if (typeof orderUrl !== 'string') throw new AcmeError('ERR_ACME_PROTOCOL', `${dir.newOrder}: no order URL (Location)`)
    let order = parseJson(created, dir.newOrder) as { status?: string, authorizations?: string[], finalize?: string, certificate?: string, error?: Problem }
    this.#logger.info({ order: orderUrl, names: options.names, challenge: options.challenge }, 'ACME order created')
    if (!Array.isArray(order.authorizations) || !order.authorizations.every((u) => typeof u === 'string')) {
      throw new AcmeError('ERR_ACME_PROTOCOL', `${orderUrl}: the order lists no authorizations`)
    }
    for (const authzUrl of order.authorizations) {
      await this.#authorize(authzUrl, options, deadline)
    }
    const key = options.key ?? generateCertificateKey()
    const finalize = order.finalize
    if (typeof finalize !== 'string') throw new AcmeError('ERR_ACME_PROTOCOL', `${orderUrl}: no finalize URL`)
    // The order may still say "pending" until the server saw every authorization valid.
    order = await this.#poll(orderUrl, deadline, (o: typeof order) => o.status !== 'pending') as typeof order
    if (order.status !== 'ready') throw orderError(orderUrl, order)
    const csr = certificateRequest(options.names, key)
    await this.#post(finalize, { csr: b64url(csr) })
    order = await this.#poll(orderUrl, deadline, (o: typeof order) => o.status !== 'processing' && o.status !== 'ready') as typeof order
    if (order.status !== 'valid' || typeof order.certificate !== 'string') throw orderError(orderUrl, order)
    const chain = await this.#post(order.certificate, undefined)
    const cert = chain.body.toString('utf8')
    if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new AcmeError('ERR_ACME_PROTOCOL', `${order.certificate}: not a PEM certificate chain`)
    this.#logger.info({ order: orderUrl, names: options.names }, 'ACME certificate issued')
    return { cert, key: key.export({ type: 'pkcs8', format: 'pem' }).toString() }
  }

  async #authorize (authzUrl: string, options: ObtainOptions, deadline: number): Promise<void> {
    const res = await this.#post(authzUrl, undefined)
    const authz = parseJson(res, authzUrl) as Authorization
    if (authz.status === 'valid') return
    const identifier = typeof authz.identifier?.value === 'string' ? authz.identifier.value.toLowerCase() : ''
    // Only names we ordered may reach the challenge table or a certificate.
    if (!options.names.some((n) => n.toLowerCase() === identifier)) {
      throw new AcmeError('ERR_ACME_PROTOCOL', `${authzUrl}: authorization for "${identifier}", which was not ordered`)
    }
    const offered = Array.isArray(authz.challenges) ? authz.challenges.filter((c) => c !== null && typeof c === 'object') : []
    const found = offered.find((c) => c.type === options.challenge)
    if (found === undefined || typeof found.url !== 'string' || typeof found.token !== 'string') {
      throw new AcmeError('ERR_ACME_CHALLENGE_FAILED', `${identifier}: the CA offers no ${options.challenge} challenge (offered: ${offered.map((c) => String(c.type)).join(', ')})`)
    }
    // RFC 8555 §8.1: the token is base64url; anything else must not reach a path or a certificate.
    if (!/^[A-Za-z0-9_-]+$/.test(found.token)) throw new AcmeError('ERR_ACME_PROTOCOL', `${authzUrl}: malformed challenge token`)
    const keyAuthorization = `${found.token}.${this.thumbprint}`
    const challenge: AcmeChallenge = { type: options.challenge, identifier, token: found.token, keyAuthorization }
    if (options.challenge === 'tls-alpn-01') challenge.validationCertificate = acmeValidationCertificate(identifier, keyAuthorization)
    await options.responder.add(challenge)
    const failedWith = (why: string, type: string | undefined): AcmeError =>
      new AcmeError('ERR_ACME_CHALLENGE_FAILED', `${identifier}: ${options.challenge} failed: ${why}`, type)
    try {
      let final: Authorization
      try {
        await this.#post(found.url, {})
        final = await this.#poll(authzUrl, deadline, (a: Authorization) => a.status !== 'pending') as Authorization
      } catch (err) {
        // A CA may answer the challenge POST or the authorization with the
        // validation's own problem (RFC 8555 §6.7: connection, dns, tls, ...)
        // instead of an invalid authorization: the same failure.
        if (err instanceof AcmeError && err.code === 'ERR_ACME_PROBLEM' && VALIDATION_PROBLEMS.has(err.type ?? '')) throw failedWith(err.message, err.type)
        throw err
      }
      if (final.status !== 'valid') {
        const failed = Array.isArray(final.challenges) ? final.challenges.find((c) => c?.type === options.challenge) : undefined
        throw failedWith(failed?.error?.detail ?? `authorization is ${final.status ?? 'unknown'}`, failed?.error?.type)
      }
    } finally {
      await options.responder.remove(challenge)
    }
  }

  /** POST-as-GET `url` until `done(body)` holds, waiting Retry-After (1-10 s) between. */
  async #poll (url: string, deadline: number, done: (body: never) => boolean): Promise<unknown> {
    for (;;) {
      const res = await this.#post(url, undefined)
      const body = parseJson(res, url)
      if (done(body as never)) return body
      const after = Number(res.headers['retry-after'])
      const wait = Math.min(10_000, Math.max(200, Number.isFinite(after) ? after * 1000 : 1000))
      if (Date.now() + wait > deadline) throw new AcmeError('ERR_ACME_TIMEOUT', `${url}: still ${(body as { status?: string }).status ?? 'pending'} at the deadline`)
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
}

interface Problem { type?: string, detail?: string }

/** RFC 8555 §6.7 problem types that report a failed validation. */
const VALIDATION_PROBLEMS = new Set(['caa', 'connection', 'dns', 'incorrectResponse', 'tls', 'unauthorized'].map((t) => `${ACME_PROBLEM}${t}`))
interface Authorization {
  status?: string
  identifier?: { type: string, value: string }
  challenges?: Array<{ type: string, url?: string, token?: string, status?: string, error?: Problem }>
}

function parseJson (res: Response, url: string): Record<string, unknown> {
  try {
    const value = JSON.parse(res.body.toString('utf8')) as unknown
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {}
  throw new AcmeError('ERR_ACME_PROTOCOL', `${url}: answer is not a JSON object (HTTP ${res.status})`)
}

function problemOf (res: Response): Problem {
  try {
    const p = JSON.parse(res.body.toString('utf8')) as Problem
    return { type: typeof p.type === 'string' ? p.type : undefined, detail: typeof p.detail === 'string' ? p.detail : undefined }
  } catch {
    return {}
  }
}

function orderError (url: string, order: { status?: string, error?: Problem }): AcmeError {
  return new AcmeError('ERR_ACME_PROBLEM', `${url}: order is ${order.status ?? 'unknown'}${order.error?.detail !== undefined ? `: ${order.error.detail}` : ''}`, order.error?.type)
}

/** tls-alpn-01 answered by a library Server's challenge table (server.setAcmeChallenge). */
export function tlsAlpnResponder (server: Server): ChallengeResponder {
  return {
    add: (c) => {
      if (c.validationCertificate === undefined) throw new AcmeError('ERR_ACME_CONFIG', 'tlsAlpnResponder answers tls-alpn-01 only')
      server.setAcmeChallenge(c.identifier, c.validationCertificate)
    },
    remove: (c) => server.setAcmeChallenge(c.identifier, null),
  }
}

/**
 * http-01: a request handler for `/.well-known/acme-challenge/<token>`
 * (RFC 8555 §8.3) and the responder that feeds it. `handle` returns false
 * for any other request, so it can sit in front of an application.
 */
export function http01Responder (): ChallengeResponder & { handle: (req: http.IncomingMessage, res: http.ServerResponse) => boolean } {
  const tokens = new Map<string, string>()
  return {
    add: (c) => { tokens.set(c.token, c.keyAuthorization) },
    remove: (c) => { tokens.delete(c.token) },
    handle: (req, res) => {
      const path = (req.url ?? '').split('?')[0]
      if (!path.startsWith('/.well-known/acme-challenge/')) return false
      const answer = tokens.get(path.slice('/.well-known/acme-challenge/'.length))
      if (answer === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such challenge\n')
      } else {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) }).end(req.method === 'HEAD' ? undefined : answer)
      }
      return true
    },
  }
}
