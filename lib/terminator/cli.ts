// Command line: `rustls-node serve [-c FILE] | check -c FILE [--connect] |
// rotate-ticket-keys -c FILE | ciphers`, `--version`, `--help`,
// `--log-level`. Exit codes: 0 success, 1 runtime failure (e.g. a port in
// use, a store that does not answer), 2 usage or configuration error.
import cluster from 'node:cluster'
import os from 'node:os'
import { parseArgs } from 'node:util'

import pino, { type Logger as PinoLogger } from 'pino'

import { listCiphers, supportedCiphers, type CipherInfo } from '../ciphers'
import { rustlsVersion } from '../diagnostics'
import { checkConfig } from './check'
import { type ConfigProblem, ConfigProblems, formatProblem, LOG_LEVELS, loadConfigFile, parseListenAddress, type LogLevel, type TerminatorConfig } from './config'
import { DEMO_LISTEN, startDemo } from './demo'
import { loadFiles } from './files'
import { Terminator } from './listeners'
import { startMetricsServer, renderPrometheus } from './metrics'
import { storeSessions } from './store/session-store'
import { checkStoreConnection, rotateTicketKeysNow, SharedState, sharesTicketKeys } from './store/shared-state'
import { runPrimary, runWorker, type SharedTicketKeys } from './workers'

export const USAGE = `Usage:
  rustls-node serve -c FILE      run the TLS terminator configured in FILE (YAML or JSON)
  rustls-node serve              run the demo: a self-signed certificate for localhost
                                 and a backend that echoes the TLS variables as JSON
                                 (--listen HOST:PORT or PORT=N; default ${DEMO_LISTEN})
  rustls-node check -c FILE      validate FILE (certificates and keys included);
                                 prints every problem with its key path, exit 2 if any
                                 (--connect: also connect to the store and round-trip
                                 a key; exit 1 if it does not answer)
  rustls-node rotate-ticket-keys -c FILE
                                 rotate the ticket keys shared through the store now
  rustls-node ciphers            table of known cipher suites and which rustls supports
                                 (--supported: only those, in rustls' order; --json)

Options:
  -c, --config FILE              configuration file
      --listen HOST:PORT         demo listen address
      --log-level LEVEL          ${LOG_LEVELS.join(', ')} (overrides log.level)
  -V, --version                  versions of rustls-node, rustls-ffi and rustls
  -h, --help                     this text

Signals (serve): SIGHUP reloads the configuration and certificates,
SIGTERM/SIGINT stop accepting, drain live connections and exit.
See docs/terminator.md for the configuration reference.
`

class UsageError extends Error {}

function packageVersion (): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../../package.json') as { version: string }).version
}

/** "rustls-node 0.1.0 (rustls-ffi 0.15.7, rustls 0.23.46, aws-lc-rs; node v20.x)". */
export function versionText (): string {
  const [, ffi, , rustls, provider] = rustlsVersion().split('/')
  return `rustls-node ${packageVersion()}\nrustls-ffi ${ffi}\nrustls ${rustls} (${provider ?? 'unknown'} crypto provider)\nnode ${process.version}\n`
}

function tlsVersionLabel (c: CipherInfo): string {
  if (c.tls13) return 'TLSv1.3'
  return c.supported ? 'TLSv1.2' : '<=TLSv1.2'
}

export function ciphersText (onlySupported: boolean): string {
  const list = onlySupported ? supportedCiphers() : listCiphers()
  const rows = list.map((c) => [`0x${c.id.toString(16).toUpperCase().padStart(4, '0')}`, c.ianaName, c.opensslName, tlsVersionLabel(c), c.supported ? 'yes' : 'no'])
  const head = ['ID', 'IANA NAME', 'OPENSSL NAME', 'TLS', 'SUPPORTED']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (r: string[]): string => r.map((v, i) => i === r.length - 1 ? v : v.padEnd(widths[i])).join('  ')
  const supported = list.filter((c) => c.supported).length
  return [line(head), ...rows.map(line), '', `${list.length} suites listed, ${supported} supported by this build (${rustlsVersion()})`, ''].join('\n')
}

function makeLogger (level: LogLevel): PinoLogger {
  const base: Record<string, unknown> = { pid: process.pid, hostname: os.hostname() }
  if (cluster.isWorker) base.worker = cluster.worker?.id
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime })
}

function printProblems (problems: readonly ConfigProblem[], header: string): void {
  process.stderr.write(`${header}\n${problems.map((p) => `  ${formatProblem(p)}\n`).join('')}`)
}

function workerCount (config: TerminatorConfig): number {
  return config.workers === 'auto' ? os.availableParallelism() : config.workers
}

