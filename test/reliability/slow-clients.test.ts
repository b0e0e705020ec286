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
//
// Slow HTTP/2 readers (issue 18) against the terminator's native h2 front,
// each session with two streams downloading 16 MiB: half the sessions never
// open a window (SETTINGS_INITIAL_WINDOW_SIZE 0), half read a little every
// 500 ms. Expected: the never-opened ones get no DATA byte and are closed by
// the server (slow_reader) between sendTimeout and sendTimeout + 3 s;
// the slow readers are not closed, and what they got is a byte-exact prefix;
// the terminator's RSS stays under baseline + 2 × 1 MiB × streams + 48 MiB
// (the backpressure test's bound) while 16 MiB × streams is offered; a normal
// h2 client meanwhile gets 1 MiB byte-exact in under 2 s, every time.
import assert from 'node:assert/strict'
import http2 from 'node:http2'
import net from 'node:net'
import { after, test } from 'node:test'

import { connect, liveHandles } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { rustlsClientHello } from '../helpers/hello'
import { settle } from '../helpers/tls'
import { httpEcho } from '../terminator/backends'
import { serveConfig, stopClean } from '../terminator/harness'
import { h2Connect, h2Get, sha256 } from './h2-load'
import { LoadServer } from './load-client'
import { mib, MiB, recordFigures, rssOf, SCALE, STRESS } from './scale'

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

