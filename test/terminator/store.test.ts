// The `store` block (issue 21): its validation with key paths, the secrets
// it names, the at-rest sealing of keys, the stored records refusing
// garbage, and `check --connect` against a live Redis (plain, AUTH, TLS)
// and a dead one.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import YAML from 'yaml'

import { ConfigProblems, validateConfig } from '../../lib/terminator/config'
import { decodeCertificate, decodeChallenge, encodeCertificate, encodeChallenge } from '../../lib/terminator/store/acme-state'
import { resolveStoreSecrets } from '../../lib/terminator/store/open'
import { reconnectDelay } from '../../lib/terminator/store/redis-store'
import { parseEncryptionKey, Sealer } from '../../lib/terminator/store/sealing'
import { decodeTicketKeys, encodeTicketKeys, freshTicketKeys, rotateTicketKeys, ticketKeyMaterial } from '../../lib/terminator/store/ticket-keys'
import { acmeValidationCertificate } from '../../lib/acme-certs'
import { fixtures, repoRoot } from '../helpers/certs'
import { freePort } from '../helpers/peers'
import { type RedisServer, startRedis } from '../helpers/redis'
import { runCli, tempDir, writeConfig } from './harness'

const f = fixtures()
const KEY_HEX = 'a1'.repeat(32)
const KEY_B64 = Buffer.alloc(32, 7).toString('base64')

const host = (): Record<string, unknown> => ({
  serverName: 'localhost',
  certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
  backend: { address: '127.0.0.1:8080' },
})

function problems (raw: unknown): string[] {
  try {
    validateConfig(raw, { baseDir: '/' })
  } catch (err) {
    if (err instanceof ConfigProblems) return err.problems.map((p) => `${p.keyPath}: ${p.message}`)
    throw err
  }
  assert.fail('expected ConfigProblems')
}

