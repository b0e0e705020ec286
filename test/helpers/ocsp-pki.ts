// A small PKI for OCSP stapling tests, made with the openssl CLI: a root CA,
// an intermediate (the issuer), leaves whose AIA names an OCSP responder on
// loopback, a delegated responder certificate (id-kp-OCSPSigning), and
// `openssl ocsp` as the responder over the index file of the issuer.
import fs from 'node:fs'
import path from 'node:path'

import { type Daemon, freePort, openssl, startDaemon } from './peers'

export interface OcspPki {
  dir: string
  /** Port the leaves' AIA names (http://127.0.0.1:PORT). */
  port: number
  root: string
  issuer: string
  issuerKey: string
  /** Delegated responder: certificate and key. */
  responder: string
  responderKey: string
  /** Leaf certificate/key files by name; `chain` is leaf + issuer. */
  leaves: Record<string, { cert: string, key: string, chain: string, serial: string }>
}

async function ossl (args: string[]): Promise<void> {
  const r = await openssl(args)
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`)
}

/** Builds the PKI in `dir`, with one leaf per name (DNS name = the name). */
export async function makeOcspPki (dir: string, names: readonly string[]): Promise<OcspPki> {
  const port = await freePort()
  const f = (name: string): string => path.join(dir, name)
  const ext = (name: string, text: string): string => {
    fs.writeFileSync(f(name), text)
    return f(name)
  }
  await ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('root.key'), '-out', f('root.pem'),
    '-subj', '/CN=OCSP Test Root', '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  const caExt = ext('ca.ext', 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n')
  await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('issuer.key'), '-out', f('issuer.csr'), '-subj', '/CN=OCSP Test Issuer'])
  await ossl(['x509', '-req', '-in', f('issuer.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-CAcreateserial', '-out', f('issuer.pem'), '-days', '30', '-extfile', caExt])
  const respExt = ext('resp.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=OCSPSigning\n')
  await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('responder.key'), '-out', f('responder.csr'), '-subj', '/CN=OCSP Test Responder'])
  await ossl(['x509', '-req', '-in', f('responder.csr'), '-CA', f('issuer.pem'), '-CAkey', f('issuer.key'), '-CAcreateserial', '-out', f('responder.pem'), '-days', '30', '-extfile', respExt])
  const leaves: OcspPki['leaves'] = {}
  for (const name of names) {
    const leafExt = ext(`${name}.ext`, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:${name}\nauthorityInfoAccess=OCSP;URI:http://127.0.0.1:${port}\n`)
    await ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`])
    await ossl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('issuer.pem'), '-CAkey', f('issuer.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '20', '-extfile', leafExt])
    fs.writeFileSync(f(`${name}.chain.pem`), fs.readFileSync(f(`${name}.pem`), 'utf8') + fs.readFileSync(f('issuer.pem'), 'utf8'))
    const serial = (await openssl(['x509', '-in', f(`${name}.pem`), '-noout', '-serial'])).stdout.trim().replace(/^serial=/, '')
    leaves[name] = { cert: f(`${name}.pem`), key: f(`${name}.key`), chain: f(`${name}.chain.pem`), serial }
  }
  return { dir, port, root: f('root.pem'), issuer: f('issuer.pem'), issuerKey: f('issuer.key'), responder: f('responder.pem'), responderKey: f('responder.key'), leaves }
}

/**
 * Writes the responder's index (openssl ca format): every leaf valid except
 * those in `revoked`.
 */
export function writeIndex (pki: OcspPki, revoked: readonly string[] = []): string {
  const file = path.join(pki.dir, 'index.txt')
  const lines = Object.entries(pki.leaves).map(([name, leaf]) => revoked.includes(name)
    ? `R\t351231235959Z\t${stamp(new Date(Date.now() - 3_600_000))}\t${leaf.serial}\tunknown\t/CN=${name}`
    : `V\t351231235959Z\t\t${leaf.serial}\tunknown\t/CN=${name}`)
  fs.writeFileSync(file, lines.join('\n') + '\n')
  fs.writeFileSync(`${file}.attr`, 'unique_subject = no\n')
  return file
}

function stamp (d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
}

export type Responder = Daemon

/**
 * `openssl ocsp` on the PKI's port. `validMinutes`: nextUpdate = now + that
 * (-nmin); `signer` 'delegate' (default) or 'issuer'.
 */
export async function startResponder (pki: OcspPki, options: { revoked?: string[], validMinutes?: number, signer?: 'delegate' | 'issuer' | 'stranger' } = {}): Promise<Responder> {
  const index = writeIndex(pki, options.revoked)
  const [signer, key] = options.signer === 'issuer'
    ? [pki.issuer, pki.issuerKey]
    : options.signer === 'stranger' ? [pki.root, path.join(pki.dir, 'root.key')] : [pki.responder, pki.responderKey]
  return startDaemon('openssl', ['ocsp', '-index', index, '-CA', pki.issuer, '-rsigner', signer, '-rkey', key,
    '-port', String(pki.port), '-nmin', String(options.validMinutes ?? 60), '-ignore_err'],
  { ready: (log) => /waiting for OCSP client connections/i.test(log), timeoutMs: 10_000 })
}
