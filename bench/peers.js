'use strict'
// The peer benchmarks of issue 11: the rustls-node terminator
// (`rustls-node serve`) against the TLS terminators an operator would
// compare it with, Debian's hitch and HAProxy, and a node:tls proxy. Every
// peer is one process tree pinned to the server core, on 127.0.0.1, with
// the same ECDSA P-256 certificate, only TLS 1.3 AES-128-GCM and TLS 1.2
// ECDHE-ECDSA-AES128-GCM enabled, and its own defaults for session caches
// and tickets. The backend (server.js as a plain TCP echo/sink/source, or
// backend.js for HTTP) and the load generator (client.js, wrk) run on the
// other core and are not counted. The main figure is CPU time of the
// peer's process tree (/proc) per unit of work.
//
// Scenarios (run.js --only): peer-handshake (full and resumed TLS 1.3
// handshakes through tcp mode), peer-bulk (256 MiB each way through tcp
// mode), peer-http (wrk through http mode; hitch has none), peer-memory
// (10,000 idle connections through tcp mode, each holding its backend
// connection).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const tls = require('node:tls')

const { startNode, startProcess, treeCpuMicros, treeRssBytes } = require('./child')
const { bulkPhases, histogramIs, transfer, AES128, ECDHE_ECDSA_AES128, HANDSHAKE_CONCURRENCY, IDLE_OPEN_CONCURRENCY, IDLE_WARM_CONNECTIONS } = require('./scenarios')
const { startNginxPeer } = require('./nginx')
const { ensureCommand, freePort, startNodeProxy, startRustlsTerminator, waitReady, wrkRuns, BACKEND, WRK_CONNECTIONS } = require('./terminator')

const SERVER = path.join(__dirname, 'server.js')
const CLIENT = path.join(__dirname, 'client.js')
const GC_HOOK = path.join(__dirname, 'gc-hook.js')
const READY_TIMEOUT_MS = 15000
/** Descriptors a peer process needs beside its connections (listeners, stdio, event loop, pipes). */
const FD_HEADROOM = 100
/** Bytes each handshake connection sends and gets back through the backend. */
const ECHO_BYTES = 64
const TLS13_SUITE = 'TLS_AES_128_GCM_SHA256'
const TLS12_SUITE = 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'
/** node:tls `ciphers`: the same two suites the other peers allow. */
const NODE_CIPHERS = `${AES128}:${ECDHE_ECDSA_AES128}`

const TCP_STACKS = ['rustls', 'hitch', 'haproxy', 'node']
const HTTP_STACKS = ['rustls', 'haproxy', 'node']
const SCENARIOS = ['peer-handshake', 'peer-bulk', 'peer-http', 'peer-memory']

/** Work per sample: full run, and --quick. */
const SIZES = {
  full: { handshakes: 2000, warmHandshakes: 200, bulkBytes: 256 * 1024 * 1024, bulkWarmBytes: 16 * 1024 * 1024, idle: 10000, warmSeconds: 1, runSeconds: 5 },
  quick: { handshakes: 300, warmHandshakes: 100, bulkBytes: 32 * 1024 * 1024, bulkWarmBytes: 4 * 1024 * 1024, idle: 2000, warmSeconds: 1, runSeconds: 2 },
}

/** The cases by scenario; `idle` is what idleLimits() allows. */
function peerCases (mode, idle = { count: SIZES[mode].idle }) {
  const s = SIZES[mode]
  const tls13 = { cert: 'localhost-ecdsa', version: '1.3', ciphers: AES128 }
  return {
    'peer-handshake': [
      { id: 'peer-full-tls13', title: `tcp mode, full TLS 1.3 handshakes (ECDSA P-256, AES-128-GCM), each with a ${ECHO_BYTES}-byte echo through the backend`, resume: false },
      { id: 'peer-resume-tls13', title: `tcp mode, resumed TLS 1.3 handshakes (each peer's tickets), each with a ${ECHO_BYTES}-byte echo through the backend`, resume: true },
    ].map((c) => ({ ...c, ...tls13, kind: 'peer-handshake', stacks: TCP_STACKS, count: s.handshakes, warm: s.warmHandshakes, echoBytes: ECHO_BYTES })),
    'peer-bulk': [{
      id: 'peer-bulk', kind: 'peer-bulk', stacks: TCP_STACKS, ...tls13,
      title: 'tcp mode bulk, one connection, TLS 1.3 AES-128-GCM: client → backend, then backend → client',
      bytes: s.bulkBytes, warmBytes: s.bulkWarmBytes,
    }],
    'peer-http': [{
      id: 'peer-http', kind: 'peer-http', stacks: HTTP_STACKS,
      title: 'http mode, HTTP/1.1 small requests (wrk), keep-alive to the backend',
      warmSeconds: s.warmSeconds, runSeconds: s.runSeconds,
    }],
    'peer-memory': [{
      id: 'peer-idle', kind: 'peer-memory', stacks: TCP_STACKS, ...tls13,
      title: `tcp mode, ${idle.count.toLocaleString('en-US')} idle connections after the handshake and one echo, each holding its backend connection`,
      count: idle.count, nofile: idle.nofile, echoBytes: ECHO_BYTES,
    }],
  }
}

