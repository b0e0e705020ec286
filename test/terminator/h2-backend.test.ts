// HTTP/2 to backends (backend.httpVersion "2", native/src/plane/
// h2_upstream.cc) with real peers: nghttp and curl in front, node:http2
// h2c servers behind, counted per TCP connection. Requests, bodies and
// trailers both ways, streams sharing few backend connections (up to the
// backend's SETTINGS_MAX_CONCURRENT_STREAMS), resets both ways with their
// code, GOAWAY and idle close, HTTP/1.1 clients, 502/504; and the limits: a
// backend that never opens its window, an endless response to a client
// that reads nothing, a malformed frame (that backend connection only).
// Hosts share one certificate: requests pick one by :authority (SPEC §4.2
// coalescing).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import type tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, run, waitFor } from '../helpers/peers'
import { serveConfig, stopClean, tempDir, type TerminatorProcess } from './harness'

const f = fixtures()
const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY } = http2.constants

interface EchoReply {
  method: string
  path: string
  authority: string
  scheme: string
  headers: http2.IncomingHttpHeaders
  size: number
  sha: string
  trailers: http2.IncomingHttpHeaders
}

/** An h2c node:http2 backend behind a plain TCP server that counts its connections and keeps their sockets. */
interface H2cBackend {
  port: number
  /** Connections accepted so far, and those still open. */
  accepted: number
  open: number
  /** The raw socket of each connection, by the terminator's port. */
  raw: Map<number, net.Socket>
  /** The terminator's port of the connection each /echo request came on, by its `tag` parameter. */
  connectionOf: Map<string, number[]>
  /** Streams of /hold, and how each closed (its RST_STREAM code). */
  held: Array<{ stream: http2.ServerHttp2Stream, closed: Promise<number> }>
  /** Bytes the endless responses gave to their stream so far. */
  endless: { written: number, blocked: boolean, rst?: number }
  /** Breaks the connection of the waiting /break stream (a malformed frame). */
  breakNow?: () => void
  close: () => Promise<void>
}

