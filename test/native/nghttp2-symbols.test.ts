// nghttp2 is linked into the addon from the libnghttp2-sys crate (Cargo.toml).
// Node's own binary exports nghttp2_* symbols too: ours must stay hidden,
// and our calls must bind to our copy, never Node's. The dynamic symbol
// table of the .node file has no nghttp2 symbol, defined or undefined; the
// static one has them; and the version our code reports is the crate's
// 1.68.1, not the nghttp2 Node carries (process.versions.nghttp2).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'

import { addon } from '../../lib/native'

const root = path.resolve(__dirname, '..', '..', '..')
const addonFile = path.join(root, 'build', 'Release', 'rustls_node.node')
const linuxOnly = { skip: process.platform !== 'linux' && 'ELF tools: Linux only' }

function tool (cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

test('no nghttp2 symbol in the dynamic symbol table, defined or undefined', linuxOnly, () => {
  const dynamic = tool('nm', ['-D', addonFile])
  assert.ok(dynamic.includes('napi_register_module_v1'), 'nm -D output understood (the module entry is there)')
  assert.deepEqual(dynamic.split('\n').filter((l) => /nghttp2/i.test(l)), [])
  const readelf = tool('readelf', ['--dyn-syms', '--wide', addonFile])
  assert.deepEqual(readelf.split('\n').filter((l) => /nghttp2/i.test(l)), [])
})

test('nghttp2 is in the static symbol table: linked in, local', linuxOnly, () => {
  const all = tool('nm', [addonFile]).split('\n').filter((l) => / nghttp2_session_mem_recv2$/.test(l))
  assert.equal(all.length, 1, 'nghttp2_session_mem_recv2 defined once')
  assert.match(all[0], / t nghttp2_session_mem_recv2$/, 'a local (hidden) text symbol')
})

test('our calls bind to our nghttp2 1.68.1, not Node\'s', {
  skip: process.versions.nghttp2 === '1.68.1' && 'this Node carries nghttp2 1.68.1 too: the versions cannot tell the copies apart',
}, () => {
  assert.equal(addon.nghttp2Version(), '1.68.1')
})
