// The native listener (native/src/plane/listener.cc) seen from JS: binding a
// listening socket from net.Server-style listen() arguments, and turning
// the listener's batched reports (failed handshakes, backend failures,
// released route sets) into errors and callbacks. The listener accepts,
// routes by SNI and handshakes in native code; JS hears of a connection
// only once its handshake completed, and only if its host's plan is JS.
import cluster from 'node:cluster'
import dns from 'node:dns'
import net from 'node:net'
import util from 'node:util'

import { HandshakeTimeoutError, RustlsError } from './errors'
import {
  addon,
  Flag,
  ListenerEvent,
  LocalResult,
  type ListenerCounters,
  type ListenerOptions,
  type NativeConnection,
  type NativeHandle,
  type NativeListener,
  type NativeSessionCache,
  type RoutePlan,
} from './native'
import type { Logger } from './log'
import { RustlsSocket, type SocketHooks } from './tls-socket/socket'

/** A handshake that failed in native code: what JS logs and reports. */
export interface HandshakeFailure {
  error: Error & { code: string }
  servername: string | false
  remoteAddress?: string
  remotePort?: number
  bytesRead: number
  bytesWritten: number
}

/** A tcp-mode backend that could not be reached (connect, TLS, timeout). */
export interface BackendFailure {
  setId: number
  host: number
  kind: 'connect' | 'tls' | 'timeout'
  /** errno name (ECONNREFUSED) or ERR_RUSTLS_* code. */
  code: string
  error: Error & { code: string }
}

/** A completed handshake of a connection native code keeps (reportHandshakes). */
export interface HandshakeDone {
  setId: number
  host: number
  servername: string | undefined
  remoteAddress: string | undefined
  remotePort: number
  version: number
  cipherSuite: number
  alpn: string | undefined
  resumed: boolean
}

/**
 * The native HTTP/2 front: a request it answered 403/421 (`status`), or a
 * connection it closed because the client misbehaved (`status` 0, `reason`
 * the abuse reason, e.g. 'rapid_reset').
 */
export interface HttpNotice {
  setId: number
  host: number
  reason: string
  status: number
  servername: string | undefined
  remoteAddress: string | undefined
  remotePort: number
  authority: string | undefined
}

export interface NativeListenerHooks {
  /** A connection for JS: its handshake completed and its host's plan is JS. */
  secure?: (connection: NativeConnection, setId: number, host: number, flags: number, plaintext: Buffer | undefined) => void
  failures?: (list: HandshakeFailure[]) => void
  backendFailures?: (list: BackendFailure[]) => void
  /** A route set given to setRoutes() was replaced and has no connection left. */
  idle?: (setId: number) => void
  /** close() was called and the last connection ended. */
  closed?: () => void
  handshakes?: (list: HandshakeDone[]) => void
  httpNotices?: (list: HttpNotice[]) => void
}

/** Who answers the listener's session lookups and takes its new sessions (a Server). */
export interface SessionHandler {
  /** Hellos waiting: answer each with front.answerSession(lookupId, data | null). */
  lookups: (front: NativeListenerFront, list: Array<{ lookupId: number, sessionId: Buffer }>) => void
  /** [sessionId, sessionData, ...] the server stored. */
  stored: (flat: Buffer[]) => void
  /** Answered sessions used up (refused by rustls, or resumed TLS 1.3). */
  spent: (ids: Buffer[]) => void
}

/**
 * The RustlsSocket (socket mode, no net.Socket under it) for a connection
 * the listener reported established. Its 'secure' event follows on the
 * next tick, once the caller attached its listeners.
 */
export function socketFromNative (connection: NativeConnection, init: {
  host: number
  flags: number
  plaintext: Buffer | undefined
  /** The server's hooks (clientError only for a hello paused in JS view: its handshake continues there). */
  hooks: SocketHooks
  server?: net.Server
  allowHalfOpen: boolean
  highWaterMark?: number
  logger?: Logger
  handshakeTimeout?: number
}): RustlsSocket {
  const paused = (init.flags & Flag.NeedConfig) !== 0
  return new RustlsSocket({
    pump: { kind: 'adopted', flags: init.flags, plaintext: init.plaintext, host: init.host },
    connection,
    isServer: true,
    server: init.server,
    hooks: init.hooks,
    handshakeTimeout: paused ? init.handshakeTimeout : undefined,
    allowHalfOpen: init.allowHalfOpen,
    highWaterMark: init.highWaterMark,
    logger: init.logger,
  })
}

/** Where to listen, as net.Server.listen() takes it. */
export interface ListenTarget {
  host?: string
  port?: number
  backlog?: number
  ipv6Only?: boolean
  reusePort?: boolean
  path?: string
  fd?: number
}

/** Node's system error shape for an errno name reported by native code. */
export function systemError (name: string | undefined, syscall: string): Error & { code: string } {
  const code = name ?? 'EIO'
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall })
}

