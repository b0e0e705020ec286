// The native <-> JS ABI is defined once (native/src/abi.h): lib/abi.ts is
// rendered from it, and the addon exports the same tables at load.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { ABI } from '../../lib/abi'
import { addon } from '../../lib/native'

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const generator = require(path.join(root, 'scripts', 'gen-abi.js')) as {
  parse(text: string): Record<string, Array<{ name: string, value: number, doc: string }>>
  render(tables: unknown): string
  renderFromHeader(): string
  OUTPUT: string
}

test('lib/abi.ts is exactly what scripts/gen-abi.js renders from native/src/abi.h', () => {
  assert.equal(fs.readFileSync(generator.OUTPUT, 'utf8'), generator.renderFromHeader())
})

test('the addon exports the same tables it was built with (checked at load by lib/native.ts)', () => {
  assert.deepEqual(addon.abi, ABI)
  assert.equal(addon.abi.Flag.TransportEnd, 1 << 9)
  assert.equal(addon.abi.HostIndex.Challenge, -2)
})

test('the generator refuses a table it cannot read or one that repeats a value', () => {
  const header = fs.readFileSync(path.join(root, 'native', 'src', 'abi.h'), 'utf8')
  assert.throws(() => generator.parse(header.replace('#define RN_ABI_FLAG(X)', '#define RN_ABI_FLAGS(X)')), /no #define RN_ABI_FLAG/)
  assert.throws(() => generator.parse(header.replace('X(PeerClosed, 1 << 1,', 'X(PeerClosed, 1 << 0,')), /repeats/)
  assert.throws(() => generator.parse(header.replace('X(Error, 4,', 'X(Error, four,')), /cannot read the value/)
})