/**
 * Descriptors for the idle case: a peer holds a client and a backend
 * descriptor per connection, so it runs with a raised limit (prlimit; above
 * the hard limit that needs CAP_SYS_RESOURCE). Returns {nofile, count,
 * note}: the limit the peers run with and the connections that fit in it,
 * `wanted` unless the limit cannot be raised enough.
 */
function idleLimits (wanted) {
  const need = 2 * wanted + 4096
  const raised = spawnSync('prlimit', [`--nofile=${need}:${need}`, 'true'])
  if (raised.status === 0) return { nofile: need, count: wanted }
  const limit = Number(spawnSync('sh', ['-c', raised.error === undefined ? 'ulimit -Hn' : 'ulimit -n'], { encoding: 'utf8' }).stdout.trim())
  const nofile = raised.error === undefined ? limit : undefined
  const count = Math.min(wanted, Math.floor((limit - FD_HEADROOM) / 2))
  const note = count < wanted
    ? `The peers' idle case held ${count.toLocaleString('en-US')} connections, not ${wanted.toLocaleString('en-US')}: the descriptor limit (${limit}) could not be raised to ${need} ` +
      `(${raised.error === undefined ? 'raising the hard limit needs CAP_SYS_RESOURCE' : 'no prlimit'}), and each connection through a terminator takes a client and a backend descriptor.`
    : undefined
  return { nofile, count, note }
}

/**
 * Installs hitch and HAProxy when missing (as wrk is), and prepares what
 * every sample shares: the combined PEM both read, the suites rustls-node
 * suppresses, the descriptor limit of the idle case. Returns {available
 * peers, wrk, idle, notes, versions}.
 */
function preparePeers (ctx, mode, log) {
  const notes = []
  const versions = {}
  const available = new Set(['rustls', 'node'])
  for (const [cmd, what] of [['hitch', 'tcp-mode peer'], ['haproxy', 'tcp- and http-mode peer'], ['wrk', 'http-mode load generator']]) {
    const found = ensureCommand(cmd, cmd, what, log)
    if (found.reason !== undefined) {
      notes.push(`${cmd}: ${found.reason}; ${cmd === 'wrk' ? 'the http cases were not measured' : `${cmd} was not measured`}.`)
      continue
    }
    ctx[`${cmd}Bin`] = found.path
    if (cmd !== 'wrk') available.add(cmd)
  }
  if (ctx.hitchBin) versions.hitch = /hitch (\S+)/.exec(commandText(ctx.hitchBin, ['--version']))?.[1] ?? 'unknown'
  if (ctx.haproxyBin) Object.assign(versions, haproxyVersion(ctx.haproxyBin))
  peerFiles(ctx)
  const idle = idleLimits(SIZES[mode].idle)
  if (idle.note !== undefined) notes.push(idle.note)
  return { available, wrk: ctx.wrkBin !== undefined, idle, notes, versions }
}

/**
 * What every peer sample reads, made once per run: the combined PEM hitch
 * and HAProxy read, the suites rustls-node suppresses, the CA.
 */
