#!/usr/bin/env node
'use strict'
// npm run prebuild: prebuildify --napi --strip → prebuilds/<platform>-<arch>/.
// node-gyp gets Node's headers from the local installation (nodedir), never
// from the network.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const env = { ...process.env }
const nodedir = path.resolve(path.dirname(process.execPath), '..')
if (env.npm_config_nodedir === undefined && fs.existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  env.npm_config_nodedir = nodedir
}
const bin = require.resolve('prebuildify/bin.js')
const run = spawnSync(process.execPath, [bin, '--napi', '--strip', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env })
process.exit(run.status === null ? 1 : run.status)
