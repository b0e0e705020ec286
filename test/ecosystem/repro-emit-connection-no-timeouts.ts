// Reproduction (for the lead and the terminator's HTTP mode; not run by
// npm test): an http.Server fed with emit('connection', rustlsSocket), the
// plain-HTTP-on-rustls pattern in use so far, never enforces headersTimeout or
// requestTimeout: node starts that tracking (and closeIdleConnections) on
// the http.Server's own 'listening', which never comes for a server that
// does not listen. A client that sends half a request head holds the
// connection forever (slowloris). createHttpsServer (lib/http.ts) emits
// 'listening' on its inner server for this reason.
// Run: node dist/test/ecosystem/repro-emit-connection-no-timeouts.js
// Prints "no answer after 2000 ms"; with --workaround (emit 'listening'),
// "408 after ~300 ms".
import http from 'node:http'

import { connect, createServer } from '../../lib/index'
import { fixtures } from '../helpers/certs'

const f = fixtures()
const httpServer = http.createServer({ headersTimeout: 300, requestTimeout: 400, connectionsCheckingInterval: 50 }, (_req, res) => res.end())
if (process.argv.includes('--workaround')) httpServer.emit('listening')
const server = createServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (socket) => httpServer.emit('connection', socket))
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca })
  const started = Date.now()
  let text = ''
  client.on('data', (d: Buffer) => { text += d.toString('latin1') })
  client.on('error', () => {})
  client.write('GET / HTTP/1.1\r\nHost: localhost\r\n')
  const timer = setTimeout(() => {
    console.log(`no answer after ${Date.now() - started} ms`)
    client.destroy()
  }, 2000)
  client.on('close', () => {
    clearTimeout(timer)
    if (text !== '') console.log(`${text.slice(9, 12)} after ~${Date.now() - started} ms`)
    server.close()
    httpServer.close()
  })
})
