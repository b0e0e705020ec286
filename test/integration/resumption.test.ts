// Session resumption (SPEC §4.4): the server cache on the acceptor path for
// TLS 1.2 session ids and TLS 1.3 tickets, shared ticket keys across
// processes, 'none', and the client's ClientContext.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { ClientContext, connect } from '../../lib/index'
import type { RustlsSocket } from '../../lib/socket'
import { fixtures } from '../helpers/certs'
import { sClient, waitFor } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const cert = f.localhostEcdsa

/** Connects with node:tls, optionally resuming `session`; returns the new session. */
async function nodeConnect (port: number, version: 'TLSv1.2' | 'TLSv1.3', session?: Buffer): Promise<{ reused: boolean, session: Buffer | undefined }> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: version, maxVersion: version, session })
  let latest: Buffer | undefined
  socket.on('session', (s: Buffer) => { latest = s })
  await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const reused = socket.isSessionReused()
  // Reading to the end makes sure the TLS 1.3 tickets were processed.
  await readAll(socket)
  return { reused, session: latest ?? socket.getSession() }
}

describe('resumption', () => {
  test('openssl s_client -reconnect resumes over TLS 1.2 (session id) through the default cache', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end())
    try {
      const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-tls1_2', '-servername', 'localhost',
        '-CAfile', f.path('ca.pem'), '-reconnect'], { timeoutMs: 15_000 })
      // -reconnect: one full handshake, then five resumed ones.
      assert.equal((r.stdout.match(/^New, TLSv1\.2/gm) ?? []).length, 1, r.stdout)
      assert.equal((r.stdout.match(/^Reused, TLSv1\.2/gm) ?? []).length, 5, r.stdout)
    } finally {
      await srv.close()
    }
  })

  test('openssl s_client resumes a TLS 1.3 ticket (-sess_out / -sess_in) through the default cache', async () => {
    // s_client -reconnect cannot show TLS 1.3 resumption with any server
    // (it reconnects before reading the post-handshake NewSessionTicket;
    // the same happens against openssl s_server), so the session is saved
    // after the tickets arrived and offered again by a second s_client.
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.write('ready\n'))
    const sessionFile = path.join(f.dir, `sess-${process.pid}.pem`)
    try {
      const base = ['-connect', `127.0.0.1:${srv.port}`, '-tls1_3', '-servername', 'localhost', '-CAfile', f.path('ca.pem')]
      const first = await sClient([...base, '-sess_out', sessionFile], { holdOpenMs: 300 })
      assert.match(first.stdout, /^New, TLSv1\.3/m)
      const second = await sClient([...base, '-sess_in', sessionFile], { holdOpenMs: 300 })
      assert.match(second.stdout, /^Reused, TLSv1\.3/m, second.stdout)
    } finally {
      fs.rmSync(sessionFile, { force: true })
      await srv.close()
    }
  })

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    test(`a node:tls client resumes with ${version}; isSessionReused and SSL_SESSION_RESUMED agree`, async () => {
      const seen: Array<{ reused: boolean, env: string | undefined }> = []
      const srv = await startServer({ cert: cert.cert, key: cert.key, options: ['StdEnvVars'] }, (s: RustlsSocket) => {
        seen.push({ reused: s.isSessionReused(), env: s.getEnvVars().SSL_SESSION_RESUMED })
        s.end('x')
      })
      try {
        const first = await nodeConnect(srv.port, version)
        assert.equal(first.reused, false)
        assert.ok(first.session !== undefined)
        const second = await nodeConnect(srv.port, version, first.session)
        assert.equal(second.reused, true)
        assert.deepEqual(seen, [{ reused: false, env: 'Initial' }, { reused: true, env: 'Resumed' }])
      } finally {
        await srv.close()
      }
    })
  }

  test('sessionCache none and no ticket keys: nothing resumes', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key, sessionCache: 'none' }, (s) => s.end('x'))
    try {
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const first = await nodeConnect(srv.port, version)
        const second = await nodeConnect(srv.port, version, first.session)
        assert.equal(second.reused, false, version)
      }
    } finally {
      await srv.close()
    }
  })

  test('two processes with the same ticket keys resume each other\'s TLS 1.3 sessions', async () => {
    const script = path.join(__dirname, '..', 'helpers', 'ticket-server.js')
    const start = (keys: string) => {
      const child = spawn(process.execPath, [script, cert.certPath, cert.keyPath, f.path(keys as never), 'tls1.3'], { stdio: ['pipe', 'pipe', 'inherit'] })
      let out = ''
      child.stdout.on('data', (d: Buffer) => { out += d.toString() })
      const port = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('server did not start')), 10_000)
        child.stdout.on('data', () => {
          const m = out.match(/port=(\d+)/)
          if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
        })
      })
      return { child, port, output: () => out, stop: () => new Promise((resolve) => { child.once('close', resolve); child.stdin.end() }) }
    }
    const a = start('ticket-keys.bin')
    const b = start('ticket-keys.bin')
    const c = start('ticket-keys-other.bin')
    try {
      const first = await nodeConnect(await a.port, 'TLSv1.3')
      assert.equal(first.reused, false)
      const onB = await nodeConnect(await b.port, 'TLSv1.3', first.session)
      assert.equal(onB.reused, true)
      const onC = await nodeConnect(await c.port, 'TLSv1.3', first.session)
      assert.equal(onC.reused, false)
      // The servers saw the same thing the client did (their report travels
      // through a pipe, so wait for it).
      await waitFor(() => /resumed=/.test(b.output()) && /resumed=/.test(c.output()), 5000, 'server reports')
      assert.match(b.output(), /resumed=true/)
      assert.match(c.output(), /resumed=false/)
    } finally {
      await Promise.all([a.stop(), b.stop(), c.stop()])
    }
  })

  test('a reused ClientContext resumes on the client side, TLS 1.2 and 1.3', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end('x'))
    try {
      for (const minVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
        const context = new ClientContext({ ca: f.ca, protocol: minVersion === 'TLSv1.3' ? 'v1.3+' : undefined,
          ciphersSuppress: minVersion === 'TLSv1.2' ? ['TLS13_AES_128_GCM_SHA256', 'TLS13_AES_256_GCM_SHA384', 'TLS13_CHACHA20_POLY1305_SHA256'] : undefined })
        const reused: boolean[] = []
        for (let i = 0; i < 3; i++) {
          const socket = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', context })
          await new Promise((resolve) => socket.once('secureConnect', resolve))
          reused.push(socket.isSessionReused())
          assert.equal(socket.getProtocol(), minVersion)
          await readAll(socket)
        }
        assert.deepEqual(reused, [false, true, true], minVersion)
        // Without the context every connection is a full handshake.
        const lone = connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
        await new Promise((resolve) => lone.once('secureConnect', resolve))
        assert.equal(lone.isSessionReused(), false)
        await readAll(lone)
        context.destroy()
      }
    } finally {
      await srv.close()
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
