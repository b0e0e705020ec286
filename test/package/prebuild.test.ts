// The packed package's prebuild and install script, run by
// `npm run test:package` (scripts/pack-check.js), which builds the prebuild,
// packs the tarball and passes both here:
//   RUSTLS_NODE_PREBUILD  prebuilds/linux-x64/rustls-node.glibc.node
//   RUSTLS_NODE_TARBALL   the npm pack output
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, test } from 'node:test'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { glibcRequirement, compare, parseVersionNeeds } = require('../../../scripts/glibc-version.js') as {
  glibcRequirement: (file: string) => { max: string | null, versions: string[], libraries: string[], symbols: string[] }
  compare: (a: string, b: string) => number
  parseVersionNeeds: (text: string) => Array<{ version: string, file: string | null }>
}

const root = path.resolve(__dirname, '..', '..', '..')
function fromEnv (name: string): string {
  const value = process.env[name]
  if (value === undefined) throw new Error(`run by npm run test:package (scripts/pack-check.js), which sets ${name}`)
  return value
}
const prebuild = fromEnv('RUSTLS_NODE_PREBUILD')
const tarball = fromEnv('RUSTLS_NODE_TARBALL')

/** Node 22+ itself needs glibc 2.28; the prebuild must load wherever Node does. */
const PORTABLE_GLIBC = '2.28'
// What a glibc system always has; libstdc++ and libgcc_s carry versions of
// their own that an older distribution lacks.
const SYSTEM_LIBRARIES = new Set(['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'libutil.so.1', 'ld-linux-x86-64.so.2', 'ld-linux-aarch64.so.1'])

// ELF files and node-gyp-build's LIBC override: Linux only.
const linuxOnly = { skip: process.platform !== 'linux' && 'Linux only' }
/** The prebuild's libc tag (prebuildify --tag-libc), and the other one. */
const flavour = path.basename(prebuild).split('.').find((t) => t === 'glibc' || t === 'musl')
const otherLibc = flavour === 'musl' ? 'glibc' : 'musl'
const glibcOnly = { skip: flavour !== 'glibc' && `not a glibc prebuild: ${path.basename(prebuild)}` }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-install-'))
after(() => fs.rmSync(tmp, { recursive: true, force: true }))

test(`the prebuild needs glibc ${PORTABLE_GLIBC} at most, and no C++ runtime of the build machine`, glibcOnly, () => {
  const req = glibcRequirement(prebuild)
  assert.ok(req.max !== null, 'no GLIBC_ version read: readelf output not understood')
  assert.ok(compare(req.max, PORTABLE_GLIBC) <= 0, `needs GLIBC_${req.max} for ${req.symbols.join(', ')}`)
  assert.deepEqual(req.libraries.filter((l) => !SYSTEM_LIBRARIES.has(l)), [])
})

test('the glibc check reads version needs, not symbol names: a sample needing GLIBC_2.34 is reported as 2.34', linuxOnly, () => {
  const sample = [
    "Version needs section '.gnu.version_r' contains 2 entries:",
    '  000000: Version: 1  File: libc.so.6  Cnt: 2',
    '  0x0010:   Name: GLIBC_2.34  Flags: none  Version: 3',
    '  0x0020:   Name: GLIBC_2.2.5  Flags: none  Version: 2',
    '  0x0030: Version: 1  File: libstdc++.so.6  Cnt: 1',
    '  0x0040:   Name: GLIBCXX_3.4.29  Flags: none  Version: 4',
  ].join('\n')
  assert.deepEqual(parseVersionNeeds(sample), [{ version: '2.34', file: 'libc.so.6' }, { version: '2.2.5', file: 'libc.so.6' }])
  assert.ok(compare('2.34', PORTABLE_GLIBC) > 0 && compare('2.3.4', PORTABLE_GLIBC) < 0 && compare('2.28', PORTABLE_GLIBC) === 0)
})

test('a build made with the system compiler on a newer glibc fails the same check', glibcOnly, (t) => {
  const host = path.join(root, 'build', 'Release', 'rustls_node.node')
  const runtime = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
  if (!fs.existsSync(host) || runtime === undefined || compare(runtime, PORTABLE_GLIBC) <= 0) {
    t.skip(`needs build/Release from a glibc above ${PORTABLE_GLIBC} (this one: ${runtime ?? 'none'})`)
    return
  }
  const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'glibc-version.js'), host, '--max', PORTABLE_GLIBC], { encoding: 'utf8' })
  assert.equal(r.status, 1, r.stdout + r.stderr)
  assert.match(r.stderr, /needs GLIBC_2\.(29|[3-9]\d)\b/)
})

test('the prebuild exports the two N-API entry points and nothing else', linuxOnly, () => {
  const r = spawnSync('nm', ['-D', '--defined-only', prebuild], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const names = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[2]).filter(Boolean).sort()
  assert.deepEqual(names, ['napi_register_module_v1', 'node_api_module_get_api_version_v1'])
})

/**
 * `npm install TARBALL` in a new folder with only the named tools on PATH
 * (symlinked into a folder of their own), with node-gyp-build's LIBC
 * override set to the other libc, so the shipped prebuild does not match.
 */
function installWithout (name: string, tools: string[]): { status: number | null, output: string } {
  const bin = path.join(tmp, `${name}-bin`)
  fs.mkdirSync(bin)
  for (const tool of ['node', 'npm', 'sh', ...tools]) {
    // python3 may be a version manager's shim that needs its own PATH.
    const found = tool === 'node'
      ? process.execPath
      : spawnSync(tool === 'python3' ? 'python3' : 'sh', tool === 'python3' ? ['-c', 'import sys; print(sys.executable)'] : ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim()
    assert.ok(found !== '', `${tool} is not installed here`)
    fs.symlinkSync(found, path.join(bin, tool))
  }
  const app = path.join(tmp, name)
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: bin, LIBC: otherLibc, npm_config_update_notifier: 'false' }
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, env, encoding: 'utf8' })
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` }
}

test('no matching prebuild and neither cargo nor a C++ compiler: npm install fails with one message naming platform, prebuilds and what to install', linuxOnly, () => {
  const r = installWithout('bare', [])
  assert.notEqual(r.status, 0, r.output)
  assert.match(r.output, /rustls-node: cannot build the native addon: tools are missing/)
  assert.match(r.output, new RegExp(`platform: linux-${process.arch} \\(${otherLibc}\\), Node ${process.version.replace(/\./g, '\\.')}`))
  assert.match(r.output, new RegExp(`prebuilds in this package: linux-${process.arch} \\(${flavour ?? 'none'}\\); none matches this platform`))
  assert.match(r.output, /- a Rust toolchain \(cargo\): https:\/\/rustup\.rs/)
  assert.match(r.output, /- a C\+\+ compiler: /)
  assert.match(r.output, /- make \(node-gyp runs it\)/)
  assert.doesNotMatch(r.output, /gyp ERR!/)
})

test('no matching prebuild, a C++ compiler but no cargo: the message asks for cargo only', linuxOnly, () => {
  const r = installWithout('nocargo', ['c++', 'make', 'python3'])
  assert.notEqual(r.status, 0, r.output)
  assert.match(r.output, /- a Rust toolchain \(cargo\)/)
  assert.doesNotMatch(r.output, /- a C\+\+ compiler|- make|- Python/)
  assert.doesNotMatch(r.output, /gyp ERR!/)
})
