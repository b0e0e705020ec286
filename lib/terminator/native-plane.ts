// The terminator's native data plane: one native listener per `listen`
// address (lib/native-listener.ts), all routing with the library server's
// hosts. tcp-mode hosts are spliced to their backend in native code
// (native/src/plane/splice.cc) and never reach JS; http-mode hosts arrive here as
// RustlsSockets once their handshake completed. Failed handshakes and
// unreachable backends come in batches, for the log lines and metrics the
// JS data plane (listeners.ts with RUSTLS_NODE_JS_PUMP=1) produces per
// connection.
import type { Logger as PinoLogger } from 'pino'

import { cipherInfoForId } from '../ciphers'
import { versionName } from '../protocol'
import { addon, type ListenerCounters, PlanKind } from '../native'
import { NativeListenerFront, socketFromNative } from '../native-listener'
import type { Server } from '../server'
import type { RustlsSocket } from '../tls-socket/socket'
import type { ListenAddress } from './config'
import type { Metrics, MetricsSnapshot } from './metrics'
import type { Generation } from './reload'

/** Whether the terminator runs on the native data plane (the default). */
export function nativePlaneEnabled (): boolean {
  return process.platform !== 'win32' && process.env.RUSTLS_NODE_JS_PUMP !== '1' && process.env.RUSTLS_NODE_NATIVE_LISTENER !== '0'
}

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
  logger: PinoLogger
  tlsLogger: PinoLogger
  tcpLogger: PinoLogger
  /** The http front's logger (421/403 and HTTP/2 abuse lines). */
  httpLogger: PinoLogger
  metrics: Metrics
  handshakeTimeout: number
  maxConnections: number | undefined
  /** A connection whose host is served in JS (http mode), once secure. */
  onSecure: (socket: RustlsSocket, generation: Generation) => void
}

export class NativePlane {
  readonly #options: NativePlaneOptions
  readonly #fronts: NativeListenerFront[] = []
  /** Route set id (= generation id) → its generation, while a listener uses it. */
  readonly #generations = new Map<number, Generation>()
  /** Per listener and generation: releases the server's hold on that generation's router. */
  readonly #holds = new Map<string, () => void>()
  /** Sockets handed to JS (http mode), for shutdown and live byte counts. */
  readonly #sockets = new Set<RustlsSocket>()
  readonly #warnedFallback = new Set<string>()

  constructor (options: NativePlaneOptions) {
    this.#options = options
    setCipherNames()
    options.metrics.addSource(() => this.#snapshot())
  }

  /**
   * Binds every address (in order), or accepts on the sockets a cluster
   * primary bound for them (`fds`), and logs each, as the JS listeners do.
   */
  async listen (addresses: readonly ListenAddress[], generation: Generation, fds?: readonly number[]): Promise<Array<{ address: string, port: number, family: string }>> {
    const bound = []
    for (const addr of addresses) {
      const index = this.#fronts.length
      const fd = fds?.[index]
      const front = new NativeListenerFront({
        secure: (connection, setId, host, flags, plaintext) => {
          const gen = this.#generations.get(setId)
          if (gen === undefined) {
            connection.destroy()
            return
          }
          const socket = socketFromNative(connection, { host, flags, plaintext, hooks: { hostFor: (_s, i) => gen.hosts[i] }, allowHalfOpen: true, logger: this.#options.tlsLogger })
          gen.acquire()
          this.#sockets.add(socket)
          socket.once('close', () => {
            this.#sockets.delete(socket)
            gen.release()
          })
          socket.once('secure', () => this.#options.onSecure(socket, gen))
        },
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
            this.#options.metrics.backendError(b.kind)
            this.#options.tcpLogger.warn({ host: backend?.hostName, backend: backend?.config.address.text, code: b.code, kind: b.kind, reason: b.error.message }, 'backend unavailable')
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
              // As the JS front's 421/403 lines (http-backend.ts).
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

  /** Connections accepted and not yet closed, native or handed to JS. */
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
    for (const s of this.#sockets) s.destroy()
  }

  #listenerOptions (): ConstructorParameters<typeof NativeListenerFront>[1] {
    return {
      handshakeTimeout: this.#options.handshakeTimeout,
      noDelay: true,
      maxConnections: this.#options.maxConnections ?? 0,
      // The JS data plane logs every handshake at debug; here only when asked.
      reportHandshakes: this.#options.logger.isLevelEnabled('debug'),
    }
  }

  #route (index: number, generation: Generation): void {
    const held = this.#options.server.holdRouter()
    const plans = generation.hosts.map((host, i) => {
      const backend = generation.backends[i]
      if (backend === undefined) return { kind: PlanKind.Js }
      try {
        const config = generation.loaded.config
        // ACME http-01 over https (a CA that follows the port-80 redirect)
        // is answered by the JS front: that host's HTTP/2 stays there,
        // unless its backend speaks HTTP/2, which only the native front does.
        const h2 = { ...config.http2, off: config.hosts[i]?.acme?.challenge === 'http-01' && backend.config.httpVersion !== '2' }
        return { kind: backend.config.mode === 'tcp' ? PlanKind.Tcp : PlanKind.Http, target: backend.nativeTarget(host, h2) }
      } catch (err) {
        // An address that does not resolve now: the JS path resolves it
        // per connection (and reports each failure as it happens).
        if (!this.#warnedFallback.has(backend.config.address.text)) {
          this.#warnedFallback.add(backend.config.address.text)
          this.#options.tcpLogger.warn({ host: backend.hostName, backend: backend.config.address.text, reason: (err as Error).message }, 'backend address does not resolve; its connections are forwarded in JS')
        }
        return { kind: PlanKind.Js }
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
    let bytesReceived = sum('bytesIn') + sum('liveBytesIn')
    let bytesSent = sum('bytesOut') + sum('liveBytesOut')
    for (const s of this.#sockets) {
      bytesReceived += s.bytesRead
      bytesSent += s.bytesWritten
    }
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
      bytesReceived,
      bytesSent,
    }
  }
}
