// createServer(): a net.Server whose connections are TLS-terminated by
// rustls, with mod_tls virtual hosts (SPEC §3, §4).
import crypto, { X509Certificate } from 'node:crypto'
import net from 'node:net'

import { certificateBlocks, type CertificateEntry, type PemInput } from './certs'
import { ConfigError, configErrorFromNative, UnsupportedOptionError } from './errors'
import { rejectUnsupported, UNSUPPORTED_SERVER_OPTIONS } from './unsupported'
import { buildHosts, type BuiltHosts, type HostOptions, type HostTlsOptions, weakerContext } from './hosts'
import { type Logger, silentLogger } from './log'
import { addon, Flag, HOST_CHALLENGE, type NativeConnection, type NativeHandle, type NativeSessionCache } from './native'
import { type HandshakeFailure, NativeListenerFront, parseListenArgs, type SessionHandler, socketFromNative } from './native-listener'
import { createSessionCache, ServerTickets, sessionCacheSize, ticketKeyMaterial, ticketLifetime, ticketSettings, type SessionCacheOption } from './session'
import { SecureContext } from './secure-context'
import { checkSessionStore, ServerSessions, sessionLookupTimeout, type SessionStore } from './server-sessions'
import { RustlsSocket, type SocketHooks } from './tls-socket/socket'

export interface ServerOptions extends HostTlsOptions {
  /** Virtual hosts; the first one serves clients without SNI. */
  hosts?: readonly HostOptions[]
  /** Single-host shorthand (node:tls): PEM chain, leaf first; an array for several chains (e.g. ECDSA and RSA). */
  cert?: PemInput | readonly PemInput[]
  /** Single-host shorthand: PEM private key(s); with several, each is matched to its certificate. */
  key?: PemInput | readonly (PemInput | { pem: PemInput, passphrase?: string })[]
  passphrase?: string
  /** Single-host shorthand: several certificates (e.g. ECDSA and RSA). */
  certificates?: readonly CertificateEntry[]
  /** Refuse clients whose SNI names no host (default true); false: the first host serves them. */
  strictSNI?: boolean
  /** Milliseconds a client has to complete the handshake (default 120000, as node:tls); 0 disables. */
  handshakeTimeout?: number
  /**
   * Server session cache: size (default 20000), {size}, or 'none'. It keeps
   * TLS 1.2 session ids; 'none' without ticketKeys turns resumption off.
   */
  sessionCache?: SessionCacheOption
  /**
   * Ticket keys: N × 80 bytes, the first sealing; servers with the same keys
   * resume each other's sessions. Default: keys generated at start and
   * rotated every ticketLifetime.
   */
  ticketKeys?: Buffer | readonly Buffer[]
  /** Seconds: ticket lifetime hint and rotation period of generated keys (default 21600, 6 h; at most 7 days). */
  ticketLifetime?: number
  /**
   * A store of TLS sessions shared with other servers: `get(id)` and
   * `set(id, data, ttlSeconds)`, promises. A ClientHello naming a session
   * this server lacks waits while `get` looks it up (TLS 1.2 session ids;
   * TLS 1.3 only without stateless tickets); every new session goes to
   * `set` (ttl: ticketLifetime). The same as listening for 'resumeSession'
   * and 'newSession', which work without it too.
   */
  sessionStore?: SessionStore
  /** Milliseconds a session lookup may take before the handshake goes on without it (a full one). Default 50. */
  sessionLookupTimeout?: number
  /** pino-compatible logger; default silent. */
  logger?: Logger
  /** As net.Server: keep the writable side open after the peer's close_notify. */
  allowHalfOpen?: boolean
  /** As net.Server, for accepted connections. */
  noDelay?: boolean
  keepAlive?: boolean
  keepAliveInitialDelay?: number
  /** highWaterMark of each connection's plaintext side, in bytes. */
  highWaterMark?: number
  /** node:tls requestCert/rejectUnauthorized/ca map onto clientAuth. */
  requestCert?: boolean
  rejectUnauthorized?: boolean
  ca?: PemInput | readonly PemInput[]
  crl?: PemInput | readonly PemInput[]
  /** node:tls: honour the server's suite order (= honorClientOrder: false). */
  honorCipherOrder?: boolean
  /**
   * node:tls SNICallback: called with the SNI of each client that sent one;
   * answer with a SecureContext (createSecureContext), nothing (the first
   * host serves) or an error (refused with unrecognized_name). Replaces the
   * native routing by `hosts` names.
   */
  SNICallback?: (servername: string, callback: (err: Error | null, context?: SecureContext) => void) => void
  /**
   * Accept, route by SNI and handshake in native code (lib/native-listener.ts):
   * no JS object exists for a connection until its handshake completed (or,
   * with SNICallback, until its ClientHello waits for the callback), and
   * refused, failed or timed-out handshakes never reach JS. The default on
   * POSIX. `false`, a 'connection' listener present at listen(), and
   * listen(handle) take the net.Server path instead (a net.Socket per
   * connection, the stream pump over it); docs/node-tls-parity.md lists
   * what differs. `true` refuses those with ERR_RUSTLS_UNSUPPORTED_OPTION.
   */
  nativeListener?: boolean
}

