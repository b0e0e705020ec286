#!/usr/bin/env node
'use strict'
// Builds the addon from source: node-gyp (whose binding.gyp action runs
// cargo). Node headers come from the local Node installation, never from the
// network: `npm config get nodedir` if set, else the installation that runs
// this script (<prefix>/include/node), else the node-api-headers package.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function nodeDir () {
  const candidates = []
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir)
  candidates.push(path.resolve(path.dirname(process.execPath), '..'))
  for (const dir of candidates) {
    if (fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return dir
  }
  return null
}

function nodeGyp () {
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp
  }
  try {
    return require.resolve('node-gyp/bin/node-gyp.js')
  } catch {}
  // npm ships node-gyp next to itself.
  const npmDir = path.resolve(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm')
  const bundled = path.join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  if (fs.existsSync(bundled)) return bundled
  return null
}

function main () {
  const gyp = nodeGyp()
  if (!gyp) {
    console.error('rustls-node: node-gyp not found (it ships with npm).')
    process.exit(1)
  }
  const args = [gyp, 'rebuild', '--release']
  const dir = nodeDir()
  if (dir) args.push(`--nodedir=${dir}`)
  const env = { ...process.env }
  if (dir) env.npm_config_nodedir = dir
  const jobs = process.env.JOBS || String(Math.max(1, require('node:os').availableParallelism()))
  args.push(`--jobs=${jobs}`)
  const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env })
  process.exit(run.status === null ? 1 : run.status)
}

main()
