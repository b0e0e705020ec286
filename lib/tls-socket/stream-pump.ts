// StreamPump: a RustlsSocket over any Duplex transport (a net.Socket the
// application handed in, a STARTTLS upgrade, an in-memory pair): the
// analogue of Node's JSStreamSocket, an adapter beneath the one TLS engine.
//
// Inbound: one native call per transport chunk (feed). Outbound: one native
// call per record batch (write). Plaintext and ciphertext land in shared
// slabs and leave as subarrays, so the pump allocates no Buffer per TLS
// record. Results of a native call are read into locals before anything can
// call back into JS (push, emit, transport.write), and the owner's state is
// re-checked after each such call: user code may destroy or write from
// inside a 'data' or 'secure' handler.
import type net from 'node:net'
import type { Duplex } from 'node:stream'

import { RustlsError } from '../errors'
import { Flag, results, Slot, type NativeConnection, type NativeHandle } from '../native'
import { kAfterCall, kFailed, kIsServer, kPeerClosed, kTransportError, markedLatin1, PEER_CLOSE_GRACE_MS, type Pump, type PumpContext, type PumpOwner, type WriteState } from './pump'

const SLAB_SIZE = 128 * 1024
// A new slab is started when less than this is left: enough for a full
// transport read's plaintext in one call in the common case (the pump loops
// on PlainFull otherwise).
const MIN_PLAIN_ROOM = 32 * 1024
// The native write only encrypts a record when its ciphertext fits.
const MIN_CIPHER_ROOM = 16 * 1024 + 512
/** rustls_result GENERAL: rustls stopped taking data without a code. */
const RUSTLS_RESULT_GENERAL = 7112

let slab = Buffer.alloc(SLAB_SIZE)
let slabUsed = 0

// Zero-filled: rustls_connection_read requires initialized memory.
function slabWithRoom (room: number): void {
  if (SLAB_SIZE - slabUsed < room) {
    slab = Buffer.alloc(SLAB_SIZE)
    slabUsed = 0
  }
}

const EMPTY = Buffer.alloc(0)

const kPump = Symbol('pump')
type PumpedTransport = Duplex & { [kPump]: StreamPump }

export class StreamPump implements Pump {
  readonly #conn: NativeConnection
  readonly #owner: PumpOwner
  readonly #t: Duplex
  // Input kept while the reader applies backpressure or routing waits.
  #pending: Buffer | null = null
  #pendingOffset = 0
  #mustDrain = false
  #readPaused = false
  #waitingConfig = false
  #transportEnded = false
  #writeError: Error | null = null

  constructor (ctx: PumpContext, transport: Duplex) {
    this.#conn = ctx.conn
    this.#owner = ctx.owner
    this.#t = transport
  }

