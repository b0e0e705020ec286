#!/usr/bin/env node
'use strict'
// `npm run bench`: rustls-node against node:tls and the machine's limits
// (issue 5), and the rustls-node terminator against hitch, HAProxy and a
// node:tls proxy (issue 11, bench/peers.js). Every figure is measured for
// all its stacks in the same run, alternating them between rounds, with
// the server and the load generator in separate processes pinned to one
// core each; the main figure is the server's CPU time per unit of work.
//
//   node bench/run.js [--quick] [--only bulk,handshake,resume,memory,terminator,limits,resume-share,
//                     peer-handshake,peer-bulk,peer-http,peer-memory (or: peers), store-resume,
//                     peer-h2load,peer-grpc,library-h2load (or: h2load)]
//                     [--rounds N] [--no-build] [--terminator-bin PATH] [--haproxy-awslc PATH]
//
// Results: bench/results/latest.{json,md} (+ a dated copy) and the summary
// in bench/README.md; --quick and --only runs are written under their own
// names (latest-quick.*, latest-partial.*).
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { allowedCores, canPin, coreFor, cpuSnapshot, foreignLoad } = require('./child')
const h2loadPeers = require('./h2load-peers')
const libraryH2load = require('./library-h2load')
const { limitCases, measureAes, measurePublicKey } = require('./limits')
const peers = require('./peers')
const { writeResults } = require('./report')
const resumeShare = require('./resume-share')
const scenarios = require('./scenarios')
const storeResume = require('./store-resume')
const terminator = require('./terminator')

const ROOT = path.resolve(__dirname, '..')
const H2LOAD_SCENARIOS = [...h2loadPeers.SCENARIOS, libraryH2load.SCENARIO]
const SCENARIOS = ['limits', 'bulk', 'handshake', 'resume', 'memory', 'terminator', 'resume-share', ...peers.SCENARIOS, storeResume.SCENARIO, ...H2LOAD_SCENARIOS]
/** `--only peers` selects every peer scenario of issue 11, `--only h2load` the h2load-driven ones (issues 18, 19). */
const ALIASES = { peers: peers.SCENARIOS, h2load: H2LOAD_SCENARIOS }
const DEFAULT_ROUNDS = { full: 5, quick: 1 }

function usage (message) {
  if (message) console.error(`bench: ${message}`)
  console.error('usage: node bench/run.js [--quick] [--only <scenario>[,<scenario>...]] [--rounds N] [--no-build] [--terminator-bin PATH] [--haproxy-awslc PATH]')
  console.error(`scenarios: ${SCENARIOS.join(', ')}; peers = ${ALIASES.peers.join(',')}; h2load = ${ALIASES.h2load.join(',')}`)
  console.error(`--haproxy-awslc: HAProxy built against AWS-LC (default: $${h2loadPeers.HAPROXY_AWSLC_ENV}, else ${h2loadPeers.DEFAULT_HAPROXY_AWSLC})`)
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { mode: 'full', only: null, rounds: null, build: true, terminatorBin: null, haproxyAwslc: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--quick') opts.mode = 'quick'
    else if (a === '--no-build') opts.build = false
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a.includes('=') ? a.slice(7) : argv[++i]
      if (v === undefined) usage('--only needs a scenario')
      opts.only = [...new Set(v.split(',').map((s) => s.trim()).filter(Boolean).flatMap((s) => ALIASES[s] ?? [s]))]
      for (const s of opts.only) if (!SCENARIOS.includes(s)) usage(`unknown scenario '${s}'`)
    } else if (a === '--rounds' || a.startsWith('--rounds=')) {
      const v = Number(a.includes('=') ? a.slice(9) : argv[++i])
      if (!Number.isInteger(v) || v < 1) usage('--rounds needs a positive integer')
      opts.rounds = v
    } else if (a === '--terminator-bin' || a.startsWith('--terminator-bin=')) {
      const v = a.includes('=') ? a.slice(17) : argv[++i]
      if (v === undefined) usage('--terminator-bin needs a path')
      opts.terminatorBin = path.resolve(v)
    } else if (a === '--haproxy-awslc' || a.startsWith('--haproxy-awslc=')) {
      const v = a.includes('=') ? a.slice(16) : argv[++i]
      if (v === undefined) usage('--haproxy-awslc needs a path')
      opts.haproxyAwslc = path.resolve(v)
    } else if (a === '--help' || a === '-h') usage()
    else usage(`unknown argument '${a}'`)
  }
  opts.rounds ??= DEFAULT_ROUNDS[opts.mode]
  return opts
}

