// workers: 2 (node:cluster). The primary's ticket keys let a session made
// on one worker resume on the other (SPEC §4.4), also across the primary's
// key rotations (issue 14); SIGHUP and SIGTERM reach every worker; a dead
// worker is replaced; metrics add up across workers.
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
  // Which worker accepts is the kernel's race between two processes on one
  // accept queue, and the one that served last often wins it: resumed
  // connections are made until each worker has taken one, every one of
  // them a resumption (at least 4; a bound keeps a broken spread from
  // hanging the test).
  const resumed = (): Array<Record<string, unknown>> => t.logs().filter((l) => l.msg === 'handshake complete' && l.resumed === true)
  let made = 0
  while (made < 4 || (new Set(resumed().map((l) => l.pid)).size < 2 && made < 60)) {
    const again = await sClient([...base, '-sess_in', sess])
    made++
    assert.match(again.stdout, /^Reused, TLSv1\.3/m, `connection ${made + 1}:\n${again.stdout}`)
    await waitFor(() => resumed().length === made, 5000, `${made} resumed handshakes logged`)
  }
  const resumedOn = new Set(resumed().map((l) => l.pid as number))
  assert.deepEqual([...resumedOn].sort(), [...workerPids()].sort(), `both workers resumed sessions (${made} connections)`)
  const m = await scrape()
  assert.equal(m.get('rustls_node_workers'), 2)
  assert.equal(m.get('rustls_node_handshakes_resumed_total'), made)
  assert.equal(m.get('rustls_node_handshakes_total{outcome="ok"}'), made + 1)
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

test('the primary rotates the keys every ticketLifetime; workers resume each other\'s tickets across a rotation, not after the next', async () => {
  const rotating = (await serveConfig({
    listen: ['127.0.0.1:0'],
    workers: 2,
    ticketLifetime: '3s',
    hosts: [{ serverName: 'localhost', certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
  }, { listening: 2, extraArgs: ['--log-level', 'debug'] })).t
  try {
    const rport = rotating.ports()[0]
    const dir = tempDir()
    const [sess, sess2] = [path.join(dir, 'before.pem'), path.join(dir, 'after.pem')]
    const base = ['-connect', `127.0.0.1:${rport}`, '-servername', 'localhost', '-CAfile', f.path('ca.pem')]
    const rotations = (): number => rotating.logs().filter((l) => l.msg === 'ticket keys rotated').length
    const rotation = async (n: number): Promise<void> => await waitFor(() => rotations() >= n, 10_000, `rotation ${n}`)
    const resumedOn = (): number[] => rotating.logs().filter((l) => l.msg === 'handshake complete' && l.resumed === true).map((l) => l.pid as number)
    // Just after a rotation, so the ticket is sealed with the key that
    // became current then (the next rotation is 3 s away).
    const n = rotations() + 1
    await rotation(n)
    const made = await sClient([...base, '-sess_out', sess], { holdOpenMs: 300 })
    assert.match(made.stdout, /^New, TLSv1\.3/m, made.stdout)
    await rotation(n + 1)
    const workers = new Set(rotating.logs().filter((l) => l.msg === 'listening').map((l) => l.pid as number))
    // Every connection resumes `file`, until both workers took one: the
    // kernel spreads connections over the workers' inherited sockets.
    const resumedOnBoth = async (file: string, label: string): Promise<void> => {
      const before = resumedOn().length
      for (let i = 0; i < 16 && new Set(resumedOn().slice(before)).size < workers.size; i++) {
        const again = await sClient([...base, '-sess_in', file])
        assert.match(again.stdout, /^Reused, TLSv1\.3/m, `${label}, connection ${i + 1}:\n${again.stdout}`)
        await waitFor(() => resumedOn().length > before + i, 5000, 'the resumed handshake logged')
      }
      assert.deepEqual(new Set(resumedOn().slice(before)), workers, `both workers resumed ${label}`)
    }
    // Within the grace period.
    await resumedOnBoth(sess, 'the old ticket after one rotation')
    // A ticket sealed after the rotation, by whichever worker.
    const renewed = await sClient([...base, '-sess_in', sess, '-sess_out', sess2], { holdOpenMs: 300 })
    assert.match(renewed.stdout, /^Reused, TLSv1\.3/m, renewed.stdout)
    await rotation(n + 2)
    const dropped = await sClient([...base, '-sess_in', sess])
    assert.match(dropped.stdout, /^New, TLSv1\.3/m, `two rotations later the old key is gone:\n${dropped.stdout}`)
    await resumedOnBoth(sess2, 'the newer ticket')
  } finally {
    await stopClean(rotating)
  }
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
