// The library's ACME client against pebble on loopback: tls-alpn-01
// answered by the server's native challenge table, http-01 answered by a
// plain HTTP server, and the challenge table itself seen by openssl.
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { after, before, describe, it } from 'node:test'

import {
  AcmeClient, acmeValidationCertificate, createServer, generateAccountKey, http01Responder, type Server, tlsAlpnResponder,
} from '../../lib/index'
import { createSelfSigned } from '../../lib/terminator/selfsigned'
import { fixtures } from '../helpers/certs'
import { type Pebble, startPebble } from '../helpers/pebble'
import { openssl, sClient } from '../helpers/peers'
import { waitNoLiveHandles } from '../helpers/tls'

function listen (server: http.Server | Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
}

function close (server: http.Server | Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/** openssl verify of `chain` (leaf first) against pebble's root. */
async function verifyChain (pebble: Pebble, chain: string): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-acme-'))
  try {
    const blocks = chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    fs.writeFileSync(path.join(dir, 'root.pem'), await pebble.issuerRoot())
    fs.writeFileSync(path.join(dir, 'leaf.pem'), blocks[0] ?? '')
    fs.writeFileSync(path.join(dir, 'rest.pem'), blocks.slice(1).join('\n'))
    const r = await openssl(['verify', '-CAfile', path.join(dir, 'root.pem'), '-untrusted', path.join(dir, 'rest.pem'), path.join(dir, 'leaf.pem')])
    assert.equal(r.code, 0, r.stdout + r.stderr)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe('ACME client (pebble)', () => {
  let pebble: Pebble
  before(async () => { pebble = await startPebble() })
  after(async () => { await pebble.stop() })

  it('tls-alpn-01: the validation certificate only for acme-tls/1, the host for everyone else', async () => {
    const host = createSelfSigned({ dnsNames: ['v.acme.test'] })
    const server = createServer({ hosts: [{ serverName: 'v.acme.test', certificates: [{ cert: host.cert, key: host.key }], ALPNProtocols: ['http/1.1'] }] })
    let secure = 0
    server.on('secureConnection', (s) => { secure++; s.end() })
    await listen(server, 0)
    const port = (server.address() as { port: number }).port
    const validation = acmeValidationCertificate('v.acme.test', 'token.thumbprint')
    try {
      server.setAcmeChallenge('V.acme.test', validation)
      const challenge = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'v.acme.test', '-alpn', 'acme-tls/1', '-showcerts'], { input: '' })
      assert.match(challenge.stdout, /ALPN protocol: acme-tls\/1/)
      const served = new X509Certificate((challenge.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/) ?? [''])[0])
      assert.equal(served.fingerprint256, new X509Certificate(validation.cert).fingerprint256)
      // The server closes a validation connection itself, right after the handshake (RFC 8737 §3).
      const started = Date.now()
      const closedBy = await new Promise<{ alpn: string | false | null, data: number }>((resolve, reject) => {
        const c = tls.connect({ port, host: '127.0.0.1', servername: 'v.acme.test', ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false })
        let data = 0
        c.on('data', (d: Buffer) => { data += d.length })
        c.on('error', reject)
        c.on('end', () => {
          resolve({ alpn: c.alpnProtocol, data })
          c.destroy()
        })
      })
      assert.deepEqual(closedBy, { alpn: 'acme-tls/1', data: 0 })
      assert.ok(Date.now() - started < 2000)
      // A client that does not offer acme-tls/1 gets the host.
      const normal = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'v.acme.test', '-alpn', 'http/1.1', '-showcerts'], { input: '' })
      const normalLeaf = new X509Certificate((normal.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/) ?? [''])[0])
      assert.equal(normalLeaf.fingerprint256, new X509Certificate(host.cert).fingerprint256)
      assert.equal(secure, 1, 'only the ordinary client became a secureConnection')
      // Removed: acme-tls/1 now meets the host, which does not speak it.
      server.setAcmeChallenge('v.acme.test', null)
      const gone = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'v.acme.test', '-alpn', 'acme-tls/1'], { input: '' })
      assert.doesNotMatch(gone.stdout, /ALPN protocol: acme-tls\/1/)
    } finally {
      await close(server)
    }
    // A closed server's router is gone: a clear error, nothing leaked.
    assert.throws(() => server.setAcmeChallenge('v.acme.test', validation), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
    assert.throws(() => server.setAcmeChallenge('*.acme.test', null), { code: 'ERR_TLS_CONFIG_INVALID' })
    await waitNoLiveHandles()
  })

  it('obtains a certificate through tls-alpn-01 and serves it after setHosts()', async () => {
    const initial = createSelfSigned({ dnsNames: ['a.acme.test'] })
    const server = createServer({ hosts: [{ serverName: 'a.acme.test', certificates: [{ cert: initial.cert, key: initial.key }] }] })
    server.on('secureConnection', (s) => s.end('ok'))
    const challenges: Array<string | false> = []
    server.on('acmeChallenge', (name: string | false) => challenges.push(name))
    await listen(server, pebble.tlsPort)
    const client = new AcmeClient({ directory: pebble.directory, accountKey: generateAccountKey(), email: 'ops@acme.test', termsOfServiceAgreed: true, ca: pebble.directoryCa })
    try {
      const issued = await client.obtain({ names: ['a.acme.test'], challenge: 'tls-alpn-01', responder: tlsAlpnResponder(server) })
      await verifyChain(pebble, issued.cert)
      assert.equal(new X509Certificate(issued.cert).subjectAltName, 'DNS:a.acme.test')
      assert.ok(challenges.length >= 1 && challenges.every((n) => n === 'a.acme.test'), `validation handshakes: ${JSON.stringify(challenges)}`)
      server.setHosts([{ serverName: 'a.acme.test', certificates: [{ cert: issued.cert, key: issued.key }] }])
      const s = await sClient(['-connect', `127.0.0.1:${pebble.tlsPort}`, '-servername', 'a.acme.test'], { input: '' })
      assert.match(s.stdout, /issuer=.*Pebble Intermediate/i)
    } finally {
      client.close()
      await close(server)
    }
    await waitNoLiveHandles()
  })

  it('obtains a certificate through http-01 from a plain HTTP listener', async () => {
    const responder = http01Responder()
    let asked = 0
    const plain = http.createServer((req, res) => {
      asked++
      if (!responder.handle(req, res)) res.writeHead(404).end()
    })
    await listen(plain, pebble.httpPort)
    const client = new AcmeClient({ directory: pebble.directory, accountKey: generateAccountKey(), termsOfServiceAgreed: true, ca: pebble.directoryCa })
    try {
      const issued = await client.obtain({ names: ['h.acme.test', 'www.h.acme.test'], challenge: 'http-01', responder })
      await verifyChain(pebble, issued.cert)
      assert.equal(new X509Certificate(issued.cert).subjectAltName, 'DNS:h.acme.test, DNS:www.h.acme.test')
      assert.ok(asked >= 2, `validation requests: ${asked}`)
    } finally {
      client.close()
      await close(plain)
    }
  })

  it('fails with the CA\'s problem for a refused name, and a clear error for a wrong challenge answer or no directory', async () => {
    const client = new AcmeClient({ directory: pebble.directory, accountKey: generateAccountKey(), termsOfServiceAgreed: true, ca: pebble.directoryCa })
    const responder = { add: () => {}, remove: () => {} }
    try {
      await assert.rejects(client.obtain({ names: ['blocked.acme.test'], challenge: 'http-01', responder }),
        (err: Error & { code?: string, type?: string }) => err.code === 'ERR_ACME_PROBLEM' && err.type === 'urn:ietf:params:acme:error:rejectedIdentifier')
      // Nobody answers on pebble's http port: validation fails, and the error says why.
      await assert.rejects(client.obtain({ names: ['w.acme.test'], challenge: 'http-01', responder }),
        (err: Error & { code?: string }) => err.code === 'ERR_ACME_CHALLENGE_FAILED' && /w\.acme\.test: http-01 failed: /.test(err.message))
    } finally {
      client.close()
    }
    const nowhere = new AcmeClient({ directory: 'https://127.0.0.1:1/dir', accountKey: generateAccountKey(), ca: pebble.directoryCa })
    await assert.rejects(nowhere.obtain({ names: ['x.acme.test'], challenge: 'http-01', responder }),
      (err: Error & { code?: string }) => err.code === 'ERR_ACME_UNREACHABLE' && err.message.includes('https://127.0.0.1:1/dir'))
    nowhere.close()
    assert.throws(() => new AcmeClient({ directory: 'http://127.0.0.1/dir', accountKey: generateAccountKey() }), { code: 'ERR_ACME_CONFIG' })
  })
})

