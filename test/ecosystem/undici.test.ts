// rustlsConnector() as undici's `connect`: fetch and undici.request over
// rustls against a node:tls https server and a rustls server, connection
// reuse, TLS session resumption on new connections, HTTP/2 with allowH2,
// and certificate failures with their exact codes.
import assert from 'node:assert/strict'
import type http from 'node:http'
import https from 'node:https'
import type tls from 'node:tls'
import { test } from 'node:test'

import { Agent, fetch, request } from 'undici'

import { createHttpsServer } from '../../lib/http'
import { ConfigError, RustlsError, UnsupportedOptionError } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { rustlsConnector } from '../../lib/undici'
import { fixtures } from '../helpers/certs'
import { resumedPerRound, waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()
const localhost = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

interface Target {
  port: number
  /** One entry per TLS connection: was the session resumed, which ALPN. */
  connections: Array<{ resumed: boolean, alpn: string | false }>
  close: () => Promise<void>
}

/**
 * The handler answers `<httpVersion> <path>`; `/close` answers with
 * `Connection: close`, so the next request needs a new connection.
 */
function handler (req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/close' && req.httpVersionMajor === 1) res.setHeader('connection', 'close')
  res.setHeader('content-type', 'text/plain')
  res.end(`${req.httpVersion} ${req.url ?? ''}`)
}

async function nodeTarget (): Promise<Target> {
  const server = https.createServer(localhost, handler)
  const connections: Target['connections'] = []
  server.on('secureConnection', (s: tls.TLSSocket) => connections.push({ resumed: s.isSessionReused(), alpn: s.alpnProtocol ?? false }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

async function rustlsTarget (): Promise<Target> {
  const server = createHttpsServer(localhost, handler)
  const connections: Target['connections'] = []
  server.on('secureConnection', (s: RustlsSocket) => connections.push({ resumed: s.isSessionReused(), alpn: s.alpnProtocol }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

const targets: Array<[string, () => Promise<Target>]> = [['a node:tls https server', nodeTarget], ['a rustls server', rustlsTarget]]

for (const [name, makeTarget] of targets) {
  test(`fetch against ${name}: body, one connection for sequential requests`, async () => {
    const target = await makeTarget()
    const connector = rustlsConnector({ ca: f.ca })
    // One connection per origin, so the second request must wait for (and
    // reuse) the first one's socket.
    const agent = new Agent({ connect: connector, connections: 1 })
    try {
      const base = `https://localhost:${target.port}`
      const first = await fetch(`${base}/one`, { dispatcher: agent })
      assert.equal(first.status, 200)
      assert.equal(await first.text(), '1.1 /one')
      const second = await fetch(`${base}/two`, { dispatcher: agent })
      assert.equal(await second.text(), '1.1 /two')
      assert.deepEqual(target.connections, [{ resumed: false, alpn: 'http/1.1' }])
    } finally {
      await agent.close()
      connector.destroy()
      await target.close()
    }
  })

  test(`undici.request against ${name}: a new connection resumes the TLS session`, async () => {
    const target = await makeTarget()
    const connector = rustlsConnector({ ca: f.ca })
    const agent = new Agent({ connect: connector, connections: 1 })
    try {
      const base = `https://localhost:${target.port}`
      const closing = await request(`${base}/close`, { dispatcher: agent })
      assert.equal(closing.statusCode, 200)
      assert.equal(closing.headers.connection, 'close')
      assert.equal(await closing.body.text(), '1.1 /close')
      const next = await request(`${base}/again`, { dispatcher: agent })
      assert.equal(await next.body.text(), '1.1 /again')
      assert.deepEqual(target.connections, [{ resumed: false, alpn: 'http/1.1' }, { resumed: true, alpn: 'http/1.1' }])
    } finally {
      await agent.close()
      connector.destroy()
      await target.close()
    }
  })
}

test('undici: 8 concurrent requests on new connections share the connector\'s sessions; once refilled, every connection resumes', async (t) => {
  const target = await rustlsTarget()
  const connector = rustlsConnector({ ca: f.ca })
  const agent = new Agent({ connect: connector })
  try {
    const base = `https://localhost:${target.port}`
    // `/close` answers with Connection: close: each request gets its own connection.
    const closing = async (): Promise<void> => {
      const r = await request(`${base}/close`, { dispatcher: agent })
      await r.body.text()
    }
    await closing()
    const rounds = await resumedPerRound(target.connections, closing)
    assert.ok(rounds[0] >= 2, `first round: ${rounds[0]} resumed`)
    assert.deepEqual(rounds.slice(1), [8, 8])
    t.diagnostic(`resumed per round of 8: ${rounds.join(', ')}`)
  } finally {
    await agent.close()
    connector.destroy()
    await target.close()
  }
})

test('allowH2: fetch speaks HTTP/2 to a rustls server, many requests on one connection', async () => {
  const target = await rustlsTarget()
  const connector = rustlsConnector({ ca: f.ca, allowH2: true })
  // undici's pool opens a connection per queued request until one is up;
  // with one connection the ten requests are multiplexed as h2 streams.
  const agent = new Agent({ connect: connector, allowH2: true, connections: 1 })
  try {
    const base = `https://localhost:${target.port}`
    const bodies = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
      const r = await fetch(`${base}/h2/${i}`, { dispatcher: agent })
      return await r.text()
    }))
    assert.deepEqual(bodies, Array.from({ length: 10 }, (_, i) => `2.0 /h2/${i}`))
    assert.deepEqual(target.connections, [{ resumed: false, alpn: 'h2' }])
  } finally {
    await agent.close()
    connector.destroy()
    await target.close()
  }
})

test('allowH2 against node:tls with h2: the same connector also speaks HTTP/2 to node', async () => {
  const { createSecureServer } = await import('node:http2')
  const server = createSecureServer({ ...localhost, allowHTTP1: true }, (req, res) => res.end(`${req.httpVersion} ${req.url}`))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const connector = rustlsConnector({ ca: f.ca, allowH2: true })
  const agent = new Agent({ connect: connector, allowH2: true })
  try {
    const r = await fetch(`https://localhost:${port}/node`, { dispatcher: agent })
    assert.equal(await r.text(), '2.0 /node')
  } finally {
    await agent.close()
    connector.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

test('a server certificate from another CA: fetch fails with ERR_RUSTLS_CERT_UNKNOWN_ISSUER', async () => {
  const server = https.createServer({ cert: f.otherLocalhost.chain, key: f.otherLocalhost.key }, (_req, res) => res.end('must not be read'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const connector = rustlsConnector({ ca: f.ca })
  const agent = new Agent({ connect: connector })
  try {
    const err = await fetch(`https://localhost:${port}/`, { dispatcher: agent }).then(() => undefined, (e: unknown) => e as Error & { cause?: unknown })
    assert.ok(err instanceof TypeError, 'fetch rejects with a TypeError')
    assert.ok(err.cause instanceof RustlsError)
    assert.equal(err.cause.code, 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER')
    assert.equal(err.cause.isCertificateError, true)
  } finally {
    await agent.close()
    connector.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

test('a certificate for another name: undici.request fails with ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME', async () => {
  const server = https.createServer({ cert: f.wrongHost.chain, key: f.wrongHost.key }, (_req, res) => res.end('must not be read'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const connector = rustlsConnector({ ca: f.ca })
  const agent = new Agent({ connect: connector })
  try {
    await assert.rejects(request(`https://localhost:${port}/`, { dispatcher: agent }), (err: unknown) => {
      assert.ok(err instanceof RustlsError)
      assert.equal(err.code, 'ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME')
      return true
    })
  } finally {
    await agent.close()
    connector.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

test('plain http: origins go through undici\'s own connector', async () => {
  const { createServer } = await import('node:http')
  const server = createServer((req, res) => res.end(`plain ${req.url}`))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const connector = rustlsConnector({ ca: f.ca })
  const agent = new Agent({ connect: connector })
  try {
    const r = await fetch(`http://127.0.0.1:${port}/x`, { dispatcher: agent })
    assert.equal(await r.text(), 'plain /x')
  } finally {
    await agent.close()
    connector.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

test('configuration errors are thrown when the connector is built', () => {
  assert.throws(() => rustlsConnector({}), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.code, 'ERR_TLS_CONFIG_CA')
    assert.equal(err.keyPath, 'ca')
    return true
  })
  assert.throws(() => rustlsConnector({ ca: f.ca, ALPNProtocols: ['h2'] }), (err: unknown) => {
    assert.ok(err instanceof UnsupportedOptionError)
    assert.equal(err.code, 'ERR_RUSTLS_UNSUPPORTED_OPTION')
    assert.equal(err.option, 'ALPNProtocols')
    return true
  })
  for (const [name, value] of [['rejectUnauthorized', false], ['crl', f.clientCrl], ['lookup', () => {}]] as const) {
    assert.throws(() => rustlsConnector({ ca: f.ca, [name]: value } as never), (err: unknown) => {
      assert.ok(err instanceof UnsupportedOptionError)
      assert.equal(err.option, name)
      return true
    })
  }
  assert.throws(() => rustlsConnector({ ca: f.ca, timeout: -1 }), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.keyPath, 'timeout')
    return true
  })
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
