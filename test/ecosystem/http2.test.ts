// HTTP/2 on createHttpsServer with node's own http2 client: many concurrent
// streams, large bodies both ways, the TLS surface of the compat
// req.socket (node's http2 server wraps a RustlsSocket in its internal
// JSStreamSocket), the raw 'stream' API, and GOAWAY on close().
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http2 from 'node:http2'
import type { Readable } from 'node:stream'
import { test } from 'node:test'

import { createHttpsServer, type HttpsServer } from '../../lib/http'
import { connect } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()
const localhost = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

function listen (server: HttpsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
}

function close (server: HttpsServer): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => err === undefined ? resolve() : reject(err)))
}

function readAll (stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
  })
}

const sha256 = (data: Buffer): string => crypto.createHash('sha256').update(data).digest('hex')

/** An echo server: the body back, its digest in a header. */
function echoServer (): HttpsServer {
  return createHttpsServer(localhost, (req, res) => {
    void readAll(req).then((body) => {
      res.setHeader('x-body-sha256', sha256(body))
      res.setHeader('x-http-version', req.httpVersion)
      res.end(body)
    })
  })
}

interface Exchange { status: number, headers: http2.IncomingHttpHeaders, body: Buffer }

function post (session: http2.ClientHttp2Session, path: string, body: Buffer): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path })
    let headers: http2.IncomingHttpHeaders = {}
    stream.on('response', (h) => { headers = h })
    readAll(stream).then((b) => resolve({ status: Number(headers[':status']), headers, body: b }), reject)
    stream.end(body)
  })
}

function closeSession (session: http2.ClientHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve()
  return new Promise((resolve) => session.close(() => resolve()))
}

async function concurrentStreams (session: http2.ClientHttp2Session, count: number, size: number): Promise<void> {
  const bodies = Array.from({ length: count }, () => crypto.randomBytes(size))
  const results = await Promise.all(bodies.map((b, i) => post(session, `/stream/${i}`, b)))
  results.forEach((r, i) => {
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-http-version'], '2.0')
    assert.equal(r.headers['x-body-sha256'], sha256(bodies[i]))
    assert.ok(r.body.equals(bodies[i]), `stream ${i}: echo differs`)
  })
}

test('50 concurrent streams from node:http2 over node:tls, each body echoed', async () => {
  const server = echoServer()
  let connections = 0
  server.on('secureConnection', () => { connections++ })
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1' } as http2.SecureClientSessionOptions)
  try {
    await concurrentStreams(session, 50, 64 * 1024)
    assert.equal(connections, 1)
  } finally {
    await closeSession(session)
    await close(server)
  }
})

test('50 concurrent streams from node:http2 over a RustlsSocket client', async () => {
  const server = echoServer()
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, {
    createConnection: () => connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['h2'] }),
  })
  try {
    await concurrentStreams(session, 50, 64 * 1024)
  } finally {
    await closeSession(session)
    await close(server)
  }
})

test('4 MB request and response bodies on one stream', async () => {
  const server = echoServer()
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1' } as http2.SecureClientSessionOptions)
  try {
    const body = crypto.randomBytes(4 * 1024 * 1024)
    const r = await post(session, '/large', body)
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-body-sha256'], sha256(body))
    assert.equal(r.body.length, body.length)
    assert.ok(r.body.equals(body))
  } finally {
    await closeSession(session)
    await close(server)
  }
})

test('the compat req.socket shows the TLS connection, as with http2.createSecureServer', async () => {
  let seen: Record<string, unknown> = {}
  const server = createHttpsServer({ ...localhost, options: ['StdEnvVars'] }, (req, res) => {
    const socket = req.socket as unknown as Record<string, unknown> & { getProtocol: () => string, getCipher: () => { standardName: string }, getEnvVars: () => Record<string, string>, isSessionReused: () => boolean }
    const session = (req as http2.Http2ServerRequest).stream.session
    seen = {
      encrypted: socket.encrypted,
      alpnProtocol: socket.alpnProtocol,
      servername: socket.servername,
      remoteAddress: socket.remoteAddress,
      remotePort: socket.remotePort,
      protocol: socket.getProtocol(),
      cipher: socket.getCipher().standardName,
      https: socket.getEnvVars().HTTPS,
      resumed: socket.getEnvVars().SSL_SESSION_RESUMED,
      sessionEncrypted: session?.encrypted,
      sessionAlpn: session?.alpnProtocol,
    }
    res.end()
  })
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1', servername: 'localhost' } as http2.SecureClientSessionOptions)
  try {
    const r = await post(session, '/', Buffer.alloc(0))
    assert.equal(r.status, 200)
    const localPort = (session.socket as unknown as { localPort: number }).localPort
    assert.deepEqual(seen, {
      encrypted: true,
      alpnProtocol: 'h2',
      servername: 'localhost',
      remoteAddress: '127.0.0.1',
      remotePort: localPort,
      protocol: 'TLSv1.3',
      cipher: (session.socket as unknown as { getCipher: () => { standardName: string } }).getCipher().standardName,
      https: 'on',
      resumed: 'Initial',
      sessionEncrypted: true,
      sessionAlpn: 'h2',
    })
  } finally {
    await closeSession(session)
    await close(server)
  }
})

test('the raw stream API: server.on("stream") as on an http2 server', async () => {
  const server = createHttpsServer(localhost)
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    stream.respond({ ':status': 200, 'x-path': String(headers[':path']) })
    stream.end('raw')
  })
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1' } as http2.SecureClientSessionOptions)
  try {
    const r = await post(session, '/raw/path', Buffer.alloc(0))
    assert.equal(r.status, 200)
    assert.equal(r.headers['x-path'], '/raw/path')
    assert.equal(r.body.toString(), 'raw')
  } finally {
    await closeSession(session)
    await close(server)
  }
})

test('close(): GOAWAY to live sessions; the in-flight stream completes, then the server closes', async () => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  let requests = 0
  const server = createHttpsServer(localhost, (_req, res) => {
    requests++
    void released.then(() => res.end('finished'))
  })
  const port = await listen(server)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1' } as http2.SecureClientSessionOptions)
  const goaway = new Promise<number>((resolve) => session.once('goaway', (code: number) => resolve(code)))
  const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()))
  const inFlight = post(session, '/slow', Buffer.alloc(0))
  await waitFor(() => requests === 1, 5000, 'the request to arrive')
  let serverClosed = false
  const closed = close(server).then(() => { serverClosed = true })
  assert.equal(await goaway, http2.constants.NGHTTP2_NO_ERROR)
  assert.equal(serverClosed, false)
  release()
  const r = await inFlight
  assert.equal(r.status, 200)
  assert.equal(r.body.toString(), 'finished')
  await sessionClosed
  await closed
  assert.equal(serverClosed, true)
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
