// One host's backend as the native data plane reaches it: where it is (an
// address from BackendNames, kept current after failed connects), how (plain
// or TLS with the host's ClientContext, so sessions resume; PROXY header),
// and in http mode what the native fronts need to forward requests.
import { X509Certificate } from 'node:crypto'

import { derToPem } from '../certs'
import type { ClientContext } from '../client-context'
import type { HostContext } from '../hosts'
import { addon, type NativeBackendTarget } from '../native'
import { libraryVersion, packageVersion } from '../versions'
import type { BackendNames } from './backend-names'
import type { BackendConfig, Http2Config } from './config'

/** The key algorithm of a certificate as PROXY v2's SSL_KEY_ALG sub-TLV names it: "EC256", "RSA2048". */
export function keyAlgorithm (cert: X509Certificate): string | undefined {
  const key = cert.publicKey
  const details = key.asymmetricKeyDetails
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return `RSA${details?.modulusLength ?? ''}`
  if (key.asymmetricKeyType === 'ec') return `EC${({ prime256v1: 256, secp384r1: 384, secp521r1: 521 } as Record<string, number>)[details?.namedCurve ?? ''] ?? ''}`
  return key.asymmetricKeyType?.toUpperCase()
}

export class HostBackend {
  readonly index: number
  /** The frontend host's primary name (logs). */
  readonly hostName: string
  readonly config: BackendConfig
  readonly #context: ClientContext | undefined
  #target: NativeBackendTarget | undefined
  #unwatch: (() => void) | undefined
  #destroyed = false

  constructor (index: number, hostName: string, config: BackendConfig, context: ClientContext | undefined) {
    this.index = index
    this.hostName = hostName
    this.config = config
    this.#context = context
  }

  get tls (): boolean {
    return this.#context !== undefined
  }

  /**
   * The backend as native code connects to it, built once: at the address
   * `names` has for it now, and at each new one it finds after a failed
   * connect; with what the PROXY v2 header and the X-SSL-* fields say
   * about `host`'s certificates.
   */
  nativeTarget (host: HostContext, names: BackendNames, http2: Http2Config): NativeBackendTarget {
    if (this.#destroyed) throw Object.assign(new Error('backend configuration was retired'), { code: 'ERR_BACKEND_RETIRED' })
    if (this.#target !== undefined) return this.#target
    const addr = this.config.address
    const proxy = this.config.proxyProtocol
    const target = new addon.BackendTarget({
      address: addr.kind === 'unix' ? { kind: 'unix', path: addr.path } : { kind: 'tcp', ip: names.address(addr.host) ?? '', port: addr.port, name: addr.host },
      connectTimeout: this.config.connectTimeout,
      proxyProtocol: proxy === 'v1' ? 1 : proxy === 'v2' ? 2 : 0,
      tls: this.#context === undefined ? undefined : { config: this.#context.native, serverName: this.#serverName() },
      keyAlgs: host.leafDers.map((der) => keyAlgorithm(new X509Certificate(der)) ?? ''),
      http: this.config.mode !== 'http'
        ? undefined
        : {
            timeout: this.config.timeout,
            stdEnvVars: host.env.stdEnvVars,
            exportCertData: host.env.exportCertData,
            clientAuth: host.clientAuth !== 'none',
            versionInterface: `rustls-node/${packageVersion()}`,
            versionLibrary: libraryVersion(),
            serverCerts: host.leafDers.map((der) => encodeURIComponent(derToPem(der))),
            // SPEC §4.2: hosts with equal keys serve each other's requests (lib/authority.ts).
            coalesceKey: `${host.certificateKey}\n${host.policyKey}`,
            backendH2: this.config.httpVersion === '2',
            h2: { maxConcurrentStreams: http2.maxConcurrentStreams, idleTimeout: http2.idleTimeout, sendTimeout: http2.sendTimeout },
          },
    })
    if (addr.kind === 'tcp') this.#unwatch = names.watch(addr.host, (ip) => target.setAddress(ip))
    this.#target = target
    return target
  }

  /** SNI and the name verified on the backend. */
  #serverName (): string {
    const addr = this.config.address
    return this.config.tls?.serverName ?? (addr.kind === 'tcp' ? addr.host : 'localhost')
  }

  /** Releases the native target and the ClientContext. Idempotent. */
  destroy (): void {
    if (this.#destroyed) return
    this.#destroyed = true
    this.#unwatch?.()
    this.#target?.destroy()
    this.#context?.destroy()
  }
}
