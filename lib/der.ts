// DER (X.690) encoding and decoding, only as far as the ACME and OCSP code
// needs it: certificate requests, the tls-alpn-01 validation certificate,
// OCSP requests and responses. Decoding never trusts a length: a TLV that
// runs past its parent is a DerError, so a malformed response from the
// network ends that operation and nothing else.

export class DerError extends Error {
  readonly code = 'ERR_RUSTLS_DER'
}

// ---- encoding ---------------------------------------------------------------

function lengthBytes (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

/** One TLV with the given tag byte. */
export function tlv (tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content])
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items))
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items))
export const nullValue = (): Buffer => Buffer.from([0x05, 0x00])
export const bool = (value: boolean): Buffer => tlv(0x01, Buffer.from([value ? 0xff : 0x00]))
export const octetString = (value: Buffer): Buffer => tlv(0x04, value)
export const utf8String = (value: string): Buffer => tlv(0x0c, Buffer.from(value, 'utf8'))
/** BIT STRING with no unused bits (keys, signatures). */
export const bitString = (value: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), value]))
/** [n] EXPLICIT (constructed, context-specific). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner)

/** INTEGER from a non-negative number or big-endian unsigned bytes. */
export function integer (value: number | Buffer): Buffer {
  let bytes: Buffer
  if (typeof value === 'number') {
    const list: number[] = []
    for (let v = value; v > 0; v = Math.floor(v / 256)) list.unshift(v & 0xff)
    bytes = Buffer.from(list.length === 0 ? [0] : list)
  } else {
    let i = 0
    while (i < value.length - 1 && value[i] === 0) i++
    bytes = value.subarray(i)
  }
  // A set top bit would read as negative: prefix a zero byte.
  if (bytes[0] >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes])
  return tlv(0x02, bytes)
}

export function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const out: number[] = [parts[0] * 40 + parts[1]]
  for (const part of parts.slice(2)) {
    const groups: number[] = []
    let v = part
    do {
      groups.unshift(v & 0x7f)
      v = Math.floor(v / 128)
    } while (v > 0)
    for (let i = 0; i < groups.length - 1; i++) groups[i] |= 0x80
    out.push(...groups)
  }
  return tlv(0x06, Buffer.from(out))
}

/** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 §4.1.2.5). */
export function time (date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso))
}

// ---- decoding ---------------------------------------------------------------

/** A decoded TLV: `content` is a view into the input, `raw` the whole TLV. */
export interface Node {
  tag: number
  content: Buffer
  raw: Buffer
}

/** Reads the TLV at `offset`; throws DerError if it does not fit in `buf`. */
export function read (buf: Buffer, offset = 0): Node {
  if (offset + 2 > buf.length) throw new DerError('truncated DER value')
  const tag = buf[offset]
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported')
  let len = buf[offset + 1]
  let start = offset + 2
  if (len & 0x80) {
    const count = len & 0x7f
    if (count === 0 || count > 4 || start + count > buf.length) throw new DerError('bad DER length')
    len = 0
    for (let i = 0; i < count; i++) len = len * 256 + buf[start + i]
    start += count
  }
  if (start + len > buf.length) throw new DerError('DER value runs past its container')
  return { tag, content: buf.subarray(start, start + len), raw: buf.subarray(offset, start + len) }
}

/** The TLVs inside a constructed value. */
export function children (node: Node): Node[] {
  const out: Node[] = []
  for (let offset = 0; offset < node.content.length;) {
    const child = read(node.content, offset)
    out.push(child)
    offset += child.raw.length
  }
  return out
}

/** Reads one whole DER value; trailing bytes are an error. */
export function parse (buf: Buffer): Node {
  const node = read(buf, 0)
  if (node.raw.length !== buf.length) throw new DerError('trailing bytes after the DER value')
  return node
}

export function expect (node: Node | undefined, tag: number, what: string): Node {
  if (node === undefined || node.tag !== tag) {
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got ${node === undefined ? 'nothing' : `0x${node.tag.toString(16)}`}`)
  }
  return node
}

export function oidString (node: Node): string {
  const b = expect(node, 0x06, 'OBJECT IDENTIFIER').content
  if (b.length === 0) throw new DerError('empty OBJECT IDENTIFIER')
  const parts = [Math.min(2, Math.floor(b[0] / 40)), b[0] - Math.min(2, Math.floor(b[0] / 40)) * 40]
  let v = 0
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f)
    if ((b[i] & 0x80) === 0) {
      parts.push(v)
      v = 0
    }
  }
  return parts.join('.')
}

/** GeneralizedTime (OCSP uses it, RFC 6960 §4.2.2.1) or UTCTime. */
export function readTime (node: Node): Date {
  const s = node.content.toString('latin1')
  const m = node.tag === 0x18
    ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(s)
    : node.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null
  if (m === null) throw new DerError(`not a UTC time: ${JSON.stringify(s)}`)
  let year = Number(m[1])
  if (node.tag === 0x17) year += year < 50 ? 2000 : 1900
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])))
}
