// Issue 6, item 1: fuzzing the pump. Real byte streams are recorded first
// (node:tls ↔ node:tls in TLS 1.3 and 1.2, ECDSA and RSA, client
// certificates, resumed sessions; openssl s_client; node:tls against the
// rustls server; the rustls client against node:tls), through a recording
// TCP proxy on loopback. Then child processes (fuzz-worker.ts) mutate them
// and feed them to fresh Connections through `feed`: SCALE.fuzzInputs
// inputs (30 000 in npm test, 1 000 000 in the stress run). Expected: no
// crash, no hang, every connection ends with a clean error code (or in
// order after a close_notify), no native handle left, no memory growth.
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { connect, createServer, liveHandles } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { assertNoLiveHandles, settle } from '../helpers/tls'
import type { CorpusFile, Direction } from './fuzz'
import type { WorkerMessage, WorkerSummary } from './fuzz-worker'
import { mib, MiB, recordFigures, SCALE, STRESS } from './scale'

const f = fixtures()
const transcripts: CorpusFile['transcripts'] = []
let workDir: string

interface Recorded { toServer: Buffer[], toClient: Buffer[], closed: Promise<void> }

/** A TCP proxy to `targetPort` that records both directions of each connection. */
async function recordingProxy (targetPort: number): Promise<{ port: number, sessions: Recorded[], close: () => Promise<void> }> {
  const sessions: Recorded[] = []
  const open = new Set<net.Socket>()
  // Half-open both ways: each side's FIN is relayed, never a close while
  // the other direction still has bytes to deliver.
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    const up = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true })
    const rec: Recorded = { toServer: [], toClient: [], closed: Promise.resolve() }
    rec.closed = new Promise((resolve) => {
      let n = 0
      const one = (): void => { if (++n === 2) resolve() }
      down.once('close', one)
      up.once('close', one)
    })
    sessions.push(rec)
    for (const s of [down, up]) {
      open.add(s)
      s.once('close', () => open.delete(s))
      s.on('error', () => {})
    }
    down.on('data', (d: Buffer) => { rec.toServer.push(d); up.write(d) })
    up.on('data', (d: Buffer) => { rec.toClient.push(d); down.write(d) })
    down.on('end', () => up.end())
    up.on('end', () => down.end())
    down.on('close', () => up.destroy())
    up.on('close', () => down.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    close: async () => {
      for (const s of open) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function keep (name: string, rec: Recorded): void {
  for (const direction of ['toServer', 'toClient'] as Direction[]) {
    const bytes = Buffer.concat(rec[direction])
    assert.ok(bytes.length > 0, `${name}: nothing recorded ${direction}`)
    transcripts.push({ name, direction, base64: bytes.toString('base64') })
  }
}

/** Runs one client exchange through a proxy: write, read the echo, end. */
async function nodeTlsExchange (port: number, options: tls.ConnectionOptions): Promise<Buffer | undefined> {
  return await new Promise((resolve, reject) => {
    let session: Buffer | undefined
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ...options }, () => {
      s.write(Buffer.concat([Buffer.from('hello '), crypto.randomBytes(3000)]))
    })
    s.on('session', (b: Buffer) => { session = b })
    let got = 0
    s.on('data', (d: Buffer) => {
      got += d.length
      if (got >= 3006) s.end()
    })
    s.on('error', reject)
    s.on('close', () => resolve(session))
  })
}

function echoOn (socket: tls.TLSSocket | import('../../lib/index').RustlsSocket): void {
  socket.on('data', (d: Buffer) => socket.write(d))
  socket.on('end', () => socket.end())
  socket.on('error', () => {})
}

