// createHttpsServer(): HTTP/1.1 and HTTP/2 over rustls (SPEC §3, HTTP
// helpers). A rustls Server terminates TLS; each secure connection is handed
// by its negotiated ALPN protocol to an inner `http.Server` or `http2` server
// through emit('connection'), so handlers get Node's own request/response
// objects, exactly as with `https.createServer` / `http2.createSecureServer`.
import type { EventEmitter } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'

import { checkAuthority } from './authority'
import type { HostContext } from './hosts'
import { Server, type ServerOptions } from './server'
import { pairPlain, PlainSide, TLS_GETTERS, TLS_METHODS } from './tls-socket/plain-side'
import { kCloseGrace, PEER_CLOSE_GRACE_MS } from './tls-socket/pump'
import type { RustlsSocket } from './tls-socket/socket'

/** ALPN advertised unless `ALPNProtocols` says otherwise, server preference first. */
export const DEFAULT_HTTPS_ALPN: readonly string[] = ['h2', 'http/1.1']

/** HTTP/2 session options, as `http2.createSecureServer`'s (ALPN, not allowHTTP1, picks the protocol). */
export type Http2SessionOptions = http2.ServerOptions

export interface HttpsServerOptions extends ServerOptions, http.ServerOptions {
  /**
   * Options of the inner HTTP/2 server: `settings`, `maxSessionMemory` (MB,
   * default 10), `peerMaxConcurrentStreams` (default 100), ... as in
   * `http2.createSecureServer`. HTTP/1.1 options (keepAliveTimeout in ms,
   * default 5000; headersTimeout in ms, default 60000; requestTimeout in ms,
   * default 300000; maxHeaderSize in bytes, default 16384; ...) are given at
   * the top level, as with `https.createServer`.
   */
  http2?: Http2SessionOptions
  /**
   * SPEC §4.2, HTTP mode, on servers with several virtual hosts: a request
   * whose Host (or :authority) names another host than the one its TLS
   * connection was made for gets 421 Misdirected Request, unless both hosts
   * share certificates and protocol/cipher/client-auth settings; a request
   * on a connection without SNI gets 403. Default true; without `hosts` or
   * with one host nothing is checked.
   */
  hostCheck?: boolean
}

/**
 * The request listener: `(req, res)` as for `https.createServer`; over
 * HTTP/2 they are the `http2` compatibility objects (Http2ServerRequest /
 * Http2ServerResponse). Declared in method form so that its parameters
 * are checked bivariantly: listeners typed for https.createServer (an
 * Express app, say) are accepted as well.
 */
