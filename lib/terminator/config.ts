// The terminator's configuration file (SPEC §5): loading (YAML or JSON),
// the schema, and validation that reports every problem with its key path
// (`hosts[1].certificates[0].key: file not found: ...`) instead of stopping
// at the first one. Files are only named here; files.ts reads them.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'

import YAML from 'yaml'

import { lookupCipher, splitCipherList } from '../ciphers'
import { ConfigError } from '../errors'
import { applyTlsOptions } from '../hosts'
import { parseProtocol } from '../protocol'
import { MAX_TICKET_LIFETIME_SECONDS, TICKET_LIFETIME_SECONDS } from '../session'

/** One problem found in a configuration; `keyPath` is '' for the file as a whole. */
export interface ConfigProblem {
  keyPath: string
  message: string
}

/** Thrown when a configuration cannot be used; carries every problem found. */
export class ConfigProblems extends Error {
  readonly code = 'ERR_TERMINATOR_CONFIG'
  readonly problems: readonly ConfigProblem[]

  constructor (problems: readonly ConfigProblem[]) {
    super(`invalid configuration:\n${problems.map(formatProblem).join('\n')}`)
    this.name = 'ConfigProblems'
    this.problems = problems
  }
}

export function formatProblem (p: ConfigProblem): string {
  return p.keyPath === '' ? p.message : `${p.keyPath}: ${p.message}`
}

/** Turns a library ConfigError into a problem, optionally renaming its key path. */
export function problemFromError (err: unknown, rename: (keyPath: string) => string = (k) => k): ConfigProblem {
  if (err instanceof ConfigError) {
    const message = err.keyPath === '' ? err.message : err.message.slice(err.keyPath.length + 2)
    return { keyPath: rename(err.keyPath), message }
  }
  const e = err as { code?: unknown, message?: unknown }
  return { keyPath: '', message: `${typeof e?.code === 'string' ? `${e.code}: ` : ''}${String(e?.message ?? err)}` }
}

// ---- the validated shape ----------------------------------------------------

/** A TCP address to listen on. `host` undefined: every address (dual stack). */
export interface ListenAddress {
  host: string | undefined
  port: number
  /** As written in the file. */
  text: string
}

export type BackendAddress =
  | { kind: 'tcp', host: string, port: number, text: string }
  | { kind: 'unix', path: string, text: string }

/** One TLSCertificate entry. */
export interface CertificateFiles {
  /** Absolute path of the PEM chain, leaf first. Required. */
  cert: string
  /** Absolute path of the PEM key; undefined: the key is in `cert`. */
  key?: string
  /** Absolute path of a DER OCSP response to staple. */
  ocsp?: string
  /** `ocsp: auto`: fetch the response from the certificate's AIA responder, verify it, refresh it. */
  ocspAuto?: boolean
  /** Name of the environment variable holding the key's passphrase. */
  passphraseEnv?: string
}

export type ClientAuthMode = 'required' | 'optional' | 'none'

/** `clientAuth` (SPEC §4.7). */
export interface ClientAuthFiles {
  /** 'required': no verified client certificate, no connection; 'optional': verified if sent; 'none'. No default: must be given. */
  mode: ClientAuthMode
  /** Absolute path of the PEM CA bundle client certificates must chain to. Required unless mode is 'none'. */
  ca?: string
  /** Absolute paths of PEM CRLs; a revoked client certificate fails the handshake. Default: none. */
  crls?: string[]
}

/** TLS settings a host can set and otherwise inherits from the top level. */
export interface HostTlsConfig {
  /** mod_tls TLSProtocol minimum ('v1.2+', 'v1.3+', 'TLSv0x0304+', ...). Default 'v1.2+'. */
  protocol?: string
  /** TLSCiphersPrefer: suites used first, in order (IANA, OpenSSL, TLS13_ or TLS_CIPHER_0xNNNN names). Default: none. */
  ciphersPrefer?: string[]
  /** TLSCiphersSuppress: suites never used. Default: none. */
  ciphersSuppress?: string[]
  /** TLSHonorClientOrder: true, the client's suite order wins; false, the server's. Default true. */
  honorClientOrder?: boolean
  /** ALPN protocols in server preference order. Default: ['h2', 'http/1.1'] in http mode, none in tcp mode. */
  alpn?: string[]
  /** TLSOptions: 'StdEnvVars', 'ExportCertData', 'Defaults' (each optionally + or -). Default: none. */
  options?: string[]
  /** Client certificates. Default: none requested. */
  clientAuth?: ClientAuthFiles
}

/** `backend.tls`: TLS to the backend (mod_tls TLSProxy*, SPEC §4.8). */
export interface BackendTlsConfig {
  /** TLSProxyCA: absolute path of the PEM CA bundle, or 'system' (the OS store). Required unless dangerouslyDisableVerification. */
  ca?: string
  /** SNI sent and name verified. Default: the backend host (an IP is verified as an IP SAN, without SNI). Required for unix: addresses. */
  serverName?: string
  /** TLSProxyProtocol minimum. Default 'v1.2+'. */
  protocol?: string
  /** TLSProxyCiphersPrefer. Default: none. */
  ciphersPrefer?: string[]
  /** TLSProxyCiphersSuppress. Default: none. */
  ciphersSuppress?: string[]
  /** TLSProxyMachineCertificate: client certificates presented to the backend. Default: none. */
  certificates?: CertificateFiles[]
  /** ALPN offered to the backend. Default ['http/1.1'] in http mode (['h2'] with httpVersion "2"), none in tcp mode. */
  alpn?: string[]
  /** Skip verification of the backend certificate entirely (tests, isolated networks). Default false. */
  dangerouslyDisableVerification: boolean
}

export type BackendMode = 'tcp' | 'http'
/** What http mode speaks to the backend. */
export type BackendHttpVersion = '1.1' | '2'
export type ProxyProtocolVersion = 'none' | 'v1' | 'v2'

