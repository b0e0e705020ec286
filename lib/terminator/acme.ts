// Certificates the terminator obtains and renews itself (mod_md's job for
// mod_tls): for every host with `acme`, the chain and key live in one file,
// stateDir/certs/<serverName>.pem (0600), written atomically (a rename), so
// a reader sees the old pair or the new one, never half of each. Until the
// first order succeeds the host serves a temporary self-signed certificate,
// as mod_md does. Renewal starts at 2/3 of the lifetime (minus up to 1/30
// of it, so that many certificates issued together do not renew together);
// a failed order is logged, retried with backoff, and the current
// certificate keeps serving. A new pair goes live through the library's
// reload (new connections get it, live ones keep theirs).
//
// With `store` (store/acme-state.ts) the instances behind one name share
// the work: one orders under the store's lock, each puts the challenges it
// finds in the store in place (so the CA may validate against any of them),
// and each installs the certificate the orderer stored. stateDir stays the
// local copy that is served, also while the store is away.
import crypto, { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

import type { Logger as PinoLogger } from 'pino'

import { AcmeClient, type AcmeChallenge, type ChallengeResponder, type IssuedCertificate } from '../acme'
import { loadCertificate } from '../certs'
import type { Logger } from '../log'
import type { Server } from '../server'
import type { AcmeConfig, HostConfig, TerminatorConfig } from './config'
import type { Metrics } from './metrics'
import { createSelfSigned } from './selfsigned'
import { acmeKeys, type AcmeStoreState, leafNames, type StoredCertificate } from './store/acme-state'
import { StoreError, type StoreEvent } from './store/shared-store'

/** Where a host's pair lives: chain (leaf first) then key, one PEM file. */
export function acmeCertificateFile (stateDir: string, serverName: string): string {
  return path.join(stateDir, 'certs', `${serverName.toLowerCase()}.pem`)
}

/** The host's names, in order: what its certificate must cover. */
export function acmeNames (host: HostConfig): string[] {
  return [host.serverName, ...host.aliases].map((n) => n.toLowerCase().replace(/\.$/, ''))
}

const fallbacks = new Map<string, Buffer>()

/**
 * The PEM (chain + key) a host serves now: its state file, or a temporary
 * self-signed certificate for its names (made once per process).
 */
export function currentAcmeCertificate (host: HostConfig, stateDir: string): Buffer {
  try {
    return fs.readFileSync(acmeCertificateFile(stateDir, host.serverName))
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err
  }
  const names = acmeNames(host)
  const key = names.join(',')
  let pem = fallbacks.get(key)
  if (pem === undefined) {
    const made = createSelfSigned({ dnsNames: names, ipAddresses: [], days: 7 })
    pem = Buffer.from(made.cert + made.key)
    fallbacks.set(key, pem)
  }
  return pem
}

/** Writes `data` to `file` through a temporary file and a rename (mode 0600). */
export function writeFileAtomic (file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`
  const fd = fs.openSync(tmp, 'wx', 0o600)
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  try {
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
}

/** Renewal time: 2/3 of the lifetime, minus up to 1/30 of it at random. */
export function renewalTime (notBefore: number, notAfter: number, random = Math.random()): number {
  const lifetime = notAfter - notBefore
  return notBefore + (lifetime * 2) / 3 - random * (lifetime / 30)
}

/** Retry delay after `failures` failed orders: 10 s doubling to 1 h, ±10 %. */
function backoff (failures: number): number {
  const base = Math.min(3_600_000, 10_000 * 2 ** Math.max(0, failures - 1))
  return Math.round(base * (0.9 + Math.random() * 0.2))
}

// setTimeout takes at most 2^31-1 ms (~24.8 days): longer waits are chained.
const MAX_TIMER = 2 ** 31 - 1

interface Entry {
  host: HostConfig
  acme: AcmeConfig
  /** What makes an entry the same across reloads. */
  signature: string
  timer?: NodeJS.Timeout
  failures: number
  /** Orders put off in a row (the store was away, or another instance held the lock). */
  deferrals: number
  /** Put off because the store was away: retried as soon as it answers again. */
  awaitingStore: boolean
  running: boolean
}

/** The order lock expires this long after its holder stopped extending it (a crash). */
const ORDER_LOCK_TTL_MS = 60_000
/** Re-check after another instance took the lock (its certificate event usually comes first). */
const LOCK_RECHECK_MS = 30_000
/** Store state is re-read this often: events are delivered at most once. */
const RESYNC_MS = 10_000

export interface AcmeManagerOptions {
  stateDir: string
  /** The terminator's library Server: tls-alpn-01 goes into its challenge table. */
  server: Server
  /** The data plane's http-01 table (answered on the TLS ports): a token's key authorization, or null once done. */
  httpChallenges?: (token: string, keyAuthorization: string | null) => void
  logger: PinoLogger
  metrics: Metrics
  /** Rebuilds the hosts from the files (the new pair goes live). */
  refresh: (reason: string) => boolean
  /** Shared state (`store`): one instance orders, all answer and serve. */
  store?: AcmeStoreState
}

/** The pair in `file` (chain then key), checked; undefined when absent or unusable. */
function readPair (file: string): StoredCertificate | undefined {
  let pem: string
  try {
    pem = fs.readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  try {
    const leaf = new X509Certificate(pem)
    const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n?/.exec(pem)?.[0]
    if (key === undefined) return undefined
    const cert = pem.replace(key, '')
    return { cert, key, names: leafNames(leaf), notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo), fingerprint: leaf.fingerprint256 }
  } catch {
    return undefined
  }
}

/**
 * Before the first load with a store: every acme host's stored pair that is
 * newer than the local copy becomes the local copy, so an instance starts
 * with the certificate the others serve. The store being away changes
 * nothing (the local copy serves).
 */
export async function pullStoredCertificates (config: TerminatorConfig, state: AcmeStoreState, logger: Logger): Promise<void> {
  if (config.stateDir === undefined || !state.store.up) return
  for (const host of config.hosts) {
    if (host.acme === undefined) continue
    try {
      const stored = await state.certificate(host.serverName)
      const file = acmeCertificateFile(config.stateDir, host.serverName)
      if (stored !== undefined && newerThanLocal(stored, readPair(file), host)) {
        writeFileAtomic(file, `${stored.cert.trimEnd()}\n${stored.key}`)
        logger.info({ host: host.serverName, notAfter: new Date(stored.notAfter).toISOString() }, 'ACME certificate taken from the store')
      }
    } catch (err) {
      // The store logs its own failures; the local copy serves either way.
      if (!(err instanceof StoreError)) logger.error({ err, host: host.serverName }, 'ACME certificate from the store not installed')
    }
  }
}

/** The stored pair should replace the local one: it covers the host's names and is not older. */
function newerThanLocal (stored: StoredCertificate, local: StoredCertificate | undefined, host: HostConfig): boolean {
  if (!acmeNames(host).every((n) => stored.names.includes(n))) return false
  if (local === undefined) return true
  return stored.fingerprint !== local.fingerprint && stored.notAfter >= local.notAfter
}

export class AcmeManager {
  readonly #options: AcmeManagerOptions
  readonly #entries = new Map<string, Entry>()
  readonly #clients = new Map<string, AcmeClient>()
  /** http-01: token → key authorization. */
  readonly #tokens = new Map<string, string>()
  /** Challenges of other instances' orders, put in place from the store (token → challenge). */
  readonly #remote = new Map<string, AcmeChallenge>()
  /** Tokens of this instance's own orders in progress. */
  readonly #own = new Set<string>()
  readonly #shared: AcmeStoreState | undefined
  readonly #off: Array<() => void> = []
  #resync: NodeJS.Timeout | undefined
  #stopped = false

  constructor (options: AcmeManagerOptions) {
    this.#options = options
    this.#shared = options.store
    const shared = this.#shared
    if (shared !== undefined) {
      this.#off.push(shared.store.onEvent((e) => this.#onStoreEvent(e)))
      this.#off.push(shared.store.onStatus((up) => { if (up) void this.#resyncShared() }))
      this.#resync = setInterval(() => { void this.#resyncShared() }, RESYNC_MS)
      this.#resync.unref()
    }
  }

  /** The http-01 answer for `token`, if an order is waiting for it. */
  httpChallenge (token: string): string | undefined {
    return this.#tokens.get(token)
  }

  /** Follows the configuration's acme hosts (start, SIGHUP). */
  sync (config: TerminatorConfig): void {
    const wanted = new Map<string, HostConfig>()
    for (const host of config.hosts) if (host.acme !== undefined) wanted.set(host.serverName.toLowerCase(), host)
    for (const [name, entry] of this.#entries) {
      if (!wanted.has(name)) {
        clearTimeout(entry.timer)
        this.#entries.delete(name)
      }
    }
    for (const [name, host] of wanted) {
      const acme = host.acme as AcmeConfig
      const signature = JSON.stringify([acmeNames(host), acme])
      const known = this.#entries.get(name)
      if (known?.signature === signature) continue
      if (known !== undefined) clearTimeout(known.timer)
      const entry: Entry = { host, acme, signature, failures: 0, deferrals: 0, awaitingStore: false, running: false }
      this.#entries.set(name, entry)
      this.#schedule(entry)
    }
    if (this.#shared !== undefined) void this.#resyncShared()
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#resync)
    for (const off of this.#off) off()
    for (const entry of this.#entries.values()) clearTimeout(entry.timer)
    this.#entries.clear()
    for (const client of this.#clients.values()) client.close()
    this.#clients.clear()
  }

  /** When the current pair of `entry` should be renewed (ms since the epoch); now if there is none. */
  #renewAt (entry: Entry): number {
    let pem: string
    try {
      pem = fs.readFileSync(acmeCertificateFile(this.#options.stateDir, entry.host.serverName), 'utf8')
    } catch {
      return Date.now()
    }
    try {
      const leaf = new X509Certificate(pem)
      const names = (leaf.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase())
      // Names added to the host since: order at once.
      if (acmeNames(entry.host).some((n) => !names.includes(n))) return Date.now()
      return renewalTime(Date.parse(leaf.validFrom), Date.parse(leaf.validTo))
    } catch {
      return Date.now()
    }
  }

  #schedule (entry: Entry, at = this.#renewAt(entry)): void {
    if (this.#stopped || this.#entries.get(entry.host.serverName.toLowerCase()) !== entry) return
    clearTimeout(entry.timer)
    const delay = Math.max(0, at - Date.now())
    entry.timer = setTimeout(() => {
      if (delay > MAX_TIMER) this.#schedule(entry, at)
      else void this.#run(entry)
    }, Math.min(delay, MAX_TIMER))
    entry.timer.unref()
    this.#options.logger.debug({ host: entry.host.serverName, renewAt: new Date(at).toISOString() }, 'ACME renewal scheduled')
  }

  async #client (acme: AcmeConfig): Promise<AcmeClient> {
    const key = JSON.stringify([acme.directory, acme.ca, acme.email ?? ''])
    let client = this.#clients.get(key)
    if (client === undefined) {
      // With a store every instance orders on the stored account (the local
      // one is kept as the copy to write back).
      const local = (): string => this.#accountKey(acme.directory)
      const accountKey = this.#shared === undefined ? local() : await this.#shared.accountKey(acme.directory, local)
      client = this.#clients.get(key)
      if (client !== undefined) return client
      client = new AcmeClient({
        directory: acme.directory,
        accountKey,
        email: acme.email,
        termsOfServiceAgreed: acme.termsOfServiceAgreed,
        ca: acme.ca === 'system' ? 'system' : fs.readFileSync(acme.ca),
        logger: this.#options.logger,
      })
      this.#clients.set(key, client)
    }
    return client
  }

  /** One account key per directory, made on first use (stateDir/accounts, 0600). */
  #accountKey (directory: string): string {
    const file = path.join(this.#options.stateDir, 'accounts', `${crypto.createHash('sha256').update(directory).digest('hex').slice(0, 16)}.key`)
    try {
      return fs.readFileSync(file, 'utf8')
    } catch {
      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      writeFileAtomic(file, key)
      return key
    }
  }

  /**
   * Puts a challenge in place here: http-01 in the token table (answered on
   * acme.httpListen and, natively, on the TLS ports) or tls-alpn-01 in the
   * server's challenge table.
   */
  #answer (c: AcmeChallenge): void {
    if (c.type === 'http-01') {
      this.#tokens.set(c.token, c.keyAuthorization)
      this.#options.httpChallenges?.(c.token, c.keyAuthorization)
    } else if (c.validationCertificate !== undefined) {
      this.#options.server.setAcmeChallenge(c.identifier, c.validationCertificate)
    }
  }

  #unanswer (c: AcmeChallenge): void {
    if (c.type === 'http-01') {
      this.#tokens.delete(c.token)
      this.#options.httpChallenges?.(c.token, null)
    } else {
      this.#options.server.setAcmeChallenge(c.identifier, null)
    }
  }

  #responder (): ChallengeResponder {
    const shared = this.#shared
    if (shared === undefined) return { add: (c) => this.#answer(c), remove: (c) => this.#unanswer(c) }
    const log = this.#options.logger
    return {
      // In place here first, then in the store for the others; the CA is
      // told to validate only once they acknowledged (or the wait ran out).
      add: async (c) => {
        this.#own.add(c.token)
        this.#answer(c)
        try {
          const [acknowledged, instances] = await shared.putChallenge(c)
          const line = { identifier: c.identifier, type: c.type, acknowledged, instances }
          if (acknowledged < instances) log.warn(line, 'ACME challenge shared; not every instance acknowledged it in time')
          else log.info(line, 'ACME challenge shared')
        } catch (err) {
          this.#own.delete(c.token)
          this.#unanswer(c)
          throw err
        }
      },
      remove: async (c) => {
        this.#own.delete(c.token)
        this.#unanswer(c)
        await shared.removeChallenge(c.token).catch(() => {})
      },
    }
  }

  #onStoreEvent (e: StoreEvent): void {
    if (this.#stopped) return
    if (e.type === 'acme-challenge' || e.type === 'acme-challenge-removed') {
      if (typeof e.token !== 'string' || !/^[A-Za-z0-9_-]+$/.test(e.token)) {
        this.#shared?.store.invalid('event', 'events', `${e.type}: bad token`)
        return
      }
      if (e.type === 'acme-challenge') void this.#takeChallenge(e.token)
      else this.#dropChallenge(e.token)
    } else if (e.type === 'acme-certificate' && typeof e.serverName === 'string') {
      const entry = this.#entries.get(e.serverName.toLowerCase())
      if (entry !== undefined) void this.#pullCertificate(entry)
    }
  }

  /** Puts another instance's challenge in place and acknowledges it. */
  async #takeChallenge (token: string): Promise<void> {
    const shared = this.#shared
    if (shared === undefined) return
    try {
      if (!this.#own.has(token) && !this.#remote.has(token)) {
        const c = await shared.challenge(token)
        if (c === undefined || this.#stopped) return
        // Only for names this instance serves: nothing else reaches its tables.
        if (![...this.#entries.values()].some((e) => acmeNames(e.host).includes(c.identifier))) {
          this.#options.logger.warn({ identifier: c.identifier }, 'ACME challenge in the store for a name this instance does not serve; ignored')
          return
        }
        this.#remote.set(token, c)
        this.#answer(c)
        this.#options.logger.info({ identifier: c.identifier, type: c.type }, 'ACME challenge from the store in place')
      }
      await shared.acknowledge(token)
    } catch (err) {
      this.#backgroundFailed(err, 'ACME challenge from the store not put in place')
    }
  }

  /**
   * Work on the store runs in the background: its failures are logged, never
   * thrown (the store logs its own outages; the local state keeps serving).
   */
  #backgroundFailed (err: unknown, message: string): void {
    if (!(err instanceof StoreError)) this.#options.logger.error({ err }, message)
  }

  #dropChallenge (token: string): void {
    const c = this.#remote.get(token)
    if (c === undefined) return
    this.#remote.delete(token)
    this.#unanswer(c)
    this.#options.logger.debug({ identifier: c.identifier, type: c.type }, 'ACME challenge removed')
  }

  /** Installs the stored pair of `entry` when it is newer than the local one. */
  async #pullCertificate (entry: Entry): Promise<void> {
    const shared = this.#shared
    if (shared === undefined) return
    const stateDir = this.#options.stateDir
    const host = entry.host
    try {
      const stored = await shared.certificate(host.serverName)
      if (this.#stopped || this.#entries.get(host.serverName.toLowerCase()) !== entry) return
      const file = acmeCertificateFile(stateDir, host.serverName)
      const local = readPair(file)
      if (stored !== undefined && newerThanLocal(stored, local, host)) {
        writeFileAtomic(file, `${stored.cert.trimEnd()}\n${stored.key}`)
        this.#options.logger.info({ host: host.serverName, notAfter: new Date(stored.notAfter).toISOString() }, 'ACME certificate installed from the store')
        this.#options.refresh(`ACME certificate for ${host.serverName} from the store`)
        if (!entry.running) this.#schedule(entry)
      } else if (local !== undefined && acmeNames(host).every((n) => local.names.includes(n)) && (stored === undefined || local.notAfter > stored.notAfter)) {
        // The store lost it (a restart without persistence, a flush) or holds
        // an older one: the served pair goes (back) in.
        await shared.putCertificate(host.serverName, local.cert, local.key)
        this.#options.logger.info({ host: host.serverName, notAfter: new Date(local.notAfter).toISOString() }, 'ACME certificate written back to the store')
      }
    } catch (err) {
      this.#backgroundFailed(err, 'ACME certificate from the store not installed')
    }
  }

  /** Re-reads the store: certificates, and challenges added or removed while events were missed. */
  async #resyncShared (): Promise<void> {
    const shared = this.#shared
    if (shared === undefined || this.#stopped || !shared.store.up) return
    for (const entry of this.#entries.values()) await this.#pullCertificate(entry)
    try {
      const tokens = new Set(await shared.challengeTokens())
      for (const token of tokens) if (!this.#own.has(token) && !this.#remote.has(token)) await this.#takeChallenge(token)
      for (const token of [...this.#remote.keys()]) if (!tokens.has(token)) this.#dropChallenge(token)
    } catch (err) {
      this.#backgroundFailed(err, 'ACME challenges not re-read from the store')
    }
    // The store is back: orders put off while it was away go now.
    for (const entry of this.#entries.values()) {
      if (entry.awaitingStore && !entry.running) {
        entry.awaitingStore = false
        this.#schedule(entry)
      }
    }
  }

  async #run (entry: Entry): Promise<void> {
    if (entry.running || this.#stopped) return
    entry.running = true
    const { host, acme } = entry
    const log = this.#options.logger
    const names = acmeNames(host)
    try {
      if (this.#shared === undefined) {
        log.info({ host: host.serverName, names, challenge: acme.challenge, directory: acme.directory }, 'ACME order starting')
        const issued = await (await this.#client(acme)).obtain({ names, challenge: acme.challenge, responder: this.#responder(), profile: acme.profile })
        this.#installIssued(entry, issued)
      } else {
        await this.#runShared(entry, this.#shared)
      }
    } catch (err) {
      entry.running = false
      if (this.#stopped || this.#entries.get(host.serverName.toLowerCase()) !== entry) return
      entry.failures++
      this.#options.metrics.acmeOrder(false)
      const retry = backoff(entry.failures)
      const e = err as Error & { code?: string, type?: string }
      log.error({ host: host.serverName, code: e.code, type: e.type, reason: e.message, failures: entry.failures, retryInSeconds: Math.round(retry / 1000) },
        'ACME order failed; the current certificate keeps serving')
      this.#schedule(entry, Date.now() + retry)
    } finally {
      entry.running = false
    }
  }

  /** The issued pair goes to stateDir (after it loads) and live; renewal is scheduled. */
  #installIssued (entry: Entry, issued: IssuedCertificate): boolean {
    const host = entry.host
    if (this.#stopped || this.#entries.get(host.serverName.toLowerCase()) !== entry) return false
    const leaf = new X509Certificate(issued.cert)
    // The pair must load before it replaces the current one on disk.
    loadCertificate({ cert: issued.cert, key: issued.key }, 'issued').native.destroy()
    writeFileAtomic(acmeCertificateFile(this.#options.stateDir, host.serverName), `${issued.cert.trimEnd()}\n${issued.key}`)
    entry.failures = 0
    this.#options.metrics.acmeOrder(true)
    this.#options.logger.info({ host: host.serverName, serial: leaf.serialNumber, notAfter: new Date(leaf.validTo).toISOString() }, 'ACME certificate installed')
    this.#options.refresh(`ACME certificate for ${host.serverName}`)
    entry.running = false
    this.#schedule(entry)
    return true
  }

  /** Puts the order off: the store is away, or another instance orders. */
  #defer (entry: Entry, delay: number, line: Record<string, unknown>, message: string): void {
    entry.deferrals++
    entry.awaitingStore = line.holder === undefined
    // Once per stretch at info; the repeats at debug.
    if (entry.deferrals === 1) this.#options.logger.info({ host: entry.host.serverName, retryInSeconds: Math.round(delay / 1000), ...line }, message)
    else this.#options.logger.debug({ host: entry.host.serverName, retryInSeconds: Math.round(delay / 1000), ...line }, message)
    entry.running = false
    this.#schedule(entry, Date.now() + delay)
  }

  /**
   * With a store: order only under the host's lock, and only if no other
   * instance renewed meanwhile; the issued pair goes to the store for the
   * others. Without the store (away) the order waits: two instances
   * ordering apart would each leave the CA's probe to the other half.
   */
  async #runShared (entry: Entry, shared: AcmeStoreState): Promise<void> {
    const { host, acme } = entry
    const log = this.#options.logger
    const names = acmeNames(host)
    let lock
    try {
      lock = shared.store.up ? await shared.store.lock(acmeKeys.orderLock(host.serverName), ORDER_LOCK_TTL_MS) : null
    } catch (err) {
      if (!(err instanceof StoreError)) throw err
      lock = null
    }
    if (lock === null) {
      this.#defer(entry, backoff(entry.deferrals + 1), {}, 'ACME order put off: the store is unavailable; the current certificate keeps serving')
      return
    }
    if (lock === undefined) {
      const holder = await shared.store.holder(acmeKeys.orderLock(host.serverName)).catch(() => undefined) ?? 'unknown'
      this.#defer(entry, LOCK_RECHECK_MS, { holder }, 'ACME order in progress on another instance')
      return
    }
    entry.deferrals = 0
    entry.awaitingStore = false
    const held = lock
    const keepAlive = setInterval(() => {
      held.extend(ORDER_LOCK_TTL_MS).then((ok) => {
        if (!ok) log.warn({ host: host.serverName }, 'ACME order lock lost (expired); the order goes on')
      }, () => {})
    }, ORDER_LOCK_TTL_MS / 3)
    keepAlive.unref()
    try {
      // Another instance may have renewed since this one's timer was set.
      const stored = await shared.certificate(host.serverName)
      if (stored !== undefined && names.every((n) => stored.names.includes(n)) && renewalTime(stored.notBefore, stored.notAfter) > Date.now()) {
        await this.#pullCertificate(entry)
        entry.running = false
        this.#schedule(entry)
        return
      }
      log.info({ host: host.serverName, names, challenge: acme.challenge, directory: acme.directory, lock: held.token }, 'ACME order starting')
      const issued = await (await this.#client(acme)).obtain({ names, challenge: acme.challenge, responder: this.#responder(), profile: acme.profile })
      if (this.#installIssued(entry, issued)) {
        await shared.putCertificate(host.serverName, issued.cert, issued.key).catch((err: unknown) => {
          // The resync writes it back once the store answers again.
          log.warn({ host: host.serverName, reason: (err as Error).message }, 'ACME certificate not stored; it will be written back when the store answers')
        })
      }
    } finally {
      clearInterval(keepAlive)
      await held.release()
    }
  }
}
