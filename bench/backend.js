'use strict'
// The HTTP backend behind both terminators in scenario 5: a plain
// node:http server with a small fixed answer, so the requests are "small
// HTTP requests" and the backend costs the same whichever proxy is in front.
// Runs on the load generator's core; its CPU is not part of any figure.
const http = require('node:http')

const { emit, serveControl } = require('./child')

const BODY = Buffer.from('hello from the rustls-node bench backend\n')
let requests = 0
let connections = 0

const server = http.createServer((req, res) => {
  requests++
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
    res.end(BODY)
  })
})
// Keep-alive connections from the proxies stay open between wrk runs.
server.keepAliveTimeout = 60000
// How many the proxies open shows whether they keep them alive.
server.on('connection', () => { connections++ })

serveControl({
  counts: () => ({ requests, connections }),
  body: () => BODY.toString('utf8'),
})

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  emit('ready', { port: server.address().port })
})
