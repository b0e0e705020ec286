// Cipher suite names and the mod_tls cipher policy (SPEC §4.3).
//
// "Known" suites come from the IANA registry (lib/cipher-table.ts, generated
// from data/tls-cipher-suites.csv); "supported" ones are those the
// linked rustls build offers, in rustls' preference order. A name that is not
// known is a configuration error; a known but unsupported one is only warned
// about, so that a configuration written for OpenSSL keeps working.
import { CIPHER_TABLE } from './cipher-table'
import { ConfigError } from './errors'
import type { Logger } from './log'
import { addon } from './native'
import { TLS1_3, type TlsVersionName } from './protocol'

/** A cipher suite, as reported by {@link lookupCipher} and friends. Frozen. */
export interface CipherInfo {
  /** The 16-bit id sent on the wire (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2). */
  readonly id: number
  /** IANA registry name; `TLS_CIPHER_0xNNNN` for an id the registry lacks. */
  readonly ianaName: string
  /** OpenSSL's name; the IANA name where OpenSSL uses that (all TLS 1.3 suites). */
  readonly opensslName: string
  /** A TLS 1.3 suite (usable with TLS 1.3 only; TLS 1.2 suites only with 1.2). */
  readonly tls13: boolean
  /** Offered by the linked rustls build. */
  readonly supported: boolean
}

/** The part of a pino-compatible logger the cipher policy uses. */
export type CipherLogger = Pick<Logger, 'warn'>

export interface CipherPolicyOptions {
  /** `ciphersPrefer`: suites to put first, in this order (a list or one string). */
  prefer?: string | readonly string[]
  /** `ciphersSuppress`: suites never to use. */
  suppress?: string | readonly string[]
  /** Key path of the object holding the options (`''` at top level), for errors and logs. */
  keyPath: string
  /** The configured protocol minimum; default `'TLSv1.2'`. */
  minVersion?: TlsVersionName
  /** Receives one warning per preferred suite rustls does not support. Default: silent. */
  logger?: CipherLogger
}

interface Tables {
  /** Registry entries and any suite rustls supports beyond the registry. */
  byId: ReadonlyMap<number, CipherInfo>
  /** Every accepted spelling, upper-cased (see {@link lookupCipher}). */
  byName: ReadonlyMap<string, CipherInfo>
  /** byId's values in id order. */
  all: readonly CipherInfo[]
  /** rustls' list, in rustls' preference order. */
  supported: readonly CipherInfo[]
  /** Protocol version (0x0303/0x0304) of each supported suite, as rustls says. */
  supportedVersion: ReadonlyMap<number, number>
}

const CIPHER_ID = /^TLS_CIPHER_0x([0-9A-F]{4})$/i

let tables: Tables | undefined

// Built on first use rather than at import: importing the module (e.g. for
// its types, or from the CLI's --help) should not walk 376 rows.
function getTables (): Tables {
  if (tables !== undefined) return tables
  const rustls = addon.supportedCipherSuites()
  const supportedVersion = new Map(rustls.map((suite) => [suite.id, suite.version]))
  const byId = new Map<number, CipherInfo>()
  const byName = new Map<string, CipherInfo>()
  for (const [id, ianaName, opensslName, tls13] of CIPHER_TABLE) {
    const info: CipherInfo = Object.freeze({
      id, ianaName, opensslName: opensslName ?? ianaName, tls13, supported: supportedVersion.has(id),
    })
    byId.set(id, info)
    byName.set(ianaName.toUpperCase(), info)
    if (opensslName !== null) byName.set(opensslName.toUpperCase(), info)
    // rustls (and mod_tls) call the TLS 1.3 suites TLS13_AES_128_GCM_SHA256
    // where RFC 8446 §B.4 says TLS_AES_128_GCM_SHA256.
    if (tls13 && ianaName.startsWith('TLS_')) byName.set(`TLS13_${ianaName.slice(4)}`.toUpperCase(), info)
  }
  // A rustls newer than the registry copy may offer a suite the CSV lacks;
  // it is still supported and must be reportable.
  for (const suite of rustls) {
    if (!byId.has(suite.id)) byId.set(suite.id, placeholder(suite.id, suite.version === TLS1_3, true))
  }
  const all = [...byId.values()].sort((a, b) => a.id - b.id)
  const supported = rustls.map((suite) => byId.get(suite.id) as CipherInfo)
  tables = { byId, byName, all, supported, supportedVersion }
  return tables
}

