'use strict'
// The report's two h2load tables: the terminators (issue 18,
// bench/h2load-peers.js) and the library's HTTPS servers (issue 19,
// bench/library-h2load.js). Figures are requests per server CPU-s, cells
// median [min–max] over the valid rounds, ratios the median of per-round
// ratios, > 1 meaning rustls-node is better (report.js' helpers).

/**
 * The floor beside each one-request-per-connection figure: rustls' own
 * published cost of a TLS 1.3 server handshake with an ECDSA P-256
 * certificate, measured in memory (no sockets, no HTTP) by the rustls
 * project's benchmark reports, as quoted in issue 18. A reference from
 * another machine, not a bound on this one.
 */
const RUSTLS_HANDSHAKE_US = 147
const RUSTLS_HANDSHAKE_SOURCE = 'rustls\' published in-memory cost of a TLS 1.3 ECDSA P-256 server handshake (rustls project benchmark reports, quoted in issue 18)'

const TERMINATOR_STACKS = ['rustls', 'haproxy', 'haproxy-awslc', 'nginx', 'node']
const TERMINATOR_PEERS = TERMINATOR_STACKS.slice(1)
const TERMINATOR_NAMES = { rustls: 'rustls-node', haproxy: 'HAProxy 2.6 (OpenSSL)', 'haproxy-awslc': 'HAProxy 3.x + AWS-LC', nginx: 'nginx 1.22', node: 'node:http2 proxy' }
const LIBRARY_SUBJECTS = ['rustls', 'rustls-net']
const LIBRARY_NODE = ['node-https', 'node-http2']
const LIBRARY_NAMES = { rustls: 'createHttpsServer', 'rustls-net': 'createHttpsServer, nativeListener: false', 'node-https': 'node:https', 'node-http2': 'node:http2 (allowHTTP1)' }

/** Targets of issue 18, as ratios to the best peer of the same run. */
const TERMINATOR_ROWS = [
  { caseId: 'h2load-peer-h2', title: 'http mode, HTTP/2 (16 connections x 10 streams)', target: 1.0 },
  { caseId: 'h2load-peer-h1', title: 'http mode, HTTP/1.1 keep-alive (16 connections)', target: 1.15 },
  { caseId: 'h2load-peer-close', title: 'http mode, one request per new connection (full TLS 1.3 handshake each)', target: 1.3, floor: true },
  { caseId: 'grpc-peer-unary', title: 'gRPC unary (grpc-js client, 16 connections x 10 calls)' },
]
/** Targets of issue 19 on the default path: against the best node server, or node:http2 where only it speaks HTTP/2. */
const LIBRARY_ROWS = [
  { caseId: 'h2load-library-h1', title: 'HTTPS app, HTTP/1.1 keep-alive (16 connections)', target: 1.1 },
  { caseId: 'h2load-library-h2', title: 'HTTPS app, HTTP/2 (16 connections x 10 streams)', target: 1.1 },
  { caseId: 'h2load-library-close', title: 'HTTPS app, one request per new connection (full TLS 1.3 handshake each)', target: 2.0 },
]
const KEY = 'reqPerCpuS'
const UNIT = 'req/CPU-s'

/**
 * A stack's column: its figure, or why it has none: 'not available' (with
 * the reason), or '–' when the stack is not part of the case (node:https
 * has no HTTP/2).
 */
function column (results, c, stack, stat) {
  if (c.stacks.includes(stack)) return { stat: stat(results, c.caseId, stack, KEY) }
  const reason = c.params?.unavailable?.[stack]
  return { stat: null, absent: reason !== undefined ? 'not available' : '–', reason }
}

function terminatorFigures (results, { stat, pairedRatio, bestPeerRatio }) {
  return TERMINATOR_ROWS.filter((row) => results.cases[row.caseId] !== undefined).map((row) => {
    const c = { ...results.cases[row.caseId], caseId: row.caseId }
    const peers = TERMINATOR_PEERS.filter((p) => c.stacks.includes(p))
    const measured = c.stacks.includes('rustls')
    const ratios = Object.fromEntries(peers.map((p) => [p, measured ? pairedRatio(results, row.caseId, KEY, 'higher', p) : null]))
    const best = measured ? bestPeerRatio(results, row.caseId, KEY, 'higher', peers) : null
    return {
      ...row, id: `${row.caseId}-cpu`, key: KEY, unit: UNIT, better: 'higher',
      columns: Object.fromEntries(TERMINATOR_STACKS.map((s) => [s, column(results, c, s, stat)])),
      ratios,
      best,
      reference: row.floor ? { us: RUSTLS_HANDSHAKE_US, reqPerCpuS: 1e6 / RUSTLS_HANDSHAKE_US, source: RUSTLS_HANDSHAKE_SOURCE } : null,
      pass: row.target === undefined || best === null ? null : best.median >= row.target,
      // A verdict against fewer peers than the issue names says which were missing.
      missingPeers: TERMINATOR_PEERS.filter((p) => !c.stacks.includes(p)),
    }
  })
}

