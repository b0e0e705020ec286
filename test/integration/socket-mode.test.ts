// Socket mode (native reads and writes on the descriptor): what differs
// from the JS pump and must still hold — byte counters, idle timeouts, and
// the fallback to the JS pump when no descriptor can be duplicated.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { connect } from '../../lib/index'
import type { RustlsSocket } from '../../lib/socket'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

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

  test('with no descriptor to spare for the duplicate, a connection falls back to the JS pump and works', async () => {
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
      assert.match(out, /fallback/)
    } finally {
      child.stdin.end()
      await new Promise((resolve) => child.once('close', resolve))
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
