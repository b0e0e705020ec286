#!/usr/bin/env node
'use strict'
// The library target of the conformance run (scripts/conformance.js): an echo
// server on createServer({cert, key}), the way a new user writes one, on
// 127.0.0.1:0. Prints {"port": N} once listening. `--native` adds
// nativeListener: true. tlsfuzzer's scripts send one request (an HTTP GET,
// or N bytes for the length tests) and expect one answer record back, then
// close_notify for their close_notify: an echo gives both.
const fs = require('node:fs')
const path = require('node:path')

const { createServer } = require(path.join(__dirname, '..', 'dist', 'lib', 'index.js'))

const args = process.argv.slice(2)
const opt = (name) => args[args.indexOf(name) + 1]
const server = createServer({
  cert: fs.readFileSync(opt('--cert')),
  key: fs.readFileSync(opt('--key')),
  nativeListener: args.includes('--native'),
}, (socket) => {
  socket.on('data', (chunk) => socket.write(chunk))
  socket.on('end', () => socket.end())
  socket.on('error', () => socket.destroy())
})
// Handshake failures are what the scripts provoke; the server stays up.
server.on('tlsClientError', () => {})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
})
process.on('SIGTERM', () => process.exit(0))
