// connect(): TLS clients (e.g. to proxied backends) over rustls, and the
// reusable ClientContext that makes session resumption work (SPEC §3, §4.8).
import net from 'node:net'
import type { Duplex } from 'node:stream'

import { loadCertificate, pemBundle, type CertificateEntry, type PemInput } from './certs'
import { resolveCipherPolicy } from './ciphers'
import { ConfigError, configErrorFromNative, UnsupportedOptionError } from './errors'
import { alpnList } from './hosts'
import { type Logger, silentLogger } from './log'
import { addon, type NativeHandle } from './native'
import { resolveProtocol, type TlsVersionName } from './protocol'
import { rejectUnsupported, UNSUPPORTED_CLIENT_OPTIONS } from './unsupported'
import { RustlsSocket } from './socket'

export interface ClientContextOptions {
  /**
   * Trust anchors: PEM CA certificate(s), or 'system' for the operating
   * system's store. Required: nothing is trusted by default.
   */
  ca?: PemInput | readonly PemInput[] | 'system'
  /** PEM CRLs checked against the server's chain. */
  crls?: PemInput | readonly PemInput[]
  /** node:tls name of `crls`. */
  crl?: PemInput | readonly PemInput[]
  /** Client ("machine") certificates; the first the server accepts is used. */
  certificates?: readonly CertificateEntry[]
  /** node:tls shorthand for one client certificate. */
  cert?: PemInput
  key?: PemInput
  passphrase?: string
  /** mod_tls protocol minimum ('v1.2+', 'v1.3+', ...); default TLS 1.2. */
  protocol?: string
  minVersion?: TlsVersionName
  maxVersion?: TlsVersionName
  ciphersPrefer?: string | readonly string[]
  ciphersSuppress?: string | readonly string[]
  ALPNProtocols?: readonly string[] | readonly Buffer[] | Buffer
  /** Send SNI (default true; never sent for IP addresses). */
  enableSni?: boolean
  /**
   * Skip certificate verification entirely. Only for tests and isolated
   * networks; the connection's `authorized` stays false.
   */
  dangerouslyDisableVerification?: boolean
  logger?: Logger
}


/**
 * A reusable client configuration: build it once and pass it as `context`
 * to every connect() to the same backend; rustls keeps the sessions it
 * receives in it, so later connections resume.
 */
export class ClientContext {
  #native: NativeHandle | null
  readonly #ownLeaf: Buffer | undefined
  readonly verificationDisabled: boolean
  readonly logger: Logger

  constructor (options: ClientContextOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', '', 'options must be an object')
    }
    rejectUnsupported(options, UNSUPPORTED_CLIENT_OPTIONS)
    const disable = options.dangerouslyDisableVerification === true
    if ((options as { rejectUnauthorized?: unknown }).rejectUnauthorized === false && !disable) {
      throw new UnsupportedOptionError('rejectUnauthorized',
        'verification cannot be turned off this way; dangerouslyDisableVerification exists for tests')
    }
    const system = options.ca === 'system'
    const ca = system || disable ? undefined : pemBundle(options.ca as PemInput | PemInput[] | undefined, 'ca', 'ERR_TLS_CONFIG_CA')
    if (ca === undefined && !system && !disable) {
      throw new ConfigError('ERR_TLS_CONFIG_CA', 'ca',
        'a CA is required to trust a server: PEM certificate(s), or "system" for the operating system store')
    }
    const protocol = resolveProtocol({ protocol: options.protocol, minVersion: options.minVersion, maxVersion: options.maxVersion, keyPathPrefix: '' })
    const suites = resolveCipherPolicy({
      prefer: options.ciphersPrefer,
      suppress: options.ciphersSuppress,
      keyPath: '',
      logger: options.logger,
      minVersion: protocol.minVersion,
    })
    const crlOption = options.crls ?? options.crl
    const crls = crlOption === undefined
      ? undefined
      : (Array.isArray(crlOption) ? crlOption : [crlOption]).map((c: PemInput, i: number) =>
          pemBundle(c, `crls[${i}]`, 'ERR_TLS_CONFIG_CRL') as Buffer)
    const entries: CertificateEntry[] = options.certificates !== undefined
      ? [...options.certificates]
      : options.cert !== undefined ? [{ cert: options.cert, key: options.key, passphrase: options.passphrase }] : []
    const loaded = entries.map((entry, i) => loadCertificate(entry, options.certificates !== undefined ? `certificates[${i}]` : ''))
    try {
      this.#native = new addon.ClientConfig({
        ca,
        crls,
        systemRoots: system,
        dangerouslyDisableVerification: disable,
        versions: protocol.versions,
        cipherSuites: suites,
        alpn: alpnList(options.ALPNProtocols, 'ALPNProtocols'),
        certifiedKeys: loaded.map((l) => l.native),
        enableSni: options.enableSni,
      })
    } catch (err) {
      const step = (err as { step?: string }).step ?? ''
      throw configErrorFromNative(err, step.startsWith('crls') ? 'ERR_TLS_CONFIG_CRL' : step === 'ca' ? 'ERR_TLS_CONFIG_CA' : 'ERR_TLS_CONFIG_INVALID', step)
    } finally {
      for (const l of loaded) l.native.destroy()
    }
    this.#ownLeaf = loaded[0]?.leaf
    this.verificationDisabled = disable
    this.logger = options.logger ?? silentLogger
  }

  /** @internal the native config, for connect(). */
  get native (): NativeHandle {
    if (this.#native === null) {
      throw Object.assign(new Error('the ClientContext was destroyed'), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
    }
    return this.#native
  }

  /** @internal DER of the first client certificate. */
  get ownLeaf (): Buffer | undefined {
    return this.#ownLeaf
  }

  /** Releases the native config; live connections keep working. Idempotent. */
  destroy (): void {
    this.#native?.destroy()
    this.#native = null
  }
}

