// Temporary workarounds for library defects the terminator hits; each one
// names its reproduction in test/terminator/library-gaps.test.ts and goes
// away when the library is fixed.
import type { Duplex } from 'node:stream'

/**
 * lib/socket.ts: RustlsSocket._writev stops encrypting at the first chunk
 * the transport answers with backpressure (`if (!this.#encrypt(...)) break`)
 * yet completes the whole batch, so the chunks in between are lost (e.g. 4
 * corked 20 KiB writes deliver 40 KiB). HTTP/2 (JSStreamSocket writes
 * vectored) loses frames on any response above 16 KiB; pipes lose data
 * whenever writes queue up behind a full transport.
 *
 * Without an own `_writev`, stream.Writable hands buffered chunks to
 * `_write` one at a time (it calls `_writev` only when the stream has one),
 * which encrypts every byte. Only the batching optimization is lost.
 */
export function avoidVectoredWrites (socket: Duplex): void {
  (socket as unknown as { _writev: undefined })._writev = undefined
}