describe('store configuration', () => {
  it('a redis URL with defaults; rediss with a CA, user, db and prefix', () => {
    const plain = validateConfig({ listen: '127.0.0.1:0', store: { redis: 'redis://cache.internal' }, hosts: [host()] })
    assert.deepEqual(plain.store, { url: 'redis://cache.internal', host: 'cache.internal', port: 6379, db: 0, tls: false, prefix: 'rustls-node:' })
    const full = validateConfig({
      listen: '127.0.0.1:0',
      store: { redis: 'rediss://edge@[::1]:6380/3', prefix: 'tls:', passwordEnv: 'REDIS_PASS', tls: { ca: f.path('ca.pem') }, encryptionKeyEnv: 'STORE_KEY' },
      hosts: [host()],
    })
    assert.deepEqual(full.store, {
      url: 'rediss://edge@[::1]:6380/3', host: '::1', port: 6380, db: 3, tls: true, username: 'edge', prefix: 'tls:', passwordEnv: 'REDIS_PASS', ca: f.path('ca.pem'), encryptionKeyEnv: 'STORE_KEY',
    })
  })

  it('every wrong key is reported with its path; a password in the URL is refused and not echoed', () => {
    assert.deepEqual(problems({
      listen: '127.0.0.1:0',
      store: { redis: 'redis://:hunter2@cache:6379/x', prefix: 'a b*', passwordEnv: '1BAD', tls: { ca: 'nope.pem' }, encryptionKeyEnv: 'ok', Prefix: 'x' },
      hosts: [host()],
    }), [
      'store.Prefix: unknown key (did you mean "prefix"?)',
      'store.redis: a password in the URL is not read; name an environment variable with store.passwordEnv',
      'store.redis: the path must be a database number (redis://HOST:PORT/0), got "/x"',
      'store.prefix: must not contain spaces or the characters * ? [ ] \\, got "a b*"',
      'store.passwordEnv: must be an environment variable name, got "1BAD"',
      'store.tls.ca: file not found: /nope.pem',
      'store.tls: applies to rediss:// URLs only (TLS to Redis)',
    ])
    assert.deepEqual(problems({ listen: '127.0.0.1:0', store: { redis: 'http://cache' }, hosts: [host()] }),
      ['store.redis: must be a redis://HOST[:PORT][/DB] or rediss://... URL, got "http://cache"'])
    assert.deepEqual(problems({ listen: '127.0.0.1:0', store: {}, hosts: [host()] }), ['store.redis: is required'])
    assert.deepEqual(problems({ listen: '127.0.0.1:0', store: 'redis://x', hosts: [host()] }), ['store: must be a mapping (object), got "redis://x"'])
  })

  it('secrets come from the environment: unset or malformed variables are problems, values never echoed', () => {
    const config = validateConfig({ listen: '127.0.0.1:0', store: { redis: 'redis://127.0.0.1', passwordEnv: 'P', encryptionKeyEnv: 'K' }, hosts: [host()] }).store
    assert.ok(config !== undefined)
    assert.throws(() => resolveStoreSecrets(config, {}), (err: ConfigProblems) => {
      assert.deepEqual(err.problems.map((p) => `${p.keyPath}: ${p.message}`), [
        'store.passwordEnv: environment variable P is not set',
        'store.encryptionKeyEnv: environment variable K is not set',
      ])
      return true
    })
    assert.throws(() => resolveStoreSecrets(config, { P: 'x', K: 'short-and-secret' }), (err: ConfigProblems) => {
      assert.equal(err.problems.length, 1)
      assert.match(err.problems[0].message, /^K must hold a 32-byte key as 64 hex digits or base64/)
      assert.ok(!err.message.includes('short-and-secret'))
      return true
    })
    assert.deepEqual(resolveStoreSecrets(config, { P: 'pw', K: KEY_HEX }), { password: 'pw', encryptionKey: Buffer.from(KEY_HEX, 'hex') })
    assert.deepEqual(parseEncryptionKey(KEY_B64), Buffer.alloc(32, 7))
    assert.deepEqual(parseEncryptionKey(Buffer.alloc(32, 0xfb).toString('base64url')), Buffer.alloc(32, 0xfb))
    for (const bad of ['', 'a1'.repeat(31), Buffer.alloc(31).toString('base64'), Buffer.alloc(33).toString('base64')]) assert.equal(parseEncryptionKey(bad), undefined, bad)
  })

  it('the example of docs/terminator.md validates', () => {
    const text = fs.readFileSync(path.join(repoRoot(), 'docs', 'terminator.md'), 'utf8')
    const yaml = /```yaml\n([\s\S]*?)```/.exec(text.slice(text.indexOf('## Shared state (store)')))?.[1]
    assert.ok(yaml !== undefined)
    const config = validateConfig(YAML.parse(yaml), { baseDir: '/', checkFiles: false })
    assert.equal(config.hosts[0].acme?.challenge, 'tls-alpn-01')
    assert.deepEqual(config.store, {
      url: 'rediss://redis.internal:6380/0', host: 'redis.internal', port: 6380, db: 0, tls: true, prefix: 'rustls-node:',
      passwordEnv: 'REDIS_PASSWORD', ca: '/etc/rustls-node/redis-ca.pem', encryptionKeyEnv: 'RUSTLS_NODE_STORE_KEY',
    })
  })

  it('reconnection backs off from 100 ms doubling to 5 s', () => {
    assert.equal(reconnectDelay(1, 0.5), 100)
    assert.equal(reconnectDelay(2, 0.5), 200)
    assert.equal(reconnectDelay(6, 0.5), 3200)
    assert.equal(reconnectDelay(50, 0.5), 5000)
    assert.ok(reconnectDelay(50, 0) >= 4000 && reconnectDelay(50, 1) <= 6000)
  })
})

