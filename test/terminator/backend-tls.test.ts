// Backend side (SPEC §4.8): TLS to the backend with a CA and a machine
// certificate against node:tls servers that require client certificates,
// session resumption through the host's ClientContext, and the failures a
// client sees as 502 / 504 with a warn log line.
import assert from 'node:assert/strict'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl } from '../helpers/peers'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { LEVEL, serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
let mtls: HttpEcho
let tls12only: HttpEcho
let plain: HttpEcho
let tlsEcho: tls.Server
let tlsEchoResumed: boolean[] = []
let t: TerminatorProcess
let closedPort: number

const backendServer = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

before(async () => {
  mtls = await httpEcho({ tls: { ...backendServer, ca: f.clientCa, requestCert: true, rejectUnauthorized: true } })
  tls12only = await httpEcho({ tls: { ...backendServer, maxVersion: 'TLSv1.2', honorCipherOrder: false } })
  plain = await httpEcho()
  tlsEcho = tls.createServer({ ...backendServer, ca: f.clientCa, requestCert: true, rejectUnauthorized: true }, (s) => {
    tlsEchoResumed.push(s.isSessionReused())
    s.pipe(s)
  })
  await new Promise<void>((resolve) => tlsEcho.listen(0, '127.0.0.1', () => resolve()))
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()))
  closedPort = (blocker.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => blocker.close(() => resolve()))

  const machine = [{ cert: f.client.certPath, key: f.client.keyPath }]
  const host = (name: string, backend: Record<string, unknown>): Record<string, unknown> => ({
    serverName: name,
    certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
    backend: { mode: 'http', ...backend },
  })
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    strictSNI: false,
    hosts: [
      host('localhost', { address: `127.0.0.1:${mtls.port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost', certificates: machine } }),
      host('nocert.test', { address: `127.0.0.1:${mtls.port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
      host('unknown-ca.test', { address: `127.0.0.1:${mtls.port}`, tls: { ca: f.path('other-ca.pem'), serverName: 'localhost', certificates: machine } }),
      host('insecure.test', { address: `127.0.0.1:${mtls.port}`, tls: { dangerouslyDisableVerification: true, certificates: machine } }),
      host('v13.test', { address: `127.0.0.1:${tls12only.port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost', protocol: 'v1.3+' } }),
      host('v12.test', { address: `127.0.0.1:${tls12only.port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost', ciphersPrefer: ['ECDHE-ECDSA-CHACHA20-POLY1305'] } }),
      host('down.test', { address: `127.0.0.1:${closedPort}` }),
      host('slow.test', { address: `127.0.0.1:${plain.port}`, timeout: '300ms' }),
      {
        ...host('tcp.test', { address: `127.0.0.1:${(tlsEcho.address() as net.AddressInfo).port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost', certificates: machine } }),
        backend: { mode: 'tcp', address: `127.0.0.1:${(tlsEcho.address() as net.AddressInfo).port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost', certificates: machine } },
      },
    ],
  })).t
})

after(async () => {
  await stopClean(t)
  await Promise.all([mtls.close(), tls12only.close(), plain.close(), new Promise<void>((resolve) => tlsEcho.close(() => resolve()))])
})

function get (name: string, urlPath = '/', extra: string[] = []): ReturnType<typeof curl> {
  return curl(['-k', '--resolve', `${name}:${t.port}:127.0.0.1`, '-w', '\n%{http_code}', ...extra, `https://${name}:${t.port}${urlPath}`])
}

function split (stdout: string): { body: string, status: number } {
  const i = stdout.lastIndexOf('\n')
  return { body: stdout.slice(0, i), status: Number(stdout.slice(i + 1)) }
}

test('mTLS backend: verified with the CA, and it sees the machine certificate', async () => {
  const r = split((await get('localhost', '/mtls')).stdout)
  assert.equal(r.status, 200, r.body)
  const reply = JSON.parse(r.body) as EchoReply
  assert.deepEqual({ ...reply.tls, cipher: undefined }, { authorized: true, cn: 'client one', resumed: false, protocol: 'TLSv1.3', cipher: undefined })
  assert.equal(reply.headers['x-forwarded-proto'], 'https')
})

test('verification disabled only under dangerouslyDisableVerification', async () => {
  const r = split((await get('insecure.test', '/insecure')).stdout)
  assert.equal(r.status, 200, r.body)
  assert.equal((JSON.parse(r.body) as EchoReply).tls?.cn, 'client one')
})

test('a backend whose certificate the CA does not vouch for: 502 and a warn line with the TLS code', async () => {
  const r = split((await get('unknown-ca.test', '/x')).stdout)
  assert.deepEqual(r, { body: 'Bad Gateway\n', status: 502 })
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'unknown-ca.test', 'the warn line')
  assert.equal(line.level, LEVEL.warn)
  assert.equal(line.kind, 'tls')
  assert.equal(line.backend, `127.0.0.1:${mtls.port}`)
  assert.match(line.code as string, /^ERR_RUSTLS_.*UNKNOWN_ISSUER/)
})

test('a backend that requires a machine certificate and gets none: 502', async () => {
  const r = split((await get('nocert.test', '/x')).stdout)
  assert.equal(r.status, 502)
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'nocert.test', 'the warn line')
  assert.equal(line.level, LEVEL.warn)
})

test('backend.tls.protocol: a v1.3+ minimum fails against a TLS 1.2-only backend; the default works, preferring the given suite', async () => {
  const r13 = split((await get('v13.test')).stdout)
  assert.equal(r13.status, 502)
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'v13.test', 'the warn line')
  assert.equal(line.kind, 'tls')
  const r12 = split((await get('v12.test')).stdout)
  assert.equal(r12.status, 200, r12.body)
  const reply = JSON.parse(r12.body) as EchoReply
  assert.equal(reply.tls?.protocol, 'TLSv1.2')
  assert.equal(reply.tls?.cipher, 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256')
})

test('backend down: 502 and a warn line with ECONNREFUSED', async () => {
  const r = split((await get('down.test', '/x')).stdout)
  assert.deepEqual(r, { body: 'Bad Gateway\n', status: 502 })
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'down.test', 'the warn line')
  assert.equal(line.level, LEVEL.warn)
  assert.deepEqual([line.code, line.kind, line.backend], ['ECONNREFUSED', 'connect', `127.0.0.1:${closedPort}`])
})

test('backend silent past backend.timeout: 504', async () => {
  const started = Date.now()
  const r = split((await get('slow.test', '/stall')).stdout)
  assert.deepEqual(r, { body: 'Gateway Timeout\n', status: 504 })
  assert.ok(Date.now() - started < 3000)
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'slow.test', 'the warn line')
  assert.equal(line.kind, 'timeout')
})

test('tcp mode over TLS to an mTLS backend; the second connection resumes through the ClientContext', async () => {
  tlsEchoResumed = []
  for (const message of ['first', 'second']) {
    const echoed = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: t.port, servername: 'tcp.test', rejectUnauthorized: false })
      let got = ''
      c.on('secureConnect', () => c.write(message))
      c.on('data', (d: Buffer) => {
        got += d.toString()
        if (got === message) c.end()
      })
      c.on('error', reject)
      c.on('close', () => resolve(got))
    })
    assert.equal(echoed, message)
  }
  assert.deepEqual(tlsEchoResumed, [false, true])
})