export interface BackendConfig {
  /** "HOST:PORT", "[IPv6]:PORT" or "unix:/path". Required. */
  address: BackendAddress
  /** 'tcp': bytes both ways; 'http': HTTP/1.1 and HTTP/2 in front, `httpVersion` behind. Default 'tcp'. */
  mode: BackendMode
  /**
   * http mode: '1.1' (keep-alive HTTP/1.1 connections) or '2' (streams
   * multiplexed over pooled HTTP/2 connections: h2c with prior knowledge,
   * or h2 by ALPN with `tls`; gRPC needs it). With '2' the host offers h2
   * only (HTTP/1.1 clients are not forwarded). Default '1.1'.
   */
  httpVersion: BackendHttpVersion
  /** tcp mode: PROXY header sent first ('none', 'v1', 'v2'). Default 'none'. */
  proxyProtocol: ProxyProtocolVersion
  /** Milliseconds to connect (and finish TLS) to the backend. Default 5000. */
  connectTimeout: number
  /** http mode: milliseconds the backend may stay silent; 504 if no response head came by then. Default 60000. */
  timeout: number
  /** TLS to the backend. Default: plaintext. */
  tls?: BackendTlsConfig
}

export type AcmeChallengeType = 'tls-alpn-01' | 'http-01'

/** A host's ACME settings (its own merged over the top-level `acme`). */
export interface AcmeConfig {
  /** Directory URL of the CA (https). Required. */
  directory: string
  /** Account contact (mailto:). Default: none. */
  email?: string
  /** 'tls-alpn-01' (answered on the TLS ports) or 'http-01' (needs acme.httpListen). Default 'tls-alpn-01'. */
  challenge: AcmeChallengeType
  /** Absolute path of the PEM CA the directory's HTTPS certificate chains to, or 'system'. Default 'system'. */
  ca: string
  /** The CA's terms of service are accepted; must be true. */
  termsOfServiceAgreed: true
  /** ACME profile to order (a name the CA's directory lists). Default: the CA's default. */
  profile?: string
}

