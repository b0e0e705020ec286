// node:tls parity scenarios, in the manner of Node's own test-tls-* tests:
// every "supported" row of docs/node-tls-parity.md that no other file
// covers, and the rows that must throw ERR_RUSTLS_UNSUPPORTED_OPTION.
import assert from 'node:assert/strict'
import net, { type AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { connect, createSecureContext, createServer, RustlsSocket, UnsupportedOptionError } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { sClient, waitFor } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const ecdsa = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

describe('node:tls parity', () => {
  test('test-tls-alpn-server-client: the server picks its first protocol the client offers', async () => {
    const srv = await startServer({ ...ecdsa, ALPNProtocols: ['h2', 'http/1.1'] }, (s) => s.end(String(s.alpnProtocol)))
    try {
      const cases: Array<[string[] | undefined, string]> = [[['http/1.1', 'h2'], 'h2'], [['http/1.1'], 'http/1.1'], [undefined, 'false']]
      for (const [offer, expected] of cases) {
        const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ALPNProtocols: offer })
        assert.equal((await readAll(c)).toString(), expected)
      }
      // No protocol in common: rustls refuses (RFC 7301 §3.2 no_application_protocol).
      const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ALPNProtocols: ['spdy/3'] })
      const err = await new Promise<Error & { code?: string }>((resolve) => c.once('error', resolve))
      assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL')
    } finally {
      await srv.close()
    }
  })

  test('test-tls-peer-certificate: detailed chain with issuerCertificate links', async () => {
    const srv = await startServer({ cert: f.aEcdsa.chain, key: f.aEcdsa.key }, (s) => s.end())
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'a.example.test', ca: f.ca })
      await new Promise((resolve) => c.once('secureConnect', resolve))
      const peer = c.getPeerCertificate(true) as ReturnType<RustlsSocket['getPeerCertificate']> & { subject: { CN: string }, issuerCertificate?: { subject: { CN: string }, ca: boolean } }
      assert.equal(peer.subject.CN, 'a.example.test')
      assert.match(String((peer as { subjectaltname?: string }).subjectaltname), /DNS:a\.example\.test/)
      assert.equal(peer.issuerCertificate?.ca, true)
      assert.notEqual(peer.issuerCertificate?.subject.CN, 'a.example.test')
      const plain = c.getPeerCertificate() as { issuerCertificate?: unknown, raw: Buffer, fingerprint256: string }
      assert.equal(plain.issuerCertificate, undefined)
      assert.equal(plain.fingerprint256, c.getPeerX509Certificate()?.fingerprint256)
      assert.ok(Buffer.isBuffer(plain.raw))
      assert.equal(c.getEphemeralKeyInfo()?.type, 'ECDH')
      await readAll(c)
    } finally {
      await srv.close()
    }
  })

  test('test-tls-multi-key: cert and key arrays, each key paired with its own certificate', async () => {
    // Keys deliberately in the other order than their certificates.
    const srv = await startServer({ cert: [f.localhostRsa.cert, f.localhostEcdsa.cert], key: [f.localhostEcdsa.key, f.localhostRsa.key] }, (s) => s.end())
    try {
      const rsa = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost', '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'], { holdOpenMs: 50 })
      assert.match(rsa.stdout, /Peer signature type: RSA/)
      const ec = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost', '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'], { holdOpenMs: 50 })
      assert.match(ec.stdout, /Peer signature type: ECDSA/)
    } finally {
      await srv.close()
    }
  })

  test('test-tls-add-context: addContext serves a new name; setSecureContext replaces the default', async () => {
    const b = createSecureContext({ cert: f.bEcdsa.chain, key: f.bEcdsa.key })
    const srv = await startServer({ cert: f.aEcdsa.chain, key: f.aEcdsa.key, strictSNI: true }, (s) => s.end())
    const subject = async (servername: string): Promise<string | undefined> => {
      const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-servername', servername], { holdOpenMs: 50 })
      return r.stdout.match(/subject=.*?CN ?= ?([^,\n]+)/)?.[1]
    }
    try {
      assert.equal(await subject('b.example.test'), undefined)
      srv.server.addContext('b.example.test', b)
      assert.equal(await subject('b.example.test'), 'b.example.test')
      assert.equal(await subject('a.example.test'), 'a.example.test')
      srv.server.setSecureContext({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key })
      assert.equal(await subject('localhost'), 'localhost')
      assert.equal(await subject('b.example.test'), 'b.example.test')
      assert.throws(() => srv.server.addContext('x.example.test', {} as never), UnsupportedOptionError)
    } finally {
      await srv.close()
      b.destroy()
    }
  })

  test('test-tls-ticket: setTicketKeys / getTicketKeys', async () => {
    const srv = await startServer({ ...ecdsa }, (s) => s.end())
    const off = await startServer({ ...ecdsa, sessionCache: 'none' }, (s) => s.end())
    try {
      // As node:tls, the keys in use: here the generated ones, current and
      // next (80 bytes each), as a copy.
      const generated = srv.server.getTicketKeys() as Buffer
      assert.equal(generated.length, 160)
      generated.fill(0)
      assert.notDeepEqual(srv.server.getTicketKeys(), generated)
      srv.server.setTicketKeys(f.ticketKeys)
      assert.deepEqual(srv.server.getTicketKeys(), f.ticketKeys)
      // node:tls' 48-byte keys are not rustls-node's 80-byte keys; the keys stay.
      assert.throws(() => srv.server.setTicketKeys(Buffer.alloc(48)), { code: 'ERR_TLS_CONFIG_TICKET_KEYS' })
      assert.deepEqual(srv.server.getTicketKeys(), f.ticketKeys)
      // No tickets at all: undefined, until keys are given.
      assert.equal(off.server.getTicketKeys(), undefined)
      off.server.setTicketKeys([f.ticketKeys.subarray(0, 80)])
      assert.deepEqual(off.server.getTicketKeys(), f.ticketKeys.subarray(0, 80))
    } finally {
      await Promise.all([srv.close(), off.close()])
    }
  })

  test('test-tls-wrap-econnreset style: new RustlsSocket(socket, options) over an existing TCP socket, both roles', async () => {
    // STARTTLS-like: plain TCP first, then TLS on the same sockets.
    const raw = net.createServer((plain) => {
      plain.once('data', () => {
        plain.pause()
        const secure = new RustlsSocket(plain, { isServer: true, cert: ecdsa.cert, key: ecdsa.key })
        secure.on('data', (d: Buffer) => secure.end(`tls:${d.toString()}`))
        plain.write('GO\n')
        plain.resume()
      })
    })
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
    try {
      const plain = net.connect((raw.address() as AddressInfo).port, '127.0.0.1')
      await new Promise((resolve) => plain.once('connect', resolve))
      plain.write('STARTTLS\n')
      await new Promise((resolve) => plain.once('data', resolve))
      const secure = new RustlsSocket(plain, { ca: f.ca, servername: 'localhost' })
      await new Promise((resolve) => secure.once('secureConnect', resolve))
      assert.equal(secure.authorized, true)
      secure.write('hello')
      assert.equal((await readAll(secure)).toString(), 'tls:hello')
    } finally {
      await new Promise<void>((resolve) => raw.close(() => resolve()))
    }
  })

  test('methods rustls cannot provide throw ERR_RUSTLS_UNSUPPORTED_OPTION; disableRenegotiation is a no-op', async () => {
    const srv = await startServer({ ...ecdsa }, (s) => s.end())
    try {
      const c = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      await new Promise((resolve) => c.once('secureConnect', resolve))
      for (const name of ['renegotiate', 'exportKeyingMaterial', 'getFinished', 'getPeerFinished', 'getSession', 'getTLSTicket', 'getSharedSigalgs', 'setMaxSendFragment', 'setServername', 'enableTrace'] as const) {
        assert.throws(() => (c[name] as () => unknown)(), (err: unknown) => err instanceof UnsupportedOptionError && err.option === name, name)
      }
      c.disableRenegotiation()
      await readAll(c)
    } finally {
      await srv.close()
    }
  })

  test('connect(path), timeout, highWaterMark, addresses, noDelay/keepAlive: the net-level options', async () => {
    const sockPath = `${f.dir}/tls-${process.pid}.sock`
    const seen: Array<{ remote?: string, local?: number, hwm: number }> = []
    const server = createServer({ ...ecdsa, highWaterMark: 1024, noDelay: true, keepAlive: true }, (s) => {
      seen.push({ remote: s.remoteAddress, local: s.localPort, hwm: s.readableHighWaterMark })
      s.end('over tls')
    })
    await new Promise<void>((resolve) => server.listen(sockPath, resolve))
    const tcp = await startServer({ ...ecdsa }, (s) => {
      seen.push({ remote: s.remoteAddress, local: s.localPort, hwm: s.readableHighWaterMark })
      s.write('hi')
    })
    try {
      const viaPath = connect(sockPath, { servername: 'localhost', ca: f.ca, highWaterMark: 2048 })
      assert.equal(viaPath.readableHighWaterMark, 2048)
      assert.equal((await readAll(viaPath)).toString(), 'over tls')
      assert.equal(seen[0].hwm, 1024)

      const c = connect({ port: tcp.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, timeout: 150, noDelay: true, keepAlive: true })
      await new Promise((resolve) => c.once('secureConnect', resolve))
      assert.equal(c.remoteAddress, '127.0.0.1')
      assert.equal(c.remotePort, tcp.port)
      assert.equal(c.localAddress, '127.0.0.1')
      assert.equal((c.address() as AddressInfo).port, c.localPort)
      await waitFor(() => seen.length === 2, 5000, 'server side secure')
      assert.equal(seen[1].remote, '127.0.0.1')
      assert.equal(seen[1].local, tcp.port)
      // The idle timeout of node:tls' `timeout` option reaches the socket.
      // (No lower bound on the wait: the timer runs from the last traffic,
      // before this line, and a loaded machine may get here late.)
      await new Promise((resolve) => c.once('timeout', resolve))
      c.destroy()
    } finally {
      await tcp.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  test('handshakeTimeout: a client that stalls mid-ClientHello is closed, nothing is sent, tlsClientError says why', async () => {
    const srv = await startServer({ ...ecdsa, handshakeTimeout: 300 })
    try {
      const raw = net.connect(srv.port, '127.0.0.1')
      const received: Buffer[] = []
      raw.on('data', (d: Buffer) => received.push(d))
      // The first bytes of a TLS record header, then silence.
      raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02]))
      const start = Date.now()
      await new Promise((resolve) => raw.once('close', resolve))
      const elapsed = Date.now() - start
      assert.ok(elapsed >= 250 && elapsed < 2000, `closed after ${elapsed} ms`)
      assert.equal(Buffer.concat(received).length, 0)
      await settle()
      assert.equal(srv.clientErrors.at(-1)?.code, 'ERR_TLS_HANDSHAKE_TIMEOUT')
    } finally {
      await srv.close()
    }
  })

  test('test-tls-connect-simple style on the net.Server path: \'connection\' gives the raw socket before \'secureConnection\'', async () => {
    const events: string[] = []
    const srv = await startServer({ ...ecdsa, nativeListener: false }, (s) => s.end())
    srv.server.on('connection', (raw: net.Socket) => {
      events.push(`connection:${raw instanceof net.Socket}:${raw.remoteAddress}`)
    })
    srv.server.on('secureConnection', (s: RustlsSocket) => events.push(`secureConnection:${s.encrypted}`))
    try {
      const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      await readAll(c)
      await settle()
      assert.deepEqual(events, ['connection:true:127.0.0.1', 'secureConnection:true'])
    } finally {
      await srv.close()
    }
  })

  test('the remaining rows: honorCipherOrder, wire-format ALPN, getCertificate, socket methods, remoteFamily, client versions, no SNI for an IP', async () => {
    const answer = (s: RustlsSocket): void => {
      const own = s.getCertificate() as { subject?: { CN?: string } }
      s.end(`${s.getCipher()?.standardName}|${s.alpnProtocol}|${own.subject?.CN}|${s.remoteFamily}|${s.servername}`)
    }
    // Wire format: length-prefixed names, as node:tls accepts.
    const wire = Buffer.concat([Buffer.from([2]), Buffer.from('h2'), Buffer.from([8]), Buffer.from('http/1.1')])
    const offer = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256'
    const serverOrder = await startServer({ ...ecdsa, honorCipherOrder: true, ciphersPrefer: 'TLS_CHACHA20_POLY1305_SHA256', ALPNProtocols: wire }, answer)
    const clientOrder = await startServer({ ...ecdsa, honorCipherOrder: false, ciphersPrefer: 'TLS_CHACHA20_POLY1305_SHA256' }, answer)
    const old = tls.createServer({ ...ecdsa, maxVersion: 'TLSv1.2' }, (s) => s.end('tls12'))
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve))
    const oldPort = (old.address() as AddressInfo).port
    try {
      const get = async (port: number): Promise<string> => {
        const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, ciphers: offer, ALPNProtocols: ['http/1.1', 'h2'] })
        return (await readAll(c)).toString()
      }
      assert.equal(await get(serverOrder.port), 'TLS_CHACHA20_POLY1305_SHA256|h2|localhost|IPv4|localhost')
      assert.equal(await get(clientOrder.port), 'TLS_AES_128_GCM_SHA256|false|localhost|IPv4|localhost')

      // Socket methods forward to the transport and chain, as on a TLSSocket.
      const c = connect({ port: serverOrder.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
      assert.equal(c.setNoDelay(true), c)
      assert.equal(c.setKeepAlive(true, 1000), c)
      assert.equal(c.unref(), c)
      assert.equal(c.ref(), c)
      assert.match((await readAll(c)).toString(), /\|IPv4\|localhost$/)

      // Client minVersion / maxVersion against a TLS 1.2-only node:tls server.
      const atLeast13 = connect({ port: oldPort, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: 'TLSv1.3' })
      const err = await new Promise<Error & { code?: string }>((resolve) => atLeast13.once('error', resolve))
      assert.match(String(err.code), /^ERR_RUSTLS_/)
      const upTo13 = connect({ port: oldPort, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' })
      assert.equal((await readAll(upTo13)).toString(), 'tls12')

      // An IP address as host and no servername: no SNI is sent.
      const noSni = connect({ port: serverOrder.port, host: '127.0.0.1', dangerouslyDisableVerification: true })
      assert.match((await readAll(noSni)).toString(), /\|false$/)
    } finally {
      await serverOrder.close()
      await clientOrder.close()
      await new Promise<void>((resolve) => old.close(() => resolve()))
    }
  })

  test('test-tls-client-allow-half-open style: connect({allowHalfOpen}) keeps writing after the server ended', async () => {
    let got = ''
    const done = new Promise<string>((resolve) => {
      // Our server: node:tls' end() sends its FIN without close_notify,
      // which our client rightly reports as a truncation.
      const srv = createServer({ ...ecdsa, allowHalfOpen: true }, (s) => {
        s.on('data', (d: Buffer) => { got += d.toString() })
        s.on('end', () => { s.destroy(); srv.close(); resolve(got) })
        s.end('bye')
      })
      srv.listen(0, '127.0.0.1', () => {
        const c = connect({ port: (srv.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, allowHalfOpen: true })
        c.on('data', () => {})
        // The server's close_notify arrived; our side is still writable.
        c.on('end', () => { assert.equal(c.writable, true); c.end('after end') })
      })
    })
    assert.equal(await done, 'after end')
  })

  test('server options rustls cannot honour throw ERR_RUSTLS_UNSUPPORTED_OPTION naming the option', () => {
    for (const option of ['pfx', 'dhparam', 'ecdhCurve', 'secureProtocol', 'secureOptions', 'sessionIdContext', 'sessionTimeout', 'sigalgs', 'pskCallback', 'ALPNCallback', 'ciphers', 'enableTrace', 'clientCertEngine', 'pauseOnConnect']) {
      assert.throws(() => createServer({ ...ecdsa, [option]: 'x' } as never), (err: unknown) => err instanceof UnsupportedOptionError && err.option === option, option)
      assert.throws(() => createSecureContext({ ...ecdsa, [option]: 'x' } as never), (err: unknown) => err instanceof UnsupportedOptionError && err.option === option, option)
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