export interface ConnectOptions extends ClientContextOptions {
  host?: string
  port?: number
  /** Unix socket path instead of host/port. */
  path?: string
  /** An existing connected (or connecting) transport to run TLS over. */
  socket?: Duplex
  /** SNI and the name verified (default: host). */
  servername?: string
  /** A ClientContext to use (and resume sessions with); other TLS options are then ignored. */
  context?: ClientContext
  /** Milliseconds to complete the handshake; default 120000. */
  handshakeTimeout?: number
  /** net.Socket idle timeout, as node:tls' `timeout`. */
  timeout?: number
  allowHalfOpen?: boolean
  /** As net.connect. */
  noDelay?: boolean
  keepAlive?: boolean
  keepAliveInitialDelay?: number
  /** highWaterMark of the plaintext side, in bytes. */
  highWaterMark?: number
}

export function connect (options: ConnectOptions, secureConnectListener?: () => void): RustlsSocket
export function connect (port: number, host?: string, options?: ConnectOptions, secureConnectListener?: () => void): RustlsSocket
export function connect (path: string, options?: ConnectOptions, secureConnectListener?: () => void): RustlsSocket
export function connect (...args: unknown[]): RustlsSocket {
  let options: ConnectOptions
  let listener: (() => void) | undefined
  if (typeof args[0] === 'string') {
    // connect(path[, options][, callback]): a Unix domain socket.
    options = { ...(typeof args[1] === 'object' ? args[1] as ConnectOptions : {}), path: args[0] }
    listener = args.find((a) => typeof a === 'function') as (() => void) | undefined
  } else if (typeof args[0] === 'number') {
    const host = typeof args[1] === 'string' ? args[1] : undefined
    const rest = args.slice(host === undefined ? 1 : 2)
    options = { ...(typeof rest[0] === 'object' ? rest[0] as ConnectOptions : {}), port: args[0], host: host ?? (rest[0] as ConnectOptions | undefined)?.host }
    listener = rest.find((a) => typeof a === 'function') as (() => void) | undefined
  } else {
    options = args[0] as ConnectOptions
    listener = args[1] as (() => void) | undefined
  }
  const context = options.context ?? new ClientContext(options)
  const owned = options.context === undefined
  const host = options.host ?? 'localhost'
  const servername = options.servername ?? host
  if (servername === '') throw new ConfigError('ERR_TLS_CONFIG_INVALID', 'servername', 'must not be empty')
  let connection
  try {
    connection = new addon.Connection(context.native, servername)
  } catch (err) {
    if (owned) context.destroy()
    throw configErrorFromNative(err, 'ERR_TLS_CONFIG_INVALID', 'servername')
  }
  // Half-open TCP: the TLS layer decides when to send its FIN.
  const transport = options.socket ?? (options.path !== undefined
    ? net.connect({ path: options.path, allowHalfOpen: true })
    : net.connect({ host, port: options.port ?? 443, allowHalfOpen: true }))
  if (transport instanceof net.Socket) {
    if (options.timeout !== undefined) transport.setTimeout(options.timeout)
    if (options.noDelay !== undefined) transport.setNoDelay(options.noDelay)
    if (options.keepAlive === true) transport.setKeepAlive(true, options.keepAliveInitialDelay)
  }
  const socket = new RustlsSocket({
    transport,
    connection,
    isServer: false,
    // A transport we made is ours alone: native code may pump it.
    socketMode: options.socket === undefined,
    servername: net.isIP(servername) === 0 ? servername : undefined,
    ownLeaf: context.ownLeaf,
    verificationDisabled: context.verificationDisabled,
    handshakeTimeout: options.handshakeTimeout ?? 120000,
    allowHalfOpen: options.allowHalfOpen ?? false,
    highWaterMark: options.highWaterMark,
    // A context made for this one connection goes with it.
    release: owned ? () => context.destroy() : undefined,
    logger: options.logger ?? context.logger,
  })
  if (listener !== undefined) socket.once('secureConnect', listener)
  return socket
}
