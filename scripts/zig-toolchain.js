#!/usr/bin/env node
'use strict'
// The toolchain of the portable Linux prebuild: zig (C/C++ compiler and
// linker with glibc stubs of any version) and cargo-zigbuild (cargo with
// zig as linker and CC for a `<triple>.<glibc>` target).
//
//   node scripts/zig-toolchain.js            where each is, or what is missing
//   node scripts/zig-toolchain.js --install  installs the missing ones, pinned,
//                                            under ~/.cache/rustls-node
//
// zig comes from the `ziglang` PyPI package (pip install --target, so no
// Python environment is touched); cargo-zigbuild from crates.io (cargo
// install --root). Either one already on PATH is used as it is.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ZIGLANG_VERSION = '0.17.1'
const CARGO_ZIGBUILD_VERSION = '0.24.1'

function cacheDir () {
  return process.env.RUSTLS_NODE_CACHE || path.join(os.homedir(), '.cache', 'rustls-node')
}

function works (cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : null
}

function python () {
  for (const cmd of ['python3', 'python']) if (works(cmd, ['--version']) !== null) return cmd
  return null
}

/** The zig executable: $ZIG, zig on PATH, the cached ziglang, or an installed ziglang module. */
function findZig () {
  const candidates = []
  if (process.env.ZIG) candidates.push(process.env.ZIG)
  candidates.push('zig', path.join(cacheDir(), `ziglang-${ZIGLANG_VERSION}`, 'ziglang', 'zig'))
  for (const zig of candidates) if (works(zig, ['version']) !== null) return zig
  const py = python()
  if (py !== null) {
    const dir = works(py, ['-c', 'import ziglang, os; print(os.path.dirname(ziglang.__file__))'])
    if (dir !== null && works(path.join(dir, 'zig'), ['version']) !== null) return path.join(dir, 'zig')
  }
  return null
}

/** The cargo-zigbuild executable (cargo runs it as `cargo-zigbuild zigbuild ...`). */
function findCargoZigbuild () {
  const cached = path.join(cacheDir(), `cargo-zigbuild-${CARGO_ZIGBUILD_VERSION}`, 'bin', 'cargo-zigbuild')
  for (const bin of ['cargo-zigbuild', cached]) if (works(bin, ['--version']) !== null) return bin
  return null
}

function find () {
  return { zig: findZig(), cargoZigbuild: findCargoZigbuild() }
}

/** What to run to get the missing parts, for error messages. */
function missingHelp (found) {
  const lines = []
  if (found.zig === null) lines.push(`zig: pip install ziglang==${ZIGLANG_VERSION} (or zig on PATH, or ZIG=/path/to/zig)`)
  if (found.cargoZigbuild === null) lines.push(`cargo-zigbuild: cargo install cargo-zigbuild --locked --version ${CARGO_ZIGBUILD_VERSION}`)
  lines.push('(node scripts/zig-toolchain.js --install does both, under ~/.cache/rustls-node)')
  return lines.join('\n')
}

function install () {
  let found = find()
  if (found.zig === null) {
    const py = python()
    if (py === null) throw new Error('zig is missing and there is no python3 to install the ziglang package with')
    const dir = path.join(cacheDir(), `ziglang-${ZIGLANG_VERSION}`)
    const partial = `${dir}.partial`
    fs.rmSync(partial, { recursive: true, force: true })
    run(py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', partial, `ziglang==${ZIGLANG_VERSION}`])
    fs.rmSync(dir, { recursive: true, force: true })
    fs.renameSync(partial, dir)
  }
  if (found.cargoZigbuild === null) {
    const root = path.join(cacheDir(), `cargo-zigbuild-${CARGO_ZIGBUILD_VERSION}`)
    run(process.env.CARGO || 'cargo', ['install', '--quiet', '--locked', '--root', root, 'cargo-zigbuild', '--version', CARGO_ZIGBUILD_VERSION])
  }
  found = find()
  if (found.zig === null || found.cargoZigbuild === null) throw new Error(`installed, but still missing:\n${missingHelp(found)}`)
  return found
}

function run (cmd, args) {
  console.log(`zig-toolchain: ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error ? r.error.message : `exit ${r.status}`})`)
}

module.exports = { find, missingHelp }

if (require.main === module) {
  try {
    const found = process.argv.includes('--install') ? install() : find()
    console.log(`zig: ${found.zig === null ? 'missing' : `${found.zig} (${works(found.zig, ['version'])})`}`)
    console.log(`cargo-zigbuild: ${found.cargoZigbuild === null ? 'missing' : `${found.cargoZigbuild} (${works(found.cargoZigbuild, ['--version'])})`}`)
    if (found.zig === null || found.cargoZigbuild === null) {
      console.error(missingHelp(found))
      process.exit(1)
    }
  } catch (err) {
    console.error(`zig-toolchain: ${err.message}`)
    process.exit(1)
  }
}