export interface HostConfig extends HostTlsConfig {
  /** Primary name (exact). Required. */
  serverName: string
  /** More names: exact or '*.' wildcards of one label. Default: none. */
  aliases: string[]
  /** TLSCertificate: one or more; the first the client can use wins. Required unless `acme` (then empty). */
  certificates: CertificateFiles[]
  /** The certificate is obtained and renewed from an ACME CA (names: serverName and aliases). */
  acme?: AcmeConfig
  /** Where this host's connections go. Required. */
  backend: BackendConfig
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** The whole file, normalized. Top-level TLS keys (HostTlsConfig) are defaults for every host. */
export interface TerminatorConfig extends HostTlsConfig {
  /** Absolute path of the file read, if any. */
  file?: string
  /** Folder relative paths resolve against. Default: the configuration file's folder. */
  serverRoot: string
  /** TLSEngine: addresses to accept TLS on; every host is served on each. Required. */
  listen: ListenAddress[]
  /** TLSStrictSNI: refuse clients whose SNI names no host. Default true. */
  strictSNI: boolean
  /** TLSSessionCache: sessions kept for resumption, or 'none'. Default {size: 20000}. */
  sessionCache: number | { size: number } | 'none'
  /** Absolute path of a file of 80-byte ticket keys shared across workers and restarts. Default: generated per start and rotated. */
  ticketKeys?: string
  /** Milliseconds (whole seconds): ticket lifetime hint and rotation period of generated keys. Default 6 h. */
  ticketLifetime: number
  /** Milliseconds a client has to finish its handshake. Default 10000. */
  handshakeTimeout: number
  /** Milliseconds SIGTERM waits for live connections before closing them. Default 10000. */
  drainTimeout: number
  /** Most client connections open at once per process; more are closed at once. Default: no limit. */
  maxConnections?: number
  /** Processes serving the ports (node:cluster), or 'auto' (one per CPU). Default 1. */
  workers: number | 'auto'
  /** pino level. Default {level: 'info'}. */
  log: { level: LogLevel }
  /** Prometheus /metrics on a separate address. Default: off. */
  metrics?: { listen: ListenAddress }
  /** Virtual hosts; the first one serves clients without SNI. Required. */
  hosts: HostConfig[]
  /** Absolute folder for ACME accounts and certificates (mod_md MDStoreDir). Required with any `acme` host. */
  stateDir?: string
  /** Plain-HTTP address answering http-01 challenges (`/.well-known/acme-challenge/`), usually port 80. Default: none. */
  acmeHttpListen?: ListenAddress
  /** The native HTTP/2 front of http mode (docs/terminator.md "The data plane"). */
  http2: Http2Config
  /** State shared with other instances (ticket keys, ACME). Default: none (each process keeps its own). */
  store?: StoreConfig
}

export interface Http2Config {
  /** SETTINGS_MAX_CONCURRENT_STREAMS. Default 100. */
  maxConcurrentStreams: number
  /** Milliseconds without a stream before GOAWAY and close. Default 120 s (Node's http2 server timeout). */
  idleTimeout: number
  /** Milliseconds a client may take no response data while some waits for it before it is closed (slow_reader). Default 30 s. */
  sendTimeout: number
}

/**
 * `store`: a Redis server (mod_tls TLSSessionCache over a shared socache
 * provider) holding what several instances behind one name must agree on.
 * Secrets are named by environment variable, never written in the file.
 */
export interface StoreConfig {
  /** The URL as written, for logs and messages (it holds no password: one in the URL is refused). */
  url: string
  host: string
  /** Default 6379. */
  port: number
  /** Database number (the URL's path). Default 0. */
  db: number
  /** rediss://: TLS to Redis. */
  tls: boolean
  /** ACL user name (the URL's user part). Default: none (the default user). */
  username?: string
  /** Put before every key and channel name, so instances of other services can share the server. Default "rustls-node:". */
  prefix: string
  /** Environment variable holding the password (AUTH). Default: none. */
  passwordEnv?: string
  /** rediss://: absolute path of the PEM CA bundle the server certificate must chain to. Default: the system store. */
  ca?: string
  /** Environment variable holding a 32-byte key (base64 or hex) that encrypts private and ticket keys at rest (AES-256-GCM). Default: none (stored in the clear). */
  encryptionKeyEnv?: string
}

export const DEFAULT_STORE_PREFIX = 'rustls-node:'

export const DEFAULTS = {
  handshakeTimeout: 10_000,
  drainTimeout: 10_000,
  connectTimeout: 5_000,
  backendTimeout: 60_000,
  http2: { maxConcurrentStreams: 100, idleTimeout: 120_000, sendTimeout: 30_000 },
  sessionCacheSize: 20_000,
  ticketLifetime: TICKET_LIFETIME_SECONDS * 1000,
  /**
   * The data plane's own timeouts (not configurable), in milliseconds: the
   * native listener takes them as they are here (native/src/plane/listener.h
   * PlaneTimeouts), the one place their values are written.
   */
  plane: {
    /** A request head must be complete this long after its first byte: 408 (Node's headersTimeout). */
    headersTimeout: 60_000,
    /** An idle keep-alive HTTP/1.1 connection is closed (Node's keepAliveTimeout). */
    keepAliveTimeout: 5_000,
    /** A client that does not close after our close_notify (HTTP/1.1) or GOAWAY (HTTP/2); an HTTP/1.1 client still sending is read and dropped for up to 15 of these (a lingering close). */
    closeTimeout: 2_000,
    /** tcp mode and upgraded (WebSocket) connections: after the backend closed, a client that keeps its side open. */
    lingerTimeout: 5_000,
    /** An idle pooled backend connection is closed: under the 5 s keep-alive of common servers (Node's), so the pool never reuses one its backend is closing. */
    poolIdleTimeout: 4_000,
  },
} as const

// ---- loading ----------------------------------------------------------------

/**
 * Parses configuration text: JSON for a `.json` file, YAML for `.yaml` /
 * `.yml`, and by content otherwise (JSON is tried when the text starts
 * with `{`; YAML, a superset, otherwise).
 */
export function parseConfigText (text: string, file: string): unknown {
  const ext = path.extname(file).toLowerCase()
  const json = ext === '.json' || (ext !== '.yaml' && ext !== '.yml' && /^\s*\{/.test(text))
  if (json) {
    try {
      return JSON.parse(text)
    } catch (err) {
      throw new ConfigProblems([{ keyPath: '', message: `${file}: not valid JSON: ${(err as Error).message}` }])
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    throw new ConfigProblems(doc.errors.map((e) => ({ keyPath: '', message: `${file}: not valid YAML: ${e.message.split('\n')[0]}` })))
  }
  return doc.toJS({ maxAliasCount: 100 })
}

/** Reads, parses and validates a configuration file. Throws ConfigProblems. */
export function loadConfigFile (file: string): TerminatorConfig {
  const abs = path.resolve(file)
  let text: string
  try {
    text = fs.readFileSync(abs, 'utf8')
  } catch (err) {
    throw new ConfigProblems([{ keyPath: '', message: `cannot read ${abs}: ${fileErrorText(err)}` }])
  }
  return validateConfig(parseConfigText(text, abs), { file: abs })
}

export function fileErrorText (err: unknown): string {
  const code = (err as { code?: string }).code
  if (code === 'ENOENT') return 'file not found'
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied'
  if (code === 'EISDIR') return 'is a directory'
  return code ?? (err as Error).message
}

// ---- validation -------------------------------------------------------------

type Obj = Record<string, unknown>

/** Collects problems while walking the raw document. */
class Checker {
  readonly problems: ConfigProblem[] = []

  add (keyPath: string, message: string): void {
    this.problems.push({ keyPath, message })
  }

  /** An object with only `known` keys; unknown keys are problems (with a case hint). */
  object (value: unknown, keyPath: string, known: readonly string[]): Obj | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      this.add(keyPath, `must be a mapping (object), got ${describe(value)}`)
      return undefined
    }
    for (const key of Object.keys(value)) {
      if (known.includes(key)) continue
      const hint = known.find((k) => k.toLowerCase() === key.toLowerCase())
      this.add(join(keyPath, key), `unknown key${hint !== undefined ? ` (did you mean "${hint}"?)` : ''}`)
    }
    return value as Obj
  }

  string (obj: Obj, key: string, keyPath: string, required = false): string | undefined {
    const value = obj[key]
    if (value === undefined || value === null) {
      if (required) this.add(join(keyPath, key), 'is required')
      return undefined
    }
    if (typeof value !== 'string' || value === '') {
      this.add(join(keyPath, key), `must be a non-empty string, got ${describe(value)}`)
      return undefined
    }
    return value
  }

  boolean (obj: Obj, key: string, keyPath: string): boolean | undefined {
    const value = obj[key]
    if (value === undefined || value === null) return undefined
    if (typeof value !== 'boolean') {
      this.add(join(keyPath, key), `must be true or false, got ${describe(value)}`)
      return undefined
    }
    return value
  }

  oneOf<T extends string> (obj: Obj, key: string, keyPath: string, allowed: readonly T[]): T | undefined {
    const value = obj[key]
    if (value === undefined || value === null) return undefined
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.add(join(keyPath, key), `must be one of ${allowed.join(', ')}, got ${describe(value)}`)
      return undefined
    }
    return value as T
  }

  /** A list of non-empty strings; a single string is accepted as a list of one. */
  stringList (obj: Obj, key: string, keyPath: string): string[] | undefined {
    const value = obj[key]
    if (value === undefined || value === null) return undefined
    const list = typeof value === 'string' ? [value] : value
    if (!Array.isArray(list)) {
      this.add(join(keyPath, key), `must be a list of strings, got ${describe(value)}`)
      return undefined
    }
    const out: string[] = []
    list.forEach((item, i) => {
      if (typeof item !== 'string' || item === '') this.add(`${join(keyPath, key)}[${i}]`, `must be a non-empty string, got ${describe(item)}`)
      else out.push(item)
    })
    return out.length === list.length ? out : undefined
  }

  /** Milliseconds: a number, or "500ms", "10s", "2m", "1h". Must be > 0. */
  duration (obj: Obj, key: string, keyPath: string, fallback: number): number {
    const value = obj[key]
    if (value === undefined || value === null) return fallback
    const ms = parseDuration(value)
    if (ms === undefined) {
      this.add(join(keyPath, key), `must be a duration such as "500ms", "10s", "2m" or a number of milliseconds (> 0), got ${describe(value)}`)
      return fallback
    }
    return ms
  }
}

