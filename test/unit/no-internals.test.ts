// lib/ reaches into no net.Socket internals (issue 19): native code never
// takes a descriptor away from a net.Socket; a socket a server or client
// makes natively has no net.Socket under it, and one the application hands
// in is only read and written through its public stream interface. Any
// of these in lib/ means a second, hidden path came back.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\._handle\b|\[['"]_handle['"]\]/, 'a libuv handle (_handle)'],
  [/\bhandle\??\.(readStop|readStart|fd|reading)\b/, "a handle's readStop/readStart/fd"],
  [/\.\s*_(read|write|writev|final|destroy)\s*=/, 'an overwritten stream method'],
  [/\bprocess\.env\b/, 'an environment variable choosing a path'],
]

function sources (dir: string): string[] {
  const out: string[] = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sources(p))
    else if (entry.name.endsWith('.ts')) out.push(p)
  }
  return out
}

test('lib/ touches no net.Socket internals and reads no environment variable to choose a data path', () => {
  const found: string[] = []
  for (const file of sources(path.join(root, 'lib'))) {
    // The terminator's control plane reads its own documented variables
    // (passphraseEnv, store credentials): only the library proper is held
    // to the rule on the environment.
    const terminator = file.includes(`${path.sep}terminator${path.sep}`)
    const lines = fs.readFileSync(file, 'utf8').split('\n')
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '')
      for (const [re, what] of FORBIDDEN) {
        if (terminator && what.startsWith('an environment')) continue
        if (re.test(code)) found.push(`${path.relative(root, file)}:${i + 1}: ${what}: ${line.trim()}`)
      }
    })
  }
  assert.deepEqual(found, [])
})

test('the check finds what it looks for', () => {
  const sample = ['const fd = sock._handle.fd', 'handle.readStop()', 's._write = () => {}', 'if (process.env.X) {}']
  for (const line of sample) assert.ok(FORBIDDEN.some(([re]) => re.test(line)), line)
})
