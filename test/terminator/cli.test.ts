// The command line: --version, --help, usage errors, `ciphers`, start-up
// failures, and the demo (`serve` without -c) driven with curl -k.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'

import { listCiphers, lookupCipher, rustlsVersion, supportedCiphers } from '../../lib/index'
import { fixtures, repoRoot } from '../helpers/certs'
import { curl, freePort } from '../helpers/peers'
import { LEVEL, runCli, serveConfig, stopClean, tempDir, TerminatorProcess, writeConfig } from './harness'

const f = fixtures()
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pkg = require(`${repoRoot()}/package.json`) as { version: string }

test('--version names rustls-node, rustls-ffi and rustls as linked', async () => {
  const r = await runCli(['--version'])
  assert.equal(r.code, 0)
  const [, ffi, , rustls, provider] = rustlsVersion().split('/')
  assert.equal(r.stdout, `rustls-node ${pkg.version}\nrustls-ffi ${ffi}\nrustls ${rustls} (${provider} crypto provider)\nnode ${process.version}\n`)
})

test('--help; no command and bad usage exit 2 with a hint', async () => {
  const help = await runCli(['--help'])
  assert.equal(help.code, 0)
  for (const s of ['serve -c FILE', 'check -c FILE', 'ciphers', '--log-level', 'SIGHUP']) assert.ok(help.stdout.includes(s), s)
  const none = await runCli([])
  assert.equal(none.code, 2)
  assert.match(none.stderr, /^Usage:/)
  for (const [args, message] of [
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['serve', '--bogus'], "Unknown option '--bogus'"],
    [['check'], 'check needs -c FILE'],
    [['serve', '--log-level', 'loud'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent'],
    [['serve', '-c', 'x.yaml', '--listen', '127.0.0.1:1'], '--listen applies to the demo'],
  ] as Array<[string[], string]>) {
    const r = await runCli(args)
    assert.equal(r.code, 2, args.join(' '))
    assert.ok(r.stderr.includes(message), `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /Try "rustls-node --help"/)
  }
})

test('ciphers: every known suite, supported ones marked, and --supported in rustls order', async () => {
  const all = await runCli(['ciphers'])
  assert.equal(all.code, 0)
  const rows = all.stdout.split('\n').filter((l) => /^0x[0-9A-F]{4} /.test(l))
  assert.equal(rows.length, listCiphers().length)
  const yes = rows.filter((r) => r.endsWith(' yes'))
  assert.deepEqual(yes.map((r) => r.split(/\s+/)[1]).sort(), supportedCiphers().map((c) => c.ianaName).sort())
  const aes = rows.find((r) => r.startsWith('0xC02B '))
  assert.match(aes ?? '', /^0xC02B +TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 +ECDHE-ECDSA-AES128-GCM-SHA256 +TLSv1\.2 +yes$/)
  const rc4 = lookupCipher(0x0005)
  assert.deepEqual(rows.find((r) => r.startsWith('0x0005 '))?.split(/\s+/), ['0x0005', 'TLS_RSA_WITH_RC4_128_SHA', rc4?.opensslName, '<=TLSv1.2', 'no'])
  assert.match(all.stdout, new RegExp(`${listCiphers().length} suites listed, ${supportedCiphers().length} supported by this build`))
  const sup = await runCli(['ciphers', '--supported'])
  assert.deepEqual(sup.stdout.split('\n').filter((l) => /^0x/.test(l)).map((l) => l.split(/\s+/)[1]), supportedCiphers().map((c) => c.ianaName))
  const json = JSON.parse((await runCli(['ciphers', '--supported', '--json'])).stdout) as Array<{ id: number }>
  assert.deepEqual(json.map((c) => c.id), supportedCiphers().map((c) => c.id))
})

test('serve with an invalid configuration exits 2 and lists the problems', async () => {
  const dir = tempDir()
  const file = writeConfig(dir, { listen: ['127.0.0.1:0'], hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.path('mismatch.key') }], backend: { address: '127.0.0.1:1' } }] })
  const t = new TerminatorProcess(['serve', '-c', file])
  const exit = await t.exited
  assert.equal(exit.code, 2)
  assert.match(t.stderr(), /invalid configuration:\n {2}hosts\[0\]\.certificates\[0\]\.key: .*KeyMismatch/)
  const line = t.logs().find((l) => l.msg === 'configuration is invalid')
  assert.equal(line?.level, LEVEL.error)
  assert.match((line?.problems as string[])[0], /^hosts\[0\]\.certificates\[0\]\.key: /)
})

test('serve on a port in use exits 1 with the reason', async () => {
  const blocker = net.createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()))
  const port = (blocker.address() as net.AddressInfo).port
  try {
    const dir = tempDir()
    const file = writeConfig(dir, { listen: [`127.0.0.1:${port}`], hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: '127.0.0.1:1' } }] })
    const t = new TerminatorProcess(['serve', '-c', file])
    assert.equal((await t.exited).code, 1)
    assert.match(t.stderr(), /cannot start: listen EADDRINUSE/)
    assert.equal(t.logs().find((l) => l.msg === 'cannot start')?.level, LEVEL.fatal)
  } finally {
    blocker.close()
  }
})

test('demo: curl -k gets JSON with the TLS variables; SIGTERM stops it cleanly', async () => {
  const t = new TerminatorProcess(['serve', '--listen', '127.0.0.1:0'])
  try {
    const ready = await t.waitForLog((l) => l.msg === 'demo ready', 'demo ready')
    const port = t.port
    assert.equal(ready.url, `https://localhost:${port}/`)
    assert.ok(t.stderr().includes(`curl -k https://localhost:${port}/`), t.stderr())
    const r = await curl(['-k', '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/hello?x=1`])
    assert.equal(r.code, 0, r.stderr)
    const body = JSON.parse(r.stdout) as { request: { method: string, path: string }, forwarded: Record<string, string>, tls: Record<string, string> }
    assert.deepEqual(body.request, { method: 'GET', path: '/hello?x=1', host: `localhost:${port}` })
    assert.deepEqual(body.forwarded, { for: '127.0.0.1', proto: 'https' })
    assert.equal(body.tls.SSL_PROTOCOL, 'TLSv1.3')
    assert.equal(body.tls.SSL_TLS_SNI, 'localhost')
    assert.equal(body.tls.SSL_SESSION_RESUMED, 'Initial')
    assert.equal(body.tls.SSL_CLIENT_VERIFY, 'NONE')
    assert.ok(supportedCiphers().some((c) => c.ianaName === body.tls.SSL_CIPHER), body.tls.SSL_CIPHER)
    // Without -k the self-signed certificate is (rightly) not trusted.
    const strict = await curl(['--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`])
    assert.equal(strict.code, 60)
  } finally {
    await stopClean(t)
  }
})

test('demo: the PORT environment variable picks the port', async () => {
  const port = await freePort()
  const t = new TerminatorProcess(['serve'], { ...process.env, PORT: String(port) })
  try {
    await t.waitForLog((l) => l.msg === 'demo ready', 'demo ready')
    assert.equal(t.port, port)
    const r = await curl(['-k', '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${port}/`])
    assert.equal(r.stdout, '200')
  } finally {
    await stopClean(t)
  }
})

test('--log-level overrides log.level from the file', async () => {
  const { t } = await serveConfig({
    listen: ['127.0.0.1:0'],
    log: { level: 'warn' },
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: '127.0.0.1:1' } }],
  }, { extraArgs: ['--log-level', 'debug'] })
  try {
    const r = await curl(['--cacert', f.path('ca.pem'), `https://localhost:${t.port}/`])
    assert.notEqual(r.code, 0)
    await t.waitForLog((l) => l.msg === 'handshake complete' && l.level === LEVEL.debug, 'a debug line')
  } finally {
    await stopClean(t)
  }
})
