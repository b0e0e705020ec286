// `workers: N | auto`: several processes on one port with node:cluster.
// Unless the file names ticketKeys, the primary generates the ticket keys
// (or, with `store`, takes the shared ones from the store and follows their
// rotations), rotates them every ticketLifetime and hands them to every worker, which
// puts them in place without rebuilding anything, so a client resumes its
// session on whichever worker takes its next connection, across rotations
// (SPEC §4.4). The primary restarts dead workers, forwards SIGHUP / SIGTERM
// and serves the summed metrics of all workers.
import cluster, { type Worker } from 'node:cluster'
import dns from 'node:dns'
import type http from 'node:http'
import net from 'node:net'

import type { Logger as PinoLogger } from 'pino'

import { addon } from '../native'
import { TicketKeySchedule } from '../session'
import type { ListenAddress } from './config'
import type { Terminator } from './listeners'
import { mergeSnapshots, Metrics, type MetricsSnapshot, type MetricsSource, renderPrometheus, startMetricsServer } from './metrics'

type ToWorker =
  | { type: 'rustls-node:init', ticketKeys?: string, listenFds?: number[] }
  | { type: 'rustls-node:ticket-keys', ticketKeys: string }
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
  /** The file names no ticketKeys: the primary makes the keys for all workers and rotates them. */
  generateTicketKeys: boolean
  /** Seconds between rotations of generated keys (the configuration's ticketLifetime at start). */
  ticketLifetime: number
  /**
   * Keys that come from elsewhere (the store) instead of being generated:
   * the current material, and a way to hear of every change, which the
   * primary forwards to every worker.
   */
  ticketKeySource?: { material: () => Buffer, onChange: (fn: () => void) => void }
  /** Counters of the primary's own (the store's), added to the workers' at scrape time. */
  metricsSource?: MetricsSource
  metrics?: ListenAddress
  drainTimeout: number
  /**
   * The primary binds these and every worker inherits the sockets and
   * accepts on them natively (one accept queue per address, so port 0
   * means one port, and a dying worker loses no connection waiting in the
   * queue).
   */
  listen: readonly ListenAddress[]
}

/**
 * Binds `addresses` in the primary, for its workers to inherit: children
 * get them as descriptors 4, 5, ... (after stdin, stdout, stderr and the
 * IPC channel).
 */
async function bindForWorkers (addresses: readonly ListenAddress[]): Promise<number[]> {
  const fds: number[] = []
  for (const addr of addresses) {
    const host = addr.host === undefined || net.isIP(addr.host) !== 0 ? addr.host : (await dns.promises.lookup(addr.host)).address
    fds.push(addon.bindListener({ host, port: addr.port }).fd)
  }
  cluster.setupPrimary({ stdio: [0, 1, 2, 'ipc', ...fds] })
  return fds.map((_, i) => 4 + i)
}

/** Runs the cluster primary until SIGTERM/SIGINT; resolves with the exit code. */
export async function runPrimary (options: PrimaryOptions): Promise<number> {
  const { logger } = options
  const own = new Metrics()
  const listenFds = await bindForWorkers(options.listen)
  // Generated keys live in memory only and go to workers over the IPC
  // channel: never in the environment, a file or a log line. The schedule
  // hands out the next key ahead (it already opens tickets), so a worker
  // that gets a rotation a moment after another still opens its tickets.
  const source = options.ticketKeySource
  const schedule = options.generateTicketKeys && source === undefined ? new TicketKeySchedule() : undefined
  const material = (): Buffer | undefined => source?.material() ?? schedule?.material()
  if (options.metricsSource !== undefined) own.addSource(options.metricsSource)
  const workers = new Set<Worker>()
  const broadcast = (): void => {
    const ticketKeys = material()?.toString('base64')
    if (ticketKeys === undefined) return
    for (const w of workers) if (w.isConnected()) w.send({ type: 'rustls-node:ticket-keys', ticketKeys } satisfies ToWorker)
  }
  source?.onChange(broadcast)
  const rotation = schedule === undefined
    ? undefined
    : setInterval(() => {
      schedule.rotate()
      broadcast()
      logger.info({ rotation: schedule.rotations, workers: workers.size }, 'ticket keys rotated')
    }, options.ticketLifetime * 1000)
  let stopping = false
  let backoff = RESTART_MIN_MS
  let nextMetricsId = 1
  const pending = new Map<number, { replies: MetricsSnapshot[], expected: number, done: () => void }>()

  const fork = (): void => {
    const worker = cluster.fork()
    const started = Date.now()
    workers.add(worker)
    worker.send({ type: 'rustls-node:init', ticketKeys: material()?.toString('base64'), listenFds } satisfies ToWorker)
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
      clearInterval(rotation)
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

/** The primary's latest ticket keys, read by every (re)load of a worker's configuration. */
export interface SharedTicketKeys {
  latest: Buffer | undefined
}

/**
 * A worker: waits for the primary's keys, starts the terminator, puts the
 * primary's rotated keys in place, and obeys its reload / shutdown /
 * metrics messages. It also drains when signalled directly or when the
 * primary goes away.
 */
export async function runWorker (start: (keys: SharedTicketKeys, listenFds: number[] | undefined) => Promise<Terminator>, logger: PinoLogger): Promise<number> {
  const keys: SharedTicketKeys = { latest: undefined }
  // Set once the terminator runs; read by the listener below before then.
  const current: { running?: Terminator } = {}
  // Listening from the start: a rotation during the terminator's start is
  // kept and put in place once it runs.
  process.on('message', (msg: ToWorker) => {
    if (msg?.type !== 'rustls-node:ticket-keys') return
    keys.latest = Buffer.from(msg.ticketKeys, 'base64')
    current.running?.setTicketKeys(keys.latest)
    logger.debug({ running: current.running !== undefined }, 'ticket keys received from the primary')
  })
  const init = await new Promise<ToWorker & { type: 'rustls-node:init' }>((resolve) => {
    const onMessage = (msg: ToWorker): void => {
      if (msg?.type !== 'rustls-node:init') return
      process.removeListener('message', onMessage)
      resolve(msg)
    }
    process.on('message', onMessage)
  })
  if (init.ticketKeys !== undefined) keys.latest = Buffer.from(init.ticketKeys, 'base64')
  const terminator = await start(keys, init.listenFds)
  current.running = terminator
  if (keys.latest !== undefined) terminator.setTicketKeys(keys.latest)
  return await new Promise<number>((resolve) => {
    const shutdown = (): void => {
      terminator.shutdown().then(() => resolve(0), (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    process.on('message', (msg: ToWorker) => {
      if (msg?.type === 'rustls-node:reload') void terminator.reload()
      else if (msg?.type === 'rustls-node:shutdown') shutdown()
      else if (msg?.type === 'rustls-node:metrics') {
        process.send?.({ type: 'rustls-node:metrics', id: msg.id, snapshot: terminator.metrics.snapshot() } satisfies FromWorker)
      }
    })
    process.on('SIGTERM', shutdown)
    process.on('SIGINT', shutdown)
    // The primary forwards SIGHUP; a direct one (e.g. to the process group)
    // must not kill the worker, and reloading twice is harmless.
    process.on('SIGHUP', () => { void terminator.reload() })
    process.on('disconnect', shutdown)
  })
}