async function h2cBackend (settings: http2.Settings = {}): Promise<H2cBackend> {
  const server = http2.createServer({ settings })
  const b: H2cBackend = { port: 0, accepted: 0, open: 0, raw: new Map(), connectionOf: new Map(), held: [], endless: { written: 0, blocked: false }, close: async () => {} }
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => {
    sessions.add(s)
    s.on('close', () => sessions.delete(s))
    s.on('error', () => {})
  })
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {})
    const url = new URL(String(headers[':path']), 'http://x')
    const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode)))
    switch (url.pathname) {
      case '/hold':
        b.held.push({ stream, closed })
        return
      case '/reset': {
        const code = Number(url.searchParams.get('code'))
        if (url.searchParams.get('after') !== 'head') {
          stream.close(code)
          return
        }
        // node:http2 ends a stream before resetting it after a response
        // began: the RST_STREAM (RFC 9113 §6.4) is written by hand.
        stream.respond({ ':status': 200 })
        stream.write('part', () => setTimeout(() => {
          const rst = Buffer.from([0, 0, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0])
          rst.writeUInt32BE(stream.id ?? 0, 5)
          rst.writeUInt32BE(code, 9)
          b.raw.get(stream.session?.socket.remotePort ?? 0)?.write(rst)
        }, 50))
        return
      }
      case '/goaway': {
        // GOAWAY after this stream, and the connection closes once done.
        const session = stream.session
        stream.respond({ ':status': 200 })
        stream.end('bye', () => {
          session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id)
          session?.close()
        })
        return
      }
      case '/endless': {
        // Writes as long as the stream takes it, as a well-behaved server does.
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' })
        const chunk = crypto.randomBytes(16384)
        const pump = (): void => {
          while (!stream.destroyed) {
            b.endless.written += chunk.length
            if (!stream.write(chunk)) {
              b.endless.blocked = true
              stream.once('drain', () => { b.endless.blocked = false; pump() })
              return
            }
          }
        }
        closed.then((code) => { b.endless.rst = code }, () => {})
        pump()
        return
      }
      case '/break': {
        // When told: a DATA frame on stream 0 (RFC 9113 §6.1: a connection
        // error), written on this connection's socket beside node:http2's frames.
        const socket = b.raw.get(stream.session?.socket.remotePort ?? 0)
        b.breakNow = () => socket?.write(Buffer.from([0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]))
        return
      }
      case '/slow': {
        // A head, then 20 pieces 100 ms apart.
        stream.respond({ ':status': 200 })
        let n = 0
        const timer = setInterval(() => {
          if (stream.destroyed) return clearInterval(timer)
          stream.write(`piece ${n}\n`)
          if (++n === 20) {
            clearInterval(timer)
            stream.end()
          }
        }, 100)
        return
      }
      default:
        break
    }
    const tag = url.searchParams.get('tag')
    if (tag !== null) b.connectionOf.set(tag, [...(b.connectionOf.get(tag) ?? []), stream.session?.socket.remotePort ?? 0])
    const delay = Number(url.searchParams.get('ms') ?? '0')
    const hash = crypto.createHash('sha256')
    let size = 0
    let trailers: http2.IncomingHttpHeaders = {}
    stream.on('data', (d: Buffer) => { hash.update(d); size += d.length })
    stream.on('trailers', (t) => { trailers = t })
    stream.on('end', () => setTimeout(() => {
      if (stream.destroyed) return
      const reply: EchoReply = {
        method: String(headers[':method']),
        path: String(headers[':path']),
        authority: String(headers[':authority']),
        scheme: String(headers[':scheme']),
        headers,
        size,
        sha: hash.digest('hex'),
        trailers,
      }
      stream.respond({ ':status': 200, 'content-type': 'application/json' }, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': reply.sha }))
      stream.end(JSON.stringify(reply))
    }, delay))
  })
  const tcp = net.createServer((socket) => {
    b.accepted++
    b.open++
    b.raw.set(socket.remotePort ?? 0, socket)
    socket.on('close', () => { b.open-- })
    server.emit('connection', socket)
  })
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', () => resolve()))
  b.port = (tcp.address() as net.AddressInfo).port
  b.close = async () => {
    for (const s of sessions) s.destroy()
    for (const s of b.raw.values()) s.destroy()
    await new Promise<void>((resolve) => tcp.close(() => resolve()))
  }
  return b
}

let plain: H2cBackend
let limited: H2cBackend
let fragile: H2cBackend
let shut: H2cBackend
let t: TerminatorProcess
let port: number

before(async () => {
  plain = await h2cBackend()
  limited = await h2cBackend({ maxConcurrentStreams: 10 })
  fragile = await h2cBackend({ maxConcurrentStreams: 2 })
  shut = await h2cBackend({ initialWindowSize: 0 })
  const cert = { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }
  const host = (name: string, address: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    serverName: name, certificates: [cert], backend: { address, mode: 'http', httpVersion: '2', ...extra },
  })
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      host('localhost', `127.0.0.1:${plain.port}`),
      host('limited.localhost', `127.0.0.1:${limited.port}`),
      host('fragile.localhost', `127.0.0.1:${fragile.port}`),
      host('shut.localhost', `127.0.0.1:${shut.port}`, { timeout: '1500ms' }),
      host('silent.localhost', `127.0.0.1:${plain.port}`, { timeout: '500ms' }),
      host('down.localhost', `127.0.0.1:${await freePort()}`),
    ],
  })).t
  port = t.port
})

after(async () => {
  await stopClean(t)
  await Promise.all([plain, limited, fragile, shut].map((b) => b.close()))
})

interface Answer {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
  trailers?: http2.IncomingHttpHeaders
}

function connect (settings?: http2.Settings): http2.ClientHttp2Session {
  const s = http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername: 'localhost', settings })
  s.on('error', () => {})
  return s
}

