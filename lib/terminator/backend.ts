// One host's backend: where it is, how to reach it (plain or through the
// library's TLS client with the host's ClientContext, so sessions resume),
// and, in http mode, the keep-alive pool of connections to it.
import { X509Certificate } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import type { Duplex } from 'node:stream'

import { derToPem } from '../certs'
import { ClientContext, connect } from '../client'
import { RustlsError } from '../errors'
import type { HostContext } from '../hosts'
import { addon, type BackendTargetOptions, type NativeHandle } from '../native'
import { libraryVersion, packageVersion } from '../versions'
import type { BackendConfig } from './config'
import { keyAlgorithm } from './proxy-protocol'

/** Idle pooled backend connections close after this long: below the 5 s keep-alive of common servers (Node's default), so the pool never reuses a connection the backend is closing. */
const POOL_IDLE_MS = 4000

export type BackendErrorKind = 'connect' | 'tls' | 'timeout'

/** The backend did not accept (and finish TLS) within `connectTimeout`. */
export class BackendTimeoutError extends Error {
  readonly code = 'ERR_BACKEND_CONNECT_TIMEOUT'

  constructor (address: string, ms: number) {
    super(`backend ${address} did not connect within ${ms} ms`)
    this.name = 'BackendTimeoutError'
  }
}

/** How a backend failure is counted (metrics) and answered (502 or 504). */
export function backendErrorKind (err: unknown): BackendErrorKind {
  const code = (err as { code?: unknown })?.code
  if (code === 'ERR_BACKEND_CONNECT_TIMEOUT' || code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout'
  if (err instanceof RustlsError || (typeof code === 'string' && code.startsWith('ERR_RUSTLS_'))) return 'tls'
  return 'connect'
}

export class HostBackend {
  readonly index: number
  /** The frontend host's primary name (logs). */
  readonly hostName: string
  readonly config: BackendConfig
  readonly #context: ClientContext | undefined
  #agent: http.Agent | undefined
  #target: NativeHandle | undefined
  #destroyed = false

  constructor (index: number, hostName: string, config: BackendConfig, context: ClientContext | undefined) {
    this.index = index
    this.hostName = hostName
    this.config = config
    this.#context = context
  }

  get tls (): boolean {
    return this.#context !== undefined
  }

  /**
   * Opens a connection to the backend. `preface` (a PROXY header) goes out
   * first, on the TCP connection, before any TLS record (as HAProxy's
   * send-proxy does). The socket emits 'ready' once connected (and, with
   * TLS, verified); it is destroyed with a BackendTimeoutError if that
   * takes longer than `connectTimeout`.
   */
  open (preface?: Buffer): Duplex {
    if (this.#destroyed) throw Object.assign(new Error('backend configuration was retired'), { code: 'ERR_BACKEND_RETIRED' })
    const addr = this.config.address
    const raw = addr.kind === 'unix' ? net.connect({ path: addr.path }) : net.connect({ host: addr.host, port: addr.port })
    raw.setNoDelay(true)
    if (preface !== undefined) raw.write(preface)
    let socket: Duplex = raw
    let readyEvent = 'connect'
    if (this.#context !== undefined) {
      socket = connect({ socket: raw, context: this.#context, servername: this.#serverName(), handshakeTimeout: this.config.connectTimeout })
      readyEvent = 'secureConnect'
    }
    const timer = setTimeout(() => socket.destroy(new BackendTimeoutError(addr.text, this.config.connectTimeout)), this.config.connectTimeout)
    timer.unref()
    socket.once(readyEvent, () => {
      clearTimeout(timer)
      socket.emit('ready')
    })
    socket.once('close', () => clearTimeout(timer))
    return socket
  }

  /**
   * tcp mode on the native data plane: the backend as native code connects
   * to it (address resolved now, once per configuration), with what the
   * PROXY v2 header says about `host`'s certificates.
   */
  nativeTarget (host: HostContext, h2?: NonNullable<BackendTargetOptions['http']>['h2']): NativeHandle {
    if (this.#destroyed) throw Object.assign(new Error('backend configuration was retired'), { code: 'ERR_BACKEND_RETIRED' })
    if (this.#target !== undefined) return this.#target
    const addr = this.config.address
    const proxy = this.config.proxyProtocol
    this.#target = new addon.BackendTarget({
      address: addr.kind === 'unix' ? { kind: 'unix', path: addr.path } : { kind: 'tcp', host: addr.host, port: addr.port },
      connectTimeout: this.config.connectTimeout,
      proxyProtocol: proxy === 'v1' ? 1 : proxy === 'v2' ? 2 : 0,
      tls: this.#context === undefined ? undefined : { config: this.#context.native, serverName: this.#serverName() },
      keyAlgs: host.leafDers.map((der) => keyAlgorithm(new X509Certificate(der)) ?? ''),
      http: this.config.mode !== 'http'
        ? undefined
        : {
            timeout: this.config.timeout,
            stdEnvVars: host.env.stdEnvVars,
            exportCertData: host.env.exportCertData,
            clientAuth: host.clientAuth !== 'none',
            acme: true,
            versionInterface: `rustls-node/${packageVersion()}`,
            versionLibrary: libraryVersion(),
            serverCerts: host.leafDers.map((der) => encodeURIComponent(derToPem(der))),
            // SPEC §4.2: hosts with equal keys serve each other's requests (lib/authority.ts).
            coalesceKey: `${host.certificateKey}\n${host.policyKey}`,
            backendH2: this.config.httpVersion === '2',
            h2,
          },
    })
    return this.#target
  }

  /** SNI and the name verified on the backend. */
  #serverName (): string {
    const addr = this.config.address
    return this.config.tls?.serverName ?? (addr.kind === 'tcp' ? addr.host : 'localhost')
  }

  /** http mode: the keep-alive pool for this backend. */
  get agent (): http.Agent {
    if (this.#agent === undefined) {
      const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 32, scheduling: 'lifo', timeout: POOL_IDLE_MS })
      agent.createConnection = () => this.open()
      this.#agent = agent
    }
    return this.#agent
  }

  /**
   * Stops pooling: idle connections close now, busy ones when their
   * request ends. Used when a reload replaces this backend.
   */
  retire (): void {
    const agent = this.#agent
    if (agent === undefined) return
    agent.keepSocketAlive = () => false
    for (const list of Object.values(agent.freeSockets)) {
      for (const s of list ?? []) s.destroy()
    }
  }

  /** Releases the pool and the ClientContext. Idempotent. */
  destroy (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#agent?.destroy()
    this.#target?.destroy()
    this.#context?.destroy()
  }
}
