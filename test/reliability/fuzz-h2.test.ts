// Fuzzing the native HTTP/2 front through the real socket path: mutated
// frame sequences (from valid ones: requests with and without bodies,
// trailers, padding, priorities, CONTINUATION, PING, SETTINGS, WINDOW_UPDATE,
// RST_STREAM, GOAWAY), each on its own TLS connection (ALPN h2) to a
// terminator with an HTTP/1.1 backend. The terminator must never crash or
// hang: afterwards it still serves, and it stops cleanly with no native
// handle left. `npm test` sends a few thousand connections,
// `npm run test:stress` 100,000 (RUSTLS_NODE_H2_FUZZ_CONNECTIONS overrides;
// RUSTLS_NODE_FUZZ_SEED replays a run).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http2 from 'node:http2'
import tls from 'node:tls'
import { test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { httpEcho } from '../terminator/backends'
import { serveConfig, stopClean } from '../terminator/harness'
import {
  Flag, frame, FrameType, headers, indexedLiteral, indexed, literal, ping, PREFACE, requestBlock, rst, settings, SETTINGS_ACK,
} from './h2-frames'
import { recordFigures, STRESS } from './scale'

const f = fixtures()
const CONNECTIONS = Number(process.env.RUSTLS_NODE_H2_FUZZ_CONNECTIONS ?? (STRESS ? 100_000 : 3_000))
const PARALLEL = 24

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function u32 (n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n >>> 0)
  return b
}

/** Valid client frame sequences (after the preface) the mutations start from. */
function seeds (authority: string): Buffer[] {
  const get = requestBlock('/fuzz', authority)
  const post = requestBlock('/sha256', authority, 'POST', [literal('content-type', 'application/octet-stream')])
  const padded = Buffer.concat([Buffer.from([4]), get, Buffer.alloc(4)])
  const prio = Buffer.concat([u32(0), Buffer.from([15]), get])
  const trailers = Buffer.concat([literal('x-trailer', 'yes')])
  const dyn = requestBlock('/dyn', authority, 'GET', [indexedLiteral('x-dyn', 'value'), indexed(62)])
  return [
    Buffer.concat([settings([[4, 65535], [3, 100]]), frame(FrameType.WindowUpdate, 0, 0, u32(1 << 20)), headers(1, get, true), ping(), SETTINGS_ACK]),
    Buffer.concat([settings(), headers(1, post, false), frame(FrameType.Data, 0, 1, Buffer.from('hello ')), frame(FrameType.Data, Flag.EndStream, 1, Buffer.from('world')), rst(1)]),
    Buffer.concat([settings(), headers(1, get.subarray(0, 5), true, false), frame(FrameType.Continuation, Flag.EndHeaders, 1, get.subarray(5)), frame(FrameType.Priority, 0, 3, Buffer.from([0, 0, 0, 1, 10]))]),
    Buffer.concat([settings(), frame(FrameType.Headers, Flag.EndStream | Flag.EndHeaders | Flag.Padded, 1, padded), frame(FrameType.Headers, Flag.EndHeaders | Flag.Priority, 3, prio), frame(FrameType.Data, Flag.EndStream | Flag.Padded, 3, Buffer.from([2, 0x61, 0, 0]))]),
    Buffer.concat([settings(), headers(1, post, false), frame(FrameType.Data, 0, 1, crypto.randomBytes(1000)), headers(1, trailers, true)]),
    Buffer.concat([settings(), headers(1, dyn, true), headers(3, dyn, true), frame(FrameType.WindowUpdate, 0, 1, u32(100)), frame(FrameType.Goaway, 0, 0, Buffer.concat([u32(0), u32(0)]))]),
  ]
}

