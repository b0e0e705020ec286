// Operations (SPEC §5): SIGHUP reloads certificates without touching live
// connections and keeps the old configuration when the new one is broken;
// SIGTERM drains; handshakeTimeout closes silent and slow clients without
// sending them anything.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, sClient, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, startTerminator, stopClean, tempDir, writeConfig } from './harness'

const f = fixtures()
let echo: HttpEcho

before(async () => { echo = await httpEcho() })
after(async () => { await echo.close() })

function hostConfig (dir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: ['127.0.0.1:0'],
    hosts: [{ serverName: 'localhost', certificates: [{ cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    ...extra,
  }
}

function installCert (dir: string, which: 'localhostEcdsa' | 'otherLocalhost'): void {
  fs.copyFileSync(f[which].certPath, path.join(dir, 'cert.pem'))
  fs.copyFileSync(f[which].keyPath, path.join(dir, 'key.pem'))
}

async function issuerOf (port: number): Promise<string> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'localhost'])
  const m = /^issuer=(.*)$/m.exec(r.stdout)
  assert.ok(m !== null, r.stdout + r.stderr)
  return m[1]
}

test('SIGHUP: new certificate for new connections while a download on the old one completes; a broken config keeps the old one', async () => {
  const dir = tempDir()
  installCert(dir, 'localhostEcdsa')
  const file = writeConfig(dir, hostConfig(dir))
  const t = await startTerminator(file)
  try {
    assert.match(await issuerOf(t.port), /CN = rustls-node test root CA$/)
    const size = 4 << 20
    const out = path.join(dir, 'download')
    // ~2.5 s: 64 pieces of 64 KiB, one every 40 ms.
    const download = curl(['--cacert', f.path('ca.pem'), '-o', out, '-w', '%{http_code} %{size_download}', `https://localhost:${t.port}/slow/${size}?ms=40`], { timeoutMs: 20_000 })
    await waitFor(() => echo.seen.some((s) => s.url.startsWith(`/slow/${size}`)), 5000, 'the download to start')

    installCert(dir, 'otherLocalhost')
    t.signal('SIGHUP')
    await t.waitForLog((l) => l.msg === 'configuration reloaded', 'the reload')
    assert.match(await issuerOf(t.port), /CN = rustls-node test other CA$/)
    const fresh = await curl(['--cacert', f.path('other-ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${t.port}/`])
    assert.equal(fresh.stdout, '200')

    const done = await download
    assert.equal(done.code, 0, done.stderr)
    assert.equal(done.stdout, `200 ${size}`)
    assert.equal(crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex'), crypto.createHash('sha256').update(echo.blob(size)).digest('hex'))

    // Broken: a key that does not match and a bad protocol. Logged; the running configuration stays.
    fs.copyFileSync(f.path('mismatch.key'), path.join(dir, 'key.pem'))
    writeConfig(dir, { ...hostConfig(dir), protocol: 'v1.1+' })
    t.signal('SIGHUP')
    const failed = await t.waitForLog((l) => l.msg === 'reload failed; the previous configuration keeps serving', 'the failed reload')
    assert.equal(failed.level, LEVEL.error)
    assert.deepEqual(failed.problems, ['protocol: "v1.1+" would enable versions below TLS 1.2; rustls supports TLS 1.2 and 1.3 only; expected a minimum version: one of default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+'])
    writeConfig(dir, hostConfig(dir))
    t.signal('SIGHUP')
    await waitFor(() => t.logs().filter((l) => l.msg === 'reload failed; the previous configuration keeps serving').length === 2, 5000, 'the second failed reload')
    const second = t.logs().filter((l) => l.msg === 'reload failed; the previous configuration keeps serving')[1]
    assert.match((second.problems as string[])[0], /^hosts\[0\]\.certificates\[0\]\.key: .*KeyMismatch/)
    assert.match(await issuerOf(t.port), /CN = rustls-node test other CA$/)
    assert.equal((await curl(['--cacert', f.path('other-ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${t.port}/`])).stdout, '200')
  } finally {
    await stopClean(t)
  }
})

test('SIGTERM drains: no new connections, the download in flight completes, idle keep-alive connections close, exit 0', async () => {
  const dir = tempDir()
  installCert(dir, 'localhostEcdsa')
  const t = await startTerminator(writeConfig(dir, hostConfig(dir, { drainTimeout: '8s' })))
  const port = t.port
  // An idle HTTP/1.1 keep-alive connection: it must not hold the drain up.
  const idle = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] })
  await new Promise<void>((resolve) => idle.once('secureConnect', () => resolve()))
  idle.write(`GET / HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`)
  await new Promise<void>((resolve) => idle.once('data', () => resolve()))
  const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()))
  idle.on('error', () => {})

  const size = 2 << 20
  const download = curl(['--cacert', f.path('ca.pem'), '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `https://localhost:${port}/slow/${size}?ms=40`], { timeoutMs: 20_000 })
  await waitFor(() => echo.seen.some((s) => s.url.startsWith(`/slow/${size}`)), 5000, 'the download to start')
  const started = Date.now()
  t.signal('SIGTERM')
  await t.waitForLog((l) => l.msg === 'draining', 'draining')
  const refused = await curl(['--cacert', f.path('ca.pem'), `https://localhost:${port}/`])
  assert.equal(refused.code, 7, `new connections are refused: ${refused.stderr}`)
  await idleClosed
  const done = await download
  assert.equal(done.stdout, `200 ${size}`)
  const exit = await t.exited
  assert.equal(exit.code, 0)
  assert.ok(Date.now() - started < 6000, `drained in ${Date.now() - started} ms, not after the drain timeout`)
  const stopped = t.logs().find((l) => l.msg === 'stopped')
  assert.deepEqual(stopped?.liveHandles, { certifiedKeys: 0, serverConfigs: 0, clientConfigs: 0, sessionCaches: 0, ticketers: 0, hostRouters: 0, connections: 0, listeners: 0, backendTargets: 0 })
  assert.equal(t.logs().some((l) => l.msg === 'drain timeout: closing the remaining connections'), false)
})

test('SIGTERM with a connection that never ends: closed after drainTimeout', async () => {
  const dir = tempDir()
  installCert(dir, 'localhostEcdsa')
  const config = hostConfig(dir, { drainTimeout: '700ms' })
  ;(config.hosts as Array<Record<string, unknown>>)[0].backend = { address: `127.0.0.1:${echo.port}`, mode: 'tcp' }
  const t = await startTerminator(writeConfig(dir, config))
  const held = tls.connect({ host: '127.0.0.1', port: t.port, servername: 'localhost', ca: f.ca })
  held.on('error', () => {})
  await new Promise<void>((resolve) => held.once('secureConnect', () => resolve()))
  const closed = new Promise<void>((resolve) => held.once('close', () => resolve()))
  const started = Date.now()
  t.signal('SIGTERM')
  await closed
  const elapsed = Date.now() - started
  assert.ok(elapsed >= 600 && elapsed < 3000, `closed after ${elapsed} ms`)
  await stopClean(t)
  const warn = t.logs().find((l) => l.msg === 'drain timeout: closing the remaining connections')
  assert.equal(warn?.level, LEVEL.warn)
  assert.equal(warn?.open, 1)
})

test('handshakeTimeout: 4 bytes of a ClientHello or nothing at all; nothing is sent back and the socket closes in time', async () => {
  const dir = tempDir()
  installCert(dir, 'localhostEcdsa')
  const t = await startTerminator(writeConfig(dir, hostConfig(dir, { handshakeTimeout: '500ms' })))
  try {
    for (const prefix of [Buffer.from([0x16, 0x03, 0x01, 0x00]), Buffer.alloc(0)]) {
      const started = Date.now()
      const result = await new Promise<{ received: number, elapsed: number }>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: t.port }, () => { if (prefix.length > 0) s.write(prefix) })
        let received = 0
        s.on('data', (d: Buffer) => { received += d.length })
        s.on('error', () => {})
        s.on('close', () => resolve({ received, elapsed: Date.now() - started }))
        setTimeout(() => reject(new Error('not closed within 3 s')), 3000).unref()
      })
      assert.equal(result.received, 0)
      assert.ok(result.elapsed >= 450 && result.elapsed < 1500, `closed after ${result.elapsed} ms`)
    }
    await waitFor(() => t.logs().filter((l) => l.code === 'ERR_TLS_HANDSHAKE_TIMEOUT').length === 2, 3000, 'two timeout log lines')
    const line = t.logs().find((l) => l.code === 'ERR_TLS_HANDSHAKE_TIMEOUT')
    assert.equal(line?.level, LEVEL.info)
    assert.equal(line?.remoteAddress, '127.0.0.1')
  } finally {
    await stopClean(t)
  }
})
