// An independent PROXY protocol reader for the tests, written from the
// HAProxy specification (sections 2.1 and 2.2), not from the encoder
// (native/src/proto/proxy_header.cc).

/** §2.2 TLV types and SSL sub-types. */
export const PP2 = {
  TYPE_ALPN: 0x01,
  TYPE_AUTHORITY: 0x02,
  TYPE_SSL: 0x20,
  SUBTYPE_SSL_VERSION: 0x21,
  SUBTYPE_SSL_CN: 0x22,
  SUBTYPE_SSL_CIPHER: 0x23,
  SUBTYPE_SSL_SIG_ALG: 0x24,
  SUBTYPE_SSL_KEY_ALG: 0x25,
  CLIENT_SSL: 0x01,
  CLIENT_CERT_CONN: 0x02,
  CLIENT_CERT_SESS: 0x04,
} as const
export interface ParsedTlv {
  type: number
  value: Buffer
}

export interface ParsedV2 {
  version: number
  command: number
  family: number
  transport: number
  length: number
  src?: string
  dst?: string
  srcPort?: number
  dstPort?: number
  tlvs: ParsedTlv[]
}

export interface ParsedSsl {
  client: number
  verify: number
  subs: ParsedTlv[]
}

const SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]

export function parseTlvs (b: Buffer): ParsedTlv[] {
  const out: ParsedTlv[] = []
  let i = 0
  while (i < b.length) {
    if (i + 3 > b.length) throw new Error(`truncated TLV header at ${i}`)
    const type = b[i]
    const len = (b[i + 1] << 8) | b[i + 2]
    if (i + 3 + len > b.length) throw new Error(`TLV 0x${type.toString(16)} overruns: ${len} bytes at ${i}`)
    out.push({ type, value: b.subarray(i + 3, i + 3 + len) })
    i += 3 + len
  }
  return out
}

function v6 (b: Buffer): string {
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push(((b[i] << 8) | b[i + 1]).toString(16))
  return words.join(':')
}

export function parseV2 (h: Buffer): ParsedV2 {
  SIG.forEach((byte, i) => { if (h[i] !== byte) throw new Error(`bad signature byte ${i}`) })
  const out: ParsedV2 = {
    version: h[12] >> 4,
    command: h[12] & 0x0f,
    family: h[13] >> 4,
    transport: h[13] & 0x0f,
    length: (h[14] << 8) | h[15],
    tlvs: [],
  }
  if (h.length !== 16 + out.length) throw new Error(`length field ${out.length} but ${h.length - 16} bytes follow`)
  let rest = h.subarray(16)
  if (out.family === 0x1) {
    out.src = [...rest.subarray(0, 4)].join('.')
    out.dst = [...rest.subarray(4, 8)].join('.')
    out.srcPort = (rest[8] << 8) | rest[9]
    out.dstPort = (rest[10] << 8) | rest[11]
    rest = rest.subarray(12)
  } else if (out.family === 0x2) {
    out.src = v6(rest.subarray(0, 16))
    out.dst = v6(rest.subarray(16, 32))
    out.srcPort = (rest[32] << 8) | rest[33]
    out.dstPort = (rest[34] << 8) | rest[35]
    rest = rest.subarray(36)
  }
  out.tlvs = parseTlvs(rest)
  return out
}

/** PP2_TYPE_SSL value: client (1 byte), verify (4 bytes), sub-TLVs. */
export function parseSsl (value: Buffer): ParsedSsl {
  return { client: value[0], verify: value.readUInt32BE(1), subs: parseTlvs(value.subarray(5)) }
}

export function tlvText (list: ParsedTlv[], type: number): string | undefined {
  return list.find((t) => t.type === type)?.value.toString('utf8')
}
