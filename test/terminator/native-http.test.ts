// http mode's HTTP/1.1 front (native/src/plane/http_proxy.cc), through raw
// HTTP/1.1 over node:tls so that every byte on the wire is ours: pipelining,
// keep-alive to a pooled backend, chunked bodies both ways, HEAD,
// Connection: close, HTTP/1.0 clients, Expect: 100-continue, CONNECT, heads
// and framing it refuses (400, 431, 501, as Node's http answered them),
// upgrades (a 101 and the tunnel after it, a declined one), a malformed
// chunked body, a backend that closes its idle connections.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
let echo: HttpEcho
/** The backend socket each request arrived on, by url. */
const socketOf = new Map<string, net.Socket>()
let chunky: http.Server
/** Answers `GET /decline` with 200, any other request with 101 and then echoes (after a greeting). */
let upgrader: net.Server
const upgradeHeads: string[] = []
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
  upgrader = net.createServer({ allowHalfOpen: true }, (s) => {
    let buf = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d])
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      s.removeListener('data', onData)
      const head = buf.subarray(0, end).toString('latin1')
      upgradeHeads.push(head)
      if (head.startsWith('GET /decline ')) {
        s.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\ndeclined')
        return
      }
      s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Backend: yes\r\n\r\nhello from the backend\n')
      const rest = buf.subarray(end + 4)
      if (rest.length > 0) s.write(rest)
      s.pipe(s)
    }
    s.on('data', onData)
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => upgrader.listen(0, '127.0.0.1', resolve))
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], alpn: ['http/1.1'], options: ['StdEnvVars'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      { serverName: 'a.example.test', certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }], alpn: ['http/1.1'], backend: { address: `127.0.0.1:${(chunky.address() as net.AddressInfo).port}`, mode: 'http' } },
      { serverName: 'up.a.example.test', certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }], alpn: ['http/1.1'], backend: { address: `127.0.0.1:${(upgrader.address() as net.AddressInfo).port}`, mode: 'http' } },
    ],
  })).t
})

after(async () => {
  await stopClean(t)
  await echo.close()
  chunky.closeAllConnections()
  await new Promise<void>((resolve) => chunky.close(() => resolve()))
  await new Promise<void>((resolve) => upgrader.close(() => resolve()))
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

test('HTTP/1.0 after HTTP/1.1 on one connection: both answered, the HTTP/1.0 one closes it', async () => {
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
  assert.equal(responses(data.subarray(at))[0].headers.connection, 'close')
})

test('HTTP/1.0: kept alive when asked and the length is known; a chunked response is decoded for it and ends the connection', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('GET /bytes/10 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\nGET /bytes/20 HTTP/1.0\r\nHost: localhost\r\n\r\n')
  const list = responses(await all)
  assert.deepEqual(list.map((r) => [r.status, r.headers.connection, r.body.length]), [[200, 'keep-alive', 10], [200, 'close', 20]])
  assert.ok(list[1].body.equals(echo.blob(20)))
  // The backend answers in chunks: an HTTP/1.0 client reads the bytes until the close.
  const c = await open('a.example.test')
  const raw = untilClose(c)
  c.write('GET / HTTP/1.0\r\nHost: a.example.test\r\nConnection: keep-alive\r\n\r\n')
  const text = (await raw).toString('latin1')
  const [head, body] = text.split('\r\n\r\n')
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/)
  assert.doesNotMatch(head, /transfer-encoding/i)
  assert.match(head, /\r\nConnection: close$/)
  assert.equal(body, 'one,two')
})

