// Error classes with stable codes. Native code reports numbers; this module
// turns them into errors. Code never branches on `err.message`.
import { addon, LocalResult } from './native'
import { RUSTLS_RESULT_NAMES } from './rustls-result'

const LOCAL_NAMES: ReadonlyMap<number, string> = new Map([
  [LocalResult.UnrecognizedName, 'SNI_REFUSED'],
  [LocalResult.NoHost, 'NO_HOST'],
])

const LOCAL_MESSAGES: ReadonlyMap<number, string> = new Map([
  [LocalResult.UnrecognizedName, 'no virtual host for the server name the client sent (strict SNI)'],
  [LocalResult.NoHost, 'no virtual host configured'],
])

/** `ERR_RUSTLS_<NAME>` for a rustls_result (or local) code. */
export function rustlsErrorCode (result: number): string {
  const name = RUSTLS_RESULT_NAMES.get(result) ?? LOCAL_NAMES.get(result)
  return name === undefined ? `ERR_RUSTLS_UNKNOWN_${result}` : `ERR_RUSTLS_${name}`
}

/**
 * A TLS failure reported by rustls (or by the pump around it): handshake
 * failures, certificate verification errors, alerts from the peer, a
 * truncated stream. `code` is stable; `rustlsResult` is the numeric code.
 */
export class RustlsError extends Error {
  readonly code: string
  readonly rustlsResult: number
  /** True for certificate verification failures (unknown issuer, expired, ...). */
  readonly isCertificateError: boolean

  constructor (result: number, context?: string) {
    const text = LOCAL_MESSAGES.get(result) ?? addon.errorMessage(result)
    super(context === undefined ? text : `${context}: ${text}`)
    this.name = 'RustlsError'
    this.code = rustlsErrorCode(result)
    this.rustlsResult = result
    this.isCertificateError = addon.isCertError(result)
  }
}

/** `parent.child`, or `child` at the top level (key paths of ConfigError). */
export function keyPathJoin (parent: string, child: string): string {
  if (parent === '') return child
  return child.startsWith('[') ? `${parent}${child}` : `${parent}.${child}`
}

/**
 * A configuration problem: names the option by its key path
 * (`hosts[1].certificates[0].key`) and, where it helps, the offending value.
 * Never carries key material or passphrases.
 */
export class ConfigError extends Error {
  readonly code: string
  readonly keyPath: string
  readonly value: unknown

  constructor (code: `ERR_TLS_CONFIG_${string}`, keyPath: string, message: string, value?: unknown) {
    super(keyPath === '' ? message : `${keyPath}: ${message}`)
    this.name = 'ConfigError'
    this.code = code
    this.keyPath = keyPath
    this.value = value
  }
}

/** A `node:tls` option that rustls cannot honour; thrown, never ignored. */
export class UnsupportedOptionError extends Error {
  readonly code = 'ERR_RUSTLS_UNSUPPORTED_OPTION'
  readonly option: string

  constructor (option: string, reason: string) {
    super(`option "${option}" is not supported: ${reason}`)
    this.name = 'UnsupportedOptionError'
    this.option = option
  }
}

/** The peer did not complete the handshake within `handshakeTimeout`. */
export class HandshakeTimeoutError extends Error {
  readonly code = 'ERR_TLS_HANDSHAKE_TIMEOUT'

  constructor () {
    super('TLS handshake timeout')
    this.name = 'HandshakeTimeoutError'
  }
}

/**
 * An ACME (RFC 8555) operation failed. `code`: ERR_ACME_CONFIG (bad
 * options), ERR_ACME_UNREACHABLE (the CA cannot be reached), ERR_ACME_PROBLEM
 * (the CA refused; `type` is its problem type, e.g.
 * urn:ietf:params:acme:error:rejectedIdentifier), ERR_ACME_CHALLENGE_FAILED
 * (validation failed), ERR_ACME_TIMEOUT, ERR_ACME_PROTOCOL (a malformed
 * answer).
 */
export class AcmeError extends Error {
  readonly code: `ERR_ACME_${string}`
  /** The CA's problem type (RFC 8555 §6.7), when it sent one. */
  readonly type: string | undefined
  readonly status: number | undefined

  constructor (code: `ERR_ACME_${string}`, message: string, type?: string, status?: number) {
    super(message)
    this.name = 'AcmeError'
    this.code = code
    this.type = type
    this.status = status
  }
}

interface NativeBuildError { rustlsResult?: number, step?: string, code?: string }

/**
 * Converts an error thrown by a native constructor (which carries
 * `rustlsResult` and `step`) into a ConfigError with the given code and key
 * path; programmer errors (with a final `code`) pass through.
 */
export function configErrorFromNative (err: unknown, code: `ERR_TLS_CONFIG_${string}`, keyPath: string): Error {
  const e = err as NativeBuildError
  if (typeof e?.rustlsResult !== 'number') return err as Error
  const detail = addon.errorMessage(e.rustlsResult)
  const error = new ConfigError(code, keyPath, detail)
  Object.defineProperty(error, 'rustlsCode', { value: rustlsErrorCode(e.rustlsResult), enumerable: true })
  return error
}
