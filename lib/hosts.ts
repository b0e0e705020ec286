// Virtual hosts (SPEC §4.2): each host's rustls config is built once, here,
// from its options merged over the server-wide defaults; the native router
// then picks a host per ClientHello by SNI.
import crypto from 'node:crypto'

import { loadCertificate, pemBundle, type CertificateEntry, type LoadedCertificate, type PemInput } from './certs'
import { resolveCipherPolicy } from './ciphers'
import { ConfigError, configErrorFromNative, keyPathJoin } from './errors'
import { type Logger, silentLogger } from './log'
import { addon, type NativeHandle, type NativeHostRouter } from './native'
import { resolveProtocol, type TlsVersionName } from './protocol'

export type ClientAuthMode = 'required' | 'optional' | 'none'

/** Client certificates (beyond mod_tls): verified against `ca`, revoked by `crls`. */
export interface ClientAuthOptions {
  /** 'required': no certificate, no connection; 'optional': a certificate is verified if sent. Default 'none'. */
  mode: ClientAuthMode
  /** PEM CA certificate(s) client certificates must chain to. Required unless mode is 'none'. */
  ca?: PemInput | readonly PemInput[]
  /** PEM CRL(s); a revoked client certificate fails the handshake. */
  crls?: PemInput | readonly PemInput[]
}

/** TLS settings a host can set and otherwise inherits from the server. */
export interface HostTlsOptions {
  /** mod_tls protocol minimum: 'default' | 'v1.2+' | 'v1.3+' | 'TLSv1.2+' | 'TLSv1.3+' | 'TLSv0x0303+' | 'TLSv0x0304+'. Default 'v1.2+'. */
  protocol?: string
  /** node:tls style minimum: 'TLSv1.2' (default) or 'TLSv1.3'. */
  minVersion?: TlsVersionName
  /** Only 'TLSv1.3' is accepted: a maximum is never configured (mod_tls). */
  maxVersion?: TlsVersionName
  /** Suites used first, in order (IANA, OpenSSL, TLS13_ or TLS_CIPHER_0xNNNN names; `:`, `,` or space separated). */
  ciphersPrefer?: string | readonly string[]
  /** Suites never used. */
  ciphersSuppress?: string | readonly string[]
  /** true (default): the client's suite order wins; false: the server's. */
  honorClientOrder?: boolean
  /** ALPN protocols in server preference order, e.g. ['h2', 'http/1.1']. */
  ALPNProtocols?: readonly string[] | readonly Buffer[] | Buffer
  /** mod_tls TLSOptions: 'StdEnvVars', 'ExportCertData', 'Defaults' (resets inherited), each optionally prefixed + or -. */
  options?: readonly string[]
  clientAuth?: ClientAuthOptions
}

export interface HostOptions extends HostTlsOptions {
  /** Primary name: exact host name. */
  serverName: string
  /** More names: exact, or '*.' wildcards covering one label; case-insensitive. */
  aliases?: readonly string[]
  /** One or more certificates; the first one the client can use wins (put ECDSA before RSA). */
  certificates?: readonly CertificateEntry[]
  /** Shorthand for certificates: [{cert, key, passphrase, ocsp}]. */
  cert?: PemInput
  key?: PemInput
  passphrase?: string
  ocsp?: Buffer
}

/** What a live connection needs to know about its host. */
export interface HostContext {
  index: number
  serverName: string
  names: string[]
  env: { stdEnvVars: boolean, exportCertData: boolean }
  leafDers: Buffer[]
  clientAuth: ClientAuthMode
  minVersion: TlsVersionName
  /** Same value ⇔ same certificates (SPEC §4.2's 421 rule). */
  certificateKey: string
  /** Same value ⇔ compatible protocol, cipher and client-auth settings. */
  policyKey: string
}

const AUTH_RANK: Record<ClientAuthMode, number> = { none: 0, optional: 1, required: 2 }

/**
 * Why a context made apart from the server (createSecureContext, served by
 * addContext or an SNICallback answer) would serve a client with less than
 * the server's own host demands, or undefined. node:tls keeps the server's
 * requestCert and protocol minimum whichever context SNI picks; here the
 * context's rustls config decides, so a weaker one is refused, never used.
 */
