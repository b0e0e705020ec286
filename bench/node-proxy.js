'use strict'
// The comparison terminator of scenario 5: a node:tls HTTPS server that
// forwards every request to the backend over keep-alive HTTP/1.1, the way
// `rustls-node serve` does in http mode (SPEC §5: X-Forwarded-For,
// X-Forwarded-Proto, incoming X-SSL-*/X-Forwarded-* removed). With
// `plain: true` it serves plain HTTP: the same proxy without TLS, the
// floor of what any TLS terminator can reach here.
// Usage: node node-proxy.js '<json {backendPort, certDir, plain}>'.
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const path = require('node:path')

const { emit, serveControl } = require('./child')

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

const server = config.plain
  ? http.createServer(forward)
  : https.createServer({
    cert: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.pem')),
    key: fs.readFileSync(path.join(config.certDir, 'localhost-ecdsa.key')),
  }, forward)
server.keepAliveTimeout = 60000
server.on('tlsClientError', () => {})

serveControl({})

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  emit('ready', { port: server.address().port })
})
