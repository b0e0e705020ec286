// RustlsAgent: an http.Agent whose connections are RustlsSockets, so
// `https.request(url, {agent})` (or `http.request` with protocol 'https:')
// runs over rustls, with keep-alive reuse from http.Agent and TLS session
// resumption from one ClientContext per host:port:servername (SPEC §4.4).
import http from 'node:http'
import net from 'node:net'
import type { Duplex } from 'node:stream'

import { ClientContext, connect, type ClientContextOptions } from './client'
import { ConfigError, UnsupportedOptionError } from './errors'
import type { RustlsSocket } from './tls-socket/socket'

export interface RustlsAgentOptions extends http.AgentOptions, ClientContextOptions {
  /**
   * Keep connections open between requests (default true, as Node's
   * https.globalAgent since Node 19); false: one request per connection.
   */
  keepAlive?: boolean
  /** Milliseconds to connect and finish the TLS handshake (default 120000, as connect()); 0: none. */
  handshakeTimeout?: number
  /**
   * Most origins (host:port:servername) whose ClientContext, and with it
   * their resumable TLS sessions, is kept; the least recently used goes
   * first. Default 100, as https.Agent's maxCachedSessions; 0: no
   * resumption (a context per connection).
   */
  maxCachedSessions?: number
}

/**
 * TLS options node's https accepts per request; a RustlsAgent's TLS
 * settings are fixed when it is created, so a request carrying one would
 * otherwise be silently ignored (SPEC §3: throw, never ignore).
 */
const REQUEST_TLS_OPTIONS = [
  'ca', 'cert', 'key', 'pfx', 'passphrase', 'ciphers', 'crl', 'minVersion', 'maxVersion',
  'secureProtocol', 'secureOptions', 'secureContext', 'honorCipherOrder', 'ecdhCurve', 'dhparam',
  'sessionIdContext', 'sigalgs', 'privateKeyIdentifier', 'privateKeyEngine', 'clientCertEngine',
  'checkServerIdentity', 'session', 'ALPNProtocols', 'pskCallback',
] as const

/**
 * Options that make the ClientContext; every other option goes to
 * http.Agent (and from it to each connection).
 * @internal
 */
export const CONTEXT_KEYS: ReadonlySet<string> = new Set<keyof ClientContextOptions>([
  'ca', 'crls', 'certificates', 'cert', 'key', 'passphrase', 'protocol', 'minVersion', 'maxVersion',
  'ciphersPrefer', 'ciphersSuppress', 'ALPNProtocols', 'enableSni', 'dangerouslyDisableVerification', 'logger',
])

const DEFAULT_MAX_CACHED_SESSIONS = 100

/** An https agent over rustls (HTTP/1.1: http.Agent cannot speak HTTP/2). */
export class RustlsAgent extends http.Agent {
  /** ClientContexts by host:port:servername, least recently used first. */
  readonly #contexts = new Map<string, ClientContext>()
  readonly #tls: ClientContextOptions
  readonly #handshakeTimeout: number | undefined
  readonly #maxContexts: number