export function weakerContext (server: HostContext, context: HostContext): string | undefined {
  if (AUTH_RANK[context.clientAuth] < AUTH_RANK[server.clientAuth]) {
    return `the server's clientAuth is ${server.clientAuth} but the context's is ${context.clientAuth}: give the context the same clientAuth (or requestCert/ca)`
  }
  // 'TLSv1.2' < 'TLSv1.3' as strings.
  if (context.minVersion < server.minVersion) {
    return `the server's protocol minimum is ${server.minVersion} but the context allows ${context.minVersion}`
  }
  return undefined
}

export interface BuiltHosts {
  router: NativeHostRouter
  hosts: HostContext[]
  /** Native configs, parallel to `hosts`. */
  configs: NativeHandle[]
  destroy: () => void
}

export interface SharedHostSettings {
  sessionCache: NativeHandle | null
  ticketer: NativeHandle | null
  strictSNI: boolean
  /** Route ClientHellos in JS (SNICallback) instead of natively. */
  deferred: boolean
  /** Contexts added with server.addContext(), routed after the hosts. */
  extra?: ReadonlyArray<{ names: string[], config: NativeHandle, context: HostContext }>
  logger?: Logger
}

const KNOWN_OPTIONS = new Set(['StdEnvVars', 'ExportCertData'])

/** Applies mod_tls TLSOptions entries over the inherited set. */
export function applyTlsOptions (inherited: ReadonlySet<string>, entries: readonly string[] | undefined, keyPath: string): Set<string> {
  const out = new Set(inherited)
  if (entries === undefined) return out
  if (!Array.isArray(entries)) throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be an array of option names')
  entries.forEach((entry, i) => {
    if (typeof entry !== 'string') throw new ConfigError('ERR_TLS_CONFIG_INVALID', `${keyPath}[${i}]`, 'must be a string', entry)
    if (entry === 'Defaults') {
      out.clear()
      return
    }
    const sign = entry[0] === '+' || entry[0] === '-' ? entry[0] : '+'
    const name = entry[0] === '+' || entry[0] === '-' ? entry.slice(1) : entry
    if (!KNOWN_OPTIONS.has(name)) {
      throw new ConfigError('ERR_TLS_CONFIG_OPTION', `${keyPath}[${i}]`,
        `unknown option "${entry}" (known: StdEnvVars, ExportCertData, Defaults)`, entry)
    }
    if (sign === '+') out.add(name)
    else out.delete(name)
  })
  return out
}

/** ALPN as a list of protocol names; accepts node:tls' wire-format Buffer too. */
export function alpnList (value: HostTlsOptions['ALPNProtocols'], keyPath: string): string[] | undefined {
  if (value === undefined) return undefined
  const names: string[] = []
  if (Buffer.isBuffer(value)) {
    for (let i = 0; i < value.length;) {
      const len = value[i]
      if (len === 0 || i + 1 + len > value.length) throw new ConfigError('ERR_TLS_CONFIG_ALPN', keyPath, 'malformed ALPN wire format')
      names.push(value.toString('latin1', i + 1, i + 1 + len))
      i += 1 + len
    }
  } else if (Array.isArray(value)) {
    value.forEach((v: string | Buffer, i: number) => {
      const name = typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('latin1') : undefined
      if (name === undefined || name.length === 0 || name.length > 255) {
        throw new ConfigError('ERR_TLS_CONFIG_ALPN', `${keyPath}[${i}]`, 'must be a protocol name of 1 to 255 bytes', v)
      }
      names.push(name)
    })
  } else {
    throw new ConfigError('ERR_TLS_CONFIG_ALPN', keyPath, 'must be an array of protocol names')
  }
  return names
}

const HOST_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/i

function hostNames (host: HostOptions, keyPath: string): string[] {
  if (typeof host.serverName !== 'string' || host.serverName === '') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPathJoin(keyPath, 'serverName'), 'must be a non-empty host name', host.serverName)
  }
  const names = [host.serverName]
  if (host.aliases !== undefined) {
    if (!Array.isArray(host.aliases)) throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPathJoin(keyPath, 'aliases'), 'must be an array of host names')
    names.push(...host.aliases)
  }
  return names.map((name, i) => {
    const where = i === 0 ? keyPathJoin(keyPath, 'serverName') : keyPathJoin(keyPath, `aliases[${i - 1}]`)
    if (typeof name !== 'string' || !HOST_NAME.test(name) || (i === 0 && name.startsWith('*.'))) {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', where, i === 0 ? 'must be a host name' : 'must be a host name or a *. wildcard', name)
    }
    return name.toLowerCase().replace(/\.$/, '')
  })
}

