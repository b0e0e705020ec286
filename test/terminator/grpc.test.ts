// gRPC end to end through the terminator (issue 18, part 2): a
// @grpc/grpc-js client over TLS in front, a @grpc/grpc-js server behind,
// reached with backend.httpVersion "2" over h2c (prior knowledge) and over
// TLS (h2 by ALPN). Every kind of call, a deadline, a cancel, a non-OK
// status with trailer metadata and 10 MB messages each way; and a TLS
// backend that does not select h2 (502, a "tls" backend error). Messages
// are opaque bytes (no protobuf).
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import https from 'node:https'
import type net from 'node:net'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'

import * as grpc from '@grpc/grpc-js'

import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'
import { serveConfig, stopClean, type TerminatorProcess } from './harness'

const f = fixtures()
const BIG = 10 * 1024 * 1024
const UNLIMITED = { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 }

const identity = (b: Buffer): Buffer => b
function method (name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/rustls_node.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  }
}
const SERVICE = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
  Slow: method('Slow', false, false),
  Fail: method('Fail', false, false),
  FailLate: method('FailLate', false, true),
  Big: method('Big', false, false),
}
const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')

interface Backend {
  server: grpc.Server
  port: number
  /** Calls of Slow whose cancellation reached the backend, by their x-call id. */
  cancelled: Set<string>
  /** Metadata of the last Unary call. */
  lastMetadata?: grpc.Metadata
}

async function grpcBackend (credentials: grpc.ServerCredentials): Promise<Backend> {
  const server = new grpc.Server(UNLIMITED)
  const backend: Backend = { server, port: 0, cancelled: new Set() }
  const id = (call: { metadata: grpc.Metadata }): string => String(call.metadata.get('x-call')[0] ?? '')
  server.addService(SERVICE, {
    Unary (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      backend.lastMetadata = call.metadata
      const initial = new grpc.Metadata()
      initial.set('x-server', 'initial')
      call.sendMetadata(initial)
      const trailing = new grpc.Metadata()
      trailing.set('x-trail', 'yes')
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailing)
    },
    ServerStream (call: grpc.ServerWritableStream<Buffer, Buffer>) {
      const n = Number(call.request.toString())
      for (let i = 0; i < n; i++) call.write(Buffer.from(`message ${i}`))
      call.end()
    },
    ClientStream (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      const parts: Buffer[] = []
      call.on('data', (d: Buffer) => parts.push(d))
      call.on('end', () => cb(null, Buffer.from(`${parts.length} ${sha(Buffer.concat(parts))}`)))
    },
    Bidi (call: grpc.ServerDuplexStream<Buffer, Buffer>) {
      call.on('data', (d: Buffer) => call.write(Buffer.from(d.toString().toUpperCase())))
      call.on('end', () => call.end())
    },
    Slow (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      // Answers after 30 s, unless cancelled (which is what is checked).
      const timer = setTimeout(() => cb(null, Buffer.from('late')), 30_000)
      call.on('cancelled', () => {
        clearTimeout(timer)
        backend.cancelled.add(id(call))
      })
    },
    Fail (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      const md = new grpc.Metadata()
      md.set('x-reason', 'because')
      md.set('x-detail-bin', Buffer.from([0, 1, 2, 254, 255]))
      cb({ code: grpc.status.FAILED_PRECONDITION, details: 'the precondition failed', metadata: md })
    },
    FailLate (call: grpc.ServerWritableStream<Buffer, Buffer>) {
      call.write(Buffer.from('one'))
      call.write(Buffer.from('two'))
      const md = new grpc.Metadata()
      md.set('x-reason', 'late')
      call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'out of tokens', metadata: md })
    },
    Big (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      // 10 MB back, its first 32 bytes the request's digest.
      const answer = crypto.randomBytes(BIG)
      Buffer.from(sha(call.request), 'hex').copy(answer)
      cb(null, answer)
    },
  })
  backend.port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (err, port) => err === null ? resolve(port) : reject(err))
  })
  return backend
}

let h2c: Backend
let tlsBackend: Backend
let noH2: https.Server
let noAlpn: tls.Server
let t: TerminatorProcess
const clients: grpc.Client[] = []