function peerFiles (ctx) {
  if (ctx.combinedPem !== undefined) return
  // hitch and HAProxy read the key and the certificate from one file.
  ctx.combinedPem = path.join(ctx.tmpDir, 'localhost-ecdsa-combined.pem')
  fs.writeFileSync(ctx.combinedPem, Buffer.concat([fs.readFileSync(path.join(ctx.certDir, 'localhost-ecdsa.key')), fs.readFileSync(path.join(ctx.certDir, 'localhost-ecdsa.pem'))]), { mode: 0o600 })
  // rustls-node: every supported suite but the two the others allow.
  const { supportedCiphers } = require(path.join(ctx.libDir, 'index.js'))
  ctx.rustlsSuppress = supportedCiphers().map((c) => c.ianaName).filter((n) => n !== TLS13_SUITE && n !== TLS12_SUITE)
  ctx.ca = fs.readFileSync(path.join(ctx.certDir, 'ca.pem'))
}

/**
 * From `haproxy -vv`: {haproxy: its version, haproxyOpenssl: the OpenSSL
 * version it runs on (null on another library), haproxySsl: the library
 * and version, e.g. "AWS-LC 5.12.0"}.
 */
function haproxyVersion (bin) {
  const vv = commandText(bin, ['-vv'])
  const ssl = /Running on (?:SSL library|OpenSSL) version : (\S+) (\S+)/.exec(vv)
  return {
    haproxy: /version (\S+)/.exec(vv)?.[1] ?? 'unknown',
    haproxyOpenssl: ssl?.[1] === 'OpenSSL' ? ssl[2] : null,
    haproxySsl: ssl === null ? null : `${ssl[1]} ${ssl[2]}`,
  }
}

function commandText (cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return r.error === undefined ? `${r.stdout}${r.stderr}` : ''
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0

// ---- the peers ----------------------------------------------------------

/**
 * hitch: one worker (a master process forks it; both are counted), TLS to
 * a plain TCP backend, OpenSSL's default session cache and tickets.
 */
async function startHitch (ctx, backendPort, { nofile }) {
  const port = await freePort()
  const file = path.join(ctx.tmpDir, 'hitch.conf')
  const lines = [
    `frontend = "[127.0.0.1]:${port}"`,
    `backend = "[127.0.0.1]:${backendPort}"`,
    `pem-file = "${ctx.combinedPem}"`,
    'workers = 1',
    'backlog = 4096',
    'daemon = off',
    // No OCSP fetcher process: the test certificate names no responder.
    'ocsp-dir = ""',
    'tls-protos = TLSv1.2 TLSv1.3',
    `ciphersuites = "${TLS13_SUITE}"`,
    `ciphers = "${ECDHE_ECDSA_AES128}"`,
    'log-level = 1',
  ]
  // hitch refuses to run its workers as root; they drop to nobody.
  if (isRoot()) lines.push('user = "nobody"', 'group = "nogroup"')
  fs.writeFileSync(file, lines.join('\n') + '\n')
  return { ...startProcess('server', ctx.hitchBin, [`--config=${file}`], { nofile }), port, counters: async () => null }
}

/**
 * HAProxy: one process, one thread (`nbthread 1`), `mode tcp` with `bind
 * ... ssl crt` or `mode http` with keep-alive to the backend, no logging.
 * Its counters come from the stats socket, read outside the measured
 * brackets. Modes 'h2' and 'grpc' (bench/h2load-peers.js) are `mode http`
 * offering h2 and http/1.1 by ALPN; 'grpc' speaks h2c to the backend
 * (`proto h2`). `bin`: another HAProxy binary (the AWS-LC build); `role`:
 * its core ('server' unless said); `tag`: added to its file names, when
 * several run at once; `bindOptions`: more `bind` keywords (bench/store-resume.js:
 * `no-tls-tickets`, `tls-ticket-keys <file>`).
 */
async function startHaproxy (ctx, backendPort, mode, { nofile, bin = ctx.haproxyBin, role = 'server', tag = '', bindOptions = [] } = {}) {
  const port = await freePort()
  const name = `haproxy-${mode}-${path.basename(bin)}${tag}`
  const file = path.join(ctx.tmpDir, `${name}.cfg`)
  const sock = path.join(ctx.tmpDir, `${name}.sock`)
  fs.rmSync(sock, { force: true })
  const httpMode = mode !== 'tcp'
  const lines = [
    'global',
    '  nbthread 1',
    // Its default comes from the descriptor limit; the idle case raises
    // both (two descriptors per connection, and HAProxy's own few).
    ...(nofile !== undefined ? [`  maxconn ${Math.floor((nofile - FD_HEADROOM / 2) / 2)}`] : []),
    `  stats socket ${sock}`,
    `  ssl-default-bind-ciphersuites ${TLS13_SUITE}`,
    `  ssl-default-bind-ciphers ${ECDHE_ECDSA_AES128}`,
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    'defaults',
    `  mode ${httpMode ? 'http' : 'tcp'}`,
    '  timeout connect 5s',
    '  timeout client 10m',
    '  timeout server 10m',
    'frontend fe',
    `  bind 127.0.0.1:${port} ssl crt ${ctx.combinedPem}${mode === 'h2' || mode === 'grpc' ? ' alpn h2,http/1.1' : ''} backlog 4096${bindOptions.map((o) => ` ${o}`).join('')}`,
    // The header rules of rustls-node's http mode and node-proxy.js (SPEC §5).
    ...(httpMode ? ['  http-request del-header ^(x-ssl-|x-forwarded-|forwarded$) -m reg', '  http-request set-header X-Forwarded-Proto https', '  option forwardfor'] : []),
    '  default_backend be',
    'backend be',
    // 'always': any request may take an idle backend connection, as
    // rustls-node's pool and node's keep-alive Agent do ('safe', the
    // default, opens one per client connection for its first request).
    ...(httpMode ? ['  http-reuse always'] : []),
    `  server backend 127.0.0.1:${backendPort}${mode === 'grpc' ? ' proto h2' : ''}`,
  ]
  fs.writeFileSync(file, lines.join('\n') + '\n')
  const proc = startProcess(role, bin, ['-db', '-f', file], { nofile })
  return {
    ...proc,
    port,
    async counters () {
      const f = await haproxyFrontend(sock)
      return {
        handshakes: f.ssl_sess + f.ssl_reused_sess,
        resumed: f.ssl_reused_sess,
        failed: f.ssl_failed_handshake,
        live: f.scur,
        plainIn: f.bin,
        plainOut: f.bout,
      }
    },
  }
}

/** One command on HAProxy's stats socket (non-interactive: it answers, then closes). */
function haproxyCommand (sock, command) {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock)
    let out = ''
    s.setEncoding('utf8')
    s.on('data', (d) => { out += d })
    s.once('end', () => resolve(out))
    s.once('error', reject)
    s.end(`${command}\n`)
  })
}

