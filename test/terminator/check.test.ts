// `rustls-node check -c FILE` as a user runs it: broken configurations,
// each problem asserted with its key path, and valid ones (YAML, JSON).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { runCli, tempDir, writeConfig } from './harness'

const f = fixtures()
const dir = tempDir()

const host = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  serverName: 'a.example.test',
  certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }],
  backend: { address: '127.0.0.1:8080', mode: 'http' },
  ...extra,
})

let n = 0
async function check (config: unknown, env?: NodeJS.ProcessEnv): Promise<{ code: number | null, problems: string[], stdout: string, stderr: string }> {
  const file = writeConfig(dir, config, `c${n++}.yaml`)
  const r = await runCli(['check', '-c', file], { env: env ?? { ...process.env } })
  const problems = r.stderr.split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim())
  return { code: r.code, problems, stdout: r.stdout, stderr: r.stderr }
}

test('missing files: certificate key, OCSP response, client CA, ticket keys', async () => {
  const missing = path.join(dir, 'nope')
  const r = await check({
    listen: ['127.0.0.1:0'],
    ticketKeys: 'keys.bin',
    hosts: [host({
      certificates: [{ cert: f.aEcdsa.chainPath, key: `${missing}.key`, ocsp: `${missing}.ocsp` }],
      clientAuth: { mode: 'required', ca: `${missing}-ca.pem` },
    })],
  })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, [
    `ticketKeys: file not found: ${path.join(dir, 'keys.bin')}`,
    `hosts[0].certificates[0].key: file not found: ${missing}.key`,
    `hosts[0].certificates[0].ocsp: file not found: ${missing}.ocsp`,
    `hosts[0].clientAuth.ca: file not found: ${missing}-ca.pem`,
  ])
  assert.match(r.stderr, /: 4 problems:/)
})

test('bad protocol', async () => {
  const r = await check({ listen: ['127.0.0.1:0'], hosts: [host({ protocol: 'TLSv0x0305+' })] })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, ['hosts[0].protocol: "TLSv0x0305+" asks for a minimum above TLS 1.3, which rustls does not know; ' +
    'expected a minimum version: one of default, v1.2+, v1.3+, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+'])
})

test('unknown cipher names, each with its position after splitting', async () => {
  const r = await check({ listen: ['127.0.0.1:0'], hosts: [host({ ciphersPrefer: 'ECDHE-ECDSA-AES256-GCM-SHA384:NOT-A-CIPHER', ciphersSuppress: ['TLS13_BOGUS'] })] })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, [
    'hosts[0].ciphersPrefer[1]: unknown cipher suite "NOT-A-CIPHER" (expected an IANA or OpenSSL name, a TLS13_ name, or TLS_CIPHER_0xNNNN)',
    'hosts[0].ciphersSuppress[0]: unknown cipher suite "TLS13_BOGUS" (expected an IANA or OpenSSL name, a TLS13_ name, or TLS_CIPHER_0xNNNN)',
  ])
})

test('key mismatch and unparseable PEM are found by loading through the library, for every host', async () => {
  const garbage = path.join(dir, 'garbage.pem')
  fs.writeFileSync(garbage, 'this is not PEM\n')
  const r = await check({
    listen: ['127.0.0.1:0'],
    hosts: [
      host({ certificates: [{ cert: f.aEcdsa.chainPath, key: f.path('mismatch.key') }] }),
      host({ serverName: 'b.example.test', certificates: [{ cert: garbage, key: f.bEcdsa.keyPath }] }),
      host({ serverName: 'c.example.test', backend: { address: '127.0.0.1:8080', tls: { ca: garbage } } }),
    ],
  })
  assert.equal(r.code, 2)
  assert.equal(r.problems.length, 3, r.stderr)
  assert.match(r.problems[0], new RegExp(`^hosts\\[0\\]\\.certificates\\[0\\]\\.key: .*KeyMismatch \\(${f.path('mismatch.key')}\\)$`))
  assert.equal(r.problems[1], `hosts[1].certificates[0].cert: no PEM certificate found (${garbage})`)
  assert.match(r.problems[2], /^hosts\[2\]\.backend\.tls\.ca: .+ \(.*garbage\.pem\)$/)
})

test('wrong passphrase for an encrypted key (and the passphrase is never printed)', async () => {
  const r = await check({
    listen: ['127.0.0.1:0'],
    hosts: [host({ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.path('localhost-ecdsa.enc.key'), passphraseEnv: 'CHECK_TEST_PASS' }] })],
  }, { ...process.env, CHECK_TEST_PASS: 'not-the-passphrase' })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, [`hosts[0].certificates[0].key: cannot decrypt the private key (wrong passphrase?) (${f.path('localhost-ecdsa.enc.key')})`])
  assert.ok(!r.stderr.includes('not-the-passphrase') && !r.stdout.includes('not-the-passphrase'))
})

