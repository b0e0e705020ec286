// Session resumption settings: the server's bounded session cache and its
// ticketer (SPEC §4.4), as native handles. By default a server seals TLS 1.3
// tickets (and TLS 1.2 tickets, for clients that ask) with keys generated at
// start and rotated every ticket lifetime; a ticket is stateless, so any
// number of connections may resume from it, as with node:tls. The cache
// keeps serving TLS 1.2 session ids.
import crypto from 'node:crypto'

import { ConfigError } from './errors'
import { addon, type NativeSessionCache, type NativeTicketer } from './native'

/** Default number of sessions a server keeps (TLS 1.2 ids; TLS 1.3 tickets only without a ticketer). */
export const DEFAULT_SESSION_CACHE_SIZE = 20000
/** One ticket key: 80 bytes, as `openssl rand 80` makes them. */
export const TICKET_KEY_LENGTH = 80
/**
 * Default ticket lifetime, in seconds: the lifetime hint sent with each
 * ticket and the rotation period of generated keys. 6 hours, as rustls' own
 * `Ticketer::new()`.
 */
export const TICKET_LIFETIME_SECONDS = 6 * 60 * 60
/** RFC 8446 §4.6.1: a ticket lifetime never exceeds 7 days. */
export const MAX_TICKET_LIFETIME_SECONDS = 7 * 24 * 60 * 60

/** `sessionCache` option: a size, `{size}`, or `'none'` to turn it off. */
export type SessionCacheOption = number | { size: number } | 'none'

export function sessionCacheSize (value: SessionCacheOption | undefined, keyPath: string): number {
  if (value === undefined) return DEFAULT_SESSION_CACHE_SIZE
  if (value === 'none') return 0
  const size = typeof value === 'number' ? value : (value as { size?: unknown })?.size
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be "none", a positive integer or {size: <positive integer>}', value)
  }
  return size
}

/**
 * The server's store: `size` sessions in memory; with `external` (session
 * callbacks or a sessionStore) sessions are also reported to the
 * application, and size 0 keeps none in memory, only the application's.
 */
export function createSessionCache (size: number, external = false): NativeSessionCache | null {
  if (size === 0 && !external) return null
  return new addon.SessionCache(size, { report: external })
}

/** `ticketLifetime` option: whole seconds, 1 to 7 days. */
export function ticketLifetime (value: number | undefined, keyPath: string): number {
  if (value === undefined) return TICKET_LIFETIME_SECONDS
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TICKET_LIFETIME_SECONDS) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, `must be a whole number of seconds from 1 to ${MAX_TICKET_LIFETIME_SECONDS} (7 days, RFC 8446 §4.6.1)`, value)
  }
  return value
}

/**
 * `ticketKeys`: one or more 80-byte keys, concatenated (a Buffer) or as an
 * array; returned as one Buffer of our own. The first key seals new
 * tickets; all open tickets, so rotation is "put a new key first, keep the
 * old one for a ticket lifetime".
 */
export function ticketKeyMaterial (value: Buffer | readonly Buffer[] | undefined, keyPath: string): Buffer | undefined {
  if (value === undefined) return undefined
  const material = Array.isArray(value) && value.every((k) => Buffer.isBuffer(k)) ? Buffer.concat(value as Buffer[]) : value
  if (!Buffer.isBuffer(material) || material.length === 0 || material.length % TICKET_KEY_LENGTH !== 0) {
    // The key material itself is never echoed.
    throw new ConfigError('ERR_TLS_CONFIG_TICKET_KEYS', keyPath,
      `must be a whole number of ${TICKET_KEY_LENGTH}-byte keys (e.g. \`openssl rand 80\`)`)
  }
  return Buffer.from(material)
}

/**
 * Generated ticket keys on a schedule. `current` seals; `previous` (which
 * sealed during the last lifetime) still opens, so a ticket stays usable
 * for at least one lifetime and at most two; `next` opens already, so that
 * servers that get the keys at slightly different moments (the workers of
 * a cluster) open each other's tickets whichever of them rotated first.
 */
