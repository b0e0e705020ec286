// The alert a client gets when its handshake fails before the server has a
// rustls connection (issue 20, found by tlsfuzzer), on both library data
// planes and the terminator:
// - no configured certificate can sign with a scheme the client offers, or
//   the client offers only suites we lack: handshake_failure (40), not the
//   access_denied (49) that rustls' resolver contract produces;
// - a first handshake message that is not a ClientHello: unexpected_message
//   (10), where rustls' acceptor sends nothing.
// Real peers: openssl s_client with lists nothing fits, and a raw TCP socket.
import assert from 'node:assert/strict'
import net from 'node:net'
import { describe, test } from 'node:test'

import type { ServerOptions } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { settle, startServer } from '../helpers/tls'
import { serveConfig, stopClean } from '../terminator/harness'

const f = fixtures()

const HANDSHAKE_FAILURE = 40
const UNEXPECTED_MESSAGE = 10

/** A fatal alert record in the clear, as the server writes it before any keys exist. */
function fatalAlert (description: number): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description])
}

/**
 * A handshake record whose one message has type `type` (a ClientHello is 1)
 * and a short body; tlsfuzzer's "Client Hello type fuzz to N" sends this.
 */
function handshakeRecord (type: number): Buffer {
  const body = Buffer.alloc(38)
  body.writeUInt16BE(0x0303, 0)
  const msg = Buffer.concat([Buffer.from([type, 0, 0, body.length]), body])
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0, msg.length]), msg])
}

/** Sends `bytes` on a fresh connection and collects what comes back until the server closes. */
function exchange (port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes))
    const timer = setTimeout(() => { s.destroy(); reject(new Error('the server did not close in 10 s')) }, 10_000)
    s.on('data', (d: Buffer) => chunks.push(d))
    s.on('error', () => {})
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)) })
  })
}

/** The alert number s_client reports ("SSL alert number N"), or undefined. */
async function alertFromSClient (port: number, args: string[]): Promise<number | undefined> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args])
  const m = /SSL alert number (\d+)/.exec(r.stderr + r.stdout)
  return m === null ? undefined : Number(m[1])
}

// s_client offers that nothing on an RSA-only server fits.
const UNFIT: Array<[string, string[]]> = [
  ['TLS 1.3, only ECDSA signature schemes', ['-tls1_3', '-sigalgs', 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384']],
  ['TLS 1.3, only RSA-PSS schemes for PSS keys (rsa_pss_pss_*)', ['-tls1_3', '-sigalgs', 'rsa_pss_pss_sha256:rsa_pss_pss_sha384']],
  ['TLS 1.3, only a suite rustls lacks (TLS_AES_128_CCM_SHA256)', ['-tls1_3', '-ciphersuites', 'TLS_AES_128_CCM_SHA256']],
  ['TLS 1.2, only ECDSA suites', ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']],
]

for (const nativeListener of [false, true]) {
  const base: ServerOptions = { cert: f.localhostRsa.cert, key: f.localhostRsa.key, nativeListener }
  describe(`handshake alerts, createServer({nativeListener: ${nativeListener}})`, () => {
    for (const [what, args] of UNFIT) {
      test(`${what}: handshake_failure, reported as ERR_RUSTLS_PEER_INCOMPATIBLE_ERROR`, async () => {
        const srv = await startServer(base, (s) => s.end())
        try {
          assert.equal(await alertFromSClient(srv.port, args), HANDSHAKE_FAILURE)
          await settle()
          assert.equal(srv.clientErrors.at(-1)?.code, 'ERR_RUSTLS_PEER_INCOMPATIBLE_ERROR')
        } finally {
          await srv.close()
        }
      })
    }

    test('a certificate that fits still wins next to one that does not', async () => {
      const srv = await startServer({ certificates: [f.localhostEcdsa, f.localhostRsa], nativeListener }, (s) => s.end())
      try {
        const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-servername', 'localhost', '-tls1_3', '-sigalgs', 'rsa_pss_rsae_sha256'])
        assert.match(r.stdout, /Peer signature type: RSA-PSS/)
      } finally {
        await srv.close()
      }
    })

    for (const type of [2, 49, 0]) {
      test(`a first handshake message of type ${type} (not a ClientHello): unexpected_message`, async () => {
        const srv = await startServer(base, (s) => s.end())
        try {
          assert.deepEqual(await exchange(srv.port, handshakeRecord(type)), fatalAlert(UNEXPECTED_MESSAGE))
        } finally {
          await srv.close()
        }
      })
    }
  })
}

describe('handshake alerts, terminator', () => {
  test('no certificate fits: handshake_failure; not a ClientHello: unexpected_message', async () => {
    const { t } = await serveConfig({
      listen: ['127.0.0.1:0'],
      hosts: [{
        serverName: 'localhost',
        certificates: [{ cert: f.localhostRsa.certPath, key: f.localhostRsa.keyPath }],
        backend: { address: '127.0.0.1:9', mode: 'tcp' },
      }],
    })
    try {
      assert.equal(await alertFromSClient(t.port, UNFIT[0][1]), HANDSHAKE_FAILURE)
      assert.equal(await alertFromSClient(t.port, UNFIT[3][1]), HANDSHAKE_FAILURE)
      assert.deepEqual(await exchange(t.port, handshakeRecord(2)), fatalAlert(UNEXPECTED_MESSAGE))
    } finally {
      await stopClean(t)
    }
  })
})
