// What `serve`, `check --connect` and `rotate-ticket-keys` do with the
// `store` block: open the store, share the ticket keys and the ACME state
// through it, and check that it answers. One store client per machine: the
// single process, or the cluster primary (its workers get the keys over
// the cluster IPC channel, as without a store).
import crypto from 'node:crypto'

import type { Logger } from '../../log'
import { pullStoredCertificates } from '../acme'
import type { StoreConfig, TerminatorConfig } from '../config'
import { AcmeStoreState } from './acme-state'
import { openStore } from './open'
import type { RedisStore } from './redis-store'
import type { Sealer } from './sealing'
import { StoreError } from './shared-store'
import { decodeTicketKeys, rotateStoredTicketKeys, StoreTicketKeys, TICKET_POLL_MS, TICKETS_KEY } from './ticket-keys'

/** How long `serve` waits for the store at start before it serves local state (and keeps reconnecting). */
export const STORE_START_WAIT_MS = 3000
/** How long `check --connect` and `rotate-ticket-keys` wait for the store. */
export const STORE_CHECK_WAIT_MS = 5000

/** Whether the keys come from the store: not with a ticketKeys file, and not without resumption. */
export function sharesTicketKeys (config: TerminatorConfig): boolean {
  return config.ticketKeys === undefined && config.sessionCache !== 'none'
}

export class SharedState {
  readonly store: RedisStore
  readonly sealer: Sealer
  /** The shared ticket keys (undefined: a ticketKeys file, or sessionCache none). */
  readonly tickets: StoreTicketKeys | undefined
  /** ACME state (undefined: no acme host at start). */
  readonly acme: AcmeStoreState | undefined
  readonly #listeners = new Set<(material: Buffer) => void>()
  readonly #storeJson: string
  readonly #logger: Logger