function failureError (code: number, errnoName: string | undefined): Error & { code: string } {
  if (code === LocalResult.HandshakeTimeout) return new HandshakeTimeoutError()
  if (code === LocalResult.TransportError) return systemError(errnoName, 'read')
  return new RustlsError(code)
}

/**
 * net.Server.listen()'s argument forms: (port?, host?, backlog?, cb?),
 * (path, backlog?, cb?), (options, cb?). Handles and `{fd}` of sockets
 * made elsewhere: only `{fd}` of a listening socket.
 */
export function parseListenArgs (args: unknown[]): { target: ListenTarget, callback?: () => void } {
  const last = args[args.length - 1]
  const callback = typeof last === 'function' ? last as () => void : undefined
  const rest = callback === undefined ? args : args.slice(0, -1)
  const first = rest[0]
  let target: ListenTarget
  if (first !== null && typeof first === 'object') {
    const o = first as Record<string, unknown>
    if ('_handle' in o || 'handle' in o) {
      throw Object.assign(new Error('listen(handle) is not supported by the native listener; listen on a port, a path or {fd}'), { code: 'ERR_RUSTLS_UNSUPPORTED_OPTION' })
    }
    target = {
      host: typeof o.host === 'string' ? o.host : undefined,
      port: o.port === undefined ? undefined : validPort(o.port),
      backlog: typeof o.backlog === 'number' ? o.backlog : undefined,
      ipv6Only: o.ipv6Only === true,
      reusePort: o.reusePort === true ? true : undefined,
      path: typeof o.path === 'string' ? o.path : undefined,
      fd: typeof o.fd === 'number' ? o.fd : undefined,
    }
  } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
    target = { path: first, backlog: typeof rest[1] === 'number' ? rest[1] : undefined }
  } else {
    target = {
      port: first === undefined || first === null ? 0 : validPort(first),
      host: typeof rest[1] === 'string' ? rest[1] : undefined,
      backlog: typeof rest[1] === 'number' ? rest[1] : typeof rest[2] === 'number' ? rest[2] : undefined,
    }
  }
  return { target, callback }
}

function validPort (value: unknown): number {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw Object.assign(new RangeError(`Port should be >= 0 and < 65536. Received ${util.inspect(value)}.`), { code: 'ERR_SOCKET_BAD_PORT' })
  }
  return port
}

export class NativeListenerFront {
  readonly #native: NativeListener
  readonly #hooks: NativeListenerHooks
  #address: net.AddressInfo | string | null = null
  #listening = false
  #closed = false
  #drained = false

  constructor (hooks: NativeListenerHooks, options: ListenerOptions) {
    this.#hooks = hooks
    this.#native = new addon.Listener(this.#onEvent, { reportFailures: true, ...options })
  }

  get listening (): boolean {
    return this.#listening
  }

  /**
   * Resolves the host (once, as net.Server does), binds and listens. In a
   * cluster worker a TCP port is shared by SO_REUSEPORT: the native
   * listener does not go through the primary.
   */
  listen (target: ListenTarget, done: (err: Error | null) => void): void {
    if (this.#closed) {
      process.nextTick(done, Object.assign(new Error('the server was closed'), { code: 'ERR_SERVER_NOT_RUNNING' }))
      return
    }
    const bind = (host: string | undefined): void => {
      try {
        const reusePort = target.reusePort ?? (cluster.isWorker && target.port !== 0 && target.path === undefined)
        const a = this.#native.listen({ ...target, host, reusePort })
        this.#address = target.path ?? (a.address === undefined ? null : { address: a.address, family: a.family ?? 'IPv4', port: a.port ?? 0 })
        this.#listening = true
        done(null)
      } catch (err) {
        done(err as Error)
      }
    }
    const host = target.host
    if (target.path !== undefined || target.fd !== undefined || host === undefined || net.isIP(host) !== 0) {
      process.nextTick(bind, host)
      return
    }
    dns.lookup(host, (err, address) => {
      if (err !== null) done(err)
      else bind(address)
    })
  }

  address (): net.AddressInfo | string | null {
    return this.#listening ? this.#address : null
  }

  setRoutes (router: NativeHandle, plans: RoutePlan[], id: number): void {
    this.#native.setRoutes(router, plans, id)
  }

  setHttpChallenge (token: string, keyAuthorization: string | null): void {
    this.#native.setHttpChallenge(token, keyAuthorization)
  }

  setOptions (options: ListenerOptions): void {
    this.#native.setOptions(undefined, options)
  }

