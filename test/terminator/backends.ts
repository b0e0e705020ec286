// Small real backends for the terminator tests: an HTTP echo (JSON of what
// it received, fixed random blobs, a slow stream, a WebSocket echo), the
// same over node:tls with client certificates, and a TCP echo that records
// the PROXY header it was sent.
import crypto from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type tls from 'node:tls'

import { WebSocketServer } from 'ws'

export interface EchoReply {
  method: string
  url: string
  httpVersion: string
  headers: http.IncomingHttpHeaders
  rawHeaders: string[]
  tls?: { authorized: boolean, cn?: string, resumed: boolean, protocol: string | null, cipher: string }
}

export interface HttpEcho {
  port: number
  server: http.Server
  /** The random blob served at /bytes/<size> (same bytes on every request). */
  blob: (size: number) => Buffer
  /** Requests seen so far (method and url). */
  seen: Array<{ method: string, url: string }>
  /** Headers of the WebSocket upgrade requests seen so far. */
  upgrades: http.IncomingHttpHeaders[]
  close: () => Promise<void>
}

export interface HttpEchoOptions {
  /** Serve HTTPS (node:tls) with these options (cert, key, ca, requestCert, ...). */
  tls?: tls.TlsOptions
}

/**
 * Routes: /bytes/N → N random bytes (fixed per N); /slow/N?ms=D → N bytes
 * in 64 KiB pieces every D ms; /status/N → that status; /stall → never
 * answers; /sha256 → "<size> <hex>" of the request body; /trailers → a
 * chunked body with trailers; anything else → EchoReply JSON. WebSocket upgrades echo messages.
 */
export async function httpEcho (opts: HttpEchoOptions = {}): Promise<HttpEcho> {
  const blobs = new Map<number, Buffer>()
  const blob = (size: number): Buffer => {
    let b = blobs.get(size)
    if (b === undefined) {
      b = crypto.randomBytes(size)
      blobs.set(size, b)
    }
    return b
  }
  const seen: HttpEcho['seen'] = []
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    seen.push({ method: req.method ?? '', url: req.url ?? '' })
    const url = new URL(req.url ?? '/', 'http://x')
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname)
    const slow = /^\/slow\/(\d+)$/.exec(url.pathname)
    const status = /^\/status\/(\d+)$/.exec(url.pathname)
    if (bytes !== null) {
      const b = blob(Number(bytes[1]))
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.length })
      res.end(b)
      return
    }
    if (slow !== null) {
      const b = blob(Number(slow[1]))
      const ms = Number(url.searchParams.get('ms') ?? '50')
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.length })
      let offset = 0
      const tick = (): void => {
        if (res.destroyed) return
        const end = Math.min(offset + 65536, b.length)
        res.write(b.subarray(offset, end))
        offset = end
        if (offset < b.length) setTimeout(tick, ms)
        else res.end()
      }
      tick()
      return
    }
    if (status !== null) {
      res.writeHead(Number(status[1]), { 'content-type': 'text/plain' }).end(`status ${status[1]}\n`)
      return
    }
    if (url.pathname === '/stall') return
    if (url.pathname === '/trailers') {
      // Chunked, with a trailer section (relayed as HTTP/2 trailers).
      req.resume()
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
      res.write('first part, ')
      res.addTrailers({ 'x-checksum': 'c0ffee', 'x-count': '2' })
      res.end('second part\n')
      return
    }
    if (url.pathname === '/listed') {
      // A response whose Connection header names a field of its own (RFC 9110 §7.6.1).
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'keep-alive, X-Hop', 'x-hop': 'backend-private', 'x-kept': 'yes' }).end('listed\n')
      return
    }
    if (url.pathname === '/sha256') {
      const hash = crypto.createHash('sha256')
      let size = 0
      req.on('data', (d: Buffer) => { hash.update(d); size += d.length })
      req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${size} ${hash.digest('hex')}`))
      return
    }
    const reply: EchoReply = {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
    }
    const sock = req.socket as tls.TLSSocket
    if (sock.encrypted === true) {
      const peer = sock.getPeerCertificate()
      const cn = peer?.subject?.CN
      reply.tls = { authorized: sock.authorized, cn: Array.isArray(cn) ? cn[0] : cn, resumed: sock.isSessionReused(), protocol: sock.getProtocol(), cipher: sock.getCipher().standardName }
    }
    const body = JSON.stringify(reply)
    req.resume()
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body))
  }
  const server: http.Server = opts.tls !== undefined ? https.createServer(opts.tls, handler) : http.createServer(handler)
  const upgrades: http.IncomingHttpHeaders[] = []
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws, req) => {
    upgrades.push(req.headers)
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    blob,
    seen,
    upgrades,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export interface RecordedConnection {
  /** The PROXY header bytes (empty when none came). */
  header: Buffer
  /** Bytes received after the header. */
  received: number
  ended: boolean
}

export interface TcpRecorder {
  port: number
  connections: RecordedConnection[]
  close: () => Promise<void>
}

/**
 * TCP echo that first takes a PROXY header off the stream (v1: up to
 * CRLF; v2: 16 bytes then the announced length) and records it. Half-close
 * aware: echoes until the client ends, then ends.
 */
export async function tcpRecorder (): Promise<TcpRecorder> {
  const connections: RecordedConnection[] = []
  const sockets = new Set<net.Socket>()
  const v2sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const rec: RecordedConnection = { header: Buffer.alloc(0), received: 0, ended: false }
    connections.push(rec)
    let buf = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk])
      let headerLength: number | undefined
      if (buf.length >= 6 && buf.subarray(0, 6).toString('latin1') === 'PROXY ') {
        const crlf = buf.indexOf('\r\n')
        if (crlf >= 0) headerLength = crlf + 2
        else if (buf.length > 107) headerLength = 0
      } else if (buf.length >= 16 && buf.subarray(0, 12).equals(v2sig)) {
        if (buf.length >= 16 + buf.readUInt16BE(14)) headerLength = 16 + buf.readUInt16BE(14)
      } else if (buf.length >= 16 || (buf.length > 0 && buf[0] !== 0x50 && buf[0] !== 0x0d)) {
        headerLength = 0
      }
      if (headerLength === undefined) return
      socket.removeListener('data', onData)
      rec.header = buf.subarray(0, headerLength)
      const rest = buf.subarray(headerLength)
      rec.received += rest.length
      if (rest.length > 0) socket.write(rest)
      socket.on('data', (d: Buffer) => { rec.received += d.length })
      socket.pipe(socket)
    }
    socket.on('data', onData)
    socket.on('end', () => { rec.ended = true })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
