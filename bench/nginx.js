'use strict'
// nginx in the h2load scenarios (bench/h2load-peers.js), in two roles:
// - the backend every terminator forwards to: plain HTTP/1.1 on loopback
//   answering every request with the same 100 bytes (`return 200`), one
//   worker on the load generator's core, with stub_status on a second port
//   for its request and connection counts;
// - a terminator peer: `listen ssl http2` (h2 and http/1.1 by ALPN) with
//   `proxy_pass` to the backend over upstream keep-alive, or `grpc_pass`
//   for the gRPC case; one worker on the server core.
// Each instance has its own prefix, configuration and pid file in the run's
// temporary directory and runs in the foreground (`daemon off`), so stop()
// (SIGTERM: fast shutdown) ends it and its worker.
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')

const { startProcess } = require('./child')
const { freePort } = require('./terminator')

/** The backend's answer: 100 bytes, whichever terminator is in front. */
const BACKEND_BODY = 'rustls-node bench backend: a small answer of exactly one hundred bytes, the same for every request.\n'
if (Buffer.byteLength(BACKEND_BODY) !== 100) throw new Error('BACKEND_BODY must be 100 bytes')
/** Idle upstream connections a peer keeps: above the 160 streams of the h2 case, so none is closed for lack of room. */
const UPSTREAM_KEEPALIVE = 256
/** Requests per connection before nginx closes it (its default, 1,000, would add handshakes to the keep-alive runs). */
const MANY_REQUESTS = 100000000

/**
 * Writes `conf` (the lines inside the `http` block) into a fresh prefix
 * and starts nginx on `role`'s core with one worker. Resolves once the
 * master is running; readiness is the caller's (a probe).
 */
function startNginx (ctx, name, role, httpLines) {
  const prefix = fs.mkdtempSync(path.join(ctx.tmpDir, `nginx-${name}-`))
  // Workers run as `nobody` when the master is root; they only need to
  // reach the temp paths, which stay unused at these sizes.
  fs.chmodSync(prefix, 0o755)
  const file = path.join(prefix, 'nginx.conf')
  const temp = (kind) => `${kind}_temp_path ${path.join(prefix, kind)};`
  const lines = [
    'worker_processes 1;',
    'daemon off;',
    `pid ${path.join(prefix, 'nginx.pid')};`,
    'error_log stderr warn;',
    'events { worker_connections 20000; }',
    'http {',
    '  access_log off;',
    `  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}`,
    '  default_type text/plain;',
    '  keepalive_timeout 300s;',
    `  keepalive_requests ${MANY_REQUESTS};`,
    ...httpLines.map((l) => `  ${l}`),
    '}',
  ]
  fs.writeFileSync(file, lines.join('\n') + '\n')
  return startProcess(role, ctx.nginxBin, ['-p', prefix, '-c', file], { cwd: prefix })
}

/**
 * The shared backend: `return 200` with BACKEND_BODY on `port`, counts on
 * `statsPort`. counts() → {requests, connections} handled so far, not
 * counting its own stub_status requests.
 */
async function startNginxBackend (ctx) {
  const port = await freePort()
  const statsPort = await freePort()
  const proc = startNginx(ctx, 'backend', 'client', [
    `server { listen 127.0.0.1:${port} backlog=4096; location / { return 200 ${JSON.stringify(BACKEND_BODY)}; } }`,
    `server { listen 127.0.0.1:${statsPort}; location / { stub_status; } }`,
  ])
  let queries = 0
  const counts = async () => {
    const text = await httpGet(statsPort, '/')
    queries++
    const m = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(text)
    if (m === null) throw new Error(`cannot read nginx stub_status: ${text.slice(0, 200)}`)
    // Each query is one connection and one request of its own.
    return { connections: Number(m[1]) - queries, requests: Number(m[3]) - queries }
  }
  const deadline = Date.now() + 10000
  for (;;) {
    try {
      await counts()
      break
    } catch (err) {
      if (!proc.isRunning() || Date.now() > deadline) {
        await proc.stop()
        throw new Error(`nginx backend did not start: ${err.message} ${proc.output().slice(-500)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return { ...proc, port, counts, body: BACKEND_BODY }
}

function httpGet (port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 3000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve(text))
    }).on('error', reject).on('timeout', function () { this.destroy(new Error('timed out')) })
  })
}

/**
 * nginx as a TLS terminator in front of `backendPort`: the same
 * certificate, the same two suites as the other peers, h2 and http/1.1 by
 * ALPN, X-Forwarded-For/-Proto set, upstream keep-alive. `grpc`: the
 * backend is an h2c gRPC server (`grpc_pass`).
 */
async function startNginxPeer (ctx, backendPort, { grpc = false, tls12Ciphers, tls13Suite }) {
  const port = await freePort()
  const pass = grpc
    ? ['grpc_pass grpc://be;', 'grpc_set_header X-Forwarded-For $remote_addr;', 'grpc_set_header X-Forwarded-Proto https;']
    : ['proxy_pass http://be;', 'proxy_http_version 1.1;', 'proxy_set_header Connection "";',
        'proxy_set_header X-Forwarded-For $remote_addr;', 'proxy_set_header X-Forwarded-Proto https;']
  const proc = startNginx(ctx, grpc ? 'grpc' : 'peer', 'server', [
    `upstream be { server 127.0.0.1:${backendPort}; keepalive ${UPSTREAM_KEEPALIVE}; keepalive_requests ${MANY_REQUESTS}; keepalive_timeout 300s; }`,
    'server {',
    `  listen 127.0.0.1:${port} ssl http2 backlog=4096;`,
    `  ssl_certificate ${path.join(ctx.certDir, 'localhost-ecdsa.pem')};`,
    `  ssl_certificate_key ${path.join(ctx.certDir, 'localhost-ecdsa.key')};`,
    '  ssl_protocols TLSv1.2 TLSv1.3;',
    `  ssl_ciphers ${tls12Ciphers};`,
    `  ssl_conf_command Ciphersuites ${tls13Suite};`,
    `  location / { ${pass.join(' ')} }`,
    '}',
  ])
  return { ...proc, port, counters: async () => null }
}

module.exports = { startNginxBackend, startNginxPeer, BACKEND_BODY }