function certificateEntries (host: HostOptions, keyPath: string): Array<[CertificateEntry, string]> {
  if (host.certificates !== undefined) {
    if (!Array.isArray(host.certificates) || host.certificates.length === 0) {
      throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', keyPathJoin(keyPath, 'certificates'), 'must be a non-empty array')
    }
    return host.certificates.map((c, i) => [c, keyPathJoin(keyPath, `certificates[${i}]`)])
  }
  if (host.cert === undefined) {
    throw new ConfigError('ERR_TLS_CONFIG_CERTIFICATE', keyPathJoin(keyPath, 'certificates'), 'a host needs at least one certificate')
  }
  return [[{ cert: host.cert, key: host.key, passphrase: host.passphrase, ocsp: host.ocsp }, keyPath]]
}

function clientAuthMode (auth: ClientAuthOptions | undefined, keyPath: string): ClientAuthMode {
  if (auth === undefined) return 'none'
  const mode = auth.mode ?? 'required'
  if (mode !== 'required' && mode !== 'optional' && mode !== 'none') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPathJoin(keyPath, 'mode'), 'must be "required", "optional" or "none"', mode)
  }
  return mode
}

/**
 * Builds every host's config and the router over them. On any error,
 * everything built so far is released and the error names the key path.
 */
export function buildHosts (list: readonly HostOptions[], defaults: HostTlsOptions, shared: SharedHostSettings, keyPath = 'hosts'): BuiltHosts {
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError('ERR_TLS_CONFIG_HOSTS', keyPath, 'at least one host (or cert/key) is required')
  }
  const configs: NativeHandle[] = []
  const hosts: HostContext[] = []
  const seen = new Map<string, string>()
  const inherited = applyTlsOptions(new Set(), defaults.options, 'options')
  try {
    list.forEach((host, index) => {
      // The node:tls shorthand (one host, keyPath '') reports top-level keys.
      const at = keyPath === '' ? '' : `${keyPath}[${index}]`
      if (host === null || typeof host !== 'object') throw new ConfigError('ERR_TLS_CONFIG_INVALID', at, 'must be an object')
      for (const name of hostNames(host, at)) {
        const other = seen.get(name)
        if (other !== undefined) {
          throw new ConfigError('ERR_TLS_CONFIG_DUPLICATE_NAME', at, `name "${name}" is already used by ${other}`, name)
        }
        seen.set(name, at)
      }
      const built = buildHost(host, index, at, defaults, inherited, shared)
      configs.push(built.config)
      hosts.push(built.context)
    })
    const entries = hosts.map((h, i) => ({ names: h.names, config: configs[i] }))
    // Added contexts are borrowed (their owner destroys them), and the
    // hosts' own names win over them.
    const routed = [...hosts]
    for (const extra of shared.extra ?? []) {
      entries.push({ names: extra.names, config: extra.config })
      routed.push({ ...extra.context, index: routed.length, names: extra.names })
    }
    const router = new addon.HostRouter(entries, { strictSNI: shared.strictSNI, deferred: shared.deferred })
    return {
      router,
      hosts: routed,
      configs: [...configs, ...(shared.extra ?? []).map((e) => e.config)],
      destroy: () => {
        router.destroy()
        for (const c of configs) c.destroy()
      },
    }
  } catch (err) {
    for (const c of configs) c.destroy()
    throw err
  }
}

/**
 * One host's rustls config, built once: its options merged over the
 * server-wide defaults; `at` is its key path for errors.
 */
