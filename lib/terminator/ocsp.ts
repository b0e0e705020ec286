// `ocsp: auto`: the terminator fetches each such certificate's OCSP
// response from the responder its AIA names, verifies it against the
// issuer (lib/ocsp.ts) and staples it. It refreshes at the middle of the
// response's validity; when the responder is down it keeps stapling the
// last good response until that response's nextUpdate, then staples
// nothing (an expired staple would make clients fail), retrying with
// backoff all along. Each change goes live through the library's reload.
import crypto from 'node:crypto'

import type { Logger as PinoLogger } from 'pino'

import { fetchOcspStaple, type OcspResult } from '../ocsp'
import type { TerminatorConfig } from './config'
import type { Metrics } from './metrics'

interface Entry {
  /** Absolute path of the certificate file. */
  file: string
  /** PEM chain (leaf + issuer) as last read. */
  chain: string
  /** Content hash: a changed file (SIGHUP) starts over. */
  hash: string
  current?: OcspResult
  failures: number
  refreshTimer?: NodeJS.Timeout
  expiryTimer?: NodeJS.Timeout
}

/** Retry delay after `failures` failed fetches: 5 s doubling to 1 h. */
function backoff (failures: number): number {
  return Math.min(3_600_000, 5_000 * 2 ** Math.max(0, failures - 1))
}

export interface OcspManagerOptions {
  logger: PinoLogger
  metrics: Metrics
  /** Rebuilds the hosts (the staple changed). */
  refresh: (reason: string) => boolean
  /** Reads a certificate file (the chain to staple for). */
  readChain: (file: string) => string
}

export class OcspManager {
  readonly #options: OcspManagerOptions
  readonly #entries = new Map<string, Entry>()
  #stopped = false

  constructor (options: OcspManagerOptions) {
    this.#options = options
  }

  /** The DER response to staple for a certificate file now, if there is a valid one. */
  staple (file: string): Buffer | undefined {
    const current = this.#entries.get(file)?.current
    return current !== undefined && current.nextUpdate.getTime() > Date.now() ? current.der : undefined
  }

  /** Follows the configuration's `ocsp: auto` certificates (start, SIGHUP). */
  sync (config: TerminatorConfig): void {
    const wanted = new Set<string>()
    for (const host of config.hosts) {
      for (const c of host.certificates) if (c.ocspAuto === true) wanted.add(c.cert)
    }
    for (const [file, entry] of this.#entries) {
      if (!wanted.has(file)) {
        this.#clear(entry)
        this.#entries.delete(file)
      }
    }
    for (const file of wanted) {
      let chain: string
      try {
        chain = this.#options.readChain(file)
      } catch {
        continue // files.ts reports unreadable files
      }
      const hash = crypto.createHash('sha256').update(chain).digest('hex')
      const known = this.#entries.get(file)
      if (known?.hash === hash) continue
      if (known !== undefined) this.#clear(known)
      const entry: Entry = { file, chain, hash, failures: 0 }
      this.#entries.set(file, entry)
      void this.#fetch(entry)
    }
  }

  stop (): void {
    this.#stopped = true
    for (const entry of this.#entries.values()) this.#clear(entry)
    this.#entries.clear()
  }

  #clear (entry: Entry): void {
    clearTimeout(entry.refreshTimer)
    clearTimeout(entry.expiryTimer)
  }

  #live (entry: Entry): boolean {
    return !this.#stopped && this.#entries.get(entry.file) === entry
  }

  async #fetch (entry: Entry): Promise<void> {
    const log = this.#options.logger
    let result: OcspResult
    try {
      result = await fetchOcspStaple(entry.chain)
      if (result.status === 'unknown') {
        throw Object.assign(new Error('the responder does not know the certificate (status unknown)'), { code: 'ERR_OCSP_UNKNOWN' })
      }
    } catch (err) {
      if (!this.#live(entry)) return
      entry.failures++
      this.#options.metrics.ocspFetch(false)
      const retry = backoff(entry.failures)
      const stapled = entry.current !== undefined && entry.current.nextUpdate.getTime() > Date.now()
      const e = err as Error & { code?: string }
      log.warn({ certificate: entry.file, code: e.code, reason: e.message, retryInSeconds: Math.round(retry / 1000), stapledUntil: stapled ? entry.current?.nextUpdate.toISOString() : undefined },
        stapled ? 'OCSP fetch failed; the last good response stays stapled' : 'OCSP fetch failed; nothing is stapled')
      this.#arm(entry, retry)
      return
    }
    if (!this.#live(entry)) return
    entry.failures = 0
    entry.current = result
    this.#options.metrics.ocspFetch(true)
    const fields = { certificate: entry.file, status: result.status, thisUpdate: result.thisUpdate.toISOString(), nextUpdate: result.nextUpdate.toISOString() }
    // A revoked answer is stapled too: it is the truth clients must see.
    if (result.status === 'revoked') log.error({ ...fields, revokedAt: result.revokedAt?.toISOString() }, 'OCSP: the certificate is revoked; replace it')
    else log.info(fields, 'OCSP response stapled')
    this.#options.refresh(`OCSP response for ${entry.file}`)
    // Refresh at the middle of the validity (at least 1 s from now).
    const half = (result.nextUpdate.getTime() - result.thisUpdate.getTime()) / 2
    this.#arm(entry, Math.max(1_000, result.thisUpdate.getTime() + half - Date.now()))
    clearTimeout(entry.expiryTimer)
    entry.expiryTimer = setTimeout(() => this.#expire(entry), Math.max(0, result.nextUpdate.getTime() - Date.now()) + 10)
    entry.expiryTimer.unref()
  }

  #arm (entry: Entry, delay: number): void {
    clearTimeout(entry.refreshTimer)
    entry.refreshTimer = setTimeout(() => { void this.#fetch(entry) }, Math.min(delay, 2 ** 31 - 1))
    entry.refreshTimer.unref()
  }

  #expire (entry: Entry): void {
    if (!this.#live(entry) || entry.current === undefined || entry.current.nextUpdate.getTime() > Date.now()) return
    this.#options.logger.warn({ certificate: entry.file, nextUpdate: entry.current.nextUpdate.toISOString() }, 'OCSP response expired; no longer stapled')
    entry.current = undefined
    this.#options.refresh(`OCSP response for ${entry.file} expired`)
  }
}
