// createServer({ nativeListener: true }): what the native listener (the
// default on POSIX) does that the net.Server path does not, in every mode
// of the suite (the option is explicit here). These are the rows of
// docs/node-tls-parity.md that differ: no 'connection' event, a
// FailedHandshake instead of a socket on 'tlsClientError', the native
// counters, the listen() forms, SNICallback answered with the hello paused,
// and what takes the net.Server path instead.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import tls from 'node:tls'

import { createServer, FailedHandshake, type ServerOptions } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const base: ServerOptions = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, nativeListener: true }

function echo (socket: RustlsSocket): void {
  socket.pipe(socket)
}

function errorPair (server: NodeJS.EventEmitter): Promise<[Error & { code?: string }, unknown]> {
  return new Promise((resolve) => server.once('tlsClientError', (err: Error, second: unknown) => resolve([err, second])))
}

describe('native listener', () => {
  test('openssl s_client: a RustlsSocket on secureConnection, and no connection event before it', async () => {
    const events: string[] = []
    const srv = await startServer(base, (s) => {
      events.push(`secure:${s.servername}`)
      // Echo the first chunk and end: s_client (-ign_eof) exits on our close_notify.
      s.once('data', (d: Buffer) => s.end(d))
    })
    srv.server.on('connection', () => events.push('connection'))
    try {
      const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-verify_return_error', '-ign_eof'],
        { input: 'through the native listener\n' })
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/)
      assert.match(r.stdout, /through the native listener/)
      assert.deepEqual(events, ['secure:localhost'])
      const c = srv.server.nativeCounters
      assert.ok(c !== undefined, 'nativeCounters exists on the native listener')
      assert.equal(c.accepted, 1)
      assert.equal(c.handshakes, 1)
    } finally {
      await srv.close()
    }
  })

  test('a failed handshake never becomes a socket: tlsClientError gets the error and a FailedHandshake with the facts', async () => {
    let secure = 0
    const srv = await startServer(base, (s) => {
      secure++
      echo(s)
    })
    try {
      const pair = errorPair(srv.server)
      const raw = net.connect(srv.port, '127.0.0.1')
      await new Promise((resolve) => raw.once('connect', resolve))
      const localPort = raw.localPort
      const request = 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'
      raw.write(request)
      const reply = await readAll(raw)
      assert.ok(reply.length <= 7, `at most an alert comes back, not ${reply.length} bytes`)
      const [err, failed] = await pair
      assert.equal(err.code, 'ERR_RUSTLS_MESSAGE_INVALID_CONTENT_TYPE')
      assert.ok(failed instanceof FailedHandshake, 'the second argument is a FailedHandshake')
      assert.equal(failed.remoteAddress, '127.0.0.1')
      assert.equal(failed.remotePort, localPort)
      assert.equal(failed.servername, false)
      assert.ok(failed.bytesRead >= 5 && failed.bytesRead <= request.length, `bytesRead ${failed.bytesRead}`)
      assert.equal(failed.bytesWritten, reply.length)
      assert.equal(failed.destroyed, true)
      failed.destroy() // already closed: a no-op that must not throw
      assert.equal(secure, 0, 'no secureConnection for the failed one')
      const c = srv.server.nativeCounters
      assert.ok(c !== undefined)
      assert.equal(c.handshakes, 0)
      assert.equal(Object.values(c.failures).reduce((a, b) => a + b, 0), 1, JSON.stringify(c.failures))
      // Only that connection ended: the next client is served.
      const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      client.end('still serving')
      assert.equal((await readAll(client)).toString(), 'still serving')
    } finally {
      await srv.close()
    }
  })

  test('strictSNI: an unknown name is refused natively with its servername in the FailedHandshake', async () => {
    const srv = await startServer({ hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }] }], strictSNI: true, nativeListener: true })
    try {
      const pair = errorPair(srv.server)
      const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'nobody.example.test', ca: f.ca })
      const clientErr = await new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve))
      assert.match(clientErr.message, /unrecognized name/i)
      const [err, failed] = await pair
      assert.match(err.code ?? '', /^ERR_RUSTLS_/)
      assert.ok(failed instanceof FailedHandshake)
      assert.equal(failed.servername, 'nobody.example.test')
    } finally {
      await srv.close()
    }
  })

  test('listen on a Unix socket path; close() waits for the live connection, and the counters drop to zero', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-native-'))
    const sock = path.join(dir, 'tls.sock')
    const server = createServer(base, echo)
    try {
      await new Promise<void>((resolve) => server.listen(sock, resolve))
      assert.equal(server.address(), sock)
      const client = tls.connect({ path: sock, servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => client.once('secureConnect', resolve))
      client.write('over a path')
      const first = await new Promise<Buffer>((resolve) => client.once('data', resolve))
      assert.equal(first.toString(), 'over a path')
      let closed = false
      const done = new Promise<void>((resolve) => server.close(() => { closed = true; resolve() }))
      await settle(100)
      assert.equal(closed, false, 'close() waits for the connection still open')
      assert.equal(server.nativeCounters?.live, 1)
      assert.equal(await new Promise<number>((resolve, reject) => server.getConnections((err, n) => err === null ? resolve(n) : reject(err))), 1)
      client.end()
      await done
      assert.equal(server.nativeCounters?.live, 0)
    } finally {
      if (server.listening) server.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('SNICallback on the native listener: the hello waits for the answer; a context serves, an error refuses', async () => {
    const { createSecureContext } = await import('../../lib/index')
    const ctx = createSecureContext({ cert: f.localhostRsa.cert, key: f.localhostRsa.key })
    const asked: string[] = []
    const srv = await startServer({
      ...base,
      SNICallback: (name, cb) => {
        asked.push(name)
        // Answered later: the native listener keeps the hello meanwhile.
        setTimeout(() => (name === 'refused.test' ? cb(new Error('no')) : cb(null, ctx)), 20)
      },
    }, (s) => s.end(s.servername === false ? 'none' : s.servername))
    try {
      const ok = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      assert.equal((await readAll(ok)).toString(), 'localhost')
      assert.equal(ok.getPeerX509Certificate()?.publicKey.asymmetricKeyType, 'rsa', 'the callback\'s context served')
      const refused = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'refused.test', ca: f.ca })
      const err = await new Promise<Error & { code?: string }>((resolve) => refused.once('error', resolve))
      assert.match(String(err.code ?? err.message), /UNRECOGNIZED_NAME|unrecognized name/i)
      assert.deepEqual(asked, ['localhost', 'refused.test'])
      await settle(50)
      assert.equal(srv.clientErrors.length, 1)
      assert.equal(srv.clientErrors[0].code, 'ERR_RUSTLS_SNI_REFUSED')
      assert.equal(srv.server.nativeCounters?.accepted, 2, 'both arrived through the native listener')
    } finally {
      await srv.close()
      ctx.destroy()
    }
  })

  test('nativeListener: true refuses what needs the net.Server path, by name: a connection listener, listen(handle)', () => {
    const withListener = createServer(base)
    withListener.on('connection', () => {})
    assert.throws(() => withListener.listen(0, '127.0.0.1'), (err: Error & { code?: string, option?: string }) =>
      err.code === 'ERR_RUSTLS_UNSUPPORTED_OPTION' && err.option === 'nativeListener' && /connection/.test(err.message))
    const server = createServer(base)
    const handle = net.createServer()
    try {
      assert.throws(() => server.listen({ handle }), { code: 'ERR_RUSTLS_UNSUPPORTED_OPTION' })
    } finally {
      handle.close()
      server.close()
      withListener.close()
    }
  })

  test('nativeListener: false, or a connection listener without the option, takes the net.Server path', async () => {
    for (const options of [{ ...base, nativeListener: false }, { cert: base.cert, key: base.key }]) {
      const events: string[] = []
      const server = createServer(options, (s) => s.end())
      server.on('connection', (raw: net.Socket) => events.push(`connection:${raw instanceof net.Socket}`))
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      try {
        const client = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
        await readAll(client)
        assert.deepEqual(events, ['connection:true'])
        assert.equal(server.nativeCounters, undefined)
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()))
      }
    }
  })
})
