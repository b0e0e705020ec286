// createSecureContext(): one host's rustls config outside a server, for
// SNICallback (node:tls parity). Built once, reusable by many connections.
import { ConfigError } from './errors'
import { applyTlsOptions, buildHost, type HostContext, type HostOptions, type HostTlsOptions } from './hosts'
import type { Logger } from './log'
import type { NativeHandle } from './native'
import { rejectUnsupported, UNSUPPORTED_SERVER_OPTIONS } from './unsupported'
import { createSessionCache, ServerTickets, sessionCacheSize, ticketSettings, type SessionCacheOption } from './session'

export interface SecureContextOptions extends Omit<HostOptions, 'serverName'> {
  /** Name reported for this context (default 'localhost'); routing is SNICallback's job. */
  serverName?: string
  /** This context's own session cache (default 20000 sessions; 'none' to disable). */
  sessionCache?: SessionCacheOption
  /** Ticket keys (N × 80 bytes) shared with other contexts or processes; default: generated, rotated every ticketLifetime. */
  ticketKeys?: Buffer | readonly Buffer[]
  /** Seconds (default 21600): ticket lifetime hint and rotation period of generated keys. */
  ticketLifetime?: number
  logger?: Logger
}

export class SecureContext {
  /** @internal the native server config. */
  readonly native: NativeHandle
  /** @internal what connections served by this context report. */
  readonly host: HostContext
  readonly #owned: Array<{ destroy: () => void } | null>

  constructor (options: SecureContextOptions) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigError('ERR_TLS_CONFIG_INVALID', '', 'options must be an object')
    }
    rejectUnsupported(options, UNSUPPORTED_SERVER_OPTIONS)
    const size = sessionCacheSize(options.sessionCache, 'sessionCache')
    const settings = ticketSettings(options, size)
    const cache = createSessionCache(size)
    let tickets: ServerTickets | null = null
    try {
      tickets = settings === null ? null : new ServerTickets(settings)
      const host: HostOptions = { ...options, serverName: options.serverName ?? 'localhost' }
      const none: HostTlsOptions = {}
      const built = buildHost(host, -1, '', none, applyTlsOptions(new Set(), undefined, 'options'),
        { sessionCache: cache, ticketer: tickets?.native ?? null, logger: options.logger })
      this.native = built.config
      this.host = built.context
    } catch (err) {
      cache?.destroy()
      tickets?.destroy()
      throw err
    }
    this.#owned = [this.native, cache, tickets]
  }

  /** Releases the native config; connections already using it keep working. Idempotent. */
  destroy (): void {
    for (const handle of this.#owned) handle?.destroy()
  }
}

export function createSecureContext (options: SecureContextOptions): SecureContext {
  return new SecureContext(options)
}
