// The Node internals rustls-node reaches into, checked on the Node version
// that runs the test (CI runs this file on every supported line, see
// scripts/node-matrix.js). A change in one of them would not fail loudly:
// socket mode would quietly fall back to the JS pump, so each assumption is
// asserted here (and socket-mode.test.ts checks that the net.Socket itself
// reads nothing once native code has its descriptor).
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'

import { connect } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { JS_PUMP, readAll, startServer } from '../helpers/tls'

const f = fixtures()
const ecdsa = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

interface TcpHandle { fd?: unknown, reading?: unknown, readStop?: unknown, readStart?: unknown }
const handleOf = (s: net.Socket): TcpHandle | null => (s as unknown as { _handle: TcpHandle | null })._handle

test('net.Socket _handle has fd, reading, readStop and readStart, before and after connect (lib/socket.ts socket mode)', async () => {
  const accepted: net.Socket[] = []
  const server = net.createServer((s) => accepted.push(s))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const c = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' })
    // A connecting client has its handle at once (socketModeAvailable() looks
    // at it then) and starts socket mode on 'connect'.
    const early = handleOf(c)
    assert.equal(c.connecting, true)
    assert.ok(early !== null && typeof early.fd === 'number', `connecting socket fd: ${String(early?.fd)}`)
    await new Promise<void>((resolve) => c.once('connect', resolve))
    await new Promise<void>((resolve) => setImmediate(resolve))
    for (const s of [c, accepted[0]]) {
      const h = handleOf(s)
      assert.ok(h !== null)
      assert.equal(typeof h.fd, 'number')
      assert.ok((h.fd as number) >= 0)
      assert.equal(typeof h.reading, 'boolean')
      assert.equal(h.reading, true, 'a flowing socket is reading')
      assert.equal(typeof h.readStop, 'function')
      assert.equal(typeof h.readStart, 'function')
    }
    c.destroy()
  } finally {
    for (const s of accepted) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

test('socket mode: a write to the taken-over net.Socket fails with ERR_RUSTLS_SOCKET_OWNED (the _write override holds)', { skip: JS_PUMP ? 'RUSTLS_NODE_JS_PUMP=1: no socket mode' : false }, async () => {
  // The client's close may reach the server as a reset (tickets unread).
  const srv = await startServer(ecdsa, (s) => s.on('error', () => {}).pipe(s))
  try {
    const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
    await new Promise<void>((resolve, reject) => { c.once('secureConnect', resolve); c.once('error', reject) })
    const raw = c.transport as net.Socket
    const err = await new Promise<Error & { code?: string }>((resolve) => raw.write('x', (e) => resolve(e as Error)))
    assert.equal(err?.code, 'ERR_RUSTLS_SOCKET_OWNED')
    c.destroy()
  } finally {
    await srv.close()
  }
})

test('the JS pump (a socket handed in) leaves the net.Socket reading: the check above can tell the two apart', async () => {
  const srv = await startServer(ecdsa, (s) => s.pipe(s))
  try {
    const raw = net.connect({ port: srv.port, host: '127.0.0.1' })
    await new Promise<void>((resolve) => raw.once('connect', resolve))
    const c = connect({ socket: raw, servername: 'localhost', ca: f.ca })
    c.end(Buffer.alloc(50_000, 4))
    assert.equal((await readAll(c)).length, 50_000)
    assert.ok(raw.bytesRead > 50_000, `the net.Socket read ${raw.bytesRead} bytes`)
  } finally {
    await srv.close()
  }
})
