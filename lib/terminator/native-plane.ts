// The terminator's data plane, seen from its control plane: one native
// listener per `listen` address (lib/native-listener.ts), all routing with
// the library server's hosts. Every connection is served in native code
// (native/src/plane/): tcp-mode hosts are spliced to their backend, http-mode
// hosts served by the HTTP/1.1 and HTTP/2 fronts. JS hears of connections
// only in batches, one call per kind of news per loop turn: failed
// handshakes, unreachable backends, HTTP answers to log (403, 421, HTTP/2
// abuse), completed handshakes when debug logging asks for them, and route
// sets no connection uses any more. It hands native code what the control
// plane decides: routes and backend targets per generation, the ACME http-01
// table, the limits and timeouts.
import type { Logger as PinoLogger } from 'pino'

import { cipherInfoForId } from '../ciphers'
import { versionName } from '../protocol'
import { addon, type ListenerCounters, PlanKind } from '../native'
import { NativeListenerFront } from '../native-listener'
import type { Server } from '../server'
import type { BackendNames } from './backend-names'
import { DEFAULTS, type ListenAddress } from './config'
import type { Metrics, MetricsSnapshot } from './metrics'
import type { Generation } from './reload'

let cipherNamesSet = false

/** The PROXY v2 header names suites as OpenSSL does; native code gets the table once. */
function setCipherNames (): void {
  if (cipherNamesSet) return
  cipherNamesSet = true
  const ids = addon.supportedCipherSuites().map((s) => s.id)
  addon.setCipherNames(ids, ids.map((id) => cipherInfoForId(id).opensslName), ids.map((id) => cipherInfoForId(id).ianaName))
}

export interface NativePlaneOptions {
  server: Server
  /** Backend names and the addresses they resolve to. */
  names: BackendNames
  logger: PinoLogger
  tlsLogger: PinoLogger
  tcpLogger: PinoLogger
  /** The http fronts' logger (403/421 and HTTP/2 abuse lines). */
  httpLogger: PinoLogger
  metrics: Metrics
  handshakeTimeout: number
  maxConnections: number | undefined
}

export class NativePlane {
  readonly #options: NativePlaneOptions
  readonly #fronts: NativeListenerFront[] = []
  /** Route set id (= generation id) → its generation, while a listener uses it. */
  readonly #generations = new Map<number, Generation>()
  /** Per listener and generation: releases the server's hold on that generation's router. */
  readonly #holds = new Map<string, () => void>()
  /** ACME http-01 answers in place (token → key authorization), for listeners made later too. */
  readonly #challenges = new Map<string, string>()