/** "500ms" | "10s" | "1.5m" | "1h" | number of ms → ms; undefined if malformed or ≤ 0. */
export function parseDuration (value: unknown): number | undefined {
  let ms: number | undefined
  if (typeof value === 'number') ms = value
  else if (typeof value === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value)
    if (m !== null) ms = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 'ms'] as number)
  }
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.round(ms) : undefined
}

/**
 * "HOST:PORT", "[IPv6]:PORT", "*:PORT" or "PORT" (every address). Port
 * 0 picks a free port (tests); the actual one is logged.
 */
export function parseListenAddress (text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port > 65535) return undefined
  const v6 = m[1]
  const host = v6 !== undefined && v6 !== '' ? v6 : m[2]
  if (v6 !== undefined && v6 !== '' && !net.isIPv6(v6)) return undefined
  if (host === '' || host === '*') return { host: undefined, port, text }
  if (net.isIP(host) === 0 && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(host)) return undefined
  return { host, port, text }
}

/** "HOST:PORT", "[IPv6]:PORT" or "unix:/path" (relative to serverRoot). */
export function parseBackendAddress (text: string, serverRoot: string): BackendAddress | undefined {
  if (text.startsWith('unix:')) {
    const p = text.slice(5)
    return p === '' ? undefined : { kind: 'unix', path: path.resolve(serverRoot, p), text }
  }
  const listen = parseListenAddress(text)
  if (listen === undefined || listen.host === undefined || listen.port === 0 || !text.includes(':')) return undefined
  return { kind: 'tcp', host: listen.host, port: listen.port, text }
}

const TOP_KEYS = ['serverRoot', 'listen', 'strictSNI', 'sessionCache', 'ticketKeys', 'ticketLifetime', 'handshakeTimeout', 'drainTimeout',
  'maxConnections', 'workers', 'log', 'metrics', 'hosts', 'protocol', 'ciphersPrefer', 'ciphersSuppress',
  'honorClientOrder', 'alpn', 'options', 'clientAuth', 'stateDir', 'acme', 'http2', 'store'] as const
const STORE_KEYS = ['redis', 'prefix', 'passwordEnv', 'tls', 'encryptionKeyEnv'] as const
const HOST_KEYS = ['serverName', 'aliases', 'certificates', 'protocol', 'ciphersPrefer', 'ciphersSuppress',
  'honorClientOrder', 'alpn', 'options', 'clientAuth', 'backend', 'acme'] as const
const ACME_KEYS = ['directory', 'email', 'challenge', 'ca', 'termsOfServiceAgreed', 'profile'] as const
const ACME_CHALLENGES: readonly AcmeChallengeType[] = ['tls-alpn-01', 'http-01']
const CERT_KEYS = ['cert', 'key', 'ocsp', 'passphraseEnv'] as const
const BACKEND_KEYS = ['address', 'mode', 'httpVersion', 'proxyProtocol', 'connectTimeout', 'timeout', 'tls'] as const
const BACKEND_TLS_KEYS = ['ca', 'serverName', 'protocol', 'ciphersPrefer', 'ciphersSuppress', 'certificates', 'alpn',
  'dangerouslyDisableVerification'] as const
/** What an HTTP-mode frontend can speak (it parses the requests itself). */
const HTTP_ALPN = ['h2', 'http/1.1']

export interface ValidateOptions {
  /** Absolute path of the configuration file: relative paths resolve against its folder. */
  file?: string
  /** Folder for relative paths when there is no file. Default: process.cwd(). */
  baseDir?: string
  /** Report named files that do not exist (default true). */
  checkFiles?: boolean
}

/**
 * Checks a parsed configuration document against the schema and returns
 * the normalized configuration (absolute paths, durations in ms, defaults
 * filled in). Throws ConfigProblems listing every problem found.
 *
 * Files are not opened here (files.ts does that), but names, protocol
 * grammar, cipher names and TLS option names are checked with the library's
 * own parsers, so the messages match what the library would say.
 */
