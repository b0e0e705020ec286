// http mode: requests arrive over HTTP/1.1 or HTTP/2 (chosen by ALPN) and
// go to the host's backend over HTTP/1.1 through a keep-alive pool. The
// terminator adds X-Forwarded-For / X-Forwarded-Proto and, with the host's
// StdEnvVars or ExportCertData option, one X-SSL-* header per TLS variable
// (SPEC §4.5, §5), after removing any such header the client sent. It
// applies SPEC §4.2's 421 / 403 rules and passes WebSocket upgrades through.
import http from 'node:http'
import http2 from 'node:http2'
import type { Duplex } from 'node:stream'

import { checkAuthority } from '../authority'
import type { Logger } from '../log'
import type { RustlsSocket } from '../tls-socket/socket'
import { backendErrorKind, type HostBackend } from './backend'
import { HOP_BY_HOP, RESERVED_NAMES, RESERVED_PREFIXES } from './http-fields'
import type { Metrics } from './metrics'
import type { Generation } from './reload'
import { tunnel } from './tcp-backend'

/** What the request handler needs to know about the TLS connection. */
export interface ConnectionContext {
  generation: Generation
  /** Host chosen by SNI (the router), -1 never: refused clients never get here. */
  hostIndex: number
  /** SNI the client sent, if any. */
  sni: string | undefined
  clientAddress: string
  /** X-SSL-* headers for this connection (computed once: they cannot change). */
  sslHeaders: Record<string, string>
}


/**
 * Headers only the terminator may set. Matched with `-` and `_` alike:
 * some backends (CGI-style environments) map both to the same variable,
 * so X_SSL_CLIENT_VERIFY would otherwise spoof X-SSL-CLIENT-VERIFY. The
 * standard `Forwarded` (RFC 7239) goes too: it makes the same claims.
 */
export function isReservedHeader (name: string): boolean {
  // Every reserved name starts with x or f: most headers stop here, before
  // any string is made (this runs for every header of every request).
  const first = name.charCodeAt(0) | 0x20
  if (first !== 0x78 && first !== 0x66) return false
  const n = name.toLowerCase().replace(/_/g, '-')
  return RESERVED_PREFIXES.some((p) => n.startsWith(p)) || RESERVED_NAMES.includes(n)
}

/**
 * getEnvVars() as request headers: SSL_PROTOCOL → X-SSL-PROTOCOL,
 * SSL_TLS_SNI → X-SSL-TLS-SNI. PEM values are URL-encoded (one header
 * line each). HTTPS=on is left out: X-Forwarded-Proto: https says it.
 */
export function sslHeaders (vars: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(vars)) {
    if (!name.startsWith('SSL_')) continue
    out[`X-SSL-${name.slice(4).replace(/_/g, '-')}`] = value.startsWith('-----BEGIN') ? encodeURIComponent(value) : value
  }
  return out
}

type Route = { status: 403 | 421, reason: string } | { backend: HostBackend, hostIndex: number }

/**
 * SPEC §4.2: without SNI on a port with several hosts → 403; a Host naming
 * another configured host → 421 unless both share certificates and
 * compatible TLS settings (then that host's backend serves it: clients may
 * coalesce such connections, RFC 9113 §9.1.1). A Host that names no
 * configured host (or an IP address) stays with the connection's host.
 */
export function route (ctx: ConnectionContext, authority: string | undefined): Route {
  const gen = ctx.generation
  const check = checkAuthority(gen.hosts, ctx.hostIndex, ctx.sni !== undefined, authority)
  if (check.status !== 0) return check
  if (check.host !== ctx.hostIndex && gen.backends[check.host].config.mode !== 'http') {
    return { status: 421, reason: 'the host the request names is not served in http mode' }
  }
  return { backend: gen.backends[check.host], hostIndex: check.host }
}

const NO_TOKENS: ReadonlySet<string> = new Set()

/**
 * The field names a message's Connection header lists (RFC 9110 §7.6.1),
 * lower case, read from rawHeaders: the parsed `headers` object of a
 * backend response is built lazily, and only this would build it.
 */
function connectionTokens (raw: readonly string[]): ReadonlySet<string> {
  let tokens: Set<string> | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].length !== 10 || raw[i].toLowerCase() !== 'connection') continue
    for (const part of raw[i + 1].split(',')) {
      const token = part.trim().toLowerCase()
      if (token !== '') (tokens ??= new Set()).add(token)
    }
  }
  return tokens ?? NO_TOKENS
}

/**
 * rawHeaders as name → value(s), repeated fields kept, without hop-by-hop
 * fields and those the Connection header lists; for a client request also
 * without HTTP/2 pseudo-headers and the ones only the terminator may set.
 */
