'use strict'
// Scenario `store-resume` (issue 21): resumed TLS 1.2 and TLS 1.3
// handshakes through `rustls-node serve` with its local state, and with the
// shared store (`store: {redis}`) where the session is made on one instance
// (A) and resumed on another (B), the reason an operator runs the store;
// beside HAProxy with its own cache or tickets, and, for TLS 1.3, two
// HAProxy instances sharing a tls-ticket-keys file (HAProxy shares no
// session cache between instances: its cache serves one instance's
// threads, and peers replicate stick tables, not TLS sessions).
//
// Every measured handshake resumes a distinct session made earlier by a
// full handshake, once: a session-id lookup in the Redis case then always
// goes to Redis (B never saw the session), and the local cases resume from
// the instance's own cache or tickets the same way. The full handshakes and
// the unmeasured warm-up come first; the measured phase is only the
// resumptions on B (the same instance for the local stacks), pinned to the
// server core; A, Redis, the echo backend and the client run on the other.
// The client is bench/resume-client.c (the system's OpenSSL, 16 threads):
// an outside TLS stack that forces the version and suite, keeps its sessions
// across processes and times every handshake for the latency percentiles.
const { spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')

const Redis = require('ioredis')

const { runPinned, startNode, startProcess, treeCpuMicros } = require('./child')
const { findHaproxyAwslc } = require('./h2load-peers')
const { haproxyVersion, peerFiles, rustlsMetrics, startPeer, waitTcpReady, TLS12_SUITE, TLS13_SUITE } = require('./peers')
const { histogramIs, AES128, ECDHE_ECDSA_AES128, HANDSHAKE_CONCURRENCY } = require('./scenarios')
const { ensureCommand, freePort, startRustlsTerminator } = require('./terminator')

const SCENARIO = 'store-resume'
const SERVER = path.join(__dirname, 'server.js')
const CLIENT_SOURCE = path.join(__dirname, 'resume-client.c')
const ECHO_BYTES = 64
const STORE_PREFIX = 'rustls-node-bench:'
const STORE_KEY_ENV = 'RUSTLS_NODE_BENCH_STORE_KEY'
/** How long the sessions A stored may take to reach Redis (its writes do not hold the handshake). */
const STORE_SETTLE_MS = 10000

/** Work per sample: resumptions measured, and unmeasured ones before them (JIT, the store client's pipeline). */
const SIZES = {
  full: { count: 2000, warm: 200 },
  quick: { count: 300, warm: 100 },
}

/**
 * The stacks: one instance with its own state, or two sharing it (A makes
 * the sessions, B resumes them and is measured).
 */
const STACKS = {
  '1.2': ['rustls', 'rustls-store', 'haproxy', 'haproxy-awslc'],
  '1.3': ['rustls', 'rustls-store', 'haproxy', 'haproxy-awslc', 'haproxy-shared', 'haproxy-awslc-shared'],
}
const ALL_STACKS = STACKS['1.3']
const TWO_INSTANCES = new Set(['rustls-store', 'haproxy-shared', 'haproxy-awslc-shared'])
const NAMES = {
  rustls: 'rustls-node, one instance, local state',
  'rustls-store': 'rustls-node, two instances + Redis store (A→B)',
  haproxy: 'HAProxy 2.6, one instance',
  'haproxy-awslc': 'HAProxy 3.x + AWS-LC, one instance',
  'haproxy-shared': 'HAProxy 2.6, two instances, shared tls-ticket-keys (A→B)',
  'haproxy-awslc-shared': 'HAProxy 3.x + AWS-LC, two instances, shared tls-ticket-keys (A→B)',
}

function cases (mode) {
  const s = SIZES[mode]
  return [
    {
      id: 'store-resume-tls12', version: '1.2', ciphers: ECDHE_ECDSA_AES128, suite: TLS12_SUITE, noTicket: true,
      title: 'Resumed TLS 1.2 handshakes by session id (the client sends no SessionTicket extension; HAProxy also no-tls-tickets): rustls-node\'s local cache or the Redis store, HAProxy\'s session cache',
    },
    {
      id: 'store-resume-tls13', version: '1.3', ciphers: AES128, suite: TLS13_SUITE, noTicket: false,
      title: 'Resumed TLS 1.3 handshakes from stateless tickets (psk_dhe_ke, X25519): rustls-node\'s own keys or keys from the Redis store, HAProxy\'s own keys or a shared tls-ticket-keys file',
    },
  ].map((c) => ({ ...c, kind: SCENARIO, stacks: STACKS[c.version], count: s.count, warm: s.warm, concurrency: HANDSHAKE_CONCURRENCY, echoBytes: ECHO_BYTES, verified: verifiedText(c, s) }))
}

function verifiedText (c, s) {
  const version = c.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3 with X25519'
  return `${s.count} resumptions per sample after ${s.warm} unmeasured ones, each of a distinct session made before by a full handshake (on the same instance, or on instance A ` +
    `for the A→B stacks), ${HANDSHAKE_CONCURRENCY} in flight. Client (resume-client, OpenSSL): every resumption ${version} with the forced suite, resumed, its ${ECHO_BYTES}-byte ` +
    `echo back through the backend, no error${c.noTicket ? ', no session holding a ticket' : ''}; every full handshake not resumed. The measured server counted as many handshakes, all ` +
    'resumed, none failed (rustls-node /metrics, HAProxy stats socket), and so did the instance that made them (all full); the backend one connection per handshake. ' +
    (c.noTicket
      ? 'Redis store: every session in Redis (session:* keys) before the resumptions, at least one GET hit per resumption and no miss while they ran, rustls_node_store_up 1 on both instances'
      : 'Redis store: the shared ticket keys in Redis (the tickets key), rustls_node_store_up 1 on both instances; B opened tickets that A sealed')
}

// ---- setup ------------------------------------------------------------------

/**
 * Builds the C client (cc + libssl-dev, installed as the other tools are
 * when missing and allowed). {path} or {reason}.
 */
function buildClient (ctx, log) {
  const out = path.join(ctx.tmpDir, 'resume-client')
  const compile = () => spawnSync('cc', ['-O2', '-pthread', '-o', out, CLIENT_SOURCE, '-lssl', '-lcrypto'], { encoding: 'utf8' })
  let r = compile()
  if (r.status !== 0) {
    const cc = ensureCommand('cc', 'gcc', 'the store-resume client', log)
    const dev = cc.reason === undefined ? ensureCommand('libssl-dev', 'libssl-dev', 'the store-resume client', log, { file: '/usr/include/openssl/ssl.h' }) : cc
    if (dev.reason !== undefined) return { reason: `bench/resume-client.c cannot be built: ${dev.reason}` }
    r = compile()
  }
  if (r.status !== 0) return { reason: `bench/resume-client.c does not build: ${(r.error?.message ?? `${r.stdout}${r.stderr}`).trim().slice(0, 300)}` }
  return { path: out }
}

/**
 * What every sample shares: the client, redis-server, the HAProxy
 * binaries, the peers' certificate files, HAProxy's ticket key file and
 * the store's encryption key. Returns {reason} when the scenario cannot
 * run at all, else {unavailable: {stack: reason}, versions}.
 */
function prepareStoreResume (ctx, log) {
  const client = buildClient(ctx, log)
  if (client.reason !== undefined) return { reason: client.reason }
  ctx.resumeClientBin = client.path
  const versions = { client: spawnSync(client.path, ['version'], { encoding: 'utf8' }).stdout.trim() }
  const unavailable = {}
  const missing = (stacks, reason) => { for (const s of stacks) unavailable[s] ??= reason }
  if (!fs.existsSync(ctx.terminatorBin)) missing(['rustls', 'rustls-store'], `${ctx.terminatorBinName} is missing`)
  const redis = ensureCommand('redis-server', 'redis-server', 'the store of the store-resume scenario', log)
  if (redis.reason !== undefined) {
    missing(['rustls-store'], redis.reason)
  } else {
    ctx.redisBin = redis.path
    versions.redis = /v=(\S+)/.exec(spawnSync(redis.path, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown'
  }
  const haproxy = ensureCommand('haproxy', 'haproxy', 'store-resume peer', log)
  if (haproxy.reason !== undefined) {
    missing(['haproxy', 'haproxy-shared'], haproxy.reason)
  } else {
    ctx.haproxyBin = haproxy.path
    versions.haproxy = haproxyVersion(haproxy.path)
  }
  const awslc = findHaproxyAwslc(ctx.haproxyAwslcOption)
  if (awslc.path !== undefined) {
    ctx.haproxyAwslcBin = awslc.path
    versions.haproxyAwslc = awslc.version
  } else {
    missing(['haproxy-awslc', 'haproxy-awslc-shared'], awslc.reason)
  }
  peerFiles(ctx)
  // HAProxy's tls-ticket-keys: at least TLS_TICKETS_NO (3) keys, base64,
  // one a line; 80 bytes each (AES-256). Both instances read this file.
  ctx.haproxyTicketKeys = path.join(ctx.tmpDir, 'haproxy-ticket-keys')
  fs.writeFileSync(ctx.haproxyTicketKeys, [0, 1, 2].map(() => crypto.randomBytes(80).toString('base64')).join('\n') + '\n', { mode: 0o600 })
  // Every secret the store holds is sealed, as an operator should run it.
  ctx.storeKey = crypto.randomBytes(32).toString('base64')
  return { unavailable, versions }
}

// ---- the processes ----------------------------------------------------------

/** redis-server on the client core: a free loopback port, no persistence, its own folder. */
async function startRedis (ctx) {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(ctx.tmpDir, 'redis-'))
  const proc = startProcess('client', ctx.redisBin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir])
  const deadline = Date.now() + 10000
  while (!proc.output().includes('Ready to accept connections')) {
    if (!proc.isRunning() || Date.now() > deadline) {
      await proc.stop()
      throw new Error(`redis-server did not start: ${proc.output().trim().slice(-500)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    await proc.stop()
    throw new Error(`redis-server does not answer: ${err.message}`)
  }
  return {
    ...proc,
    url: `redis://127.0.0.1:${port}/0`,
    /** INFO stats and commandstats as {field: number} (cmdstat_get → calls). */
    async stats () {
      const out = {}
      for (const line of `${await client.info('stats')}\n${await client.info('commandstats')}`.split(/\r?\n/)) {
        const m = /^([a-z_]+):(.*)$/.exec(line)
        if (m === null) continue
        const calls = /^calls=(\d+)/.exec(m[2])
        out[m[1]] = calls !== null ? Number(calls[1]) : Number(m[2])
      }
      return out
    },
    async countKeys (pattern) {
      let n = 0
      let cursor = '0'
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${STORE_PREFIX}${pattern}`, 'COUNT', 1000)
        n += keys.length
        cursor = next
      } while (cursor !== '0')
      return n
    },
    async stop () {
      client.disconnect()
      await proc.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The counters of a rustls-node instance's /metrics this scenario checks. */
async function rustlsCounters (metricsPort) {
  const m = await rustlsMetrics(metricsPort)
  let failed = 0
  for (const [series, v] of Object.entries(m)) {
    if (series.startsWith('rustls_node_handshakes_total{') && !series.includes('outcome="ok"')) failed += v
  }
  return { handshakes: m['rustls_node_handshakes_total{outcome="ok"}'] ?? 0, resumed: m.rustls_node_handshakes_resumed_total ?? 0, failed, storeUp: m.rustls_node_store_up }
}

/**
 * `rustls-node serve` in tcp mode in front of the echo backend, the two
 * suites only, /metrics on; `store` adds the Redis store (sealed with
 * ctx.storeKey). No ticketKeys file: the keys are its own, or the store's.
 */
async function startRustls (ctx, backendPort, { role, name, store }) {
  const metricsPort = await freePort()
  const top = { metrics: { listen: `127.0.0.1:${metricsPort}` } }
  if (store !== undefined) top.store = { redis: store.url, prefix: STORE_PREFIX, encryptionKeyEnv: STORE_KEY_ENV }
  const proc = await startRustlsTerminator(ctx, backendPort, {
    mode: 'tcp', name, role, top, host: { ciphersSuppress: ctx.rustlsSuppress }, env: store === undefined ? undefined : { [STORE_KEY_ENV]: ctx.storeKey },
  })
  return { ...proc, counters: () => rustlsCounters(metricsPort) }
}

/**
 * The instances of `stack`, each serving (a TLS probe got through):
 * {make, resume, redis?}; make === resume for the one-instance stacks.
 * Everything started is pushed on `started` for the caller to stop.
 */
async function startStack (def, stack, ctx, backendPort, started) {
  const serving = async (peer) => {
    started.push(peer)
    await waitTcpReady(peer, def, ctx)
    return peer
  }
  if (stack === 'rustls') {
    const one = await serving(await startRustls(ctx, backendPort, { role: 'server', name: 'store-resume-local' }))
    return { make: one, resume: one }
  }
  if (stack === 'rustls-store') {
    const redis = await startRedis(ctx)
    started.push(redis)
    // A first: it writes the ticket keys B then reads.
    const make = await serving(await startRustls(ctx, backendPort, { role: 'client', name: 'store-resume-a', store: redis }))
    const resume = await serving(await startRustls(ctx, backendPort, { role: 'server', name: 'store-resume-b', store: redis }))
    return { make, resume, redis }
  }
  const base = stack.replace(/-shared$/, '')
  if (!TWO_INSTANCES.has(stack)) {
    // TLS 1.2: no tickets at all, so the session id is looked up in its cache.
    const one = await serving(await startPeer(base, 'tcp', backendPort, ctx, { tag: '-store-resume', bindOptions: def.noTicket ? ['no-tls-tickets'] : [] }))
    return { make: one, resume: one }
  }
  const keys = [`tls-ticket-keys ${ctx.haproxyTicketKeys}`]
  const make = await serving(await startPeer(base, 'tcp', backendPort, ctx, { role: 'client', tag: '-store-resume-a', bindOptions: keys }))
  const resume = await serving(await startPeer(base, 'tcp', backendPort, ctx, { role: 'server', tag: '-store-resume-b', bindOptions: keys }))
  return { make, resume }
}

/** One phase of the C client, on the client core; resolves with its JSON report. */
async function runClient (ctx, def, sessionsFile, phase, port, count, first = 0) {
  const args = [phase, '--port', String(port), '--ca', path.join(ctx.certDir, 'ca.pem'), '--cipher', def.ciphers, '--tls', def.version,
    '--concurrency', String(def.concurrency), '--echo', String(def.echoBytes), '--sessions', sessionsFile, '--count', String(count), '--first', String(first),
    ...(def.noTicket ? ['--no-ticket'] : [])]
  const { code, out } = await runPinned('client', ctx.resumeClientBin, args)
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (code !== 0 || line === undefined) throw new Error(`resume-client ${phase} exited with ${code}: ${out.trim().slice(0, 500)}`)
  return JSON.parse(line)
}

/** Counters between two readings (rustls_node_store_up is a gauge, read on its own). */
function delta (a, b) {
  return Object.fromEntries(Object.keys(b).filter((k) => k !== 'storeUp' && Number.isFinite(a[k]) && Number.isFinite(b[k])).map((k) => [k, b[k] - a[k]]))
}

// ---- the sample -------------------------------------------------------------

/** The client's view of a phase: what every connection must have negotiated, and no error. */
function checkClient (name, r, def, wanted, problems) {
  const protocol = def.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3'
  if (r.errors > 0) problems.push(`${name}: ${r.errors} client errors ${JSON.stringify(r.errorCodes)}`)
  if (r.completed !== wanted) problems.push(`${name}: ${r.completed} of ${wanted} connections completed`)
  if (r.echoed !== r.completed) problems.push(`${name}: ${r.echoed} of ${r.completed} connections got their echo`)
  if (!histogramIs(r.protocols, protocol)) problems.push(`${name}: protocols ${JSON.stringify(r.protocols)}, expected ${protocol}`)
  if (!histogramIs(r.ciphers, def.suite)) problems.push(`${name}: suites ${JSON.stringify(r.ciphers)}, expected ${def.suite}`)
  // TLS 1.3 resumption with psk_dhe_ke still agrees on a group; TLS 1.2 resumption has no key exchange.
  if (def.version === '1.3' && !histogramIs(r.groups, 'x25519')) problems.push(`${name}: groups ${JSON.stringify(r.groups)}, expected x25519`)
  if (def.noTicket && r.withTicket > 0) problems.push(`${name}: ${r.withTicket} sessions hold a TLS 1.2 ticket: not a session-id resumption`)
}

async function measureStoreResume (def, stack, ctx) {
  const sample = { values: {}, info: {}, problems: [], warnings: [] }
  const { problems, values, info } = sample
  const sessionsFile = path.join(ctx.tmpDir, `sessions-${def.id}-${stack}.bin`)
  const started = []
  try {
    const backend = await startNode(SERVER, [JSON.stringify({ stack: 'net', echo: true })], { role: 'client' })
    started.push(backend)
    const { make, resume, redis } = await startStack(def, stack, ctx, backend.ready.port, started)
    const total = def.warm + def.count

    // The sessions: full handshakes on A (the same instance for one-instance stacks).
    const made0 = await make.counters()
    const made = await runClient(ctx, def, sessionsFile, 'make', make.port, total)
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 })
    const madeServer = delta(made0, await make.counters())
    info.made = { client: made, server: madeServer }
    checkClient('full handshakes', made, def, total, problems)
    if (made.resumed > 0) problems.push(`full handshakes: ${made.resumed} resumed`)
    if (madeServer.handshakes !== total || madeServer.resumed !== 0) problems.push(`full handshakes: the instance that made them counted ${madeServer.handshakes}, ${madeServer.resumed} resumed; expected ${total}, none`)
    if (redis !== undefined && def.noTicket) {
      // A stores each session after its handshake, without holding it.
      const deadline = Date.now() + STORE_SETTLE_MS
      let stored = await redis.countKeys('session:*')
      while (stored < total && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        stored = await redis.countKeys('session:*')
      }
      info.storedSessions = stored
      if (stored < total) problems.push(`${stored} sessions in Redis after ${STORE_SETTLE_MS} ms, ${total} made on A`)
    }

    const warm = await runClient(ctx, def, sessionsFile, 'resume', resume.port, def.warm, 0)
    info.warm = warm
    // A cold instance's first lookups may miss the 50 ms bound; the measured ones may not.
    if (warm.notResumed > 0 || warm.errors > 0) sample.warnings.push(`warm-up: ${warm.notResumed} of ${def.warm} did not resume, ${warm.errors} errors ${JSON.stringify(warm.errorCodes)}`)
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 })

    const before = await resume.counters()
    const redisBefore = await redis?.stats()
    await backend.request('mark')
    const cpu0 = treeCpuMicros(resume.pid)
    const redisCpu0 = redis === undefined ? 0 : treeCpuMicros(redis.pid)
    const r = await runClient(ctx, def, sessionsFile, 'resume', resume.port, def.count, def.warm)
    // Every backend connection closed: the server's teardown is in the bracket.
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 }).catch((err) => problems.push(err.message.split('\n')[0]))
    const cpuUs = treeCpuMicros(resume.pid) - cpu0
    const redisCpuUs = redis === undefined ? 0 : treeCpuMicros(redis.pid) - redisCpu0
    const b = await backend.request('measure')
    const server = delta(before, await resume.counters())
    values.handshakesPerCpuS = r.completed / (cpuUs / 1e6)
    values.cpuUsPerHandshake = cpuUs / r.completed
    values.p50Ms = r.latencyUs.p50 / 1000
    values.p99Ms = r.latencyUs.p99 / 1000
    values.handshakesPerS = r.completed / (r.wallMs / 1000)
    if (redis !== undefined) values.redisCpuUsPerHandshake = redisCpuUs / r.completed
    Object.assign(info, { client: r, server, cpuUs, backend: { connections: b.handshakes, socketErrors: b.socketErrors } })

    checkClient('resumptions', r, def, def.count, problems)
    if (r.notResumed > 0) problems.push(`${r.notResumed} of ${r.completed + r.errors} handshakes did not resume (client view)`)
    if (b.handshakes !== r.completed) problems.push(`backend accepted ${b.handshakes} connections for ${r.completed} handshakes`)
    if (server.handshakes !== r.completed || server.resumed !== r.completed) problems.push(`the measured server counted ${server.handshakes} handshakes, ${server.resumed} resumed; the client ${r.completed}`)
    if (server.failed > 0) problems.push(`the measured server counted ${server.failed} failed handshakes`)
    if (!resume.isRunning()) problems.push(`the measured server exited: ${resume.output().slice(-500)}`)
    if (redis !== undefined) {
      const s = delta(redisBefore, await redis.stats())
      info.redis = { hits: s.keyspace_hits, misses: s.keyspace_misses, gets: s.cmdstat_get, sets: s.cmdstat_set, cpuUs: redisCpuUs, ticketKeys: await redis.countKeys('tickets') }
      const up = [(await make.counters()).storeUp, (await resume.counters()).storeUp]
      if (!up.every((u) => u === 1)) problems.push(`rustls_node_store_up on A and B: ${up.join(', ')}, expected 1`)
      if (info.redis.ticketKeys !== 1) problems.push('no shared ticket keys in Redis')
      if (def.noTicket) {
        // Every resumption was a lookup that found its session in Redis.
        if (!(s.keyspace_hits >= r.completed)) problems.push(`Redis counted ${s.keyspace_hits} key hits for ${r.completed} resumptions`)
        if (s.keyspace_misses !== 0) problems.push(`Redis counted ${s.keyspace_misses} key misses during the resumptions`)
      }
    }
  } finally {
    for (const p of started.reverse()) await p.stop()
    fs.rmSync(sessionsFile, { force: true })
  }
  return sample
}

// ---- the report -------------------------------------------------------------

const FIGURES = [
  { key: 'handshakesPerCpuS', title: 'resumed handshakes per server CPU-s', unit: '/CPU-s', better: 'higher' },
  { key: 'cpuUsPerHandshake', title: 'server CPU-µs per resumed handshake', unit: 'µs', better: 'lower' },
  { key: 'p50Ms', title: `median handshake latency (${HANDSHAKE_CONCURRENCY} in flight)`, unit: 'ms', better: 'lower' },
  { key: 'p99Ms', title: `p99 handshake latency (${HANDSHAKE_CONCURRENCY} in flight)`, unit: 'ms', better: 'lower' },
  { key: 'redisCpuUsPerHandshake', title: 'Redis server CPU-µs per resumed handshake (client core; not in the server figures)', unit: 'µs', better: 'lower', only: 'rustls-store' },
]
/** Ratios, each the median of per-round ratios oriented so that > 1 means `subject` is better. */
const COMPARISONS = [
  { subject: 'rustls-store', peer: 'rustls', title: 'Redis store (A→B) vs local' },
  { subject: 'rustls', peer: 'haproxy', title: 'rustls-node local vs HAProxy 2.6' },
  { subject: 'rustls', peer: 'haproxy-awslc', title: 'rustls-node local vs HAProxy+AWS-LC' },
  { subject: 'rustls-store', peer: 'haproxy-shared', title: 'rustls-node Redis (A→B) vs HAProxy 2.6 A→B' },
  { subject: 'rustls-store', peer: 'haproxy-awslc-shared', title: 'rustls-node Redis (A→B) vs HAProxy+AWS-LC A→B' },
]
const CASE_TITLES = { 'store-resume-tls12': 'TLS 1.2 session id', 'store-resume-tls13': 'TLS 1.3 ticket' }

function figures (results, { stat, pairedRatio }) {
  const out = []
  for (const [caseId, caseTitle] of Object.entries(CASE_TITLES)) {
    const c = results.cases[caseId]
    if (c === undefined) continue
    for (const f of FIGURES) {
      const columns = Object.fromEntries(ALL_STACKS.map((s) => {
        if (!c.stacks.includes(s) || (f.only !== undefined && f.only !== s)) {
          const reason = f.only === undefined ? c.params?.unavailable?.[s] : undefined
          return [s, { stat: null, absent: reason !== undefined ? 'not available' : '–', reason }]
        }
        return [s, { stat: stat(results, caseId, s, f.key) }]
      }))
      const ratios = Object.fromEntries(COMPARISONS.map((k, i) => [i, f.only === undefined && c.stacks.includes(k.subject) && c.stacks.includes(k.peer)
        ? pairedRatio(results, caseId, f.key, f.better, k.peer, k.subject)
        : undefined]))
      out.push({ id: `${caseId}-${f.key}`, caseId, key: f.key, title: `${caseTitle}: ${f.title}`, unit: f.unit, better: f.better, columns, ratios })
    }
  }
  return out
}

const INTRO = 'Resumed handshakes through a shared store (issue 21): `rustls-node serve` (tcp mode, one worker) with its local state, and two instances sharing ' +
  'a Redis store (`store: {redis}`, sealed with `encryptionKeyEnv`), the session made on A and resumed on B; HAProxy with its own cache or tickets, and for TLS 1.3 ' +
  'two HAProxy instances sharing a `tls-ticket-keys` file (HAProxy shares no TLS 1.2 session cache between instances). Every measured handshake resumes a distinct ' +
  'session once; server = the instance that resumes (its process tree, CPU from /proc, on the server core). Every figure, latencies included, comes from one ' +
  'client, `bench/resume-client.c` (OpenSSL, 16 threads, a 64-byte echo per connection); latency = connect() to the end of the client\'s handshake. ' +
  'Ratios are medians of per-round ratios, > 1 meaning the first named is better.'

/** The table, with the reasons for any 'not available' cell under it. */
function table (rows, { cell, ratioCell }) {
  const head = ['Figure', 'unit', ...ALL_STACKS.map((s) => NAMES[s]), ...COMPARISONS.map((k) => k.title)]
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const f of rows) {
    const values = ALL_STACKS.map((s) => (f.columns[s].absent !== undefined ? f.columns[s].absent : cell(f.columns[s].stat)))
    const ratios = COMPARISONS.map((_, i) => (f.ratios[i] === undefined ? '–' : ratioCell(f.ratios[i])))
    lines.push(`| ${f.title} | ${f.unit} | ${values.join(' | ')} | ${ratios.join(' | ')} |`)
  }
  const why = new Map()
  for (const f of rows) {
    for (const [s, col] of Object.entries(f.columns)) if (col.reason !== undefined) why.set(`${NAMES[s]}: ${col.reason}`, true)
  }
  return [lines.join('\n'), ...(why.size > 0 ? ['', ...[...why.keys()].map((w) => `- Not available: ${w}.`)] : [])].join('\n')
}

module.exports = { cases, figures, measureStoreResume, prepareStoreResume, table, INTRO, NAMES, SCENARIO, STACKS }
