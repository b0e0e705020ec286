// TLS ticket keys shared through the store, so that a ticket sealed by one
// instance opens on every other (SPEC §4.4): one record, `tickets`, holds
// the previous, current and next keys with the generation and time of the
// last rotation. Every instance seals with current and opens with all three
// (the library's ticketer: first key seals, every key opens); `next` already
// opens everywhere, so an instance that learns of a rotation a moment late
// still opens the tickets of those that learned first, and the tickets it
// seals meanwhile (with the new previous) open everywhere too.
//
// Rotation: whichever instance finds the record due (rotatedAt + lifetime)
// takes the lock `lock:tickets` (SET NX PX, released by its token only),
// re-reads the record, rotates it and publishes `ticket-keys`. Instances
// learn of it by pub/sub at once and by polling every 10 s, because pub/sub
// delivers at most once: a message sent while an instance is reconnecting is
// lost, and the poll bounds how stale it can be (`next` makes even that
// harmless for one rotation).
//
// Degradation: with the store away the last keys loaded keep serving, and a
// due rotation happens locally (previous ← current ← next ← random), which
// still agrees with the other instances for that first rotation since `next`
// was shared. When the store comes back (also empty: a restart without
// persistence) the first instance to take the lock writes its keys back, so
// no ticket already issued stops resuming; a record that does not decode is
// refused, counted, and replaced the same way.
import crypto from 'node:crypto'

import type { Logger } from '../../log'
import { TICKET_KEY_LENGTH } from '../../session'
import type { Sealer } from './sealing'
import { invalidValue, type SharedStore, StoreError } from './shared-store'

/** The store key of the ticket keys (after the prefix). */
export const TICKETS_KEY = 'tickets'
const LOCK = 'tickets'
const LOCK_TTL_MS = 10_000
export const TICKET_POLL_MS = 10_000

export interface TicketKeySet {
  previous?: Buffer
  current: Buffer
  next: Buffer
  /** Rotations since the keys were first made (0: made locally, never stored). */
  generation: number
  /** When `current` started sealing (ms since the epoch). */
  rotatedAt: number
}

/** The ticketer's material: current (seals) ‖ previous ‖ next (all open). */
export function ticketKeyMaterial (set: TicketKeySet): Buffer {
  return Buffer.concat(set.previous === undefined ? [set.current, set.next] : [set.current, set.previous, set.next])
}

export function freshTicketKeys (generation = 0, now = Date.now()): TicketKeySet {
  return { current: crypto.randomBytes(TICKET_KEY_LENGTH), next: crypto.randomBytes(TICKET_KEY_LENGTH), generation, rotatedAt: now }
}

export function rotateTicketKeys (set: TicketKeySet, now = Date.now()): TicketKeySet {
  return { previous: set.current, current: set.next, next: crypto.randomBytes(TICKET_KEY_LENGTH), generation: set.generation + 1, rotatedAt: now }
}

function sameKeys (a: TicketKeySet, b: TicketKeySet): boolean {
  return a.generation === b.generation && ticketKeyMaterial(a).equals(ticketKeyMaterial(b))
}

/** The record as stored: JSON with each key sealed on its own (name `tickets#<field>`). */
export function encodeTicketKeys (set: TicketKeySet, lifetimeSeconds: number, sealer: Sealer): string {
  const seal = (field: string, key: Buffer): string => sealer.seal(`${TICKETS_KEY}#${field}`, key)
  return JSON.stringify({
    v: 1,
    generation: set.generation,
    rotatedAt: set.rotatedAt,
    lifetime: lifetimeSeconds,
    ...(set.previous === undefined ? {} : { previous: seal('previous', set.previous) }),
    current: seal('current', set.current),
    next: seal('next', set.next),
  })
}

