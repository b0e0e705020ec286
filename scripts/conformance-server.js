#!/usr/bin/env node
'use strict'
// The library target of the conformance run (scripts/conformance.js): an echo
// server on createServer({cert, key}), the way a new user writes one, on
// 127.0.0.1:0. Prints {"port": N} once listening. `--native` runs it on the
// native listener (the default path, asked for explicitly), otherwise on
// the net.Server path (nativeListener: false, the stream pump). tlsfuzzer's scripts send one request (an HTTP GET,
// or N bytes for the length tests) and expect one answer record back, then
// close_notify for their close_notify: an echo gives both. Several scripts
// send one request over several records (tlslite encrypts in Python, so the
// records can be far apart); the echo answers an HTTP request head when it
// is complete, and other bytes once the client has been quiet for QUIET_MS, so that they get
// one answer whatever the reads looked like (the terminator's tcp backend
// is the same echo).
const fs = require('node:fs')
const path = require('node:path')

const QUIET_MS = 50

/** Echoes what `socket` sends, once per burst; ends when the client ends. */
function echo (socket) {
  let pending = []
  let timer = null
  const flush = () => {
    clearTimeout(timer)
    timer = null
    if (pending.length > 0 && socket.writable) socket.write(Buffer.concat(pending))
    pending = []
  }
  socket.on('data', (chunk) => {
    pending.push(chunk)
    clearTimeout(timer)
    // An HTTP request head (what most scripts send) is answered when it is
    // complete; anything else once the client has been quiet for QUIET_MS.
    const head = pending.length > 0 && /^[A-Z]+ /.test(pending[0].toString('latin1', 0, 8))
    if (!head) timer = setTimeout(flush, QUIET_MS)
    else if (/\r?\n\r?\n$/.test(Buffer.concat(pending).toString('latin1'))) flush()
  })
  socket.on('end', () => { flush(); socket.end() })
  socket.on('error', () => socket.destroy())
  socket.on('close', () => clearTimeout(timer))
}
module.exports = { echo }

function main () {
  const { createServer } = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'))
  const args = process.argv.slice(2)
  const opt = (name) => args[args.indexOf(name) + 1]
  const server = createServer({
    cert: fs.readFileSync(opt('--cert')),
    key: fs.readFileSync(opt('--key')),
    nativeListener: args.includes('--native'),
  }, (socket) => echo(socket))
  // Handshake failures are what the scripts provoke; the server stays up.
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
  })
  process.on('SIGTERM', () => process.exit(0))
}

if (require.main === module) main()
