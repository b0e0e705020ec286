// What moves a RustlsSocket's bytes: one pump, chosen when the socket is
// made, never switched.
//
// - FdPump (fd-pump.ts): the native connection owns a socket descriptor (one
//   the native listener accepted, or one it connected itself) and reads,
//   decrypts, encrypts and writes in native code; JS hears one event per
//   readable turn and makes one call per write batch.
// - StreamPump (stream-pump.ts): the transport is any Duplex (a net.Socket
//   the application handed in, a STARTTLS upgrade, an in-memory pair); the
//   native connection is fed once per transport chunk and writes into slabs
//   that go to the transport's write(). The analogue of Node's
//   JSStreamSocket: an adapter, not a second engine.
//
// The socket keeps the TLS state machine (handshake, errors, node:tls
// surface); a pump keeps the transport and the flow of bytes.
import type { Duplex } from 'node:stream'

import type { NativeConnection, NativeHandle } from '../native'

export type WriteState = 'ok' | 'full' | 'failed'

/**
 * A peer that ignores our close_notify and FIN must not keep a connection
 * (or a closing server): it is destroyed after this many milliseconds.
 */
export const PEER_CLOSE_GRACE_MS = 2000

/**
 * Chunks of a batch that the latin1 mask can mark (bit i for chunks[i]);
 * a latin1 string further on goes to the pump as a Buffer.
 */
export const LATIN1_BITS = 30

/** Whether `mask` marks chunks[i] as a latin1 string. */
export function markedLatin1 (mask: number, i: number): boolean {
  return i < LATIN1_BITS && (mask & (1 << i)) !== 0
}

// What a pump reads of its socket and tells it, as symbol-keyed members of
// the socket's prototype: nothing is allocated per connection for it, and
// nothing of it shows on the socket's public surface.
export const kIsServer = Symbol('isServer')
export const kFailed = Symbol('failed')
export const kPeerClosed = Symbol('peerClosed')
export const kReaderFull = Symbol('readerFull')
export const kAfterCall = Symbol('afterCall')
export const kTransportError = Symbol('transportError')
export const kCloseGrace = Symbol('closeGrace')

export interface PumpOwner {
  readonly destroyed: boolean
  readonly allowHalfOpen: boolean
  readonly writableFinished: boolean
  readonly readableEnded: boolean
  readonly readableLength: number
  readonly [kIsServer]: boolean
  /** The connection failed (TLS error, handshake timeout, transport error). */
  readonly [kFailed]: boolean
  /** close_notify arrived (and the readable side ended). */
  readonly [kPeerClosed]: boolean
  /** The reader refused the last plaintext (push() returned false). */
  readonly [kReaderFull]: boolean
  /**
   * Acts on one native call's results in protocol order (routing, handshake,
   * plaintext, errors, close_notify); false when the reader wants no more
   * input now. Ciphertext the call produced was sent before.
   */
  [kAfterCall](flags: number, error: number, host: number, data: Buffer | null): boolean
  [kTransportError](err: Error): void
  /**
   * Our close_notify and FIN are on their way: the socket is destroyed
   * PEER_CLOSE_GRACE_MS from now unless the peer closes first.
   */
  [kCloseGrace](): void
  /** Idle timeout of the transport: emits 'timeout'. */
  emit(event: 'timeout'): boolean
  end(): unknown
  destroy(): unknown
}

export interface Pump {
  /** Starts moving bytes; called once by the socket's constructor. */
  start(): void
  /**
   * Encrypts and sends `chunks`: Buffers and strings, a string in latin1
   * when its bit in `latin1` is set (bit i for chunks[i]), else in utf8;
   * `now`: a gathered batch, not to wait for the turn's end.
   */
  write(chunks: ReadonlyArray<Buffer | string>, latin1: number, now: boolean): WriteState
  /** Error of the last 'failed' write, if the pump knows it. */
  readonly writeError: Error | null
  /** Runs `callback` once what a 'full' write queued has left. */
  onceDrained(callback: () => void): void
  /** Ciphertext rustls still holds after a native call (WantsWrite). */
  flushQueued(): void
  /** Deferred routing: continue with `config` (null refuses the name). */
  accept(config: NativeHandle | null, host: number): void
  /** A session lookup answered (null: none): the handshake goes on. */
  resumeSession(data: Buffer | null): void
  /** The reader wants plaintext again (after backpressure or accept). */
  resume(): void
  /** close_notify, then the FIN once everything left; `done` when it did. */
  end(done: () => void): void
  /** After a failure: what is queued (an alert) leaves, then the FIN; the transport goes soon after. */
  endSoon(): void
  /** The writable side finished (our close_notify and FIN left). */
  finished?(): void
  /** Drops the transport at once (handshake timeout): nothing more is sent. */
  abort(): void
  /** The socket is being destroyed; `failed`: no alert or close_notify owed. */
  destroy(failed: boolean): void

  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly remoteFamily: string | undefined
  readonly localAddress: string | undefined
  readonly localPort: number | undefined
  readonly bytesRead: number
  readonly bytesWritten: number
  readonly connecting: boolean
  readonly readyState: string
  /** The transport a stream pump runs over (undefined for the fd pump). */
  readonly transport: Duplex | undefined
  address(): { address: string, family: string, port: number } | Record<string, never>
  setTimeout(ms: number): void
  setNoDelay(noDelay: boolean): void
  setKeepAlive(enable: boolean, initialDelay: number): void
  ref(): void
  unref(): void
}

/** The native connection and its owner, as every pump gets them. */
export interface PumpContext {
  conn: NativeConnection
  owner: PumpOwner
}
