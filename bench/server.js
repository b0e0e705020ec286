'use strict'
// One benchmark server process: node:tls, rustls-node or plain node:net
// (the no-TLS limit), listening on 127.0.0.1:0. It measures itself: the
// orchestrator brackets each measured phase with 'mark' and 'measure', which
// return process.cpuUsage() deltas (the main figure of issue 5), RSS and
// per-connection counters. Usage: node server.js '<json config>'.
// With stack 'net' it is also the plain TCP backend behind the terminators
// of bench/peers.js (on the load generator's core): `echo` sends every byte
// back; without it bytes are counted, and 'send' is the bulk source.
//
// config: {stack: 'node'|'rustls'|'net', certDir, cert: 'localhost-ecdsa',
//          resumption: 'default'|'session-id'|'tickets', echo: boolean}
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const tls = require('node:tls')

const { emit, fullGc, serveControl } = require('./child')

const config = JSON.parse(process.argv[2])
const CHUNK = crypto.randomBytes(64 * 1024)
/** Same bound as rustls-node's default session cache (SPEC §4.4). */
const SESSION_STORE_LIMIT = 20000

let counters = freshCounters()
let mark = { cpu: process.cpuUsage(), time: process.hrtime.bigint() }
const sockets = new Set()
let lastSocket = null
let bytesIn = 0
const byteWaiters = []

function freshCounters () {
  return { handshakes: 0, resumed: 0, clientErrors: 0, socketErrors: 0, protocols: {}, ciphers: {}, errorCodes: {} }
}

function count (map, key) {
  map[key] = (map[key] ?? 0) + 1
}

function onSecure (socket) {
  counters.handshakes++
  if (config.stack !== 'net') {
    if (socket.isSessionReused()) counters.resumed++
    count(counters.protocols, socket.getProtocol() ?? 'none')
    count(counters.ciphers, socket.getCipher()?.standardName ?? 'none')
  }
  sockets.add(socket)
  lastSocket = socket
  if (config.echo) socket.pipe(socket)
  socket.on('data', (chunk) => {
    bytesIn += chunk.length
    while (byteWaiters.length > 0 && bytesIn >= byteWaiters[0].target) byteWaiters.shift().resolve()
  })
  socket.on('error', (err) => {
    counters.socketErrors++
    count(counters.errorCodes, err.code ?? err.message)
  })
  socket.on('close', () => {
    sockets.delete(socket)
    if (lastSocket === socket) lastSocket = null
  })
}

function read (name) {
  return fs.readFileSync(path.join(config.certDir, name))
}

function createNodeServer () {
  const options = { cert: read(`${config.cert}.pem`), key: read(`${config.cert}.key`) }
  if (config.resumption === 'session-id') {
    // node:tls keeps no server-side session cache of its own (Node sets
    // SSL_SESS_CACHE_NO_INTERNAL): TLS 1.2 session ids resume only through
    // the documented newSession/resumeSession events, so this is the
    // equivalent of rustls-node's built-in bounded cache. Tickets are off so
    // that the session id is what resumes (RFC 5246 §7.4.1.2).
    options.secureOptions = crypto.constants.SSL_OP_NO_TICKET
  }
  const server = tls.createServer(options, onSecure)
  if (config.resumption === 'session-id') {
    const store = new Map()
    server.on('newSession', (id, data, done) => {
      store.set(id.toString('hex'), data)
      if (store.size > SESSION_STORE_LIMIT) store.delete(store.keys().next().value)
      done()
    })
    server.on('resumeSession', (id, done) => done(null, store.get(id.toString('hex')) ?? null))
  }
  server.on('tlsClientError', onClientError)
  return server
}

function createRustlsServer () {
  const { createServer } = require(path.join(config.libDir, 'index.js'))
  const options = { cert: read(`${config.cert}.pem`), key: read(`${config.cert}.key`) }
  // 'tickets': stateless tickets under keys given by the operator. By default
  // ('default', 'session-id') rustls-node seals tickets with keys it
  // generated and rotates, as node:tls seals them with its own keys, and
  // its cache resumes TLS 1.2 session ids.
  if (config.resumption === 'tickets') options.ticketKeys = read('ticket-keys.bin')
  const server = createServer(options, onSecure)
  server.on('tlsClientError', onClientError)
  return server
}

