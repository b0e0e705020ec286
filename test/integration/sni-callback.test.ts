// SNICallback with createSecureContext, in the manner of Node's
// test-tls-sni-server-client: the application chooses the context per
// ClientHello, synchronously or later.
import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { createSecureContext, type SecureContext } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
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

  test('a context asking less than the server (client certificate, protocol minimum) is refused, never served', async () => {
    const weak = createSecureContext({ cert: f.aEcdsa.chain, key: f.aEcdsa.key, serverName: 'a.example.test' })
    const errors: string[] = []
    const logger = { error: (_o: unknown, msg?: string) => { errors.push(String(msg)) }, warn () {}, info () {}, debug () {}, trace () {} }
    const srv = await startServer({
      cert: f.localhostEcdsa.cert,
      key: f.localhostEcdsa.key,
      clientAuth: { mode: 'required', ca: f.clientCa },
      minVersion: 'TLSv1.3',
      logger,
      SNICallback: (_name, cb) => cb(null, weak),
    }, (s: RustlsSocket) => s.end('served'))
    try {
      // Served by `weak`, this client (no certificate, TLS 1.2) would get in.
      const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'a.example.test', ca: f.ca, maxVersion: 'TLSv1.2' })
      const err = await new Promise<Error & { code?: string }>((resolve) => {
        c.once('error', resolve)
        c.once('secureConnect', () => resolve(Object.assign(new Error('served'), { code: 'SERVED' })))
      })
      c.destroy()
      assert.match(String(err.code), /ERR_SSL_TLSV1_UNRECOGNIZED_NAME|ECONNRESET/)
      await settle()
      assert.equal(srv.clientErrors.at(-1)?.code, 'ERR_RUSTLS_SNI_REFUSED')
      assert.equal(errors.length, 1)
      assert.match(errors[0], /clientAuth is required but the context's is none/)
      // addContext refuses the same context at once, naming the host.
      assert.throws(() => srv.server.addContext('a.example.test', weak), (e: Error & { code?: string }) =>
        e.code === 'ERR_TLS_CONFIG_WEAKER_CONTEXT' && /a\.example\.test: the server's clientAuth is required/.test(e.message))
      const strong = createSecureContext({ cert: f.aEcdsa.chain, key: f.aEcdsa.key, serverName: 'a.example.test', clientAuth: { mode: 'required', ca: f.clientCa } })
      // Same client authentication, but TLS 1.2 still allowed.
      assert.throws(() => srv.server.addContext('a.example.test', strong), /protocol minimum is TLSv1.3 but the context allows TLSv1.2/)
      strong.destroy()
    } finally {
      await srv.close()
      weak.destroy()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
