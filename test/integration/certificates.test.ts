// Certificates and keys (issue 3 items 6 and 8): every private key format,
// encrypted keys, OCSP stapling and its replacement on reload, and the
// variables of SPEC §4.5.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import { libraryVersion, packageVersion } from '../../lib/versions'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { assertNoLiveHandles, settle, startServer } from '../helpers/tls'

const f = fixtures()

async function handshake (port: number, extra: string[] = []): Promise<string> {
  const sni = extra.includes('-noservername') ? [] : ['-servername', 'localhost']
  const r = await sClient(['-connect', `127.0.0.1:${port}`, ...sni, '-CAfile', f.path('ca.pem'), '-verify_return_error', ...extra], { holdOpenMs: 100 })
  return r.stdout
}

describe('private keys', () => {
  const variants: Array<[string, Buffer, Buffer, string | undefined]> = [
    ['PKCS#8', f.localhostEcdsa.cert, f.localhostEcdsa.key, undefined],
    ['SEC1', f.localhostEcdsa.cert, f.read('localhost-ecdsa.sec1.key'), undefined],
    ['PKCS#1', f.localhostRsa.cert, f.read('localhost-rsa.pkcs1.key'), undefined],
    ['encrypted PKCS#8', f.localhostEcdsa.cert, f.read('localhost-ecdsa.enc.key'), f.passphrase],
    ['encrypted PKCS#1 (Proc-Type)', f.localhostRsa.cert, f.read('localhost-rsa.enc-pkcs1.key'), f.passphrase],
  ]
  for (const [label, cert, key, passphrase] of variants) {
    test(`${label} key serves a verified handshake`, async () => {
      const srv = await startServer({ cert, key, passphrase }, (s) => s.end())
      try {
        assert.match(await handshake(srv.port), /Verify return code: 0 \(ok\)/)
      } finally {
        await srv.close()
      }
    })
  }

  test('the key may sit in the same PEM as the chain (key omitted)', async () => {
    const srv = await startServer({ hosts: [{ serverName: 'localhost', certificates: [{ cert: Buffer.concat([f.localhostEcdsa.cert, f.localhostEcdsa.key]) }] }] }, (s) => s.end())
    try {
      assert.match(await handshake(srv.port), /Verify return code: 0 \(ok\)/)
    } finally {
      await srv.close()
    }
  })

  test('an encrypted key without a passphrase is a configuration error', async () => {
    await assert.rejects(startServer({ cert: f.localhostEcdsa.cert, key: f.read('localhost-ecdsa.enc.key') }),
      { code: 'ERR_TLS_CONFIG_KEY', keyPath: 'key' })
  })
})

describe('OCSP stapling', () => {
  test('stapled when the client asks; replaced on reload', async () => {
    const options = { hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, ocsp: f.localhostEcdsaOcsp }] }] }
    const srv = await startServer(options, (s) => s.end())
    try {
      const stapled = await handshake(srv.port, ['-status'])
      assert.match(stapled, /OCSP Response Status: successful/)
      assert.match(stapled, /Cert Status: good/)
      // Without -status nothing is stapled.
      assert.doesNotMatch(await handshake(srv.port), /OCSP Response Status/)
      srv.server.reload({ hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }] }] })
      assert.match(await handshake(srv.port, ['-status']), /OCSP response: no response sent/)
      srv.server.reload(options)
      assert.match(await handshake(srv.port, ['-status']), /Cert Status: good/)
    } finally {
      await srv.close()
    }
  })

  test('an empty OCSP response is a configuration error', async () => {
    await assert.rejects(startServer({ hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, ocsp: Buffer.alloc(0) }] }] }),
      { code: 'ERR_TLS_CONFIG_OCSP', keyPath: 'hosts[0].certificates[0].ocsp' })
  })
})

describe('variables (SPEC §4.5)', () => {
  async function varsFor (options: Parameters<typeof startServer>[0], extra: string[] = []): Promise<Record<string, string>> {
    let vars: Record<string, string> | undefined
    const srv = await startServer(options, (s: RustlsSocket) => { vars = s.getEnvVars(); s.end() })
    try {
      await handshake(srv.port, extra)
      await settle()
      assert.ok(vars !== undefined)
      return vars
    } finally {
      await srv.close()
    }
  }
  const base = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }

  test('always: HTTPS, SSL_TLS_SNI, SSL_PROTOCOL, SSL_CIPHER (IANA) and nothing else', async () => {
    assert.deepEqual(await varsFor(base, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']), {
      HTTPS: 'on',
      SSL_TLS_SNI: 'localhost',
      SSL_PROTOCOL: 'TLSv1.2',
      SSL_CIPHER: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    })
  })

  test('StdEnvVars adds the library and session variables; never SSL_SESSION_ID', async () => {
    const vars = await varsFor({ ...base, options: ['StdEnvVars'] }, ['-tls1_3'])
    assert.deepEqual(vars, {
      HTTPS: 'on',
      SSL_TLS_SNI: 'localhost',
      SSL_PROTOCOL: 'TLSv1.3',
      SSL_CIPHER: vars.SSL_CIPHER,
      SSL_VERSION_INTERFACE: `rustls-node/${packageVersion()}`,
      SSL_VERSION_LIBRARY: libraryVersion(),
      SSL_SECURE_RENEG: 'false',
      SSL_COMPRESS_METHOD: 'NULL',
      SSL_CIPHER_EXPORT: 'false',
      SSL_CLIENT_VERIFY: 'NONE',
      SSL_SESSION_RESUMED: 'Initial',
    })
    assert.match(vars.SSL_CIPHER, /^TLS_AES_(128|256)_GCM_SHA(256|384)$|^TLS_CHACHA20_POLY1305_SHA256$/)
    assert.match(vars.SSL_VERSION_LIBRARY, /^rustls-ffi\/\d+\.\d+\.\d+\/rustls\/\d+\.\d+\.\d+$/)
  })

  test('ExportCertData adds SSL_SERVER_CERT; Defaults resets inherited options per host', async () => {
    const exported = await varsFor({ ...base, options: ['ExportCertData'] })
    assert.equal(exported.SSL_SERVER_CERT?.replace(/\s/g, ''), f.localhostEcdsa.cert.toString().replace(/\s/g, ''))
    assert.equal(exported.SSL_VERSION_INTERFACE, undefined)
    const reset = await varsFor({ options: ['StdEnvVars', 'ExportCertData'], hosts: [{ serverName: 'localhost', ...base, options: ['Defaults', 'StdEnvVars'] }] })
    assert.equal(reset.SSL_SERVER_CERT, undefined)
    assert.equal(reset.SSL_CLIENT_VERIFY, 'NONE')
    const removed = await varsFor({ options: ['StdEnvVars', 'ExportCertData'], hosts: [{ serverName: 'localhost', ...base, options: ['-ExportCertData'] }] })
    assert.equal(removed.SSL_SERVER_CERT, undefined)
    assert.equal(removed.SSL_SECURE_RENEG, 'false')
  })

  test('no SNI sent: no SSL_TLS_SNI', async () => {
    const vars = await varsFor(base, ['-noservername'])
    assert.equal(vars.SSL_TLS_SNI, undefined)
    assert.equal(vars.HTTPS, 'on')
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
