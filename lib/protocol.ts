// Protocol versions (SPEC §4.1). rustls implements TLS 1.2 and 1.3 only, and
// mod_tls configures a *minimum*, never a maximum: every supported version at
// or above the minimum is enabled, so a configuration cannot pin a client to
// an older version than both sides can speak.
import { ConfigError } from './errors'

export type TlsVersionName = 'TLSv1.2' | 'TLSv1.3'

/** Wire value of TLS 1.2 (RFC 5246 §6.2.1: {3, 3}). */
export const TLS1_2 = 0x0303
/** Wire value of TLS 1.3 (RFC 8446 §4.2.1: 0x0304). */
export const TLS1_3 = 0x0304

/** A resolved protocol setting. */
export interface ProtocolRange {
  /** The configured minimum. */
  minVersion: TlsVersionName
  /** Wire versions to enable, lowest first: [0x0303, 0x0304] or [0x0304]. */
  versions: number[]
}

const NAMED_MINIMUMS: ReadonlyMap<string, number> = new Map([
  ['default', TLS1_2], ['v1.2+', TLS1_2], ['v1.3+', TLS1_3], ['TLSv1.2+', TLS1_2], ['TLSv1.3+', TLS1_3],
])
const PROTOCOL_FORMS = 'default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+'

function range (minimum: typeof TLS1_2 | typeof TLS1_3): ProtocolRange {
  // Fresh arrays: callers hand `versions` to native config builders and may
  // keep or alter them.
  return minimum === TLS1_3
    ? { minVersion: 'TLSv1.3', versions: [TLS1_3] }
    : { minVersion: 'TLSv1.2', versions: [TLS1_2, TLS1_3] }
}

function protocolError (keyPath: string, value: unknown, why: string): ConfigError {
  return new ConfigError('ERR_TLS_CONFIG_PROTOCOL', keyPath,
    `${why}; expected a minimum version: one of ${PROTOCOL_FORMS}`, value)
}

/**
 * Parses a mod_tls `TLSProtocol` value (SPEC §4.1): `default` (= `v1.2+`),
 * `v1.2+`, `v1.3+`, `TLSv1.2+`, `TLSv1.3+`, `TLSv0x0303+`, `TLSv0x0304+`.
 *
 * Spellings are matched exactly (mod_tls itself compares case-insensitively,
 * but the SPEC lists the accepted forms and calls anything else an error);
 * only the hex digits of the `TLSv0xNNNN+` form may be in either case, since
 * hex has no canonical case.
 *
 * @param value the configured value, as read (any type; validated here)
 * @param keyPath where the value was configured, for the error
 * @throws ConfigError `ERR_TLS_CONFIG_PROTOCOL` for anything else, including
 *   TLS 1.0/1.1 and versions above 1.3, which rustls does not know
 */
export function parseProtocol (value: unknown, keyPath: string): ProtocolRange {
  if (typeof value !== 'string') throw protocolError(keyPath, value, `${describe(value)} is not a protocol`)
  const hex = /^TLSv0x([0-9A-Fa-f]{4})\+$/.exec(value)
  const minimum = NAMED_MINIMUMS.get(value) ?? (hex === null ? undefined : parseInt(hex[1], 16))
  if (minimum === TLS1_2 || minimum === TLS1_3) return range(minimum)
  if (minimum !== undefined && minimum > TLS1_3) {
    throw protocolError(keyPath, value, `"${value}" asks for a minimum above TLS 1.3, which rustls does not know`)
  }
  if ((minimum !== undefined && minimum >= 0x0300) || /^(?:TLSv|v)1\.[01]\+$/.test(value)) {
    throw protocolError(keyPath, value, `"${value}" would enable versions below TLS 1.2; rustls supports TLS 1.2 and 1.3 only`)
  }
  if (NAMED_MINIMUMS.has(`${value}+`) || /^TLSv0x[0-9A-Fa-f]{4}$/.test(value)) {
    throw protocolError(keyPath, value, `"${value}" lacks the trailing "+" (a minimum is configured, not a single version)`)
  }
  throw protocolError(keyPath, value, `"${value}" is not a protocol`)
}

