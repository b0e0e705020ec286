// ClientContext: a reusable client configuration (SPEC §3, §4.8). Build it
// once and pass it as `context` to every connect() to the same backend;
// rustls keeps the sessions it receives in it, so later connections resume.
import { loadCertificate, pemBundle, type CertificateEntry, type PemInput } from './certs'
import { resolveCipherPolicy } from './ciphers'
import { ConfigError, configErrorFromNative, UnsupportedOptionError } from './errors'
import { alpnList } from './hosts'
import { type Logger, silentLogger } from './log'
import { addon, type NativeHandle } from './native'
import { resolveProtocol, type TlsVersionName } from './protocol'
import { rejectUnsupported, UNSUPPORTED_CLIENT_OPTIONS } from './unsupported'

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