export class TicketKeySchedule {
  #previous: Buffer | undefined
  #current = crypto.randomBytes(TICKET_KEY_LENGTH)
  #next = crypto.randomBytes(TICKET_KEY_LENGTH)
  #rotations = 0

  rotate (): void {
    this.#previous = this.#current
    this.#current = this.#next
    this.#next = crypto.randomBytes(TICKET_KEY_LENGTH)
    this.#rotations++
  }

  /** Rotations so far (0 at start). */
  get rotations (): number {
    return this.#rotations
  }

  /** current ‖ previous (after a rotation) ‖ next: the ticketer's key material. */
  material (): Buffer {
    return Buffer.concat(this.#previous === undefined ? [this.#current, this.#next] : [this.#current, this.#previous, this.#next])
  }
}

export interface TicketSettings {
  /** Explicit keys (ticketKeys): never rotated here. Undefined: generated keys, rotated every lifetime. */
  keys: Buffer | undefined
  /** Lifetime hint and rotation period, in seconds. */
  lifetime: number
}

/**
 * The ticketer of one server (or SecureContext) and, with generated keys,
 * the timer that rotates them. Rotation pushes the keys into the native
 * ticketer that every config of the server shares: nothing is rebuilt and
 * live connections are not touched.
 */
export class ServerTickets {
  readonly native: NativeTicketer
  #keys: Buffer | undefined
  #schedule: TicketKeySchedule | undefined
  #lifetime: number
  #timer: NodeJS.Timeout | undefined

  constructor (settings: TicketSettings) {
    this.#lifetime = settings.lifetime
    this.#keys = settings.keys
    this.#schedule = settings.keys === undefined ? new TicketKeySchedule() : undefined
    this.native = new addon.Ticketer(this.material(), settings.lifetime)
    this.#restartTimer()
  }

  /** The keys in use, first one sealing: a copy (node:tls getTicketKeys). */
  material (): Buffer {
    return Buffer.from(this.#keys ?? (this.#schedule as TicketKeySchedule).material())
  }

  /** Whether the keys are generated and rotated here. */
  get rotating (): boolean {
    return this.#schedule !== undefined
  }

  /**
   * Applies new settings in place: explicit keys replace the current ones
   * (and stop the rotation); without keys, generated keys keep rotating
   * (fresh ones if the keys were explicit until now).
   */
  update (settings: TicketSettings): void {
    const lifetimeChanged = settings.lifetime !== this.#lifetime
    this.#lifetime = settings.lifetime
    if (settings.keys !== undefined) {
      this.#keys = settings.keys
      this.#schedule = undefined
    } else if (this.#schedule === undefined) {
      this.#keys = undefined
      this.#schedule = new TicketKeySchedule()
    }
    this.native.setKeys(this.material(), this.#lifetime)
    if (lifetimeChanged || this.#schedule === undefined || this.#timer === undefined) this.#restartTimer()
  }

  destroy (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.native.destroy()
  }

  #restartTimer (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    const schedule = this.#schedule
    if (schedule === undefined) return
    this.#timer = setInterval(() => {
      schedule.rotate()
      this.native.setKeys(schedule.material(), this.#lifetime)
    }, this.#lifetime * 1000)
    // A server's listening socket keeps the process alive, not its keys.
    this.#timer.unref()
  }
}

/**
 * The tickets a server or context issues: `ticketKeys` if given, else
 * generated rotating keys, unless `sessionCache: 'none'` turned server-side
 * resumption off (then null: no ticketer, nothing resumes).
 */
export function ticketSettings (options: { ticketKeys?: Buffer | readonly Buffer[], ticketLifetime?: number }, cacheSize: number): TicketSettings | null {
  const keys = ticketKeyMaterial(options.ticketKeys, 'ticketKeys')
  const lifetime = ticketLifetime(options.ticketLifetime, 'ticketLifetime')
  if (keys === undefined && cacheSize === 0) return null
  return { keys, lifetime }
}
