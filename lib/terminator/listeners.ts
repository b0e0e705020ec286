// The terminator proper: TCP listeners feeding one library Server (so all
// ports share the host configs and the session cache, mod_tls TLSEngine
// semantics: a port is TLS when listed, hosts apply to every port), the
// hand-off of established connections to tcp or http backends, the
// connection limit, reload and the drain on shutdown.
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'

import type { Logger as PinoLogger } from 'pino'

import { liveHandles } from '../diagnostics'
import type { Server, ServerOptions } from '../server'
import type { RustlsSocket } from '../tls-socket/socket'
import { AcmeManager, type AcmeManagerOptions } from './acme'
import { ConfigProblems, formatProblem, type ListenAddress, problemFromError, type LogLevel, type TerminatorConfig } from './config'
import { loadFiles, type LoadedConfig, type ManagedMaterial } from './files'
import { HttpFrontend, sslHeaders } from './http-backend'
import { Metrics } from './metrics'
import { NativePlane, nativePlaneEnabled } from './native-plane'
import { OcspManager } from './ocsp'
import { buildAll, Generation } from './reload'
import { forwardTcp } from './tcp-backend'

export interface TerminatorOptions {
  /** Reads the configuration and its files; called at start and on every reload. */
  load: (managed: ManagedMaterial) => LoadedConfig
  /**
   * Re-reads the files of the running configuration (an ACME renewal, a
   * new OCSP staple). Default: loadFiles(config, {managed}).
   */
  reloadFiles?: (config: TerminatorConfig, managed: ManagedMaterial) => LoadedConfig
  logger: PinoLogger
  metrics?: Metrics
  /** The log level came from the command line: `log.level` in the file is then ignored. */
  fixedLevel?: boolean
  /** A cluster worker on the native data plane: the primary's listening sockets, one per `listen` address. */
  listenFds?: readonly number[]
  /** `store`: ACME state shared with other instances (one orders, every one answers and serves). */
  acmeStore?: AcmeManagerOptions['store']
}

export interface BoundAddress {
  address: string
  port: number
  family: string
}

/** Listens on `addr`; rejects with the listen error (EADDRINUSE, EACCES). */
async function listenAt (server: net.Server, addr: ListenAddress): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: addr.port, host: addr.host }, () => {
      server.removeListener('error', reject)
      resolve()
    })
  })
}

export class Terminator {
  readonly metrics: Metrics
  readonly #options: TerminatorOptions
  readonly #logger: PinoLogger
  readonly #tlsLogger: PinoLogger
  readonly #tcpLogger: PinoLogger
  readonly #httpLogger: PinoLogger
  readonly #server: Server
  readonly #http: HttpFrontend
  #generation: Generation
  #nextId = 2
  readonly #listeners: net.Server[] = []
  /** Client transports, accepted and not yet closed. */
  readonly #open = new Set<net.Socket>()
  readonly #generationOf = new WeakMap<net.Socket, Generation>()
  readonly #clientAddress = new WeakMap<net.Socket, string>()
  #draining: Promise<void> | undefined
  #drained: (() => void) | undefined
  /** The native data plane (default); undefined: net.Servers and the JS pump. */
  readonly #plane: NativePlane | undefined
  readonly #managed: ManagedMaterial
  #acme: AcmeManager | undefined
  #ocsp: OcspManager | undefined
  #acmeHttp: http.Server | undefined