  private constructor (config: TerminatorConfig, logger: Logger) {
    const storeConfig = config.store as StoreConfig
    this.#logger = logger
    this.#storeJson = JSON.stringify(storeConfig)
    const opened = openStore(storeConfig, { logger: childOf(logger, { component: 'store' }) })
    this.store = opened.store
    this.sealer = opened.sealer
    this.tickets = sharesTicketKeys(config)
      ? new StoreTicketKeys({
        store: this.store,
        sealer: this.sealer,
        lifetime: config.ticketLifetime / 1000,
        logger: childOf(logger, { component: 'store' }),
        onChange: (material) => { for (const fn of this.#listeners) fn(material) },
      })
      : undefined
    this.acme = config.hosts.some((h) => h.acme !== undefined) ? new AcmeStoreState(this.store, this.sealer) : undefined
  }

  /**
   * Opens the store and waits for it a moment (STORE_START_WAIT_MS): when
   * it answers, the instance starts with the shared ticket keys and the
   * stored certificates; when not, with local state, and catches up once it
   * connects. Throws ConfigProblems for secrets that cannot be read.
   */
  static async start (config: TerminatorConfig, logger: Logger): Promise<SharedState> {
    const shared = new SharedState(config, logger)
    const url = config.store?.url
    if (!shared.sealer.encrypts) {
      logger.warn({ store: url },
        'store: private keys and ticket keys are kept in Redis unencrypted (no store.encryptionKeyEnv); Redis must be trusted and access-controlled')
    }
    if (!await shared.store.ready(STORE_START_WAIT_MS)) shared.store.logOutage()
    await shared.tickets?.start()
    if (shared.tickets !== undefined) {
      logger.info({ store: url, generation: shared.tickets.generation, shared: shared.tickets.generation > 0 }, 'ticket keys from the store in place')
    }
    if (shared.acme !== undefined) await pullStoredCertificates(config, shared.acme, logger)
    return shared
  }

  /** Calls `fn` with the new material at every change of the shared ticket keys. */
  onTicketKeys (fn: (material: Buffer) => void): void {
    this.#listeners.add(fn)
  }

  /** A reloaded configuration: the rotation period follows; another store needs a restart. */
  follow (config: TerminatorConfig): void {
    if (JSON.stringify(config.store) !== this.#storeJson) this.#logger.warn({ key: 'store' }, 'store changed: takes effect after a restart')
    if (config.ticketKeys === undefined) this.tickets?.setLifetime(config.ticketLifetime / 1000)
  }

  async close (): Promise<void> {
    this.tickets?.stop()
    this.#listeners.clear()
    await this.store.close()
  }
}

function childOf (logger: Logger, bindings: Record<string, unknown>): Logger {
  return logger.child?.(bindings) ?? logger
}

export interface StoreCheck {
  ok: boolean
  /** One line per finding, for stdout (ok) or stderr. */
  lines: string[]
}

/** The reason Redis gave, with authentication failures named as such. */
function connectFailure (url: string, reason: string | undefined): string {
  if (reason !== undefined && /^(WRONGPASS|NOAUTH|NOPERM)\b/.test(reason)) return `store: authentication failed for ${url}: ${reason}`
  return `store: cannot connect to ${url}: ${reason ?? `no answer within ${STORE_CHECK_WAIT_MS / 1000} s`}`
}

/**
 * `check --connect`: connects (TLS and AUTH as configured), writes a key of
 * its own, reads it back and deletes it, and reads the stored ticket keys
 * with this configuration's encryption key, if there are any.
 */
export async function checkStoreConnection (config: StoreConfig, env: NodeJS.ProcessEnv = process.env): Promise<StoreCheck> {
  const { store, sealer } = openStore(config, { env, oneShot: true })
  try {
    if (!await store.ready(STORE_CHECK_WAIT_MS)) return { ok: false, lines: [connectFailure(config.url, store.lastError)] }
    const key = `check:${store.instanceId}`
    const value = crypto.randomBytes(16).toString('hex')
    await store.set(key, value, { ttlMs: 30_000 })
    const back = await store.get(key)
    await store.del(key)
    if (back !== value) return { ok: false, lines: [`store: ${config.url}: a value written was not read back (${back === undefined ? 'missing' : 'different'})`] }
    const done = `store: OK (${config.url}: connected${config.passwordEnv !== undefined ? ', authenticated' : ''}, a key written, read back and deleted`
    const text = await store.get(TICKETS_KEY)
    if (text === undefined) return { ok: true, lines: [`${done}; no ticket keys stored yet)`] }
    try {
      const set = decodeTicketKeys(text, sealer)
      return { ok: true, lines: [`${done}; ticket keys of generation ${set.generation} readable${sealer.encrypts ? ' with the encryption key' : ''})`] }
    } catch (err) {
      if (!(err instanceof StoreError)) throw err
      return { ok: false, lines: [`store: the ticket keys in ${config.url} cannot be used with this configuration: ${err.message}`] }
    }
  } catch (err) {
    if (!(err instanceof StoreError)) throw err
    return { ok: false, lines: [`store: ${config.url}: ${err.message}`] }
  } finally {
    await store.close()
  }
}

/**
 * `rotate-ticket-keys`: one rotation of the stored keys now, under the
 * lock (previous ← current ← next ← new), published to every instance.
 */
export async function rotateTicketKeysNow (config: TerminatorConfig, env: NodeJS.ProcessEnv = process.env): Promise<StoreCheck> {
  const storeConfig = config.store as StoreConfig
  const { store, sealer } = openStore(storeConfig, { env, oneShot: true })
  try {
    if (!await store.ready(STORE_CHECK_WAIT_MS)) return { ok: false, lines: [connectFailure(storeConfig.url, store.lastError)] }
    for (let attempt = 0; attempt < 20; attempt++) {
      const written = await rotateStoredTicketKeys(store, sealer, config.ticketLifetime / 1000, { force: true })
      if (written !== 'busy') {
        return { ok: true, lines: [`ticket keys rotated: generation ${written.generation} (instances take it at once, or within ${TICKET_POLL_MS / 1000} s)`] }
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    return { ok: false, lines: ['ticket keys not rotated: another instance held the lock for 5 s'] }
  } catch (err) {
    if (!(err instanceof StoreError)) throw err
    return { ok: false, lines: [`store: ${storeConfig.url}: ${err.message}`] }
  } finally {
    await store.close()
  }
}
