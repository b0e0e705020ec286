// Issue 6, item 2 (the JS half; scripts/memcheck.sh runs the native tests
// under AddressSanitizer): every native handle, once destroyed, throws a
// clear ERR_RUSTLS_HANDLE_DESTROYED (or answers "nothing" for pure
// getters) instead of touching freed memory; destroy() is idempotent and
// counts once; handles of the wrong kind are refused by their type tag;
// handles dropped without destroy() are released by the garbage collector;
// a socket-mode connection destroyed while its descriptor is polled stops
// cleanly. The library objects on top behave the same way.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'

import { ClientContext, connect, createServer, liveHandles } from '../../lib/index'
import { addon, Flag, type NativeConnection, type NativeHandle, results, Slot } from '../../lib/native'
import { fixtures } from '../helpers/certs'
import { assertNoLiveHandles, settle } from '../helpers/tls'

const f = fixtures()
const DESTROYED = { code: 'ERR_RUSTLS_HANDLE_DESTROYED' }
const slab = Buffer.alloc(64 * 1024)

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

function serverConfig (): { key: InstanceType<typeof addon.CertifiedKey>, config: NativeHandle } {
  const key = new addon.CertifiedKey(f.localhostEcdsa.chain, f.localhostEcdsa.key)
  const config = new addon.ServerConfig({ certifiedKeys: [key], versions: [0x0303, 0x0304], ignoreClientOrder: false, sendTickets: 0 })
  return { key, config }
}

/**
 * A client Connection on the fd pump (connectSocket) to a plain TCP server
 * that answers with `garbage` as soon as it accepts: TLS-shaped bytes arrive
 * while native code polls the descriptor.
 */
interface GarbagePeer {
  conn: NativeConnection
  client: NativeHandle
  port: number
  served: Promise<net.Socket>
  more: (bytes: Buffer) => void
  close: () => Promise<void>
}

async function fdPumpAgainstGarbage (garbage: Buffer): Promise<GarbagePeer> {
  const client = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304] })
  const peers: net.Socket[] = []
  const server = net.createServer((s) => {
    peers.push(s)
    s.on('error', () => {})
    s.write(garbage)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    conn: new addon.Connection(client, 'localhost'),
    client,
    port: (server.address() as net.AddressInfo).port,
    served: new Promise<net.Socket>((resolve) => server.once('connection', resolve)),
    more: (bytes) => { for (const p of peers) if (!p.destroyed) p.write(bytes) },
    close: async () => {
      for (const p of peers) p.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function connectionMethods (conn: NativeConnection): Array<[string, () => unknown]> {
  const input = Buffer.alloc(8)
  return [
    ['feed', () => conn.feed(input, 0, 8, slab, 0, slab.length)],
    ['feed(EOF)', () => conn.feed(null, 0, 0, slab, 0, slab.length)],
    ['accept', () => conn.accept(null, 0)],
    ['write', () => conn.write(input, 0, 8, slab, 0, slab.length)],
    ['flush', () => conn.flush(slab, 0, slab.length)],
    ['sendCloseNotify', () => conn.sendCloseNotify()],
    ['info', () => conn.info()],
    ['peerCertificate', () => conn.peerCertificate(0)],
    ['start', () => conn.start(0, () => {})],
    ['writeSocket', () => conn.writeSocket(false, 0, input)],
    ['shutdownSocket', () => conn.shutdownSocket()],
  ]
}

test('a destroyed Connection throws ERR_RUSTLS_HANDLE_DESTROYED from every pump method; getters answer undefined', () => {
  const { key, config } = serverConfig()
  const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: true, deferred: false })
  const client = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304] })
  for (const conn of [new addon.Connection(router), new addon.Connection(client, 'localhost')]) {
    conn.destroy()
    conn.destroy()
    for (const [name, call] of connectionMethods(conn)) {
      assert.throws(call, DESTROYED, name)
    }
    // Getters of facts that may be asked after close answer "nothing".
    assert.equal(conn.alpnProtocol(), undefined)
    assert.equal(conn.groupName(), undefined)
    assert.equal(conn.clientHello(), undefined)
    // The socket-mode calls that only change state are no-ops.
    conn.readStart()
    conn.readStop()
    conn.setRef(false)
  }
  for (const h of [router, config, client, key]) h.destroy()
  assertNoLiveHandles()
})

