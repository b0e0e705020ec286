// WebSockets (ws) over createHttpsServer: the 'upgrade' event reaches a ws
// server attached to it as to an https.Server, and ws clients over node:tls,
// over a RustlsSocket (createConnection) and over the RustlsAgent echo text
// and a 256 KB binary message.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import type http from 'node:http'
import type https from 'node:https'
import type net from 'node:net'
import { test } from 'node:test'

import WebSocket, { WebSocketServer } from 'ws'

import { createHttpsAgent } from '../../lib/agent'
import { createHttpsServer, type HttpsServer } from '../../lib/http'
import { connect } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()

interface Echo {
  server: HttpsServer
  wss: WebSocketServer
  port: number
  /** For each upgrade: the socket's `encrypted` and negotiated protocol. */
  upgrades: Array<{ encrypted: unknown, protocol: unknown, path: string | undefined }>
}

async function echoServer (): Promise<Echo> {
  const server = createHttpsServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (_req, res) => {
    res.statusCode = 426
    res.end('websockets only')
  })
  // ws attaches to 'upgrade' (and 'listening'/'error') like on an https.Server.
  const wss = new WebSocketServer({ server: server as unknown as https.Server })
  const upgrades: Echo['upgrades'] = []
  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const socket = req.socket as unknown as RustlsSocket
    upgrades.push({ encrypted: socket.encrypted, protocol: socket.getProtocol(), path: req.url })
    ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }))
  })
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
  return { server, wss, port, upgrades }
}

async function stop (echo: Echo): Promise<void> {
  await new Promise<void>((resolve) => echo.wss.close(() => resolve()))
  await new Promise<void>((resolve, reject) => echo.server.close((err) => err === undefined ? resolve() : reject(err)))
}

/** Opens `ws`, echoes a text and a 256 KB binary message, closes with 1000. */
async function roundTrip (ws: WebSocket): Promise<void> {
  const messages: Array<{ data: Buffer, isBinary: boolean }> = []
  ws.on('message', (data: Buffer, isBinary: boolean) => messages.push({ data, isBinary }))
  const closed = new Promise<{ code: number, reason: string }>((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const binary = crypto.randomBytes(256 * 1024)
  ws.send('hello over rustls')
  ws.send(binary)
  await waitFor(() => messages.length === 2, 10_000, 'two echoes')
  assert.equal(messages[0].isBinary, false)
  assert.equal(messages[0].data.toString(), 'hello over rustls')
  assert.equal(messages[1].isBinary, true)
  assert.equal(messages[1].data.length, binary.length)
  assert.ok(messages[1].data.equals(binary), 'binary echo differs')
  ws.close(1000, 'done')
  assert.deepEqual(await closed, { code: 1000, reason: 'done' })
}

test('ws client over node:tls', async () => {
  const echo = await echoServer()
  try {
    await roundTrip(new WebSocket(`wss://localhost:${echo.port}/tls`, { ca: f.ca, host: '127.0.0.1' } as WebSocket.ClientOptions))
    assert.deepEqual(echo.upgrades, [{ encrypted: true, protocol: 'TLSv1.3', path: '/tls' }])
  } finally {
    await stop(echo)
  }
})

test('ws client over a RustlsSocket (createConnection)', async () => {
  const echo = await echoServer()
  let sockets = 0
  try {
    const ws = new WebSocket(`wss://localhost:${echo.port}/rustls`, {
      createConnection: (() => {
        sockets++
        return connect({ host: '127.0.0.1', port: echo.port, servername: 'localhost', ca: f.ca })
      }) as unknown as typeof net.createConnection,
    })
    await roundTrip(ws)
    assert.equal(sockets, 1)
    assert.deepEqual(echo.upgrades, [{ encrypted: true, protocol: 'TLSv1.3', path: '/rustls' }])
  } finally {
    await stop(echo)
  }
})

test('ws client through the RustlsAgent', async () => {
  const echo = await echoServer()
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    await roundTrip(new WebSocket(`wss://localhost:${echo.port}/agent`, { agent, host: '127.0.0.1' } as WebSocket.ClientOptions))
    assert.deepEqual(echo.upgrades, [{ encrypted: true, protocol: 'TLSv1.3', path: '/agent' }])
  } finally {
    agent.destroy()
    await stop(echo)
  }
})

test('a plain HTTPS request on the same server still reaches the request listener', async () => {
  const echo = await echoServer()
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    const { request } = await import('node:https')
    const result = await new Promise<{ status: number | undefined, body: string }>((resolve, reject) => {
      request(`https://localhost:${echo.port}/`, { agent }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => { body += d.toString() })
        res.on('end', () => resolve({ status: res.statusCode, body }))
      }).on('error', reject).end()
    })
    assert.deepEqual(result, { status: 426, body: 'websockets only' })
    assert.deepEqual(echo.upgrades, [])
  } finally {
    agent.destroy()
    await stop(echo)
  }
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
