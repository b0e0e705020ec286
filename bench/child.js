'use strict'
// Benchmark child processes: each one pinned to one core with `taskset`
// (when the machine allows it) and driven over Node's IPC channel with a
// small request/response protocol. Server and load generator must run in
// separate processes on separate cores, or the server's CPU time would be
// shared with the client's (issue 5).
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')

const live = new Set()
process.on('exit', () => {
  // 'exit' handlers are synchronous; SIGKILL needs no waiting.
  for (const child of live) child.kill('SIGKILL')
})

/** Kills `child` if the harness exits first (Ctrl-C, a crash). */
function track (child) {
  live.add(child)
  child.once('exit', () => live.delete(child))
  return child
}

let pinning
/** Whether `taskset -c <cpu>` works here (a cpuset may forbid a core). */
function canPin () {
  if (pinning === undefined) {
    const cores = allowedCores()
    pinning = cores.length >= 2 &&
      spawnSync('taskset', ['-c', String(cores[0]), 'true']).status === 0 &&
      spawnSync('taskset', ['-c', String(cores[1]), 'true']).status === 0
  }
  return pinning
}

/** Cores this process may run on, from /proc (Linux), else 0..n-1. */
function allowedCores () {
  try {
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]
    const out = []
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number)
      for (let c = a; c <= (b ?? a); c++) out.push(c)
    }
    return out
  } catch {
    return Array.from({ length: require('node:os').availableParallelism() }, (_, i) => i)
  }
}

/**
 * The core for a role: the server gets the first allowed core, the load
 * generator (and the HTTP backend) the second.
 */
function coreFor (role) {
  const cores = allowedCores()
  return role === 'server' ? cores[0] : cores[Math.min(1, cores.length - 1)]
}

/**
 * `command args` prefixed with `taskset -c <core>` when pinning works, and
 * with `prlimit --nofile` when `nofile` descriptors are asked for (a
 * terminator holding 10,000 client and 10,000 backend connections needs
 * more than a default limit; raising the hard limit needs root).
 */
function pinned (role, command, args, { nofile } = {}) {
  let cmd = canPin() ? { command: 'taskset', args: ['-c', String(coreFor(role)), command, ...args] } : { command, args }
  if (nofile !== undefined) cmd = { command: 'prlimit', args: [`--nofile=${nofile}:${nofile}`, '--', cmd.command, ...cmd.args] }
  return cmd
}

/**
 * Runs a tool (openssl speed, wrk, h2load) pinned to `role`'s core and
 * resolves with its exit code and its output, stdout and stderr together.
 */
function runPinned (role, command, args) {
  const { command: cmd, args: argv } = pinned(role, command, args)
  return new Promise((resolve, reject) => {
    const child = track(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }))
    let out = ''
    child.stdout.on('data', (b) => { out += b })
    child.stderr.on('data', (b) => { out += b })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, out }))
  })
}

/**
 * Starts `node [execArgv] script [args]` pinned to `role`'s core, with an
 * IPC channel. Resolves once the child sent its {event: 'ready'} message.
 */
async function startNode (script, args, { role, execArgv = [], readyTimeoutMs = 15000, nofile } = {}) {
  const { command, args: argv } = pinned(role, process.execPath, [...execArgv, script, ...args], { nofile })
  const child = track(spawn(command, argv, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] }))
  const stderr = []
  child.stderr.on('data', (b) => {
    stderr.push(b)
    process.stderr.write(b)
  })
  const peer = new Peer(child, stderr)
  const ready = await peer.event('ready', readyTimeoutMs)
  peer.ready = ready
  return peer
}

