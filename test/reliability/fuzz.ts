// The pump fuzzer's engine (issue 6, item 1): byte streams recorded from
// real handshakes (node:tls, openssl, rustls itself; see fuzz-pump.test.ts),
// mutated (truncated, bit-flipped, length fields rewritten, records spliced,
// dropped, duplicated, random bytes) and fed to fresh server and client
// Connections through `feed`, in random chunk sizes, then EOF. Input i of a
// run is a pure function of (seed, i, corpus), so any input can be replayed
// on its own (fuzz-worker.js SEED INDEX 1).
//
// Outcome of each input, checked here: `feed` never throws, never stalls
// (no progress without PlainFull / NeedConfig / an error), reports
// Flag.Error exactly when results[Error] is set, and the connection ends
// either with a clean error code (rustls_result 7001-7999 or the local
// 9001/9002) or, after a received close_notify, with an orderly EOF.
import { addon, Flag, type NativeConnection, type NativeHandle, results, Slot } from '../../lib/native'
import type { Fixtures } from '../helpers/certs'

export type Direction = 'toServer' | 'toClient'

export interface Transcript {
  /** Where it was recorded, e.g. "node:tls TLS1.3 ecdsa". */
  name: string
  direction: Direction
  bytes: Buffer
}

export interface CorpusFile {
  transcripts: Array<{ name: string, direction: Direction, base64: string }>
}

/** Per-input facts, aggregated by the worker. */
export interface InputOutcome {
  target: 'server' | 'client' | 'established'
  /** The final error code (0: closed in order after close_notify). */
  code: number
  handshakeDone: boolean
  /** Bytes of plaintext delivered (a mutation that still decrypted). */
  plain: number
  ms: number
}

export class FuzzFinding extends Error {
  constructor (message: string, readonly input: Buffer) {
    super(message)
  }
}

// ---- deterministic randomness ------------------------------------------

