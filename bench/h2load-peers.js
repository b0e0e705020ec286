'use strict'
// The terminator rows of issue 18, driven by an outside load generator:
// `rustls-node serve` (http mode) against Debian's HAProxy 2.6 (OpenSSL),
// HAProxy 3.x built against AWS-LC, nginx 1.22 (`listen ssl http2`) and
// the node:http2 proxy (bench/node-proxy.js), all in front of ONE backend,
// nginx answering 100 bytes over plain HTTP/1.1 (bench/nginx.js), with
// keep-alive to it wherever the peer has it. Each peer offers h2 and
// http/1.1 by ALPN, with the ECDSA P-256 certificate and the two suites of
// the other peer scenarios (bench/peers.js). hitch is not in these rows:
// it only terminates TLS in front of a tcp backend, so an http row would
// need an HTTP/2-speaking backend behind it and measure that backend's
// HTTP work as well, not hitch's.
//
// Scenarios (run.js --only): peer-h2load (h2load: HTTP/2 16 x 10 streams,
// HTTP/1.1 keep-alive, one request per new connection; bench/h2load.js)
// and peer-grpc (a @grpc/grpc-js unary call through each terminator to a
// grpc-js backend over h2c; bench/grpc.js). The figure is requests per
// second of the peer's own CPU: utime+stime of its process tree from /proc
// (child.js treeCpuMicros), peer on the server core, load generator and
// backend on the other core.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { startNode, treeCpuMicros } = require('./child')
const { measuredH2load, shapeFields, verifiedText, warmH2load, CONNECTIONS, STREAMS, SHAPES } = require('./h2load')
const { startNginxBackend } = require('./nginx')
const { commandText, haproxyVersion, peerFiles, startPeer, waitTcpReady, TLS13_SUITE } = require('./peers')
const { AES128 } = require('./scenarios')
const { ensureCommand, waitReady } = require('./terminator')

const GRPC = path.join(__dirname, 'grpc.js')
const SCENARIOS = ['peer-h2load', 'peer-grpc']
const STACKS = ['rustls', 'haproxy', 'haproxy-awslc', 'nginx', 'node']
/** Where the bench looks for HAProxy built against AWS-LC when neither --haproxy-awslc nor the variable names one. */
const DEFAULT_HAPROXY_AWSLC = path.join(os.homedir(), '.cache', 'rustls-node', 'peers', 'bin', 'haproxy-awslc')
const HAPROXY_AWSLC_ENV = 'RUSTLS_NODE_BENCH_HAPROXY_AWSLC'
/** Backend connections a keep-alive run may open: one per stream in flight, and a 1 % margin for closes. */
const BACKEND_CONNECTION_BOUND = (requests) => CONNECTIONS * STREAMS + requests / 100

/** The cases by scenario. */
function h2loadPeerCases (mode) {
  const grpcSize = shapeFields('h2', mode)
  return {
    'peer-h2load': ['h2', 'h1', 'close'].map((shape) => {
      const def = {
        id: `h2load-peer-${shape}`, kind: 'h2load-peer', stacks: STACKS, suite: TLS13_SUITE,
        title: `http mode, ${SHAPES[shape].title}, 100-byte answers from one nginx backend (h2load)`,
        ...shapeFields(shape, mode),
      }
      return { ...def, verified: `${verifiedText(def)}; the backend got every counted request; ${SHAPES[shape].perConnection ? 'every connection a full handshake in the peer\'s counters where it has them (rustls-node /metrics, HAProxy stats socket, node:http2 proxy)' : `backend connections counted (more than ${CONNECTIONS * STREAMS} + 1 % of the requests is reported as a warning: little keep-alive to the backend)`}` }
    }),
    'peer-grpc': [{
      id: 'grpc-peer-unary', kind: 'grpc-peer', stacks: STACKS, suite: TLS13_SUITE,
      title: `gRPC unary (@grpc/grpc-js client, ${CONNECTIONS} connections x ${STREAMS} calls in flight, 20-byte request, 100-byte answer) through each terminator to a grpc-js backend over h2c`,
      connections: CONNECTIONS, streams: STREAMS, warmSeconds: grpcSize.warmSeconds, runSeconds: grpcSize.runSeconds,
      verified: 'every call OK with its 100-byte answer (client view), the backend counted every call, TLSv1.3 with the forced suite, X25519 and ALPN h2 (a probe)',
    }],
  }
}

/**
 * The HAProxy+AWS-LC binary: --haproxy-awslc, else $RUSTLS_NODE_BENCH_HAPROXY_AWSLC,
 * else the default cache path. {path} when it runs and reports AWS-LC,
 * else {reason}.
 */
function findHaproxyAwslc (option) {
  const file = option ?? process.env[HAPROXY_AWSLC_ENV] ?? DEFAULT_HAPROXY_AWSLC
  const why = `no HAProxy+AWS-LC binary at ${file}; give one with --haproxy-awslc PATH or ${HAPROXY_AWSLC_ENV}; see bench/README.md`
  if (!fs.existsSync(file)) return { reason: why }
  const v = haproxyVersion(file)
  if (v.haproxySsl === null || !v.haproxySsl.startsWith('AWS-LC')) return { reason: `${file} does not run on AWS-LC (${v.haproxySsl ?? 'no TLS library reported'}); ${why}` }
  return { path: file, version: v }
}

