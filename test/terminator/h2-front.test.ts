// The native HTTP/2 front of http mode (native/src/plane/h2_front.cc) with
// real peers: node:http2 (many concurrent streams, large bodies both ways,
// with and without content-length, trailers, drain on SIGTERM), nghttp
// (Debian nghttp2-client), curl, and 502/504 from HTTP/1.1 backends.
// SETTINGS_MAX_CONCURRENT_STREAMS is the front's configured value, which
// Node's http2 server never sends: every session here is the native front's.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, run } from '../helpers/peers'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
const STREAMS = 50
let echo: HttpEcho
let t: TerminatorProcess
let port: number
let metricsPort: number

before(async () => {
  echo = await httpEcho()
  metricsPort = await freePort()
  const cert = { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }
  const deadPort = await freePort()
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    http2: { maxConcurrentStreams: STREAMS },
    hosts: [
      { serverName: 'localhost', certificates: [cert], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http', timeout: '700ms' } },
      // Same certificate: a request naming it on localhost's connection is coalesced there... and its backend is down.
      { serverName: 'dead.localhost', certificates: [cert], backend: { address: `127.0.0.1:${deadPort}`, mode: 'http' } },
      { serverName: 'http1.localhost', certificates: [cert], alpn: ['http/1.1'], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
    ],
  })).t
  port = t.port
})

after(async () => {
  await stopClean(t)
  await echo.close()
})

interface Answer {
  status: number
  headers: http2.IncomingHttpHeaders
  body: Buffer
  trailers: http2.IncomingHttpHeaders | undefined
}

function connect (servername = 'localhost'): http2.ClientHttp2Session {
  return http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername })
}

function request (session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | ((req: http2.ClientHttp2Stream) => void)): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':authority': `localhost:${port}`, ...headers }, { endStream: body === undefined })
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

async function metric (name: string): Promise<string[]> {
  const r = await curl(['-s', `http://127.0.0.1:${metricsPort}/metrics`])
  return r.stdout.split('\n').filter((l) => l.startsWith(name))
}

test('node:http2: 300 requests at once on one session, under the front\'s SETTINGS_MAX_CONCURRENT_STREAMS', async () => {
  const session = connect()
  try {
    await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()))
    assert.equal(session.remoteSettings.maxConcurrentStreams, STREAMS)
    const before = echo.seen.length
    const answers = await Promise.all(Array.from({ length: 300 }, (_, i) => request(session, { ':path': `/headers?i=${i}` })))
    answers.forEach((a, i) => {
      assert.equal(a.status, 200)
      const reply = JSON.parse(a.body.toString()) as EchoReply
      assert.equal(reply.url, `/headers?i=${i}`)
      assert.equal(reply.httpVersion, '1.1')
      assert.equal(reply.headers.host, `localhost:${port}`)
      assert.equal(reply.headers['x-forwarded-proto'], 'https')
      assert.equal(reply.headers['x-forwarded-for'], '127.0.0.1')
    })
    assert.equal(echo.seen.length - before, 300)
  } finally {
    session.close()
  }
  const lines = await metric('rustls_node_http_responses_total{status="200"}')
  assert.ok(Number(lines[0]?.split(' ')[1]) >= 300, lines.join('\n'))
})

test('node:http2: 10 MiB down, 8 MiB up with and without content-length, byte-exact', async () => {
  const session = connect()
  try {
    const down = await request(session, { ':path': `/bytes/${10 << 20}` })
    assert.equal(down.status, 200)
    assert.equal(down.headers['content-length'], String(10 << 20))
    assert.equal(sha(down.body), sha(echo.blob(10 << 20)))
    const data = crypto.randomBytes(8 << 20)
    // Without content-length: chunked to the backend, in pieces as they come.
    const streamed = await request(session, { ':method': 'POST', ':path': '/sha256' }, (req) => {
      let off = 0
      const pump = (): void => {
        while (off < data.length) {
          const piece = data.subarray(off, off + 100_000)
          off += piece.length
          if (!req.write(piece)) {
            req.once('drain', pump)
            return
          }
        }
        req.end()
      }
      pump()
    })
    assert.equal(streamed.body.toString(), `${data.length} ${sha(data)}`)
    const sized = await request(session, { ':method': 'PUT', ':path': '/sha256', 'content-length': String(data.length) }, data)
    assert.equal(sized.body.toString(), `${data.length} ${sha(data)}`)
    // A POST without a body: Content-Length: 0 for the backend.
    const empty = await request(session, { ':method': 'POST', ':path': '/echo-empty' })
    assert.equal((JSON.parse(empty.body.toString()) as EchoReply).headers['content-length'], '0')
  } finally {
    session.close()
  }
})

test('node:http2: a chunked response\'s trailers arrive as HTTP/2 trailers; HEAD and 204 carry no body', async () => {
  const session = connect()
  try {
    const r = await request(session, { ':path': '/trailers' })
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'first part, second part\n')
    assert.equal(r.headers['transfer-encoding'], undefined)
    assert.equal(r.headers.trailer, undefined, 'hop-by-hop Trailer field dropped')
    assert.equal(r.trailers?.['x-checksum'], 'c0ffee')
    assert.equal(r.trailers?.['x-count'], '2')
    const head = await request(session, { ':method': 'HEAD', ':path': `/bytes/${1 << 16}` })
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], String(1 << 16))
    assert.equal(head.body.length, 0)
    const none = await request(session, { ':path': '/status/204' })
    assert.equal(none.status, 204)
    assert.equal(none.body.length, 0)
  } finally {
    session.close()
  }
})

