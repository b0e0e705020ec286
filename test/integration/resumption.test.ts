// Session resumption (SPEC §4.4, issue 14): by default stateless tickets
// under generated keys that rotate (reusable by concurrent connections, an
// old ticket valid for one more lifetime), the server cache for TLS 1.2
// session ids on the acceptor path, shared ticket keys across servers and
// processes, 'none', and the client's ClientContext.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import tls from 'node:tls'

import { ClientContext, connect, createServer } from '../../lib/index'
import type { RustlsSocket } from '../../lib/tls-socket/socket'
import { fixtures } from '../helpers/certs'
import { sClient, waitFor } from '../helpers/peers'
import { assertNoLiveHandles, readAll, settle, startServer } from '../helpers/tls'

const f = fixtures()
const cert = f.localhostEcdsa

interface Connected { reused: boolean, session: Buffer | undefined, ticket: Buffer | undefined }

/**
 * Connects with node:tls, optionally resuming `session`; returns the new
 * session and its ticket (the server must end the connection).
 */
async function nodeConnect (port: number, version: 'TLSv1.2' | 'TLSv1.3', session?: Buffer): Promise<Connected> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, minVersion: version, maxVersion: version, session })
  let latest: Buffer | undefined
  let ticket: Buffer | undefined
  socket.on('session', (s: Buffer) => {
    latest = s
    ticket = socket.getTLSTicket()
  })
  await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const reused = socket.isSessionReused()
  // Reading to the end makes sure the TLS 1.3 tickets were processed.
  await readAll(socket)
  return { reused, session: latest ?? socket.getSession(), ticket: ticket ?? socket.getTLSTicket() }
}

/** Hex names of the keys in rustls-node ticket key material (each key's first 16 bytes). */
function keyNames (material: Buffer | undefined): string[] {
  assert.ok(material !== undefined && material.length % 80 === 0, 'ticket key material')
  return Array.from({ length: material.length / 80 }, (_, i) => material.subarray(i * 80, i * 80 + 16).toString('hex'))
}

/** A rustls-node ticket starts with the name of the key that sealed it (native/rust/ticketer.rs). */
function sealedBy (ticket: Buffer | undefined): string {
  assert.ok(ticket !== undefined && ticket.length > 16, 'a ticket')
  return ticket.subarray(0, 16).toString('hex')
}

