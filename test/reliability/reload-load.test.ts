// Issue 6, item 7: SIGHUP every second for SCALE.reloadSeconds (30 s in the
// stress run) while a load generator runs against the terminator: new
// connections and keep-alive connections in parallel lanes, plus slow
// downloads that span several reloads. Each reload swaps the certificate
// (ECDSA ↔ RSA, both valid for localhost) so every reload builds a new
// generation. Expected: zero failed requests, every reload logged as done,
// every download complete.
// The same again with HTTP/2 clients (issue 18): node:http2 sessions, many
// streams each, on the terminator's native h2 front. Expected: zero failed
// streams; a stream the server refused unprocessed (REFUSED_STREAM, or above
// a GOAWAY's last-stream-id) is retried on a new session per RFC 9113 §8.7
// and counted as refused (see h2-load.ts); streams in flight across the
// reloads (long downloads on one session) complete byte-exact.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type http2 from 'node:http2'
import https from 'node:https'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from '../terminator/backends'
import { startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from '../terminator/harness'
import { h2Connect, h2Get, sha256, usable } from './h2-load'
import { recordFigures, SCALE, STRESS } from './scale'

const f = fixtures()
let echo: HttpEcho
let term: TerminatorProcess
let dir: string

function install (which: 'localhostEcdsa' | 'localhostRsa'): void {
  // Written to temporary names and renamed: a reload never sees half a file.
  for (const [from, to] of [[f[which].chainPath, 'cert.pem'], [f[which].keyPath, 'key.pem']]) {
    fs.copyFileSync(from, path.join(dir, `${to}.tmp`))
    fs.renameSync(path.join(dir, `${to}.tmp`), path.join(dir, to))
  }
}

before(async () => {
  echo = await httpEcho()
  dir = tempDir()
  install('localhostEcdsa')
  term = await startTerminator(writeConfig(dir, {
    listen: ['127.0.0.1:0'],
    hosts: [{ serverName: 'localhost', certificates: [{ cert: 'cert.pem', key: 'key.pem' }], alpn: ['h2', 'http/1.1'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  }))
})

after(async () => {
  if (term !== undefined) await stopClean(term)
  await echo?.close()
})

interface Tally { ok: number, failed: number, errors: string[] }

function request (agent: https.Agent | false, tally: Tally): Promise<void> {
  return new Promise((resolve) => {
    const fail = (why: string): void => {
      tally.failed++
      if (tally.errors.length < 10) tally.errors.push(why)
      resolve()
    }
    const req = https.get({ host: '127.0.0.1', port: term.port, servername: 'localhost', path: '/load', ca: f.ca, agent, headers: { host: 'localhost' } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => {
        try {
          if (res.statusCode === 200 && (JSON.parse(body) as { url: string }).url === '/load') {
            tally.ok++
            resolve()
            return
          }
        } catch {}
        fail(`status ${res.statusCode}: ${body.slice(0, 100)}`)
      })
      res.on('error', (err) => fail(`response: ${err.message}`))
    })
    req.on('error', (err: Error & { code?: string }) => fail(`${err.code ?? ''} ${err.message}`))
    req.setTimeout(10_000, () => req.destroy(new Error('request timeout')))
  })
}

function download (size: number): Promise<boolean> {
  return new Promise((resolve) => {
    https.get({ host: '127.0.0.1', port: term.port, servername: 'localhost', path: `/slow/${size}?ms=100`, ca: f.ca, agent: false, headers: { host: 'localhost' } }, (res) => {
      const hash = crypto.createHash('sha256')
      res.on('data', (d: Buffer) => hash.update(d))
      res.on('end', () => resolve(res.statusCode === 200 && hash.digest('hex') === crypto.createHash('sha256').update(echo.blob(size)).digest('hex')))
      res.on('error', () => resolve(false))
    }).on('error', () => resolve(false))
  })
}

test(`SIGHUP every second for ${SCALE.reloadSeconds} s under load: zero failed requests`, { timeout: STRESS ? 120_000 : 40_000 }, async (t) => {
  const seconds = SCALE.reloadSeconds
  const tally: Tally = { ok: 0, failed: 0, errors: [] }
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 4 })
  let running = true
  const lanes = Array.from({ length: 8 }, async (_, i) => {
    while (running) await request(i % 2 === 0 ? keepAlive : false, tally)
  })
  // Downloads long enough to live through several reloads (64 KiB per 100 ms).
  const size = Math.min(seconds, 20) * 10 * 64 * 1024 / 2
  const downloads = [download(size), download(size)]
  let reloads = 0
  const expectedReloads = (): number => term.logs().filter((l) => l.msg === 'configuration reloaded').length
  const started = Date.now()
  for (let s = 1; s <= seconds; s++) {
    await new Promise((resolve) => setTimeout(resolve, started + s * 1000 - Date.now()))
    install(s % 2 === 1 ? 'localhostRsa' : 'localhostEcdsa')
    term.signal('SIGHUP')
    reloads++
  }
  await waitFor(() => expectedReloads() === reloads, 10_000, `${reloads} reloads logged`)
  running = false
  await Promise.all(lanes)
  const elapsed = (Date.now() - started) / 1000
  keepAlive.destroy()
  const downloadsOk = await Promise.all(downloads)
  assert.deepEqual(tally.errors, [], 'no failed request')
  assert.equal(tally.failed, 0)
  assert.ok(tally.ok > seconds * 20, `${tally.ok} requests in ${elapsed.toFixed(1)} s`)
  assert.equal(term.logs().filter((l) => l.msg === 'reload failed; the previous configuration keeps serving').length, 0)
  assert.deepEqual(downloadsOk, [true, true], 'the downloads that spanned the reloads completed byte-exact')
  t.diagnostic(`${seconds} reloads in ${elapsed.toFixed(1)} s; ${tally.ok} requests (${(tally.ok / elapsed).toFixed(0)}/s, 4 lanes with new connections, 4 keep-alive), ${tally.failed} failed; 2 downloads of ${(size / 1024).toFixed(0)} KiB across the reloads complete`)
  recordFigures('reload-under-load', {
    reloads,
    seconds: elapsed,
    requests: tally.ok,
    failedRequests: tally.failed,
    requestsPerSecond: tally.ok / elapsed,
    lanes: { newConnections: 4, keepAlive: 4 },
    downloadsAcrossReloads: downloadsOk.length,
    downloadsComplete: downloadsOk.filter(Boolean).length,
  })
})

/** Sends SIGHUP once a second for `seconds`, swapping the certificate each time; resolves with the count once all are logged. */
async function reloadEverySecond (seconds: number): Promise<number> {
  const logged = (): number => term.logs().filter((l) => l.msg === 'configuration reloaded').length
  const before = logged()
  const started = Date.now()
  for (let s = 1; s <= seconds; s++) {
    await new Promise((resolve) => setTimeout(resolve, started + s * 1000 - Date.now()))
    install(s % 2 === 1 ? 'localhostRsa' : 'localhostEcdsa')
    term.signal('SIGHUP')
  }
  await waitFor(() => logged() - before === seconds, 10_000, `${seconds} reloads logged`)
  return seconds
}

test(`SIGHUP every second for ${SCALE.reloadSeconds} s under HTTP/2 load: zero failed streams`, { timeout: STRESS ? 120_000 : 40_000 }, async (t) => {
  const seconds = SCALE.reloadSeconds
  const SESSIONS = 4
  const STREAMS_PER_SESSION = 8
  const tally = { ok: 0, failed: 0, refused: 0, sessions: 0, goaways: 0, errors: [] as string[] }
  const all: http2.ClientHttp2Session[] = []
  const open = async (): Promise<http2.ClientHttp2Session> => {
    const s = await h2Connect(term.port, f.ca)
    tally.sessions++
    s.on('goaway', () => { tally.goaways++ })
    all.push(s)
    return s
  }
  let running = true
  // Each lane: one session with STREAMS_PER_SESSION streams in flight; a
  // session that may take no more streams is replaced (and closed
  // gracefully). Half the lanes also move to a new session every 64
  // streams, so that new handshakes meet each new generation.
  const lanes = Array.from({ length: SESSIONS }, async (_, lane) => {
    let session = await open()
    let replacing: Promise<http2.ClientHttp2Session> | undefined
    let used = 0
    const current = async (): Promise<http2.ClientHttp2Session> => {
      if (usable(session) && (lane % 2 === 0 || ++used % 64 !== 0)) return session
      replacing ??= open().then((s) => { session.close(); session = s; replacing = undefined; return s })
      return await replacing
    }
    await Promise.all(Array.from({ length: STREAMS_PER_SESSION }, async () => {
      while (running) {
        let outcome = await h2Get(await current(), term.port, '/load')
        for (let retry = 0; outcome.kind === 'refused' && retry < 5; retry++) {
          tally.refused++
          outcome = await h2Get(await current(), term.port, '/load')
        }
        if (outcome.kind === 'ok' && outcome.answer.status === 200 && (JSON.parse(outcome.answer.body.toString()) as { url: string }).url === '/load') tally.ok++
        else {
          tally.failed++
          if (tally.errors.length < 10) tally.errors.push(outcome.kind === 'ok' ? `status ${outcome.answer.status}` : outcome.kind === 'failed' ? outcome.why : 'refused 6 times')
        }
      }
    }))
    session.close()
  })
  // Two streams that live through several reloads on one session each (64 KiB per 100 ms).
  const size = Math.min(seconds, 20) * 10 * 64 * 1024 / 2
  const downloads = [0, 1].map(async () => {
    const s = await open()
    const outcome = await h2Get(s, term.port, `/slow/${size}?ms=100`, 60_000)
    s.close()
    return outcome.kind === 'ok' && outcome.answer.status === 200 && sha256(outcome.answer.body) === sha256(echo.blob(size))
  })
  const started = Date.now()
  const reloads = await reloadEverySecond(seconds)
  running = false
  await Promise.all(lanes)
  const elapsed = (Date.now() - started) / 1000
  const downloadsOk = await Promise.all(downloads)
  for (const s of all) s.destroy()
  assert.deepEqual(tally.errors, [], 'no failed stream')
  assert.equal(tally.failed, 0)
  assert.ok(tally.ok > seconds * 20, `${tally.ok} streams in ${elapsed.toFixed(1)} s`)
  assert.equal(term.logs().filter((l) => l.msg === 'reload failed; the previous configuration keeps serving').length, 0)
  assert.deepEqual(downloadsOk, [true, true], 'the streams that spanned the reloads completed byte-exact')
  t.diagnostic(`${reloads} reloads in ${elapsed.toFixed(1)} s; ${tally.ok} h2 streams (${(tally.ok / elapsed).toFixed(0)}/s, ${SESSIONS} lanes × ${STREAMS_PER_SESSION} streams, half of them on a new session every 64), ${tally.failed} failed, ${tally.refused} refused and retried; ${tally.sessions} sessions opened, ${tally.goaways} GOAWAY received; 2 h2 downloads of ${(size / 1024).toFixed(0)} KiB across the reloads complete`)
  recordFigures('reload-under-load-h2', {
    reloads,
    seconds: elapsed,
    streams: tally.ok,
    failedStreams: tally.failed,
    refusedAndRetried: tally.refused,
    streamsPerSecond: tally.ok / elapsed,
    sessions: { lanes: SESSIONS, streamsEach: STREAMS_PER_SESSION, newSessionEveryStreamsOnHalf: 64, opened: tally.sessions, goawaysReceived: tally.goaways },
    downloadsAcrossReloads: downloadsOk.length,
    downloadsComplete: downloadsOk.filter(Boolean).length,
  })
})
