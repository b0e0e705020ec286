// A Redis server of the test's own (Debian's redis-server, installed by
// .ci/run): a free loopback port, no persistence (--save '' --appendonly
// no), a temporary folder, stopped by the test (and killed if the test
// process exits). `restart()` brings it back on the same port, empty, as a
// Redis without persistence comes back after a crash.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import Redis from 'ioredis'

import { type Daemon, freePort, startDaemon } from './peers'

export interface RedisOptions {
  /** requirepass. */
  password?: string
  /** TLS only (the plain port is off): server certificate, key. */
  tls?: { cert: string, key: string }
}

export interface RedisServer {
  port: number
  /** redis:// or rediss://127.0.0.1:port/0 (no password in it). */
  url: string
  /** A client of the test's own (plain servers only). */
  client: () => Redis
  /** Stops the server (SIGTERM); restart() brings it back. */
  stop: () => Promise<void>
  /** Starts again on the same port (empty). */
  restart: () => Promise<void>
  /** Stops it for good: clients, server, folder. */
  close: () => Promise<void>
}

export async function startRedis (options: RedisOptions = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-redis-'))
  const args = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'notice']
  if (options.tls !== undefined) {
    args.push('--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key, '--tls-auth-clients', 'no')
  } else {
    args.push('--port', String(port))
  }
  if (options.password !== undefined) args.push('--requirepass', options.password)
  let daemon: Daemon | undefined
  const launch = async (): Promise<void> => {
    daemon = await startDaemon('redis-server', args, { ready: (log) => log.includes('Ready to accept connections'), timeoutMs: 10_000 })
  }
  await launch()
  const clients: Redis[] = []
  return {
    port,
    url: `${options.tls !== undefined ? 'rediss' : 'redis'}://127.0.0.1:${port}/0`,
    client: () => {
      const c = new Redis({ host: '127.0.0.1', port, password: options.password, lazyConnect: false, maxRetriesPerRequest: 1 })
      c.on('error', () => {})
      clients.push(c)
      return c
    },
    stop: async () => {
      const d = daemon
      daemon = undefined
      await d?.stop()
    },
    restart: async () => {
      if (daemon === undefined) await launch()
    },
    close: async () => {
      for (const c of clients) c.disconnect()
      const d = daemon
      daemon = undefined
      await d?.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
