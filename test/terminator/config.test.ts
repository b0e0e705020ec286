// Configuration loading and validation (lib/terminator/config.ts, files.ts)
// in process: defaults, path resolution, YAML/JSON detection and the
// collection of every problem with its key path.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import {
  ConfigProblems, DEFAULTS, loadConfigFile, parseBackendAddress, parseConfigText, parseDuration, parseListenAddress, validateConfig,
} from '../../lib/terminator/config'
import { loadFiles } from '../../lib/terminator/files'
import { fixtures, repoRoot } from '../helpers/certs'
import { tempDir, writeConfig } from './harness'

const f = fixtures()

function problems (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigProblems) return err.problems.map((p) => `${p.keyPath}: ${p.message}`)
    throw err
  }
  assert.fail('expected ConfigProblems')
}

const host = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  serverName: 'localhost',
  certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
  backend: { address: '127.0.0.1:8080' },
  ...extra,
})

test('durations: units, plain milliseconds, and rejects', () => {
  assert.equal(parseDuration('10s'), 10_000)
  assert.equal(parseDuration('500ms'), 500)
  assert.equal(parseDuration('1.5m'), 90_000)
  assert.equal(parseDuration('2h'), 7_200_000)
  assert.equal(parseDuration(250), 250)
  assert.equal(parseDuration('250'), 250)
  for (const bad of ['0s', 0, -1, '10 sec', 'soon', '', null, Infinity]) assert.equal(parseDuration(bad), undefined, String(bad))
})

test('listen and backend addresses', () => {
  assert.deepEqual(parseListenAddress('0.0.0.0:8443'), { host: '0.0.0.0', port: 8443, text: '0.0.0.0:8443' })
  assert.deepEqual(parseListenAddress('[::1]:443'), { host: '::1', port: 443, text: '[::1]:443' })
  assert.deepEqual(parseListenAddress('8443'), { host: undefined, port: 8443, text: '8443' })
  assert.deepEqual(parseListenAddress('*:8443'), { host: undefined, port: 8443, text: '*:8443' })
  assert.equal(parseListenAddress('localhost:0')?.host, 'localhost')
  for (const bad of ['localhost', '1.2.3.4:65536', '[::1:443', '[nope]:1', 'a b:1', ':::1']) assert.equal(parseListenAddress(bad), undefined, bad)
  assert.deepEqual(parseBackendAddress('unix:run/app.sock', '/srv'), { kind: 'unix', path: '/srv/run/app.sock', text: 'unix:run/app.sock' })
  assert.deepEqual(parseBackendAddress('10.0.0.1:80', '/'), { kind: 'tcp', host: '10.0.0.1', port: 80, text: '10.0.0.1:80' })
  assert.equal(parseBackendAddress('10.0.0.1:0', '/'), undefined)
  assert.equal(parseBackendAddress('8080', '/'), undefined)
})

test('defaults of a minimal configuration', () => {
  const c = validateConfig({ listen: '127.0.0.1:0', hosts: [host()] })
  assert.equal(c.strictSNI, true)
  assert.deepEqual(c.sessionCache, { size: 20000 })
  assert.equal(c.handshakeTimeout, DEFAULTS.handshakeTimeout)
  assert.equal(c.ticketKeys, undefined)
  assert.equal(c.ticketLifetime, 6 * 3600 * 1000)
  assert.equal(c.drainTimeout, 10_000)
  assert.equal(c.workers, 1)
  assert.equal(c.log.level, 'info')
  assert.equal(c.maxConnections, undefined)
  assert.equal(c.hosts[0].backend.mode, 'tcp')
  assert.equal(c.hosts[0].backend.proxyProtocol, 'none')
  assert.equal(c.hosts[0].backend.connectTimeout, 5000)
  assert.equal(c.hosts[0].backend.timeout, 60_000)
})

