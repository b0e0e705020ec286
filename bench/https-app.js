'use strict'
// The library's HTTPS app of the library-h2load scenario (issue 19): a
// trivial handler answering 100 bytes, served by one of
//   rustls         createHttpsServer() (lib/http.ts), its default path (the
//                  native listener)
//   rustls-net     createHttpsServer({nativeListener: false}), the net.Server
//                  path that options such as SNICallback fall back to
//   node-https     https.createServer()
//   node-http2     http2.createSecureServer({allowHTTP1: true})
// each with its default options and the ECDSA P-256 certificate, on
// 127.0.0.1:0. The orchestrator reads its CPU time from /proc and asks it
// for its counters ('counts': requests, handshakes, resumed handshakes,
// ALPN per connection) and, before it exits, for rustls-node's live native
// handles ('close').
// Usage: node https-app.js '<json {stack, certDir, libDir}>'.
const fs = require('node:fs')
const http2 = require('node:http2')
const https = require('node:https')
const path = require('node:path')

const { emit, serveControl } = require('./child')

const config = JSON.parse(process.argv[2])
const BODY = Buffer.from('rustls-node bench https app: the same 100-byte answer to every request'.padEnd(99, '.') + '\n')
const counts = { requests: 0, handshakes: 0, resumed: 0, alpn: {} }

function handler (req, res) {
  counts.requests++
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
  res.end(BODY)
}

const options = {
  cert: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.pem')),
  key: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.key')),
}
let server
switch (config.stack) {
  case 'rustls':
  case 'rustls-net': {
    const { createHttpsServer } = require(path.join(config.libDir, 'index.js'))
    server = createHttpsServer(config.stack === 'rustls-net' ? { ...options, nativeListener: false } : options, handler)
    break
  }
  case 'node-https': server = https.createServer(options, handler); break
  case 'node-http2': server = http2.createSecureServer({ ...options, allowHTTP1: true }, handler); break
  default: throw new Error(`unknown stack ${config.stack}`)
}
server.on('secureConnection', (socket) => {
  counts.handshakes++
  if (socket.isSessionReused()) counts.resumed++
  const alpn = socket.alpnProtocol || 'none'
  counts.alpn[alpn] = (counts.alpn[alpn] ?? 0) + 1
})

serveControl({
  counts: () => ({ ...counts, alpn: { ...counts.alpn } }),
  /** Closes the server (every connection is gone by then); rustls: native handles left. */
  async close () {
    server.closeAllConnections?.()
    await new Promise((resolve) => server.close(() => resolve()))
    await new Promise((resolve) => setTimeout(resolve, 50))
    if (!config.stack.startsWith('rustls')) return null
    return require(path.join(config.libDir, 'index.js')).liveHandles()
  },
})

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  emit('ready', { port: server.address().port })
})
