// A short run of the terminator's native data plane (issue 18) over the
// paths valgrind must see: the HTTP/2 front (bodies both ways, concurrent
// streams, a stream the client resets, a session the client ends with
// GOAWAY), an h2c backend (bodies both ways, the backend's GOAWAY and the
// reconnect after it), HTTP/1.1 with a body, and a WebSocket upgrade and its
// tunnel; then SIGTERM and a clean stop.
//
//   node dist/test/native/plane-smoke.js                  the terminator as usual
//   node dist/test/native/plane-smoke.js valgrind [opts]  the terminator under that command
//
// This script is the driver; the terminator is its child, run under the
// command given (scripts/memcheck.sh: valgrind --error-exitcode=99). Exits
// non-zero on any mismatch or when the terminator's exit code is not 0, so
// valgrind's error exit code fails it.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import http2 from 'node:http2'
import https from 'node:https'
import type net from 'node:net'

import WebSocket from 'ws'

import { fixtures } from '../helpers/certs'
import { h2Get, sha256 } from '../reliability/h2-load'
import { httpEcho } from '../terminator/backends'
import { serveConfig } from '../terminator/harness'

const f = fixtures()
const MiB = 1024 * 1024
const H2 = 'h2.localhost'

/** An h2c backend: /sha256 → "<size> <hex>" of the body, /bytes/N → N bytes, /goaway → answers, then GOAWAY. */
async function h2cBackend (blob: Buffer): Promise<{ port: number, sessions: number, streams: number, close: () => void }> {
  const server = http2.createServer()
  const b = { port: 0, sessions: 0, streams: 0, close: () => { for (const s of live) s.destroy(); server.close() } }
  const live = new Set<http2.ServerHttp2Session>()
  server.on('session', (s) => { b.sessions++; live.add(s); s.on('close', () => live.delete(s)); s.on('error', () => {}) })
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {})
    b.streams++
    const url = String(headers[':path'])
    if (url === '/sha256') {
      const hash = crypto.createHash('sha256')
      let size = 0
      stream.on('data', (d: Buffer) => { hash.update(d); size += d.length })
      stream.on('end', () => { stream.respond({ ':status': 200 }); stream.end(`${size} ${hash.digest('hex')}`) })
    } else if (url === `/bytes/${blob.length}`) {
      stream.respond({ ':status': 200, 'content-length': blob.length })
      stream.end(blob)
    } else if (url === '/goaway') {
      const session = stream.session
      stream.respond({ ':status': 200 })
      stream.end('bye', () => { session?.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id); session?.close() })
    } else {
      stream.respond({ ':status': 404 })
      stream.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  b.port = (server.address() as net.AddressInfo).port
  return b
}

function post (session: http2.ClientHttp2Session, port: number, body: Buffer, host = 'localhost'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/sha256', ':authority': `${host}:${port}` })
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => { text += d })
    req.on('end', () => resolve(text))
    req.on('error', reject)
    req.end(body)
  })
}

