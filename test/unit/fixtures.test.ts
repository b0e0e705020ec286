// Checks the generated PKI with openssl itself (and node:crypto for key
// material), so a wrong fixture fails here rather than as a puzzling TLS
// failure elsewhere. Also exercises the peer helpers once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import crypto, { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fixtures, repoRoot, FIXTURE_FILES, FIXTURE_PASSPHRASE, type FixtureFile } from '../helpers/certs'
import { curl, freePort, openssl, sClient, sServer, waitFor } from '../helpers/peers'

const f = fixtures()
const p = (name: FixtureFile): string => f.path(name)

const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const OID_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'
const DAY_MS = 24 * 60 * 60 * 1000

function x509 (name: FixtureFile): X509Certificate {
  return new X509Certificate(f.read(name))
}

function spki (key: crypto.KeyObject): string {
  const pub = key.type === 'public' ? key : crypto.createPublicKey(key)
  return pub.export({ type: 'spki', format: 'der' }).toString('hex')
}

function certSpki (name: FixtureFile): string {
  return spki(x509(name).publicKey)
}

function keySpki (name: FixtureFile, passphrase?: string): string {
  return spki(crypto.createPrivateKey({ key: f.read(name), passphrase }))
}

async function verify (args: string[], cert: FixtureFile): Promise<{ ok: boolean, text: string }> {
  const r = await openssl(['verify', ...args, p(cert)])
  return { ok: r.code === 0, text: r.stdout + r.stderr }
}

test('every listed fixture file exists and the stamp names the same set', () => {
  for (const name of FIXTURE_FILES) assert.ok(fs.existsSync(p(name)), name)
  const stamp = JSON.parse(f.read('stamp.json').toString()) as { files: string[], passphrase: string }
  assert.deepEqual([...stamp.files, 'stamp.json'].sort(), [...FIXTURE_FILES].sort())
  assert.equal(stamp.passphrase, FIXTURE_PASSPHRASE)
})

test('the fixture directory is the git-ignored one under the repository root', () => {
  assert.equal(f.dir, path.join(repoRoot(), 'test', 'fixtures', 'generated'))
  assert.ok(path.isAbsolute(f.localhostEcdsa.certPath))
})

test('root-signed server certificates verify against ca.pem', async () => {
  for (const name of ['localhost-ecdsa.pem', 'localhost-rsa.pem', 'wrong-host.pem', 'ocsp-responder.pem'] as const) {
    const r = await verify(['-CAfile', p('ca.pem')], name)
    assert.equal(r.text.trim(), `${p(name)}: OK`)
  }
})

test('intermediate-signed certificates need chain-int.pem', async () => {
  for (const name of ['a-ecdsa.pem', 'a-rsa.pem', 'b-ecdsa.pem'] as const) {
    const without = await verify(['-CAfile', p('ca.pem')], name)
    assert.equal(without.ok, false)
    assert.match(without.text, /unable to get local issuer certificate/)
    const withInt = await verify(['-CAfile', p('ca.pem'), '-untrusted', p('chain-int.pem')], name)
    assert.equal(withInt.text.trim(), `${p(name)}: OK`)
  }
  const chain = f.aEcdsa.chain.toString()
  assert.equal(chain.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2)
  assert.ok(chain.startsWith(f.aEcdsa.cert.toString()))
  assert.ok(chain.endsWith(f.intermediate.toString()))
  assert.deepEqual(f.localhostEcdsa.chain, f.localhostEcdsa.cert)
  assert.deepEqual(f.read('chain-int.pem'), f.read('int.pem'))
})

test('CA certificates: roots are self-signed, the intermediate is under the root', () => {
  for (const name of ['ca.pem', 'other-ca.pem', 'client-ca.pem'] as const) {
    const c = x509(name)
    assert.equal(c.ca, true, name)
    assert.equal(c.subject, c.issuer, name)
    assert.ok(c.verify(c.publicKey), name)
  }
  const int = x509('int.pem')
  assert.equal(int.ca, true)
  assert.ok(int.checkIssued(x509('ca.pem')))
  assert.ok(!x509('ca.pem').checkIssued(x509('other-ca.pem')))
})

test('certificates from the unrelated CA do not verify against ca.pem', async () => {
  const r = await verify(['-CAfile', p('ca.pem')], 'other-localhost.pem')
  assert.equal(r.ok, false)
  assert.match(r.text, /unable to get local issuer certificate/)
  const ok = await verify(['-CAfile', p('other-ca.pem')], 'other-localhost.pem')
  assert.equal(ok.text.trim(), `${p('other-localhost.pem')}: OK`)
  const client = await verify(['-CAfile', p('client-ca.pem')], 'client-other.pem')
  assert.equal(client.ok, false)
})

