// lib/ has no import cycle (issue 19); scripts/check-cycles.js finds one
// that only a lazy require() hid, and lets type-only imports be.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const checker = require(path.join(root, 'scripts', 'check-cycles.js')) as { findCycles: (lib?: string) => string[][] }

test('lib/ has no import cycle', () => {
  assert.deepEqual(checker.findCycles(), [])
})

test('a cycle through a lazy require() is found; a type-only import makes none', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-cycles-'))
  try {
    fs.writeFileSync(path.join(dir, 'a.ts'), "import { b } from './b'\nexport const a = 1 + b\n")
    fs.writeFileSync(path.join(dir, 'b.ts'), "export const b = 2\nexport function lazy () { return require('./c') }\n")
    fs.writeFileSync(path.join(dir, 'c.ts'), "import type { T } from './a'\nimport { type U } from './a'\nexport const c = 3\n")
    assert.deepEqual(checker.findCycles(dir), [])
    fs.writeFileSync(path.join(dir, 'c.ts'), "import { a } from './a'\nexport const c = a\n")
    const cycles = checker.findCycles(dir)
    assert.equal(cycles.length, 1)
    assert.deepEqual(cycles[0].map((f) => path.basename(f)), ['a.ts', 'b.ts', 'c.ts', 'a.ts'])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