export function validateConfig (raw: unknown, options: ValidateOptions = {}): TerminatorConfig {
  const c = new Checker()
  const baseDir = options.file !== undefined ? path.dirname(options.file) : options.baseDir ?? process.cwd()
  const top = c.object(raw ?? {}, '', TOP_KEYS)
  if (top === undefined) throw new ConfigProblems(c.problems)

  const rootText = c.string(top, 'serverRoot', '')
  const serverRoot = rootText === undefined ? baseDir : path.resolve(baseDir, rootText)
  // Existence is checked here so that a missing file is reported together
  // with every other problem; files.ts reads the content later.
  const exists = (abs: string, keyPath: string): void => {
    if (options.checkFiles === false) return
    try {
      if (!fs.statSync(abs).isFile()) c.add(keyPath, `not a regular file: ${abs}`)
    } catch (err) {
      c.add(keyPath, `${fileErrorText(err)}: ${abs}`)
    }
  }
  const file = (obj: Obj, key: string, keyPath: string, required = false): string | undefined => {
    const p = c.string(obj, key, keyPath, required)
    if (p === undefined) return undefined
    const abs = path.resolve(serverRoot, p)
    exists(abs, join(keyPath, key))
    return abs
  }

  // listen
  const listen: ListenAddress[] = []
  const listenRaw = top.listen
  if (listenRaw === undefined || listenRaw === null) {
    c.add('listen', 'is required: the addresses to accept TLS on, e.g. ["0.0.0.0:8443"]')
  } else {
    const list = c.stringList(top, 'listen', '') ?? []
    if (Array.isArray(listenRaw) && listenRaw.length === 0) c.add('listen', 'must name at least one address')
    const seen = new Set<string>()
    list.forEach((text, i) => {
      const at = Array.isArray(listenRaw) ? `listen[${i}]` : 'listen'
      const addr = parseListenAddress(text)
      if (addr === undefined) {
        c.add(at, `"${text}" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT (port 0-65535)`)
        return
      }
      const key = `${addr.host ?? '*'}:${addr.port}`
      if (addr.port !== 0 && seen.has(key)) c.add(at, `"${text}" is listed twice`)
      seen.add(key)
      listen.push(addr)
    })
  }

  const strictSNI = c.boolean(top, 'strictSNI', '') ?? true
  let sessionCache: TerminatorConfig['sessionCache'] = { size: DEFAULTS.sessionCacheSize }
  const sc = top.sessionCache
  if (sc !== undefined && sc !== null) {
    const size = typeof sc === 'number' ? sc : typeof sc === 'object' && !Array.isArray(sc) ? (c.object(sc, 'sessionCache', ['size'])?.size) : undefined
    if (sc === 'none') sessionCache = 'none'
    else if (typeof size === 'number' && Number.isInteger(size) && size > 0) sessionCache = { size }
    else c.add('sessionCache', `must be "none", a positive integer or {size: <positive integer>}, got ${describe(sc)}`)
  }
  const ticketKeys = file(top, 'ticketKeys', '')
  const ticketLifetime = c.duration(top, 'ticketLifetime', '', DEFAULTS.ticketLifetime)
  if (ticketLifetime % 1000 !== 0 || ticketLifetime > MAX_TICKET_LIFETIME_SECONDS * 1000) {
    // A TLS ticket lifetime is whole seconds, at most 7 days (RFC 8446 §4.6.1).
    c.add('ticketLifetime', `must be whole seconds from "1s" to "168h" (7 days), got ${describe(top.ticketLifetime)}`)
  }
  const handshakeTimeout = c.duration(top, 'handshakeTimeout', '', DEFAULTS.handshakeTimeout)
  const drainTimeout = c.duration(top, 'drainTimeout', '', DEFAULTS.drainTimeout)
  let maxConnections: number | undefined
  if (top.maxConnections !== undefined && top.maxConnections !== null) {
    if (typeof top.maxConnections === 'number' && Number.isInteger(top.maxConnections) && top.maxConnections > 0) maxConnections = top.maxConnections
    else c.add('maxConnections', `must be a positive integer, got ${describe(top.maxConnections)}`)
  }
  let workers: number | 'auto' = 1
  if (top.workers !== undefined && top.workers !== null) {
    const w = top.workers
    if (w === 'auto' || (typeof w === 'number' && Number.isInteger(w) && w >= 1 && w <= 1024)) workers = w
    else c.add('workers', `must be a positive integer or "auto", got ${describe(w)}`)
  }
  let level: LogLevel = 'info'
  if (top.log !== undefined && top.log !== null) {
    const log = c.object(top.log, 'log', ['level'])
    if (log !== undefined) level = c.oneOf(log, 'level', 'log', LOG_LEVELS) ?? level
  }
  let metrics: TerminatorConfig['metrics']
  if (top.metrics !== undefined && top.metrics !== null) {
    const m = c.object(top.metrics, 'metrics', ['listen'])
    const text = m === undefined ? undefined : c.string(m, 'listen', 'metrics', true)
    if (text !== undefined) {
      const addr = parseListenAddress(text)
      if (addr === undefined) c.add('metrics.listen', `"${text}" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT`)
      else metrics = { listen: addr }
    }
  }

  const defaults = hostTls(c, top, '', file, serverRoot, exists)

  const stateText = c.string(top, 'stateDir', '')
  const stateDir = stateText === undefined ? undefined : path.resolve(serverRoot, stateText)
  let acmeDefaults: Partial<AcmeConfig> = {}
  let acmeHttpListen: ListenAddress | undefined
  if (top.acme !== undefined && top.acme !== null) {
    const a = c.object(top.acme, 'acme', [...ACME_KEYS, 'httpListen'])
    if (a !== undefined) {
      acmeDefaults = acmeFields(c, a, 'acme', serverRoot, exists)
      const text = c.string(a, 'httpListen', 'acme')
      if (text !== undefined) {
        acmeHttpListen = parseListenAddress(text)
        if (acmeHttpListen === undefined) c.add('acme.httpListen', `"${text}" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT`)
      }
    }
  }

  const store = top.store === undefined || top.store === null ? undefined : storeConfig(c, top.store, file)

  const hosts: HostConfig[] = []
  const hostsRaw = top.hosts
  if (!Array.isArray(hostsRaw) || hostsRaw.length === 0) {
    c.add('hosts', hostsRaw === undefined || hostsRaw === null ? 'is required: at least one virtual host' : 'must be a non-empty list of hosts')
  } else {
    const names = new Map<string, string>()
    hostsRaw.forEach((h, i) => {
      const at = `hosts[${i}]`
      const host = c.object(h, at, HOST_KEYS)
      if (host === undefined) return
      const serverName = c.string(host, 'serverName', at, true)
      const aliases = c.stringList(host, 'aliases', at) ?? []
      // Exact duplicates across hosts are caught here so that every one is
      // reported; the library checks the grammar of each name.
      ;[serverName, ...aliases].forEach((name, j) => {
        if (name === undefined) return
        const key = name.toLowerCase().replace(/\.$/, '')
        const where = j === 0 ? `${at}.serverName` : `${at}.aliases[${j - 1}]`
        const other = names.get(key)
        if (other !== undefined) c.add(where, `name "${name}" is already used by ${other}`)
        else names.set(key, at)
      })
      const acme = hostAcme(c, host, at, acmeDefaults, serverRoot, exists)
      // Checked whenever the host asks for acme, even when its acme keys are wrong.
      if (host.acme !== undefined && host.acme !== null && host.acme !== false) {
        if (host.certificates !== undefined) c.add(`${at}.certificates`, 'not with acme: the certificate comes from the CA and is kept in stateDir')
        if (stateDir === undefined) c.add('stateDir', `is required with acme (${at}.acme): where accounts and certificates are kept`)
        if (acme?.challenge === 'http-01' && acmeHttpListen === undefined) {
          c.add(`${at}.acme.challenge`, 'http-01 needs acme.httpListen: the CA fetches the answer over plain HTTP (port 80), which the TLS ports do not speak')
        }
        aliases.forEach((a, j) => {
          if (a.startsWith('*.')) c.add(`${at}.aliases[${j}]`, `"${a}": a wildcard certificate needs the dns-01 challenge, which rustls-node does not answer`)
        })
      }
      const certificates = host.acme !== undefined && host.acme !== null && host.acme !== false ? [] : certificateList(c, host, at, file, true)
      const tls = hostTls(c, host, at, file, serverRoot, exists)
      const backend = backendConfig(c, host.backend, `${at}.backend`, serverRoot, file, exists)
      if (backend?.mode === 'http') {
        const alpn = tls.alpn ?? defaults.alpn
        alpn?.forEach((p, j) => {
          const where = tls.alpn !== undefined ? `${at}.alpn[${j}]` : `alpn[${j}]`
          if (!HTTP_ALPN.includes(p)) {
            c.add(where, `"${p}" cannot be served in http mode (backend.mode: http speaks ${HTTP_ALPN.join(' and ')}); use mode: tcp`)
          } else if (p !== 'h2' && backend.httpVersion === '2') {
            // HTTP/1.1 requests are not mapped onto HTTP/2 streams: say so
            // at configuration time rather than fail each request.
            c.add(where, `"${p}" cannot be served with ${at}.backend.httpVersion "2": HTTP/1.1 clients are not forwarded to an HTTP/2 backend; offer h2 only (alpn: [h2], the default for such a host)`)
          }
        })
      }
      if (serverName === undefined || certificates === undefined || backend === undefined) return
      hosts.push(stripUndefined({ serverName, aliases, certificates, ...tls, backend, acme }))
    })
  }

  const http2: Http2Config = { ...DEFAULTS.http2 }
  if (top.http2 !== undefined && top.http2 !== null) {
    const h = c.object(top.http2, 'http2', ['maxConcurrentStreams', 'idleTimeout', 'sendTimeout'])
    if (h !== undefined) {
      const streams = h.maxConcurrentStreams
      if (streams !== undefined && streams !== null) {
        if (typeof streams === 'number' && Number.isInteger(streams) && streams >= 1 && streams <= 1000) http2.maxConcurrentStreams = streams
        else c.add('http2.maxConcurrentStreams', `must be an integer from 1 to 1000, got ${describe(streams)}`)
      }
      http2.idleTimeout = c.duration(h, 'idleTimeout', 'http2', DEFAULTS.http2.idleTimeout)
      http2.sendTimeout = c.duration(h, 'sendTimeout', 'http2', DEFAULTS.http2.sendTimeout)
    }
  }
  if (Array.isArray(hostsRaw) && hostsRaw.some((h) => (h as Obj | null)?.acme !== undefined && (h as Obj | null)?.acme !== null && (h as Obj | null)?.acme !== false) && workers !== 1) {
    c.add('workers', 'must be 1 with acme: one process obtains and renews the certificates and answers the challenges')
  }
  if (c.problems.length > 0) throw new ConfigProblems(c.problems)
  return {
    file: options.file,
    serverRoot,
    listen,
    strictSNI,
    sessionCache,
    ticketKeys,
    ticketLifetime,
    handshakeTimeout,
    drainTimeout,
    maxConnections,
    workers,
    log: { level },
    metrics,
    ...defaults,
    hosts,
    ...(stateDir === undefined ? {} : { stateDir }),
    ...(acmeHttpListen === undefined ? {} : { acmeHttpListen }),
    http2,
    ...(store === undefined ? {} : { store }),
  }
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** `store`: {redis: URL, prefix?, passwordEnv?, tls?: {ca?}, encryptionKeyEnv?}. */
function storeConfig (c: Checker, value: unknown, file: FileField): StoreConfig | undefined {
  const s = c.object(value, 'store', STORE_KEYS)
  if (s === undefined) return undefined
  const before = c.problems.length
  const text = c.string(s, 'redis', 'store', true)
  let url: URL | undefined
  if (text !== undefined) {
    try {
      url = new URL(text)
    } catch {}
    if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      c.add('store.redis', `must be a redis://HOST[:PORT][/DB] or rediss://... URL, got "${text}"`)
      url = undefined
    } else {
      // Secrets stay out of configuration files (and the value is never echoed).
      if (url.password !== '') c.add('store.redis', 'a password in the URL is not read; name an environment variable with store.passwordEnv')
      if (url.search !== '' || url.hash !== '') c.add('store.redis', 'query parameters and fragments are not read; use the keys of store')
      if (!/^\/?(\d{1,6})?$/.test(url.pathname)) c.add('store.redis', `the path must be a database number (redis://HOST:PORT/0), got "${url.pathname}"`)
    }
  }
  const prefix = c.string(s, 'prefix', 'store') ?? DEFAULT_STORE_PREFIX
  // The prefix also goes into SCAN patterns: no glob characters.
  if (/[\s*?[\]\\]/.test(prefix)) c.add('store.prefix', `must not contain spaces or the characters * ? [ ] \\, got "${prefix}"`)
  const envName = (key: 'passwordEnv' | 'encryptionKeyEnv'): string | undefined => {
    const name = c.string(s, key, 'store')
    if (name !== undefined && !ENV_NAME.test(name)) c.add(`store.${key}`, `must be an environment variable name, got "${name}"`)
    return name
  }
  const passwordEnv = envName('passwordEnv')
  const encryptionKeyEnv = envName('encryptionKeyEnv')
  let ca: string | undefined
  if (s.tls !== undefined && s.tls !== null) {
    const t = c.object(s.tls, 'store.tls', ['ca'])
    if (t !== undefined) ca = file(t, 'ca', 'store.tls')
    if (url !== undefined && url.protocol !== 'rediss:') c.add('store.tls', 'applies to rediss:// URLs only (TLS to Redis)')
  }
  if (url === undefined || c.problems.length > before) return undefined
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0
  return stripUndefined({
    url: text as string,
    host,
    port: url.port === '' ? 6379 : Number(url.port),
    db,
    tls: url.protocol === 'rediss:',
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    prefix,
    passwordEnv,
    ca,
    encryptionKeyEnv,
  })
}

