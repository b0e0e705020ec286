'use strict'
// Scenario 5: small HTTP requests through `rustls-node serve` (http mode)
// against the same setup with a node:tls-based proxy (node-proxy.js), and
// the same proxy without TLS as the floor. wrk (HTTP/1.1, from Debian) is
// the load generator: keep-alive, and one request per connection
// (`Connection: close`, so every request pays a full handshake). The
// terminator is a process the harness does not control, so its CPU time is
// read from /proc for it and all its workers; the node:tls proxy is measured
// the same way, so both figures come from the same clock.
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const https = require('node:https')
const net = require('node:net')
const path = require('node:path')

const YAML = require('yaml')

const { runPinned, startNode, startProcess, treeCpuMicros } = require('./child')

const ROOT = path.resolve(__dirname, '..')
const NODE_PROXY = path.join(__dirname, 'node-proxy.js')
const BACKEND = path.join(__dirname, 'backend.js')
const READY_TIMEOUT_MS = 15000
const WRK_CONNECTIONS = 16

/** Settings per run mode. */
const SETTINGS = {
  full: { warmSeconds: 1, runSeconds: 5 },
  quick: { warmSeconds: 1, runSeconds: 2 },
}

function terminatorCase (mode) {
  return {
    id: 'terminator', kind: 'terminator', stacks: ['node', 'rustls', 'plain'],
    title: 'Terminator, HTTP/1.1 small requests through a TLS proxy (wrk)',
    ...SETTINGS[mode],
  }
}

/**
 * Where `name` is installed: on PATH, or in the sbin directories Debian
 * puts daemons in (hitch, haproxy) and a non-root PATH may lack. Null when
 * it is not installed.
 */
function findCommand (name) {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/local/sbin']
  for (const dir of dirs.filter(Boolean)) {
    const file = path.join(dir, name)
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return file
    } catch {}
  }
  return null
}

/**
 * Installs Debian package `pkg` when `command` is missing and we may (root,
 * or password-less sudo). Returns {path} of the command, or {reason} why
 * it is not there. `what` says in the log what it is for. With `file`,
 * that file is what must exist (a header of a -dev package), not a command.
 */
function ensureCommand (command, pkg, what, log, { file } = {}) {
  const present = () => (file === undefined ? findCommand(command) : fs.existsSync(file) ? file : null)
  const found = present()
  if (found !== null) return { path: found }
  const root = typeof process.getuid === 'function' && process.getuid() === 0
  const sudo = !root && spawnSync('sudo', ['-n', 'true']).status === 0
  if (!root && !sudo) return { reason: `${command} is not installed and installing it needs root (apt-get install ${pkg})` }
  if (spawnSync('apt-get', ['--version']).error !== undefined) return { reason: `${command} is not installed and there is no apt-get` }
  log(`installing ${pkg} with apt-get (${what})`)
  const prefix = sudo ? ['sudo', '-n'] : []
  const run = (args) => {
    const [cmd, ...rest] = [...prefix, ...args]
    return spawnSync(cmd, rest, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  }
  run(['apt-get', 'update', '-qq'])
  run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', pkg])
  const installed = present()
  return installed !== null ? { path: installed } : { reason: `apt-get install ${pkg} failed` }
}

/** A port nobody listens on right now (the terminator's config needs one up front). */
function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/**
 * GET / through the proxy with verification on and the client's default
 * TLS settings (OpenSSL's, like wrk's); resolves with status, body and
 * what the connection negotiated.
 */
function probe (port, ca, plain) {
  return new Promise((resolve, reject) => {
    const mod = plain ? require('node:http') : https
    const req = mod.get({ host: '127.0.0.1', port, path: '/bench-probe', servername: 'localhost', ca, agent: false, timeout: 3000 }, (res) => {
      const chunks = []
      const tls = plain ? {} : { protocol: res.socket.getProtocol(), cipher: res.socket.getCipher()?.standardName, group: res.socket.getEphemeralKeyInfo()?.name }
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), ...tls }))
    })
    req.on('timeout', () => req.destroy(new Error('probe timed out')))
    req.on('error', reject)
  })
}

