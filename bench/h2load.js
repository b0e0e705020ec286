'use strict'
// h2load (Debian nghttp2-client), the outside load generator of the
// h2load scenarios: the terminators (bench/h2load-peers.js) and the
// library's HTTPS servers (bench/library-h2load.js) are driven by the same
// three load shapes, pinned to the load generator's core:
//
// - h2:    HTTP/2, 16 connections x 10 concurrent streams (`-c16 -m10`)
// - h1:    HTTP/1.1 keep-alive, 16 connections, one request in flight each
//          (`--h1 -c16`)
// - close: one request per new connection, HTTP/1.1: `-c N -n N` (every
//          h2load client makes one request on its own connection, then
//          closes it) with new clients started at a fixed rate (`-r`,
//          `--rate-period`). A fresh h2load client never offers a session
//          to resume, so every request pays a full handshake. The other
//          ways to get a connection per request were not taken: h2load
//          with `Connection: close` reconnects with the SSL object of the
//          previous connection and resumes most sessions (measured: 184 of
//          200 on node:https), and `openssl s_time -new` or curl in a loop
//          cost the load generator a process or more per request and send
//          no ALPN or HTTP/2.
//
// The keep-alive shapes run for a duration (`-D`), after a separate
// warm-up invocation of the same shape, so the CPU bracket around the
// measured invocation holds nothing else; the close shape runs a fixed
// number of connections. A run is valid only if h2load started, finished
// and counted as succeeded every request, with a 2xx status each, over the
// protocol the shape asks for (its "Application protocol" line).
const { runPinned } = require('./child')

const CONNECTIONS = 16
const STREAMS = 10
/** The close shape: clients started per period; 10 every 10 ms is 1,000 new connections/s. */
const CLOSE_RATE = 10
const CLOSE_RATE_PERIOD = '10ms'

/** Work per run, full and --quick: seconds of keep-alive load, connections of the close shape. */
const SIZES = {
  full: { warmSeconds: 1, runSeconds: 5, closeWarm: 300, closeConnections: 4000 },
  quick: { warmSeconds: 1, runSeconds: 2, closeWarm: 100, closeConnections: 1000 },
}

/** The load shapes, by name: h2load arguments and the protocol ALPN must pick. */
const SHAPES = {
  h2: { title: `HTTP/2, ${CONNECTIONS} connections x ${STREAMS} streams`, alpn: 'h2', args: [`-c${CONNECTIONS}`, `-m${STREAMS}`] },
  h1: { title: `HTTP/1.1 keep-alive, ${CONNECTIONS} connections`, alpn: 'http/1.1', args: ['--h1', `-c${CONNECTIONS}`, '-m1'] },
  close: { title: 'one request per new connection (HTTP/1.1, full handshakes)', alpn: 'http/1.1', args: ['--h1', '-m1'], perConnection: true },
}

/** h2load's arguments for one run of `shape`: `seconds` of load, or (close shape) `connections` connections. */
function h2loadArgs (shape, { seconds, connections, tls13Ciphers }) {
  const s = SHAPES[shape]
  const args = [...s.args]
  if (s.perConnection) args.push(`-c${connections}`, `-n${connections}`, `-r${CLOSE_RATE}`, `--rate-period=${CLOSE_RATE_PERIOD}`)
  else args.push(`-D${seconds}`)
  // A connection silent for 10 s is given up (and counted as timed out) rather than hanging the run.
  args.push('-N10')
  if (tls13Ciphers !== undefined) args.push(`--tls13-ciphers=${tls13Ciphers}`)
  return args
}

/** Reads h2load's summary: request counts, status classes, the negotiated TLS and ALPN. */
function parseH2load (text) {
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text)
  if (req === null) throw new Error(`cannot read h2load output: ${text.slice(-600)}`)
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text)
  const finished = /finished in ([\d.]+)(us|ms|s),/.exec(text)
  const line = (name) => new RegExp(`^${name}: (.+)$`, 'm').exec(text)?.[1]?.trim() ?? null
  const [total, started, done, succeeded, failed, errored, timeout] = req.slice(1).map(Number)
  return {
    total, started, done, succeeded, failed, errored, timeout,
    status: codes === null ? null : { '2xx': Number(codes[1]), '3xx': Number(codes[2]), '4xx': Number(codes[3]), '5xx': Number(codes[4]) },
    seconds: finished === null ? null : Number(finished[1]) * { us: 1e-6, ms: 1e-3, s: 1 }[finished[2]],
    protocol: line('TLS Protocol'),
    cipher: line('Cipher'),
    group: /^Server Temp Key: (\S+)/m.exec(text)?.[1] ?? null,
    alpn: line('Application protocol'),
  }
}