/** mulberry32: small, fast, good enough to pick mutations; seeded per input. */
export class Rng {
  #s: number
  constructor (seed: number) { this.#s = seed >>> 0 }
  next (): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (a: readonly T[]): T { return a[this.int(a.length)] }
  chance (p: number): boolean { return this.next() < p }
  bytes (n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
}

/** The seed of input `index` of run `seed` (splitmix-style mixing). */
export function inputSeed (seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

// ---- TLS record layer (RFC 8446 §5.1) ------------------------------------

/** Offsets of the records in a byte stream (a trailing partial record excluded). */
export function recordOffsets (bytes: Buffer): number[] {
  const out: number[] = []
  let off = 0
  while (off + 5 <= bytes.length) {
    const len = bytes.readUInt16BE(off + 3)
    if (off + 5 + len > bytes.length) break
    out.push(off)
    off += 5 + len
  }
  return out
}

function recordAt (bytes: Buffer, off: number): Buffer {
  return bytes.subarray(off, off + 5 + bytes.readUInt16BE(off + 3))
}

const INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x14, 0x15, 0x16, 0x17, 0x18, 0x7f, 0x80, 0xfe, 0xff]
const INTERESTING16 = [0x0000, 0x0001, 0x0004, 0x0005, 0x00ff, 0x0100, 0x3fff, 0x4000, 0x4001, 0x4100, 0x4800, 0x4801, 0x7fff, 0x8000, 0xffff]

/** One mutation of `input`; `other` is another transcript for splicing. */
function mutateOnce (rng: Rng, input: Buffer, other: Buffer): Buffer {
  const b = Buffer.from(input)
  const records = recordOffsets(b)
  switch (rng.int(12)) {
    case 0: { // truncate anywhere
      return b.subarray(0, rng.int(b.length + 1))
    }
    case 1: { // truncate near a record boundary
      if (records.length === 0) return b.subarray(0, rng.int(b.length + 1))
      const at = rng.pick(records) + rng.int(12) - 2
      return b.subarray(0, Math.max(0, Math.min(b.length, at)))
    }
    case 2: { // flip 1-8 bits
      if (b.length === 0) return b
      for (let i = 1 + rng.int(8); i > 0; i--) b[rng.int(b.length)] ^= 1 << rng.int(8)
      return b
    }
    case 3: { // flip bits in the first record (mostly a hello)
      if (records.length === 0 || b.length === 0) return b
      const end = Math.min(b.length, 5 + b.readUInt16BE(3))
      for (let i = 1 + rng.int(4); i > 0; i--) b[rng.int(end)] ^= 1 << rng.int(8)
      return b
    }
    case 4: { // interesting byte values
      if (b.length === 0) return b
      for (let i = 1 + rng.int(4); i > 0; i--) b[rng.int(b.length)] = rng.pick(INTERESTING)
      return b
    }
    case 5: { // a record's length field
      if (records.length === 0) return b
      b.writeUInt16BE(rng.chance(0.7) ? rng.pick(INTERESTING16) : rng.int(0x10000), rng.pick(records) + 3)
      return b
    }
    case 6: { // a handshake message's 24-bit length or a 16-bit length inside it
      if (records.length === 0) return b
      const r = rng.pick(records)
      const len = b.readUInt16BE(r + 3)
      if (b[r] === 0x16 && len >= 4) {
        if (rng.chance(0.5)) b.writeUIntBE(rng.chance(0.5) ? rng.pick(INTERESTING16) : rng.int(0x1000000), r + 6, 3)
        else if (len >= 6) b.writeUInt16BE(rng.pick(INTERESTING16), r + 5 + 4 + rng.int(len - 5))
      } else {
        b[r] = rng.pick([0x14, 0x15, 0x16, 0x17, 0x18, rng.int(256)])
      }
      return b
    }
    case 7: { // content type or version of a record
      if (records.length === 0) return b
      const r = rng.pick(records)
      if (rng.chance(0.5)) b[r] = rng.pick([0x14, 0x15, 0x16, 0x17, 0x18, 0x00, 0xff])
      else b.writeUInt16BE(rng.pick([0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0002, 0xfefd, rng.int(0x10000)]), r + 1)
      return b
    }
    case 8: { // drop, duplicate or swap records
      if (records.length < 1) return b
      const parts = records.map((r) => recordAt(b, r))
      const i = rng.int(parts.length)
      const op = rng.int(3)
      if (op === 0) parts.splice(i, 1)
      else if (op === 1) parts.splice(i, 0, parts[i])
      else {
        const j = rng.int(parts.length)
        ;[parts[i], parts[j]] = [parts[j], parts[i]]
      }
      return Buffer.concat(parts)
    }
    case 9: { // insert or delete bytes
      const at = rng.int(b.length + 1)
      if (rng.chance(0.5)) return Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(32)), b.subarray(at)])
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(64)))])
    }
    case 10: { // splice with another transcript
      const a = rng.int(b.length + 1)
      const c = rng.int(other.length + 1)
      return Buffer.concat([b.subarray(0, a), other.subarray(c)])
    }
    default: { // split one record into two at a random point (legal fragmentation, RFC 8446 §5.1)
      if (records.length === 0) return b
      const r = rng.pick(records)
      const len = b.readUInt16BE(r + 3)
      if (len < 2) return b
      const cut = 1 + rng.int(len - 1)
      const head = Buffer.from(b.subarray(r, r + 5))
      const first = Buffer.concat([head, b.subarray(r + 5, r + 5 + cut)])
      first.writeUInt16BE(cut, 3)
      const second = Buffer.concat([head, b.subarray(r + 5 + cut, r + 5 + len)])
      second.writeUInt16BE(len - cut, 3)
      return Buffer.concat([b.subarray(0, r), first, second, b.subarray(r + 5 + len)])
    }
  }
}

/** Garbage, sometimes behind a plausible record header so it reaches the parsers. */
function randomInput (rng: Rng): Buffer {
  const body = rng.bytes(rng.int(rng.chance(0.1) ? 20_000 : 600))
  if (rng.chance(0.5)) return body
  const header = Buffer.from([rng.pick([0x16, 0x16, 0x15, 0x17, 0x14]), 0x03, rng.pick([0x01, 0x03, 0x04]), 0, 0])
  header.writeUInt16BE(rng.chance(0.8) ? body.length & 0xffff : rng.int(0x10000), 3)
  if (rng.chance(0.5) && body.length >= 4) {
    // A handshake header: type (ClientHello 1 / ServerHello 2 / ...) and a length.
    body[0] = rng.pick([1, 2, 4, 8, 11, 12, 13, 15, 16, 20, 24, rng.int(256)])
    body.writeUIntBE(rng.chance(0.7) ? Math.max(0, body.length - 4) : rng.int(0x1000000), 1, 3)
  }
  return Buffer.concat([header, body])
}

