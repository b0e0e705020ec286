// pebble, the ACME test server, on loopback: built (and cached) by
// scripts/ci-pebble.sh, configured here with the ports its validation
// authority connects to (tlsPort for tls-alpn-01, httpPort for http-01),
// and pointed at a small DNS server of ours that answers 127.0.0.1 for
// every name, so identifiers like a.acme.test validate against 127.0.0.1.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import { repoRoot } from './certs'
import { freePort, startDaemon } from './peers'

let binary: string | undefined

/** The pebble binary (scripts/ci-pebble.sh builds it once into a cache). */
export function pebbleBinary (): string {
  binary ??= execFileSync('bash', [path.join(repoRoot(), 'scripts', 'ci-pebble.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim()
  return binary
}

/**
 * A DNS server over TCP (pebble's -dnsserver speaks TCP): A 127.0.0.1 for
 * every question, no AAAA, so the validation authority dials loopback.
 */
export async function loopbackDns (): Promise<{ port: number, close: () => void }> {
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0)
    socket.on('error', () => socket.destroy())
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0))
        buf = buf.subarray(2 + msg.length)
        socket.write(answer(msg))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() }
}

/** The response to one query (RFC 1035 §4.1), length-prefixed for TCP. */
function answer (query: Buffer): Buffer {
  // Header (12 bytes), then one question: name labels, type, class.
  let end = 12
  while (end < query.length && query[end] !== 0) end += query[end] + 1
  const question = query.subarray(12, end + 5)
  const type = query.readUInt16BE(end + 1)
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2)
  header.writeUInt16BE(0x8180, 2) // response, recursion desired/available, no error
  header.writeUInt16BE(1, 4)
  const records: Buffer[] = []
  if (type === 1) {
    // A pointer to the question's name, type A, class IN, TTL 1, 127.0.0.1.
    records.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 0, 1]))
  }
  header.writeUInt16BE(records.length, 6)
  const body = Buffer.concat([header, question, ...records])
  const length = Buffer.alloc(2)
  length.writeUInt16BE(body.length)
  return Buffer.concat([length, body])
}

export interface PebbleOptions {
  /** Where the validation authority connects for tls-alpn-01 (default: a free port). */
  tlsPort?: number
  /** Where it connects for http-01 (default: a free port). */
  httpPort?: number
  /** Profiles: name → validity in seconds. */
  profiles?: Record<string, number>
  /** Names pebble refuses to issue for. */
  blocklist?: string[]
}

export interface Pebble {
  directory: string
  /** PEM CA of the certificate pebble serves its directory with. */
  directoryCa: string
  tlsPort: number
  httpPort: number
  /** PEM of the root pebble issues under (from its management interface). */
  issuerRoot: () => Promise<string>
  log: () => string
  stop: () => Promise<void>
}

export async function startPebble (options: PebbleOptions = {}): Promise<Pebble> {
  const bin = pebbleBinary()
  const files = path.dirname(bin)
  const dns = await loopbackDns()
  const [port, managementPort] = [await freePort(), await freePort()]
  const tlsPort = options.tlsPort ?? await freePort()
  const httpPort = options.httpPort ?? await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-pebble-'))
  const profiles: Record<string, { description: string, validityPeriod: number }> = {
    default: { description: 'default', validityPeriod: 7_776_000 },
  }
  for (const [name, seconds] of Object.entries(options.profiles ?? {})) profiles[name] = { description: name, validityPeriod: seconds }
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${port}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: path.join(files, 'cert.pem'),
      privateKey: path.join(files, 'key.pem'),
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      domainBlocklist: options.blocklist ?? ['blocked.acme.test'],
      retryAfter: { authz: 1, order: 1 },
      keyAlgorithm: 'ecdsa',
      profiles,
    },
  }
  const configFile = path.join(dir, 'pebble.json')
  fs.writeFileSync(configFile, JSON.stringify(config))
  // No random validation delays; nonces still get rejected now and then
  // (pebble's default 5 %), which the client must retry (RFC 8555 §6.5).
  const daemon = await startDaemon(bin, ['-config', configFile, '-dnsserver', `127.0.0.1:${dns.port}`], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1' },
    ready: (log) => log.includes('ACME directory available'),
    timeoutMs: 20_000,
  }).catch((err: unknown) => {
    dns.close()
    throw err
  })
  const directoryCa = fs.readFileSync(path.join(files, 'pebble.minica.pem'), 'utf8')
  return {
    directory: `https://127.0.0.1:${port}/dir`,
    directoryCa,
    tlsPort,
    httpPort,
    issuerRoot: async () => {
      const out = execFileSync('curl', ['-sS', '--cacert', path.join(files, 'pebble.minica.pem'), `https://127.0.0.1:${managementPort}/roots/0`], { encoding: 'utf8' })
      return out
    },
    log: daemon.log,
    stop: async () => {
      dns.close()
      await daemon.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