/** Runs h2load pinned to the load generator's core; resolves with parseH2load's figures. */
async function runH2load (url, shape, options) {
  const { code, out } = await runPinned('client', 'h2load', [...h2loadArgs(shape, options), url])
  const r = parseH2load(out)
  // h2load exits 1 when a request failed; the counts say which.
  if (code !== 0 && r.failed + r.errored + r.timeout === 0) throw new Error(`h2load exited with ${code}: ${out.slice(-500)}`)
  return r
}

/**
 * The checks of one run: every request (the close shape: every connection)
 * done and succeeded with a 2xx status, over the shape's protocol, and
 * TLSv1.3 with `suite` and X25519 in h2load's view.
 */
function checkH2load (name, shape, r, { expected, suite }, problems) {
  const s = SHAPES[shape]
  if (r.total === 0) problems.push(`${name}: no request completed`)
  if (expected !== undefined && r.total !== expected) problems.push(`${name}: ${r.total} of ${expected} requests`)
  if (r.succeeded !== r.total || r.done !== r.total || r.failed + r.errored + r.timeout > 0) {
    problems.push(`${name}: h2load counted ${r.total} total, ${r.done} done, ${r.succeeded} succeeded, ${r.failed} failed, ${r.errored} errored, ${r.timeout} timed out`)
  }
  // In a timed run the status counts also cover the requests still in
  // flight at its end, which `succeeded` leaves out.
  if (r.status === null || r.status['2xx'] < r.succeeded || r.status['3xx'] + r.status['4xx'] + r.status['5xx'] > 0) {
    problems.push(`${name}: status codes ${JSON.stringify(r.status)}, expected ${r.succeeded} 2xx and no other`)
  }
  if (r.alpn !== s.alpn) problems.push(`${name}: application protocol ${r.alpn}, expected ${s.alpn}`)
  if (r.protocol !== 'TLSv1.3' || r.cipher !== suite || r.group !== 'X25519') problems.push(`${name}: negotiated ${r.protocol} ${r.cipher} ${r.group}, expected TLSv1.3 ${suite} X25519`)
}

/** The expectations of a run of `def`: the close shape makes exactly its connections' requests. */
function expectations (def, connections) {
  return { expected: SHAPES[def.shape].perConnection ? connections : undefined, suite: def.suite }
}

/** The unmeasured warm-up before a measured run: the same shape, shorter. */
async function warmH2load (def, url, problems) {
  const warm = await runH2load(url, def.shape, { seconds: def.warmSeconds, connections: def.closeWarm, tls13Ciphers: def.tls13Ciphers })
  checkH2load('warm-up', def.shape, warm, expectations(def, def.closeWarm), problems)
}

/**
 * The measured h2load run of `def` against a serving server, bracketed by
 * the server's CPU time (`cpuOf()`, µs). Fills values (requests per
 * server CPU-s, CPU-µs per request, requests/s), info.run and problems;
 * returns h2load's figures.
 */
async function measuredH2load (def, url, cpuOf, { values, info, problems }) {
  const before = cpuOf()
  const r = await runH2load(url, def.shape, { seconds: def.runSeconds, connections: def.closeConnections, tls13Ciphers: def.tls13Ciphers })
  const cpuUs = cpuOf() - before
  values.reqPerCpuS = r.succeeded / (cpuUs / 1e6)
  values.cpuUsPerReq = cpuUs / r.succeeded
  values.reqPerS = r.succeeded / r.seconds
  info.run = { ...r, cpuUs }
  checkH2load('run', def.shape, r, expectations(def, def.closeConnections), problems)
  return r
}

/** The fields a case definition takes from the shape and the run size. */
function shapeFields (shape, mode) {
  return { shape, ...SIZES[mode] }
}

/** What a valid sample of an h2load case was checked for (report's Verification section). */
function verifiedText (def) {
  const shape = SHAPES[def.shape]
  const count = shape.perConnection ? `${def.closeConnections} connections, one request each, ` : ''
  return `h2load ${shapeArgsText(def.shape)}: ${count}every request done and succeeded with a 2xx status over ${shape.alpn} (ALPN), TLSv1.3 ${def.suite} X25519 in h2load's view, in the warm-up and the measured run`
}

function shapeArgsText (shape) {
  const s = SHAPES[shape]
  return s.perConnection ? `${s.args.join(' ')} -c N -n N -r ${CLOSE_RATE} --rate-period ${CLOSE_RATE_PERIOD}` : `${s.args.join(' ')} -D <seconds>`
}

module.exports = { measuredH2load, parseH2load, runH2load, warmH2load, shapeFields, verifiedText, CONNECTIONS, STREAMS, SHAPES, SIZES }
