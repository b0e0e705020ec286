'use strict'
// The C++ sources of the addon: every .cc under native/src, sorted, as
// paths relative to the package root (binding.gyp lists them through this,
// and scripts/memcheck.sh builds the same list).
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function walk (dir) {
  const out = []
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`
    if (entry.isDirectory()) out.push(...walk(rel))
    else if (entry.name.endsWith('.cc')) out.push(rel)
  }
  return out.sort()
}

module.exports = walk('native/src')
