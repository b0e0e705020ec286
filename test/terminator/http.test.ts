// http mode end to end (SPEC §5): curl over HTTP/1.1 and HTTP/2 in front,
// a real HTTP/1.1 echo backend behind. Forwarding headers and the removal
// of spoofed ones, the 421 / 403 rules of §4.2, client certificates as
// headers, WebSocket pass-through, byte-exact bodies both ways.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http2 from 'node:http2'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import WebSocket from 'ws'

import { fixtures } from '../helpers/certs'
import { curl } from '../helpers/peers'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { LEVEL, serveConfig, stopClean, tempDir, type TerminatorProcess } from './harness'

const f = fixtures()
const dir = tempDir()
let echoA: HttpEcho
let echoB: HttpEcho
let echoW: HttpEcho
let t: TerminatorProcess
let port: number

before(async () => {
  echoA = await httpEcho()
  echoB = await httpEcho()
  echoW = await httpEcho()
  const a = { cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'a.example.test', certificates: [a], options: ['StdEnvVars', 'ExportCertData'], backend: { address: `127.0.0.1:${echoA.port}`, mode: 'http' } },
      // Same certificate and TLS settings as a.example.test: requests may be coalesced onto a's connections.
      { serverName: 'w.a.example.test', certificates: [a], options: ['StdEnvVars', 'ExportCertData'], backend: { address: `127.0.0.1:${echoW.port}`, mode: 'http' } },
      { serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chainPath, key: f.bEcdsa.keyPath }], backend: { address: `127.0.0.1:${echoB.port}`, mode: 'http' } },
      {
        serverName: 'localhost',
        certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
        options: ['StdEnvVars', 'ExportCertData'],
        clientAuth: { mode: 'optional', ca: f.path('client-ca.pem') },
        backend: { address: `127.0.0.1:${echoA.port}`, mode: 'http' },
      },
    ],
  })).t
  port = t.port
})

after(async () => {
  await stopClean(t)
  await Promise.all([echoA.close(), echoB.close(), echoW.close()])
})

function get (name: string, extra: string[], urlPath = '/'): ReturnType<typeof curl> {
  return curl(['--cacert', f.path('ca.pem'), '--resolve', `${name}:${port}:127.0.0.1`, ...extra, `https://${name}:${port}${urlPath}`], { timeoutMs: 30_000 })
}

const SPOOFED = [
  '-H', 'X-SSL-CIPHER: fake', '-H', 'x-ssl-protocol: SSLv3', '-H', 'X_SSL_CLIENT_VERIFY: SUCCESS', '-H', 'X-Ssl-Client-Cert: forged',
  '-H', 'X-Forwarded-For: 6.6.6.6', '-H', 'X-FORWARDED-PROTO: http', '-H', 'X-Forwarded-Host: evil.test', '-H', 'Forwarded: for=6.6.6.6',
  '-H', 'X-Custom: kept',
]

for (const version of ['--http1.1', '--http2']) {
  test(`${version}: forwarding and X-SSL-* headers replace whatever the client sent`, async () => {
    const r = await get('a.example.test', [version, ...SPOOFED], '/headers')
    assert.equal(r.code, 0, r.stderr)
    const body = JSON.parse(r.stdout) as EchoReply
    const h = body.headers
    assert.equal(body.url, '/headers')
    assert.equal(h.host, `a.example.test:${port}`)
    assert.equal(h['x-forwarded-for'], '127.0.0.1')
    assert.equal(h['x-forwarded-proto'], 'https')
    assert.equal(h['x-custom'], 'kept')
    for (const gone of ['x_ssl_client_verify', 'x-forwarded-host', 'forwarded', 'x-ssl-client-cert', 'x-ssl-https', 'x-ssl-session-id', 'https']) {
      assert.equal(h[gone], undefined, gone)
    }
    const ssl = Object.keys(h).filter((k) => k.startsWith('x-ssl-')).sort()
    assert.deepEqual(ssl, ['x-ssl-cipher', 'x-ssl-cipher-export', 'x-ssl-client-verify', 'x-ssl-compress-method', 'x-ssl-protocol',
      'x-ssl-secure-reneg', 'x-ssl-server-cert', 'x-ssl-session-resumed', 'x-ssl-tls-sni', 'x-ssl-version-interface', 'x-ssl-version-library'])
    assert.equal(h['x-ssl-protocol'], 'TLSv1.3')
    assert.match(h['x-ssl-cipher'] as string, /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/)
    assert.equal(h['x-ssl-tls-sni'], 'a.example.test')
    assert.equal(h['x-ssl-client-verify'], 'NONE')
    assert.equal(h['x-ssl-secure-reneg'], 'false')
    // PEM values travel URL-encoded on one line.
    const pem = decodeURIComponent(h['x-ssl-server-cert'] as string)
    assert.equal(new crypto.X509Certificate(pem).fingerprint256, new crypto.X509Certificate(f.aEcdsa.cert).fingerprint256)
    assert.ok(!(h['x-ssl-server-cert'] as string).includes('\n'))
    // Exactly one of each, whatever the client sent.
    const raw = body.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase())
    for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-ssl-protocol', 'x-ssl-cipher']) assert.equal(raw.filter((n) => n === name).length, 1, name)
  })
}

