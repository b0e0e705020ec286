#!/usr/bin/env node
'use strict'
// npm run test:package: proves that "npm install" of the packed tarball needs
// no Rust toolchain. It makes the prebuild (prebuildify --napi --strip),
// packs, installs the tarball into an empty folder with cargo removed from
// PATH, and uses the package there from require() and from import, doing a
// real TLS handshake (also on the Node builds of scripts/node-matrix.js).
// Fails if anything was compiled during the install. Then
// test/package/prebuild.test.ts checks the prebuild (glibc 2.28 at most on
// Linux, exports) and the install's message when no prebuild matches.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: opts.capture ? 'pipe' : 'inherit', ...opts })
  if (r.status !== 0) {
    if (opts.capture) process.stderr.write(`${r.stdout}\n${r.stderr}\n`)
    throw new Error(`${cmd} ${args.join(' ')} failed with ${r.status}`)
  }
  return r.stdout
}

function withoutCargo (env) {
  const dirs = env.PATH.split(path.delimiter).filter((dir) => !fs.existsSync(path.join(dir, 'cargo')))
  return { ...env, PATH: dirs.join(path.delimiter), CARGO: '/nonexistent/cargo', npm_config_build_from_source: '' }
}

/**
 * A copy of the tracked tree, so that prebuildify's `node-gyp rebuild` does
 * not wipe the working tree's build/ while tests may be loading it. cargo
 * shares the working tree's target/ (CARGO_TARGET_DIR): nothing is rebuilt.
 */
function stage (tmp) {
  const dir = path.join(tmp, 'stage')
  const files = run('git', ['ls-files', '-z'], { capture: true }).split('\0').filter(Boolean)
  for (const file of files) {
    if (!fs.existsSync(path.join(root, file))) continue
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    fs.copyFileSync(path.join(root, file), path.join(dir, file))
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
  return dir
}

/** The Node builds scripts/node-matrix.js cached, if it ran. */
function matrixNodes () {
  const dir = path.join(process.env.RUSTLS_NODE_CACHE || path.join(os.homedir(), '.cache', 'rustls-node'), 'node')
  if (!fs.existsSync(dir)) return []
  return fs.readdirSync(dir).map((v) => path.join(dir, v, 'bin', 'node')).filter((bin) => fs.existsSync(bin))
}

function main () {
  run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'])
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-pack-'))
  const staged = stage(tmp)
  const buildEnv = { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || path.join(root, 'target') }
  run('npm', ['run', 'prebuild'], { cwd: staged, env: buildEnv })
  const prebuilds = path.join(staged, 'prebuilds', `${process.platform}-${process.arch}`)
  const built = fs.readdirSync(prebuilds).filter((n) => n.endsWith('.node'))
  if (built.length === 0) throw new Error(`no prebuild in ${prebuilds}`)
  if (built.length !== 1) throw new Error(`expected one prebuild in ${prebuilds}, found ${built.join(', ')}`)
  const prebuild = path.join(prebuilds, built[0])
  const shipped = path.posix.join('prebuilds', `${process.platform}-${process.arch}`, built[0])

  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: staged, capture: true }))[0]
  const tarball = path.join(tmp, packed.filename)
  console.log(`packed ${packed.filename}: ${(packed.size / 1024 / 1024).toFixed(2)} MiB, ${packed.entryCount} files (unpacked ${(packed.unpackedSize / 1024 / 1024).toFixed(2)} MiB)`)
  if (!packed.files.some((f) => f.path === shipped)) throw new Error(`the tarball lacks ${shipped}`)

  const app = path.join(tmp, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const env = withoutCargo(process.env)
  if (spawnSync('cargo', ['--version'], { env }).status === 0) throw new Error('cargo is still reachable')
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env })
  const installed = path.join(app, 'node_modules', 'rustls-node')
  if (fs.existsSync(path.join(installed, 'build'))) throw new Error('the install compiled the addon instead of using the prebuild')
  if (fs.existsSync(path.join(installed, 'target'))) throw new Error('the install ran cargo')
  const loads = run(process.execPath, ['-p', `require('node-gyp-build').path(${JSON.stringify(installed)})`], { cwd: installed, env, capture: true }).trim()
  if (loads !== path.join(installed, shipped)) throw new Error(`node-gyp-build picks ${loads}, not ${shipped}`)

  const certs = path.join(root, 'test', 'fixtures', 'generated')
  run(process.execPath, [path.join(root, 'scripts', 'gen-certs.js')])
  const handshake = (api) => `
    const fs = require('node:fs')
    const cert = fs.readFileSync(${JSON.stringify(path.join(certs, 'localhost-ecdsa.pem'))})
    const key = fs.readFileSync(${JSON.stringify(path.join(certs, 'localhost-ecdsa.key'))})
    const ca = fs.readFileSync(${JSON.stringify(path.join(certs, 'ca.pem'))})
    const server = ${api}.createServer({ cert, key }, (s) => s.end('ok'))
    server.listen(0, '127.0.0.1', () => {
      const c = ${api}.connect({ port: server.address().port, host: '127.0.0.1', servername: 'localhost', ca })
      let got = ''
      c.on('data', (d) => { got += d })
      c.on('end', () => { console.log(got, c.getProtocol()); server.close() })
      c.on('error', (e) => { console.error(e); process.exit(1) })
    })`
  const cjs = run(process.execPath, ['-e', `const api = require('rustls-node');${handshake('api')}`], { cwd: app, env, capture: true })
  if (!/^ok TLSv1\.3/.test(cjs)) throw new Error(`require() handshake failed: ${cjs}`)
  const esm = run(process.execPath, ['--input-type=module', '-e',
    `import { createServer, connect } from 'rustls-node'; import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${handshake('({ createServer, connect })')}`],
  { cwd: app, env, capture: true })
  if (!/^ok TLSv1\.3/.test(esm)) throw new Error(`import handshake failed: ${esm}`)
  console.log(`installed without cargo and loaded ${shipped}: require() ${cjs.trim()}, import ${esm.trim()}`)
  // The same prebuild on the other Node lines CI tests (scripts/node-matrix.js's cache).
  for (const bin of matrixNodes()) {
    const out = run(bin, ['-e', `const api = require('rustls-node');${handshake('api')}`], { cwd: app, env, capture: true })
    if (!/^ok TLSv1\.3/.test(out)) throw new Error(`require() handshake on ${bin} failed: ${out}`)
    console.log(`  Node ${run(bin, ['--version'], { capture: true }).trim()}: require() ${out.trim()}`)
  }

  // What the prebuild needs (glibc, exports) and what npm install says
  // when no prebuild matches and tools are missing.
  run(process.execPath, ['--test', '--test-reporter=spec', path.join(root, 'dist', 'test', 'package', 'prebuild.test.js')], {
    env: { ...process.env, RUSTLS_NODE_PREBUILD: prebuild, RUSTLS_NODE_TARBALL: tarball }
  })
  fs.rmSync(tmp, { recursive: true, force: true })
}

main()
