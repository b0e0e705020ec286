// Introspection meant for operators and tests.
import { addon, type LiveHandles } from './native'

/** Open native handles per kind; all zero once every server, socket and context is closed. */
export function liveHandles (): LiveHandles {
  return addon.liveHandles()
}

/** "rustls-ffi/<v>/rustls/<v>/<crypto provider>" of the linked build. */
export function rustlsVersion (): string {
  return addon.version()
}