export type HttpsRequestListener = {
  bivariant (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void
}['bivariant']

type Listener = (...args: any[]) => void // eslint-disable-line @typescript-eslint/no-explicit-any

/** Events of the inner servers that users listen to on the outer one, like on an https.Server. */
const FORWARDED_H1 = new Set(['upgrade', 'connect', 'checkContinue', 'checkExpectation', 'clientError', 'dropRequest', 'timeout'])
const FORWARDED_H2 = new Set(['stream', 'session', 'sessionError', 'timeout', 'checkContinue'])

interface H1State {
  /** Responses not yet closed on this connection (pipelining: several). */
  responses: Set<http.ServerResponse>
}

/**
 * An HTTPS server over rustls that speaks HTTP/1.1 and HTTP/2 on one port,
 * and behaves like an `https.Server`: listen, close, address, 'request',
 * 'upgrade', 'connect', 'checkContinue', 'clientError', 'timeout' events,
 * setTimeout and the HTTP/1.1 timeouts; like `http2.createSecureServer`
 * it emits 'stream', 'session', 'sessionError' and 'unknownProtocol'.
 * The rustls Server's events ('secureConnection', 'tlsClientError') and
 * methods (reload, setHosts, hosts) stay available.
 *
 * Express (4 and 5) cannot run on node's http2 compatibility objects, here
 * as with http2.createSecureServer: give an Express app
 * `ALPNProtocols: ['http/1.1']`.
 */
export class HttpsServer extends Server {
  /** The HTTP/1.1 server connections with ALPN http/1.1 (or none) go to. */
  readonly http1: http.Server
  /** The HTTP/2 server connections with ALPN h2 go to. */
  readonly http2: http2.Http2Server
  #hostCheck: boolean
  #closing = false
  readonly #h1 = new Map<RustlsSocket, H1State>()
  readonly #sessions = new Map<http2.ServerHttp2Session, RustlsSocket>()
  // The hosts of the configuration that accepted each connection, which a
  // reload may since have replaced.
  readonly #connectionHost = new WeakMap<RustlsSocket, { hosts: readonly HostContext[], index: number }>()
  /** The RustlsSocket being handed to the http2 server (its 'session' event is synchronous). */
  #handingOver: RustlsSocket | null = null
  readonly #forwarders = new Map<string, Array<{ from: EventEmitter, listener: Listener }>>()

  constructor (options: HttpsServerOptions, requestListener?: HttpsRequestListener) {
    // noDelay defaults to true as for node:http; the net.Server applies it
    // (and keepAlive) to each accepted connection.
    super({ ...withDefaultAlpn(options), noDelay: options.noDelay ?? true })
    this.#hostCheck = options.hostCheck !== false
    this.http1 = http.createServer(options)
    // http.Server starts its connection tracking (headersTimeout and
    // requestTimeout enforcement, closeIdleConnections) on its own
    // 'listening'; the inner server never listens, so it is started here.
    this.http1.emit('listening')
    this.http2 = http2.createServer({ ...options.http2 })

    this.http1.on('request', this.#trackH1)
    this.http2.on('session', this.#onSession)
    this.on('secureConnection', this.#dispatch)
    this.on('newListener', this.#onNewListener)
    this.on('removeListener', this.#onRemoveListener)
    this.once('close', () => {
      // Clears http.Server's connection-checking interval; by now every
      // connection is gone.
      this.http1.close()
      this.http2.close()
    })
    if (requestListener !== undefined) this.on('request', requestListener as Listener)
  }

  /** As Server#reload, keeping the h2/http/1.1 ALPN default. */
  override reload (options?: ServerOptions): void {
    super.reload(options === undefined ? undefined : withDefaultAlpn(options))
  }

  // ---- https.Server surface -------------------------------------------

  /**
   * Stops accepting connections; idle HTTP/1.1 keep-alive connections are
   * ended (close_notify), busy ones after their current response (sent
   * with `Connection: close`), HTTP/2 sessions get GOAWAY and end once
   * their streams are done. `callback` runs on 'close', when every
   * connection is gone (with ERR_SERVER_NOT_RUNNING if not listening).
   */
  override close (callback?: (err?: Error) => void): this {
    super.close(callback)
    this.#closing = true
    for (const [socket, state] of this.#h1) {
      if (state.responses.size === 0) this.#endGracefully(socket)
      // Headers not sent yet: they say Connection: close, and node's http
      // ends the connection after the response. Otherwise the 'close'
      // hook of #trackH1 ends it.
      for (const res of state.responses) if (!res.headersSent) res.shouldKeepAlive = false
    }
    for (const session of this.#sessions.keys()) this.#closeSession(session)
    return this
  }

  /** Ends HTTP/1.1 connections that have no request in flight. */
  closeIdleConnections (): void {
    for (const [socket, state] of this.#h1) {
      if (state.responses.size === 0) this.#endGracefully(socket)
    }
  }

  /** Destroys every HTTP/1.1 and HTTP/2 connection at once. */
  closeAllConnections (): void {
    for (const socket of this.#h1.keys()) socket.destroy()
    for (const session of this.#sessions.keys()) session.destroy()
  }

  /** As https.Server#setTimeout: idle socket timeout in ms (0: none), for both protocols. */
  setTimeout (msecs: number, callback?: (connection: RustlsSocket | http2.ServerHttp2Session) => void): this {
    this.http1.setTimeout(msecs)
    this.http2.setTimeout(msecs)
    if (callback !== undefined) this.on('timeout', callback)
    return this
  }

  /** Idle socket timeout in ms (0, the default: none). */
  get timeout (): number { return this.http1.timeout }
  set timeout (msecs: number) {
    this.http1.setTimeout(msecs)
    this.http2.setTimeout(msecs)
  }

  /** HTTP/1.1: ms to receive a request's headers (default 60000). */
  get headersTimeout (): number { return this.http1.headersTimeout }
  set headersTimeout (msecs: number) { this.http1.headersTimeout = msecs }

  /** HTTP/1.1: ms to receive a whole request (default 300000). */
  get requestTimeout (): number { return this.http1.requestTimeout }
  set requestTimeout (msecs: number) { this.http1.requestTimeout = msecs }

  /** HTTP/1.1: ms an idle keep-alive connection stays open (default 5000). */
  get keepAliveTimeout (): number { return this.http1.keepAliveTimeout }
  set keepAliveTimeout (msecs: number) { this.http1.keepAliveTimeout = msecs }

  /** HTTP/1.1: most headers accepted per request (default 2000). */
  get maxHeadersCount (): number | null { return this.http1.maxHeadersCount }
  set maxHeadersCount (count: number | null) { this.http1.maxHeadersCount = count }

  /** HTTP/1.1: most requests per keep-alive connection (0, the default: no limit). */
  get maxRequestsPerSocket (): number | null { return this.http1.maxRequestsPerSocket }
  set maxRequestsPerSocket (count: number | null) { this.http1.maxRequestsPerSocket = count }

  // ---- dispatch ---------------------------------------------------------

  #dispatch = (socket: RustlsSocket): void => {
    this.#connectionHost.set(socket, { hosts: this.hosts, index: socket.hostIndex })
    const alpn = socket.alpnProtocol
    if (alpn === 'h2') {
      // After this turn: plaintext that came with the handshake is pushed
      // after 'secureConnection', and goes ahead of the relay.
      process.nextTick(this.#handOverH2, socket)
      return
    }
    // No ALPN from the client means HTTP/1.1 (RFC 7301 §3.1 leaves the
    // protocol to out-of-band agreement; https has always been HTTP/1.x).
    // node:http gets the RustlsSocket: measured, a relay (as for HTTP/2)
    // cost more per connection than node:http's 'data' path saves on
    // keep-alive requests, and a fifth more CPU with one request each.
    if (alpn === false || alpn === 'http/1.1') {
      const state: H1State = { responses: new Set() }
      this.#h1.set(socket, state)
      socket.once('close', () => this.#h1.delete(socket))
      this.http1.emit('connection', socket)
      // A connection whose handshake finished after close() may still carry
      // one request; it gets Connection: close, or is ended when idle.
      if (this.#closing) setTimeout(() => { if (state.responses.size === 0) this.#endGracefully(socket) }, PEER_CLOSE_GRACE_MS).unref()
      return
    }
    // A protocol from a custom ALPNProtocols list: the user's to handle
    // (as http2.createSecureServer's 'unknownProtocol').
    if (!this.emit('unknownProtocol', socket)) this.#endGracefully(socket)
  }

  /**
   * An HTTP/2 connection goes to node:http2 as its plaintext side on a
   * native handle, relayed natively, where it can be (the fd pump):
   * node:http2 reads it as a TCP socket instead of wrapping the
   * RustlsSocket in its JS stream socket. Else the RustlsSocket.
   */
  #handOverH2 = (socket: RustlsSocket): void => {
    if (socket.destroyed) return
    const conn: RustlsSocket | PlainSide = pairPlain(socket) ?? socket
    // Once our close_notify and FIN left (the session ended), a peer that
    // ignores them is dropped after the grace (the relay does it natively).
    if (conn === socket) socket.once('finish', () => socket[kCloseGrace]())
    this.#handingOver = socket
    try {
      this.http2.emit('connection', conn)
    } finally {
      this.#handingOver = null
    }
  }

  #onSession = (session: http2.ServerHttp2Session): void => {
    const socket = this.#handingOver
    if (socket === null) return
    this.#sessions.set(session, socket)
    // The http2 server wraps any socket that is not a net.Socket in an
    // internal JSStreamSocket, so session.socket and the compat
    // req.socket proxy that wrapper, which knows nothing of TLS (no
    // `encrypted`, no addresses). The proxy's `once` is bound to the
    // wrapper and returns it (EventEmitter chaining), which gives us the
    // object to give the RustlsSocket's TLS surface.
    const wrapper = session.socket.once('close', () => {
      this.#sessions.delete(session)
      socket[kCloseGrace]()
    }) as unknown as Record<string, unknown>
    // A PlainSide shows the TLS surface itself.
    if (wrapper instanceof PlainSide) {
      if (this.#closing) this.#closeSession(session)
      return
    }
    exposeTlsSurface(wrapper, socket)
    // The session read `encrypted`/`alpnProtocol` from the wrapper before we
    // could set them (SPEC §3: req.socket.encrypted must say https).
    Object.defineProperty(session, 'encrypted', { value: true, configurable: true })
    Object.defineProperty(session, 'alpnProtocol', { value: socket.alpnProtocol, configurable: true })
    if (this.#closing) this.#closeSession(session)
  }

  #closeSession (session: http2.ServerHttp2Session): void {
    if (!session.closed && !session.destroyed) session.close()
  }

  // Per request: one listener shared by every response (no closure, no
  // once() wrapper); the response finds its connection through its request.
  #trackH1 = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const state = this.#h1.get(req.socket as unknown as RustlsSocket)
    if (state === undefined) return
    state.responses.add(res)
    if (this.#closing) res.shouldKeepAlive = false
    res.on('close', this.#h1ResponseClosed)
  }

  // A response's 'close': it leaves its connection's set; a closing server
  // ends the connection once its last response is done.
  readonly #h1ResponseClosed = ((server: HttpsServer) => function (this: http.ServerResponse): void {
    server.#untrackH1(this)
  })(this)

  #untrackH1 (res: http.ServerResponse): void {
    const socket = res.req.socket as unknown as RustlsSocket
    const state = this.#h1.get(socket)
    if (state === undefined) return
    state.responses.delete(res)
    if (this.#closing && state.responses.size === 0) this.#endGracefully(socket)
  }

  #endGracefully (socket: RustlsSocket): void {
    if (socket.destroyed) return
    if (!socket.writableEnded) socket.end()
    socket[kCloseGrace]()
  }

  // ---- event forwarding -------------------------------------------------

  // Inner servers change behaviour with their listener counts ('upgrade',
  // 'checkContinue', 'clientError', 'timeout', and http2's compat layer
  // with 'request'), so a forwarder exists only while the outer server
  // has listeners for that event, as if the user listened on it directly.
  #onNewListener = (event: string | symbol): void => {
    if (typeof event !== 'string' || this.#forwarders.has(event)) return
    const installed: Array<{ from: EventEmitter, listener: Listener }> = []
    if (event === 'request') {
      installed.push({ from: this.http1, listener: (req: http.IncomingMessage, res: http.ServerResponse) => this.#onRequest(req, res, req.socket as unknown as RustlsSocket) })
      installed.push({ from: this.http2, listener: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => this.#onRequest(req, res, this.#sessions.get(req.stream.session as http2.ServerHttp2Session)) })
    } else if (event === 'upgrade' || event === 'connect') {
      installed.push({ from: this.http1, listener: (req: http.IncomingMessage, socket: RustlsSocket, head: Buffer) => this.#onUpgrade(event, req, socket, head) })
    } else if (event === 'stream') {
      installed.push({ from: this.http2, listener: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => this.#onStream(stream, headers, rest) })
    } else {
      if (FORWARDED_H1.has(event)) installed.push({ from: this.http1, listener: (...args: unknown[]) => this.emit(event, ...args) })
      if (FORWARDED_H2.has(event)) installed.push({ from: this.http2, listener: (...args: unknown[]) => this.emit(event, ...args) })
    }
    if (installed.length === 0) return
    for (const { from, listener } of installed) from.on(event, listener)
    this.#forwarders.set(event, installed)
  }

  #onRemoveListener = (event: string | symbol): void => {
    if (typeof event !== 'string' || this.listenerCount(event) > 0) return
    const installed = this.#forwarders.get(event)
    if (installed === undefined) return
    this.#forwarders.delete(event)
    for (const { from, listener } of installed) from.removeListener(event, listener)
  }

  #onRequest (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse, socket: RustlsSocket | undefined): void {
    const status = this.#misdirected(socket, req)
    if (status !== 0) {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(status === 421 ? 'Misdirected Request\n' : 'Forbidden: this port needs SNI\n')
      return
    }
    this.emit('request', req, res)
  }

  #onUpgrade (event: 'upgrade' | 'connect', req: http.IncomingMessage, socket: RustlsSocket, head: Buffer): void {
    const status = this.#misdirected(socket, req)
    if (status !== 0) {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
      return
    }
    this.emit(event, req, socket, head)
  }

  #onStream (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rest: unknown[]): void {
    const status = this.#misdirected(this.#sessions.get(stream.session as http2.ServerHttp2Session), { headers })
    if (status !== 0) {
      // The compat layer may have answered already (a 'request' listener too).
      if (!stream.headersSent && !stream.destroyed) {
        stream.respond({ ':status': status })
        stream.end()
      }
      return
    }
    this.emit('stream', stream, headers, ...rest)
  }

  /**
   * SPEC §4.2 (HTTP mode): 0 when the request may be served on this
   * connection, else 403 (no SNI, several hosts) or 421 (Host names a host
   * this connection's certificate and settings do not serve).
   */
  #misdirected (socket: RustlsSocket | undefined, request: { headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders }): 0 | 403 | 421 {
    if (!this.#hostCheck || socket === undefined) return 0
    const accepted = this.#connectionHost.get(socket)
    if (accepted === undefined) return 0
    const sni = typeof socket.servername === 'string' && socket.servername !== ''
    return checkAuthority(accepted.hosts, accepted.index, sni, request).status
  }

}

function withDefaultAlpn<T extends ServerOptions> (options: T): T {
  return options.ALPNProtocols === undefined ? { ...options, ALPNProtocols: DEFAULT_HTTPS_ALPN } : options
}

function exposeTlsSurface (target: Record<string, unknown>, socket: RustlsSocket): void {
  Object.defineProperty(target, 'encrypted', { value: true, configurable: true })
  for (const name of TLS_GETTERS) {
    Object.defineProperty(target, name, { get: () => socket[name], configurable: true })
  }
  for (const name of TLS_METHODS) {
    const method = socket[name] as (...args: unknown[]) => unknown
    Object.defineProperty(target, name, { value: (...args: unknown[]) => method.apply(socket, args), configurable: true })
  }
}

/**
 * An HTTPS server over rustls: HTTP/2 and HTTP/1.1 on one port (chosen by
 * ALPN), with the listener shape of `https.createServer`.
 */
export function createHttpsServer (options: HttpsServerOptions, requestListener?: HttpsRequestListener): HttpsServer {
  return new HttpsServer(options, requestListener)
}