interface ServerState {
  id: number
  built: BuiltHosts
  /** Connections still reading their ClientHello against this router (the native listener's route set counts as one). */
  accepting: number
  retired: boolean
  /** What sockets of this state share (made on first use): net.Server path, native listener. */
  streamHooks?: SocketHooks
  nativeHooks?: SocketHooks
  pausedHooks?: SocketHooks
}

/**
 * Where servers that do not say (nativeListener undefined) run: the native
 * listener, or the net.Server path. Internal (not exported by index.ts): the
 * test suite runs once on each path and chooses it here, explicitly.
 */
let defaultPath: 'native' | 'net' = 'native'
export function setDefaultServerPath (path: 'native' | 'net'): void {
  defaultPath = path
}

/**
 * What 'tlsClientError' gets as its second argument on the native listener,
 * where no socket was ever made: the facts of the failed connection.
 */
export class FailedHandshake {
  readonly servername: string | false
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly bytesRead: number
  readonly bytesWritten: number
  readonly destroyed = true

  constructor (f: HandshakeFailure) {
    this.servername = f.servername
    this.remoteAddress = f.remoteAddress
    this.remotePort = f.remotePort
    this.bytesRead = f.bytesRead
    this.bytesWritten = f.bytesWritten
  }

  /** Already closed by native code. */
  destroy (): void {}
}

/**
 * A TLS server (a net.Server). Events: 'secureConnection' (RustlsSocket),
 * 'tlsClientError' (err, socket) for handshakes that fail, plus net.Server's.
 */
export class Server extends net.Server {
  #state: ServerState
  #options: ServerOptions
  #contexts: Array<{ names: string[], context: SecureContext }> = []
  #sessionCache: NativeSessionCache | null = null
  #sessionCacheExternal = false
  readonly #sessions: ServerSessions
  #sessionCacheSize = 0
  #tickets: ServerTickets | null = null
  #logger: Logger
  #nextStateId = 1
  /** Which path serves: decided by the first listen(), undefined before. */
  #native: boolean | undefined
  #front: NativeListenerFront | null = null
  /** Native listener: the states whose route set the listener still uses, by id. */
  readonly #states = new Map<number, { state: ServerState, release: () => void }>()
  #maxConnections: number | undefined
  #referenced = true
  /** ACME tls-alpn-01 validation configs by name; carried over to every new router. */
  readonly #challenges = new Map<string, NativeHandle>()