function request (session: http2.ClientHttp2Session, host: string, headers: http2.OutgoingHttpHeaders, body?: Buffer | ((req: http2.ClientHttp2Stream) => void)): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':authority': `${host}:${port}`, ...headers }, { endStream: body === undefined, waitForTrailers: typeof body === 'function' })
    const chunks: Buffer[] = []
    let head: http2.IncomingHttpHeaders = {}
    let trailers: http2.IncomingHttpHeaders | undefined
    req.on('response', (h) => { head = h })
    req.on('trailers', (h) => { trailers = h })
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks), trailers }))
    req.on('error', reject)
    if (typeof body === 'function') body(req)
    else if (body !== undefined) req.end(body)
  })
}

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')
const backendStreams = (backend: H2cBackend, tag: string): number => backend.connectionOf.get(tag)?.length ?? 0

test('nghttp and curl through to an h2c backend: methods, bodies, :authority and :scheme, forwarding fields, trailers back', async () => {
  const n = await run('nghttp', ['-v', '-H', 'x-forwarded-for: 6.6.6.6', `https://localhost:${port}/echo?via=nghttp`], { timeoutMs: 30_000 })
  assert.equal(n.code, 0, n.stderr + n.stdout)
  assert.match(n.stdout, /The negotiated protocol: h2/)
  assert.match(n.stdout, /recv \(stream_id=\d+\) :status: 200/)
  assert.match(n.stdout, /recv \(stream_id=\d+\) x-checksum: [0-9a-f]{64}/, 'the backend\'s trailers reach nghttp')
  assert.match(n.stdout, /"scheme":"http".*"x-forwarded-for":"127\.0\.0\.1","x-forwarded-proto":"https"/)
  const data = crypto.randomBytes(300_000)
  const file = path.join(tempDir(), 'body')
  fs.writeFileSync(file, data)
  const c = await curl(['--cacert', f.path('ca.pem'), '-s', '--http2', '--resolve', `localhost:${port}:127.0.0.1`, '--data-binary', `@${file}`, '-H', 'content-type: application/x-test',
    `https://localhost:${port}/echo?via=curl`])
  const reply = JSON.parse(c.stdout) as EchoReply
  assert.equal(reply.method, 'POST')
  assert.equal(reply.path, '/echo?via=curl')
  assert.equal(reply.authority, `localhost:${port}`)
  assert.equal(reply.scheme, 'http', 'h2c: the backend\'s own scheme; the client\'s is in x-forwarded-proto')
  assert.equal(reply.headers['x-forwarded-proto'], 'https')
  assert.equal(reply.headers['x-forwarded-for'], '127.0.0.1')
  assert.equal(reply.headers['content-type'], 'application/x-test')
  assert.equal(reply.size, data.length)
  assert.equal(reply.sha, sha(data))
})

test('request trailers reach the backend; response trailers reach the client', async () => {
  const session = connect()
  try {
    const body = crypto.randomBytes(100_000)
    const r = await request(session, 'localhost', { ':method': 'POST', ':path': '/echo', te: 'trailers' }, (req) => {
      req.on('wantTrailers', () => req.sendTrailers({ 'x-request-sum': sha(body), 'x-forwarded-host': 'evil' }))
      req.end(body)
    })
    const reply = JSON.parse(r.body.toString()) as EchoReply
    assert.equal(reply.size, body.length)
    assert.equal(reply.trailers['x-request-sum'], sha(body))
    assert.equal(reply.trailers['x-forwarded-host'], undefined, 'reserved fields are removed from trailers too')
    assert.equal(reply.headers.te, 'trailers')
    assert.equal(r.trailers?.['x-checksum'], sha(body))
  } finally {
    session.close()
  }
})

