// Backends named by DNS names (lib/terminator/backend-names.ts): resolved in
// TypeScript at start, handed to native code as addresses, and resolved
// again after a failed connect (at most once a second per name). A
// terminator in this process with a lookup the test controls; the backends
// listen on 127.0.0.1 and 127.0.0.2 (both loopback) on the same port.
import assert from 'node:assert/strict'
import http from 'node:http'
import type net from 'node:net'
import { Writable } from 'node:stream'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import pino from 'pino'

import { liveHandles } from '../../lib/index'
import { validateConfig } from '../../lib/terminator/config'
import { loadFiles } from '../../lib/terminator/files'
import { Terminator } from '../../lib/terminator/listeners'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import type { LogLine } from './harness'

const f = fixtures()
const lines: LogLine[] = []
const logger = pino({ level: 'info' }, new Writable({
  write (chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as LogLine)
    done()
  },
}))
/** What the names resolve to now (undefined: ENOTFOUND). */
const answers = new Map<string, string | undefined>()
const lookups: string[] = []
let one: http.Server
let two: http.Server
let port: number
let t: Terminator

function backend (name: string, host: string, at: number): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': name.length }).end(name))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(at, host, () => resolve(server))
  })
}

before(async () => {
  one = await backend('one', '127.0.0.1', 0)
  port = (one.address() as net.AddressInfo).port
  two = await backend('two', '127.0.0.2', port)
  answers.set('app.backend.test', '127.0.0.1')
  answers.set('late.backend.test', undefined)
  const cert = [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }]
  const config = validateConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'a.example.test', certificates: cert, backend: { address: `app.backend.test:${port}`, mode: 'http' } },
      { serverName: 'late.a.example.test', certificates: cert, backend: { address: `late.backend.test:${port}`, mode: 'http' } },
    ],
  })
  t = await Terminator.start({
    load: () => loadFiles(config),
    logger,
    fixedLevel: true,
    lookup: async (name) => {
      lookups.push(name)
      const ip = answers.get(name)
      if (ip === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' })
      return ip
    },
  })
})

after(async () => {
  await t.shutdown()
  one.closeAllConnections()
  two.closeAllConnections()
  await Promise.all([one, two].map((s) => new Promise((resolve) => s.close(resolve))))
  await waitFor(() => Object.values(liveHandles()).every((n) => n === 0), 2000, 'native handles to be released')
})

/** GET / on a new connection for `servername`: status and body. */
function get (servername: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: t.addresses[0].port, servername, ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`)
    })
    let text = ''
    s.on('data', (d: Buffer) => { text += d.toString() })
    s.on('error', reject)
    s.on('close', () => resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) }))
  })
}

test('resolved at start; after a failed connect the name is looked up again and new connections go to its new address', async () => {
  assert.deepEqual(await get('a.example.test'), { status: 200, body: 'one' })
  assert.deepEqual(lookups.filter((n) => n === 'app.backend.test'), ['app.backend.test'], 'one lookup at start, none per connection')
  // The name moves; the old address stops answering.
  answers.set('app.backend.test', '127.0.0.2')
  one.closeAllConnections()
  await new Promise((resolve) => one.close(resolve))
  // One lookup a second at most: past the start's.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.equal((await get('a.example.test')).status, 502)
  await waitFor(() => lines.some((l) => l.msg === 'backend address changed'), 5000, 'the new address')
  const changed = lines.find((l) => l.msg === 'backend address changed')
  assert.deepEqual([changed?.backend, changed?.address, changed?.previous], ['app.backend.test', '127.0.0.2', '127.0.0.1'])
  assert.deepEqual(await get('a.example.test'), { status: 200, body: 'two' })
  const unavailable = lines.find((l) => l.msg === 'backend unavailable' && l.host === 'a.example.test')
  assert.deepEqual([unavailable?.code, unavailable?.backend], ['ECONNREFUSED', `app.backend.test:${port}`])
})

test('a name that does not resolve at start: 502 with the lookup\'s code, until a lookup after a failure answers', async () => {
  assert.ok(lines.some((l) => l.msg === 'backend address does not resolve; its connections fail until it does' && l.backend === 'late.backend.test' && l.code === 'ENOTFOUND'))
  assert.equal((await get('late.a.example.test')).status, 502)
  const unavailable = (): LogLine | undefined => lines.find((l) => l.msg === 'backend unavailable' && l.host === 'late.a.example.test')
  await waitFor(() => unavailable() !== undefined, 5000, 'the warn line')
  assert.equal(unavailable()?.code, 'ENOTFOUND')
  answers.set('late.backend.test', '127.0.0.2')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  // This failure starts the lookup that finds it.
  assert.equal((await get('late.a.example.test')).status, 502)
  await waitFor(() => lines.some((l) => l.msg === 'backend address resolves again' && l.backend === 'late.backend.test'), 5000, 'the address')
  assert.deepEqual(await get('late.a.example.test'), { status: 200, body: 'two' })
})

test('a reload looks every name up anew', async () => {
  const before = lookups.length
  assert.equal(await t.reload(), true)
  assert.deepEqual(lookups.slice(before).sort(), ['app.backend.test', 'late.backend.test'])
})
