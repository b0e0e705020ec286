'use strict'
// Repro for the lead (issue 5 findings): small keep-alive HTTP/1.1 requests
// served directly by http.createServer over rustls-node sockets cost more
// server CPU per request than the same server over node:tls (no proxy, no
// backend: only the TLS layer differs). A third server disables
// RustlsSocket._writev, as lib/terminator/workarounds.ts does for the
// terminator (avoidVectoredWrites): that is what `rustls-node serve` pays
// until the _writev data-loss bug is fixed. The server runs in this process
// on core 0, wrk (Debian) on core 1; the figure is process.cpuUsage() per
// request. TCP_NODELAY is on everywhere, as https.createServer and the
// terminator set it. Usage: node bench/repro/keepalive-small-requests.js [seconds]
// Needs: npx tsc -p tsconfig.json, node scripts/gen-certs.js, wrk, taskset.
const { spawnSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const path = require('node:path')

const root = path.resolve(__dirname, '..', '..')
const { createServer } = require(path.join(root, 'dist', 'lib', 'index.js'))
const fixtures = path.join(root, 'test', 'fixtures', 'generated')
const cert = fs.readFileSync(path.join(fixtures, 'localhost-ecdsa.pem'))
const key = fs.readFileSync(path.join(fixtures, 'localhost-ecdsa.key'))
const seconds = Number(process.argv[2] ?? 5)
const BODY = Buffer.from('hello\n')

spawnSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' })

const handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
  res.end(BODY)
}

function listen (server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)))
}

function wrk (port, close) {
  const args = ['-c', '1', 'wrk', '-t1', '-c16', `-d${seconds}s`, `https://127.0.0.1:${port}/`]
  if (close) args.push('-H', 'Connection: close')
  return new Promise((resolve) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (b) => { out += b })
    child.on('close', () => resolve({ requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0), errors: /Socket errors.*/.exec(out)?.[0] ?? 'no socket errors' }))
  })
}

async function measure (name, server, close) {
  const port = await listen(server)
  await wrk(port, close) // warm-up
  const cpu = process.cpuUsage()
  const r = await wrk(port, close)
  const used = process.cpuUsage(cpu)
  await new Promise((resolve) => { server.close(resolve); server.closeAllConnections?.() })
  const us = (used.user + used.system) / r.requests
  console.log(`${name.padEnd(18)} ${close ? 'Connection: close' : 'keep-alive       '} ${r.requests} requests, ${us.toFixed(1)} server CPU-µs per request, ${r.errors}`)
  return us
}

async function main () {
  for (const close of [false, true]) {
    const viaNode = await measure('node:tls', https.createServer({ cert, key }, handler), close)
    const plainHttp = http.createServer(handler)
    const rustls = createServer({ cert, key, noDelay: true }, (socket) => plainHttp.emit('connection', socket))
    const viaRustls = await measure('rustls', rustls, close)
    plainHttp.close()
    const plainHttp2 = http.createServer(handler)
    const noWritev = createServer({ cert, key, noDelay: true }, (socket) => {
      socket._writev = undefined
      plainHttp2.emit('connection', socket)
    })
    const viaNoWritev = await measure('rustls, no _writev', noWritev, close)
    plainHttp2.close()
    console.log(`  node:tls/rustls-node = ${(viaNode / viaRustls).toFixed(2)}, node:tls/(rustls-node without _writev) = ${(viaNode / viaNoWritev).toFixed(2)} (> 1: rustls-node cheaper)`)
  }
}

main()
