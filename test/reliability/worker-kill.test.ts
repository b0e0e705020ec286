// Issue 6, item 6 (continued): a worker process killed under `workers: 2`.
// Slow downloads run on both workers (which worker holds a connection is
// read from the kernel's socket table, /proc/net/tcp); one worker gets
// SIGKILL.
// Defined outcome: the downloads it held are cut, the other worker's
// complete byte-exact, the primary logs `worker died; restarting it`
// (error, with the pid and signal) and forks a replacement that listens,
// and new requests are served.
// The same with HTTP/2 (issue 18): h2 sessions on both workers, two slow
// download streams each. Expected: every stream on the killed worker's
// sessions is cut (not one completes), every stream on the other worker's
// completes byte-exact, a session on the other worker takes a new stream
// after the kill, and new h2 sessions are served after the restart.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type http2 from 'node:http2'
import { after, before, test } from 'node:test'
import tls from 'node:tls'

import { fixtures } from '../helpers/certs'
import { curl, freePort, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from '../terminator/backends'
import { LEVEL, serveConfig, stopClean, type TerminatorProcess } from '../terminator/harness'
import { h2Connect, h2Get, type H2Outcome, sha256 } from './h2-load'
import { recordFigures } from './scale'

const f = fixtures()
let echo: HttpEcho
let term: TerminatorProcess
let port: number
const SIZE = 4 << 20

before(async () => {
  echo = await httpEcho()
  port = await freePort()
  term = (await serveConfig({
    listen: [`127.0.0.1:${port}`],
    workers: 2,
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.chainPath, key: f.localhostEcdsa.keyPath }], alpn: ['h2', 'http/1.1'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  }, { listening: 2 })).t
})

after(async () => {
  await echo.close()
})

interface Download { socket: tls.TLSSocket, worker: number, done: Promise<{ complete: boolean, bytes: number }> }

/**
 * Which of `pids` owns the server end of the connection from `clientPort`:
 * the socket's inode from the kernel's TCP table (/proc/net/tcp, ports in
 * hex), matched against each process' descriptors (/proc/PID/fd).
 */
function ownerOf (clientPort: number, pids: Iterable<number>): number | undefined {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0')
  const local = `0100007F:${hex(port)}`
  const remote = `0100007F:${hex(clientPort)}`
  let inode: string | undefined
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/)
    if (cols[1] === local && cols[2] === remote && cols[9] !== '0') inode = cols[9]
  }
  if (inode === undefined) return undefined
  for (const pid of pids) {
    let fds: string[] = []
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return pid
      } catch {}
    }
  }
  return undefined
}

