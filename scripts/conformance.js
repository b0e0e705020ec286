#!/usr/bin/env node
'use strict'
// npm run test:conformance: tlsfuzzer (test/conformance/tlsfuzzer, vendored)
// against every data plane, compared with test/conformance/expected.json.
//
// For each target of TARGETS (started on 127.0.0.1:0) the scripts of SCRIPTS
// run one at a time, each under a timeout and seeded (run-script.py), so that
// their -n sampling draws the same subtests on every run. Every subtest must
// end as the expectation file says: "pass", or a failure with its reason
// (rustls-upstream, feature-absent, script-unfit). The run fails on a new
// failure, on an expected failure that now passes, and on a subtest that did
// not run. `--update` rewrites the expectation file from this run instead:
// reasons come from test/conformance/reasons.json (one rule per reviewed
// failure pattern); a failure no rule explains is written as "unreviewed",
// which a normal run refuses.
//
// Options: --update; --explain (re-apply reasons.json to the unreviewed
// failures of expected.json, running nothing); --target NAME[,NAME] and --script SUBSTRING to run a
// part (with --update, only that part of the file is rewritten); --logs DIR
// keeps every script's output. Builds nothing: the addon and dist/ must exist
// (npm test or npm run build:ts).
// Environment: TLSFUZZER_PYTHON (a python with tlslite-ng and ecdsa; default
// a venv made here, in ~/.cache/rustls-node/tlsfuzzer-venv).
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { echo } = require('./conformance-server.js')

const root = path.resolve(__dirname, '..')
const here = path.join(root, 'test', 'conformance')
const expectedFile = path.join(here, 'expected.json')
const reasonsFile = path.join(here, 'reasons.json')
const REASONS = ['rustls-upstream', 'feature-absent', 'script-unfit']
const SEED = 20260101
const SCRIPT_TIMEOUT_MS = 120_000
// tlsfuzzer needs these exact versions (vendor README, tlsfuzzer's requirements.txt).
const PIP_PINS = ['tlslite-ng==0.9.0b2', 'ecdsa==0.19.2', 'six==1.17.0']

