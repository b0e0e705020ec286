// Virtual hosts and SNI (SPEC §4.2), per-host protocol and ALPN, several
// certificates per host (§4.2, issue 3 item 5), with openssl and curl.
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import type { HostOptions } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { curl, sClient } from '../helpers/peers'
import { assertNoLiveHandles, settle, startServer } from '../helpers/tls'

const f = fixtures()

const hostA: HostOptions = {
  serverName: 'a.example.test',
  aliases: ['*.a.example.test'],
  certificates: [{ cert: f.aEcdsa.chain, key: f.aEcdsa.key }],
  ALPNProtocols: ['h2', 'http/1.1'],
}
const hostB: HostOptions = {
  serverName: 'b.example.test',
  certificates: [{ cert: f.bEcdsa.chain, key: f.bEcdsa.key }],
  protocol: 'v1.3+',
  ALPNProtocols: ['http/1.1'],
}

/** The subject CN of the certificate the server presented to s_client. */
async function presented (port: number, args: string[]): Promise<{ cn: string | undefined, stdout: string, stderr: string, code: number | null }> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, ...args], { holdOpenMs: 100 })
  const m = r.stdout.match(/subject=.*?CN ?= ?([^,\n/]+)/)
  return { cn: m?.[1]?.trim(), stdout: r.stdout, stderr: r.stderr, code: r.code }
}