test('expired certificates fail with "certificate has expired"', async () => {
  for (const [name, ca] of [['expired.pem', 'ca.pem'], ['client-expired.pem', 'client-ca.pem']] as const) {
    const r = await verify(['-CAfile', p(ca)], name)
    assert.equal(r.ok, false, name)
    assert.match(r.text, /error 10 at 0 depth lookup: certificate has expired/)
    const c = x509(name)
    assert.equal(new Date(c.validFrom).toISOString(), '2020-01-01T00:00:00.000Z')
    assert.equal(new Date(c.validTo).toISOString(), '2021-01-01T00:00:00.000Z')
  }
})

test('long-lived certificates are valid from about a day ago for about ten years', () => {
  const now = Date.now()
  for (const name of ['ca.pem', 'int.pem', 'localhost-ecdsa.pem', 'a-rsa.pem', 'client.pem'] as const) {
    const c = x509(name)
    const from = Date.parse(c.validFrom)
    const to = Date.parse(c.validTo)
    // The set may be reused for up to 20 days after generation.
    assert.ok(from < now - DAY_MS / 2 && from > now - 22 * DAY_MS, `${name} notBefore ${c.validFrom}`)
    assert.ok(to - from > 3640 * DAY_MS && to - from < 3660 * DAY_MS, `${name} notAfter ${c.validTo}`)
  }
})

