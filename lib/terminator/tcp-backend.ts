// tcp mode: the decrypted byte stream goes to the backend and back, after
// an optional PROXY header. Streams are piped, so a slow side pauses the
// other (bounded memory per connection: at most the streams' high water
// marks are buffered in each direction).
import type { Duplex } from 'node:stream'

import type { Logger } from '../log'
import type { RustlsSocket } from '../tls-socket/socket'
import { backendErrorKind, type HostBackend } from './backend'
import type { Metrics } from './metrics'
import { proxyHeaderV1, proxyHeaderV2, proxyInfoFromSocket } from './proxy-protocol'

/** After the backend closed, a client that keeps its side open is dropped after this long. */
const LINGER_MS = 5000

/**
 * Joins two connected streams both ways with backpressure and half-close:
 * an end on one side ends the other's writable side; a destroyed or
 * failed side destroys the other.
 */
export function tunnel (client: Duplex, backend: Duplex, onBackendError: (err: Error) => void): void {
  client.pipe(backend)
  backend.pipe(client)
  client.on('error', () => backend.destroy())
  backend.on('error', (err) => {
    onBackendError(err)
    client.destroy()
  })
  client.on('close', () => backend.destroy())
  backend.on('close', () => {
    if (client.destroyed) return
    if (!client.writableEnded) client.end()
    const timer = setTimeout(() => client.destroy(), LINGER_MS)
    timer.unref()
    client.once('close', () => clearTimeout(timer))
  })
}

export interface TcpForwardContext {
  logger: Logger
  metrics: Metrics
}

/** Forwards an established client connection to its host's tcp-mode backend. */
export function forwardTcp (client: RustlsSocket, backend: HostBackend, ctx: TcpForwardContext): void {
  const mode = backend.config.proxyProtocol
  const preface = mode === 'v1'
    ? proxyHeaderV1(proxyInfoFromSocket(client))
    : mode === 'v2' ? proxyHeaderV2(proxyInfoFromSocket(client)) : undefined
  let upstream: Duplex
  try {
    upstream = backend.open(preface)
  } catch (err) {
    ctx.logger.error({ err, host: backend.hostName }, 'cannot open a backend connection')
    client.destroy()
    return
  }
  let connected = false
  upstream.once('ready', () => { connected = true })
  tunnel(client, upstream, (err) => {
    const code = (err as { code?: string }).code
    if (!connected) {
      const kind = backendErrorKind(err)
      ctx.metrics.backendError(kind)
      ctx.logger.warn({ host: backend.hostName, backend: backend.config.address.text, code, kind, reason: err.message }, 'backend unavailable')
    } else {
      ctx.logger.debug({ host: backend.hostName, code }, 'backend connection failed')
    }
  })
}
