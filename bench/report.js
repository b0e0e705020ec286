'use strict'
// Turns the samples of a run into figures (median [min-max] per stack,
// paired ratio, limit, target) and writes them as JSON and Markdown to
// bench/results/, plus the summary section of bench/README.md.
const fs = require('node:fs')
const path = require('node:path')

const h2loadReport = require('./h2load-report')
const resumeShare = require('./resume-share')
const storeResume = require('./store-resume')

const RESULTS_DIR = path.join(__dirname, 'results')
const README = path.join(__dirname, 'README.md')
const README_START = '<!-- results:start -->'
const README_END = '<!-- results:end -->'

function median (xs) {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

function summary (xs) {
  if (xs.length === 0) return null
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length }
}

/** Valid samples of one case and stack (no error, no failed verification). */
function validSamples (results, caseId, stack) {
  const c = results.cases[caseId]
  if (c === undefined) return []
  return c.samples.filter((s) => s.stack === stack && s.error === undefined && s.problems.length === 0)
}

function stat (results, caseId, stack, key) {
  return summary(validSamples(results, caseId, stack).map((s) => s.values[key]).filter((v) => Number.isFinite(v)))
}

/** round → value of `key` in the valid samples of one case and stack. */
function roundValues (results, caseId, stack, key) {
  return new Map(validSamples(results, caseId, stack).map((s) => [s.round, s.values[key]]).filter(([, v]) => v > 0))
}

/** rustls-node's value against another one, oriented so that > 1 means rustls-node is better. */
function oriented (rustls, other, better) {
  return better === 'higher' ? rustls / other : other / rustls
}

/**
 * Ratio oriented so that > 1 means rustls-node is better, taken per round
 * (the stacks of a round ran back to back, so drift and neighbours' load
 * hit them alike) and summarised like the figures. `peer` is the stack
 * rustls-node is compared with.
 */
function pairedRatio (results, caseId, key, better, peer = 'node', subject = 'rustls') {
  const other = roundValues(results, caseId, peer, key)
  const ratios = []
  for (const [round, r] of roundValues(results, caseId, subject, key)) {
    if (other.has(round)) ratios.push(oriented(r, other.get(round), better))
  }
  return summary(ratios)
}

/**
 * rustls-node (stack `subject`) against the best of `peers` in each round
 * (only rounds in which every peer has a valid sample, so the best is
 * never a default).
 */
function bestPeerRatio (results, caseId, key, better, peers, subject = 'rustls') {
  const values = peers.map((p) => roundValues(results, caseId, p, key))
  const ratios = []
  for (const [round, r] of roundValues(results, caseId, subject, key)) {
    if (!values.every((v) => v.has(round))) continue
    const theirs = values.map((v) => v.get(round))
    ratios.push(oriented(r, better === 'higher' ? Math.max(...theirs) : Math.min(...theirs), better))
  }
  return summary(ratios)
}

const med = (results, caseId, stack, key) => stat(results, caseId, stack, key)?.median ?? null

/** 1 / (1/a + 1/b): two costs per MB paid one after the other on one core. */
function serial (a, b) {
  return a > 0 && b > 0 ? 1 / (1 / a + 1 / b) : null
}

function sum (...xs) {
  return xs.every((x) => x !== null && Number.isFinite(x)) ? xs.reduce((a, b) => a + b, 0) : null
}

/**
 * The rows of the main table. `limit` computes the machine's bound for the
 * figure from the limit measurements of the same run (null when missing).
 */
