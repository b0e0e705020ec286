// RustlsSocket: a Duplex shaped like tls.TLSSocket, over one pump chosen
// when it is made (pump.ts): the fd pump (native code owns the descriptor)
// or the stream pump (any Duplex transport). The socket keeps the TLS
// state machine and the node:tls surface; the pump moves the bytes.
//
// Results of a native call are read into locals before anything can call
// back into JS, and the socket's state is re-checked after each such call:
// user code may destroy or write from inside a 'data' or 'secure' handler.
import { X509Certificate } from 'node:crypto'
import type net from 'node:net'
import { Duplex } from 'node:stream'

import { certificateObject, type PeerCertificate } from '../cert-info'
import { derToPem } from '../certs'
import { cipherInfoForId } from '../ciphers'
import { HandshakeTimeoutError, RustlsError, UnsupportedOptionError } from '../errors'
import type { HostContext } from '../hosts'
import { type Logger, silentLogger } from '../log'
import { Flag, HOST_CHALLENGE, LocalResult, type ConnectionInfo, type NativeConnection, type NativeHandle, readInfo } from '../native'
import { versionName, type TlsVersionName } from '../protocol'
import { libraryVersion, packageVersion } from '../versions'
import { wrapInit, type WrapOptions } from '../wrap'
import { FdPump, type FdPumpSpec } from './fd-pump'
import { kAfterCall, kCloseGrace, kFailed, kIsServer, kPeerClosed, kReaderFull, kTransportError, LATIN1_BITS, PEER_CLOSE_GRACE_MS, type Pump, type WriteState } from './pump'
import { StreamPump } from './stream-pump'

const kFinished = Symbol('finished')
const kHandshakeTimeout = Symbol('handshakeTimeout')
/** RustlsSocket[kPairPlain](): see the method. */
export const kPairPlain = Symbol('pairPlain')

export type { WrapOptions }

/**
 * What a server does for its sockets: one object per server (and per
 * configuration generation), shared by every connection, so that a socket
 * costs no closures of its own.
 */
export interface SocketHooks {
  /** The host the native router chose (an index into the generation's hosts). */
  hostFor?: (socket: RustlsSocket, index: number) => HostContext | undefined
  /** Once per socket, at the first of: routed, failed, destroyed (the generation's accounting). */
  settled?: (socket: RustlsSocket) => void
  /** A handshake that failed before it completed (tlsClientError). */
  clientError?: (socket: RustlsSocket, err: Error) => void
  /** An ACME tls-alpn-01 validation handshake completed (the socket then closes). */
  challenge?: (socket: RustlsSocket) => void
  /** Deferred routing (SNICallback): pick a config for the hello, then acceptWith(). */
  clientHello?: (socket: RustlsSocket) => void
  /** The hello asks for a session the server lacks: answer with resumeSessionWith(). */
  sessionLookup?: (socket: RustlsSocket) => void
}

/** How a RustlsSocket is made inside the library. */
export interface SocketInit {
  /** The pump: over a Duplex transport, or native on a descriptor. */
  pump: { kind: 'stream', transport: Duplex } | FdPumpSpec
  connection: NativeConnection
  isServer: boolean
  /** Server side: the accepting server, exposed as socket.server. */
  server?: net.Server
  /** Server: the hooks its server shares between its sockets. */
  hooks?: SocketHooks
  /** Client: the name sent in SNI and verified. */
  servername?: string
  /** Client: own certificate leaf (DER) for getX509Certificate(). */
  ownLeaf?: Buffer
  verificationDisabled?: boolean
  handshakeTimeout?: number
  allowHalfOpen?: boolean
  /** Readable/Writable highWaterMark of the plaintext side (bytes). */
  highWaterMark?: number
  /** Called once the socket closed: releases what was made for it alone. */
  release?: () => void
  logger?: Logger
}

function isSocketInit (value: unknown): value is SocketInit {
  return typeof value === 'object' && value !== null && 'connection' in value && 'pump' in value
}

