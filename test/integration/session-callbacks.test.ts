// Session cache callbacks (issue 21): node:tls' 'newSession' and
// 'resumeSession', and the sessionStore option, on both server paths. A
// TLS 1.2 session made on server A resumes on server B through them (the
// client sends A's session id to B, which has never seen it); a slow, a
// failing and a garbage answer each give a full handshake, in time.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import type { ServerOptions } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { sClient } from '../helpers/peers'
import { assertNoLiveHandles, type Running, settle, startServer } from '../helpers/tls'

const f = fixtures()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-sessions-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))

const echoVars = (s: import('../../lib/tls-socket/socket').RustlsSocket): void => {
  s.end(`${s.getEnvVars().SSL_SESSION_RESUMED}\n`)
}

function base (nativeListener: boolean): ServerOptions {
  return { cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, options: ['StdEnvVars'], nativeListener }
}

/** openssl s_client over TLS 1.2 with session ids only (no ticket asked): whether it reused, and what the server said. */
async function tls12 (port: number, sess: { out?: string, in?: string }): Promise<{ reused: boolean, said: string }> {
  const args = ['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-tls1_2', '-no_ticket', '-ign_eof']
  if (sess.out !== undefined) args.push('-sess_out', sess.out)
  if (sess.in !== undefined) args.push('-sess_in', sess.in)
  const r = await sClient(args, { timeoutMs: 10_000 })
  const out = r.stdout
  return { reused: /^Reused, /m.test(out), said: /^(Resumed|Initial)$/m.exec(out)?.[1] ?? '' }
}