/** Throws an ERR_STORE_INVALID_VALUE StoreError (kind ticket-keys) for anything but a well-formed record. */
export function decodeTicketKeys (text: string, sealer: Sealer): TicketKeySet {
  let r: Record<string, unknown>
  try {
    r = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw invalidValue('ticket-keys', `${TICKETS_KEY}: not JSON`)
  }
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalidValue('ticket-keys', `${TICKETS_KEY}: not a JSON object`)
  if (r.v !== 1) throw invalidValue('ticket-keys', `${TICKETS_KEY}: unknown format version ${JSON.stringify(r.v)}`)
  if (typeof r.generation !== 'number' || !Number.isSafeInteger(r.generation) || r.generation < 0) throw invalidValue('ticket-keys', `${TICKETS_KEY}: bad generation`)
  if (typeof r.rotatedAt !== 'number' || !Number.isFinite(r.rotatedAt) || r.rotatedAt <= 0) throw invalidValue('ticket-keys', `${TICKETS_KEY}: bad rotatedAt`)
  const key = (field: string): Buffer => {
    const k = sealer.open('ticket-keys', `${TICKETS_KEY}#${field}`, r[field])
    if (k.length !== TICKET_KEY_LENGTH) throw invalidValue('ticket-keys', `${TICKETS_KEY}#${field}: not a ${TICKET_KEY_LENGTH}-byte key`)
    return k
  }
  const set: TicketKeySet = { current: key('current'), next: key('next'), generation: r.generation, rotatedAt: r.rotatedAt }
  if (r.previous !== undefined) set.previous = key('previous')
  return set
}

export interface StoreTicketKeysOptions {
  store: SharedStore
  sealer: Sealer
  /** Rotation period, seconds (ticketLifetime). */
  lifetime: number
  logger: Logger
  /** New keys to put in place (material: current ‖ previous ‖ next). */
  onChange: (material: Buffer, set: TicketKeySet) => void
  /** Default TICKET_POLL_MS. */
  pollMs?: number
}

/**
 * Under the lock: writes `fallback` (or fresh keys) when the record is
 * missing or invalid, else the rotation of the stored record when it is due
 * or `force`; publishes what it wrote. Resolves with the keys now stored, or
 * 'busy' when another instance holds the lock.
 */
export async function rotateStoredTicketKeys (store: SharedStore, sealer: Sealer, lifetime: number, options: { force: boolean, fallback?: TicketKeySet }): Promise<TicketKeySet | 'busy'> {
  const lock = await store.lock(LOCK, LOCK_TTL_MS)
  if (lock === undefined) return 'busy'
  try {
    const stored = await readTicketKeys(store, sealer)
    let next: TicketKeySet
    if (stored === undefined) {
      const base = options.fallback ?? freshTicketKeys()
      next = { ...base, generation: Math.max(1, base.generation) }
    } else if (options.force || Date.now() >= stored.rotatedAt + lifetime * 1000) {
      next = rotateTicketKeys(stored)
    } else {
      return stored
    }
    await store.set(TICKETS_KEY, encodeTicketKeys(next, lifetime, sealer))
    await store.publish({ type: 'ticket-keys', generation: next.generation }).catch(() => 0)
    return next
  } finally {
    await lock.release()
  }
}

/** The stored record; undefined when absent or invalid (an invalid one is counted and logged). */
async function readTicketKeys (store: SharedStore, sealer: Sealer): Promise<TicketKeySet | undefined> {
  const text = await store.get(TICKETS_KEY)
  if (text === undefined) return undefined
  try {
    return decodeTicketKeys(text, sealer)
  } catch (err) {
    if (!(err instanceof StoreError)) throw err
    store.invalid('ticket-keys', TICKETS_KEY, err.message)
    return undefined
  }
}

/** One instance's view of the shared ticket keys (see the top of this file). */
export class StoreTicketKeys {
  readonly #o: StoreTicketKeysOptions
  #keys: TicketKeySet = freshTicketKeys()
  #lifetime: number
  #due: NodeJS.Timeout | undefined
  #poll: NodeJS.Timeout | undefined
  #retry: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #again = false
  #stopped = false
  readonly #off: Array<() => void> = []

  constructor (options: StoreTicketKeysOptions) {
    this.#o = options
    this.#lifetime = options.lifetime
  }

