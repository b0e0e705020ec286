// Issue 6, item 3: leaks. A library server in its own process
// (load-server.ts) takes SCALE.sequentialConnections connections one after
// another (handshake, 1 KiB each way, close_notify, close), then
// SCALE.idleConnections handshaken connections held open at once and
// closed, twice. Its RSS, open descriptors and live native handles are
// compared with the baseline measured after a warm-up.
//
// Bounds (stated here and in the report):
// - descriptors and native handles: back to the baseline exactly;
// - sequential: RSS grows while the process warms up (V8 heap and code
//   spaces, allocator arenas) and then stays flat. Bound: RSS at the end ≤
//   RSS at the half-way point + 16 MiB (over the last 50 000 connections of
//   the stress run, a leak of ≥ 336 bytes per connection fails), and ≤ the
//   baseline + 64 MiB overall;
// - idle: the JS heap in use after close ≤ its baseline + 8 MiB, and RSS
//   after the second round ≤ RSS after the first + 16 MiB (a leak grows
//   with every round). RSS itself does not drop back to the baseline after
//   10 000 connections: V8 keeps its grown heap committed and glibc keeps
//   freed blocks for reuse; the second round reusing them is what shows
//   that nothing leaked. The retained amount is reported.
//
// One server process holds all idle connections: socket mode costs one
// descriptor per connection, so 10 000 fit this machine's hard
// RLIMIT_NOFILE of 20 000 (CAP_SYS_RESOURCE is not granted here). A
// regression to two descriptors per connection fails the descriptor check.
import assert from 'node:assert/strict'
import type http2 from 'node:http2'
import { after, test } from 'node:test'
import tls from 'node:tls'

import { ClientContext, connect, liveHandles } from '../../lib/index'
import { fixtures } from '../helpers/certs'
import { assertNoLiveHandles, settle } from '../helpers/tls'
import { waitFor } from '../helpers/peers'
import { httpEcho } from '../terminator/backends'
import { serveConfig, stopClean } from '../terminator/harness'
import { h2Connect, h2Get } from './h2-load'
import { LoadServer, type Stats } from './load-client'
import { fdsOf, mib, MiB, recordFigures, rssOf, SCALE, STRESS } from './scale'

const f = fixtures()
const servers: LoadServer[] = []

after(() => {
  for (const s of servers) s.kill()
})

const REQUEST = Buffer.alloc(1024, 0x61)

/** One connection: handshake, 1 KiB up, 1 KiB down, close_notify both ways. */
function exchange (port: number, context: ClientContext | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = context !== undefined
      ? connect({ host: '127.0.0.1', port, servername: 'localhost', context })
      : connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca })
    let got = 0
    s.on('secureConnect', () => s.write(REQUEST))
    s.on('data', (d: Buffer) => { got += d.length })
    s.on('end', () => s.end())
    s.on('error', reject)
    s.on('close', () => resolve(got))
  })
}

function summary (s: Stats): Record<string, unknown> {
  return { rss: s.rss, heapUsed: s.heapUsed, fds: s.fds, open: s.open, liveConnections: s.live.connections }
}

