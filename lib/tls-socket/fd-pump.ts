// FdPump: a RustlsSocket whose native connection owns its socket
// descriptor: one the native listener accepted and handshook (adopted), or
// one native code connects itself (connect()). Native code polls the
// descriptor on the Node loop, reads, decrypts, encrypts and writes
// (native/src/js/connection_io.cc); JS gets one event per readable turn
// (plaintext and flags) and makes one call per write batch. No net.Socket
// exists under it.
import dns from 'node:dns'
import net from 'node:net'
import util from 'node:util'

import { RustlsError } from '../errors'
import { Flag, results, Slot, type FdPumpEvent, type NativeConnection, type NativeHandle } from '../native'
import { kAfterCall, kCloseGrace, kFailed, kPeerClosed, kReaderFull, kTransportError, type Pump, type PumpContext, type PumpOwner, type WriteState } from './pump'

/** Chunks per native write call (at least the LATIN1_BITS a mask marks). */
const WRITE_GROUP = 64

/** rustls_result GENERAL: rustls stopped taking data without a code. */
const RUSTLS_RESULT_GENERAL = 7112

type Addresses = ReturnType<NativeConnection['addresses']>
type Address = { host: string, port: number } | { path: string }

// The connection's pump, kept on the native connection object: native code
// calls back with the connection as `this`.
const kPump = Symbol('pump')
type PumpedConnection = NativeConnection & { [kPump]: FdPump }

/** Where a client connects: an IP, a name to resolve, or a Unix socket path. */
export interface ConnectTarget {
  host?: string
  port?: number
  path?: string
  /** 4 or 6: only addresses of that family (as net.connect). */
  family?: number
}

export type FdPumpSpec =
  | { kind: 'adopted', flags: number, plaintext?: Buffer, host: number }
  | { kind: 'connect', target: ConnectTarget }

export class FdPump implements Pump {
  readonly #conn: NativeConnection
  readonly #owner: PumpOwner
  readonly #spec: FdPumpSpec
  // Made on first use: most connections never wait for a drain.
  #drainWaiters: Array<() => void> | null = null
  #flushScheduled = false
  // The kernel took less than we had: writes wait for the Drained event.
  #writeBlocked = false
  #readPaused = false
  #transportEnded = false
  #connecting = false
  #closed = false
  #addresses: Addresses | undefined
  #idleTimer: NodeJS.Timeout | null = null
  // The idle timeout asked for (0: none) and the one the timer was made with.
  #idleMs = 0
  #timerMs = 0
  #writeError: Error | null = null
  // Relayed to a socketpair (pair()): native code moves the plaintext.
  #paired = false

  constructor (ctx: PumpContext, spec: FdPumpSpec) {
    this.#conn = ctx.conn
    this.#owner = ctx.owner
    this.#spec = spec
  }

