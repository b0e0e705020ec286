// `rustls-node serve` without -c (SPEC §5): a self-signed certificate for
// localhost made at start, and a built-in backend that answers every
// request with the TLS variables it received as X-SSL-* headers. It runs
// the same terminator, configuration path and http mode as a real
// deployment; only the certificate and the backend are made up.
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import type { Logger as PinoLogger } from 'pino'

import { validateConfig } from './config'
import { loadFiles } from './files'
import { Terminator } from './listeners'
import { createSelfSigned } from './selfsigned'

export const DEMO_LISTEN = '127.0.0.1:8443'

/** The built-in backend's answer: the X-SSL-* headers as variables, plus request facts. */
export function demoResponse (req: http.IncomingMessage): Record<string, unknown> {
  const tls: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('x-ssl-') || typeof value !== 'string') continue
    const variable = `SSL_${name.slice(6).toUpperCase().replace(/-/g, '_')}`
    // PEM values arrive URL-encoded ("-" is left as is by encodeURIComponent).
    tls[variable] = value.startsWith('-----BEGIN') ? decodeURIComponent(value) : value
  }
  return {
    message: 'Hello from the rustls-node demo backend: this request came through rustls.',
    request: { method: req.method, path: req.url, host: req.headers.host },
    forwarded: { for: req.headers['x-forwarded-for'], proto: req.headers['x-forwarded-proto'] },
    tls,
  }
}

export interface Demo {
  terminator: Terminator
  url: string
  stop: () => Promise<void>
}

export async function startDemo (listen: string, logger: PinoLogger): Promise<Demo> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-demo-'))
  const backend = http.createServer((req, res) => {
    const body = JSON.stringify(demoResponse(req), null, 2) + '\n'
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const cleanup = (): void => {
    backend.close()
    backend.closeAllConnections()
    fs.rmSync(dir, { recursive: true, force: true })
  }
  try {
    const selfSigned = createSelfSigned({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] })
    fs.writeFileSync(path.join(dir, 'localhost.pem'), selfSigned.cert, { mode: 0o644 })
    fs.writeFileSync(path.join(dir, 'localhost.key'), selfSigned.key, { mode: 0o600 })
    await new Promise<void>((resolve, reject) => {
      backend.once('error', reject)
      backend.listen(0, '127.0.0.1', () => resolve())
    })
    const backendPort = (backend.address() as net.AddressInfo).port
    const config = validateConfig({
      listen: [listen],
      hosts: [{
        serverName: 'localhost',
        certificates: [{ cert: 'localhost.pem', key: 'localhost.key' }],
        options: ['StdEnvVars'],
        // The server's suite order (rustls': AES-GCM before ChaCha20,
        // forward secrecy only), as scanners expect of a public endpoint;
        // the library default stays the client's order (SPEC §4.3).
        honorClientOrder: false,
        backend: { address: `127.0.0.1:${backendPort}`, mode: 'http' },
      }],
    }, { baseDir: dir })
    const terminator = await Terminator.start({ load: () => loadFiles(config), logger, fixedLevel: true })
    const port = terminator.addresses[0].port
    const url = `https://localhost:${port}/`
    return {
      terminator,
      url,
      stop: async () => {
        await terminator.shutdown()
        cleanup()
      },
    }
  } catch (err) {
    cleanup()
    throw err
  }
}
