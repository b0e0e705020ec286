// A real ClientHello as the rustls client sends it (SNI `localhost`, TLS 1.2
// and 1.3 offered), for tests that feed servers partial or altered hellos.
import { addon, results, Slot } from '../../lib/native'
import { fixtures } from './certs'

export function rustlsClientHello (): Buffer {
  const config = new addon.ClientConfig({ ca: fixtures().ca, versions: [0x0303, 0x0304] })
  const conn = new addon.Connection(config, 'localhost')
  const slab = Buffer.alloc(16 * 1024)
  conn.flush(slab, 0, slab.length)
  const hello = Buffer.from(slab.subarray(0, results[Slot.Cipher]))
  conn.destroy()
  config.destroy()
  return hello
}
