// A short run of the fd pump (native reads/writes on the descriptor: the
// native listener's connections, native clients) over every path:
// handshakes, data both ways, backpressure, close_notify, truncation,
// garbage, refusal, resumption, and createHttpsServer: HTTP/1.1 on the
// RustlsSocket, HTTP/2 relayed natively to a socketpair node:http2 reads. Small enough to run under
// valgrind or AddressSanitizer: `valgrind node dist/test/native/fd-pump-smoke.js`
// (see scripts/memcheck.sh). Exits non-zero on any mismatch.
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'

import { ClientContext, connect, createHttpsServer, createServer, liveHandles } from '../../lib/index'
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
  await relaySmoke(big)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.deepEqual(Object.values(liveHandles()), [0, 0, 0, 0, 0, 0, 0, 0, 0])
  console.log('socket-mode smoke: ok')
}

/** createHttpsServer on the default path: HTTP/1.1 and the HTTP/2 relay. */
async function relaySmoke (big: Buffer): Promise<void> {
  const server = createHttpsServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => res.end(Buffer.concat(chunks)))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  // HTTP/1.1 keep-alive: three echoes on one connection.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: f.ca })
  for (let i = 0; i < 3; i++) {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = https.request({ port, host: '127.0.0.1', servername: 'localhost', method: 'POST', agent }, (res) => {
        readAll(res).then(resolve, reject)
      })
      req.on('error', reject)
      req.end(big)
    })
    assert.equal(body.length, big.length)
  }
  agent.destroy()
  // HTTP/2: two concurrent echoes, then a session dropped mid-stream. (Not
  // a client RST_STREAM while the request body flows: Node 20's own http2
  // server reads freed memory then, over node:tls just the same.)
  const session = http2.connect(`https://localhost:${port}`, { ca: f.ca, host: '127.0.0.1' } as http2.SecureClientSessionOptions)
  const echo = (): Promise<number> => new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/' })
    readAll(stream).then((b) => resolve(b.length), reject)
    stream.end(big)
  })
  assert.deepEqual(await Promise.all([echo(), echo()]), [big.length, big.length])
  const cut = session.request({ ':method': 'POST', ':path': '/' })
  cut.on('error', () => {})
  session.on('error', () => {})
  cut.write(big.subarray(0, 1000))
  await new Promise((resolve) => setTimeout(resolve, 50))
  session.destroy()
  // A client that goes without close_notify in the middle of a request.
  const rude = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] })
  await new Promise((resolve) => rude.once('secureConnect', resolve))
  rude.write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nabc')
  await new Promise((resolve) => setTimeout(resolve, 50))
  rude.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
