// Small helpers shared by the integration tests: start a rustls server on
// loopback, read a stream to its end, make deterministic payloads.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'

import { createServer, liveHandles, type Server, type ServerOptions } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'

export interface Running {
  server: Server
  port: number
  /** Errors the server reported through 'tlsClientError', in order. */
  clientErrors: Array<Error & { code?: string }>
  close: () => Promise<void>
}

/**
 * The suite runs twice, on paths the tests choose explicitly (never an
 * environment variable inside lib/): by default library servers run on the
 * native listener and clients connect natively (the fd pump); with
 * RUSTLS_NODE_TEST_PUMP=stream (test/helpers/stream-mode.ts, preloaded by
 * scripts/test.js) servers take the net.Server path and clients run over a
 * net.Socket (the stream pump).
 */
export const STREAM_PUMP = process.env.RUSTLS_NODE_TEST_PUMP === 'stream'

/** Starts createServer(options) on 127.0.0.1:0; `onSecure` gets each connection. */
export async function startServer (options: ServerOptions, onSecure?: (socket: RustlsSocket) => void): Promise<Running> {
  const server = createServer(options, onSecure)
  const clientErrors: Running['clientErrors'] = []
  server.on('tlsClientError', (err: Error) => clientErrors.push(err))
  const sockets = new Set<RustlsSocket>()
  server.on('secureConnection', (s: RustlsSocket) => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  })
  // Raw connections too (net.Server path): one still in its handshake
  // would keep close() waiting. A 'connection' listener chooses that path,
  // so it is added only where the test or the mode chose it already.
  const raw = new Set<Duplex>()
  if (options.nativeListener === false || (STREAM_PUMP && options.nativeListener === undefined)) {
    server.on('connection', (s: Duplex) => {
      raw.add(s)
      s.once('close', () => raw.delete(s))
    })
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    server,
    port,
    clientErrors,
    close: async () => {
      for (const s of sockets) s.destroy()
      for (const s of raw) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Everything a readable side delivers until 'end' (rejects on 'error'). */
export function readAll (stream: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.once('end', () => resolve(Buffer.concat(chunks)))
    stream.once('error', reject)
  })
}

/** Resolves with the first 'error' an emitter reports (rejects after ms). */
export function nextError (emitter: NodeJS.EventEmitter, event = 'error', ms = 10_000): Promise<Error & { code?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms)
    emitter.once(event, (err: Error) => {
      clearTimeout(timer)
      resolve(err)
    })
  })
}

/** Deterministic pseudo-random bytes (fast, seeded). */
export function payload (size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size)
  let block = crypto.createHash('sha256').update(String(seed)).digest()
  for (let i = 0; i < size; i += 32) {
    block.copy(out, i, 0, Math.min(32, size - i))
    block = crypto.createHash('sha256').update(block).digest()
  }
  return out
}

export function sha256 (data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex')
}

/** Asserts that no native handle is left open (every test file ends with it). */
export function assertNoLiveHandles (): void {
  assert.deepEqual(liveHandles(), {
    certifiedKeys: 0, serverConfigs: 0, clientConfigs: 0, sessionCaches: 0, ticketers: 0, hostRouters: 0, connections: 0, listeners: 0, backendTargets: 0,
  })
}

/**
 * assertNoLiveHandles() once every count reached zero, or after `ms`:
 * sockets and servers release their native handles on close events.
 */
export async function waitNoLiveHandles (ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (Object.values(liveHandles()).some((n) => n !== 0) && Date.now() < deadline) await settle(20)
  assertNoLiveHandles()
}

/** Waits until the event loop had a chance to run close handlers. */
export function settle (ms = 50): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * `rounds` rounds of `width` concurrent `request(round, i)` calls, each of
 * which must open one new connection (recorded by the server in
 * `connections`); returns how many of each round's connections resumed.
 */
export async function resumedPerRound (connections: ReadonlyArray<{ resumed: boolean }>,
  request: (round: number, i: number) => Promise<unknown>, rounds = 3, width = 8): Promise<number[]> {
  const out: number[] = []
  for (let round = 0; round < rounds; round++) {
    const before = connections.length
    await Promise.all(Array.from({ length: width }, async (_, i) => await request(round, i)))
    assert.equal(connections.length, before + width, 'one new connection per request')
    out.push(connections.slice(before).filter((c) => c.resumed).length)
  }
  return out
}
