// The native pump on its own: two in-process connections (server on the
// acceptor path, client) exchanging bytes through feed/write/flush, with no
// sockets in between. Certificates: native/rust/testdata (long-lived).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { addon, Flag, LocalResult, type NativeConnection, type NativeHandle, readInfo, results, Slot } from '../../lib/native'

const root = path.resolve(__dirname, '..', '..', '..')
const data = (name: string): Buffer => fs.readFileSync(path.join(root, 'native', 'rust', 'testdata', name))

interface Pair {
  server: NativeConnection
  client: NativeConnection
  handles: NativeHandle[]
}

function makePair (opts: { serverVersions?: number[], clientVersions?: number[], names?: string[], serverName?: string, strict?: boolean } = {}): Pair {
  const key = new addon.CertifiedKey(data('ecdsa.pem'), data('ecdsa.key'))
  const config = new addon.ServerConfig({
    certifiedKeys: [key], versions: opts.serverVersions ?? [0x0303, 0x0304], ignoreClientOrder: false, sendTickets: 0,
  })
  key.destroy()
  const router = new addon.HostRouter([{ names: opts.names ?? ['localhost'], config }], { strictSNI: opts.strict ?? true, deferred: false })
  const clientConfig = new addon.ClientConfig({ ca: data('ca.pem'), versions: opts.clientVersions ?? [0x0303, 0x0304] })
  const server = new addon.Connection(router)
  const client = new addon.Connection(clientConfig, opts.serverName ?? 'localhost')
  return { server, client, handles: [config, router, clientConfig] }
}

function release (pair: Pair): void {
  pair.server.destroy()
  pair.client.destroy()
  for (const h of pair.handles) h.destroy()
}

const slab = Buffer.alloc(1 << 20)

function take (conn: NativeConnection): Buffer {
  conn.flush(slab, 0, slab.length)
  return Buffer.from(slab.subarray(0, results[Slot.Cipher]))
}

interface Fed { out: Buffer, flags: number, consumed: number, plain: Buffer, error: number }

function feed (conn: NativeConnection, input: Buffer | null, cap = slab.length): Fed {
  const out = conn.feed(input, 0, input === null ? 0 : input.length, slab, 0, cap)
  const r = { flags: results[Slot.Flags], consumed: results[Slot.Consumed], error: results[Slot.Error] }
  return { ...r, out: out ?? Buffer.alloc(0), plain: Buffer.from(slab.subarray(0, results[Slot.Plain])) }
}

/** Runs the handshake to completion; returns the flags each side saw. */
function handshake (pair: Pair): { serverFlags: number, clientFlags: number } {
  let toServer = take(pair.client)
  let serverFlags = 0
  let clientFlags = 0
  for (let i = 0; i < 10 && toServer.length > 0; i++) {
    const s = feed(pair.server, toServer)
    serverFlags |= s.flags
    assert.equal(s.consumed, toServer.length)
    const c = feed(pair.client, s.out)
    clientFlags |= c.flags
    toServer = c.out
  }
  return { serverFlags, clientFlags }
}

function encrypt (conn: NativeConnection, plain: Buffer): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  while (offset < plain.length) {
    conn.write(plain, offset, plain.length - offset, slab, 0, slab.length)
    assert.equal(results[Slot.Flags] & Flag.Error, 0)
    offset += results[Slot.Consumed]
    parts.push(Buffer.from(slab.subarray(0, results[Slot.Cipher])))
  }
  return Buffer.concat(parts)
}

test('handshake completes on both sides and reports the routed host', () => {
  const pair = makePair()
  const { serverFlags, clientFlags } = handshake(pair)
  assert.ok(serverFlags & Flag.Hello)
  assert.ok(serverFlags & Flag.HandshakeDone)
  assert.ok(clientFlags & Flag.HandshakeDone)
  const info = readInfo(pair.server)
  assert.equal(info.host, 0)
  assert.equal(info.certificate, 0)
  assert.equal(pair.server.serverName(), 'localhost')
  assert.equal(info.version, 0x0304)
  assert.equal(info.resumed, false)
  assert.equal(readInfo(pair.client).peerCertificates, 1)
  assert.equal(pair.client.serverName(), undefined)
  assert.match(pair.server.groupName() ?? '', /X25519/)
  release(pair)
})

test('plaintext crosses intact and a full plaintext region stops input early', () => {
  const pair = makePair()
  handshake(pair)
  const message = Buffer.alloc(100_000)
  for (let i = 0; i < message.length; i++) message[i] = (i * 7) % 251
  const wire = encrypt(pair.client, message)
  // A 1000-byte plaintext region: feed must stop, report PlainFull, and
  // leave the rest of the input to a later call (backpressure).
  const first = feed(pair.server, wire, 1000)
  assert.ok(first.flags & Flag.PlainFull)
  assert.equal(first.plain.length, 1000)
  assert.ok(first.consumed < wire.length)
  const received = [first.plain]
  let offset = first.consumed
  for (let guard = 0; guard < 1000; guard++) {
    const rest = wire.subarray(offset)
    const r = feed(pair.server, rest, 4096)
    received.push(r.plain)
    offset += r.consumed
    if (offset === wire.length && (r.flags & Flag.PlainFull) === 0) break
  }
  assert.equal(offset, wire.length)
  assert.deepEqual(Buffer.concat(received), message)
  release(pair)
})

