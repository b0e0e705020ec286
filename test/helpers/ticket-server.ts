// A rustls-node server in its own process, for cross-process resumption
// tests: `node ticket-server.js <cert> <key> <ticketKeysFile> <tls1.2|tls1.3>`.
// Prints the port, then "resumed=<bool>" per connection; exits on stdin EOF.
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'

import { createServer } from '../../lib/index'

const [cert, key, ticketKeys, version] = process.argv.slice(2)
const server = createServer({
  cert: fs.readFileSync(cert),
  key: fs.readFileSync(key),
  ticketKeys: fs.readFileSync(ticketKeys),
  // No cache: only the shared ticket keys can resume a session here.
  sessionCache: 'none',
  minVersion: version === 'tls1.3' ? 'TLSv1.3' : 'TLSv1.2',
}, (socket) => {
  process.stdout.write(`resumed=${socket.isSessionReused()}\n`)
  socket.end('ok')
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`port=${(server.address() as AddressInfo).port}\n`)
})
process.stdin.resume()
process.stdin.on('end', () => server.close(() => process.exit(0)))