before(async () => {
  h2c = await grpcBackend(grpc.ServerCredentials.createInsecure())
  tlsBackend = await grpcBackend(grpc.ServerCredentials.createSsl(null, [{ cert_chain: f.localhostEcdsa.cert, private_key: f.localhostEcdsa.key }], false))
  // TLS backends without HTTP/2: one refuses h2 (Node's https offers
  // http/1.1 only: no_application_protocol alert), one ignores ALPN.
  noH2 = https.createServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (_req, res) => res.end('h1'))
  await new Promise<void>((resolve) => noH2.listen(0, '127.0.0.1', () => resolve()))
  noAlpn = tls.createServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (s) => s.on('error', () => {}).end())
  await new Promise<void>((resolve) => noAlpn.listen(0, '127.0.0.1', () => resolve()))
  const cert = { cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }
  const host = (name: string, backend: Record<string, unknown>): Record<string, unknown> => ({
    serverName: name, certificates: [cert], backend: { mode: 'http', httpVersion: '2', ...backend },
  })
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      host('h2c.a.example.test', { address: `127.0.0.1:${h2c.port}` }),
      host('tls.a.example.test', { address: `127.0.0.1:${tlsBackend.port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
      host('noh2.a.example.test', { address: `127.0.0.1:${(noH2.address() as net.AddressInfo).port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
      host('noalpn.a.example.test', { address: `127.0.0.1:${(noAlpn.address() as net.AddressInfo).port}`, tls: { ca: f.path('ca.pem'), serverName: 'localhost' } }),
    ],
  })).t
})

after(async () => {
  for (const c of clients) c.close()
  await stopClean(t)
  await Promise.all([h2c, tlsBackend].map((b) => new Promise<void>((resolve) => b.server.tryShutdown(() => resolve()))))
  noH2.closeAllConnections()
  await new Promise<void>((resolve) => noH2.close(() => resolve()))
  await new Promise<void>((resolve) => noAlpn.close(() => resolve()))
})

/** A grpc-js client through the terminator, TLS verified for `name`. */
function client (name: string): grpc.Client {
  const c = new grpc.Client(`127.0.0.1:${t.port}`, grpc.credentials.createSsl(f.ca), {
    ...UNLIMITED,
    'grpc.ssl_target_name_override': name,
    'grpc.default_authority': name,
  })
  clients.push(c)
  return c
}

function unary (c: grpc.Client, name: string, request: Buffer, md = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<{ answer: Buffer, initial?: grpc.Metadata, status: grpc.StatusObject }> {
  return new Promise((resolve, reject) => {
    let initial: grpc.Metadata | undefined
    let answer: Buffer | undefined
    const call = c.makeUnaryRequest(SERVICE[name as keyof typeof SERVICE].path, identity, identity, request, md, options, (err, value) => {
      if (err !== null) reject(err)
      else answer = value
    })
    call.on('metadata', (m) => { initial = m })
    call.on('status', (status) => { if (answer !== undefined) resolve({ answer, initial, status }) })
  })
}

function collect<T> (stream: NodeJS.EventEmitter): Promise<{ items: T[], error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const items: T[] = []
    stream.on('data', (d: T) => items.push(d))
    stream.on('error', (error: grpc.ServiceError) => resolve({ items, error }))
    stream.on('end', () => resolve({ items }))
  })
}

