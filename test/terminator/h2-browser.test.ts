// A page load in headless Chromium (Debian `chromium`) through the
// terminator's native HTTP/2 front: a page with a stylesheet, a script, an
// image and a fetch() from the script, all on one connection. The host
// offers only h2 (ALPN), so a page that loads at all came over HTTP/2; the
// page also reports the protocol every resource used (Resource Timing
// nextHopProtocol) into its DOM, which --dump-dom prints.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { curl, freePort, run } from '../helpers/peers'
import { serveConfig, stopClean } from './harness'

const f = fixtures()
const chromium = ['chromium', 'chromium-browser'].find((c) => spawnSync(c, ['--version']).status === 0)

const PAGE = `<!doctype html>
<html><head><title>h2 page</title><link rel="stylesheet" href="/style.css"></head>
<body><img src="/image.svg" alt=""><div id="out">pending</div>
<script src="/app.js"></script></body></html>`

const APP = `fetch('/api/data').then((r) => r.json()).then((data) => {
  const entries = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
  const protocols = entries.map((e) => new URL(e.name).pathname + '=' + e.nextHopProtocol).sort().join(' ')
  document.getElementById('out').textContent = 'api:' + data.answer + ' ' + protocols
})`

test('headless Chromium loads a page and its subresources over the native HTTP/2 front', { skip: chromium === undefined && 'chromium is not installed (Debian: apt-get install chromium)', timeout: 120_000 }, async () => {
  const seen: Array<{ url: string, proto: string | undefined }> = []
  const backend = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', proto: req.headers['x-forwarded-proto'] as string | undefined })
    const send = (type: string, body: string): void => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
    switch (req.url) {
      case '/': return send('text/html; charset=utf-8', PAGE)
      case '/style.css': return send('text/css', 'body { font-family: sans-serif; }')
      case '/app.js': return send('application/javascript', APP)
      case '/image.svg': return send('image/svg+xml', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
      case '/api/data': return send('application/json', JSON.stringify({ answer: 42 }))
      default:
        res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()))
  const metricsPort = await freePort()
  const { t } = await serveConfig({
    listen: ['127.0.0.1:0'],
    metrics: { listen: `127.0.0.1:${metricsPort}` },
    hosts: [{
      serverName: 'localhost',
      certificates: [{ cert: f.localhostEcdsa.certPath, key: f.localhostEcdsa.keyPath }],
      alpn: ['h2'],
      backend: { address: `127.0.0.1:${(backend.address() as net.AddressInfo).port}`, mode: 'http' },
    }],
  })
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rustls-node-chromium-'))
  try {
    const r = await run(chromium as string, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--ignore-certificate-errors',
      '--host-resolver-rules=MAP localhost 127.0.0.1', '--virtual-time-budget=10000', '--dump-dom', `https://localhost:${t.port}/`,
    ], { timeoutMs: 90_000 })
    const out = /<div id="out">([^<]*)<\/div>/.exec(r.stdout)?.[1]
    assert.ok(out !== undefined, `no page in chromium's output (exit ${String(r.code)}):\n${r.stdout}\n${r.stderr.slice(-2000)}`)
    assert.equal(out, 'api:42 /=h2 /api/data=h2 /app.js=h2 /image.svg=h2 /style.css=h2')
    for (const url of ['/', '/style.css', '/app.js', '/image.svg', '/api/data']) {
      const request = seen.find((s) => s.url === url)
      assert.equal(request?.proto, 'https', url)
    }
    // Answered natively: the native listener counted the responses.
    const metrics = (await curl(['-s', `http://127.0.0.1:${metricsPort}/metrics`])).stdout
    const ok = Number(/rustls_node_http_responses_total\{status="200"\} (\d+)/.exec(metrics)?.[1] ?? 0)
    assert.ok(ok >= 5, metrics)
  } finally {
    fs.rmSync(profile, { recursive: true, force: true })
    await stopClean(t)
    backend.close()
  }
})
