// Every JavaScript sample in README.md and docs/*.md runs, in a folder with
// the certificates the docs name, and prints exactly what its
// `// prints: a | b` comments say (issue 7: every code sample is run).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, describe, test } from 'node:test'

import { fixtures, repoRoot } from '../helpers/certs'

const root = repoRoot()
const f = fixtures()

interface Sample { file: string, line: number, code: string, expected: string[] }

function samples (file: string): Sample[] {
  const text = fs.readFileSync(file, 'utf8')
  const out: Sample[] = []
  const re = /^```js\n([\s\S]*?)^```$/gm
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const code = m[1]
    const expected = [...code.matchAll(/\/\/ prints: (.*)$/gm)].flatMap((p) => p[1].split(' | ').map((s) => s.trim()))
    out.push({ file: path.relative(root, file), line: text.slice(0, m.index).split('\n').length, code, expected })
  }
  return out
}

const docs = [path.join(root, 'README.md'), ...fs.readdirSync(path.join(root, 'docs')).filter((n) => n.endsWith('.md')).map((n) => path.join(root, 'docs', n))]
const all = docs.flatMap(samples)

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-docs-'))
const files: Record<string, Buffer> = {
  'cert.pem': f.localhostEcdsa.cert,
  'key.pem': f.localhostEcdsa.key,
  'rsa-cert.pem': f.localhostRsa.cert,
  'rsa-key.pem': f.localhostRsa.key,
  'a-cert.pem': f.aEcdsa.chain,
  'a-key.pem': f.aEcdsa.key,
  'b-cert.pem': f.bEcdsa.chain,
  'b-key.pem': f.bEcdsa.key,
  'ca.pem': f.ca,
  'client-cert.pem': f.client.cert,
  'client-key.pem': f.client.key,
  'client-ca.pem': f.clientCa,
  'ocsp.der': f.localhostEcdsaOcsp,
  'ticket-keys.bin': f.ticketKeys,
}
for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(work, name), data)
// `require('rustls-node')` resolves to this checkout, as for an installed package.
fs.mkdirSync(path.join(work, 'node_modules'))
fs.symlinkSync(root, path.join(work, 'node_modules', 'rustls-node'), 'dir')
fs.symlinkSync(path.join(root, 'node_modules', 'undici'), path.join(work, 'node_modules', 'undici'), 'dir')

describe('documentation samples', () => {
  test('the docs have samples to run', () => {
    assert.ok(all.length >= 8, `found ${all.length}`)
  })
  for (const sample of all) {
    test(`${sample.file}:${sample.line}`, () => {
      const script = path.join(work, `sample-${sample.line}.js`)
      fs.writeFileSync(script, sample.code)
      const run = spawnSync(process.execPath, [script], { cwd: work, encoding: 'utf8', timeout: 20_000 })
      assert.equal(run.status, 0, `exit ${run.status}\n${run.stdout}\n${run.stderr}`)
      assert.deepEqual(run.stdout.trim().split('\n').filter((l) => l !== ''), sample.expected)
    })
  }
})

describe('node:tls parity table', () => {
  const table = fs.readFileSync(path.join(root, 'docs', 'node-tls-parity.md'), 'utf8')
  const rows = table.split('\n').filter((l) => /^\| `/.test(l))

  test('every supported or different row names a test file that exists (untested rows say so)', () => {
    assert.ok(rows.length >= 60, `found ${rows.length} rows`)
    const problems: string[] = []
    for (const row of rows) {
      const cells = row.split(' | ')
      const status = cells[1]
      const refs = [...(cells.at(-1) ?? '').matchAll(/\b(unit|native|integration|terminator|ecosystem|reliability)\/([a-z0-9-]+)/g)]
      if (status === 'untested' && refs.length > 0) problems.push(`untested but names a test: ${cells[0]}`)
      if (status !== 'unsupported' && status !== 'untested' && refs.length === 0) problems.push(`no test named: ${cells[0]}`)
      for (const [, dir, name] of refs) {
        if (!fs.existsSync(path.join(root, 'test', dir, `${name}.test.ts`))) problems.push(`${dir}/${name} does not exist (${cells[0]})`)
      }
    }
    assert.deepEqual(problems, [])
  })
})

after(() => fs.rmSync(work, { recursive: true, force: true }))
