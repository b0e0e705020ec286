// Socket mode (native reads and writes on the descriptor): what differs
// from the JS pump and must still hold — byte counters, idle timeouts, and
// the fallback to the JS pump when no descriptor can be duplicated.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import type net from 'node:net'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { connect } from '../../lib/index'
import { addon, results, Slot } from '../../lib/native'
import type { RustlsSocket } from '../../lib/socket'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { assertNoLiveHandles, JS_PUMP, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const ecdsa = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

describe('socket mode', () => {
  test('bytesRead and bytesWritten count the TLS bytes on both sides, also after close', async () => {
    let serverSide: RustlsSocket | undefined
    const srv = await startServer(ecdsa, (s) => {
      serverSide = s
      s.pipe(s)
    })
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      c.end(Buffer.alloc(50_000, 1))
      assert.equal((await readAll(c)).length, 50_000)
      await settle()
      // Ciphertext: a little more than the plaintext, in each direction.
      assert.ok(c.bytesWritten > 50_000 && c.bytesWritten < 53_000, `client wrote ${c.bytesWritten}`)
      assert.ok(c.bytesRead > 50_000 && c.bytesRead < 53_000, `client read ${c.bytesRead}`)
      assert.ok(serverSide !== undefined)
      assert.equal(serverSide.bytesRead, c.bytesWritten)
      assert.equal(serverSide.bytesWritten, c.bytesRead)
      // Socket mode really ran on both sides (not the JS pump fallback):
      // node counts a net.Socket's bytesRead only for what libuv read for it.
      if (!JS_PUMP) {
        assert.equal((c.transport as net.Socket).bytesRead, 0)
        assert.equal((serverSide.transport as net.Socket).bytesRead, 0)
      }
    } finally {
      await srv.close()
    }
  })

  test('a writer that writes while write() returns true meets backpressure before its stream piles up', async () => {
    const chunk = Buffer.alloc(64 * 1024, 7)
    const total = 64 * 1024 * 1024
    let handedOverBeforeFalse = -1
    const srv = await startServer(ecdsa, (s) => {
      let left = total
      const pump = (): void => {
        while (left > 0) {
          left -= chunk.length
          const ok = s.write(chunk)
          if (!ok) {
            if (handedOverBeforeFalse < 0) handedOverBeforeFalse = total - left
            s.once('drain', pump)
            return
          }
        }
        s.end()
      }
      pump()
    })
    try {
      const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      c.pause()
      const ended = new Promise((resolve, reject) => { c.once('end', resolve); c.once('error', reject) })
      // The client reads nothing until the server's write() said false: only
      // the kernel's buffers (a few MiB on loopback) may take data meanwhile.
      await waitFor(() => handedOverBeforeFalse >= 0, 10_000, 'write() returning false')
      let received = 0
      c.on('data', (d: Buffer) => { received += d.length })
      c.resume()
      await ended
      assert.equal(received, total)
      // Before native code bounded its encrypt-ahead, write() stayed true
      // until all 64 MiB sat encrypted in rustls' queue.
      assert.ok(handedOverBeforeFalse <= 24 * 1024 * 1024, `write() first returned false after ${handedOverBeforeFalse} bytes`)
    } finally {
      await srv.close()
    }
  })

  test('setTimeout fires on idleness and is pushed back by traffic', async () => {
    const srv = await startServer(ecdsa, (s) => s.on('data', () => {}))
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => c.once('secureConnect', resolve))
      const start = Date.now()
      c.setTimeout(300)
      // Traffic at 100 ms intervals keeps it from firing...
      const ticker = setInterval(() => c.write('x'), 100)
      await new Promise((resolve) => setTimeout(resolve, 600))
      clearInterval(ticker)
      let fired = 0
      c.on('timeout', () => { fired++ })
      // ...and 300 ms of silence lets it fire.
      await new Promise((resolve) => c.once('timeout', resolve))
      // Without the traffic it would have fired at 300 ms.
      assert.ok(Date.now() - start >= 700, `fired after ${Date.now() - start} ms`)
      assert.equal(fired, 1)
      c.destroy()
    } finally {
      await srv.close()
    }
  })

  test('one descriptor per connection: a server with a single free descriptor still serves a client', async () => {
    const script = path.join(__dirname, '..', 'helpers', 'fd-pressure.js')
    const child = spawn(process.execPath, [script, f.localhostEcdsa.certPath, f.localhostEcdsa.keyPath], { stdio: ['pipe', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    try {
      await waitFor(() => /port=\d+/.test(out), 10_000, 'server start')
      const port = Number(/port=(\d+)/.exec(out)?.[1])
      const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      c.end('still served')
      assert.equal((await readAll(c)).toString(), 'still served')
      // Native code polls the accepted descriptor itself: nothing to fall back from.
      assert.doesNotMatch(out, /fallback/)
    } finally {
      child.stdin.end()
      await new Promise((resolve) => child.once('close', resolve))
    }
  })

  test('a descriptor native code cannot poll is refused with ERR_RUSTLS_SOCKET, and the connection stays usable', async () => {
    // RustlsSocket falls back to the JS pump on this error (lib/socket.ts).
    const key = new addon.CertifiedKey(f.localhostEcdsa.cert, f.localhostEcdsa.key)
    const config = new addon.ServerConfig({ certifiedKeys: [key], versions: [0x0303, 0x0304], ignoreClientOrder: false, sendTickets: 0 })
    key.destroy()
    const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: false, deferred: false })
    const conn = new addon.Connection(router)
    const file = fs.openSync(__filename, 'r')
    try {
      // A regular file cannot be polled (epoll refuses it).
      assert.throws(() => conn.start(file, () => {}), { code: 'ERR_RUSTLS_SOCKET' })
      const slab = Buffer.alloc(65536)
      conn.feed(Buffer.from([0x16, 0x03, 0x01]), 0, 3, slab, 0, slab.length)
      assert.equal(results[Slot.Error], 0)
    } finally {
      fs.closeSync(file)
      conn.destroy()
      router.destroy()
      config.destroy()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