/** Splits `input` into the chunks fed one by one (one chunk half the time). */
function chunking (rng: Rng, length: number): number[] {
  if (length === 0 || rng.chance(0.5)) return [length]
  const sizes: number[] = []
  let left = length
  const small = rng.chance(0.3)
  while (left > 0) {
    const n = Math.min(left, 1 + rng.int(small ? 8 : 2048))
    sizes.push(n)
    left -= n
  }
  return sizes
}

// ---- the targets ----------------------------------------------------------

export interface Targets {
  /** Strict SNI, ECDSA + RSA, TLS 1.2 + 1.3, ALPN, session cache and tickets. */
  routerMain: NativeHandle
  /** Deferred routing (accept(config) after the hello), optional client auth. */
  routerDeferred: NativeHandle
  configClientAuth: NativeHandle
  /** TLS 1.3 only, relaxed SNI. */
  routerTls13: NativeHandle
  clientPlain: NativeHandle
  /** Sends a client certificate and ALPN. */
  clientWithCert: NativeHandle
  /** Destroys every handle above. */
  release: () => void
}

export function makeTargets (f: Fixtures): Targets {
  const ecdsa = new addon.CertifiedKey(f.localhostEcdsa.chain, f.localhostEcdsa.key)
  const rsa = new addon.CertifiedKey(f.localhostRsa.chain, f.localhostRsa.key)
  const a = new addon.CertifiedKey(f.aEcdsa.chain, f.aEcdsa.key)
  const clientKey = new addon.CertifiedKey(f.client.chain, f.client.key)
  const cache = new addon.SessionCache(256)
  const ticketer = new addon.Ticketer(f.ticketKeys, 3600)
  const main = new addon.ServerConfig({
    certifiedKeys: [ecdsa, rsa], versions: [0x0303, 0x0304], ignoreClientOrder: false, alpn: ['h2', 'http/1.1'],
    sessionCache: cache, ticketer, sendTickets: 2,
  })
  const clientAuth = new addon.ServerConfig({
    certifiedKeys: [ecdsa], versions: [0x0303, 0x0304], ignoreClientOrder: true,
    clientAuth: { ca: f.clientCa, crls: [f.clientCrl], optional: true }, sendTickets: 1,
  })
  const tls13 = new addon.ServerConfig({ certifiedKeys: [a], versions: [0x0304], ignoreClientOrder: false, sendTickets: 0 })
  const routerMain = new addon.HostRouter([{ names: ['localhost'], config: main }], { strictSNI: true, deferred: false })
  const routerDeferred = new addon.HostRouter([{ names: ['localhost'], config: clientAuth }], { strictSNI: true, deferred: true })
  const routerTls13 = new addon.HostRouter([{ names: ['a.example.test', '*.a.example.test'], config: tls13 }], { strictSNI: false, deferred: false })
  const clientPlain = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304] })
  const clientWithCert = new addon.ClientConfig({ ca: f.ca, versions: [0x0303, 0x0304], alpn: ['h2', 'http/1.1'], certifiedKeys: [clientKey] })
  // Configs hold their own references to the keys (rustls Arcs).
  for (const k of [ecdsa, rsa, a, clientKey]) k.destroy()
  const handles = [routerMain, routerDeferred, routerTls13, main, clientAuth, tls13, clientPlain, clientWithCert, cache, ticketer]
  return {
    routerMain,
    routerDeferred,
    configClientAuth: clientAuth,
    routerTls13,
    clientPlain,
    clientWithCert,
    release: () => { for (const h of handles) h.destroy() },
  }
}

const slab = Buffer.alloc(1 << 17)

/** One flush of a connection's pending ciphertext (a client's hello, alerts). */
function drain (conn: NativeConnection): Buffer {
  conn.flush(slab, 0, slab.length)
  return Buffer.from(slab.subarray(0, results[Slot.Cipher]))
}

interface FeedState {
  error: number
  handshakeDone: boolean
  peerClosed: boolean
  plain: number
}

function clean (code: number): boolean {
  return (code > 7000 && code < 8000) || code === 9001 || code === 9002
}

/**
 * Feeds `input` in `chunks`, then EOF, checking every call's results.
 * Throws FuzzFinding on any violation.
 */