async function startDownload (workers: Set<number>): Promise<Download> {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => resolve(s))
    s.once('error', reject)
  })
  socket.write(`GET /slow/${SIZE}?ms=50 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
  const chunks: Buffer[] = []
  socket.on('data', (d: Buffer) => chunks.push(d))
  socket.on('error', () => {})
  const done = new Promise<{ complete: boolean, bytes: number }>((resolve) => socket.once('close', () => {
    const all = Buffer.concat(chunks)
    const body = all.subarray(all.indexOf('\r\n\r\n') + 4)
    const complete = all.subarray(0, 15).toString() === 'HTTP/1.1 200 OK' &&
      crypto.createHash('sha256').update(body).digest('hex') === crypto.createHash('sha256').update(echo.blob(SIZE)).digest('hex')
    resolve({ complete, bytes: body.length })
  }))
  let worker: number | undefined
  await waitFor(() => (worker = ownerOf(socket.localPort as number, workers)) !== undefined, 5000, 'the connection in the socket table')
  return { socket, worker: worker as number, done }
}

interface H2Session { session: http2.ClientHttp2Session, worker: number, streams: Array<Promise<H2Outcome>> }

/** An h2 session with two slow downloads in flight, and the worker that holds it. */
async function startH2 (workers: Set<number>): Promise<H2Session> {
  const session = await h2Connect(port, f.ca)
  const streams = [0, 1].map(() => h2Get(session, port, `/slow/${SIZE}?ms=50`, 60_000))
  let worker: number | undefined
  await waitFor(() => (worker = ownerOf(session.socket.localPort as number, workers)) !== undefined, 5000, 'the h2 connection in the socket table')
  return { session, worker: worker as number, streams }
}

test('SIGKILL to one of two workers: its downloads are cut, the other worker\'s complete, it is restarted, new requests are served', { timeout: 60_000 }, async (t) => {
  const workers = new Set(term.logs().filter((l) => l.msg === 'listening').map((l) => l.pid as number))
  assert.equal(workers.size, 2)
  const downloads: Download[] = []
  // Connections until each worker holds at least two (the kernel spreads them).
  for (let i = 0; i < 16; i++) {
    downloads.push(await startDownload(workers))
    const per = [...workers].map((w) => downloads.filter((d) => d.worker === w).length)
    if (per.every((n) => n >= 2)) break
  }
  for (const w of workers) assert.ok(downloads.some((d) => d.worker === w), `worker ${w} holds a download`)
  const sessions: H2Session[] = []
  for (let i = 0; i < 16; i++) {
    sessions.push(await startH2(workers))
    if ([...workers].every((w) => sessions.some((s) => s.worker === w))) break
  }
  for (const w of workers) assert.ok(sessions.some((s) => s.worker === w), `worker ${w} holds an h2 session`)
  const h2Streams = sessions.length * 2
  await waitFor(() => echo.seen.filter((s) => s.url.startsWith('/slow/')).length >= downloads.length + h2Streams, 5000, 'every download to reach the backend')
  const [victim, survivor] = [...workers]
  process.kill(victim, 'SIGKILL')
  const h2Results = Promise.all(sessions.map(async (s) => ({ worker: s.worker, outcomes: await Promise.all(s.streams) })))
  // A session on the surviving worker still takes new streams.
  const onSurvivor = sessions.find((s) => s.worker === survivor) as H2Session
  const fresh = await h2Get(onSurvivor.session, port, '/after-kill')
  assert.equal(fresh.kind === 'ok' ? fresh.answer.status : fresh, 200, 'a new stream on a surviving h2 session')
  const results = await Promise.all(downloads.map(async (d) => ({ worker: d.worker, ...await d.done })))
  const complete = (o: H2Outcome): boolean => o.kind === 'ok' && o.answer.status === 200 && sha256(o.answer.body) === sha256(echo.blob(SIZE))
  const h2 = await h2Results
  const h2Cut = h2.filter((r) => r.worker === victim).flatMap((r) => r.outcomes)
  const h2Kept = h2.filter((r) => r.worker === survivor).flatMap((r) => r.outcomes)
  assert.deepEqual(h2Cut.map(complete), h2Cut.map(() => false), 'h2 streams on the killed worker are cut')
  assert.deepEqual(h2Kept.map(complete), h2Kept.map(() => true), 'h2 streams on the other worker complete byte-exact')
  for (const s of sessions) s.session.destroy()
  const cut = results.filter((r) => r.worker === victim)
  const kept = results.filter((r) => r.worker === survivor)
  assert.deepEqual(cut.map((r) => r.complete), cut.map(() => false), 'downloads on the killed worker are cut')
  assert.deepEqual(kept.map((r) => r.complete), kept.map(() => true), 'downloads on the other worker complete byte-exact')

  const died = await term.waitForLog((l) => l.msg === 'worker died; restarting it', 'the restart line')
  assert.equal(died.level, LEVEL.error)
  assert.equal(died.pid, term.pid)
  assert.equal(died.workerPid, victim)
  assert.equal(died.signal, 'SIGKILL')
  await waitFor(() => term.logs().filter((l) => l.msg === 'listening').length === 3, 10_000, 'the replacement to listen')
  const replacement = term.logs().filter((l) => l.msg === 'listening').map((l) => l.pid as number).find((p) => !workers.has(p))
  assert.ok(replacement !== undefined)
  for (let i = 0; i < 6; i++) {
    const r = await curl(['--cacert', f.path('ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${port}/`])
    assert.equal(r.stdout, '200')
  }
  for (let i = 0; i < 6; i++) {
    const s = await h2Connect(port, f.ca)
    const o = await h2Get(s, port, '/')
    s.destroy()
    assert.equal(o.kind === 'ok' ? o.answer.status : o, 200, 'a new h2 session after the restart')
  }
  await stopClean(term)
  t.diagnostic(`HTTP/1.1: ${cut.length} download(s) on the killed worker cut, ${kept.filter((r) => r.complete).length}/${kept.length} on the other complete; h2: ${sessions.length} sessions, ${h2Cut.filter((o) => !complete(o)).length}/${h2Cut.length} streams on the killed worker cut, ${h2Kept.filter(complete).length}/${h2Kept.length} on the other complete byte-exact`)
  recordFigures('worker-kill', {
    downloads: results.length,
    onKilledWorker: cut.length,
    cut: cut.filter((r) => !r.complete).length,
    onOtherWorker: kept.length,
    completedByteExact: kept.filter((r) => r.complete).length,
    log: { msg: died.msg, level: 'error', signal: died.signal, restartInMs: died.restartInMs },
    replacementListening: true,
    requestsAfterRestart: '6 × 200',
    h2: {
      sessions: sessions.length,
      streamsOnKilledWorker: h2Cut.length,
      cut: h2Cut.filter((o) => !complete(o)).length,
      streamsOnOtherWorker: h2Kept.length,
      completedByteExact: h2Kept.filter(complete).length,
      newStreamOnSurvivingSession: 200,
      sessionsAfterRestart: '6 × 200',
    },
  })
})
