// From the validated `store` block to a connected store: secrets from the
// environment variables it names (never from the file, never logged), the
// CA file for rediss://, and the at-rest key. Problems are reported with the
// key path, like every other configuration problem.
import fs from 'node:fs'

import { type ConfigProblem, ConfigProblems, fileErrorText, type StoreConfig } from '../config'
import type { Logger } from '../../log'
import { RedisStore } from './redis-store'
import { parseEncryptionKey, Sealer } from './sealing'

export interface StoreSecrets {
  password?: string
  ca?: Buffer
  /** The AES-256-GCM key; undefined: secrets are stored in the clear. */
  encryptionKey?: Buffer
}

/** Reads what `store` names outside the file. Throws ConfigProblems (key paths under `store`). */
export function resolveStoreSecrets (config: StoreConfig, env: NodeJS.ProcessEnv = process.env): StoreSecrets {
  const problems: ConfigProblem[] = []
  const out: StoreSecrets = {}
  if (config.passwordEnv !== undefined) {
    const password = env[config.passwordEnv]
    if (password === undefined || password === '') problems.push({ keyPath: 'store.passwordEnv', message: `environment variable ${config.passwordEnv} is not set` })
    else out.password = password
  }
  if (config.encryptionKeyEnv !== undefined) {
    const text = env[config.encryptionKeyEnv]
    if (text === undefined || text === '') {
      problems.push({ keyPath: 'store.encryptionKeyEnv', message: `environment variable ${config.encryptionKeyEnv} is not set` })
    } else {
      out.encryptionKey = parseEncryptionKey(text)
      // The value itself is never echoed.
      if (out.encryptionKey === undefined) {
        problems.push({ keyPath: 'store.encryptionKeyEnv', message: `${config.encryptionKeyEnv} must hold a 32-byte key as 64 hex digits or base64 (e.g. \`openssl rand -base64 32\`)` })
      }
    }
  }
  if (config.ca !== undefined) {
    try {
      out.ca = fs.readFileSync(config.ca)
      if (!out.ca.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) problems.push({ keyPath: 'store.tls.ca', message: `no PEM certificate in ${config.ca}` })
    } catch (err) {
      problems.push({ keyPath: 'store.tls.ca', message: `${fileErrorText(err)}: ${config.ca}` })
    }
  }
  if (problems.length > 0) throw new ConfigProblems(problems)
  return out
}

export interface OpenedStore {
  store: RedisStore
  sealer: Sealer
}

/** Creates the store client (it connects in the background). Throws ConfigProblems. */
export function openStore (config: StoreConfig, options: { env?: NodeJS.ProcessEnv, logger?: Logger, oneShot?: boolean } = {}): OpenedStore {
  const secrets = resolveStoreSecrets(config, options.env)
  const store = new RedisStore({
    host: config.host,
    port: config.port,
    db: config.db,
    tls: config.tls,
    ca: secrets.ca,
    username: config.username,
    password: secrets.password,
    prefix: config.prefix,
    description: config.url,
    logger: options.logger,
    oneShot: options.oneShot,
  })
  return { store, sealer: new Sealer(secrets.encryptionKey) }
}
