// TLS sessions in the shared store (mod_tls TLSSessionCache over a shared
// socache provider): the library's sessionStore for a terminator with
// `store:`, so a TLS 1.2 session id made on one instance resumes on the
// others (TLS 1.3 tickets are shared through the ticket keys instead). The
// session data is sealed like every secret of the store; a value that does
// not open is refused (counted, logged) and the handshake is a full one.
import type { SessionStore } from '../../server-sessions'
import type { Sealer } from './sealing'
import { StoreError, type SharedStore } from './shared-store'

/** `session:<hex id>`: one session, sealed, expiring with the ticket lifetime. */
export function sessionKey (sessionId: Buffer): string {
  return `session:${sessionId.toString('hex')}`
}

export function storeSessions (store: SharedStore, sealer: Sealer): SessionStore {
  return {
    get: async (sessionId) => {
      const key = sessionKey(sessionId)
      const value = await store.get(key)
      if (value === undefined) return null
      try {
        return sealer.open('tls-session', key, value)
      } catch (err) {
        if (err instanceof StoreError) {
          store.invalid('tls-session', key, err.message)
          return null
        }
        throw err
      }
    },
    set: async (sessionId, data, ttlSeconds) => {
      const key = sessionKey(sessionId)
      await store.set(key, sealer.seal(key, data), { ttlMs: ttlSeconds * 1000 })
    },
    delete: async (sessionId) => { await store.del(sessionKey(sessionId)) },
  }
}
