// `rustls-node check -c FILE`: the validation `serve` runs at start and on
// every reload, without listening. It goes as far as building every host
// and backend TLS configuration through the library, so a key that does
// not match its certificate or a PEM file that does not parse is caught.
import { type ConfigProblem, ConfigProblems, loadConfigFile, problemFromError, type TerminatorConfig } from './config'
import { loadFiles } from './files'
import { buildAll } from './reload'
import { resolveStoreSecrets } from './store/open'
import type { Logger } from '../log'

export interface CheckResult {
  config?: TerminatorConfig
  problems: ConfigProblem[]
  /** Non-fatal findings (e.g. a preferred cipher suite rustls does not support). */
  warnings: string[]
}

export function checkConfig (file: string, env: NodeJS.ProcessEnv = process.env): CheckResult {
  const warnings: string[] = []
  const noop = (): void => {}
  const logger: Logger = {
    error: noop,
    info: noop,
    debug: noop,
    trace: noop,
    warn: (obj: unknown, msg?: string) => {
      const keyPath = (obj as { keyPath?: string })?.keyPath
      const text = typeof obj === 'string' ? obj : msg ?? ''
      warnings.push(keyPath === undefined ? text : `${keyPath}: ${text}`)
    },
  }
  let config: TerminatorConfig | undefined
  // The store's secrets (environment variables, the CA file) are reported
  // with the other files' problems.
  const storeProblems: ConfigProblem[] = []
  try {
    config = loadConfigFile(file)
    if (config.store !== undefined) {
      try {
        resolveStoreSecrets(config.store, env)
      } catch (err) {
        if (!(err instanceof ConfigProblems)) throw err
        storeProblems.push(...err.problems)
      }
    }
    const loaded = loadFiles(config, { env })
    const built = buildAll(loaded, { ...loaded.serverOptions, logger })
    built.server.close()
    for (const b of built.backends) b.destroy()
    return { config, problems: storeProblems, warnings }
  } catch (err) {
    const problems = err instanceof ConfigProblems ? [...err.problems] : [problemFromError(err)]
    return { config, problems: [...problems, ...storeProblems], warnings }
  }
}
