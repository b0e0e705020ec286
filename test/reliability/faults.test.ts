// Issue 6, item 6: faults around the terminator (http mode), each with its
// defined outcome, while a slow download on a healthy host runs through
// the same process and must complete byte-exact:
// - backend refuses (nothing listens)      → 502, warn `backend unavailable` kind connect, ECONNREFUSED
// - backend resets in the middle of a body  → the client's response is cut (curl 18/56), the terminator serves on
// - backend accepts and never answers       → 504 after backend.timeout, warn kind timeout
// - backend certificate for another name    → 502, warn kind tls, ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME
// - backend certificate from an unknown CA  → 502, warn kind tls, ERR_RUSTLS_CERT_UNKNOWN_ISSUER
// - SIGHUP with a configuration that does not parse → error `reload failed…`, the old configuration serves
// - the certificate file replaced mid-flight: garbage + SIGHUP → reload failed naming the key path, old
//   certificate still served; a valid new pair + SIGHUP → new connections get it, live ones finish
// (A worker killed under `workers: 2` is in worker-kill.test.ts.)
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, sClient, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from '../terminator/backends'
import { LEVEL, type LogLine, startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from '../terminator/harness'
import { recordFigures } from './scale'

const f = fixtures()
let echo: HttpEcho
let term: TerminatorProcess
let dir: string
let configFile: string
let config: Record<string, unknown>
const closers: Array<() => Promise<void> | void> = []
const outcomes: Record<string, unknown> = {}

/** A backend that answers the head and 1000 bytes of a 100 000-byte body, then resets. */
async function resettingBackend (): Promise<number> {
  const server = net.createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n')
      s.write(Buffer.alloc(1000, 0x41), () => setTimeout(() => s.resetAndDestroy(), 100))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return (server.address() as net.AddressInfo).port
}

/** Accepts, reads, never answers. */
async function silentBackend (): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as net.AddressInfo).port
}

async function httpsBackend (leaf: { chain: Buffer, key: Buffer }): Promise<number> {
  const server = https.createServer({ cert: leaf.chain, key: leaf.key }, (_req, res) => res.end('should never be seen\n'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return (server.address() as net.AddressInfo).port
}

function host (serverName: string, backend: Record<string, unknown>): Record<string, unknown> {
  return {
    serverName,
    certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }],
    backend: { mode: 'http', ...backend },
  }
}