/** The ACME keys shared by the top-level `acme` (defaults) and a host's. */
function acmeFields (c: Checker, a: Obj, at: string, serverRoot: string, exists: Exists): Partial<AcmeConfig> {
  const out: Partial<AcmeConfig> = {}
  const directory = c.string(a, 'directory', at)
  if (directory !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(directory)
    } catch {}
    if (url?.protocol !== 'https:') c.add(`${at}.directory`, `must be the https: URL of the CA's ACME directory, got "${directory}"`)
    else out.directory = directory
  }
  const email = c.string(a, 'email', at)
  if (email !== undefined) {
    if (!/^[^\s@:]+@[^\s@]+$/.test(email)) c.add(`${at}.email`, `must be an e-mail address, got "${email}"`)
    else out.email = email
  }
  const challenge = c.oneOf(a, 'challenge', at, ACME_CHALLENGES)
  if (challenge !== undefined) out.challenge = challenge
  const ca = c.string(a, 'ca', at)
  if (ca !== undefined) {
    out.ca = ca === 'system' ? ca : path.resolve(serverRoot, ca)
    if (ca !== 'system') exists(out.ca, `${at}.ca`)
  }
  const agreed = c.boolean(a, 'termsOfServiceAgreed', at)
  if (agreed === false) c.add(`${at}.termsOfServiceAgreed`, 'must be true: the CA issues only to accounts that accept its terms of service')
  if (agreed === true) out.termsOfServiceAgreed = true
  const profile = c.string(a, 'profile', at)
  if (profile !== undefined) out.profile = profile
  return out
}

