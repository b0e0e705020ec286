// Client certificates (SPEC §4.7): required / optional / none, wrong CA,
// expired and CRL-revoked certificates with their exact outcomes, the
// variables they export, and machine certificates on the client side (§4.8).
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { connect, type ServerOptions } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { sServer } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const server = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, options: ['StdEnvVars', 'ExportCertData'] }

interface Outcome { secure: boolean, error?: string, vars?: Record<string, string>, peerCN?: string, authorized?: boolean, authorizationError?: string | null }

/** Runs one node:tls client with `clientCert` against `options`; reports what the server saw. */
async function attempt (options: ServerOptions, clientCert?: { cert: Buffer, key: Buffer }, version: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<Outcome> {
  let seen: Outcome | undefined
  const srv = await startServer(options, (s: RustlsSocket) => {
    const peer = s.getPeerCertificate() as { subject?: { CN?: string } }
    seen = { secure: true, vars: s.getEnvVars(), peerCN: peer.subject?.CN, authorized: s.authorized, authorizationError: s.authorizationError }
    s.end('hello')
  })
  try {
    const client = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: version, maxVersion: version, ...clientCert })
    client.on('error', () => {})
    client.resume()
    await new Promise((resolve) => client.once('close', resolve))
    await settle()
    if (seen !== undefined) return seen
    return { secure: false, error: srv.clientErrors[0]?.code }
  } finally {
    await srv.close()
  }
}

