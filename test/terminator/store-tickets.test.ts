// Three terminator instances (separate processes, separate ports, as behind
// an L4 balancer; the third a cluster of two workers that get the keys from
// their primary over IPC) with one store: a TLS 1.3 session made on one
// resumes on the others, also across a forced rotation (and not after a
// second one), the keys in Redis are sealed, and a garbage record is
// refused, counted, logged and replaced while sessions keep resuming
// (issue 21).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, describe, it } from 'node:test'

import { Sealer } from '../../lib/terminator/store/sealing'
import { decodeTicketKeys } from '../../lib/terminator/store/ticket-keys'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { type RedisServer, startRedis } from '../helpers/redis'
import { fetchWithSession, scrapeMetrics } from '../helpers/store-clients'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, runCli, startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

const f = fixtures()
const KEY = Buffer.alloc(32, 0x5a)
const env = { ...process.env, STORE_TEST_KEY: KEY.toString('base64') }

let redis: RedisServer
let echo: HttpEcho
let file: string
const instances: TerminatorProcess[] = []

before(async () => {
  ;[redis, echo] = await Promise.all([startRedis(), httpEcho()])
  const config = {
    listen: ['127.0.0.1:0'],
    metrics: { listen: '127.0.0.1:0' },
    store: { redis: redis.url, encryptionKeyEnv: 'STORE_TEST_KEY' },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
      options: ['StdEnvVars'],
      backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' },
    }],
  }
  file = writeConfig(tempDir(), config)
  // One at a time: the first seeds the keys, the others load them.
  for (let i = 0; i < 2; i++) instances.push(await startTerminator(file, { env }))
  instances.push(await startTerminator(writeConfig(tempDir(), { ...config, workers: 2 }), { env, listening: 2, extraArgs: ['--log-level', 'debug'] }))
})

after(async () => {
  await echo.close()
  await redis.close()
})

const ca = fs.readFileSync(f.path('ca.pem'))
const port = (t: TerminatorProcess): number => t.port
/**
 * Runs `attempt` on `t` once, or on the cluster until both of its workers
 * took a connection (at most 40 times).
 */
