'use strict'
// The load generator process. It is the same node:tls client whichever
// server it talks to (node:tls or rustls-node), so the server is the only
// difference between the two measurements; 'net' is a plain TCP client for
// the no-TLS limits. Usage: node client.js '<json config>'.
//
// config: {stack: 'tls'|'net', port, ca (path), version: '1.2'|'1.3',
//          ciphers (OpenSSL/IANA names as node:tls takes them), resume, noTicket}
//
// Through a terminator (bench/peers.js) a connection also sends `echoBytes`
// bytes after its handshake and waits for the backend's echo of them, so
// every counted connection is known to have reached the backend and back.
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const tls = require('node:tls')

const { emit, serveControl } = require('./child')

const config = JSON.parse(process.argv[2])
const CHUNK = crypto.randomBytes(64 * 1024)
const ECHO = crypto.randomBytes(1024)
const CONNECTION_TIMEOUT_MS = 20000
const ca = config.stack === 'tls' ? fs.readFileSync(config.ca) : null
const tlsVersion = config.version === '1.2' ? 'TLSv1.2' : 'TLSv1.3'

/** Latest session per handshake loop ("slot"), for resumption. */
const sessions = []
let bulk = null
let bulkBytesIn = 0
const byteWaiters = []
const held = new Set()

function dial (session) {
  if (config.stack === 'net') return net.connect({ host: '127.0.0.1', port: config.port })
  return tls.connect({
    host: '127.0.0.1',
    port: config.port,
    servername: 'localhost',
    ca,
    minVersion: tlsVersion,
    maxVersion: tlsVersion,
    ciphers: config.ciphers,
    secureOptions: config.noTicket ? crypto.constants.SSL_OP_NO_TICKET : undefined,
    session,
  })
}

const connectEvent = () => config.stack === 'net' ? 'connect' : 'secureConnect'

function newStats () {
  return { completed: 0, resumed: 0, notResumed: 0, tickets: 0, errors: 0, errorCodes: {}, protocols: {}, ciphers: {}, groups: {}, echoed: 0 }
}

function count (map, key) {
  map[key] = (map[key] ?? 0) + 1
}

/** What the client negotiated, into the histograms of `stats`. */
function record (socket, stats) {
  if (config.stack !== 'tls') return
  count(stats.protocols, socket.getProtocol())
  count(stats.ciphers, socket.getCipher()?.standardName)
  count(stats.groups, socket.getEphemeralKeyInfo()?.name ?? 'none')
  if (socket.isSessionReused()) stats.resumed++
  else stats.notResumed++
  if (socket.getTLSTicket() !== undefined) stats.tickets++
}

/**
 * Sends the first `bytes` of ECHO and calls done(true) once exactly those
 * bytes came back, done(false) if anything else did. Calls done(true) at
 * once when `bytes` is 0.
 */
function echo (socket, bytes, done) {
  if (!(bytes > 0)) return done(true)
  const payload = ECHO.subarray(0, bytes)
  const chunks = []
  let got = 0
  const onData = (chunk) => {
    chunks.push(chunk)
    got += chunk.length
    if (got < bytes) return
    socket.removeListener('data', onData)
    done(Buffer.concat(chunks).equals(payload))
  }
  socket.on('data', onData)
  socket.write(payload)
}

/**
 * One connection: connect, handshake, the echo (if any), close_notify +
 * FIN, wait for the server's close. Resolves (never rejects) once the
 * socket closed.
 */
function handshakeOnce (slot, stats, resume, echoBytes) {
  return new Promise((resolve) => {
    const socket = dial(resume ? sessions[slot] : undefined)
    let secured = false
    let echoed = false
    let failed = false
    const timer = setTimeout(() => {
      fail({ code: 'BENCH_TIMEOUT' })
      socket.destroy()
    }, CONNECTION_TIMEOUT_MS)
    const fail = (err) => {
      if (failed) return
      failed = true
      stats.errors++
      count(stats.errorCodes, err.code ?? err.message)
    }
    if (resume && config.stack === 'tls') socket.on('session', (s) => { sessions[slot] = s })
    socket.once(connectEvent(), () => {
      secured = true
      record(socket, stats)
      echo(socket, echoBytes, (ok) => {
        if (!ok) fail({ code: 'BENCH_ECHO_MISMATCH' })
        echoed = ok
        if (ok && echoBytes > 0) stats.echoed++
        socket.end()
      })
    })
    socket.on('data', () => {})
    socket.on('error', fail)
    socket.once('close', () => {
      clearTimeout(timer)
      if (!secured) fail({ code: 'BENCH_CLOSED_BEFORE_HANDSHAKE' })
      else if (!echoed) fail({ code: 'BENCH_CLOSED_BEFORE_ECHO' })
      else if (!failed) stats.completed++
      resolve()
    })
  })
}