test('Expect: 100-continue reaches the backend, whose 100 Continue comes back before the body goes; another expectation gets 417', async () => {
  const s = await open()
  const all = untilClose(s)
  const body = crypto.randomBytes(100_000)
  const interim = new Promise<string>((resolve) => s.once('data', (d: Buffer) => resolve(d.toString('latin1'))))
  s.write(`POST /sha256 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
  assert.equal(await interim, 'HTTP/1.1 100 Continue\r\n\r\n')
  s.write(body)
  const data = await all
  const final = responses(data.subarray(data.indexOf('\r\n\r\n') + 4))
  assert.equal(final[0].body.toString(), `${body.length} ${crypto.createHash('sha256').update(body).digest('hex')}`)
  const e = await open()
  const refused = untilClose(e)
  e.write('POST /sha256 HTTP/1.1\r\nHost: localhost\r\nExpect: the-impossible\r\nContent-Length: 5\r\n\r\n')
  const [r] = responses(await refused)
  assert.deepEqual([r.status, r.headers.connection], [417, 'close'])
})

test('CONNECT gets 405 and the connection closes', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nbytes of a tunnel')
  const [r] = responses(await all)
  assert.deepEqual([r.status, r.headers.connection, r.body.toString()], [405, 'close', 'CONNECT is not supported\n'])
})

test('heads and framing Node\'s parser refused: 400, 431 over 16 KiB, 501 for another transfer coding; each closes its connection', async () => {
  const answer = (status: number, reason: string): string => `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`
  const cases: Array<[string, string]> = [
    ['GET / HTTP/1.1\nHost: localhost\n\n', answer(400, 'Bad Request')],
    ['GET / HTTP/1.1\r\nHost: localhost\r\n folded: value\r\n\r\n', answer(400, 'Bad Request')],
    ['GET / HTTP/1.1\r\nX-No-Host: 1\r\n\r\n', answer(400, 'Bad Request')],
    ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', answer(400, 'Bad Request')],
    ['POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', answer(400, 'Bad Request')],
    ['POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n', answer(400, 'Bad Request')],
    ['POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n', answer(400, 'Bad Request')],
    ['POST / HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n', answer(400, 'Bad Request')],
    ['POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', answer(501, 'Not Implemented')],
    [`GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`, answer(431, 'Request Header Fields Too Large')],
    // Never ends: refused once it passes the limit.
    [`GET / HTTP/1.1\r\nHost: localhost\r\nX-Endless: ${'a'.repeat(100 * 1024)}`, answer(431, 'Request Header Fields Too Large')],
  ]
  for (const [request, want] of cases) {
    const s = await open()
    const all = untilClose(s)
    s.write(request)
    assert.equal((await all).toString('latin1'), want, JSON.stringify(request.slice(0, 80)))
  }
})

test('Upgrade: the backend\'s 101 makes a byte tunnel (both ways, half-close); a declined upgrade is relayed and closes the connection', async () => {
  const s = await open('up.a.example.test')
  const got: Buffer[] = []
  let size = 0
  const waitFor = (n: number): Promise<Buffer> => new Promise((resolve) => {
    const check = (): void => {
      if (size < n) return
      s.removeListener('data', onData)
      resolve(Buffer.concat(got))
    }
    const onData = (d: Buffer): void => { got.push(d); size += d.length; check() }
    s.on('data', onData)
    check()
  })
  s.write('GET /tunnel HTTP/1.1\r\nHost: up.a.example.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\nX-Forwarded-For: 6.6.6.6\r\n\r\nsent early')
  const head = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Backend: yes\r\n\r\n'
  const greeting = 'hello from the backend\n'
  const first = await waitFor(head.length + greeting.length + 'sent early'.length)
  assert.equal(first.toString('latin1'), head + greeting + 'sent early')
  const backendHead = upgradeHeads.at(-1) ?? ''
  assert.match(backendHead, /^GET \/tunnel HTTP\/1\.1\r\n/)
  assert.match(backendHead, /\r\nConnection: Upgrade\r\nUpgrade: echo\r\n/)
  assert.match(backendHead, /\r\nX-Forwarded-For: 127\.0\.0\.1\r\n/)
  assert.doesNotMatch(backendHead, /6\.6\.6\.6|keep-alive/)
  got.length = 0
  size = 0
  const data = crypto.randomBytes(3 << 20)
  const echoed = waitFor(data.length)
  s.write(data)
  assert.ok((await echoed).equals(data))
  const ended = new Promise<void>((resolve) => s.once('end', () => resolve()))
  s.end()
  await ended
  const d = await open('up.a.example.test')
  const all = untilClose(d)
  d.write('GET /decline HTTP/1.1\r\nHost: up.a.example.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n')
  const [r] = responses(await all)
  assert.deepEqual([r.status, r.headers.connection, r.body.toString()], [200, 'close', 'declined'])
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

test('native, not Node\'s http: the client\'s field names reach the backend as written, ours as we spell them', async () => {
  const s = await open()
  const all = untilClose(s)
  s.write('GET /case HTTP/1.1\r\nHost: localhost\r\nX-Mixed-Case: 1\r\nConnection: close\r\n\r\n')
  const reply = JSON.parse(responses(await all)[0].body.toString()) as EchoReply
  assert.ok(reply.rawHeaders.includes('X-Mixed-Case'), reply.rawHeaders.join(' '))
  assert.ok(reply.rawHeaders.includes('X-Forwarded-For'), reply.rawHeaders.join(' '))
})
