// The session cache callbacks of a server (node:tls 'newSession' and
// 'resumeSession') and the `sessionStore` option built on them, for every
// path a connection takes (the native listener, the net.Server path).
//
// Native code stores every session in the server's own store (a bounded
// memory cache) and, while someone listens, reports each new one; a
// ClientHello that asks for a session the own store lacks waits, natively,
// while JS looks it up. A lookup that fails, or takes longer than
// `sessionLookupTimeout`, gives a full handshake: never a stall or a
// failure. Answers rustls cannot decode are refused by rustls (a full
// handshake) and counted.
import type { EventEmitter } from 'node:events'

import { ConfigError } from './errors'
import type { Logger } from './log'
import type { NativeSessionCache } from './native'

/**
 * A store of TLS sessions shared with other servers (other processes,
 * other machines): the convenient form of the two events.
 */
export interface SessionStore {
  /** The session data stored under `sessionId`, or nothing. */
  get: (sessionId: Buffer) => Promise<Buffer | null | undefined>
  /** Stores a session for `ttlSeconds`. */
  set: (sessionId: Buffer, sessionData: Buffer, ttlSeconds: number) => Promise<void>
  /**
   * Optional: forgets a session `get` answered that is used up: rustls
   * refused it (a full handshake instead), or it resumed a TLS 1.3
   * handshake (a stateful TLS 1.3 session is single-use).
   */
  delete?: (sessionId: Buffer) => Promise<void>
}

export const DEFAULT_SESSION_LOOKUP_TIMEOUT = 50

export function sessionLookupTimeout (value: unknown, keyPath: string): number {
  if (value === undefined) return DEFAULT_SESSION_LOOKUP_TIMEOUT
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 60_000) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be a whole number of milliseconds from 1 to 60000', value)
  }
  return value
}

export function checkSessionStore (value: unknown, keyPath: string): SessionStore | undefined {
  if (value === undefined) return undefined
  const s = value as Partial<SessionStore> | null
  if (s === null || typeof s !== 'object' || typeof s.get !== 'function' || typeof s.set !== 'function') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be an object with get(sessionId) and set(sessionId, sessionData, ttlSeconds) returning promises', value)
  }
  if (s.delete !== undefined && typeof s.delete !== 'function') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', `${keyPath}.delete`, 'must be a function delete(sessionId) returning a promise', s.delete)
  }
  return s as SessionStore
}

export interface SessionCounters {
  /** Lookups asked (resumeSession or the store). */
  lookups: number
  /** Answered with a session in time. */
  hits: number
  /** Failed (a rejected promise, an error to the callback): a full handshake. */
  errors: number
  /** Not answered within sessionLookupTimeout: a full handshake. */
  timeouts: number
  /** New sessions handed on (newSession, the store). */
  stored: number
  /** Answered sessions used up (refused by rustls, or resumed TLS 1.3): handed to the store's delete. */
  spent: number
}

export class ServerSessions {
  readonly #server: EventEmitter
  #store: SessionStore | undefined
  #timeout: number
  #ttl: number
  #logger: Logger
  readonly counters: SessionCounters = { lookups: 0, hits: 0, errors: 0, timeouts: 0, stored: 0, spent: 0 }

  constructor (server: EventEmitter, settings: { store?: SessionStore, timeout: number, ttlSeconds: number, logger: Logger }) {
    this.#server = server
    this.#store = settings.store
    this.#timeout = settings.timeout
    this.#ttl = settings.ttlSeconds
    this.#logger = settings.logger
  }

  update (settings: { store?: SessionStore, timeout: number, ttlSeconds: number, logger: Logger }): void {
    this.#store = settings.store
    this.#timeout = settings.timeout
    this.#ttl = settings.ttlSeconds
    this.#logger = settings.logger
  }

  get timeout (): number { return this.#timeout }
  get hasStore (): boolean { return this.#store !== undefined }
  /** Hellos that name a session the server lacks are asked about. */
  get looksUp (): boolean { return this.#store !== undefined || this.#server.listenerCount('resumeSession') > 0 }
  /** New sessions are reported. */
  get reports (): boolean { return this.#store !== undefined || this.#server.listenerCount('newSession') > 0 }

  /**
   * The session stored under `sessionId`, or null; never rejects. With
   * `bounded`, null once sessionLookupTimeout passed (the native listener
   * keeps that bound itself).
   */
  lookup (sessionId: Buffer, bounded: boolean): Promise<Buffer | null> {
    this.counters.lookups++
    const answer = new Promise<Buffer | null>((resolve) => {
      const failed = (err: unknown): void => {
        this.counters.errors++
        this.#logger.warn({ err }, 'session lookup failed; a full handshake')
        resolve(null)
      }
      const store = this.#store
      if (store !== undefined) {
        let pending: Promise<Buffer | null | undefined>
        try {
          pending = store.get(sessionId)
        } catch (err) {
          failed(err)
          return
        }
        Promise.resolve(pending).then((data) => resolve(Buffer.isBuffer(data) ? data : null), failed)
        return
      }
      let answered = false
      const callback = (err: Error | null, data?: Buffer | null): void => {
        if (answered) return
        answered = true
        if (err !== null && err !== undefined) failed(err)
        else resolve(Buffer.isBuffer(data) ? data : null)
      }
      try {
        if (!this.#server.emit('resumeSession', sessionId, callback)) callback(null, null)
      } catch (err) {
        if (!answered) {
          answered = true
          failed(err)
        }
      }
    })
    const counted = answer.then((data) => {
      if (data !== null) this.counters.hits++
      return data
    })
    if (!bounded) return counted
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.counters.timeouts++
        this.#logger.debug({ timeout: this.#timeout }, 'session lookup took too long; a full handshake')
        resolve(null)
      }, this.#timeout)
      timer.unref()
      void counted.then((data) => {
        clearTimeout(timer)
        resolve(data)
      })
    })
  }

  /** Sessions the server stored: [sessionId, sessionData, ...] (SessionCache.takeNew order). */
  stored (flat: readonly Buffer[]): void {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = flat[i]
      const data = flat[i + 1]
      this.counters.stored++
      // node:tls' newSession has a callback to wait for; rustls has stored
      // the session already and the handshake does not wait.
      this.#server.emit('newSession', id, data, () => {})
      const store = this.#store
      if (store === undefined) continue
      try {
        Promise.resolve(store.set(id, data, this.#ttl)).catch((err: unknown) => {
          this.counters.errors++
          this.#logger.warn({ err }, 'session not stored')
        })
      } catch (err) {
        this.counters.errors++
        this.#logger.warn({ err }, 'session not stored')
      }
    }
  }

  /** Sessions `lookup` answered that are used up (SessionStore.delete). */
  spent (ids: readonly Buffer[]): void {
    for (const id of ids) {
      this.counters.spent++
      const store = this.#store
      if (store?.delete === undefined) continue
      try {
        Promise.resolve(store.delete(id)).catch((err: unknown) => {
          this.counters.errors++
          this.#logger.warn({ err }, 'spent session not deleted')
        })
      } catch (err) {
        this.counters.errors++
        this.#logger.warn({ err }, 'spent session not deleted')
      }
    }
  }

  /** Sessions a connection's handshake stored, when reporting (the net.Server path, SNICallback). */
  drain (cache: NativeSessionCache | null): void {
    if (cache === null || !this.reports) return
    const flat = cache.takeNew()
    if (flat.length > 0) this.stored(flat)
  }
}