export class RustlsSocket extends Duplex {
  readonly encrypted = true
  /** Negotiated ALPN protocol, or false (as node:tls). */
  alpnProtocol: string | false = false
  /** Server: the SNI the client sent; client: the name sent. */
  servername: string | false = false
  /** Peer verified (client: server chain; server: a client certificate). */
  authorized = false
  authorizationError: string | null = null
  /** Server side: the server that accepted this connection (as net.Socket#server). */
  server: net.Server | undefined
  readonly #isServer: boolean

  #conn: NativeConnection | null
  readonly #pump: Pump
  #info: ConnectionInfo | undefined
  #group: string | undefined
  #host: HostContext | undefined
  readonly #init: SocketInit
  #secure = false
  #peerClosed = false
  #failed = false
  #waitingConfig = false
  #waitingSession = false
  #settled = false
  // The last push() of plaintext was refused (the reader is full).
  #readerFull = false
  // Writes before the handshake completed (made on first use).
  #queued: Array<{ chunk: Buffer | string, encoding: string, callback: (err?: Error | null) => void }> | null = null
  // The socket's one timer: the handshake's deadline until the handshake
  // ended (secure or failed), then the grace a closing peer gets (kCloseGrace).
  #timer: NodeJS.Timeout | null = null
  #peerError: Error | null = null
  readonly #logger: Logger