  /** Stops accepting; `closed` follows once the last connection ended. */
  close (): void {
    if (this.#closed) {
      // Closed again (as net.Server allows): `closed` again once drained.
      if (this.#drained) process.nextTick(() => this.#hooks.closed?.())
      return
    }
    this.#closed = true
    this.#listening = false
    this.#native.close()
  }

  abortAll (): void {
    this.#native.abortAll()
  }

  drain (): void {
    this.#native.drain()
  }

  counters (): ListenerCounters {
    return this.#native.counters()
  }

  setRef (ref: boolean): void {
    this.#native.setRef(ref)
  }

  #sessions: SessionHandler | null = null

  /** Session lookups and new sessions go to `handler` (null: none), with the store to check first. */
  attachSessions (handler: SessionHandler | null, cache: NativeSessionCache | null, options: Pick<ListenerOptions, 'sessionLookups' | 'sessionLookupsTls13' | 'sessionLookupTimeout' | 'reportNewSessions'>): void {
    this.#sessions = handler
    this.#native.setSessionCache(cache)
    this.#native.setOptions(undefined, options)
  }

  /** The answer to a lookup (null: none); false when it came too late. */
  answerSession (lookupId: number, data: Buffer | null): boolean {
    return this.#native.answerSession(lookupId, data)
  }

  #onEvent = (kind: ListenerEvent, ...args: unknown[]): void => {
    const hooks = this.#hooks
    switch (kind) {
      case ListenerEvent.Secure:
        hooks.secure?.(args[0] as NativeConnection, args[1] as number, args[2] as number, args[3] as number, args[4] as Buffer | undefined)
        break
      case ListenerEvent.Failures: {
        const flat = args[0] as unknown[]
        const list: HandshakeFailure[] = []
        for (let i = 0; i + 6 < flat.length; i += 7) {
          list.push({
            error: failureError(flat[i] as number, flat[i + 1] as string | undefined),
            servername: (flat[i + 2] as string | undefined) ?? false,
            remoteAddress: flat[i + 3] as string | undefined,
            remotePort: flat[i + 4] as number,
            bytesRead: flat[i + 5] as number,
            bytesWritten: flat[i + 6] as number,
          })
        }
        hooks.failures?.(list)
        break
      }
      case ListenerEvent.Backend: {
        const flat = args[0] as unknown[]
        const list: BackendFailure[] = []
        for (let i = 0; i + 4 < flat.length; i += 5) {
          const rustls = flat[i + 3] as number
          const errnoName = flat[i + 4] as string | undefined
          const error = rustls !== 0 ? new RustlsError(rustls) : systemError(errnoName, 'connect')
          list.push({ setId: flat[i] as number, host: flat[i + 1] as number, kind: flat[i + 2] as BackendFailure['kind'], code: error.code, error })
        }
        hooks.backendFailures?.(list)
        break
      }
      case ListenerEvent.Handshakes: {
        const flat = args[0] as unknown[]
        const list: HandshakeDone[] = []
        for (let i = 0; i + 8 < flat.length; i += 9) {
          list.push({
            setId: flat[i] as number,
            host: flat[i + 1] as number,
            servername: flat[i + 2] as string | undefined,
            remoteAddress: flat[i + 3] as string | undefined,
            remotePort: flat[i + 4] as number,
            version: flat[i + 5] as number,
            cipherSuite: flat[i + 6] as number,
            alpn: flat[i + 7] as string | undefined,
            resumed: flat[i + 8] as boolean,
          })
        }
        hooks.handshakes?.(list)
        break
      }
      case ListenerEvent.HttpNotices: {
        const flat = args[0] as unknown[]
        const list: HttpNotice[] = []
        for (let i = 0; i + 7 < flat.length; i += 8) {
          list.push({
            setId: flat[i] as number,
            host: flat[i + 1] as number,
            reason: flat[i + 2] as string,
            status: flat[i + 3] as number,
            servername: flat[i + 4] as string | undefined,
            remoteAddress: flat[i + 5] as string | undefined,
            remotePort: flat[i + 6] as number,
            authority: flat[i + 7] as string | undefined,
          })
        }
        hooks.httpNotices?.(list)
        break
      }
      case ListenerEvent.SessionLookups: {
        const flat = args[0] as unknown[]
        const list: Array<{ lookupId: number, sessionId: Buffer }> = []
        for (let i = 0; i + 1 < flat.length; i += 2) list.push({ lookupId: flat[i] as number, sessionId: flat[i + 1] as Buffer })
        if (this.#sessions !== null) this.#sessions.lookups(this, list)
        // Nobody to ask: full handshakes, at once.
        else for (const l of list) this.#native.answerSession(l.lookupId, null)
        break
      }
      case ListenerEvent.NewSessions:
        this.#sessions?.stored(args[0] as Buffer[])
        break
      case ListenerEvent.SpentSessions:
        this.#sessions?.spent(args[0] as Buffer[])
        break
      case ListenerEvent.Idle:
        hooks.idle?.(args[0] as number)
        break
      case ListenerEvent.Closed:
        this.#drained = true
        hooks.closed?.()
        break
    }
  }
}