describe('virtual hosts', () => {
  test('each host serves its own certificate by SNI; wildcard aliases; case-insensitive', async () => {
    const hostIndex: number[] = []
    const srv = await startServer({ hosts: [hostA, hostB] }, (s: RustlsSocket) => { hostIndex.push(s.hostIndex); s.end() })
    try {
      assert.equal((await presented(srv.port, ['-servername', 'a.example.test'])).cn, 'a.example.test')
      assert.equal((await presented(srv.port, ['-servername', 'b.example.test'])).cn, 'b.example.test')
      assert.equal((await presented(srv.port, ['-servername', 'www.A.Example.TEST'])).cn, 'a.example.test')
      // A wildcard covers exactly one label.
      const deep = await presented(srv.port, ['-servername', 'x.www.a.example.test'])
      assert.equal(deep.cn, undefined)
      assert.deepEqual(hostIndex, [0, 1, 0])
    } finally {
      await srv.close()
    }
  })

  test('no SNI → the first host; unknown SNI refused (strict) or served by the first host (relaxed)', async () => {
    const strict = await startServer({ hosts: [hostA, hostB] }, (s) => s.end())
    const relaxed = await startServer({ hosts: [hostB, hostA], strictSNI: false }, (s) => s.end())
    try {
      assert.equal((await presented(strict.port, ['-noservername'])).cn, 'a.example.test')
      const refused = await presented(strict.port, ['-servername', 'unknown.example.test'])
      assert.equal(refused.cn, undefined, 'no certificate may be sent')
      assert.match(refused.stderr, /unrecognized name/)
      await settle()
      assert.equal(strict.clientErrors.at(-1)?.code, 'ERR_RUSTLS_SNI_REFUSED')
      // The refused name is still known, for the operator's logs.
      const refusedSocket = new Promise<RustlsSocket>((resolve) => strict.server.once('tlsClientError', (_err: Error, s: RustlsSocket) => resolve(s)))
      await presented(strict.port, ['-servername', 'refused.example.test'])
      assert.equal((await refusedSocket).servername, 'refused.example.test')
      assert.equal((await presented(relaxed.port, ['-servername', 'unknown.example.test'])).cn, 'b.example.test')
    } finally {
      await strict.close()
      await relaxed.close()
    }
  })

  test('per-host protocol minimum: a TLS 1.2 client fails on the v1.3+ host, works on its sibling', async () => {
    const srv = await startServer({ hosts: [hostA, hostB] }, (s) => s.end())
    try {
      const onB = await presented(srv.port, ['-servername', 'b.example.test', '-tls1_2'])
      assert.notEqual(onB.code, 0)
      assert.match(onB.stderr, /alert protocol version/)
      const onA = await presented(srv.port, ['-servername', 'a.example.test', '-tls1_2'])
      assert.equal(onA.cn, 'a.example.test')
      assert.match(onA.stdout, /Protocol\s*: TLSv1\.2/)
    } finally {
      await srv.close()
    }
  })

  test('ALPN per host: curl negotiates h2 on one host and http/1.1 on the other', async () => {
    const srv = await startServer({ hosts: [hostA, hostB] }, (s) => s.destroy())
    try {
      for (const [name, expected] of [['a.example.test', 'h2'], ['b.example.test', 'http/1.1']]) {
        const r = await curl(['-v', '--http2', '--cacert', f.path('ca.pem'), '--resolve', `${name}:${srv.port}:127.0.0.1`, `https://${name}:${srv.port}/`])
        assert.match(r.stderr, new RegExp(`ALPN: server accepted ${expected.replace('/', '\\/')}`), name)
      }
    } finally {
      await srv.close()
    }
  })

  test('ECDSA and RSA certificates side by side: an RSA-only client gets the RSA leaf', async () => {
    const both: HostOptions = {
      serverName: 'localhost',
      certificates: [
        { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key },
        { cert: f.localhostRsa.cert, key: f.localhostRsa.key },
      ],
      options: ['ExportCertData'],
    }
    const leaves: Array<string | undefined> = []
    const srv = await startServer({ hosts: [both] }, (s: RustlsSocket) => {
      leaves.push(s.getEnvVars().SSL_SERVER_CERT)
      s.end()
    })
    try {
      const ecdsa = await presented(srv.port, ['-servername', 'localhost', '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256'])
      assert.match(ecdsa.stdout, /Peer signature type: ECDSA/)
      const rsa = await presented(srv.port, ['-servername', 'localhost', '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'])
      assert.match(rsa.stdout, /Peer signature type: RSA/)
      const rsa13 = await presented(srv.port, ['-servername', 'localhost', '-tls1_3', '-sigalgs', 'RSA-PSS+SHA256'])
      assert.match(rsa13.stdout, /Peer signature type: RSA-PSS/)
      await settle()
      // SSL_SERVER_CERT names the leaf actually used.
      const keyType = (pem: string | undefined) => new X509Certificate(pem ?? '').publicKey.asymmetricKeyType
      assert.deepEqual(leaves.map(keyType), ['ec', 'rsa', 'rsa'])
    } finally {
      await srv.close()
    }
  })

  test('setHosts swaps hosts for new connections and leaves live ones alone', async () => {
    const live: RustlsSocket[] = []
    const srv = await startServer({ hosts: [hostA] }, (s: RustlsSocket) => { live.push(s) })
    try {
      const before = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'a.example.test', ca: f.ca })
      await new Promise((resolve) => before.once('secureConnect', resolve))
      srv.server.setHosts([hostB])
      assert.equal((await presented(srv.port, ['-servername', 'b.example.test'])).cn, 'b.example.test')
      assert.equal((await presented(srv.port, ['-servername', 'a.example.test'])).cn, undefined)
      // The connection made before the swap still works both ways.
      const echoed = new Promise<string>((resolve) => before.once('data', (d: Buffer) => resolve(d.toString())))
      live[0].on('data', (d: Buffer) => live[0].write(d))
      before.write('still here')
      assert.equal(await echoed, 'still here')
      before.destroy()
      // A broken replacement throws and keeps the current hosts.
      assert.throws(() => srv.server.setHosts([{ serverName: 'c.example.test', certificates: [{ cert: 'nope' }] }]), { code: 'ERR_TLS_CONFIG_CERTIFICATE' })
      assert.equal((await presented(srv.port, ['-servername', 'b.example.test'])).cn, 'b.example.test')
    } finally {
      await srv.close()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
