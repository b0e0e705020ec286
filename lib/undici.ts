// rustlsConnector(): an undici `connect` function, so `fetch`, `request` and
// `Agent`/`Client` of undici make their outgoing HTTPS connections with rustls
// (SPEC §3: `new Agent({connect: rustlsConnector({ca})})`).
//
// undici is not imported at load time: its connector contract is
// structural, and undici is only required (lazily) for plain http: origins,
// which it then connects itself; whoever calls the connector has it.
import net from 'node:net'

import { CONTEXT_KEYS } from './agent'
import { ClientContext, connect, type ClientContextOptions } from './client'
import { ConfigError, UnsupportedOptionError } from './errors'

/** What undici passes to a connector (undici's buildConnector.Options). */
export interface UndiciConnectOptions {
  hostname: string
  host?: string
  protocol: string
  port: string
  servername?: string | null
  localAddress?: string | null
  socketPath?: string | null
  /** An established tunnel (proxy CONNECT) to run TLS over. */
  httpSocket?: net.Socket
}

/** undici's connector callback: (null, socket) or (error, null). */
export type UndiciConnectCallback = (...args: [null, net.Socket] | [Error, null]) => void

export interface RustlsConnectorOptions extends ClientContextOptions {
  /**
   * Offer HTTP/2: ALPN ['h2', 'http/1.1'] instead of ['http/1.1']; undici
   * then speaks HTTP/2 to servers that choose h2 (give undici's Agent or
   * Client `allowH2: true` as well for its HTTP/2 settings). Default false.
   */
  allowH2?: boolean
  /** Milliseconds to connect and finish the TLS handshake (default 10000, undici's connect timeout); 0: none. */
  timeout?: number
  /** TCP keep-alive on each connection (default true, as undici). */
  keepAlive?: boolean
  /** Milliseconds before the first TCP keep-alive probe (default 60000, as undici). */
  keepAliveInitialDelay?: number
  /** SNI and verified name when undici gives none (default: the origin's host name). */
  servername?: string
  /** Connect to this Unix socket instead of the origin's host:port. */
  socketPath?: string
  /**
   * A ClientContext of your own to use (you destroy it); the other TLS
   * options are then ignored. Default: the connector builds one.
   */
  context?: ClientContext
}

/** An undici connector; `destroy()` releases its ClientContext (if it made it). */
export interface RustlsConnector {
  (options: UndiciConnectOptions, callback: UndiciConnectCallback): void
  /**
   * The ClientContext every connection of this connector uses: rustls keeps
   * the sessions servers give it (keyed by server name), so new
   * connections to an origin resume (SPEC §4.4).
   */
  readonly context: ClientContext
  /** Releases the connector's own ClientContext; live connections keep working. Idempotent. */
  destroy (): void
}

const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_KEEPALIVE_DELAY_MS = 60_000

type UndiciConnector = (options: UndiciConnectOptions, callback: UndiciConnectCallback) => void

/**
 * Builds an undici `connect` function over rustls, with one ClientContext
 * for all the origins it connects to (rustls' session store is keyed by
 * server name, so sessions of different origins do not mix).
 */
export function rustlsConnector (options: RustlsConnectorOptions): RustlsConnector {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', '', 'options must be an object')
  }
  const { allowH2, timeout, keepAlive, keepAliveInitialDelay, servername, socketPath, context: given, ...tls } = options
  for (const [key, value] of Object.entries(tls)) {
    // node:tls / net options undici's own connector takes (rejectUnauthorized,
    // crl, lookup, ...) would otherwise be ignored without a word.
    if (value !== undefined && !CONTEXT_KEYS.has(key)) {
      throw new UnsupportedOptionError(key, 'not a rustlsConnector option (TLS: ca, crls, certificates, protocol, ciphersPrefer, ...; connection: allowH2, timeout, keepAlive, servername, socketPath)')
    }
  }
  if (tls.ALPNProtocols !== undefined) {
    throw new UnsupportedOptionError('ALPNProtocols', 'the connector offers http/1.1, and h2 with allowH2: true, which is what undici can speak')
  }
  checkMilliseconds(timeout, 'timeout')
  checkMilliseconds(keepAliveInitialDelay, 'keepAliveInitialDelay')
  if (servername !== undefined && (typeof servername !== 'string' || servername === '')) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', 'servername', 'must be a non-empty host name', servername)
  }
  const context = given ?? new ClientContext({ ...tls, ALPNProtocols: allowH2 === true ? ['h2', 'http/1.1'] : ['http/1.1'] })
  const handshakeTimeout = timeout ?? DEFAULT_TIMEOUT_MS
  let plain: UndiciConnector | undefined

  const connector = (opts: UndiciConnectOptions, callback: UndiciConnectCallback): void => {
    if (opts.protocol !== 'https:') {
      // Plain http: is no TLS business; undici's own connector does it.
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        plain ??= (require('undici') as { buildConnector: (o: object) => UndiciConnector }).buildConnector({
          timeout, keepAlive, keepAliveInitialDelay, socketPath,
        })
      } catch (err) {
        callback(err as Error, null)
        return
      }
      plain(opts, callback)
      return
    }
    const host = opts.hostname
    const port = Number(opts.port) || 443
    let transport: net.Socket | undefined = opts.httpSocket
    const path = opts.socketPath ?? socketPath
    if (transport === undefined && (path != null || opts.localAddress != null)) {
      transport = path != null
        ? net.connect({ path })
        : net.connect({ host, port, localAddress: opts.localAddress ?? undefined })
    }
    let socket
    try {
      socket = connect({
        host,
        port,
        socket: transport,
        // An IP address is verified against the certificate's IP SANs and
        // sent without SNI (RFC 6066 §3 forbids IP literals there).
        servername: opts.servername || servername || host,
        context,
        handshakeTimeout,
      })
    } catch (err) {
      transport?.destroy()
      callback(err as Error, null)
      return
    }
    if (keepAlive !== false) socket.setKeepAlive(true, keepAliveInitialDelay ?? DEFAULT_KEEPALIVE_DELAY_MS)
    socket.setNoDelay(true)
    let pending = true
    socket.once('secureConnect', () => {
      if (!pending) return
      pending = false
      // undici's contract names net.Socket | TLSSocket; it uses the part of
      // that surface RustlsSocket provides (alpnProtocol, read/unshift,
      // cork, ref/unref, setNoDelay, setKeepAlive, destroyed, errored).
      callback(null, socket as unknown as net.Socket)
    })
    socket.on('error', (err) => {
      if (!pending) return
      pending = false
      callback(err, null)
    })
    socket.once('close', () => {
      if (!pending) return
      pending = false
      // Closed during the handshake without a TLS error (e.g. a TCP reset
      // seen as such): reported like node's "socket hang up".
      callback(Object.assign(new Error('the connection closed before the TLS handshake completed'), { code: 'ECONNRESET' }), null)
    })
  }
  Object.defineProperty(connector, 'context', { value: context, enumerable: true })
  Object.defineProperty(connector, 'destroy', {
    value: () => { if (given === undefined) context.destroy() },
  })
  return connector as RustlsConnector
}

function checkMilliseconds (value: unknown, keyPath: string): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
    throw new ConfigError('ERR_TLS_CONFIG_INVALID', keyPath, 'must be a number of milliseconds >= 0', value)
  }
}
