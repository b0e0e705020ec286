// Raw HTTP/2 for hostile-client tests: frames written by hand (RFC 9113 §4)
// with a minimal HPACK encoder (RFC 7541: indexed fields and literals, no
// Huffman), on a node:tls socket that negotiated h2, and a reader that
// parses what the server sends back.
import tls from 'node:tls'

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

export const enum FrameType { Data = 0, Headers = 1, Priority = 2, RstStream = 3, Settings = 4, PushPromise = 5, Ping = 6, Goaway = 7, WindowUpdate = 8, Continuation = 9 }
// Flags by frame type (RFC 9113 §6): END_STREAM (DATA, HEADERS) and ACK
// (SETTINGS, PING) are the same bit.
export const Flag = { EndStream: 0x1, Ack: 0x1, EndHeaders: 0x4, Padded: 0x8, Priority: 0x20 } as const
export const ENHANCE_YOUR_CALM = 0xb

export function frame (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

export function settings (entries: Array<[number, number]> = []): Buffer {
  const p = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, value], i) => {
    p.writeUInt16BE(id, i * 6)
    p.writeUInt32BE(value, i * 6 + 2)
  })
  return frame(FrameType.Settings, 0, 0, p)
}

export const SETTINGS_ACK = frame(FrameType.Settings, Flag.Ack, 0)
export const SETTINGS_INITIAL_WINDOW_SIZE = 4

export function rst (stream: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4)
  p.writeUInt32BE(code)
  return frame(FrameType.RstStream, 0, stream, p)
}

export function ping (data = Buffer.alloc(8)): Buffer {
  return frame(FrameType.Ping, 0, 0, data)
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), first byte's high bits in `mask`. */
export function hpackInt (value: number, prefixBits: number, mask: number): Buffer {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([mask | value])
  const out = [mask | max]
  let v = value - max
  while (v >= 128) {
    out.push((v % 128) | 0x80)
    v = Math.floor(v / 128)
  }
  out.push(v)
  return Buffer.from(out)
}

function str (s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s)
  return Buffer.concat([hpackInt(b.length, 7, 0), b])
}

/** Literal field without indexing, new name (RFC 7541 §6.2.2). */
export function literal (name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x00]), str(name), str(value)])
}

/** Literal field with incremental indexing, new name (§6.2.1): it enters the dynamic table. */
export function indexedLiteral (name: string, value: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x40]), str(name), str(value)])
}

/** An indexed field (§6.1): static 1-61, dynamic from 62. */
export function indexed (index: number): Buffer {
  return hpackInt(index, 7, 0x80)
}

/** :method GET, :scheme https, :path, :authority (static indexes 2, 7; literals). */
export function requestBlock (path: string, authority: string, method = 'GET', extra: Buffer[] = []): Buffer {
  const m = method === 'GET' ? indexed(2) : method === 'POST' ? indexed(3) : literal(':method', method)
  return Buffer.concat([m, indexed(7), literal(':path', path), literal(':authority', authority), ...extra])
}

export function headers (stream: number, block: Buffer, endStream: boolean, endHeaders = true): Buffer {
  return frame(FrameType.Headers, (endStream ? Flag.EndStream : 0) | (endHeaders ? Flag.EndHeaders : 0), stream, block)
}

export interface Frame {
  type: number
  flags: number
  stream: number
  payload: Buffer
}

export interface RawH2 {
  socket: tls.TLSSocket
  frames: Frame[]
  /** Resolves when the server closed the connection (or it failed). */
  closed: Promise<void>
  write: (b: Buffer) => boolean
  /** The error code of the last GOAWAY received, if any. */
  goaway: () => number | undefined
}

/** A TLS connection that negotiated h2, preface and an empty SETTINGS sent. */
export function rawH2 (options: { port: number, servername: string, ca: string | Buffer, settings?: Array<[number, number]> }): Promise<RawH2> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: options.port, servername: options.servername, ca: options.ca, ALPNProtocols: ['h2'] })
    const frames: Frame[] = []
    let buf = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3)
        if (buf.length < 9 + len) break
        frames.push({ type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) })
        buf = buf.subarray(9 + len)
      }
    })
    const closed = new Promise<void>((resolveClosed) => {
      socket.on('close', () => resolveClosed())
      socket.on('error', () => {})
    })
    socket.once('error', reject)
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== 'h2') {
        reject(new Error(`ALPN ${String(socket.alpnProtocol)}, not h2`))
        return
      }
      socket.write(Buffer.concat([PREFACE, settings(options.settings)]))
      resolve({
        socket,
        frames,
        closed,
        write: (b) => socket.destroyed ? false : socket.write(b),
        goaway: () => {
          const g = frames.filter((f) => f.type === FrameType.Goaway).at(-1)
          return g === undefined ? undefined : g.payload.readUInt32BE(4)
        },
      })
    })
  })
}
