// The fd pump (native code owns the descriptor: the native listener's
// connections, clients that connect natively): what differs from the
// stream pump and must still hold — byte counters, backpressure, idle
// timeouts, one descriptor per connection, and native connect's failures.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'
import v8 from 'node:v8'
import vm from 'node:vm'

import { connect } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer, STREAM_PUMP } from '../helpers/tls'

const f = fixtures()
const ecdsa = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

describe('fd pump', () => {
  test('connections nobody in JS holds (an echo server\'s socket, a client kept only by its callbacks) survive GC', async () => {
    // These sockets are reached only through their native connection's
    // events: native code must hold them while it polls their descriptors.
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const held: RustlsSocket[] = []
    let holdServerSide = false
    const srv = await startServer(ecdsa, (s) => {
      s.on('data', (d: Buffer) => s.write(d))
      if (holdServerSide) held.push(s)
    })
    const collect = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        gc()
        await settle()
      }
    }
    try {
      // 1. The server's socket is held by nobody; the client is.
      const echoes: Buffer[] = []
      let closed = 0
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => c.once('secureConnect', resolve))
      c.on('data', (d: Buffer) => echoes.push(d))
      c.on('close', () => closed++)
      await collect()
      c.write('after gc')
      await waitFor(() => Buffer.concat(echoes).toString() === 'after gc', 5000, 'the echo after GC')
      assert.equal(closed, 0)
      c.destroy()

      // 2. The client is held by nobody; the server's socket is.
      holdServerSide = true
      const got: Buffer[] = []
      await new Promise<void>((resolve) => {
        connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca }, resolve)
          .on('data', (d: Buffer) => got.push(d))
      })
      await waitFor(() => held.length === 1, 5000, 'the second connection at the server')
      await collect()
      held[0].write('to a client nobody holds')
      await waitFor(() => Buffer.concat(got).toString() === 'to a client nobody holds', 5000, 'the data after GC')
      held[0].destroy()
    } finally {
      await srv.close()
    }
  })

  test('a socket whose peer left without close_notify can be collected once closed: no grace timer holds it', async () => {
    v8.setFlagsFromString('--expose-gc')
    const gc = vm.runInNewContext('gc') as () => void
    const sockets: Array<WeakRef<RustlsSocket>> = []
    const errors = new Set<string>()
    let closed = 0
    const srv = await startServer(ecdsa, (s) => {
      sockets.push(new WeakRef(s))
      s.on('error', (err: NodeJS.ErrnoException) => errors.add(err.code ?? err.message))
      s.on('close', () => closed++)
    })
    try {
      for (let i = 1; i <= 5; i++) {
        const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
        await new Promise((resolve) => c.once('secureConnect', resolve))
        await waitFor(() => sockets.length === i, 5000, 'the connection at the server')
        // The FIN without close_notify: a truncation, which ends the
        // server's socket through the failure path (alert, FIN, grace).
        c.destroy()
      }
      await waitFor(() => closed === 5, 5000, 'the server\'s sockets closed')
      assert.deepEqual([...errors], ['ERR_RUSTLS_UNEXPECTED_EOF'])
      // Well inside the 2 s grace: a grace timer still running would hold its socket.
      for (let i = 0; i < 3; i++) {
        gc()
        await settle()
      }
      assert.equal(sockets.filter((ref) => ref.deref() !== undefined).length, 0, 'server sockets still reachable after close')
    } finally {
      await srv.close()
    }
  })

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
      // The fd pump really ran on both sides: no net.Socket under either.
      // (The stream pass runs both over net.Sockets, which count the same.)
      if (!STREAM_PUMP) {
        assert.equal(c.transport, undefined)
        assert.equal(serverSide.transport, undefined)
        // Addresses never asked for before the close: native code read them
        // once connected and keeps them for logs after the descriptor closed.
        assert.ok(serverSide.destroyed && c.destroyed)
        assert.equal(serverSide.remoteAddress, '127.0.0.1')
        assert.equal(serverSide.remotePort, c.localPort)
        assert.equal(c.remotePort, srv.port)
        assert.equal(c.remoteFamily, 'IPv4')
      } else {
        assert.equal((c.transport as net.Socket).bytesRead, c.bytesRead)
      }
    } finally {
      await srv.close()
    }
  })

  test('strings are written in their encoding, alone, corked with Buffers, and before the handshake completes', async () => {
    // The fd pump copies latin1 and utf8 strings natively and gathers small
    // chunks into one record; other encodings become Buffers in JS.
    const utf8 = 'grüße, 世界 🙂'
    const latin1 = 'caf\u00e9 \u00ff'
    const big = 'ß'.repeat(20_000)
    const early = Buffer.from('fr\u00fch', 'latin1')
    const expected = Buffer.concat([
      Buffer.from(utf8, 'utf8'),
      Buffer.from(latin1, 'latin1'),
      Buffer.from('cafe', 'hex'),
      Buffer.from('c29tZQ==', 'base64'),
      Buffer.from('ascii\u00e9', 'ascii'),
      Buffer.from([1, 2, 3]),
      Buffer.from(big, 'utf8'),
      Buffer.from('x'.repeat(70_000)),
      Buffer.from(utf8, 'utf16le'),
      Buffer.from('LATIN1 \u00e9', 'latin1'),
      Buffer.from('end', 'utf8'),
    ])
    let received: Buffer | undefined
    const srv = await startServer(ecdsa, (s) => {
      // The client's string written before its handshake completed, first.
      const got: Buffer[] = []
      s.on('data', (d: Buffer) => {
        got.push(d)
        if (Buffer.concat(got).length >= early.length) received ??= Buffer.concat(got)
      })
      s.cork()
      s.write(utf8)
      s.write(latin1, 'latin1')
      s.write('cafe', 'hex')
      s.write('c29tZQ==', 'base64')
      s.write('ascii\u00e9', 'ascii')
      s.write(Buffer.from([1, 2, 3]))
      s.write(big)
      s.write(Buffer.from('x'.repeat(70_000)))
      s.uncork()
      s.write(utf8, 'utf16le')
      s.write('LATIN1 \u00e9', 'LATIN1' as BufferEncoding)
      s.end('end')
    })
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      c.write('fr\u00fch', 'latin1')
      const got = await readAll(c)
      await waitFor(() => received !== undefined, 5000, 'the client\'s early string at the server')
      assert.ok(received?.equals(early), `the server read ${received?.toString('hex')}`)
      assert.equal(got.length, expected.length)
      assert.ok(got.equals(expected), 'the bytes as Buffer.from would encode them')
    } finally {
      await srv.close()
    }
  })

  test('a cork of 70 strings: each keeps its own encoding past the latin1 mask\'s bits', async () => {
    // The pumps mark latin1 strings in a bit mask of 30 bits; later latin1
    // strings go as Buffers, and no bit may stand for a later chunk (a
    // shift by 32 is a shift by 0 in JS).
    const writes: Array<[string, BufferEncoding]> = []
    for (let i = 0; i < 70; i++) writes.push([`\u00e9${i}`, i % 3 === 0 ? 'latin1' : 'utf8'])
    const expected = Buffer.concat(writes.map(([text, encoding]) => Buffer.from(text, encoding)))
    const srv = await startServer(ecdsa, (s) => {
      s.cork()
      for (const [text, encoding] of writes) s.write(text, encoding)
      s.uncork()
      s.end()
    })
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      const got = await readAll(c)
      assert.equal(got.toString('hex'), expected.toString('hex'))
    } finally {
      await srv.close()
    }
  })

  test('a cork over 200,000 writes: every byte leaves, in order', async () => {
    // The fd pump hands a batch's chunks to native code as call arguments,
    // which a batch this long would overflow in one call.
    const count = 200_000
    const srv = await startServer(ecdsa, (s) => {
      s.cork()
      for (let i = 0; i < count; i++) s.write(i % 2 === 0 ? 'a' : Buffer.from('b'))
      s.write('\u00e9', 'latin1')
      s.uncork()
      s.end()
    })
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      const got = await readAll(c)
      assert.equal(got.length, count + 1)
      assert.equal(got.subarray(0, 6).toString(), 'ababab')
      assert.equal(got[count], 0xe9)
      assert.equal(got.toString('latin1', 0, count), 'ab'.repeat(count / 2))
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

  test('native connect: a refused port is a system error naming the address; a name with a dead first address goes on to the next', async () => {
    const closed = net.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as net.AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const c = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
    const err = await new Promise<Error & { code?: string, syscall?: string, address?: string, port?: number }>((resolve) => c.once('error', resolve))
    assert.equal(err.code, 'ECONNREFUSED')
    assert.equal(err.syscall, 'connect')
    assert.equal(err.address, '127.0.0.1')
    assert.equal(err.port, port)
    // 'localhost' resolves to ::1 and 127.0.0.1 here; the server listens on
    // the IPv4 one only, so whichever comes first, the client gets there.
    const srv = await startServer(ecdsa, (s) => s.end('over localhost'))
    try {
      const byName = connect({ port: srv.port, host: 'localhost', ca: f.ca })
      await new Promise((resolve) => byName.once('secureConnect', resolve))
      assert.equal(byName.remoteAddress, '127.0.0.1')
      assert.equal((await readAll(byName)).toString(), 'over localhost')
    } finally {
      await srv.close()
    }
  })
})