/** The frontend's row of `show stat` (CSV; the header line starts with '# '), numbers parsed. */
async function haproxyFrontend (sock) {
  const lines = (await haproxyCommand(sock, 'show stat')).split('\n')
  const header = lines[0].replace(/^# /, '').split(',')
  const row = lines.map((l) => l.split(',')).find((f) => f[0] === 'fe' && f[1] === 'FRONTEND')
  if (row === undefined) throw new Error(`no frontend in HAProxy's show stat: ${lines.slice(0, 3).join(' ')}`)
  return Object.fromEntries(header.map((name, i) => [name, Number(row[i])]))
}

/**
 * rustls-node: `rustls-node serve` as bench/terminator.js starts it
 * (--terminator-bin kept), one worker, stateless TLS 1.3 tickets from a
 * ticket key file (hitch, HAProxy and node:tls issue tickets by default;
 * without a file rustls-node resumes from its stateful cache), its default
 * session cache, and /metrics for the server-side counters.
 */
async function startRustlsPeer (ctx, backendPort, mode, { nofile, gcHook }) {
  const metricsPort = await freePort()
  const proc = await startRustlsTerminator(ctx, backendPort, {
    // http mode offers h2 and http/1.1 by ALPN by default (SPEC §5); 'grpc'
    // also speaks h2c to the backend (issue 18's backend.httpVersion).
    mode: mode === 'tcp' ? 'tcp' : 'http',
    backend: mode === 'grpc' ? { httpVersion: '2' } : undefined,
    top: { ticketKeys: path.join(ctx.certDir, 'ticket-keys.bin'), metrics: { listen: `127.0.0.1:${metricsPort}` } },
    host: { ciphersSuppress: ctx.rustlsSuppress },
    execArgv: gcHook ? ['--expose-gc', '-r', GC_HOOK] : [],
    ipc: gcHook,
    nofile,
  })
  return {
    ...proc,
    async counters () {
      const m = await rustlsMetrics(metricsPort)
      return {
        handshakes: m['rustls_node_handshakes_total{outcome="ok"}'] ?? 0,
        resumed: m.rustls_node_handshakes_resumed_total ?? 0,
        live: m.rustls_node_connections_open,
        tlsIn: m.rustls_node_bytes_received_total,
        tlsOut: m.rustls_node_bytes_sent_total,
      }
    },
    gc: gcHook ? () => proc.control.request('gc') : undefined,
  }
}

/** The Prometheus text of `rustls-node serve`'s /metrics as {series: value}. */
function rustlsMetrics (port) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 5000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        const out = {}
        for (const line of text.split('\n')) {
          const m = /^([^#\s][^\s]*)\s+(\S+)$/.exec(line)
          if (m !== null) out[m[1]] = Number(m[2])
        }
        resolve(out)
      })
    }).on('error', reject).on('timeout', function () { this.destroy(new Error('metrics timed out')) })
  })
}