async function onEveryProcess (t: TerminatorProcess, attempt: () => Promise<void>): Promise<void> {
  if (t !== instances[2]) return await attempt()
  const from = t.logs().length
  const served = (): Set<unknown> => new Set(t.logs().slice(from).filter((l) => l.msg === 'handshake complete').map((l) => l.pid))
  for (let i = 0; i < 40 && served().size < 2; i++) {
    await attempt()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  // A worker's log lines can reach the pipe well after its handshakes under load.
  for (let i = 0; i < 30 && served().size < 2; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(served().size, 2, 'both workers were reached')
}
const metricsPort = (t: TerminatorProcess): number => t.logs().find((l) => l.msg === 'metrics listening')?.port as number

async function storedGeneration (): Promise<number> {
  const text = await redis.client().get('rustls-node:tickets')
  assert.ok(text !== null)
  return decodeTicketKeys(text, new Sealer(KEY)).generation
}

/** Rotates through the CLI and waits until every instance took the new keys. */
async function rotate (): Promise<number> {
  const r = await runCli(['rotate-ticket-keys', '-c', file], { env })
  assert.equal(r.code, 0, r.stderr)
  const generation = Number(/^ticket keys rotated: generation (\d+) /.exec(r.stdout)?.[1])
  assert.equal(await storedGeneration(), generation)
  for (const t of instances) {
    await t.waitForLog((l) => l.msg === 'ticket keys updated from the store' && l.generation === generation, `instance ${t.pid} at generation ${generation}`)
  }
  return generation
}

describe('ticket keys in the store (three instances)', () => {
  it('every instance starts with the same sealed keys; a session made on one resumes on all', async () => {
    const [a, b, c] = instances
    for (const t of instances) {
      const line = t.logs().find((l) => l.msg === 'ticket keys from the store in place')
      assert.equal(line?.generation, 1, `instance ${t.pid}`)
      assert.ok(!t.logs().some((l) => /unencrypted/.test(l.msg)), 'no warning with encryptionKeyEnv')
    }
    const record = JSON.parse(await redis.client().get('rustls-node:tickets') ?? '{}') as Record<string, string>
    for (const field of ['current', 'next']) assert.match(record[field], /^aes256gcm:/, field)

    // The cluster's primary is its machine's one store client; its /metrics says so.
    const cluster = await scrapeMetrics(metricsPort(c))
    assert.equal(cluster.get('rustls_node_store_up'), 1)
    assert.equal(cluster.get('rustls_node_workers'), 2)

    const first = await fetchWithSession(port(a), ca, undefined)
    assert.equal(first.status, 200)
    assert.equal(first.serverResumed, 'Initial')
    assert.ok(first.session !== undefined)
    for (const t of [b, c, a]) {
      await onEveryProcess(t, async () => {
        const again = await fetchWithSession(port(t), ca, first.session)
        assert.equal(again.resumed, true, `client resumed on ${t.pid}`)
        assert.equal(again.serverResumed, 'Resumed', `server resumed on ${t.pid}`)
      })
    }
  })

  it('a forced rotation: tickets from before resume everywhere after it, and not after a second one', async () => {
    const [a, b, c] = instances
    const before = (await fetchWithSession(port(a), ca)).session
    await rotate()
    for (const t of [b, c]) assert.equal((await fetchWithSession(port(t), ca, before)).serverResumed, 'Resumed', `old ticket on ${t.pid}`)
    const sealedAfter = (await fetchWithSession(port(c), ca)).session
    assert.equal((await fetchWithSession(port(a), ca, sealedAfter)).serverResumed, 'Resumed', 'a ticket sealed after the rotation, on another instance')

    await rotate()
    for (const t of instances) {
      // On the cluster, every worker must have been handed the new keys.
      await onEveryProcess(t, async () => {
        const old = await fetchWithSession(port(t), ca, before)
        assert.equal(old.status, 200)
        assert.equal(old.serverResumed, 'Initial', `a ticket two rotations old is refused on ${t.pid}`)
      })
    }
    assert.equal((await fetchWithSession(port(b), ca, sealedAfter)).serverResumed, 'Resumed', 'one rotation old still resumes')
  })

  it('a garbage record is refused, counted and logged, and replaced with the keys in use; sessions keep resuming', async () => {
    const [a, b, c] = instances
    const session = (await fetchWithSession(port(a), ca)).session
    const generation = await storedGeneration()
    const client = redis.client()
    await client.set('rustls-node:tickets', '{"v":1,"generation":"garbage"')
    await client.publish('rustls-node:events', JSON.stringify({ type: 'ticket-keys' }))
    await client.publish('rustls-node:events', 'not an event')
    let refusedBy: TerminatorProcess | undefined
    await waitFor(() => {
      refusedBy = instances.find((t) => t.logs().some((l) => l.msg === 'invalid value in the store refused' && l.kind === 'ticket-keys'))
      return refusedBy !== undefined
    }, 5000, 'an instance to refuse the record')
    const line = refusedBy?.logs().find((l) => l.msg === 'invalid value in the store refused' && l.kind === 'ticket-keys')
    assert.equal(line?.level, LEVEL.error)
    assert.equal(line?.key, 'rustls-node:tickets')
    assert.equal(line?.reason, 'tickets: not JSON')
    await waitFor(async () => await storedGeneration().then((g) => g === generation, () => false), 5000, 'the record to be replaced')
    const m = await scrapeMetrics(metricsPort(refusedBy as TerminatorProcess))
    assert.ok((m.get('rustls_node_store_invalid_values_total{kind="ticket-keys"}') ?? 0) >= 1)
    assert.equal(m.get('rustls_node_store_invalid_values_total{kind="event"}'), 1)
    assert.equal(m.get('rustls_node_store_up'), 1)
    for (const t of [b, c, a]) assert.equal((await fetchWithSession(port(t), ca, session)).serverResumed, 'Resumed', `on ${t.pid} after the repair`)
    for (const t of instances) assert.equal(t.proc.exitCode, null, 'nobody crashed')
  })

  it('all stop cleanly', async () => {
    for (const t of instances) await stopClean(t)
  })
})