before(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-fuzz-'))
  // node:tls server: the reference peer.
  const nodeServer = tls.createServer({
    cert: f.localhostEcdsa.chain, key: f.localhostEcdsa.key, ALPNProtocols: ['h2', 'http/1.1'],
    requestCert: false, ca: f.clientCa,
  }, echoOn)
  const rsaServer = tls.createServer({ cert: f.localhostRsa.chain, key: f.localhostRsa.key }, echoOn)
  const authServer = tls.createServer({ cert: f.localhostEcdsa.chain, key: f.localhostEcdsa.key, requestCert: true, rejectUnauthorized: true, ca: f.clientCa }, echoOn)
  const rustlsServer = createServer({ cert: f.localhostEcdsa.chain, key: f.localhostEcdsa.key, ALPNProtocols: ['http/1.1'] }, echoOn)
  const servers = [nodeServer, rsaServer, authServer, rustlsServer] as net.Server[]
  for (const s of servers) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const portOf = (s: net.Server): number => (s.address() as net.AddressInfo).port
  const proxies = []
  try {
    const viaNode = await recordingProxy(portOf(nodeServer))
    const viaRsa = await recordingProxy(portOf(rsaServer))
    const viaAuth = await recordingProxy(portOf(authServer))
    const viaRustls = await recordingProxy(portOf(rustlsServer))
    proxies.push(viaNode, viaRsa, viaAuth, viaRustls)
    const last = (p: { sessions: Recorded[] }): Recorded => p.sessions[p.sessions.length - 1]

    const s13 = await nodeTlsExchange(viaNode.port, { ALPNProtocols: ['h2', 'http/1.1'] })
    await last(viaNode).closed
    keep('node:tls TLS1.3 ECDSA ALPN', last(viaNode))
    await nodeTlsExchange(viaNode.port, { session: s13 })
    await last(viaNode).closed
    keep('node:tls TLS1.3 resumed (PSK)', last(viaNode))
    const s12 = await nodeTlsExchange(viaNode.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })
    await last(viaNode).closed
    keep('node:tls TLS1.2 ECDHE-ECDSA-AES128-GCM', last(viaNode))
    await nodeTlsExchange(viaNode.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', session: s12 })
    await last(viaNode).closed
    keep('node:tls TLS1.2 resumed (ticket)', last(viaNode))
    await nodeTlsExchange(viaRsa.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' })
    await last(viaRsa).closed
    keep('node:tls TLS1.2 ECDHE-RSA-CHACHA20', last(viaRsa))
    await nodeTlsExchange(viaAuth.port, { cert: f.client.chain, key: f.client.key })
    await last(viaAuth).closed
    keep('node:tls TLS1.3 client certificate', last(viaAuth))
    const r = await sClient(['-connect', `127.0.0.1:${viaNode.port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-alpn', 'http/1.1'], { input: 'ping from openssl\n', holdOpenMs: 300 })
    assert.match(r.stdout, /Verify return code: 0/)
    await last(viaNode).closed
    keep('openssl s_client TLS1.3', last(viaNode))
    await nodeTlsExchange(viaRustls.port, {})
    await last(viaRustls).closed
    keep('node:tls → rustls server TLS1.3', last(viaRustls))
    await nodeTlsExchange(viaRustls.port, { maxVersion: 'TLSv1.2' })
    await last(viaRustls).closed
    keep('node:tls → rustls server TLS1.2', last(viaRustls))
    // The rustls client's own flights (its ClientHello differs from OpenSSL's).
    await new Promise<void>((resolve, reject) => {
      const c = connect({ host: '127.0.0.1', port: viaNode.port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['h2'] }, () => c.end('hello from rustls'))
      c.on('error', reject)
      c.resume()
      c.on('close', () => resolve())
    })
    await last(viaNode).closed
    keep('rustls client → node:tls', last(viaNode))
  } finally {
    for (const p of proxies) await p.close()
    for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()))
  }
  fs.writeFileSync(path.join(workDir, 'corpus.json'), JSON.stringify({ transcripts } satisfies CorpusFile))
})

after(() => {
  fs.rmSync(workDir, { recursive: true, force: true })
})

interface BatchResult { summary?: WorkerSummary, exit: number | null, signal: NodeJS.Signals | null, hung: boolean }

const WORKER = path.join(__dirname, 'fuzz-worker.js')
/** A worker that reports no progress for this long is declared hung. */
const HANG_MS = 60_000

function runBatch (seed: number, start: number, count: number, traceFile?: string): Promise<BatchResult> {
  return new Promise((resolve) => {
    const args = [path.join(workDir, 'corpus.json'), String(seed), String(start), String(count)]
    if (traceFile !== undefined) args.push(traceFile)
    const child = fork(WORKER, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] })
    let summary: WorkerSummary | undefined
    let hung = false
    let watchdog = setTimeout(() => { hung = true; child.kill('SIGKILL') }, HANG_MS)
    child.on('message', (m: WorkerMessage) => {
      watchdog.refresh()
      if (m.type === 'done') summary = m.summary
    })
    child.on('exit', (exit, signal) => {
      clearTimeout(watchdog)
      watchdog = undefined as unknown as NodeJS.Timeout
      resolve({ summary, exit, signal, hung })
    })
  })
}

/** Replays a batch that crashed or hung with tracing on; returns the last input started. */
async function triage (seed: number, start: number, count: number): Promise<string> {
  const traceFile = path.join(workDir, `trace-${start}.txt`)
  const again = await runBatch(seed, start, count, traceFile)
  const lines = fs.readFileSync(traceFile, 'utf8').trimEnd().split('\n')
  const lastIndex = [...lines].reverse().find((l) => l.startsWith('#')) ?? '?'
  const lastInput = lines[lines.length - 1] ?? ''
  const kept = path.join(os.tmpdir(), `rustls-node-fuzz-crash-${seed}-${start}.txt`)
  fs.copyFileSync(traceFile, kept)
  return `replay: exit ${again.exit} signal ${again.signal} hung ${again.hung}; last input ${lastIndex} (seed ${seed}): ${lastInput.slice(0, 400)}…; full trace kept in ${kept}`
}

test(`${SCALE.fuzzInputs} mutated inputs through feed: no crash, no hang, clean error codes, nothing left behind`, { timeout: STRESS ? 900_000 : 60_000 }, async (t) => {
  assert.equal(transcripts.length, 20)
  const seed = process.env.RUSTLS_NODE_FUZZ_SEED !== undefined ? Number(process.env.RUSTLS_NODE_FUZZ_SEED) : crypto.randomInt(2 ** 31)
  t.diagnostic(`seed ${seed} (replay with RUSTLS_NODE_FUZZ_SEED=${seed})`)
  const workers = STRESS ? Math.max(1, Math.min(2, os.availableParallelism())) : 1
  const batch = STRESS ? 100_000 : SCALE.fuzzInputs
  const queue: Array<{ start: number, count: number }> = []
  for (let start = 0; start < SCALE.fuzzInputs; start += batch) queue.push({ start, count: Math.min(batch, SCALE.fuzzInputs - start) })
  const summaries: WorkerSummary[] = []
  const failures: string[] = []
  const started = Date.now()
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      const r = await runBatch(seed, job.start, job.count)
      if (r.summary === undefined || r.exit !== 0) {
        failures.push(`inputs ${job.start}..${job.start + job.count - 1}: ${r.hung ? 'hung' : `exit ${r.exit} signal ${r.signal}`}; ${await triage(seed, job.start, job.count)}`)
        continue
      }
      summaries.push(r.summary)
    }
  }))
  const elapsed = (Date.now() - started) / 1000
  assert.deepEqual(failures, [], 'no worker crashed or hung')
  const findings = summaries.flatMap((s) => s.findings)
  assert.deepEqual(findings.map((x) => `#${x.index}: ${x.message.split('\n')[0]} input=${x.inputHex.slice(0, 200)}`), [], `seed ${seed}`)
  const total = summaries.reduce((n, s) => n + s.inputs, 0)
  assert.equal(total, SCALE.fuzzInputs)
  const codes: Record<string, number> = {}
  const byTarget: Record<string, number> = {}
  for (const s of summaries) {
    for (const [k, v] of Object.entries(s.codes)) codes[k] = (codes[k] ?? 0) + v
    for (const [k, v] of Object.entries(s.byTarget)) byTarget[k] = (byTarget[k] ?? 0) + v
    assert.equal(s.liveConnectionsEnd, 0, 'every fuzzed Connection was released')
  }
  // Every input ended: with a clean code, or 0 after a close_notify.
  for (const code of Object.keys(codes).map(Number)) {
    assert.ok(code === 0 || (code > 7000 && code < 8000) || code === 9001 || code === 9002, `code ${code}`)
  }
  // The mutations reach many parsers, not one early rejection.
  assert.ok(Object.keys(codes).length >= 15, `distinct outcomes: ${Object.keys(codes).join(', ')}`)
  assert.deepEqual(Object.keys(byTarget).sort(), ['client', 'established', 'server'])
  const maxMs = Math.max(...summaries.map((s) => s.maxMs))
  assert.ok(maxMs < 2000, `slowest input took ${maxMs} ms`)
  // Memory (after full collections): a leak of a few hundred bytes per
  // input shows over a batch of 100 000 (32 MiB = 335 B per input).
  const growth = Math.max(...summaries.map((s) => s.rssEnd - s.rssAfterWarmup))
  // Under AddressSanitizer (scripts/memcheck.sh) freed memory sits in its
  // quarantine by design: RSS says nothing there.
  if (!/libasan/.test(process.env.LD_PRELOAD ?? '')) assert.ok(growth < 32 * MiB, `worker RSS grew ${mib(growth)} after warm-up (bound 32 MiB)`)
  const top = Object.entries(codes).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k}×${v}`).join(' ')
  t.diagnostic(`${total} inputs in ${elapsed.toFixed(1)} s with ${workers} worker(s); targets ${JSON.stringify(byTarget)}; ${Object.keys(codes).length} distinct codes, top: ${top}; slowest ${maxMs.toFixed(1)} ms; RSS growth ${mib(growth)}`)
  recordFigures('fuzz', {
    seed,
    inputs: total,
    seconds: elapsed,
    workers,
    transcripts: transcripts.map((x) => `${x.name} ${x.direction}`),
    byTarget,
    distinctCodes: Object.keys(codes).length,
    codes,
    slowestInputMs: maxMs,
    workerRssGrowthBytes: growth,
    crashes: 0,
    hangs: 0,
    findings: findings.length,
  })
})

test('the recording servers and clients of this file released every native handle', async () => {
  await settle()
  assert.equal(liveHandles().connections, 0)
  assertNoLiveHandles()
})