test(`${SCALE.sequentialConnections} sequential connections (handshake, 1 KiB each way, close): descriptors and handles come back, RSS levels off`, { timeout: STRESS ? 600_000 : 60_000 }, async (t) => {
  const server = await LoadServer.start()
  servers.push(server)
  // Half the lanes share a ClientContext (resumed sessions after the
  // first), half build a client config per connection (full handshakes).
  const lanes = 4
  const context = new ClientContext({ ca: f.ca })
  const warmup = Math.min(300, Math.floor(SCALE.sequentialConnections / 5))
  let done = 0
  let wrong = 0
  const run = async (count: number): Promise<void> => {
    let next = 0
    await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      while (next < count) {
        next++
        const got = await exchange(server.port, lane % 2 === 0 ? context : undefined)
        if (got !== REQUEST.length) wrong++
        done++
      }
    }))
  }
  await run(warmup)
  await settle(100)
  const baseline = await server.collected()
  const started = Date.now()
  await run(Math.floor((SCALE.sequentialConnections - warmup) / 2))
  const middle = await server.collected()
  await run(SCALE.sequentialConnections - done)
  const seconds = (Date.now() - started) / 1000
  await settle(100)
  const end = await server.collected()
  const growth = end.rss - baseline.rss
  const secondHalf = end.rss - middle.rss
  const rate = (SCALE.sequentialConnections - warmup) / seconds
  recordFigures('leaks-sequential', {
    connections: SCALE.sequentialConnections,
    lanes,
    seconds,
    perSecond: rate,
    baseline: summary(baseline),
    middle: summary(middle),
    end: summary(end),
    rssGrowthBytes: growth,
    rssGrowthSecondHalfBytes: secondHalf,
    rssBounds: { secondHalfBytes: 16 * MiB, overallBytes: 64 * MiB },
    liveHandlesEnd: end.live,
  })
  t.diagnostic(`${SCALE.sequentialConnections} connections in ${seconds.toFixed(1)} s (${rate.toFixed(0)}/s, ${lanes} lanes); server RSS baseline ${mib(baseline.rss)}, middle ${mib(middle.rss)}, end ${mib(end.rss)} (growth ${mib(growth)}, second half ${mib(secondHalf)}); fds ${baseline.fds} → ${end.fds}; live connections ${end.live.connections}`)
  assert.equal(done, SCALE.sequentialConnections)
  assert.equal(wrong, 0, 'every connection got its 1 KiB answer')
  assert.equal(end.secure, SCALE.sequentialConnections)
  assert.deepEqual(end.clientErrors, {})
  assert.equal(end.open, 0)
  assert.deepEqual(end.live, baseline.live, 'native handles back to the baseline')
  assert.equal(end.live.connections, 0)
  assert.equal(end.fds, baseline.fds, 'descriptors back to the baseline')
  assert.ok(secondHalf < 16 * MiB, `server RSS grew ${mib(secondHalf)} over the second half of the connections (bound 16 MiB)`)
  assert.ok(growth < 64 * MiB, `server RSS grew ${mib(growth)} over ${SCALE.sequentialConnections} connections (bound 64 MiB)`)
  context.destroy()
  const final = await server.close()
  assert.equal(final.live.connections, 0)
  await settle()
  assertNoLiveHandles()
})

/** Opens `count` handshaken node:tls connections to `port`, `parallel` at a time. */
async function openIdle (port: number, count: number, parallel = 100): Promise<tls.TLSSocket[]> {
  const sockets: tls.TLSSocket[] = []
  let next = 0
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      next++
      sockets.push(await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca }, () => resolve(s))
        s.once('error', reject)
      }))
    }
  }))
  return sockets
}

async function closeAll (sockets: tls.TLSSocket[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
    if (s.destroyed) return resolve()
    s.once('close', () => resolve())
    s.on('error', () => {})
    // close_notify and FIN: the server closes its side in answer.
    s.end()
  })))
}

async function waitDrained (server: LoadServer): Promise<Stats> {
  for (let i = 0; i < 200; i++) {
    const s = await server.stats()
    if (s.open === 0 && s.live.connections === 0) return s
    await settle(50)
  }
  return await server.stats()
}

