#!/usr/bin/env node
'use strict'
// npm run prebuild [-- --host-toolchain]: prebuildify --napi --strip →
// prebuilds/<platform>-<arch>/, tagged with the libc on Linux (node-gyp-build
// then never loads a glibc build on musl or the other way round).
//
// On glibc Linux the build is portable: zig compiles and links against
// glibc 2.28 stubs (cargo-zigbuild for the Rust staticlib, aws-lc's C code
// included; scripts/zig-cc.js for the addon), and the result is checked to
// need no newer glibc. --host-toolchain builds with the system compiler
// instead (the result needs the glibc it was built on). musl, macOS and
// Windows always use the system toolchain.
//
// node-gyp gets Node's headers from the local installation (nodedir), never
// from the network.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const { glibcRequirement, compare } = require('./glibc-version')
const zigToolchain = require('./zig-toolchain')

/** Oldest glibc the Linux prebuild supports: what Node 22+ itself needs. */
const PORTABLE_GLIBC = '2.28'
const ZIG_ARCH = { x64: 'x86_64', arm64: 'aarch64' }

const root = path.resolve(__dirname, '..')

function fail (message) {
  console.error(`rustls-node prebuild: ${message}`)
  process.exit(1)
}

function libc () {
  if (process.platform !== 'linux') return null
  // The rule prebuildify and node-gyp-build use for the libc tag.
  return process.env.PREBUILD_LIBC || (fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc')
}

function main () {
  const args = process.argv.slice(2)
  const hostToolchain = args.includes('--host-toolchain')
  const passThrough = args.filter((a) => a !== '--host-toolchain')
  const env = { ...process.env }
  const nodedir = path.resolve(path.dirname(process.execPath), '..')
  if (env.npm_config_nodedir === undefined && fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
    env.npm_config_nodedir = nodedir
  }
  const flavour = libc()
  const portable = flavour === 'glibc' && !hostToolchain
  if (portable) {
    if (ZIG_ARCH[process.arch] === undefined) fail(`no portable build for linux-${process.arch}; use --host-toolchain`)
    const found = zigToolchain.find()
    if (found.zig === null || found.cargoZigbuild === null) {
      fail(`the portable Linux build (glibc ${PORTABLE_GLIBC}) needs zig and cargo-zigbuild:\n${zigToolchain.missingHelp(found)}\nor build for this machine's glibc only: npm run prebuild -- --host-toolchain`)
    }
    const wrapper = path.join(__dirname, 'zig-cc.js')
    Object.assign(env, {
      RUSTLS_NODE_ZIG: found.zig,
      RUSTLS_NODE_ZIG_TARGET: `${ZIG_ARCH[process.arch]}-linux-gnu.${PORTABLE_GLIBC}`,
      RUSTLS_NODE_CARGO_ZIGBUILD: found.cargoZigbuild,
      CC: `${process.execPath} ${wrapper} cc`,
      CXX: `${process.execPath} ${wrapper} c++`,
      LINK: `${process.execPath} ${wrapper} c++`
    })
  }
  const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`)
  // A previous build of the same flavour (or an untagged one) would sit
  // beside the new one, and node-gyp-build might prefer it.
  if (fs.existsSync(outDir)) {
    for (const name of fs.readdirSync(outDir)) {
      const tags = name.split('.')
      if (name.endsWith('.node') && (flavour === null || tags.includes(flavour) || !tags.some((t) => t === 'glibc' || t === 'musl'))) {
        fs.rmSync(path.join(outDir, name))
      }
    }
  }
  const bin = require.resolve('prebuildify/bin.js')
  const flags = ['--napi', '--strip', ...(flavour !== null ? ['--tag-libc'] : []), ...passThrough]
  const run = spawnSync(process.execPath, [bin, ...flags], { cwd: root, stdio: 'inherit', env })
  if (run.status !== 0) process.exit(run.status === null ? 1 : run.status)
  if (!portable) return
  const built = fs.readdirSync(outDir).filter((n) => n.endsWith('.node') && n.split('.').includes('glibc'))
  if (built.length !== 1) fail(`expected one glibc prebuild in ${outDir}, found ${built.join(', ') || 'none'}`)
  const file = path.join(outDir, built[0])
  const req = glibcRequirement(file)
  if (req.max === null || compare(req.max, PORTABLE_GLIBC) > 0) {
    fs.rmSync(file)
    fail(`${file} needs glibc ${req.max} (above ${PORTABLE_GLIBC}) for ${req.symbols.join(', ')}; removed it`)
  }
  console.log(`rustls-node prebuild: ${path.relative(root, file)} needs glibc ${req.max} at most (${req.libraries.join(', ')})`)
}

main()