  private constructor (options: TerminatorOptions, managed: ManagedMaterial, loaded: LoadedConfig) {
    this.#options = options
    this.#logger = options.logger
    this.#tlsLogger = options.logger.child({ component: 'tls' })
    this.#tcpLogger = options.logger.child({ component: 'tcp' })
    this.#httpLogger = options.logger.child({ component: 'http' })
    this.metrics = options.metrics ?? new Metrics()
    // Bytes of live connections; closed ones were counted as they closed.
    this.metrics.addSource(() => {
      let bytesReceived = 0
      let bytesSent = 0
      for (const s of this.#open) {
        const { bytesRead, bytesWritten } = s
        bytesReceived += bytesRead
        bytesSent += bytesWritten
      }
      return { bytesReceived, bytesSent }
    })
    this.#applyLevel(loaded.config.log.level)
    const { server, backends } = buildAll(loaded, this.#serverOptions(loaded))
    this.#server = server
    this.#server.on('secureConnection', this.#onSecure)
    this.#server.on('tlsClientError', this.#onClientError)
    this.#generation = new Generation(1, loaded, this.#server.hosts, backends)
    this.#http = new HttpFrontend({ logger: this.#httpLogger, metrics: this.metrics })
    if (nativePlaneEnabled()) {
      this.#plane = new NativePlane({
        server: this.#server,
        logger: this.#logger,
        tlsLogger: this.#tlsLogger,
        tcpLogger: this.#tcpLogger,
        httpLogger: this.#httpLogger,
        metrics: this.metrics,
        handshakeTimeout: loaded.config.handshakeTimeout,
        maxConnections: loaded.config.maxConnections,
        onSecure: (socket, generation) => this.#dispatch(socket, generation),
      })
    }
    this.#managed = managed
    this.#http = new HttpFrontend({ logger: this.#httpLogger, metrics: this.metrics, acmeChallenge: (token) => this.#acme?.httpChallenge(token) })
    this.metrics.setCertificates(() => this.#generation.hosts.flatMap((h) => h.leafDers.map((der, certificate) => ({
      host: h.serverName, certificate, notAfter: Date.parse(new X509Certificate(der).validTo),
    }))))
  }

  /** Loads the configuration, builds everything and listens. Throws ConfigProblems or a listen error. */
  static async start (options: TerminatorOptions): Promise<Terminator> {
    // Staples come from the OCSP manager, which exists once the terminator does.
    let ocsp: () => OcspManager | undefined = () => undefined
    const managed: ManagedMaterial = { staple: (file) => ocsp()?.staple(file) }
    const t = new Terminator(options, managed, options.load(managed))
    ocsp = () => t.#ocsp
    try {
      await t.#listen()
      t.#syncManaged(t.config)
    } catch (err) {
      t.#closeNow()
      throw err
    }
    return t
  }

  /** Starts, follows or stops the ACME and OCSP managers for `config`. */
  #syncManaged (config: TerminatorConfig): void {
    const refresh = (reason: string): boolean => this.refresh(reason)
    if (config.stateDir !== undefined && config.hosts.some((h) => h.acme !== undefined)) {
      this.#acme ??= new AcmeManager({ stateDir: config.stateDir, server: this.#server, logger: this.#logger.child({ component: 'acme' }), metrics: this.metrics, refresh, store: this.#options.acmeStore })
    }
    this.#acme?.sync(config)
    if (config.hosts.some((h) => h.certificates.some((c) => c.ocspAuto === true))) {
      this.#ocsp ??= new OcspManager({ logger: this.#logger.child({ component: 'ocsp' }), metrics: this.metrics, refresh, readChain: (f) => fs.readFileSync(f, 'utf8') })
    }
    this.#ocsp?.sync(config)
  }

  get config (): LoadedConfig['config'] {
    return this.#generation.loaded.config
  }

  /** Bound addresses, in `listen` order (actual ports when 0 was asked). */
  get addresses (): BoundAddress[] {
    if (this.#plane !== undefined) return this.#plane.addresses
    return this.#listeners.map((l) => l.address() as net.AddressInfo)
  }

  get openConnections (): number {
    return this.#open.size + (this.#plane?.open ?? 0)
  }

  #serverOptions (loaded: LoadedConfig): ServerOptions {
    // allowHalfOpen: a client's close_notify ends only the way in (tcp mode
    // half-close); the backend's end then ends the way out.
    // The terminator listens itself (native plane or net.Servers) and only
    // builds hosts through this server: never the library's own listener.
    return { ...loaded.serverOptions, allowHalfOpen: true, logger: this.#tlsLogger, nativeListener: false }
  }

  #applyLevel (level: LogLevel): void {
    if (this.#options.fixedLevel === true) return
    // pino children copy the level when made; they follow the parent only when told.
    for (const l of [this.#logger, this.#tlsLogger, this.#tcpLogger, this.#httpLogger]) l.level = level
  }

  async #listen (): Promise<void> {
    if (this.#plane !== undefined) await this.#plane.listen(this.config.listen, this.#generation, this.#options.listenFds)
    for (const addr of this.#plane === undefined ? this.config.listen : []) {
      // allowHalfOpen: the TLS layer decides when the transport ends; a
      // client's FIN after its close_notify must not end our side while
      // the backend still answers (net would end it on its own otherwise).
      const server = net.createServer({ noDelay: true, allowHalfOpen: true }, this.#onRawConnection)
      await listenAt(server, addr)
      server.on('error', (err) => this.#logger.error({ err, listen: addr.text }, 'listener failed'))
      this.#listeners.push(server)
      const bound = server.address() as net.AddressInfo
      this.#logger.info({ listen: addr.text, address: bound.address, port: bound.port }, 'listening')
    }
    const acmeHttp = this.config.acmeHttpListen
    if (acmeHttp !== undefined) await this.#listenAcmeHttp(acmeHttp)
  }

  /**
   * acme.httpListen: plain HTTP for http-01 only. The CA fetches
   * http://<name>/.well-known/acme-challenge/<token> on port 80, which the
   * TLS ports never see; everything else gets 404 here.
   */
  async #listenAcmeHttp (addr: ListenAddress): Promise<void> {
    const server = http.createServer((req, res) => {
      if (this.#http.serveAcmeChallenge(req, res)) return
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('not found: this port answers ACME http-01 challenges only\n')
    })
    server.keepAliveTimeout = 1000
    await listenAt(server, addr)
    server.on('error', (err) => this.#logger.error({ err, listen: addr.text }, 'acme.httpListen failed'))
    this.#acmeHttp = server
    const bound = server.address() as net.AddressInfo
    this.#logger.info({ listen: addr.text, address: bound.address, port: bound.port }, 'ACME http-01 listening')
  }

  #onRawConnection = (raw: net.Socket): void => {
    // Read now: a socket destroyed before the handshake no longer has it.
    const remote = raw.remoteAddress ?? ''
    if (this.#draining !== undefined) {
      raw.destroy()
      return
    }
    const max = this.config.maxConnections
    if (max !== undefined && this.#open.size >= max) {
      this.metrics.connectionRejected()
      this.#logger.debug({ remoteAddress: remote, maxConnections: max }, 'connection limit reached; connection closed')
      raw.destroy()
      return
    }
    const generation = this.#generation
    generation.acquire()
    this.#open.add(raw)
    this.#generationOf.set(raw, generation)
    this.#clientAddress.set(raw, remote)
    this.metrics.connectionOpened()
    raw.once('close', () => {
      this.#open.delete(raw)
      const { bytesRead, bytesWritten } = raw
      this.metrics.connectionClosed(bytesRead, bytesWritten)
      generation.release()
      if (this.openConnections === 0) this.#drained?.()
    })
    // The library's Server takes the connection with its current hosts,
    // which are this generation's (reload swaps both together).
    this.#server.emit('connection', raw)
  }

  #onSecure = (socket: RustlsSocket): void => {
    const raw = socket.transport as net.Socket
    const generation = this.#generationOf.get(raw) ?? this.#generation
    this.metrics.handshake('ok', undefined, socket.isSessionReused())
    this.#dispatch(socket, generation)
  }

  /** An established connection goes to its host's backend (the native plane counted its handshake). */
  #dispatch (socket: RustlsSocket, generation: Generation): void {
    const raw = socket.transport as net.Socket
    const index = socket.hostIndex
    const resumed = socket.isSessionReused()
    socket.on('error', (err: Error & { code?: string }) => this.#logger.debug({ code: err.code, remoteAddress: socket.remoteAddress }, 'client connection failed'))
    const host = generation.hosts[index]
    const backend = generation.backends[index]
    const sni = socket.servername === false ? undefined : socket.servername
    this.#logger.debug({
      remoteAddress: socket.remoteAddress,
      servername: sni,
      host: host?.serverName,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher()?.standardName,
      alpn: socket.alpnProtocol === false ? undefined : socket.alpnProtocol,
      resumed,
    }, 'handshake complete')
    if (host === undefined || backend === undefined) {
      socket.destroy()
      return
    }
    if (backend.config.mode === 'tcp') {
      forwardTcp(socket, backend, { logger: this.#tcpLogger, metrics: this.metrics })
      return
    }
    this.#http.accept(socket, {
      generation,
      hostIndex: index,
      sni,
      clientAddress: this.#clientAddress.get(raw) ?? socket.remoteAddress ?? '',
      sslHeaders: host.env.stdEnvVars || host.env.exportCertData ? sslHeaders(socket.getEnvVars()) : {},
    })
  }

  #onClientError = (err: Error & { code?: string }, socket: RustlsSocket): void => {
    const code = err.code ?? 'UNKNOWN'
    if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.metrics.handshake('timeout')
    else this.metrics.handshake('failed', code)
    const raw = socket.transport as net.Socket
    // Client-caused (SPEC §5): info, never warn.
    this.#logger.info({
      remoteAddress: this.#clientAddress.get(raw) ?? socket.remoteAddress,
      servername: socket.servername === false ? undefined : socket.servername,
      code,
    }, 'TLS handshake failed')
  }

  /**
   * Re-reads the configuration and its files (SIGHUP). New connections get
   * the new hosts and backends; live ones keep theirs. A configuration that
   * does not load is logged and the running one keeps serving. `listen`,
   * `workers` and `metrics` need a restart; `maxConnections`, `log.level`
   * and everything about hosts and backends apply at once.
   */
  reload (): boolean {
    if (this.#draining !== undefined) return false
    let loaded: LoadedConfig
    let backends
    try {
      loaded = this.#options.load(this.#managed)
      backends = buildAll(loaded, this.#serverOptions(loaded), this.#server).backends
    } catch (err) {
      this.#reloadFailed(err)
      return false
    }
    // The level first: the native plane reads it when it takes the new routes.
    this.#applyLevel(loaded.config.log.level)
    const previous = this.#install(loaded, backends)
    this.#syncManaged(loaded.config)
    const before = previous.loaded.config
    const after = loaded.config
    for (const key of ['listen', 'workers', 'metrics', 'acmeHttpListen', 'stateDir'] as const) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
        this.#logger.warn({ key }, `${key} changed: takes effect after a restart`)
      }
    }
    this.metrics.reload(true)
    this.#logger.info({ generation: this.#generation.id, hosts: after.hosts.length }, 'configuration reloaded')
    return true
  }

  /**
   * Ticket keys from a cluster primary (its rotations), put in place without
   * rebuilding anything. A configuration that names a ticketKeys file keeps
   * the file's keys: the file overrides. Ignored once draining: the server
   * is closing and must not build anything new.
   */
  setTicketKeys (keys: Buffer): void {
    if (this.#draining !== undefined || this.config.ticketKeys !== undefined) return
    this.#server.setTicketKeys(keys)
  }

  /** Makes `loaded` the current generation; returns the retired one. */
  #install (loaded: LoadedConfig, backends: ReturnType<typeof buildAll>['backends']): Generation {
    const previous = this.#generation
    this.#generation = new Generation(this.#nextId++, loaded, this.#server.hosts, backends)
    this.#plane?.route(this.#generation, loaded.config.maxConnections, loaded.config.handshakeTimeout)
    previous.retire()
    return previous
  }

  /**
   * Rebuilds the hosts from the running configuration's files, for material
   * that changed under it (an ACME certificate, an OCSP staple). As with
   * reload, new connections get it and live ones keep what they have; a
   * failure is logged and the current hosts keep serving.
   */
  refresh (reason: string): boolean {
    if (this.#draining !== undefined) return false
    const config = this.#generation.loaded.config
    try {
      const loaded = (this.#options.reloadFiles ?? ((c, m) => loadFiles(c, { managed: m })))(config, this.#managed)
      this.#install(loaded, buildAll(loaded, this.#serverOptions(loaded), this.#server).backends)
    } catch (err) {
      const problems = err instanceof ConfigProblems ? err.problems : [problemFromError(err)]
      this.#logger.error({ reason, problems: problems.map(formatProblem) }, 'certificate refresh failed; the current certificates keep serving')
      return false
    }
    this.#logger.info({ reason, generation: this.#generation.id }, 'certificates refreshed')
    return true
  }

  #reloadFailed (err: unknown): void {
    this.metrics.reload(false)
    const problems = err instanceof ConfigProblems ? err.problems : [problemFromError(err)]
    this.#logger.error({ problems: problems.map(formatProblem) }, 'reload failed; the previous configuration keeps serving')
  }

  /**
   * SIGTERM: stops accepting, lets live connections finish (HTTP ones are
   * asked to close: GOAWAY, Connection: close) for up to `drainTimeout`,
   * then closes what is left. Resolves when everything is released.
   */
  shutdown (): Promise<void> {
    if (this.#draining !== undefined) return this.#draining
    this.#draining = this.#drain()
    return this.#draining
  }

  async #drain (): Promise<void> {
    const timeout = this.config.drainTimeout
    this.#logger.info({ open: this.#open.size, drainTimeout: timeout }, 'draining')
    // close() stops accepting at once; its callback would wait for every
    // connection, which is what the rest of the drain manages.
    for (const l of this.#listeners) l.close()
    this.#plane?.stopListening()
    this.#acme?.stop()
    this.#ocsp?.stop()
    this.#http.drain()
    if (this.openConnections > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout)
        // The native plane's connections end without a JS event: polled.
        const poll = this.#plane === undefined ? undefined : setInterval(() => { if (this.openConnections === 0) this.#drained?.() }, 50)
        this.#drained = () => {
          clearTimeout(timer)
          if (poll !== undefined) clearInterval(poll)
          resolve()
        }
      })
    }
    const left = this.openConnections
    if (left > 0) this.#logger.warn({ open: left }, 'drain timeout: closing the remaining connections')
    this.#closeNow()
    // Let destroyed connections release their native handles.
    await new Promise((resolve) => setTimeout(resolve, 50))
    this.#logger.info({ liveHandles: liveHandles() }, 'stopped')
  }

  #closeNow (): void {
    this.#acme?.stop()
    this.#ocsp?.stop()
    this.#acmeHttp?.close()
    this.#acmeHttp?.closeAllConnections()
    for (const l of this.#listeners) l.close()
    this.#plane?.abortAll()
    for (const s of this.#open) s.destroy()
    this.#http.close()
    this.#server.close()
    this.#generation.destroy()
  }
}