/** `hosts[i].acme`: true (the top-level settings) or a mapping over them; undefined when absent. */
function hostAcme (c: Checker, host: Obj, at: string, defaults: Partial<AcmeConfig>, serverRoot: string, exists: Exists): AcmeConfig | undefined {
  const value = host.acme
  if (value === undefined || value === null || value === false) return undefined
  const where = `${at}.acme`
  let own: Partial<AcmeConfig> = {}
  if (value !== true) {
    const a = c.object(value, where, ACME_KEYS)
    if (a === undefined) return undefined
    own = acmeFields(c, a, where, serverRoot, exists)
  }
  const merged = { ...defaults, ...own }
  if (merged.directory === undefined && (value === true || (value as Obj).directory === undefined)) {
    c.add(`${where}.directory`, 'is required (here or in the top-level acme): the https: URL of the CA\'s ACME directory')
  }
  if (merged.termsOfServiceAgreed !== true && (value === true || (value as Obj).termsOfServiceAgreed === undefined)) {
    c.add(`${where}.termsOfServiceAgreed`, 'is required (here or in the top-level acme) and must be true (mod_md MDCertificateAgreement accepted)')
  }
  if (merged.directory === undefined || merged.termsOfServiceAgreed !== true) return undefined
  return stripUndefined({
    directory: merged.directory,
    email: merged.email,
    challenge: merged.challenge ?? 'tls-alpn-01',
    ca: merged.ca ?? 'system',
    termsOfServiceAgreed: true as const,
    profile: merged.profile,
  })
}

type FileField = (obj: Obj, key: string, keyPath: string, required?: boolean) => string | undefined
type Exists = (abs: string, keyPath: string) => void

function certificateList (c: Checker, obj: Obj, keyPath: string, file: FileField, required: boolean): CertificateFiles[] | undefined {
  const value = obj.certificates
  const at = join(keyPath, 'certificates')
  if (value === undefined || value === null) {
    if (required) c.add(at, 'is required: at least one {cert, key} entry')
    return required ? undefined : []
  }
  if (!Array.isArray(value) || (required && value.length === 0)) {
    c.add(at, 'must be a non-empty list of {cert, key, ocsp?, passphraseEnv?} entries')
    return undefined
  }
  const out: CertificateFiles[] = []
  value.forEach((entry, i) => {
    const where = `${at}[${i}]`
    const e = c.object(entry, where, [...CERT_KEYS, 'passphrase'])
    if (e === undefined) return
    if (e.passphrase !== undefined) {
      // SPEC §6: secrets stay out of configuration files (and the value is never echoed).
      c.add(`${where}.passphrase`, 'passphrases are not read from the configuration file; name an environment variable with passphraseEnv')
    }
    const cert = file(e, 'cert', where, true)
    const key = file(e, 'key', where)
    // `ocsp: auto` fetches the response; any other value names a DER file.
    const ocspAuto = e.ocsp === 'auto'
    const ocsp = ocspAuto ? undefined : file(e, 'ocsp', where)
    const passphraseEnv = c.string(e, 'passphraseEnv', where)
    if (passphraseEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(passphraseEnv)) {
      c.add(`${where}.passphraseEnv`, `must be an environment variable name, got "${passphraseEnv}"`)
    }
    if (cert !== undefined) out.push(ocspAuto ? { cert, key, ocspAuto, passphraseEnv } : { cert, key, ocsp, passphraseEnv })
  })
  return out.length === value.length ? out : undefined
}

/** The TLS keys shared by the top level (defaults) and hosts. */
function hostTls (c: Checker, obj: Obj, keyPath: string, file: FileField, serverRoot: string, exists: Exists): HostTlsConfig {
  const out: HostTlsConfig = {}
  const protocol = c.string(obj, 'protocol', keyPath)
  if (protocol !== undefined) {
    try {
      parseProtocol(protocol, join(keyPath, 'protocol'))
      out.protocol = protocol
    } catch (err) {
      c.problems.push(problemFromError(err))
    }
  }
  out.ciphersPrefer = cipherList(c, obj, 'ciphersPrefer', keyPath)
  out.ciphersSuppress = cipherList(c, obj, 'ciphersSuppress', keyPath)
  out.honorClientOrder = c.boolean(obj, 'honorClientOrder', keyPath)
  out.alpn = alpnList(c, obj, keyPath)
  const options = c.stringList(obj, 'options', keyPath)
  if (options !== undefined) {
    const bad = options.map((entry, i) => {
      try {
        applyTlsOptions(new Set(), [entry], `${join(keyPath, 'options')}[${i}]`)
        return false
      } catch (err) {
        // The library names the entry's index within the one-element list.
        c.add(`${join(keyPath, 'options')}[${i}]`, problemFromError(err).message)
        return true
      }
    })
    if (!bad.includes(true)) out.options = options
  }
  if (obj.clientAuth !== undefined && obj.clientAuth !== null) {
    const at = join(keyPath, 'clientAuth')
    const ca = c.object(obj.clientAuth, at, ['mode', 'ca', 'crls'])
    if (ca !== undefined) {
      const mode = c.oneOf(ca, 'mode', at, ['required', 'optional', 'none'] as const)
      if (ca.mode === undefined) c.add(`${at}.mode`, 'is required: required, optional or none')
      const caFile = file(ca, 'ca', at, mode === 'required' || mode === 'optional')
      const crls = c.stringList(ca, 'crls', at)?.map((p, i) => {
        const abs = path.resolve(serverRoot, p)
        exists(abs, `${at}.crls[${i}]`)
        return abs
      })
      if (mode !== undefined) out.clientAuth = stripUndefined({ mode, ca: caFile, crls })
    }
  }
  return stripUndefined(out)
}

