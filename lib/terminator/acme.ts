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
import crypto, { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

import type { Logger as PinoLogger } from 'pino'

import { AcmeClient, type AcmeChallenge, type ChallengeResponder } from '../acme'
import { loadCertificate } from '../certs'
import type { Server } from '../server'
import type { AcmeConfig, HostConfig, TerminatorConfig } from './config'
import type { Metrics } from './metrics'
import { createSelfSigned } from './selfsigned'

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
  running: boolean
}

export interface AcmeManagerOptions {
  stateDir: string
  /** The terminator's library Server: tls-alpn-01 goes into its challenge table. */
  server: Server
  logger: PinoLogger
  metrics: Metrics
  /** Rebuilds the hosts from the files (the new pair goes live). */
  refresh: (reason: string) => boolean
}

export class AcmeManager {
  readonly #options: AcmeManagerOptions
  readonly #entries = new Map<string, Entry>()
  readonly #clients = new Map<string, AcmeClient>()
  /** http-01: token → key authorization. */
  readonly #tokens = new Map<string, string>()
  #stopped = false

  constructor (options: AcmeManagerOptions) {
    this.#options = options
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
      const entry: Entry = { host, acme, signature, failures: 0, running: false }
      this.#entries.set(name, entry)
      this.#schedule(entry)
    }
  }

  stop (): void {
    this.#stopped = true
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

  #client (acme: AcmeConfig): AcmeClient {
    const key = JSON.stringify([acme.directory, acme.ca, acme.email ?? ''])
    let client = this.#clients.get(key)
    if (client === undefined) {
      client = new AcmeClient({
        directory: acme.directory,
        accountKey: this.#accountKey(acme.directory),
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

  #responder (): ChallengeResponder {
    const server = this.#options.server
    return {
      add: (c: AcmeChallenge) => {
        if (c.type === 'http-01') this.#tokens.set(c.token, c.keyAuthorization)
        else if (c.validationCertificate !== undefined) server.setAcmeChallenge(c.identifier, c.validationCertificate)
      },
      remove: (c: AcmeChallenge) => {
        if (c.type === 'http-01') this.#tokens.delete(c.token)
        else server.setAcmeChallenge(c.identifier, null)
      },
    }
  }

  async #run (entry: Entry): Promise<void> {
    if (entry.running || this.#stopped) return
    entry.running = true
    const { host, acme } = entry
    const log = this.#options.logger
    const names = acmeNames(host)
    log.info({ host: host.serverName, names, challenge: acme.challenge, directory: acme.directory }, 'ACME order starting')
    try {
      const issued = await this.#client(acme).obtain({ names, challenge: acme.challenge, responder: this.#responder(), profile: acme.profile })
      if (this.#stopped || this.#entries.get(host.serverName.toLowerCase()) !== entry) return
      const leaf = new X509Certificate(issued.cert)
      // The pair must load before it replaces the current one on disk.
      loadCertificate({ cert: issued.cert, key: issued.key }, 'issued').native.destroy()
      writeFileAtomic(acmeCertificateFile(this.#options.stateDir, host.serverName), `${issued.cert.trimEnd()}\n${issued.key}`)
      entry.failures = 0
      this.#options.metrics.acmeOrder(true)
      log.info({ host: host.serverName, serial: leaf.serialNumber, notAfter: new Date(leaf.validTo).toISOString() }, 'ACME certificate installed')
      this.#options.refresh(`ACME certificate for ${host.serverName}`)
      entry.running = false
      this.#schedule(entry)
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
}