/** The orchestrator's side of a child's control channel. */
class Peer {
  constructor (child, stderr) {
    this.child = child
    this.pid = child.pid
    this.ready = null
    this.#stderr = stderr
    this.#nextId = 1
    this.#pending = new Map()
    this.#waiters = []
    this.#events = []
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        const err = new Error(`${this.describe()} exited (${signal ?? code})${this.#stderrTail()}`)
        for (const { reject } of this.#pending.values()) reject(err)
        this.#pending.clear()
        for (const w of this.#waiters) w.reject(err)
        this.#waiters = []
        resolve({ code, signal })
      })
    })
    child.on('message', (msg) => this.#onMessage(msg))
    child.on('error', (err) => {
      for (const { reject } of this.#pending.values()) reject(err)
      this.#pending.clear()
    })
  }

  #stderr
  #nextId
  #pending
  #waiters
  #events

  describe () {
    return `child ${this.pid}`
  }

  #stderrTail () {
    const text = Buffer.concat(this.#stderr).toString('utf8').trim()
    return text === '' ? '' : `: ${text.slice(-800)}`
  }

  #onMessage (msg) {
    if (msg.id !== undefined) {
      const p = this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id)
      clearTimeout(p.timer)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new Error(`${this.describe()}: ${msg.error}`))
      return
    }
    const i = this.#waiters.findIndex((w) => w.event === msg.event)
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1)
      clearTimeout(w.timer)
      w.resolve(msg)
    } else {
      this.#events.push(msg)
    }
  }

  /** Waits for an unsolicited {event} message. */
  event (name, timeoutMs) {
    const i = this.#events.findIndex((e) => e.event === name)
    if (i >= 0) return Promise.resolve(this.#events.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const w = { event: name, resolve, reject, timer: null }
      w.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1)
        reject(new Error(`${this.describe()}: no '${name}' within ${timeoutMs} ms${this.#stderrTail()}`))
      }, timeoutMs)
      this.#waiters.push(w)
    })
  }

  /** Sends {cmd, ...params}; resolves with the child's result. */
  request (cmd, params = {}, timeoutMs = 120000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null || !this.child.connected) {
      return Promise.reject(new Error(`${this.describe()} is not running${this.#stderrTail()}`))
    }
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.describe()}: '${cmd}' took more than ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, { resolve, reject, timer })
      this.child.send({ id, cmd, ...params })
    })
  }

  /** Asks the child to exit, then kills it if it does not within 5 s. */
  async stop () {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    if (this.child.connected) this.child.disconnect()
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000)
    await this.exited
    clearTimeout(timer)
  }
}

/**
 * Starts a server the harness does not drive over its control protocol
 * (`rustls-node serve`, hitch, HAProxy), pinned to `role`'s core. Keeps the
 * tail of its output for error messages. With `ipc`, the child also gets
 * Node's IPC channel, as a Peer (`control`), for bench/gc-hook.js. `env`:
 * variables added to the harness' environment (a secret the server reads
 * from one).
 */
function startProcess (role, command, args, { nofile, ipc = false, cwd, env } = {}) {
  const { command: cmd, args: argv } = pinned(role, command, args, { nofile })
  const child = track(spawn(cmd, argv, { cwd, env: env === undefined ? undefined : { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])] }))
  let output = ''
  const keep = (b) => { output = (output + b.toString('utf8')).slice(-4000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)))
  const spawnError = new Promise((resolve) => child.once('error', (err) => { output += `\n${err.message}`; resolve() }))
  return {
    pid: child.pid,
    control: ipc ? new Peer(child, []) : null,
    output: () => output,
    exited: Promise.race([exited, spawnError]),
    isRunning: () => child.pid !== undefined && child.exitCode === null && child.signalCode === null,
    /** SIGTERM (the servers measured here drain or exit on it), SIGKILL after 5 s. */
    async stop () {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
      if (child.connected) child.disconnect()
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/**
 * The child's side: answers {id, cmd} messages with handlers[cmd](msg),
 * and exits when the orchestrator disconnects.
 */
function serveControl (handlers, onDisconnect = () => process.exit(0)) {
  process.on('message', async (msg) => {
    const handler = handlers[msg.cmd]
    try {
      if (handler === undefined) throw new Error(`unknown command ${msg.cmd}`)
      const result = await handler(msg)
      process.send({ id: msg.id, ok: true, result: result ?? null })
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: err && err.stack ? err.stack : String(err) })
    }
  })
  process.on('disconnect', onDisconnect)
}

/** Emits an unsolicited event to the orchestrator. */
function emit (event, fields = {}) {
  process.send({ event, ...fields })
}

let clockTicks
function ticksPerSecond () {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
    clockTicks = Number(r.stdout.trim()) || 100
  }
  return clockTicks
}