test('subject alternative names and extended key usages', () => {
  const localhostSan = 'DNS:localhost, IP Address:127.0.0.1'
  const expected: Array<[FixtureFile, string | undefined, string]> = [
    ['localhost-ecdsa.pem', localhostSan, OID_SERVER_AUTH],
    ['localhost-rsa.pem', localhostSan, OID_SERVER_AUTH],
    ['a-ecdsa.pem', 'DNS:a.example.test, DNS:*.a.example.test', OID_SERVER_AUTH],
    ['a-rsa.pem', 'DNS:a.example.test, DNS:*.a.example.test', OID_SERVER_AUTH],
    ['b-ecdsa.pem', 'DNS:b.example.test', OID_SERVER_AUTH],
    ['expired.pem', localhostSan, OID_SERVER_AUTH],
    ['wrong-host.pem', 'DNS:wrong.example.test', OID_SERVER_AUTH],
    ['other-localhost.pem', localhostSan, OID_SERVER_AUTH],
    ['ocsp-responder.pem', undefined, OID_OCSP_SIGNING],
    ['client.pem', undefined, OID_CLIENT_AUTH],
    ['client-revoked.pem', undefined, OID_CLIENT_AUTH],
    ['client-expired.pem', undefined, OID_CLIENT_AUTH],
    ['client-other.pem', undefined, OID_CLIENT_AUTH],
  ]
  for (const [name, san, eku] of expected) {
    const c = x509(name)
    assert.equal(c.subjectAltName, san, name)
    assert.deepEqual(c.keyUsage, [eku], name)
    assert.equal(c.ca, false, name)
  }
  assert.match(x509('client.pem').subject, /^CN=client one$/m)
  assert.equal(x509('localhost-rsa.pem').publicKey.asymmetricKeyType, 'rsa')
  assert.equal(x509('localhost-rsa.pem').publicKey.asymmetricKeyDetails?.modulusLength, 2048)
  assert.equal(x509('localhost-ecdsa.pem').publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1')
})

test('client-revoked is revoked by the CRL, client is not', async () => {
  const crlArgs = (crl: FixtureFile): string[] => ['-crl_check', '-CRLfile', p(crl), '-CAfile', p('client-ca.pem')]
  const revoked = await verify(crlArgs('client-ca.crl.pem'), 'client-revoked.pem')
  assert.equal(revoked.ok, false)
  assert.match(revoked.text, /error 23 at 0 depth lookup: certificate revoked/)
  const good = await verify(crlArgs('client-ca.crl.pem'), 'client.pem')
  assert.equal(good.text.trim(), `${p('client.pem')}: OK`)
  const empty = await verify(crlArgs('client-ca-empty.crl.pem'), 'client-revoked.pem')
  assert.equal(empty.text.trim(), `${p('client-revoked.pem')}: OK`)

  const serial = x509('client-revoked.pem').serialNumber
  const text = (await openssl(['crl', '-in', p('client-ca.crl.pem'), '-noout', '-text'])).stdout
  assert.match(text, /Version 2 \(0x1\)/)
  assert.match(text, /X509v3 CRL Number/)
  assert.match(text, new RegExp(`Serial Number: ${serial}\\n`))
  assert.equal(text.match(/Serial Number:/g)?.length, 1)
  const emptyText = (await openssl(['crl', '-in', p('client-ca-empty.crl.pem'), '-noout', '-text'])).stdout
  assert.match(emptyText, /No Revoked Certificates\./)
})

test('OCSP responses say good for the right serial and verify', async () => {
  const cases = [
    { der: 'localhost-ecdsa.ocsp.der', cert: 'localhost-ecdsa.pem', issuer: 'ca.pem', extra: [] as string[] },
    { der: 'a-ecdsa.ocsp.der', cert: 'a-ecdsa.pem', issuer: 'int.pem', extra: ['-verify_other', p('int.pem')] },
  ] as const
  for (const c of cases) {
    const r = await openssl(['ocsp', '-respin', p(c.der), '-CAfile', p('ca.pem'), ...c.extra,
      '-issuer', p(c.issuer), '-cert', p(c.cert), '-resp_text'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Response verify OK/)
    assert.match(r.stdout, /OCSP Response Status: successful \(0x0\)/)
    assert.match(r.stdout, new RegExp(`Serial Number: ${x509(c.cert).serialNumber}\\n\\s+Cert Status: good\\n`))
    assert.ok(r.stdout.includes(`${p(c.cert)}: good\n`))
  }
  // Asked about another certificate, the response has nothing to say.
  const other = await openssl(['ocsp', '-respin', p('localhost-ecdsa.ocsp.der'), '-CAfile', p('ca.pem'),
    '-issuer', p('ca.pem'), '-cert', p('localhost-rsa.pem')])
  assert.match(other.stdout, /localhost-rsa\.pem: ERROR: No Status found\./)
  assert.equal(f.localhostEcdsaOcsp[0], 0x30)
})

test('key format variants have the expected PEM headers and hold the same key', () => {
  const header = (name: FixtureFile): string => f.read(name).toString().split('\n')[0]!
  for (const leaf of ['localhost-ecdsa', 'localhost-rsa', 'a-ecdsa', 'client'] as const) {
    assert.equal(header(`${leaf}.key`), '-----BEGIN PRIVATE KEY-----')
    assert.equal(keySpki(`${leaf}.key`), certSpki(`${leaf}.pem`), leaf)
  }
  assert.equal(header('localhost-ecdsa.sec1.key'), '-----BEGIN EC PRIVATE KEY-----')
  assert.equal(header('localhost-rsa.pkcs1.key'), '-----BEGIN RSA PRIVATE KEY-----')
  assert.equal(header('localhost-ecdsa.enc.key'), '-----BEGIN ENCRYPTED PRIVATE KEY-----')
  const encPkcs1 = f.read('localhost-rsa.enc-pkcs1.key').toString().split('\n')
  assert.deepEqual(encPkcs1.slice(0, 2), ['-----BEGIN RSA PRIVATE KEY-----', 'Proc-Type: 4,ENCRYPTED'])
  assert.match(encPkcs1[2]!, /^DEK-Info: AES-256-CBC,[0-9A-F]{32}$/)

  const ecdsa = certSpki('localhost-ecdsa.pem')
  const rsa = certSpki('localhost-rsa.pem')
  assert.equal(keySpki('localhost-ecdsa.sec1.key'), ecdsa)
  assert.equal(keySpki('localhost-rsa.pkcs1.key'), rsa)
  assert.equal(keySpki('localhost-ecdsa.enc.key', FIXTURE_PASSPHRASE), ecdsa)
  assert.equal(keySpki('localhost-rsa.enc-pkcs1.key', FIXTURE_PASSPHRASE), rsa)
  assert.throws(() => keySpki('localhost-ecdsa.enc.key', 'wrong-pass'))
})

test('mismatch.key belongs to no certificate', async () => {
  const r = await openssl(['pkey', '-in', p('mismatch.key'), '-pubout'])
  assert.equal(r.code, 0)
  const fromCert = await openssl(['x509', '-in', p('localhost-ecdsa.pem'), '-noout', '-pubkey'])
  assert.match(r.stdout, /^-----BEGIN PUBLIC KEY-----\n/)
  assert.notEqual(r.stdout, fromCert.stdout)
  const mismatch = keySpki('mismatch.key')
  for (const name of FIXTURE_FILES.filter((n) => n.endsWith('.pem') && !n.includes('crl') && !n.includes('chain'))) {
    assert.notEqual(certSpki(name), mismatch, name)
  }
  assert.equal(crypto.createPrivateKey(f.read('mismatch.key')).asymmetricKeyDetails?.namedCurve, 'prime256v1')
})

test('ticket key files have the right sizes and differ', () => {
  assert.equal(f.ticketKeys.length, 160)
  assert.equal(f.ticketKeysOther.length, 80)
  assert.notDeepEqual(f.ticketKeys.subarray(0, 80), f.ticketKeys.subarray(80))
  assert.notDeepEqual(f.ticketKeys.subarray(0, 80), f.ticketKeysOther)
})

test('the generator is a no-op on a fresh set', () => {
  const before = fs.statSync(p('stamp.json')).mtimeMs
  const out = execFileSync(process.execPath, [path.join(repoRoot(), 'scripts', 'gen-certs.js'), f.dir])
  assert.equal(out.length, 0)
  assert.equal(fs.statSync(p('stamp.json')).mtimeMs, before)
})

test('concurrent generators into one directory all succeed with one complete set', async () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-gen-'))
  try {
    const out = path.join(parent, 'set')
    const script = path.join(repoRoot(), 'scripts', 'gen-certs.js')
    const runs = [0, 1, 2].map(() => new Promise<number | null>((resolve) => {
      spawn(process.execPath, [script, out], { stdio: 'ignore' }).once('close', resolve)
    }))
    assert.deepEqual(await Promise.all(runs), [0, 0, 0])
    assert.deepEqual(fs.readdirSync(parent), ['set'])
    for (const name of FIXTURE_FILES) assert.ok(fs.existsSync(path.join(out, name)), name)
    const r = await openssl(['verify', '-CAfile', path.join(out, 'ca.pem'), path.join(out, 'localhost-ecdsa.pem')])
    assert.equal(r.code, 0, r.stdout + r.stderr)
  } finally {
    fs.rmSync(parent, { recursive: true, force: true })
  }
})

test('sServer + sClient: s_client verifies localhost-ecdsa against ca.pem', async () => {
  const server = await sServer(['-cert', p('localhost-ecdsa.pem'), '-key', p('localhost-ecdsa.key')])
  try {
    assert.ok(server.port > 0)
    const r = await sClient(['-connect', `127.0.0.1:${server.port}`, '-CAfile', p('ca.pem'),
      '-verify_return_error', '-servername', 'localhost'])
    assert.equal(r.timedOut, false)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /Verify return code: 0 \(ok\)/)
    assert.match(r.stdout, /subject=O = rustls-node test, CN = localhost/)

    // The same server is rejected by a client trusting only the other CA.
    const bad = await sClient(['-connect', `127.0.0.1:${server.port}`, '-CAfile', p('other-ca.pem'),
      '-verify_return_error', '-servername', 'localhost'])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stdout + bad.stderr, /unable to get local issuer certificate/)
  } finally {
    await server.close()
  }
  assert.notEqual(server.proc.exitCode ?? server.proc.signalCode, null)
  await server.close()
})