function figureDefinitions (results) {
  const bulk = results.cases.bulk
  const mib = bulk?.params?.bytes !== undefined ? bulk.params.bytes / (1024 * 1024) : 256
  const aes = med(results, 'aes-128-gcm', 'openssl', 'aesMbPerCpuS')
  const floor = med(results, 'accept-close', 'net', 'cpuUsPerHandshake')
  const ecdsa = med(results, 'public-key', 'openssl', 'ecdsaP256SignUs')
  const rsa = med(results, 'public-key', 'openssl', 'rsa2048SignUs')
  const x25519 = med(results, 'public-key', 'openssl', 'x25519Us')
  const netBulk = (key) => med(results, 'bulk', 'net', key)
  const rows = [
    { scenario: 1, id: 'bulk-cpu', caseId: 'bulk', key: 'mbPerCpuS', title: `Bulk ${mib} MiB each way, TLS 1.3 AES-128-GCM: MB per server CPU-s`, unit: 'MB/CPU-s', better: 'higher', target: { ratio: 1.1 }, limit: serial(netBulk('mbPerCpuS'), aes), limitName: 'TCP+AES ceiling' },
    { scenario: 1, id: 'bulk-up-cpu', caseId: 'bulk', key: 'upMbPerCpuS', title: 'Bulk upload (server decrypts): MB per server CPU-s', unit: 'MB/CPU-s', better: 'higher', limit: serial(netBulk('upMbPerCpuS'), aes), limitName: 'TCP+AES ceiling' },
    { scenario: 1, id: 'bulk-down-cpu', caseId: 'bulk', key: 'downMbPerCpuS', title: 'Bulk download (server encrypts): MB per server CPU-s', unit: 'MB/CPU-s', better: 'higher', limit: serial(netBulk('downMbPerCpuS'), aes), limitName: 'TCP+AES ceiling' },
    { scenario: 1, id: 'bulk-wall', caseId: 'bulk', key: 'mbPerS', title: 'Bulk, both directions: MB/s (wall clock)', unit: 'MB/s', better: 'higher', limit: netBulk('mbPerS'), limitName: 'plain TCP' },
  ]
  const handshakeRows = [
    ['full-tls13-ecdsa', 'Full handshake TLS 1.3, ECDSA P-256', { ratio: 2.0 }, sum(floor, ecdsa, x25519)],
    ['full-tls13-rsa', 'Full handshake TLS 1.3, RSA-2048', { ratio: 1.3 }, sum(floor, rsa, x25519)],
    ['full-tls12-ecdsa', 'Full handshake TLS 1.2, ECDSA P-256', undefined, sum(floor, ecdsa, x25519)],
    ['resume-tls12-session-id', 'Resumed TLS 1.2 (session id)', { ratio: 2.0 }, floor],
    ['resume-tls13-ticket', 'Resumed TLS 1.3 (stateless ticket)', { ratio: 2.0 }, sum(floor, x25519)],
    ['resume-tls13-default', 'Resumed TLS 1.3 (each server\'s default store)', undefined, sum(floor, x25519)],
  ]
  for (const [caseId, title, target, limit] of handshakeRows) {
    rows.push({ scenario: caseId.startsWith('full') ? 2 : 3, id: `${caseId}-cpu`, caseId, key: 'cpuUsPerHandshake', title: `${title}: server CPU-µs per handshake`, unit: 'µs', better: 'lower', target, limit, limitName: caseId.startsWith('full') ? 'floor + sign + X25519' : caseId.includes('tls12') ? 'accept+close floor' : 'floor + X25519' })
    rows.push({ scenario: caseId.startsWith('full') ? 2 : 3, id: `${caseId}-rate`, caseId, key: 'handshakesPerS', title: `${title}: handshakes/s (wall clock, client-bound)`, unit: '/s', better: 'higher' })
  }
  for (const caseId of Object.keys(results.cases).filter((id) => id.startsWith('idle-'))) {
    const n = Number(caseId.slice(5))
    rows.push({ scenario: 4, id: `${caseId}-rss`, caseId, key: 'rssKiBPerConn', title: `Idle memory at ${n.toLocaleString('en-US')} connections: server RSS KiB per connection`, unit: 'KiB', better: 'lower', target: { ratio: 2.5, text: '≤ 0.4× node:tls' }, limit: med(results, caseId, 'net', 'rssKiBPerConn'), limitName: 'plain TCP connection' })
  }
  rows.push(
    { scenario: 5, id: 'terminator-keepalive-cpu', caseId: 'terminator', key: 'keepAliveReqPerCpuS', title: 'Terminator, keep-alive: requests per server CPU-s', unit: 'req/CPU-s', better: 'higher', target: { ratio: 1.5 }, limit: med(results, 'terminator', 'plain', 'keepAliveReqPerCpuS'), limitName: 'same proxy, no TLS' },
    { scenario: 5, id: 'terminator-close-cpu', caseId: 'terminator', key: 'perConnectionReqPerCpuS', title: 'Terminator, one request per connection: requests per server CPU-s', unit: 'req/CPU-s', better: 'higher', target: { ratio: 1.5 }, limit: med(results, 'terminator', 'plain', 'perConnectionReqPerCpuS'), limitName: 'same proxy, no TLS' },
    { scenario: 5, id: 'terminator-keepalive-rate', caseId: 'terminator', key: 'keepAliveReqPerS', title: 'Terminator, keep-alive: requests/s (wall clock)', unit: 'req/s', better: 'higher', limit: med(results, 'terminator', 'plain', 'keepAliveReqPerS'), limitName: 'same proxy, no TLS' },
    { scenario: 5, id: 'terminator-close-rate', caseId: 'terminator', key: 'perConnectionReqPerS', title: 'Terminator, one request per connection: requests/s (wall clock)', unit: 'req/s', better: 'higher', limit: med(results, 'terminator', 'plain', 'perConnectionReqPerS'), limitName: 'same proxy, no TLS' },
  )
  return rows.filter((r) => results.cases[r.caseId] !== undefined)
}