function feedAll (conn: NativeConnection, input: Buffer, chunks: number[], capacity: number, deferredConfig: NativeHandle | null): FeedState {
  const st: FeedState = { error: 0, handshakeDone: false, peerClosed: false, plain: 0 }
  const check = (what: string, length: number, out: Buffer | undefined): number => {
    const flags = results[Slot.Flags]
    const error = results[Slot.Error]
    const consumed = results[Slot.Consumed]
    const plain = results[Slot.Plain]
    if (((flags & Flag.Error) !== 0) !== (error !== 0)) throw new FuzzFinding(`${what}: Flag.Error=${(flags & Flag.Error) !== 0} but results[Error]=${error}`, input)
    if (error !== 0 && !clean(error)) throw new FuzzFinding(`${what}: unclean error code ${error}`, input)
    if (consumed < 0 || consumed > length) throw new FuzzFinding(`${what}: consumed ${consumed} of ${length}`, input)
    if (plain < 0 || plain > capacity) throw new FuzzFinding(`${what}: ${plain} plaintext bytes in a ${capacity}-byte region`, input)
    if ((out?.length ?? 0) !== results[Slot.Cipher]) throw new FuzzFinding(`${what}: returned ${out?.length ?? 0} bytes, results[Cipher]=${results[Slot.Cipher]}`, input)
    if ((flags & Flag.HandshakeDone) !== 0) st.handshakeDone = true
    if ((flags & Flag.PeerClosed) !== 0) st.peerClosed = true
    st.plain += plain
    if (error !== 0) st.error = error
    return flags
  }
  let offset = 0
  for (const size of chunks) {
    const end = offset + size
    let guard = 0
    while (offset < end && st.error === 0) {
      const out = conn.feed(input, offset, end - offset, slab, 0, capacity)
      const flags = check('feed', end - offset, out)
      const consumed = results[Slot.Consumed]
      offset += consumed
      if (st.error !== 0) break
      if ((flags & Flag.NeedConfig) !== 0) {
        const accepted = conn.accept(deferredConfig, 0)
        check('accept', 0, accepted)
        continue
      }
      if (consumed === 0 && (flags & Flag.PlainFull) === 0) {
        if (st.peerClosed) { offset = end; break }
        throw new FuzzFinding(`feed made no progress at offset ${offset} (flags 0x${flags.toString(16)})`, input)
      }
      if (++guard > 100_000) throw new FuzzFinding('feed loops without end', input)
    }
    if (st.error !== 0) break
    offset = end
  }
  if (st.error === 0) {
    let out = conn.feed(null, 0, 0, slab, 0, capacity)
    let flags = check('eof', 0, out)
    // Plaintext still queued (PlainFull) is drained before the EOF counts.
    for (let i = 0; (flags & Flag.PlainFull) !== 0 && st.error === 0; i++) {
      if (i > 100_000) throw new FuzzFinding('EOF never completes', input)
      out = conn.feed(null, 0, 0, slab, 0, capacity)
      flags = check('eof', 0, out)
    }
    if (st.error === 0 && !st.peerClosed) throw new FuzzFinding('EOF without close_notify ended without an error', input)
  }
  if (st.error !== 0) {
    // Sticky: the connection refuses more input with the same code.
    conn.feed(Buffer.from([0x16]), 0, 1, slab, 0, capacity)
    if (results[Slot.Error] !== st.error) throw new FuzzFinding(`error not sticky: ${st.error} then ${results[Slot.Error]}`, input)
  }
  return st
}

/** A client and a server of `targets` with a completed handshake. */
function establishedPair (t: Targets, rng: Rng): { server: NativeConnection, client: NativeConnection } {
  const server = new addon.Connection(t.routerMain)
  const client = new addon.Connection(rng.chance(0.5) ? t.clientPlain : t.clientWithCert, 'localhost')
  let toServer = drain(client)
  for (let i = 0; i < 10 && toServer.length > 0; i++) {
    const s = server.feed(toServer, 0, toServer.length, slab, 0, slab.length) ?? Buffer.alloc(0)
    if (results[Slot.Error] !== 0) throw new Error(`pair handshake failed on the server: ${results[Slot.Error]}`)
    toServer = client.feed(s, 0, s.length, slab, 0, slab.length) ?? Buffer.alloc(0)
    if (results[Slot.Error] !== 0) throw new Error(`pair handshake failed on the client: ${results[Slot.Error]}`)
  }
  return { server, client }
}