/**
 * `count` handshakes, `concurrency` in flight; with `shared`, every loop
 * offers the latest session any of them received (one session cache).
 */
async function handshakes ({ count: total, concurrency, resume, shared, echoBytes = 0 }) {
  const stats = newStats()
  let started = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async (_, slot) => {
    while (started < total) {
      started++
      await handshakeOnce(shared ? 0 : slot, stats, resume === true, echoBytes)
    }
  }))
  return { ...stats, wallMs: performance.now() - t0 }
}

function sendBytes (socket, total) {
  return new Promise((resolve, reject) => {
    let left = total
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length)
        left -= n
        const last = left === 0
        const ok = socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n), last ? (err) => (err ? reject(err) : resolve()) : undefined)
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

/** Opens `count` connections (each after its echo, if any) and keeps them open and idle. */
async function openIdle ({ count: total, concurrency, echoBytes = 0 }) {
  const stats = newStats()
  let started = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (started < total) {
      started++
      await new Promise((resolve) => {
        const socket = dial(undefined)
        const timer = setTimeout(() => socket.destroy(Object.assign(new Error('timeout'), { code: 'BENCH_TIMEOUT' })), CONNECTION_TIMEOUT_MS)
        socket.once(connectEvent(), () => {
          record(socket, stats)
          echo(socket, echoBytes, (ok) => {
            clearTimeout(timer)
            if (!ok) {
              socket.destroy(Object.assign(new Error('echo mismatch'), { code: 'BENCH_ECHO_MISMATCH' }))
              return
            }
            if (echoBytes > 0) stats.echoed++
            stats.completed++
            held.add(socket)
            resolve()
          })
        })
        socket.on('data', () => {})
        socket.on('error', (err) => {
          clearTimeout(timer)
          stats.errors++
          count(stats.errorCodes, err.code ?? err.message)
          resolve()
        })
        socket.once('close', () => {
          held.delete(socket)
          resolve()
        })
      })
    }
  }))
  return { ...stats, wallMs: performance.now() - t0, held: held.size }
}

serveControl({
  handshakes,
  openIdle,
  /** Ends every held connection and waits until all closed. */
  async closeIdle () {
    const closing = [...held].map((s) => new Promise((resolve) => {
      s.once('close', resolve)
      s.end()
      setTimeout(() => s.destroy(), 5000).unref()
    }))
    await Promise.all(closing)
  },
  /** Bulk: one connection; returns what was negotiated. */
  async connect () {
    bulk = dial(undefined)
    await new Promise((resolve, reject) => {
      bulk.once(connectEvent(), resolve)
      bulk.once('error', reject)
    })
    bulk.on('error', () => {})
    bulk.on('data', (chunk) => {
      bulkBytesIn += chunk.length
      while (byteWaiters.length > 0 && bulkBytesIn >= byteWaiters[0].target) byteWaiters.shift().resolve()
    })
    if (config.stack === 'net') return null
    return { protocol: bulk.getProtocol(), cipher: bulk.getCipher()?.standardName, group: bulk.getEphemeralKeyInfo()?.name }
  },
  send ({ bytes }) {
    return sendBytes(bulk, bytes)
  },
  /**
   * Resolves once `until` bytes in all have arrived on the bulk connection
   * (absolute, as in server.js: the server may send before this request is
   * read); rejects after timeoutMs saying how far it got.
   */
  expect ({ until, timeoutMs }) {
    if (bulkBytesIn >= until) return
    return new Promise((resolve, reject) => {
      const waiter = { target: until, resolve: () => { clearTimeout(timer); resolve() } }
      const timer = setTimeout(() => {
        byteWaiters.splice(byteWaiters.indexOf(waiter), 1)
        reject(new Error(`received ${bulkBytesIn} of ${until} bytes after ${timeoutMs} ms (socket bytesRead=${bulk?.bytesRead})`))
      }, timeoutMs)
      byteWaiters.push(waiter)
    })
  },
  /** Plaintext bytes received on the bulk connection so far. */
  received () {
    return bulkBytesIn
  },
  /** Bytes the bulk socket has handed to the transport and still buffers. */
  sendState () {
    return bulk === null ? null : { writableLength: bulk.writableLength, bytesWritten: bulk.bytesWritten, writableNeedDrain: bulk.writableNeedDrain }
  },
  async disconnect () {
    if (bulk === null) return
    await new Promise((resolve) => {
      bulk.once('close', resolve)
      bulk.end()
    })
    bulk = null
  },
})

emit('ready', { pid: process.pid })