/**
 * The `rustls-node serve` process in front of the backend: http mode with
 * one worker and log level warn unless `options` says otherwise.
 * options: {mode: 'http'|'tcp', top: extra top-level keys, host: extra
 * host keys, backend: extra backend keys, execArgv (node flags, e.g. the
 * gc hook), ipc, nofile, role (the core: 'server' unless said), name (of
 * its config file, when several run at once), env (added variables)}.
 * SIGTERM (its stop()) drains, then exits (SPEC §5).
 */
async function startRustlsTerminator (ctx, backendPort, options = {}) {
  const port = await freePort()
  const config = {
    listen: [`127.0.0.1:${port}`],
    workers: 1,
    // Per-request logging would be measured too; failures still show.
    log: { level: 'warn' },
    ...options.top,
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: path.join(ctx.certDir, 'localhost-ecdsa.pem'), key: path.join(ctx.certDir, 'localhost-ecdsa.key') }],
      ...options.host,
      backend: { address: `127.0.0.1:${backendPort}`, mode: options.mode ?? 'http', ...options.backend },
    }],
  }
  const file = path.join(ctx.tmpDir, `terminator-${options.name ?? options.mode ?? 'http'}.yaml`)
  fs.writeFileSync(file, YAML.stringify(config))
  const argv = [...(options.execArgv ?? []), ctx.terminatorBin, 'serve', '-c', file]
  const proc = startProcess(options.role ?? 'server', process.execPath, argv, { cwd: ROOT, ipc: options.ipc, nofile: options.nofile, env: options.env })
  return { ...proc, port }
}

/**
 * node-proxy.js on the server core. options: {mode: 'http'|'tcp', ciphers,
 * execArgv, nofile}; `control` is its IPC channel ('stats', 'gc').
 */
async function startNodeProxy (ctx, backendPort, plain, { mode = 'http', ciphers, execArgv, nofile } = {}) {
  const peer = await startNode(NODE_PROXY, [JSON.stringify({ backendPort, certDir: ctx.certDir, plain, mode, ciphers })], { role: 'server', execArgv, nofile })
  return {
    pid: peer.pid,
    port: peer.ready.port,
    control: peer,
    output: () => '',
    exited: peer.exited,
    isRunning: () => peer.child.exitCode === null && peer.child.signalCode === null,
    stop: () => peer.stop(),
  }
}

/** Waits until a request through the proxy returns the backend's answer; resolves with that probe. */
async function waitReady (proxy, ctx, plain) {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (!proxy.isRunning()) throw new Error(`exited before serving: ${proxy.output().trim().slice(-800) || '(no output)'}`)
    try {
      const r = await probe(proxy.port, ctx.ca, plain)
      if (r.status === 200 && r.body === ctx.backendBody) return r
      last = `HTTP ${r.status}: ${r.body.slice(0, 200)}`
    } catch (err) {
      last = err.message
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`not serving the backend after ${READY_TIMEOUT_MS} ms (${last}) ${proxy.output().trim().slice(-800)}`)
}

function parseWrk (text) {
  const m = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text)
  if (m === null) throw new Error(`cannot read wrk output: ${text.slice(0, 500)}`)
  const unit = { us: 1e-6, ms: 1e-3, s: 1, m: 60 }[m[3]]
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text)
  return {
    requests: Number(m[1]),
    seconds: Number(m[2]) * unit,
    socketErrors: errors === null ? { connect: 0, read: 0, write: 0, timeout: 0 } : { connect: Number(errors[1]), read: Number(errors[2]), write: Number(errors[3]), timeout: Number(errors[4]) },
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
  }
}

async function runWrk (url, seconds, close) {
  const argv = ['-t1', `-c${WRK_CONNECTIONS}`, `-d${seconds}s`, '--timeout', '10s']
  if (close) argv.push('-H', 'Connection: close')
  argv.push(url)
  const { code, out } = await runPinned('client', 'wrk', argv)
  if (code !== 0) throw new Error(`wrk exited with ${code}: ${out.slice(0, 500)}`)
  return parseWrk(out)
}

