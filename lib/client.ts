// connect(): TLS clients (e.g. to proxied backends) over rustls (SPEC §3,
// §4.8). By default native code connects and pumps the socket itself (the
// fd pump); a transport handed in (`socket`), and the net.connect options
// native code does not implement, run over a net.Socket with the stream
// pump (docs/node-tls-parity.md lists them).
import net from 'node:net'
import type { Duplex } from 'node:stream'

import { ClientContext, type ClientContextOptions } from './client-context'
import { ConfigError, configErrorFromNative } from './errors'
import { addon } from './native'
import { RustlsSocket, type SocketInit } from './tls-socket/socket'

export { ClientContext, type ClientContextOptions }

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
  /** As net.connect: 4 or 6, only addresses of that family. */
  family?: number
  /** As net.connect; with any of these the client runs over a net.Socket (the stream pump). */
  lookup?: net.LookupFunction
  localAddress?: string
  localPort?: number
  hints?: number
  autoSelectFamily?: boolean
  autoSelectFamilyAttemptTimeout?: number
  signal?: AbortSignal
}

/**
 * net.connect options the native connect does not implement: with any of
 * them the client runs over a net.Socket (the stream pump), as documented.
 */
const NET_ONLY_OPTIONS = ['lookup', 'localAddress', 'localPort', 'hints', 'autoSelectFamily', 'autoSelectFamilyAttemptTimeout', 'signal'] as const

/**
 * How clients connect when nothing forces a net.Socket: natively (the fd
 * pump), or over a net.Socket (the stream pump). Internal (not exported by
 * index.ts): the test suite runs once with each and chooses it here.
 */
let defaultPump: 'fd' | 'stream' = 'fd'
export function setDefaultClientPump (pump: 'fd' | 'stream'): void {
  defaultPump = pump
}

function needsNetSocket (options: ConnectOptions): boolean {
  if (process.platform === 'win32' || defaultPump === 'stream') return true
  const o = options as Record<string, unknown>
  return NET_ONLY_OPTIONS.some((name) => o[name] !== undefined)
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
  let pump: SocketInit['pump']
  if (options.socket !== undefined || needsNetSocket(options)) {
    // Half-open TCP: the TLS layer decides when to send its FIN.
    const netOptions: Record<string, unknown> = options.path !== undefined
      ? { path: options.path }
      : { host, port: options.port ?? 443, family: options.family }
    for (const name of NET_ONLY_OPTIONS) {
      const value = (options as Record<string, unknown>)[name]
      if (value !== undefined) netOptions[name] = value
    }
    const transport = options.socket ?? net.connect({ ...netOptions, allowHalfOpen: true } as net.NetConnectOpts)
    pump = { kind: 'stream', transport }
  } else {
    pump = { kind: 'connect', target: { host, port: options.port ?? 443, path: options.path, family: options.family } }
  }
  const socket = new RustlsSocket({
    pump,
    connection,
    isServer: false,
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
  if (options.socket === undefined) {
    if (options.timeout !== undefined) socket.setTimeout(options.timeout)
    if (options.noDelay !== undefined) socket.setNoDelay(options.noDelay)
    if (options.keepAlive === true) socket.setKeepAlive(true, options.keepAliveInitialDelay)
  }
  if (listener !== undefined) socket.once('secureConnect', listener)
  return socket
}
