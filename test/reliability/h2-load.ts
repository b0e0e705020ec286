// HTTP/2 clients for the stress tests (issue 18): node:http2 sessions to the
// terminator's native front, and the one rule they share for what counts as
// a failed stream.
//
// A stream the server refused without processing it (RST_STREAM or GOAWAY
// with REFUSED_STREAM, or above a GOAWAY's last-stream-id, RFC 9113 §8.7 and
// §6.8) is safe to retry and is retried on a new connection: it is counted
// as `refused`, not as a failure. A session the client may no longer use
// (it received GOAWAY, or the server closed it between requests) is
// replaced. Anything else — a stream reset after it was accepted, a
// response other than the expected one, a body not byte-exact, a timeout —
// is a failed stream.
import crypto from 'node:crypto'
import http2 from 'node:http2'

export interface H2Answer { status: number, body: Buffer }

export type H2Outcome =
  | { kind: 'ok', answer: H2Answer }
  | { kind: 'refused' }
  | { kind: 'failed', why: string }

const REFUSED = http2.constants.NGHTTP2_REFUSED_STREAM

/** Connects and resolves once the server's SETTINGS have arrived (the session is 'connect'ed). */
export function h2Connect (port: number, ca: Buffer, opts: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: 'localhost', ...opts })
    s.once('error', reject)
    s.once('connect', () => {
      s.off('error', reject)
      s.on('error', () => {})
      resolve(s)
    })
  })
}

/** True when `session` can take a new stream (node:http2 closes a session that received GOAWAY). */
export function usable (session: http2.ClientHttp2Session): boolean {
  return !session.closed && !session.destroyed
}

/** One GET, its whole body read. Never rejects: the outcome says what happened. */
export function h2Get (session: http2.ClientHttp2Session, port: number, path: string, timeoutMs = 10_000, host = 'localhost'): Promise<H2Outcome> {
  return new Promise((resolve) => {
    let req: http2.ClientHttp2Stream
    try {
      req = session.request({ ':path': path, ':authority': `${host}:${port}` }, { endStream: true })
    } catch (err) {
      // ERR_HTTP2_GOAWAY_SESSION / ERR_HTTP2_INVALID_SESSION: nothing was sent.
      const code = (err as { code?: string }).code
      resolve(code === 'ERR_HTTP2_GOAWAY_SESSION' || code === 'ERR_HTTP2_INVALID_SESSION' ? { kind: 'refused' } : { kind: 'failed', why: `request: ${code ?? String(err)}` })
      return
    }
    let status = 0
    const chunks: Buffer[] = []
    let settled = false
    const done = (o: H2Outcome): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(o)
    }
    const timer = setTimeout(() => { req.close(http2.constants.NGHTTP2_CANCEL); done({ kind: 'failed', why: 'timeout' }) }, timeoutMs)
    req.on('response', (h) => { status = Number(h[':status']) })
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => done({ kind: 'ok', answer: { status, body: Buffer.concat(chunks) } }))
    req.on('error', () => {})
    req.on('close', () => {
      if (settled) return
      // Refused before any response: the server did not process it (RFC 9113 §8.7).
      if (status === 0 && req.rstCode === REFUSED) done({ kind: 'refused' })
      else done({ kind: 'failed', why: `stream closed, rstCode ${req.rstCode}, status ${status}, ${chunks.reduce((n, c) => n + c.length, 0)} bytes` })
    })
  })
}

export const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')
