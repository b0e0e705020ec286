// `ocsp: auto` in the terminator against `openssl ocsp` (responses valid
// one minute, -nmin 1): stapled at start, refreshed at half validity,
// kept while the responder is down, dropped at nextUpdate, stapled again
// when the responder is back; a revoked answer is stapled and logged as an
// error; `ocsp: auto` on a certificate without a responder is a
// configuration error naming the key.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'

import { fixtures } from '../helpers/certs'
import { makeOcspPki, type OcspPki, startResponder } from '../helpers/ocsp-pki'
import { sClient } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, runCli, startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

let pki: OcspPki
let echo: HttpEcho

before(async () => {
  pki = await makeOcspPki(tempDir(), ['good.ocsp.test', 'revoked.ocsp.test'])
  echo = await httpEcho()
})
after(async () => { await echo.close() })

/** What `openssl s_client -status` says about the staple: "none" or "<status> <This Update>". */
async function staple (port: number, name: string): Promise<string> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', name, '-status'])
  if (/OCSP response: no response sent/.test(r.stdout)) return 'none'
  const status = /Cert Status: (\w+)/.exec(r.stdout)?.[1]
  const thisUpdate = /This Update: (.+)/.exec(r.stdout)?.[1]
  assert.ok(status !== undefined && thisUpdate !== undefined, r.stdout + r.stderr)
  return `${status} ${thisUpdate.trim()}`
}

function config (dir: string, names: string[]): string {
  return writeConfig(dir, {
    listen: ['127.0.0.1:0'],
    hosts: names.map((name) => ({
      serverName: name,
      certificates: [{ cert: pki.leaves[name].chain, key: pki.leaves[name].key, ocsp: 'auto' }],
      backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' },
    })),
  })
}

const count = (t: TerminatorProcess, msg: string): number => t.logs().filter((l) => l.msg === msg).length

describe('terminator ocsp: auto', () => {
  it('staples, refreshes before nextUpdate, keeps the last good response while the responder is down, drops it when it expires', async () => {
    let responder = await startResponder(pki, { validMinutes: 1 })
    const t = await startTerminator(config(tempDir(), ['good.ocsp.test']))
    try {
      await t.waitForLog((l) => l.msg === 'OCSP response stapled', 'the first staple')
      await t.waitForLog((l) => l.msg === 'certificates refreshed', 'the refresh')
      const first = await staple(t.port, 'good.ocsp.test')
      assert.match(first, /^good /)

      // Half of the minute later: a fresh response, while the old one is still valid.
      await t.waitForLog((l) => l.msg === 'OCSP response stapled' && count(t, 'OCSP response stapled') >= 2, 'the refresh at half validity', 40_000)
      await new Promise((resolve) => setTimeout(resolve, 200))
      const second = await staple(t.port, 'good.ocsp.test')
      assert.match(second, /^good /)
      assert.notEqual(second, first)

      await responder.stop()
      const down = await t.waitForLog((l) => l.msg === 'OCSP fetch failed; the last good response stays stapled', 'the failed refresh', 40_000)
      assert.equal(down.level, LEVEL.warn)
      assert.equal(down.code, 'ERR_OCSP_UNREACHABLE')
      assert.equal(await staple(t.port, 'good.ocsp.test'), second)

      const expired = await t.waitForLog((l) => l.msg === 'OCSP response expired; no longer stapled', 'the expiry', 40_000)
      assert.equal(expired.level, LEVEL.warn)
      await new Promise((resolve) => setTimeout(resolve, 200))
      assert.equal(await staple(t.port, 'good.ocsp.test'), 'none')

      // The responder is back: the next retry staples again.
      responder = await startResponder(pki, { validMinutes: 1 })
      await t.waitForLog((l) => l.msg === 'OCSP response stapled' && count(t, 'OCSP response stapled') >= 3, 'the staple after the outage', 40_000)
      await new Promise((resolve) => setTimeout(resolve, 200))
      const third = await staple(t.port, 'good.ocsp.test')
      assert.match(third, /^good /)
      assert.notEqual(third, second)
    } finally {
      await responder.stop()
      await stopClean(t)
    }
  })

  it('a revoked answer is stapled and logged as an error; ocsp: auto without a responder is a configuration error', async () => {
    const responder = await startResponder(pki, { revoked: ['revoked.ocsp.test'] })
    const t = await startTerminator(config(tempDir(), ['good.ocsp.test', 'revoked.ocsp.test']))
    try {
      const revoked = await t.waitForLog((l) => l.msg === 'OCSP: the certificate is revoked; replace it', 'the revoked answer')
      assert.equal(revoked.level, LEVEL.error)
      assert.equal(revoked.certificate, pki.leaves['revoked.ocsp.test'].chain)
      await t.waitForLog((l) => l.msg === 'OCSP response stapled', 'the good one')
      await new Promise((resolve) => setTimeout(resolve, 300))
      assert.match(await staple(t.port, 'revoked.ocsp.test'), /^revoked /)
      assert.match(await staple(t.port, 'good.ocsp.test'), /^good /)
    } finally {
      await responder.stop()
      await stopClean(t)
    }

    const f = fixtures()
    const file = writeConfig(tempDir(), {
      listen: ['127.0.0.1:0'],
      hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath, ocsp: 'auto' }], backend: { address: '127.0.0.1:1' } }],
    })
    const r = await runCli(['check', '-c', file])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /hosts\[0\]\.certificates\[0\]\.ocsp: auto: the certificate names no OCSP responder/)
  })
})