describe('values at rest', () => {
  const sealed = new Sealer(Buffer.from(KEY_HEX, 'hex'))
  const plain = new Sealer()

  it('AES-256-GCM under the key with the name as additional data; plain base64 without a key; each refuses the other', () => {
    const secret = Buffer.from('a private key')
    const s = sealed.seal('tickets#current', secret)
    assert.match(s, /^aes256gcm:[A-Za-z0-9+/]+=*$/)
    assert.ok(!Buffer.from(s.slice(10), 'base64').includes(secret))
    assert.deepEqual(sealed.open('k', 'tickets#current', s), secret)
    assert.notEqual(sealed.seal('tickets#current', secret), s, 'a fresh nonce every time')
    const refused = (fn: () => unknown, reason: RegExp): void => {
      assert.throws(fn, (err: Error & { code?: string }) => err.code === 'ERR_STORE_INVALID_VALUE' && reason.test(err.message))
    }
    refused(() => sealed.open('k', 'tickets#next', s), /does not decrypt/)
    refused(() => new Sealer(Buffer.alloc(32, 1)).open('k', 'tickets#current', s), /does not decrypt/)
    refused(() => sealed.open('k', 'tickets#current', s.slice(0, -4) + 'AAAA'), /does not decrypt/)
    refused(() => plain.open('k', 'tickets#current', s), /encrypted \(AES-256-GCM\), but store\.encryptionKeyEnv is not set/)
    const p = plain.seal('x', secret)
    assert.equal(p, `plain:${secret.toString('base64')}`)
    assert.deepEqual(plain.open('k', 'x', p), secret)
    refused(() => sealed.open('k', 'x', p), /stored without encryption, but store\.encryptionKeyEnv is set/)
    refused(() => plain.open('k', 'x', 'plain:%%%'), /not base64/)
    refused(() => plain.open('k', 'x', 42), /not a sealed value/)
  })

  it('ticket key records: round trip, rotation, and garbage refused', () => {
    const set = rotateTicketKeys(freshTicketKeys(4))
    const text = encodeTicketKeys(set, 3600, sealed)
    const back = decodeTicketKeys(text, sealed)
    assert.deepEqual(ticketKeyMaterial(back), ticketKeyMaterial(set))
    assert.equal(back.generation, 5)
    assert.deepEqual(ticketKeyMaterial(set), Buffer.concat([set.current, set.previous as Buffer, set.next]))
    const record = JSON.parse(text) as Record<string, unknown>
    for (const [mutation, reason] of [
      [{ v: 2 }, /unknown format version 2/],
      [{ generation: -1 }, /bad generation/],
      [{ rotatedAt: 'soon' }, /bad rotatedAt/],
      [{ current: sealed.seal('tickets#current', Buffer.alloc(79)) }, /not a 80-byte key/],
      [{ next: record.current }, /does not decrypt/],
    ] as Array<[Record<string, unknown>, RegExp]>) {
      assert.throws(() => decodeTicketKeys(JSON.stringify({ ...record, ...mutation }), sealed), reason)
    }
    for (const garbage of ['', 'garbage', '[]', 'null', '{"v":1}']) assert.throws(() => decodeTicketKeys(garbage, sealed), { code: 'ERR_STORE_INVALID_VALUE' }, garbage)
  })

  it('certificate and challenge records: checked before use', () => {
    const cert = f.localhostEcdsa.cert.toString()
    const key = f.localhostEcdsa.key.toString()
    const text = encodeCertificate('localhost', cert, key, sealed)
    assert.ok(!text.includes('PRIVATE KEY'), 'the key is sealed')
    const back = decodeCertificate('localhost', text, sealed)
    assert.deepEqual(back.names, ['localhost'])
    assert.equal(back.key, key)
    const r = JSON.parse(text) as Record<string, unknown>
    assert.throws(() => decodeCertificate('localhost', JSON.stringify({ ...r, cert: 'garbage' }), sealed), /does not load|does not parse/)
    assert.throws(() => decodeCertificate('localhost', JSON.stringify({ ...r, key: sealed.seal('acme:certificate:localhost#key', f.aEcdsa.key) }), sealed), /do not load/)
    assert.throws(() => decodeCertificate('other', text, sealed), /does not decrypt/, 'a record moved under another name does not open')

    const ka = 'tok_en-1.thumbprint'
    const challenge = { type: 'tls-alpn-01' as const, identifier: 'a.acme.test', token: 'tok_en-1', keyAuthorization: ka, validationCertificate: acmeValidationCertificate('a.acme.test', ka) }
    const c = decodeChallenge('tok_en-1', encodeChallenge(challenge, sealed), sealed)
    assert.deepEqual(c, challenge)
    const http = { type: 'http-01' as const, identifier: 'a.acme.test', token: 'tok_en-1', keyAuthorization: ka }
    assert.deepEqual(decodeChallenge('tok_en-1', encodeChallenge(http, sealed), sealed), http)
    assert.throws(() => decodeChallenge('other', encodeChallenge(http, sealed), sealed), /token does not match/)
    assert.throws(() => decodeChallenge('tok_en-1', JSON.stringify({ ...http, v: 1, keyAuthorization: 'x.y' }), sealed), /bad key authorization/)
    assert.throws(() => decodeChallenge('tok_en-1', JSON.stringify({ ...http, v: 1, type: 'dns-01' }), sealed), /unknown challenge type/)
    assert.throws(() => decodeChallenge('tok_en-1', JSON.stringify({ ...http, v: 1, identifier: '*.x' }), sealed), /bad identifier/)
  })
})