/**
 * node:tls: node-proxy.js, in tcp mode tls.createServer + net.connect +
 * pipe, in http mode the https proxy of scenario 5, restricted to the same
 * suites; its counters come over its IPC channel.
 */
async function startNodePeer (ctx, backendPort, mode, { nofile, gcHook }) {
  const proc = await startNodeProxy(ctx, backendPort, false, { mode, ciphers: NODE_CIPHERS, execArgv: gcHook ? ['--expose-gc'] : [], nofile })
  return {
    ...proc,
    async counters () {
      const s = await proc.control.request('stats')
      return { handshakes: s.handshakes, resumed: s.resumed, live: s.live, plainIn: s.toBackend, plainOut: s.fromBackend, protocols: s.protocols, ciphers: s.ciphers }
    },
    gc: gcHook ? () => proc.control.request('gc') : undefined,
  }
}

/**
 * A peer of `stack` in `mode`: 'tcp' and 'http' (issue 11's scenarios),
 * 'h2' (http mode offering h2 and http/1.1 by ALPN) and 'grpc' (h2 to an
 * h2c backend) for bench/h2load-peers.js.
 */
function startPeer (stack, mode, backendPort, ctx, options = {}) {
  switch (stack) {
    case 'rustls': return startRustlsPeer(ctx, backendPort, mode, options)
    case 'hitch': return startHitch(ctx, backendPort, options)
    case 'haproxy': return startHaproxy(ctx, backendPort, mode, options)
    case 'haproxy-awslc': return startHaproxy(ctx, backendPort, mode, { ...options, bin: ctx.haproxyAwslcBin })
    case 'nginx': return startNginxPeer(ctx, backendPort, { grpc: mode === 'grpc', tls12Ciphers: ECDHE_ECDSA_AES128, tls13Suite: TLS13_SUITE })
    case 'node': return startNodePeer(ctx, backendPort, mode, options)
    default: throw new Error(`unknown peer ${stack}`)
  }
}

/**
 * One TLS connection with the forced version and suite (and `def.alpn`'s
 * ALPN list, if any), closed after its handshake: resolves with what it
 * negotiated once the peer closed it too
 * (the peer has then counted the handshake and closed its backend side).
 */
function tlsProbe (port, def, ca) {
  return new Promise((resolve, reject) => {
    const version = def.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3'
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: version, maxVersion: version, ciphers: def.ciphers, ALPNProtocols: def.alpn })
    let negotiated = null
    s.setTimeout(3000, () => s.destroy(new Error('probe timed out')))
    s.once('secureConnect', () => {
      negotiated = { protocol: s.getProtocol(), cipher: s.getCipher()?.standardName, group: s.getEphemeralKeyInfo()?.name, alpn: s.alpnProtocol }
      s.end()
    })
    s.on('data', () => {})
    s.once('error', reject)
    s.once('close', () => (negotiated === null ? reject(new Error('closed before the handshake')) : resolve(negotiated)))
  })
}

/** Waits until a TLS handshake with the peer completes (it serves). */
async function waitTcpReady (peer, def, ctx) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (!peer.isRunning()) throw new Error(`exited before serving: ${peer.output().trim().slice(-800) || '(no output)'}`)
    try {
      return await tlsProbe(peer.port, def, ctx.ca)
    } catch (err) {
      last = err.message
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`no TLS handshake after ${READY_TIMEOUT_MS} ms (${last}) ${peer.output().trim().slice(-800)}`)
}