/**
 * Whether this `rustls-node` accepts `backend.httpVersion: "2"` (issue
 * 18), asked of its own `check` command; {reason} when it does not.
 */
function rustlsGrpcSupport (ctx) {
  const file = path.join(ctx.tmpDir, 'grpc-check.yaml')
  fs.writeFileSync(file, [
    'listen: ["127.0.0.1:0"]',
    'hosts:',
    '  - serverName: localhost',
    `    certificates: [{cert: ${JSON.stringify(path.join(ctx.certDir, 'localhost-ecdsa.pem'))}, key: ${JSON.stringify(path.join(ctx.certDir, 'localhost-ecdsa.key'))}}]`,
    '    backend: {address: "127.0.0.1:9", mode: http, httpVersion: "2"}',
  ].join('\n') + '\n')
  const r = spawnSync(process.execPath, [ctx.terminatorBin, 'check', '-c', file], { encoding: 'utf8' })
  if (r.status === 0) return {}
  const problem = (r.stdout + r.stderr).split('\n').find((l) => l.includes('httpVersion'))?.trim() ?? (r.stdout + r.stderr).trim().slice(0, 200)
  return { reason: `this rustls-node has no HTTP/2 to backends (issue 18's backend.httpVersion: "2"; its check says: ${problem}), so it cannot forward gRPC` }
}

/**
 * Installs h2load and nginx when missing, finds HAProxy (Debian's) and the
 * AWS-LC build, and prepares the peers' shared files. Returns
 * {h2load: reason if missing, available: Set, unavailable: {stack: reason},
 * grpcUnavailable: {stack: reason}, notes, versions}; the report says why
 * each unavailable peer has no figure.
 */
function prepareH2loadPeers (ctx, log) {
  const notes = []
  const versions = {}
  const unavailable = {}
  const h2load = ensureCommand('h2load', 'nghttp2-client', 'h2load scenarios load generator', log)
  if (h2load.reason !== undefined) return { h2load: h2load.reason, notes, versions, available: new Set(), unavailable, grpcUnavailable: {} }
  versions.h2load = /nghttp2\/(\S+)/.exec(commandText(h2load.path, ['--version']))?.[1] ?? 'unknown'
  const nginx = ensureCommand('nginx', 'nginx-light', 'h2load scenarios backend and peer', log)
  if (nginx.reason !== undefined) return { h2load: `${nginx.reason} (nginx is the backend of every row)`, notes, versions, available: new Set(), unavailable, grpcUnavailable: {} }
  ctx.nginxBin = nginx.path
  versions.nginx = /nginx\/(\S+)/.exec(commandText(nginx.path, ['-v']))?.[1] ?? 'unknown'
  const available = new Set(['nginx', 'node'])
  if (fs.existsSync(ctx.terminatorBin)) available.add('rustls')
  else unavailable.rustls = `${ctx.terminatorBinName} is missing`
  const haproxy = ensureCommand('haproxy', 'haproxy', 'h2load scenarios peer', log)
  if (haproxy.reason === undefined) {
    ctx.haproxyBin = haproxy.path
    available.add('haproxy')
    versions.haproxy = haproxyVersion(haproxy.path)
  } else {
    unavailable.haproxy = haproxy.reason
  }
  const awslc = findHaproxyAwslc(ctx.haproxyAwslcOption)
  if (awslc.path !== undefined) {
    ctx.haproxyAwslcBin = awslc.path
    available.add('haproxy-awslc')
    versions.haproxyAwslc = awslc.version
  } else {
    unavailable['haproxy-awslc'] = awslc.reason
  }
  const grpcUnavailable = available.has('rustls') ? rustlsGrpcSupport(ctx) : {}
  peerFiles(ctx)
  versions.grpcJs = require('@grpc/grpc-js/package.json').version
  return { available, unavailable, grpcUnavailable: grpcUnavailable.reason === undefined ? {} : { rustls: grpcUnavailable.reason }, notes, versions }
}

/** Server-side handshake counters between two readings (null for a peer without them: nginx). */
function handshakeDelta (a, b) {
  if (a === null || b === null || !Number.isFinite(a.handshakes)) return null
  return { handshakes: b.handshakes - a.handshakes, resumed: b.resumed - a.resumed, failed: Number.isFinite(b.failed) ? b.failed - a.failed : undefined }
}