test(`${SCALE.idleConnections} concurrent idle connections, twice: descriptors, handles and JS heap come back, memory is reused`, { timeout: STRESS ? 600_000 : 60_000 }, async (t) => {
  const pair = [await LoadServer.start()]
  servers.push(...pair)
  const per = Math.ceil(SCALE.idleConnections / pair.length)
  // Warm-up: slabs, JIT, the allocator's first arenas.
  await closeAll((await Promise.all(pair.map((s) => openIdle(s.port, 100)))).flat())
  for (const s of pair) await waitDrained(s)
  const baseline = await Promise.all(pair.map((s) => s.collected()))
  const rounds: Array<{ peak: Stats[], after: Stats[], seconds: number }> = []
  for (let round = 0; round < 2; round++) {
    const started = Date.now()
    const sockets = (await Promise.all(pair.map((s) => openIdle(s.port, per)))).flat()
    const seconds = (Date.now() - started) / 1000
    assert.equal(sockets.length, per * pair.length)
    // The server may still be reading a client's last flight (the native
    // listener makes its Connection only then).
    const peak = await Promise.all(pair.map(async (s) => {
      let st = await s.stats()
      for (let i = 0; i < 50 && st.live.connections < per; i++) {
        await settle(20)
        st = await s.stats()
      }
      return st
    }))
    for (const p of peak) {
      assert.equal(p.open, per, 'every connection is held by the server')
      assert.equal(p.live.connections, per)
      assert.ok(p.fds >= baseline[0].fds + per && p.fds <= baseline[0].fds + per + 10, `one descriptor per connection (${p.fds})`)
    }
    await closeAll(sockets)
    for (const s of pair) await waitDrained(s)
    const after = await Promise.all(pair.map((s) => s.collected()))
    rounds.push({ peak, after, seconds })
  }
  const figures = pair.map((_, i) => {
    const base = baseline[i]
    const [r1, r2] = rounds
    const peakGrowth = Math.max(r1.peak[i].rss, r2.peak[i].rss) - base.rss
    return {
      baseline: summary(base),
      peak: [summary(r1.peak[i]), summary(r2.peak[i])],
      after: [summary(r1.after[i]), summary(r2.after[i])],
      peakGrowthBytes: peakGrowth,
      retainedBytes: r2.after[i].rss - base.rss,
      acrossRoundsBytes: r2.after[i].rss - r1.after[i].rss,
      perConnectionAtPeakBytes: Math.round(peakGrowth / per),
    }
  })
  recordFigures('leaks-idle', {
    connections: per * pair.length,
    serverProcesses: pair.length,
    openSeconds: rounds.map((r) => r.seconds),
    servers: figures,
    bounds: { acrossRoundsBytes: 16 * MiB, heapUsedAfterCloseBytes: 'baseline + 8 MiB', retained: 'reported', fdsAndHandles: 'baseline, exactly' },
  })
  for (const [i, x] of figures.entries()) {
    t.diagnostic(`server ${i}: ${per} idle connections; RSS baseline ${mib(x.baseline.rss as number)}, peak +${mib(x.peakGrowthBytes)} (${x.perConnectionAtPeakBytes} B/connection), after close +${mib(x.retainedBytes)}, round 2 vs 1 ${mib(x.acrossRoundsBytes)}; JS heap in use ${mib(x.baseline.heapUsed as number)} → ${mib(x.peak[1].heapUsed as number)} → ${mib(x.after[1].heapUsed as number)}; fds ${x.baseline.fds} → ${x.peak[1].fds} → ${x.after[1].fds}`)
  }
  for (const [i, x] of figures.entries()) {
    const after = rounds[1].after[i]
    assert.equal(after.open, 0)
    assert.deepEqual(after.live, baseline[i].live, 'native handles back to the baseline')
    assert.equal(after.fds, baseline[i].fds, 'descriptors back to the baseline')
    assert.deepEqual(after.clientErrors, {})
    assert.ok(x.acrossRoundsBytes < 16 * MiB, `server ${i}: RSS after round 2 is ${mib(x.acrossRoundsBytes)} above round 1 (bound 16 MiB)`)
    assert.ok(after.heapUsed < baseline[i].heapUsed + 8 * MiB, `server ${i}: JS heap in use after close ${mib(after.heapUsed)}, baseline ${mib(baseline[i].heapUsed)}`)
  }
  for (const s of pair) await s.close()
  await settle()
  assert.equal(liveHandles().connections, 0)
})

// Idle HTTP/2 connections (issue 18): SCALE.idleConnections node:http2
// sessions to the terminator's native h2 front, each held once both
// SETTINGS are acknowledged, no stream open (http2.idleTimeout raised to
// 10 minutes so that none is closed while the others open). Expected: the
// terminator's RSS grows by at most H2_IDLE_BOUND (32 KiB; 16.7 KiB measured
// at 10 000) per connection (plus
// 48 MiB of slack); every session still answers a request afterwards; once
// they are closed, the terminator's descriptors come back to the baseline.
const H2_IDLE_BOUND = 32 * 1024

function settled (session: http2.ClientHttp2Session): Promise<void> {
  // 'localSettings': the server acknowledged ours; the server's arrived before 'connect' resolved.
  return new Promise((resolve) => {
    if (session.pendingSettingsAck) session.once('localSettings', () => resolve())
    else resolve()
  })
}

