'use strict'
// Scenario 6, the machine's limits measured in the same run: OpenSSL's
// AES-128-GCM speed on one core (what record encryption alone costs), and
// the public-key operations a server handshake needs (ECDSA P-256 and
// RSA-2048 signatures, one X25519 key agreement). The no-TLS limits that
// need the process layout (plain node:net bulk, accept+close, idle TCP
// connection, plain HTTP proxy) run through the scenario drivers with the
// 'net'/'plain' stacks, so they are measured exactly like the TLS stacks.
const { runPinned } = require('./child')

/** TLS records carry up to 16 KiB of plaintext (RFC 8446 §5.1). */
const RECORD_BYTES = 16384

async function opensslSpeed (args) {
  const { code, out } = await runPinned('server', 'openssl', ['speed', '-mr', ...args])
  if (code !== 0) throw new Error(`openssl speed ${args.join(' ')} exited with ${code}: ${out.slice(-500)}`)
  return out
}

/**
 * `openssl speed -evp aes-128-gcm` at the TLS record size on the server's
 * core: bytes per core-second, as MB (10^6 bytes) per CPU-second.
 */
async function measureAes (def) {
  const out = await opensslSpeed(['-evp', 'aes-128-gcm', '-bytes', String(RECORD_BYTES), '-seconds', String(def.seconds)])
  // -mr: "+F:<n>:<algorithm>:<bytes per second per block size>".
  const line = out.split('\n').find((l) => l.startsWith('+F:'))
  if (line === undefined) throw new Error(`no +F line in openssl speed output: ${out.slice(-300)}`)
  const bytesPerS = Number(line.split(':')[3])
  return { values: { aesMbPerCpuS: bytesPerS / 1e6 }, info: { blockBytes: RECORD_BYTES, bytesPerS }, problems: [] }
}

/** Signatures and key agreement per second on one core, as µs per operation. */
async function measurePublicKey (def) {
  const out = await opensslSpeed(['-seconds', String(def.seconds), 'ecdsap256', 'rsa2048', 'ecdhx25519'])
  const values = {}
  for (const line of out.split('\n')) {
    const f = line.split(':')
    // "+F2:<k>:<bits>:<sign/s>:<verify/s>" (RSA), "+F4:..." (ECDSA), "+F5:<k>:<bits>:<ops/s>:<s/op>" (ECDH).
    if (f[0] === '+F2' && f[2] === '2048') values.rsa2048SignUs = 1e6 / Number(f[3])
    if (f[0] === '+F4' && f[2] === '256') values.ecdsaP256SignUs = 1e6 / Number(f[3])
    if (f[0] === '+F5' && f[2] === '253') values.x25519Us = 1e6 / Number(f[3])
  }
  const problems = ['rsa2048SignUs', 'ecdsaP256SignUs', 'x25519Us'].filter((k) => !(values[k] > 0)).map((k) => `openssl speed gave no ${k}`)
  return { values, info: {}, problems }
}

function limitCases (mode) {
  const seconds = mode === 'quick' ? 1 : 2
  return [
    { id: 'aes-128-gcm', kind: 'aes', stacks: ['openssl'], title: 'openssl speed -evp aes-128-gcm, 16 KiB blocks, one core', seconds },
    { id: 'public-key', kind: 'public-key', stacks: ['openssl'], title: 'openssl speed ecdsap256 rsa2048 ecdhx25519, one core', seconds: 1 },
  ]
}

module.exports = { limitCases, measureAes, measurePublicKey }
