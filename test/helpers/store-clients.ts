// Clients for the store tests: one HTTPS request over node:tls that offers a
// saved TLS session and reports whether it resumed, on both ends (the
// client's isSessionReused() and the X-SSL-SESSION-RESUMED header the
// terminator sent the echo backend, i.e. the server's SSL_SESSION_RESUMED);
// and a Prometheus scrape.
import http from 'node:http'
import tls from 'node:tls'

export interface Fetched {
  status: number
  /** The client resumed (node:tls isSessionReused()). */
  resumed: boolean
  /** The server's SSL_SESSION_RESUMED as forwarded to the backend ('Resumed' | 'Initial'), if the host has StdEnvVars. */
  serverResumed?: string
  /** The last session (TLS 1.3 ticket) the server sent, for the next connection. */
  session?: Buffer
}

/** GET / on `port` (SNI `servername`), offering `session`. Rejects on any connection failure. */
export async function fetchWithSession (port: number, ca: Buffer | string, session?: Buffer, servername = 'localhost', timeoutMs = 5000): Promise<Fetched> {
  return await new Promise<Fetched>((resolve, reject) => {
    let last: Buffer | undefined
    let data = ''
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, session, minVersion: 'TLSv1.3' }, () => {
      socket.write(`GET / HTTP/1.1\r\nhost: ${servername}\r\nconnection: close\r\n\r\n`)
    })
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${port} within ${timeoutMs} ms`)), timeoutMs)
    socket.setEncoding('utf8')
    socket.on('session', (s: Buffer) => { last = s })
    socket.on('data', (s: string) => { data += s })
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    socket.on('end', () => {
      clearTimeout(timer)
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)
      const body = data.slice(data.indexOf('\r\n\r\n') + 4)
      let serverResumed: string | undefined
      try {
        const json = JSON.parse(body.startsWith('{') ? body : body.replace(/^[0-9a-f]+\r\n/, '').replace(/\r\n0\r\n\r\n$/, '')) as { headers?: Record<string, string> }
        serverResumed = json.headers?.['x-ssl-session-resumed']
      } catch {}
      resolve({ status, resumed: socket.isSessionReused(), serverResumed, session: last })
      socket.destroy()
    })
  })
}

/** `name{labels} value` lines of /metrics at `port`, by series. */
export async function scrapeMetrics (port: number): Promise<Map<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let t = ''
      res.setEncoding('utf8').on('data', (s: string) => { t += s }).on('end', () => resolve(t))
    }).on('error', reject)
  })
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}