test(`${SCALE.idleConnections} idle HTTP/2 connections to the terminator: RSS per connection bounded, every one still answers, descriptors come back`, { timeout: STRESS ? 600_000 : 60_000 }, async (t) => {
  const n = SCALE.idleConnections
  const echo = await httpEcho()
  const { t: term } = await serveConfig({
    listen: ['127.0.0.1:0'],
    http2: { idleTimeout: '10m' },
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.chainPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  })
  try {
    // Warm-up (generation, backend pool, JIT), then the baseline.
    for (let i = 0; i < 20; i++) {
      const s = await h2Connect(term.port, f.ca)
      assert.equal((await h2Get(s, term.port, '/')).kind, 'ok')
      s.close()
    }
    await settle(1000)
    const baseline = { rss: rssOf(term.pid) ?? 0, fds: fdsOf(term.pid) }
    const sessions: http2.ClientHttp2Session[] = []
    const openedAt = Date.now()
    for (let i = 0; i < n; i += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, async () => {
        const s = await h2Connect(term.port, f.ca)
        await settled(s)
        return s
      }))
      sessions.push(...batch)
    }
    const openSeconds = (Date.now() - openedAt) / 1000
    await settle(1000)
    const held = { rss: rssOf(term.pid) ?? 0, fds: fdsOf(term.pid) }
    const perConnection = Math.round((held.rss - baseline.rss) / n)
    const bound = baseline.rss + n * H2_IDLE_BOUND + 48 * MiB
    const closedWhileIdle = sessions.filter((s) => s.closed || s.destroyed).length
    // Every one answers, 200 at a time.
    const answeredAt = Date.now()
    let answered = 0
    const failures: string[] = []
    for (let i = 0; i < n; i += 200) {
      const outcomes = await Promise.all(sessions.slice(i, i + 200).map((s) => h2Get(s, term.port, '/idle')))
      for (const o of outcomes) {
        if (o.kind === 'ok' && o.answer.status === 200 && (JSON.parse(o.answer.body.toString()) as { url: string }).url === '/idle') answered++
        else if (failures.length < 5) failures.push(o.kind === 'ok' ? `status ${o.answer.status}` : o.kind)
      }
    }
    const answerSeconds = (Date.now() - answeredAt) / 1000
    for (const s of sessions) s.destroy()
    await waitFor(() => fdsOf(term.pid) <= baseline.fds, 30_000, 'the terminator\'s descriptors back to the baseline')
    await settle(1000)
    const after = { rss: rssOf(term.pid) ?? 0, fds: fdsOf(term.pid) }
    t.diagnostic(`${n} idle h2 sessions opened in ${openSeconds.toFixed(1)} s: terminator RSS ${mib(baseline.rss)} → ${mib(held.rss)} (${perConnection} B/connection, bound ${H2_IDLE_BOUND}), fds ${baseline.fds} → ${held.fds} → ${after.fds}; ${closedWhileIdle} closed while idle; ${answered}/${n} answered in ${answerSeconds.toFixed(1)} s; RSS after close ${mib(after.rss)}`)
    assert.equal(closedWhileIdle, 0, 'no idle session closed')
    // ≥ n − 1: the backend pool's one keep-alive connection may have closed meanwhile.
    assert.ok(held.fds - baseline.fds >= n - 1, `the terminator holds every connection (fds ${baseline.fds} → ${held.fds})`)
    assert.ok(held.rss <= bound, `terminator RSS ${mib(held.rss)} with ${n} idle h2 connections ≤ ${mib(bound)}`)
    assert.deepEqual(failures, [], 'every idle session still answers')
    assert.equal(answered, n)
    recordFigures('leaks-idle-h2', {
      connections: n,
      openSeconds,
      answerSeconds,
      answered,
      closedWhileIdle,
      rss: { baseline: baseline.rss, held: held.rss, after: after.rss, bound },
      perConnectionBytes: perConnection,
      perConnectionBoundBytes: H2_IDLE_BOUND,
      fds: { baseline: baseline.fds, held: held.fds, after: after.fds },
    })
  } finally {
    await stopClean(term)
    await echo.close()
  }
})
