#!/usr/bin/env node
'use strict'
// npm test: compile TypeScript, make the certificate fixtures, then run every
// test file with node:test. Extra arguments filter files by substring, e.g.
// `npm test -- integration/server`.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const suites = ['unit', 'native', 'integration', 'terminator', 'ecosystem', 'reliability']

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts })
  if (r.status !== 0) process.exit(r.status === null ? 1 : r.status)
}

function testFiles (filters) {
  const out = []
  for (const suite of suites) {
    const dir = path.join(root, 'dist', 'test', suite)
    if (!fs.existsSync(dir)) continue
    for (const name of fs.readdirSync(dir).sort()) {
      if (!name.endsWith('.test.js')) continue
      const rel = path.join('dist', 'test', suite, name)
      if (filters.length === 0 || filters.some((f) => rel.includes(f))) out.push(rel)
    }
  }
  return out
}

// Static checks first (issue 19): eslint on lib/ and test/, no import
// cycle in lib/, native/src formatted as .clang-format says.
function staticChecks () {
  run(process.execPath, [path.join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), 'lib', 'test'])
  run(process.execPath, [path.join(__dirname, 'check-cycles.js')])
  const sources = []
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = `${dir}/${e.name}`
      if (e.isDirectory()) walk(rel)
      else if (/\.(cc|h)$/.test(e.name)) sources.push(rel)
    }
  }
  walk('native/src')
  const version = spawnSync('clang-format', ['--version'], { encoding: 'utf8' })
  if (version.error !== undefined || !/ 14\./.test(version.stdout)) {
    // Other majors format a few constructs differently: the check would flap.
    console.error('clang-format 14 is needed to check native/src (Debian 12: apt-get install clang-format; else pip install clang-format==14.0.6)')
    process.exit(1)
  }
  const format = spawnSync('clang-format', ['--dry-run', '--Werror', ...sources], { cwd: root, stdio: 'inherit' })
  if (format.status !== 0) {
    console.error('native/src is not formatted as .clang-format says: clang-format -i native/src/**/*.{cc,h}')
    process.exit(format.status ?? 1)
  }
}
staticChecks()

// Compiled tests of sources deleted since the last run must not run again.
fs.rmSync(path.join(root, 'dist', 'test'), { recursive: true, force: true })
run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'])
// The Rust glue's own tests (pointer round trips with rustls-ffi, resumption
// on the acceptor path, the ticketer), when a toolchain is at hand.
if (process.env.SKIP_RUST_TESTS !== '1' && spawnSync('cargo', ['--version']).status === 0) {
  run('cargo', ['test', '--release', '--locked', '--quiet'])
}
run(process.execPath, [path.join(__dirname, 'gen-certs.js')])
const files = testFiles(process.argv.slice(2))
if (files.length === 0) {
  console.error('no test files matched')
  process.exit(1)
}
// The stream-pump pass (RUSTLS_NODE_TEST_PUMP=stream) preloads the module
// that makes the library's servers and clients default to the stream pump;
// child processes the tests start (terminators) get it through NODE_OPTIONS.
const preload = process.env.RUSTLS_NODE_TEST_PUMP === 'stream' ? ['--require', path.join(root, 'dist', 'test', 'helpers', 'stream-mode.js')] : []
const env = preload.length > 0 ? { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${preload.join(' ')}`.trim() } : process.env
run(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=180000', `--test-concurrency=${process.env.TEST_CONCURRENCY || 2}`, ...files], { env })