before(async () => {
  echo = await httpEcho()
  dir = tempDir()
  fs.copyFileSync(f.localhostEcdsa.chainPath, path.join(dir, 'cert.pem'))
  fs.copyFileSync(f.localhostEcdsa.keyPath, path.join(dir, 'key.pem'))
  const refusedPort = await freePort()
  config = {
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'localhost', certificates: [{ cert: 'cert.pem', key: 'key.pem' }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      host('refused.a.example.test', { address: `127.0.0.1:${refusedPort}` }),
      host('reset.a.example.test', { address: `127.0.0.1:${await resettingBackend()}` }),
      host('hang.a.example.test', { address: `127.0.0.1:${await silentBackend()}`, timeout: '1s' }),
      host('badname.a.example.test', { address: `127.0.0.1:${await httpsBackend(f.wrongHost)}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
      host('unknownca.a.example.test', { address: `127.0.0.1:${await httpsBackend(f.otherLocalhost)}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
    ],
  }
  configFile = writeConfig(dir, config)
  term = await startTerminator(configFile)
})

after(async () => {
  if (term !== undefined) await stopClean(term)
  await echo?.close()
  for (const c of closers.splice(0)) await c()
  recordFigures('faults', { outcomes })
})

/** curl to https://NAME:PORT/PATH; stdout is "<http_code> <size_download>". */
function get (name: string, urlPath = '/', extra: string[] = []): ReturnType<typeof curl> {
  return curl(['--cacert', f.path('ca.pem'), '--resolve', `${name}:${term.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code} %{size_download}', ...extra, `https://${name}:${term.port}${urlPath}`], { timeoutMs: 20_000 })
}

/** A 4 MiB download on the healthy host, ~2.5 s long; resolves with its sha256 check. */
function slowDownload (msPerChunk = 40): Promise<{ ok: boolean, detail: string }> {
  const size = 4 << 20
  const out = path.join(dir, `download-${crypto.randomUUID()}`)
  return curl(['--cacert', f.path('ca.pem'), '-o', out, '-w', '%{http_code} %{size_download}', `https://localhost:${term.port}/slow/${size}?ms=${msPerChunk}`], { timeoutMs: 30_000 })
    .then((r) => {
      const body = fs.existsSync(out) ? fs.readFileSync(out) : Buffer.alloc(0)
      const same = crypto.createHash('sha256').update(body).digest('hex') === crypto.createHash('sha256').update(echo.blob(size)).digest('hex')
      return { ok: r.code === 0 && r.stdout === `200 ${size}` && same, detail: `curl ${r.code} ${r.stdout} ${r.stderr}` }
    })
}

function warnLine (hostName: string, after: number): Promise<LogLine> {
  return term.waitForLog((l) => l.msg === 'backend unavailable' && l.host === hostName && Date.parse(String(l.time)) >= after - 5, `backend unavailable for ${hostName}`)
}

test('backend faults each get their status and log line; a download on another host is untouched', async () => {
  const download = slowDownload()
  await waitFor(() => echo.seen.some((s) => s.url.startsWith('/slow/')), 5000, 'the download to start')
  const started = Date.now()

  const refused = await get('refused.a.example.test')
  assert.equal(refused.stdout, '502 12', refused.stderr)
  const refusedLine = await warnLine('refused.a.example.test', started)
  assert.equal(refusedLine.level, LEVEL.warn)
  assert.equal(refusedLine.kind, 'connect')
  assert.equal(refusedLine.code, 'ECONNREFUSED')

  const reset = await get('reset.a.example.test', '/', ['--http1.1'])
  assert.ok(reset.code === 18 || reset.code === 56, `curl exit ${reset.code}: ${reset.stderr}`)
  const [status, size] = reset.stdout.split(' ').map(Number)
  assert.equal(status, 200)
  assert.ok(size >= 0 && size < 100_000, `a cut body: ${size} bytes`)
  const resetH2 = await get('reset.a.example.test', '/', ['--http2'])
  assert.ok(resetH2.code === 92 || resetH2.code === 18 || resetH2.code === 56, `h2: curl exit ${resetH2.code}: ${resetH2.stderr}`)

  const hangStarted = Date.now()
  const hang = await get('hang.a.example.test')
  const hangMs = Date.now() - hangStarted
  assert.equal(hang.stdout, '504 16', hang.stderr)
  assert.ok(hangMs >= 900 && hangMs < 4000, `504 after ${hangMs} ms (backend.timeout 1s)`)
  const hangLine = await warnLine('hang.a.example.test', started)
  assert.equal(hangLine.kind, 'timeout')

  const badName = await get('badname.a.example.test')
  assert.equal(badName.stdout, '502 12', badName.stderr)
  const badNameLine = await warnLine('badname.a.example.test', started)
  assert.equal(badNameLine.kind, 'tls')
  assert.equal(badNameLine.code, 'ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME')

  const unknownCa = await get('unknownca.a.example.test')
  assert.equal(unknownCa.stdout, '502 12', unknownCa.stderr)
  const unknownCaLine = await warnLine('unknownca.a.example.test', started)
  assert.equal(unknownCaLine.kind, 'tls')
  assert.equal(unknownCaLine.code, 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER')

  // The terminator still serves, and the download was never disturbed.
  assert.equal((await get('localhost')).stdout.split(' ')[0], '200')
  const d = await download
  assert.ok(d.ok, d.detail)
  Object.assign(outcomes, {
    refused: { status: 502, log: 'warn backend unavailable', kind: 'connect', code: refusedLine.code },
    resetMidResponse: { http1: `curl exit ${reset.code}, ${size} of 100000 bytes`, http2: `curl exit ${resetH2.code}` },
    hangs: { status: 504, afterMs: hangMs, kind: 'timeout' },
    badCertificateName: { status: 502, kind: 'tls', code: badNameLine.code },
    unknownCa: { status: 502, kind: 'tls', code: unknownCaLine.code },
    concurrentDownload: 'complete, byte-exact',
  })
})

async function issuer (): Promise<string> {
  const r = await sClient(['-connect', `127.0.0.1:${term.port}`, '-servername', 'localhost'])
  return /^issuer=(.*)$/m.exec(r.stdout)?.[1] ?? `none: ${r.stdout}${r.stderr}`
}

function failedReloads (): LogLine[] {
  return term.logs().filter((l) => l.msg === 'reload failed; the previous configuration keeps serving')
}

test('a configuration that does not parse, then a certificate replaced by garbage mid-flight: the old configuration keeps serving', async () => {
  let downloadSettled = false
  // 64 chunks × 100 ms: still running after the reloads below.
  const download = slowDownload(100).finally(() => { downloadSettled = true })
  await waitFor(() => echo.seen.filter((s) => s.url.startsWith('/slow/')).length >= 2, 5000, 'the second download to start')
  const good = fs.readFileSync(configFile)

  fs.writeFileSync(configFile, 'listen: [127.0.0.1:0\nhosts: {{{\n')
  term.signal('SIGHUP')
  await waitFor(() => failedReloads().length === 1, 5000, 'the failed reload')
  const yamlLine = failedReloads()[0]
  assert.equal(yamlLine.level, LEVEL.error)
  assert.ok((yamlLine.problems as string[]).length > 0)
  assert.equal((await get('localhost')).stdout.split(' ')[0], '200')
  fs.writeFileSync(configFile, good)

  // The certificate file is overwritten while connections are live: nothing
  // changes until SIGHUP, and a SIGHUP with a broken file changes nothing.
  fs.writeFileSync(path.join(dir, 'cert.pem'), '-----BEGIN CERTIFICATE-----\nMIIBroken\n')
  assert.match(await issuer(), /CN = rustls-node test root CA$/)
  term.signal('SIGHUP')
  await waitFor(() => failedReloads().length === 2, 5000, 'the second failed reload')
  const certLine = failedReloads()[1]
  assert.match((certLine.problems as string[])[0], /^hosts\[0\]\.certificates\[0\]\.cert: /)
  assert.match(await issuer(), /CN = rustls-node test root CA$/)

  // A valid new pair (another CA): new connections get it.
  fs.copyFileSync(f.otherLocalhost.chainPath, path.join(dir, 'cert.pem'))
  fs.copyFileSync(f.otherLocalhost.keyPath, path.join(dir, 'key.pem'))
  // Otherwise the download below would not show that a reload leaves a
  // live connection alone.
  assert.equal(downloadSettled, false, 'the download is still running at the valid reload')
  term.signal('SIGHUP')
  await term.waitForLog((l) => l.msg === 'configuration reloaded', 'the reload')
  assert.match(await issuer(), /CN = rustls-node test other CA$/)
  const fresh = await curl(['--cacert', f.path('other-ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${term.port}/`])
  assert.equal(fresh.stdout, '200')

  // The download accepted under the first certificate finished untouched.
  const d = await download
  assert.ok(d.ok, d.detail)
  Object.assign(outcomes, {
    brokenConfigReload: { log: 'error reload failed; the previous configuration keeps serving', problems: yamlLine.problems },
    certificateReplacedByGarbage: { log: 'error reload failed', problem: (certLine.problems as string[])[0], served: 'previous certificate' },
    certificateReplacedByValidPair: { log: 'info configuration reloaded', served: 'new certificate to new connections; the live download completed' },
  })
})
