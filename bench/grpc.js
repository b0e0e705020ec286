'use strict'
// The gRPC case of the h2load scenarios (bench/h2load-peers.js): a unary
// method served by @grpc/grpc-js over h2c (the backend, on the load
// generator's core) and called by a @grpc/grpc-js client over TLS through
// each terminator (the load generator, same core). Messages are opaque
// bytes (no protobuf): a 20-byte request, a 100-byte answer, as the other
// terminator rows answer 100 bytes.
//
//   node bench/grpc.js '{"role": "backend"}'
//   node bench/grpc.js '{"role": "client", "port": P, "ca": "<path>", "connections": 16, "streams": 10}'
//
// The backend answers 'counts' ({calls}); the client answers 'run'
// ({seconds}) with the calls that completed in that window, their status
// codes and the bytes of every answer. Both are driven over child.js' IPC.
const fs = require('node:fs')

const grpc = require('@grpc/grpc-js')

const { emit, serveControl } = require('./child')

const METHOD_PATH = '/rustls_node.bench.Bench/Unary'
const REQUEST = Buffer.alloc(20, 'q')
const ANSWER = Buffer.alloc(100, 'a')
const identity = (b) => b
const SERVICE = {
  Unary: {
    path: METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
}

function backend () {
  let calls = 0
  const server = new grpc.Server()
  server.addService(SERVICE, {
    Unary (call, callback) {
      calls++
      callback(null, ANSWER)
    },
  })
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err
    serveControl({ counts: () => ({ calls }) }, () => server.tryShutdown(() => process.exit(0)))
    emit('ready', { port })
  })
}

/**
 * `connections` channels, each its own HTTP/2 connection (a local
 * subchannel pool per channel, or grpc-js would share one), each with
 * `streams` calls in flight, verifying the terminator's certificate for
 * `localhost`.
 */
function client (config) {
  const credentials = grpc.credentials.createSsl(fs.readFileSync(config.ca))
  const channels = Array.from({ length: config.connections }, () => new grpc.Client(`127.0.0.1:${config.port}`, credentials, {
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.default_authority': 'localhost',
    'grpc.use_local_subchannel_pool': 1,
  }))

  function call (channel) {
    return new Promise((resolve) => {
      channel.makeUnaryRequest(METHOD_PATH, identity, identity, REQUEST, { deadline: Date.now() + 10000 }, (err, answer) => {
        resolve(err ? { code: err.code, bytes: 0 } : { code: grpc.status.OK, bytes: answer.length })
      })
    })
  }

  /** Calls for `seconds` and counts the calls that completed within them. */
  async function run ({ seconds }) {
    const stats = { calls: 0, ok: 0, codes: {}, badAnswers: 0 }
    const t0 = performance.now()
    const end = t0 + seconds * 1000
    const loop = async (channel) => {
      while (performance.now() < end) {
        const r = await call(channel)
        stats.calls++
        stats.codes[r.code] = (stats.codes[r.code] ?? 0) + 1
        if (r.code === grpc.status.OK) {
          stats.ok++
          if (r.bytes !== ANSWER.length) stats.badAnswers++
        }
      }
    }
    await Promise.all(channels.flatMap((ch) => Array.from({ length: config.streams }, () => loop(ch))))
    return { ...stats, wallMs: performance.now() - t0 }
  }

  serveControl({ run }, () => {
    for (const ch of channels) ch.close()
    process.exit(0)
  })
  emit('ready', {})
}

if (require.main === module) {
  const config = JSON.parse(process.argv[2])
  if (config.role === 'backend') backend()
  else client(config)
}

module.exports = { ANSWER, METHOD_PATH }