export function buildHost (host: HostOptions, index: number, at: string, defaults: HostTlsOptions,
  inheritedOptions: ReadonlySet<string>, shared: Pick<SharedHostSettings, 'sessionCache' | 'ticketer' | 'logger'>): { config: NativeHandle, context: HostContext } {
  const names = hostNames(host, at)
  const merged: HostTlsOptions = { ...defaults, ...definedOnly(host) }
  const protocol = resolveProtocol({
    protocol: host.protocol ?? (host.minVersion === undefined ? defaults.protocol : undefined),
    minVersion: host.minVersion ?? (host.protocol === undefined ? defaults.minVersion : undefined),
    maxVersion: merged.maxVersion,
    keyPathPrefix: host.protocol !== undefined || host.minVersion !== undefined ? at : '',
  })
  const suites = resolveCipherPolicy({
    prefer: merged.ciphersPrefer,
    suppress: merged.ciphersSuppress,
    keyPath: host.ciphersPrefer !== undefined || host.ciphersSuppress !== undefined ? at : '',
    logger: shared.logger ?? silentLogger,
    minVersion: protocol.minVersion,
  })
  const alpn = alpnList(merged.ALPNProtocols, host.ALPNProtocols !== undefined ? keyPathJoin(at, 'ALPNProtocols') : 'ALPNProtocols')
  const options = applyTlsOptions(inheritedOptions, host.options, keyPathJoin(at, 'options'))
  const authPath = host.clientAuth !== undefined ? keyPathJoin(at, 'clientAuth') : 'clientAuth'
  const mode = clientAuthMode(merged.clientAuth, authPath)
  let clientAuth: { ca: Buffer, crls?: Buffer[], optional: boolean } | undefined
  if (mode !== 'none') {
    const ca = pemBundle(merged.clientAuth?.ca, keyPathJoin(authPath, 'ca'), 'ERR_TLS_CONFIG_CA')
    if (ca === undefined) throw new ConfigError('ERR_TLS_CONFIG_CA', keyPathJoin(authPath, 'ca'), 'client authentication needs a CA')
    const crlList = merged.clientAuth?.crls
    const crls = crlList === undefined
      ? undefined
      : (Array.isArray(crlList) ? crlList : [crlList]).map((c: PemInput, i: number) =>
          pemBundle(c, keyPathJoin(authPath, `crls[${i}]`), 'ERR_TLS_CONFIG_CRL') as Buffer)
    clientAuth = { ca, crls, optional: mode === 'optional' }
  }
  const loaded: LoadedCertificate[] = []
  try {
    for (const [entry, where] of certificateEntries(host, at)) loaded.push(loadCertificate(entry, where))
    let config: NativeHandle
    try {
      config = new addon.ServerConfig({
        certifiedKeys: loaded.map((l) => l.native),
        versions: protocol.versions,
        cipherSuites: suites,
        ignoreClientOrder: merged.honorClientOrder === false,
        alpn,
        clientAuth,
        sessionCache: shared.sessionCache,
        ticketer: shared.ticketer,
        sendTickets: shared.sessionCache !== null || shared.ticketer !== null ? 2 : 0,
      })
    } catch (err) {
      const step = (err as { step?: string }).step ?? ''
      if (step.startsWith('clientAuth.crls')) throw configErrorFromNative(err, 'ERR_TLS_CONFIG_CRL', keyPathJoin(authPath, step.slice('clientAuth.'.length)))
      if (step.startsWith('clientAuth')) throw configErrorFromNative(err, 'ERR_TLS_CONFIG_CA', keyPathJoin(authPath, 'ca'))
      throw configErrorFromNative(err, 'ERR_TLS_CONFIG_INVALID', at)
    }
    const leafDers = loaded.map((l) => l.leaf)
    return {
      config,
      context: {
        index,
        serverName: names[0],
        names,
        env: { stdEnvVars: options.has('StdEnvVars'), exportCertData: options.has('ExportCertData') },
        leafDers,
        clientAuth: mode,
        minVersion: protocol.minVersion,
        certificateKey: leafDers.map((d) => crypto.createHash('sha256').update(d).digest('hex')).join(','),
        policyKey: JSON.stringify([protocol.versions, suites ?? null, merged.honorClientOrder !== false, mode,
          clientAuth === undefined ? null : crypto.createHash('sha256').update(clientAuth.ca).digest('hex')]),
      },
    }
  } finally {
    // The config holds its own references to the keys.
    for (const l of loaded) l.native.destroy()
  }
}

function definedOnly<T extends object> (value: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(value)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v
  }
  return out
}