test('relative paths resolve against serverRoot, itself relative to the file\'s folder', () => {
  const dir = tempDir()
  fs.mkdirSync(path.join(dir, 'pki'))
  fs.copyFileSync(f.localhostEcdsa.certPath, path.join(dir, 'pki', 'c.pem'))
  fs.copyFileSync(f.localhostEcdsa.keyPath, path.join(dir, 'pki', 'c.key'))
  const file = writeConfig(dir, {
    serverRoot: 'pki',
    listen: ['127.0.0.1:0'],
    hosts: [{ serverName: 'localhost', certificates: [{ cert: 'c.pem', key: 'c.key' }], backend: { address: 'unix:app.sock' } }],
  })
  const c = loadConfigFile(file)
  assert.equal(c.serverRoot, path.join(dir, 'pki'))
  assert.equal(c.hosts[0].certificates[0].cert, path.join(dir, 'pki', 'c.pem'))
  assert.deepEqual(c.hosts[0].backend.address, { kind: 'unix', path: path.join(dir, 'pki', 'app.sock'), text: 'unix:app.sock' })
  // Without serverRoot: the file's own folder.
  const file2 = writeConfig(dir, { listen: ['127.0.0.1:0'], hosts: [{ ...host(), certificates: [{ cert: 'pki/c.pem', key: 'pki/c.key' }] }] }, 'two.yaml')
  assert.equal(loadConfigFile(file2).hosts[0].certificates[0].key, path.join(dir, 'pki', 'c.key'))
})

test('JSON and YAML by extension and by content', () => {
  const doc = { listen: ['127.0.0.1:0'], hosts: [host()] }
  assert.deepEqual(parseConfigText(JSON.stringify(doc), 'x.json'), doc)
  assert.deepEqual(parseConfigText(JSON.stringify(doc), 'x.conf'), doc)
  assert.deepEqual(parseConfigText('listen: ["127.0.0.1:0"]\nhosts: []\n', 'x.conf'), { listen: ['127.0.0.1:0'], hosts: [] })
  assert.match(problems(() => parseConfigText('{"listen": [', 'x.json'))[0], /not valid JSON/)
  assert.match(problems(() => parseConfigText('a: 1\na: 2\n', 'x.yaml'))[0], /not valid YAML: Map keys must be unique/)
})

test('every problem is reported at once, each with its key path', () => {
  const got = problems(() => validateConfig({
    listen: ['127.0.0.1:8443', '127.0.0.1:8443', 'bogus'],
    handshakeTimeout: 'forever',
    sessionCache: { size: 0 },
    workers: 0,
    log: { level: 'loud' },
    metrics: { listen: 'nowhere' },
    hosts: [
      host({ protocol: 'TLSv1.2', ciphersSuppress: 'TLS13_AES_128_GCM_SHA256:NOPE', alpn: ['h2', 'spdy/3'], backend: { address: '127.0.0.1:8080', mode: 'http', proxyProtocol: 'v2' } }),
      host({ serverName: 'LOCALHOST', certificates: [] }),
      { serverName: 'b.example.test', certificates: [{ key: 'x.key' }], backend: { address: 'nope', tls: {} } },
    ],
  }))
  assert.deepEqual(got, [
    'listen[1]: "127.0.0.1:8443" is listed twice',
    'listen[2]: "bogus" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT (port 0-65535)',
    'sessionCache: must be "none", a positive integer or {size: <positive integer>}, got a mapping',
    'handshakeTimeout: must be a duration such as "500ms", "10s", "2m" or a number of milliseconds (> 0), got "forever"',
    'workers: must be a positive integer or "auto", got number 0',
    'log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    'metrics.listen: "nowhere" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT',
    'hosts[0].protocol: "TLSv1.2" lacks the trailing "+" (a minimum is configured, not a single version); expected a minimum version: one of default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+',
    'hosts[0].ciphersSuppress[1]: unknown cipher suite "NOPE" (expected an IANA or OpenSSL name, a TLS13_ name, or TLS_CIPHER_0xNNNN)',
    'hosts[0].backend.proxyProtocol: applies to mode: tcp only (http mode sends X-Forwarded-For and X-SSL-* headers instead)',
    'hosts[0].alpn[1]: "spdy/3" cannot be served in http mode (backend.mode: http speaks h2 and http/1.1); use mode: tcp',
    'hosts[1].serverName: name "LOCALHOST" is already used by hosts[0]',
    'hosts[1].certificates: must be a non-empty list of {cert, key, ocsp?, passphraseEnv?} entries',
    'hosts[2].certificates[0].cert: is required',
    `hosts[2].certificates[0].key: file not found: ${path.resolve('x.key')}`,
    'hosts[2].backend.address: "nope" is not a backend address: expected HOST:PORT, [IPv6]:PORT or unix:/path',
    'hosts[2].backend.tls.ca: is required: a CA file to verify the backend with ("system" for the operating system store)',
  ])
})