const t0 = Date.now()
function log (message) {
  const s = ((Date.now() - t0) / 1000).toFixed(0).padStart(4)
  process.stderr.write(`[bench ${s}s] ${message}\n`)
}

/**
 * Copies what runs (dist/lib, bin/, package.json, the native addon) into
 * the run's temporary directory, so every sample measures the same build
 * even if the working tree is rebuilt meanwhile (dependencies are linked).
 */
function snapshotBuild (tmpDir) {
  const snap = path.join(tmpDir, 'build')
  fs.cpSync(path.join(ROOT, 'dist', 'lib'), path.join(snap, 'dist', 'lib'), { recursive: true })
  fs.cpSync(path.join(ROOT, 'package.json'), path.join(snap, 'package.json'))
  for (const dir of ['bin', 'prebuilds', path.join('build', 'Release')]) {
    if (fs.existsSync(path.join(ROOT, dir))) fs.cpSync(path.join(ROOT, dir), path.join(snap, dir), { recursive: true, filter: (src) => !src.includes(`${path.sep}obj.target`) })
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(snap, 'node_modules'), 'dir')
  return snap
}

/** The commit measured, and whether the working tree differed from it (read-only git). */
function sourceRevision () {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' })
  if (head.status !== 0) return null
  const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' })
  return { commit: head.stdout.trim(), modifiedFiles: status.status === 0 ? status.stdout.split('\n').filter(Boolean).length : null }
}

/** TypeScript → dist/, and the native addon if it does not load. */
function prepareLibrary (build, libDir) {
  if (build) {
    log('compiling TypeScript (tsc -p tsconfig.json)')
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [ROOT] }), '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' })
    // Files other people are editing may not type-check; tsc still emits,
    // and what matters is that the library loads.
    if (r.status !== 0) log(`tsc reported errors (continuing if dist/lib loads):\n${(r.stdout + r.stderr).split('\n').slice(0, 10).join('\n')}`)
  }
  const load = () => spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(path.join(libDir, 'index.js'))}).rustlsVersion())`], { encoding: 'utf8' })
  let r = load()
  if (r.status !== 0 && build) {
    log('the library does not load; building the native addon (node scripts/build-native.js)')
    spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-native.js')], { cwd: ROOT, stdio: 'inherit' })
    r = load()
  }
  if (r.status !== 0) throw new Error(`dist/lib/index.js does not load: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
  return r.stdout
}

/** Output of a command, null if it cannot run (`wrk --version` exits 1, so the status is not checked). */
function commandOutput (cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return r.error === undefined ? (r.stdout + r.stderr).trim() : null
}

