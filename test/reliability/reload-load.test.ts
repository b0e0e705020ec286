// Issue 6, item 7: SIGHUP every second for SCALE.reloadSeconds (30 s in the
// stress run) while a load generator runs against the terminator: new
// connections and keep-alive connections in parallel lanes, plus slow
// downloads that span several reloads. Each reload swaps the certificate
// (ECDSA ↔ RSA, both valid for localhost) so every reload builds a new
// generation. Expected: zero failed requests, every reload logged as done,
// every download complete.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import https from 'node:https'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from '../terminator/backends'
import { startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from '../terminator/harness'
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
    hosts: [{ serverName: 'localhost', certificates: [{ cert: 'cert.pem', key: 'key.pem' }], alpn: ['http/1.1'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
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
