#!/usr/bin/env node
'use strict'
// The newest glibc a Linux ELF file (the addon's .node) needs to load:
//
//   node scripts/glibc-version.js FILE [--max 2.28]
//
// The dynamic loader refuses the file when the running glibc lacks any
// version named in its version-needs section (.gnu.version_r), so that
// section, read with `readelf --version-info`, is the requirement; the
// symbols asking for the newest version come from `objdump -T`. With --max,
// exits 1 when the file needs a newer glibc than that.
const { spawnSync } = require('node:child_process')

function tool (cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.error) throw new Error(`cannot run ${cmd} (binutils): ${r.error.message}`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`)
  return r.stdout
}

function compare (a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/**
 * The GLIBC_x.y versions in `readelf --version-info` output's version-needs
 * section, with the library that provides each (libc.so.6, libm.so.6, ...).
 */
function parseVersionNeeds (text) {
  const needs = []
  let inNeeds = false
  let file = null
  for (const line of text.split('\n')) {
    if (/^Version needs section/.test(line)) { inNeeds = true; continue }
    if (/^Version (symbols|definition) section/.test(line)) { inNeeds = false; continue }
    if (!inNeeds) continue
    const f = line.match(/File: (\S+)/)
    if (f) { file = f[1]; continue }
    const n = line.match(/Name: GLIBC_(\d+(?:\.\d+)+)\b/)
    if (n) needs.push({ version: n[1], file })
  }
  return needs
}

/** Symbols per GLIBC version, from `objdump -T` (undefined dynamic symbols). */
function parseSymbols (text) {
  const byVersion = new Map()
  for (const line of text.split('\n')) {
    const m = line.match(/\*UND\*\s+\S+\s+(?:\(?GLIBC_(\d+(?:\.\d+)+)\)?)\s+(\S+)/)
    if (!m) continue
    if (!byVersion.has(m[1])) byVersion.set(m[1], [])
    byVersion.get(m[1]).push(m[2])
  }
  return byVersion
}

/** { max, versions, libraries, symbols }: max is null for a file needing no versioned glibc symbol. */
function glibcRequirement (file) {
  const needs = parseVersionNeeds(tool('readelf', ['--version-info', '--wide', file]))
  const versions = [...new Set(needs.map((n) => n.version))].sort(compare)
  const max = versions.length > 0 ? versions[versions.length - 1] : null
  const symbols = parseSymbols(tool('objdump', ['-T', file]))
  const libraries = tool('readelf', ['-d', '--wide', file]).split('\n')
    .map((l) => l.match(/\(NEEDED\)\s+Shared library: \[(.+)\]/)).filter(Boolean).map((m) => m[1])
  return { max, versions, libraries, symbols: max === null ? [] : (symbols.get(max) ?? []) }
}

module.exports = { glibcRequirement, compare, parseVersionNeeds }

if (require.main === module) {
  const args = process.argv.slice(2)
  const i = args.indexOf('--max')
  const limit = i >= 0 ? args.splice(i, 2)[1] : null
  if (args.length !== 1 || (i >= 0 && !/^\d+(\.\d+)+$/.test(limit ?? ''))) {
    console.error('usage: node scripts/glibc-version.js FILE [--max 2.28]')
    process.exit(2)
  }
  try {
    const req = glibcRequirement(args[0])
    console.log(`${args[0]}: needs glibc ${req.max ?? '(none)'} (versions ${req.versions.join(', ') || '-'}; libraries ${req.libraries.join(', ')})`)
    if (limit !== null && req.max !== null && compare(req.max, limit) > 0) {
      console.error(`needs GLIBC_${req.max}, above the ${limit} limit, for: ${req.symbols.join(', ')}`)
      process.exit(1)
    }
  } catch (err) {
    console.error(`glibc-version: ${err.message}`)
    process.exit(2)
  }
}
