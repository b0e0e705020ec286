// http mode on the native data plane (native/src/plane/http_proxy.cc), through
// raw HTTP/1.1 over node:tls so that every byte on the wire is ours:
// pipelining, keep-alive to a pooled backend, chunked bodies both ways,
// HEAD, Connection: close, the hand-off to JS at a request boundary
// (HTTP/1.0 after a native request), a malformed chunked body, a backend
// that closes its idle connections. The same tests pass on the JS data
// plane (RUSTLS_NODE_JS_PUMP=1), but the one that tells them apart.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http from 'node:http'
import type net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { JS_PUMP } from '../helpers/tls'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
let echo: HttpEcho
/** The backend socket each request arrived on, by url. */
const socketOf = new Map<string, net.Socket>()
let chunky: http.Server
let t: TerminatorProcess

before(async () => {
  echo = await httpEcho()
  echo.server.on('request', (req: http.IncomingMessage) => { socketOf.set(req.url ?? '', req.socket) })
  // Answers in chunks (no content-length) and closes idle connections fast.
  chunky = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('one,')
      setTimeout(() => res.end('two'), 20)
    })
  })
  chunky.keepAliveTimeout = 100
  await new Promise<void>((resolve) => chunky.listen(0, '127.0.0.1', resolve))
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], alpn: ['http/1.1'], options: ['StdEnvVars'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      { serverName: 'a.example.test', certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }], alpn: ['http/1.1'], backend: { address: `127.0.0.1:${(chunky.address() as net.AddressInfo).port}`, mode: 'http' } },
    ],
  })).t
})

after(async () => {
  await stopClean(t)
  await echo.close()
  chunky.closeAllConnections()
  await new Promise<void>((resolve) => chunky.close(() => resolve()))
})

interface Response { status: number, headers: Record<string, string>, body: Buffer, raw: string }

/** Opens a TLS connection to the terminator for `servername`. */
function open (servername = 'localhost'): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: t.port, servername, ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Every byte the server sends until it closes the connection. */
function untilClose (s: tls.TLSSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => chunks.push(d))
    s.once('end', () => resolve(Buffer.concat(chunks)))
    s.once('error', reject)
  })
}

/** Splits a byte stream into HTTP/1.1 responses (content-length or chunked bodies; `bodyless`: HEAD). */
function responses (data: Buffer, bodyless: boolean[] = []): Response[] {
  const out: Response[] = []
  let at = 0
  while (at < data.length) {
    const end = data.indexOf('\r\n\r\n', at)
    assert.ok(end >= 0, `a complete head at ${at}: ${data.subarray(at).toString('latin1')}`)
    const head = data.subarray(at, end).toString('latin1')
    const [line, ...fields] = head.split('\r\n')
    const headers: Record<string, string> = {}
    for (const field of fields) {
      const colon = field.indexOf(':')
      headers[field.slice(0, colon).toLowerCase()] = field.slice(colon + 1).trim()
    }
    at = end + 4
    let body: Buffer = Buffer.alloc(0)
    if (bodyless[out.length] !== true) {
      if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length'])
        body = data.subarray(at, at + n)
        at += n
      } else if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = []
        for (;;) {
          const lf = data.indexOf('\r\n', at)
          const size = parseInt(data.subarray(at, lf).toString('latin1'), 16)
          at = lf + 2
          if (size === 0) {
            at += 2
            break
          }
          parts.push(data.subarray(at, at + size))
          at += size + 2
        }
        body = Buffer.concat(parts)
      }
    }
    out.push({ status: Number(line.split(' ')[1]), headers, body, raw: head })
  }
  return out
}

test('pipelined requests in one write get their responses in order; Connection: close ends the connection after the last', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('GET /p1 HTTP/1.1\r\nHost: localhost\r\n\r\n' +
    'GET /p2 HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n' +
    'GET /p3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  const list = responses(await all)
  assert.deepEqual(list.map((r) => r.status), [200, 200, 200])
  const replies = list.map((r) => JSON.parse(r.body.toString()) as EchoReply)
  assert.deepEqual(replies.map((r) => r.url), ['/p1', '/p2', '/p3'])
  for (const r of replies) {
    assert.equal(r.headers['x-forwarded-for'], '127.0.0.1', 'our X-Forwarded-For, the spoofed one gone')
    assert.equal(r.headers['x-forwarded-proto'], 'https')
    assert.equal(r.headers['x-ssl-protocol'], 'TLSv1.3')
    assert.equal(r.headers['x-ssl-tls-sni'], 'localhost')
  }
  assert.equal(list[2].headers.connection, 'close')
})