function mutate (rand: () => number, base: Buffer, all: Buffer[]): Buffer {
  let b = Buffer.from(base)
  const n = 1 + Math.floor(rand() * 4)
  const at = (len: number): number => Math.floor(rand() * Math.max(1, len))
  for (let i = 0; i < n; i++) {
    switch (Math.floor(rand() * 9)) {
      case 0: { // flip a bit
        if (b.length > 0) b[at(b.length)] ^= 1 << Math.floor(rand() * 8)
        break
      }
      case 1: { // a random byte
        if (b.length > 0) b[at(b.length)] = Math.floor(rand() * 256)
        break
      }
      case 2: { // insert random bytes
        const p = at(b.length + 1)
        b = Buffer.concat([b.subarray(0, p), crypto.randomBytes(1 + Math.floor(rand() * 16)), b.subarray(p)])
        break
      }
      case 3: { // delete a range
        const p = at(b.length)
        b = Buffer.concat([b.subarray(0, p), b.subarray(p + 1 + Math.floor(rand() * 16))])
        break
      }
      case 4: { // duplicate a range (repeated frames)
        const p = at(b.length)
        const q = Math.min(b.length, p + 1 + Math.floor(rand() * 64))
        b = Buffer.concat([b.subarray(0, q), b.subarray(p, q), b.subarray(q)])
        break
      }
      case 5: { // truncate
        b = b.subarray(0, at(b.length + 1))
        break
      }
      case 6: { // splice another seed in
        const other = all[at(all.length)]
        const p = at(b.length + 1)
        b = Buffer.concat([b.subarray(0, p), other.subarray(at(other.length))])
        break
      }
      case 7: { // a frame header's length, type, flags or stream id
        const p = at(Math.max(1, b.length - 9))
        const field = Math.floor(rand() * 4)
        if (b.length >= p + 9) {
          if (field === 0) b.writeUIntBE(Math.floor(rand() * 0x20000), p, 3)
          else if (field === 1) b[p + 3] = Math.floor(rand() * 12)
          else if (field === 2) b[p + 4] = Math.floor(rand() * 256)
          else b.writeUInt32BE(Math.floor(rand() * 16), p + 5)
        }
        break
      }
      default: { // an interesting integer somewhere
        const values = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 16384, 16385, 65535, 65536]
        const p = at(Math.max(1, b.length - 4))
        if (b.length >= p + 4) b.writeUInt32BE(values[at(values.length)] >>> 0, p)
        break
      }
    }
  }
  return b
}

/** One connection: handshake (resuming), the input in a few writes, then close after a short wait. */
function attack (port: number, input: Buffer, rand: () => number, session: { value: Buffer | undefined }): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['h2'], session: session.value })
    socket.on('session', (s: Buffer) => { session.value = s })
    socket.on('error', () => {})
    socket.on('data', () => {})
    const timer = setTimeout(() => socket.destroy(), 150 + Math.floor(rand() * 150))
    socket.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.once('secureConnect', () => {
      const pieces = 1 + Math.floor(rand() * 3)
      const size = Math.ceil(input.length / pieces)
      for (let off = 0; off < input.length; off += size) socket.write(input.subarray(off, off + size))
      if (rand() < 0.3) socket.end()
    })
  })
}

test(`${CONNECTIONS} mutated HTTP/2 connections through TLS: no crash, still serving, clean stop`, { timeout: STRESS ? 1_800_000 : 300_000 }, async () => {
  const seed = process.env.RUSTLS_NODE_FUZZ_SEED !== undefined ? Number(process.env.RUSTLS_NODE_FUZZ_SEED) : crypto.randomInt(2 ** 31)
  const rand = prng(seed)
  const echo = await httpEcho()
  const started = Date.now()
  const { t } = await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http', timeout: '2s' } }],
  }).catch(async (err: Error) => {
    await echo.close()
    throw err
  })
  try {
    // t.port parses the log so far: read it once.
    const port = t.port
    const authority = `localhost:${port}`
    const all = seeds(authority)
    const session = { value: undefined as Buffer | undefined }
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < CONNECTIONS) {
        next++
        const base = all[Math.floor(rand() * all.length)]
        // Mostly behind an intact preface, so that the frames get parsed.
        const body = mutate(rand, base, all)
        const input = rand() < 0.95 ? Buffer.concat([PREFACE, body]) : mutate(rand, Buffer.concat([PREFACE, base]), all)
        await attack(port, input, rand, session)
        assert.equal(t.proc.exitCode, null, `the terminator exited (seed ${seed}) after connection ${next}:\n${t.stderr()}`)
      }
    }
    await Promise.all(Array.from({ length: PARALLEL }, worker))
    // Still serving HTTP/2.
    const client = http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername: 'localhost' })
    const status = await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':path': '/after-fuzz', ':authority': authority })
      req.on('response', (h) => resolve(Number(h[':status'])))
      req.on('error', reject)
      req.resume()
    })
    client.close()
    assert.equal(status, 200)
    recordFigures('fuzz-h2', { connections: CONNECTIONS, seed, seconds: Math.round((Date.now() - started) / 1000) })
  } finally {
    await stopClean(t)
    await echo.close()
  }
})
