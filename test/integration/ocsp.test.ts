// OCSP stapling material fetched from `openssl ocsp` and verified before
// use: delegated and issuer-signed responses, revoked, wrong signer, wrong
// certificate, expired, malformed, responder down; a good staple reaches
// `openssl s_client -status`.
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { createServer, fetchOcsp, fetchOcspStaple, ocspRequest, ocspResponderUrl, verifyOcspResponse } from '../../lib/index'
import { makeOcspPki, type OcspPki, startResponder } from '../helpers/ocsp-pki'
import { sClient } from '../helpers/peers'
import { waitNoLiveHandles } from '../helpers/tls'

describe('OCSP staples', () => {
  let pki: OcspPki
  let dir: string
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-ocsp-'))
    pki = await makeOcspPki(dir, ['good.ocsp.test', 'bad.ocsp.test'])
  })
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  const chain = (name: string): string => fs.readFileSync(pki.leaves[name].chain, 'utf8')
  const x509 = (file: string): X509Certificate => new X509Certificate(fs.readFileSync(file))

  it('fetches a delegated responder\'s answer, verifies it, and staples it', async () => {
    const responder = await startResponder(pki, { validMinutes: 30 })
    try {
      assert.equal(ocspResponderUrl(x509(pki.leaves['good.ocsp.test'].cert)), `http://127.0.0.1:${pki.port}`)
      const result = await fetchOcspStaple(chain('good.ocsp.test'))
      assert.equal(result.status, 'good')
      const minutes = (result.nextUpdate.getTime() - Date.now()) / 60_000
      assert.ok(minutes > 28 && minutes <= 30.1, `nextUpdate in ${minutes} min`)
      const server = createServer({ hosts: [{ serverName: 'good.ocsp.test', certificates: [{ cert: chain('good.ocsp.test'), key: fs.readFileSync(pki.leaves['good.ocsp.test'].key), ocsp: result.der }] }] })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const port = (server.address() as { port: number }).port
      const s = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', 'good.ocsp.test', '-status'])
      server.close()
      assert.match(s.stdout, /OCSP Response Status: successful/)
      assert.match(s.stdout, /Cert Status: good/)
      assert.match(s.stdout, /Responder Id: CN = OCSP Test Responder/)
    } finally {
      await responder.stop()
    }
    await waitNoLiveHandles()
  })

  it('accepts the issuer as signer, reports revoked, and refuses a stranger\'s signature or another certificate\'s answer', async () => {
    const leaf = x509(pki.leaves['good.ocsp.test'].cert)
    const other = x509(pki.leaves['bad.ocsp.test'].cert)
    const issuer = x509(pki.issuer)
    const url = `http://127.0.0.1:${pki.port}`
    let responder = await startResponder(pki, { signer: 'issuer', revoked: ['bad.ocsp.test'] })
    try {
      assert.equal((await fetchOcspStaple(chain('good.ocsp.test'))).status, 'good')
      const revoked = await fetchOcspStaple(chain('bad.ocsp.test'))
      assert.equal(revoked.status, 'revoked')
      assert.ok(revoked.revokedAt !== undefined && revoked.revokedAt.getTime() < Date.now())
      const forGood = await fetchOcsp(url, ocspRequest(leaf, issuer))
      assert.throws(() => verifyOcspResponse(forGood, other, issuer), { code: 'ERR_OCSP_INVALID', message: /no matching CertID/ })
      assert.throws(() => verifyOcspResponse(forGood, leaf, issuer, new Date(Date.now() + 2 * 3_600_000)), { code: 'ERR_OCSP_EXPIRED' })
      assert.throws(() => verifyOcspResponse(forGood.subarray(0, forGood.length - 3), leaf, issuer), { code: 'ERR_OCSP_INVALID', message: /malformed/ })
      // producedAt (the first GeneralizedTime, inside the signed data) one second later.
      const tampered = Buffer.from(forGood)
      const at = tampered.indexOf(Buffer.from([0x18, 0x0f])) + 2 + 13
      tampered[at] = tampered[at] === 0x39 ? 0x38 : tampered[at] + 1
      assert.throws(() => verifyOcspResponse(tampered, leaf, issuer), { code: 'ERR_OCSP_INVALID', message: /signature does not verify/ })
    } finally {
      await responder.stop()
    }
    responder = await startResponder(pki, { signer: 'stranger' })
    try {
      await assert.rejects(fetchOcspStaple(chain('good.ocsp.test')), { code: 'ERR_OCSP_INVALID', message: /\(CN=OCSP Test Root\) is not issued by the certificate's issuer/ })
    } finally {
      await responder.stop()
    }
    // Nobody listens any more.
    await assert.rejects(fetchOcspStaple(chain('good.ocsp.test')), { code: 'ERR_OCSP_UNREACHABLE', message: new RegExp(`127\\.0\\.0\\.1:${pki.port}: ECONNREFUSED`) })
  })
})
