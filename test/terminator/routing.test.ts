// How a request is routed in http mode (SPEC §4.2, native/src/plane/
// request_route.cc), end to end through the terminator: on a connection
// made for a.example.test, each Host gets the backend of the host it names
// when the two may coalesce (same certificates and TLS settings, http
// mode), 421 when they may not, and the connection's own backend for names
// no host lists and IP literals. The library's name lookup (lib/
// authority.ts, used by createHttpsServer) agrees with its router.
import assert from 'node:assert/strict'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { hostIndexFor } from '../../lib/authority'
import { createServer, liveHandles } from '../../lib/index'
import { validateConfig } from '../../lib/terminator/config'
import { loadFiles } from '../../lib/terminator/files'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { type EchoReply, httpEcho, type HttpEcho } from './backends'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
const a = { cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }
let echoA: HttpEcho
let echoSame: HttpEcho
let other: HttpEcho
let t: TerminatorProcess

function hosts (ports: { a: number, same: number, other: number }): unknown[] {
  return [
    { serverName: 'a.example.test', aliases: ['*.a.example.test'], certificates: [a], backend: { address: `127.0.0.1:${ports.a}`, mode: 'http' } },
    { serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chainPath, key: f.bEcdsa.keyPath }], backend: { address: `127.0.0.1:${ports.other}`, mode: 'http' } },
    // Same certificate as a; one with the same settings, one stricter, one in tcp mode.
    { serverName: 'same.example.test', certificates: [a], backend: { address: `127.0.0.1:${ports.same}`, mode: 'http' } },
    { serverName: 'strict.example.test', certificates: [a], protocol: 'v1.3+', backend: { address: `127.0.0.1:${ports.other}`, mode: 'http' } },
    { serverName: 'raw.example.test', certificates: [a], backend: { address: `127.0.0.1:${ports.other}`, mode: 'tcp' } },
  ]
}

before(async () => {
  echoA = await httpEcho()
  echoSame = await httpEcho()
  other = await httpEcho()
  t = (await serveConfig({ listen: ['127.0.0.1:0'], hosts: hosts({ a: echoA.port, same: echoSame.port, other: other.port }) })).t
})

after(async () => {
  await stopClean(t)
  await Promise.all([echoA.close(), echoSame.close(), other.close()])
})

/** One request with `head` (request line and fields) on a connection made for a.example.test; status and body. */
function request (head: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: t.port, servername: 'a.example.test', ca: f.ca, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`${head}Connection: close\r\n\r\n`)
    })
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => chunks.push(d))
    s.on('error', reject)
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) })
    })
  })
}

test('coalescing, 421 and names that stay: which backend each Host reaches', async () => {
  const cases: Array<[string, 'a' | 'same' | 421, string]> = [
    ['a.example.test:8443', 'a', 'its own name, with a port'],
    ['x.a.example.test', 'a', 'an alias of its own'],
    ['B.example.test', 421, 'other certificate'],
    ['strict.example.test', 421, 'same certificate, other protocol minimum'],
    ['raw.example.test', 421, 'same TLS settings but a tcp-mode host'],
    ['same.example.test:443', 'same', 'same certificate and settings: its own backend'],
    ['SAME.example.test.', 'same', 'case and a trailing dot do not matter'],
    ['unknown.test', 'a', 'a name no host lists'],
    ['[::1]:8443', 'a', 'an IP literal'],
  ]
  for (const [host, want, why] of cases) {
    const seenA = echoA.seen.length
    const seenSame = echoSame.seen.length
    const r = await request(`GET /route HTTP/1.1\r\nHost: ${host}\r\n`)
    if (want === 421) {
      assert.equal(r.status, 421, `${host}: ${why}`)
      assert.equal(r.body, 'Misdirected Request: the request names another host than the TLS connection (SNI) was made for\n', host)
      continue
    }
    assert.equal(r.status, 200, `${host}: ${why}: ${r.body}`)
    const reply = JSON.parse(r.body) as EchoReply
    assert.equal(reply.headers.host, host, 'Host reaches the backend as sent')
    assert.equal(echoA.seen.length - seenA, want === 'a' ? 1 : 0, `${host}: ${why}`)
    assert.equal(echoSame.seen.length - seenSame, want === 'same' ? 1 : 0, `${host}: ${why}`)
  }
  assert.equal(other.seen.length, 0, 'no request reached a host it may not coalesce with')
})

test('HTTP/1.0 without Host: the connection\'s host, named to the backend by its primary name', async () => {
  const r = await request('GET /old HTTP/1.0\r\n')
  assert.equal(r.status, 200)
  const reply = JSON.parse(r.body) as EchoReply
  assert.equal(reply.httpVersion, '1.1', 'HTTP/1.1 to the backend')
  assert.equal(reply.headers.host, 'a.example.test')
})

test('the library\'s name lookup (lib/authority.ts) agrees with its router for configured names', async () => {
  const loaded = loadFiles(validateConfig({ listen: ['127.0.0.1:0'], hosts: hosts({ a: 1, same: 2, other: 3 }) }))
  const server = createServer(loaded.serverOptions)
  try {
    for (const name of ['a.example.test', 'A.Example.Test.', 'x.a.example.test', 'b.example.test', 'same.example.test', 'raw.example.test']) {
      assert.equal(hostIndexFor(server.hosts, name), server.selectHost(name), name)
    }
    // Names no host lists: the strict router refuses them, the lookup says -1.
    for (const name of ['c.example.test', 'x.y.a.example.test', 'a.example.test.evil']) {
      assert.equal(server.selectHost(name), -1, name)
      assert.equal(hostIndexFor(server.hosts, name), -1, name)
    }
  } finally {
    server.close()
  }
  await waitFor(() => Object.values(liveHandles()).every((n) => n === 0), 2000, 'native handles to be released')
})
