// The store stopped and started again (empty, as a Redis without
// persistence) under light load on two instances: no request fails, the
// outage and the recovery are logged and in the metrics, and no session is
// lost: the keys in use are written back, so tickets from before the outage
// still resume on both instances afterwards (issue 21).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { after, before, it } from 'node:test'

import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { type RedisServer, startRedis } from '../helpers/redis'
import { fetchWithSession, scrapeMetrics } from '../helpers/store-clients'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

const f = fixtures()
const ca = fs.readFileSync(f.path('ca.pem'))
let redis: RedisServer
let echo: HttpEcho

before(async () => {
  ;[redis, echo] = await Promise.all([startRedis(), httpEcho()])
})
after(async () => {
  await echo.close()
  await redis.close()
})

/** Requests every 25 ms, alternating instances, each offering the last session it got. */
function lightLoad (ports: number[]): { stop: () => Promise<{ ok: number, failed: string[], resumed: number }> } {
  let running = true
  let ok = 0
  let resumed = 0
  const failed: string[] = []
  let session: Buffer | undefined
  const loop = (async () => {
    for (let i = 0; running; i++) {
      try {
        const r = await fetchWithSession(ports[i % ports.length], ca, session)
        if (r.status === 200) ok++
        else failed.push(`HTTP ${r.status}`)
        if (r.serverResumed === 'Resumed') resumed++
        session = r.session ?? session
      } catch (err) {
        failed.push((err as Error).message)
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      return { ok, failed, resumed }
    },
  }
}

it('Redis stopped and restarted empty under load: 0 failed requests, outage and recovery logged, no session lost', async () => {
  const file = writeConfig(tempDir(), {
    listen: ['127.0.0.1:0'],
    metrics: { listen: '127.0.0.1:0' },
    store: { redis: redis.url },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
      options: ['StdEnvVars'],
      backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' },
    }],
  })
  const a = await startTerminator(file)
  const b = await startTerminator(file)
  const both = [a, b]
  const metrics = (t: TerminatorProcess): number => t.logs().find((l) => l.msg === 'metrics listening')?.port as number
  try {
    for (const t of both) {
      const warning = t.logs().find((l) => l.msg.startsWith('store: private keys and ticket keys are kept in Redis unencrypted'))
      assert.equal(warning?.level, LEVEL.warn, 'no encryptionKeyEnv: a warning at start')
    }
    const load = lightLoad([a.port, b.port])
    const before = (await fetchWithSession(a.port, ca)).session
    await new Promise((resolve) => setTimeout(resolve, 300))

    await redis.stop()
    for (const t of both) {
      const line = await t.waitForLog((l) => l.msg === 'store unavailable; serving local state', `${t.pid}: the outage`)
      assert.equal(line.level, LEVEL.error)
    }
    assert.equal((await scrapeMetrics(metrics(a))).get('rustls_node_store_up'), 0)
    await new Promise((resolve) => setTimeout(resolve, 800))
    assert.equal((await fetchWithSession(b.port, ca, before)).serverResumed, 'Resumed', 'the last keys keep serving during the outage')

    await redis.restart()
    for (const t of both) await t.waitForLog((l) => l.msg === 'store reconnected; re-syncing', `${t.pid}: the recovery`, 15_000)
    // The store came back empty: one instance writes the keys in use back.
    await waitFor(() => both.some((t) => t.logs().some((l) => l.msg === 'ticket keys written (back) to the store' && l.generation === 1)), 5000, 'the keys written back')
    assert.ok(await redis.client().exists('rustls-node:tickets') === 1)
    await new Promise((resolve) => setTimeout(resolve, 300))

    const result = await load.stop()
    assert.deepEqual(result.failed, [], 'no request failed')
    assert.ok(result.ok >= 20, `${result.ok} requests`)
    assert.ok(result.resumed >= result.ok / 2, `${result.resumed} of ${result.ok} resumed`)
    for (const t of both) assert.equal((await fetchWithSession(t.port, ca, before)).serverResumed, 'Resumed', `a ticket from before the outage on ${t.pid}`)
    const fresh = (await fetchWithSession(b.port, ca)).session
    assert.equal((await fetchWithSession(a.port, ca, fresh)).serverResumed, 'Resumed', 'sessions made after the recovery are shared')
    for (const t of both) {
      const m = await scrapeMetrics(metrics(t))
      assert.equal(m.get('rustls_node_store_up'), 1)
      assert.ok((m.get('rustls_node_store_errors_total{op="connect"}') ?? 0) >= 1, 'reconnection attempts counted')
      assert.equal(m.get('rustls_node_handshakes_total{outcome="ok"}') !== undefined, true)
    }
  } finally {
    await stopClean(a)
    await stopClean(b)
  }
})