function placeholder (id: number, tls13: boolean, supported: boolean): CipherInfo {
  const name = `TLS_CIPHER_0x${id.toString(16).toUpperCase().padStart(4, '0')}`
  return Object.freeze({ id, ianaName: name, opensslName: name, tls13, supported })
}

/**
 * The suite with the given id: its registry entry, or a `TLS_CIPHER_0xNNNN`
 * placeholder (`tls13: false` unless rustls says otherwise, since the
 * registry is the only source for the version of an unknown id). Used to
 * report the negotiated suite.
 *
 * @param id 0..0xFFFF
 * @throws RangeError for anything that is not a 16-bit integer
 */
export function cipherInfoForId (id: number): CipherInfo {
  if (!Number.isInteger(id) || id < 0 || id > 0xFFFF) throw new RangeError(`cipher suite id must be 0..0xFFFF, got ${id}`)
  return getTables().byId.get(id) ?? placeholder(id, false, false)
}

/**
 * Finds a suite by any accepted name (SPEC §4.3) or by id:
 * - IANA name: `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`
 * - OpenSSL name: `ECDHE-ECDSA-AES256-GCM-SHA384`
 * - `TLS13_` alias of a TLS 1.3 suite: `TLS13_AES_128_GCM_SHA256`
 * - `TLS_CIPHER_0xNNNN`, exactly four hex digits, any 16-bit id (registered
 *   or not: an unregistered id yields a placeholder, see
 *   {@link cipherInfoForId})
 * - a number: the id
 *
 * Names are matched case-insensitively. The registry itself mixes case
 * (`TLS_DH_anon_…`, `…_draft`), so exact-case matching would punish users
 * for copying a name from another source, and case carries no meaning here:
 * scripts/gen-ciphers.js refuses a registry in which two names differ only in
 * case, so no lookup is ambiguous.
 *
 * @returns undefined for an unknown name or a number outside 0..0xFFFF
 */
export function lookupCipher (nameOrId: string | number): CipherInfo | undefined {
  if (typeof nameOrId === 'number') {
    return Number.isInteger(nameOrId) && nameOrId >= 0 && nameOrId <= 0xFFFF ? cipherInfoForId(nameOrId) : undefined
  }
  if (typeof nameOrId !== 'string') return undefined
  const info = getTables().byName.get(nameOrId.toUpperCase())
  if (info !== undefined) return info
  const hex = CIPHER_ID.exec(nameOrId)
  return hex === null ? undefined : cipherInfoForId(parseInt(hex[1], 16))
}

/**
 * Every registry entry in id order (plus any suite rustls supports that the
 * registry lacks). A new array on each call.
 */
export function listCiphers (): CipherInfo[] {
  return [...getTables().all]
}

/** The suites the linked rustls build supports, in rustls' preference order. A new array on each call. */
export function supportedCiphers (): CipherInfo[] {
  return [...getTables().supported]
}

/**
 * Splits a cipher list into names. Items may be separated by `:` (OpenSSL
 * style), `,` or whitespace, also inside the elements of an array, so
 * `['A:B', 'C']` is `['A', 'B', 'C']`. Empty items are dropped.
 *
 * @throws TypeError when an array element is not a string
 */
export function splitCipherList (value: string | readonly string[]): string[] {
  const parts: readonly unknown[] = typeof value === 'string' ? [value] : value
  return parts.flatMap((part) => {
    if (typeof part !== 'string') throw new TypeError(`cipher list entries must be strings, got ${typeof part}`)
    return part.split(/[\s:,]+/)
  }).filter((name) => name !== '')
}