for (const nativeListener of [true, false]) {
  describe(`session callbacks, ${nativeListener ? 'native listener' : 'net.Server path'}`, () => {
    test('a TLS 1.2 session made on A resumes on B through newSession and resumeSession', async () => {
      const made = new Map<string, Buffer>()
      let a: Running | undefined
      let b: Running | undefined
      try {
        a = await startServer(base(nativeListener), echoVars)
        a.server.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => {
          made.set(id.toString('hex'), data)
          cb()
        })
        b = await startServer(base(nativeListener), echoVars)
        const asked: string[] = []
        b.server.on('resumeSession', (id: Buffer, cb: (err: Error | null, data?: Buffer | null) => void) => {
          asked.push(id.toString('hex'))
          setTimeout(() => cb(null, made.get(id.toString('hex')) ?? null), 5)
        })
        await settle(10)
        const file = path.join(dir, `a-${String(nativeListener)}.pem`)
        const first = await tls12(a.port, { out: file })
        assert.deepEqual(first, { reused: false, said: 'Initial' })
        await settle(20)
        assert.equal(made.size, 1, 'A reported the session it stored')
        const second = await tls12(b.port, { in: file })
        assert.deepEqual(second, { reused: true, said: 'Resumed' }, 'B resumed A\'s session')
        assert.deepEqual(asked, [...made.keys()])
        assert.equal(b.server.sessionCounters.hits, 1)
        // The application's store stays the authority: B asks again.
        const third = await tls12(b.port, { in: file })
        assert.equal(third.reused, true)
        assert.equal(asked.length, 2)
      } finally {
        await a?.close()
        await b?.close()
      }
    })

    test('sessionStore: one store shared by two servers; node:tls resumes TLS 1.2 across them', async () => {
      const store = new Map<string, Buffer>()
      const sessionStore = {
        get: async (id: Buffer) => store.get(id.toString('hex')),
        set: async (id: Buffer, data: Buffer, ttl: number) => { assert.ok(ttl > 0); store.set(id.toString('hex'), data) },
      }
      const a = await startServer({ ...base(nativeListener), sessionStore }, echoVars)
      const b = await startServer({ ...base(nativeListener), sessionStore }, echoVars)
      try {
        const file = path.join(dir, `store-${String(nativeListener)}.pem`)
        assert.equal((await tls12(a.port, { out: file })).reused, false)
        await settle(20)
        assert.equal(store.size, 1)
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: true, said: 'Resumed' })
      } finally {
        await a.close()
        await b.close()
      }
    })

    test('a slow, a failing and a garbage answer each give a full handshake, within the bound', async () => {
      const made = new Map<string, Buffer>()
      const a = await startServer(base(nativeListener), echoVars)
      a.server.on('newSession', (id: Buffer, data: Buffer, cb: () => void) => { made.set(id.toString('hex'), data); cb() })
      let mode: 'slow' | 'fail' | 'garbage' = 'slow'
      const b = await startServer({ ...base(nativeListener), sessionLookupTimeout: 100 }, echoVars)
      b.server.on('resumeSession', (_id: Buffer, cb: (err: Error | null, data?: Buffer | null) => void) => {
        if (mode === 'slow') setTimeout(() => cb(null, [...made.values()][0]), 2000)
        else if (mode === 'fail') cb(new Error('store down'))
        else cb(null, Buffer.alloc(60, 0xee))
      })
      try {
        await settle(10)
        const file = path.join(dir, `bad-${String(nativeListener)}.pem`)
        await tls12(a.port, { out: file })
        await settle(20)
        const t0 = Date.now()
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: false, said: 'Initial' })
        assert.ok(Date.now() - t0 < 1500, `the slow lookup did not stall the handshake (${Date.now() - t0} ms)`)
        mode = 'fail'
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: false, said: 'Initial' })
        mode = 'garbage'
        // B stored its own sessions meanwhile; A's file still names A's session.
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: false, said: 'Initial' })
        const c = b.server.sessionCounters
        assert.equal(c.errors, 1, JSON.stringify(c))
        if (nativeListener) {
          assert.equal(b.server.nativeCounters?.sessionLookupTimeouts, 1)
          assert.equal(b.server.nativeCounters?.sessionsRefused, 1, 'rustls refused the garbage, counted')
        } else {
          assert.equal(c.timeouts, 1, JSON.stringify(c))
        }
      } finally {
        await a.close()
        await b.close()
      }
    })

    test('sessionStore.delete: a refused answer and a resumed TLS 1.3 session are deleted; a resumed TLS 1.2 one stays', async () => {
      const store = new Map<string, Buffer>()
      const deleted: string[] = []
      const sessionStore = {
        get: async (id: Buffer) => store.get(id.toString('hex')),
        set: async (id: Buffer, data: Buffer) => { store.set(id.toString('hex'), data) },
        delete: async (id: Buffer) => { deleted.push(id.toString('hex')); store.delete(id.toString('hex')) },
      }
      // No tickets and no cache of their own: every session lives in the store (TLS 1.3 too, stateful).
      const opts = { ...base(nativeListener), sessionStore, sessionCache: 'none' as const }
      const a = await startServer(opts, echoVars)
      const b = await startServer(opts, echoVars)
      try {
        const file = path.join(dir, `delete-${String(nativeListener)}.pem`)
        assert.equal((await tls12(a.port, { out: file })).reused, false)
        await settle(20)
        const [tls12Id] = [...store.keys()]
        assert.ok(tls12Id !== undefined, 'A stored its TLS 1.2 session')
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: true, said: 'Resumed' })
        await settle(20)
        assert.deepEqual(deleted, [], 'a TLS 1.2 session id may resume again: kept')
        store.set(tls12Id, Buffer.alloc(60, 0xee))
        assert.deepEqual(await tls12(b.port, { in: file }), { reused: false, said: 'Initial' })
        await settle(20)
        assert.deepEqual(deleted, [tls12Id], 'the answer rustls refused is deleted')
        assert.equal(store.has(tls12Id), false)

        const connect = async (port: number, session?: Buffer): Promise<{ said: string, sessions: Buffer[] }> => await new Promise((resolve, reject) => {
          const sessions: Buffer[] = []
          let said = ''
          const c = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: 'TLSv1.3', session })
          c.on('session', (s: Buffer) => sessions.push(s))
          c.on('data', (d: Buffer) => { said += d.toString() })
          c.on('error', reject)
          c.on('close', () => resolve({ said: said.trim(), sessions }))
        })
        const before = store.size
        const first = await connect(a.port)
        assert.equal(first.said, 'Initial')
        await settle(20)
        assert.ok(store.size > before, 'A stored its stateful TLS 1.3 sessions')
        const ticket = first.sessions.at(-1)
        assert.ok(ticket !== undefined, 'the client got a ticket')
        deleted.length = 0
        assert.equal((await connect(b.port, ticket)).said, 'Resumed', 'B resumed A\'s TLS 1.3 session from the store')
        await settle(20)
        assert.equal(deleted.length, 1, 'the TLS 1.3 session is spent once resumed')
        assert.equal(store.has(deleted[0]), false)
        assert.equal((await connect(a.port, ticket)).said, 'Initial', 'a spent TLS 1.3 session resumes nowhere')
        assert.equal(b.server.sessionCounters.spent, 2, JSON.stringify(b.server.sessionCounters))
      } finally {
        await a.close()
        await b.close()
      }
    })

    test('node:tls over TLS 1.3 with stateless tickets (the default) never waits for a lookup', async () => {
      let asked = 0
      const srv = await startServer(base(nativeListener), echoVars)
      srv.server.on('resumeSession', (_id: Buffer, cb: (err: Error | null) => void) => { asked++; cb(null) })
      try {
        await settle(10)
        const first = await new Promise<{ session: Buffer | undefined }>((resolve, reject) => {
          let session: Buffer | undefined
          const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
          c.on('session', (s: Buffer) => { session = s })
          c.on('error', reject)
          c.on('close', () => resolve({ session }))
          c.resume()
        })
        const again = await new Promise<string>((resolve, reject) => {
          const c = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, session: first.session })
          let out = ''
          c.on('data', (d: Buffer) => { out += d.toString() })
          c.on('error', reject)
          c.on('close', () => resolve(out))
        })
        assert.equal(again.trim(), 'Resumed')
        assert.equal(asked, 0, 'a TLS 1.3 ticket is no store key: no lookup')
      } finally {
        await srv.close()
      }
    })
  })
}

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