// ---- the samples --------------------------------------------------------

/**
 * One tcp-mode sample: a fresh backend (server.js 'net', echo or sink,
 * client core), a fresh peer in front of it (server core) and a fresh
 * client.js (client core); `body` fills values, info and problems; all
 * three are stopped whatever happens.
 */
async function withTcpPeer (def, stack, ctx, body) {
  const nofile = def.kind === 'peer-memory' ? def.nofile : undefined
  const backend = await startNode(SERVER, [JSON.stringify({ stack: 'net', echo: def.kind !== 'peer-bulk' })], { role: 'client' })
  let peer
  let client
  const sample = { values: {}, info: {}, problems: [] }
  try {
    peer = await startPeer(stack, 'tcp', backend.ready.port, ctx, { nofile, gcHook: def.kind === 'peer-memory' })
    sample.info.probe = await waitTcpReady(peer, def, ctx)
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 })
    client = await startNode(CLIENT, [JSON.stringify({ stack: 'tls', port: peer.port, ca: path.join(ctx.certDir, 'ca.pem'), version: def.version, ciphers: def.ciphers })], { role: 'client' })
    await body({ backend, peer, client, ...sample })
    if (!peer.isRunning()) sample.problems.push(`the peer exited during the sample: ${peer.output().slice(-500)}`)
  } finally {
    await client?.stop()
    await peer?.stop()
    await backend.stop()
  }
  return sample
}

/**
 * Server-side counters between two readings (null for hitch, which exposes
 * none); `live` and node:tls' negotiation histograms as of the second.
 */
function delta (a, b) {
  if (a === null || b === null) return null
  const out = { live: b.live, protocols: b.protocols, ciphers: b.ciphers }
  for (const k of ['handshakes', 'resumed', 'failed', 'plainIn', 'plainOut', 'tlsIn', 'tlsOut']) {
    if (Number.isFinite(a[k]) && Number.isFinite(b[k])) out[k] = b[k] - a[k]
  }
  return out
}

/** The server's view of the negotiation, where the peer reports it (node:tls). */
function checkServerNegotiated (server, problems) {
  if (server?.protocols === undefined) return
  if (!histogramIs(server.protocols, 'TLSv1.3') || !histogramIs(server.ciphers, TLS13_SUITE)) {
    problems.push(`the peer negotiated ${JSON.stringify(server.protocols)} ${JSON.stringify(server.ciphers)}, expected TLSv1.3 ${TLS13_SUITE}`)
  }
}

/**
 * The checks every connection of a handshake or idle run passes: no client
 * error, its echo back, and (client view) the forced version, suite and
 * X25519; and the server's view of the negotiation where the peer reports
 * it (the node:tls proxy; `server` is what peer.counters() returned).
 */
function checkConnections (r, server, problems) {
  if (r.errors > 0) problems.push(`${r.errors} client errors: ${JSON.stringify(r.errorCodes)}`)
  if (r.echoed !== r.completed) problems.push(`${r.echoed} of ${r.completed} connections got their echo`)
  if (!histogramIs(r.protocols, 'TLSv1.3')) problems.push(`protocols ${JSON.stringify(r.protocols)}, expected TLSv1.3`)
  if (!histogramIs(r.ciphers, TLS13_SUITE)) problems.push(`suites ${JSON.stringify(r.ciphers)}, expected ${TLS13_SUITE}`)
  // A peer without X25519 would add a HelloRetryRequest or a costlier group.
  if (!histogramIs(r.groups, 'X25519')) problems.push(`key exchange groups ${JSON.stringify(r.groups)}, expected X25519`)
  checkServerNegotiated(server, problems)
}