/**
 * Parses a `node:tls`-style `minVersion`: `'TLSv1.2'` or `'TLSv1.3'`.
 *
 * @param value the option value, as given (any type; validated here)
 * @param keyPath where the value was configured, for the error
 * @throws ConfigError `ERR_TLS_CONFIG_PROTOCOL` for anything else; `'TLSv1'`
 *   and `'TLSv1.1'` (valid in `node:tls`) are refused rather than raised to
 *   1.2, so a configuration never gets a different floor than it says
 */
export function parseMinVersion (value: unknown, keyPath: string): ProtocolRange {
  if (value === 'TLSv1.2') return range(TLS1_2)
  if (value === 'TLSv1.3') return range(TLS1_3)
  const why = value === 'TLSv1' || value === 'TLSv1.1' || value === 'SSLv3'
    ? `${value} is not available: rustls supports TLS 1.2 and 1.3 only`
    : `${describe(value)} is not a TLS version`
  throw new ConfigError('ERR_TLS_CONFIG_PROTOCOL', keyPath, `${why}; expected 'TLSv1.2' or 'TLSv1.3'`, value)
}

/**
 * Resolves the protocol options of a server, client or host. `protocol`
 * (mod_tls grammar) and `minVersion` (`node:tls` name) may both be given if
 * they name the same minimum. Neither given: TLS 1.2 and 1.3 (SPEC §6).
 *
 * `maxVersion` exists only for `node:tls` compatibility: a maximum is never
 * configured (SPEC §4.1), so only `'TLSv1.3'`, which changes nothing, is
 * accepted.
 *
 * @param options.keyPathPrefix key path of the object holding the options
 *   (`''` at top level); errors name `<prefix>.protocol` etc.
 * @throws ConfigError `ERR_TLS_CONFIG_PROTOCOL`
 */
export function resolveProtocol (options: {
  protocol?: unknown
  minVersion?: unknown
  maxVersion?: unknown
  keyPathPrefix: string
}): ProtocolRange {
  const { protocol, minVersion, maxVersion, keyPathPrefix } = options
  const at = (name: string): string => keyPathPrefix === '' ? name : `${keyPathPrefix}.${name}`
  const fromProtocol = protocol === undefined ? undefined : parseProtocol(protocol, at('protocol'))
  const fromMinVersion = minVersion === undefined ? undefined : parseMinVersion(minVersion, at('minVersion'))
  if (maxVersion !== undefined && maxVersion !== 'TLSv1.3') {
    throw new ConfigError('ERR_TLS_CONFIG_PROTOCOL', at('maxVersion'),
      `${describe(maxVersion)} cannot be used: a maximum version is never configured, only a minimum; ` +
      '\'TLSv1.3\' (the highest version rustls supports) is accepted and changes nothing', maxVersion)
  }
  if (fromProtocol !== undefined && fromMinVersion !== undefined &&
      fromProtocol.minVersion !== fromMinVersion.minVersion) {
    throw new ConfigError('ERR_TLS_CONFIG_PROTOCOL', at('minVersion'),
      `minVersion '${fromMinVersion.minVersion}' contradicts protocol '${String(protocol)}' ` +
      `(minimum ${fromProtocol.minVersion}); give one of them`, minVersion)
  }
  return fromProtocol ?? fromMinVersion ?? range(TLS1_2)
}

/** `'TLSv1.2'` / `'TLSv1.3'` for a wire version; undefined for any other. */
export function versionName (wire: number): TlsVersionName | undefined {
  if (wire === TLS1_2) return 'TLSv1.2'
  if (wire === TLS1_3) return 'TLSv1.3'
  return undefined
}

function describe (value: unknown): string {
  return typeof value === 'string' ? `"${value}"` : `a value of type ${value === null ? 'null' : typeof value}`
}
