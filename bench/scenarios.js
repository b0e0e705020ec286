'use strict'
// Scenarios 1-4 of issue 5 (bulk, full handshakes, resumed handshakes, idle
// memory) and the no-TLS limits that share their drivers (plain node:net
// bulk, accept+close, idle TCP connection). One measurement ("sample") is
// one fresh server process and one fresh client process, each on its own
// core; the orchestrator alternates the stacks between rounds.
const path = require('node:path')

const { startNode } = require('./child')

const SERVER = path.join(__dirname, 'server.js')
const CLIENT = path.join(__dirname, 'client.js')

const AES128 = 'TLS_AES_128_GCM_SHA256'
const ECDHE_ECDSA_AES128 = 'ECDHE-ECDSA-AES128-GCM-SHA256'
const MB = 1e6

/** Work per sample: full run, and --quick. */
const SIZES = {
  full: { bulkBytes: 256 * 1024 * 1024, bulkWarmBytes: 16 * 1024 * 1024, handshakes: 2000, warmHandshakes: 200, floorConnections: 4000, idle: [1000, 10000] },
  quick: { bulkBytes: 32 * 1024 * 1024, bulkWarmBytes: 4 * 1024 * 1024, handshakes: 300, warmHandshakes: 100, floorConnections: 1000, idle: [1000, 2000] },
}
/** Handshakes in flight: enough to keep the server busy, few enough not to queue in the backlog. */
const HANDSHAKE_CONCURRENCY = 16
const IDLE_OPEN_CONCURRENCY = 64
const IDLE_WARM_CONNECTIONS = 200
/** A bulk phase moves 256 MiB at several hundred MB/s: 30 s means it stalled. */
const TRANSFER_TIMEOUT_MS = 30000

/**
 * The measured cases, by scenario. `stacks` are the servers measured in
 * each round ('net' is the no-TLS limit run through the same process
 * layout). Every TLS case forces its version and suite from the client,
 * which is identical for both servers, and verifies them on both ends.
 */
