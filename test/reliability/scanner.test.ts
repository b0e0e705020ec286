// Issue 6, item 8: an outside scanner. Debian's testssl.sh (/usr/bin/testssl)
// against the terminator in demo mode (`rustls-node serve --listen`), over
// loopback. npm test runs protocols, cipher categories, forward secrecy,
// server preference, server defaults (certificate) and every vulnerability
// check; the stress run runs testssl's full default set (adds HTTP headers
// and client simulations). Expected: no SSLv2/SSLv3/TLS 1.0/TLS 1.1, no
// NULL/anonymous/export/LOW/3DES/RC4 or CBC suite, no vulnerability, and no
// finding rated MEDIUM or worse, except the ones listed in DEMO_BY_DESIGN:
// properties of the demo's throwaway certificate and of its echo backend's
// HTTP headers, which are not the TLS stack's (each with its reason). The
// summary goes to the test's diagnostics and, in the stress run, to the
// results folder.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import { freePort, run, sClient } from '../helpers/peers'
import { TerminatorProcess } from '../terminator/harness'
import { recordFigures, SCALE, STRESS } from './scale'

const TESTSSL = '/usr/bin/testssl'

/**
 * Findings that describe the demo mode's own choices rather than the TLS
 * stack: its certificate is self-signed, made at start with a 30-day
 * lifetime and no revocation information (lib/terminator/selfsigned.ts,
 * SPEC §5), and its built-in echo backend sends no security headers (the
 * terminator passes a backend's response headers through).
 */
const DEMO_BY_DESIGN: Record<string, string> = {
  cert_chain_of_trust: 'the demo certificate is self-signed, generated at start',
  cert_expirationStatus: 'the demo certificate lives 30 days from start',
  cert_notAfter: 'the demo certificate lives 30 days from start',
  cert_revocation: 'a self-signed throwaway certificate carries no CRL or OCSP URI',
  security_headers: 'HTTP response headers come from the backend (the demo echo backend)',
}

interface Finding { id: string, severity: string, finding: string }

const RANK: Record<string, number> = { OK: 0, INFO: 0, LOW: 1, MEDIUM: 2, HIGH: 3, CRITICAL: 4 }

