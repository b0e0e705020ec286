// Virtual hosts through the terminator (SPEC §4.1, §4.2): selection by SNI
// (exact and wildcard), strict and relaxed unknown names, per-host protocol
// minimums, ECDSA and RSA side by side, ALPN, several listen addresses.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, sClient } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
let echoA: HttpEcho
let echoB: HttpEcho
let strict: TerminatorProcess
let relaxed: TerminatorProcess

function config (strictSNI: boolean): Record<string, unknown> {
  return {
    listen: ['127.0.0.1:0', '127.0.0.1:0'],
    strictSNI,
    hosts: [
      {
        serverName: 'a.example.test',
        aliases: ['*.a.example.test'],
        certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }, { cert: f.aRsa.chainPath, key: f.aRsa.keyPath }],
        protocol: 'v1.3+',
        options: ['StdEnvVars'],
        backend: { address: `127.0.0.1:${echoA.port}`, mode: 'http' },
      },
      {
        serverName: 'b.example.test',
        certificates: [{ cert: f.bEcdsa.chainPath, key: f.bEcdsa.keyPath }],
        protocol: 'v1.2+',
        alpn: ['http/1.1'],
        options: ['StdEnvVars'],
        backend: { address: `127.0.0.1:${echoB.port}`, mode: 'http' },
      },
    ],
  }
}

before(async () => {
  echoA = await httpEcho()
  echoB = await httpEcho()
  strict = (await serveConfig(config(true), { listening: 2 })).t
  relaxed = (await serveConfig(config(false), { listening: 2 })).t
})

after(async () => {
  await stopClean(strict)
  await stopClean(relaxed)
  await echoA.close()
  await echoB.close()
})

/** curl to https://NAME:PORT/PATH resolved to 127.0.0.1, trusting the test root. */
function get (name: string, port: number, extra: string[] = [], path = '/'): ReturnType<typeof curl> {
  return curl(['--cacert', f.path('ca.pem'), '--resolve', `${name}:${port}:127.0.0.1`, ...extra, `https://${name}:${port}${path}`])
}

interface Echo { headers: Record<string, string> }

test('SNI picks the host: exact names and a *. alias, each to its own backend', async () => {
  for (const [name, sni, echo] of [
    ['a.example.test', 'a.example.test', echoA],
    ['x.a.example.test', 'x.a.example.test', echoA],
    ['b.example.test', 'b.example.test', echoB],
  ] as Array<[string, string, HttpEcho]>) {
    const before = echo.seen.length
    const r = await get(name, strict.port, [], `/who?${name}`)
    assert.equal(r.code, 0, `${name}: ${r.stderr}`)
    const body = JSON.parse(r.stdout) as Echo
    assert.equal(body.headers['x-ssl-tls-sni'], sni)
    assert.equal(echo.seen.length, before + 1)
    assert.equal(echo.seen[echo.seen.length - 1].url, `/who?${name}`)
  }
})

test('every listen address serves the same hosts', async () => {
  const [p1, p2] = strict.ports()
  assert.notEqual(p1, p2)
  for (const port of [p1, p2]) {
    const r = await get('b.example.test', port, ['-o', '/dev/null', '-w', '%{http_code}'])
    assert.equal(r.stdout, '200')
  }
})

test('strict SNI: an unknown name gets no certificate, and the failure is logged at info', async () => {
  const r = await get('c.example.test', strict.port)
  assert.equal(r.code, 35, r.stderr)
  const s = await sClient(['-connect', `127.0.0.1:${strict.port}`, '-servername', 'c.example.test'])
  assert.match(s.stdout, /no peer certificate available/)
  assert.match(s.stdout + s.stderr, /unrecognized name/)
  const line = await strict.waitForLog((l) => l.msg === 'TLS handshake failed' && l.code === 'ERR_RUSTLS_SNI_REFUSED', 'the refusal log line')
  assert.equal(line.level, LEVEL.info)
  assert.equal(line.remoteAddress, '127.0.0.1')
  assert.equal(line.servername, 'c.example.test')
})

test('relaxed SNI: an unknown name is served by the first host', async () => {
  const s = await sClient(['-connect', `127.0.0.1:${relaxed.port}`, '-servername', 'c.example.test', '-CAfile', f.path('ca.pem')])
  assert.match(s.stdout, /subject=O = rustls-node test, CN = a\.example\.test/)
  const r = await curl(['-k', '--resolve', `c.example.test:${relaxed.port}:127.0.0.1`, `https://c.example.test:${relaxed.port}/`])
  assert.equal(r.code, 0, r.stderr)
  assert.equal((JSON.parse(r.stdout) as Echo).headers['x-ssl-tls-sni'], 'c.example.test')
})

test('per-host protocol minimum: TLS 1.2 at most fails on the v1.3+ host, works on its v1.2+ sibling', async () => {
  const a = await get('a.example.test', strict.port, ['--tls-max', '1.2'])
  assert.equal(a.code, 35, a.stderr)
  const s = await sClient(['-connect', `127.0.0.1:${strict.port}`, '-servername', 'a.example.test', '-tls1_2'])
  assert.match(s.stdout + s.stderr, /alert protocol version/)
  const b = await get('b.example.test', strict.port, ['--tls-max', '1.2'])
  assert.equal(b.code, 0, b.stderr)
  const body = JSON.parse(b.stdout) as Echo
  assert.equal(body.headers['x-ssl-protocol'], 'TLSv1.2')
  assert.match(body.headers['x-ssl-cipher'], /^TLS_ECDHE_ECDSA_WITH_/)
})

test('ECDSA and RSA certificates side by side: an RSA-only client gets the RSA one', async () => {
  const ec = await sClient(['-connect', `127.0.0.1:${strict.port}`, '-servername', 'a.example.test', '-CAfile', f.path('ca.pem')])
  assert.match(ec.stdout, /Peer signature type: ECDSA/)
  const rsa = await sClient(['-connect', `127.0.0.1:${strict.port}`, '-servername', 'a.example.test', '-CAfile', f.path('ca.pem'), '-sigalgs', 'rsa_pss_rsae_sha256'])
  assert.match(rsa.stdout, /Peer signature type: RSA-PSS/)
  assert.match(rsa.stdout, /Verify return code: 0 \(ok\)/)
})

test('ALPN: h2 and http/1.1 by the client\'s choice; a host limited to http/1.1 never speaks h2', async () => {
  const fmt = ['-o', '/dev/null', '-w', '%{http_version}']
  assert.equal((await get('a.example.test', strict.port, ['--http2', ...fmt])).stdout, '2')
  assert.equal((await get('a.example.test', strict.port, ['--http1.1', ...fmt])).stdout, '1.1')
  assert.equal((await get('b.example.test', strict.port, ['--http2', ...fmt])).stdout, '1.1')
  const s = await sClient(['-connect', `127.0.0.1:${strict.port}`, '-servername', 'a.example.test', '-alpn', 'h2,http/1.1'])
  assert.match(s.stdout, /ALPN protocol: h2/)
})
