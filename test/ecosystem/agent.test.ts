// RustlsAgent with node's own https/http clients: keep-alive reuse from
// http.Agent, TLS session resumption from its per-origin ClientContext,
// certificate failures with their exact code, and TLS options that a
// request cannot carry.
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import type tls from 'node:tls'
import { test } from 'node:test'

import { createHttpsAgent, type RustlsAgent } from '../../lib/agent'
import { createHttpsServer } from '../../lib/http'
import { RustlsError, UnsupportedOptionError } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { resumedPerRound, waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()
const localhost = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

interface Target {
  port: number
  connections: Array<{ resumed: boolean }>
  /** Client port of each request, to see which connection carried it. */
  peers: number[]
  close: () => Promise<void>
}

/** `/close` answers with Connection: close; everything else keeps the connection. */
function handler (peers: number[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    peers.push(req.socket.remotePort ?? -1)
    if (req.url === '/close') res.setHeader('connection', 'close')
    res.end(`${req.method ?? ''} ${req.url ?? ''}`)
  }
}

async function nodeTarget (cert = localhost): Promise<Target> {
  const peers: number[] = []
  const server = https.createServer(cert, handler(peers))
  const connections: Target['connections'] = []
  server.on('secureConnection', (s: tls.TLSSocket) => connections.push({ resumed: s.isSessionReused() }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    peers,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

async function rustlsTarget (): Promise<Target> {
  const peers: number[] = []
  const server = createHttpsServer(localhost, handler(peers))
  const connections: Target['connections'] = []
  server.on('secureConnection', (s: RustlsSocket) => connections.push({ resumed: s.isSessionReused() }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    connections,
    peers,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

function get (url: string, options: https.RequestOptions, via: typeof https.request = https.request): Promise<{ status: number | undefined, body: string }> {
  return new Promise((resolve, reject) => {
    via(url, options, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode, body }))
      res.on('error', reject)
    }).on('error', reject).end()
  })
}

/** Waits until the agent has parked the socket of a finished request. */
function parked (agent: RustlsAgent): Promise<void> {
  return waitFor(() => Object.values(agent.freeSockets).some((list) => (list?.length ?? 0) > 0), 2000, 'a free socket')
}

const targets: Array<[string, () => Promise<Target>]> = [['a node:tls https server', () => nodeTarget()], ['a rustls server', rustlsTarget]]

for (const [name, makeTarget] of targets) {
  test(`https.request against ${name}: keep-alive reuse, then resumption on a new connection`, async () => {
    const target = await makeTarget()
    const agent = createHttpsAgent({ ca: f.ca })
    try {
      const url = `https://localhost:${target.port}`
      assert.deepEqual(await get(`${url}/one`, { agent }), { status: 200, body: 'GET /one' })
      await parked(agent)
      assert.deepEqual(await get(`${url}/close`, { agent }), { status: 200, body: 'GET /close' })
      assert.deepEqual(await get(`${url}/three`, { agent }), { status: 200, body: 'GET /three' })
      // /one and /close shared a connection; /three needed a new one.
      assert.equal(target.peers.length, 3)
      assert.equal(target.peers[0], target.peers[1])
      assert.notEqual(target.peers[2], target.peers[1])
      assert.deepEqual(target.connections, [{ resumed: false }, { resumed: true }])
    } finally {
      agent.destroy()
      await target.close()
    }
  })
}

test('8 concurrent requests on new connections through one agent: once its session store is refilled, every connection resumes', async (t) => {
  const target = await rustlsTarget()
  // keepAlive false: every request opens (and then closes) a connection.
  const agent = createHttpsAgent({ ca: f.ca, keepAlive: false })
  try {
    const url = `https://localhost:${target.port}`
    await get(`${url}/warm`, { agent })
    const rounds = await resumedPerRound(target.connections, async (round, i) => await get(`${url}/${round}/${i}`, { agent }))
    // The warm-up left 2 tickets (rustls-node sends 2 per handshake); from
    // the second round on, the origin's ClientContext has 8 for 8 connections.
    assert.ok(rounds[0] >= 2, `first round: ${rounds[0]} resumed`)
    assert.deepEqual(rounds.slice(1), [8, 8])
    t.diagnostic(`resumed per round of 8: ${rounds.join(', ')}`)
  } finally {
    agent.destroy()
    await target.close()
  }
})

test('http.request with protocol https: and the agent', async () => {
  const target = await rustlsTarget()
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    const r = await get(`https://localhost:${target.port}/via-http`, { agent, protocol: 'https:' }, http.request as unknown as typeof https.request)
    assert.deepEqual(r, { status: 200, body: 'GET /via-http' })
  } finally {
    agent.destroy()
    await target.close()
  }
})

test('maxCachedSessions: 0 turns resumption off', async () => {
  const target = await rustlsTarget()
  const agent = createHttpsAgent({ ca: f.ca, maxCachedSessions: 0, keepAlive: false })
  try {
    const url = `https://localhost:${target.port}`
    await get(`${url}/a`, { agent })
    await get(`${url}/b`, { agent })
    assert.deepEqual(target.connections, [{ resumed: false }, { resumed: false }])
  } finally {
    agent.destroy()
    await target.close()
  }
})

test('a server certificate from another CA: the request fails with ERR_RUSTLS_CERT_UNKNOWN_ISSUER', async () => {
  const target = await nodeTarget({ cert: f.otherLocalhost.chain, key: f.otherLocalhost.key })
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    await assert.rejects(get(`https://localhost:${target.port}/`, { agent }), (err: unknown) => {
      assert.ok(err instanceof RustlsError)
      assert.equal(err.code, 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER')
      assert.equal(err.isCertificateError, true)
      return true
    })
    assert.deepEqual(target.peers, [])
  } finally {
    agent.destroy()
    await target.close()
  }
})

test('per-request TLS options are refused, not ignored', async () => {
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    for (const [name, value] of [['ca', f.otherCa], ['rejectUnauthorized', false], ['cert', f.client.cert]] as const) {
      assert.throws(() => https.request('https://localhost:1/', { agent, [name]: value }), (err: unknown) => {
        assert.ok(err instanceof UnsupportedOptionError)
        assert.equal(err.code, 'ERR_RUSTLS_UNSUPPORTED_OPTION')
        assert.equal(err.option, name)
        return true
      })
    }
    assert.throws(() => createHttpsAgent({ ca: f.ca, ALPNProtocols: ['h2'] }), (err: unknown) => err instanceof UnsupportedOptionError && err.option === 'ALPNProtocols')
    // node:tls names without a rustls counterpart here are refused when the agent is made.
    for (const [name, value] of [['crl', f.clientCrl], ['rejectUnauthorized', false], ['pfx', Buffer.alloc(1)]] as const) {
      assert.throws(() => createHttpsAgent({ ca: f.ca, [name]: value }), (err: unknown) => err instanceof UnsupportedOptionError && err.option === name)
    }
    assert.throws(() => createHttpsAgent({}), (err: unknown) => (err as { code?: string, keyPath?: string }).code === 'ERR_TLS_CONFIG_CA' && (err as { keyPath?: string }).keyPath === 'ca')
  } finally {
    agent.destroy()
  }
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
