#!/usr/bin/env node
'use strict'
// Builds the Rust staticlib (rustls-ffi + our glue) with cargo and puts what
// the C++ addon needs in one known place:
//   target/ffi/librustls_node.a   the staticlib
//   target/ffi/include/rustls.h   rustls-ffi's header, from its build script
//   target/ffi/include/nghttp2/   nghttp2.h and nghttp2ver.h, from libnghttp2-sys'
//                                 build script (its nghttp2 is in the staticlib)
// Run by binding.gyp's action; also usable on its own. Builds --locked
// --release: Cargo.lock pins every crate.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const outDir = path.join(root, 'target', 'ffi')

function main () {
  // scripts/memcheck.sh builds an instrumented addon against the staticlib
  // already built: cargo must not run there, or the sanitizer's CFLAGS
  // would rebuild aws-lc with them into the shared target/.
  if (process.env.RUSTLS_NODE_USE_BUILT_STATICLIB === '1') {
    for (const file of ['librustls_node.a', path.join('include', 'rustls.h'), path.join('include', 'nghttp2', 'nghttp2.h')]) {
      if (!fs.existsSync(path.join(outDir, file))) {
        console.error(`rustls-node: RUSTLS_NODE_USE_BUILT_STATICLIB=1 but ${path.join(outDir, file)} is missing (run scripts/build-rust.js first)`)
        process.exit(1)
      }
    }
    return
  }
  let cargo = process.env.CARGO || 'cargo'
  const args = ['build', '--release', '--locked', '--lib', '--message-format=json-render-diagnostics']
  let env = process.env
  // The portable Linux prebuild (scripts/prebuild.js): cargo-zigbuild builds
  // for <arch>-unknown-linux-gnu.<glibc>, aws-lc's C code included, with
  // zig as CC and linker.
  const zigTarget = process.env.RUSTLS_NODE_ZIG_TARGET
  if (zigTarget) {
    const [arch, ...rest] = zigTarget.split('-')
    cargo = process.env.RUSTLS_NODE_CARGO_ZIGBUILD || 'cargo-zigbuild'
    args.splice(0, 1, 'zigbuild', '--target', `${arch}-unknown-${rest.join('-')}`)
    // CC/CXX/LINK name our node-gyp wrapper: cargo-zigbuild sets its own.
    env = { ...process.env, CARGO_ZIGBUILD_ZIG_PATH: process.env.RUSTLS_NODE_ZIG }
    for (const name of ['CC', 'CXX', 'LINK']) delete env[name]
  }
  const run = spawnSync(cargo, args, {
    cwd: root,
    env,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  if (run.error) {
    console.error(`rustls-node: cannot run ${cargo}: ${run.error.message}`)
    console.error('Building from source needs a Rust toolchain (https://rustup.rs).')
    process.exit(1)
  }
  let staticlib = null
  let header = null
  let nghttp2Include = null
  for (const line of run.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'rustls_node') {
      staticlib = msg.filenames.find((f) => f.endsWith('.a')) || staticlib
    }
    if (msg.reason === 'build-script-executed' && /rustls-ffi/.test(msg.package_id)) {
      const candidate = path.join(msg.out_dir, 'include', 'rustls.h')
      if (fs.existsSync(candidate)) header = candidate
    }
    if (msg.reason === 'build-script-executed' && /libnghttp2-sys/.test(msg.package_id)) {
      const candidate = path.join(msg.out_dir, 'i', 'include', 'nghttp2')
      if (fs.existsSync(path.join(candidate, 'nghttp2.h'))) nghttp2Include = candidate
    }
  }
  if (run.status !== 0) process.exit(run.status || 1)
  if (!staticlib || !header || !nghttp2Include) {
    console.error('rustls-node: cargo did not report the staticlib, rustls.h and nghttp2\'s headers')
    process.exit(1)
  }
  fs.mkdirSync(path.join(outDir, 'include', 'nghttp2'), { recursive: true })
  copyIfChanged(staticlib, path.join(outDir, 'librustls_node.a'))
  copyIfChanged(header, path.join(outDir, 'include', 'rustls.h'))
  for (const name of ['nghttp2.h', 'nghttp2ver.h']) {
    copyIfChanged(path.join(nghttp2Include, name), path.join(outDir, 'include', 'nghttp2', name))
  }
}

// Keeps mtimes stable when nothing changed, so make does not relink.
function copyIfChanged (from, to) {
  const a = fs.readFileSync(from)
  if (fs.existsSync(to) && fs.readFileSync(to).equals(a)) return
  fs.writeFileSync(to, a)
}

main()