/**
 * Computes the cipher suite list for a rustls config from mod_tls'
 * `ciphersPrefer` / `ciphersSuppress` (SPEC §4.3).
 *
 * The result is: the preferred suites rustls supports, in the given order;
 * then every other supported suite in rustls' order; minus every suppressed
 * suite (suppression wins over preference). Duplicates are dropped.
 *
 * Validation happens before anything is logged: an unknown name anywhere
 * fails the configuration without half of its warnings having been emitted.
 *
 * @returns undefined when neither list names a suite (absent or empty), which
 *   means: use rustls' default list and order
 * @throws ConfigError
 *   - `ERR_TLS_CONFIG_UNKNOWN_CIPHER` at `<keyPath>.ciphersPrefer[i]` /
 *     `.ciphersSuppress[i]` (i counts names after splitting) for a name that
 *     is not known; `value` is the name
 *   - `ERR_TLS_CONFIG_INVALID` at `<keyPath>.ciphersPrefer` / `.ciphersSuppress`
 *     when the option is neither a string nor an array of strings
 *   - `ERR_TLS_CONFIG_NO_CIPHERS` at `<keyPath>.ciphersSuppress` when no
 *     suite would be left, or none for TLS 1.3 with `minVersion: 'TLSv1.3'`
 */
export function resolveCipherPolicy (options: CipherPolicyOptions): number[] | undefined {
  const { keyPath, logger } = options
  const preferPath = join(keyPath, 'ciphersPrefer')
  const suppressPath = join(keyPath, 'ciphersSuppress')
  const prefer = resolveList(options.prefer, preferPath)
  const suppress = resolveList(options.suppress, suppressPath)
  if (prefer.length === 0 && suppress.length === 0) return undefined

  const { supported, supportedVersion } = getTables()
  const suppressed = new Set(suppress.map(({ info }) => info.id))
  const chosen = new Set<number>()
  for (const { name, info, path } of prefer) {
    if (!info.supported) {
      const alias = name === info.ianaName ? '' : ` (${info.ianaName})`
      logger?.warn({ cipher: name, keyPath: path }, `cipher suite ${name}${alias} is not supported by rustls; ignored`)
    } else if (!suppressed.has(info.id)) {
      chosen.add(info.id)
    }
  }
  for (const info of supported) {
    if (!suppressed.has(info.id)) chosen.add(info.id)
  }

  const ids = [...chosen]
  if (ids.length === 0) {
    throw new ConfigError('ERR_TLS_CONFIG_NO_CIPHERS', suppressPath,
      'suppresses every cipher suite rustls supports; no suite is left', options.suppress)
  }
  // Every supported suite is a TLS 1.2 or 1.3 suite, so with a 1.2 minimum
  // any non-empty list can serve some enabled version; with 1.3 only, the
  // TLS 1.2 suites are unusable (RFC 8446 §4.1.2) and one 1.3 suite must stay.
  if (options.minVersion === 'TLSv1.3' && !ids.some((id) => supportedVersion.get(id) === TLS1_3)) {
    throw new ConfigError('ERR_TLS_CONFIG_NO_CIPHERS', suppressPath,
      'suppresses every TLS 1.3 cipher suite, but the protocol minimum is TLS 1.3; no usable suite is left',
      options.suppress)
  }
  return ids
}

interface ListEntry { name: string, info: CipherInfo, path: string }

function resolveList (value: unknown, listPath: string): ListEntry[] {
  if (value === undefined) return []
  if (typeof value !== 'string' &&
      !(Array.isArray(value) && value.every((part) => typeof part === 'string'))) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', listPath,
      'must be a cipher suite list: a string (names separated by ":", "," or spaces) or an array of names')
  }
  return splitCipherList(value as string | string[]).map((name, i) => {
    const path = `${listPath}[${i}]`
    const info = lookupCipher(name)
    if (info === undefined) {
      throw new ConfigError('ERR_TLS_CONFIG_UNKNOWN_CIPHER', path,
        `unknown cipher suite "${name}" (expected an IANA or OpenSSL name, a TLS13_ name, or TLS_CIPHER_0xNNNN)`, name)
    }
    return { name, info, path }
  })
}

function join (keyPath: string, key: string): string {
  return keyPath === '' ? key : `${keyPath}.${key}`
}
