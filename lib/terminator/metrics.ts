// Counters and the Prometheus text exposition (format 0.0.4) served on
// `metrics.listen`. Each process keeps its own counters as a plain snapshot
// so that a cluster primary can sum its workers' snapshots.
import http from 'node:http'

import type { ListenAddress } from './config'

/** Plain, JSON-serializable counters (sent over cluster IPC). */
export interface MetricsSnapshot {
  connectionsOpen: number
  connectionsTotal: number
  connectionsRejected: number
  /** "ok" | "timeout" | "failed:<code>" → count. */
  handshakes: Record<string, number>
  handshakesResumed: number
  bytesReceived: number
  bytesSent: number
  /** "connect" | "tls" | "timeout" → count. */
  backendErrors: Record<string, number>
  /** HTTP status → count (http mode, responses sent to clients). */
  httpResponses: Record<string, number>
  /** Abuse reason → HTTP/2 connections closed for it (the native HTTP/2 front). */
  http2Abuse: Record<string, number>
  /** "ok" | "failed" → count. */
  reloads: Record<string, number>
  workerRestarts: number
  /** "ok" | "failed" → count (ACME orders). */
  acmeOrders: Record<string, number>
  /** "ok" | "failed" → count (OCSP fetches for ocsp: auto). */
  ocspFetches: Record<string, number>
  /** "<host>\0<certificate index>" → days until the served certificate expires. */
  certificateExpiryDays: Record<string, number>
  /** The shared store (`store`), in the process that talks to it; absent without one. */
  store?: { up: number, errors: Record<string, number>, invalid: Record<string, number> }
}

export function emptySnapshot (): MetricsSnapshot {
  return {
    connectionsOpen: 0,
    connectionsTotal: 0,
    connectionsRejected: 0,
    handshakes: {},
    handshakesResumed: 0,
    bytesReceived: 0,
    bytesSent: 0,
    backendErrors: {},
    httpResponses: {},
    http2Abuse: {},
    reloads: {},
    workerRestarts: 0,
    acmeOrders: {},
    ocspFetches: {},
    certificateExpiryDays: {},
  }
}

/**
 * Counters kept elsewhere (the native listeners' connections, bytes and
 * responses; the store's), read at scrape time and added to the snapshot.
 */
export type MetricsSource = () => Partial<MetricsSnapshot>
/** The certificates served now, at scrape time. */
export type ServedCertificates = () => Array<{ host: string, certificate: number, notAfter: number }>

export class Metrics {
  readonly #s = emptySnapshot()
  readonly #sources: MetricsSource[] = []
  #certificates: ServedCertificates = () => []

  addSource (fn: MetricsSource): void {
    this.#sources.push(fn)
  }

  setCertificates (fn: ServedCertificates): void {
    this.#certificates = fn
  }

