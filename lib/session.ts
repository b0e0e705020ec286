// Session resumption settings: the server's bounded session cache and the
// shared ticket keys (SPEC §4.4), as native handles.
import { ConfigError } from './errors'
import { addon, type NativeHandle } from './native'

/** Default number of sessions a server keeps (TLS 1.2 ids, TLS 1.3 tickets). */
export const DEFAULT_SESSION_CACHE_SIZE = 20000
/** One ticket key: 80 bytes, as `openssl rand 80` makes them. */
export const TICKET_KEY_LENGTH = 80
/** Lifetime hint of stateless tickets, in seconds. */
export const TICKET_LIFETIME_SECONDS = 12 * 60 * 60

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

export function createSessionCache (size: number): NativeHandle | null {
  return size > 0 ? new addon.SessionCache(size) : null
}

/**
 * `ticketKeys`: one or more 80-byte keys, concatenated (a Buffer) or as an
 * array. The first key seals new tickets; all open tickets, so rotation is
 * "put a new key first, keep the old one for a ticket lifetime".
 */
export function createTicketer (value: Buffer | readonly Buffer[] | undefined, keyPath: string): NativeHandle | null {
  if (value === undefined) return null
  const material = Array.isArray(value) ? Buffer.concat(value as Buffer[]) : value
  if (!Buffer.isBuffer(material) || material.length === 0 || material.length % TICKET_KEY_LENGTH !== 0) {
    // The key material itself is never echoed.
    throw new ConfigError('ERR_TLS_CONFIG_TICKET_KEYS', keyPath,
      `must be a whole number of ${TICKET_KEY_LENGTH}-byte keys (e.g. \`openssl rand 80\`)`)
  }
  return new addon.Ticketer(material, TICKET_LIFETIME_SECONDS)
}
