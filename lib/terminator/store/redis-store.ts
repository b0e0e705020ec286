// The shared store on Redis, through ioredis. Two connections: one for
// commands, one subscribed to the event channel (a subscribed Redis
// connection takes no other command). Commands never queue while Redis is
// away (enableOfflineQueue off, no per-request retry, a 2 s command
// timeout): they fail at once and the caller serves its local state, while
// ioredis reconnects with a capped exponential backoff. Every transition is
// logged once (`store unavailable; serving local state` at error, `store
// reconnected` at info) and counted, and listeners get a chance to re-sync
// whatever they missed, events included (pub/sub delivers at most once).
import crypto from 'node:crypto'
import net from 'node:net'
import os from 'node:os'

import Redis, { type RedisOptions } from 'ioredis'

import { type Logger, silentLogger } from '../../log'
import { type SetOptions, type SharedStore, StoreError, type StoreEvent, type StoreLock, type StoreStats } from './shared-store'

export interface RedisStoreOptions {
  host: string
  port: number
  db: number
  /** rediss://: TLS (node:tls) with `ca` or the system store, server name verified. */
  tls: boolean
  ca?: Buffer
  username?: string
  password?: string
  /** Before every key and the channel name. */
  prefix: string
  /** For logs: the configured URL (it holds no password). */
  description: string
  logger?: Logger
  /** One attempt, no reconnection (check --connect, rotate-ticket-keys). Default false. */
  oneShot?: boolean
  /** Milliseconds per command before it fails. Default 2000. */
  commandTimeout?: number
}

/** The event channel, after the prefix. */
export const EVENT_CHANNEL = 'events'
const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000

// Compare-and-delete / compare-and-expire: only the holder's token touches
// its lock (the usual single-instance Redis lock, redis.io SET documentation).
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
const EXTEND = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"

/** Delay before reconnection attempt `times` (1, 2, ...): 100 ms doubling to 5 s, with ±20 % jitter. */
export function reconnectDelay (times: number, random = Math.random()): number {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(times - 1, 10))
  return Math.round(base * (0.8 + random * 0.4))
}

