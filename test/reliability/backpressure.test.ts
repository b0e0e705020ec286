// Issue 6, item 5: backpressure through the terminator, tcp and http mode,
// and (issue 18) the tunnel an upgraded http-mode connection becomes.
// Download: the backend offers SCALE.backpressureBytes (1 GiB) as fast as
// its socket takes it, each client reads one byte per millisecond.
// Upload: each client tries to send 1 GiB, the backend accepts and never
// reads (for a tunnel: it answers the Upgrade with 101, then never reads). For SCALE.backpressureMs the terminator's RSS is sampled every
// 50 ms. If any hop buffered instead of pausing its source, RSS would grow
// with loopback speed (hundreds of MiB per second).
//
// Stated bound: peak RSS ≤ baseline + 2 × BUFFER_LIMIT × connections +
// HEAP_SLACK, with BUFFER_LIMIT = 1 MiB (what one direction of a connection
// may hold in the terminator: the plaintext streams' high-water marks, one
// native batch of ciphertext, and HTTP parser buffers) and HEAP_SLACK =
// 48 MiB (V8's young generation and garbage not yet collected, JIT
// code, allocator arenas). The bytes that got through are reported: they
// must be a vanishing part of the 1 GiB (most sit in kernel socket buffers,
// outside the terminator's RSS). Once the clients are gone, the
// terminator's open-connection gauge must come back to 0.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { test, type TestContext } from 'node:test'
import tls from 'node:tls'

import { fixtures } from '../helpers/certs'
import { freePort } from '../helpers/peers'
import { serveConfig, stopClean, type TerminatorProcess } from '../terminator/harness'
import { mib, MiB, recordFigures, rssOf, SCALE, STRESS } from './scale'

const f = fixtures()
const BUFFER_LIMIT = 1 * MiB
const HEAP_SLACK = 48 * MiB
const CHUNK = Buffer.alloc(64 * 1024, 0x42)

/** Writes up to `total` bytes to `w`, honouring its backpressure; counts what it took. */
function pour (w: NodeJS.WritableStream & { destroyed?: boolean, writableLength?: number }, total: number, counter: { bytes: number }): void {
  const step = (): void => {
    while (counter.bytes < total && w.destroyed !== true) {
      const n = Math.min(CHUNK.length, total - counter.bytes)
      counter.bytes += n
      if (!w.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        w.once('drain', step)
        return
      }
    }
  }
  step()
}

interface Backend { port: number, sent: { bytes: number }, received: { bytes: number }, close: () => Promise<void> }

/** tcp: 'download' writes 1 GiB to each connection; 'upload' accepts and never reads. */
async function tcpBackend (kind: 'download' | 'upload'): Promise<Backend> {
  const sent = { bytes: 0 }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.once('close', () => sockets.delete(s))
    if (kind === 'download') pour(s, SCALE.backpressureBytes, sent)
    else s.pause()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    sent,
    received: { bytes: 0 },
    close: async () => {
      for (const s of sockets) s.destroy()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** http: GET /big streams 1 GiB; POST /sink never reads its body. */
async function httpBackend (): Promise<Backend> {
  const sent = { bytes: 0 }
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SCALE.backpressureBytes })
      pour(res, SCALE.backpressureBytes, sent)
    } else {
      // Never reads the body: the request socket's buffers fill, then TCP's.
      req.pause()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    sent,
    received: { bytes: 0 },
    close: async () => {
      server.closeAllConnections()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Answers every request head with 101 Switching Protocols, then 'download' writes 1 GiB, 'upload' never reads. */
async function tunnelBackend (kind: 'download' | 'upload'): Promise<Backend> {
  const sent = { bytes: 0 }
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.once('close', () => sockets.delete(s))
    let head = ''
    const onData = (d: Buffer): void => {
      head += d.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      s.removeListener('data', onData)
      s.pause()
      s.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: flood\r\n\r\n')
      if (kind === 'download') pour(s, SCALE.backpressureBytes, sent)
    }
    s.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    sent,
    received: { bytes: 0 },
    close: async () => {
      for (const s of sockets) s.destroy()
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

async function terminatorFor (backendPort: number, mode: 'tcp' | 'http', metricsPort: number): Promise<TerminatorProcess> {
  const { t } = await serveConfig({
    listen: ['127.0.0.1:0'],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.chainPath, key: f.localhostEcdsa.keyPath }],
      alpn: mode === 'http' ? ['http/1.1'] : undefined,
      backend: { address: `127.0.0.1:${backendPort}`, mode, timeout: '5m' },
    }],
  })
  return t
}

