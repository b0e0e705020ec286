// The /metrics endpoint (Prometheus text) moves with what happens on the
// TLS side: connections, handshake outcomes, resumption, bytes, backend
// errors, reloads; and the connection limit.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, sClient, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
let echo: HttpEcho
let t: TerminatorProcess
let metricsPort: number

before(async () => {
  echo = await httpEcho()
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    handshakeTimeout: '300ms',
    metrics: { listen: '127.0.0.1:0' },
    hosts: [
      { serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      { serverName: 'down.a.example.test', certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }], backend: { address: '127.0.0.1:1', mode: 'http' } },
    ],
  })).t
  metricsPort = (await t.waitForLog((l) => l.msg === 'metrics listening', 'metrics listening')).port as number
})

after(async () => {
  await stopClean(t)
  await echo.close()
})

async function scrape (port = metricsPort): Promise<Map<string, number>> {
  const r = await curl(['-D', '-', `http://127.0.0.1:${port}/metrics`])
  assert.equal(r.code, 0, r.stderr)
  const [head, body] = r.stdout.split('\r\n\r\n')
  assert.match(head, /content-type: text\/plain; version=0\.0\.4; charset=utf-8/i)
  const out = new Map<string, number>()
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

const value = (m: Map<string, number>, key: string): number => m.get(key) ?? 0

test('counters start at zero and the text is well formed', async () => {
  const m = await scrape()
  assert.equal(m.get('rustls_node_connections_total'), 0)
  assert.equal(m.get('rustls_node_connections_open'), 0)
  assert.equal(m.get('rustls_node_handshakes_resumed_total'), 0)
  const raw = await curl([`http://127.0.0.1:${metricsPort}/metrics`])
  assert.match(raw.stdout, /^# HELP rustls_node_connections_open .+\n# TYPE rustls_node_connections_open gauge\nrustls_node_connections_open 0\n/)
  const notFound = await curl(['-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${metricsPort}/other`])
  assert.equal(notFound.stdout, '404')
})

test('a request: connection, ok handshake, bytes and the response status', async () => {
  const before = await scrape()
  const r = await curl(['--cacert', f.path('ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${t.port}/bytes/100000`])
  assert.equal(r.stdout, '200')
  await waitFor(async () => value(await scrape(), 'rustls_node_connections_open') === 0, 3000, 'the connection to close')
  const m = await scrape()
  assert.equal(value(m, 'rustls_node_connections_total') - value(before, 'rustls_node_connections_total'), 1)
  assert.equal(value(m, 'rustls_node_handshakes_total{outcome="ok"}') - value(before, 'rustls_node_handshakes_total{outcome="ok"}'), 1)
  assert.equal(value(m, 'rustls_node_http_responses_total{status="200"}') - value(before, 'rustls_node_http_responses_total{status="200"}'), 1)
  const sent = value(m, 'rustls_node_bytes_sent_total') - value(before, 'rustls_node_bytes_sent_total')
  assert.ok(sent > 100_000 && sent < 110_000, `bytes sent ${sent}`)
  assert.ok(value(m, 'rustls_node_bytes_received_total') > value(before, 'rustls_node_bytes_received_total'))
})

test('an open connection counts as open, with its bytes, until it closes', async () => {
  const before = await scrape()
  const c = tls.connect({ host: '127.0.0.1', port: t.port, servername: 'localhost', ca: f.ca })
  await new Promise<void>((resolve) => c.once('secureConnect', () => resolve()))
  const open = await scrape()
  assert.equal(open.get('rustls_node_connections_open'), 1)
  // Bytes of live connections count before they close.
  assert.ok(value(open, 'rustls_node_bytes_received_total') > value(before, 'rustls_node_bytes_received_total'))
  assert.ok(value(open, 'rustls_node_bytes_sent_total') > value(before, 'rustls_node_bytes_sent_total'))
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
  c.end()
  await closed
  await waitFor(async () => value(await scrape(), 'rustls_node_connections_open') === 0, 3000, 'the gauge to drop')
})

test('failed and timed-out handshakes, by code', async () => {
  const before = await scrape()
  await curl(['--cacert', f.path('ca.pem'), '--resolve', `nobody.test:${t.port}:127.0.0.1`, `https://nobody.test:${t.port}/`])
  // Plain HTTP to the TLS port: not a TLS record at all.
  const plain = await curl([`http://127.0.0.1:${t.port}/`])
  assert.notEqual(plain.code, 0)
  const silent = net.connect({ host: '127.0.0.1', port: t.port })
  await new Promise<void>((resolve) => silent.once('close', () => resolve()))
  const key = (code: string): string => `rustls_node_handshakes_total{outcome="failed",code="${code}"}`
  await waitFor(async () => value(await scrape(), 'rustls_node_handshakes_total{outcome="timeout"}') > value(before, 'rustls_node_handshakes_total{outcome="timeout"}'), 3000, 'the timeout to count')
  const m = await scrape()
  assert.equal(value(m, key('ERR_RUSTLS_SNI_REFUSED')) - value(before, key('ERR_RUSTLS_SNI_REFUSED')), 1)
  assert.equal(value(m, 'rustls_node_handshakes_total{outcome="timeout"}') - value(before, 'rustls_node_handshakes_total{outcome="timeout"}'), 1)
  const failed = (x: Map<string, number>): number => [...x].filter(([k]) => k.startsWith('rustls_node_handshakes_total{outcome="failed"')).reduce((sum, [, v]) => sum + v, 0)
  assert.equal(failed(m) - failed(before), 2)
  const other = [...m.keys()].filter((k) => k.startsWith('rustls_node_handshakes_total{outcome="failed"') && !k.includes('SNI_REFUSED'))
  assert.equal(other.length, 1, other.join(', '))
  assert.match(other[0], /code="ERR_RUSTLS_[A-Z_]+"/)
})

test('resumed handshakes: openssl -sess_out then -sess_in', async () => {
  const before = await scrape()
  const sess = path.join(fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'sess-')), 'session.pem')
  const first = await sClient(['-connect', `127.0.0.1:${t.port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-sess_out', sess], { holdOpenMs: 300 })
  assert.match(first.stdout, /^New, TLSv1\.3/m)
  const second = await sClient(['-connect', `127.0.0.1:${t.port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-sess_in', sess])
  assert.match(second.stdout, /^Reused, TLSv1\.3/m)
  const m = await scrape()
  assert.equal(value(m, 'rustls_node_handshakes_resumed_total') - value(before, 'rustls_node_handshakes_resumed_total'), 1)
  assert.equal(value(m, 'rustls_node_handshakes_total{outcome="ok"}') - value(before, 'rustls_node_handshakes_total{outcome="ok"}'), 2)
})

test('backend errors and 502s; reloads', async () => {
  const before = await scrape()
  const r = await curl(['-k', '--resolve', `down.a.example.test:${t.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}', `https://down.a.example.test:${t.port}/`])
  assert.equal(r.stdout, '502')
  t.signal('SIGHUP')
  await t.waitForLog((l) => l.msg === 'configuration reloaded', 'the reload')
  const m = await scrape()
  assert.equal(value(m, 'rustls_node_backend_errors_total{kind="connect"}') - value(before, 'rustls_node_backend_errors_total{kind="connect"}'), 1)
  assert.equal(value(m, 'rustls_node_http_responses_total{status="502"}') - value(before, 'rustls_node_http_responses_total{status="502"}'), 1)
  assert.equal(value(m, 'rustls_node_reloads_total{outcome="ok"}'), 1)
})

test('maxConnections: a connection over the limit is closed at once and counted', async () => {
  const { t: limited } = await serveConfig({
    listen: ['127.0.0.1:0'],
    maxConnections: 1,
    metrics: { listen: '127.0.0.1:0' },
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'tcp' } }],
  })
  try {
    const port = (await limited.waitForLog((l) => l.msg === 'metrics listening', 'metrics listening')).port as number
    const first = tls.connect({ host: '127.0.0.1', port: limited.port, servername: 'localhost', ca: f.ca })
    await new Promise<void>((resolve) => first.once('secureConnect', () => resolve()))
    const second = await curl(['--cacert', f.path('ca.pem'), `https://localhost:${limited.port}/`])
    assert.equal(second.code, 35, second.stderr)
    const m = await scrape(port)
    assert.equal(m.get('rustls_node_connections_rejected_total'), 1)
    assert.equal(m.get('rustls_node_connections_open'), 1)
    first.destroy()
    await waitFor(async () => value(await scrape(port), 'rustls_node_connections_open') === 0, 3000, 'the first to close')
    const third = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: limited.port, servername: 'localhost', ca: f.ca }, () => {
        c.write(`GET /limit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      })
      let got = ''
      c.on('data', (d: Buffer) => { got += d.toString() })
      c.on('error', reject)
      c.on('close', () => resolve(got))
    })
    assert.match(third, /^HTTP\/1\.1 200 OK/)
  } finally {
    await stopClean(limited)
  }
})
