#!/usr/bin/env node
'use strict'
// npm install hook. A prebuild for this platform (prebuilds/<platform>-<arch>/,
// shipped in the package) or an existing build is used as is: nothing is
// compiled. Otherwise the addon is built from source, which needs a Rust
// toolchain (cargo), a C++ compiler, make and Python (node-gyp) and Node's
// headers. When one is missing, or the build fails, the install ends with one
// message that says which platform this is, which prebuilds the package
// ships, and what to install.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function existing () {
  try {
    return require('node-gyp-build').path(root)
  } catch {
    return null
  }
}

/** The libc node-gyp-build matches prebuilds against (its own rule). */
function libc () {
  if (process.platform !== 'linux') return null
  return process.env.LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc')
}

function platformName () {
  const c = libc()
  return `${process.platform}-${process.arch}${c === null ? '' : ` (${c})`}`
}

/** "linux-x64 (glibc), darwin-arm64", from the package's prebuilds/ folder. */
function shippedPrebuilds () {
  const dir = path.join(root, 'prebuilds')
  if (!fs.existsSync(dir)) return []
  const out = []
  for (const platform of fs.readdirSync(dir).sort()) {
    const files = fs.readdirSync(path.join(dir, platform)).filter((n) => n.endsWith('.node'))
    for (const file of files) {
      const tag = file.split('.').find((t) => t === 'glibc' || t === 'musl')
      out.push(tag === undefined ? platform : `${platform} (${tag})`)
    }
  }
  return out
}

function runs (cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' })
  return r.status === 0
}

/** What building from source needs and this machine lacks, with how to get it. */
function missingTools () {
  const missing = []
  if (!runs(process.env.CARGO || 'cargo', ['--version'])) {
    missing.push('a Rust toolchain (cargo): https://rustup.rs, or your distribution\'s cargo package')
  }
  const cxx = process.env.CXX ? [process.env.CXX.split(' ')[0]] : ['c++', 'g++', 'clang++']
  if (!cxx.some((c) => runs(c, ['--version']))) {
    missing.push(process.platform === 'darwin'
      ? 'a C++ compiler: xcode-select --install'
      : 'a C++ compiler: e.g. apt-get install g++ make python3 (Debian/Ubuntu), apk add g++ make python3 (Alpine), dnf install gcc-c++ make python3')
  }
  if (!runs('make', ['--version'])) missing.push('make (node-gyp runs it)')
  if (!['python3', 'python'].some((p) => runs(p, ['--version']))) missing.push('Python 3 (node-gyp runs it)')
  return missing
}

function explain (problem, missing) {
  const shipped = shippedPrebuilds()
  const lines = [
    '',
    `rustls-node: ${problem}`,
    `  platform: ${platformName()}, Node ${process.version}`,
    `  prebuilds in this package: ${shipped.length > 0 ? shipped.join(', ') : 'none'}; ${forced() ? 'npm_config_build_from_source asks' : 'none matches this platform, so the addon must be built'} from source`
  ]
  if (process.platform === 'win32') {
    lines.push('  Windows is not supported yet: the native socket pump (native/src/js/connection_io.cc) uses POSIX calls (writev, fcntl) that have no Windows port.')
    console.error(lines.join('\n'))
    return
  }
  if (missing.length > 0) {
    lines.push('  to build from source, install:')
    for (const m of missing) lines.push(`    - ${m}`)
  } else {
    lines.push('  building from source needs cargo (Rust), a C++ compiler, make and Python 3; the node-gyp output above says what failed')
  }
  lines.push('  then run npm install again (or npm rebuild rustls-node).', '')
  console.error(lines.join('\n'))
}

function forced () {
  return process.env.npm_config_build_from_source === 'true'
}

function main () {
  const found = forced() ? null : existing()
  if (found !== null) {
    if (process.env.npm_config_loglevel === 'verbose') console.log(`rustls-node: using ${path.relative(root, found)}`)
    return 0
  }
  if (process.platform === 'win32') {
    explain('cannot build the native addon on Windows', [])
    return 1
  }
  const missing = missingTools()
  if (missing.length > 0) {
    explain('cannot build the native addon: tools are missing', missing)
    return 1
  }
  console.log(`rustls-node: no prebuild for ${platformName()}, building from source (cargo + node-gyp)`)
  const run = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { cwd: root, stdio: 'inherit' })
  if (run.status === 0) return 0
  explain('building the native addon from source failed', [])
  return run.status === null ? 1 : run.status
}

process.exit(main())