test('a host without StdEnvVars/ExportCertData gets no X-SSL-* headers, and spoofed ones are still removed', async () => {
  const r = await get('b.example.test', ['--http2', ...SPOOFED], '/plain')
  assert.equal(r.code, 0, r.stderr)
  const h = (JSON.parse(r.stdout) as EchoReply).headers
  assert.deepEqual(Object.keys(h).filter((k) => /^x[-_]ssl|forwarded/.test(k)).sort(), ['x-forwarded-for', 'x-forwarded-proto'])
  assert.equal(h['x-forwarded-for'], '127.0.0.1')
})

test('fields a Connection header lists are dropped both ways, the others kept (RFC 9110 §7.6.1)', async () => {
  const r = await get('a.example.test', ['--http1.1', '-H', 'Connection: keep-alive, X-Drop-Me', '-H', 'X-Drop-Me: secret', '-H', 'Keep-Alive: timeout=5',
    '-H', 'X-Custom: kept'], '/headers')
  assert.equal(r.code, 0, r.stderr)
  const h = (JSON.parse(r.stdout) as EchoReply).headers
  assert.equal(h['x-custom'], 'kept')
  assert.equal(h['x-drop-me'], undefined)
  assert.equal(h['keep-alive'], undefined)
  for (const version of ['--http1.1', '--http2']) {
    const res = await get('a.example.test', [version, '-D', '-'], '/listed')
    assert.equal(res.code, 0, res.stderr)
    const head = res.stdout.toLowerCase()
    assert.match(head, /\r\nx-kept: yes\r\n/, version)
    assert.doesNotMatch(head, /x-hop/, version)
    assert.ok(res.stdout.endsWith('listed\n'), version)
  }
})

test('421: Host names another host with other certificates (HTTP/1.1 and HTTP/2)', async () => {
  const seen = echoB.seen.length + echoA.seen.length
  for (const version of ['--http1.1', '--http2']) {
    const r = await get('a.example.test', [version, '-H', `Host: b.example.test:${port}`, '-w', '\n%{http_code}'], '/misdirected')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^Misdirected Request: the request names another host than the TLS connection \(SNI\) was made for\n\n421$/)
  }
  assert.equal(echoB.seen.length + echoA.seen.length, seen, 'no backend saw the misdirected requests')
  const line = await t.waitForLog((l) => l.status === 421, 'the 421 log line')
  assert.equal(line.level, LEVEL.info)
  assert.equal(line.sni, 'a.example.test')
})

test('same certificate and TLS settings: the request goes to the host it names', async () => {
  const r = await get('a.example.test', ['--http2', '-H', `Host: w.a.example.test:${port}`], '/coalesced')
  assert.equal(r.code, 0, r.stderr)
  const body = JSON.parse(r.stdout) as EchoReply
  assert.equal(body.headers.host, `w.a.example.test:${port}`)
  assert.equal(body.headers['x-ssl-tls-sni'], 'a.example.test')
  assert.equal(echoW.seen.at(-1)?.url, '/coalesced')
})

test('a Host naming no configured host or an IP stays with the SNI host', async () => {
  for (const host of [`unknown.test:${port}`, `127.0.0.1:${port}`]) {
    const r = await get('b.example.test', ['-H', `Host: ${host}`], '/other')
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as EchoReply).headers.host, host)
  }
})

test('403: no SNI on a port with several hosts', async () => {
  // curl sends no SNI for an IP address.
  const r = await curl(['-k', '-w', '\n%{http_code}', `https://127.0.0.1:${port}/`])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^Forbidden: the client sent no SNI and this port serves several hosts\n\n403$/)
})

