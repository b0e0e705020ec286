// Minimal reproduction (for the lead; not run by npm test): when a server
// socket is not read to its end (nobody consumes its readable side, so
// 'end' never triggers the usual teardown), the rustls Server's close
// callback runs while that RustlsSocket still holds its native Connection:
// liveHandles() checked right there shows `connections: 1`, 0 a moment
// later. net.Server emits 'close' on process.nextTick after the
// transport's _destroy, while the transport's own 'close' event (which
// destroys the RustlsSocket) comes from the handle's close callback, one
// loop turn later. Run: node dist/test/ecosystem/repro-close-before-handles.js
// Expected "in close callback: 0 / later: 0"; prints "1 / 0" today.
import { connect, createServer, liveHandles } from '../../lib/index'
import { fixtures } from '../helpers/certs'

const f = fixtures()
const server = createServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key }, (socket) => {
  // The server never reads: its socket's readable side never ends.
  socket.end('bye')
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number }
  const client = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: f.ca })
  client.resume()
  client.on('close', () => {
    server.close(() => {
      const now = liveHandles().connections
      setTimeout(() => console.log(`in close callback: ${now} / later: ${liveHandles().connections}`), 50)
    })
  })
})