/** Runs the CLI; resolves with the process exit code. */
export async function main (argv: readonly string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        'log-level': { type: 'string' },
        supported: { type: 'boolean' },
        connect: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    })
  } catch (err) {
    return usageError((err as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (values.version === true) {
    process.stdout.write(versionText())
    return 0
  }
  const level = values['log-level']
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    return usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`)
  }
  const [command, ...extra] = positionals
  if (extra.length > 0) return usageError(`unexpected argument "${extra[0]}"`)
  if (values.connect === true && command !== 'check') return usageError('--connect applies to "check"')
  try {
    switch (command) {
      case 'serve':
        if (values.supported === true || values.json === true) throw new UsageError('--supported and --json apply to "ciphers"')
        if (values.config === undefined) return await serveDemo(values.listen, level as LogLevel | undefined)
        if (values.listen !== undefined) throw new UsageError('--listen applies to the demo; with -c, set listen in the configuration')
        return await serve(values.config, level as LogLevel | undefined)
      case 'check':
        if (values.config === undefined) throw new UsageError('check needs -c FILE')
        return await check(values.config, values.connect === true)
      case 'rotate-ticket-keys':
        if (values.config === undefined) throw new UsageError('rotate-ticket-keys needs -c FILE')
        return await rotateTicketKeys(values.config)
      case 'ciphers':
        if (values.json === true) process.stdout.write(JSON.stringify(values.supported === true ? supportedCiphers() : listCiphers(), null, 2) + '\n')
        else process.stdout.write(ciphersText(values.supported === true))
        return 0
      case undefined:
        process.stderr.write(USAGE)
        return 2
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } catch (err) {
    if (err instanceof UsageError) return usageError(err.message)
    throw err
  }
}

function usageError (message: string): number {
  process.stderr.write(`rustls-node: ${message}\nTry "rustls-node --help".\n`)
  return 2
}

async function check (file: string, connect: boolean): Promise<number> {
  const result = checkConfig(file)
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`)
  if (result.problems.length > 0) {
    printProblems(result.problems, `${file}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}:`)
    return 2
  }
  const c = result.config as TerminatorConfig
  process.stdout.write(`${file}: OK (${c.hosts.length} host${c.hosts.length === 1 ? '' : 's'}, listen ${c.listen.map((l) => l.text).join(', ')})\n`)
  if (!connect) return 0
  if (c.store === undefined) {
    process.stdout.write('store: none configured; nothing to connect to\n')
    return 0
  }
  const store = await checkStoreConnection(c.store)
  ;(store.ok ? process.stdout : process.stderr).write(store.lines.map((l) => `${l}\n`).join(''))
  return store.ok ? 0 : 1
}

async function rotateTicketKeys (file: string): Promise<number> {
  let config: TerminatorConfig
  try {
    config = loadConfigFile(file)
  } catch (err) {
    if (!(err instanceof ConfigProblems)) throw err
    printProblems(err.problems, `${file}: invalid configuration:`)
    return 2
  }
  if (config.store === undefined) throw new UsageError('rotate-ticket-keys needs a store in the configuration (the keys of one process rotate on their own)')
  if (!sharesTicketKeys(config)) throw new UsageError('rotate-ticket-keys: this configuration does not share ticket keys through the store (ticketKeys names a file, or sessionCache is none)')
  let result
  try {
    result = await rotateTicketKeysNow(config)
  } catch (err) {
    if (!(err instanceof ConfigProblems)) throw err
    printProblems(err.problems, `${file}: invalid configuration:`)
    return 2
  }
  ;(result.ok ? process.stdout : process.stderr).write(result.lines.map((l) => `${l}\n`).join(''))
  return result.ok ? 0 : 1
}

async function serve (file: string, level: LogLevel | undefined): Promise<number> {
  let config: TerminatorConfig
  try {
    config = loadConfigFile(file)
  } catch (err) {
    if (!(err instanceof ConfigProblems)) throw err
    printProblems(err.problems, `${file}: invalid configuration:`)
    return 2
  }
  const logger = makeLogger(level ?? config.log.level)
  installCrashLog(logger)
  const workers = workerCount(config)
  const primary = cluster.isPrimary && workers > 1
  if (primary) {
    // The workers would each fail (and be restarted, and fail...) on a
    // configuration whose files do not load: the primary checks it all first.
    const checked = checkConfig(file)
    if (checked.problems.length > 0) return startFailed(new ConfigProblems(checked.problems), logger, file)
    for (const w of checked.warnings) logger.warn(w)
  }
  // The store: one client per machine, in the primary or the only process;
  // cluster workers get the shared keys over IPC like generated ones.
  let shared: SharedState | undefined
  if (config.store !== undefined && !cluster.isWorker) {
    try {
      shared = await SharedState.start(config, logger)
    } catch (err) {
      return startFailed(err, logger, file)
    }
  }
  try {
    if (primary) {
      const tickets = shared?.tickets
      return await runPrimary({
        workers,
        logger,
        generateTicketKeys: config.ticketKeys === undefined && config.sessionCache !== 'none',
        ticketLifetime: config.ticketLifetime / 1000,
        ticketKeySource: tickets === undefined ? undefined : { material: () => tickets.material, onChange: (fn) => shared?.onTicketKeys(fn) },
        metricsSource: shared === undefined ? undefined : () => ({ store: shared?.store.stats() }),
        metrics: config.metrics?.listen,
        drainTimeout: config.drainTimeout,
        listen: config.listen,
      })
    }
    // A worker loads the primary's latest keys at start and at every reload;
    // a process with a store, the store's. TLS sessions go to the store
    // from the process that holds its client (the only one: workers: 1).
    const sessionStore = shared === undefined ? undefined : storeSessions(shared.store, shared.sealer)
    const start = async (keys?: SharedTicketKeys, listenFds?: number[]): Promise<Terminator> =>
      await Terminator.start({
        listenFds,
        load: (managed) => {
          const loaded = loadConfigFile(file)
          shared?.follow(loaded)
          return loadFiles(loaded, { ticketKeys: keys?.latest, managed, sessionStore })
        },
        reloadFiles: (config, managed) => loadFiles(config, { ticketKeys: keys?.latest, managed, sessionStore }),
        logger,
        fixedLevel: level !== undefined,
        acmeStore: shared?.acme,
      })
    if (cluster.isWorker) return await runWorker(start, logger)
    let terminator: Terminator
    const keys: SharedTicketKeys = { latest: shared?.tickets?.material }
    try {
      terminator = await start(keys)
    } catch (err) {
      return startFailed(err, logger, file)
    }
    if (shared !== undefined) {
      shared.onTicketKeys((material) => {
        keys.latest = material
        terminator.setTicketKeys(material)
      })
      // Keys that changed while the terminator started.
      if (shared.tickets !== undefined && !shared.tickets.material.equals(keys.latest ?? Buffer.alloc(0))) {
        keys.latest = shared.tickets.material
        terminator.setTicketKeys(keys.latest)
      }
      terminator.metrics.addSource(() => ({ store: shared?.store.stats() }))
    }
    return await runUntilSignalled(terminator, logger, config)
  } finally {
    await shared?.close()
  }
}

async function serveDemo (listen: string | undefined, level: LogLevel | undefined): Promise<number> {
  const address = listen ?? (process.env.PORT !== undefined && process.env.PORT !== '' ? `127.0.0.1:${process.env.PORT}` : DEMO_LISTEN)
  if (parseListenAddress(address) === undefined) throw new UsageError(`--listen: "${address}" is not an address (HOST:PORT)`)
  const logger = makeLogger(level ?? 'info')
  installCrashLog(logger)
  let demo
  try {
    demo = await startDemo(address, logger)
  } catch (err) {
    return startFailed(err, logger, 'demo')
  }
  logger.info({ url: demo.url }, 'demo ready')
  process.stderr.write(`\nrustls-node demo: TLS terminated by rustls on ${demo.url}\n` +
    '(self-signed certificate for localhost, generated at start; the backend answers with the TLS variables)\n\n' +
    `  try:  curl -k ${demo.url}\n\n`)
  return await runUntilSignalled(demo.terminator, logger, undefined, demo.stop)
}

function startFailed (err: unknown, logger: PinoLogger, what: string): number {
  if (err instanceof ConfigProblems) {
    logger.error({ problems: err.problems.map(formatProblem) }, 'configuration is invalid')
    printProblems(err.problems, `${what}: invalid configuration:`)
    return 2
  }
  logger.fatal({ err }, 'cannot start')
  process.stderr.write(`rustls-node: cannot start: ${(err as Error).message}\n`)
  return 1
}

async function runUntilSignalled (terminator: Terminator, logger: PinoLogger, config: TerminatorConfig | undefined, stop?: () => Promise<void>): Promise<number> {
  const metricsAddress = config?.metrics?.listen
  const metricsServer = metricsAddress === undefined
    ? undefined
    : await startMetricsServer(metricsAddress, async () => renderPrometheus(terminator.metrics.snapshot()))
  if (metricsServer !== undefined) {
    const a = metricsServer.address() as { address: string, port: number }
    logger.info({ address: a.address, port: a.port }, 'metrics listening')
  }
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the configuration')
    void terminator.reload()
  })
  return await new Promise<number>((resolve) => {
    let stopping = false
    const onStop = (signal: string): void => {
      if (stopping) return
      stopping = true
      logger.info({ signal }, 'shutting down')
      ;(stop ?? (() => terminator.shutdown()))().then(() => {
        metricsServer?.close()
        metricsServer?.closeAllConnections()
        resolve(0)
      }, (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    process.on('SIGTERM', () => onStop('SIGTERM'))
    process.on('SIGINT', () => onStop('SIGINT'))
  })
}

function installCrashLog (logger: PinoLogger): void {
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception')
    process.exit(1)
  })
}

/** Entry point of bin/rustls-node.js. */
export function run (): void {
  main(process.argv.slice(2)).then((code) => {
    // Explicit: a pooled socket or timer must not keep a stopped terminator alive.
    process.exit(code)
  }, (err: unknown) => {
    process.stderr.write(`rustls-node: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(1)
  })
}