function computeFigures (results) {
  const figures = figureDefinitions(results).map((def) => {
    const node = stat(results, def.caseId, 'node', def.key)
    const rustls = stat(results, def.caseId, 'rustls', def.key)
    const ratio = pairedRatio(results, def.caseId, def.key, def.better)
    let pass = null
    if (def.target !== undefined && ratio !== null) pass = ratio.median >= def.target.ratio
    return { ...def, node, rustls, ratio, pass }
  })
  // Issue 5: bulk must also reach 85 % of the measured TCP+AES ceiling.
  const bulk = figures.find((f) => f.id === 'bulk-cpu')
  if (bulk !== undefined && bulk.limit !== null && bulk.rustls !== null) {
    const target = { share: 0.85, text: '≥ 85 %' }
    const share = bulk.rustls.median / bulk.limit
    const nodeShare = bulk.node === null ? null : bulk.node.median / bulk.limit
    figures.splice(figures.indexOf(bulk) + 1, 0, {
      scenario: 1, id: 'bulk-ceiling-share', caseId: 'bulk', title: 'Bulk: share of the TCP+AES ceiling (MB per server CPU-s)', unit: '%', better: 'higher',
      node: nodeShare === null ? null : { median: 100 * nodeShare, min: null, max: null, n: 1 },
      rustls: { median: 100 * share, min: null, max: null, n: 1 },
      ratio: null, limit: 100, limitName: 'ceiling', target, pass: share >= target.share,
    })
  }
  figures.push(...resumeShare.figures(results, { stat, pairedRatio }))
  return figures
}

const PEERS = ['hitch', 'haproxy', 'node']
const PEER_NAMES = { rustls: 'rustls-node', hitch: 'hitch', haproxy: 'HAProxy', node: 'node:tls' }
const HANDSHAKE_TARGETS = [{ peer: 'hitch', ratio: 1.0 }, { peer: 'node', ratio: 2.0 }]