test('unknown option and unknown keys', async () => {
  const r = await check({ listen: ['127.0.0.1:0'], colour: 'red', hosts: [host({ options: ['StdEnvVars', '+Frobnicate'], ServerName: 'x' })] })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, [
    'colour: unknown key',
    'hosts[0].ServerName: unknown key (did you mean "serverName"?)',
    'hosts[0].options[1]: unknown option "+Frobnicate" (known: StdEnvVars, ExportCertData, Defaults)',
  ])
})

test('bad listen addresses', async () => {
  const r = await check({ listen: ['127.0.0.1', '127.0.0.1:70000', '[::1]:8443', 'example.org:x'], hosts: [host()] })
  assert.equal(r.code, 2)
  assert.deepEqual(r.problems, [
    'listen[0]: "127.0.0.1" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT (port 0-65535)',
    'listen[1]: "127.0.0.1:70000" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT (port 0-65535)',
    'listen[3]: "example.org:x" is not a listen address: expected HOST:PORT, [IPv6]:PORT or PORT (port 0-65535)',
  ])
})

test('missing backend, missing listen and hosts', async () => {
  const r1 = await check({ listen: ['127.0.0.1:0'], hosts: [host({ backend: undefined })] })
  assert.equal(r1.code, 2)
  assert.deepEqual(r1.problems, ['hosts[0].backend: is required: where to forward connections ({address, mode})'])
  const r2 = await check({})
  assert.deepEqual(r2.problems, ['listen: is required: the addresses to accept TLS on, e.g. ["0.0.0.0:8443"]', 'hosts: is required: at least one virtual host'])
})

test('a file that is neither YAML nor JSON', async () => {
  const file = path.join(dir, 'broken.json')
  fs.writeFileSync(file, '{"listen": ["127.0.0.1:0"],')
  const r = await runCli(['check', '-c', file])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /broken\.json: not valid JSON/)
  const missing = await runCli(['check', '-c', path.join(dir, 'absent.yaml')])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /cannot read .*absent\.yaml: file not found/)
})

test('valid configurations pass (YAML and JSON); an unsupported but known suite is a warning only', async () => {
  const config = {
    listen: ['127.0.0.1:0', '[::1]:0'],
    sessionCache: 'none',
    ticketKeys: f.path('ticket-keys.bin'),
    handshakeTimeout: '2s',
    workers: 'auto',
    metrics: { listen: '127.0.0.1:0' },
    hosts: [
      host({
        aliases: ['*.a.example.test'],
        certificates: [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath, ocsp: f.path('a-ecdsa.ocsp.der') }, { cert: f.aRsa.chainPath, key: f.aRsa.keyPath }],
        protocol: 'v1.3+',
        ciphersPrefer: ['TLS13_CHACHA20_POLY1305_SHA256', 'ECDHE-RSA-AES128-SHA256'],
        honorClientOrder: false,
        options: ['StdEnvVars', 'ExportCertData'],
        clientAuth: { mode: 'optional', ca: f.path('client-ca.pem'), crls: [f.path('client-ca.crl.pem')] },
        backend: {
          address: '127.0.0.1:8443',
          mode: 'http',
          timeout: '30s',
          tls: { ca: f.path('ca.pem'), serverName: 'localhost', protocol: 'v1.2+', certificates: [{ cert: f.client.certPath, key: f.client.keyPath }] },
        },
      }),
      host({ serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chainPath, key: f.bEcdsa.keyPath }], backend: { address: 'unix:/run/b.sock', proxyProtocol: 'v2' } }),
    ],
  }
  const yaml = await check(config)
  assert.equal(yaml.code, 0, yaml.stderr)
  assert.match(yaml.stdout, /c\d+\.yaml: OK \(2 hosts, listen 127\.0\.0\.1:0, \[::1\]:0\)\n$/)
  assert.match(yaml.stderr, /^warning: hosts\[0\]\.ciphersPrefer\[1\]: cipher suite ECDHE-RSA-AES128-SHA256 \(TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256\) is not supported by rustls; ignored$/m)
  const jsonFile = writeConfig(dir, config, 'valid.json')
  const json = await runCli(['check', '-c', jsonFile])
  assert.equal(json.code, 0, json.stderr)
  assert.match(json.stdout, /valid\.json: OK/)
})