  get writeError (): Error | null { return this.#writeError }
  get transport (): undefined { return undefined }

  start (): void {
    const spec = this.#spec
    if (spec.kind === 'adopted') {
      this.#listen()
      this.#conn.start(-1, FdPump.#dispatch)
      // The handshake completed natively (or stopped at a hello the
      // application routes); reported on the next tick, once whoever made
      // this socket attached its listeners, as the event it would have been.
      process.nextTick(FdPump.#adopted, this, spec)
      return
    }
    this.#connecting = true
    this.#connect(spec.target)
  }

  // ---- connecting (clients) ----------------------------------------------

  #connect (target: ConnectTarget): void {
    if (target.path !== undefined) {
      this.#tryAddresses([{ path: target.path }])
      return
    }
    const host = target.host ?? 'localhost'
    const port = target.port ?? 443
    if (net.isIP(host) !== 0) {
      this.#tryAddresses([{ host, port }])
      return
    }
    const family = target.family === 4 || target.family === 6 ? target.family : 0
    dns.lookup(host, { all: true, family }, (err, list) => {
      if (this.#owner.destroyed) return
      if (err !== null) {
        this.#owner[kTransportError](err)
        return
      }
      this.#tryAddresses(list.map((a) => ({ host: a.address, port })))
    })
  }

  /**
   * Connects to each address in turn, the next after a failure (as
   * net.connect with several addresses, without parallel attempts).
   */
  #tryAddresses (left: Address[]): void {
    const next = left.shift()
    if (next === undefined || this.#owner.destroyed) return
    let err: number
    try {
      this.#listen()
      err = this.#conn.connectSocket(next, FdPump.#dispatch)
    } catch (e) {
      this.#owner[kTransportError](e as Error)
      return
    }
    if (err !== 0) {
      if (left.length > 0) this.#tryAddresses(left)
      else process.nextTick(() => this.#owner[kTransportError](errnoError(err, 'connect', next)))
      return
    }
    this.#retry = left.length > 0 ? () => this.#tryAddresses(left) : null
    this.#attempt = next
  }

  #retry: (() => void) | null = null
  #attempt: Address | undefined

  // ---- inbound ------------------------------------------------------------

  // Native code calls one function shared by every connection, with the
  // connection as `this`: a socket costs no closure of its own for it.
  #listen (): void {
    (this.#conn as PumpedConnection)[kPump] = this
  }

  static readonly #dispatch = function (this: PumpedConnection, slab: Buffer | undefined): void {
    // Read out before anything can call native code again.
    const plain = results[Slot.Plain]
    const start = results[Slot.PlainStart]
    const data = slab === undefined ? undefined : start === 0 && plain === slab.length ? slab : slab.subarray(start, start + plain)
    this[kPump].#onEvent(results[Slot.Flags], data, results[Slot.Error], results[Slot.Errno], results[Slot.Host])
  } as FdPumpEvent

  static #adopted (pump: FdPump, spec: FdPumpSpec & { kind: 'adopted' }): void {
    pump.#onEvent(spec.flags, spec.plaintext, 0, 0, spec.host)
  }

  static #flush (pump: FdPump): void {
    pump.#flushNow()
  }

  static #idle (pump: FdPump): void {
    pump.#idleTimer = null
    if (pump.#idleMs > 0 && !pump.#owner.destroyed) pump.#owner.emit('timeout')
  }

