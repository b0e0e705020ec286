// The terminator as a module, for embedding and tests: the same pieces the
// CLI (cli.ts) puts together.
export {
  ConfigProblems, loadConfigFile, parseConfigText, parseDuration, validateConfig,
  type BackendConfig, type ConfigProblem, type HostConfig, type TerminatorConfig,
} from './config'
export { checkConfig, type CheckResult } from './check'
export { loadFiles, type LoadedConfig } from './files'
export { Terminator, type TerminatorOptions } from './listeners'
export { Metrics, renderPrometheus, type MetricsSnapshot } from './metrics'
export { createSelfSigned, type SelfSigned } from './selfsigned'
export { startDemo } from './demo'