// ECDHE with an AEAD suite for the TLS 1.2 scripts: their defaults are RSA
// key exchange and CBC, which rustls lacks on purpose.
const ECDHE = ['-d']
const GCM = ['-C', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256']

// [script, arguments]: the scripts that fit a TLS 1.2 + 1.3 AEAD-only
// server with one RSA-2048 certificate (an echo application), with the
// arguments that make them negotiate what rustls has (-d: ECDHE instead of
// RSA key exchange; -C: an AEAD suite instead of CBC). -n samples the
// large ones (seeded); -n 0 runs all. test/conformance/README.md lists the
// vendored scripts left out and why.
const SCRIPTS = [
  // TLS 1.2
  ['test-aes-gcm-nonces', [...ECDHE, ...GCM]],
  ['test-ccs', [...ECDHE, ...GCM]],
  ['test-chacha20', ['--extra-exts']],
  ['test-connection-abort', [...ECDHE, ...GCM]],
  ['test-conversation', [...ECDHE, ...GCM]],
  ['test-cve-2004-0079', [...GCM]],
  ['test-cve-2016-6309', [...ECDHE, ...GCM]],
  ['test-downgrade-protection', [...ECDHE]],
  ['test-early-application-data', [...ECDHE, ...GCM]],
  ['test-ecdhe-rsa-key-exchange-with-bad-messages', [...GCM]],
  ['test-extensions', []],
  ['test-fuzzed-ciphertext', [...ECDHE, ...GCM]],
  ['test-hello-request-by-client', [...ECDHE, ...GCM]],
  ['test-interleaved-CKE-with-CCS', [...GCM]],
  ['test-invalid-cipher-suites', []],
  ['test-invalid-client-hello', []],
  ['test-invalid-client-hello-w-record-overflow', [...ECDHE, ...GCM]],
  ['test-invalid-compression-methods', [...ECDHE, ...GCM]],
  ['test-invalid-content-type', [...ECDHE, ...GCM]],
  ['test-large-hello', [...ECDHE]],
  ['test-lengths', [...ECDHE, ...GCM, '-n', '50']],
  ['test-no-mlkem-in-old-tls', [...ECDHE, ...GCM]],
  ['test-record-layer-fragmentation', [...ECDHE, ...GCM]],
  ['test-signature-algorithms', []],
  ['test-truncating-of-client-hello', [...ECDHE, ...GCM]],
  ['test-version-numbers', [...ECDHE, ...GCM]],
  ['test-zero-length-data', [...ECDHE, ...GCM]],
  // TLS 1.3
  ['test-tls13-0rtt-garbage', [...ECDHE]],
  ['test-tls13-ccs', []],
  ['test-tls13-certificate-compression', [...ECDHE]],
  ['test-tls13-connection-abort', []],
  ['test-tls13-conversation', []],
  ['test-tls13-count-tickets', []],
  ['test-tls13-crfg-curves', []],
  ['test-tls13-ecdhe-curves', []],
  ['test-tls13-ecdsa-support', []],
  ['test-tls13-eddsa', []],
  ['test-tls13-empty-alert', []],
  ['test-tls13-finished', []],
  ['test-tls13-finished-plaintext', []],
  ['test-tls13-hrr', []],
  ['test-tls13-invalid-ciphers', ['-n', '0']],
  ['test-tls13-keyshare-omitted', []],
  ['test-tls13-keyupdate', []],
  ['test-tls13-keyupdate-from-server', []],
  ['test-tls13-large-number-of-extensions', []],
  ['test-tls13-legacy-version', []],
  ['test-tls13-lengths', ['-n', '50']],
  ['test-tls13-multiple-ccs-messages', []],
  ['test-tls13-no-unknown-groups', []],
  ['test-tls13-nociphers', []],
  ['test-tls13-obsolete-curves', []],
  ['test-tls13-pkcs-signature', []],
  ['test-tls13-record-layer-limits', []],
  ['test-tls13-record-padding', []],
  ['test-tls13-rsa-signatures', []],
  ['test-tls13-rsapss-signatures', []],
  ['test-tls13-session-resumption', [...ECDHE]],
  ['test-tls13-shuffled-extentions', []],
  ['test-tls13-signature-algorithms', []],
  ['test-tls13-symetric-ciphers', []],
  ['test-tls13-unencrypted-alert', []],
  ['test-tls13-unrecognised-groups', []],
  ['test-tls13-version-negotiation', [...ECDHE, ...GCM]],
  ['test-tls13-zero-content-type', []],
  ['test-tls13-zero-length-data', []],
]

// The data planes. Each runs every script against the same expectations;
// expected.json's "targets" holds the few subtests where one truly differs.
const TARGETS = [
  { name: 'library', start: (pki) => startLibrary(pki, []) },
  { name: 'library-native', start: (pki) => startLibrary(pki, ['--native']) },
  { name: 'terminator-tcp', start: (pki) => startTerminator(pki, 'tcp') },
  { name: 'terminator-http', start: (pki) => startTerminator(pki, 'http') },
]

function usage (msg) {
  console.error(msg)
  process.exit(2)
}

function parseArgs (argv) {
  const o = { update: false, explain: false, targets: null, script: null, logs: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--update') o.update = true
    else if (a === '--target') o.targets = String(argv[++i]).split(',')
    else if (a === '--script') o.script = String(argv[++i])
    else if (a === '--logs') o.logs = path.resolve(String(argv[++i]))
    else if (a === '--explain') o.explain = true
    else usage(`unknown argument ${a}`)
  }
  return o
}

// ---------------------------------------------------------------- python

function python () {
  if (process.env.TLSFUZZER_PYTHON) return process.env.TLSFUZZER_PYTHON
  const venv = path.join(os.homedir(), '.cache', 'rustls-node', 'tlsfuzzer-venv')
  const py = path.join(venv, 'bin', 'python')
  const stamp = path.join(venv, 'pins.txt')
  const want = PIP_PINS.join('\n')
  if (fs.existsSync(py) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === want) return py
  console.log(`making the tlsfuzzer venv in ${venv} (${PIP_PINS.join(', ')})`)
  fs.rmSync(venv, { recursive: true, force: true })
  fs.mkdirSync(path.dirname(venv), { recursive: true })
  const steps = [
    ['python3', ['-m', 'venv', venv]],
    [py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...PIP_PINS]],
  ]
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`)
  }
  fs.writeFileSync(stamp, want)
  return py
}

// ---------------------------------------------------------------- targets

function makePki (dir) {
  const cert = path.join(dir, 'cert.pem')
  const key = path.join(dir, 'key.pem')
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '30', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'pipe' })
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`)
  return { dir, cert, key }
}

