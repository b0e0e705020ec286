#!/usr/bin/env node
'use strict'
// npm run test:stress: the reliability tests at full size (issue 6):
// 1 000 000 fuzzed inputs, 100 000 mutated HTTP/2 connections (issue 18),
// 100 000 sequential and 10 000 concurrent
// connections, 1 000 slow clients, 1 GiB backpressure runs, 30 s of
// SIGHUP under load, testssl's full scan; and (issue 18) reload under load,
// worker kill, slow readers and 10 000 idle connections again with HTTP/2
// clients on the terminator's native h2 front. Loopback only; bounded: the run
// is stopped after STRESS_TIMEOUT_MS (default 19 minutes) whatever happens.
// Prints the figures and writes them to test/reliability/results/latest.json
// and latest.md. Extra arguments filter test files by substring.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const timeoutMs = Number(process.env.STRESS_TIMEOUT_MS || 19 * 60 * 1000)
const resultsDir = path.join(root, 'test', 'reliability', 'results')

function step (cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status)
}

step(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'])
step(process.execPath, [path.join(__dirname, 'gen-certs.js')])

const dir = path.join(root, 'dist', 'test', 'reliability')
const filters = process.argv.slice(2)
const files = fs.readdirSync(dir).filter((n) => n.endsWith('.test.js')).sort()
  .map((n) => path.join('dist', 'test', 'reliability', n))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}

const figuresDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-stress-'))
const started = Date.now()
// One file at a time: the memory and descriptor figures of one test must
// not include another's load. Its own process group, so that the timeout
// stops every child (terminators, workers, peers) with it.
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=900000', ...files], {
  cwd: root,
  stdio: 'inherit',
  detached: true,
  env: { ...process.env, RUSTLS_NODE_STRESS: '1', RUSTLS_NODE_RESULTS_DIR: figuresDir },
})
let timedOut = false
const timer = setTimeout(() => {
  timedOut = true
  console.error(`\nstress: stopped after ${timeoutMs / 1000} s`)
  try { process.kill(-child.pid, 'SIGKILL') } catch {}
}, timeoutMs)
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    try { process.kill(-child.pid, 'SIGKILL') } catch {}
    process.exit(130)
  })
}