test('client certificates: verified ones are exported (SUCCESS and the PEM), none is NONE', async () => {
  const withCert = await get('localhost', ['--cert', f.client.certPath, '--key', f.client.keyPath], '/client')
  assert.equal(withCert.code, 0, withCert.stderr)
  const h = (JSON.parse(withCert.stdout) as EchoReply).headers
  assert.equal(h['x-ssl-client-verify'], 'SUCCESS')
  const pem = decodeURIComponent(h['x-ssl-client-cert'] as string)
  assert.equal(new crypto.X509Certificate(pem).fingerprint256, new crypto.X509Certificate(f.client.cert).fingerprint256)
  const without = await get('localhost', [], '/client')
  const h2 = (JSON.parse(without.stdout) as EchoReply).headers
  assert.equal(h2['x-ssl-client-verify'], 'NONE')
  assert.equal(h2['x-ssl-client-cert'], undefined)
  const other = await get('localhost', ['--cert', f.clientOther.certPath, '--key', f.clientOther.keyPath], '/client')
  assert.notEqual(other.code, 0, 'a certificate from another CA is refused in the handshake')
})

for (const version of ['--http1.1', '--http2']) {
  test(`${version}: responses of 1 KiB to 10 MiB arrive byte-exact`, async () => {
    for (const size of [1024, 65_537, 1 << 20, 10 << 20]) {
      const out = path.join(dir, `dl-${size}`)
      const r = await get('a.example.test', [version, '-o', out, '-w', '%{http_code} %{size_download} %{http_version}'], `/bytes/${size}`)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `200 ${size} ${version === '--http2' ? '2' : '1.1'}`)
      const want = crypto.createHash('sha256').update(echoA.blob(size)).digest('hex')
      assert.equal(crypto.createHash('sha256').update(fs.readFileSync(out)).digest('hex'), want, `size ${size}`)
    }
  })

  test(`${version}: a 5 MiB upload reaches the backend byte-exact`, async () => {
    const data = crypto.randomBytes(5 << 20)
    const file = path.join(dir, `up-${version}`)
    fs.writeFileSync(file, data)
    const r = await get('a.example.test', [version, '--data-binary', `@${file}`, '-H', 'content-type: application/octet-stream'], '/sha256')
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `${data.length} ${crypto.createHash('sha256').update(data).digest('hex')}`)
  })
}

test('WebSocket: the upgrade passes through and messages echo both ways', async () => {
  // ws hands servername and ca to tls.connect (its types omit servername).
  const options = { servername: 'a.example.test', headers: { host: `a.example.test:${port}`, 'x-forwarded-for': '6.6.6.6' }, ca: f.ca }
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, options as WebSocket.ClientOptions)
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const echo = (data: string | Buffer): Promise<Buffer> => new Promise((resolve) => {
    ws.once('message', (d: Buffer) => resolve(d))
    ws.send(data)
  })
  assert.equal((await echo('hello through rustls')).toString(), 'hello through rustls')
  const big = crypto.randomBytes(300_000)
  assert.ok((await echo(big)).equals(big))
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  ws.close(1000)
  assert.equal(await closed, 1000)
  const up = echoA.upgrades.at(-1)
  assert.equal(up?.['x-forwarded-for'], '127.0.0.1')
  assert.equal(up?.['x-ssl-tls-sni'], 'a.example.test')
})

test('HTTP/2 cookie crumbs become one Cookie field for the HTTP/1.1 backend', async () => {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername: 'a.example.test' })
  try {
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':path': '/cookies', ':authority': `a.example.test:${port}`, cookie: ['a=1', 'b=2'] })
      let data = ''
      req.setEncoding('utf8')
      req.on('data', (d: string) => { data += d })
      req.on('end', () => resolve(data))
      req.on('error', reject)
      req.end()
    })
    const echo = JSON.parse(body) as EchoReply
    assert.equal(echo.headers.cookie, 'a=1; b=2')
    assert.equal(echo.rawHeaders.filter((n) => n.toLowerCase() === 'cookie').length, 1)
  } finally {
    session.close()
  }
})

test('a malformed HTTP/1.1 request gets 400 and the connection closes', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, servername: 'a.example.test', ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => c.write('NOT HTTP AT ALL\r\n\r\n'))
    let got = ''
    c.on('data', (d: Buffer) => { got += d.toString() })
    c.on('error', reject)
    c.on('close', () => resolve(got))
  })
  assert.equal(answer, 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
})
