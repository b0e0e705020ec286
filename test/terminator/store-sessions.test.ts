// TLS 1.2 session ids shared through the store (issue 21: mod_tls
// TLSSessionCache over a shared provider): a session made on one terminator
// resumes on another that never saw it, the session sits sealed in Redis,
// and a garbage value there is refused (a full handshake, counted); a
// sealed value rustls cannot use is deleted once refused.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import { Sealer } from '../../lib/terminator/store/sealing'
import { fixtures } from '../helpers/certs'
import { sClient, waitFor } from '../helpers/peers'
import { type RedisServer, startRedis } from '../helpers/redis'
import { tcpRecorder, type TcpRecorder } from './backends'
import { startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

const f = fixtures()
const KEY = Buffer.alloc(32, 0x3c)
const env = { ...process.env, STORE_SESSION_KEY: KEY.toString('base64') }

let redis: RedisServer
let echo: TcpRecorder
const instances: TerminatorProcess[] = []
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-store-sessions-'))

before(async () => {
  ;[redis, echo] = await Promise.all([startRedis(), tcpRecorder()])
  const file = writeConfig(tempDir(), {
    listen: ['127.0.0.1:0'],
    store: { redis: redis.url, encryptionKeyEnv: 'STORE_SESSION_KEY' },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
      backend: { address: `127.0.0.1:${echo.port}`, mode: 'tcp' },
    }],
  })
  for (let i = 0; i < 2; i++) instances.push(await startTerminator(file, { env }))
})

after(async () => {
  for (const t of instances) await stopClean(t)
  await echo.close()
  await redis.close()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** openssl s_client, TLS 1.2, session ids only (no ticket asked): whether it reused. */
async function tls12 (port: number, sess: { out?: string, in?: string }): Promise<boolean> {
  const args = ['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem'), '-tls1_2', '-no_ticket']
  if (sess.out !== undefined) args.push('-sess_out', sess.out)
  if (sess.in !== undefined) args.push('-sess_in', sess.in)
  const r = await sClient(args, { timeoutMs: 10_000, input: 'ping\n' })
  return /^Reused, /m.test(r.stdout)
}

describe('TLS sessions in the store (two instances)', () => {
  it('a TLS 1.2 session made on one instance resumes on the other; it is stored sealed', async () => {
    const [a, b] = instances
    const file = path.join(dir, 'a.pem')
    assert.equal(await tls12(a.port, { out: file }), false)
    await waitFor(async () => (await redis.client().keys('rustls-node:session:*')).length === 1, 5000, 'the session in the store')
    const [key] = await redis.client().keys('rustls-node:session:*')
    const stored = await redis.client().get(key)
    assert.match(String(stored), /^aes256gcm:/, 'sealed')
    assert.ok(Number(await redis.client().pttl(key)) > 0, 'it expires')
    assert.equal(await tls12(b.port, { in: file }), true, 'resumed on the instance that never saw it')
  })

  it('a garbage value in place of a session: a full handshake, refused and counted', async () => {
    const [a, b] = instances
    const file = path.join(dir, 'garbage.pem')
    assert.equal(await tls12(a.port, { out: file }), false)
    await waitFor(async () => (await redis.client().keys('rustls-node:session:*')).length === 2, 5000, 'the second session in the store')
    for (const key of await redis.client().keys('rustls-node:session:*')) await redis.client().set(key, 'garbage')
    assert.equal(await tls12(b.port, { in: file }), false)
    await b.waitForLog((l) => l.msg === 'invalid value in the store refused' && l.kind === 'tls-session', 'the refusal')
  })

  it('a sealed value rustls cannot use: a full handshake, and the record is deleted', async () => {
    const [a, b] = instances
    const file = path.join(dir, 'unusable.pem')
    const known = new Set(await redis.client().keys('rustls-node:session:*'))
    assert.equal(await tls12(a.port, { out: file }), false)
    let key: string | undefined
    await waitFor(async () => { key = (await redis.client().keys('rustls-node:session:*')).find((k) => !known.has(k)); return key !== undefined }, 5000, 'the new session in the store')
    const name = String(key).slice('rustls-node:'.length)
    // Opens under the store's key, but is no session rustls can decode.
    await redis.client().set(String(key), new Sealer(KEY).seal(name, Buffer.alloc(60, 0xee)))
    assert.equal(await tls12(b.port, { in: file }), false)
    await waitFor(async () => Number(await redis.client().exists(String(key))) === 0, 5000, 'the refused session deleted from the store')
  })
})
