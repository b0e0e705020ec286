// Child process used by leaks.test.ts and slow-clients.test.ts: a library
// server (createServer, socket mode, as applications run it) in its own
// process, so that its RSS, descriptors and native handles can be measured
// without the test's clients in the same heap. Started with fork() and
// --expose-gc; options come as JSON in argv[2]. Each accepted connection
// answers a 1 KiB request with 1 KiB and ends (close_notify, FIN); a
// connection that sends nothing stays until the client closes it.
//
// IPC: {cmd:'stats'} → Stats; {cmd:'gc'} → Stats after full collections;
// {cmd:'close'} → Stats after server.close() and every socket released.
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'

import { createServer, liveHandles, type RustlsSocket } from '../../lib/index'
import { fixtures } from '../helpers/certs'

export interface LoadServerOptions {
  handshakeTimeout?: number
  /**
   * Session cache entries (default 256): small, so that the warm-up fills
   * it and the baseline includes it; a bounded cache growing to its size
   * is not a leak.
   */
  sessionCache?: number
}

export interface Stats {
  rss: number
  heapUsed: number
  external: number
  fds: number
  live: ReturnType<typeof liveHandles>
  /** TCP connections the server holds (handshaking or established). */
  open: number
  secure: number
  /** tlsClientError codes seen so far. */
  clientErrors: Record<string, number>
  /** Bytes the server wrote to clients that never completed a handshake. */
  bytesToFailed: number
}

export type Request = { cmd: 'stats' | 'gc' | 'close', id: number }
export type Reply = { id: number, stats: Stats } | { ready: true, port: number }

const options = JSON.parse(process.argv[2] ?? '{}') as LoadServerOptions
const f = fixtures()
// Transports from 'connection' (or, on the native listener, which has no
// such event, the TLS sockets).
const open = new Set<{ destroy: () => void }>()
let secure = 0
let bytesToFailed = 0
const clientErrors: Record<string, number> = {}
const REQUEST = 1024

const server = createServer({
  cert: f.localhostEcdsa.chain,
  key: f.localhostEcdsa.key,
  handshakeTimeout: options.handshakeTimeout ?? 10_000,
  sessionCache: options.sessionCache ?? 256,
}, (socket: RustlsSocket) => {
  secure++
  if (server.nativeCounters !== undefined) {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
  }
  let got = 0
  socket.on('error', () => {})
  socket.on('data', (d: Buffer) => {
    got += d.length
    if (got === REQUEST) socket.end(Buffer.alloc(REQUEST, 0x5a))
  })
})
server.on('connection', (s: import('node:net').Socket) => {
  open.add(s)
  s.once('close', () => open.delete(s))
})
server.on('tlsClientError', (err: Error & { code?: string }, socket: RustlsSocket) => {
  const code = err.code ?? 'UNKNOWN'
  clientErrors[code] = (clientErrors[code] ?? 0) + 1
  bytesToFailed += socket.bytesWritten
})

function stats (): Stats {
  const m = process.memoryUsage()
  return {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    fds: fs.readdirSync('/proc/self/fd').length,
    live: liveHandles(),
    // The native listener also counts connections still in their handshake.
    open: server.nativeCounters?.live ?? open.size,
    secure,
    clientErrors: { ...clientErrors },
    bytesToFailed,
  }
}

const collect = globalThis.gc ?? ((): void => {})

function settle (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

process.on('message', (m: Request) => {
  void (async () => {
    if (m.cmd === 'gc') {
      // Several passes with turns of the loop between them: finalizers of
      // one pass release what the next can collect (socket → connection).
      for (let i = 0; i < 4; i++) {
        collect()
        await settle(25)
      }
    } else if (m.cmd === 'close') {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        for (const s of open) s.destroy()
      })
      await settle(50)
      collect()
    }
    process.send?.({ id: m.id, stats: stats() } satisfies Reply)
    if (m.cmd === 'close') process.disconnect()
  })()
})

server.listen(0, '127.0.0.1', () => {
  process.send?.({ ready: true, port: (server.address() as AddressInfo).port } satisfies Reply)
})
