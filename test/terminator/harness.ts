// Runs the terminator the way users do: `node bin/rustls-node.js ...` as a
// child process, with a generated configuration file, its pino JSON log
// lines collected from stdout. Every child is killed when the test process
// exits; every temporary folder is removed.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import YAML from 'yaml'

import { repoRoot } from '../helpers/certs'
import { run, type RunResult, waitFor } from '../helpers/peers'

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

export const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

export const BIN = path.join(repoRoot(), 'bin', 'rustls-node.js')

const children = new Set<ChildProcess>()
const dirs: string[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

/** A fresh temporary folder, removed when the test process exits. */
export function tempDir (): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-terminator-'))
  dirs.push(dir)
  return dir
}

/** Writes a configuration as YAML (or JSON for a .json name) and returns its path. */
export function writeConfig (dir: string, config: unknown, name = 'terminator.yaml'): string {
  const file = path.join(dir, name)
  fs.writeFileSync(file, name.endsWith('.json') ? JSON.stringify(config, null, 2) : YAML.stringify(config))
  return file
}

/** `node bin/rustls-node.js <args>` to completion. */
export function runCli (args: string[], opts: { env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], { env: opts.env, timeoutMs: opts.timeoutMs ?? 15_000 })
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export class TerminatorProcess {
  readonly proc: ChildProcess
  readonly exited: Promise<Exit>
  #stdout = ''
  #stderr = ''

  /** `wrapper`: a command the terminator runs under (valgrind and its options), its arguments before node's. */
  constructor (args: string[], env?: NodeJS.ProcessEnv, wrapper: string[] = []) {
    const argv = [...wrapper, process.execPath, BIN, ...args]
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env })
    children.add(this.proc)
    this.proc.stdout?.setEncoding('utf8').on('data', (s: string) => { this.#stdout += s })
    this.proc.stderr?.setEncoding('utf8').on('data', (s: string) => { this.#stderr += s })
    this.exited = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        children.delete(this.proc)
        resolve({ code, signal })
      })
    })
  }

  get pid (): number {
    return this.proc.pid as number
  }

  /** Every complete JSON log line so far. */
  logs (): LogLine[] {
    const out: LogLine[] = []
    for (const line of this.#stdout.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        out.push(JSON.parse(line) as LogLine)
      } catch {
        // A line still being written.
      }
    }
    return out
  }

  stdout (): string { return this.#stdout }
  stderr (): string { return this.#stderr }

  /** Resolves with the first log line matching (already logged or to come). */
  async waitForLog (match: (l: LogLine) => boolean, label: string, timeoutMs = 10_000): Promise<LogLine> {
    let found: LogLine | undefined
    await waitFor(() => {
      found = this.logs().find(match)
      if (found === undefined && this.proc.exitCode !== null) {
        throw new Error(`terminator exited (${this.proc.exitCode}) before logging ${label}\n${this.#stdout}\n${this.#stderr}`)
      }
      return found !== undefined
    }, timeoutMs, label)
    return found as LogLine
  }

  /** Ports of the 'listening' lines, in order. */
  ports (): number[] {
    return this.logs().filter((l) => l.msg === 'listening').map((l) => l.port as number)
  }

  get port (): number {
    const p = this.ports()[0]
    if (p === undefined) throw new Error('terminator is not listening')
    return p
  }

  signal (sig: NodeJS.Signals): void {
    this.proc.kill(sig)
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with the exit. */
  async stop (timeoutMs = 20_000): Promise<Exit> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv
  /** 'listening' lines to wait for (listen addresses × workers). Default 1. */
  listening?: number
  extraArgs?: string[]
  /** Runs the terminator under this command (scripts/memcheck.sh: valgrind). */
  wrapper?: string[]
  /** How long to wait for the listening lines, ms. Default 15 s. */
  startTimeoutMs?: number
}

/** Starts `serve -c <file>` and waits until it listens. */
export async function startTerminator (configFile: string, opts: StartOptions = {}): Promise<TerminatorProcess> {
  const t = new TerminatorProcess(['serve', '-c', configFile, ...(opts.extraArgs ?? [])], opts.env, opts.wrapper)
  const want = opts.listening ?? 1
  try {
    await waitFor(() => {
      if (t.proc.exitCode !== null) throw new Error(`exited with ${t.proc.exitCode}`)
      return t.ports().length >= want
    }, opts.startTimeoutMs ?? 15_000, `${want} listening line(s)`)
  } catch (err) {
    await t.stop()
    throw new Error(`terminator did not start: ${(err as Error).message}\nstdout:\n${t.stdout()}\nstderr:\n${t.stderr()}`)
  }
  return t
}

/** Writes `config` to a new temporary folder and starts the terminator on it. */
export async function serveConfig (config: unknown, opts: StartOptions = {}): Promise<{ t: TerminatorProcess, dir: string, file: string }> {
  const dir = tempDir()
  const file = writeConfig(dir, config)
  return { t: await startTerminator(file, opts), dir, file }
}

/**
 * SIGTERM, then asserts a clean stop: exit 0 and, in the terminator's (or
 * each cluster worker's) `stopped` line, no native handle left alive.
 */
export async function stopClean (t: TerminatorProcess): Promise<void> {
  const exit = await t.stop()
  assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n${t.stderr()}`)
  const stopped = t.logs().filter((l) => l.msg === 'stopped' && l.liveHandles !== undefined)
  assert.ok(stopped.length > 0, 'a stopped line')
  for (const line of stopped) {
    assert.deepEqual(line.liveHandles, { certifiedKeys: 0, serverConfigs: 0, clientConfigs: 0, sessionCaches: 0, ticketers: 0, hostRouters: 0, connections: 0, listeners: 0, backendTargets: 0 })
  }
}