test('keep-alive: sequential requests on two client connections share pooled backend connections', async () => {
  for (let c = 0; c < 2; c++) {
    const s = await open()
    for (let i = 0; i < 5; i++) {
      const got = new Promise<Buffer>((resolve) => s.once('data', resolve))
      s.write(`GET /k${c}${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`)
      const [r] = responses(await got)
      assert.equal(r.status, 200)
      assert.equal((JSON.parse(r.body.toString()) as EchoReply).url, `/k${c}${i}`)
    }
    s.end()
  }
  const used = new Set([0, 1].flatMap((c) => [0, 1, 2, 3, 4].map((i) => socketOf.get(`/k${c}${i}`))))
  assert.ok(!used.has(undefined), 'every request reached the backend')
  assert.equal(used.size, 1, 'ten requests, one after the other, on one backend connection')
})

test('a chunked request body reaches the backend byte-exact; a chunked response comes back as sent', async () => {
  const s = await open()
  const all = untilClose(s)
  const parts = [crypto.randomBytes(1000), crypto.randomBytes(70_000), crypto.randomBytes(5)]
  const body = Buffer.concat(parts)
  s.write('POST /sha256 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n')
  for (const p of parts) s.write(Buffer.concat([Buffer.from(`${p.length.toString(16)};ext=1\r\n`), p, Buffer.from('\r\n')]))
  s.write('0\r\nX-Trailer: yes\r\n\r\n')
  const first = await new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d])
      if (got.includes('\r\n\r\n') && got.length > got.indexOf('\r\n\r\n') + 4) {
        s.removeListener('data', onData)
        resolve(got)
      }
    }
    s.on('data', onData)
  })
  assert.equal(responses(first)[0].body.toString(), `${body.length} ${crypto.createHash('sha256').update(body).digest('hex')}`)
  s.end()
  await all
  const c = await open('a.example.test')
  const chunked = untilClose(c)
  c.write('GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n')
  const [r] = responses(await chunked)
  assert.equal(r.headers['transfer-encoding'], 'chunked')
  assert.equal(r.body.toString(), 'one,two')
})

test('HEAD: a head only, and the next request on the connection is answered', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('HEAD /bytes/5000 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /bytes/10 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  const [head, get] = responses(await all, [true])
  assert.equal(head.status, 200)
  assert.equal(head.headers['content-length'], '5000')
  assert.equal(head.body.length, 0)
  assert.ok(get.body.equals(echo.blob(10)))
})

test('a request the native parser does not take (HTTP/1.0) after one it did: both answered on one connection', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await new Promise((resolve) => s.once('data', resolve))
  s.write('GET /second HTTP/1.0\r\nHost: localhost\r\n\r\n')
  const data = await all
  const at = data.indexOf('HTTP/1.1 200', 1)
  assert.ok(at > 0, data.toString('latin1'))
  const replies = [...responses(data.subarray(0, at)), ...responses(data.subarray(at))].map((r) => JSON.parse(r.body.toString()) as EchoReply)
  assert.deepEqual(replies.map((r) => r.url), ['/first', '/second'])
  assert.equal(replies[1].headers['x-forwarded-for'], '127.0.0.1')
})

test('a malformed chunked body ends that connection only; the next connection is served', async () => {
  const s = await open()
  const ended = untilClose(s).catch(() => Buffer.alloc(0))
  s.write('POST /sha256 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
  await ended
  const c = await open()
  const all = untilClose(c)
  c.write('GET /after HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  assert.equal(responses(await all)[0].status, 200)
})

test('a backend that closes its idle connections: the next request still gets its answer', async () => {
  for (let i = 0; i < 3; i++) {
    const c = await open('a.example.test')
    const all = untilClose(c)
    c.write('GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n')
    assert.equal(responses(await all)[0].status, 200)
    // Past the backend's 100 ms keepAliveTimeout: the pooled connection is gone.
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
})

test('native, not Node\'s http: the client\'s field names reach the backend as written, ours as we spell them', { skip: JS_PUMP ? 'RUSTLS_NODE_JS_PUMP=1: the JS data plane lower-cases every name' : false }, async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('GET /case HTTP/1.1\r\nHost: localhost\r\nX-Mixed-Case: 1\r\nConnection: close\r\n\r\n')
  const reply = JSON.parse(responses(await all)[0].body.toString()) as EchoReply
  assert.ok(reply.rawHeaders.includes('X-Mixed-Case'), reply.rawHeaders.join(' '))
  assert.ok(reply.rawHeaders.includes('X-Forwarded-For'), reply.rawHeaders.join(' '))
})