child.on('exit', (code, signal) => {
  clearTimeout(timer)
  const seconds = (Date.now() - started) / 1000
  const figures = {}
  for (const name of fs.readdirSync(figuresDir).sort()) {
    if (name.endsWith('.json')) figures[name.slice(0, -5)] = JSON.parse(fs.readFileSync(path.join(figuresDir, name), 'utf8'))
  }
  fs.rmSync(figuresDir, { recursive: true, force: true })
  const passed = code === 0 && !timedOut
  const report = {
    date: new Date().toISOString(),
    passed,
    exit: timedOut ? 'timeout' : signal ?? code,
    seconds,
    machine: { cpus: os.availableParallelism(), memoryBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}` },
    files: files.map((f) => path.basename(f)),
    figures,
  }
  // A filtered run does not replace the full report.
  if (filters.length === 0) {
    fs.mkdirSync(resultsDir, { recursive: true })
    fs.writeFileSync(path.join(resultsDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n')
    fs.writeFileSync(path.join(resultsDir, 'latest.md'), markdown(report))
  }
  process.stdout.write('\n' + markdown(report))
  process.exit(passed ? 0 : 1)
})

const MiB = 1024 * 1024
const mb = (n) => typeof n === 'number' ? `${(n / MiB).toFixed(1)} MiB` : '–'

function markdown (r) {
  const f = r.figures
  const out = []
  out.push('# rustls-node stress run (issue 6)', '')
  out.push(`${r.date} · ${r.passed ? 'PASSED' : `FAILED (${r.exit})`} · ${r.seconds.toFixed(0)} s · ${r.machine.cpus} cores, ${mb(r.machine.memoryBytes)}, node ${r.machine.node}`, '')
  out.push('Rerun: `npm run test:stress` (loopback only, stops by itself). Sizes: test/reliability/scale.ts.', '')
  if (f.fuzz) {
    const z = f.fuzz
    out.push('## 1. Pump fuzzing', '',
      `- inputs fuzzed: **${z.inputs}** (seed ${z.seed}, ${z.workers} worker process(es), ${z.seconds.toFixed(0)} s)`,
      `- targets: ${Object.entries(z.byTarget).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `- crashes ${z.crashes}, hangs ${z.hangs}, findings ${z.findings}; slowest input ${z.slowestInputMs.toFixed(1)} ms; worker RSS growth ${mb(z.workerRssGrowthBytes)}`,
      `- ${z.distinctCodes} distinct end codes: ${Object.entries(z.codes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}×${v}`).join(' ')}`,
      `- corpus: ${z.transcripts.join('; ')}`, '')
  }
  if (f['fuzz-h2']) {
    const z = f['fuzz-h2']
    out.push('## 1b. HTTP/2 front fuzzing (issue 18)', '',
      `- **${z.connections}** mutated HTTP/2 connections through TLS (seed ${z.seed}, ${z.seconds} s): no crash; still serving; clean stop`, '')
  }
  if (f['leaks-sequential'] || f['leaks-idle']) {
    out.push('## 3. Leaks', '')
    const s = f['leaks-sequential']
    if (s) {
      out.push(`- sequential: **${s.connections}** connections (handshake, 1 KiB each way, close) in ${s.seconds.toFixed(0)} s (${s.perSecond.toFixed(0)}/s, ${s.lanes} lanes)`,
        `  - server RSS baseline ${mb(s.baseline.rss)} → half-way ${mb(s.middle.rss)} → end ${mb(s.end.rss)}: growth ${mb(s.rssGrowthBytes)} (bound ${mb(s.rssBounds.overallBytes)}), over the second half ${mb(s.rssGrowthSecondHalfBytes)} (bound ${mb(s.rssBounds.secondHalfBytes)})`,
        `  - fds ${s.baseline.fds} → ${s.end.fds}; live native connections at the end ${s.liveHandlesEnd.connections}`)
    }
    const i = f['leaks-idle']
    if (i) {
      out.push(`- concurrent idle: **${i.connections}** connections held by ${i.serverProcesses} server process(es), opened in ${i.openSeconds.map((x) => x.toFixed(1)).join(' s / ')} s, closed, twice`)
      i.servers.forEach((x, n) => out.push(`  - server ${n}: RSS baseline ${mb(x.baseline.rss)}, peak +${mb(x.peakGrowthBytes)} (${x.perConnectionAtPeakBytes} B/connection), after close +${mb(x.retainedBytes)} (kept by V8 and malloc for reuse), round 2 − round 1 ${mb(x.acrossRoundsBytes)}; JS heap in use ${mb(x.baseline.heapUsed)} → ${mb(x.peak[1].heapUsed)} → ${mb(x.after[1].heapUsed)}; fds ${x.baseline.fds} → ${x.peak[1].fds} → ${x.after[1].fds}; live connections after ${x.after[1].liveConnections}`))
      out.push(`  - bounds: fds and handles: ${i.bounds.fdsAndHandles}; round 2 − round 1 < ${mb(i.bounds.acrossRoundsBytes)}; JS heap in use after close ≤ ${i.bounds.heapUsedAfterCloseBytes}; RSS retained after close: reported above`)
    }
    const h = f['leaks-idle-h2']
    if (h) {
      out.push(`- idle HTTP/2 (terminator, issue 18): **${h.connections}** node:http2 sessions after the SETTINGS exchange, opened in ${h.openSeconds.toFixed(1)} s: RSS ${mb(h.rss.baseline)} → ${mb(h.rss.held)}, **${h.perConnectionBytes} B/connection** (bound ${h.perConnectionBoundBytes} B + 48 MiB), ${h.closedWhileIdle} closed while idle, **${h.answered}/${h.connections} answered** afterwards (${h.answerSeconds.toFixed(1)} s); fds ${h.fds.baseline} → ${h.fds.held} → ${h.fds.after}; RSS after close ${mb(h.rss.after)}`)
    }
    out.push('')
  }
  if (f['slow-clients'] || f['slow-clients-h2']) {
    out.push('## 4. Slow and silent clients', '')
    const s = f['slow-clients']
    if (s) {
      out.push(`- **${s.clients}** at once (silent, partial ClientHello, 1 byte/s), handshakeTimeout ${s.handshakeTimeoutMs} ms: closed after ${s.heldMs.min}–${s.heldMs.max} ms (median ${s.heldMs.median}), ${s.bytesSentToSlowClients} bytes sent to them`,
        `- a normal client meanwhile: ${s.normalClientLatencyMs.join(' / ')} ms`,
        `- server RSS ${mb(s.rss.baseline)} → ${mb(s.rss.held)} with them → ${mb(s.rss.after)} after; fds ${s.fds.baseline} → ${s.fds.held} → ${s.fds.after}; ${JSON.stringify(s.clientErrors)}`)
    }
    const h = f['slow-clients-h2']
    if (h) {
      out.push(`- slow HTTP/2 readers (terminator, issue 18): **${h.sessions}** sessions × ${h.streamsPerSession} streams of ${mb(h.offeredBytesPerStream)} for ${h.holdMs} ms, sendTimeout ${h.sendTimeoutMs} ms`,
        `  - window never opened (${h.neverOpened.sessions}): ${h.neverOpened.bytesSent} bytes sent to them, closed after ${h.neverOpened.closedAfterMs.min}–${h.neverOpened.closedAfterMs.max} ms`,
        `  - reading slowly (${h.slowReaders.sessions}): ${h.slowReaders.stillOpen} still open at the end, ${mb(h.slowReaders.bytesEach.min)}–${mb(h.slowReaders.bytesEach.max)} read each`,
        `  - terminator RSS ${mb(h.rss.baseline)} → peak ${mb(h.rss.peak)} (bound ${mb(h.rss.bound)}) → ${mb(h.rss.after)} after; a normal h2 client (1 MiB) meanwhile: ${Math.min(...h.normalClientLatencyMs)}–${Math.max(...h.normalClientLatencyMs)} ms`)
    }
    out.push('')
  }
  if (f.backpressure) {
    const b = f.backpressure
    out.push('## 5. Backpressure (terminator RSS)', '', `Bound: baseline + 2 × ${mb(b.bufferLimitBytes)} × connections + ${mb(b.heapSlackBytes)}.`, '',
      '| scenario | connections | seconds | RSS baseline | peak (1st half / 2nd half) | growth | bound | bytes through | released after clients left |', '|---|---|---|---|---|---|---|---|---|')
    for (const [name, s] of Object.entries(b.scenarios)) {
      out.push(`| ${name} | ${s.connections} | ${(s.ms / 1000).toFixed(0)} | ${mb(s.rssBaseline)} | ${mb(s.rssPeakFirstHalf)} / ${mb(s.rssPeakSecondHalf)} | ${mb(s.rssGrowth)} | ${mb(s.rssBound)} | ${mb(s.bytesThrough)} of ${mb(s.offeredBytes)} | ${s.releasedAfterClientsLeftMs} ms |`)
    }
    out.push('')
  }
  if (f.faults || f['worker-kill']) {
    out.push('## 6. Faults', '')
    for (const [k, v] of Object.entries(f.faults?.outcomes ?? {})) out.push(`- ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    const w = f['worker-kill']
    if (w) out.push(`- worker killed (workers: 2): ${w.onKilledWorker} download(s) on it cut, ${w.completedByteExact}/${w.onOtherWorker} on the other complete byte-exact; \`${w.log.msg}\` (${w.log.level}, ${w.log.signal}, restart in ${w.log.restartInMs} ms); replacement listening; ${w.requestsAfterRestart}`)
    if (w?.h2) out.push(`- worker killed, HTTP/2 (issue 18): ${w.h2.sessions} sessions; ${w.h2.cut}/${w.h2.streamsOnKilledWorker} streams on the killed worker cut, ${w.h2.completedByteExact}/${w.h2.streamsOnOtherWorker} on the other complete byte-exact; a new stream on a surviving session ${w.h2.newStreamOnSurvivingSession}; new sessions after the restart ${w.h2.sessionsAfterRestart}`)
    out.push('')
  }
  if (f['reload-under-load'] || f['reload-under-load-h2']) {
    out.push('## 7. Reload under load', '')
    const l = f['reload-under-load']
    if (l) out.push(`- **${l.reloads}** SIGHUPs in ${l.seconds.toFixed(1)} s: **${l.requests}** requests (${l.requestsPerSecond.toFixed(0)}/s), **${l.failedRequests} failed**; ${l.downloadsComplete}/${l.downloadsAcrossReloads} long downloads across the reloads complete`)
    const h = f['reload-under-load-h2']
    if (h) out.push(`- HTTP/2 (issue 18): **${h.reloads}** SIGHUPs in ${h.seconds.toFixed(1)} s: **${h.streams}** streams (${h.streamsPerSecond.toFixed(0)}/s, ${h.sessions.lanes} lanes × ${h.sessions.streamsEach}), **${h.failedStreams} failed**, ${h.refusedAndRetried} refused and retried (RFC 9113 §8.7); ${h.sessions.opened} sessions, ${h.sessions.goawaysReceived} GOAWAY received; ${h.downloadsComplete}/${h.downloadsAcrossReloads} long h2 downloads across the reloads complete`)
    out.push('')
  }
  if (f.scanner) {
    const s = f.scanner
    out.push('## 8. testssl.sh against the demo', '',
      `- testssl ${s.testssl}, ${s.mode} run, ${s.seconds.toFixed(0)} s; severities ${JSON.stringify(s.severities)}`,
      `- protocols: ${Object.entries(s.protocols).map(([k, v]) => `${k} ${v}`).join(', ')}`,
      `- vulnerabilities: ${Object.entries(s.vulnerabilities).map(([k, v]) => `${k}: ${v}`).join('; ')}`,
      `- MEDIUM or worse: ${s.mediumOrWorse.length === 0 ? 'none' : s.mediumOrWorse.join('; ')}`,
      `- excused (demo certificate / demo backend by design): ${s.excusedAsDemoDesign.join('; ') || 'none'}`,
      `- LOW and WARN: ${s.lowAndWarnings.join('; ') || 'none'}`, '')
  }
  if (f.abuse) {
    out.push('## 9. Header and SNI abuse', '')
    for (const [k, v] of Object.entries(f.abuse.outcomes)) out.push(`- ${k}: ${v}`)
    out.push('')
  }
  return out.join('\n') + '\n'
}
