// The demo's self-signed certificate (lib/terminator/selfsigned.ts): a DER
// encoder written for it, so openssl (an independent parser) must read and
// verify what it makes, and rustls must accept it as a trust anchor.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { after, test } from 'node:test'

import { connect, createServer, liveHandles } from '../../lib/index'
import { createSelfSigned } from '../../lib/terminator/selfsigned'
import { openssl, waitFor } from '../helpers/peers'
import { tempDir } from './harness'

const dir = tempDir()
const made = createSelfSigned({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] })
const certFile = path.join(dir, 'cert.pem')
const keyFile = path.join(dir, 'key.pem')
fs.writeFileSync(certFile, made.cert)
fs.writeFileSync(keyFile, made.key)

test('openssl parses it: v3, ecdsa-with-SHA256, CN and SAN for localhost, CA:FALSE, serverAuth', async () => {
  const r = await openssl(['x509', '-in', certFile, '-noout', '-text'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /Version: 3 \(0x2\)/)
  assert.match(r.stdout, /Signature Algorithm: ecdsa-with-SHA256/)
  assert.match(r.stdout, /Subject: O = rustls-node demo, CN = localhost/)
  assert.match(r.stdout, /Issuer: O = rustls-node demo, CN = localhost/)
  assert.match(r.stdout, /DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1/)
  assert.match(r.stdout, /CA:FALSE/)
  assert.match(r.stdout, /TLS Web Server Authentication/)
  assert.match(r.stdout, /NIST CURVE: P-256/)
})

test('openssl verify accepts it as its own (self-signed) anchor', async () => {
  const r = await openssl(['verify', '-CAfile', certFile, certFile])
  assert.equal(r.code, 0, r.stdout + r.stderr)
  assert.equal(r.stdout.trim(), `${certFile}: OK`)
})

test('the key is the certificate key and the signature verifies with node:crypto', () => {
  const x = new crypto.X509Certificate(made.der)
  const key = crypto.createPrivateKey(made.key)
  assert.equal(x.checkPrivateKey(key), true)
  assert.equal(x.verify(x.publicKey), true)
  assert.equal(x.checkHost('localhost'), 'localhost')
  assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1')
  assert.equal(x.checkHost('example.com'), undefined)
  const from = new Date(x.validFrom).getTime()
  const to = new Date(x.validTo).getTime()
  assert.ok(from <= Date.now() && Date.now() < to, `${x.validFrom} .. ${x.validTo}`)
  assert.equal(Math.round((to - from) / 86_400_000), 30)
})

test('long fields use multi-byte DER lengths (SAN of 40 names) and still parse', async () => {
  const names = Array.from({ length: 40 }, (_, i) => `host-${i}.example.test`)
  const big = createSelfSigned({ dnsNames: names, ipAddresses: [] })
  const file = path.join(dir, 'big.pem')
  fs.writeFileSync(file, big.cert)
  const r = await openssl(['x509', '-in', file, '-noout', '-ext', 'subjectAltName'])
  assert.equal(r.code, 0, r.stderr)
  for (const n of names) assert.ok(r.stdout.includes(`DNS:${n}`), n)
  assert.equal((await openssl(['verify', '-CAfile', file, file])).code, 0)
})

test('notBefore after 2049 is written as GeneralizedTime', async () => {
  const late = createSelfSigned({ notBefore: new Date('2060-01-02T03:04:05Z'), days: 1 })
  const file = path.join(dir, 'late.pem')
  fs.writeFileSync(file, late.cert)
  const r = await openssl(['x509', '-in', file, '-noout', '-startdate', '-enddate'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /notBefore=Jan {2}2 03:04:05 2060 GMT/)
  assert.match(r.stdout, /notAfter=Jan {2}3 03:04:05 2060 GMT/)
})

test('rustls serves it and a rustls client trusting it as CA verifies the name', async () => {
  const server = createServer({ cert: made.cert, key: made.key }, (s) => s.end('hello'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const port = (server.address() as { port: number }).port
  try {
    const got = await new Promise<{ authorized: boolean, data: string }>((resolve, reject) => {
      const c = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: made.cert })
      let data = ''
      c.on('data', (d: Buffer) => { data += d.toString() })
      c.on('error', reject)
      c.on('close', () => resolve({ authorized: c.authorized, data }))
    })
    assert.deepEqual(got, { authorized: true, data: 'hello' })
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

after(async () => {
  await waitFor(() => Object.values(liveHandles()).every((n) => n === 0), 2000, 'native handles to be released')
  assert.deepEqual(Object.values(liveHandles()), [0, 0, 0, 0, 0, 0, 0, 0, 0])
})