test('SPEC §4.2 per stream: coalesced host with its backend down → 502; silent backend → 504; CONNECT → 405', async () => {
  const session = connect()
  try {
    const dead = await request(session, { ':path': '/x', ':authority': `dead.localhost:${port}` })
    assert.equal(dead.status, 502)
    assert.equal(dead.body.toString(), 'Bad Gateway\n')
    const stall = await request(session, { ':path': '/stall' })
    assert.equal(stall.status, 504)
    assert.equal(stall.body.toString(), 'Gateway Timeout\n')
    const connect = await request(session, { ':method': 'CONNECT', ':authority': 'example.com:443' })
    assert.equal(connect.status, 405)
    assert.equal(connect.body.toString(), 'CONNECT is not supported\n')
    // The session survives all three.
    const ok = await request(session, { ':path': '/after' })
    assert.equal(ok.status, 200)
  } finally {
    session.close()
  }
  const kinds = await metric('rustls_node_backend_errors_total')
  assert.ok(kinds.some((l) => l.startsWith('rustls_node_backend_errors_total{kind="connect"}')), kinds.join('\n'))
  assert.ok(kinds.some((l) => l.startsWith('rustls_node_backend_errors_total{kind="timeout"}')), kinds.join('\n'))
  await t.waitForLog((l) => l.msg === 'backend unavailable' && l.kind === 'timeout', 'the 504 log line')
})

test('nghttp (nghttp2-client): several streams on one connection, each answered', async () => {
  const urls = ['/a', '/b', `/bytes/${1 << 20}`].map((p) => `https://localhost:${port}${p}`)
  const r = await run('nghttp', ['-n', '-s', '-v', ...urls], { timeoutMs: 30_000 })
  assert.equal(r.code, 0, r.stderr + r.stdout)
  assert.match(r.stdout, /The negotiated protocol: h2/)
  assert.equal(r.stdout.match(/recv \(stream_id=\d+\) :status: 200/g)?.length, 3, r.stdout)
  assert.match(r.stdout, /\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):50\]/)
})

test('curl: --http2 speaks h2 to the native front; --http2-prior-knowledge over TLS still follows ALPN (http/1.1-only host)', async () => {
  const base = ['--cacert', f.path('ca.pem'), '-s', '-o', '/dev/null', '-w', '%{http_version} %{http_code}']
  const h2 = await curl([...base, '--http2', '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/curl`])
  assert.equal(h2.stdout, '2 200')
  // (That host's name is not in the certificate: -k; only ALPN is at stake here.)
  const prior = await curl([...base, '-k', '--http2-prior-knowledge', '--resolve', `http1.localhost:${port}:127.0.0.1`, `https://http1.localhost:${port}/curl`])
  assert.equal(prior.stdout, '1.1 200')
})

test('the HTTP/2 connection preface without ALPN h2 is an HTTP/1.1 request: 400, closed', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const c = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca }, () => c.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'))
    let got = ''
    c.on('data', (d: Buffer) => { got += d.toString() })
    c.on('error', reject)
    c.on('close', () => resolve(got))
  })
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/)
})

test('SIGTERM: GOAWAY, the stream under way finishes, the process exits 0', async () => {
  const echo2 = await httpEcho()
  const cert = { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }
  const { t: t2 } = await serveConfig({ listen: ['127.0.0.1:0'], hosts: [{ serverName: 'localhost', certificates: [cert], backend: { address: `127.0.0.1:${echo2.port}`, mode: 'http' } }] })
  try {
    const session = http2.connect(`https://127.0.0.1:${t2.port}`, { ca: f.ca, servername: 'localhost' })
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)))
    const size = 6 * 65536
    const slow = request(session, { ':path': `/slow/${size}?ms=60`, ':authority': `localhost:${t2.port}` })
    await new Promise((resolve) => setTimeout(resolve, 100))
    t2.signal('SIGTERM')
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR)
    const r = await slow
    assert.equal(r.status, 200)
    assert.equal(sha(r.body), sha(echo2.blob(size)))
    session.close()
    const exit = await t2.exited
    assert.equal(exit.code, 0)
  } finally {
    await t2.stop()
    await echo2.close()
  }
})

test('an h2 host whose port is closed mid-stream: the client sees a reset, never a hang', async () => {
  // A backend that answers a head and dies: the stream is reset (the session stays).
  const server = net.createServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort')))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const cert = { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }
  const { t: t3 } = await serveConfig({ listen: ['127.0.0.1:0'], hosts: [{ serverName: 'localhost', certificates: [cert], backend: { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, mode: 'http' } }] })
  try {
    const session = http2.connect(`https://127.0.0.1:${t3.port}`, { ca: f.ca, servername: 'localhost' })
    const err = await request(session, { ':path': '/', ':authority': `localhost:${t3.port}` }).then(() => undefined, (e: Error & { code?: string }) => e)
    assert.equal(err?.code, 'ERR_HTTP2_STREAM_ERROR')
    session.close()
  } finally {
    await stopClean(t3)
    server.close()
  }
})

test('http2.idleTimeout: a session without a stream gets GOAWAY (NO_ERROR) and is closed', async () => {
  const cert = { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }
  const { t: t4 } = await serveConfig({ listen: ['127.0.0.1:0'], http2: { idleTimeout: '400ms' }, hosts: [{ serverName: 'localhost', certificates: [cert], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }] })
  try {
    const session = http2.connect(`https://127.0.0.1:${t4.port}`, { ca: f.ca, servername: 'localhost' })
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)))
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()))
    const started = Date.now()
    const r = await request(session, { ':path': '/before-idle', ':authority': `localhost:${t4.port}` })
    assert.equal(r.status, 200)
    assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR)
    await closed
    const ms = Date.now() - started
    assert.ok(ms >= 400 && ms < 5_000, `closed after ${ms} ms`)
  } finally {
    await stopClean(t4)
  }
})