  get writeError (): Error | null { return this.#writeError }
  get transport (): Duplex { return this.#t }

  // The transport's listeners are functions shared by every connection,
  // called with the transport as `this`, which holds its pump.
  static readonly #listeners = {
    data (this: PumpedTransport, chunk: Buffer): void { this[kPump].#onData(chunk) },
    end (this: PumpedTransport): void { this[kPump].#onEnd() },
    error (this: PumpedTransport, err: Error): void { this[kPump].#owner[kTransportError](err) },
    close (this: PumpedTransport): void { this[kPump].#onClose() },
    timeout (this: PumpedTransport): void { this[kPump].#owner.emit('timeout') },
  }

  start (): void {
    const t = this.#t as PumpedTransport
    t[kPump] = this
    const on = StreamPump.#listeners
    t.on('error', on.error)
    t.on('close', on.close)
    t.on('data', on.data)
    t.on('end', on.end)
    t.on('timeout', on.timeout)
    // A wrapped socket may have been paused by its previous reader.
    if (typeof t.resume === 'function') t.resume()
    if (!this.#owner[kIsServer]) {
      const sock = this.#t as net.Socket
      if (sock.connecting === true) sock.once('connect', () => this.flushQueued())
      else this.flushQueued()
    }
  }

  // ---- inbound ----------------------------------------------------------

  #onData (chunk: Buffer): void {
    if (this.#pending !== null) {
      // Paused (backpressure or routing) while the transport had data in
      // flight: keep it behind what is already pending.
      this.#pending = Buffer.concat([this.#pending.subarray(this.#pendingOffset), chunk])
      this.#pendingOffset = 0
      return
    }
    this.#process(chunk, 0)
  }

  /** Runs input through the native connection until it is consumed or we must pause. */
  #process (input: Buffer | null, offset: number): void {
    const owner = this.#owner
    for (;;) {
      if (owner.destroyed || owner[kFailed]) return
      slabWithRoom(MIN_PLAIN_ROOM)
      const start = slabUsed
      const length = input === null ? 0 : input.length - offset
      const out = this.#conn.feed(input, offset, length, slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const consumed = results[Slot.Consumed]
      const plain = results[Slot.Plain]
      const error = results[Slot.Error]
      const host = results[Slot.Host]
      offset += consumed
      let data: Buffer | null = null
      if (plain > 0) {
        data = slab.subarray(start, start + plain)
        slabUsed += plain
      }
      const more = input !== null && offset < input.length
      if (out !== undefined) this.#sendRaw(out)
      if ((flags & (Flag.NeedConfig | Flag.NeedSession)) !== 0) {
        this.#holdInput(input, offset)
        this.#waitingConfig = true
        this.#pause()
        owner[kAfterCall](flags, error, host, data)
        return
      }
      const proceed = owner[kAfterCall](flags, error, host, data)
      // After close_notify the transport keeps flowing: its EOF ends it.
      if (owner.destroyed || owner[kFailed] || owner[kPeerClosed]) return
      if (!proceed) {
        // Paused by backpressure: keep the rest for resume().
        this.#holdInput(input, offset)
        this.#mustDrain = (flags & Flag.PlainFull) !== 0
        this.#readPaused = true
        this.#pause()
        return
      }
      if (!more && (flags & Flag.PlainFull) === 0) return
      if (input === null) input = EMPTY
    }
  }

  #holdInput (input: Buffer | null, offset: number): void {
    if (input !== null && offset < input.length) {
      this.#pending = input
      this.#pendingOffset = offset
    } else {
      this.#pending = EMPTY
      this.#pendingOffset = 0
    }
  }

  #resumeInput (): void {
    const pending = this.#pending
    const offset = this.#pendingOffset
    this.#pending = null
    this.#pendingOffset = 0
    this.#readPaused = false
    if (pending !== null && (pending.length > offset || this.#mustDrain)) {
      this.#mustDrain = false
      this.#process(pending, offset)
    }
    if (this.#pending === null && !this.#waitingConfig && !this.#owner.destroyed) {
      if (this.#transportEnded) this.#process(null, 0)
      else this.#transportResume()
    }
  }

  resume (): void {
    if (!this.#readPaused) return
    this.#resumeInput()
  }

  accept (config: NativeHandle | null, host: number): void {
    this.#continue(() => this.#conn.accept(config, host))
  }

  resumeSession (data: Buffer | null): void {
    this.#continue(() => this.#conn.resumeSession(data))
  }

  /** After a pause at the hello (routing, a session): the handshake goes on. */
  #continue (call: () => Buffer | undefined): void {
    this.#waitingConfig = false
    const out = call()
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    const routed = results[Slot.Host]
    if (out !== undefined) this.#sendRaw(out)
    this.#owner[kAfterCall](flags, error, routed, null)
    if (!this.#owner.destroyed && !this.#owner[kFailed]) this.#resumeInput()
  }

  #onEnd (): void {
    this.#transportEnded = true
    if (this.#pending !== null) return
    // Tells rustls about the EOF: after close_notify this is the orderly
    // end; otherwise rustls reports UNEXPECTED_EOF (a truncation attack
    // cannot pass as a clean end, RFC 8446 §6.1).
    if (this.#owner[kPeerClosed]) {
      if (!this.#owner.allowHalfOpen) this.#owner.end()
      return
    }
    this.#process(null, 0)
  }

  #onClose (): void {
    const owner = this.#owner
    if (owner.destroyed) return
    if (!owner[kPeerClosed] && !owner[kFailed]) {
      // Closed without an EOF event (reset): same as a truncated stream.
      this.#transportEnded = true
      this.#process(null, 0)
    }
    if (!owner.destroyed) owner.destroy()
  }

  #pause (): void {
    const t = this.#t
    if (typeof t.pause === 'function') t.pause()
  }

  #transportResume (): void {
    const t = this.#t
    if (typeof t.resume === 'function' && !t.destroyed) t.resume()
  }

  // ---- outbound ---------------------------------------------------------

  write (chunks: ReadonlyArray<Buffer | string>, latin1: number, _now: boolean): WriteState {
    return this.#writeBuffers(asBuffers(chunks, latin1))
  }

  #writeBuffers (chunks: readonly Buffer[]): WriteState {
    const t = this.#t as net.Socket
    const cork = chunks.length > 1 && typeof t.cork === 'function'
    if (cork) t.cork()
    let state: WriteState = 'ok'
    for (const chunk of chunks) {
      const s = this.#encrypt(chunk)
      if (s === 'failed') {
        state = s
        break
      }
      if (s === 'full') state = 'full'
    }
    if (cork) t.uncork()
    return state
  }

  onceDrained (callback: () => void): void {
    this.#t.once('drain', callback)
  }

  /**
   * Encrypts all of `chunk` into records for the transport. 'full' is the
   * transport's backpressure (wait for 'drain'), not a failure: every byte
   * was encrypted and queued either way.
   */
  #encrypt (chunk: Buffer): WriteState {
    const conn = this.#conn
    if (this.#owner[kFailed]) return 'failed'
    let offset = 0
    let state: WriteState = 'ok'
    while (offset < chunk.length) {
      slabWithRoom(MIN_CIPHER_ROOM)
      const start = slabUsed
      conn.write(chunk, offset, chunk.length - offset, slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const consumed = results[Slot.Consumed]
      const cipher = results[Slot.Cipher]
      const error = results[Slot.Error]
      offset += consumed
      if (cipher > 0) {
        slabUsed += cipher
        state = this.#sendRaw(slab.subarray(start, start + cipher)) ? 'ok' : 'full'
      }
      if ((flags & Flag.Error) !== 0 || consumed === 0) {
        // A slab with room for a whole record always takes one: no progress
        // means the connection can no longer send.
        const code = error !== 0 ? error : RUSTLS_RESULT_GENERAL
        this.#writeError = new RustlsError(code)
        this.#owner[kAfterCall](Flag.Error, code, -1, null)
        return 'failed'
      }
    }
    return state
  }

  /** Drains ciphertext rustls still holds (handshake start, close_notify). */
  flushQueued (): void {
    const conn = this.#conn
    for (;;) {
      slabWithRoom(MIN_CIPHER_ROOM)
      const start = slabUsed
      conn.flush(slab, start, SLAB_SIZE - start)
      const flags = results[Slot.Flags]
      const cipher = results[Slot.Cipher]
      if (cipher > 0) {
        slabUsed += cipher
        this.#sendRaw(slab.subarray(start, start + cipher))
      }
      if ((flags & Flag.WantsWrite) === 0 || cipher === 0) return
    }
  }

  #sendRaw (data: Buffer): boolean {
    const t = this.#t
    if (t.destroyed || !t.writable) return true
    return t.write(data)
  }

  end (done: () => void): void {
    if (!this.#owner[kFailed]) {
      // close_notify first, then the transport's FIN (RFC 8446 §6.1); native
      // code sends it only after a completed handshake.
      this.#conn.sendCloseNotify()
      this.flushQueued()
    }
    const t = this.#t
    if (!t.destroyed && t.writable) t.end()
    done()
  }

  endSoon (): void {
    const t = this.#t
    if (t.destroyed) return
    if (t.writable) t.end()
    // The transport outlives the socket here: a peer that never closes its
    // side gets the same grace as the socket's (kCloseGrace).
    const timer = setTimeout(() => t.destroy(), PEER_CLOSE_GRACE_MS)
    timer.unref()
    t.once('close', () => clearTimeout(timer))
  }

  abort (): void {
    this.#t.destroy()
  }

  destroy (failed: boolean): void {
    const t = this.#t
    const on = StreamPump.#listeners
    t.removeListener('data', on.data)
    t.removeListener('end', on.end)
    t.removeListener('timeout', on.timeout)
    if (!t.destroyed) {
      // Give a queued alert or close_notify the chance to leave first.
      if (t.writableLength > 0 && !failed) t.end()
      else if (!failed) t.destroy()
    }
  }

  // ---- the transport's facts ---------------------------------------------

  get remoteAddress (): string | undefined { return (this.#t as net.Socket).remoteAddress }
  get remotePort (): number | undefined { return (this.#t as net.Socket).remotePort }
  get remoteFamily (): string | undefined { return (this.#t as net.Socket).remoteFamily }
  get localAddress (): string | undefined { return (this.#t as net.Socket).localAddress }
  get localPort (): number | undefined { return (this.#t as net.Socket).localPort }
  get bytesRead (): number { return (this.#t as net.Socket).bytesRead ?? 0 }
  get bytesWritten (): number { return (this.#t as net.Socket).bytesWritten ?? 0 }
  get connecting (): boolean { return (this.#t as net.Socket).connecting === true }
  get readyState (): string { return (this.#t as net.Socket).readyState ?? 'open' }

  address (): { address: string, family: string, port: number } | Record<string, never> {
    const t = this.#t as net.Socket
    return typeof t.address === 'function' ? t.address() as { address: string, family: string, port: number } : {}
  }

  setTimeout (ms: number): void {
    const t = this.#t as net.Socket
    if (typeof t.setTimeout === 'function') t.setTimeout(ms)
  }

  setNoDelay (noDelay: boolean): void {
    const t = this.#t as net.Socket
    if (typeof t.setNoDelay === 'function') t.setNoDelay(noDelay)
  }

  setKeepAlive (enable: boolean, initialDelay: number): void {
    const t = this.#t as net.Socket
    if (typeof t.setKeepAlive === 'function') t.setKeepAlive(enable, initialDelay)
  }

  ref (): void {
    const t = this.#t as net.Socket
    if (typeof t.ref === 'function') t.ref()
  }

  unref (): void {
    const t = this.#t as net.Socket
    if (typeof t.unref === 'function') t.unref()
  }
}

// Small chunks of one batch are joined (one copy) so that they share records.
const COALESCE_LIMIT = 16 * 1024

/** A batch as Buffers, small ones joined into one. */
function asBuffers (chunks: ReadonlyArray<Buffer | string>, latin1: number): Buffer[] {
  const list = new Array<Buffer>(chunks.length)
  let total = 0
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]
    list[i] = typeof chunk === 'string' ? Buffer.from(chunk, markedLatin1(latin1, i) ? 'latin1' : 'utf8') : chunk
    total += list[i].length
  }
  return list.length > 1 && total <= COALESCE_LIMIT ? [Buffer.concat(list, total)] : list
}
