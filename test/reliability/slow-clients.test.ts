// Issue 6, item 4: slow and silent clients against a library server in its
// own process (load-server.ts) with handshakeTimeout T. SCALE.slowClients
// clients at once, a third of each kind: connect and say nothing; send part
// of a real ClientHello and stop; send a real ClientHello one byte per
// second. Expected: each is closed by the server between T and T + slack
// after it connected, with not one byte sent to it; the server reports a
// handshake timeout for each (tlsClientError ERR_TLS_HANDSHAKE_TIMEOUT);
// afterwards no connection, native handle or descriptor is held and RSS is
// back near the baseline; and while they are all held, a normal client gets
// its answer promptly.
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, test } from 'node:test'

import { connect, liveHandles } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { rustlsClientHello } from '../helpers/hello'
import { settle } from '../helpers/tls'
import { LoadServer } from './load-client'
import { mib, MiB, recordFigures, SCALE, STRESS } from './scale'

const f = fixtures()
let server: LoadServer | undefined

after(() => server?.kill())

type Kind = 'silent' | 'partial' | 'drip'

interface SlowResult { kind: Kind, received: number, heldMs: number, closedByPeer: boolean }

/** Opens a slow client; resolves once connected with a promise of its end (boxed: promises flatten). */
function slowClient (port: number, kind: Kind, hello: Buffer): Promise<{ done: Promise<SlowResult> }> {
  return new Promise((resolveConnected, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    let received = 0
    let connectedAt = 0
    let drip: NodeJS.Timeout | undefined
    s.on('data', (d: Buffer) => { received += d.length })
    s.once('error', (err) => { if (connectedAt === 0) reject(err) })
    s.once('connect', () => {
      connectedAt = Date.now()
      if (kind === 'partial') s.write(hello.subarray(0, 1 + Math.floor(Math.random() * (hello.length - 1))))
      if (kind === 'drip') {
        let sent = 0
        const one = (): void => { if (!s.destroyed && sent < hello.length) s.write(hello.subarray(sent, ++sent)) }
        one()
        drip = setInterval(one, 1000)
      }
      resolveConnected({ done: new Promise((resolve) => {
        // 'end' first: the server closed (FIN); our side never ends on its own.
        let closedByPeer = false
        s.once('end', () => { closedByPeer = true })
        s.once('close', () => {
          if (drip !== undefined) clearInterval(drip)
          resolve({ kind, received, heldMs: Date.now() - connectedAt, closedByPeer: closedByPeer || s.errored !== null })
        })
      }) })
    })
  })
}

