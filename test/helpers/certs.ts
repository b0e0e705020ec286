// Test PKI produced by scripts/gen-certs.js (see that file for what each
// certificate is for). The generator runs at most once per process; it is a
// no-op when test/fixtures/generated is already fresh.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

/** Every file the generator guarantees (mirrors FILES in scripts/gen-certs.js). */
export const FIXTURE_FILES = [
  'ca.pem', 'ca.key', 'int.pem', 'int.key', 'chain-int.pem',
  'other-ca.pem', 'other-ca.key', 'client-ca.pem', 'client-ca.key',
  'localhost-ecdsa.pem', 'localhost-ecdsa-chain.pem', 'localhost-ecdsa.key',
  'localhost-rsa.pem', 'localhost-rsa-chain.pem', 'localhost-rsa.key',
  'a-ecdsa.pem', 'a-ecdsa-chain.pem', 'a-ecdsa.key',
  'a-rsa.pem', 'a-rsa-chain.pem', 'a-rsa.key',
  'b-ecdsa.pem', 'b-ecdsa-chain.pem', 'b-ecdsa.key',
  'expired.pem', 'expired-chain.pem', 'expired.key',
  'wrong-host.pem', 'wrong-host-chain.pem', 'wrong-host.key',
  'other-localhost.pem', 'other-localhost-chain.pem', 'other-localhost.key',
  'ocsp-responder.pem', 'ocsp-responder-chain.pem', 'ocsp-responder.key',
  'client.pem', 'client-chain.pem', 'client.key',
  'client-revoked.pem', 'client-revoked-chain.pem', 'client-revoked.key',
  'client-expired.pem', 'client-expired-chain.pem', 'client-expired.key',
  'client-other.pem', 'client-other-chain.pem', 'client-other.key',
  'client-ca.crl.pem', 'client-ca-empty.crl.pem',
  'localhost-ecdsa.sec1.key', 'localhost-rsa.pkcs1.key',
  'localhost-ecdsa.enc.key', 'localhost-rsa.enc-pkcs1.key',
  'mismatch.key',
  'localhost-ecdsa.ocsp.der', 'a-ecdsa.ocsp.der',
  'ticket-keys.bin', 'ticket-keys-other.bin',
  'openssl.cnf', 'stamp.json',
] as const

export type FixtureFile = typeof FIXTURE_FILES[number]

/** Leaf certificates that come as `<name>.pem`, `<name>-chain.pem`, `<name>.key`. */
export type LeafName =
  | 'localhost-ecdsa' | 'localhost-rsa' | 'a-ecdsa' | 'a-rsa' | 'b-ecdsa'
  | 'expired' | 'wrong-host' | 'other-localhost' | 'ocsp-responder'
  | 'client' | 'client-revoked' | 'client-expired' | 'client-other'

/** Passphrase of localhost-ecdsa.enc.key and localhost-rsa.enc-pkcs1.key. */
export const FIXTURE_PASSPHRASE = 'fixture-pass'

export interface CertKey {
  /** Leaf certificate only (PEM). */
  readonly cert: Buffer
  /** PKCS#8 private key (PEM, unencrypted). */
  readonly key: Buffer
  /** Leaf followed by the intermediate when an intermediate signed it (PEM). */
  readonly chain: Buffer
  readonly certPath: string
  readonly keyPath: string
  readonly chainPath: string
}

export interface Fixtures {
  /** Absolute directory holding the generated set. */
  readonly dir: string
  /** Absolute path of a generated file. */
  path (name: FixtureFile): string
  /** File contents, read once and cached. */
  read (name: FixtureFile): Buffer
  leaf (name: LeafName): CertKey
  readonly passphrase: string
  /** Root CA (PEM). Signs localhost-*, expired, wrong-host, int and the OCSP responder. */
  readonly ca: Buffer
  /** Intermediate CA (PEM). Signs a-*, b-ecdsa. */
  readonly intermediate: Buffer
  /** Unrelated root (PEM). Signs other-localhost, client-other. */
  readonly otherCa: Buffer
  /** Client CA (PEM). Signs client, client-revoked, client-expired. */
  readonly clientCa: Buffer
  /** Client CA CRL revoking client-revoked (PEM). */
  readonly clientCrl: Buffer
  /** Client CA CRL with no revoked certificate (PEM). */
  readonly clientCrlEmpty: Buffer
  readonly localhostEcdsa: CertKey
  readonly localhostRsa: CertKey
  readonly aEcdsa: CertKey
  readonly aRsa: CertKey
  readonly bEcdsa: CertKey
  readonly expired: CertKey
  readonly wrongHost: CertKey
  readonly otherLocalhost: CertKey
  readonly client: CertKey
  readonly clientRevoked: CertKey
  readonly clientExpired: CertKey
  readonly clientOther: CertKey
  /** DER OCSP response, status good, for localhost-ecdsa (signed by ocsp-responder). */
  readonly localhostEcdsaOcsp: Buffer
  /** DER OCSP response, status good, for a-ecdsa (signed by the intermediate itself). */
  readonly aEcdsaOcsp: Buffer
  /** 160 bytes: two 80-byte ticket keys. */
  readonly ticketKeys: Buffer
  /** 80 bytes: one ticket key unrelated to ticketKeys. */
  readonly ticketKeysOther: Buffer
}