describe('client authentication', () => {
  const required: ServerOptions = { ...server, clientAuth: { mode: 'required', ca: f.clientCa } }
  const optional: ServerOptions = { ...server, clientAuth: { mode: 'optional', ca: f.clientCa } }
  const withCrl: ServerOptions = { ...server, clientAuth: { mode: 'required', ca: f.clientCa, crls: [f.clientCrl] } }

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`required + a valid certificate (${version}): SUCCESS, peer certificate and SSL_CLIENT_CERT`, async () => {
      const out = await attempt(required, { cert: f.client.cert, key: f.client.key }, version)
      assert.equal(out.secure, true)
      assert.equal(out.peerCN, 'client one')
      assert.equal(out.authorized, true)
      assert.equal(out.vars?.SSL_CLIENT_VERIFY, 'SUCCESS')
      assert.match(out.vars?.SSL_CLIENT_CERT ?? '', /^-----BEGIN CERTIFICATE-----/)
    })
  }

  test('required + no certificate: refused with ERR_RUSTLS_NO_CERTIFICATES_PRESENTED', async () => {
    assert.deepEqual(await attempt(required), { secure: false, error: 'ERR_RUSTLS_NO_CERTIFICATES_PRESENTED' })
  })

  test('optional + no certificate: served, SSL_CLIENT_VERIFY NONE, not authorized', async () => {
    const out = await attempt(optional)
    assert.equal(out.secure, true)
    assert.equal(out.authorized, false)
    assert.equal(out.vars?.SSL_CLIENT_VERIFY, 'NONE')
    assert.equal(out.vars?.SSL_CLIENT_CERT, undefined)
  })

  test('optional + a certificate from the wrong CA: refused (rustls verifies whatever is sent)', async () => {
    assert.deepEqual(await attempt(optional, { cert: f.clientOther.cert, key: f.clientOther.key }),
      { secure: false, error: 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER' })
  })

  test('required + an expired certificate: ERR_RUSTLS_CERT_EXPIRED', async () => {
    assert.deepEqual(await attempt(required, { cert: f.clientExpired.cert, key: f.clientExpired.key }),
      { secure: false, error: 'ERR_RUSTLS_CERT_EXPIRED' })
  })

  test('required + a CRL-revoked certificate: ERR_RUSTLS_CERT_REVOKED; the valid one still passes', async () => {
    assert.deepEqual(await attempt(withCrl, { cert: f.clientRevoked.cert, key: f.clientRevoked.key }),
      { secure: false, error: 'ERR_RUSTLS_CERT_REVOKED' })
    assert.equal((await attempt(withCrl, { cert: f.client.cert, key: f.client.key })).secure, true)
  })

  test('no client auth: SSL_CLIENT_VERIFY NONE even if the client has a certificate', async () => {
    const out = await attempt(server, { cert: f.client.cert, key: f.client.key })
    assert.equal(out.secure, true)
    assert.equal(out.vars?.SSL_CLIENT_VERIFY, 'NONE')
    assert.equal(out.peerCN, undefined)
  })

  test('node:tls requestCert/ca map onto clientAuth required', async () => {
    const out = await attempt({ cert: server.cert, key: server.key, requestCert: true, ca: f.clientCa }, { cert: f.client.cert, key: f.client.key })
    assert.equal(out.peerCN, 'client one')
    assert.deepEqual(await attempt({ cert: server.cert, key: server.key, requestCert: true, ca: f.clientCa }),
      { secure: false, error: 'ERR_RUSTLS_NO_CERTIFICATES_PRESENTED' })
  })

  test('node:tls rejectUnauthorized: false with requestCert: a client without a certificate is served, a bad one still refused', async () => {
    const lenient: ServerOptions = { ...server, requestCert: true, rejectUnauthorized: false, ca: f.clientCa }
    const out = await attempt(lenient)
    assert.equal(out.secure, true)
    assert.equal(out.authorized, false)
    assert.equal(out.authorizationError, 'NO_CLIENT_CERTIFICATE')
    assert.equal(out.vars?.SSL_CLIENT_VERIFY, 'NONE')
    assert.deepEqual(await attempt(lenient, { cert: f.clientOther.cert, key: f.clientOther.key }),
      { secure: false, error: 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER' })
  })

  test('node:tls crl: a revoked client certificate is refused', async () => {
    const withNodeCrl: ServerOptions = { cert: server.cert, key: server.key, requestCert: true, ca: f.clientCa, crl: f.clientCrl }
    assert.deepEqual(await attempt(withNodeCrl, { cert: f.clientRevoked.cert, key: f.clientRevoked.key }),
      { secure: false, error: 'ERR_RUSTLS_CERT_REVOKED' })
    assert.equal((await attempt(withNodeCrl, { cert: f.client.cert, key: f.client.key })).secure, true)
  })
})

describe('machine certificates (client side)', () => {
  test('presented to openssl s_server -Verify 1', async () => {
    const peer = await sServer(['-cert', f.localhostEcdsa.certPath, '-key', f.localhostEcdsa.keyPath,
      '-Verify', '1', '-CAfile', f.path('client-ca.pem'), '-verify_return_error', '-www'])
    try {
      const socket = connect({ port: peer.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca,
        certificates: [{ cert: f.client.cert, key: f.client.key }] })
      await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
      assert.equal(socket.getX509Certificate()?.subject.includes('CN=client one'), true)
      socket.write('GET / HTTP/1.0\r\n\r\n')
      const page = (await readAll(socket)).toString()
      assert.match(page, /Client certificate/)
      assert.match(page, /CN ?= ?client one/)
    } finally {
      await peer.close()
    }
  })

  test('presented to a node:tls server with requestCert; missing → refused by that server', async () => {
    const seen: Array<string | undefined> = []
    const nodeServer = tls.createServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, requestCert: true, rejectUnauthorized: true, ca: f.clientCa }, (s) => {
      seen.push((s.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN)
      // node:tls' end() right after the handshake sends no close_notify,
      // which our client would rightly report as truncation: the client
      // closes first instead.
      s.write('ok')
      s.on('end', () => s.end())
    })
    nodeServer.on('tlsClientError', () => {})
    await new Promise<void>((resolve) => nodeServer.listen(0, '127.0.0.1', resolve))
    const port = (nodeServer.address() as AddressInfo).port
    try {
      const good = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, cert: f.client.cert, key: f.client.key })
      assert.equal((await new Promise<Buffer>((resolve) => good.once('data', resolve))).toString(), 'ok')
      good.end()
      assert.deepEqual(seen, ['client one'])
      const bare = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' })
      const err = await new Promise<Error & { code?: string }>((resolve) => bare.once('error', resolve))
      assert.match(err.code ?? '', /^ERR_RUSTLS_ALERT_(CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE)$/)
    } finally {
      await new Promise<void>((resolve) => nodeServer.close(() => resolve()))
    }
  })

  test('a backend with an unknown CA or the wrong servername is refused', async () => {
    const srv = await startServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (s) => s.end('x'))
    try {
      const unknownCa = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.otherCa })
      assert.equal((await new Promise<Error & { code?: string }>((resolve) => unknownCa.once('error', resolve))).code, 'ERR_RUSTLS_CERT_UNKNOWN_ISSUER')
      const wrongName = connect({ port: srv.port, host: '127.0.0.1', servername: 'app.internal', ca: f.ca })
      assert.equal((await new Promise<Error & { code?: string }>((resolve) => wrongName.once('error', resolve))).code, 'ERR_RUSTLS_CERT_NOT_VALID_FOR_NAME')
    } finally {
      await srv.close()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
