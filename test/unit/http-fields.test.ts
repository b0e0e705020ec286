// The HTTP field rules of http mode come from one table, data/http-fields.csv:
// scripts/gen-http-fields.js renders native/src/proto/http_fields.h (the
// native fronts) and lib/terminator/http-fields.ts (the JS plane). Both
// checked-in copies must be exactly a fresh render.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { isReservedHeader } from '../../lib/terminator/http-backend'
import { HOP_BY_HOP } from '../../lib/terminator/http-fields'

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const generator = require(path.join(root, 'scripts', 'gen-http-fields.js')) as {
  renderNative(text: string, source: string): string
  renderTs(text: string, source: string): string
  parseCsv(text: string, source: string): unknown[]
  CSV: string
  NATIVE_OUTPUT: string
  TS_OUTPUT: string
}

test('native/src/proto/http_fields.h and lib/terminator/http-fields.ts are exactly what scripts/gen-http-fields.js renders', () => {
  const text = fs.readFileSync(generator.CSV, 'utf8')
  assert.equal(fs.readFileSync(generator.NATIVE_OUTPUT, 'utf8'), generator.renderNative(text, generator.CSV))
  assert.equal(fs.readFileSync(generator.TS_OUTPUT, 'utf8'), generator.renderTs(text, generator.CSV))
})

test('the generator refuses a table it would render wrongly', () => {
  const header = 'match,name,rule,reference\n'
  assert.throws(() => generator.parseCsv(`${header}exact,X-Upper,hop-by-hop,x\n`, 't.csv'), /bad name/)
  assert.throws(() => generator.parseCsv(`${header}exact,te,unknown,x\n`, 't.csv'), /unknown rule/)
  assert.throws(() => generator.parseCsv(`${header}prefix,x-,hop-by-hop,x\n`, 't.csv'), /only reserved/)
  assert.throws(() => generator.parseCsv(`${header}exact,te,hop-by-hop,x\nexact,te,hop-by-hop,x\n`, 't.csv'), /twice/)
})

test('the JS plane reads the same rules: hop-by-hop and framing fields, reserved names with _ read as -', () => {
  assert.deepEqual([...HOP_BY_HOP].sort(), ['connection', 'http2-settings', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
  for (const name of ['X-SSL-CIPHER', 'x_ssl_client_verify', 'X-Forwarded-Host', 'x_forwarded_for', 'Forwarded']) assert.equal(isReservedHeader(name), true, name)
  for (const name of ['x-custom', 'x-ssl', 'forwarded-x', 'host']) assert.equal(isReservedHeader(name), false, name)
})