describe('connect(): which pump', () => {
  test('family: 4 takes only IPv4 addresses; lookup (a net.connect option) runs over a net.Socket, and is called', async () => {
    const srv = await startServer(ecdsa, (s) => s.end('hello'))
    try {
      const v4 = connect({ port: srv.port, host: 'localhost', family: 4, ca: f.ca })
      await new Promise((resolve) => v4.once('secureConnect', resolve))
      assert.equal(v4.remoteFamily, 'IPv4')
      assert.equal((await readAll(v4)).toString(), 'hello')
      if (!STREAM_PUMP) assert.equal(v4.transport, undefined, 'connected natively')
      const looked: string[] = []
      const lookup = (host: string, options: unknown, cb: (...args: unknown[]) => void): void => {
        looked.push(host)
        const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true
        if (all) cb(null, [{ address: '127.0.0.1', family: 4 }])
        else cb(null, '127.0.0.1', 4)
      }
      const viaNet = connect({ port: srv.port, host: 'example.invalid', servername: 'localhost', lookup: lookup as net.LookupFunction, ca: f.ca })
      assert.equal((await readAll(viaNet)).toString(), 'hello')
      assert.deepEqual(looked, ['example.invalid'])
      assert.ok(viaNet.transport instanceof net.Socket, 'a net.Socket under it: the stream pump')
    } finally {
      await srv.close()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
