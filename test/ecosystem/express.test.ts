// An Express 5 app, unchanged, on createHttpsServer: routes with params, a
// JSON body, req.secure / req.protocol / req.ip, 404 and error middleware.
// Express does not run on node's http2 compat objects (it swaps the
// request prototype for one built on http.IncomingMessage), with
// http2.createSecureServer or here alike, so its server offers only
// http/1.1 by ALPN.
import assert from 'node:assert/strict'
import https from 'node:https'
import { test } from 'node:test'

import express, { type NextFunction, type Request, type Response } from 'express'

import { createHttpsAgent } from '../../lib/agent'
import { createHttpsServer, type HttpsServer } from '../../lib/http'
import { fixtures } from '../helpers/certs'
import { curl } from '../helpers/peers'
import { waitNoLiveHandles } from '../helpers/tls'

const f = fixtures()

function app (): express.Express {
  const a = express()
  a.use(express.json())
  a.get('/users/:id', (req, res) => {
    res.json({ id: req.params.id, secure: req.secure, protocol: req.protocol, ip: req.ip, httpVersion: req.httpVersion })
  })
  a.post('/echo', (req, res) => {
    res.status(201).json({ received: req.body as unknown, secure: req.secure })
  })
  a.get('/fail', () => {
    throw Object.assign(new Error('boom'), { status: 418 })
  })
  a.use((err: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
    res.status(err.status ?? 500).json({ error: err.message })
  })
  return a
}

async function start (alpn?: string[]): Promise<{ server: HttpsServer, port: number }> {
  const server = createHttpsServer({ cert: f.localhostEcdsa.cert, key: f.localhostEcdsa.key, ALPNProtocols: alpn }, app())
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port))
  })
  return { server, port }
}

function stop (server: HttpsServer): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => err === undefined ? resolve() : reject(err)))
}

function curlJson (port: number, path: string, extra: string[] = []): Promise<{ status: string, body: unknown, version: string }> {
  return curl(['--cacert', f.path('ca.pem'), '--resolve', `localhost:${port}:127.0.0.1`, ...extra, '-w', '\n%{http_code} %{http_version}', `https://localhost:${port}${path}`])
    .then((r) => {
      assert.equal(r.code, 0, r.stderr)
      const lines = r.stdout.split('\n')
      const [status, version] = lines[lines.length - 1].split(' ')
      return { status, version, body: JSON.parse(lines.slice(0, -1).join('\n')) }
    })
}

test('routes, params and req.secure/req.protocol/req.ip over curl (offered h2, served http/1.1)', async () => {
  const { server, port } = await start(['http/1.1'])
  try {
    const r = await curlJson(port, '/users/42')
    assert.deepEqual(r, {
      status: '200',
      version: '1.1',
      body: { id: '42', secure: true, protocol: 'https', ip: '127.0.0.1', httpVersion: '1.1' },
    })
  } finally {
    await stop(server)
  }
})

test('a JSON body is parsed; error and 404 middleware answer', async () => {
  const { server, port } = await start(['http/1.1'])
  try {
    const posted = await curlJson(port, '/echo', ['-H', 'content-type: application/json', '--data', '{"list":[1,2,3],"name":"rustls"}'])
    assert.deepEqual(posted, { status: '201', version: '1.1', body: { received: { list: [1, 2, 3], name: 'rustls' }, secure: true } })
    const failed = await curlJson(port, '/fail')
    assert.deepEqual(failed, { status: '418', version: '1.1', body: { error: 'boom' } })
    const missing = await curl(['--cacert', f.path('ca.pem'), '--resolve', `localhost:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}', `https://localhost:${port}/nope`])
    assert.equal(missing.stdout, '404')
  } finally {
    await stop(server)
  }
})

test('an HTTP/1.1 client on the default h2+http/1.1 server, through the RustlsAgent', async () => {
  const { server, port } = await start()
  const agent = createHttpsAgent({ ca: f.ca })
  try {
    const body = JSON.stringify({ via: 'agent' })
    const result = await new Promise<{ status: number | undefined, json: unknown }>((resolve, reject) => {
      const req = https.request(`https://localhost:${port}/echo`, {
        agent,
        host: '127.0.0.1',
        servername: 'localhost',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        let text = ''
        res.on('data', (d: Buffer) => { text += d.toString() })
        res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }))
      })
      req.on('error', reject)
      req.end(body)
    })
    assert.deepEqual(result, { status: 201, json: { received: { via: 'agent' }, secure: true } })
  } finally {
    agent.destroy()
    await stop(server)
  }
})

test('no native handle is left once everything is closed', async () => {
  await waitNoLiveHandles()
})
