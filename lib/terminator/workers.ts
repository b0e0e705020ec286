// `workers: N | auto`: several processes on one port with node:cluster.
// The primary owns the ticket keys (from the file, or generated once at
// start) and hands them to every worker, so a client resumes its session on
// whichever worker takes its next connection (SPEC §4.4). The primary
// restarts dead workers, forwards SIGHUP / SIGTERM and serves the summed
// metrics of all workers.
import cluster, { type Worker } from 'node:cluster'
import crypto from 'node:crypto'
import type http from 'node:http'

import type { Logger as PinoLogger } from 'pino'

import { TICKET_KEY_LENGTH } from '../session'
import type { ListenAddress } from './config'
import type { Terminator } from './listeners'
import { mergeSnapshots, Metrics, type MetricsSnapshot, renderPrometheus, startMetricsServer } from './metrics'

type ToWorker =
  | { type: 'rustls-node:init', ticketKeys?: string }
  | { type: 'rustls-node:reload' }
  | { type: 'rustls-node:shutdown' }
  | { type: 'rustls-node:metrics', id: number }
type FromWorker = { type: 'rustls-node:metrics', id: number, snapshot: MetricsSnapshot }

const METRICS_REPLY_MS = 1000
const RESTART_MIN_MS = 100
const RESTART_MAX_MS = 10_000
/** A worker that lived this long is healthy: the restart backoff starts over. */
const HEALTHY_MS = 10_000

export interface PrimaryOptions {
  workers: number
  logger: PinoLogger
  /** The file names no ticketKeys: the primary makes one key for all workers. */
  generateTicketKeys: boolean
  metrics?: ListenAddress
  drainTimeout: number
}

/** Runs the cluster primary until SIGTERM/SIGINT; resolves with the exit code. */
export async function runPrimary (options: PrimaryOptions): Promise<number> {
  const { logger } = options
  const own = new Metrics()
  // Generated keys live in memory only and go to workers over the IPC
  // channel: never in the environment, a file or a log line.
  const ticketKeys = options.generateTicketKeys ? crypto.randomBytes(TICKET_KEY_LENGTH).toString('base64') : undefined
  const workers = new Set<Worker>()
  let stopping = false
  let backoff = RESTART_MIN_MS
  let nextMetricsId = 1
  const pending = new Map<number, { replies: MetricsSnapshot[], expected: number, done: () => void }>()

  const fork = (): void => {
    const worker = cluster.fork()
    const started = Date.now()
    workers.add(worker)
    worker.send({ type: 'rustls-node:init', ticketKeys } satisfies ToWorker)
    worker.on('message', (msg: FromWorker) => {
      if (msg?.type !== 'rustls-node:metrics') return
      const p = pending.get(msg.id)
      if (p === undefined) return
      p.replies.push(msg.snapshot)
      if (p.replies.length >= p.expected) p.done()
    })
    worker.on('exit', (code, signal) => {
      workers.delete(worker)
      if (stopping) return
      if (Date.now() - started > HEALTHY_MS) backoff = RESTART_MIN_MS
      logger.error({ worker: worker.id, workerPid: worker.process.pid, code, signal, restartInMs: backoff }, 'worker died; restarting it')
      own.workerRestarted()
      setTimeout(() => { if (!stopping) fork() }, backoff)
      backoff = Math.min(backoff * 2, RESTART_MAX_MS)
    })
  }

  const collect = async (): Promise<MetricsSnapshot[]> => {
    const id = nextMetricsId++
    const list = [...workers].filter((w) => w.isConnected())
    const replies: MetricsSnapshot[] = []
    if (list.length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, METRICS_REPLY_MS)
        pending.set(id, { replies, expected: list.length, done: () => { clearTimeout(timer); resolve() } })
        for (const w of list) w.send({ type: 'rustls-node:metrics', id } satisfies ToWorker)
      })
      pending.delete(id)
    }
    return replies
  }

  for (let i = 0; i < options.workers; i++) fork()
  logger.info({ workers: options.workers }, 'cluster primary started')

  let metricsServer: http.Server | undefined
  if (options.metrics !== undefined) {
    metricsServer = await startMetricsServer(options.metrics, async () =>
      renderPrometheus(mergeSnapshots([own.snapshot(), ...await collect()]), workers.size))
    const a = metricsServer.address() as { address: string, port: number }
    logger.info({ address: a.address, port: a.port }, 'metrics listening')
  }

  return await new Promise<number>((resolve) => {
    process.on('SIGHUP', () => {
      logger.info({ workers: workers.size }, 'SIGHUP: reloading every worker')
      for (const w of workers) w.send({ type: 'rustls-node:reload' } satisfies ToWorker)
    })
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      logger.info({ signal, workers: workers.size }, 'stopping workers')
      for (const w of workers) w.send({ type: 'rustls-node:shutdown' } satisfies ToWorker)
      // A worker stuck past its own drain timeout is killed.
      const kill = setTimeout(() => { for (const w of workers) w.process.kill('SIGKILL') }, options.drainTimeout + 5000)
      kill.unref()
      const check = (): void => {
        if (workers.size > 0) return
        clearTimeout(kill)
        metricsServer?.close()
        metricsServer?.closeAllConnections()
        logger.info('stopped')
        resolve(0)
      }
      cluster.on('exit', check)
      check()
    }
    process.on('SIGTERM', () => stop('SIGTERM'))
    process.on('SIGINT', () => stop('SIGINT'))
  })
}

/**
 * A worker: waits for the primary's keys, starts the terminator, and obeys
 * the primary's reload / shutdown / metrics messages. It also drains when
 * signalled directly or when the primary goes away.
 */
export async function runWorker (start: (ticketKeys: Buffer | undefined) => Promise<Terminator>, logger: PinoLogger): Promise<number> {
  const init = await new Promise<ToWorker & { type: 'rustls-node:init' }>((resolve) => {
    const onMessage = (msg: ToWorker): void => {
      if (msg?.type !== 'rustls-node:init') return
      process.removeListener('message', onMessage)
      resolve(msg)
    }
    process.on('message', onMessage)
  })
  const terminator = await start(init.ticketKeys === undefined ? undefined : Buffer.from(init.ticketKeys, 'base64'))
  return await new Promise<number>((resolve) => {
    const shutdown = (): void => {
      terminator.shutdown().then(() => resolve(0), (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    process.on('message', (msg: ToWorker) => {
      if (msg?.type === 'rustls-node:reload') terminator.reload()
      else if (msg?.type === 'rustls-node:shutdown') shutdown()
      else if (msg?.type === 'rustls-node:metrics') {
        process.send?.({ type: 'rustls-node:metrics', id: msg.id, snapshot: terminator.metrics.snapshot() } satisfies FromWorker)
      }
    })
    process.on('SIGTERM', shutdown)
    process.on('SIGINT', shutdown)
    // The primary forwards SIGHUP; a direct one (e.g. to the process group)
    // must not kill the worker, and reloading twice is harmless.
    process.on('SIGHUP', () => terminator.reload())
    process.on('disconnect', shutdown)
  })
}