  constructor (options: NativePlaneOptions) {
    this.#options = options
    setCipherNames()
    options.metrics.addSource(() => this.#snapshot())
  }

  /**
   * Binds every address (in order), or accepts on the sockets a cluster
   * primary bound for them (`fds`), and logs each.
   */
  async listen (addresses: readonly ListenAddress[], generation: Generation, fds?: readonly number[]): Promise<Array<{ address: string, port: number, family: string }>> {
    const bound = []
    for (const addr of addresses) {
      const index = this.#fronts.length
      const fd = fds?.[index]
      const front = new NativeListenerFront({
        failures: (list) => {
          for (const f of list) {
            const code = f.error.code
            if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.#options.metrics.handshake('timeout')
            else this.#options.metrics.handshake('failed', code)
            // Client-caused (SPEC §5): info, never warn.
            this.#options.logger.info({ remoteAddress: f.remoteAddress, servername: f.servername === false ? undefined : f.servername, code }, 'TLS handshake failed')
          }
        },
        backendFailures: (list) => {
          for (const b of list) {
            const backend = this.#generations.get(b.setId)?.backends[b.host]
            const addr = backend?.config.address
            // A backend named by a DNS name that does not resolve has no
            // address: the lookup's code says why, not the connect's.
            const unresolved = addr?.kind === 'tcp' ? this.#options.names.error(addr.host) : undefined
            if (addr?.kind === 'tcp' && b.kind !== 'tls') this.#options.names.failed(addr.host)
            this.#options.metrics.backendError(b.kind)
            this.#options.tcpLogger.warn({
              host: backend?.hostName,
              backend: addr?.text,
              code: unresolved ?? b.code,
              kind: b.kind,
              reason: unresolved !== undefined ? `${addr?.kind === 'tcp' ? addr.host : ''} does not resolve (${unresolved})` : b.error.message,
            }, 'backend unavailable')
          }
        },
        handshakes: (list) => {
          for (const h of list) {
            // tls-alpn-01 validations are the ACME manager's business.
            if (h.host < 0) continue
            this.#options.logger.debug({
              remoteAddress: h.remoteAddress,
              servername: h.servername,
              host: this.#generations.get(h.setId)?.hosts[h.host]?.serverName,
              protocol: versionName(h.version),
              cipher: cipherInfoForId(h.cipherSuite).ianaName,
              alpn: h.alpn,
              resumed: h.resumed,
            }, 'handshake complete')
          }
        },
        httpNotices: (list) => {
          for (const n of list) {
            if (n.status !== 0) {
              this.#options.httpLogger.info({ remoteAddress: n.remoteAddress, sni: n.servername, authority: n.authority, status: n.status }, n.reason)
            } else {
              // Client-caused: info (SPEC §5); counted in counters().h2Abuse.
              this.#options.httpLogger.info({ remoteAddress: n.remoteAddress, sni: n.servername, reason: n.reason }, 'HTTP/2 connection closed: the client misbehaved')
            }
          }
        },
        idle: (setId) => this.#release(index, setId),
      }, this.#listenerOptions())
      this.#fronts.push(front)
      // Session lookups and new sessions: the library server's callbacks
      // and its sessionStore (the shared store, with `store:`).
      this.#options.server.serveSessions(front)
      for (const [token, answer] of this.#challenges) front.setHttpChallenge(token, answer)
      this.#route(index, generation)
      await new Promise<void>((resolve, reject) => {
        front.listen(fd !== undefined ? { fd } : { host: addr.host, port: addr.port }, (err) => err === null ? resolve() : reject(err))
      })
      const a = front.address() as { address: string, port: number, family: string }
      this.#options.logger.info({ listen: addr.text, address: a.address, port: a.port }, 'listening')
      bound.push(a)
    }
    return bound
  }

  get addresses (): Array<{ address: string, port: number, family: string }> {
    return this.#fronts.map((f) => f.address() as { address: string, port: number, family: string })
  }

  /** Connections accepted and not yet closed. */
  get open (): number {
    let n = 0
    for (const f of this.#fronts) n += f.counters().live
    return n
  }

  /** New connections use `generation`'s hosts and backends (start, reload). */
  route (generation: Generation, maxConnections: number | undefined, handshakeTimeout: number): void {
    this.#options.maxConnections = maxConnections
    this.#options.handshakeTimeout = handshakeTimeout
    this.#fronts.forEach((front, index) => {
      front.setOptions(this.#listenerOptions())
      this.#route(index, generation)
    })
  }

  /** ACME http-01: `keyAuthorization` answers `token` on every http-mode connection (null: no more). */
  setHttpChallenge (token: string, keyAuthorization: string | null): void {
    if (keyAuthorization === null) this.#challenges.delete(token)
    else this.#challenges.set(token, keyAuthorization)
    for (const f of this.#fronts) f.setHttpChallenge(token, keyAuthorization)
  }

  /** Stops accepting (drain); live connections go on, kept-alive HTTP ones until their response. */
  stopListening (): void {
    for (const f of this.#fronts) {
      f.close()
      f.drain()
    }
  }

  /** Ends every connection at once (drain timeout, shutdown). */
  abortAll (): void {
    for (const f of this.#fronts) {
      f.close()
      f.abortAll()
    }
  }

  #listenerOptions (): ConstructorParameters<typeof NativeListenerFront>[1] {
    return {
      handshakeTimeout: this.#options.handshakeTimeout,
      noDelay: true,
      maxConnections: this.#options.maxConnections ?? 0,
      // Every handshake at debug, only when asked for: it costs a report per connection.
      reportHandshakes: this.#options.logger.isLevelEnabled('debug'),
      timeouts: DEFAULTS.plane,
    }
  }

  #route (index: number, generation: Generation): void {
    const held = this.#options.server.holdRouter()
    const config = generation.loaded.config
    const plans = generation.hosts.map((host, i) => {
      const backend = generation.backends[i]
      return {
        kind: backend.config.mode === 'tcp' ? PlanKind.Tcp : PlanKind.Http,
        target: backend.nativeTarget(host, this.#options.names, config.http2),
        serverName: host.serverName,
      }
    })
    this.#fronts[index].setRoutes(held.router, plans, generation.id)
    this.#holds.set(`${index}:${generation.id}`, held.release)
    this.#generations.set(generation.id, generation)
    generation.acquire()
  }

  #release (index: number, setId: number): void {
    const key = `${index}:${setId}`
    this.#holds.get(key)?.()
    this.#holds.delete(key)
    const generation = this.#generations.get(setId)
    if (![...this.#holds.keys()].some((k) => k.endsWith(`:${setId}`))) this.#generations.delete(setId)
    generation?.release()
  }

  #snapshot (): Partial<MetricsSnapshot> {
    const all = this.#fronts.map((f) => f.counters())
    const sum = (key: keyof ListenerCounters): number => all.reduce((n, c) => n + (c[key] as number), 0)
    const handshakes = sum('handshakes')
    const httpResponses: Record<string, number> = {}
    for (const c of all) for (const [status, n] of Object.entries(c.httpResponses)) httpResponses[status] = (httpResponses[status] ?? 0) + n
    const http2Abuse: Record<string, number> = {}
    for (const c of all) for (const [reason, n] of Object.entries(c.h2Abuse)) http2Abuse[reason] = (http2Abuse[reason] ?? 0) + n
    return {
      httpResponses,
      http2Abuse,
      connectionsOpen: sum('live'),
      connectionsTotal: sum('accepted') - sum('rejected'),
      connectionsRejected: sum('rejected'),
      handshakes: handshakes > 0 ? { ok: handshakes } : {},
      handshakesResumed: sum('resumed'),
      bytesReceived: sum('bytesIn') + sum('liveBytesIn'),
      bytesSent: sum('bytesOut') + sum('liveBytesOut'),
    }
  }
}