function forwardedFields (raw: readonly string[], fromClient: boolean): Record<string, string | string[]> {
  const listed = connectionTokens(raw)
  const out: Record<string, string | string[]> = {}
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase()
    if (HOP_BY_HOP.has(name) || (listed.size !== 0 && listed.has(name))) continue
    if (fromClient && (name.charCodeAt(0) === 0x3a || isReservedHeader(name))) continue
    const prev = out[name]
    out[name] = prev === undefined ? raw[i + 1] : Array.isArray(prev) ? [...prev, raw[i + 1]] : [prev, raw[i + 1]]
  }
  return out
}

type FrontRequest = http.IncomingMessage | http2.Http2ServerRequest
type FrontResponse = http.ServerResponse | http2.Http2ServerResponse

/** The backend request headers for a client request (SPEC §5 http mode). */
export function backendRequestHeaders (req: FrontRequest, ctx: ConnectionContext, hostIndex: number): Record<string, string | string[]> {
  const headers = forwardedFields(req.rawHeaders, true)
  // HTTP/2 splits cookies into crumbs; HTTP/1.1 wants one field (RFC 9113 §8.2.3).
  if (Array.isArray(headers.cookie)) headers.cookie = headers.cookie.join('; ')
  const authority = (req.headers[':authority'] as string | undefined) ?? req.headers.host
  headers.host = authority ?? ctx.generation.hosts[hostIndex].serverName
  headers['x-forwarded-for'] = ctx.clientAddress
  headers['x-forwarded-proto'] = 'https'
  Object.assign(headers, ctx.sslHeaders)
  return headers
}

function responseHeaders (res: http.IncomingMessage): Record<string, string | string[]> {
  return forwardedFields(res.rawHeaders, false)
}

function addressOptions (backend: HostBackend): http.RequestOptions {
  const a = backend.config.address
  return a.kind === 'unix' ? { socketPath: a.path } : { host: a.host, port: a.port }
}

/** A request with no body can be sent again on a fresh connection. */
function replayable (req: FrontRequest): boolean {
  if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method ?? '')) return false
  if (req.headers['transfer-encoding'] !== undefined) return false
  if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') return false
  return req instanceof http2.Http2ServerRequest ? req.stream.endAfterHeaders : true
}

/** An HTTP/2 session with no traffic for this long is closed. */
const H2_IDLE_MS = 120_000

class BackendResponseTimeout extends Error {
  readonly code = 'ERR_BACKEND_TIMEOUT'
}

export interface HttpFrontendOptions {
  logger: Logger
  metrics: Metrics
  /** ACME http-01: the key authorization for a token an order waits on. */
  acmeChallenge?: (token: string) => string | undefined
}

const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/'

export class HttpFrontend {
  readonly #h1: http.Server
  readonly #h2: http2.Http2Server
  readonly #logger: Logger
  readonly #metrics: Metrics
  readonly #acmeChallenge: HttpFrontendOptions['acmeChallenge']
  readonly #contexts = new WeakMap<object, ConnectionContext>()
  readonly #sessions = new Set<http2.ServerHttp2Session>()
  #pending: ConnectionContext | undefined
  #draining = false
  #idleSweep: NodeJS.Timeout | undefined