test('ticketLifetime: a duration of whole seconds up to 7 days, handed to the library in seconds', () => {
  const c = validateConfig({ listen: '127.0.0.1:0', ticketLifetime: '90m', hosts: [host()] })
  assert.equal(c.ticketLifetime, 90 * 60_000)
  assert.equal(loadFiles(c).serverOptions.ticketLifetime, 5400)
  assert.equal(validateConfig({ listen: '127.0.0.1:0', ticketLifetime: '168h', hosts: [host()] }).ticketLifetime, 7 * 24 * 3600_000)
  for (const bad of ['1500ms', '169h', '0s', 'daily']) {
    const got = problems(() => validateConfig({ listen: '127.0.0.1:0', ticketLifetime: bad, hosts: [host()] }))
    assert.equal(got.length, 1, bad)
    assert.match(got[0], /^ticketLifetime: must be /, bad)
  }
})

test('passphrases: only from the environment variable passphraseEnv names', () => {
  const entry = { cert: f.localhostEcdsa.certPath, key: f.path('localhost-ecdsa.enc.key'), passphraseEnv: 'TEST_KEY_PASS' }
  const c = validateConfig({ listen: '127.0.0.1:0', hosts: [host({ certificates: [entry] })] })
  assert.deepEqual(problems(() => loadFiles(c, { env: {} })), ['hosts[0].certificates[0].passphraseEnv: environment variable TEST_KEY_PASS is not set'])
  const loaded = loadFiles(c, { env: { TEST_KEY_PASS: f.passphrase } })
  assert.equal(loaded.serverOptions.hosts?.[0].certificates?.[0].passphrase, f.passphrase)
  const inFile = problems(() => validateConfig({ listen: '127.0.0.1:0', hosts: [host({ certificates: [{ ...entry, passphrase: 'hunter2' }] })] }))
  assert.deepEqual(inFile, ['hosts[0].certificates[0].passphrase: passphrases are not read from the configuration file; name an environment variable with passphraseEnv'])
  assert.ok(!inFile.join('').includes('hunter2'))
})

test('files become library options: contents, default ALPN per mode, backend ALPN', () => {
  const c = validateConfig({
    listen: '127.0.0.1:0',
    hosts: [
      host({ backend: { address: '127.0.0.1:1', mode: 'http', tls: { ca: f.path('ca.pem') } } }),
      host({ serverName: 'b.example.test', backend: { address: '127.0.0.1:2' } }),
    ],
  })
  const loaded = loadFiles(c)
  const [h0, h1] = loaded.serverOptions.hosts ?? []
  assert.deepEqual(h0.ALPNProtocols, ['h2', 'http/1.1'])
  assert.equal(h1.ALPNProtocols, undefined)
  assert.ok(Buffer.isBuffer(h0.certificates?.[0].cert))
  assert.deepEqual(loaded.backends[0].tls?.ALPNProtocols, ['http/1.1'])
  assert.equal((loaded.backends[0].tls?.ca as Buffer).toString(), f.ca.toString())
  assert.equal(loaded.backends[1].tls, undefined)
})