/** The rows of the peers' table (issue 11): rustls-node's terminator against hitch, HAProxy and node:tls. */
function peerFigureDefinitions (results) {
  const bytes = results.cases['peer-bulk']?.params?.bytes
  const idle = results.cases['peer-idle']?.params?.count
  const echo = (caseId) => results.cases[caseId]?.params?.echoBytes
  const rows = [
    { id: 'peer-full-cpu', caseId: 'peer-full-tls13', key: 'handshakesPerCpuS', title: `tcp mode, full TLS 1.3 handshakes (+ ${echo('peer-full-tls13')}-byte echo): handshakes per server CPU-s`, unit: '/CPU-s', better: 'higher', targets: HANDSHAKE_TARGETS },
    { id: 'peer-resume-cpu', caseId: 'peer-resume-tls13', key: 'handshakesPerCpuS', title: `tcp mode, resumed TLS 1.3 handshakes (tickets, + ${echo('peer-resume-tls13')}-byte echo): handshakes per server CPU-s`, unit: '/CPU-s', better: 'higher', targets: HANDSHAKE_TARGETS },
    { id: 'peer-bulk-cpu', caseId: 'peer-bulk', key: 'mbPerCpuS', title: `tcp mode bulk, ${bytes === undefined ? 256 : bytes / 2 ** 20} MiB each way: MB per server CPU-s`, unit: 'MB/CPU-s', better: 'higher', targets: [{ peer: 'hitch', ratio: 1.0 }] },
    { id: 'peer-bulk-up-cpu', caseId: 'peer-bulk', key: 'upMbPerCpuS', title: 'tcp mode bulk upload (the terminator decrypts): MB per server CPU-s', unit: 'MB/CPU-s', better: 'higher' },
    { id: 'peer-bulk-down-cpu', caseId: 'peer-bulk', key: 'downMbPerCpuS', title: 'tcp mode bulk download (the terminator encrypts): MB per server CPU-s', unit: 'MB/CPU-s', better: 'higher' },
    { id: 'peer-http-keepalive-cpu', caseId: 'peer-http', key: 'keepAliveReqPerCpuS', title: 'http mode, keep-alive: requests per server CPU-s', unit: 'req/CPU-s', better: 'higher', targets: [{ peer: 'node', ratio: 1.5 }] },
    { id: 'peer-http-close-cpu', caseId: 'peer-http', key: 'perConnectionReqPerCpuS', title: 'http mode, one request per connection: requests per server CPU-s', unit: 'req/CPU-s', better: 'higher' },
    { id: 'peer-idle-rss', caseId: 'peer-idle', key: 'rssKiBPerConn', title: `tcp mode, idle memory at ${(idle ?? 10000).toLocaleString('en-US')} connections (+ their backend connections): server RSS KiB per connection`, unit: 'KiB', better: 'lower', targets: [{ peer: 'node', ratio: 2.5, text: '≤ 0.4× node:tls' }] },
  ]
  return rows.filter((r) => results.cases[r.caseId] !== undefined)
}

function computePeerFigures (results) {
  return peerFigureDefinitions(results).map((def) => {
    const measured = results.cases[def.caseId].stacks
    const peers = PEERS.filter((p) => measured.includes(p))
    const values = Object.fromEntries(['rustls', ...PEERS].map((s) => [s, measured.includes(s) ? stat(results, def.caseId, s, def.key) : undefined]))
    const ratios = Object.fromEntries(peers.map((p) => [p, pairedRatio(results, def.caseId, def.key, def.better, p)]))
    const best = bestPeerRatio(results, def.caseId, def.key, def.better, peers)
    const targets = (def.targets ?? []).map((t) => ({ ...t, pass: ratios[t.peer] == null ? null : ratios[t.peer].median >= t.ratio }))
    return { ...def, values, ratios, best, targets }
  })
}