function measurePeerHandshakes (def, stack, ctx) {
  return withTcpPeer(def, stack, ctx, async ({ backend, peer, client, problems, values, info }) => {
    const params = { count: def.count, concurrency: HANDSHAKE_CONCURRENCY, resume: def.resume, echoBytes: def.echoBytes }
    // Warm-up; for resumption it also leaves every loop a session to resume.
    await client.request('handshakes', { ...params, count: def.warm })
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 })
    const before = await peer.counters()
    await backend.request('mark')
    const cpu0 = treeCpuMicros(peer.pid)
    const r = await client.request('handshakes', params, 300000)
    // Every backend connection closed: the peer's teardown is in the bracket.
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 }).catch((err) => problems.push(err.message.split('\n')[0]))
    const cpuUs = treeCpuMicros(peer.pid) - cpu0
    const b = await backend.request('measure')
    const server = delta(before, await peer.counters())
    values.handshakesPerCpuS = r.completed / (cpuUs / 1e6)
    values.cpuUsPerHandshake = cpuUs / r.completed
    values.handshakesPerS = r.completed / (r.wallMs / 1000)
    info.client = r
    info.backend = { connections: b.handshakes, socketErrors: b.socketErrors }
    info.server = server
    info.cpuUs = cpuUs
    if (r.completed !== def.count) problems.push(`${r.completed} of ${def.count} handshakes completed`)
    checkConnections(r, server, problems)
    // The peer opened one backend connection per client connection.
    if (b.handshakes !== r.completed) problems.push(`backend accepted ${b.handshakes} connections for ${r.completed} client connections`)
    if (def.resume) {
      if (r.notResumed > 0) problems.push(`${r.notResumed} of ${r.completed} handshakes did not resume (client view)`)
    } else if (r.resumed > 0) {
      problems.push(`${r.resumed} handshakes resumed in a full-handshake run (client view)`)
    }
    if (server !== null) {
      if (server.handshakes !== r.completed) problems.push(`the peer counted ${server.handshakes} handshakes, the client ${r.completed}`)
      const resumed = def.resume ? r.completed : 0
      if (server.resumed !== resumed) problems.push(`the peer counted ${server.resumed} resumed handshakes, expected ${resumed}`)
      if (server.failed > 0) problems.push(`the peer counted ${server.failed} failed handshakes`)
      const echoed = r.completed * def.echoBytes
      if (server.plainIn !== undefined && (server.plainIn !== echoed || server.plainOut !== echoed)) problems.push(`the peer counted ${server.plainIn} bytes in and ${server.plainOut} out, expected ${echoed} each way`)
    }
  })
}

function measurePeerBulk (def, stack, ctx) {
  return withTcpPeer(def, stack, ctx, async ({ backend, peer, client, problems, values, info }) => {
    const before = await peer.counters()
    const negotiated = await client.request('connect')
    info.negotiated = negotiated
    if (negotiated?.protocol !== 'TLSv1.3' || negotiated?.cipher !== TLS13_SUITE || negotiated?.group !== 'X25519') {
      problems.push(`client negotiated ${negotiated?.protocol} ${negotiated?.cipher} ${negotiated?.group}, expected TLSv1.3 ${TLS13_SUITE} X25519`)
    }
    // Upload: client → peer (decrypts) → backend; download: backend → peer (encrypts) → client.
    const upload = transfer('upload', client, backend)
    const download = transfer('download', backend, client)
    await bulkPhases(def, upload, download, () => {
      const cpu0 = treeCpuMicros(peer.pid)
      return () => treeCpuMicros(peer.pid) - cpu0
    }, values, info)
    // Exact byte counts on both ends, then the peer's own once the connection closed.
    const each = def.warmBytes + def.bytes
    const received = await client.request('received')
    const b = await backend.request('measure')
    await client.request('disconnect')
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 }).catch((err) => problems.push(err.message.split('\n')[0]))
    const server = delta(before, await peer.counters())
    info.bytes = { each, backendIn: b.bytesIn, clientIn: received, server }
    if (b.bytesIn !== each) problems.push(`backend received ${b.bytesIn} bytes, the client sent ${each}`)
    if (received !== each) problems.push(`client received ${received} bytes, the backend sent ${each}`)
    if (server !== null) {
      if (server.handshakes !== 1) problems.push(`the peer counted ${server.handshakes} handshakes for one connection`)
      if (server.plainIn !== undefined && (server.plainIn !== each || server.plainOut !== each)) problems.push(`the peer counted ${server.plainIn} bytes in and ${server.plainOut} out, expected ${each} each way`)
      if (server.tlsIn !== undefined && (server.tlsIn < each || server.tlsOut < each)) problems.push(`the peer counted ${server.tlsIn} TLS bytes in and ${server.tlsOut} out, fewer than the ${each} bytes each way`)
    }
    checkServerNegotiated(server, problems)
  })
}

