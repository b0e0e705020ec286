// createHttpsServer against real clients (curl, node:https, openssl
// s_client, the library's own client): HTTP/2 and HTTP/1.1 chosen by ALPN
// on one port, byte-exact bodies, close() semantics, the HTTP/1.1 timeouts,
// and SPEC §4.2's 421/403 rules.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import type http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { after, test } from 'node:test'

import { createHttpsServer, type HttpsServer, type HttpsServerOptions } from '../../lib/http'
import { connect } from '../../lib/index'
import { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { curl, sClient, waitFor } from '../helpers/peers'
import { STREAM_PUMP, waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-http-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

const localhost: HttpsServerOptions = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

function listen (server: HttpsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
}

function close (server: HttpsServer): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => err === undefined ? resolve() : reject(err)))
}

/** curl against `https://localhost:port` resolved to 127.0.0.1, trusting the test CA. */
function curlLocal (port: number, args: string[], urlPath = '/'): ReturnType<typeof curl> {
  return curl(['--cacert', f.path('ca.pem'), '--resolve', `localhost:${port}:127.0.0.1`, ...args, `https://localhost:${port}${urlPath}`])
}

function readBody (req: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** A raw HTTP/1.1 exchange over the library's client: resolves with everything received until the server closes. */
function rawExchange (port: number, request: string, opts: { keepOpen?: (socket: RustlsSocket) => void } = {}): Promise<{ text: string, error: Error | undefined }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca })
    let text = ''
    let error: Error | undefined
    socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
    socket.on('error', (err) => { error = err })
    socket.on('close', () => resolve({ text, error }))
    socket.write(request)
    opts.keepOpen?.(socket)
  })
}

test('curl --http2 and --http1.1 on one port: protocol by ALPN, body, req.socket.encrypted', async () => {
  const seen: Array<{ version: string, encrypted: unknown, alpn: unknown, protocol: unknown }> = []
  const server = createHttpsServer(localhost, (req, res) => {
    const socket = req.socket as unknown as RustlsSocket
    seen.push({ version: req.httpVersion, encrypted: socket.encrypted, alpn: socket.alpnProtocol, protocol: socket.getProtocol() })
    res.setHeader('content-type', 'text/plain')
    res.end(`hello over ${req.httpVersion}\n`)
  })
  const port = await listen(server)
  try {
    const h2 = await curlLocal(port, ['--http2', '-w', '|%{http_version}'])
    assert.equal(h2.code, 0, h2.stderr)
    assert.equal(h2.stdout, 'hello over 2.0\n|2')
    const h1 = await curlLocal(port, ['--http1.1', '-w', '|%{http_version}'])
    assert.equal(h1.code, 0, h1.stderr)
    assert.equal(h1.stdout, 'hello over 1.1\n|1.1')
    assert.deepEqual(seen, [
      { version: '2.0', encrypted: true, alpn: 'h2', protocol: 'TLSv1.3' },
      { version: '1.1', encrypted: true, alpn: 'http/1.1', protocol: 'TLSv1.3' },
    ])
  } finally {
    await close(server)
  }
})

test('a 1 MB POST body is echoed byte-exact over HTTP/2 and HTTP/1.1', async () => {
  const body = crypto.randomBytes(1024 * 1024)
  const input = path.join(tmp, 'body.bin')
  fs.writeFileSync(input, body)
  const digest = crypto.createHash('sha256').update(body).digest('hex')
  const received: string[] = []
  const server = createHttpsServer(localhost, (req, res) => {
    void readBody(req).then((data) => {
      received.push(`${req.httpVersion}:${data.length}:${crypto.createHash('sha256').update(data).digest('hex')}`)
      res.setHeader('content-type', 'application/octet-stream')
      res.end(data)
    })
  })
  const port = await listen(server)
  try {
    for (const [flag, version] of [['--http2', '2'], ['--http1.1', '1.1']]) {
      const output = path.join(tmp, `out-${version}.bin`)
      const r = await curlLocal(port, [flag, '--data-binary', `@${input}`, '-H', 'content-type: application/octet-stream', '-o', output, '-w', '%{http_version} %{http_code}'], '/echo')
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `${version} 200`)
      const echoed = fs.readFileSync(output)
      assert.equal(echoed.length, body.length)
      assert.ok(echoed.equals(body), `echo over ${version} differs`)
    }
    assert.deepEqual(received, [`2.0:${body.length}:${digest}`, `1.1:${body.length}:${digest}`])
  } finally {
    await close(server)
  }
})