  acmeOrder (ok: boolean): void {
    bump(this.#s.acmeOrders, ok ? 'ok' : 'failed')
  }

  ocspFetch (ok: boolean): void {
    bump(this.#s.ocspFetches, ok ? 'ok' : 'failed')
  }

  handshake (outcome: 'ok' | 'timeout' | 'failed', code?: string, resumed = false): void {
    const key = outcome === 'failed' ? `failed:${code ?? 'UNKNOWN'}` : outcome
    bump(this.#s.handshakes, key)
    if (resumed) this.#s.handshakesResumed++
  }

  backendError (kind: 'connect' | 'tls' | 'timeout'): void {
    bump(this.#s.backendErrors, kind)
  }

  reload (ok: boolean): void {
    bump(this.#s.reloads, ok ? 'ok' : 'failed')
  }

  workerRestarted (): void {
    this.#s.workerRestarts++
  }

  snapshot (): MetricsSnapshot {
    const s = this.#sources.length === 0
      ? structuredClone(this.#s)
      : mergeSnapshots([this.#s, ...this.#sources.map((source) => ({ ...emptySnapshot(), ...source() }))])
    const now = Date.now()
    for (const c of this.#certificates()) {
      s.certificateExpiryDays[`${c.host}\0${c.certificate}`] = Math.round(((c.notAfter - now) / 86_400_000) * 1e6) / 1e6
    }
    return s
  }
}

function bump (map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1
}

/** Sums snapshots (a cluster's workers and primary). */
export function mergeSnapshots (list: readonly MetricsSnapshot[]): MetricsSnapshot {
  const out = emptySnapshot()
  for (const s of list) {
    out.connectionsOpen += s.connectionsOpen
    out.connectionsTotal += s.connectionsTotal
    out.connectionsRejected += s.connectionsRejected
    out.handshakesResumed += s.handshakesResumed
    out.bytesReceived += s.bytesReceived
    out.bytesSent += s.bytesSent
    out.workerRestarts += s.workerRestarts
    for (const key of ['handshakes', 'backendErrors', 'httpResponses', 'http2Abuse', 'reloads', 'acmeOrders', 'ocspFetches'] as const) {
      for (const [k, v] of Object.entries(s[key] ?? {})) out[key][k] = (out[key][k] ?? 0) + v
    }
    // Every worker serves the same certificates: the soonest expiry counts.
    for (const [k, v] of Object.entries(s.certificateExpiryDays ?? {})) out.certificateExpiryDays[k] = Math.min(out.certificateExpiryDays[k] ?? Infinity, v)
    if (s.store !== undefined) {
      const store = out.store ??= { up: 0, errors: {}, invalid: {} }
      store.up += s.store.up
      for (const key of ['errors', 'invalid'] as const) {
        for (const [k, v] of Object.entries(s.store[key])) store[key][k] = (store[key][k] ?? 0) + v
      }
    }
  }
  return out
}

function label (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

/** Prometheus text format 0.0.4. */
export function renderPrometheus (s: MetricsSnapshot, workers?: number): string {
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[string, number]>): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
  }
  const labelled = (map: Record<string, number>, name: string): Array<[string, number]> =>
    Object.entries(map).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [`{${name}="${label(k)}"}`, v])

  metric('rustls_node_connections_open', 'gauge', 'Client connections currently open.', [['', s.connectionsOpen]])
  metric('rustls_node_connections_total', 'counter', 'Client connections accepted.', [['', s.connectionsTotal]])
  metric('rustls_node_connections_rejected_total', 'counter', 'Client connections closed at once because maxConnections was reached.', [['', s.connectionsRejected]])
  metric('rustls_node_handshakes_total', 'counter', 'TLS handshakes by outcome (ok, timeout, failed with the error code).',
    Object.entries(s.handshakes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
      const [outcome, code] = k.startsWith('failed:') ? ['failed', k.slice(7)] : [k, undefined]
      return [code === undefined ? `{outcome="${outcome}"}` : `{outcome="${outcome}",code="${label(code)}"}`, v]
    }))
  metric('rustls_node_handshakes_resumed_total', 'counter', 'Successful handshakes that resumed a session.', [['', s.handshakesResumed]])
  metric('rustls_node_bytes_received_total', 'counter', 'Bytes received from clients (TLS records).', [['', s.bytesReceived]])
  metric('rustls_node_bytes_sent_total', 'counter', 'Bytes sent to clients (TLS records).', [['', s.bytesSent]])
  metric('rustls_node_backend_errors_total', 'counter', 'Backend failures by kind (connect, tls, timeout).', labelled(s.backendErrors, 'kind'))
  metric('rustls_node_http_responses_total', 'counter', 'HTTP responses sent to clients by status (http mode).', labelled(s.httpResponses, 'status'))
  metric('rustls_node_http2_abuse_total', 'counter', 'HTTP/2 connections closed because the client misbehaved, by reason (rapid_reset, ping_flood, ...).', labelled(s.http2Abuse, 'reason'))
  metric('rustls_node_reloads_total', 'counter', 'Configuration reloads by outcome.', labelled(s.reloads, 'outcome'))
  metric('rustls_node_acme_orders_total', 'counter', 'ACME orders (obtain or renew) by outcome.', labelled(s.acmeOrders, 'outcome'))
  metric('rustls_node_ocsp_fetches_total', 'counter', 'OCSP responses fetched for ocsp: auto, by outcome.', labelled(s.ocspFetches, 'outcome'))
  metric('rustls_node_certificate_expiry_days', 'gauge', 'Days until each served certificate expires (negative: expired).',
    Object.entries(s.certificateExpiryDays).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => {
      const [host, index] = k.split('\0')
      return [`{host="${label(host)}",certificate="${label(index)}"}`, v]
    }))
  if (s.store !== undefined) {
    metric('rustls_node_store_up', 'gauge', 'Whether the shared store (store:) is connected and ready (1) or not (0: local state serves).', [['', s.store.up]])
    metric('rustls_node_store_errors_total', 'counter', 'Failed store operations by op (connect, get, set, del, scan, lock, publish, ...).', labelled(s.store.errors, 'op'))
    metric('rustls_node_store_invalid_values_total', 'counter', 'Values read from the store and refused (garbage, another format, the wrong encryption key), by kind.', labelled(s.store.invalid, 'kind'))
  }
  if (workers !== undefined) {
    metric('rustls_node_workers', 'gauge', 'Worker processes running.', [['', workers]])
    metric('rustls_node_worker_restarts_total', 'counter', 'Worker processes restarted after dying.', [['', s.workerRestarts]])
  }
  return lines.join('\n') + '\n'
}

/**
 * Serves GET /metrics on `address` (a separate, usually loopback-only
 * address: the counters reveal traffic patterns). Resolves once listening.
 */
export async function startMetricsServer (address: ListenAddress, render: () => Promise<string>): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
      return
    }
    render().then((text) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : text)
    }, (err: Error) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${err.message}\n`)
    })
  })
  // Scrapers keep connections alive; they must not hold up a drain.
  server.keepAliveTimeout = 1000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(address.port, address.host, () => {
      server.removeListener('error', reject)
      resolve()
    })
  })
  return server
}
