// rustls-node as a TLS server against real clients: openssl s_client,
// curl and node:tls. Data integrity, framing, half-close and the failure
// cases of SPEC §3 with their exact error codes.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { connect } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { curl, sClient } from '../helpers/peers'
import { assertNoLiveHandles, nextError, payload, readAll, settle, sha256, startServer } from '../helpers/tls'

const f = fixtures()
const cert = f.localhostEcdsa

function echo (socket: RustlsSocket): void {
  socket.pipe(socket)
}

describe('server interop', () => {
  for (const version of ['tls1_2', 'tls1_3'] as const) {
    test(`openssl s_client -${version} completes the handshake and exchanges data`, async () => {
      const srv = await startServer({ cert: cert.cert, key: cert.key }, echo)
      try {
        const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, `-${version}`, '-servername', 'localhost',
          '-CAfile', f.path('ca.pem'), '-verify_return_error', '-verify_hostname', 'localhost'],
        { input: 'ping over rustls\n', holdOpenMs: 300 })
        assert.match(r.stdout, /Verify return code: 0 \(ok\)/)
        assert.match(r.stdout, new RegExp(`Protocol\\s*: ${version === 'tls1_2' ? 'TLSv1\\.2' : 'TLSv1\\.3'}`))
        assert.match(r.stdout, /ping over rustls/)
      } finally {
        await srv.close()
      }
    })
  }

  test('curl --cacert gets an HTTP response over HTTP/1.1 with keep-alive', async () => {
    const app = http.createServer((req, res) => res.end(`path=${req.url} encrypted=${(req.socket as unknown as RustlsSocket).encrypted}\n`))
    const srv = await startServer({ cert: cert.cert, key: cert.key, ALPNProtocols: ['http/1.1'] }, (s) => app.emit('connection', s))
    try {
      const r = await curl(['--cacert', f.path('ca.pem'), '--resolve', `localhost:${srv.port}:127.0.0.1`,
        `https://localhost:${srv.port}/one`, `https://localhost:${srv.port}/two`, '-w', '%{num_connects}\n'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, 'path=/one encrypted=true\n1\npath=/two encrypted=true\n0\n')
    } finally {
      await srv.close()
      app.close()
    }
  })

  test('node:tls client: protocol, cipher and ALPN agree on both sides', async () => {
    let serverSide: RustlsSocket | undefined
    const srv = await startServer({ cert: cert.cert, key: cert.key, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => {
      serverSide = s
      echo(s)
    })
    try {
      const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] })
      await new Promise((resolve) => client.once('secureConnect', resolve))
      await settle()
      assert.ok(serverSide !== undefined)
      assert.equal(serverSide.getProtocol(), client.getProtocol())
      assert.equal(serverSide.getCipher()?.standardName, client.getCipher().standardName)
      assert.equal(serverSide.alpnProtocol, 'http/1.1')
      client.end('hello')
      const echoed = await readAll(client)
      assert.equal(echoed.toString(), 'hello')
      assert.equal(client.alpnProtocol, 'http/1.1')
      assert.equal(serverSide.servername, 'localhost')
      assert.equal(client.authorized, true)
    } finally {
      await srv.close()
    }
  })

  test('10 MB each way with node:tls and with rustls clients, byte-exact', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key }, echo)
    const data = payload(10 * 1024 * 1024, 7)
    try {
      const nodeClient = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      nodeClient.end(data)
      assert.equal(sha256(await readAll(nodeClient)), sha256(data))
      const rustlsClient = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      rustlsClient.end(data)
      assert.equal(sha256(await readAll(rustlsClient)), sha256(data))
    } finally {
      await srv.close()
    }
  })

  test('10 000 small writes arrive in order; one 1 MB write arrives whole', async () => {
    const big = payload(1024 * 1024, 3)
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.once('data', () => {
        s.end(big)
      })
    })
    const received: Buffer[] = []
    const inbound = startServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.on('data', (c: Buffer) => received.push(c))
      s.on('end', () => s.end())
    })
    const sink = await inbound
    try {
      const client = tls.connect({ port: sink.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => client.once('secureConnect', resolve))
      const pieces: string[] = []
      for (let i = 0; i < 10_000; i++) {
        const piece = `${i.toString().padStart(5, '0')},`
        pieces.push(piece)
        client.write(piece)
      }
      client.end()
      await new Promise((resolve) => client.once('close', resolve))
      await settle()
      assert.equal(Buffer.concat(received).toString(), pieces.join(''))

      const reader = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      reader.write('go')
      assert.equal(sha256(await readAll(reader)), sha256(big))
    } finally {
      await srv.close()
      await sink.close()
    }
  })

  test('corked writes beyond the coalescing limit all arrive, whatever the transport backpressure', async () => {
    const chunks = [payload(64 * 1024, 21), payload(64 * 1024, 22), payload(64 * 1024, 23), payload(300 * 1024, 24)]
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => {
      s.cork()
      for (const c of chunks) s.write(c)
      s.uncork()
      s.end()
    })
    try {
      const client = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      assert.equal(sha256(await readAll(client)), sha256(Buffer.concat(chunks)))
    } finally {
      await srv.close()
    }
  })

  test('half-close: the server answers after the client ended its side', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key, allowHalfOpen: true }, (s) => {
      const got: Buffer[] = []
      s.on('data', (c: Buffer) => got.push(c))
      s.on('end', () => {
        // Our side is still writable after the peer's close_notify.
        setTimeout(() => s.end(`received ${Buffer.concat(got).length} bytes`), 50)
      })
    })
    try {
      const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, allowHalfOpen: true } as tls.ConnectionOptions)
      await new Promise((resolve) => client.once('secureConnect', resolve))
      client.end('0123456789')
      assert.equal((await readAll(client)).toString(), 'received 10 bytes')
    } finally {
      await srv.close()
    }
  })

  test('a TLS 1.2-only client is refused by a minVersion TLSv1.3 server (protocol_version)', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key, minVersion: 'TLSv1.3' })
    try {
      const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-tls1_2', '-servername', 'localhost'])
      assert.notEqual(r.code, 0)
      assert.match(r.stderr, /alert protocol version/)
      await settle()
      assert.equal(srv.clientErrors.length, 1)
      assert.equal(srv.clientErrors[0].code, 'ERR_RUSTLS_PEER_INCOMPATIBLE_ERROR')
    } finally {
      await srv.close()
    }
  })

  test('garbage instead of a ClientHello ends that connection only, with a stable code', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key }, echo)
    try {
      const raw = net.connect(srv.port, '127.0.0.1')
      raw.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
      const reply = await readAll(raw)
      // At most an alert record comes back, never a certificate.
      assert.ok(reply.length <= 7, `reply of ${reply.length} bytes`)
      const err = srv.clientErrors[0]
      assert.ok(err !== undefined)
      assert.equal(err.code, 'ERR_RUSTLS_MESSAGE_INVALID_CONTENT_TYPE')
      // The server still serves the next client.
      const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      client.end('still alive')
      assert.equal((await readAll(client)).toString(), 'still alive')
    } finally {
      await srv.close()
    }
  })

  test('an EOF without close_notify after the handshake is a truncation error, not a clean end', async () => {
    let serverSide: RustlsSocket | undefined
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => { serverSide = s })
    try {
      const raw = net.connect(srv.port, '127.0.0.1')
      const client = tls.connect({ socket: raw, servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => client.once('secureConnect', resolve))
      await settle()
      assert.ok(serverSide !== undefined)
      const failed = nextError(serverSide)
      let ended = false
      serverSide.on('end', () => { ended = true })
      // FIN on the TCP socket under TLS: no close_notify was sent.
      raw.end()
      const err = await failed
      assert.equal(err.code, 'ERR_RUSTLS_UNEXPECTED_EOF')
      assert.equal(ended, false)
      client.destroy()
    } finally {
      await srv.close()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
