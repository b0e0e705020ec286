// Backend addresses named by DNS names, resolved here and handed to the
// native data plane as IP addresses (native code never resolves: no
// getaddrinfo on the loop thread). A name is looked up:
//   - at start and at every reload, all names of the configuration at once
//     (the configuration goes live once every lookup answered);
//   - after a failed connect to it (kind connect or timeout), at most once
//     per RETRY_MS and one lookup at a time: when the answer differs, new
//     connections go to the new address (BackendTarget.setAddress).
// A name that does not resolve leaves its backend without an address: every
// connection to it fails (502 in http mode, closed in tcp mode, each logged
// as `backend unavailable` with the lookup's code) until a lookup answers.
// Names resolve as Node's net.connect resolves them (dns.lookup, the first
// address, the system's order).
import dns from 'node:dns'
import net from 'node:net'

import type { Logger } from '../log'
import type { TerminatorConfig } from './config'

/** After a failed connect, a name is looked up again at most this often. */
const RETRY_MS = 1000

interface Entry {
  /** The address now; undefined while the name does not resolve. */
  ip?: string
  /** The last lookup's error code (ENOTFOUND, EAI_AGAIN), while unresolved. */
  error?: string
  lookedUpAt: number
  inflight?: Promise<void>
}

export class BackendNames {
  readonly #entries = new Map<string, Entry>()
  /** Told when a name's address changed (new connections go there). */
  readonly #watchers = new Map<string, Set<(ip: string) => void>>()
  readonly #logger: Logger
  readonly #lookup: (name: string) => Promise<string>

  constructor (logger: Logger, lookup: (name: string) => Promise<string> = async (name) => (await dns.promises.lookup(name)).address) {
    this.#logger = logger
    this.#lookup = lookup
  }

  /** Looks every backend name of `config` up anew; resolves when all answered (never rejects). */
  async resolve (config: TerminatorConfig): Promise<void> {
    const names = new Set<string>()
    for (const h of config.hosts) {
      const a = h.backend.address
      if (a.kind === 'tcp' && net.isIP(a.host) === 0) names.add(a.host)
    }
    await Promise.all([...names].map(async (name) => await this.#lookUp(name, true)))
  }

  /** The address `host` is reached at now: itself for an IP, undefined for a name that does not resolve. */
  address (host: string): string | undefined {
    return net.isIP(host) !== 0 ? host : this.#entries.get(host)?.ip
  }

  /** Why `host` has no address (the lookup's code), if it has none. */
  error (host: string): string | undefined {
    return this.address(host) === undefined ? this.#entries.get(host)?.error ?? 'ENOTFOUND' : undefined
  }

  /** Calls `fn` with each new address of `host` until the returned function is called. */
  watch (host: string, fn: (ip: string) => void): () => void {
    let set = this.#watchers.get(host)
    if (set === undefined) this.#watchers.set(host, set = new Set())
    set.add(fn)
    return () => {
      set.delete(fn)
      if (set.size === 0) this.#watchers.delete(host)
    }
  }

  /** A connect to `host` failed: its name is looked up again (bounded, see above). */
  failed (host: string): void {
    if (net.isIP(host) !== 0) return
    const e = this.#entries.get(host)
    if (e?.inflight !== undefined || (e !== undefined && Date.now() - e.lookedUpAt < RETRY_MS)) return
    void this.#lookUp(host, false)
  }

  async #lookUp (name: string, fresh: boolean): Promise<void> {
    let e = this.#entries.get(name)
    if (e === undefined) this.#entries.set(name, e = { lookedUpAt: 0 })
    // A lookup under way answers for this one too, unless this one must be fresh (a reload).
    if (e.inflight !== undefined && !fresh) return await e.inflight
    const entry = e
    const run = (async () => {
      entry.lookedUpAt = Date.now()
      const before = entry.ip
      try {
        const ip = await this.#lookup(name)
        entry.ip = ip
        entry.error = undefined
        if (ip !== before) {
          if (before !== undefined) this.#logger.info({ backend: name, address: ip, previous: before }, 'backend address changed')
          else if (!fresh) this.#logger.info({ backend: name, address: ip }, 'backend address resolves again')
          for (const fn of this.#watchers.get(name) ?? []) fn(ip)
        }
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'ENOTFOUND'
        // The address it had stays until a lookup gives another.
        if (entry.ip === undefined) {
          if (entry.error === undefined || fresh) this.#logger.warn({ backend: name, code }, 'backend address does not resolve; its connections fail until it does')
          entry.error = code
        }
      }
    })()
    entry.inflight = run
    try {
      await run
    } finally {
      if (entry.inflight === run) entry.inflight = undefined
    }
  }
}