function cases (sizes) {
  return {
    bulk: [{
      id: 'bulk', kind: 'bulk', stacks: ['node', 'rustls', 'net'],
      title: 'Bulk, one connection, TLS 1.3 AES-128-GCM, ECDSA P-256',
      cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128, bytes: sizes.bulkBytes, warmBytes: sizes.bulkWarmBytes,
    }],
    handshake: [
      { id: 'full-tls13-ecdsa', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Full handshake, TLS 1.3, ECDSA P-256', cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128, resume: false },
      { id: 'full-tls13-rsa', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Full handshake, TLS 1.3, RSA-2048', cert: 'localhost-rsa', version: '1.3', ciphers: AES128, resume: false },
      { id: 'full-tls12-ecdsa', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Full handshake, TLS 1.2, ECDSA P-256', cert: 'localhost-ecdsa', version: '1.2', ciphers: ECDHE_ECDSA_AES128, resume: false },
    ].map((c) => ({ ...c, count: sizes.handshakes, warm: sizes.warmHandshakes })),
    resume: [
      { id: 'resume-tls12-session-id', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Resumed handshake, TLS 1.2 session id', cert: 'localhost-ecdsa', version: '1.2', ciphers: ECDHE_ECDSA_AES128, resume: true, resumption: 'session-id' },
      { id: 'resume-tls13-ticket', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Resumed handshake, TLS 1.3 stateless ticket', cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128, resume: true, resumption: 'tickets' },
      { id: 'resume-tls13-default', kind: 'handshake', stacks: ['node', 'rustls'], title: 'Resumed handshake, TLS 1.3, default server settings', cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128, resume: true, resumption: 'default' },
    ].map((c) => ({ ...c, count: sizes.handshakes, warm: sizes.warmHandshakes })),
    memory: sizes.idle.map((n) => ({
      id: `idle-${n}`, kind: 'memory', stacks: ['node', 'rustls', 'net'],
      title: `Idle memory, ${n} established connections, TLS 1.3 ECDSA`,
      cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128, count: n,
    })),
    limits: [{
      id: 'accept-close', kind: 'handshake', stacks: ['net'], title: 'No-TLS accept + close (per-connection floor)',
      resume: false, count: sizes.floorConnections, warm: sizes.warmHandshakes,
    }],
  }
}

async function startPair (def, stack, ctx, serverExecArgv = []) {
  const server = await startNode(SERVER, [JSON.stringify({
    stack,
    certDir: ctx.certDir,
    libDir: ctx.libDir,
    cert: def.cert ?? 'localhost-ecdsa',
    resumption: def.resumption ?? 'default',
  })], { role: 'server', execArgv: serverExecArgv })
  let client
  try {
    client = await startNode(CLIENT, [JSON.stringify({
      stack: stack === 'net' ? 'net' : 'tls',
      port: server.ready.port,
      ca: path.join(ctx.certDir, 'ca.pem'),
      version: def.version,
      ciphers: def.ciphers,
      // Both servers issue TLS 1.2 tickets to clients that ask: a client
      // that does not ask makes the session id what resumes.
      noTicket: def.resumption === 'session-id',
    })], { role: 'client' })
  } catch (err) {
    await server.stop()
    throw err
  }
  return { server, client }
}

/** Stops both processes; rustls: native handles left after close are a leak. */
async function stopPair ({ server, client }, verification) {
  try {
    const handles = await server.request('close', {}, 30000)
    if (handles !== null) {
      const leaked = Object.entries(handles).filter(([, n]) => n !== 0)
      if (leaked.length > 0) verification.push(`native handles left after close: ${leaked.map(([k, n]) => `${k}=${n}`).join(', ')}`)
    }
  } finally {
    await Promise.all([client.stop(), server.stop()])
  }
}

function histogramIs (map, expected) {
  const keys = Object.keys(map)
  return keys.length === 1 && keys[0] === expected
}

/**
 * One sample: a fresh server/client pair of `stack`; `body` fills values,
 * info and problems, and the pair is stopped (and checked) whatever happens.
 */
async function withPair (def, stack, ctx, execArgv, body) {
  const pair = await startPair(def, stack, ctx, execArgv)
  const sample = { server: pair.server, client: pair.client, problems: [], values: {}, info: {} }
  try {
    await body(sample)
  } finally {
    await stopPair(pair, sample.problems)
  }
  return { values: sample.values, info: sample.info, problems: sample.problems }
}

/**
 * One direction of a bulk connection: returns `(bytes) => Promise` that
 * makes `sender` send `bytes` more and waits until `receiver` has them
 * all. A transfer that stalls fails the sample with how far it got on
 * both ends, instead of hanging the run. Byte targets are totals since the
 * connection opened: the sender may start before the receiver has read
 * its 'expect'.
 */
function transfer (name, sender, receiver) {
  let total = 0
  return async (bytes) => {
    total += bytes
    const timeoutMs = TRANSFER_TIMEOUT_MS
    const arrived = receiver.request('expect', { until: total, timeoutMs }, timeoutMs + 10000)
    const sent = sender.request('send', { bytes }, timeoutMs + 10000)
    try {
      await Promise.all([arrived, sent])
    } catch (err) {
      const state = await sender.request('sendState').catch(() => null)
      throw new Error(`${name}: ${err.message}; sender's writable side ${JSON.stringify(state)}`)
    }
  }
}

/**
 * A bulk connection's warm-up (JIT, socket buffers) in both directions,
 * then the measured upload and download of `def.bytes` each. `startCpu()`
 * starts a phase's CPU bracket and resolves with the function that ends it
 * (resolving with the server's CPU µs since). Fills values and info.raw.
 */
async function bulkPhases (def, upload, download, startCpu, values, info) {
  await upload(def.warmBytes)
  await download(def.warmBytes)
  const phase = async (run) => {
    const stop = await startCpu()
    const t0 = performance.now()
    await run(def.bytes)
    const wallMs = performance.now() - t0
    return { cpuUs: await stop(), wallMs }
  }
  const up = await phase(upload)
  const down = await phase(download)
  const mb = def.bytes / MB
  values.upMbPerCpuS = mb / (up.cpuUs / 1e6)
  values.downMbPerCpuS = mb / (down.cpuUs / 1e6)
  values.mbPerCpuS = 2 * mb / ((up.cpuUs + down.cpuUs) / 1e6)
  values.upMbPerS = mb / (up.wallMs / 1000)
  values.downMbPerS = mb / (down.wallMs / 1000)
  values.mbPerS = 2 * mb / ((up.wallMs + down.wallMs) / 1000)
  info.raw = { bytesEachWay: def.bytes, up, down }
}

function measureBulk (def, stack, ctx) {
  return withPair(def, stack, ctx, undefined, async ({ server, client, problems, values, info }) => {
    const clientView = await client.request('connect')
    const serverView = await server.request('connection', { timeoutMs: 10000 })
    if (stack !== 'net') {
      info.negotiated = { client: clientView, server: serverView }
      for (const [side, view] of [['client', clientView], ['server', serverView]]) {
        if (view?.protocol !== 'TLSv1.3' || view?.cipher !== def.ciphers) {
          problems.push(`${side} negotiated ${view?.protocol} ${view?.cipher}, expected TLSv1.3 ${def.ciphers}`)
        }
      }
    }
    const upload = transfer('upload', client, server)
    const download = transfer('download', server, client)
    await bulkPhases(def, upload, download, async () => {
      await server.request('mark')
      return async () => (await server.request('measure')).cpuUs
    }, values, info)
    await client.request('disconnect')
  })
}

function measureHandshakes (def, stack, ctx) {
  return withPair(def, stack, ctx, undefined, async ({ server, client, problems, values, info }) => {
    const params = { count: def.count, concurrency: def.concurrency ?? HANDSHAKE_CONCURRENCY, resume: def.resume, shared: def.shared === true }
    // Warm-up; for resumption it also leaves every loop a session to resume.
    await client.request('handshakes', { ...params, count: def.warm })
    await server.request('mark')
    const r = await client.request('handshakes', params, 300000)
    const s = await server.request('measure')
    values.cpuUsPerHandshake = s.cpuUs / r.completed
    values.handshakesPerS = r.completed / (r.wallMs / 1000)
    if (def.shared) values.resumedShare = 100 * r.resumed / r.completed
    info.client = r
    info.server = s
    if (r.errors > 0) problems.push(`${r.errors} client errors: ${JSON.stringify(r.errorCodes)}`)
    if (s.clientErrors + s.socketErrors > 0) problems.push(`server errors: ${JSON.stringify(s.errorCodes)}`)
    if (r.completed !== def.count) problems.push(`${r.completed} of ${def.count} handshakes completed`)
    if (s.handshakes !== r.completed) problems.push(`server counted ${s.handshakes} handshakes, client ${r.completed}`)
    if (stack !== 'net') {
      const version = def.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3'
      const suite = def.version === '1.2' ? 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256' : def.ciphers
      if (!histogramIs(r.protocols, version) || !histogramIs(s.protocols, version)) {
        problems.push(`protocols: client ${JSON.stringify(r.protocols)}, server ${JSON.stringify(s.protocols)}; expected ${version}`)
      }
      if (!histogramIs(r.ciphers, suite) || !histogramIs(s.ciphers, suite)) {
        problems.push(`suites: client ${JSON.stringify(r.ciphers)}, server ${JSON.stringify(s.ciphers)}; expected ${suite}`)
      }
      if (def.shared) {
        // One session for all loops: the share that resumed is the figure.
        if (s.resumed !== r.resumed) problems.push(`server counted ${s.resumed} resumed, client ${r.resumed}`)
      } else if (def.resume) {
        // Every counted handshake must really have resumed, on both ends.
        if (r.notResumed > 0) problems.push(`${r.notResumed} of ${r.completed} handshakes did not resume (client view)`)
        if (s.resumed !== s.handshakes) problems.push(`server resumed ${s.resumed} of ${s.handshakes}`)
        if (def.resumption === 'session-id' && r.tickets > 0) problems.push(`${r.tickets} connections received a TLS 1.2 ticket: not a session-id resumption`)
      } else if (r.resumed > 0 || s.resumed > 0) {
        problems.push(`handshakes resumed in a full-handshake run: client ${r.resumed}, server ${s.resumed}`)
      }
    }
  })
}

function measureIdleMemory (def, stack, ctx) {
  // --expose-gc: RSS is read after full collections, so garbage from the
  // handshakes does not count as per-connection memory.
  return withPair(def, stack, ctx, ['--expose-gc'], async ({ server, client, problems, values, info }) => {
    // Lazily created state (JIT, pools, slabs) belongs to the baseline.
    await client.request('openIdle', { count: IDLE_WARM_CONNECTIONS, concurrency: IDLE_OPEN_CONCURRENCY })
    await client.request('closeIdle')
    await server.request('waitLive', { count: 0, timeoutMs: 10000 })
    const before = await server.request('memory')
    const r = await client.request('openIdle', { count: def.count, concurrency: IDLE_OPEN_CONCURRENCY }, 300000)
    await server.request('waitLive', { count: def.count, timeoutMs: 30000 })
    const after = await server.request('memory')
    const perConn = (k) => (after[k] - before[k]) / def.count / 1024
    values.rssKiBPerConn = perConn('rss')
    info.perConnectionKiB = { rss: values.rssKiBPerConn, heapUsed: perConn('heapUsed'), external: perConn('external'), arrayBuffers: perConn('arrayBuffers') }
    info.before = before
    info.after = after
    info.open = r
    if (!before.gcExposed) problems.push('gc() not exposed: RSS includes garbage')
    if (r.errors > 0) problems.push(`${r.errors} connection errors: ${JSON.stringify(r.errorCodes)}`)
    if (r.held !== def.count) problems.push(`${r.held} of ${def.count} connections held`)
    await client.request('closeIdle', {}, 120000)
  })
}

const DRIVERS = { bulk: measureBulk, handshake: measureHandshakes, memory: measureIdleMemory }

function measure (def, stack, ctx) {
  return DRIVERS[def.kind](def, stack, ctx)
}

module.exports = { bulkPhases, cases, measure, transfer, histogramIs, SIZES, HANDSHAKE_CONCURRENCY, IDLE_OPEN_CONCURRENCY, IDLE_WARM_CONNECTIONS, AES128, ECDHE_ECDSA_AES128 }