test('the default path relays HTTP/2 connections natively: node:http2 reads a net.Socket with a native handle showing the TLS surface; 8 MiB each way byte-exact over both protocols', { timeout: 30_000 }, async () => {
  const body = crypto.randomBytes(8 * 1024 * 1024)
  const input = path.join(tmp, 'relay.bin')
  fs.writeFileSync(input, body)
  const seen: Array<Record<string, unknown>> = []
  const tlsSockets: RustlsSocket[] = []
  const server = createHttpsServer(localhost, (req, res) => {
    const socket = req.socket as unknown as net.Socket & RustlsSocket
    seen.push({
      version: req.httpVersion,
      // A PlainSide (relayed) is a net.Socket that knows its RustlsSocket.
      relayed: socket instanceof net.Socket && (socket as unknown as { tlsSocket?: unknown }).tlsSocket instanceof RustlsSocket,
      encrypted: socket.encrypted,
      alpn: socket.alpnProtocol,
      servername: socket.servername,
      cipher: socket.getCipher()?.standardName,
      remote: `${socket.remoteAddress}:${typeof socket.remotePort}`,
      local: socket.localPort,
    })
    void readBody(req).then((data) => {
      res.setHeader('content-type', 'application/octet-stream')
      res.end(req.url === '/download' ? body : crypto.createHash('sha256').update(data).digest('hex'))
    })
  })
  server.on('secureConnection', (s: RustlsSocket) => tlsSockets.push(s))
  const port = await listen(server)
  try {
    const digest = crypto.createHash('sha256').update(body).digest('hex')
    for (const flag of ['--http2', '--http1.1']) {
      const up = await curlLocal(port, [flag, '--data-binary', `@${input}`, '-H', 'content-type: application/octet-stream'], '/upload')
      assert.equal(up.code, 0, up.stderr)
      assert.equal(up.stdout, digest, `upload over ${flag}`)
      const output = path.join(tmp, 'relay-out.bin')
      const down = await curlLocal(port, [flag, '-o', output], '/download')
      assert.equal(down.code, 0, down.stderr)
      assert.ok(fs.readFileSync(output).equals(body), `download over ${flag}`)
    }
    // The default path relays HTTP/2; the net.Server path (stream pump)
    // hands node:http2 the RustlsSocket (which it wraps), and node:http
    // always gets the RustlsSocket.
    const surface = (version: string, alpn: string): Record<string, unknown> => ({
      version, relayed: alpn === 'h2' && !STREAM_PUMP, encrypted: true, alpn, servername: 'localhost',
      cipher: 'TLS_AES_256_GCM_SHA384', remote: '127.0.0.1:number', local: port,
    })
    assert.deepEqual(seen, [surface('2.0', 'h2'), surface('2.0', 'h2'), surface('1.1', 'http/1.1'), surface('1.1', 'http/1.1')])
    // Every connection's RustlsSocket closes with its relay.
    assert.equal(tlsSockets.length, 4)
    await waitFor(() => tlsSockets.every((s) => s.destroyed), 5000, 'every RustlsSocket closed')
  } finally {
    await close(server)
  }
})

test('an HTTP/2 client that ignores our close_notify is closed after the grace period', { timeout: 15_000 }, async () => {
  const server = createHttpsServer(localhost, (_req, res) => res.end('ok'))
  let serverClosed: Promise<void> = Promise.reject(new Error('no connection'))
  serverClosed.catch(() => {})
  server.on('secureConnection', (s: RustlsSocket) => { serverClosed = new Promise((resolve) => s.on('close', () => resolve())) })
  let sessions = 0
  server.on('session', () => { sessions++ })
  const port = await listen(server)
  // Half-open and never ending: the server's close_notify and FIN are not answered.
  const raw = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  const client = connect({ socket: raw, servername: 'localhost', ca: f.ca, ALPNProtocols: ['h2'], allowHalfOpen: true })
  let received = 0
  client.on('data', (d: Buffer) => { received += d.length })
  client.on('error', () => {})
  let ended = false
  client.on('end', () => { ended = true })
  // The connection preface and an empty SETTINGS frame (RFC 9113 §3.4).
  client.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]))
  await waitFor(() => sessions === 1 && received >= 9, 5000, 'the session and the server\'s SETTINGS')
  const started = Date.now()
  const closed = close(server)
  // GOAWAY, then close_notify and FIN once node:http2 closed the session.
  await waitFor(() => ended, 5000, 'our close_notify')
  await serverClosed
  const ms = Date.now() - started
  assert.ok(ms >= 1500 && ms < 6000, `closed ${ms} ms after close()`)
  await closed
  client.destroy()
})