async function main (): Promise<void> {
  const wrapper = process.argv.slice(2)
  const echo = await httpEcho()
  const blob = crypto.randomBytes(MiB)
  const h2c = await h2cBackend(blob)
  const cert = { cert: f.localhostEcdsa.chainPath, key: f.localhostEcdsa.keyPath }
  const { t } = await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'localhost', certificates: [cert], backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      { serverName: 'h2.localhost', certificates: [cert], backend: { address: `127.0.0.1:${h2c.port}`, mode: 'http', httpVersion: '2' } },
    ],
  }, { wrapper, startTimeoutMs: 300_000 })
  const port = t.port
  const step = (what: string): void => console.log(`plane-smoke: ${what}`)
  try {
    // The h2 front, to an HTTP/1.1 backend.
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername: 'localhost' })
    session.on('error', () => {})
    const down = await h2Get(session, port, `/bytes/${MiB}`, 120_000)
    assert.ok(down.kind === 'ok' && down.answer.status === 200 && sha256(down.answer.body) === sha256(echo.blob(MiB)), 'h2 download byte-exact')
    const up = crypto.randomBytes(MiB)
    assert.equal(await post(session, port, up), `${MiB} ${sha256(up)}`, 'h2 upload byte-exact')
    const many = await Promise.all(Array.from({ length: 8 }, () => h2Get(session, port, '/bytes/65536', 120_000)))
    assert.ok(many.every((o) => o.kind === 'ok' && o.answer.status === 200 && o.answer.body.equals(echo.blob(65536))), '8 concurrent streams')
    step('h2 front: bodies both ways, 8 concurrent streams')
    // RST_STREAM from the client mid-response; the session goes on.
    await new Promise<void>((resolve) => {
      const req = session.request({ ':path': `/slow/${4 * MiB}?ms=20`, ':authority': `localhost:${port}` }, { endStream: true })
      req.on('error', () => {})
      req.once('data', () => req.close(http2.constants.NGHTTP2_CANCEL))
      req.on('close', () => resolve())
    })
    const afterReset = await h2Get(session, port, '/after-reset', 120_000)
    assert.equal(afterReset.kind === 'ok' ? afterReset.answer.status : afterReset, 200, 'a stream after RST_STREAM')
    step('h2 front: RST_STREAM mid-response, the session goes on')
    // GOAWAY from the client, a stream still open.
    const last = h2Get(session, port, `/slow/${256 * 1024}?ms=20`, 120_000)
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, 0)
    session.close()
    const lastOutcome = await last
    assert.ok(lastOutcome.kind === 'ok' && lastOutcome.answer.body.length === 256 * 1024, 'the open stream completes after our GOAWAY')
    step('h2 front: client GOAWAY, the open stream completes')

    // The h2 front to an h2c backend.
    const s2 = http2.connect(`https://127.0.0.1:${port}`, { ca: f.ca, servername: 'h2.localhost', checkServerIdentity: () => undefined })
    s2.on('error', () => {})
    const up2 = crypto.randomBytes(MiB)
    assert.equal(await post(s2, port, up2, H2), `${MiB} ${sha256(up2)}`, 'upload to the h2 backend')
    const before = h2c.streams
    const down2 = await h2Get(s2, port, `/bytes/${MiB}`, 120_000, H2)
    assert.ok(down2.kind === 'ok' && down2.answer.body.equals(blob), `download from the h2 backend: ${JSON.stringify(down2.kind === 'ok' ? { status: down2.answer.status, bytes: down2.answer.body.length, text: down2.answer.body.subarray(0, 200).toString() } : down2)}`)
    const bye = await h2Get(s2, port, '/goaway', 120_000, H2)
    assert.equal(bye.kind === 'ok' ? bye.answer.status : bye, 200)
    const again = await h2Get(s2, port, `/bytes/${MiB}`, 120_000, H2)
    assert.ok(again.kind === 'ok' && again.answer.body.equals(blob), 'served after the backend\'s GOAWAY')
    assert.ok(h2c.sessions >= 2, 'a new backend connection after its GOAWAY')
    assert.equal(h2c.streams - before, 3, 'the h2 host\'s streams reached the h2 backend')
    s2.close()
    step('h2 backend: bodies both ways, its GOAWAY, a new connection')

    // HTTP/1.1 with a body.
    const h1 = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca, method: 'POST', path: '/sha256', headers: { host: 'localhost' }, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => { text += d })
        res.on('end', () => resolve(text))
      })
      req.on('error', reject)
      req.end(up)
    })
    assert.equal(h1, `${MiB} ${sha256(up)}`, 'HTTP/1.1 upload')
    step('HTTP/1.1: a body up')

    // A WebSocket upgrade and its tunnel.
    // servername reaches tls.connect through ws's request options (its types leave it out).
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: f.ca, servername: 'localhost', headers: { host: 'localhost' } } as WebSocket.ClientOptions)
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    const big = crypto.randomBytes(256 * 1024)
    for (const m of [Buffer.from('hello'), big]) {
      const echoed = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)))
      ws.send(m)
      assert.ok((await echoed).equals(m), 'a WebSocket message echoed through the tunnel')
    }
    await new Promise<void>((resolve) => { ws.once('close', () => resolve()); ws.close(1000) })
    step('WebSocket: upgrade, two messages through the tunnel, close')
  } finally {
    const exit = await t.stop(300_000)
    h2c.close()
    await echo.close()
    if (exit.code !== 0) {
      process.stderr.write(t.stderr())
      throw new Error(`terminator exit ${JSON.stringify(exit)}${exit.code === 99 ? ' (valgrind reported errors)' : ''}`)
    }
    const stopped = t.logs().find((l) => l.msg === 'stopped')
    assert.ok(stopped !== undefined, 'a stopped line')
    step(`terminator stopped cleanly (exit 0), ${JSON.stringify(stopped.liveHandles)}`)
  }
}

main().then(() => process.exit(0), (err: Error) => {
  console.error(err)
  process.exit(1)
})