function libraryFigures (results, { stat, bestPeerRatio }) {
  return LIBRARY_ROWS.filter((row) => results.cases[row.caseId] !== undefined).map((row) => {
    const c = { ...results.cases[row.caseId], caseId: row.caseId }
    const nodes = LIBRARY_NODE.filter((p) => c.stacks.includes(p))
    const ratios = Object.fromEntries(LIBRARY_SUBJECTS.map((s) => [s, c.stacks.includes(s) ? bestPeerRatio(results, row.caseId, KEY, 'higher', nodes, s) : null]))
    return {
      ...row, id: `${row.caseId}-cpu`, key: KEY, unit: UNIT, better: 'higher',
      versus: nodes.length === 1 ? LIBRARY_NAMES[nodes[0]] : 'best node server',
      columns: Object.fromEntries([...LIBRARY_SUBJECTS, ...LIBRARY_NODE].map((s) => [s, column(results, c, s, stat)])),
      ratios,
      pass: ratios.rustls === null ? null : ratios.rustls.median >= row.target,
    }
  })
}

function valueCell (col, cell) {
  return col.absent !== undefined ? col.absent : cell(col.stat)
}

function passText (pass) {
  return pass === null ? 'n/a' : `**${pass ? 'PASS' : 'FAIL'}**`
}

function fmtInt (x) {
  return Math.round(x).toLocaleString('en-US')
}

const TERMINATOR_INTRO = 'Terminators driven by h2load (issue 18): requests per second of the terminator\'s own CPU (its process tree, /proc), ' +
  'all in front of one nginx backend answering 100 bytes; ratios > 1 mean rustls-node is better. hitch is not in these rows: it only ' +
  'terminates TLS for a tcp backend, so an http row would measure an HTTP/2 backend behind it as well.'

/** The terminators' table, with the reasons for any 'not available' cell under it. */
function terminatorTable (figures, { cell, ratioCell }) {
  const head = ['Figure', 'unit', ...TERMINATOR_STACKS.map((s) => TERMINATOR_NAMES[s]), ...TERMINATOR_PEERS.map((p) => `ratio vs ${TERMINATOR_NAMES[p]}`), 'ratio vs best peer', 'reference', 'target']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const f of figures) {
    const ratio = (p) => (f.columns[p].absent !== undefined || f.columns.rustls.absent !== undefined ? '–' : ratioCell(f.ratios[p] ?? null))
    const reference = f.reference === null ? '–' : `${fmtInt(f.reference.reqPerCpuS)} (${f.reference.us} µs per handshake, rustls in memory)`
    const without = f.missingPeers.length > 0 && f.pass !== null ? ` (without ${f.missingPeers.map((p) => TERMINATOR_NAMES[p]).join(', ')})` : ''
    const target = f.target === undefined ? 'ratio reported' : `≥ ${f.target.toFixed(2).replace(/0$/, '')}× best peer: ${passText(f.pass)}${without}`
    lines.push(`| ${f.title}: requests per server CPU-s | ${f.unit} | ${TERMINATOR_STACKS.map((s) => valueCell(f.columns[s], cell)).join(' | ')} | ` +
      `${TERMINATOR_PEERS.map(ratio).join(' | ')} | ${f.columns.rustls.absent !== undefined ? '–' : ratioCell(f.best)} | ${reference} | ${target} |`)
  }
  const why = unavailableLines(figures, TERMINATOR_NAMES)
  return [lines.join('\n'), ...(why.length > 0 ? ['', ...why] : [])].join('\n')
}

const LIBRARY_INTRO = 'The library\'s HTTPS servers driven by h2load (issue 19): a Node app answering 100 bytes, requests per second of the app ' +
  'process\'s CPU (/proc); ratios > 1 mean rustls-node is better. Targets apply to the default path (createHttpsServer). node:https has no HTTP/2.'

function libraryTable (figures, { cell, ratioCell }) {
  const stacks = [...LIBRARY_SUBJECTS, ...LIBRARY_NODE]
  const head = ['Figure', 'unit', ...stacks.map((s) => LIBRARY_NAMES[s]), 'default / node', 'net.Server path / node', 'node server compared', 'target (default path)']
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`]
  for (const f of figures) {
    lines.push(`| ${f.title}: requests per server CPU-s | ${f.unit} | ${stacks.map((s) => valueCell(f.columns[s], cell)).join(' | ')} | ` +
      `${ratioCell(f.ratios.rustls)} | ${ratioCell(f.ratios['rustls-net'])} | ${f.versus} | ≥ ${f.target.toFixed(1)}× ${f.versus}: ${passText(f.pass)} |`)
  }
  const why = unavailableLines(figures, LIBRARY_NAMES)
  return [lines.join('\n'), ...(why.length > 0 ? ['', ...why] : [])].join('\n')
}

/** The reasons behind the 'not available' cells of `figures`, as lines to print under their table. */
function unavailableLines (figures, names) {
  const lines = new Map()
  for (const f of figures) {
    for (const [stack, col] of Object.entries(f.columns)) {
      if (col.reason === undefined) continue
      const text = `${names[stack]}: ${col.reason}`
      lines.set(text, [...(lines.get(text) ?? []), f.title])
    }
  }
  return [...lines].map(([text, rows]) => `- Not available: ${text} (${rows.length === figures.length ? 'every row' : rows.join('; ')}).`)
}

module.exports = { libraryFigures, libraryTable, terminatorFigures, terminatorTable, LIBRARY_INTRO, RUSTLS_HANDSHAKE_SOURCE, RUSTLS_HANDSHAKE_US, TERMINATOR_INTRO }
