// Real TLS peers for tests: openssl s_client / s_server and curl, run as child
// processes on loopback. Every process is killed on timeout and awaited until
// 'close', and anything still running when the test process exits is killed,
// so no test leaves a peer behind.
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'

export interface RunResult {
  /** Exit code, null when the process was killed by a signal. */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** True when the helper killed the process because timeoutMs elapsed. */
  timedOut: boolean
}

export interface RunOptions {
  /** Written to stdin, which is then ended. Default: nothing. */
  input?: string | Buffer
  /**
   * Keep stdin open this long after writing input. s_client quits as soon as
   * it reads EOF on stdin (after the handshake), so a test that needs the
   * server's answer or TLS 1.3 session tickets holds stdin open (or passes
   * -ign_eof and lets the server close). Default 0.
   */
  holdOpenMs?: number
  /** Kill the process after this long. Default 10 000 ms. */
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  cwd?: string
}

const DEFAULT_TIMEOUT_MS = 10_000
/** Grace between SIGTERM and SIGKILL when stopping a process. */
const KILL_GRACE_MS = 2_000

const live = new Set<ChildProcess>()
let exitHookInstalled = false

function track (child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    // 'exit' handlers must be synchronous: SIGKILL cannot be ignored, so no wait is needed.
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL')
    })
  }
  live.add(child)
  child.once('close', () => live.delete(child))
}

function exited (child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

/** Sends SIGTERM, escalates to SIGKILL after a grace period, resolves on 'close'. */
function stop (child: ChildProcess, closed: Promise<void>): Promise<void> {
  if (!exited(child)) child.kill('SIGTERM')
  const escalate = setTimeout(() => {
    if (!exited(child)) child.kill('SIGKILL')
  }, KILL_GRACE_MS)
  return closed.finally(() => clearTimeout(escalate))
}

function spawnTracked (command: string, args: string[], opts: { env?: NodeJS.ProcessEnv, cwd?: string }): {
  child: ChildProcess
  closed: Promise<void>
  stdout: Buffer[]
  stderr: Buffer[]
  spawned: Promise<void>
} {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env, cwd: opts.cwd })
  const stdout: Buffer[] = []
  const stderr: Buffer[] = []
  child.stdout?.on('data', (b: Buffer) => stdout.push(b))
  child.stderr?.on('data', (b: Buffer) => stderr.push(b))
  // EPIPE when the peer exits before reading its input is expected.
  child.stdin?.on('error', () => {})
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve())
    child.once('error', (err) => reject(new Error(`${command}: ${err.message}`)))
  })
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  track(child)
  return { child, closed, stdout, stderr, spawned }
}

/** Runs a program to completion (or until timeoutMs) and collects its output. */
export async function run (command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const p = spawnTracked(command, args, opts)
  await p.spawned
  const stdin = p.child.stdin!
  if (opts.input !== undefined && opts.input.length > 0) stdin.write(opts.input)
  let holdTimer: NodeJS.Timeout | undefined
  if (opts.holdOpenMs !== undefined && opts.holdOpenMs > 0) {
    holdTimer = setTimeout(() => stdin.end(), opts.holdOpenMs)
  } else {
    stdin.end()
  }
  let timedOut = false
  const killTimer = setTimeout(() => {
    timedOut = true
    void stop(p.child, p.closed)
  }, timeoutMs)
  try {
    await p.closed
  } finally {
    clearTimeout(killTimer)
    if (holdTimer !== undefined) clearTimeout(holdTimer)
  }
  return {
    code: p.child.exitCode,
    signal: p.child.signalCode,
    stdout: Buffer.concat(p.stdout).toString('utf8'),
    stderr: Buffer.concat(p.stderr).toString('utf8'),
    timedOut,
  }
}

/** `openssl <args>` (verify, x509, ocsp, ...). */
export function openssl (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('openssl', args, opts)
}

/**
 * `openssl s_client <args>`; the caller passes `-connect 127.0.0.1:PORT` and
 * the rest. stdin gets `input` (default empty) and is then ended, which makes
 * s_client close the connection once the handshake is done.
 */
export function sClient (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run('openssl', ['s_client', ...args], { ...opts, input: opts.input ?? '' })
}

export interface SServer {
  readonly port: number
  readonly proc: ChildProcess
  /** stdout and stderr so far. */
  output (): string
  stdout (): string
  stderr (): string
  /** Writes to s_server's stdin (sent to the connected client unless -www/-rev). */
  write (data: string | Buffer): void
  /** Kills s_server and waits for it to exit. Idempotent. */
  close (): Promise<void>
}