function tlsClient (port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => resolve(s))
    s.once('error', reject)
  })
}

/** rustls_node_connections_open from the terminator's /metrics. */
function openConnections (metricsPort: number): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { text += d })
      res.on('end', () => {
        const m = /^rustls_node_connections_open (\d+)$/m.exec(text)
        if (m === null) reject(new Error('no rustls_node_connections_open'))
        else resolve(Number(m[1]))
      })
    }).on('error', reject)
  })
}

interface Sampled {
  baseline: number
  peak: number
  /** Peaks of the first and second half of the window: a plateau, not a slope. */
  firstHalfPeak: number
  secondHalfPeak: number
  samples: number
}

/** Samples the process' RSS every 50 ms for `ms`. */
async function sampleRss (pid: number, ms: number): Promise<Sampled> {
  const baseline = rssOf(pid) ?? 0
  let firstHalfPeak = baseline
  let secondHalfPeak = 0
  let samples = 0
  const half = Date.now() + ms / 2
  const end = Date.now() + ms
  while (Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    const r = rssOf(pid)
    if (r === undefined) continue
    if (Date.now() < half) firstHalfPeak = Math.max(firstHalfPeak, r)
    else secondHalfPeak = Math.max(secondHalfPeak, r)
    samples++
  }
  return { baseline, peak: Math.max(firstHalfPeak, secondHalfPeak), firstHalfPeak, secondHalfPeak, samples }
}

interface Scenario { name: string, mode: 'tcp' | 'http', direction: 'download' | 'upload', tunnel?: boolean }

const scenarios: Scenario[] = [
  { name: 'tcp download', mode: 'tcp', direction: 'download' },
  { name: 'tcp upload', mode: 'tcp', direction: 'upload' },
  { name: 'http download', mode: 'http', direction: 'download' },
  { name: 'http upload', mode: 'http', direction: 'upload' },
  { name: 'upgraded tunnel download', mode: 'http', direction: 'download', tunnel: true },
  { name: 'upgraded tunnel upload', mode: 'http', direction: 'upload', tunnel: true },
]

const figures: Record<string, unknown> = {}

