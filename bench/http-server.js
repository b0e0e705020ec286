'use strict'
// Small HTTP/1.1 requests served directly by an HTTPS server, no proxy and
// no backend, so only the TLS layer differs: https.createServer (node:tls)
// against createHttpsServer (rustls-node), keep-alive and one request per
// connection. The server runs in this process on core 0, wrk (Debian) on
// core 1; the figure is process.cpuUsage() per request, reported as a ratio.
// Usage: node bench/http-server.js [seconds] [rounds]
// Needs: npx tsc -p tsconfig.json, node scripts/gen-certs.js, wrk, taskset.
const { spawnSync, spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
const { createHttpsServer } = require(path.join(root, 'dist', 'lib', 'index.js'))
const fixtures = path.join(root, 'test', 'fixtures', 'generated')
const cert = fs.readFileSync(path.join(fixtures, 'localhost-ecdsa.pem'))
const key = fs.readFileSync(path.join(fixtures, 'localhost-ecdsa.key'))
const seconds = Number(process.argv[2] ?? 5)
const rounds = Number(process.argv[3] ?? 3)
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

function median (xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function main () {
  for (const close of [false, true]) {
    const ratios = []
    for (let i = 0; i < rounds; i++) {
      const viaNode = await measure('node:tls', https.createServer({ cert, key }, handler), close)
      const viaRustls = await measure('rustls-node', createHttpsServer({ cert, key }, handler), close)
      ratios.push(viaNode / viaRustls)
    }
    console.log(`  ${close ? 'Connection: close' : 'keep-alive'}: node:tls CPU / rustls-node CPU per request, median of ${rounds} = ${median(ratios).toFixed(2)} (> 1: rustls-node cheaper)`)
  }
}

main()