function describeMachine (rustls) {
  const lscpu = commandOutput('lscpu', []) ?? ''
  const field = (name) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(lscpu)?.[1]?.trim()
  const wrk = commandOutput('wrk', ['--version'])
  const pinned = canPin()
  return {
    cpuModel: field('Model name') ?? os.cpus()[0]?.model ?? 'unknown CPU',
    cores: os.availableParallelism(),
    allowedCores: allowedCores(),
    hypervisor: field('Hypervisor vendor') ?? null,
    kernel: os.release(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    rustls,
    opensslCli: (commandOutput('openssl', ['version']) ?? 'not installed').replace(/^OpenSSL /, '').split(' ')[0],
    wrk: wrk === null ? null : `wrk ${/wrk (\S+)/.exec(wrk)?.[1] ?? ''}`.trim(),
    pinned,
    serverCore: pinned ? coreFor('server') : null,
    clientCore: pinned ? coreFor('client') : null,
    ulimitNofile: Number(commandOutput('sh', ['-c', 'ulimit -n'])) || null,
  }
}

/** What a valid sample of each kind has been checked for. */
function verifiedText (def) {
  if (def.verified !== undefined) return def.verified
  switch (def.kind) {
    case 'bulk': return `both ends negotiated TLSv1.3 ${def.ciphers}; every byte counted on arrival; no native handle left after close`
    case 'handshake':
      if (def.stacks.includes('net') && def.stacks.length === 1) return `${def.count} connections per sample, counted by client and server, no error`
      return `${def.count} handshakes per sample, counted by client and server, no error, every one ${def.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3'} with the forced suite on both ends, ` +
        (def.resume ? `every one resumed on both ends (isSessionReused())${def.resumption === 'session-id' ? ', no ticket issued' : ''}` : 'none resumed')
    case 'memory': return `${def.count} connections established and held on both ends; RSS after gc()`
    case 'terminator': return 'no wrk socket error, no non-2xx answer, every counted request reached the backend'
    case 'peer-handshake': return `${def.count} connections per sample, each a handshake, a ${def.echoBytes}-byte echo through the backend and a close; no client error; ` +
      'every one TLSv1.3 with the forced suite and X25519 (client view), one backend connection per client connection, ' +
      `${def.resume ? 'every one resumed' : 'none resumed'} (client view, and the peer's own counters where it has them: rustls-node /metrics, HAProxy stats socket, node:tls proxy; hitch has none)`
    case 'peer-bulk': return `TLSv1.3 ${def.ciphers} X25519 (client view); exact byte counts at the client and the backend, and in the peer's counters where it has them (plaintext: HAProxy, node:tls; TLS bytes at least as many: rustls-node)`
    case 'peer-memory': return `${def.count} connections held by the client after their echo, and their ${def.count} backend connections by the backend; every one TLSv1.3 with the forced suite and X25519; the peer's open-connection count where it has one; RSS of the peer's process tree, after gc() for the Node peers`
    case 'peer-http': return 'a client with default TLS settings (like wrk) gets TLSv1.3 with the forced suite and X25519; no wrk socket error, no non-2xx answer, every counted request reached the backend, at most 16 + 1 % of the requests new backend connections per run (keep-alive to the backend)'
    default: return ''
  }
}

function formatValues (values) {
  return Object.entries(values).map(([k, v]) => `${k}=${v >= 100 ? Math.round(v) : v.toFixed(2)}`).join(' ')
}

/** Round r runs the stacks rotated by r, so each stack goes first in turn. */
function rotated (stacks, r) {
  const k = r % stacks.length
  return [...stacks.slice(k), ...stacks.slice(0, k)]
}

async function runCase (def, scenario, measure, opts, results, ctx) {
  const entry = {
    title: def.title, scenario, kind: def.kind, stacks: def.stacks, verified: verifiedText(def),
    params: Object.fromEntries(Object.entries(def).filter(([k]) => !['title', 'stacks', 'kind', 'id'].includes(k))),
    samples: [],
  }
  results.cases[def.id] = entry
  for (let round = 0; round < opts.rounds; round++) {
    for (const stack of rotated(def.stacks, round)) {
      const before = cpuSnapshot()
      let sample
      try {
        const r = await measure(def, stack, ctx)
        sample = { round, stack, values: r.values, info: r.info, problems: r.problems, ...(r.warnings?.length > 0 ? { warnings: r.warnings } : {}) }
      } catch (err) {
        sample = { round, stack, values: {}, info: {}, problems: [], error: err.message.split('\n')[0].slice(0, 600) }
      }
      const after = cpuSnapshot()
      // What other processes did to the machine while this sample ran.
      sample.seconds = (after.time - before.time) / 1000
      sample.otherCpu = foreignLoad(before, after)
      entry.samples.push(sample)
      const status = (sample.error !== undefined ? `ERROR ${sample.error}` : sample.problems.length > 0 ? `INVALID ${sample.problems.join('; ')}` : formatValues(sample.values)) +
        (sample.warnings !== undefined ? ` (warning: ${sample.warnings.join('; ')})` : '')
      log(`${def.id} round ${round + 1}/${opts.rounds} ${stack}: ${status} (${sample.seconds.toFixed(1)} s, other load ${(100 * sample.otherCpu.other).toFixed(0)} %)`)
    }
  }
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const selected = opts.only ?? SCENARIOS
  const sizes = scenarios.SIZES[opts.mode]
  prepareLibrary(opts.build, path.join(ROOT, 'dist', 'lib'))
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-bench-'))
  process.on('exit', () => fs.rmSync(tmpDir, { recursive: true, force: true }))
  const snapshot = snapshotBuild(tmpDir)
  const libDir = path.join(snapshot, 'dist', 'lib')
  const rustls = prepareLibrary(false, libDir)
  const certDir = path.join(tmpDir, 'certs')
  // A private certificate set: tests running meanwhile may regenerate theirs.
  const g = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'gen-certs.js'), certDir], { cwd: ROOT, encoding: 'utf8' })
  if (g.status !== 0) throw new Error(`scripts/gen-certs.js failed: ${g.stderr}`)
  const ctx = { certDir, libDir, tmpDir, terminatorBin: opts.terminatorBin ?? path.join(snapshot, 'bin', 'rustls-node.js'), terminatorBinName: opts.terminatorBin ?? 'bin/rustls-node.js', haproxyAwslcOption: opts.haproxyAwslc ?? undefined }

  const machine = describeMachine(rustls)
  machine.source = sourceRevision()
  log(`${machine.cpuModel}, ${machine.cores} cores, ${rustls}; pinning ${machine.pinned ? `server→core ${machine.serverCore}, client→core ${machine.clientCore}` : 'unavailable'}`)
  if (machine.ulimitNofile !== null && machine.ulimitNofile < Math.max(...sizes.idle) + 1000 && selected.includes('memory')) {
    log(`warning: ulimit -n is ${machine.ulimitNofile}; the idle-memory scenario needs more than ${Math.max(...sizes.idle)} descriptors per process`)
  }
  const results = {
    version: 1,
    mode: opts.mode,
    only: opts.only,
    rounds: opts.rounds,
    startedAt: new Date(t0).toISOString(),
    machine,
    // Share of the machine's CPU used by processes other than the harness'.
    otherCpu: null,
    units: { MB: '10^6 bytes', KiB: '1024 bytes', cpu: 'user + system CPU time of the server process (process.cpuUsage(); /proc for the terminators)' },
    cases: {},
    notes: [],
  }
  const runStart = cpuSnapshot()
  if (!machine.pinned) results.notes.push('taskset was not usable: processes were not pinned, so client and server may share a core.')

  const all = scenarios.cases(sizes)
  let peerSetup = null
  let peerCases = null
  let h2loadSetup = null
  let storeSetup = null
  for (const scenario of selected) {
    log(`scenario ${scenario}`)
    if (peers.SCENARIOS.includes(scenario)) {
      if (peerSetup === null) {
        peerSetup = peers.preparePeers(ctx, opts.mode, log)
        peerCases = peers.peerCases(opts.mode, peerSetup.idle)
        results.machine.peers = peerSetup.versions
        results.notes.push(...peerSetup.notes)
      }
      if (scenario === 'peer-http' && !peerSetup.wrk) continue
      for (const def of peerCases[scenario]) {
        await runCase({ ...def, stacks: def.stacks.filter((s) => peerSetup.available.has(s)) }, scenario, peers.measurePeer, opts, results, ctx)
      }
    } else if (H2LOAD_SCENARIOS.includes(scenario)) {
      if (h2loadSetup === null) {
        h2loadSetup = h2loadPeers.prepareH2loadPeers(ctx, log)
        results.machine.h2load = h2loadSetup.versions
        results.notes.push(...h2loadSetup.notes)
      }
      if (h2loadSetup.h2load !== undefined) {
        log(`${scenario}: not measured: ${h2loadSetup.h2load}`)
        results.notes.push(`${scenario}: not measured: ${h2loadSetup.h2load}.`)
        continue
      }
      if (scenario === libraryH2load.SCENARIO) {
        for (const def of libraryH2load.libraryH2loadCases(opts.mode)) await runCase(def, scenario, libraryH2load.measureLibraryH2load, opts, results, ctx)
        continue
      }
      for (const def of h2loadPeers.h2loadPeerCases(opts.mode)[scenario]) {
        // A peer that is not there (no AWS-LC build; rustls-node without
        // HTTP/2 backends for gRPC) is reported as such, not measured.
        const unavailable = { ...h2loadSetup.unavailable, ...(def.kind === 'grpc-peer' ? h2loadSetup.grpcUnavailable : {}) }
        await runCase({ ...def, stacks: def.stacks.filter((s) => unavailable[s] === undefined), unavailable }, scenario, h2loadPeers.measureH2loadPeerCase, opts, results, ctx)
      }
    } else if (scenario === 'limits') {
      const [aes, pk] = limitCases(opts.mode)
      await runCase(aes, scenario, measureAes, opts, results, ctx)
      await runCase(pk, scenario, measurePublicKey, { ...opts, rounds: Math.min(opts.rounds, 3) }, results, ctx)
      for (const def of all.limits) await runCase(def, scenario, scenarios.measure, opts, results, ctx)
    } else if (scenario === 'terminator') {
      const def = terminator.terminatorCase(opts.mode)
      const ready = await terminator.prepareTerminator(ctx, log)
      try {
        if (ready.available) {
          const bin = opts.terminatorBin ?? 'bin/rustls-node.js'
          results.notes.push(`Scenario 5 measured \`node ${bin} serve\` (http mode, workers: 1, log level warn) against bench/node-proxy.js.`)
        } else {
          log(`scenario 5 (terminator): ${ready.reason}`)
          results.notes.push(`Scenario 5 (terminator): ${ready.reason}.${ready.partial ? ' Only the node:tls proxy and the no-TLS proxy were measured.' : ' Skipped.'}`)
        }
        if (ready.available || ready.partial) {
          const stacks = ready.available ? def.stacks : def.stacks.filter((s) => s !== 'rustls')
          await runCase({ ...def, stacks }, scenario, terminator.measureTerminator, opts, results, ctx)
        }
      } finally {
        await terminator.finishTerminator(ctx)
      }
    } else if (scenario === storeResume.SCENARIO) {
      storeSetup ??= storeResume.prepareStoreResume(ctx, log)
      if (storeSetup.reason !== undefined) {
        log(`${scenario}: not measured: ${storeSetup.reason}`)
        results.notes.push(`${scenario}: not measured: ${storeSetup.reason}.`)
        continue
      }
      results.machine.storeResume = storeSetup.versions
      for (const def of storeResume.cases(opts.mode)) {
        // A stack that is not there (no redis-server, no AWS-LC build) is reported as such.
        const unavailable = Object.fromEntries(Object.entries(storeSetup.unavailable).filter(([s]) => def.stacks.includes(s)))
        await runCase({ ...def, stacks: def.stacks.filter((s) => unavailable[s] === undefined), unavailable }, scenario, storeResume.measureStoreResume, opts, results, ctx)
      }
    } else if (scenario === 'resume-share') {
      for (const def of resumeShare.cases(sizes)) await runCase(def, scenario, scenarios.measure, opts, results, ctx)
    } else {
      for (const def of all[scenario]) await runCase(def, scenario, scenarios.measure, opts, results, ctx)
    }
  }

  const load = foreignLoad(runStart, cpuSnapshot())
  const perSample = Object.values(results.cases).flatMap((c) => c.samples.map((s) => s.otherCpu.other))
  results.otherCpu = { ...load, maxSample: Math.max(0, ...perSample) }
  results.finishedAt = new Date().toISOString()
  results.durationS = (Date.now() - t0) / 1000
  if (results.otherCpu.other > 0.05 || results.otherCpu.maxSample > 0.15) {
    results.notes.push(`Other processes were busy during the run (${(100 * load.other).toFixed(0)} % of the machine's CPU on average, up to ${(100 * results.otherCpu.maxSample).toFixed(0)} % during one sample): ` +
      'with only 2 cores they compete with the pinned server and client, so wall-clock rates and, less so, CPU times are noisy. Re-run on a quiet machine before comparing.')
  }
  const { markdown, written } = writeResults(results)
  process.stdout.write(markdown)
  log(`wrote ${written.join(', ')} in ${Math.round(results.durationS)} s`)
}

process.on('SIGINT', () => {
  log('interrupted')
  process.exit(130)
})

main().catch((err) => {
  log(`failed: ${err.stack ?? err}`)
  process.exit(1)
})