  constructor (options: HttpFrontendOptions) {
    this.#logger = options.logger
    this.#metrics = options.metrics
    this.#acmeChallenge = options.acmeChallenge
    this.#h1 = http.createServer({ requireHostHeader: true }, (req, res) => this.#onRequest(req, res, this.#contexts.get(req.socket)))
    // Node arms headersTimeout/requestTimeout checks and idle-connection
    // tracking (closeIdleConnections) on 'listening'; this server is fed
    // through emit('connection') and never listens itself.
    this.#h1.emit('listening')
    this.#h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head))
    this.#h1.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      this.#logger.debug({ code: err.code }, 'malformed HTTP/1.1 request')
      // As node's own default answer, with the connection closed after it.
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
      if (!socket.destroyed && socket.writable) {
        this.#metrics.httpResponse(status)
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
      } else {
        socket.destroy()
      }
    })
    this.#h2 = http2.createServer()
    // HTTP/1.1 connections idle past Node's keepAliveTimeout (5 s) close;
    // HTTP/2 sessions have no such default and would stay forever.
    this.#h2.setTimeout(H2_IDLE_MS)
    this.#h2.on('session', (session: http2.ServerHttp2Session) => {
      // Emitted synchronously from emit('connection') in accept().
      if (this.#pending !== undefined) this.#contexts.set(session, this.#pending)
      this.#sessions.add(session)
      session.once('close', () => this.#sessions.delete(session))
      session.on('error', (err: Error & { code?: string }) => this.#logger.debug({ code: err.code }, 'HTTP/2 session error'))
      if (this.#draining) session.close()
    })
    this.#h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) =>
      this.#onRequest(req, res, this.#contexts.get(req.stream.session as http2.ServerHttp2Session)))
  }

  /** Serves an established TLS connection of an http-mode host. */
  accept (socket: RustlsSocket, ctx: ConnectionContext): void {
    if (socket.alpnProtocol === 'h2') {
      this.#pending = ctx
      try {
        this.#h2.emit('connection', socket)
      } finally {
        this.#pending = undefined
      }
    } else {
      this.#contexts.set(socket, ctx)
      this.#h1.emit('connection', socket)
    }
  }

  /**
   * Graceful drain: HTTP/2 sessions get GOAWAY (streams in flight finish),
   * idle HTTP/1.1 connections close, busy ones close after their response.
   */
  drain (): void {
    if (this.#draining) return
    this.#draining = true
    for (const s of this.#sessions) s.close()
    this.#h1.closeIdleConnections()
    this.#idleSweep = setInterval(() => this.#h1.closeIdleConnections(), 100)
    this.#idleSweep.unref()
  }

  close (): void {
    if (this.#idleSweep !== undefined) clearInterval(this.#idleSweep)
    this.#h1.close()
    this.#h2.close()
  }

  #send (res: FrontResponse, status: number, text: string): void {
    this.#metrics.httpResponse(status)
    if (res.headersSent) {
      res.destroy()
      return
    }
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  }

  /**
   * ACME http-01 (RFC 8555 §8.3): answers GET /.well-known/acme-challenge/<token>
   * for a token an order waits on, whichever host the request names (the
   * CA asks on port 80, acme.httpListen, and may follow a redirect here).
   * Returns false for every other request.
   */
  serveAcmeChallenge (req: FrontRequest, res: FrontResponse): boolean {
    const url = req.url ?? ''
    if (this.#acmeChallenge === undefined || !url.startsWith(ACME_CHALLENGE_PATH) || (req.method !== 'GET' && req.method !== 'HEAD')) return false
    const answer = this.#acmeChallenge(url.slice(ACME_CHALLENGE_PATH.length).split('?')[0])
    if (answer === undefined) return false
    this.#metrics.httpResponse(200)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) })
    if (req.method === 'HEAD') res.end()
    else res.end(answer)
    return true
  }

  #onRequest (req: FrontRequest, res: FrontResponse, ctx: ConnectionContext | undefined): void {
    if (this.serveAcmeChallenge(req, res)) return
    if (ctx === undefined) {
      // Cannot happen: every connection is registered before it is emitted.
      this.#send(res, 500, 'internal error\n')
      return
    }
    if (this.#draining && res instanceof http.ServerResponse) res.setHeader('connection', 'close')
    if (req.method === 'CONNECT') {
      this.#send(res, 405, 'CONNECT is not supported\n')
      return
    }
    const authority = (req.headers[':authority'] as string | undefined) ?? req.headers.host
    const r = route(ctx, authority)
    if ('status' in r) {
      this.#logger.info({ remoteAddress: ctx.clientAddress, sni: ctx.sni, authority, status: r.status }, r.reason)
      this.#send(res, r.status, `${http.STATUS_CODES[r.status] ?? ''}: ${r.reason}\n`)
      return
    }
    this.#forward(req, res, ctx, r.backend, r.hostIndex, true)
  }

  #forward (req: FrontRequest, res: FrontResponse, ctx: ConnectionContext, backend: HostBackend, hostIndex: number, mayRetry: boolean): void {
    const bodyless = replayable(req)
    let proxyReq: http.ClientRequest
    try {
      proxyReq = http.request({
        ...addressOptions(backend),
        agent: backend.agent,
        method: req.method,
        path: req.url,
        headers: backendRequestHeaders(req, ctx, hostIndex),
        setHost: false,
        timeout: backend.config.timeout,
      })
    } catch (err) {
      this.#backendFailed(res, backend, err as Error)
      return
    }
    let answered = false
    proxyReq.on('response', (pres: http.IncomingMessage) => {
      answered = true
      const status = pres.statusCode ?? 502
      const headers = responseHeaders(pres)
      if (this.#draining && res instanceof http.ServerResponse) headers.connection = 'close'
      this.#metrics.httpResponse(status)
      try {
        if (res instanceof http.ServerResponse) res.writeHead(status, pres.statusMessage, headers)
        else res.writeHead(status, headers)
      } catch (err) {
        // A header HTTP/2 refuses (RFC 9113 §8.2.2) or an invalid value.
        this.#logger.warn({ host: backend.hostName, code: (err as { code?: string }).code }, 'backend response cannot be relayed')
        pres.destroy()
        res.destroy()
        return
      }
      // pipe(), not stream.pipeline(): pipeline makes an AbortController and
      // an AbortError (a DOMException with a stack) per response, a tenth
      // of a small request's CPU. Failures are handled here instead: a
      // broken backend response ends the client's, and a client gone ends
      // the backend request (res 'close' below).
      pres.on('error', () => res.destroy())
      pres.pipe(res as NodeJS.WritableStream)
    })
    proxyReq.on('timeout', () => proxyReq.destroy(new BackendResponseTimeout(`backend ${backend.config.address.text} sent nothing for ${backend.config.timeout} ms`)))
    proxyReq.on('error', (err: Error & { code?: string }) => {
      if (answered) {
        res.destroy()
        return
      }
      req.unpipe(proxyReq)
      if (mayRetry && bodyless && proxyReq.reusedSocket && err.code === 'ECONNRESET') {
        // The backend closed a pooled connection as we reused it.
        this.#forward(req, res, ctx, backend, hostIndex, false)
        return
      }
      this.#backendFailed(res, backend, err)
    })
    res.on('close', () => {
      if (!res.writableFinished) proxyReq.destroy()
    })
    if (bodyless) proxyReq.end()
    else req.pipe(proxyReq)
  }

  #backendFailed (res: FrontResponse, backend: HostBackend, err: Error & { code?: string }): void {
    const kind = err instanceof BackendResponseTimeout ? 'timeout' : backendErrorKind(err)
    this.#metrics.backendError(kind)
    this.#logger.warn({ host: backend.hostName, backend: backend.config.address.text, code: err.code, kind, reason: err.message }, 'backend unavailable')
    const status = kind === 'timeout' ? 504 : 502
    this.#send(res, status, `${http.STATUS_CODES[status] ?? ''}\n`)
  }

  /** WebSocket (and other HTTP/1.1 Upgrade) requests: a tunnel once the backend agrees. */
  #onUpgrade (req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const ctx = this.#contexts.get(socket)
    const refuse = (status: number, text: string): void => {
      this.#metrics.httpResponse(status)
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`)
    }
    if (ctx === undefined) {
      refuse(500, 'internal error\n')
      return
    }
    const r = route(ctx, req.headers.host)
    if ('status' in r) {
      this.#logger.info({ remoteAddress: ctx.clientAddress, sni: ctx.sni, authority: req.headers.host, status: r.status }, r.reason)
      refuse(r.status, `${http.STATUS_CODES[r.status] ?? ''}: ${r.reason}\n`)
      return
    }
    const backend = r.backend
    const headers = backendRequestHeaders(req, ctx, r.hostIndex)
    headers.connection = 'Upgrade'
    headers.upgrade = req.headers.upgrade ?? ''
    const proxyReq = http.request({ ...addressOptions(backend), agent: backend.agent, method: req.method, path: req.url, headers, setHost: false })
    proxyReq.on('upgrade', (pres: http.IncomingMessage, upstream: Duplex, upstreamHead: Buffer) => {
      this.#metrics.httpResponse(pres.statusCode ?? 101)
      socket.write(rawHead(pres))
      if (upstreamHead.length > 0) socket.write(upstreamHead)
      if (head.length > 0) upstream.write(head)
      tunnel(socket, upstream, (err) => this.#logger.debug({ host: backend.hostName, code: (err as { code?: string }).code }, 'upgraded backend connection failed'))
    })
    proxyReq.on('response', (pres: http.IncomingMessage) => {
      // The backend declined the upgrade: relay its answer and close.
      this.#metrics.httpResponse(pres.statusCode ?? 502)
      socket.write(rawHead(pres, true))
      pres.pipe(socket)
    })
    proxyReq.on('error', (err: Error & { code?: string }) => {
      const kind = backendErrorKind(err)
      this.#metrics.backendError(kind)
      this.#logger.warn({ host: backend.hostName, backend: backend.config.address.text, code: err.code, kind, reason: err.message }, 'backend unavailable')
      if (!socket.destroyed) refuse(kind === 'timeout' ? 504 : 502, `${http.STATUS_CODES[kind === 'timeout' ? 504 : 502] ?? ''}\n`)
    })
    socket.once('close', () => proxyReq.destroy())
    proxyReq.end()
  }
}

/** An HTTP/1.1 response head as the backend sent it (an upgrade keeps its hop-by-hop fields). */
function rawHead (res: http.IncomingMessage, close = false): string {
  let text = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
    const name = res.rawHeaders[i].toLowerCase()
    // Relayed decoded and delimited by the close.
    if (close && ['connection', 'keep-alive', 'transfer-encoding', 'content-length'].includes(name)) continue
    text += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`
  }
  if (close) text += 'connection: close\r\n'
  return text + '\r\n'
}
