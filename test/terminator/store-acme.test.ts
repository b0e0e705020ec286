// Two instances, one store, pebble as the CA (issue 21): one instance orders
// under the store's lock, and the CA's validation always lands on the other
// one (a router in front of pebble's validation ports sends every probe to
// the instance that does NOT hold the lock), which answers from the store:
// tls-alpn-01 on its TLS port, http-01 on its acme.httpListen. Both then
// serve the new certificate.
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import type Redis from 'ioredis'

import { freePort, sClient, waitFor } from '../helpers/peers'
import { type Pebble, startPebble } from '../helpers/pebble'
import { type RedisServer, startRedis } from '../helpers/redis'
import { httpEcho, type HttpEcho } from './backends'
import { startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

let pebble: Pebble
let redis: RedisServer
let echo: HttpEcho
let caFile: string
const routers: Router[] = []

interface Router {
  /** pid of the instance each probe went to. */
  probes: number[]
  /** Instances by pid → the port probes for them go to, once they have the challenge in place. */
  targets: Map<number, { port: number, ready: () => boolean }>
  close: () => void
}

/**
 * Listens on `port` (pebble's validation port) and forwards each connection
 * to the instance that does not hold `lock` (the holder's pid is the second
 * field of the lock token, `<hostname>:<pid>:...`). An instance that is
 * still starting when the CA asks (it missed the event and finds the
 * challenge in its first re-sync) is waited for, up to 10 s: what is under
 * test is that it answers from the store, not the start-up race.
 */
async function probeRouter (port: number, client: Redis, lock: string): Promise<Router> {
  const router: Router = { probes: [], targets: new Map(), close: () => server.close() }
  const server = net.createServer((inbound) => {
    inbound.pause()
    inbound.on('error', () => {})
    client.get(lock).then(async (token) => {
      const holder = Number(token?.split(':')[1])
      let found: [number, { port: number, ready: () => boolean }] | undefined
      await waitFor(() => {
        found = [...router.targets].find(([p]) => p !== holder)
        return found?.[1].ready() === true
      }, 10_000, 'the other instance').catch(() => {})
      if (found === undefined) {
        inbound.destroy()
        return
      }
      const [pid, { port: target }] = found
      router.probes.push(pid)
      const outbound = net.connect(target, '127.0.0.1')
      outbound.on('error', () => inbound.destroy())
      inbound.pipe(outbound).pipe(inbound)
      inbound.resume()
    }).catch(() => inbound.destroy())
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  routers.push(router)
  return router
}

before(async () => {
  const [tlsPort, httpPort] = [await freePort(), await freePort()]
  ;[pebble, redis, echo] = await Promise.all([startPebble({ tlsPort, httpPort }), startRedis(), httpEcho()])
  caFile = path.join(tempDir(), 'pebble-directory-ca.pem')
  fs.writeFileSync(caFile, pebble.directoryCa)
})
after(async () => {
  for (const r of routers) r.close()
  await Promise.all([pebble.stop(), echo.close()])
  await redis.close()
})

async function servedLeaf (port: number, name: string): Promise<X509Certificate> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', name])
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)
  assert.ok(pem !== null, r.stdout + r.stderr)
  return new X509Certificate(pem[0])
}

/** Two instances of one configuration (own stateDir, own acme.httpListen), started together. */
async function pair (name: string, challenge: 'tls-alpn-01' | 'http-01'): Promise<TerminatorProcess[]> {
  const started: Array<Promise<TerminatorProcess>> = []
  const http: number[] = []
  for (let i = 0; i < 2; i++) {
    const dir = tempDir()
    http.push(await freePort())
    const file = writeConfig(dir, {
      listen: ['127.0.0.1:0'],
      stateDir: path.join(dir, 'state'),
      store: { redis: redis.url, encryptionKeyEnv: 'STORE_TEST_KEY' },
      acme: { directory: pebble.directory, ca: caFile, termsOfServiceAgreed: true, httpListen: `127.0.0.1:${http[i]}` },
      hosts: [{ serverName: name, acme: { challenge }, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    })
    started.push(startTerminator(file, { env: { ...process.env, STORE_TEST_KEY: 'c3'.repeat(32) } }))
  }
  return await Promise.all(started)
}

async function orderedByOneAnsweredByTheOther (name: string, challenge: 'tls-alpn-01' | 'http-01'): Promise<void> {
  const router = await probeRouter(challenge === 'tls-alpn-01' ? pebble.tlsPort : pebble.httpPort, redis.client(), `rustls-node:lock:acme:${name}`)
  const instances = await pair(name, challenge)
  try {
    for (const t of instances) {
      router.targets.set(t.pid, {
        port: challenge === 'tls-alpn-01' ? t.port : (await t.waitForLog((l) => l.msg === 'ACME http-01 listening', 'acme.httpListen')).port as number,
        ready: () => t.logs().some((l) => l.msg === 'ACME challenge from the store in place' && l.identifier === name),
      })
    }
    const installed = (t: TerminatorProcess): boolean => t.logs().some((l) => l.msg === 'ACME certificate installed' || l.msg === 'ACME certificate installed from the store')
    for (const t of instances) await t.waitForLog(() => installed(t), `${t.pid}: the certificate`, 40_000)

    const orderers = instances.filter((t) => t.logs().some((l) => l.msg === 'ACME order starting'))
    const story = instances.map((t) => t.logs().filter((l) => /ACME|store/.test(l.msg)).map((l) => `${t.pid} ${l.time as string} ${l.msg} ${String(l.reason ?? l.holder ?? '')}`).join('\n')).join('\n')
    assert.equal(orderers.length, 1, `exactly one instance ordered:\n${story}`)
    const [orderer] = orderers
    const other = instances.find((t) => t !== orderer) as TerminatorProcess
    assert.ok(router.probes.length >= 1, 'the CA validated')
    assert.deepEqual(new Set(router.probes), new Set([other.pid]), 'every probe went to the instance that did not order')
    const shared = orderer.logs().find((l) => l.msg === 'ACME challenge shared')
    assert.deepEqual([shared?.identifier, shared?.type], [name, challenge])
    // Every instance subscribed at the time acknowledged (both, unless the other was still starting).
    assert.ok(shared?.acknowledged === shared?.instances && [1, 2].includes(shared?.instances as number), JSON.stringify(shared))
    assert.ok(other.logs().some((l) => l.msg === 'ACME challenge from the store in place' && l.identifier === name && l.type === challenge))
    assert.ok(orderer.logs().some((l) => l.msg === 'ACME certificate installed'))
    await other.waitForLog((l) => l.msg === 'certificates refreshed', 'the other instance serving it')

    const [leafA, leafB] = [await servedLeaf(orderer.port, name), await servedLeaf(other.port, name)]
    assert.match(leafA.issuer, /Pebble Intermediate/)
    assert.equal(leafB.serialNumber, leafA.serialNumber, 'both serve the same certificate')
    assert.equal(leafA.subjectAltName, `DNS:${name}`)
    // In the store: the chain in the clear, the key sealed.
    const stored = JSON.parse(await redis.client().get(`rustls-node:acme:certificate:${name}`) ?? '{}') as Record<string, string>
    assert.ok(stored.cert.includes('-----BEGIN CERTIFICATE-----'))
    assert.match(stored.key, /^aes256gcm:/)
    assert.equal(await redis.client().exists(`rustls-node:lock:acme:${name}`), 0, 'the lock is released')
    assert.deepEqual(await redis.client().keys('rustls-node:acme:challenge*'), [], 'the challenges are removed')

    // Garbage in place of the certificate: refused, counted, and the served one written back.
    const client = redis.client()
    await client.set(`rustls-node:acme:certificate:${name}`, 'garbage')
    await client.publish('rustls-node:events', JSON.stringify({ type: 'acme-certificate', serverName: name }))
    // Pub/sub tells both at once (an instance that missed it reads the key at
    // its next re-sync, every 10 s). The first to read the garbage refuses it
    // and writes the served certificate back, so the other may read the good
    // record and never see the garbage: at least one refusal, each one of
    // this key.
    const refusal = (l: Record<string, unknown>): boolean => l.msg === 'invalid value in the store refused' && l.kind === 'acme-certificate'
    await waitFor(async () => instances.some((t) => t.logs().some(refusal)), 25_000, 'the refusal')
    for (const t of instances) {
      for (const l of t.logs().filter(refusal)) assert.equal(l.key, `rustls-node:acme:certificate:${name}`)
    }
    await waitFor(async () => {
      const text = await client.get(`rustls-node:acme:certificate:${name}`)
      return text !== null && text.startsWith('{') && new X509Certificate((JSON.parse(text) as { cert: string }).cert).serialNumber === leafA.serialNumber
    }, 5000, 'the certificate written back')
    assert.ok(instances.some((t) => t.logs().some((l) => l.msg === 'ACME certificate written back to the store')))
    assert.equal((await servedLeaf(other.port, name)).serialNumber, leafA.serialNumber, 'still serving it')
  } finally {
    for (const t of instances) await stopClean(t)
  }
}

describe('ACME with a store (pebble, two instances)', () => {
  it('the store away: no order starts (the temporary certificate serves) until it answers', async () => {
    const dir = tempDir()
    const down = await startRedis()
    await down.stop()
    const file = writeConfig(dir, {
      // Where pebble validates tls-alpn-01 (the routers of the next tests are not there yet).
      listen: [`127.0.0.1:${pebble.tlsPort}`],
      stateDir: path.join(dir, 'state'),
      store: { redis: down.url },
      acme: { directory: pebble.directory, ca: caFile, termsOfServiceAgreed: true },
      hosts: [{ serverName: 'sd.acme.test', acme: true, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    })
    const t = await startTerminator(file)
    try {
      const outage = await t.waitForLog((l) => l.msg === 'store unavailable; serving local state', 'the outage')
      assert.match(String(outage.reason), /ECONNREFUSED/)
      await t.waitForLog((l) => l.msg === 'ACME order put off: the store is unavailable; the current certificate keeps serving', 'the order put off')
      assert.ok(!t.logs().some((l) => l.msg === 'ACME order starting'))
      assert.match((await servedLeaf(t.port, 'sd.acme.test')).subject, /sd\.acme\.test/, 'the temporary certificate serves')
      await down.restart()
      await t.waitForLog((l) => l.msg === 'store reconnected; re-syncing' || l.msg === 'store connected', 'the store', 15_000)
      await t.waitForLog((l) => l.msg === 'ACME certificate installed', 'the order once the store answers', 30_000)
      assert.match((await servedLeaf(t.port, 'sd.acme.test')).issuer, /Pebble Intermediate/)
    } finally {
      await stopClean(t)
      await down.close()
    }
  })

  it('tls-alpn-01: one orders, the CA validates against the other, both serve the certificate', async () => {
    await orderedByOneAnsweredByTheOther('sa.acme.test', 'tls-alpn-01')
  })

  it('http-01: one orders, the CA fetches the token from the other\'s acme.httpListen, both serve the certificate', async () => {
    await orderedByOneAnsweredByTheOther('sh.acme.test', 'http-01')
  })
})