test(`${SCALE.slowClients} silent, partial and one-byte-per-second clients are closed after handshakeTimeout, sent nothing, and do not stop a normal client`, { timeout: STRESS ? 120_000 : 40_000 }, async (t) => {
  const timeout = SCALE.slowHandshakeTimeoutMs
  server = await LoadServer.start({ handshakeTimeout: timeout })
  const hello = rustlsClientHello()
  // Warm-up, then the baseline.
  for (let i = 0; i < 20; i++) await normalExchange(server.port)
  const baseline = await server.collected()

  const kinds: Kind[] = ['silent', 'partial', 'drip']
  const ends: Array<Promise<SlowResult>> = []
  const openedAt = Date.now()
  for (let i = 0; i < SCALE.slowClients; i += 100) {
    const batch = Array.from({ length: Math.min(100, SCALE.slowClients - i) }, (_, j) => slowClient(server!.port, kinds[(i + j) % 3], hello))
    ends.push(...(await Promise.all(batch)).map((b) => b.done))
  }
  const openMs = Date.now() - openedAt
  assert.ok(openMs < timeout / 2, `all slow clients connected within ${openMs} ms, before the first timeout`)
  // Connected in the kernel's accept queue first, accepted a moment later.
  let held = await server.stats()
  while (held.open < SCALE.slowClients && Date.now() - openedAt < timeout / 2) {
    await settle(20)
    held = await server.stats()
  }
  assert.equal(held.open, SCALE.slowClients, 'the server holds every slow client')

  // A normal client while they are all held: served, and promptly.
  const latencies: number[] = []
  for (let i = 0; i < 5; i++) {
    const started = Date.now()
    assert.equal(await normalExchange(server.port), 1024)
    latencies.push(Date.now() - started)
  }
  assert.ok(Math.max(...latencies) < 1000, `normal exchanges took ${latencies.join(', ')} ms`)

  const outcomes = await Promise.all(ends)
  await settle(200)
  const afterwards = await server.collected()
  const heldMs = outcomes.map((o) => o.heldMs).sort((a, b) => a - b)
  const sentToThem = outcomes.reduce((n, o) => n + o.received, 0)
  t.diagnostic(`${SCALE.slowClients} slow clients, handshakeTimeout ${timeout} ms: held ${heldMs[0]}–${heldMs[heldMs.length - 1]} ms (median ${heldMs[heldMs.length >> 1]}); ${sentToThem} bytes sent to them; normal client latency ${latencies.join('/')} ms; server RSS baseline ${mib(baseline.rss)}, with them ${mib(held.rss)}, after ${mib(afterwards.rss)}; fds ${baseline.fds} → ${held.fds} → ${afterwards.fds}`)
  recordFigures('slow-clients', {
    clients: SCALE.slowClients,
    handshakeTimeoutMs: timeout,
    heldMs: { min: heldMs[0], median: heldMs[heldMs.length >> 1], max: heldMs[heldMs.length - 1] },
    bytesSentToSlowClients: sentToThem,
    normalClientLatencyMs: latencies,
    rss: { baseline: baseline.rss, held: held.rss, after: afterwards.rss },
    fds: { baseline: baseline.fds, held: held.fds, after: afterwards.fds },
    clientErrors: afterwards.clientErrors,
  })
  const slack = STRESS ? 2000 : 1500
  for (const kind of kinds) {
    const mine = outcomes.filter((o) => o.kind === kind)
    assert.equal(mine.length, Math.floor(SCALE.slowClients / 3) + (kinds.indexOf(kind) < SCALE.slowClients % 3 ? 1 : 0))
    assert.deepEqual(mine.filter((o) => o.received !== 0), [], `${kind}: nothing is sent to a client that did not finish its hello`)
    assert.deepEqual(mine.filter((o) => !o.closedByPeer), [], `${kind}: the server closed every one`)
    const early = mine.filter((o) => o.heldMs < timeout - 250)
    const late = mine.filter((o) => o.heldMs > timeout + slack)
    assert.deepEqual(early.map((o) => o.heldMs), [], `${kind}: closed before handshakeTimeout (${timeout} ms)`)
    assert.deepEqual(late.map((o) => o.heldMs), [], `${kind}: closed later than handshakeTimeout + ${slack} ms`)
  }
  assert.equal(afterwards.open, 0)
  assert.deepEqual(afterwards.live, baseline.live, 'no native handle held')
  assert.equal(afterwards.fds, baseline.fds, 'no descriptor held')
  assert.deepEqual(afterwards.clientErrors, { ERR_TLS_HANDSHAKE_TIMEOUT: SCALE.slowClients })
  assert.equal(afterwards.bytesToFailed, 0)
  const retained = afterwards.rss - baseline.rss
  assert.ok(retained < 16 * MiB, `server RSS ${mib(retained)} above the baseline after they left (bound 16 MiB)`)
  const final = await server.close()
  assert.equal(final.live.connections, 0)
  server = undefined
  assert.equal(liveHandles().connections, 0)
})

/** A library client: handshake, 1 KiB each way; resolves with the bytes received. */
function normalExchange (port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca })
    let got = 0
    s.on('secureConnect', () => s.write(Buffer.alloc(1024, 0x62)))
    s.on('data', (d: Buffer) => { got += d.length })
    s.on('end', () => s.end())
    s.on('error', reject)
    s.on('close', () => resolve(got))
  })
}