function limitRows (results) {
  const rows = []
  const add = (title, s, unit, how) => { if (s !== null) rows.push({ title, value: s, unit, how }) }
  add('AES-128-GCM, one core, 16 KiB blocks', stat(results, 'aes-128-gcm', 'openssl', 'aesMbPerCpuS'), 'MB/CPU-s', '`openssl speed -evp aes-128-gcm -bytes 16384`')
  add('ECDSA P-256 signature', stat(results, 'public-key', 'openssl', 'ecdsaP256SignUs'), 'µs', '`openssl speed ecdsap256`')
  add('RSA-2048 signature', stat(results, 'public-key', 'openssl', 'rsa2048SignUs'), 'µs', '`openssl speed rsa2048`')
  add('X25519 key agreement (derive)', stat(results, 'public-key', 'openssl', 'x25519Us'), 'µs', '`openssl speed ecdhx25519`')
  add('Plain TCP bulk, both directions (TCP ceiling)', stat(results, 'bulk', 'net', 'mbPerCpuS'), 'MB/CPU-s', 'node:net, same processes and cores as the TLS bulk run')
  add('Plain TCP bulk, upload', stat(results, 'bulk', 'net', 'upMbPerCpuS'), 'MB/CPU-s', 'node:net')
  add('Plain TCP bulk, download', stat(results, 'bulk', 'net', 'downMbPerCpuS'), 'MB/CPU-s', 'node:net')
  add('Plain TCP bulk, wall clock', stat(results, 'bulk', 'net', 'mbPerS'), 'MB/s', 'node:net')
  add('No-TLS accept + close (per-connection floor)', stat(results, 'accept-close', 'net', 'cpuUsPerHandshake'), 'µs', 'node:net server, same client loop as the handshakes')
  for (const caseId of Object.keys(results.cases).filter((id) => id.startsWith('idle-'))) {
    add(`Idle plain TCP connection at ${caseId.slice(5)}`, stat(results, caseId, 'net', 'rssKiBPerConn'), 'KiB', 'node:net server RSS growth')
  }
  add('Plain HTTP proxy, keep-alive', stat(results, 'terminator', 'plain', 'keepAliveReqPerCpuS'), 'req/CPU-s', 'node-proxy.js without TLS, wrk')
  add('Plain HTTP proxy, one request per connection', stat(results, 'terminator', 'plain', 'perConnectionReqPerCpuS'), 'req/CPU-s', 'node-proxy.js without TLS, wrk')
  return rows
}

