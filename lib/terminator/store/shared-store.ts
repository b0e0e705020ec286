// What the terminator asks of a shared store (`store:` in the
// configuration): a few string values with optional expiry, a lock with an
// owner token, small sets, and one event channel. Redis implements it
// (redis-store.ts); ticket keys (ticket-keys.ts), ACME state (acme-state.ts)
// and, later, TLS 1.2 sessions are written against this interface only.
//
// Keys and event channels are given without the configured prefix; the
// store adds it. Every operation either resolves or rejects with a
// StoreError: a caller degrades to its local state on rejection and never
// crashes. A value read back that does not decode is the caller's to refuse,
// through invalid(): counted, logged, never used.

/** Codes of the errors a store operation rejects with. */
export type StoreErrorCode = 'ERR_STORE_UNAVAILABLE' | 'ERR_STORE_INVALID_VALUE'

export class StoreError extends Error {
  readonly code: StoreErrorCode
  /** The operation (`get`, `set`, `lock`, ...) or the kind of value that failed. */
  readonly op: string

  constructor (code: StoreErrorCode, op: string, message: string) {
    super(message)
    this.name = 'StoreError'
    this.code = code
    this.op = op
  }
}

/** A value from the store that does not decode (garbage, another format, the wrong encryption key). */
export function invalidValue (kind: string, reason: string): StoreError {
  return new StoreError('ERR_STORE_INVALID_VALUE', kind, reason)
}

export interface SetOptions {
  /** Expiry in milliseconds. Default: none. */
  ttlMs?: number
  /** Only when the key does not exist (SET NX). Default false. */
  ifAbsent?: boolean
}

/**
 * A held lock. Only its holder's token releases or extends it, so a holder
 * that stalled past the expiry cannot release the lock another instance
 * took since.
 */
export interface StoreLock {
  readonly name: string
  /** `<hostname>:<pid>:<random>`: who holds it, for logs and operators. */
  readonly token: string
  /** Pushes the expiry to `ttlMs` from now; false when the lock was lost (expired, taken). */
  extend: (ttlMs: number) => Promise<boolean>
  /** Releases the lock if still held by this token. Never rejects. */
  release: () => Promise<void>
}

/** An event on the store's channel: `type` says what changed; receivers read the key itself. */
export interface StoreEvent {
  type: string
  [field: string]: unknown
}

/** Counters for /metrics (rustls_node_store_*). */
export interface StoreStats {
  /** 1 while connected and ready, else 0. */
  up: number
  /** Failed operations by op (connect, get, set, del, scan, lock, publish, ...). */
  errors: Record<string, number>
  /** Values refused by kind (ticket-keys, acme-certificate, ...). */
  invalid: Record<string, number>
}

export interface SharedStore {
  /** Connected and ready right now. */
  readonly up: boolean
  /** This process among the store's clients (`<hostname>:<pid>:<random>`). */
  readonly instanceId: string
  /** The store's address for logs (no secret in it). */
  readonly description: string

  get: (key: string) => Promise<string | undefined>
  /** Resolves false when `ifAbsent` and the key exists. */
  set: (key: string, value: string, options?: SetOptions) => Promise<boolean>
  del: (key: string) => Promise<void>
  /** Keys matching `pattern` (a glob after the prefix), prefix removed. */
  scan: (pattern: string) => Promise<string[]>
  /** Adds `member` to the set `key` and sets its expiry. */
  mark: (key: string, member: string, ttlMs: number) => Promise<void>
  /** Members in the set `key`. */
  count: (key: string) => Promise<number>

  /** Takes the lock `name` for `ttlMs` (SET NX PX); undefined when someone else holds it. */
  lock: (name: string, ttlMs: number) => Promise<StoreLock | undefined>
  /** The token of whoever holds `name`, if anyone. */
  holder: (name: string) => Promise<string | undefined>

  /** Sends `event` to every subscribed instance (this one included); resolves with how many received it. */
  publish: (event: StoreEvent) => Promise<number>
  /** Calls `fn` for every event received; returns the unsubscribe function. */
  onEvent: (fn: (event: StoreEvent) => void) => () => void
  /** Calls `fn(true)` when the store becomes ready (again) and `fn(false)` when it is lost; returns the unsubscribe function. */
  onStatus: (fn: (up: boolean) => void) => () => void

  /** Counts and logs a refused value (`kind`: ticket-keys, acme-certificate, ...; never the value itself). */
  invalid: (kind: string, key: string, reason: string) => void
  stats: () => StoreStats
  /** Waits until ready, up to `timeoutMs`; resolves whether it is up. */
  ready: (timeoutMs: number) => Promise<boolean>
  close: () => Promise<void>
}