/**
 * The measured part of a sample against a serving proxy: a warm-up, then
 * the keep-alive and the one-request-per-connection wrk runs, each
 * bracketed by the proxy tree's CPU time (/proc). Fills `sample`'s values,
 * info and problems; info also has the backend connections each run opened.
 */
async function wrkRuns (def, proxy, url, ctx, { values, info, problems }) {
  await runWrk(url, def.warmSeconds, false)
  for (const [name, close] of [['keepAlive', false], ['perConnection', true]]) {
    const before = treeCpuMicros(proxy.pid)
    const backendBefore = await ctx.backend.request('counts')
    const w = await runWrk(url, def.runSeconds, close)
    const cpuUs = treeCpuMicros(proxy.pid) - before
    const backendAfter = await ctx.backend.request('counts')
    const backendRequests = backendAfter.requests - backendBefore.requests
    values[`${name}ReqPerCpuS`] = w.requests / (cpuUs / 1e6)
    values[`${name}ReqPerS`] = w.requests / w.seconds
    info[name] = { ...w, cpuUs, backendRequests, backendConnections: backendAfter.connections - backendBefore.connections }
    const errors = Object.values(w.socketErrors).reduce((a, b) => a + b, 0)
    if (w.requests === 0) problems.push(`${name}: no request completed`)
    if (w.non2xx > 0) problems.push(`${name}: ${w.non2xx} non-2xx answers`)
    if (errors > 0) problems.push(`${name}: wrk socket errors ${JSON.stringify(w.socketErrors)}`)
    // Every counted request must have gone through to the backend.
    if (backendRequests < w.requests) problems.push(`${name}: backend saw ${backendRequests} requests, wrk counted ${w.requests}`)
  }
  if (!proxy.isRunning()) problems.push(`the proxy exited during the run: ${proxy.output().slice(-500)}`)
}

/** One sample: a fresh terminator of `stack`, warm-up, keep-alive run, one-request-per-connection run. */
async function measureTerminator (def, stack, ctx) {
  const plain = stack === 'plain'
  const proxy = stack === 'rustls'
    ? await startRustlsTerminator(ctx, ctx.backend.ready.port)
    : await startNodeProxy(ctx, ctx.backend.ready.port, plain)
  const sample = { values: {}, info: {}, problems: [] }
  try {
    await waitReady(proxy, ctx, plain)
    await wrkRuns(def, proxy, `${plain ? 'http' : 'https'}://127.0.0.1:${proxy.port}/`, ctx, sample)
  } finally {
    await proxy.stop()
  }
  return sample
}

/**
 * Checks what scenario 5 needs, starts the shared backend, and tries the
 * rustls-node terminator once. Returns {available: false, reason} or the
 * context additions (backend) for the samples.
 */
async function prepareTerminator (ctx, log) {
  const wrk = ensureCommand('wrk', 'wrk', 'scenario 5 load generator', log)
  if (wrk.reason !== undefined) return { available: false, reason: wrk.reason }
  const backend = await startNode(BACKEND, [], { role: 'client' })
  ctx.backend = backend
  ctx.backendBody = await backend.request('body')
  ctx.ca = fs.readFileSync(path.join(ctx.certDir, 'ca.pem'))
  const name = ctx.terminatorBinName
  if (!fs.existsSync(ctx.terminatorBin)) {
    return { available: false, reason: `\`rustls-node serve\` is not available (${name} is missing)`, partial: true }
  }
  let proxy
  try {
    proxy = await startRustlsTerminator(ctx, backend.ready.port)
    await waitReady(proxy, ctx, false)
  } catch (err) {
    return { available: false, reason: `\`rustls-node serve\` is not available: ${name} did not serve in http mode: ${err.message}`, partial: true }
  } finally {
    await proxy?.stop()
  }
  return { available: true }
}

async function finishTerminator (ctx) {
  await ctx.backend?.stop()
  ctx.backend = undefined
}

module.exports = { terminatorCase, measureTerminator, prepareTerminator, finishTerminator, ensureCommand, freePort, parseWrk, startNodeProxy, startRustlsTerminator, waitReady, wrkRuns, BACKEND, WRK_CONNECTIONS }