describe('check --connect', () => {
  let open: RedisServer
  let locked: RedisServer
  let tls: RedisServer
  const dir = tempDir()
  before(async () => {
    ;[open, locked, tls] = await Promise.all([
      startRedis(),
      startRedis({ password: 'right-password' }),
      startRedis({ tls: { cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath } }),
    ])
  })
  after(async () => {
    await Promise.all([open.close(), locked.close(), tls.close()])
  })

  let n = 0
  const check = async (store: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null, stdout: string, stderr: string }> => {
    const file = writeConfig(dir, { listen: '127.0.0.1:0', store, hosts: [host()] }, `c${n++}.yaml`)
    return await runCli(['check', '-c', file, '--connect'], { env: { ...process.env, ...env } })
  }

  it('a live store: connected, a key round-tripped, exit 0', async () => {
    const r = await check({ redis: open.url })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^store: OK \\(${open.url.replace(/[/.]/g, '\\$&')}: connected, a key written, read back and deleted; no ticket keys stored yet\\)$`, 'm'))
    assert.deepEqual(await open.client().keys('*'), [], 'the check key is deleted')
  })

  it('AUTH from passwordEnv; a wrong password fails with a clear message, the password never printed', async () => {
    const ok = await check({ redis: locked.url, passwordEnv: 'STORE_TEST_PASS' }, { STORE_TEST_PASS: 'right-password' })
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /connected, authenticated, a key written/)
    const wrong = await check({ redis: locked.url, passwordEnv: 'STORE_TEST_PASS' }, { STORE_TEST_PASS: 'wrong-password' })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, new RegExp(`^store: authentication failed for ${locked.url.replace(/[/.]/g, '\\$&')}: WRONGPASS`, 'm'))
    const none = await check({ redis: locked.url })
    assert.equal(none.code, 1)
    assert.match(none.stderr, /^store: authentication failed for .*: NOAUTH/m)
    for (const r of [ok, wrong, none]) assert.ok(!/(right|wrong)-password/.test(r.stdout + r.stderr), 'no password in the output')
  })

  it('rediss:// with store.tls.ca: the server certificate verified', async () => {
    const ok = await check({ redis: tls.url, tls: { ca: f.path('ca.pem') } })
    assert.equal(ok.code, 0, ok.stderr)
    const untrusted = await check({ redis: tls.url, tls: { ca: f.path('other-ca.pem') } })
    assert.equal(untrusted.code, 1)
    assert.match(untrusted.stderr, /^store: cannot connect to rediss:\/\/127\.0\.0\.1:\d+\/0: .*(certificate|self.signed|issuer)/im)
  })

  it('a dead store: exit 1 naming the address and the reason', async () => {
    const port = await freePort()
    const r = await check({ redis: `redis://127.0.0.1:${port}/0` })
    assert.equal(r.code, 1)
    assert.match(r.stdout, /: OK \(1 host/, 'the configuration itself is valid')
    assert.equal(r.stderr, `store: cannot connect to redis://127.0.0.1:${port}/0: connect ECONNREFUSED 127.0.0.1:${port}\n`)
  })

  it('stored ticket keys that this configuration cannot open fail the check', async () => {
    const c = open.client()
    await c.set('rustls-node:tickets', encodeTicketKeys(freshTicketKeys(1), 60, new Sealer(Buffer.alloc(32, 9))))
    try {
      const keyless = await check({ redis: open.url })
      assert.equal(keyless.code, 1)
      assert.match(keyless.stderr, /^store: the ticket keys in .* cannot be used with this configuration: tickets#current: encrypted \(AES-256-GCM\), but store\.encryptionKeyEnv is not set$/m)
      const right = await check({ redis: open.url, encryptionKeyEnv: 'STORE_TEST_KEY' }, { STORE_TEST_KEY: Buffer.alloc(32, 9).toString('hex') })
      assert.equal(right.code, 0, right.stderr)
      assert.match(right.stdout, /ticket keys of generation 1 readable with the encryption key\)$/m)
    } finally {
      await c.del('rustls-node:tickets')
    }
  })

  it('without --connect the store is not contacted; unset secrets are check problems', async () => {
    const port = await freePort()
    const file = writeConfig(dir, { listen: '127.0.0.1:0', store: { redis: `redis://127.0.0.1:${port}`, passwordEnv: 'STORE_UNSET_PASS' }, hosts: [host()] }, 'offline.yaml')
    const env = { ...process.env }
    delete env.STORE_UNSET_PASS
    const r = await runCli(['check', '-c', file], { env })
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^ {2}store\.passwordEnv: environment variable STORE_UNSET_PASS is not set$/m)
    const fine = await runCli(['check', '-c', file], { env: { ...env, STORE_UNSET_PASS: 'x' } })
    assert.equal(fine.code, 0, fine.stderr)
  })
})