test('a Connection destroyed in the middle of a handshake, with input pending, frees once', () => {
  const { key, config } = serverConfig()
  const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: true, deferred: true })
  const clientConfig = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304] })
  const client = new addon.Connection(clientConfig, 'localhost')
  client.flush(slab, 0, slab.length)
  const hello = Buffer.from(slab.subarray(0, results[Slot.Cipher]))
  const server = new addon.Connection(router)
  server.feed(hello, 0, hello.length, slab, 0, slab.length)
  // Deferred routing: the server holds a parsed ClientHello (rustls_accepted).
  assert.ok(results[Slot.Flags] & Flag.NeedConfig)
  assert.equal(server.clientHello()?.serverName, 'localhost')
  server.destroy()
  assert.equal(server.clientHello(), undefined)
  assert.throws(() => server.accept(config, 0), DESTROYED)
  client.destroy()
  for (const h of [router, clientConfig, config, key]) h.destroy()
  assertNoLiveHandles()
})

test('destroyed configs, keys, caches, ticketers and routers are refused wherever they are passed', () => {
  const { key, config } = serverConfig()
  key.destroy()
  key.destroy()
  assert.throws(() => key.certificate(0), DESTROYED)
  assert.throws(() => new addon.ServerConfig({ certifiedKeys: [key], versions: [0x0304], ignoreClientOrder: false, sendTickets: 0 }), DESTROYED)
  assert.throws(() => new addon.ClientConfig({ ca: f.ca, versions: [0x0304], certifiedKeys: [key] }), DESTROYED)

  const cache = new addon.SessionCache(16)
  const ticketer = new addon.Ticketer(f.ticketKeys, 60)
  // Bad key material or lifetime: RUSTLS_RESULT_INVALID_PARAMETER, the keys stay.
  const invalid = { rustlsResult: 7009, step: 'ticketKeys' }
  assert.throws(() => ticketer.setKeys(Buffer.alloc(79), 60), invalid)
  assert.throws(() => ticketer.setKeys(Buffer.alloc(80), 0), invalid)
  assert.throws(() => ticketer.setKeys('keys' as never, 60), { code: 'ERR_INVALID_ARG_TYPE' })
  ticketer.setKeys(Buffer.alloc(160, 7), 30)
  cache.destroy()
  ticketer.destroy()
  ticketer.destroy()
  assert.throws(() => ticketer.setKeys(f.ticketKeys, 60), DESTROYED)
  const fresh = new addon.CertifiedKey(f.localhostEcdsa.chain, f.localhostEcdsa.key)
  assert.throws(() => new addon.ServerConfig({ certifiedKeys: [fresh], versions: [0x0304], ignoreClientOrder: false, sessionCache: cache, sendTickets: 0 }), DESTROYED)
  assert.throws(() => new addon.ServerConfig({ certifiedKeys: [fresh], versions: [0x0304], ignoreClientOrder: false, ticketer, sendTickets: 1 }), DESTROYED)

  const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: true, deferred: false })
  config.destroy()
  config.destroy()
  assert.throws(() => new addon.HostRouter([{ names: ['x'], config }], { strictSNI: true, deferred: false }), DESTROYED)
  router.destroy()
  assert.throws(() => router.select('localhost'), DESTROYED)
  assert.throws(() => new addon.Connection(router), DESTROYED)

  const client = new addon.ClientConfig({ ca: f.ca, versions: [0x0304] })
  client.destroy()
  assert.throws(() => new addon.Connection(client, 'localhost'), DESTROYED)
  fresh.destroy()
  assertNoLiveHandles()
})

test('a handle of the wrong kind is refused by its type tag, never reinterpreted', () => {
  const { key, config } = serverConfig()
  const client = new addon.ClientConfig({ ca: f.ca, versions: [0x0304] })
  const cache = new addon.SessionCache(4)
  const wrong = { code: 'ERR_INVALID_ARG_TYPE' }
  // A ServerConfig where a ClientConfig belongs, and the reverse.
  assert.throws(() => new addon.Connection(config, 'localhost'), wrong)
  assert.throws(() => new addon.HostRouter([{ names: ['x'], config: client }], { strictSNI: true, deferred: false }), wrong)
  assert.throws(() => new addon.ServerConfig({ certifiedKeys: [cache as never], versions: [0x0304], ignoreClientOrder: false, sendTickets: 0 }), wrong)
  assert.throws(() => new addon.ServerConfig({ certifiedKeys: [key], versions: [0x0304], ignoreClientOrder: false, sessionCache: key, sendTickets: 0 }), wrong)
  // Plain objects and prototypes borrowed from a real handle.
  assert.throws(() => new addon.Connection({} as never, 'x'), wrong)
  const fake = Object.create(Object.getPrototypeOf(config) as object) as typeof config
  assert.throws(() => new addon.HostRouter([{ names: ['x'], config: fake }], { strictSNI: true, deferred: false }), wrong)
  // accept() after a real ClientHello, given a ClientConfig.
  const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: true, deferred: true })
  const server = new addon.Connection(router)
  const hello = new addon.Connection(client, 'localhost')
  hello.flush(slab, 0, slab.length)
  const bytes = Buffer.from(slab.subarray(0, results[Slot.Cipher]))
  server.feed(bytes, 0, bytes.length, slab, 0, slab.length)
  assert.ok(results[Slot.Flags] & Flag.NeedConfig)
  assert.throws(() => server.accept(client, 0), wrong)
  assert.throws(() => server.accept(router, 0), wrong)
  // Still waiting for a real config: the refusal above changed nothing.
  server.accept(config, 0)
  assert.equal(results[Slot.Error], 0)
  for (const h of [server, hello, router, client, cache, config, key]) h.destroy()
  assertNoLiveHandles()
})

