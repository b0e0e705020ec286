'use strict'
// The node:tls comparison terminators. mode 'http' (scenario 5 and the
// peers' http cases): an HTTPS server that forwards every request to the
// backend over keep-alive HTTP/1.1, the way `rustls-node serve` does in
// http mode (SPEC §5: X-Forwarded-For, X-Forwarded-Proto, incoming
// X-SSL-*/X-Forwarded-* removed); with `plain: true` it serves plain HTTP,
// the same proxy without TLS, the floor of what any TLS terminator can
// reach here. mode 'tcp' (bench/peers.js): tls.createServer + net.connect +
// pipe both ways, what a tcp-mode terminator does, with the counters the
// orchestrator checks ('stats'). mode 'h2' (bench/h2load-peers.js): the
// same http proxy on node:http2 (`createSecureServer({allowHTTP1: true})`,
// h2 and http/1.1 by ALPN, the compatibility API) to the same HTTP/1.1
// backend. mode 'grpc': node:http2 on both sides, each stream forwarded to
// an h2c backend over one multiplexed connection, trailers included.
// `ciphers` restricts the suites as the other peers are restricted.
// Answers 'gc' (run with --expose-gc) before the idle-memory figure is read
// from /proc.
// Usage: node node-proxy.js '<json {backendPort, certDir, plain, mode, ciphers}>'.
const fs = require('node:fs')
const http = require('node:http')
const http2 = require('node:http2')
const https = require('node:https')
const net = require('node:net')
const path = require('node:path')
const tls = require('node:tls')

const { emit, fullGc, serveControl } = require('./child')

const config = JSON.parse(process.argv[2])
// RFC 9110 §7.6.1: connection-specific fields are not forwarded.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 })

/**
 * The request's fields as forwarded: hop-by-hop, X-SSL-* and X-Forwarded-*
 * out, X-Forwarded-For/-Proto in; HTTP/2 pseudo-header fields out
 * (`:authority` becomes Host for an HTTP/1.1 backend, RFC 9113 §8.3.1).
 */
function forwardedHeaders (incoming, remoteAddress, h1Backend) {
  const headers = {}
  for (const [name, value] of Object.entries(incoming)) {
    if (HOP_BY_HOP.includes(name) || name.startsWith('x-ssl-') || name.startsWith('x-forwarded-') || name.startsWith(':')) continue
    headers[name] = value
  }
  if (h1Backend && headers.host === undefined && incoming[':authority'] !== undefined) headers.host = incoming[':authority']
  headers['x-forwarded-for'] = remoteAddress
  headers['x-forwarded-proto'] = config.plain ? 'http' : 'https'
  return headers
}

function forward (req, res) {
  const headers = forwardedHeaders(req.headers, req.socket.remoteAddress, true)
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

/** What the server negotiated; tcp mode: plaintext bytes each way (the backend sockets' counters). */
const stats = { handshakes: 0, resumed: 0, protocols: {}, ciphers: {}, live: new Set(), closedToBackend: 0, closedFromBackend: 0 }

function count (map, key) {
  map[key] = (map[key] ?? 0) + 1
}

/** Every TLS mode: the server's view of each handshake. */
function countHandshake (socket) {
  stats.handshakes++
  if (socket.isSessionReused()) stats.resumed++
  count(stats.protocols, socket.getProtocol())
  count(stats.ciphers, socket.getCipher()?.standardName)
}

function tunnel (socket) {
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

/** mode 'grpc': one h2c session to the backend, reopened if it goes away. */
let backendSession = null
function backendH2 () {
  if (backendSession === null || backendSession.closed || backendSession.destroyed) {
    backendSession = http2.connect(`http://127.0.0.1:${config.backendPort}`)
    backendSession.on('error', () => {})
    backendSession.once('close', function () { if (backendSession === this) backendSession = null })
  }
  return backendSession
}

function forwardStream (stream, headers) {
  const out = forwardedHeaders(headers, stream.session.socket.remoteAddress, false)
  for (const name of [':method', ':path', ':scheme', ':authority']) if (headers[name] !== undefined) out[name] = headers[name]
  const upstream = backendH2().request(out)
  let trailers = null
  upstream.on('response', (answer) => {
    const back = {}
    for (const [name, value] of Object.entries(answer)) if (!HOP_BY_HOP.includes(name)) back[name] = value
    // gRPC ends every answer with trailers (grpc-status).
    stream.respond(back, { waitForTrailers: true })
  })
  upstream.on('trailers', (t) => { trailers = t })
  stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}))
  stream.pipe(upstream)
  upstream.pipe(stream)
  const fail = () => {
    if (!stream.headersSent && !stream.destroyed) stream.respond({ ':status': 502 }, { endStream: true })
    else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
  }
  upstream.on('error', fail)
  stream.on('error', () => upstream.close(http2.constants.NGHTTP2_CANCEL))
}

const tlsOptions = {
  cert: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.pem')),
  key: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.key')),
  ...(config.ciphers ? { ciphers: config.ciphers } : {}),
}
let server
if (config.mode === 'tcp') server = tls.createServer(tlsOptions, tunnel)
else if (config.mode === 'h2') server = http2.createSecureServer({ ...tlsOptions, allowHTTP1: true }, forward)
else if (config.mode === 'grpc') server = http2.createSecureServer(tlsOptions).on('stream', forwardStream)
else if (config.plain) server = http.createServer(forward)
else server = https.createServer(tlsOptions, forward)
if (config.mode === 'http' || config.mode === 'h2') server.keepAliveTimeout = 60000
server.on('tlsClientError', () => {})
if (!config.plain) server.on('secureConnection', countHandshake)

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