for (const variant of ['h2c', 'tls'] as const) {
  const name = `${variant}.a.example.test`
  const backend = (): Backend => variant === 'h2c' ? h2c : tlsBackend

  describe(`gRPC, backend over ${variant === 'h2c' ? 'h2c (prior knowledge)' : 'TLS (h2 by ALPN)'}`, () => {
    let c: grpc.Client
    before(() => { c = client(name) })

    test('unary: the answer, initial and trailing metadata; the client\'s metadata and the forwarding fields reach the backend', async () => {
      const md = new grpc.Metadata()
      md.set('x-client', 'c1')
      md.set('x-blob-bin', Buffer.from([9, 8, 7]))
      md.set('x-forwarded-for', '6.6.6.6')
      const r = await unary(c, 'Unary', Buffer.from('hello'), md)
      assert.equal(r.answer.toString(), 'echo:hello')
      assert.equal(r.status.code, grpc.status.OK)
      assert.deepEqual(r.initial?.get('x-server'), ['initial'])
      assert.deepEqual(r.status.metadata.get('x-trail'), ['yes'])
      const seen = backend().lastMetadata as grpc.Metadata
      assert.deepEqual(seen.get('x-client'), ['c1'])
      assert.deepEqual(seen.get('x-blob-bin'), [Buffer.from([9, 8, 7])])
      // The client's own X-Forwarded-For was removed; ours is the only one.
      assert.deepEqual(seen.get('x-forwarded-for'), ['127.0.0.1'])
      assert.deepEqual(seen.get('x-forwarded-proto'), ['https'])
    })

    test('server-streaming: 200 messages in order', async () => {
      const r = await collect<Buffer>(c.makeServerStreamRequest(SERVICE.ServerStream.path, identity, identity, Buffer.from('200'), new grpc.Metadata(), {}))
      assert.equal(r.error, undefined)
      assert.deepEqual(r.items.map(String), Array.from({ length: 200 }, (_, i) => `message ${i}`))
    })

    test('client-streaming: 200 messages, counted and hashed by the backend', async () => {
      const parts = Array.from({ length: 200 }, () => crypto.randomBytes(1 + crypto.randomInt(3000)))
      const answer = await new Promise<Buffer>((resolve, reject) => {
        const call = c.makeClientStreamRequest(SERVICE.ClientStream.path, identity, identity, new grpc.Metadata(), {}, (err, v) => err !== null ? reject(err) : resolve(v as Buffer))
        for (const p of parts) call.write(p)
        call.end()
      })
      assert.equal(answer.toString(), `200 ${sha(Buffer.concat(parts))}`)
    })

    test('bidi: 50 messages, each answered before the next is sent', async () => {
      const call = c.makeBidiStreamRequest(SERVICE.Bidi.path, identity, identity, new grpc.Metadata(), {})
      const answers: string[] = []
      for (let i = 0; i < 50; i++) {
        const next = new Promise<string>((resolve) => call.once('data', (d: Buffer) => resolve(d.toString())))
        call.write(Buffer.from(`ping ${i}`))
        answers.push(await next)
      }
      const ended = new Promise<void>((resolve) => call.on('status', () => resolve()))
      call.end()
      await ended
      assert.deepEqual(answers, Array.from({ length: 50 }, (_, i) => `PING ${i}`))
    })

    test('a deadline exceeded: DEADLINE_EXCEEDED at the client, the backend call is cancelled', async () => {
      const md = new grpc.Metadata()
      md.set('x-call', `deadline-${variant}`)
      const started = Date.now()
      const err = await unary(c, 'Slow', Buffer.from('x'), md, { deadline: Date.now() + 300 }).then(() => undefined, (e: grpc.ServiceError) => e)
      assert.equal(err?.code, grpc.status.DEADLINE_EXCEEDED)
      assert.ok(Date.now() - started < 5_000)
      await waitFor(() => backend().cancelled.has(`deadline-${variant}`), 5_000, 'the backend call cancelled')
    })

    test('a cancel without a deadline reaches the backend as a reset (RST_STREAM CANCEL)', async () => {
      const md = new grpc.Metadata()
      md.set('x-call', `cancel-${variant}`)
      const call = c.makeUnaryRequest(SERVICE.Slow.path, identity, identity, Buffer.from('x'), md, {}, () => {})
      await new Promise((resolve) => setTimeout(resolve, 200))
      call.cancel()
      await waitFor(() => backend().cancelled.has(`cancel-${variant}`), 5_000, 'the backend call cancelled')
    })

    test('a non-OK status with trailer metadata reaches the client intact (trailers-only, and after messages)', async () => {
      const err = await unary(c, 'Fail', Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e)
      assert.equal(err?.code, grpc.status.FAILED_PRECONDITION)
      assert.equal(err?.details, 'the precondition failed')
      assert.deepEqual(err?.metadata.get('x-reason'), ['because'])
      assert.deepEqual(err?.metadata.get('x-detail-bin'), [Buffer.from([0, 1, 2, 254, 255])])
      const late = await collect<Buffer>(c.makeServerStreamRequest(SERVICE.FailLate.path, identity, identity, Buffer.from(''), new grpc.Metadata(), {}))
      assert.deepEqual(late.items.map(String), ['one', 'two'])
      assert.equal(late.error?.code, grpc.status.RESOURCE_EXHAUSTED)
      assert.equal(late.error?.details, 'out of tokens')
      assert.deepEqual(late.error?.metadata.get('x-reason'), ['late'])
    })

    test('a 10 MB message each way', async () => {
      const request = crypto.randomBytes(BIG)
      const r = await unary(c, 'Big', request)
      assert.equal(r.answer.length, BIG)
      assert.equal(r.answer.subarray(0, 32).toString('hex'), sha(request))
    })
  })
}

test('a TLS backend that does not select h2: UNAVAILABLE (502) and a "tls" backend error', async () => {
  // Refused by the backend (its alert), or a handshake without ALPN (refused here, RFC 9113 §3.2).
  for (const [name, code] of [['noh2.a.example.test', 'ERR_RUSTLS_ALERT_NO_APPLICATION_PROTOCOL'], ['noalpn.a.example.test', 'ERR_RUSTLS_NO_APPLICATION_PROTOCOL']]) {
    const err = await unary(client(name), 'Unary', Buffer.from('x')).then(() => undefined, (e: grpc.ServiceError) => e)
    assert.equal(err?.code, grpc.status.UNAVAILABLE, name)
    assert.match(err?.details ?? '', /502/)
    const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === name, 'the backend error line')
    assert.equal(line.kind, 'tls')
    assert.equal(line.code, code)
  }
})
