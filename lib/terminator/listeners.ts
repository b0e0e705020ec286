// The terminator's control plane: it loads the configuration into
// generations (the library Server builds every host's TLS config, so all
// ports share the hosts and the session cache: mod_tls TLSEngine semantics,
// a port is TLS when listed, hosts apply to every port), resolves backend
// names, binds the native listeners (native-plane.ts) and hands them each
// generation's routes, then runs reload, certificate refresh (ACME, OCSP),
// the drain on shutdown, metrics and logs. Every connection is served by the
// native data plane; no JS runs per connection or per request.
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import type net from 'node:net'

import type { Logger as PinoLogger } from 'pino'

import { liveHandles } from '../diagnostics'
import type { Server, ServerOptions } from '../server'
import { AcmeManager, type AcmeManagerOptions } from './acme'
import { BackendNames } from './backend-names'
import { ConfigProblems, formatProblem, type ListenAddress, problemFromError, type LogLevel, type TerminatorConfig } from './config'
import { loadFiles, type LoadedConfig, type ManagedMaterial } from './files'
import { Metrics } from './metrics'
import { NativePlane } from './native-plane'
import { OcspManager } from './ocsp'
import { buildAll, Generation } from './reload'

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
  /** A cluster worker: the primary's listening sockets, one per `listen` address. */
  listenFds?: readonly number[]
  /** `store`: ACME state shared with other instances (one orders, every one answers and serves). */
  acmeStore?: AcmeManagerOptions['store']
  /** Resolves a backend's DNS name (tests); default dns.promises.lookup. */
  lookup?: (name: string) => Promise<string>
}

export interface BoundAddress {
  address: string
  port: number
  family: string
}

const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/'

export class Terminator {
  readonly metrics: Metrics
  readonly #options: TerminatorOptions
  readonly #logger: PinoLogger
  readonly #tlsLogger: PinoLogger
  readonly #tcpLogger: PinoLogger
  readonly #httpLogger: PinoLogger
  readonly #server: Server
  readonly #names: BackendNames
  #generation: Generation
  #nextId = 2
  #draining: Promise<void> | undefined
  /** Reloads run one after the other (each resolves names first). */
  #reloading: Promise<unknown> = Promise.resolve()
  readonly #plane: NativePlane
  readonly #managed: ManagedMaterial
  #acme: AcmeManager | undefined
  #ocsp: OcspManager | undefined
  #acmeHttp: http.Server | undefined