describe('resumption', () => {
  for (const [how, flags] of [['session id, through the default cache', ['-no_ticket']], ['ticket under the generated keys', []]] as const) {
    test(`openssl s_client -reconnect resumes over TLS 1.2 (${how})`, async () => {
      const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end())
      try {
        const r = await sClient(['-connect', `127.0.0.1:${srv.port}`, '-tls1_2', '-servername', 'localhost',
          '-CAfile', f.path('ca.pem'), '-reconnect', ...flags], { timeoutMs: 15_000 })
        // -reconnect: one full handshake, then five resumed ones.
        assert.equal((r.stdout.match(/^New, TLSv1\.2/gm) ?? []).length, 1, r.stdout)
        assert.equal((r.stdout.match(/^Reused, TLSv1\.2/gm) ?? []).length, 5, r.stdout)
        // RFC 5077: with a ticket the server sends one; with -no_ticket, none.
        assert.equal(/TLS session ticket lifetime hint/.test(r.stdout), flags.length === 0, r.stdout)
      } finally {
        await srv.close()
      }
    })
  }

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
      // The lifetime hint is the default ticketLifetime, 6 hours.
      assert.match(first.stdout, /TLS session ticket lifetime hint: 21600 \(seconds\)/, first.stdout)
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

  test('default server: one TLS 1.3 ticket offered by 8 connections at once resumes all 8', async () => {
    const seen: boolean[] = []
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s: RustlsSocket) => {
      seen.push(s.isSessionReused())
      s.end('x')
    })
    try {
      const first = await nodeConnect(srv.port, 'TLSv1.3')
      assert.equal(first.reused, false)
      // The same session (so the same ticket) for all 8, started together:
      // a single-use (stateful) ticket would resume one of them.
      const all = await Promise.all(Array.from({ length: 8 }, async () => await nodeConnect(srv.port, 'TLSv1.3', first.session)))
      assert.deepEqual(all.map((c) => c.reused), Array(8).fill(true))
      assert.deepEqual(seen, [false, ...Array(8).fill(true)])
    } finally {
      await srv.close()
    }
  })

  test('generated keys rotate every ticketLifetime: an old ticket resumes for one more lifetime, then not; live connections stay', async () => {
    // Echo, and end when the client ends: tickets arrive before the end.
    const srv = await startServer({ cert: cert.cert, key: cert.key, ticketLifetime: 2 }, (s: RustlsSocket) => {
      s.on('data', (d: Buffer) => s.write(d))
      s.on('end', () => s.end())
    })
    const connectOnce = async (session?: Buffer): Promise<Connected> => {
      const socket = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca, session })
      const got = new Promise<Buffer>((resolve) => socket.once('session', resolve))
      await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
      const reused = socket.isSessionReused()
      const next = await got
      const ticket = socket.getTLSTicket()
      socket.end()
      await readAll(socket)
      return { reused, session: next, ticket }
    }
    const names = (): string[] => keyNames(srv.server.getTicketKeys())
    // Open across both rotations below.
    const held = tls.connect({ port: srv.port, host: '127.0.0.1', servername: 'localhost', ca: f.ca })
    try {
      await new Promise((resolve, reject) => { held.once('secureConnect', resolve); held.once('error', reject) })
      assert.equal(names().length, 2, 'current and next')
      const hosts = srv.server.hosts
      const first = await connectOnce()
      assert.equal(first.reused, false)
      const key = sealedBy(first.ticket)
      assert.ok(names().includes(key))
      await waitFor(() => names()[0] !== key, 5000, 'a rotation')
      // current ‖ previous ‖ next: the key that sealed the ticket is kept.
      assert.equal(names().length, 3)
      assert.equal(names()[1], key)
      const within = await connectOnce(first.session)
      assert.equal(within.reused, true, 'an old ticket within one lifetime after the rotation')
      assert.notEqual(sealedBy(within.ticket), key, 'new tickets are sealed with the new key')
      await waitFor(() => !names().includes(key), 5000, 'the next rotation')
      const after = await connectOnce(first.session)
      assert.equal(after.reused, false, 'an old ticket after its key was dropped')
      // Rotations rebuilt nothing, and the connection made before them still works.
      assert.equal(srv.server.hosts, hosts)
      held.write('still here')
      const echoed = await new Promise<Buffer>((resolve) => held.once('data', resolve))
      assert.equal(echoed.toString(), 'still here')
    } finally {
      held.destroy()
      await srv.close()
    }
  })

  test('getTicketKeys() of one server given to another\'s setTicketKeys(): its tickets resume there, in place', async () => {
    const a = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end('x'))
    const b = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end('x'))
    try {
      const fromA = await nodeConnect(a.port, 'TLSv1.3')
      assert.equal((await nodeConnect(b.port, 'TLSv1.3', fromA.session)).reused, false, 'other generated keys')
      const hosts = b.server.hosts
      b.server.setTicketKeys(a.server.getTicketKeys() as Buffer)
      // Pushed into the ticketer: no config was rebuilt.
      assert.equal(b.server.hosts, hosts)
      assert.equal((await nodeConnect(b.port, 'TLSv1.3', fromA.session)).reused, true)
    } finally {
      await Promise.all([a.close(), b.close()])
    }
  })

  test('a reload keeps the generated keys (tickets issued before still resume); bad ticket options throw with their key path', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key }, (s) => s.end('x'))
    try {
      const before = await nodeConnect(srv.port, 'TLSv1.3')
      const keys = srv.server.getTicketKeys()
      srv.server.reload({ cert: cert.cert, key: cert.key, options: ['StdEnvVars'] })
      assert.deepEqual(srv.server.getTicketKeys(), keys)
      assert.equal((await nodeConnect(srv.port, 'TLSv1.3', before.session)).reused, true)
      for (const ticketLifetime of [0, 1.5, 604801, '60']) {
        assert.throws(() => srv.server.reload({ cert: cert.cert, key: cert.key, ticketLifetime: ticketLifetime as number }),
          { code: 'ERR_TLS_CONFIG_INVALID', keyPath: 'ticketLifetime' }, String(ticketLifetime))
      }
      assert.throws(() => createServer({ cert: cert.cert, key: cert.key, ticketKeys: Buffer.alloc(81) }), { code: 'ERR_TLS_CONFIG_TICKET_KEYS', keyPath: 'ticketKeys' })
      // The failed reloads changed nothing.
      assert.deepEqual(srv.server.getTicketKeys(), keys)
    } finally {
      await srv.close()
    }
  })

  test('sessionCache none and no ticket keys: nothing resumes', async () => {
    const srv = await startServer({ cert: cert.cert, key: cert.key, sessionCache: 'none' }, (s) => s.end('x'))
    try {
      assert.equal(srv.server.getTicketKeys(), undefined)
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

  test('ClientContext: its store resumes 8 concurrent connections once refilled; against node:tls one TLS 1.3 reconnect in three is full', async (t) => {
    // rustls-ffi's client config keeps rustls' in-memory store: per server
    // name up to 8 TLS 1.3 tickets, each used once, newest first.
    const connectWith = async (port: number, context: ClientContext): Promise<boolean> => {
      const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', context })
      await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
      const reused = socket.isSessionReused()
      // The client ends first; the tickets come before the server's end.
      socket.end()
      await readAll(socket)
      return reused
    }
    const endAfterClient = (s: Duplex): void => {
      s.on('data', () => {})
      s.on('end', () => s.end())
    }
    const ours = await startServer({ cert: cert.cert, key: cert.key }, endAfterClient)
    const theirs = tls.createServer({ cert: cert.cert, key: cert.key }, endAfterClient)
    await new Promise<void>((resolve) => theirs.listen(0, '127.0.0.1', resolve))
    const context = new ClientContext({ ca: f.ca })
    const other = new ClientContext({ ca: f.ca })
    try {
      assert.equal(await connectWith(ours.port, context), false)
      // rustls-node sends 2 tickets after every handshake: the one warm-up
      // connection left 2, so 2 of the first 8 resume; their 16 tickets
      // (the store keeps 8) resume every connection of the next rounds.
      const rounds: number[] = []
      for (let round = 0; round < 3; round++) {
        const reused = await Promise.all(Array.from({ length: 8 }, async () => await connectWith(ours.port, context)))
        rounds.push(reused.filter((r) => r).length)
      }
      assert.deepEqual(rounds, [2, 8, 8])
      // node:tls (OpenSSL) sends 2 tickets after a full TLS 1.3 handshake
      // and none after a resumed one, and rustls uses each ticket once.
      const port = (theirs.address() as AddressInfo).port
      const sequence: string[] = []
      for (let i = 0; i < 6; i++) sequence.push(await connectWith(port, other) ? 'resumed' : 'full')
      assert.deepEqual(sequence, ['full', 'resumed', 'resumed', 'full', 'resumed', 'resumed'])
      t.diagnostic(`rustls-node server: ${rounds.join(' + ')} of 24 concurrent resumed; node:tls server: ${sequence.join(', ')}`)
    } finally {
      context.destroy()
      other.destroy()
      await ours.close()
      await new Promise<void>((resolve) => theirs.close(() => resolve()))
    }
  })
})

after(async () => {
  await settle(100)
  assertNoLiveHandles()
})
