// The HTTP field rules of http mode come from one table, data/http-fields.csv:
// scripts/gen-http-fields.js renders native/src/proto/http_fields.h, the code
// that uses them (the native fronts). The checked-in copy must be exactly a
// fresh render; what the rules do to requests is tested end to end
// (test/terminator/http.test.ts, test/reliability/abuse.test.ts).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'


// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const generator = require(path.join(root, 'scripts', 'gen-http-fields.js')) as {
  renderNative(text: string, source: string): string
  parseCsv(text: string, source: string): unknown[]
  CSV: string
  NATIVE_OUTPUT: string
}

test('native/src/proto/http_fields.h is exactly what scripts/gen-http-fields.js renders', () => {
  const text = fs.readFileSync(generator.CSV, 'utf8')
  assert.equal(fs.readFileSync(generator.NATIVE_OUTPUT, 'utf8'), generator.renderNative(text, generator.CSV))
})

test('the generator refuses a table it would render wrongly', () => {
  const header = 'match,name,rule,reference\n'
  assert.throws(() => generator.parseCsv(`${header}exact,X-Upper,hop-by-hop,x\n`, 't.csv'), /bad name/)
  assert.throws(() => generator.parseCsv(`${header}exact,te,unknown,x\n`, 't.csv'), /unknown rule/)
  assert.throws(() => generator.parseCsv(`${header}prefix,x-,hop-by-hop,x\n`, 't.csv'), /only reserved/)
  assert.throws(() => generator.parseCsv(`${header}exact,te,hop-by-hop,x\nexact,te,hop-by-hop,x\n`, 't.csv'), /twice/)
})
