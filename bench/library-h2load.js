'use strict'
// The library rows of issue 19: a Node HTTPS app with a trivial handler
// answering 100 bytes (bench/https-app.js), on rustls-node's
// createHttpsServer (default path, and on net.Server: nativeListener: false) against
// https.createServer and http2.createSecureServer({allowHTTP1: true}),
// driven by h2load (bench/h2load.js): HTTP/1.1 keep-alive, HTTP/2 16 x 10
// streams (not https.createServer, which has no HTTP/2), one request per
// new connection. Every server runs with its defaults; h2load asks for
// TLS_AES_128_GCM_SHA256 only, the same for all, as the client of the
// library's TLS scenarios forces its suite. The figure is requests per
// second of the app process's CPU (/proc), app on the server core, h2load
// on the other.
const path = require('node:path')

const { startNode, treeCpuMicros } = require('./child')
const { measuredH2load, shapeFields, verifiedText, warmH2load, SHAPES } = require('./h2load')
const { AES128 } = require('./scenarios')

const APP = path.join(__dirname, 'https-app.js')
const SCENARIO = 'library-h2load'
const STACKS = ['rustls', 'rustls-net', 'node-https', 'node-http2']

function libraryH2loadCases (mode) {
  return ['h1', 'h2', 'close'].map((shape) => {
    const def = {
      id: `h2load-library-${shape}`, kind: 'h2load-library', suite: AES128, tls13Ciphers: AES128,
      // https.createServer speaks no HTTP/2.
      stacks: shape === 'h2' ? STACKS.filter((s) => s !== 'node-https') : STACKS,
      title: `HTTPS app (100-byte answer), ${SHAPES[shape].title} (h2load)`,
      ...shapeFields(shape, mode),
    }
    return { ...def, verified: `${verifiedText(def)}; the app counted every request${SHAPES[shape].perConnection ? ' and as many handshakes as connections, none resumed' : ''}; no rustls-node native handle left after close` }
  })
}

async function measureLibraryH2load (def, stack, ctx) {
  const app = await startNode(APP, [JSON.stringify({ stack, certDir: ctx.certDir, libDir: ctx.libDir })], { role: 'server' })
  const sample = { values: {}, info: {}, problems: [] }
  const { info, problems } = sample
  try {
    const url = `https://127.0.0.1:${app.ready.port}/`
    await warmH2load(def, url, problems)
    const before = await app.request('counts')
    const r = await measuredH2load(def, url, () => treeCpuMicros(app.pid), sample)
    const after = await app.request('counts')
    const requests = after.requests - before.requests
    const handshakes = after.handshakes - before.handshakes
    info.app = { requests, handshakes, resumed: after.resumed - before.resumed, alpn: after.alpn }
    if (requests < r.succeeded) problems.push(`the app counted ${requests} requests, h2load ${r.succeeded}`)
    if (SHAPES[def.shape].perConnection) {
      if (handshakes !== r.total) problems.push(`the app counted ${handshakes} handshakes for ${r.total} connections`)
      if (info.app.resumed !== 0) problems.push(`the app counted ${info.app.resumed} resumed handshakes; every connection must pay a full one`)
    }
    const handles = await app.request('close', {}, 15000)
    const leaked = Object.entries(handles ?? {}).filter(([, n]) => n !== 0)
    if (leaked.length > 0) problems.push(`native handles left after close: ${leaked.map(([k, n]) => `${k}=${n}`).join(', ')}`)
  } finally {
    await app.stop()
  }
  return sample
}

module.exports = { libraryH2loadCases, measureLibraryH2load, SCENARIO, STACKS }