test('a client that offers no ALPN gets HTTP/1.1', async () => {
  let alpn: unknown = 'unset'
  const server = createHttpsServer(localhost, (req, res) => {
    alpn = (req.socket as unknown as RustlsSocket).alpnProtocol
    res.end(req.httpVersion)
  })
  const port = await listen(server)
  try {
    // node:https sends no ALPN extension unless asked to.
    const { status, body } = await new Promise<{ status: number | undefined, body: string }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, agent: false }, (res) => {
        void readBody(res).then((b) => resolve({ status: res.statusCode, body: b.toString() }), reject)
      }).on('error', reject)
    })
    assert.equal(status, 200)
    assert.equal(body, '1.1')
    assert.equal(alpn, false)
  } finally {
    await close(server)
  }
})

test('ALPNProtocols overrides the h2/http1.1 default', async () => {
  const server = createHttpsServer({ ...localhost, ALPNProtocols: ['http/1.1'] }, (req, res) => res.end(req.httpVersion))
  const port = await listen(server)
  try {
    const r = await curlLocal(port, ['--http2', '-w', '|%{http_version}'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '1.1|1.1')
  } finally {
    await close(server)
  }
})

test('reload() without ALPNProtocols keeps offering h2', async () => {
  const server = createHttpsServer(localhost, (req, res) => res.end(req.httpVersion))
  const port = await listen(server)
  try {
    server.reload({ cert: f.localhostRsa.cert, key: f.localhostRsa.key })
    const r = await curlLocal(port, ['--http2', '-w', '|%{http_version}'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '2.0|2')
  } finally {
    await close(server)
  }
})

test('an ALPN protocol other than h2 and http/1.1 goes to the unknownProtocol event', async () => {
  const server = createHttpsServer({ ...localhost, ALPNProtocols: ['h2', 'http/1.1', 'x-echo'] }, (_req, res) => res.end('http'))
  const protocols: unknown[] = []
  server.on('unknownProtocol', (socket: RustlsSocket) => {
    protocols.push(socket.alpnProtocol)
    socket.end('custom protocol\n')
  })
  const port = await listen(server)
  try {
    const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-alpn', 'x-echo', '-CAfile', f.path('ca.pem'), '-quiet'], { holdOpenMs: 3000 })
    assert.equal(r.stdout, 'custom protocol\n')
    assert.deepEqual(protocols, ['x-echo'])
  } finally {
    await close(server)
  }
})

test('close(): an idle keep-alive connection gets close_notify, a busy one finishes with Connection: close', { timeout: 10_000 }, async () => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  let requests = 0
  const server = createHttpsServer(localhost, (req, res) => {
    requests++
    if (req.url === '/slow') {
      void released.then(() => res.end('slow done'))
      return
    }
    res.end('quick')
  })
  const port = await listen(server)
  // Idle: one request answered, connection kept open by keep-alive.
  let idleSocket: RustlsSocket | undefined
  const idle = rawExchange(port, 'GET /quick HTTP/1.1\r\nHost: localhost\r\n\r\n', { keepOpen: (s) => { idleSocket = s } })
  await waitFor(() => requests === 1, 5000, 'the idle connection\'s request')
  // Busy: its response is held until after close().
  const busy = rawExchange(port, 'GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await waitFor(() => requests === 2, 5000, 'the busy connection\'s request')
  const closed = close(server)
  const idleResult = await idle
  // Our client reports ERR_RUSTLS_UNEXPECTED_EOF when a peer closes without
  // close_notify (RFC 8446 §6.1), so no error means a graceful end.
  assert.equal(idleResult.error, undefined)
  assert.match(idleResult.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: keep-alive\r\n[\s\S]*\r\n\r\nquick$/)
  assert.equal(idleSocket?.destroyed, true)
  release()
  const busyResult = await busy
  assert.equal(busyResult.error, undefined)
  assert.match(busyResult.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n[\s\S]*\r\n\r\nslow done$/)
  await closed
})

test('headersTimeout and requestTimeout are enforced (http.Server connection tracking runs)', { timeout: 10_000 }, async () => {
  const server = createHttpsServer({ ...localhost, headersTimeout: 300, requestTimeout: 400, connectionsCheckingInterval: 50 }, (_req, res) => res.end('never'))
  assert.equal(server.headersTimeout, 300)
  assert.equal(server.requestTimeout, 400)
  const port = await listen(server)
  try {
    const started = Date.now()
    // Headers never finished: node answers 408 and closes.
    const r = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: localhost\r\n')
    const elapsed = Date.now() - started
    assert.match(r.text, /^HTTP\/1\.1 408 Request Timeout\r\n/)
    assert.ok(elapsed >= 250 && elapsed < 3000, `closed after ${elapsed} ms`)
  } finally {
    await close(server)
  }
})

test('setTimeout, keepAliveTimeout and request events pass through to the inner servers', async () => {
  const server = createHttpsServer(localhost)
  const requests: string[] = []
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    requests.push(req.url ?? '')
    res.end('ok')
  })
  server.keepAliveTimeout = 3000
  assert.equal(server.http1.keepAliveTimeout, 3000)
  const timedOut: unknown[] = []
  server.setTimeout(300, (connection) => {
    timedOut.push((connection as RustlsSocket).encrypted)
    connection.destroy()
  })
  assert.equal(server.timeout, 300)
  assert.equal(server.http1.timeout, 300)
  const port = await listen(server)
  try {
    const r = await curlLocal(port, ['--http1.1', '-i'], '/events')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /\r\nKeep-Alive: timeout=3\r\n/)
    assert.deepEqual(requests, ['/events'])
    // A connection that sends nothing after the handshake times out.
    const silent = await rawExchange(port, '')
    assert.equal(silent.text, '')
    assert.deepEqual(timedOut, [true])
  } finally {
    await close(server)
  }
})