test('handles dropped without destroy() are released by the garbage collector', async () => {
  await settle()
  gc()
  await settle()
  const before = liveHandles()
  ;(() => {
    const { key, config } = serverConfig()
    const router = new addon.HostRouter([{ names: ['localhost'], config }], { strictSNI: true, deferred: false })
    const client = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304] })
    for (let i = 0; i < 200; i++) {
      const c = new addon.Connection(client, 'localhost')
      const s = new addon.Connection(router)
      c.flush(slab, 0, slab.length)
      const hello = Buffer.from(slab.subarray(0, results[Slot.Cipher]))
      s.feed(hello, 0, hello.length, slab, 0, slab.length)
    }
    void key
  })()
  assert.ok(liveHandles().connections >= 400 + before.connections)
  // Finalizers drop references (connection → router → config), so the
  // objects they kept go in later collections.
  for (let i = 0; i < 20 && JSON.stringify(liveHandles()) !== JSON.stringify(before); i++) {
    gc()
    await settle(20)
  }
  assert.deepEqual(liveHandles(), before)
})

test('fd pump: a Connection destroyed while its descriptor is polled, with bytes arriving, stops cleanly', async () => {
  const t = await fdPumpAgainstGarbage(Buffer.alloc(3000, 0x16))
  const events: Array<[number, boolean]> = []
  let destroyed = false
  t.conn.connectSocket({ host: '127.0.0.1', port: t.port }, () => { events.push([results[Slot.Flags], destroyed]) })
  await t.served
  // Garbage arrives and is being processed; destroy races with it.
  destroyed = true
  t.conn.destroy()
  t.more(Buffer.alloc(3000, 0x17))
  await settle(50)
  assert.deepEqual(events.filter(([, after]) => after), [], 'no event after destroy()')
  assert.throws(() => t.conn.writeSocket(false, 0, Buffer.from('x')), DESTROYED)
  await t.close()
  t.client.destroy()
  assertNoLiveHandles()
})

test('fd pump: destroy() from inside the native event callback, more bytes arriving after, stops cleanly', async () => {
  // A complete alert record from the "server": a TLS error, so an event, at once.
  const t = await fdPumpAgainstGarbage(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]))
  const events: number[] = []
  let first: () => void = () => {}
  const failed = new Promise<void>((resolve) => { first = resolve })
  // The handle dies while native code is still inside its readable event.
  t.conn.connectSocket({ host: '127.0.0.1', port: t.port }, () => {
    const flags = results[Slot.Flags]
    events.push(flags)
    if ((flags & Flag.Error) !== 0) {
      t.conn.destroy()
      first()
    }
  })
  await failed
  const count = events.length
  t.more(Buffer.alloc(3000, 0x17))
  await settle(50)
  assert.equal(events.length, count, 'no event after the one during which destroy() ran')
  assert.throws(() => t.conn.writeSocket(false, 0, Buffer.from('x')), DESTROYED)
  await t.close()
  t.client.destroy()
  assertNoLiveHandles()
})

test('library objects after destroy: RustlsSocket, Server, ClientContext', async () => {
  const server = createServer({ cert: f.localhostEcdsa.chain, key: f.localhostEcdsa.key }, (s) => s.end('hi'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const context = new ClientContext({ ca: f.ca })
  const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', context })
  await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()))
  socket.destroy()
  socket.destroy()
  // Getters answer from what was known; nothing reaches freed native state.
  assert.equal(socket.getProtocol(), 'TLSv1.3')
  assert.equal(socket.getPeerX509Certificate(), undefined)
  assert.deepEqual(socket.getPeerCertificate(), {})
  assert.equal(socket.alpnProtocol, false)
  const writeError = await new Promise<Error & { code?: string }>((resolve) => socket.write('late', (err) => resolve(err as Error)))
  assert.equal(writeError.code, 'ERR_STREAM_DESTROYED')
  context.destroy()
  context.destroy()
  assert.throws(() => connect({ host: '127.0.0.1', port, servername: 'localhost', context }), DESTROYED)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  // A closed server released its router: asking it is a clear error.
  assert.throws(() => server.selectHost('localhost'), DESTROYED)
  await settle()
  assertNoLiveHandles()
})
