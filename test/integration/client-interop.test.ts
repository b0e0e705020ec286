// rustls-node as a TLS client against openssl s_server and node:tls servers,
// and the verification failures with their exact codes (SPEC §3, §4.8).
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import net from 'node:net'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { ClientContext, ConfigError, connect, RustlsError, UnsupportedOptionError } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { sServer } from '../helpers/peers'
import { assertNoLiveHandles, nextError, payload, readAll, settle, sha256, startServer } from '../helpers/tls'

const f = fixtures()

async function nodeServer (options: tls.TlsOptions, onSecure: (s: tls.TLSSocket) => void = (s) => s.pipe(s)): Promise<{ port: number, close: () => Promise<void> }> {
  const server = tls.createServer(options, onSecure)
  const sockets = new Set<net.Socket>()
  server.on('connection', (s: net.Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('client interop', () => {
  for (const version of ['tls1_2', 'tls1_3'] as const) {
    test(`against openssl s_server -${version}`, async () => {
      const server = await sServer(['-cert', f.localhostEcdsa.certPath, '-key', f.localhostEcdsa.keyPath, `-${version}`, '-www'])
      try {
        const socket = connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
        await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
        assert.equal(socket.getProtocol(), version === 'tls1_2' ? 'TLSv1.2' : 'TLSv1.3')
        assert.equal(socket.authorized, true)
        socket.write('GET / HTTP/1.0\r\n\r\n')
        const page = (await readAll(socket)).toString()
        // s_server -www describes the session it negotiated with us.
        assert.match(page, new RegExp(`New, ${version === 'tls1_2' ? 'TLSv1\\.2' : 'TLSv1\\.3'}, Cipher is`))
      } finally {
        await server.close()
      }
    })
  }

  test('against a node:tls server: ALPN, peer certificate and 10 MB each way', async () => {
    const server = await nodeServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, ALPNProtocols: ['h2', 'http/1.1'] })
    try {
      const socket = connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] })
      await new Promise((resolve) => socket.once('secureConnect', resolve))
      assert.equal(socket.alpnProtocol, 'http/1.1')
      const peer = socket.getPeerCertificate()
      assert.equal((peer as unknown as { subject: { CN: string } }).subject.CN, 'localhost')
      assert.equal(socket.getPeerX509Certificate()?.checkHost('localhost'), 'localhost')
      const data = payload(10 * 1024 * 1024, 11)
      socket.end(data)
      assert.equal(sha256(await readAll(socket)), sha256(data))
    } finally {
      await server.close()
    }
  })

  test('the server closing with close_notify is a clean end; a bare FIN is a truncation error', async () => {
    // Our own server sends close_notify before its FIN on end().
    const clean = await startServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (s) => s.end('bye'))
    // A node:tls server whose TCP socket is ended under the TLS layer.
    const truncating = net.createServer((raw) => {
      const s = new tls.TLSSocket(raw, { isServer: true, cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key } as tls.TLSSocketOptions)
      s.once('secure', () => {
        s.write('partial')
        setTimeout(() => raw.end(), 50)
      })
      s.on('error', () => {})
    })
    await new Promise<void>((resolve) => truncating.listen(0, '127.0.0.1', resolve))
    try {
      const a = connect({ port: clean.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      assert.equal((await readAll(a)).toString(), 'bye')

      const b = connect({ port: (truncating.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      const chunks: Buffer[] = []
      let ended = false
      b.on('data', (c: Buffer) => chunks.push(c))
      b.on('end', () => { ended = true })
      const err = await nextError(b)
      assert.equal(Buffer.concat(chunks).toString(), 'partial')
      assert.equal(err.code, 'ERR_RUSTLS_UNEXPECTED_EOF')
      assert.equal(ended, false)
    } finally {
      await clean.close()
      await new Promise<void>((resolve) => truncating.close(() => resolve()))
    }
  })

  const failures: Array<[string, () => { cert: Buffer, key: Buffer }, string]> = [
    ['a server certificate from an unknown CA', () => f.otherLocalhost, 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER'],
    ['a hostname mismatch', () => f.wrongHost, 'ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME'],
    ['an expired certificate', () => f.expired, 'ERR_RUSTLS_CERT_EXPIRED'],
  ]
  for (const [label, material, code] of failures) {
    test(`${label} fails with ${code}`, async () => {
      const { cert, key } = material()
      const server = await nodeServer({ cert, key })
      try {
        const socket = connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
        let secure = false
        socket.once('secureConnect', () => { secure = true })
        const err = await nextError(socket)
        assert.ok(err instanceof RustlsError)
        assert.equal(err.code, code)
        assert.equal(err.isCertificateError, true)
        assert.equal(secure, false)
      } finally {
        await server.close()
      }
    })
  }

  test('without a CA nothing is trusted: the configuration is refused', () => {
    assert.throws(() => connect({ port: 1, host: '127.0.0.1' }), (err: unknown) =>
      err instanceof ConfigError && err.code === 'ERR_TLS_CONFIG_CA' && err.keyPath === 'ca')
    assert.throws(() => new ClientContext({ ca: '' }), { code: 'ERR_TLS_CONFIG_CA' })
  })

  test('rejectUnauthorized: false is refused; dangerouslyDisableVerification is the only way', async () => {
    assert.throws(() => connect({ port: 1, ca: f.ca, rejectUnauthorized: false } as never), (err: unknown) =>
      err instanceof UnsupportedOptionError && err.option === 'rejectUnauthorized' && err.code === 'ERR_RUSTLS_UNSUPPORTED_OPTION')
    const server = await nodeServer({ cert: f.otherLocalhost.cert, key: f.otherLocalhost.key })
    try {
      const socket = connect({ port: server.port, host: '127.0.0.1', servername: 'localhost', dangerouslyDisableVerification: true })
      await new Promise((resolve) => socket.once('secureConnect', resolve))
      assert.equal(socket.authorized, false)
      assert.equal(socket.authorizationError, 'VERIFICATION_DISABLED')
      socket.end('x')
      assert.equal((await readAll(socket)).toString(), 'x')
    } finally {
      await server.close()
    }
  })

  test('node:tls options rustls cannot honour throw ERR_RUSTLS_UNSUPPORTED_OPTION naming the option', () => {
    for (const option of ['checkServerIdentity', 'session', 'pfx', 'ciphers', 'secureProtocol']) {
      assert.throws(() => connect({ port: 1, ca: f.ca, [option]: 'x' } as never),
        (err: unknown) => err instanceof UnsupportedOptionError && err.option === option)
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