  /** One native event per readable/writable turn of the socket. */
  #onEvent (flags: number, data: Buffer | undefined, error: number, errno: number, host: number): void {
    const owner = this.#owner
    if (owner.destroyed) return
    if (this.#paired) {
      // The relay's own events: the connection is over, or the plaintext
      // side ended and a peer that ignores our close_notify gets the grace.
      if ((flags & Flag.RelayDone) !== 0) owner.destroy()
      else if ((flags & Flag.PlainEnd) !== 0) owner[kCloseGrace]()
      return
    }
    if (this.#idleMs > 0 && this.#idleTimer !== null) this.#idleTimer.refresh()
    if (this.#connecting) {
      if ((flags & Flag.IoError) !== 0) {
        // This address refused or failed: the next one, if any.
        const retry = this.#retry
        this.#retry = null
        if (retry !== null) {
          retry()
          return
        }
        this.#connecting = false
        owner[kTransportError](errnoError(errno, 'connect', this.#attempt))
        return
      }
      if ((flags & Flag.Connected) !== 0) {
        this.#connecting = false
        // Socket options asked for while connecting apply now.
        const pending = this.#whenConnected
        this.#whenConnected = null
        for (const apply of pending ?? []) apply()
      }
    }
    if ((flags & Flag.Drained) !== 0) {
      this.#writeBlocked = false
      const waiters = this.#drainWaiters
      this.#drainWaiters = null
      for (const waiter of waiters ?? []) waiter()
      if (owner.destroyed) return
    }
    if ((flags & Flag.IoError) !== 0 && (flags & Flag.Error) === 0) {
      owner[kTransportError](errnoError(errno, 'read'))
      return
    }
    owner[kAfterCall](flags, error, host, data ?? null)
    if (owner.destroyed || owner[kFailed]) return
    if (owner[kReaderFull] && !owner[kPeerClosed]) {
      // Backpressure: native reading stops until resume().
      this.#readPaused = true
      this.#conn.readStop()
    }
    if ((flags & Flag.TransportEnd) !== 0) {
      this.#transportEnded = true
      // Both directions done: the TCP connection is over, as a net.Socket
      // would destroy itself. Otherwise, unless half-open, our side ends
      // now, or, while plaintext that came with the FIN still waits to be
      // read, once the reader had it (the Duplex ends itself after 'end').
      if (owner.writableFinished) owner.destroy()
      else if (!owner.allowHalfOpen && (owner.readableEnded || owner.readableLength === 0)) owner.end()
    }
  }

  /**
   * From now on the plaintext goes between the TLS connection and a
   * socketpair, relayed both ways in native code; returns the other end's
   * descriptor, for a net.Socket. `first`: plaintext already read. The
   * socket is destroyed once the relay is over, or PEER_CLOSE_GRACE_MS
   * after the plaintext side ended when the peer ignores our close_notify.
   */
  pair (first: Buffer | undefined): number {
    const fd = this.#conn.pairPlain(first)
    if (fd < 0) throw errnoError(-fd, 'socketpair')
    this.#paired = true
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    this.#idleTimer = null
    this.#idleMs = 0
    return fd
  }

  resume (): void {
    if (!this.#readPaused) return
    this.#readPaused = false
    this.#conn.readStart()
  }

  accept (config: NativeHandle | null, host: number): void {
    this.#continue(() => this.#conn.accept(config, host))
  }

  resumeSession (data: Buffer | null): void {
    this.#continue(() => this.#conn.resumeSession(data))
  }

  #continue (call: () => unknown): void {
    call()
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    this.#owner[kAfterCall](flags, error, results[Slot.Host], null)
  }

  /** Our FIN left; if the peer's came already, we are done. */
  finished (): void {
    if (this.#transportEnded && !this.#owner.destroyed) this.#owner.destroy()
  }

  // ---- outbound -------------------------------------------------------------

  /**
   * Encrypts in native code now and sends at the end of this event-loop
   * turn, so that the writes of one turn leave in one writev(); `now` sends
   * at once (with anything still queued before it), for a batch the stream
   * has already gathered.
   */
  write (chunks: ReadonlyArray<Buffer | string>, latin1: number, now: boolean): WriteState {
    if (this.#owner[kFailed]) return 'failed'
    // Native code gathers small chunks (and strings) into one record.
    const conn = this.#conn
    const r = chunks.length === 1
      ? conn.writeSocket(!now, latin1, chunks[0])
      : chunks.length === 2 ? conn.writeSocket(!now, latin1, chunks[0], chunks[1]) : this.#writeGroups(chunks, latin1, now)
    if (r < 0) return this.#writeFailed()
    if (this.#idleMs > 0 && this.#idleTimer !== null) this.#idleTimer.refresh()
    // 1: the kernel is full (sent at once because `now`, or because the
    // deferred data passed native code's encrypt-ahead limit).
    if (r === 1) this.#writeBlocked = true
    if (!now && !this.#flushScheduled) {
      this.#flushScheduled = true
      process.nextTick(FdPump.#flush, this)
    }
    return this.#writeBlocked ? 'full' : 'ok'
  }

  /**
   * The chunks go to native code as call arguments: a long batch (a cork
   * over many writes) goes in groups, in order, so that no call has more
   * arguments than the stack holds. 1 when any group left data pending.
   */
  #writeGroups (chunks: ReadonlyArray<Buffer | string>, latin1: number, now: boolean): number {
    let result = 0
    for (let i = 0; i < chunks.length; i += WRITE_GROUP) {
      // The mask covers the first 30 chunks only (later latin1 strings come as Buffers).
      const r = this.#conn.writeSocket(!now, i === 0 ? latin1 : 0, ...chunks.slice(i, i + WRITE_GROUP))
      if (r < 0) return r
      if (r === 1) result = 1
    }
    return result
  }

  #flushNow (): void {
    this.#flushScheduled = false
    if (this.#owner[kFailed] || this.#closed) return
    const r = this.#conn.flushSocket()
    if (r === 1) this.#writeBlocked = true
    else if (r < 0) this.#writeFailed()
  }

  #writeFailed (): WriteState {
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    if ((flags & Flag.IoError) !== 0 && error === 0) {
      this.#writeError = errnoError(results[Slot.Errno], 'write')
      this.#owner[kTransportError](this.#writeError)
    } else {
      const code = error !== 0 ? error : RUSTLS_RESULT_GENERAL
      this.#writeError = new RustlsError(code)
      this.#owner[kAfterCall](Flag.Error, code, -1, null)
    }
    return 'failed'
  }

  onceDrained (callback: () => void): void {
    (this.#drainWaiters ??= []).push(callback)
  }

  /** Native code flushes what rustls queues itself. */
  flushQueued (): void {}

  end (done: () => void): void {
    // close_notify, then the FIN once everything left (native).
    const r = !this.#owner[kFailed] && !this.#closed ? this.#conn.shutdownSocket() : 0
    if (r === 1) (this.#drainWaiters ??= []).push(done)
    else done()
  }

  endSoon (): void {
    if (this.#closed) return
    // The alert already left (native flush); native code sends the FIN.
    this.#conn.shutdownSocket()
    this.#owner[kCloseGrace]()
  }

  abort (): void {
    this.#close()
  }

  /** Stops polling and closes the descriptor; the TLS state stays. */
  #close (): void {
    if (this.#closed) return
    this.#closed = true
    this.#conn.closeSocket()
  }

  destroy (failed: boolean): void {
    // write() then destroy() (node's http does it for a 408): what the
    // kernel takes now still leaves, as net.Socket's own write would.
    if (this.#flushScheduled && !failed && !this.#closed) this.#conn.flushSocket()
    this.#close()
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    const waiters = this.#drainWaiters
    this.#drainWaiters = null
    for (const waiter of waiters ?? []) waiter()
  }

  // ---- the descriptor's facts -------------------------------------------------

  /**
   * On first use: native code read them once connected and keeps them after
   * the descriptor closed (it has none then), so logs still have them.
   */
  #addr (): Addresses {
    if (this.#addresses === undefined) {
      if (this.#connecting) return {}
      try {
        this.#addresses = this.#conn.addresses()
      } catch {
        this.#addresses = {}
      }
    }
    return this.#addresses
  }

  get remoteAddress (): string | undefined { return this.#addr().remoteAddress }
  get remotePort (): number | undefined { return this.#addr().remotePort }
  get remoteFamily (): string | undefined { return this.#addr().remoteFamily }
  get localAddress (): string | undefined { return this.#addr().localAddress }
  get localPort (): number | undefined { return this.#addr().localPort }
  // Native code keeps the counts after the descriptor closed.
  get bytesRead (): number { return this.#conn.counters().bytesRead }
  get bytesWritten (): number { return this.#conn.counters().bytesWritten }
  get connecting (): boolean { return this.#connecting }
  get readyState (): string { return this.#connecting ? 'opening' : this.#closed ? 'closed' : 'open' }

  address (): { address: string, family: string, port: number } | Record<string, never> {
    const a = this.#addr()
    if (a.localAddress === undefined) return {}
    return { address: a.localAddress, family: a.localFamily ?? 'IPv4', port: a.localPort ?? 0 }
  }

  /** The descriptor sees no JS traffic: the idle timer is ours. */
  setTimeout (ms: number): void {
    this.#idleMs = ms
    // node:http turns the idle timeout off and on again around every
    // request: a timer turned off stays armed (its firing does nothing) and
    // is re-armed, not made again, for the same length.
    if (ms === 0) return
    if (this.#idleTimer !== null && this.#timerMs === ms) {
      this.#idleTimer.refresh()
      return
    }
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer)
    this.#timerMs = ms
    this.#idleTimer = setTimeout(FdPump.#idle, ms, this)
    this.#idleTimer.unref()
  }

  #whenConnected: Array<() => void> | null = null

  setNoDelay (noDelay: boolean): void {
    if (this.#connecting) (this.#whenConnected ??= []).push(() => this.setNoDelay(noDelay))
    else if (!this.#closed) this.#conn.setSocketOption('noDelay', noDelay)
  }

  setKeepAlive (enable: boolean, initialDelay: number): void {
    if (this.#connecting) (this.#whenConnected ??= []).push(() => this.setKeepAlive(enable, initialDelay))
    else if (!this.#closed) this.#conn.setSocketOption('keepAlive', enable, initialDelay)
  }

  ref (): void { if (!this.#closed) this.#conn.setRef(true) }
  unref (): void { if (!this.#closed) this.#conn.setRef(false) }
}

/** A Node-style system error (code, errno, syscall) for a socket failure. */
function errnoError (errno: number, syscall: string, target?: Address): Error {
  const code = errno > 0 ? util.getSystemErrorName(-errno) : 'EIO'
  const where = target === undefined ? '' : ` ${'path' in target ? target.path : `${target.host}:${target.port}`}`
  const err = Object.assign(new Error(`${syscall} ${code}${where}`), { code, errno: -errno, syscall }) as unknown as Error & Record<string, unknown>
  if (target !== undefined && 'path' in target) err.address = target.path
  else if (target !== undefined) {
    err.address = target.host
    err.port = target.port
  }
  return err
}