function measurePeerMemory (def, stack, ctx) {
  return withTcpPeer(def, stack, ctx, async ({ backend, peer, client, problems, values, info }) => {
    const open = { concurrency: IDLE_OPEN_CONCURRENCY, echoBytes: def.echoBytes }
    // Lazily created state (JIT, pools, caches) belongs to the baseline.
    await client.request('openIdle', { ...open, count: IDLE_WARM_CONNECTIONS })
    await client.request('closeIdle')
    await backend.request('waitLive', { count: 0, timeoutMs: 10000 })
    const before = await settledRss(peer)
    const r = await client.request('openIdle', { ...open, count: def.count }, 600000)
    await backend.request('waitLive', { count: def.count, timeoutMs: 30000 }).catch((err) => problems.push(err.message.split('\n')[0]))
    const after = await settledRss(peer)
    const server = await peer.counters()
    values.rssKiBPerConn = (after.rss - before.rss) / def.count / 1024
    info.before = before
    info.after = after
    info.open = r
    info.server = server
    if (r.held !== def.count) problems.push(`${r.held} of ${def.count} connections held`)
    checkConnections(r, server, problems)
    if (server !== null && server.live !== def.count) problems.push(`the peer reports ${server.live} open connections, expected ${def.count}`)
    if (before.gcExposed === false) problems.push('gc() not exposed: RSS includes garbage')
    await client.request('closeIdle', {}, 120000)
  })
}

/**
 * RSS of the peer's process tree once settled: for the Node peers after
 * two full collections (as server.js does for scenario 4), for hitch and
 * HAProxy (no garbage collector) after the same pause.
 */
async function settledRss (peer) {
  const gcExposed = peer.gc === undefined ? null : await peer.gc()
  await new Promise((resolve) => setTimeout(resolve, 300))
  if (peer.gc !== undefined) await peer.gc()
  return { rss: treeRssBytes(peer.pid), gcExposed }
}

async function measurePeerHttp (def, stack, ctx) {
  const backend = await startNode(BACKEND, [], { role: 'client' })
  const sctx = { ...ctx, backend, backendBody: await backend.request('body') }
  const sample = { values: {}, info: {}, problems: [] }
  let peer
  try {
    peer = await startPeer(stack, 'http', backend.ready.port, ctx)
    // A client with OpenSSL's defaults (like wrk) must get the forced suite.
    const probe = await waitReady(peer, sctx, false)
    sample.info.probe = probe
    if (probe.protocol !== 'TLSv1.3' || probe.cipher !== TLS13_SUITE || probe.group !== 'X25519') {
      sample.problems.push(`a default client negotiated ${probe.protocol} ${probe.cipher} ${probe.group}, expected TLSv1.3 ${TLS13_SUITE} X25519`)
    }
    await wrkRuns(def, peer, `https://127.0.0.1:${peer.port}/`, sctx, sample)
    for (const name of ['keepAlive', 'perConnection']) {
      const run = sample.info[name]
      // Keep-alive to the backend: a handful of connections, not one per request.
      if (run !== undefined && run.backendConnections > WRK_CONNECTIONS + run.requests / 100) {
        sample.problems.push(`${name}: ${run.backendConnections} backend connections for ${run.requests} requests (no keep-alive to the backend)`)
      }
    }
  } finally {
    await peer?.stop()
    await backend.stop()
  }
  return sample
}

const DRIVERS = { 'peer-handshake': measurePeerHandshakes, 'peer-bulk': measurePeerBulk, 'peer-memory': measurePeerMemory, 'peer-http': measurePeerHttp }

function measurePeer (def, stack, ctx) {
  return DRIVERS[def.kind](def, stack, ctx)
}

module.exports = { commandText, haproxyVersion, peerFiles, peerCases, preparePeers, measurePeer, rustlsMetrics, startPeer, waitTcpReady, SCENARIOS, TLS12_SUITE, TLS13_SUITE, PEER_NAMES: { rustls: 'rustls-node', hitch: 'hitch', haproxy: 'HAProxy', node: 'node:tls' } }
