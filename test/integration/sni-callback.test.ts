// SNICallback with createSecureContext, in the manner of Node's
// test-tls-sni-server-client: the application chooses the context per
// ClientHello, synchronously or later.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { createSecureContext, type SecureContext } from '../../lib/index'
import type { RustlsSocket } from '../../lib/socket'
import { fixtures } from '../helpers/certs'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()

describe('SNICallback', () => {
  test('contexts chosen per name, synchronously and asynchronously; errors refuse', async () => {
    const contexts = new Map<string, SecureContext>([
      ['a.example.test', createSecureContext({ certificates: [{ cert: f.aEcdsa.chain, key: f.aEcdsa.key }], serverName: 'a.example.test', options: ['StdEnvVars'] })],
      ['b.example.test', createSecureContext({ cert: f.bEcdsa.chain, key: f.bEcdsa.key, serverName: 'b.example.test' })],
    ])
    const asked: string[] = []
    const srv = await startServer({
      cert: f.localhostEcdsa.cert,
      key: f.localhostEcdsa.key,
      SNICallback: (name, cb) => {
        asked.push(name)
        if (name === 'refuse.example.test') return cb(new Error('no'))
        // b answers later, after the event loop turned.
        if (name === 'b.example.test') setTimeout(() => cb(null, contexts.get(name)), 20)
        else cb(null, contexts.get(name))
      },
    }, (s: RustlsSocket) => {
      s.end(`${s.servername}|${s.getX509Certificate()?.subject.split('\n').find((l) => l.startsWith('CN='))}|${s.getEnvVars().SSL_CLIENT_VERIFY ?? '-'}`)
    })
    const get = async (servername: string | undefined): Promise<string> => {
      const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername, ca: f.ca, checkServerIdentity: () => undefined })
      return (await readAll(c)).toString()
    }
    try {
      assert.equal(await get('a.example.test'), 'a.example.test|CN=a.example.test|NONE')
      assert.equal(await get('b.example.test'), 'b.example.test|CN=b.example.test|-')
      // No context returned: the server's own certificate serves.
      assert.equal(await get('other.example.test'), 'other.example.test|CN=localhost|-')
      const refused = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'refuse.example.test', ca: f.ca })
      const err = await new Promise<Error & { code?: string }>((resolve) => refused.once('error', resolve))
      assert.match(String(err.code), /ERR_SSL_TLSV1_UNRECOGNIZED_NAME|ECONNRESET/)
      await settle()
      assert.equal(srv.clientErrors.at(-1)?.code, 'ERR_RUSTLS_SNI_REFUSED')
      assert.deepEqual(asked, ['a.example.test', 'b.example.test', 'other.example.test', 'refuse.example.test'])
    } finally {
      await srv.close()
      for (const c of contexts.values()) c.destroy()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