test('SPEC §4.2 host check: Host of another host gets 421, one sharing certificates passes, no SNI gets 403', async () => {
  const a = { cert: f.aEcdsa.chain, key: f.aEcdsa.key }
  const server = createHttpsServer({
    hosts: [
      { serverName: 'a.example.test', certificates: [a] },
      // Same certificate and settings as a.example.test: requests may cross.
      { serverName: 'x.a.example.test', certificates: [a] },
      { serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chain, key: f.bEcdsa.key }] },
    ],
  }, (req, res) => res.end(`served ${String(req.headers.host ?? req.headers[':authority'])}`))
  const port = await listen(server)
  const resolve = ['--resolve', `a.example.test:${port}:127.0.0.1`]
  const url = `https://a.example.test:${port}/`
  try {
    for (const flag of ['--http1.1', '--http2']) {
      const own = await curl([flag, '--cacert', f.path('ca.pem'), ...resolve, '-w', '|%{http_code}', url])
      assert.equal(own.stdout, `served a.example.test:${port}|200`)
      const crossed = await curl([flag, '--cacert', f.path('ca.pem'), ...resolve, '-H', 'Host: b.example.test', '-w', '|%{http_code}', url])
      assert.equal(crossed.stdout, 'Misdirected Request\n|421', `${flag}: ${crossed.stderr}`)
      // A name no host lists stays with the host the connection was made for
      // (lib/authority.ts, the same rule as the terminator's).
      const unknown = await curl([flag, '--cacert', f.path('ca.pem'), ...resolve, '-H', 'Host: c.example.test', '-w', '|%{http_code}', url])
      assert.equal(unknown.stdout, 'served c.example.test|200')
      const shared = await curl([flag, '--cacert', f.path('ca.pem'), ...resolve, '-H', 'Host: x.a.example.test', '-w', '|%{http_code}', url])
      assert.equal(shared.stdout, 'served x.a.example.test|200')
    }
    const noSni = await sClient(['-connect', `127.0.0.1:${port}`, '-noservername', '-ign_eof', '-quiet'], {
      input: 'GET / HTTP/1.1\r\nHost: a.example.test\r\nConnection: close\r\n\r\n',
    })
    assert.match(noSni.stdout, /^HTTP\/1\.1 403 Forbidden\r\n/)
  } finally {
    await close(server)
  }
})

test('hostCheck: false serves any Host', async () => {
  const server = createHttpsServer({
    hostCheck: false,
    hosts: [
      { serverName: 'a.example.test', certificates: [{ cert: f.aEcdsa.chain, key: f.aEcdsa.key }] },
      { serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chain, key: f.bEcdsa.key }] },
    ],
  }, (_req, res) => res.end('served'))
  const port = await listen(server)
  try {
    const r = await curl(['--http1.1', '--cacert', f.path('ca.pem'), '--resolve', `a.example.test:${port}:127.0.0.1`, '-H', 'Host: b.example.test', '-w', '|%{http_code}', `https://a.example.test:${port}/`])
    assert.equal(r.stdout, 'served|200')
  } finally {
    await close(server)
  }
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