test('concurrent client streams share few backend connections: one while the backend allows them all, SETTINGS_MAX_CONCURRENT_STREAMS per connection otherwise', async () => {
  const a = connect()
  const b = connect()
  try {
    const used = (backend: H2cBackend, tag: string): number => new Set(backend.connectionOf.get(tag)).size
    const answers = await Promise.all([a, b].flatMap((s) => Array.from({ length: 50 }, (_, i) => request(s, 'localhost', { ':path': `/echo?ms=200&tag=all&i=${i}` }))))
    assert.ok(answers.every((r) => r.status === 200))
    assert.equal(backendStreams(plain, 'all'), 100)
    assert.equal(used(plain, 'all'), 1, '100 streams of two clients on one backend connection')
    // The backend allows 10 streams per connection: 60 at once take 6 (once its SETTINGS are known).
    assert.equal((await request(a, 'limited.localhost', { ':path': '/echo' })).status, 200)
    const many = await Promise.all(Array.from({ length: 60 }, (_, i) => request(i % 2 === 0 ? a : b, 'limited.localhost', { ':path': `/echo?ms=300&tag=ten&i=${i}` })))
    assert.ok(many.every((r) => r.status === 200))
    assert.equal(used(limited, 'ten'), 6, 'backend connections for 60 streams at 10 each')
  } finally {
    a.close()
    b.close()
  }
})

test('resets pass both ways with their code: a client\'s reset reaches the backend stream, a backend\'s the client stream', async () => {
  const session = connect()
  try {
    for (const code of [NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR]) {
      const req = session.request({ ':authority': `localhost:${port}`, ':path': '/hold' })
      req.on('error', () => {})
      await waitFor(() => plain.held.length > 0, 5_000, 'the held stream')
      const held = plain.held.shift() as H2cBackend['held'][number]
      req.close(code)
      assert.equal(await held.closed, code)
    }
    for (const [after, code] of [['none', NGHTTP2_ENHANCE_YOUR_CALM], ['head', NGHTTP2_INADEQUATE_SECURITY]] as const) {
      const req = session.request({ ':authority': `localhost:${port}`, ':path': `/reset?code=${code}&after=${after}` })
      let status = 0
      req.on('response', (h) => { status = Number(h[':status']) })
      req.on('error', () => {})
      req.resume()
      await new Promise((resolve) => req.on('close', resolve))
      assert.equal(req.rstCode, code, `reset ${after === 'head' ? 'after' : 'before'} the response head`)
      assert.equal(status, after === 'head' ? 200 : 0)
    }
    // The session is still good.
    assert.equal((await request(session, 'localhost', { ':path': '/echo' })).status, 200)
  } finally {
    session.close()
  }
})

test('a GOAWAY from the backend drains its connection: the next request opens another; an idle one closes after 4 s', async () => {
  const session = connect()
  try {
    await waitFor(() => plain.open === 0, 10_000, 'no backend connection open')
    const before = plain.accepted
    assert.equal((await request(session, 'localhost', { ':path': '/goaway' })).body.toString(), 'bye')
    assert.equal((await request(session, 'localhost', { ':path': '/echo?tag=after-goaway' })).status, 200)
    assert.equal(plain.accepted - before, 2, 'the request after the GOAWAY went on a new connection')
    await waitFor(() => plain.open === 1, 5_000, 'the drained connection closed')
    const idleFrom = Date.now()
    await waitFor(() => plain.open === 0, 10_000, 'the idle connection closed')
    const idle = Date.now() - idleFrom
    assert.ok(idle > 2_500 && idle < 8_000, `closed after ${idle} ms idle`)
  } finally {
    session.close()
  }
})

test('HTTP/1.1 clients: offering http/1.1 only is refused at the handshake; no ALPN at all gets 505', async () => {
  const base = ['--cacert', f.path('ca.pem'), '-s', '--resolve', `localhost:${port}:127.0.0.1`]
  const alpn = await curl([...base, '--http1.1', `https://localhost:${port}/echo`])
  assert.equal(alpn.code, 35, 'curl: TLS handshake failed (no_application_protocol)')
  const none = await curl([...base, '--http1.1', '--no-alpn', '-w', '\n%{http_code}', `https://localhost:${port}/echo`])
  assert.equal(none.stdout, 'This host is served over HTTP/2 only\n\n505')
})