  constructor (options: ServerOptions, secureConnectionListener?: (socket: RustlsSocket) => void) {
    // The TCP side stays half-open: TLS half-close (close_notify) is decided
    // per RustlsSocket, which ends the transport itself when it should.
    super({
      allowHalfOpen: true,
      pauseOnConnect: false,
      noDelay: options?.noDelay,
      keepAlive: options?.keepAlive,
      keepAliveInitialDelay: options?.keepAliveInitialDelay,
    })
    if (options === null || typeof options !== 'object') {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', '', 'options must be an object')
    }
    this.#options = options
    this.#logger = options.logger ?? silentLogger
    if (options.nativeListener === true && process.platform === 'win32') {
      throw new UnsupportedOptionError('nativeListener', 'the native listener needs a Unix socket API')
    }
    this.#nativeAccessors()
    this.#sessions = new ServerSessions(this, this.#sessionSettings(options))
    try {
      this.#state = this.#build(options)
    } catch (err) {
      // Nothing native outlives a constructor that throws.
      this.#sessionCache?.destroy()
      this.#sessionCache = null
      throw err
    }
    this.on('connection', this.#onConnection)
    this.on('close', () => this.#retire(this.#state, true))
    // Session callbacks take effect for connections accepted after they
    // are added (as node:tls): native settings follow the listener count.
    const sessionListeners = (event: string | symbol): void => {
      if (event === 'newSession' || event === 'resumeSession') process.nextTick(() => this.#applySessions())
    }
    this.on('newListener', sessionListeners)
    this.on('removeListener', sessionListeners)
    if (secureConnectionListener !== undefined) this.on('secureConnection', secureConnectionListener)
  }

  /**
   * Replaces the virtual hosts (and server-wide TLS settings, when given)
   * for new connections; live connections keep their configs. Throws, and
   * keeps the old hosts, if the new ones do not build.
   */
  setHosts (hosts: readonly HostOptions[], defaults?: Partial<ServerOptions>): void {
    this.reload({ ...this.#options, ...defaults, hosts })
  }

  /** Rebuilds everything from `options` (default: the current options). */
  reload (options: ServerOptions = this.#options): void {
    const next = this.#build(options)
    const previous = this.#state
    this.#state = next
    this.#options = options
    this.#logger = options.logger ?? this.#logger
    this.#sessions.update(this.#sessionSettings(options))
    if (this.#front !== null) this.#route(next)
    this.#retire(previous, false)
    this.#applySessions()
  }

  #sessionSettings (options: ServerOptions): ConstructorParameters<typeof ServerSessions>[1] {
    return {
      store: checkSessionStore(options.sessionStore, 'sessionStore'),
      timeout: sessionLookupTimeout(options.sessionLookupTimeout, 'sessionLookupTimeout'),
      ttlSeconds: ticketLifetime(options.ticketLifetime, 'ticketLifetime'),
      logger: options.logger ?? silentLogger,
    }
  }

  /** Counters of the session callbacks and sessionStore (lookups, hits, errors, timeouts, stored). */
  get sessionCounters (): ServerSessions['counters'] {
    return { ...this.#sessions.counters }
  }

  /** Native settings that follow the session listeners and options. */
  #applySessions (): void {
    const sessions = this.#sessions
    this.#sessionCache?.setReport(sessions.reports)
    for (const front of this.#sessionFronts) this.#attachSessionsTo(front)
  }

  /** Native listeners (the server's own, the terminator's) whose session lookups this server answers. */
  readonly #sessionFronts = new Set<NativeListenerFront>()

  #attachSessionsTo (front: NativeListenerFront): void {
    const sessions = this.#sessions
    front.attachSessions(this.#sessionHandler, this.#sessionCache, {
      sessionLookups: sessions.looksUp,
      // Stateless tickets make TLS 1.3 identities tickets, not store keys.
      sessionLookupsTls13: sessions.looksUp && this.#tickets === null,
      sessionLookupTimeout: sessions.timeout,
      reportNewSessions: sessions.reports,
    })
  }

  readonly #sessionHandler: SessionHandler = {
    lookups: (front, list) => {
      for (const { lookupId, sessionId } of list) {
        // The listener keeps the time bound; a late answer is dropped there.
        void this.#sessions.lookup(sessionId, false).then((data) => front.answerSession(lookupId, data))
      }
    },
    stored: (flat) => this.#sessions.stored(flat),
    spent: (ids) => this.#sessions.spent(ids),
  }

  /**
   * A native listener this server does not own (the terminator's, one per
   * port) answers its session lookups and reports new sessions through
   * this server's callbacks and sessionStore.
   */
  serveSessions (front: NativeListenerFront): void {
    this.#sessionFronts.add(front)
    this.#attachSessionsTo(front)
  }

  // ---- native listener ----------------------------------------------------

  /**
   * net.Server.listen()'s forms (port/host/backlog, path, options with
   * fd); the native listener binds the socket itself. In a cluster worker
   * a port is shared with SO_REUSEPORT rather than through the primary.
   */
  override listen (...args: unknown[]): this {
    this.#native ??= this.#nativePath(args)
    if (!this.#native) return super.listen(...(args as Parameters<net.Server['listen']>))
    const { target, callback } = parseListenArgs(args)
    if (this.#front?.listening === true) {
      throw Object.assign(new Error('Listen method has been called more than once without closing.'), { code: 'ERR_SERVER_ALREADY_LISTEN' })
    }
    if (callback !== undefined) this.once('listening', callback)
    const front = this.#front ?? this.#makeFront()
    front.listen(target, (err) => {
      if (err !== null) this.emit('error', err)
      else this.emit('listening')
    })
    return this
  }

  override address (): net.AddressInfo | string | null {
    if (!this.#native) return super.address()
    return this.#front?.address() ?? null
  }

  override close (callback?: (err?: Error) => void): this {
    if (!this.#native) return super.close(callback)
    const front = this.#front
    const running = front?.listening === true
    // As net.Server: 'close' comes either way; a server that was not
    // listening hands the callback ERR_SERVER_NOT_RUNNING with it.
    if (callback !== undefined) {
      this.once('close', running ? callback : () => callback(Object.assign(new Error('Server is not running.'), { code: 'ERR_SERVER_NOT_RUNNING' })))
    }
    // The listener says when its last connection ended: then 'close'.
    if (front !== null) front.close()
    else process.nextTick(() => this.emit('close'))
    return this
  }

  override getConnections (callback: (err: Error | null, count: number) => void): this {
    if (!this.#native) return super.getConnections(callback)
    process.nextTick(callback, null, this.#front?.counters().live ?? 0)
    return this
  }

  override ref (): this {
    this.#referenced = true
    if (this.#native !== true) super.ref()
    this.#front?.setRef(true)
    return this
  }

  override unref (): this {
    this.#referenced = false
    if (this.#native !== true) super.unref()
    this.#front?.setRef(false)
    return this
  }

  /** The counters of the native listener (undefined on the default path). */
  get nativeCounters (): ReturnType<NativeListenerFront['counters']> | undefined {
    return this.#front?.counters()
  }

  /**
   * The native listener unless the application needs the net.Server path:
   * nativeListener: false, Windows, a 'connection' listener (there is no
   * net.Socket to give it), listen(handle) (libuv's handle, not a socket
   * native code can take). With nativeListener: true those are refused.
   */
  #nativePath (args: unknown[]): boolean {
    const explicit = this.#options.nativeListener
    if (explicit === false || process.platform === 'win32') return false
    if (explicit === undefined && defaultPath === 'net') return false
    const first = args[0]
    const why = this.listeners('connection').some((l) => l !== this.#onConnection)
      ? "a 'connection' listener needs a net.Socket per connection"
      : first !== null && typeof first === 'object' && ('_handle' in first || 'handle' in first)
        ? 'listen(handle) takes a libuv handle; listen on a port, a path or {fd}'
        : undefined
    if (why === undefined) return true
    if (explicit === true) throw new UnsupportedOptionError('nativeListener', why)
    return false
  }

  /**
   * `listening` and `maxConnections` are plain fields of net.Server: here
   * they follow whichever path serves.
   */
  #nativeAccessors (): void {
    const listening = Object.getOwnPropertyDescriptor(net.Server.prototype, 'listening')?.get
    Object.defineProperty(this, 'listening', {
      configurable: true,
      get: () => this.#native === true ? this.#front?.listening === true : listening?.call(this) === true,
    })
    Object.defineProperty(this, 'maxConnections', {
      configurable: true,
      get: () => this.#maxConnections,
      set: (n: number | undefined) => {
        this.#maxConnections = n
        this.#front?.setOptions({ maxConnections: n ?? 0 })
      },
    })
  }

  #makeFront (): NativeListenerFront {
    const options = this.#options
    const front = new NativeListenerFront({
      secure: this.#onNativeSecure,
      failures: (list) => {
        for (const f of list) {
          this.#logger.debug({ err: f.error, remoteAddress: f.remoteAddress }, 'TLS handshake failed')
          this.emit('tlsClientError', f.error, new FailedHandshake(f))
        }
      },
      idle: (id) => {
        this.#states.get(id)?.release()
        this.#states.delete(id)
      },
      closed: () => this.emit('close'),
      // Only ACME validations: this listener asks for no other handshake reports.
      handshakes: (list) => {
        for (const h of list) if (h.host === HOST_CHALLENGE) this.emit('acmeChallenge', h.servername ?? false)
      },
    }, {
      handshakeTimeout: options.handshakeTimeout ?? 120000,
      noDelay: options.noDelay ?? false,
      keepAlive: options.keepAlive ?? false,
      keepAliveInitialDelay: options.keepAliveInitialDelay ?? 0,
      maxConnections: this.#maxConnections ?? 0,
    })
    if (!this.#referenced) front.setRef(false)
    this.#front = front
    this.#route(this.#state)
    this.serveSessions(front)
    return front
  }

  /** New connections of the native listener use `state`'s hosts, held until its route set is idle. */
  #route (state: ServerState): void {
    const held = this.holdRouter()
    this.#front?.setRoutes(held.router, [], state.id)
    this.#states.set(state.id, { state, release: held.release })
  }

  #onNativeSecure = (connection: NativeConnection, setId: number, host: number, flags: number, plaintext: Buffer | undefined): void => {
    const state = this.#states.get(setId)?.state ?? this.#state
    const options = this.#options
    const socket = socketFromNative(connection, {
      host,
      flags,
      plaintext,
      // A hello paused for SNICallback finishes its handshake in JS view,
      // so its failures are tlsClientError; the others are past theirs.
      hooks: (flags & Flag.NeedConfig) !== 0
        ? state.pausedHooks ??= this.#hooks(state, 'paused')
        : state.nativeHooks ??= this.#hooks(state, 'native'),
      server: this,
      allowHalfOpen: options.allowHalfOpen ?? false,
      highWaterMark: options.highWaterMark,
      logger: this.#logger,
      handshakeTimeout: options.handshakeTimeout ?? 120000,
    })
    socket.once('secure', () => {
      // A handshake finished in JS view (SNICallback) stored its session there.
      this.#sessions.drain(this.#sessionCache)
      this.emit('secureConnection', socket)
    })
  }

  /**
   * For a native listener the server does not own (the terminator's, one
   * per port): the current hosts' router, kept usable (not destroyed by a
   * reload) until `release()` is called.
   */
  holdRouter (): { router: NativeHandle, release: () => void } {
    const state = this.#state
    state.accepting++
    let released = false
    return {
      router: state.built.router,
      release: () => {
        if (released) return
        released = true
        state.accepting--
        if (state.retired && state.accepting === 0) state.built.destroy()
      },
    }
  }

  /**
   * node:tls addContext: serve `hostname` (exact or "*." wildcard) with
   * `context` from now on, after the configured hosts' names. The context
   * stays the caller's: destroy it after the server closed.
   */
  addContext (hostname: string, context: SecureContext): void {
    if (!(context instanceof SecureContext)) {
      throw new UnsupportedOptionError('addContext', 'give a SecureContext made by createSecureContext()')
    }
    this.#contexts.push({ names: [hostname.toLowerCase()], context })
    try {
      this.reload()
    } catch (err) {
      this.#contexts.pop()
      throw err
    }
  }

  /** node:tls setSecureContext: replaces the server-wide TLS options (and the shorthand host). */
  setSecureContext (options: Partial<ServerOptions>): void {
    this.reload({ ...this.#options, ...options })
  }

  /**
   * The ticket keys in use (a copy), the first one sealing: the configured
   * ones, or the generated ones of the moment (current, previous, next:
   * they change at every rotation). undefined when the server issues no
   * tickets (sessionCache 'none' without ticketKeys).
   */
  getTicketKeys (): Buffer | undefined {
    return this.#tickets?.material()
  }

  /**
   * Replaces the ticket keys (N × 80 bytes) in place: new tickets are sealed
   * with the first, tickets of other keys stop resuming. Generated keys stop
   * rotating. Live connections are not touched and no config is rebuilt.
   */
  setTicketKeys (keys: Buffer | readonly Buffer[]): void {
    const material = ticketKeyMaterial(keys, 'ticketKeys') as Buffer
    if (this.#tickets === null) {
      // No ticketer yet (sessionCache 'none'): the configs need one.
      this.reload({ ...this.#options, ticketKeys: material })
      return
    }
    this.#tickets.update({ keys: material, lifetime: ticketLifetime(this.#options.ticketLifetime, 'ticketLifetime') })
    this.#options = { ...this.#options, ticketKeys: material }
  }

  /**
   * ACME tls-alpn-01 (RFC 8737): from now on, a client that offers the
   * `acme-tls/1` ALPN protocol with SNI `name` gets `certificate` (the
   * validation certificate with its id-pe-acmeIdentifier extension, see
   * acmeValidationCertificate()) and is closed right after the handshake;
   * every other client of `name` still gets its host. `null` removes the
   * entry. The hosts' configs are not rebuilt, and entries survive reload().
   * Each such handshake emits 'acmeChallenge' (servername).
   */
  setAcmeChallenge (name: string, certificate: { cert: PemInput, key: PemInput } | null): void {
    if (typeof name !== 'string' || !/^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?$/i.test(name)) {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', 'name', 'must be one exact host name (RFC 8737: no wildcards)', name)
    }
    const key = name.toLowerCase().replace(/\.$/, '')
    let config: NativeHandle | null = null
    if (certificate !== null) {
      let key
      try {
        // No keys-match check: webpki refuses to parse a leaf with the
        // critical acmeIdentifier extension; the pair is made together.
        key = new addon.CertifiedKey(Buffer.from(certificate.cert), Buffer.from(certificate.key), undefined, { keysMatch: false })
      } catch (err) {
        throw configErrorFromNative(err, 'ERR_TLS_CONFIG_CERTIFICATE', 'certificate')
      }
      try {
        config = new addon.ServerConfig({
          certifiedKeys: [key],
          versions: [0x0303, 0x0304],
          ignoreClientOrder: false,
          // RFC 8737 §3: the only protocol negotiated on this config.
          alpn: ['acme-tls/1'],
          sendTickets: 0,
        })
      } catch (err) {
        throw configErrorFromNative(err, 'ERR_TLS_CONFIG_CERTIFICATE', 'certificate')
      } finally {
        key.destroy()
      }
    }
    try {
      this.#state.built.router.setChallenge(key, config)
    } catch (err) {
      // A closed server's router is destroyed: nothing may stay allocated.
      config?.destroy()
      throw err
    }
    this.#challenges.get(key)?.destroy()
    if (config === null) this.#challenges.delete(key)
    else this.#challenges.set(key, config)
  }

  /** Index and names of the host that `serverName` selects (-1: refused). */
  selectHost (serverName: string): number {
    return this.#state.built.router.select(serverName)
  }

  /** The host contexts in configuration order. */
  get hosts (): ReadonlyArray<import('./hosts').HostContext> {
    return this.#state.built.hosts
  }

  #build (options: ServerOptions): ServerState {
    rejectUnsupported(options, UNSUPPORTED_SERVER_OPTIONS)
    if (options.handshakeTimeout !== undefined && (typeof options.handshakeTimeout !== 'number' || options.handshakeTimeout < 0)) {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', 'handshakeTimeout', 'must be a number of milliseconds >= 0', options.handshakeTimeout)
    }
    const size = sessionCacheSize(options.sessionCache, 'sessionCache')
    const tickets = ticketSettings(options, size)
    // The cache survives reloads (sessions stay resumable) unless resized.
    // With a sessionStore and sessionCache 'none' it keeps nothing itself
    // and only reports to the store.
    const external = options.sessionStore !== undefined
    if (size !== this.#sessionCacheSize || external !== this.#sessionCacheExternal || ((size > 0 || external) && this.#sessionCache === null)) {
      this.#sessionCache?.destroy()
      this.#sessionCache = createSessionCache(size, external)
      this.#sessionCacheSize = size
      this.#sessionCacheExternal = external
      this.#sessionCache?.setReport(this.#sessions?.reports ?? external)
    }
    // So does the ticketer: a reload keeps its keys (tickets stay valid) and
    // applies new settings only once everything else has built.
    const fresh = tickets !== null && this.#tickets === null ? new ServerTickets(tickets) : null
    const ticketer = tickets === null ? null : (fresh ?? this.#tickets as ServerTickets).native
    const defaults: HostTlsOptions = {
      protocol: options.protocol,
      minVersion: options.minVersion,
      maxVersion: options.maxVersion,
      ciphersPrefer: options.ciphersPrefer,
      ciphersSuppress: options.ciphersSuppress,
      honorClientOrder: options.honorClientOrder ?? (options.honorCipherOrder === undefined ? undefined : !options.honorCipherOrder),
      ALPNProtocols: options.ALPNProtocols,
      options: options.options,
      clientAuth: options.clientAuth ?? nodeClientAuth(options),
    }
    const hosts = options.hosts ?? [singleHost(options)]
    try {
      const built = buildHosts(hosts, defaults, {
        sessionCache: this.#sessionCache,
        ticketer,
        strictSNI: options.strictSNI ?? options.hosts !== undefined,
        deferred: options.SNICallback !== undefined,
        extra: this.#contexts?.map((c) => ({ names: c.names, config: c.context.native, context: c.context.host })),
        logger: options.logger,
      }, options.hosts !== undefined ? 'hosts' : '')
      const weaker = this.#contexts
        .map((c) => ({ name: c.names[0], why: weakerContext(built.hosts[0], c.context.host) }))
        .find((c) => c.why !== undefined)
      if (weaker !== undefined) {
        built.destroy()
        throw new ConfigError('ERR_TLS_CONFIG_WEAKER_CONTEXT', 'addContext', `${weaker.name}: ${weaker.why}`)
      }
      if (tickets === null) {
        this.#tickets?.destroy()
        this.#tickets = null
      } else if (fresh !== null) {
        this.#tickets = fresh
      } else {
        (this.#tickets as ServerTickets).update(tickets)
      }
      // The challenges outlive routers: a reload must not lose one that an
      // ACME server is about to validate.
      for (const [name, config] of this.#challenges ?? []) built.router.setChallenge(name, config)
      return { id: this.#nextStateId++, built, accepting: 0, retired: false }
    } catch (err) {
      fresh?.destroy()
      throw err
    }
  }

  #retire (state: ServerState, final: boolean): void {
    state.retired = true
    if (state.accepting === 0) state.built.destroy()
    if (final) {
      for (const config of this.#challenges.values()) config.destroy()
      this.#challenges.clear()
      this.#sessionCache?.destroy()
      this.#sessionCache = null
      this.#sessionCacheSize = 0
      this.#tickets?.destroy()
      this.#tickets = null
    }
  }

  /** SNICallback routing: asks the application which context serves this hello. */
  #sniCallback (socket: RustlsSocket, state: ServerState, options: ServerOptions): void {
    const name = typeof socket.servername === 'string' ? socket.servername : ''
    const useDefault = (): void => socket.acceptWith(state.built.configs[0], state.built.hosts[0])
    // As node:tls: no SNI, no callback; the default context serves.
    if (name === '' || options.SNICallback === undefined) return useDefault()
    let answered = false
    const answer = (err: Error | null, context?: SecureContext): void => {
      if (answered || socket.destroyed) return
      answered = true
      if (err !== null && err !== undefined) socket.acceptWith(null)
      else if (context instanceof SecureContext) {
        const why = weakerContext(state.built.hosts[0], context.host)
        if (why === undefined) {
          socket.acceptWith(context.native, context.host)
        } else {
          this.#logger.error({ servername: name }, `SNICallback context refused: ${why}`)
          socket.acceptWith(null)
        }
      }
      else useDefault()
    }
    try {
      options.SNICallback(name, answer)
    } catch (err) {
      this.#logger.warn({ err }, 'SNICallback threw; the connection is refused')
      answer(err as Error)
    }
  }

  #onConnection = (transport: net.Socket): void => {
    const state = this.#state
    let connection
    const sessions = this.#sessions
    try {
      connection = new addon.Connection(state.built.router, sessions.looksUp
        ? { sessionLookup: { tls12: true, tls13: this.#tickets === null, cache: this.#sessionCache } }
        : undefined)
    } catch (err) {
      this.#logger.error({ err }, 'cannot create a TLS connection')
      transport.destroy()
      return
    }
    // Until the socket settles (routed, failed or gone), the state's router
    // stays alive for it: hooks.settled gives it back.
    state.accepting++
    const options = this.#options
    const socket = new RustlsSocket({
      pump: { kind: 'stream', transport },
      connection,
      isServer: true,
      server: this,
      hooks: state.streamHooks ??= this.#hooks(state, 'stream'),
      handshakeTimeout: options.handshakeTimeout ?? 120000,
      allowHalfOpen: options.allowHalfOpen ?? false,
      highWaterMark: options.highWaterMark,
      logger: this.#logger,
    })
    socket.once('secure', () => {
      this.#sessions.drain(this.#sessionCache)
      this.emit('secureConnection', socket)
    })
  }

  /**
   * The hooks every socket of `state` shares, by where its handshake runs:
   * 'stream' (net.Server path: the socket holds the state's router from its
   * creation until it settles, and its ACME validations are reported here),
   * 'paused' (native listener, a hello paused for SNICallback: the handshake
   * finishes in JS view) or 'native' (handshake done natively; the listener
   * holds its route set and reports validations itself).
   */
  #hooks (state: ServerState, path: 'stream' | 'paused' | 'native'): SocketHooks {
    const options = this.#options
    return {
      hostFor: (_socket, index) => state.built.hosts[index],
      settled: path === 'stream'
        ? () => {
            state.accepting--
            if (state.retired && state.accepting === 0) state.built.destroy()
          }
        : undefined,
      clientError: path === 'native'
        ? undefined
        : (socket, err) => {
            this.#logger.debug({ err, remoteAddress: socket.remoteAddress }, 'TLS handshake failed')
            this.emit('tlsClientError', err, socket)
          },
      challenge: path === 'stream' ? (socket) => this.emit('acmeChallenge', socket.servername) : undefined,
      clientHello: options.SNICallback === undefined ? undefined : (socket) => this.#sniCallback(socket, state, options),
      sessionLookup: (socket) => this.#lookupFor(socket),
    }
  }

  /** A hello on a JS-side connection asks for a session: look it up, bounded, and go on. */
  #lookupFor (socket: RustlsSocket): void {
    const id = socket.sessionKey()
    if (id === undefined) return socket.resumeSessionWith(null)
    void this.#sessions.lookup(id, true).then((data) => {
      socket.resumeSessionWith(data)
      if (data === null) return
      // As the listener's TlsStream::session_spent(): refused, or a single-use TLS 1.3 session.
      socket.once('secure', () => {
        if (!socket.isSessionReused() || socket.getProtocol() === 'TLSv1.3') this.#sessions.spent([id])
      })
    })
  }
}

/**
 * The node:tls shorthand (cert/key without hosts) as one host named after
 * its certificate's DNS names. Unless strictSNI is set, it serves every
 * client whatever SNI it sends, as a node:tls server does.
 */
function singleHost (options: ServerOptions): HostOptions {
  if (options.cert === undefined && options.certificates === undefined) {
    throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', 'cert', 'a certificate is required (cert/key, certificates or hosts)')
  }
  const certificates = options.certificates ?? (Array.isArray(options.cert) ? pairCertificates(options) : undefined)
  const names = certificateDnsNames(certificates?.[0]?.cert ?? options.cert as PemInput)
  const primary = names.find((n) => !n.startsWith('*.')) ?? 'localhost'
  return {
    serverName: primary,
    aliases: names.filter((n) => n !== primary),
    certificates,
    cert: certificates === undefined ? options.cert as PemInput : undefined,
    key: certificates === undefined ? options.key as PemInput : undefined,
    passphrase: options.passphrase,
  }
}

/**
 * node:tls' arrays of chains and keys: each chain gets the key whose public
 * key matches its leaf (OpenSSL pairs them by key type, not by position).
 */
function pairCertificates (options: ServerOptions): CertificateEntry[] {
  const chains = options.cert as readonly PemInput[]
  const keys = (Array.isArray(options.key) ? options.key : options.key === undefined ? [] : [options.key])
    .map((k: PemInput | { pem: PemInput, passphrase?: string }) =>
      typeof k === 'object' && !Buffer.isBuffer(k) ? { pem: k.pem, passphrase: k.passphrase ?? options.passphrase } : { pem: k, passphrase: options.passphrase })
  const spki = (key: crypto.KeyObject): string => key.export({ type: 'spki', format: 'der' }).toString('base64')
  return chains.map((chain, i) => {
    const leaf = certificateBlocks(chain)[0]
    let wanted: string | undefined
    try {
      wanted = leaf === undefined ? undefined : spki(new X509Certificate(leaf).publicKey)
    } catch {
      wanted = undefined
    }
    const match = keys.find((k) => {
      try {
        return wanted !== undefined && spki(crypto.createPublicKey({ key: k.pem, format: 'pem', passphrase: k.passphrase } as crypto.PublicKeyInput)) === wanted
      } catch {
        return false
      }
    }) ?? keys[i]
    return { cert: chain, key: match?.pem, passphrase: match?.passphrase }
  })
}

function certificateDnsNames (cert: PemInput | undefined): string[] {
  const first = cert === undefined ? undefined : certificateBlocks(cert)[0]
  if (first === undefined) return []
  try {
    const san = new X509Certificate(first).subjectAltName ?? ''
    return [...new Set(san.split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase()))]
  } catch {
    // Unparseable: loadCertificate reports it with its key path.
    return []
  }
}

/** node:tls' requestCert/rejectUnauthorized/ca/crl as clientAuth. */
function nodeClientAuth (options: ServerOptions): HostTlsOptions['clientAuth'] {
  if (options.requestCert !== true) return undefined
  return {
    // rustls never accepts a certificate it cannot verify: with
    // rejectUnauthorized false a client may still connect without one.
    mode: options.rejectUnauthorized === false ? 'optional' : 'required',
    ca: options.ca,
    crls: options.crl,
  }
}

export function createServer (options: ServerOptions, secureConnectionListener?: (socket: RustlsSocket) => void): Server {
  return new Server(options, secureConnectionListener)
}
