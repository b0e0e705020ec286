// Configuration generations. Each start or successful reload (SIGHUP)
// builds one: the library's host configs (server.reload swaps them for new
// connections only, SPEC §3) plus one ClientContext and native backend
// target per backend. A connection stays with the generation it was accepted
// under, so a reload never changes what a live connection talks to; a
// retired generation is released when its last connection closes.
import { ClientContext } from '../client-context'
import type { Logger } from '../log'
import type { HostContext } from '../hosts'
import { createServer, type Server, type ServerOptions } from '../server'
import { silentLogger } from '../log'
import { HostBackend } from './backend'
import { type ConfigProblem, ConfigProblems, problemFromError } from './config'
import type { LoadedConfig } from './files'

/** Library option names that the configuration file spells differently. */
function renameKey (keyPath: string): string {
  return keyPath.replace(/(^|\.)ALPNProtocols\b/g, '$1alpn')
}

/** Appends the file a content problem came from (`...key: no PEM private key found (/etc/x.key)`). */
function withFile (problem: ConfigProblem, loaded: LoadedConfig): ConfigProblem {
  const file = loaded.files.get(problem.keyPath)
  return file === undefined || problem.message.includes(file) ? problem : { ...problem, message: `${problem.message} (${file})` }
}

/**
 * Builds every host's backend (a ClientContext when the backend speaks
 * TLS). Throws ConfigProblems naming every backend that fails; nothing
 * stays allocated then.
 */
export function createBackends (loaded: LoadedConfig, logger: Logger): HostBackend[] {
  const problems: ConfigProblem[] = []
  const backends: HostBackend[] = []
  loaded.backends.forEach((b, i) => {
    let context: ClientContext | undefined
    if (b.tls !== undefined) {
      try {
        context = new ClientContext({ ...b.tls, logger })
      } catch (err) {
        const at = `hosts[${i}].backend.tls`
        problems.push(withFile(problemFromError(err, (k) => renameKey(k === '' ? at : `${at}.${k}`)), loaded))
        return
      }
    }
    backends.push(new HostBackend(i, loaded.config.hosts[i].serverName, b.config, context))
  })
  if (problems.length > 0) {
    for (const b of backends) b.destroy()
    throw new ConfigProblems(problems)
  }
  return backends
}

/**
 * Builds each host on its own through the library, so that one run reports
 * a problem for every host instead of the first one only (the library
 * stops at the first error). Key paths are renamed to the file's.
 */
export function diagnoseHosts (loaded: LoadedConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  const seen = new Set<string>()
  const add = (p: ConfigProblem): void => {
    const key = `${p.keyPath}\0${p.message}`
    if (seen.has(key)) return
    seen.add(key)
    problems.push(withFile(p, loaded))
  }
  const hosts = loaded.serverOptions.hosts ?? []
  hosts.forEach((host, i) => {
    try {
      createServer({ ...loaded.serverOptions, hosts: [host], logger: silentLogger }).close()
    } catch (err) {
      add(problemFromError(err, (k) => renameKey(k.replace(/^hosts\[0\]/, `hosts[${i}]`))))
    }
  })
  if (problems.length === 0) {
    try {
      createServer({ ...loaded.serverOptions, logger: silentLogger }).close()
    } catch (err) {
      add(problemFromError(err, renameKey))
    }
  }
  return problems
}

/**
 * Builds (or, given `server`, reloads) the library server from `loaded`.
 * On failure the server keeps its previous hosts and ConfigProblems lists
 * every problem found.
 */
export function applyServerOptions (loaded: LoadedConfig, options: ServerOptions, server?: Server): Server {
  try {
    if (server === undefined) return createServer(options)
    server.reload(options)
    return server
  } catch (err) {
    const problems = diagnoseHosts(loaded)
    throw new ConfigProblems(problems.length > 0 ? problems : [withFile(problemFromError(err, renameKey), loaded)])
  }
}

/**
 * Builds the backends and builds (or reloads) the library server: the
 * whole of a configuration's validation that needs the library. Problems
 * of both are reported together; on failure nothing new stays allocated
 * and `server` keeps its previous hosts.
 */
export function buildAll (loaded: LoadedConfig, options: ServerOptions, server?: Server): { server: Server, backends: HostBackend[] } {
  let backends: HostBackend[]
  try {
    backends = createBackends(loaded, options.logger ?? silentLogger)
  } catch (err) {
    if (!(err instanceof ConfigProblems)) throw err
    throw new ConfigProblems([...diagnoseHosts(loaded), ...err.problems])
  }
  try {
    return { server: applyServerOptions(loaded, options, server), backends }
  } catch (err) {
    for (const b of backends) b.destroy()
    throw err
  }
}

export class Generation {
  readonly id: number
  readonly loaded: LoadedConfig
  /** The library's host contexts of this generation, by host index. */
  readonly hosts: readonly HostContext[]
  readonly backends: readonly HostBackend[]
  #connections = 0
  #retired = false
  #released = false

  constructor (id: number, loaded: LoadedConfig, hosts: readonly HostContext[], backends: readonly HostBackend[]) {
    this.id = id
    this.loaded = loaded
    this.hosts = [...hosts]
    this.backends = backends
  }

  get connections (): number {
    return this.#connections
  }

  acquire (): void {
    this.#connections++
  }

  release (): void {
    this.#connections--
    this.#maybeRelease()
  }

  /** No new connections (native code closes their idle pooled backend connections): released with its last connection. */
  retire (): void {
    this.#retired = true
    this.#maybeRelease()
  }

  /** Releases native targets and ClientContexts now (shutdown). Idempotent. */
  destroy (): void {
    this.#retired = true
    this.#released = true
    for (const b of this.backends) b.destroy()
  }

  #maybeRelease (): void {
    if (this.#retired && this.#connections === 0 && !this.#released) this.destroy()
  }
}
