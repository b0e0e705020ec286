// RustlsSocket: a Duplex shaped like tls.TLSSocket over any transport
// (usually a net.Socket), driven by the native pump.
//
// Inbound: one native call per transport chunk (feed). Outbound: one native
// call per record-batch (write). Plaintext and ciphertext land in shared
// slabs and leave as subarrays, so the pump allocates no Buffer per TLS
// record. Results of a native call are read into locals before anything can
// call back into JS (push, emit, transport.write), and the socket's state is
// re-checked after each such call: user code may destroy or write from
// inside a 'data' or 'secure' handler.
import { X509Certificate } from 'node:crypto'
import type net from 'node:net'
import { Duplex } from 'node:stream'
import util from 'node:util'

import { certificateObject, type PeerCertificate } from './cert-info'
import { cipherInfoForId } from './ciphers'
import { derToPem } from './certs'
import { HandshakeTimeoutError, RustlsError, UnsupportedOptionError } from './errors'
import type { HostContext } from './hosts'
import { type Logger, silentLogger } from './log'
import { addon, Flag, HOST_CHALLENGE, LocalResult, type ConnectionInfo, type NativeConnection, type NativeHandle, readInfo, results, Slot } from './native'
import { versionName, type TlsVersionName } from './protocol'

const SLAB_SIZE = 128 * 1024
// A new slab is started when less than this is left: enough for a full
// transport read's plaintext in one call in the common case (the pump loops
// on PlainFull otherwise).
const MIN_PLAIN_ROOM = 32 * 1024
// The native write only encrypts a record when its ciphertext fits.
const MIN_CIPHER_ROOM = 16 * 1024 + 512
// _writev joins small chunks (one copy) so they share records.
const COALESCE_LIMIT = 16 * 1024

let slab = Buffer.alloc(SLAB_SIZE)
let slabUsed = 0

// Zero-filled: rustls_connection_read requires initialized memory.
function slabWithRoom (room: number): void {
  if (SLAB_SIZE - slabUsed < room) {
    slab = Buffer.alloc(SLAB_SIZE)
    slabUsed = 0
  }
}

const EMPTY = Buffer.alloc(0)

export interface SocketInit {
  transport: Duplex
  connection: NativeConnection
  isServer: boolean
  /** Server side: the accepting server, exposed as socket.server. */
  server?: import('node:net').Server
  /** Server: resolves the host chosen by the native router. */
  hostFor?: (index: number) => HostContext | undefined
  /** Server: emits tlsClientError / counts; called once per failed handshake. */
  onClientError?: (err: Error, socket: RustlsSocket) => void
  /** Server: an ACME tls-alpn-01 validation handshake completed (the socket then closes). */
  onChallenge?: (socket: RustlsSocket) => void
  /** Server, deferred routing (SNICallback): picks a config for the hello. */
  onClientHello?: (socket: RustlsSocket) => void
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
  /**
   * Run the pump in native code on the transport's file descriptor when it
   * is a TCP or Unix net.Socket (see native/src/js/connection_io.cc); only for
   * transports nobody else reads or writes (the ones server and connect()
   * create). Default false: the JS pump.
   */
  socketMode?: boolean
  /**
   * The native listener accepted and handshook this connection (lib/native-listener.ts):
   * the native connection owns its descriptor, socket mode starts at once,
   * and these are the handshake's last flags and the plaintext that came
   * with the client's final flight.
   */
  adopted?: { flags: number, plaintext?: Buffer, host: number }
  logger?: Logger
}

/**
 * The TLS socket running over each transport: in socket mode the transport
 * itself counts no bytes, so code that holds the transport (the
 * terminator's connection accounting) asks the TLS socket.
 */
export const tlsSocketOf = new WeakMap<Duplex, RustlsSocket>()

/** Options of `new RustlsSocket(socket, options)`; see lib/wrap.ts. */
export type WrapOptions = import('./wrap').WrapOptions

