// Secrets at rest in the store (store.encryptionKeyEnv): private keys and
// ticket keys go in as `aes256gcm:<base64(nonce ‖ ciphertext ‖ tag)>`,
// AES-256-GCM under the operator's 32-byte key with a random 96-bit nonce
// (NIST SP 800-38D §8.2.2) and the value's name as additional data, so a
// sealed value copied under another key does not open. Without a key they go
// in as `plain:<base64>`, and Redis itself must be trusted. A value in the
// other form, or one that does not open, is refused: a sealed value is never
// served by an instance configured without the key, nor a plain one by an
// instance that expects encryption.
import crypto from 'node:crypto'

import { invalidValue } from './shared-store'

const SEALED = 'aes256gcm:'
const PLAIN = 'plain:'
const NONCE = 12
const TAG = 16

/**
 * The 32-byte key of store.encryptionKeyEnv: 64 hex digits or base64
 * (standard or URL alphabet) of exactly 32 bytes; undefined otherwise.
 */
export function parseEncryptionKey (text: string): Buffer | undefined {
  const t = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    return key.length === 32 ? key : undefined
  }
  return undefined
}

export class Sealer {
  readonly #key: Buffer | undefined

  constructor (key?: Buffer) {
    if (key !== undefined && key.length !== 32) throw new RangeError('an AES-256-GCM key is 32 bytes')
    this.#key = key === undefined ? undefined : Buffer.from(key)
  }

  /** Whether secrets are encrypted (store.encryptionKeyEnv is set). */
  get encrypts (): boolean {
    return this.#key !== undefined
  }

  /** `data` as stored under `name` (a store key, or key#field). */
  seal (name: string, data: Buffer | string): string {
    const plain = typeof data === 'string' ? Buffer.from(data) : data
    if (this.#key === undefined) return PLAIN + plain.toString('base64')
    const nonce = crypto.randomBytes(NONCE)
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, nonce)
    cipher.setAAD(Buffer.from(name))
    const body = Buffer.concat([cipher.update(plain), cipher.final()])
    return SEALED + Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')
  }

  /** The data sealed under `name`; throws an ERR_STORE_INVALID_VALUE StoreError with `kind` otherwise. */
  open (kind: string, name: string, value: unknown): Buffer {
    if (typeof value !== 'string') throw invalidValue(kind, `${name}: not a sealed value`)
    if (value.startsWith(PLAIN)) {
      if (this.#key !== undefined) throw invalidValue(kind, `${name}: stored without encryption, but store.encryptionKeyEnv is set`)
      return strictBase64(kind, name, value.slice(PLAIN.length))
    }
    if (value.startsWith(SEALED)) {
      if (this.#key === undefined) throw invalidValue(kind, `${name}: encrypted (AES-256-GCM), but store.encryptionKeyEnv is not set`)
      const raw = strictBase64(kind, name, value.slice(SEALED.length))
      if (raw.length < NONCE + TAG) throw invalidValue(kind, `${name}: sealed value too short`)
      try {
        const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, NONCE))
        decipher.setAAD(Buffer.from(name))
        decipher.setAuthTag(raw.subarray(raw.length - TAG))
        return Buffer.concat([decipher.update(raw.subarray(NONCE, raw.length - TAG)), decipher.final()])
      } catch {
        throw invalidValue(kind, `${name}: does not decrypt with the key of store.encryptionKeyEnv (another key, or altered)`)
      }
    }
    throw invalidValue(kind, `${name}: not a sealed value`)
  }
}

function strictBase64 (kind: string, name: string, text: string): Buffer {
  // Buffer.from skips what is not base64; a value must be nothing but.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw invalidValue(kind, `${name}: not base64`)
  return Buffer.from(text, 'base64')
}
