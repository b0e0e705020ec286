// Reads the files a validated configuration names (certificates, keys,
// OCSP responses, CAs, CRLs, ticket keys) into library options. Every
// unreadable file is reported with its key path; passphrases come from the
// environment variable named by `passphraseEnv` and never from the file,
// and none of this material is ever logged.
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'

import type { CertificateEntry } from '../certs'
import type { ClientContextOptions } from '../client-context'
import type { HostOptions } from '../hosts'
import { ocspResponderUrl } from '../ocsp'
import type { ServerOptions } from '../server'
import { currentAcmeCertificate } from './acme'
import type { SessionStore } from '../server-sessions'
import {
  type BackendConfig, type CertificateFiles, type ConfigProblem, ConfigProblems, fileErrorText,
  type HostTlsConfig, type TerminatorConfig,
} from './config'

/** ALPN an HTTP-mode host advertises unless it sets `alpn` (SPEC §3 createHttpsServer). */
export const DEFAULT_HTTP_ALPN = ['h2', 'http/1.1']
/** What the HTTP backend client offers: HTTP/1.1, or h2 only with httpVersion "2". */
export const BACKEND_HTTP_ALPN = ['http/1.1']
export const BACKEND_H2_ALPN = ['h2']
/** ALPN of a host whose backend speaks HTTP/2: its HTTP/1.1 clients could not be forwarded. */
export const H2_BACKEND_ALPN = ['h2']

export interface LoadedBackend {
  config: BackendConfig
  /** Options for the host's ClientContext when the backend speaks TLS. */
  tls?: ClientContextOptions
}

/** A configuration with its files read: ready to build library objects from. */
export interface LoadedConfig {
  config: TerminatorConfig
  /** createServer() options, minus logger and allowHalfOpen (the terminator sets those). */
  serverOptions: ServerOptions
  /** Per host, in host order. */
  backends: LoadedBackend[]
  /** key path → absolute file, so library errors about content can name the file. */
  files: ReadonlyMap<string, string>
}

/** Material the terminator manages itself and lends to each load. */
export interface ManagedMaterial {
  /** The verified OCSP response to staple for a certificate file with `ocsp: auto`, if any. */
  staple: (certFile: string) => Buffer | undefined
}

export interface LoadOptions {
  /** Staples fetched by the running terminator; none without it. */
  managed?: ManagedMaterial
  /** Where passphraseEnv names are looked up. Default process.env. */
  env?: NodeJS.ProcessEnv
  /** Ticket keys handed over by a cluster primary (the latest ones) when the file names none. */
  ticketKeys?: Buffer
  /** TLS sessions shared through `store:` (this process holds the store client). */
  sessionStore?: SessionStore
}

class FileReader {
  readonly problems: ConfigProblem[] = []
  readonly files = new Map<string, string>()
  readonly #cache = new Map<string, Buffer>()

  read (file: string, keyPath: string): Buffer | undefined {
    this.files.set(keyPath, file)
    const cached = this.#cache.get(file)
    if (cached !== undefined) return cached
    try {
      const data = fs.readFileSync(file)
      if (data.length === 0) {
        this.problems.push({ keyPath, message: `file is empty: ${file}` })
        return undefined
      }
      this.#cache.set(file, data)
      return data
    } catch (err) {
      this.problems.push({ keyPath, message: `${fileErrorText(err)}: ${file}` })
      return undefined
    }
  }
}

/**
 * Reads every file of `config`. Throws ConfigProblems listing every file
 * that cannot be read and every passphrase variable that is not set.
 */