test('close_notify is reported once, then EOF is orderly', () => {
  const pair = makePair()
  handshake(pair)
  pair.client.sendCloseNotify()
  const alert = take(pair.client)
  assert.ok(alert.length > 0)
  const r = feed(pair.server, alert)
  assert.ok(r.flags & Flag.PeerClosed)
  assert.equal(r.flags & Flag.Error, 0)
  const eof = feed(pair.server, null)
  assert.equal(eof.flags & Flag.Error, 0)
  release(pair)
})

test('EOF without close_notify after the handshake is a truncation error', () => {
  const pair = makePair()
  handshake(pair)
  const r = feed(pair.server, null)
  assert.ok(r.flags & Flag.Error)
  assert.equal(r.error, 7010) // RUSTLS_RESULT_UNEXPECTED_EOF
  release(pair)
})

test('garbage instead of a ClientHello fails with a rustls error and an alert, never a crash', () => {
  const pair = makePair()
  const r = feed(pair.server, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  assert.ok(r.flags & Flag.Error)
  assert.ok(r.error >= 7000 && r.error < 8000, `error ${r.error}`)
  // The failure is sticky: later input is refused with the same code.
  const again = feed(pair.server, Buffer.from([0x16, 0x03, 0x01]))
  assert.ok(again.flags & Flag.Error)
  assert.equal(again.error, r.error)
  release(pair)
})

test('strict SNI refuses an unknown name with unrecognized_name and no certificate', () => {
  const pair = makePair({ names: ['localhost'], serverName: 'other.example', strict: true })
  const r = feed(pair.server, take(pair.client))
  assert.ok(r.flags & Flag.Error)
  assert.equal(r.error, LocalResult.UnrecognizedName)
  assert.deepEqual([...r.out], [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70])
  const c = feed(pair.client, r.out)
  assert.equal(c.error, 7228) // RUSTLS_RESULT_ALERT_UNRECOGNISED_NAME
  release(pair)
})

test('a TLS 1.2-only client is refused by a TLS 1.3-only server with protocol_version', () => {
  const pair = makePair({ serverVersions: [0x0304], clientVersions: [0x0303] })
  const s = feed(pair.server, take(pair.client))
  assert.ok(s.flags & Flag.Error)
  const c = feed(pair.client, s.out)
  assert.equal(c.error, 7219) // RUSTLS_RESULT_ALERT_PROTOCOL_VERSION
  release(pair)
})

test('out-of-range offsets throw instead of touching memory', () => {
  const pair = makePair()
  const input = Buffer.alloc(10)
  assert.throws(() => pair.server.feed(input, 5, 10, slab, 0, 100), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => pair.server.feed(input, 0, 10, slab, slab.length - 10, 11), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => pair.server.feed(input, -1, 1, slab, 0, 1), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => pair.client.write(input, 0, 11, slab, 0, 100), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => pair.client.flush(Buffer.alloc(4), 2, 3), { code: 'ERR_OUT_OF_RANGE' })
  assert.throws(() => pair.server.feed('nope' as unknown as Buffer, 0, 1, slab, 0, 1), { code: 'ERR_INVALID_ARG_TYPE' })
  release(pair)
})

test('destroyed handles throw a clear error and destroy is idempotent', () => {
  const pair = makePair()
  pair.server.destroy()
  pair.server.destroy()
  assert.throws(() => pair.server.feed(Buffer.alloc(1), 0, 1, slab, 0, 10), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
  assert.throws(() => pair.server.info(), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
  const [config, router] = pair.handles
  router.destroy()
  assert.throws(() => new addon.Connection(router), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
  config.destroy()
  assert.throws(() => new addon.HostRouter([{ names: ['x'], config }], { strictSNI: true, deferred: false }), { code: 'ERR_RUSTLS_HANDLE_DESTROYED' })
  release(pair)
})

test('a destroyed config under a live router refuses new connections cleanly', () => {
  const pair = makePair()
  const [config] = pair.handles
  config.destroy()
  const conn = new addon.Connection(pair.handles[1])
  const r = feed(conn, take(pair.client))
  assert.ok(r.flags & Flag.Error)
  assert.equal(r.error, LocalResult.NoHost)
  conn.destroy()
  release(pair)
})

test('a key that does not match its certificate is refused at build time', () => {
  assert.throws(() => new addon.CertifiedKey(data('ecdsa.pem'), data('rsa.key')),
    (err: { rustlsResult?: number, step?: string }) => err.step === 'keysMatch' && err.rustlsResult === 7600)
})

test('all native handles of these tests are released', () => {
  assert.deepEqual(addon.liveHandles(), {
    certifiedKeys: 0, serverConfigs: 0, clientConfigs: 0, sessionCaches: 0, ticketers: 0, hostRouters: 0, connections: 0, listeners: 0, backendTargets: 0,
  })
})