/** One h2load sample: a fresh nginx backend, a fresh peer, a warm-up, the measured run. */
async function measureH2loadPeer (def, stack, ctx) {
  const backend = await startNginxBackend(ctx)
  const sample = { values: {}, info: {}, problems: [] }
  let peer
  try {
    peer = await startPeer(stack, 'h2', backend.port, ctx)
    const probe = await waitReady(peer, { ...ctx, backendBody: backend.body }, false)
    sample.info.probe = probe
    if (probe.protocol !== 'TLSv1.3' || probe.cipher !== TLS13_SUITE || probe.group !== 'X25519') {
      sample.problems.push(`a default client negotiated ${probe.protocol} ${probe.cipher} ${probe.group}, expected TLSv1.3 ${TLS13_SUITE} X25519`)
    }
    const url = `https://127.0.0.1:${peer.port}/`
    await warmH2load(def, url, sample.problems)
    const counters0 = await peer.counters()
    const backend0 = await backend.counts()
    const r = await measuredH2load(def, url, () => treeCpuMicros(peer.pid), sample)
    const backend1 = await backend.counts()
    const server = handshakeDelta(counters0, await peer.counters())
    const backendRequests = backend1.requests - backend0.requests
    const backendConnections = backend1.connections - backend0.connections
    sample.info.backend = { requests: backendRequests, connections: backendConnections }
    sample.info.server = server
    if (backendRequests < r.succeeded) sample.problems.push(`the backend got ${backendRequests} requests, h2load counted ${r.succeeded}`)
    if (SHAPES[def.shape].perConnection) {
      if (server !== null) {
        if (server.handshakes !== r.total) sample.problems.push(`the peer counted ${server.handshakes} handshakes for ${r.total} connections`)
        if (server.resumed !== 0) sample.problems.push(`the peer counted ${server.resumed} resumed handshakes; every connection must pay a full one`)
        if (server.failed > 0) sample.problems.push(`the peer counted ${server.failed} failed handshakes`)
      }
    } else if (backendConnections > BACKEND_CONNECTION_BOUND(r.total)) {
      // A property of the peer, not a fault of the sample: reported beside its figure.
      sample.warnings = [`${backendConnections} backend connections for ${r.total} requests: little keep-alive to the backend`]
    }
    if (!peer.isRunning()) sample.problems.push(`the peer exited during the sample: ${peer.output().slice(-500)}`)
  } finally {
    await peer?.stop()
    await backend.stop()
  }
  return sample
}

/** One gRPC sample: a fresh grpc-js backend, a fresh peer, a fresh grpc-js client. */
async function measureGrpcPeer (def, stack, ctx) {
  const backend = await startNode(GRPC, [JSON.stringify({ role: 'backend' })], { role: 'client' })
  const sample = { values: {}, info: {}, problems: [] }
  const { values, info, problems } = sample
  let peer
  let client
  try {
    peer = await startPeer(stack, 'grpc', backend.ready.port, ctx)
    const probe = await waitTcpReady(peer, { version: '1.3', ciphers: AES128, alpn: ['h2'] }, ctx)
    info.probe = probe
    if (probe.protocol !== 'TLSv1.3' || probe.cipher !== TLS13_SUITE || probe.group !== 'X25519' || probe.alpn !== 'h2') {
      problems.push(`the probe negotiated ${probe.protocol} ${probe.cipher} ${probe.group} ALPN ${probe.alpn}, expected TLSv1.3 ${TLS13_SUITE} X25519 h2`)
    }
    client = await startNode(GRPC, [JSON.stringify({ role: 'client', port: peer.port, ca: path.join(ctx.certDir, 'ca.pem'), connections: def.connections, streams: def.streams })], { role: 'client' })
    const check = (name, r) => {
      if (r.calls === 0) problems.push(`${name}: no call completed`)
      if (r.ok !== r.calls) problems.push(`${name}: ${r.ok} of ${r.calls} calls OK, status codes ${JSON.stringify(r.codes)}`)
      if (r.badAnswers > 0) problems.push(`${name}: ${r.badAnswers} answers of the wrong size`)
    }
    check('warm-up', await client.request('run', { seconds: def.warmSeconds }, 120000))
    const before = await backend.request('counts')
    const cpu0 = treeCpuMicros(peer.pid)
    const r = await client.request('run', { seconds: def.runSeconds }, 120000)
    const cpuUs = treeCpuMicros(peer.pid) - cpu0
    const after = await backend.request('counts')
    values.reqPerCpuS = r.ok / (cpuUs / 1e6)
    values.cpuUsPerReq = cpuUs / r.ok
    values.reqPerS = r.ok / (r.wallMs / 1000)
    info.run = { ...r, cpuUs, backendCalls: after.calls - before.calls }
    check('run', r)
    if (after.calls - before.calls !== r.calls) problems.push(`the backend counted ${after.calls - before.calls} calls, the client ${r.calls}`)
    if (!peer.isRunning()) problems.push(`the peer exited during the sample: ${peer.output().slice(-500)}`)
  } finally {
    await client?.stop()
    await peer?.stop()
    await backend.stop()
  }
  return sample
}

function measureH2loadPeerCase (def, stack, ctx) {
  return def.kind === 'grpc-peer' ? measureGrpcPeer(def, stack, ctx) : measureH2loadPeer(def, stack, ctx)
}

module.exports = { findHaproxyAwslc, h2loadPeerCases, prepareH2loadPeers, measureH2loadPeerCase, SCENARIOS, STACKS, HAPROXY_AWSLC_ENV, DEFAULT_HAPROXY_AWSLC }