test(`testssl (${SCALE.scanner}) against the demo: old protocols and weak suites absent, no vulnerability, nothing rated MEDIUM or worse`, {
  skip: fs.existsSync(TESTSSL) ? false : `${TESTSSL} not found: install Debian's testssl.sh package (apt-get install testssl.sh)`,
  timeout: STRESS ? 600_000 : 90_000,
}, async (t) => {
  const port = await freePort()
  const demo = new TerminatorProcess(['serve', '--listen', `127.0.0.1:${port}`])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-testssl-'))
  try {
    await demo.waitForLog((l) => l.msg === 'demo ready', 'the demo', 15_000)
    const json = path.join(dir, 'findings.json')
    const checks = SCALE.scanner === 'full' ? [] : ['--protocols', '--std', '--fs', '--server-preference', '--server-defaults', '--vulnerable']
    const started = Date.now()
    const r = await run(TESTSSL, [
      '--quiet', '--color', '0', '--warnings', 'off', '--nodns', 'min',
      '--connect-timeout', '10', '--openssl-timeout', '10',
      '--jsonfile', json, ...checks, `localhost:${port}`,
    ], { timeoutMs: STRESS ? 540_000 : 80_000, cwd: dir })
    const seconds = (Date.now() - started) / 1000
    assert.equal(r.timedOut, false, 'testssl finished')
    assert.ok(fs.existsSync(json), `testssl wrote its findings (exit ${r.code}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`)
    const findings = JSON.parse(fs.readFileSync(json, 'utf8')) as Finding[]
    const byId = new Map(findings.map((x) => [x.id, x]))
    const expect = (id: string, pattern: RegExp): void => {
      const x = byId.get(id)
      assert.ok(x !== undefined, `testssl reported ${id}`)
      assert.match(x.finding, pattern, `${id}: ${x.finding}`)
    }
    for (const id of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect(id, /^not offered/)
    expect('TLS1_2', /^offered/)
    expect('TLS1_3', /^offered/)
    for (const id of ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA', 'cipherlist_AVERAGE']) expect(id, /^not offered/)
    expect('cipherlist_STRONG', /^offered/)
    const vulnerabilities = ['heartbleed', 'CCS', 'ticketbleed', 'ROBOT', 'secure_client_renego', 'CRIME_TLS', 'POODLE_SSL', 'fallback_SCSV', 'SWEET32', 'FREAK', 'DROWN', 'LOGJAM', 'BEAST', 'LUCKY13', 'RC4']
    for (const id of vulnerabilities) {
      const x = byId.get(id)
      assert.ok(x !== undefined, `testssl ran ${id}`)
      assert.equal(x.severity, 'OK', `${id}: ${x.severity} ${x.finding}`)
    }
    const counts: Record<string, number> = {}
    for (const x of findings) counts[x.severity] = (counts[x.severity] ?? 0) + 1
    const excused = findings.filter((x) => (RANK[x.severity] ?? 0) >= RANK.MEDIUM && DEMO_BY_DESIGN[x.id] !== undefined)
    const serious = findings.filter((x) => (RANK[x.severity] ?? 0) >= RANK.MEDIUM && DEMO_BY_DESIGN[x.id] === undefined)
    const lowAndWarn = findings.filter((x) => x.severity === 'LOW' || x.severity === 'WARN')
    const summary = {
      mode: SCALE.scanner,
      seconds,
      testssl: /testssl\s+(\d\S*)/.exec((await run(TESTSSL, ['--version'], { timeoutMs: 10_000 })).stdout)?.[1] ?? 'unknown',
      severities: counts,
      protocols: Object.fromEntries(['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'TLS1_2', 'TLS1_3'].map((id) => [id, byId.get(id)?.finding])),
      vulnerabilities: Object.fromEntries(vulnerabilities.map((id) => [id, byId.get(id)?.finding])),
      mediumOrWorse: serious.map((x) => `${x.severity} ${x.id}: ${x.finding}`),
      excusedAsDemoDesign: excused.map((x) => `${x.severity} ${x.id}: ${x.finding} (${DEMO_BY_DESIGN[x.id]})`),
      lowAndWarnings: lowAndWarn.map((x) => `${x.severity} ${x.id}: ${x.finding}`),
    }
    t.diagnostic(`testssl ${summary.testssl}, ${SCALE.scanner} run in ${seconds.toFixed(0)} s: ${JSON.stringify(counts)}`)
    for (const line of [...summary.mediumOrWorse, ...summary.excusedAsDemoDesign.map((l) => `excused: ${l}`), ...summary.lowAndWarnings]) t.diagnostic(line)
    recordFigures('scanner', summary)
    assert.deepEqual(summary.mediumOrWorse, [], 'no finding rated MEDIUM or worse')
  } finally {
    await demo.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

// What testssl's findings rest on, checked with openssl directly: the
// certificate is the demo's self-signed one, and TLS 1.3 tickets do resume.
// (testssl 3.0's own ticket check runs `s_client </dev/null`, which quits
// right after the handshake, before a TLS 1.3 server's NewSessionTicket can
// arrive; it then reports WARN "connect problem". With stdin held open for
// 300 ms the ticket arrives and the next connection resumes.)
test('the demo serves its self-signed localhost certificate, and TLS 1.3 tickets resume', async () => {
  const port = await freePort()
  const demo = new TerminatorProcess(['serve', '--listen', `127.0.0.1:${port}`])
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-demo-session-'))
  try {
    await demo.waitForLog((l) => l.msg === 'demo ready', 'the demo', 15_000)
    const session = path.join(dir, 'session.pem')
    const base = ['-connect', `127.0.0.1:${port}`, '-servername', 'localhost']
    const first = await sClient([...base, '-sess_out', session], { holdOpenMs: 300 })
    assert.match(first.stdout, /subject=O = rustls-node demo, CN = localhost/)
    assert.match(first.stdout, /issuer=O = rustls-node demo, CN = localhost/)
    assert.match(first.stdout, /^New, TLSv1\.3/m)
    const again = await sClient([...base, '-sess_in', session])
    assert.match(again.stdout, /^Reused, TLSv1\.3/m)
  } finally {
    await demo.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