test('slow HTTP/2 readers (window never opened, reading slowly): bounded terminator memory, the never-opened closed after sendTimeout, a normal h2 client unaffected', { timeout: STRESS ? 120_000 : 60_000 }, async (t) => {
  const SESSIONS = STRESS ? 200 : 40
  const STREAMS = 2
  const SIZE = 16 * MiB
  const sendTimeoutMs = STRESS ? 10_000 : 3_000
  const holdMs = STRESS ? 20_000 : 6_000
  const echo = await httpEcho()
  echo.blob(SIZE)
  const { t: term } = await serveConfig({
    listen: ['127.0.0.1:0'],
    http2: { sendTimeout: `${sendTimeoutMs}ms` },
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.chainPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  })
  try {
    const normal = async (): Promise<number> => {
      const started = Date.now()
      const s = await h2Connect(term.port, f.ca)
      const o = await h2Get(s, term.port, `/bytes/${MiB}`)
      s.destroy()
      assert.ok(o.kind === 'ok' && o.answer.status === 200 && sha256(o.answer.body) === sha256(echo.blob(MiB)), 'a normal client gets 1 MiB byte-exact')
      return Date.now() - started
    }
    for (let i = 0; i < 5; i++) await normal()
    await settle(500)
    const baseline = rssOf(term.pid) ?? 0

    interface Slow { kind: 'closed-window' | 'slow-reader', session: http2.ClientHttp2Session, openedAt: number, received: Buffer[], closedAfterMs?: number, goawayCode?: number }
    const slow: Slow[] = []
    for (let i = 0; i < SESSIONS; i++) {
      const kind = i % 2 === 0 ? 'closed-window' : 'slow-reader'
      const session = await h2Connect(term.port, f.ca, kind === 'closed-window' ? { settings: { initialWindowSize: 0 } } : {})
      const x: Slow = { kind, session, openedAt: Date.now(), received: [] }
      session.on('goaway', (code) => { x.goawayCode = code })
      session.on('close', () => { x.closedAfterMs = Date.now() - x.openedAt })
      for (let j = 0; j < STREAMS; j++) {
        const req = session.request({ ':path': `/bytes/${SIZE}`, ':authority': `localhost:${term.port}` }, { endStream: true })
        req.on('error', () => {})
        req.on('data', (d: Buffer) => x.received.push(d))
        if (kind === 'slow-reader') {
          // Reads for one turn of the loop every 250 ms: node:http2 reopens the window only as the stream is read.
          req.pause()
          const tick = setInterval(() => {
            req.resume()
            setImmediate(() => req.pause())
          }, 250)
          req.on('close', () => clearInterval(tick))
        }
      }
      slow.push(x)
    }
    // Sample RSS and serve a normal client every 500 ms for holdMs.
    let peak = baseline
    const latencies: number[] = []
    const end = Date.now() + holdMs
    while (Date.now() < end) {
      latencies.push(await normal())
      for (let k = 0; k < 10; k++) {
        await settle(50)
        peak = Math.max(peak, rssOf(term.pid) ?? 0)
      }
    }
    const streams = SESSIONS * STREAMS
    const bound = baseline + 2 * MiB * streams + 48 * MiB
    const closedWindow = slow.filter((x) => x.kind === 'closed-window')
    const readers = slow.filter((x) => x.kind === 'slow-reader')
    const bytes = (x: Slow): number => x.received.reduce((n, b) => n + b.length, 0)
    const readerBytes = readers.map(bytes)
    const readersOpen = readers.filter((x) => x.closedAfterMs === undefined).length
    for (const x of slow) x.session.destroy()
    await settle(500)
    const after = rssOf(term.pid) ?? 0
    const closedAt = closedWindow.map((x) => x.closedAfterMs ?? -1).sort((a, b) => a - b)
    t.diagnostic(`${SESSIONS} slow h2 sessions × ${STREAMS} streams of ${mib(SIZE)} for ${holdMs} ms (sendTimeout ${sendTimeoutMs} ms): never-opened closed after ${closedAt[0]}–${closedAt[closedAt.length - 1]} ms with GOAWAY ${[...new Set(closedWindow.map((x) => x.goawayCode ?? 'none'))].join(',')}, ${closedWindow.map(bytes).reduce((a, b) => a + b, 0)} bytes to them; slow readers still open ${readersOpen}/${readers.length}, read ${mib(Math.min(...readerBytes))}–${mib(Math.max(...readerBytes))} each; terminator RSS ${mib(baseline)} → peak ${mib(peak)} (bound ${mib(bound)}) → ${mib(after)} after; normal client ${Math.min(...latencies)}–${Math.max(...latencies)} ms`)
    assert.deepEqual(closedWindow.map(bytes).filter((n) => n > 0), [], 'no DATA byte to a client that never opened a window')
    assert.ok(closedAt[0] >= sendTimeoutMs - 100 && closedAt[closedAt.length - 1] <= sendTimeoutMs + 3000, `never-opened sessions closed after ${closedAt[0]}–${closedAt[closedAt.length - 1]} ms, sendTimeout ${sendTimeoutMs}`)
    // Their sockets take bytes, so the abuse close reaches them: GOAWAY ENHANCE_YOUR_CALM (0xb).
    assert.deepEqual([...new Set(closedWindow.map((x) => x.goawayCode))], [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM], 'never-opened sessions get GOAWAY ENHANCE_YOUR_CALM')
    assert.equal(readersOpen, readers.length, 'slow readers that keep taking data are not closed')
    assert.ok(Math.min(...readerBytes) > 0, 'every slow reader got data')
    assert.ok(peak <= bound, `terminator RSS peak ${mib(peak)} ≤ ${mib(bound)} with ${mib(SIZE * streams)} offered`)
    assert.ok(Math.max(...latencies) < 2000, `normal client latencies ${latencies.join('/')} ms`)
    recordFigures('slow-clients-h2', {
      sessions: SESSIONS,
      streamsPerSession: STREAMS,
      offeredBytesPerStream: SIZE,
      sendTimeoutMs,
      holdMs,
      neverOpened: { sessions: closedWindow.length, closedAfterMs: { min: closedAt[0], max: closedAt[closedAt.length - 1] }, goawayCode: closedWindow[0]?.goawayCode, bytesSent: closedWindow.map(bytes).reduce((a, b) => a + b, 0) },
      slowReaders: { sessions: readers.length, stillOpen: readersOpen, bytesEach: { min: Math.min(...readerBytes), max: Math.max(...readerBytes) } },
      rss: { baseline, peak, bound, after },
      normalClientLatencyMs: latencies,
    })
  } finally {
    await stopClean(term)
    await echo.close()
  }
})