  /**
   * `new RustlsSocket(socket, options)` wraps an existing connected Duplex
   * (e.g. after STARTTLS), as `new tls.TLSSocket(socket, options)`:
   * `isServer: true` with server TLS options (cert, key, ...), otherwise a
   * client with connect()'s TLS options. The internal form takes a prepared
   * native connection and its pump.
   */
  constructor (socket: Duplex, options?: WrapOptions)
  constructor (init: SocketInit)
  constructor (first: SocketInit | Duplex, options?: WrapOptions) {
    const init: SocketInit = isSocketInit(first) ? first : wrapInit(first, options ?? {})
    // Strings reach the pump as they are (as net.Socket's): the fd pump
    // copies latin1 and utf8 straight into the record it encrypts.
    super({ allowHalfOpen: init.allowHalfOpen ?? false, emitClose: true, decodeStrings: false, highWaterMark: init.highWaterMark })
    this.#init = init
    this.#conn = init.connection
    this.#isServer = init.isServer
    this.server = init.server
    this.#logger = init.logger ?? silentLogger
    if (!init.isServer && init.servername !== undefined) this.servername = init.servername
    this.#pump = init.pump.kind === 'stream'
      ? new StreamPump({ conn: init.connection, owner: this }, init.pump.transport)
      : new FdPump({ conn: init.connection, owner: this }, init.pump)
    if (init.handshakeTimeout !== undefined && init.handshakeTimeout > 0) {
      this.#timer = setTimeout(onHandshakeTimeout, init.handshakeTimeout, this)
      this.#timer.unref()
    }
    if (this.#pump.finished !== undefined) this.on('finish', onFinish)
    this.#pump.start()
  }

  // ---- what the pump reads of this socket and tells it (pump.ts) ---------

  get [kIsServer] (): boolean { return this.#isServer }
  get [kFailed] (): boolean { return this.#failed }
  get [kPeerClosed] (): boolean { return this.#peerClosed }
  get [kReaderFull] (): boolean { return this.#readerFull }
  [kAfterCall] (flags: number, error: number, host: number, data: Buffer | null): boolean {
    return this.#afterCall(flags, error, host, data)
  }

  [kTransportError] (err: Error): void { this.#onTransportError(err) }
  [kFinished] (): void { this.#pump.finished?.() }
  [kHandshakeTimeout] (): void { this.#onHandshakeTimeout() }

  [kCloseGrace] (): void {
    // Called once the handshake ended, whose deadline is cleared by then: a
    // timer here is the grace already running.
    if (this.destroyed || this.#timer !== null) return
    this.#timer = setTimeout(onCloseGrace, PEER_CLOSE_GRACE_MS, this)
    this.#timer.unref()
  }

  /**
   * Relays this connection's plaintext to a socketpair, in native code from
   * now on, and returns the other end's descriptor (for a net.Socket that
   * node:http or node:http2 reads as a native handle); null when this
   * socket cannot (the stream pump, a reader attached, destroyed). The
   * plaintext read so far goes ahead. Nothing is read from or written to
   * this socket afterwards; it closes once the relay is over.
   */
  [kPairPlain] (): number | null {
    if (!(this.#pump instanceof FdPump) || this.destroyed || this.#failed || this.readableFlowing === true ||
        this.listenerCount('data') > 0 || this.listenerCount('readable') > 0 || this.writableLength > 0) {
      return null
    }
    const chunks: Buffer[] = []
    for (let chunk = this.read() as Buffer | null; chunk !== null; chunk = this.read() as Buffer | null) chunks.push(chunk)
    return this.#pump.pair(chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
  }

  // ---- node:tls surface ----------------------------------------------

  /** 'TLSv1.2' | 'TLSv1.3' once negotiated, else null. */
  getProtocol (): TlsVersionName | null {
    return this.#info?.version !== undefined ? versionName(this.#info.version) ?? null : null
  }

  /** The negotiated suite: OpenSSL name, IANA (standard) name, TLS version. */
  getCipher (): { name: string, standardName: string, version: string } | undefined {
    const id = this.#info?.cipherSuite
    if (id === undefined || id === 0) return undefined
    const suite = cipherInfoForId(id)
    return { name: suite.opensslName, standardName: suite.ianaName, version: this.getProtocol() ?? '' }
  }

  isSessionReused (): boolean {
    return this.#info?.resumed === true
  }

  /** Key exchange group, e.g. X25519 or X25519MLKEM768. */
  getEphemeralKeyInfo (): { type: 'ECDH', name: string } | null {
    this.#group ??= this.#conn?.groupName()
    return this.#group === undefined ? null : { type: 'ECDH', name: this.#group }
  }

  /**
   * The peer's certificate in node:tls' legacy object form; `detailed`
   * links issuerCertificate through the chain the peer sent. Empty object
   * when the peer sent none, as node:tls.
   */
  getPeerCertificate (detailed = false): PeerCertificate | Record<string, never> {
    const chain = this.#peerChain()
    if (chain.length === 0) return {}
    return certificateObject(chain, detailed)
  }

  getPeerX509Certificate (): X509Certificate | undefined {
    const der = this.#conn?.peerCertificate(0)
    return der === undefined ? undefined : new X509Certificate(der)
  }

  /** Our own leaf: the certificate the server chose, or the client's. */
  getX509Certificate (): X509Certificate | undefined {
    const der = this.#ownLeaf()
    return der === undefined ? undefined : new X509Certificate(der)
  }

  getCertificate (): PeerCertificate | Record<string, never> {
    const der = this.#ownLeaf()
    return der === undefined ? {} : certificateObject([der], false)
  }

  /**
   * The mod_tls variables of this connection (SPEC §4.5): always HTTPS,
   * SSL_TLS_SNI (if sent), SSL_PROTOCOL, SSL_CIPHER; more with the host's
   * StdEnvVars / ExportCertData options. SSL_SESSION_ID is never exported.
   */
  getEnvVars (): Record<string, string> {
    const vars: Record<string, string> = { HTTPS: 'on' }
    const sni = this.servername
    if (typeof sni === 'string' && sni !== '') vars.SSL_TLS_SNI = sni
    const protocol = this.getProtocol()
    if (protocol !== null) vars.SSL_PROTOCOL = protocol
    const cipher = this.getCipher()
    if (cipher !== undefined) vars.SSL_CIPHER = cipher.standardName
    const env = this.#host?.env
    if (env?.stdEnvVars === true) {
      vars.SSL_VERSION_INTERFACE = `rustls-node/${packageVersion()}`
      vars.SSL_VERSION_LIBRARY = libraryVersion()
      vars.SSL_SECURE_RENEG = 'false'
      vars.SSL_COMPRESS_METHOD = 'NULL'
      vars.SSL_CIPHER_EXPORT = 'false'
      vars.SSL_CLIENT_VERIFY = this.#clientVerify()
      vars.SSL_SESSION_RESUMED = this.isSessionReused() ? 'Resumed' : 'Initial'
    }
    if (env?.exportCertData === true) {
      const own = this.#ownLeaf()
      if (own !== undefined) vars.SSL_SERVER_CERT = derToPem(own)
      const peer = this.#conn?.peerCertificate(0)
      if (peer !== undefined) vars.SSL_CLIENT_CERT = derToPem(peer)
    }
    return vars
  }

  /** rustls never renegotiates (TLS 1.3 has no renegotiation at all): nothing to disable. */
  disableRenegotiation (): void {}

  renegotiate (): never {
    throw new UnsupportedOptionError('renegotiate', 'rustls does not renegotiate; TLS 1.3 replaced renegotiation')
  }

  exportKeyingMaterial (): never {
    throw new UnsupportedOptionError('exportKeyingMaterial', 'rustls-ffi does not expose keying material export')
  }

  getFinished (): never {
    throw new UnsupportedOptionError('getFinished', 'rustls does not expose Finished messages')
  }

  getPeerFinished (): never {
    throw new UnsupportedOptionError('getPeerFinished', 'rustls does not expose Finished messages')
  }

  getSession (): never {
    throw new UnsupportedOptionError('getSession', 'sessions stay inside rustls; reuse a ClientContext to resume')
  }

  getTLSTicket (): never {
    throw new UnsupportedOptionError('getTLSTicket', 'tickets stay inside rustls; reuse a ClientContext to resume')
  }

  getSharedSigalgs (): never {
    throw new UnsupportedOptionError('getSharedSigalgs', 'rustls-ffi does not expose the shared signature algorithms')
  }

  setMaxSendFragment (): never {
    throw new UnsupportedOptionError('setMaxSendFragment', 'rustls fixes the fragment size per configuration')
  }

  setServername (): never {
    throw new UnsupportedOptionError('setServername', 'give servername to connect()')
  }

  enableTrace (): never {
    throw new UnsupportedOptionError('enableTrace', 'OpenSSL tracing does not apply to rustls')
  }

  /** The virtual host that took this connection (server side). */
  get hostIndex (): number {
    return this.#host?.index ?? -1
  }

  /** The ClientHello (deferred routing only, before accept()). */
  clientHello (): ReturnType<NativeConnection['clientHello']> {
    return this.#conn?.clientHello()
  }

  /**
   * Deferred routing: continue the handshake with the host's config, or
   * refuse with `null` (unrecognized_name alert, nothing else sent).
   */
  acceptWith (config: NativeHandle | null, host?: HostContext): void {
    if (this.#conn === null || !this.#waitingConfig) return
    this.#waitingConfig = false
    this.#host = host
    this.#pump.accept(config, host?.index ?? -1)
  }

  /** Server, while a session lookup waits: the session id (or PSK identity) the hello names. */
  sessionKey (): Buffer | undefined {
    return this.#waitingSession ? this.#conn?.sessionKey() : undefined
  }

  /**
   * The answer to a session lookup (null: none, a full handshake): the
   * handshake goes on. rustls refuses data it cannot decode (a full
   * handshake too).
   */
  resumeSessionWith (data: Buffer | null): void {
    if (this.#conn === null || !this.#waitingSession || this.destroyed) return
    this.#waitingSession = false
    this.#pump.resumeSession(data)
  }

  get remoteAddress (): string | undefined { return this.#pump.remoteAddress }
  get remotePort (): number | undefined { return this.#pump.remotePort }
  get remoteFamily (): string | undefined { return this.#pump.remoteFamily }
  get localAddress (): string | undefined { return this.#pump.localAddress }
  get localPort (): number | undefined { return this.#pump.localPort }
  get bytesRead (): number { return this.#pump.bytesRead }
  get bytesWritten (): number { return this.#pump.bytesWritten }
  get connecting (): boolean { return this.#pump.connecting }
  get pending (): boolean { return !this.#secure }
  get readyState (): string { return this.#pump.readyState }
  /** The transport under the TLS layer (a stream pump's Duplex; none for the fd pump). */
  get transport (): Duplex | undefined { return this.#pump.transport }

  address (): ReturnType<net.Socket['address']> | Record<string, never> {
    return this.#pump.address()
  }

  setTimeout (ms: number, callback?: () => void): this {
    this.#pump.setTimeout(ms)
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    return this
  }

  setNoDelay (noDelay = true): this {
    this.#pump.setNoDelay(noDelay)
    return this
  }

  setKeepAlive (enable = false, initialDelay = 0): this {
    this.#pump.setKeepAlive(enable, initialDelay)
    return this
  }

  ref (): this {
    this.#pump.ref()
    return this
  }

  unref (): this {
    this.#pump.unref()
    return this
  }

  /** Ends gracefully (close_notify, FIN), then destroys once flushed. */
  destroySoon (): void {
    if (this.writable) this.end()
    if (this.writableFinished) this.destroy()
    else this.once('finish', () => this.destroy())
  }

  /** The network-caused error that ended this connection, if any. */
  get peerError (): Error | null {
    return this.#peerError
  }

  // ---- the TLS state machine ---------------------------------------------

  /**
   * Acts on one native call's results, in protocol order: routing,
   * handshake completion, plaintext, errors, close_notify. Returns false
   * when the reader wants no more data now.
   */
  #afterCall (flags: number, error: number, host: number, data: Buffer | null): boolean {
    if ((flags & (Flag.Hello | Flag.NeedConfig)) !== 0 && this.#conn !== null) {
      this.servername = this.#conn.serverName() ?? false
      if ((flags & Flag.Hello) !== 0 && this.#host === undefined) this.#host = this.#hostFor(host)
    }
    if ((flags & Flag.NeedConfig) !== 0 && !this.#waitingConfig) this.#waitingConfig = true
    const hooks = this.#init.hooks
    if ((flags & Flag.NeedConfig) !== 0 && hooks?.clientHello !== undefined) {
      hooks.clientHello(this)
      return false
    }
    if ((flags & Flag.NeedSession) !== 0) {
      this.#waitingSession = true
      if (hooks?.sessionLookup !== undefined) hooks.sessionLookup(this)
      else this.resumeSessionWith(null)
      return false
    }
    if ((flags & Flag.HandshakeDone) !== 0 && (flags & Flag.Error) === 0) {
      this.#onSecure()
      if (this.destroyed) return false
    }
    let proceed = true
    this.#readerFull = false
    if (data !== null && !this.destroyed) {
      proceed = this.push(data)
      this.#readerFull = !proceed
    }
    if ((flags & Flag.Error) !== 0) {
      this.#onTlsError(error)
      return false
    }
    if ((flags & Flag.WantsWrite) !== 0) this.#pump.flushQueued()
    if ((flags & Flag.PeerClosed) !== 0 && !this.#peerClosed) {
      this.#peerClosed = true
      this.push(null)
      return false
    }
    return proceed
  }

  #onSecure (): void {
    if (this.#secure || this.#conn === null) return
    this.#secure = true
    this.#clearTimer()
    this.#info = readInfo(this.#conn)
    const alpn = this.#conn.alpnProtocol()
    if (alpn !== undefined) this.alpnProtocol = alpn
    if (this.#isServer && this.#info.host === HOST_CHALLENGE) {
      // RFC 8737 §3: a validation connection carries no data. Native code
      // queued close_notify with the last flight; nothing more is read and
      // the connection never becomes 'secure'.
      this.#settle()
      this.#failed = true
      this.servername = this.#conn.serverName() ?? false
      this.#init.hooks?.challenge?.(this)
      this.#pump.endSoon()
      return
    }
    if (this.#isServer) {
      this.#host ??= this.#hostFor(this.#info.host)
      const hasPeer = (this.#info.peerCertificates ?? 0) > 0
      this.authorized = hasPeer
      this.authorizationError = hasPeer || this.#host?.clientAuth === 'none' || this.#host === undefined
        ? null
        : 'NO_CLIENT_CERTIFICATE'
      if (this.#host?.clientAuth === 'none') this.authorizationError = null
    } else if (this.#init.verificationDisabled === true) {
      this.authorized = false
      this.authorizationError = 'VERIFICATION_DISABLED'
    } else {
      // rustls verified the chain and the name during the handshake.
      this.authorized = true
    }
    this.#flushQueued()
    if (this.destroyed) return
    this.emit(this.#isServer ? 'secure' : 'secureConnect')
  }

  #onTlsError (result: number): void {
    if (this.#failed) return
    this.#failed = true
    if (this.#isServer && this.servername === false && this.#conn !== null) {
      // A refused or failed ClientHello still names what the client asked for.
      this.servername = this.#conn.serverName() ?? false
    }
    this.#clearTimer()
    const err = new RustlsError(result)
    const duringHandshake = !this.#secure
    this.#logger.debug({ code: err.code, handshake: duringHandshake }, 'TLS connection failed')
    // The alert (if any) was queued or sent already; the transport ends after it.
    this.#pump.endSoon()
    const hooks = this.#init.hooks
    if (duringHandshake && this.#isServer && hooks?.clientError !== undefined) {
      this.#settle()
      hooks.clientError(this, err)
      this.destroy()
    } else if (result === LocalResult.UnrecognizedName && this.#isServer) {
      this.destroy()
    } else {
      this.#destroyForPeer(err)
    }
  }

  /**
   * Ends the connection for a failure the peer or the network caused. The
   * error is emitted when someone listens for it; otherwise the socket just
   * closes: a client's reset or truncated stream must never take the
   * process down (SPEC §6), whether or not the application added a handler.
   */
  #destroyForPeer (err: Error): void {
    this.#peerError = err
    if (this.listenerCount('error') > 0) this.destroy(err)
    else this.destroy()
  }

  #onHandshakeTimeout (): void {
    this.#timer = null
    if (this.#secure || this.destroyed) return
    this.#failed = true
    const err = new HandshakeTimeoutError()
    // Nothing is sent to a client that did not finish its hello in time.
    this.#pump.abort()
    const hooks = this.#init.hooks
    if (this.server && hooks?.clientError !== undefined) {
      this.#settle()
      hooks.clientError(this, err)
      this.destroy()
    } else {
      this.#destroyForPeer(err)
    }
  }

  #clearTimer (): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
  }

  #onTransportError (err: Error): void {
    if (this.destroyed) return
    // We already ended our side (end() was called, close_notify queued):
    // a peer that left meanwhile (EPIPE, ECONNRESET) lost nothing we owed it.
    if (this.#secure && this.writableEnded) {
      this.destroy()
      return
    }
    const hooks = this.#init.hooks
    if (!this.#secure && this.#isServer && hooks?.clientError !== undefined) {
      this.#failed = true
      this.#settle()
      hooks.clientError(this, err)
      this.destroy()
      return
    }
    this.#destroyForPeer(err)
  }

  override _read (): void {
    if (this.#waitingConfig || this.#waitingSession) return
    this.#pump.resume()
  }

  // ---- outbound ---------------------------------------------------------

  override _write (chunk: Buffer | string, encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (!this.#secure) {
      (this.#queued ??= []).push({ chunk, encoding, callback })
      return
    }
    this.#complete(this.#writeBatch([{ chunk, encoding }], false), callback)
  }

  override _writev (chunks: Array<{ chunk: Buffer | string, encoding: string }>, callback: (err?: Error | null) => void): void {
    if (!this.#secure) {
      const queued = (this.#queued ??= [])
      for (let i = 0; i < chunks.length; i++) {
        const { chunk, encoding } = chunks[i]
        queued.push({ chunk, encoding, callback: i === chunks.length - 1 ? callback : noop })
      }
      return
    }
    // The stream already gathered this batch (a cork, an HTTP response): it
    // leaves now, without waiting for the turn's end.
    this.#complete(this.#writeBatch(chunks, true), callback)
  }

  /**
   * Hands chunks to the pump: Buffers, and strings in latin1 (marked in the
   * mask) or utf8; a string in another encoding, or a latin1 one past the
   * mask's bits, goes as a Buffer.
   */
  #writeBatch (chunks: ReadonlyArray<{ chunk: Buffer | string, encoding: string }>, now: boolean): WriteState {
    const list = new Array<Buffer | string>(chunks.length)
    let latin1 = 0
    for (let i = 0; i < chunks.length; i++) {
      const { chunk, encoding } = chunks[i]
      if (typeof chunk !== 'string') list[i] = chunk
      else {
        const e = pumpEncoding(encoding)
        if (e === 'latin1' && i < LATIN1_BITS) latin1 |= 1 << i
        list[i] = e === 'utf8' || (e === 'latin1' && i < LATIN1_BITS) ? chunk : Buffer.from(chunk, encoding as BufferEncoding)
      }
    }
    return this.#pump.write(list, latin1, now)
  }

  #flushQueued (): void {
    const queued = this.#queued
    this.#queued = null
    if (queued === null) return
    for (const entry of queued) {
      if (this.destroyed) {
        entry.callback(new Error('socket destroyed before the handshake completed'))
        continue
      }
      this.#complete(this.#writeBatch([entry], false), entry.callback)
    }
  }

  /** Reports a write as done: now, after the transport drains, or failed. */
  #complete (state: WriteState, callback: (err?: Error | null) => void): void {
    if (state === 'failed') callback(this.#pump.writeError ?? new Error('the TLS connection is closed'))
    else if (state === 'full') this.#pump.onceDrained(() => callback())
    else callback()
  }

  override _final (callback: (err?: Error | null) => void): void {
    this.#pump.end(() => callback())
  }

  override _destroy (err: Error | null, callback: (err?: Error | null) => void): void {
    this.#clearTimer()
    const queued = this.#queued
    this.#queued = null
    for (const { callback: cb } of queued ?? []) cb(err ?? new Error('socket destroyed'))
    this.#pump.destroy(this.#failed)
    const conn = this.#conn
    this.#conn = null
    conn?.destroy()
    this.#settle()
    this.#init.release?.()
    callback(err)
  }

  // ---- helpers ----------------------------------------------------------

  #hostFor (index: number): HostContext | undefined {
    return this.#init.hooks?.hostFor?.(this, index)
  }

  /** The server's accounting for this socket, once. */
  #settle (): void {
    if (this.#settled) return
    this.#settled = true
    this.#init.hooks?.settled?.(this)
  }

  #peerChain (): Buffer[] {
    const conn = this.#conn
    const count = this.#info?.peerCertificates ?? 0
    const out: Buffer[] = []
    if (conn === null) return out
    for (let i = 0; i < count; i++) {
      const der = conn.peerCertificate(i)
      if (der === undefined) break
      out.push(der)
    }
    return out
  }

  #ownLeaf (): Buffer | undefined {
    if (!this.#isServer) return this.#init.ownLeaf
    const index = this.#info?.certificate ?? -1
    return index >= 0 ? this.#host?.leafDers[index] : undefined
  }

  #clientVerify (): string {
    if (this.#host === undefined || this.#host.clientAuth === 'none') return 'NONE'
    // rustls aborts the handshake on a certificate it cannot verify, so a
    // live connection has either a verified certificate or none.
    return (this.#info?.peerCertificates ?? 0) > 0 ? 'SUCCESS' : 'NONE'
  }
}

function noop (): void {}

/** The encoding a pump takes a string chunk in ('latin1' or 'utf8'), or null: it goes as a Buffer. */
function pumpEncoding (encoding: string): 'latin1' | 'utf8' | null {
  switch (encoding) {
    case 'latin1': case 'binary': case 'ascii': return 'latin1'
    case 'utf8': case 'utf-8': return 'utf8'
  }
  const lower = encoding.toLowerCase()
  return lower === encoding ? null : pumpEncoding(lower)
}

function onFinish (this: RustlsSocket): void {
  this[kFinished]()
}

function onHandshakeTimeout (socket: RustlsSocket): void {
  socket[kHandshakeTimeout]()
}

function onCloseGrace (socket: RustlsSocket): void {
  socket.destroy()
}
