'use strict'
// Preloaded (`node --expose-gc -r bench/gc-hook.js bin/rustls-node.js serve`)
// into the rustls-node terminator for the peers' idle-memory case only: it
// answers 'gc' over Node's IPC channel, so the terminator's RSS is read
// after full collections, as node-proxy.js' and server.js' are. It adds no
// work to any connection. The channel is unref'd so that it never keeps
// the terminator alive after its SIGTERM drain.
const { fullGc, serveControl } = require('./child')

if (typeof process.send === 'function') {
  serveControl({ gc: () => fullGc() }, () => {})
  process.channel?.unref()
}