  /** The keys in place now (current ‖ previous ‖ next). */
  get material (): Buffer {
    return ticketKeyMaterial(this.#keys)
  }

  get generation (): number {
    return this.#keys.generation
  }

  /**
   * Loads (or seeds) the stored keys, waiting a little for an instance that
   * is seeding them at the same moment, then follows the store: events,
   * polling, reconnections, due rotations.
   */
  async start (): Promise<void> {
    const { store } = this.#o
    for (let i = 0; i < 10 && store.up && this.#keys.generation === 0; i++) {
      await this.sync()
      if (this.#keys.generation === 0) await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 200))
    }
    this.#off.push(store.onEvent((e) => { if (e.type === 'ticket-keys') void this.sync() }))
    this.#off.push(store.onStatus((up) => { if (up) void this.sync() }))
    this.#poll = setInterval(() => { void this.sync() }, this.#o.pollMs ?? TICKET_POLL_MS)
    this.#poll.unref()
    this.#scheduleDue()
  }

  /** ticketLifetime changed (reload): the next rotation follows it. */
  setLifetime (seconds: number): void {
    if (seconds === this.#lifetime) return
    this.#lifetime = seconds
    this.#scheduleDue()
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#due)
    clearTimeout(this.#retry)
    clearInterval(this.#poll)
    for (const off of this.#off) off()
  }

  /** Brings the local keys in line with the store (one run at a time; a request during a run runs again after it). */
  async sync (): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true
      return await this.#running
    }
    this.#running = (async () => {
      do {
        this.#again = false
        await this.#syncOnce()
      } while (this.#again && !this.#stopped)
    })().finally(() => { this.#running = undefined })
    return await this.#running
  }

  async #syncOnce (): Promise<void> {
    const { store, sealer, logger } = this.#o
    if (this.#stopped || !store.up) return
    try {
      const stored = await readTicketKeys(store, sealer)
      if (stored !== undefined) this.#adopt(stored, 'ticket keys updated from the store')
      // Missing (first start, a store that restarted empty) or invalid:
      // what this instance serves goes (back) in, so no ticket is lost. Due:
      // rotated. Either way only under the lock.
      if (stored === undefined || Date.now() >= stored.rotatedAt + this.#lifetime * 1000) {
        const written = await rotateStoredTicketKeys(store, sealer, this.#lifetime, { force: false, fallback: this.#keys })
        if (written !== 'busy') {
          const mine = ticketKeyMaterial(written).equals(ticketKeyMaterial(this.#keys))
          this.#adopt(written, stored === undefined ? 'ticket keys stored' : 'ticket keys rotated')
          // Same keys: #adopt stays quiet, but the store had lost them (or held garbage).
          if (mine && stored === undefined) logger.info({ generation: written.generation }, 'ticket keys written (back) to the store')
        } else if (!this.#stopped) {
          // Another instance is writing: its event (or this retry) brings the result.
          clearTimeout(this.#retry)
          this.#retry = setTimeout(() => { void this.sync() }, 250 + Math.random() * 250)
          this.#retry.unref()
        }
      }
    } catch (err) {
      // The store logged the outage (or the failed operation); the local keys
      // keep serving. Anything else is a fault of ours: logged, never thrown
      // from this background work.
      if (err instanceof StoreError) logger.debug({ reason: err.message }, 'ticket keys not synchronized with the store')
      else logger.error({ err }, 'ticket keys not synchronized with the store')
    }
    this.#scheduleDue()
  }

  /**
   * Puts `set` in place. Keys this instance wrote back from its own are
   * the same keys under a new generation: only a change of keys reaches
   * the ticketer and the log.
   */
  #adopt (set: TicketKeySet, message: string): void {
    if (sameKeys(set, this.#keys)) return
    const material = ticketKeyMaterial(set)
    const changed = !material.equals(ticketKeyMaterial(this.#keys))
    this.#keys = set
    if (!changed) return
    this.#o.onChange(material, set)
    this.#o.logger.info({ generation: set.generation, rotatedAt: new Date(set.rotatedAt).toISOString() }, message)
  }

  #scheduleDue (): void {
    if (this.#stopped) return
    clearTimeout(this.#due)
    const at = this.#keys.rotatedAt + this.#lifetime * 1000
    // A little jitter: instances due together do not all race for the lock.
    const delay = Math.min(Math.max(0, at - Date.now()) + Math.random() * 500, 2 ** 31 - 1)
    this.#due = setTimeout(() => this.#onDue(), delay)
    this.#due.unref()
  }

  #onDue (): void {
    if (this.#stopped) return
    if (this.#o.store.up) {
      void this.sync()
      return
    }
    // The store is away: rotate locally. The first such rotation still
    // agrees with the other instances (`next` was shared).
    this.#keys = rotateTicketKeys(this.#keys)
    this.#o.onChange(ticketKeyMaterial(this.#keys), this.#keys)
    this.#o.logger.warn({ generation: this.#keys.generation }, 'ticket keys rotated locally; the store is unavailable')
    this.#scheduleDue()
  }
}