function isSocketInit (value: unknown): value is SocketInit {
  return typeof value === 'object' && value !== null && 'connection' in value && 'transport' in value
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
  server: import('node:net').Server | undefined
  readonly #isServer: boolean

  #conn: NativeConnection | null
  #transport: Duplex
  #info: ConnectionInfo | undefined
  #group: string | undefined
  #host: HostContext | undefined
  #init: SocketInit
  #secure = false
  #peerClosed = false
  #failed = false
  #transportEnded = false
  // Input kept while the reader applies backpressure or routing waits.
  #pending: Buffer | null = null
  #pendingOffset = 0
  #mustDrain = false
  #readPaused = false
  #waitingConfig = false
  #queued: Array<{ chunk: Buffer, callback: (err?: Error | null) => void }> = []
  #timer: NodeJS.Timeout | null = null
  #peerError: Error | null = null
  #writeError: Error | null = null
  // Socket mode: native code reads and writes the descriptor.
  #socketMode = false
  #drainWaiters: Array<() => void> = []
  #flushScheduled = false
  // The kernel took less than we had: writes wait for the Drained event.
  #writeBlocked = false
  // The last push() of plaintext was refused (the reader is full).
  #readerFull = false
  #finalCounters = { bytesRead: 0, bytesWritten: 0 }
  #idleTimer: NodeJS.Timeout | null = null
  #logger: Logger

  /**
   * `new RustlsSocket(socket, options)` wraps an existing connected Duplex
   * (e.g. after STARTTLS), as `new tls.TLSSocket(socket, options)`:
   * `isServer: true` with server TLS options (cert, key, ...), otherwise a
   * client with connect()'s TLS options. The internal form takes a prepared
   * native connection.
   */
  constructor (socket: Duplex, options?: WrapOptions)
  constructor (init: SocketInit)
  constructor (first: SocketInit | Duplex, options?: WrapOptions) {
    // Lazy: wrap.ts needs this module's exports (hosts, client contexts).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const init: SocketInit = isSocketInit(first) ? first : (require('./wrap') as typeof import('./wrap')).wrapInit(first, options ?? {})
    super({ allowHalfOpen: init.allowHalfOpen ?? false, emitClose: true, decodeStrings: true, highWaterMark: init.highWaterMark })
    this.#init = init
    this.#conn = init.connection
    this.#transport = init.transport
    this.#isServer = init.isServer
    this.server = init.server
    this.#logger = init.logger ?? silentLogger
    if (!init.isServer && init.servername !== undefined) this.servername = init.servername
    const t = this.#transport
    tlsSocketOf.set(t, this)
    t.on('error', this.#onTransportError)
    t.on('close', this.#onTransportClose)
    if (init.handshakeTimeout !== undefined && init.handshakeTimeout > 0) {
      this.#timer = setTimeout(this.#onHandshakeTimeout, init.handshakeTimeout)
      this.#timer.unref()
    }
    if (init.adopted !== undefined) {
      this.#startAdopted(init.adopted)
      return
    }
    const sock = t as net.Socket
    if (init.socketMode === true && socketModeAvailable(sock)) {
      // Keep net.Socket from reading: from here on only native code reads.
      sock.pause()
      if (sock.connecting) sock.once('connect', () => this.#startSocketMode())
      else this.#startSocketMode()
      return
    }
    this.#attachJsPump()
  }

  /** The JS pump: transport 'data' events feed the native connection. */
  #attachJsPump (): void {
    const t = this.#transport
    const sock = t as net.Socket
    t.on('data', this.#onData)
    t.on('end', this.#onTransportEnd)
    t.on('timeout', this.#onTimeout)
    // A wrapped socket may have been paused by its previous reader.
    if (typeof t.resume === 'function') t.resume()
    if (!this.#isServer) {
      if (sock.connecting === true) sock.once('connect', () => this.#flush())
      else this.#flush()
    }
  }

  /**
   * Hands the descriptor to native code. The net.Socket stays open, idle,
   * for the server's connection accounting and the address getters.
   */
  #startSocketMode (): void {
    if (this.destroyed || this.#conn === null) return
    const t = this.#transport as net.Socket
    const handle = (t as unknown as { _handle: { fd: number, reading: boolean, readStop: () => number, readStart: () => number } | null })._handle
    if (handle === null) return
    if (handle.reading) {
      handle.reading = false
      handle.readStop()
    }
    // Set first: start() may already report (a client's failed first write).
    this.#socketMode = true
    try {
      this.#conn.start(handle.fd, this.#onSocketEvent)
    } catch (err) {
      // No descriptor to spare (EMFILE) or none to poll: the JS pump works
      // on any transport.
      this.#socketMode = false
      this.#logger.debug({ err }, 'socket mode unavailable; pumping in JS')
      // Undo the readStop above: net.Socket's own bookkeeping may still
      // think a read is under way and would not start one itself.
      if (!handle.reading) {
        handle.reading = true
        handle.readStart()
      }
      this.#attachJsPump()
      return
    }
    this.once('finish', this.#onFinishSocketMode)
    this.#makeTransportInert(t)
    // An idle timeout set on the net.Socket (connect's `timeout`) moves to
    // ours: the net.Socket sees no traffic from now on.
    const idle = t.timeout ?? 0
    if (idle > 0) {
      t.setTimeout(0)
      this.setTimeout(idle)
    }
  }

  /**
   * A connection the native listener established: native code keeps
   * polling its descriptor; the handshake's completion is reported on the
   * next tick, once whoever made this socket attached its listeners, as
   * the socket-mode event it would have been.
   */
  #startAdopted (adopted: NonNullable<SocketInit['adopted']>): void {
    this.#socketMode = true
    this.#conn?.start(-1, this.#onSocketEvent)
    this.once('finish', this.#onFinishSocketMode)
    process.nextTick(() => this.#onSocketEvent(adopted.flags | Flag.HandshakeDone | Flag.Hello, adopted.plaintext, 0, 0, adopted.host))
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
    const out = this.#conn.accept(config, host?.index ?? -1)
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    this.#afterCall(out, flags, error, results[Slot.Host])
    if (!this.destroyed && !this.#failed && !this.#socketMode) this.#resumeInput()
  }

  get remoteAddress (): string | undefined { return (this.#transport as net.Socket).remoteAddress }
  get remotePort (): number | undefined { return (this.#transport as net.Socket).remotePort }
  get remoteFamily (): string | undefined { return (this.#transport as net.Socket).remoteFamily }
  get localAddress (): string | undefined { return (this.#transport as net.Socket).localAddress }
  get localPort (): number | undefined { return (this.#transport as net.Socket).localPort }
  get bytesRead (): number {
    if (this.#socketMode) return (this.#conn?.counters() ?? this.#finalCounters).bytesRead
    return (this.#transport as net.Socket).bytesRead ?? 0
  }

  get bytesWritten (): number {
    if (this.#socketMode) return (this.#conn?.counters() ?? this.#finalCounters).bytesWritten
    return (this.#transport as net.Socket).bytesWritten ?? 0
  }
  get connecting (): boolean { return (this.#transport as net.Socket).connecting === true }
  get pending (): boolean { return !this.#secure }
  get readyState (): string { return (this.#transport as net.Socket).readyState ?? 'open' }
  /** The transport under the TLS layer. */
  get transport (): Duplex { return this.#transport }

  address (): ReturnType<net.Socket['address']> | Record<string, never> {
    const t = this.#transport as net.Socket
    return typeof t.address === 'function' ? t.address() : {}
  }

  setTimeout (ms: number, callback?: () => void): this {
    const t = this.#transport as net.Socket
    if (this.#socketMode) {
      // The net.Socket sees no traffic in socket mode: our own idle timer.
      if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
      this.#idleTimer = null
      if (ms > 0) {
        this.#idleTimer = setTimeout(this.#onIdle, ms)
        this.#idleTimer.unref()
      }
    } else if (typeof t.setTimeout === 'function') t.setTimeout(ms)
    if (callback !== undefined) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    return this
  }

  setNoDelay (noDelay?: boolean): this {
    const t = this.#transport as net.Socket
    if (typeof t.setNoDelay === 'function') t.setNoDelay(noDelay)
    return this
  }

  setKeepAlive (enable?: boolean, initialDelay?: number): this {
    const t = this.#transport as net.Socket
    if (typeof t.setKeepAlive === 'function') t.setKeepAlive(enable, initialDelay)
    return this
  }

  ref (): this {
    const t = this.#transport as net.Socket
    if (typeof t.ref === 'function') t.ref()
    if (this.#socketMode) this.#conn?.setRef(true)
    return this
  }

  unref (): this {
    const t = this.#transport as net.Socket
    if (typeof t.unref === 'function') t.unref()
    if (this.#socketMode) this.#conn?.setRef(false)
    return this
  }

  #onIdle = (): void => {
    this.#idleTimer = null
    if (this.destroyed) return
    this.emit('timeout')
  }


  /** Ends gracefully (close_notify, FIN), then destroys once flushed. */
  destroySoon (): void {
    if (this.writable) this.end()
    if (this.writableFinished) this.destroy()
    else this.once('finish', () => this.destroy())
  }

  // ---- inbound ----------------------------------------------------------

  /** Socket mode: one native event per readable/writable turn of the socket. */
  #onSocketEvent = (flags: number, data: Buffer | undefined, error: number, errno: number, host: number): void => {
    if (this.destroyed) return
    if (this.#idleTimer !== null) this.#idleTimer.refresh()
    if ((flags & Flag.Drained) !== 0) {
      this.#writeBlocked = false
      for (const waiter of this.#drainWaiters.splice(0)) waiter()
      if (this.destroyed) return
    }
    if ((flags & Flag.IoError) !== 0 && (flags & Flag.Error) === 0) {
      this.#onTransportError(errnoError(errno, 'read'))
      return
    }
    this.#afterCall(undefined, flags, error, host, data ?? null)
    if (this.destroyed || this.#failed) return
    if (this.#readerFull && !this.#peerClosed) {
      // Backpressure: native reading stops until _read() asks again.
      this.#readPaused = true
      this.#conn?.readStop()
    }
    if ((flags & Flag.TransportEnd) !== 0) {
      this.#transportEnded = true
      // Both directions done: the TCP connection is over, as a net.Socket
      // would destroy itself. Otherwise, unless half-open, our side ends
      // now, or, while plaintext that came with the FIN still waits to be
      // read, once the reader had it (the Duplex ends itself after 'end').
      if (this.writableFinished) this.destroy()
      else if (!this.allowHalfOpen && (this.readableEnded || this.readableLength === 0)) this.end()
    }
  }

  /**
   * Socket mode polls the net.Socket's own descriptor: the net.Socket must
   * not read, write or shut down any more (libuv would watch the
   * descriptor again), and whoever destroys it must let native code stop
   * polling before the descriptor is closed.
   */
  #makeTransportInert (t: net.Socket): void {
    const conn = this.#conn
    const owned = (): Error => Object.assign(new Error('the socket belongs to its TLS connection'), { code: 'ERR_RUSTLS_SOCKET_OWNED' })
    const inner = t as unknown as {
      _read: () => void
      _write: (chunk: unknown, encoding: unknown, cb: (err?: Error) => void) => void
      _writev: (chunks: unknown, cb: (err?: Error) => void) => void
      _final: (cb: (err?: Error) => void) => void
      _destroy: (err: Error | null, cb: (err?: Error | null) => void) => void
    }
    const destroy = inner._destroy
    inner._read = () => {}
    inner._write = (_chunk, _encoding, cb) => cb(owned())
    inner._writev = (_chunks, cb) => cb(owned())
    inner._final = (cb) => cb()
    inner._destroy = (err, cb) => {
      conn?.closeSocket()
      destroy.call(t, err, cb)
    }
  }

  /** Socket mode: our FIN left; if the peer's came already, we are done. */
  #onFinishSocketMode = (): void => {
    if (this.#transportEnded && !this.destroyed) this.destroy()
  }

  #onData = (chunk: Buffer): void => {
    if (this.#pending !== null) {
      // Paused (backpressure or routing) while the transport had data in
      // flight: keep it behind what is already pending.
      this.#pending = Buffer.concat([this.#pending.subarray(this.#pendingOffset), chunk])
      this.#pendingOffset = 0
      return
    }
    this.#process(chunk, 0)
  }

  /** Runs input through the pump until it is consumed or we must pause. */
  #process (input: Buffer | null, offset: number): void {
    for (;;) {
      const conn = this.#conn
      if (conn === null || this.#failed) return
      slabWithRoom(MIN_PLAIN_ROOM)
      const start = slabUsed
      const length = input === null ? 0 : input.length - offset
      const out = conn.feed(input, offset, length, slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const consumed = results[Slot.Consumed]
      const plain = results[Slot.Plain]
      const error = results[Slot.Error]
      const host = results[Slot.Host]
      offset += consumed
      let data: Buffer | null = null
      if (plain > 0) {
        data = slab.subarray(start, start + plain)
        slabUsed += plain
      }
      const more = input !== null && offset < input.length
      if ((flags & Flag.NeedConfig) !== 0) {
        this.#holdInput(input, offset)
        this.#waitingConfig = true
        this.#transportPause()
        this.#afterCall(out, flags, error, host)
        return
      }
      const proceed = this.#afterCall(out, flags, error, host, data)
      // After close_notify the transport keeps flowing: its EOF ends it.
      if (this.destroyed || this.#failed || this.#peerClosed) return
      if (!proceed) {
        // Paused by backpressure: keep the rest for _read().
        this.#holdInput(input, offset)
        this.#mustDrain = (flags & Flag.PlainFull) !== 0
        this.#readPaused = true
        this.#transportPause()
        return
      }
      if (!more && (flags & Flag.PlainFull) === 0) return
      if (input === null) input = EMPTY
    }
  }

  #holdInput (input: Buffer | null, offset: number): void {
    if (input !== null && offset < input.length) {
      this.#pending = input
      this.#pendingOffset = offset
    } else {
      this.#pending = EMPTY
      this.#pendingOffset = 0
    }
  }

  #resumeInput (): void {
    const pending = this.#pending
    const offset = this.#pendingOffset
    this.#pending = null
    this.#pendingOffset = 0
    this.#readPaused = false
    if (pending !== null && (pending.length > offset || this.#mustDrain)) {
      this.#mustDrain = false
      this.#process(pending, offset)
    }
    if (this.#pending === null && !this.#waitingConfig && !this.destroyed) {
      if (this.#transportEnded) this.#process(null, 0)
      else this.#transportResume()
    }
  }

  /**
   * Acts on one native call's results, in protocol order: send ciphertext,
   * routing, handshake completion, plaintext, errors, close_notify. Returns
   * false when the reader wants no more data now.
   */
  #afterCall (out: Buffer | undefined, flags: number, error: number, host: number, data: Buffer | null = null): boolean {
    if (out !== undefined) this.#sendRaw(out)
    if ((flags & (Flag.Hello | Flag.NeedConfig)) !== 0 && this.#conn !== null) {
      this.servername = this.#conn.serverName() ?? false
      if ((flags & Flag.Hello) !== 0 && this.#host === undefined) this.#host = this.#init.hostFor?.(host)
    }
    if ((flags & Flag.NeedConfig) !== 0 && !this.#waitingConfig) {
      this.#waitingConfig = true
    }
    if ((flags & Flag.NeedConfig) !== 0 && this.#init.onClientHello !== undefined) {
      this.#init.onClientHello(this)
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
    if ((flags & Flag.WantsWrite) !== 0) this.#flush()
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
    this.#clearHandshakeTimer()
    this.#info = readInfo(this.#conn)
    const alpn = this.#conn.alpnProtocol()
    if (alpn !== undefined) this.alpnProtocol = alpn
    if (this.#isServer && this.#info.host === HOST_CHALLENGE) {
      // RFC 8737 §3: a validation connection carries no data. Native code
      // queued close_notify with the last flight; nothing more is read and
      // the connection never becomes 'secure'.
      this.#init.hostFor?.(HOST_CHALLENGE)
      this.#failed = true
      this.servername = this.#conn.serverName() ?? false
      this.#init.onChallenge?.(this)
      this.#endTransportSoon()
      return
    }
    if (this.#isServer) {
      this.#host ??= this.#init.hostFor?.(this.#info.host)
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
    this.#clearHandshakeTimer()
    const err = new RustlsError(result)
    const duringHandshake = !this.#secure
    this.#logger.debug({ code: err.code, handshake: duringHandshake }, 'TLS connection failed')
    // The alert (if any) was queued by #sendRaw; end the transport after it.
    this.#endTransportSoon()
    if (duringHandshake && this.#isServer && this.#init.onClientError !== undefined) {
      this.#init.onClientError(err, this)
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

  /** The network-caused error that ended this connection, if any. */
  get peerError (): Error | null {
    return this.#peerError
  }

  #onHandshakeTimeout = (): void => {
    this.#timer = null
    if (this.#secure || this.destroyed) return
    this.#failed = true
    const err = new HandshakeTimeoutError()
    // Nothing is sent to a client that did not finish its hello in time.
    this.#transport.destroy()
    if (this.server && this.#init.onClientError !== undefined) {
      this.#init.onClientError(err, this)
      this.destroy()
    } else {
      this.#destroyForPeer(err)
    }
  }

  #clearHandshakeTimer (): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
  }

  #onTransportEnd = (): void => {
    this.#transportEnded = true
    if (this.#pending !== null) return
    // Tells rustls about the EOF: after close_notify this is the orderly
    // end; otherwise rustls reports UNEXPECTED_EOF (a truncation attack
    // cannot pass as a clean end, RFC 8446 §6.1).
    if (this.#peerClosed) {
      if (!this.allowHalfOpen) this.end()
      return
    }
    this.#process(null, 0)
  }

  #onTransportError = (err: Error): void => {
    if (this.destroyed) return
    // We already ended our side (end() was called, close_notify queued):
    // a peer that left meanwhile (EPIPE, ECONNRESET) lost nothing we owed it.
    if (this.#secure && this.writableEnded) {
      this.destroy()
      return
    }
    if (!this.#secure && this.#isServer && this.#init.onClientError !== undefined) {
      this.#failed = true
      this.#init.onClientError(err, this)
      this.destroy()
      return
    }
    this.#destroyForPeer(err)
  }

  #onTransportClose = (): void => {
    if (!this.destroyed) {
      if (!this.#peerClosed && !this.#failed && this.#conn !== null) {
        // Closed without an EOF event (reset): same as a truncated stream.
        this.#transportEnded = true
        this.#process(null, 0)
      }
      if (!this.destroyed) this.destroy()
    }
  }

  #onTimeout = (): void => {
    this.emit('timeout')
  }

  #transportPause (): void {
    const t = this.#transport
    if (typeof t.pause === 'function') t.pause()
  }

  #transportResume (): void {
    const t = this.#transport
    if (typeof t.resume === 'function' && !t.destroyed) t.resume()
  }

  override _read (): void {
    if (!this.#readPaused || this.#waitingConfig) return
    if (this.#socketMode) {
      this.#readPaused = false
      this.#conn?.readStart()
      return
    }
    this.#resumeInput()
  }

  // ---- outbound ---------------------------------------------------------

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (!this.#secure) {
      this.#queued.push({ chunk, callback })
      return
    }
    this.#complete(this.#encrypt(chunk), callback)
  }

  override _writev (chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    let total = 0
    for (const c of chunks) total += c.chunk.length
    if (total <= COALESCE_LIMIT) {
      const joined = Buffer.concat(chunks.map((c) => c.chunk), total)
      // The stream already gathered this batch (a cork, an HTTP response):
      // in socket mode it leaves now, without waiting for the turn's end.
      if (this.#socketMode && this.#secure) this.#complete(this.#writeSocket(joined, true), callback)
      else this._write(joined, 'binary', callback)
      return
    }
    if (!this.#secure) {
      for (let i = 0; i < chunks.length; i++) {
        this.#queued.push({ chunk: chunks[i].chunk, callback: i === chunks.length - 1 ? callback : noop })
      }
      return
    }
    if (this.#socketMode) {
      this.#complete(this.#writeSocket(chunks.map((c) => c.chunk), true), callback)
      return
    }
    const t = this.#transport as net.Socket
    if (typeof t.cork === 'function') t.cork()
    let state: WriteState = 'ok'
    for (const { chunk } of chunks) {
      state = this.#encrypt(chunk)
      if (state === 'failed') break
    }
    if (typeof t.uncork === 'function') t.uncork()
    this.#complete(state, callback)
  }

  /**
   * Socket mode: encrypts in native code now and sends at the end of this
   * event-loop turn, so that the writes of one turn leave in one writev();
   * `now` sends at once (with anything still queued before it), for a
   * batch the stream has already gathered.
   */
  #writeSocket (data: Buffer | Buffer[], now = false): WriteState {
    const conn = this.#conn
    if (conn === null || this.#failed) return 'failed'
    const r = conn.writeSocket(data, !now)
    if (r < 0) return this.#socketWriteFailed()
    if (this.#idleTimer !== null) this.#idleTimer.refresh()
    // 1: the kernel is full (sent at once because `now`, or because the
    // deferred data passed native code's encrypt-ahead limit).
    if (r === 1) this.#writeBlocked = true
    if (!now && !this.#flushScheduled) {
      this.#flushScheduled = true
      process.nextTick(this.#flushSocketNow)
    }
    return this.#writeBlocked ? 'full' : 'ok'
  }

  #flushSocketNow = (): void => {
    this.#flushScheduled = false
    const conn = this.#conn
    if (conn === null || this.#failed) return
    const r = conn.flushSocket()
    if (r === 1) this.#writeBlocked = true
    else if (r < 0) this.#socketWriteFailed()
  }

  #socketWriteFailed (): WriteState {
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    if ((flags & Flag.IoError) !== 0 && error === 0) {
      this.#writeError = errnoError(results[Slot.Errno], 'write')
      this.#onTransportError(this.#writeError)
    } else {
      this.#writeError = new RustlsError(error !== 0 ? error : RUSTLS_RESULT_GENERAL)
      this.#onTlsError(error !== 0 ? error : RUSTLS_RESULT_GENERAL)
    }
    return 'failed'
  }

  #flushQueued (): void {
    const queued = this.#queued
    this.#queued = []
    for (const { chunk, callback } of queued) {
      if (this.destroyed) {
        callback(new Error('socket destroyed before the handshake completed'))
        continue
      }
      this.#complete(this.#encrypt(chunk), callback)
    }
  }

  /** Reports a write as done: now, after the transport drains, or failed. */
  #complete (state: WriteState, callback: (err?: Error | null) => void): void {
    if (state === 'failed') callback(this.#writeError ?? new Error('the TLS connection is closed'))
    else if (state === 'full' && this.#socketMode) this.#drainWaiters.push(() => callback())
    else if (state === 'full') this.#transport.once('drain', () => callback())
    else callback()
  }

  /**
   * Encrypts all of `chunk` into records for the transport. 'full' is the
   * transport's backpressure (wait for 'drain'), not a failure: every byte
   * was encrypted and queued either way.
   */
  #encrypt (chunk: Buffer): WriteState {
    if (this.#socketMode) return this.#writeSocket(chunk)
    const conn = this.#conn
    if (conn === null || this.#failed) return 'failed'
    let offset = 0
    let state: WriteState = 'ok'
    while (offset < chunk.length) {
      slabWithRoom(MIN_CIPHER_ROOM)
      const start = slabUsed
      conn.write(chunk, offset, chunk.length - offset, slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const consumed = results[Slot.Consumed]
      const cipher = results[Slot.Cipher]
      const error = results[Slot.Error]
      offset += consumed
      if (cipher > 0) {
        slabUsed += cipher
        state = this.#sendRaw(slab.subarray(start, start + cipher)) ? 'ok' : 'full'
      }
      if ((flags & Flag.Error) !== 0 || consumed === 0) {
        // A slab with room for a whole record always takes one: no progress
        // means the connection can no longer send.
        this.#writeError = new RustlsError(error !== 0 ? error : RUSTLS_RESULT_GENERAL)
        this.#onTlsError(error !== 0 ? error : RUSTLS_RESULT_GENERAL)
        return 'failed'
      }
    }
    return state
  }

  /** Drains ciphertext rustls still holds (handshake start, close_notify). */
  #flush (): void {
    const conn = this.#conn
    if (conn === null) return
    for (;;) {
      slabWithRoom(MIN_CIPHER_ROOM)
      const start = slabUsed
      conn.flush(slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const cipher = results[Slot.Cipher]
      if (cipher > 0) {
        slabUsed += cipher
        this.#sendRaw(slab.subarray(start, start + cipher))
      }
      if ((flags & Flag.WantsWrite) === 0 || cipher === 0) return
    }
  }

  #sendRaw (data: Buffer): boolean {
    const t = this.#transport
    if (t.destroyed || !t.writable) return true
    return t.write(data)
  }

  #endTransportSoon (): void {
    const t = this.#transport
    if (t.destroyed) return
    if (this.#socketMode) {
      // The alert already left (native flush); native code sends the FIN.
      this.#conn?.shutdownSocket()
    } else if (t.writable) {
      t.end()
    }
    // A peer that never closes its side must not keep the socket.
    const timer = setTimeout(() => t.destroy(), 2000)
    timer.unref()
    t.once('close', () => clearTimeout(timer))
  }

  override _final (callback: (err?: Error | null) => void): void {
    const conn = this.#conn
    if (this.#socketMode) {
      // close_notify, then the FIN once everything left (native).
      const r = conn !== null && !this.#failed ? conn.shutdownSocket() : 0
      if (r === 1) this.#drainWaiters.push(() => callback())
      else callback()
      return
    }
    if (conn !== null && this.#secure && !this.#failed) {
      // close_notify first, then the transport's FIN (RFC 8446 §6.1).
      conn.sendCloseNotify()
      this.#flush()
    }
    const t = this.#transport
    if (!t.destroyed && t.writable) t.end()
    callback()
  }

  override _destroy (err: Error | null, callback: (err?: Error | null) => void): void {
    this.#clearHandshakeTimer()
    for (const { callback: cb } of this.#queued.splice(0)) cb(err ?? new Error('socket destroyed'))
    const conn = this.#conn
    this.#conn = null
    if (conn !== null && this.#socketMode) {
      // write() then destroy() (node's http does it for a 408): what the
      // kernel takes now still leaves, as net.Socket's own write would.
      if (this.#flushScheduled && !this.#failed) conn.flushSocket()
      this.#finalCounters = conn.counters()
    }
    conn?.destroy()
    this.#init.release?.()
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    for (const waiter of this.#drainWaiters.splice(0)) waiter()
    const t = this.#transport
    t.removeListener('data', this.#onData)
    t.removeListener('end', this.#onTransportEnd)
    t.removeListener('timeout', this.#onTimeout)
    if (this.#socketMode) {
      // Our duplicate is closed (conn.destroy above); now the original.
      if (!t.destroyed) t.destroy()
    } else if (!t.destroyed) {
      // Give a queued alert or close_notify the chance to leave first.
      if (t.writableLength > 0 && !this.#failed) t.end()
      else if (!this.#failed) t.destroy()
    }
    callback(err)
  }

  // ---- helpers ----------------------------------------------------------

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

type WriteState = 'ok' | 'full' | 'failed'

/**
 * A net.Socket on a real descriptor (TCP or Unix) that nothing has read
 * from yet: native code can take it over.
 */
function socketModeAvailable (socket: net.Socket): boolean {
  if (process.platform === 'win32' || process.env.RUSTLS_NODE_JS_PUMP === '1') return false
  const handle = (socket as unknown as { _handle?: { fd?: number } | null })._handle
  if (handle === null || handle === undefined || typeof handle.fd !== 'number') return false
  // Connecting sockets get their descriptor before 'connect' on Unix.
  return (handle.fd >= 0 || socket.connecting) && socket.readableLength === 0 && socket.writableLength === 0
}

/** A Node-style system error (code, errno, syscall) for a socket failure. */
function errnoError (errno: number, syscall: string): Error {
  const code = errno > 0 ? util.getSystemErrorName(-errno) : 'EIO'
  return Object.assign(new Error(`${syscall} ${code}`), { code, errno: -errno, syscall })
}

/** rustls_result GENERAL: used when rustls stops taking data without a code. */
const RUSTLS_RESULT_GENERAL = 7112

let cachedPackageVersion: string | undefined
export function packageVersion (): string {
  if (cachedPackageVersion === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cachedPackageVersion = (require('../../package.json') as { version: string }).version
  }
  return cachedPackageVersion
}

/** "rustls-ffi/<v>/rustls/<v>" (SPEC §4.5), without the provider suffix. */
export function libraryVersion (): string {
  return addon.version().split('/').slice(0, 4).join('/')
}