test('sServer rejects a caller-chosen address and reports startup failures', async () => {
  await assert.rejects(sServer(['-accept', '127.0.0.1:1']), /do not pass -accept/)
  await assert.rejects(sServer(['-cert', p('localhost-ecdsa.pem'), '-key', p('mismatch.key')]),
    /exited before listening/)
})

test('run kills a process that outlives its timeout', async () => {
  const port = await freePort()
  assert.ok(port > 0 && port < 65536)
  const started = Date.now()
  // Nothing listens on the port: s_client fails on its own, before the timeout.
  const r = await sClient(['-connect', `127.0.0.1:${port}`], { timeoutMs: 5_000 })
  assert.notEqual(r.code, 0)
  assert.equal(r.timedOut, false)
  // s_server without a client never exits by itself.
  const hung = await openssl(['s_server', '-accept', '127.0.0.1:0', '-cert', p('localhost-ecdsa.pem'),
    '-key', p('localhost-ecdsa.key')], { timeoutMs: 300 })
  assert.equal(hung.timedOut, true)
  assert.equal(hung.code, null)
  assert.equal(hung.signal, 'SIGTERM')
  assert.match(hung.stdout, /^ACCEPT 127\.0\.0\.1:\d+$/m)
  assert.ok(Date.now() - started < 4_000)
})

test('curl runs through the helper', async () => {
  const r = await curl(['--version'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^curl \d+\.\d+\.\d+ /)
})

test('waitFor resolves on a true predicate and names the label on timeout', async () => {
  let n = 0
  await waitFor(() => ++n === 3, 1_000, 'three polls')
  assert.equal(n, 3)
  await assert.rejects(waitFor(async () => false, 50, 'never'), /timed out after 50 ms waiting for never/)
})
