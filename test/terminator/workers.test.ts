// workers: 2 (node:cluster). The primary's ticket keys let a session made
// on one worker resume on the other (SPEC §4.4); SIGHUP and SIGTERM reach
// every worker; a dead worker is replaced; metrics add up across workers.
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, sClient, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, serveConfig, stopClean, tempDir, TerminatorProcess } from './harness'

const f = fixtures()
let echo: HttpEcho
let t: TerminatorProcess
let port: number
let metricsPort: number

before(async () => {
  echo = await httpEcho()
  port = await freePort()
  metricsPort = await freePort()
  t = (await serveConfig({
    listen: [`127.0.0.1:${port}`],
    workers: 2,
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  }, { listening: 2, extraArgs: ['--log-level', 'debug'] })).t
})

after(async () => {
  await echo.close()
})

function workerPids (): Set<number> {
  return new Set(t.logs().filter((l) => l.msg === 'listening').map((l) => l.pid as number))
}

async function scrape (): Promise<Map<string, number>> {
  const r = await curl([`http://127.0.0.1:${metricsPort}/metrics`])
  const out = new Map<string, number>()
  for (const line of r.stdout.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

test('two workers listen on the same port; the primary does not', () => {
  const pids = workerPids()
  assert.equal(pids.size, 2)
  assert.ok(!pids.has(t.pid))
  assert.equal(t.logs().find((l) => l.msg === 'cluster primary started')?.pid, t.pid)
})

test('a session made on one worker resumes on either (shared ticket keys)', async () => {
  const sess = path.join(tempDir(), 'session.pem')
  const base = ['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem')]
  const first = await sClient([...base, '-sess_out', sess], { holdOpenMs: 300 })
  assert.match(first.stdout, /^New, TLSv1\.3/m, first.stdout)
  assert.ok(fs.statSync(sess).size > 0)
  for (let i = 0; i < 6; i++) {
    const again = await sClient([...base, '-sess_in', sess])
    assert.match(again.stdout, /^Reused, TLSv1\.3/m, `connection ${i + 2}:\n${again.stdout}`)
  }
  await waitFor(() => t.logs().filter((l) => l.msg === 'handshake complete' && l.resumed === true).length === 6, 5000, 'six resumed handshakes logged')
  const resumedOn = new Set(t.logs().filter((l) => l.msg === 'handshake complete' && l.resumed === true).map((l) => l.pid as number))
  assert.deepEqual([...resumedOn].sort(), [...workerPids()].sort(), 'both workers resumed sessions')
  const m = await scrape()
  assert.equal(m.get('rustls_node_workers'), 2)
  assert.equal(m.get('rustls_node_handshakes_resumed_total'), 6)
  assert.equal(m.get('rustls_node_handshakes_total{outcome="ok"}'), 7)
})

test('SIGHUP on the primary reloads every worker', async () => {
  t.signal('SIGHUP')
  await waitFor(() => t.logs().filter((l) => l.msg === 'configuration reloaded').length === 2, 5000, 'two reloads')
  const pids = new Set(t.logs().filter((l) => l.msg === 'configuration reloaded').map((l) => l.pid))
  assert.equal(pids.size, 2)
})

test('a worker that dies is replaced and the port keeps serving', async () => {
  const [victim] = [...workerPids()]
  process.kill(victim, 'SIGKILL')
  const died = await t.waitForLog((l) => l.msg === 'worker died; restarting it', 'the restart line')
  assert.equal(died.level, LEVEL.error)
  assert.equal(died.pid, t.pid)
  assert.equal(died.workerPid, victim)
  assert.equal(died.signal, 'SIGKILL')
  await waitFor(() => t.logs().filter((l) => l.msg === 'listening').length === 3, 10_000, 'the new worker to listen')
  for (let i = 0; i < 4; i++) {
    const r = await curl(['--cacert', f.path('ca.pem'), '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${port}/`])
    assert.equal(r.stdout, '200')
  }
  const m = await scrape()
  assert.equal(m.get('rustls_node_worker_restarts_total'), 1)
  assert.equal(m.get('rustls_node_workers'), 2)
})

test('SIGTERM on the primary drains every worker and exits 0', async () => {
  await stopClean(t)
  // Two live workers and the primary.
  assert.equal(t.logs().filter((l) => l.msg === 'stopped').length, 3)
  assert.equal(t.logs().filter((l) => l.msg === 'stopped' && l.liveHandles !== undefined).length, 2)
})

test('a cluster whose certificate does not load never forks: exit 2 with the problem', async () => {
  const dir = tempDir()
  const file = path.join(dir, 'bad.yaml')
  fs.writeFileSync(file, JSON.stringify({
    listen: ['127.0.0.1:0'],
    workers: 2,
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.path('mismatch.key') }], backend: { address: '127.0.0.1:1' } }],
  }))
  const bad = new TerminatorProcess(['serve', '-c', file])
  assert.equal((await bad.exited).code, 2)
  assert.match(bad.stderr(), /hosts\[0\]\.certificates\[0\]\.key: .*KeyMismatch/)
  assert.equal(bad.logs().some((l) => l.msg === 'cluster primary started'), false)
})