async function run (t: TestContext, sc: Scenario, backend: Backend, term: TerminatorProcess, metricsPort: number): Promise<void> {
  const n = SCALE.backpressureConnections
  // Warm-up: a connection through the whole path, then the baseline.
  const warm = await tlsClient(term.port)
  warm.destroy()
  await new Promise((resolve) => setTimeout(resolve, 300))
  const clients = await Promise.all(Array.from({ length: n }, () => tlsClient(term.port)))
  const uploaded = { bytes: 0 }
  let read = 0
  let ticker: NodeJS.Timeout | undefined
  for (const c of clients) c.on('error', () => {})
  if (sc.tunnel === true) {
    // The switch first: what follows the 101 is the tunnel's.
    await Promise.all(clients.map(async (c) => {
      const switched = new Promise<void>((resolve, reject) => {
        let head = ''
        const onData = (d: Buffer): void => {
          head += d.toString('latin1')
          if (!head.includes('\r\n\r\n')) return
          c.removeListener('data', onData)
          c.pause()
          if (head.startsWith('HTTP/1.1 101 ')) resolve()
          else reject(new Error(`no 101: ${head}`))
        }
        c.on('data', onData)
      })
      c.write('GET /flood HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: flood\r\n\r\n')
      await switched
    }))
  }
  if (sc.direction === 'download') {
    if (sc.mode === 'http' && sc.tunnel !== true) for (const c of clients) c.write('GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n')
    for (const c of clients) c.pause()
    ticker = setInterval(() => {
      for (const c of clients) {
        const b = c.read(1) as Buffer | null
        if (b !== null) read += b.length
      }
    }, 1)
  } else {
    for (const c of clients) {
      if (sc.mode === 'http' && sc.tunnel !== true) c.write(`POST /sink HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${SCALE.backpressureBytes}\r\n\r\n`)
      pour(c, SCALE.backpressureBytes, uploaded)
    }
  }
  const rss = await sampleRss(term.pid, SCALE.backpressureMs)
  if (ticker !== undefined) clearInterval(ticker)
  const through = sc.direction === 'download' ? backend.sent.bytes : uploaded.bytes
  for (const c of clients) c.destroy()
  if (sc.direction === 'upload') {
    // A terminator that stopped reading a client (its backend takes
    // nothing) learns that the client left only once it reads or writes
    // that socket again, as any non-polling reader would: the backend
    // going away is what moves it. (A client that closes with unsent data
    // even keeps its TCP connection open from its own kernel, which still
    // tries to deliver the data behind its FIN.)
    await backend.close()
  }
  // The clients are gone: the terminator lets their connections go (in
  // http mode at the latest when HTTP/1.1's 5 s keep-alive timeout ends the
  // connection that got its 502).
  const goneAt = Date.now()
  let open = await openConnections(metricsPort)
  while (open > 0 && Date.now() - goneAt < 8000) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    open = await openConnections(metricsPort)
  }
  const releasedMs = Date.now() - goneAt
  const growth = rss.peak - rss.baseline
  const bound = 2 * BUFFER_LIMIT * n + HEAP_SLACK
  figures[sc.name] = {
    connections: n,
    ms: SCALE.backpressureMs,
    offeredBytes: SCALE.backpressureBytes,
    rssBaseline: rss.baseline,
    rssPeak: rss.peak,
    rssPeakFirstHalf: rss.firstHalfPeak,
    rssPeakSecondHalf: rss.secondHalfPeak,
    rssGrowth: growth,
    rssBound: bound,
    bytesThrough: through,
    bytesReadBySlowClients: sc.direction === 'download' ? read : undefined,
    releasedAfterClientsLeftMs: releasedMs,
  }
  t.diagnostic(`${sc.name}: ${n} connections for ${SCALE.backpressureMs} ms; released ${releasedMs} ms after the clients left; terminator RSS ${mib(rss.baseline)} → peak ${mib(rss.peak)} (+${mib(growth)}, bound +${mib(bound)}); ${mib(through)} left the ${sc.direction === 'download' ? 'backend' : 'clients'}${sc.direction === 'download' ? `, clients read ${read} bytes` : ''}`)
  assert.ok(rss.samples > 10, 'RSS was sampled')
  if (sc.direction === 'download') assert.ok(read > 0, 'the slow readers did receive data')
  assert.ok(through < SCALE.backpressureBytes / 4, `${mib(through)} of ${mib(SCALE.backpressureBytes)} went through: the source was paused`)
  assert.ok(growth <= bound, `terminator RSS grew ${mib(growth)}, bound ${mib(bound)}`)
  assert.equal(open, 0, `connections still open ${releasedMs} ms after every client left`)
}

for (const sc of scenarios) {
  test(`${sc.name}: ${SCALE.backpressureConnections} connections, ${sc.direction === 'download' ? 'a 1 GiB backend and clients reading a byte per ms' : 'clients sending 1 GiB to a backend that never reads'}: terminator RSS stays bounded`, { timeout: STRESS ? 120_000 : 40_000 }, async (t) => {
    const backend = sc.tunnel === true ? await tunnelBackend(sc.direction) : sc.mode === 'tcp' ? await tcpBackend(sc.direction) : await httpBackend()
    const metricsPort = await freePort()
    let term: TerminatorProcess | undefined
    try {
      term = await terminatorFor(backend.port, sc.mode, metricsPort)
      await run(t, sc, backend, term, metricsPort)
      await stopClean(term)
      term = undefined
    } finally {
      if (term !== undefined) await term.stop()
      await backend.close()
      recordFigures('backpressure', { bufferLimitBytes: BUFFER_LIMIT, heapSlackBytes: HEAP_SLACK, scenarios: figures })
    }
  })
}
