// The version strings the mod_tls variables export (SPEC §4.5).
import { addon } from './native'

let cachedPackageVersion: string | undefined

export function packageVersion (): string {
  if (cachedPackageVersion === undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    cachedPackageVersion = (require('../../package.json') as { version: string }).version
  }
  return cachedPackageVersion
}

/** "rustls-ffi/<v>/rustls/<v>" (SPEC §4.5), without the provider suffix. */
export function libraryVersion (): string {
  return addon.version().split('/').slice(0, 4).join('/')
}