// Starts `cmd args`, resolves with its process and the port `findPort`
// reads from its stdout lines.
function startProcess (label, cmd, args, findPort) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd: root, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    const timer = setTimeout(() => fail(new Error(`${label} did not start in 20 s\n${out}${err}`)), 20_000)
    function fail (e) {
      clearTimeout(timer)
      proc.kill('SIGKILL')
      reject(e)
    }
    proc.stderr.setEncoding('utf8').on('data', (s) => { err += s })
    proc.stdout.setEncoding('utf8').on('data', (s) => {
      out += s
      for (const line of out.split('\n')) {
        let port
        try { port = findPort(JSON.parse(line)) } catch { continue }
        if (port) {
          clearTimeout(timer)
          proc.stdout.removeAllListeners('data')
          proc.stdout.resume()
          resolve({ port, proc, stop: () => stopProcess(proc) })
          return
        }
      }
    })
    proc.once('exit', (code, signal) => fail(new Error(`${label} exited (${code ?? signal})\n${out}${err}`)))
  })
}

function stopProcess (proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve()
    const t = setTimeout(() => proc.kill('SIGKILL'), 10_000)
    proc.removeAllListeners('exit')
    proc.once('exit', () => { clearTimeout(t); resolve() })
    proc.kill('SIGTERM')
  })
}

function startLibrary (pki, extra) {
  return startProcess('library server', process.execPath,
    [path.join(__dirname, 'conformance-server.js'), '--cert', pki.cert, '--key', pki.key, ...extra],
    (msg) => msg.port)
}

function listen (server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

// The terminator as its users run it (`rustls-node serve -c FILE`, native
// data plane by default) in front of an echo backend (tcp mode) or an HTTP
// backend answering every request with a short body (http mode).
async function startTerminator (pki, mode) {
  const backend = mode === 'tcp'
    ? net.createServer((s) => echo(s))
    : http.createServer((req, res) => { req.resume(); res.end('ok\n') })
  const backendPort = await listen(backend)
  const config = {
    listen: ['127.0.0.1:0'],
    // As the library with top-level cert/key: every name is served.
    strictSNI: false,
    log: { level: 'info' },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: pki.cert, key: pki.key }],
      backend: { address: `127.0.0.1:${backendPort}`, mode },
    }],
  }
  const file = path.join(pki.dir, `terminator-${mode}.json`)
  fs.writeFileSync(file, JSON.stringify(config, null, 2))
  const t = await startProcess(`terminator (${mode})`, process.execPath,
    [path.join(root, 'bin', 'rustls-node.js'), 'serve', '-c', file],
    (msg) => msg.msg === 'listening' && msg.port)
  return {
    port: t.port,
    proc: t.proc,
    stop: async () => {
      await t.stop()
      backend.closeAllConnections?.()
      await new Promise((resolve) => backend.close(() => resolve()))
    },
  }
}

// ---------------------------------------------------------------- scripts

