// A short run of the fd pump (native reads/writes on the descriptor: the
// native listener's connections, native clients) over every path:
// handshakes, data both ways, backpressure, close_notify, truncation,
// garbage, refusal, resumption. Small enough to run under
// valgrind or AddressSanitizer: `valgrind node dist/test/native/fd-pump-smoke.js`
// (see scripts/memcheck.sh). Exits non-zero on any mismatch.
import assert from 'node:assert/strict'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'

import { ClientContext, connect, createServer, liveHandles } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'

const f = fixtures()

function readAll (s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', () => resolve(Buffer.concat(chunks)))
    s.once('error', reject)
  })
}

async function main (): Promise<void> {
  const server = createServer({
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }] }],
    handshakeTimeout: 2000,
  }, (s: RustlsSocket) => {
    s.on('error', () => {})
    s.pipe(s)
  })
  server.on('tlsClientError', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const context = new ClientContext({ ca: f.ca })
  const big = Buffer.alloc(300 * 1024, 7)
  for (let i = 0; i < 3; i++) {
    const c = connect({ port, host: '127.0.0.1', servername: 'localhost', context })
    c.end(big)
    const echoed = await readAll(c)
    assert.equal(echoed.length, big.length)
  }
  // A slow reader: backpressure stops native reads and resumes them.
  const slow = connect({ port, host: '127.0.0.1', servername: 'localhost', context, highWaterMark: 1024 })
  slow.end(big)
  let got = 0
  await new Promise<void>((resolve) => {
    slow.on('readable', () => {
      let chunk
      while ((chunk = slow.read(512)) !== null) got += chunk.length
    })
    slow.once('end', resolve)
  })
  assert.equal(got, big.length)
  // node:tls peer, truncation, garbage, refused name.
  const n = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
  n.end('x')
  assert.equal((await readAll(n)).toString(), 'x')
  const raw = net.connect(port, '127.0.0.1')
  raw.end('GET / HTTP/1.1\r\n\r\n')
  await readAll(raw)
  const refused = tls.connect({ port, host: '127.0.0.1', servername: 'nope.example', ca: f.ca })
  await new Promise((resolve) => refused.once('error', resolve))
  const under = net.connect(port, '127.0.0.1')
  const t = tls.connect({ socket: under, servername: 'localhost', ca: f.ca })
  await new Promise((resolve) => t.once('secureConnect', resolve))
  under.end()
  await new Promise((resolve) => under.once('close', resolve))
  context.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(Object.values(liveHandles()), [0, 0, 0, 0, 0, 0, 0, 0, 0])
  console.log('socket-mode smoke: ok')
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