export function loadFiles (config: TerminatorConfig, options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env
  const r = new FileReader()

  const certificates = (list: readonly CertificateFiles[], keyPath: string): CertificateEntry[] =>
    list.map((entry, i) => {
      const at = `${keyPath}[${i}]`
      const cert = r.read(entry.cert, `${at}.cert`)
      const key = entry.key === undefined ? undefined : r.read(entry.key, `${at}.key`)
      if (entry.ocspAuto === true && cert !== undefined) checkOcspAuto(cert, `${at}.ocsp`, r)
      const ocsp = entry.ocspAuto === true
        ? options.managed?.staple(entry.cert)
        : entry.ocsp === undefined ? undefined : r.read(entry.ocsp, `${at}.ocsp`)
      let passphrase: string | undefined
      if (entry.passphraseEnv !== undefined) {
        passphrase = env[entry.passphraseEnv]
        if (passphrase === undefined) {
          r.problems.push({ keyPath: `${at}.passphraseEnv`, message: `environment variable ${entry.passphraseEnv} is not set` })
        }
      }
      return { cert: cert ?? Buffer.alloc(0), key, ocsp, passphrase }
    })

  const clientAuth = (tls: HostTlsConfig, keyPath: string): HostOptions['clientAuth'] => {
    const auth = tls.clientAuth
    if (auth === undefined) return undefined
    const at = keyPath === '' ? 'clientAuth' : `${keyPath}.clientAuth`
    return {
      mode: auth.mode,
      ca: auth.ca === undefined ? undefined : r.read(auth.ca, `${at}.ca`),
      crls: auth.crls?.map((f, i) => r.read(f, `${at}.crls[${i}]`) ?? Buffer.alloc(0)),
    }
  }

  const hosts: HostOptions[] = config.hosts.map((host, i) => {
    const at = `hosts[${i}]`
    const alpn = host.alpn ?? config.alpn ?? (host.backend.mode === 'http' ? (host.backend.httpVersion === '2' ? H2_BACKEND_ALPN : DEFAULT_HTTP_ALPN) : undefined)
    let managed: CertificateEntry[] | undefined
    if (host.acme !== undefined && config.stateDir !== undefined) {
      try {
        managed = [{ cert: currentAcmeCertificate(host, config.stateDir) }]
      } catch (err) {
        r.problems.push({ keyPath: `${at}.acme`, message: `cannot read the certificate in stateDir: ${fileErrorText(err)}` })
        managed = []
      }
    }
    return {
      serverName: host.serverName,
      aliases: host.aliases,
      certificates: managed ?? certificates(host.certificates, `${at}.certificates`),
      protocol: host.protocol,
      ciphersPrefer: host.ciphersPrefer,
      ciphersSuppress: host.ciphersSuppress,
      honorClientOrder: host.honorClientOrder,
      ALPNProtocols: alpn,
      options: host.options,
      clientAuth: clientAuth(host, at),
    }
  })

  const backends: LoadedBackend[] = config.hosts.map((host, i) => {
    const tls = host.backend.tls
    if (tls === undefined) return { config: host.backend }
    const at = `hosts[${i}].backend.tls`
    return {
      config: host.backend,
      tls: {
        ca: tls.ca === undefined || tls.ca === 'system' ? tls.ca : r.read(tls.ca, `${at}.ca`) ?? Buffer.alloc(0),
        protocol: tls.protocol,
        ciphersPrefer: tls.ciphersPrefer,
        ciphersSuppress: tls.ciphersSuppress,
        certificates: tls.certificates === undefined ? undefined : certificates(tls.certificates, `${at}.certificates`),
        ALPNProtocols: tls.alpn ?? (host.backend.mode === 'http' ? (host.backend.httpVersion === '2' ? BACKEND_H2_ALPN : BACKEND_HTTP_ALPN) : undefined),
        dangerouslyDisableVerification: tls.dangerouslyDisableVerification,
      },
    }
  })

  const ticketKeys = config.ticketKeys !== undefined ? r.read(config.ticketKeys, 'ticketKeys') : options.ticketKeys
  if (r.problems.length > 0) throw new ConfigProblems(r.problems)

  const serverOptions: ServerOptions = {
    hosts,
    strictSNI: config.strictSNI,
    sessionCache: config.sessionCache,
    ticketKeys,
    ticketLifetime: config.ticketLifetime / 1000,
    handshakeTimeout: config.handshakeTimeout,
    protocol: config.protocol,
    ciphersPrefer: config.ciphersPrefer,
    ciphersSuppress: config.ciphersSuppress,
    honorClientOrder: config.honorClientOrder,
    options: config.options,
    clientAuth: clientAuth(config, ''),
    sessionStore: options.sessionStore,
  }
  return { config, serverOptions: dropUndefined(serverOptions), backends, files: r.files }
}

/** `ocsp: auto` needs a responder URL in the leaf and the issuer after it in the chain. */
function checkOcspAuto (chain: Buffer, keyPath: string, r: FileReader): void {
  const blocks = chain.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  let url: string | undefined
  try {
    url = blocks[0] === undefined ? undefined : ocspResponderUrl(new X509Certificate(blocks[0]))
  } catch {
    return // the library reports a certificate that does not parse
  }
  if (url === undefined) r.problems.push({ keyPath, message: 'auto: the certificate names no OCSP responder (no AIA OCSP URI); give a response file or drop ocsp' })
  else if (blocks.length < 2) r.problems.push({ keyPath, message: 'auto: the chain must include the issuer after the leaf, to verify the responses against' })
}

function dropUndefined<T extends object> (value: T): T {
  for (const key of Object.keys(value) as Array<keyof T>) {
    if (value[key] === undefined) delete value[key]
  }
  return value
}