test('502 when the backend cannot be reached, 504 when it stays silent; the session goes on', async () => {
  const session = connect()
  try {
    const down = await request(session, 'down.localhost', { ':path': '/x' })
    assert.equal(down.status, 502)
    assert.equal(down.body.toString(), 'Bad Gateway\n')
    const silent = await request(session, 'silent.localhost', { ':path': '/hold' })
    assert.equal(silent.status, 504)
    assert.equal(silent.body.toString(), 'Gateway Timeout\n')
    // The silent backend's stream was cancelled.
    const held = plain.held.shift() as H2cBackend['held'][number]
    assert.equal(await held.closed, NGHTTP2_CANCEL)
    assert.equal((await request(session, 'localhost', { ':path': '/echo' })).status, 200)
  } finally {
    session.close()
  }
  await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'down.localhost' && l.kind === 'connect', 'the 502 line')
  await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'silent.localhost' && l.kind === 'timeout', 'the 504 line')
})

test('a backend that never opens its window: the client\'s upload stops at its stream window, then 504', async () => {
  const session = connect()
  try {
    const socket = session.socket as tls.TLSSocket
    const sentBefore = socket.bytesWritten
    const upload = crypto.randomBytes(4 << 20)
    const answer = request(session, 'shut.localhost', { ':method': 'POST', ':path': '/echo' }, upload)
    await new Promise((resolve) => setTimeout(resolve, 800))
    const sent = socket.bytesWritten - sentBefore
    assert.ok(sent < 256 * 1024, `the client could send ${sent} bytes of 4 MiB`)
    assert.equal((await answer).status, 504)
  } finally {
    session.close()
  }
})

test('an endless response to a client that reads nothing: the backend is held to about two stream windows', async () => {
  // Initial window 0: the front can send the client no DATA at all.
  const session = connect({ initialWindowSize: 0 })
  try {
    const req = session.request({ ':authority': `localhost:${port}`, ':path': '/endless' })
    req.on('error', () => {})
    await new Promise((resolve) => req.once('response', resolve))
    await waitFor(() => plain.endless.blocked, 5_000, 'the backend blocked')
    await new Promise((resolve) => setTimeout(resolve, 500))
    const written = plain.endless.written
    assert.ok(written < 512 * 1024, `the backend wrote ${written} bytes`)
    assert.ok(plain.endless.blocked)
    req.close(NGHTTP2_CANCEL)
    await waitFor(() => plain.endless.rst !== undefined, 5_000, 'the backend stream reset')
    assert.equal(plain.endless.rst, NGHTTP2_CANCEL)
  } finally {
    session.close()
  }
})

test('a malformed frame from the backend ends that backend connection only: its streams get 502 or a reset, others go on', async () => {
  const session = connect()
  try {
    // The backend allows 2 streams per connection; learn it first.
    assert.equal((await request(session, 'fragile.localhost', { ':path': '/echo' })).status, 200)
    const before = fragile.accepted
    // Connection A: a response under way, and the stream that breaks it.
    const underWay = session.request({ ':authority': `fragile.localhost:${port}`, ':path': '/slow' })
    underWay.on('error', () => {})
    underWay.resume()
    const reset = new Promise<number>((resolve) => underWay.on('close', () => resolve(underWay.rstCode)))
    await new Promise((resolve) => underWay.once('response', resolve))
    const broken = request(session, 'fragile.localhost', { ':path': '/break' })
    await waitFor(() => fragile.breakNow !== undefined, 5_000, 'the /break stream')
    // Connection B (A is full), a response under way too.
    const other = request(session, 'fragile.localhost', { ':path': '/slow' })
    await new Promise((resolve) => setTimeout(resolve, 250))
    assert.equal(fragile.accepted - before, 1, 'a second backend connection')
    fragile.breakNow?.()
    assert.equal((await broken).status, 502)
    assert.equal(await reset, NGHTTP2_INTERNAL_ERROR)
    const done = await other
    assert.equal(done.status, 200)
    assert.equal(done.body.toString(), Array.from({ length: 20 }, (_, i) => `piece ${i}\n`).join(''))
    assert.equal((await request(session, 'fragile.localhost', { ':path': '/echo' })).status, 200)
    assert.equal((await request(session, 'localhost', { ':path': '/echo' })).status, 200)
    assert.ok(fragile.accepted - before <= 2)
  } finally {
    session.close()
  }
})