function encrypt (conn: NativeConnection, plain: Buffer): Buffer {
  conn.write(plain, 0, plain.length, slab, 0, slab.length)
  return Buffer.from(slab.subarray(0, results[Slot.Cipher]))
}

export interface Generated {
  target: 'server' | 'client' | 'established'
  input: Buffer
  describe: string
}

/**
 * Runs input `index` of run `seed`. `trace` (optional) is told the input
 * before it is fed, so a crash leaves it behind.
 */
export function runInput (t: Targets, corpus: Transcript[], seed: number, index: number, trace?: (g: Generated) => void): InputOutcome {
  const rng = new Rng(inputSeed(seed, index))
  const started = process.hrtime.bigint()
  const toServer = corpus.filter((c) => c.direction === 'toServer')
  const toClient = corpus.filter((c) => c.direction === 'toClient')
  const capacity = rng.pick([slab.length, slab.length, 4096, 1000, 17])
  const roll = rng.int(100)
  let outcome: InputOutcome
  if (roll < 6) {
    // After a real handshake: mutated application data, alerts, KeyUpdate,
    // close_notify from the peer.
    const { server, client } = establishedPair(t, rng)
    try {
      const toS = rng.chance(0.5)
      const [from, to] = toS ? [client, server] : [server, client]
      const parts: Buffer[] = []
      for (let i = rng.int(4); i >= 0; i--) parts.push(encrypt(from, rng.bytes(rng.int(rng.chance(0.2) ? 40_000 : 300))))
      if (rng.chance(0.5)) {
        from.sendCloseNotify()
        parts.push(drain(from))
      }
      let input: Buffer = Buffer.concat(parts)
      const mutations = rng.int(3)
      for (let i = 0; i < mutations; i++) input = mutateOnce(rng, input, rng.pick(corpus).bytes)
      const g: Generated = { target: 'established', input, describe: `established ${toS ? 'client→server' : 'server→client'}, ${mutations} mutation(s)` }
      trace?.(g)
      const st = feedAll(to, input, chunking(rng, input.length), capacity, null)
      if (mutations === 0 && st.error !== 0 && !(st.error === 7010)) throw new FuzzFinding(`an unmodified stream failed with ${st.error}`, input)
      outcome = { target: 'established', code: st.error, handshakeDone: true, plain: st.plain, ms: 0 }
    } finally {
      server.destroy()
      client.destroy()
    }
  } else {
    const server = roll < 60
    let input: Buffer
    let describe: string
    if (rng.chance(0.12)) {
      input = randomInput(rng)
      describe = 'random bytes'
    } else {
      const base = rng.pick(server ? toServer : toClient)
      input = base.bytes
      const mutations = 1 + rng.int(rng.chance(0.2) ? 6 : 2)
      for (let i = 0; i < mutations; i++) input = mutateOnce(rng, input, rng.pick(corpus).bytes)
      describe = `${base.name} (${base.direction}), ${mutations} mutation(s)`
    }
    let conn: NativeConnection
    let deferred: NativeHandle | null = null
    if (server) {
      const which = rng.int(10)
      if (which < 6) conn = new addon.Connection(t.routerMain)
      else if (which < 8) {
        conn = new addon.Connection(t.routerDeferred)
        // Refusing in accept() (null) is a path of its own.
        deferred = rng.chance(0.85) ? t.configClientAuth : null
      } else conn = new addon.Connection(t.routerTls13)
    } else {
      conn = new addon.Connection(rng.chance(0.7) ? t.clientPlain : t.clientWithCert, 'localhost')
      drain(conn)
    }
    const g: Generated = { target: server ? 'server' : 'client', input, describe }
    trace?.(g)
    try {
      const st = feedAll(conn, input, chunking(rng, input.length), capacity, deferred)
      outcome = { target: g.target, code: st.error, handshakeDone: st.handshakeDone, plain: st.plain, ms: 0 }
    } finally {
      conn.destroy()
    }
  }
  outcome.ms = Number(process.hrtime.bigint() - started) / 1e6
  return outcome
}

export function loadCorpus (file: CorpusFile): Transcript[] {
  return file.transcripts.map((t) => ({ name: t.name, direction: t.direction, bytes: Buffer.from(t.base64, 'base64') }))
}