export interface SServerOptions {
  /** Time allowed until s_server listens. Default 10 000 ms. */
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/**
 * Starts `openssl s_server -accept 127.0.0.1:0 <args>` and resolves once it
 * listens. The port is read from its `ACCEPT 127.0.0.1:PORT` line (printed and
 * flushed after listen()), which avoids both a free-port race and probing
 * connections that s_server would count as clients. stdin stays open: without
 * -quiet, s_server shuts down when it reads EOF there during a connection.
 */
export async function sServer (args: string[], opts: SServerOptions = {}): Promise<SServer> {
  if (args.includes('-accept') || args.includes('-port')) {
    throw new Error('sServer: the helper chooses the address; do not pass -accept/-port')
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const p = spawnTracked('openssl', ['s_server', '-accept', '127.0.0.1:0', ...args], opts)
  const text = (chunks: Buffer[]): string => Buffer.concat(chunks).toString('utf8')
  const output = (): string => text(p.stdout) + text(p.stderr)
  let closing: Promise<void> | undefined
  const close = (): Promise<void> => {
    if (closing === undefined) {
      p.child.stdin?.destroy()
      closing = stop(p.child, p.closed)
    }
    return closing
  }

  try {
    await p.spawned
    let port = 0
    await waitFor(() => {
      const m = /^ACCEPT (?:\S+):(\d+)\r?$/m.exec(text(p.stdout))
      if (m !== null) port = Number(m[1])
      if (port === 0 && exited(p.child)) throw new Error('exited before listening')
      return port !== 0
    }, timeoutMs, 's_server to listen')
    return {
      port,
      proc: p.child,
      output,
      stdout: () => text(p.stdout),
      stderr: () => text(p.stderr),
      write: (data) => { p.child.stdin?.write(data) },
      close,
    }
  } catch (err) {
    await close()
    throw new Error(`sServer ${args.join(' ')}: ${(err as Error).message}\n${output()}`)
  }
}

export interface CurlOptions {
  /** Passed as --max-time; the process is killed 2 s after it. Default 10 000 ms. */
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
}

/**
 * `curl -q -sS --max-time T --noproxy * <args>`: -q ignores ~/.curlrc and
 * --noproxy keeps proxy environment variables away from loopback tests.
 */
export function curl (args: string[], opts: CurlOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const fixed = ['-q', '-sS', '--max-time', String(timeoutMs / 1000), '--noproxy', '*']
  return run('curl', [...fixed, ...args], { timeoutMs: timeoutMs + 2_000, env: opts.env })
}

/**
 * A port that was free a moment ago on 127.0.0.1. Prefer listening on port 0
 * directly; this is for peers that must be told a port in advance.
 */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close((err) => err ? reject(err) : resolve(port))
    })
  })
}

/** Polls predicate every 20 ms until it is true; rejects after timeoutMs naming label. */
export async function waitFor (
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  label: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await predicate()) return
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`)
    await delay(20)
  }
}

/** A server program run for a test (a responder, a CA): its output so far and a way to stop it. */
export interface Daemon {
  /** stdout and stderr so far, in arrival order. */
  log: () => string
  /** SIGTERM (SIGKILL after a grace period); resolves once it exited. */
  stop: () => Promise<void>
}

/**
 * Starts `command` and resolves once `ready(log)` holds; rejects with its
 * output when it exits first or is not ready within timeoutMs (it is then
 * killed). Tracked like the peers: killed if the test process exits.
 */
export async function startDaemon (command: string, args: string[], opts: { env?: NodeJS.ProcessEnv, ready: (log: string) => boolean, timeoutMs: number }): Promise<Daemon> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env })
  track(child)
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()))
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (t: string) => { output += t })
  child.stderr?.setEncoding('utf8').on('data', (t: string) => { output += t })
  let failure: Error | undefined
  child.once('error', (err) => { failure = new Error(`${command}: ${err.message}`) })
  try {
    await waitFor(() => {
      if (failure !== undefined) throw failure
      if (exited(child)) throw new Error(`${command} exited: ${output}`)
      return opts.ready(output)
    }, opts.timeoutMs, `${command} to be ready`)
  } catch (err) {
    // A program that never started has no process to wait for.
    if (failure === undefined) {
      child.kill('SIGKILL')
      await closed
    }
    throw err
  }
  return { log: () => output, stop: () => stop(child, closed) }
}