test('backend.httpVersion: "1.1" by default, "2" (or the YAML number 2) in http mode only; its host offers h2 alone, its backend is offered h2', () => {
  const c = validateConfig(parseConfigText([
    'listen: 127.0.0.1:0',
    'hosts:',
    `  - {serverName: localhost, certificates: [{cert: ${f.localhostEcdsa.certPath}, key: ${f.localhostEcdsa.keyPath}}],`,
    `     backend: {address: "127.0.0.1:1", mode: http, httpVersion: 2, tls: {ca: ${f.path('ca.pem')}}}}`,
    `  - {serverName: b.example.test, certificates: [{cert: ${f.localhostEcdsa.certPath}, key: ${f.localhostEcdsa.keyPath}}], backend: {address: "127.0.0.1:2", mode: http}}`,
  ].join('\n'), 'x.yaml'))
  assert.equal(c.hosts[0].backend.httpVersion, '2')
  assert.equal(c.hosts[1].backend.httpVersion, '1.1')
  const loaded = loadFiles(c)
  assert.deepEqual(loaded.serverOptions.hosts?.map((h) => h.ALPNProtocols), [['h2'], ['h2', 'http/1.1']])
  assert.deepEqual(loaded.backends[0].tls?.ALPNProtocols, ['h2'])
  const got = problems(() => validateConfig({
    listen: '127.0.0.1:0',
    alpn: ['h2', 'http/1.1'],
    hosts: [
      host({ backend: { address: '127.0.0.1:1', mode: 'tcp', httpVersion: '2' } }),
      host({ serverName: 'b.example.test', backend: { address: '127.0.0.1:1', mode: 'http', httpVersion: '3' } }),
      host({ serverName: 'c.example.test', alpn: ['http/1.1', 'h2'], backend: { address: '127.0.0.1:1', mode: 'http', httpVersion: '2' } }),
      host({ serverName: 'd.example.test', backend: { address: '127.0.0.1:1', mode: 'http', httpVersion: 2, tls: { ca: f.path('ca.pem'), alpn: ['http/1.1'] } } }),
    ],
  }))
  assert.deepEqual(got, [
    'hosts[0].backend.httpVersion: applies to mode: http only (tcp mode forwards bytes, whatever protocol they carry)',
    'hosts[1].backend.httpVersion: must be one of 1.1, 2, got "3"',
    'hosts[2].alpn[0]: "http/1.1" cannot be served with hosts[2].backend.httpVersion "2": HTTP/1.1 clients are not forwarded to an HTTP/2 backend; offer h2 only (alpn: [h2], the default for such a host)',
    'hosts[3].backend.tls.alpn: must include "h2": http mode speaks HTTP/2 (httpVersion "2") to the backend',
    'alpn[1]: "http/1.1" cannot be served with hosts[3].backend.httpVersion "2": HTTP/1.1 clients are not forwarded to an HTTP/2 backend; offer h2 only (alpn: [h2], the default for such a host)',
  ])
})

test('the examples in docs/terminator.md are valid configurations', () => {
  const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'terminator.md'), 'utf8')
  const blocks = [...doc.matchAll(/```(yaml|json)\n([\s\S]*?)```/g)]
  assert.equal(blocks.length, 6)
  for (const [, lang, text] of blocks) {
    const c = validateConfig(parseConfigText(text, `example.${lang}`), { baseDir: '/etc/rustls-node', checkFiles: false })
    assert.ok(c.hosts.length > 0)
  }
  assert.deepEqual(blocks.map(([, lang, text]) => (validateConfig(parseConfigText(text, `x.${lang}`), { checkFiles: false }).hosts.map((h) => h.backend.mode))),
    [['http', 'http', 'http'], ['http'], ['tcp'], ['http', 'http'], ['http'], ['http']])
})

test('the examples in README.md are valid configurations, one per mode', () => {
  const readme = fs.readFileSync(path.join(repoRoot(), 'README.md'), 'utf8')
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
  assert.deepEqual(blocks.map(([, text]) => validateConfig(parseConfigText(text, 'example.yaml'), { checkFiles: false }).hosts.map((h) => h.backend.mode)),
    [['tcp'], ['http']])
})