describe('ACME client against a CA that reports a failed validation as a problem', () => {
  // A minimal RFC 8555 server over node:https (fixture certificate): every
  // step answers as a CA would, but the challenge POST is refused with the
  // validation's own problem (urn:...:connection, HTTP 400), as a CA may
  // do instead of marking the authorization invalid.
  it('the challenge POST answered with a connection problem is ERR_ACME_CHALLENGE_FAILED, not a generic problem', async () => {
    const f = fixtures()
    let base = ''
    let nonce = 0
    const seen: string[] = []
    const server = https.createServer({ cert: f.localhostEcdsa.chain, key: f.localhostEcdsa.key }, (req, res) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''}`)
      req.resume()
      req.on('end', () => {
        res.setHeader('replay-nonce', `n${nonce++}`)
        const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
          res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers })
          res.end(JSON.stringify(body))
        }
        switch (req.url) {
          case '/dir': return json(200, { newNonce: `${base}/nonce`, newAccount: `${base}/account`, newOrder: `${base}/order` })
          case '/nonce': res.writeHead(200); return res.end()
          case '/account': return json(201, { status: 'valid' }, { location: `${base}/account/1` })
          case '/order': return json(201, { status: 'pending', authorizations: [`${base}/authz/1`], finalize: `${base}/finalize/1` }, { location: `${base}/order/1` })
          case '/authz/1': return json(200, { status: 'pending', identifier: { type: 'dns', value: 'x.acme.test' }, challenges: [{ type: 'http-01', url: `${base}/chall/1`, token: 'tok_1', status: 'pending' }] })
          case '/chall/1': return json(400, { type: 'urn:ietf:params:acme:error:connection', detail: 'Connection refused' })
          default: return json(404, { type: 'urn:ietf:params:acme:error:malformed', detail: 'no such resource' })
        }
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    const responder = http01Responder()
    const client = new AcmeClient({ directory: `${base}/dir`, accountKey: generateAccountKey(), termsOfServiceAgreed: true, ca: f.ca })
    try {
      await assert.rejects(client.obtain({ names: ['x.acme.test'], challenge: 'http-01', responder }), (err: Error & { code?: string, type?: string }) => {
        assert.equal(err.code, 'ERR_ACME_CHALLENGE_FAILED', err.message)
        assert.equal(err.type, 'urn:ietf:params:acme:error:connection')
        assert.match(err.message, /^x\.acme\.test: http-01 failed: .*Connection refused/)
        return true
      })
      assert.ok(seen.includes('POST /chall/1'), seen.join(', '))
      // The answer was taken away again: a plain HTTP GET for it is a 404.
      const plain = http.createServer((req, res) => { if (!responder.handle(req, res)) res.writeHead(500).end() })
      await listen(plain, 0)
      try {
        const status = await new Promise<number>((resolve, reject) => {
          http.get(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/.well-known/acme-challenge/tok_1`, (r) => { r.resume(); resolve(r.statusCode ?? 0) }).once('error', reject)
        })
        assert.equal(status, 404)
      } finally {
        plain.closeAllConnections()
        await close(plain)
      }
    } finally {
      client.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
