// Child process for the socket-mode descriptor test: a server whose process
// has exactly one free descriptor when the next client connects, so
// accept() gets the last one. Socket mode must serve the connection on that
// descriptor alone. Prints `port=N`, then `fallback` for each connection
// that had to fall back to the JS pump; exits on stdin EOF.
import fs from 'node:fs'
import type { AddressInfo } from 'node:net'

import { createServer } from '../../lib/index'

const [certPath, keyPath] = process.argv.slice(2)
const noop = (): void => {}
const logger = {
  error: noop,
  warn: noop,
  info: noop,
  trace: noop,
  debug: (_obj: unknown, msg?: string) => {
    if (msg?.includes('socket mode unavailable') === true) process.stdout.write('fallback\n')
  },
}
const server = createServer({ cert: fs.readFileSync(certPath), key: fs.readFileSync(keyPath), logger }, (s) => {
  s.on('error', noop)
  s.pipe(s)
})
const spare: number[] = []
server.listen(0, '127.0.0.1', () => {
  // Fill the descriptor table, then free exactly one for accept().
  for (;;) {
    try {
      spare.push(fs.openSync('/dev/null', 'r'))
    } catch {
      break
    }
  }
  fs.closeSync(spare.pop() as number)
  process.stdout.write(`port=${(server.address() as AddressInfo).port}\n`)
})
process.stdin.resume()
process.stdin.on('end', () => {
  for (const fd of spare) fs.closeSync(fd)
  server.close(() => process.exit(0))
})
