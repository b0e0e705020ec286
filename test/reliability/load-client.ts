// The test side of load-server.ts: starts it, asks it for its figures, and
// stops it. Shared by leaks.test.ts and slow-clients.test.ts.
import { type ChildProcess, fork } from 'node:child_process'
import path from 'node:path'

import type { LoadServerOptions, Reply, Request, Stats } from './load-server'

export type { Stats }

export class LoadServer {
  readonly port: number
  readonly #child: ChildProcess
  #nextId = 1
  readonly #waiting = new Map<number, (s: Stats) => void>()
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  private constructor (child: ChildProcess, port: number) {
    this.#child = child
    this.port = port
    child.on('message', (m: Reply) => {
      if ('id' in m) {
        this.#waiting.get(m.id)?.(m.stats)
        this.#waiting.delete(m.id)
      }
    })
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  }

  static async start (options: LoadServerOptions = {}): Promise<LoadServer> {
    const child = fork(path.join(__dirname, 'load-server.js'), [JSON.stringify(options)], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: Reply) => { if ('ready' in m) resolve(m.port) })
      child.once('exit', (code) => reject(new Error(`load server exited (${code}) before listening`)))
    })
    return new LoadServer(child, port)
  }

  get pid (): number {
    return this.#child.pid as number
  }

  #ask (cmd: Request['cmd']): Promise<Stats> {
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load server: no answer to ${cmd}`)), 30_000)
      this.#waiting.set(id, (s) => { clearTimeout(timer); resolve(s) })
      this.#child.send({ cmd, id } satisfies Request)
    })
  }

  stats (): Promise<Stats> { return this.#ask('stats') }
  /** Figures after full garbage collections. */
  collected (): Promise<Stats> { return this.#ask('gc') }

  /** Closes the server and every connection; resolves with the final figures once the process exited. */
  async close (): Promise<Stats> {
    const s = await this.#ask('close')
    const exit = await this.exited
    if (exit.code !== 0) throw new Error(`load server exited with ${JSON.stringify(exit)}`)
    return s
  }

  kill (): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL')
  }
}
