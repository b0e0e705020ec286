// HTTP/2 abuse against the native front (issue 18 part 5): hostile clients
// written frame by frame. Each attack ends its own connection only — with
// GOAWAY ENHANCE_YOUR_CALM where the connection can still carry it — is
// logged with its reason and counted in rustls_node_http2_abuse_total,
// while a well-behaved session on another connection keeps being served.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http2 from 'node:http2'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from '../terminator/backends'
import { serveConfig, stopClean, type TerminatorProcess } from '../terminator/harness'
import {
  ENHANCE_YOUR_CALM, Flag, frame, FrameType, headers, indexed, indexedLiteral, literal, ping, rawH2, type RawH2, requestBlock, rst,
  settings, SETTINGS_ACK, SETTINGS_INITIAL_WINDOW_SIZE,
} from './h2-frames'

const f = fixtures()
const MAX_STREAMS = 20
let echo: HttpEcho
let t: TerminatorProcess
let metricsPort: number
let bystander: http2.ClientHttp2Session
let port: number | undefined

before(async () => {
  echo = await httpEcho()
  metricsPort = await freePort()
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    http2: { maxConcurrentStreams: MAX_STREAMS, sendTimeout: '1s' },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
      backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' },
    }],
  })).t
  bystander = http2.connect(`https://127.0.0.1:${t.port}`, { ca: f.ca, servername: 'localhost' })
})

after(async () => {
  bystander.close()
  await stopClean(t)
  await echo.close()
})

function authority (): string {
  // t.port parses the log so far: read once.
  port ??= t.port
  return `localhost:${port}`
}

function attacker (settingsEntries: Array<[number, number]> = []): Promise<RawH2> {
  authority()
  return rawH2({ port: port as number, servername: 'localhost', ca: f.ca, settings: settingsEntries })
}

async function abuseCount (reason: string): Promise<number> {
  const r = await curl(['-s', `http://127.0.0.1:${metricsPort}/metrics`])
  const line = r.stdout.split('\n').find((l) => l.startsWith(`rustls_node_http2_abuse_total{reason="${reason}"}`))
  return line === undefined ? 0 : Number(line.split(' ')[1])
}

async function closedWithin (c: RawH2, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([c.closed, new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms) })])
  clearTimeout(timer)
}

/** The attack ended that connection for `reason`: counted, logged; the bystander is still served. */
async function assertAbuse (c: RawH2, reason: string, before: number, goaway = true): Promise<void> {
  await closedWithin(c, 10_000)
  if (goaway) assert.equal(c.goaway(), ENHANCE_YOUR_CALM, `GOAWAY code ${String(c.goaway())}`)
  await waitFor(async () => await abuseCount(reason) === before + 1, 5_000, `rustls_node_http2_abuse_total{reason="${reason}"} + 1`)
  const line = await t.waitForLog((l) => l.msg === 'HTTP/2 connection closed: the client misbehaved' && l.reason === reason, `the ${reason} log line`)
  assert.equal(line.remoteAddress, '127.0.0.1')
  const status = await new Promise<number>((resolve, reject) => {
    const req = bystander.request({ ':path': `/bystander/${reason}`, ':authority': authority() })
    req.on('response', (h) => resolve(Number(h[':status'])))
    req.on('error', reject)
    req.resume()
  })
  assert.equal(status, 200)
}

test('rapid reset (CVE-2023-44487): streams opened and cancelled at once, past the budget', async () => {
  const before = await abuseCount('rapid_reset')
  const c = await attacker()
  const burst: Buffer[] = []
  for (let i = 0; i < 1200; i++) {
    const id = 1 + 2 * i
    burst.push(headers(id, requestBlock('/reset', authority()), true), rst(id))
  }
  c.write(Buffer.concat(burst))
  await assertAbuse(c, 'rapid_reset', before)
})

test('CONTINUATION flood: one header block in more CONTINUATION frames than allowed', async () => {
  const before = await abuseCount('continuation_flood')
  const c = await attacker()
  const block = requestBlock('/continuation', authority(), 'GET', [literal('x-filler', 'y'.repeat(100))])
  const out = [headers(1, block.subarray(0, 1), true, false)]
  for (let i = 1; i < block.length; i++) out.push(frame(FrameType.Continuation, i === block.length - 1 ? Flag.EndHeaders : 0, 1, block.subarray(i, i + 1)))
  c.write(Buffer.concat(out))
  await assertAbuse(c, 'continuation_flood', before)
})