/**
 * The repository root: the nearest ancestor holding scripts/gen-certs.js, so
 * this works from dist/test/helpers (compiled) and from test/helpers alike.
 */
export function repoRoot (): string {
  let dir = __dirname
  for (;;) {
    if (fs.existsSync(path.join(dir, 'scripts', 'gen-certs.js')) &&
        fs.existsSync(path.join(dir, 'package.json'))) return dir
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`certs: no repository root above ${__dirname}`)
    dir = parent
  }
}

class GeneratedFixtures implements Fixtures {
  readonly passphrase = FIXTURE_PASSPHRASE
  private readonly cache = new Map<FixtureFile, Buffer>()

  constructor (readonly dir: string) {}

  path (name: FixtureFile): string {
    return path.join(this.dir, name)
  }

  read (name: FixtureFile): Buffer {
    let data = this.cache.get(name)
    if (data === undefined) {
      data = fs.readFileSync(this.path(name))
      this.cache.set(name, data)
    }
    return data
  }

  leaf (name: LeafName): CertKey {
    const certPath = this.path(`${name}.pem`)
    const keyPath = this.path(`${name}.key`)
    const chainPath = this.path(`${name}-chain.pem`)
    const read = (file: FixtureFile): Buffer => this.read(file)
    return {
      certPath,
      keyPath,
      chainPath,
      get cert () { return read(`${name}.pem`) },
      get key () { return read(`${name}.key`) },
      get chain () { return read(`${name}-chain.pem`) },
    }
  }

  get ca (): Buffer { return this.read('ca.pem') }
  get intermediate (): Buffer { return this.read('int.pem') }
  get otherCa (): Buffer { return this.read('other-ca.pem') }
  get clientCa (): Buffer { return this.read('client-ca.pem') }
  get clientCrl (): Buffer { return this.read('client-ca.crl.pem') }
  get clientCrlEmpty (): Buffer { return this.read('client-ca-empty.crl.pem') }
  get localhostEcdsa (): CertKey { return this.leaf('localhost-ecdsa') }
  get localhostRsa (): CertKey { return this.leaf('localhost-rsa') }
  get aEcdsa (): CertKey { return this.leaf('a-ecdsa') }
  get aRsa (): CertKey { return this.leaf('a-rsa') }
  get bEcdsa (): CertKey { return this.leaf('b-ecdsa') }
  get expired (): CertKey { return this.leaf('expired') }
  get wrongHost (): CertKey { return this.leaf('wrong-host') }
  get otherLocalhost (): CertKey { return this.leaf('other-localhost') }
  get client (): CertKey { return this.leaf('client') }
  get clientRevoked (): CertKey { return this.leaf('client-revoked') }
  get clientExpired (): CertKey { return this.leaf('client-expired') }
  get clientOther (): CertKey { return this.leaf('client-other') }
  get localhostEcdsaOcsp (): Buffer { return this.read('localhost-ecdsa.ocsp.der') }
  get aEcdsaOcsp (): Buffer { return this.read('a-ecdsa.ocsp.der') }
  get ticketKeys (): Buffer { return this.read('ticket-keys.bin') }
  get ticketKeysOther (): Buffer { return this.read('ticket-keys-other.bin') }
}

let instance: Fixtures | undefined

/** Generates the fixture set if needed (once per process) and returns it. */
export function fixtures (): Fixtures {
  if (instance !== undefined) return instance
  const root = repoRoot()
  const dir = path.join(root, 'test', 'fixtures', 'generated')
  try {
    execFileSync(process.execPath, [path.join(root, 'scripts', 'gen-certs.js'), dir], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
  } catch (err) {
    const e = err as { stderr?: Buffer, message: string }
    const detail = e.stderr !== undefined && e.stderr.length > 0 ? e.stderr.toString().trim() : e.message
    throw new Error(`certs: scripts/gen-certs.js failed:\n${detail}`)
  }
  instance = new GeneratedFixtures(dir)
  return instance
}
