#!/usr/bin/env node
'use strict'
// Fails when lib/ has an import cycle (issue 19: the socket -> wrap ->
// client -> socket circle was worked around with a lazy require; a cycle
// makes module initialisation order matter). Type-only imports vanish at
// compile time and do not count; every other relative import or
// require() of lib/ does. Prints each cycle once, as a path of modules.
const fs = require('node:fs')
const path = require('node:path')

const root = path.resolve(__dirname, '..')

function files (dir) {
  const out = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...files(p))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

/** Runtime imports of `file` that resolve inside lib/. */
function imports (file, lib) {
  const text = fs.readFileSync(file, 'utf8')
  const out = new Set()
  const patterns = [
    // import x from '...', import { a } from '...', export { a } from '...', export * from '...'
    /^\s*(import|export)\s+(?!type\s)([^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm,
    /require\(\s*['"](\.[^'"]+)['"]\s*\)/g,
  ]
  for (const re of patterns) {
    for (const m of text.matchAll(re)) {
      const spec = m[3] ?? m[1]
      // `import { type A, type B } from` is type-only too.
      if (m[2] !== undefined && /^\{\s*(type\s+\w+\s*,?\s*)+\}\s*from\s+$/.test(m[2])) continue
      const target = path.resolve(path.dirname(file), spec)
      for (const candidate of [`${target}.ts`, path.join(target, 'index.ts')]) {
        if (candidate.startsWith(lib) && fs.existsSync(candidate)) out.add(candidate)
      }
    }
  }
  return [...out]
}

function findCycles (lib = path.join(root, 'lib')) {
  const graph = new Map(files(lib).map((f) => [f, imports(f, lib)]))
  const cycles = []
  const state = new Map()
  const stack = []
  const visit = (node) => {
    state.set(node, 'open')
    stack.push(node)
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }
    stack.pop()
    state.set(node, 'done')
  }
  for (const node of graph.keys()) if (!state.has(node)) visit(node)
  return cycles.map((c) => c.map((f) => path.relative(root, f)))
}

module.exports = { findCycles, imports }

if (require.main === module) {
  const cycles = findCycles()
  for (const c of cycles) console.error(`import cycle: ${c.join(' -> ')}`)
  if (cycles.length > 0) process.exit(1)
  console.log('no import cycle in lib/')
}