function cipherList (c: Checker, obj: Obj, key: string, keyPath: string): string[] | undefined {
  const value = obj[key]
  if (value === undefined || value === null) return undefined
  const at = join(keyPath, key)
  if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
    c.add(at, 'must be a cipher suite list: a string (names separated by ":", "," or spaces) or a list of names')
    return undefined
  }
  // Key paths count names after splitting, as the library's do.
  const names = splitCipherList(value as string | string[])
  let ok = true
  names.forEach((name, i) => {
    if (lookupCipher(name) === undefined) {
      ok = false
      c.add(`${at}[${i}]`, `unknown cipher suite "${name}" (expected an IANA or OpenSSL name, a TLS13_ name, or TLS_CIPHER_0xNNNN)`)
    }
  })
  return ok ? names : undefined
}

function alpnList (c: Checker, obj: Obj, keyPath: string): string[] | undefined {
  const list = c.stringList(obj, 'alpn', keyPath)
  if (list === undefined) return undefined
  let ok = true
  list.forEach((p, i) => {
    if (Buffer.byteLength(p) > 255) {
      ok = false
      c.add(`${join(keyPath, 'alpn')}[${i}]`, 'must be a protocol name of 1 to 255 bytes')
    }
  })
  return ok ? list : undefined
}

function backendConfig (c: Checker, value: unknown, keyPath: string, serverRoot: string, file: FileField, exists: Exists): BackendConfig | undefined {
  if (value === undefined || value === null) {
    c.add(keyPath, 'is required: where to forward connections ({address, mode})')
    return undefined
  }
  const b = c.object(value, keyPath, BACKEND_KEYS)
  if (b === undefined) return undefined
  const text = c.string(b, 'address', keyPath, true)
  const address = text === undefined ? undefined : parseBackendAddress(text, serverRoot)
  if (text !== undefined && address === undefined) {
    c.add(`${keyPath}.address`, `"${text}" is not a backend address: expected HOST:PORT, [IPv6]:PORT or unix:/path`)
  }
  const mode = c.oneOf(b, 'mode', keyPath, ['tcp', 'http'] as const) ?? 'tcp'
  const proxyProtocol = c.oneOf(b, 'proxyProtocol', keyPath, ['none', 'v1', 'v2'] as const) ?? 'none'
  if (mode === 'http' && proxyProtocol !== 'none') {
    c.add(`${keyPath}.proxyProtocol`, 'applies to mode: tcp only (http mode sends X-Forwarded-For and X-SSL-* headers instead)')
  }
  // YAML reads `httpVersion: 2` and `1.1` as numbers: both spellings mean the same.
  const versionKey = typeof b.httpVersion === 'number' ? { httpVersion: String(b.httpVersion) } : b
  const httpVersion = c.oneOf(versionKey, 'httpVersion', keyPath, ['1.1', '2'] as const) ?? '1.1'
  if (mode === 'tcp' && b.httpVersion !== undefined && b.httpVersion !== null) {
    c.add(`${keyPath}.httpVersion`, 'applies to mode: http only (tcp mode forwards bytes, whatever protocol they carry)')
  }
  const connectTimeout = c.duration(b, 'connectTimeout', keyPath, DEFAULTS.connectTimeout)
  const timeout = c.duration(b, 'timeout', keyPath, DEFAULTS.backendTimeout)
  let tls: BackendTlsConfig | undefined
  if (b.tls !== undefined && b.tls !== null) {
    const at = `${keyPath}.tls`
    const t = c.object(b.tls, at, BACKEND_TLS_KEYS)
    if (t !== undefined) {
      const disable = c.boolean(t, 'dangerouslyDisableVerification', at) ?? false
      const caText = c.string(t, 'ca', at)
      const ca = caText === undefined || caText === 'system' ? caText : path.resolve(serverRoot, caText)
      if (ca !== undefined && ca !== 'system') exists(ca, `${at}.ca`)
      if (ca === undefined && !disable && t.ca === undefined) {
        c.add(`${at}.ca`, 'is required: a CA file to verify the backend with ("system" for the operating system store)')
      }
      const serverName = c.string(t, 'serverName', at)
      if (address?.kind === 'unix' && serverName === undefined && !disable) {
        c.add(`${at}.serverName`, 'is required with a unix: address: the name the backend certificate is verified against')
      }
      const protocol = c.string(t, 'protocol', at)
      if (protocol !== undefined) {
        try {
          parseProtocol(protocol, `${at}.protocol`)
        } catch (err) {
          c.problems.push(problemFromError(err))
        }
      }
      const alpn = alpnList(c, t, at)
      const spoken = httpVersion === '2' ? 'h2' : 'http/1.1'
      if (mode === 'http' && alpn !== undefined && !alpn.includes(spoken)) {
        c.add(`${at}.alpn`, `must include "${spoken}": http mode speaks ${httpVersion === '2' ? 'HTTP/2 (httpVersion "2")' : 'HTTP/1.1'} to the backend`)
      }
      tls = stripUndefined({
        ca,
        serverName,
        protocol,
        ciphersPrefer: cipherList(c, t, 'ciphersPrefer', at),
        ciphersSuppress: cipherList(c, t, 'ciphersSuppress', at),
        certificates: certificateList(c, t, at, file, false),
        alpn,
        dangerouslyDisableVerification: disable,
      })
    }
  }
  if (address === undefined) return undefined
  return { address, mode, httpVersion, proxyProtocol, connectTimeout, timeout, tls }
}

function join (keyPath: string, key: string): string {
  return keyPath === '' ? key : `${keyPath}.${key}`
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'string') return `"${value}"`
  if (typeof value === 'object') return 'a mapping'
  return `${typeof value} ${String(value)}`
}

function stripUndefined<T extends object> (value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) {
    if (value[key] === undefined) delete value[key]
  }
  return value
}