export class RedisStore implements SharedStore {
  readonly instanceId = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`
  readonly description: string
  readonly #prefix: string
  readonly #logger: Logger
  readonly #client: Redis
  readonly #sub: Redis | undefined
  readonly #eventFns = new Set<(event: StoreEvent) => void>()
  readonly #statusFns = new Set<(up: boolean) => void>()
  readonly #errors: Record<string, number> = {}
  readonly #invalid: Record<string, number> = {}
  #up = false
  #everUp = false
  /** The outage was logged (once per outage, not per reconnection attempt). */
  #outageLogged = false
  #downSince = Date.now()
  #lastError: string | undefined
  #closed = false
  #lockSeq = 0

  constructor (options: RedisStoreOptions) {
    this.description = options.description
    this.#prefix = options.prefix
    this.#logger = options.logger ?? silentLogger
    const redisOptions: RedisOptions = {
      host: options.host,
      port: options.port,
      db: options.db,
      username: options.username,
      password: options.password,
      // node:tls verifies the server certificate against `ca` (or the
      // system store) and the host name, unless the host is an IP address
      // (then the IP must be in the certificate).
      tls: options.tls ? { ca: options.ca, servername: net.isIP(options.host) === 0 ? options.host : undefined } : undefined,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeout ?? 2000,
      connectTimeout: 3000,
      enableReadyCheck: true,
      autoResubscribe: false,
      retryStrategy: options.oneShot === true ? () => null : (times) => reconnectDelay(times),
      reconnectOnError: null,
      // RESP2: every Redis from 2.6 on and its forks speak it (RESP3 needs
      // HELLO, Redis 6+); the subscriber has its own connection anyway.
      protocol: 2,
    }
    this.#client = new Redis(redisOptions)
    this.#client.on('ready', () => this.#setUp(true))
    this.#client.on('close', () => this.#setUp(false))
    this.#client.on('error', (err: Error) => {
      this.#lastError = err.message
      // Reconnection attempts fail with an error each: counted, logged once.
      if (!this.#up) this.#count('connect')
    })
    if (options.oneShot !== true) {
      const sub = this.#client.duplicate()
      this.#sub = sub
      sub.on('error', () => {})
      sub.on('ready', () => {
        sub.subscribe(this.#prefix + EVENT_CHANNEL).then(() => {
          // Events sent while this connection was away are lost: re-sync.
          if (this.#up) this.#notify(true)
        }, () => this.#count('subscribe'))
      })
      sub.on('message', (_channel: string, message: string) => this.#onMessage(message))
      sub.connect().catch(() => {})
    }
    this.#client.connect().catch(() => {})
  }

  get up (): boolean {
    return this.#up
  }

  /** The last connection error (for check --connect), if any. */
  get lastError (): string | undefined {
    return this.#lastError
  }

  #setUp (up: boolean): void {
    if (this.#closed || up === this.#up) return
    this.#up = up
    if (up) {
      this.#lastError = undefined
      if (this.#everUp) this.#logger.info({ store: this.description, downForMs: Date.now() - this.#downSince }, 'store reconnected; re-syncing')
      else this.#logger.info({ store: this.description }, 'store connected')
      this.#everUp = true
      this.#outageLogged = false
    } else {
      this.#downSince = Date.now()
      this.logOutage()
    }
    this.#notify(up)
  }

  /** Logs the outage once (at start, when the store cannot be reached in time, or when it is lost). */
  logOutage (): void {
    if (this.#outageLogged || this.#closed || this.#up) return
    this.#outageLogged = true
    this.#logger.error({ store: this.description, reason: this.#lastError ?? 'connection closed' }, 'store unavailable; serving local state')
  }

  #notify (up: boolean): void {
    for (const fn of this.#statusFns) {
      try {
        fn(up)
      } catch (err) {
        this.#logger.error({ err }, 'store status listener failed')
      }
    }
  }

  #onMessage (message: string): void {
    let event: StoreEvent
    try {
      event = JSON.parse(message) as StoreEvent
      if (event === null || typeof event !== 'object' || typeof event.type !== 'string') throw new Error('not an event')
    } catch {
      this.invalid('event', EVENT_CHANNEL, 'not a JSON event')
      return
    }
    for (const fn of this.#eventFns) {
      try {
        fn(event)
      } catch (err) {
        this.#logger.error({ err, event: event.type }, 'store event listener failed')
      }
    }
  }

  #count (op: string): void {
    this.#errors[op] = (this.#errors[op] ?? 0) + 1
  }

  /** Runs one command; a failure is counted under `op` and rejects as ERR_STORE_UNAVAILABLE. */
  async #run<T>(op: string, command: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreError('ERR_STORE_UNAVAILABLE', op, 'the store is closed')
    try {
      return await command()
    } catch (err) {
      this.#count(op)
      const message = (err as Error).message
      if (this.#up) this.#logger.warn({ store: this.description, op, reason: message }, 'store operation failed')
      throw new StoreError('ERR_STORE_UNAVAILABLE', op, `${op}: ${message}`)
    }
  }

  async get (key: string): Promise<string | undefined> {
    const value = await this.#run('get', async () => await this.#client.get(this.#prefix + key))
    return value ?? undefined
  }

  async set (key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const k = this.#prefix + key
    const c = this.#client
    const reply = await this.#run('set', async () => {
      if (options.ttlMs !== undefined && options.ifAbsent === true) return await c.set(k, value, 'PX', options.ttlMs, 'NX')
      if (options.ttlMs !== undefined) return await c.set(k, value, 'PX', options.ttlMs)
      if (options.ifAbsent === true) return await c.set(k, value, 'NX')
      return await c.set(k, value)
    })
    return reply === 'OK'
  }

  async del (key: string): Promise<void> {
    await this.#run('del', async () => await this.#client.del(this.#prefix + key))
  }

  async scan (pattern: string): Promise<string[]> {
    const out = new Set<string>()
    await this.#run('scan', async () => {
      let cursor = '0'
      do {
        const [next, keys] = await this.#client.scan(cursor, 'MATCH', this.#prefix + pattern, 'COUNT', 200)
        for (const k of keys) out.add(k.slice(this.#prefix.length))
        cursor = next
      } while (cursor !== '0')
    })
    return [...out]
  }

  async mark (key: string, member: string, ttlMs: number): Promise<void> {
    const k = this.#prefix + key
    await this.#run('mark', async () => await this.#client.multi().sadd(k, member).pexpire(k, ttlMs).exec())
  }

  async count (key: string): Promise<number> {
    return await this.#run('count', async () => await this.#client.scard(this.#prefix + key))
  }

  async lock (name: string, ttlMs: number): Promise<StoreLock | undefined> {
    const key = `${this.#prefix}lock:${name}`
    const token = `${this.instanceId}:${++this.#lockSeq}`
    const reply = await this.#run('lock', async () => await this.#client.set(key, token, 'PX', ttlMs, 'NX'))
    if (reply !== 'OK') return undefined
    return {
      name,
      token,
      extend: async (ms: number) => (await this.#run('lock', async () => await this.#client.eval(EXTEND, 1, key, token, String(ms)))) === 1,
      release: async () => {
        // Unreleased, it expires on its own after ttlMs.
        await this.#run('lock', async () => await this.#client.eval(RELEASE, 1, key, token)).catch(() => {})
      },
    }
  }

  async holder (name: string): Promise<string | undefined> {
    return (await this.#run('lock', async () => await this.#client.get(`${this.#prefix}lock:${name}`))) ?? undefined
  }

  async publish (event: StoreEvent): Promise<number> {
    return await this.#run('publish', async () => await this.#client.publish(this.#prefix + EVENT_CHANNEL, JSON.stringify(event)))
  }

  onEvent (fn: (event: StoreEvent) => void): () => void {
    this.#eventFns.add(fn)
    return () => this.#eventFns.delete(fn)
  }

  onStatus (fn: (up: boolean) => void): () => void {
    this.#statusFns.add(fn)
    return () => this.#statusFns.delete(fn)
  }

  invalid (kind: string, key: string, reason: string): void {
    this.#invalid[kind] = (this.#invalid[kind] ?? 0) + 1
    this.#logger.error({ store: this.description, kind, key: this.#prefix + key, reason }, 'invalid value in the store refused')
  }

  stats (): StoreStats {
    return { up: this.#up ? 1 : 0, errors: { ...this.#errors }, invalid: { ...this.#invalid } }
  }

  async ready (timeoutMs: number): Promise<boolean> {
    if (this.#up) return true
    await new Promise<void>((resolve) => {
      const client = this.#client
      const timer = setTimeout(done, timeoutMs)
      const off = this.onStatus((up) => { if (up) done() })
      // A one-shot client that failed does not try again: no need to wait.
      client.once('end', done)
      function done (): void {
        clearTimeout(timer)
        off()
        client.removeListener('end', done)
        resolve()
      }
    })
    return this.#up
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#eventFns.clear()
    this.#statusFns.clear()
    for (const c of [this.#client, this.#sub]) {
      if (c === undefined) continue
      // QUIT when connected, so Redis sees a clean goodbye; else just drop.
      if (c.status === 'ready') await c.quit().catch(() => c.disconnect())
      else c.disconnect()
    }
  }
}
