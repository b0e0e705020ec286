#!/usr/bin/env node
'use strict'
// npm install hook. A prebuild for this platform (prebuilds/<platform>-<arch>/,
// shipped in the package) or an existing build is used as is: nothing is
// compiled. Otherwise the addon is built from source, which needs a Rust
// toolchain (cargo), a C++ compiler and Node's headers.
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function existing () {
  try {
    return require('node-gyp-build').path(root)
  } catch {
    return null
  }
}

const found = process.env.npm_config_build_from_source === 'true' ? null : existing()
if (found !== null) {
  if (process.env.npm_config_loglevel === 'verbose') console.log(`rustls-node: using ${path.relative(root, found)}`)
  process.exit(0)
}
console.log('rustls-node: no prebuild for this platform, building from source (cargo + node-gyp)')
const run = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { cwd: root, stdio: 'inherit' })
process.exit(run.status === null ? 1 : run.status)