  private constructor (options: TerminatorOptions, managed: ManagedMaterial, loaded: LoadedConfig, names: BackendNames) {
    this.#options = options
    this.#logger = options.logger
    this.#tlsLogger = options.logger.child({ component: 'tls' })
    this.#tcpLogger = options.logger.child({ component: 'tcp' })
    this.#httpLogger = options.logger.child({ component: 'http' })
    this.metrics = options.metrics ?? new Metrics()
    this.#names = names
    this.#applyLevel(loaded.config.log.level)
    const { server, backends } = buildAll(loaded, this.#serverOptions(loaded))
    this.#server = server
    this.#generation = new Generation(1, loaded, this.#server.hosts, backends)
    this.#plane = new NativePlane({
      server: this.#server,
      names,
      logger: this.#logger,
      tlsLogger: this.#tlsLogger,
      tcpLogger: this.#tcpLogger,
      httpLogger: this.#httpLogger,
      metrics: this.metrics,
      handshakeTimeout: loaded.config.handshakeTimeout,
      maxConnections: loaded.config.maxConnections,
    })
    this.#managed = managed
    this.metrics.setCertificates(() => this.#generation.hosts.flatMap((h) => h.leafDers.map((der, certificate) => ({
      host: h.serverName, certificate, notAfter: Date.parse(new X509Certificate(der).validTo),
    }))))
  }

  /** Loads the configuration, builds everything and listens. Throws ConfigProblems or a listen error. */
  static async start (options: TerminatorOptions): Promise<Terminator> {
    // Staples come from the OCSP manager, which exists once the terminator does.
    let ocsp: () => OcspManager | undefined = () => undefined
    const managed: ManagedMaterial = { staple: (file) => ocsp()?.staple(file) }
    const loaded = options.load(managed)
    const names = new BackendNames(options.logger.child({ component: 'tcp' }), options.lookup)
    await names.resolve(loaded.config)
    const t = new Terminator(options, managed, loaded, names)
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
      this.#acme ??= new AcmeManager({
        stateDir: config.stateDir,
        server: this.#server,
        httpChallenges: (token, keyAuthorization) => this.#plane.setHttpChallenge(token, keyAuthorization),
        logger: this.#logger.child({ component: 'acme' }),
        metrics: this.metrics,
        refresh,
        store: this.#options.acmeStore,
      })
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
    return this.#plane.addresses
  }

  get openConnections (): number {
    return this.#plane.open
  }

  #serverOptions (loaded: LoadedConfig): ServerOptions {
    // The terminator listens itself (native listeners) and only builds
    // hosts through this server: never the library's own listener.
    return { ...loaded.serverOptions, logger: this.#tlsLogger, nativeListener: false }
  }

  #applyLevel (level: LogLevel): void {
    if (this.#options.fixedLevel === true) return
    // pino children copy the level when made; they follow the parent only when told.
    for (const l of [this.#logger, this.#tlsLogger, this.#tcpLogger, this.#httpLogger]) l.level = level
  }

  async #listen (): Promise<void> {
    await this.#plane.listen(this.config.listen, this.#generation, this.#options.listenFds)
    const acmeHttp = this.config.acmeHttpListen
    if (acmeHttp !== undefined) await this.#listenAcmeHttp(acmeHttp)
  }

  /**
   * acme.httpListen: plain HTTP for http-01 only (RFC 8555 §8.3). The CA
   * fetches http://<name>/.well-known/acme-challenge/<token> on port 80,
   * which the TLS ports never see; everything else gets 404 here. A small
   * node:http server of the control plane's: it serves ACME, not traffic
   * (on the TLS ports the same table is answered natively).
   */
  async #listenAcmeHttp (addr: ListenAddress): Promise<void> {
    const server = http.createServer((req, res) => {
      const url = req.url ?? ''
      const answer = url.startsWith(ACME_CHALLENGE_PATH) && (req.method === 'GET' || req.method === 'HEAD')
        ? this.#acme?.httpChallenge(url.slice(ACME_CHALLENGE_PATH.length).split('?')[0])
        : undefined
      if (answer === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' }).end('not found: this port answers ACME http-01 challenges only\n')
        return
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) })
      res.end(req.method === 'HEAD' ? undefined : answer)
    })
    server.keepAliveTimeout = 1000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port: addr.port, host: addr.host }, () => {
        server.removeListener('error', reject)
        resolve()
      })
    })
    server.on('error', (err) => this.#logger.error({ err, listen: addr.text }, 'acme.httpListen failed'))
    this.#acmeHttp = server
    const bound = server.address() as net.AddressInfo
    this.#logger.info({ listen: addr.text, address: bound.address, port: bound.port }, 'ACME http-01 listening')
  }

  /**
   * Re-reads the configuration and its files (SIGHUP) and looks its backend
   * names up anew. New connections get the new hosts and backends; live
   * ones keep theirs. A configuration that does not load is logged and the
   * running one keeps serving. `listen`, `workers` and `metrics` need a
   * restart; `maxConnections`, `log.level` and everything about hosts and
   * backends apply at once. Resolves with whether it took effect.
   */
  reload (): Promise<boolean> {
    const run = this.#reloading.then(async () => await this.#reload())
    this.#reloading = run
    return run
  }

  async #reload (): Promise<boolean> {
    if (this.#draining !== undefined) return false
    let loaded: LoadedConfig
    let backends
    try {
      loaded = this.#options.load(this.#managed)
    } catch (err) {
      this.#reloadFailed(err)
      return false
    }
    await this.#names.resolve(loaded.config)
    if (this.#draining !== undefined) return false
    try {
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
    this.#plane.route(this.#generation, loaded.config.maxConnections, loaded.config.handshakeTimeout)
    previous.retire()
    return previous
  }

  /**
   * Rebuilds the hosts from the running configuration's files, for material
   * that changed under it (an ACME certificate, an OCSP staple). As with
   * reload, new connections get it and live ones keep what they have; a
   * failure is logged and the current hosts keep serving. Backend names
   * keep the addresses they resolve to now.
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
    this.#logger.info({ open: this.openConnections, drainTimeout: timeout }, 'draining')
    this.#plane.stopListening()
    this.#acme?.stop()
    this.#ocsp?.stop()
    if (this.openConnections > 0) {
      // Native connections end without a JS event: polled.
      await new Promise<void>((resolve) => {
        const started = Date.now()
        const poll = setInterval(() => {
          if (this.openConnections === 0 || Date.now() - started >= timeout) {
            clearInterval(poll)
            resolve()
          }
        }, 50)
      })
    }
    const left = this.openConnections
    if (left > 0) this.#logger.warn({ open: left }, 'drain timeout: closing the remaining connections')
    this.#closeNow()
    // Let closed connections release their native handles.
    await new Promise((resolve) => setTimeout(resolve, 50))
    this.#logger.info({ liveHandles: liveHandles() }, 'stopped')
  }

  #closeNow (): void {
    this.#acme?.stop()
    this.#ocsp?.stop()
    this.#acmeHttp?.close()
    this.#acmeHttp?.closeAllConnections()
    this.#plane.abortAll()
    this.#server.close()
    this.#generation.destroy()
  }
}
