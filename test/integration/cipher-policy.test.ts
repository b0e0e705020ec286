// mod_tls cipher semantics (SPEC §4.3) observed from the outside with
// openssl s_client, and the configuration errors of issue 3 with their codes.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'

import { ConfigError, createServer, type ServerOptions } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { assertNoLiveHandles, settle, startServer } from '../helpers/tls'

const f = fixtures()
const ecdsa = { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }
const rsa = { cert: f.localhostRsa.cert, key: f.localhostRsa.key }

/** The suite s_client reports for a TLS 1.2 handshake offering `clientCiphers` in that order. */
async function negotiated (port: number, clientCiphers: string): Promise<string | undefined> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_2', '-cipher', clientCiphers], { holdOpenMs: 50 })
  return r.stdout.match(/^New, TLSv1\.2, Cipher is (\S+)/m)?.[1]
}

function recordingLogger (): { logger: ServerOptions['logger'], warnings: unknown[][] } {
  const warnings: unknown[][] = []
  const noop = (): void => {}
  return { warnings, logger: { warn: (...args: unknown[]) => { warnings.push(args) }, error: noop, info: noop, debug: noop, trace: noop } }
}

describe('cipher policy', () => {
  const clientOrder = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305'

  test('honorClientOrder true (default): the client\'s first suite wins', async () => {
    const srv = await startServer({ ...ecdsa, ciphersPrefer: 'ECDHE-ECDSA-CHACHA20-POLY1305' }, (s) => s.end())
    try {
      assert.equal(await negotiated(srv.port, clientOrder), 'ECDHE-ECDSA-AES128-GCM-SHA256')
    } finally {
      await srv.close()
    }
  })

  for (const [form, prefer] of [
    ['IANA name', 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256'],
    ['OpenSSL name', 'ECDHE-ECDSA-CHACHA20-POLY1305'],
    ['TLS_CIPHER_0x id', 'TLS_CIPHER_0xCCA9'],
  ] as const) {
    test(`honorClientOrder false: the preferred suite (by ${form}) wins over the client's order`, async () => {
      const srv = await startServer({ ...ecdsa, honorClientOrder: false, ciphersPrefer: [prefer] }, (s) => s.end())
      try {
        assert.equal(await negotiated(srv.port, clientOrder), 'ECDHE-ECDSA-CHACHA20-POLY1305')
      } finally {
        await srv.close()
      }
    })
  }

  test('ciphersSuppress: a suppressed suite is never negotiated, even if it is all the client offers', async () => {
    const srv = await startServer({
      ...ecdsa,
      ciphersSuppress: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ECDHE-ECDSA-AES256-GCM-SHA384',
    }, (s) => s.end())
    try {
      assert.equal(await negotiated(srv.port, clientOrder), 'ECDHE-ECDSA-CHACHA20-POLY1305')
      assert.equal(await negotiated(srv.port, 'ECDHE-ECDSA-AES128-GCM-SHA256'), undefined)
      await settle()
      // rustls narrows the usable signature schemes to the client's suites
      // left after suppression: none, so no certificate can be chosen; the
      // client gets handshake_failure and the error says incompatible peer.
      assert.equal(srv.clientErrors.at(-1)?.code, 'ERR_RUSTLS_PEER_INCOMPATIBLE_ERROR')
    } finally {
      await srv.close()
    }
  })

  test('ECDSA-only and RSA-only client lists each get the matching certificate', async () => {
    const srv = await startServer({ certificates: [ecdsa, rsa] }, (s) => s.end())
    try {
      assert.equal(await negotiated(srv.port, 'ECDHE-ECDSA-AES256-GCM-SHA384'), 'ECDHE-ECDSA-AES256-GCM-SHA384')
      assert.equal(await negotiated(srv.port, 'ECDHE-RSA-AES256-GCM-SHA384'), 'ECDHE-RSA-AES256-GCM-SHA384')
    } finally {
      await srv.close()
    }
  })

  test('the negotiated suite is reported by IANA and OpenSSL names', async () => {
    const seen: Array<ReturnType<RustlsSocket['getCipher']>> = []
    const srv = await startServer({ ...ecdsa }, (s: RustlsSocket) => { seen.push(s.getCipher()); s.end() })
    try {
      await negotiated(srv.port, 'ECDHE-ECDSA-AES256-GCM-SHA384')
      await settle()
      assert.deepEqual(seen, [{ name: 'ECDHE-ECDSA-AES256-GCM-SHA384', standardName: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384', version: 'TLSv1.2' }])
    } finally {
      await srv.close()
    }
  })

  test('a known but unsupported suite in prefer: exactly one warning, and the server runs', async () => {
    const { logger, warnings } = recordingLogger()
    const srv = await startServer({ ...ecdsa, ciphersPrefer: ['TLS_NULL_WITH_NULL_NULL'], ciphersSuppress: ['TLS_RSA_WITH_RC4_128_MD5'], logger }, (s) => s.end())
    try {
      assert.equal(warnings.length, 1)
      assert.match(String(warnings[0][1]), /TLS_NULL_WITH_NULL_NULL/)
      assert.equal(await negotiated(srv.port, 'ECDHE-ECDSA-AES128-GCM-SHA256'), 'ECDHE-ECDSA-AES128-GCM-SHA256')
    } finally {
      await srv.close()
    }
  })
})

describe('configuration errors', () => {
  const cases: Array<[string, ServerOptions, string, string, unknown?]> = [
    ['an unknown cipher name', { ...ecdsa, ciphersPrefer: ['TLS_MY_SUPER_CIPHER'] }, 'ERR_TLS_CONFIG_UNKNOWN_CIPHER', 'ciphersPrefer[0]', 'TLS_MY_SUPER_CIPHER'],
    ['a misspelt real suite', { ...ecdsa, ciphersSuppress: 'ECDHE-ECDSA-AES128-GCM-SHA256:TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385' }, 'ERR_TLS_CONFIG_UNKNOWN_CIPHER', 'ciphersSuppress[1]', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385'],
    ['a bad protocol string', { ...ecdsa, protocol: 'TLSv1.1+' }, 'ERR_TLS_CONFIG_PROTOCOL', 'protocol', 'TLSv1.1+'],
    ['a protocol without the +', { hosts: [{ serverName: 'localhost', ...ecdsa, protocol: 'TLSv1.3' }] }, 'ERR_TLS_CONFIG_PROTOCOL', 'hosts[0].protocol', 'TLSv1.3'],
    ['a missing certificate', { hosts: [{ serverName: 'localhost', certificates: [{ key: ecdsa.key } as never] }] }, 'ERR_TLS_CONFIG_CERTIFICATE', 'hosts[0].certificates[0].cert'],
    ['an empty certificate', { hosts: [{ serverName: 'localhost', certificates: [{ cert: '', key: ecdsa.key }] }] }, 'ERR_TLS_CONFIG_CERTIFICATE', 'hosts[0].certificates[0].cert'],
    ['a mismatched key', { hosts: [{ serverName: 'localhost', certificates: [{ cert: ecdsa.cert, key: f.read('mismatch.key') }] }] }, 'ERR_TLS_CONFIG_KEY_MISMATCH', 'hosts[0].certificates[0].key'],
    ['an unknown TLS option', { ...ecdsa, options: ['StdEnvVars', 'FakeOption'] }, 'ERR_TLS_CONFIG_OPTION', 'options[1]', 'FakeOption'],
    ['a client-auth mode without CA', { ...ecdsa, clientAuth: { mode: 'required' } }, 'ERR_TLS_CONFIG_CA', 'clientAuth.ca'],
    ['a duplicate host name', { hosts: [{ serverName: 'a.test', ...ecdsa }, { serverName: 'b.test', aliases: ['A.test'], ...ecdsa }] }, 'ERR_TLS_CONFIG_DUPLICATE_NAME', 'hosts[1]', 'a.test'],
  ]
  for (const [label, options, code, keyPath, value] of cases) {
    test(`${label} → ${code} at ${keyPath}`, () => {
      assert.throws(() => createServer(options), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err))
        assert.equal(err.code, code)
        assert.equal(err.keyPath, keyPath)
        if (value !== undefined) assert.equal(err.value, value)
        return true
      })
    })
  }

  test('an encrypted key with a wrong passphrase names the key, never the passphrase', () => {
    assert.throws(() => createServer({ cert: ecdsa.cert, key: f.read('localhost-ecdsa.enc.key'), passphrase: 'not-the-secret-xyz' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.code, 'ERR_TLS_CONFIG_KEY')
      assert.doesNotMatch(err.message, /not-the-secret-xyz/)
      return true
    })
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