  constructor (options: RustlsAgentOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', '', 'options must be an object')
    }
    const agentOptions: Record<string, unknown> = { keepAlive: true }
    const tls: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(options)) {
      if (key === 'handshakeTimeout' || key === 'maxCachedSessions' || value === undefined) continue
      if (CONTEXT_KEYS.has(key)) {
        tls[key] = value
      } else if (key === 'rejectUnauthorized') {
        if (value === false) throw new UnsupportedOptionError(key, 'verification cannot be turned off; dangerouslyDisableVerification exists for tests')
      } else if ((REQUEST_TLS_OPTIONS as readonly string[]).includes(key)) {
        // A node:tls option with no rustls counterpart here (e.g. `crl`:
        // the option is `crls`) would otherwise pass unnoticed.
        throw new UnsupportedOptionError(key, 'not a RustlsAgent TLS option (see ClientContextOptions: ca, crls, certificates, protocol, ciphersPrefer, ...)')
      } else {
        agentOptions[key] = value
      }
    }
    super(agentOptions as http.AgentOptions)
    if (options.ALPNProtocols !== undefined) {
      throw new UnsupportedOptionError('ALPNProtocols', 'http.Agent speaks HTTP/1.1 only; the agent offers http/1.1')
    }
    const max = options.maxCachedSessions ?? DEFAULT_MAX_CACHED_SESSIONS
    if (!Number.isInteger(max) || max < 0) {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', 'maxCachedSessions', 'must be an integer >= 0', max)
    }
    this.#maxContexts = max
    this.#handshakeTimeout = options.handshakeTimeout
    this.#tls = { ...tls, ALPNProtocols: ['http/1.1'] }
    // Configuration errors surface here, with their key path, rather than
    // on the first request.
    new ClientContext(this.#tls).destroy()
    // http.Agent's own protocol check (ClientRequest: agent.protocol must
    // match the URL's) and default port.
    Object.assign(this, { protocol: 'https:', defaultPort: 443 })
  }

  /** node:http calls this for a new connection; returns a RustlsSocket (connecting). */
  override createConnection (options: http.ClientRequestArgs, _callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    for (const name of REQUEST_TLS_OPTIONS) {
      if ((options as Record<string, unknown>)[name] !== undefined) {
        throw new UnsupportedOptionError(name, 'TLS settings belong to the RustlsAgent (fixed when it is created); use another agent')
      }
    }
    if ((options as { rejectUnauthorized?: unknown }).rejectUnauthorized === false) {
      throw new UnsupportedOptionError('rejectUnauthorized', 'verification cannot be turned off per request')
    }
    const host = options.host ?? options.hostname ?? 'localhost'
    const port = Number(options.port) || 443
    const given = (options as { servername?: unknown }).servername
    // node's Agent derives servername from Host/host and leaves '' for IP
    // addresses; rustls then verifies the IP against the certificate's IP
    // SANs and sends no SNI (RFC 6066 §3).
    const servername = typeof given === 'string' && given !== '' ? given : host
    const transport = options.socketPath !== undefined
      ? net.connect({ path: options.socketPath })
      : net.connect({
        host,
        port,
        localAddress: options.localAddress,
        localPort: (options as { localPort?: number }).localPort,
        family: options.family,
        hints: options.hints,
        lookup: options.lookup as net.LookupFunction | undefined,
      })
    const { context, shared } = this.#contextFor(`${host}:${port}:${servername}`)
    const socket: RustlsSocket = connect({
      host,
      port,
      servername,
      socket: transport,
      context,
      handshakeTimeout: this.#handshakeTimeout,
    })
    if (!shared) socket.once('close', () => context.destroy())
    if (options.timeout !== undefined) socket.setTimeout(options.timeout)
    const keepAlive = (options as { keepAlive?: boolean }).keepAlive
    if (keepAlive === true) socket.setKeepAlive(true, (options as { keepAliveInitialDelay?: number }).keepAliveInitialDelay)
    return socket
  }

  /** As https.Agent: the connection pool key includes the server name. */
  override getName (options: http.ClientRequestArgs = {}): string {
    const servername = (options as { servername?: string }).servername ?? ''
    return `${super.getName(options)}:${servername}`
  }

  /** Destroys every connection and releases the ClientContexts. */
  override destroy (): void {
    super.destroy()
    for (const context of this.#contexts.values()) context.destroy()
    this.#contexts.clear()
  }

  #contextFor (key: string): { context: ClientContext, shared: boolean } {
    const existing = this.#contexts.get(key)
    if (existing !== undefined) {
      // Most recently used last.
      this.#contexts.delete(key)
      this.#contexts.set(key, existing)
      return { context: existing, shared: true }
    }
    const context = new ClientContext(this.#tls)
    if (this.#maxContexts === 0) {
      // No resumption wanted: the context lives as long as its connection.
      return { context, shared: false }
    }
    this.#contexts.set(key, context)
    if (this.#contexts.size > this.#maxContexts) {
      const [oldestKey, oldest] = this.#contexts.entries().next().value as [string, ClientContext]
      this.#contexts.delete(oldestKey)
      // Live connections keep working (ClientContext#destroy).
      oldest.destroy()
    }
    return { context, shared: true }
  }
}

/** An https agent whose connections run over rustls (see RustlsAgent). */
export function createHttpsAgent (options: RustlsAgentOptions): RustlsAgent {
  return new RustlsAgent(options)
}
