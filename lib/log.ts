// Logging: a pino-compatible logger injected by the caller; silent by
// default. Never log key material, passphrases, tickets or plaintext.

type LogFn = (objOrMsg: unknown, msg?: string, ...args: unknown[]) => void

/** The subset of pino's interface the library uses. */
export interface Logger {
  error: LogFn
  warn: LogFn
  info: LogFn
  debug: LogFn
  trace: LogFn
  child?: (bindings: Record<string, unknown>) => Logger
}

const noop: LogFn = () => {}

export const silentLogger: Logger = {
  error: noop,
  warn: noop,
  info: noop,
  debug: noop,
  trace: noop,
  child: () => silentLogger,
}

export function childLogger (logger: Logger, bindings: Record<string, unknown>): Logger {
  return logger.child !== undefined ? logger.child(bindings) : logger
}
