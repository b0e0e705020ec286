'use strict'
// The node:tls comparison terminators. mode 'http' (scenario 5 and the
// peers' http cases): an HTTPS server that forwards every request to the
// backend over keep-alive HTTP/1.1, the way `rustls-node serve` does in
// http mode (SPEC §5: X-Forwarded-For, X-Forwarded-Proto, incoming
// X-SSL-*/X-Forwarded-* removed); with `plain: true` it serves plain HTTP,
// the same proxy without TLS, the floor of what any TLS terminator can
// reach here. mode 'tcp' (bench/peers.js): tls.createServer + net.connect +
// pipe both ways, what a tcp-mode terminator does, with the counters the
// orchestrator checks ('stats'). `ciphers` restricts the suites as the
// other peers are restricted. Answers 'gc' (run with --expose-gc) before
// the idle-memory figure is read from /proc.
// Usage: node node-proxy.js '<json {backendPort, certDir, plain, mode, ciphers}>'.
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const net = require('node:net')
const path = require('node:path')
const tls = require('node:tls')

const { emit, fullGc, serveControl } = require('./child')

const config = JSON.parse(process.argv[2])
// RFC 9110 §7.6.1: connection-specific fields are not forwarded.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

function forward (req, res) {
  const headers = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (HOP_BY_HOP.includes(name) || name.startsWith('x-ssl-') || name.startsWith('x-forwarded-')) continue
    headers[name] = value
  }
  headers['x-forwarded-for'] = req.socket.remoteAddress
  headers['x-forwarded-proto'] = config.plain ? 'http' : 'https'
  const upstream = http.request({ host: '127.0.0.1', port: config.backendPort, method: req.method, path: req.url, headers, agent }, (answer) => {
    const out = {}
    for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.includes(name)) out[name] = value
    res.writeHead(answer.statusCode, out)
    answer.pipe(res)
  })
  upstream.on('error', () => {
    if (!res.headersSent) {
      res.writeHead(502)
      res.end()
    } else {
      res.destroy()
    }
  })
  req.pipe(upstream)
}

/** tcp mode: what the server negotiated, and plaintext bytes each way (the backend sockets' counters). */
const stats = { handshakes: 0, resumed: 0, protocols: {}, ciphers: {}, live: new Set(), closedToBackend: 0, closedFromBackend: 0 }

function count (map, key) {
  map[key] = (map[key] ?? 0) + 1
}

function tunnel (socket) {
  stats.handshakes++
  if (socket.isSessionReused()) stats.resumed++
  count(stats.protocols, socket.getProtocol())
  count(stats.ciphers, socket.getCipher()?.standardName)
  const upstream = net.connect({ host: '127.0.0.1', port: config.backendPort })
  stats.live.add(upstream)
  upstream.once('close', () => {
    stats.live.delete(upstream)
    stats.closedToBackend += upstream.bytesWritten
    stats.closedFromBackend += upstream.bytesRead
  })
  // pipe() ends the other side on 'end': close_notify from the client ends
  // the way to the backend, the backend's FIN ends the way back.
  socket.pipe(upstream)
  upstream.pipe(socket)
  socket.on('error', () => upstream.destroy())
  upstream.on('error', () => socket.destroy())
  socket.once('close', () => upstream.destroy())
}

const tlsOptions = {
  cert: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.pem')),
  key: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.key')),
  ...(config.ciphers ? { ciphers: config.ciphers } : {}),
}
let server
if (config.mode === 'tcp') server = tls.createServer(tlsOptions, tunnel)
else if (config.plain) server = http.createServer(forward)
else server = https.createServer(tlsOptions, forward)
if (config.mode !== 'tcp') server.keepAliveTimeout = 60000
server.on('tlsClientError', () => {})

serveControl({
  gc: () => fullGc(),
  stats: () => {
    let toBackend = stats.closedToBackend
    let fromBackend = stats.closedFromBackend
    for (const s of stats.live) {
      toBackend += s.bytesWritten
      fromBackend += s.bytesRead
    }
    return { handshakes: stats.handshakes, resumed: stats.resumed, protocols: stats.protocols, ciphers: stats.ciphers, live: stats.live.size, toBackend, fromBackend }
  },
})

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  emit('ready', { port: server.address().port })
})