/** pid → {ppid, ticks (utime + stime), childTicks (cutime + cstime)} for every process. */
function processTable () {
  const table = new Map()
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let text
    try {
      text = fs.readFileSync(`/proc/${name}/stat`, 'utf8')
    } catch {
      continue
    }
    // The command name (field 2) may contain spaces; fields restart after ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
    table.set(Number(name), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), childTicks: Number(rest[13]) + Number(rest[14]) })
  }
  return table
}

/** A process and all its descendants that are alive in `table`. */
function treePids (table, rootPid) {
  const queue = [rootPid]
  const seen = new Set()
  while (queue.length > 0) {
    const pid = queue.pop()
    if (seen.has(pid) || !table.has(pid)) continue
    seen.add(pid)
    for (const [child, c] of table) if (c.ppid === pid) queue.push(child)
  }
  return [...seen]
}

function treeTicks (table, rootPid) {
  return treePids(table, rootPid).reduce((ticks, pid) => ticks + table.get(pid).ticks, 0)
}

/**
 * Run time (ns) of every live thread of `pid` from
 * /proc/<pid>/task/<tid>/schedstat (its first field), or null when the
 * kernel does not provide it.
 */
function taskNanos (pid) {
  let tids
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return null
  }
  let ns = 0
  for (const tid of tids) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
    } catch (err) {
      if (err.code === 'ENOENT' && fs.existsSync(`/proc/${pid}/task`)) continue // the thread exited
      return null
    }
  }
  return ns
}

/**
 * CPU time (µs, user + system) of a process and all its descendants, from
 * /proc: used for processes the harness does not control (the terminators)
 * and, for symmetry, for the proxies they are compared with. Each process
 * counts the run time of its threads from schedstat (ns), which is the
 * same quantity as utime + stime in /proc/<pid>/stat without its 10 ms
 * resolution (a bulk phase costs a few hundred ms); a process without
 * schedstat counts its stat ticks.
 */
function treeCpuMicros (rootPid) {
  const table = processTable()
  let us = 0
  for (const pid of treePids(table, rootPid)) {
    const ns = taskNanos(pid)
    us += ns !== null ? ns / 1000 : table.get(pid).ticks * 1e6 / ticksPerSecond()
  }
  return us
}

/**
 * Resident memory (bytes) of a process and all its descendants, from
 * /proc/<pid>/status (VmRSS): the idle-memory figure of servers the
 * harness does not control. Pages shared between the processes of a tree
 * count once per process; the figures are growths, which that does not bias.
 */
function treeRssBytes (rootPid) {
  let kib = 0
  for (const pid of treePids(processTable(), rootPid)) {
    try {
      kib += Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    } catch {
      // The process exited meanwhile.
    }
  }
  return kib * 1024
}

/**
 * Two full collections when the process runs with --expose-gc, so that
 * handshake garbage does not count as per-connection memory. Returns
 * whether gc() was available.
 */
function fullGc () {
  if (typeof global.gc !== 'function') return false
  global.gc()
  global.gc()
  return true
}

/**
 * A snapshot for measuring noise: busy CPU time of the whole machine
 * (/proc/stat), steal time, and the time used by this harness (itself,
 * its reaped children, its live process trees).
 */
function cpuSnapshot () {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const table = processTable()
  const self = table.get(process.pid)
  let own = self === undefined ? 0 : self.ticks + self.childTicks
  for (const [pid, c] of table) if (c.ppid === process.pid) own += treeTicks(table, pid)
  // user nice system idle iowait irq softirq steal
  return { time: Date.now(), busy: f[0] + f[1] + f[2] + f[5] + f[6], steal: f[7] ?? 0, own }
}

/**
 * Share of the machine's CPU (0..1) that other processes used, and the
 * share the hypervisor stole, between two snapshots.
 */
function foreignLoad (a, b) {
  const capacity = (b.time - a.time) / 1000 * ticksPerSecond() * require('node:os').availableParallelism()
  if (capacity <= 0) return { other: 0, steal: 0 }
  return {
    other: Math.max(0, (b.busy - a.busy) - (b.own - a.own)) / capacity,
    steal: (b.steal - a.steal) / capacity,
  }
}

module.exports = { allowedCores, canPin, coreFor, cpuSnapshot, emit, foreignLoad, fullGc, pinned, runPinned, serveControl, startNode, startProcess, track, treeCpuMicros, treeRssBytes, Peer }
