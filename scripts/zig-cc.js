#!/usr/bin/env node
'use strict'
// CC, CXX and LINK for node-gyp in the portable Linux prebuild
// (scripts/prebuild.js sets them): `zig-cc.js cc|c++ ARGS...` runs zig's
// clang and lld for $RUSTLS_NODE_ZIG_TARGET (e.g. x86_64-linux-gnu.2.28),
// linking against zig's stubs of that glibc, so the .node needs no newer
// glibc symbol. zig links its own libc++ statically: no libstdc++ needed.
const { spawnSync } = require('node:child_process')

const [mode, ...args] = process.argv.slice(2)
const zig = process.env.RUSTLS_NODE_ZIG
const target = process.env.RUSTLS_NODE_ZIG_TARGET
if ((mode !== 'cc' && mode !== 'c++') || !zig || !target) {
  console.error('zig-cc.js: usage RUSTLS_NODE_ZIG=zig RUSTLS_NODE_ZIG_TARGET=<arch>-linux-gnu.<glibc> zig-cc.js cc|c++ ARGS...')
  process.exit(2)
}
// zig's linker driver rejects --exclude-libs. native/exports.map (global:
// the two N-API entry points; local: *) already keeps every staticlib
// symbol out of the dynamic table, which pack-check.js verifies with nm.
const kept = args.filter((arg) => arg !== '-Wl,--exclude-libs,ALL')
const r = spawnSync(zig, [mode, '-target', target, ...kept], { stdio: 'inherit' })
if (r.error) console.error(`zig-cc.js: cannot run ${zig}: ${r.error.message}`)
process.exit(r.status === null ? 1 : r.status)