// Runs one script; resolves with {subtests: {name: {ok, error}}, problem,
// ms, output}. `problem` is set when the script did not run to its end.
function runScript (py, script, args, port) {
  return new Promise((resolve) => {
    const started = Date.now()
    const proc = spawn(py, [path.join(here, 'run-script.py'), String(SEED), script,
      '-h', '127.0.0.1', '-p', String(port), ...args], {
      cwd: here,
      env: { ...process.env, PYTHONHASHSEED: '0', PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    proc.stdout.setEncoding('utf8').on('data', (s) => { output += s })
    proc.stderr.setEncoding('utf8').on('data', (s) => { output += s })
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL') }, SCRIPT_TIMEOUT_MS)
    proc.once('close', (code) => {
      clearTimeout(timer)
      const subtests = parseOutput(output)
      let problem = null
      if (timedOut) problem = `timed out after ${SCRIPT_TIMEOUT_MS / 1000} s`
      else if (!/^FAIL: \d+$/m.test(output)) problem = `ended before its summary (exit ${code}): ${lastLine(output)}`
      else if (Object.keys(subtests).length === 0) problem = 'ran no subtest'
      resolve({ subtests, problem, ms: Date.now() - started, output })
    })
  })
}

function lastLine (text) {
  const lines = text.trim().split('\n')
  return lines[lines.length - 1] ?? ''
}

// tlsfuzzer prints each subtest as a block: its name (most scripts add
// " ..."), then "OK", or "Error while processing" and a traceback whose last
// line is the exception, then a blank line. "sanity" runs twice (first and
// last); it fails if either run fails.
function parseOutput (output) {
  const subtests = {}
  let name = null // first line of the current block
  let traceback = null
  let blank = true
  const chained = /^(During handling of the above exception|The above exception was the direct cause)/
  for (const line of output.split('\n')) {
    if (traceback !== null) {
      const last = traceback[traceback.length - 1]
      if (line === '' && last !== undefined && /^\S/.test(last) && !chained.test(last)) {
        if (name !== null) subtests[name] = { ok: false, error: last.trim() }
        traceback = null
        name = null
        blank = true
      } else if (line !== '') {
        traceback.push(line)
      }
      continue
    }
    if (line === '') { blank = true; continue }
    if (line === 'OK' && name !== null) {
      if (subtests[name] === undefined) subtests[name] = { ok: true }
      name = null
    } else if (line === 'Error while processing' && name !== null) {
      traceback = []
    } else if (blank) {
      name = line.replace(/ \.\.\.$/, '')
    }
    blank = false
  }
  if (traceback !== null && name !== null) subtests[name] = { ok: false, error: (traceback.pop() ?? 'error').trim() }
  return subtests
}

// ---------------------------------------------------------------- expectations

function loadJson (file, fallback) {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : fallback
}

// The expectation of one subtest on one target: "pass" or [reason, error].
function expectation (expected, target, script, subtest) {
  const override = expected.targets?.[target]?.[script]
  if (override !== undefined && Object.hasOwn(override, subtest)) return override[subtest]
  return expected.scripts?.[script]?.[subtest]
}

function explain (rules, script, subtest, error) {
  for (const rule of rules) {
    if (rule.script !== undefined && !new RegExp(rule.script).test(script)) continue
    if (rule.subtest !== undefined && !new RegExp(rule.subtest).test(subtest)) continue
    if (rule.error !== undefined && !new RegExp(rule.error).test(error)) continue
    return rule.reason
  }
  return 'unreviewed'
}

function checkFile (expected) {
  const bad = []
  const visit = (where, map) => {
    for (const [script, subs] of Object.entries(map ?? {})) {
      for (const [name, e] of Object.entries(subs)) {
        if (e === 'pass') continue
        if (!Array.isArray(e) || !REASONS.includes(e[0])) bad.push(`${where}${script} / ${name}: ${JSON.stringify(e)}`)
      }
    }
  }
  visit('', expected.scripts)
  for (const [t, map] of Object.entries(expected.targets ?? {})) visit(`[${t}] `, map)
  return bad
}

// ---------------------------------------------------------------- main

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const wallStart = Date.now()
  if (!fs.existsSync(path.join(root, 'dist', 'lib', 'index.js'))) {
    usage('dist/lib/index.js is missing: run npm test or npm run build:ts first')
  }
  const expected = loadJson(expectedFile, { seed: SEED, scripts: {}, targets: {} })
  const rules = loadJson(reasonsFile, { rules: [] }).rules
  if (opts.explain) {
    // Gives the unreviewed failures of expected.json the reasons of the
    // rules as they are now, without running anything.
    const visit = (map) => {
      for (const [script, subs] of Object.entries(map ?? {})) {
        for (const [name, e] of Object.entries(subs)) {
          if (Array.isArray(e) && !REASONS.includes(e[0])) e[0] = explain(rules, script, name, e[1])
        }
      }
    }
    visit(expected.scripts)
    for (const map of Object.values(expected.targets ?? {})) {
      visit(map)
      // An override with the shared outcome and reason is no override.
      for (const [script, subs] of Object.entries(map)) {
        for (const [name, e] of Object.entries(subs)) {
          const b = expected.scripts?.[script]?.[name]
          if (e === b || (Array.isArray(e) && Array.isArray(b) && e[0] === b[0])) delete subs[name]
        }
        if (Object.keys(subs).length === 0) delete map[script]
      }
    }
    fs.writeFileSync(expectedFile, JSON.stringify(expected, null, 1) + '\n')
    const bad = checkFile(expected)
    console.log(`${bad.length} failures without a reviewed reason`)
    for (const b of bad) console.log(`  ${b}`)
    return
  }
  if (!opts.update) {
    const bad = checkFile(expected)
    if (bad.length > 0) {
      console.error(`${expectedFile}: expected failures without a reason (${REASONS.join(', ')}):`)
      for (const b of bad) console.error(`  ${b}`)
      process.exit(1)
    }
  }
  const py = python()
  const targets = TARGETS.filter((t) => opts.targets === null || opts.targets.includes(t.name))
  const scripts = SCRIPTS.filter(([s]) => opts.script === null || s.includes(opts.script))
  if (targets.length === 0 || scripts.length === 0) usage('no target or script matched')
  if (opts.logs) fs.mkdirSync(opts.logs, { recursive: true })
  const pki = makePki(fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-conformance-')))

  // results[target][script] = {subtests, problem}
  const results = {}
  const problems = []
  let passed = 0
  let failed = 0
  const expectedFailures = Object.fromEntries(REASONS.map((r) => [r, 0]))
  const report = (msg) => { problems.push(msg); console.log(`  FAIL ${msg}`) }

  try {
    for (const target of targets) {
      const t0 = Date.now()
      const server = await target.start(pki)
      results[target.name] = {}
      let targetSubtests = 0
      try {
        for (const [script, args] of scripts) {
          const r = await runScript(py, script, args, server.port)
          results[target.name][script] = r
          targetSubtests += Object.keys(r.subtests).length
          if (opts.logs) fs.writeFileSync(path.join(opts.logs, `${target.name}--${script}.log`), r.output)
          if (server.proc.exitCode !== null || server.proc.signalCode !== null) {
            throw new Error(`${target.name} died during ${script}`)
          }
          if (r.problem) {
            // A script that did not run to its end is a failure, updating or not.
            failed++
            report(`${target.name}: ${script}: ${r.problem}`)
            if (opts.update) console.log(r.output.split('\n').slice(-5).join('\n'))
          }
          if (opts.update) continue
          const known = expected.scripts?.[script] ?? {}
          const override = expected.targets?.[target.name]?.[script] ?? {}
          const names = new Set([...Object.keys(known), ...Object.keys(override), ...Object.keys(r.subtests)])
          for (const name of names) {
            const want = expectation(expected, target.name, script, name)
            const got = r.subtests[name]
            const where = `${target.name}: ${script}: ${name}`
            if (got === undefined) {
              failed++
              report(`${where}: did not run${r.problem ? ` (${r.problem})` : ''}`)
            } else if (want === undefined) {
              if (got.ok) passed++
              else { failed++; report(`${where}: not in ${path.basename(expectedFile)}: ${got.error}`) }
            } else if (want === 'pass') {
              if (got.ok) passed++
              else { failed++; report(`${where}: new failure: ${got.error}`) }
            } else if (got.ok) {
              failed++
              report(`${where}: expected to fail (${want[0]}) but passes: update ${path.basename(expectedFile)}`)
            } else {
              expectedFailures[want[0]]++
              if (got.error !== want[1]) console.log(`  note ${where}: fails differently: ${got.error} (expected: ${want[1]})`)
            }
          }
        }
      } finally {
        await server.stop()
      }
      console.log(`${target.name}: ${scripts.length} scripts, ${targetSubtests} subtests, ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }
  } finally {
    fs.rmSync(pki.dir, { recursive: true, force: true })
  }

  const wall = ((Date.now() - wallStart) / 1000).toFixed(1)
  if (opts.update) {
    if (failed > 0) {
      console.log(`${failed} scripts did not run to their end; ${path.basename(expectedFile)} left as it was`)
      process.exitCode = 1
      return
    }
    writeExpectations(expected, results, rules, targets, scripts)
    return
  }
  console.log('')
  console.log(`conformance: ${targets.length} targets (${targets.map((t) => t.name).join(', ')}), ${scripts.length} scripts each, seed ${SEED}`)
  console.log(`subtests passed: ${passed}`)
  console.log(`expected failures: ${REASONS.map((r) => `${r} ${expectedFailures[r]}`).join(', ')}`)
  console.log(`unexpected results: ${problems.length}`)
  console.log(`wall time: ${wall} s`)
  const ok = passed + Object.values(expectedFailures).reduce((a, b) => a + b, 0)
  console.log(`conformance: ${ok} passed, ${failed} failed`)
  if (failed > 0) process.exitCode = 1
}

// The first target's results become the shared expectations; a target that
// differs gets an override for that subtest only. A failure keeps the
// reason it had while its error is the same, else takes the first matching
// rule of reasons.json.
function writeExpectations (expected, results, rules, targets, scripts) {
  const out = { seed: SEED, scripts: { ...expected.scripts }, targets: { ...expected.targets } }
  const entry = (script, name, got, old) => {
    if (got.ok) return 'pass'
    // A reviewed reason stays while the failure is the same one.
    const same = Array.isArray(old) && REASONS.includes(old[0]) && old[1] === got.error
    const reason = same ? old[0] : explain(rules, script, name, got.error)
    return [reason, got.error]
  }
  // Without the first target in this run, only overrides are rewritten.
  const base = targets[0].name === TARGETS[0].name ? targets[0].name : null
  for (const [script] of scripts) {
    if (base !== null) {
      const subs = {}
      for (const [name, got] of Object.entries(results[base][script].subtests)) {
        subs[name] = entry(script, name, got, expected.scripts?.[script]?.[name])
      }
      out.scripts[script] = sortKeys(subs)
    }
    const subs = out.scripts[script] ?? {}
    for (const t of targets.filter((x) => x.name !== base)) {
      const o = {}
      for (const [name, got] of Object.entries(results[t.name][script].subtests)) {
        const e = entry(script, name, got, expectation(expected, t.name, script, name))
        // Error texts may differ between planes (a reset or a close); only
        // another outcome or reason makes an override.
        const same = e === 'pass' ? subs[name] === 'pass' : Array.isArray(subs[name]) && subs[name][0] === e[0]
        if (!same) o[name] = e
      }
      out.targets[t.name] = { ...out.targets[t.name] }
      if (Object.keys(o).length > 0) out.targets[t.name][script] = sortKeys(o)
      else delete out.targets[t.name][script]
    }
  }
  if (scripts.length === SCRIPTS.length) {
    // Scripts no longer run leave the file.
    const names = new Set(SCRIPTS.map(([s]) => s))
    for (const s of Object.keys(out.scripts)) if (!names.has(s)) delete out.scripts[s]
    for (const t of Object.keys(out.targets)) {
      for (const s of Object.keys(out.targets[t])) if (!names.has(s)) delete out.targets[t][s]
    }
  }
  out.scripts = sortKeys(out.scripts)
  for (const t of Object.keys(out.targets)) out.targets[t] = sortKeys(out.targets[t])
  fs.writeFileSync(expectedFile, JSON.stringify(out, null, 1) + '\n')
  const bad = checkFile(out)
  console.log(`wrote ${expectedFile}; ${bad.length} failures without a reviewed reason`)
  for (const b of bad.slice(0, 50)) console.log(`  ${b}`)
}

function sortKeys (o) {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