function fmt (x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a'
  const a = Math.abs(x)
  if (a >= 1000) return Math.round(x).toLocaleString('en-US')
  if (a >= 100) return x.toFixed(0)
  if (a >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

function cell (s) {
  if (s === null) return 'n/a'
  if (s.min === null || s.n === 1) return fmt(s.median)
  return `${fmt(s.median)} [${fmt(s.min)}–${fmt(s.max)}]`
}

function ratioCell (s) {
  if (s === null) return '–'
  return s.n === 1 ? `${s.median.toFixed(2)}×` : `${s.median.toFixed(2)}× [${s.min.toFixed(2)}–${s.max.toFixed(2)}]`
}

function targetCell (f) {
  if (f.target === undefined) return '–'
  const text = f.target.text ?? `≥ ${f.target.ratio}×`
  if (f.pass === null) return `${text}: n/a`
  return `${text}: **${f.pass ? 'PASS' : 'FAIL'}**`
}

function limitCell (f) {
  if (f.limit === undefined) return '–'
  if (f.limit === null) return 'n/a'
  return `${fmt(f.limit)} (${f.limitName})`
}

function markdownTable (figures) {
  const lines = [
    '| Figure | unit | node:tls | rustls-node | ratio (> 1: rustls-node better) | limit | target |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const f of figures) {
    lines.push(`| ${f.title} | ${f.unit} | ${cell(f.node)} | ${cell(f.rustls)} | ${ratioCell(f.ratio)} | ${limitCell(f)} | ${targetCell(f)} |`)
  }
  return lines.join('\n')
}

function peerTargetCell (f) {
  if (f.targets.length === 0) return '–'
  return f.targets.map((t) => `${t.text ?? `≥ ${t.ratio.toFixed(1)}× ${PEER_NAMES[t.peer]}`}: ${t.pass === null ? 'n/a' : `**${t.pass ? 'PASS' : 'FAIL'}**`}`).join('; ')
}

/** The peers' table: a stack a case does not measure (hitch in http mode) is '–', one without valid samples 'n/a'. */
function peerTable (figures) {
  const lines = [
    '| Figure | unit | rustls-node | hitch | HAProxy | node:tls | ratio vs hitch | ratio vs HAProxy | ratio vs node:tls | ratio vs best peer | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  for (const f of figures) {
    const value = (s) => (f.values[s] === undefined ? '–' : cell(f.values[s]))
    const ratio = (p) => (f.ratios[p] === undefined ? '–' : ratioCell(f.ratios[p]))
    lines.push(`| ${f.title} | ${f.unit} | ${value('rustls')} | ${value('hitch')} | ${value('haproxy')} | ${value('node')} | ${ratio('hitch')} | ${ratio('haproxy')} | ${ratio('node')} | ${ratioCell(f.best)} | ${peerTargetCell(f)} |`)
  }
  return lines.join('\n')
}

const PEER_TABLE_INTRO = 'The rustls-node terminator (`rustls-node serve`) against hitch, HAProxy and a node:tls proxy (issue 11): server = the terminator\'s process tree, CPU from /proc; ratios > 1 mean rustls-node is better.'

/** HAProxy's version and the TLS library it runs on, from peers.js haproxyVersion(). */
function haproxyText (v, name = 'HAProxy') {
  return `${name} ${v.haproxy}${v.haproxySsl ? ` (${v.haproxySsl})` : v.haproxyOpenssl ? ` (OpenSSL ${v.haproxyOpenssl})` : ''}`
}

/** The tools and peers of the h2load scenarios, when they ran. */
function h2loadToolsText (h, haproxyNamed) {
  if (h === undefined) return ''
  return [h.h2load && `h2load ${h.h2load}`, h.nginx && `nginx ${h.nginx}`, h.haproxy && !haproxyNamed && haproxyText(h.haproxy),
    h.haproxyAwslc && haproxyText(h.haproxyAwslc, 'HAProxy+AWS-LC'), h.grpcJs && `@grpc/grpc-js ${h.grpcJs}`].filter(Boolean).map((x) => `, ${x}`).join('')
}

/** The store-resume scenario's tools (issue 21), leaving out the HAProxy builds named already. */
function storeResumeToolsText (s, named) {
  if (s === undefined) return ''
  return [s.redis && `Redis ${s.redis}`, s.haproxy && !named.haproxy && haproxyText(s.haproxy), s.haproxyAwslc && !named.haproxyAwslc && haproxyText(s.haproxyAwslc, 'HAProxy+AWS-LC'),
    s.client && `resume-client on ${s.client}`].filter(Boolean).map((x) => `, ${x}`).join('')
}

function machineLine (m) {
  const peers = (m.peers === undefined ? '' : [m.peers.hitch && `hitch ${m.peers.hitch}`, m.peers.haproxy && haproxyText(m.peers)].filter(Boolean).map((x) => `, ${x}`).join('')) +
    h2loadToolsText(m.h2load, m.peers?.haproxy !== undefined) +
    storeResumeToolsText(m.storeResume, { haproxy: m.peers?.haproxy !== undefined || m.h2load?.haproxy !== undefined, haproxyAwslc: m.h2load?.haproxyAwslc !== undefined })
  return `${m.cpuModel}, ${m.cores} cores${m.hypervisor ? ` (${m.hypervisor} guest)` : ''}, Linux ${m.kernel}, ` +
    `Node ${m.node} (OpenSSL ${m.nodeOpenssl}), ${m.rustls}, openssl CLI ${m.opensslCli}, ${m.wrk ?? 'wrk not installed'}${peers}. ` +
    `${m.source ? `Source: commit ${m.source.commit}${m.source.modifiedFiles ? ` with ${m.source.modifiedFiles} modified tracked files` : ''}. ` : ''}` +
    `Pinning: ${m.pinned ? `server on core ${m.serverCore}, client on core ${m.clientCore} (taskset)` : 'none (taskset unavailable): figures are less stable'}.`
}

function noiseLine (r) {
  const o = r.otherCpu
  return `Other processes used ${(100 * o.other).toFixed(1)} % of the machine's CPU during the run (up to ${(100 * o.maxSample).toFixed(0)} % during one sample; hypervisor steal ${(100 * o.steal).toFixed(1)} %).`
}

/**
 * The h2load tables (terminators, library) that have rows, as lines, each
 * after its introduction and, with `heading` (a Markdown prefix), a heading.
 */
function h2loadSections ({ terminator, library }, heading) {
  const helpers = { cell, ratioCell }
  const title = (text) => (heading === undefined ? [] : [`${heading}${text}`, ''])
  const out = []
  if (terminator.length > 0) out.push(...title('Terminators under h2load (issue 18)'), h2loadReport.TERMINATOR_INTRO, '', h2loadReport.terminatorTable(terminator, helpers), '')
  if (library.length > 0) out.push(...title('The library\'s HTTPS servers under h2load (issue 19)'), h2loadReport.LIBRARY_INTRO, '', h2loadReport.libraryTable(library, helpers), '')
  return out
}

function markdown (results) {
  const r = results
  const out = []
  out.push(`# rustls-node benchmarks: ${r.startedAt.slice(0, 19).replace('T', ' ')} UTC (${r.mode}${r.only ? `, only ${r.only.join(', ')}` : ''})`)
  out.push('')
  out.push(`Machine: ${machineLine(r.machine)}`)
  out.push('')
  out.push(`Rounds: ${r.rounds}, stacks alternated between rounds; cells are median [min–max] over the valid rounds; the ratio is the median of the per-round ratios, oriented so that > 1 means rustls-node is better. ` +
    `${noiseLine(r)} Run time ${Math.round(r.durationS)} s.`)
  out.push('')
  if (r.figures.length > 0) {
    out.push(markdownTable(r.figures))
    out.push('')
  }
  if (r.peerFigures.length > 0) {
    out.push('## Peers (issue 11)')
    out.push('')
    out.push(PEER_TABLE_INTRO)
    out.push('')
    out.push(peerTable(r.peerFigures))
    out.push('')
  }
  if (r.storeFigures.length > 0) out.push('## Resumption through a shared store (issue 21)', '', storeResume.INTRO, '', storeResume.table(r.storeFigures, { cell, ratioCell }), '')
  out.push(...h2loadSections(r.h2loadFigures, '## '))
  const limits = limitRows(r)
  if (limits.length > 0) {
    out.push('## Limits (same run)')
    out.push('')
    out.push('| Limit | value | unit | how |')
    out.push('|---|---|---|---|')
    for (const l of limits) out.push(`| ${l.title} | ${cell(l.value)} | ${l.unit} | ${l.how} |`)
    out.push('')
  }
  out.push('## Verification')
  out.push('')
  for (const [id, c] of Object.entries(r.cases)) {
    const bad = c.samples.filter((s) => s.error !== undefined || s.problems.length > 0)
    const valid = c.samples.length - bad.length
    out.push(`- \`${id}\` (${c.title}): ${valid} of ${c.samples.length} samples valid${c.verified ? `; ${c.verified}` : ''}.`)
    for (const s of bad) out.push(`  - round ${s.round + 1} ${s.stack}: ${s.error ?? s.problems.join('; ')}`)
    for (const s of c.samples.filter((x) => x.warnings !== undefined)) out.push(`  - round ${s.round + 1} ${s.stack} (valid, warning): ${s.warnings.join('; ')}`)
  }
  if (r.notes.length > 0) {
    out.push('')
    out.push('## Notes')
    out.push('')
    for (const n of r.notes) out.push(`- ${n}`)
  }
  out.push('')
  return out.join('\n')
}

function writeAtomic (file, text) {
  const tmp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(tmp, text)
  fs.renameSync(tmp, file)
}

/**
 * The READMEs that carry a summary of the latest full run between the
 * results markers: bench/README.md gets every figure, the project README
 * the figures that have a target.
 */
const SUMMARIES = [
  { file: README, details: 'results/latest.md', targetsOnly: false },
  { file: path.join(__dirname, '..', 'README.md'), details: 'bench/results/latest.md', targetsOnly: true },
]

function writeSummary ({ file, details, targetsOnly }, results) {
  if (!fs.existsSync(file)) return false
  const text = fs.readFileSync(file, 'utf8')
  const a = text.indexOf(README_START)
  const b = text.indexOf(README_END)
  if (a < 0 || b < a) return false
  const figures = targetsOnly ? results.figures.filter((f) => f.target) : results.figures
  const peerFigures = targetsOnly ? results.peerFigures.filter((f) => f.targets.length > 0) : results.peerFigures
  const tables = [figures.length > 0 ? markdownTable(figures) : null, peerFigures.length > 0 ? `${PEER_TABLE_INTRO}\n\n${peerTable(peerFigures)}` : null].filter(Boolean)
  const h2load = targetsOnly
    ? { terminator: results.h2loadFigures.terminator.filter((f) => f.target !== undefined), library: results.h2loadFigures.library }
    : results.h2loadFigures
  // No targets in issue 21's rows: the ratios are reported, in bench/README.md only.
  if (!targetsOnly && results.storeFigures.length > 0) tables.push(`${storeResume.INTRO}\n\n${storeResume.table(results.storeFigures, { cell, ratioCell })}`)
  const h2loadText = h2loadSections(h2load).join('\n').trim()
  if (h2loadText !== '') tables.push(h2loadText)
  const section = `${README_START}\nLatest full run (${results.startedAt.slice(0, 10)}; [details](${details})). ${machineLine(results.machine)} ` +
    `${noiseLine(results)}\n\n${tables.join('\n\n')}\n${README_END}`
  writeAtomic(file, text.slice(0, a) + section + text.slice(b + README_END.length))
  return true
}

/**
 * Writes <stem>.json/.md and a dated copy. Only a full-size run (not
 * --quick, not --only) is `latest` and goes into the READMEs; the others
 * get their own names so a smoke run never replaces the real figures.
 */
function writeResults (results) {
  results.figures = computeFigures(results)
  results.peerFigures = computePeerFigures(results)
  const helpers = { stat, pairedRatio, bestPeerRatio }
  results.h2loadFigures = { terminator: h2loadReport.terminatorFigures(results, helpers), library: h2loadReport.libraryFigures(results, helpers) }
  results.storeFigures = storeResume.figures(results, helpers)
  fs.mkdirSync(RESULTS_DIR, { recursive: true })
  const suffix = results.mode === 'quick' ? '-quick' : results.only ? '-partial' : ''
  const stamp = results.startedAt.slice(0, 19).replace(/:/g, '-')
  const md = markdown(results)
  const json = JSON.stringify(results, null, 2) + '\n'
  const written = []
  for (const stem of [`latest${suffix}`, `${stamp}${suffix}`]) {
    writeAtomic(path.join(RESULTS_DIR, `${stem}.json`), json)
    writeAtomic(path.join(RESULTS_DIR, `${stem}.md`), md)
    written.push(`${stem}.json`, `${stem}.md`)
  }
  if (suffix === '') {
    for (const r of SUMMARIES) {
      if (writeSummary(r, results)) written.push(path.relative(RESULTS_DIR, r.file))
    }
  }
  return { markdown: md, written: written.map((f) => path.join('bench/results', f)) }
}

module.exports = { summary, writeResults }