test('HPACK bomb: a small block that references a 4 KB dynamic-table entry until the list passes the limit', async () => {
  const before = await abuseCount('header_list_too_large')
  const c = await attacker()
  const refs = Array.from({ length: 20 }, () => indexed(62))
  const block = requestBlock('/bomb', authority(), 'GET', [indexedLiteral('x-bomb', 'b'.repeat(4000)), ...refs])
  assert.ok(block.length < 4200, `the block is ${block.length} bytes; it decodes to more than 80 KB`)
  c.write(headers(1, block, true))
  await assertAbuse(c, 'header_list_too_large', before)
})

test('a header list over the limit (64 KiB) in CONTINUATION frames of plain literals', async () => {
  const before = await abuseCount('header_list_too_large')
  const c = await attacker()
  const fields = Array.from({ length: 5 }, (_, i) => literal(`x-big-${i}`, 'v'.repeat(15_000)))
  const block = Buffer.concat([requestBlock('/big', authority()), ...fields])
  const out = []
  for (let off = 0; off < block.length; off += 16_000) {
    const piece = block.subarray(off, off + 16_000)
    const last = off + 16_000 >= block.length
    out.push(off === 0 ? headers(1, piece, true, last) : frame(FrameType.Continuation, last ? Flag.EndHeaders : 0, 1, piece))
  }
  c.write(Buffer.concat(out))
  await assertAbuse(c, 'header_list_too_large', before)
})

test('SETTINGS flood', async () => {
  const before = await abuseCount('settings_flood')
  const c = await attacker()
  c.write(Buffer.concat(Array.from({ length: 500 }, () => settings([[SETTINGS_INITIAL_WINDOW_SIZE, 65535]]))))
  await assertAbuse(c, 'settings_flood', before)
})

test('PING flood', async () => {
  const before = await abuseCount('ping_flood')
  const c = await attacker()
  c.write(Buffer.concat(Array.from({ length: 500 }, () => ping())))
  await assertAbuse(c, 'ping_flood', before)
})

test('empty frames: DATA without payload or END_STREAM, again and again (CVE-2019-9518)', async () => {
  const before = await abuseCount('empty_frames')
  const c = await attacker()
  const out = [headers(1, requestBlock('/empty', authority(), 'POST'), false)]
  for (let i = 0; i < 500; i++) out.push(frame(FrameType.Data, 0, 1))
  c.write(Buffer.concat(out))
  await assertAbuse(c, 'empty_frames', before)
})

test('too many concurrent streams once the client acknowledged the limit', async () => {
  const before = await abuseCount('too_many_streams')
  const c = await attacker()
  // The server's SETTINGS first, then our ACK: the limit now binds.
  await waitFor(() => c.frames.some((fr) => fr.type === FrameType.Settings && (fr.flags & Flag.Ack) === 0), 5_000, 'the server SETTINGS')
  const limit = c.frames.find((fr) => fr.type === FrameType.Settings && (fr.flags & Flag.Ack) === 0)?.payload
  assert.ok(limit !== undefined && limit.includes(Buffer.from([0, 3, 0, 0, 0, MAX_STREAMS])), 'SETTINGS_MAX_CONCURRENT_STREAMS as configured')
  const out = [SETTINGS_ACK]
  // Requests with bodies still to come: every stream stays open.
  for (let i = 0; i <= MAX_STREAMS; i++) out.push(headers(1 + 2 * i, requestBlock('/sha256', authority(), 'POST'), false))
  c.write(Buffer.concat(out))
  await assertAbuse(c, 'too_many_streams', before)
})

test('slow reader: a window never opened, PINGs to look alive; closed after sendTimeout, memory bounded', async () => {
  const before = await abuseCount('slow_reader')
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${t.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024
  const start = rss()
  const clients = await Promise.all(Array.from({ length: 10 }, () => attacker([[SETTINGS_INITIAL_WINDOW_SIZE, 0]])))
  const size = 16 << 20
  for (const c of clients) c.write(Buffer.concat([SETTINGS_ACK, headers(1, requestBlock(`/bytes/${size}`, authority()), true)]))
  const pinger = setInterval(() => { for (const c of clients) c.write(ping()) }, 200)
  try {
    await Promise.all(clients.map((c) => closedWithin(c, 10_000)))
  } finally {
    clearInterval(pinger)
  }
  const grown = rss() - start
  // 10 × 16 MiB offered: what waits per connection is a stream's 64 KiB and the sockets' buffers.
  assert.ok(grown < 48 << 20, `RSS grew ${(grown / 1048576).toFixed(1)} MiB`)
  for (const c of clients) assert.ok(c.frames.every((fr) => fr.type !== FrameType.Data || fr.payload.length === 0), 'no DATA past a zero window')
  for (const c of clients) assert.equal(c.goaway(), ENHANCE_YOUR_CALM, `GOAWAY code ${String(c.goaway())}: the socket took bytes, so the abuse close reached it`)
  await waitFor(async () => await abuseCount('slow_reader') === before + clients.length, 5_000, 'slow_reader counted per connection')
})