function onClientError (err) {
  counters.clientErrors++
  count(counters.errorCodes, err.code ?? err.message)
}

const server = config.stack === 'node'
  ? createNodeServer()
  : config.stack === 'rustls' ? createRustlsServer() : net.createServer(onSecure)

function sendBytes (socket, total) {
  return new Promise((resolve, reject) => {
    let left = total
    const onError = (err) => reject(err)
    socket.once('error', onError)
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length)
        left -= n
        const last = left === 0
        const ok = socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n), last
          ? (err) => {
              socket.removeListener('error', onError)
              if (err) reject(err)
              else resolve()
            }
          : undefined)
        if (last) return
        if (!ok) {
          socket.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
}

/**
 * Resolves once `until` bytes in all have arrived. The target is absolute:
 * the client may start sending before this process has read the request,
 * so a count started here could miss the first bytes. Rejects after
 * timeoutMs saying how far the transfer got.
 */
function arrival (until, timeoutMs) {
  if (bytesIn >= until) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const waiter = { target: until, resolve: () => { clearTimeout(timer); resolve() } }
    const timer = setTimeout(() => {
      byteWaiters.splice(byteWaiters.indexOf(waiter), 1)
      const s = lastSocket
      reject(new Error(`received ${bytesIn} of ${until} bytes after ${timeoutMs} ms` +
        (s === null ? ' (connection closed)' : ` (socket readableFlowing=${s.readableFlowing} readableLength=${s.readableLength} transport bytesRead=${s.transport?.bytesRead ?? s.bytesRead})`)))
    }, timeoutMs)
    byteWaiters.push(waiter)
  })
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

serveControl({
  /** Starts a measured phase: CPU and counters from now on. */
  mark () {
    counters = freshCounters()
    mark = { cpu: process.cpuUsage(), time: process.hrtime.bigint() }
  },
  /** Ends a phase: server CPU (µs) since 'mark', wall time, counters. */
  measure () {
    const cpu = process.cpuUsage(mark.cpu)
    return {
      cpuUs: cpu.user + cpu.system,
      userUs: cpu.user,
      systemUs: cpu.system,
      wallMs: Number(process.hrtime.bigint() - mark.time) / 1e6,
      live: sockets.size,
      bytesIn,
      ...counters,
    }
  },
  /** Resolves once `until` bytes in all have arrived (bulk upload). */
  expect ({ until, timeoutMs }) {
    return arrival(until, timeoutMs)
  },
  /** Writes `bytes` on the latest connection (bulk download). */
  async send ({ bytes }) {
    if (lastSocket === null) throw new Error('no connection to send on')
    await sendBytes(lastSocket, bytes)
  },
  /**
   * The negotiated parameters of the bulk connection, as the server sees
   * them. The client's 'secureConnect' can come before the server's
   * 'secureConnection' (the client's Finished is still in flight), so this
   * waits for the connection.
   */
  async connection ({ timeoutMs }) {
    const deadline = Date.now() + timeoutMs
    while (lastSocket === null) {
      if (Date.now() > deadline) throw new Error(`no connection within ${timeoutMs} ms`)
      await delay(5)
    }
    if (config.stack === 'net') return null
    return { protocol: lastSocket.getProtocol(), cipher: lastSocket.getCipher()?.standardName, resumed: lastSocket.isSessionReused() }
  },
  /** Resolves once `count` connections are established (idle memory). */
  async waitLive ({ count: wanted, timeoutMs }) {
    const deadline = Date.now() + timeoutMs
    // Also waits for closes: count 0 is the baseline after the warm-up.
    while (sockets.size !== wanted) {
      if (Date.now() > deadline) throw new Error(`${sockets.size} connections live, waited for ${wanted}`)
      await delay(20)
    }
  },
  /** Collected, settled memory figures (run with --expose-gc). */
  async memory () {
    fullGc()
    await delay(300)
    const gcExposed = fullGc()
    const m = process.memoryUsage()
    return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, gcExposed }
  },
  /** Closes every connection and the listener; rustls: reports native handles left. */
  async close () {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(() => resolve()))
    await delay(50)
    if (config.stack !== 'rustls') return null
    const { liveHandles } = require(path.join(config.libDir, 'index.js'))
    return liveHandles()
  },
})

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  emit('ready', { port: server.address().port })
})
