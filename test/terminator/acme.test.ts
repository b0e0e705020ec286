// The terminator obtains and renews its certificates from pebble (ACME on
// loopback): tls-alpn-01 answered by the native challenge table on the TLS
// port, http-01 on acme.httpListen and (natively, over HTTP/1.1 and HTTP/2)
// on the TLS port, a renewal of a short-lived certificate
// while a download on the old one goes on, and failures (a refused name, a
// challenge the CA cannot reach, no directory) that leave the current
// certificate serving. Also the acme keys' validation.
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'

import YAML from 'yaml'

import { validateConfig } from '../../lib/terminator/config'
import { createSelfSigned } from '../../lib/terminator/selfsigned'
import { repoRoot } from '../helpers/certs'
import { type Pebble, startPebble } from '../helpers/pebble'
import { curl, freePort, sClient, waitFor } from '../helpers/peers'
import { httpEcho, type HttpEcho } from './backends'
import { LEVEL, runCli, startTerminator, stopClean, tempDir, type TerminatorProcess, writeConfig } from './harness'

let pebble: Pebble
let echo: HttpEcho
let caFile: string
let rootFile: string

before(async () => {
  pebble = await startPebble({ profiles: { shortlived: 21 } })
  echo = await httpEcho()
  const dir = tempDir()
  caFile = path.join(dir, 'pebble-directory-ca.pem')
  fs.writeFileSync(caFile, pebble.directoryCa)
  rootFile = path.join(dir, 'pebble-root.pem')
  fs.writeFileSync(rootFile, await pebble.issuerRoot())
})
after(async () => {
  await pebble.stop()
  await echo.close()
})

function acmeDefaults (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { directory: pebble.directory, ca: caFile, email: 'ops@acme.test', termsOfServiceAgreed: true, ...extra }
}

/** The leaf the terminator serves for `name` (openssl s_client). */
async function servedLeaf (port: number, name: string): Promise<X509Certificate> {
  const r = await sClient(['-connect', `127.0.0.1:${port}`, '-servername', name])
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)
  assert.ok(pem !== null, r.stdout + r.stderr)
  return new X509Certificate(pem[0])
}

async function scrape (port: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (s: string) => { text += s }).on('end', () => resolve(text))
    }).on('error', reject)
  })
}

const installed = (t: TerminatorProcess, host: string): number =>
  t.logs().filter((l) => l.msg === 'ACME certificate installed' && l.host === host).length

describe('terminator ACME (pebble)', () => {
  it('tls-alpn-01: obtains, serves, renews at 2/3 of a short lifetime while a download on the old certificate completes', async () => {
    const dir = tempDir()
    const stateDir = path.join(dir, 'state')
    const file = writeConfig(dir, {
      listen: [`127.0.0.1:${pebble.tlsPort}`],
      stateDir,
      metrics: { listen: '127.0.0.1:0' },
      acme: acmeDefaults(),
      hosts: [{ serverName: 'a.acme.test', acme: { challenge: 'tls-alpn-01', profile: 'shortlived' }, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    })
    const t = await startTerminator(file)
    try {
      // Until the order completes: the temporary self-signed certificate.
      await t.waitForLog((l) => l.msg === 'ACME certificate installed', 'the first certificate', 30_000)
      await t.waitForLog((l) => l.msg === 'certificates refreshed', 'the refresh')
      const stateFile = path.join(stateDir, 'certs', 'a.acme.test.pem')
      assert.equal(fs.statSync(stateFile).mode & 0o777, 0o600)
      const first = await servedLeaf(t.port, 'a.acme.test')
      assert.match(first.issuer, /Pebble Intermediate/)
      const lifetime = Date.parse(first.validTo) - Date.parse(first.validFrom)
      assert.ok(lifetime > 19_000 && lifetime < 22_000, `lifetime ${lifetime} ms`)

      // ~16 s: 40 pieces of 64 KiB, one every 400 ms, on a connection made now.
      const size = 40 * 64 * 1024
      const out = path.join(dir, 'download')
      const download = curl(['--cacert', rootFile, '--resolve', `a.acme.test:${t.port}:127.0.0.1`, '-o', out, '-w', '%{http_code} %{size_download} %{ssl_verify_result}',
        `https://a.acme.test:${t.port}/slow/${size}?ms=400`], { timeoutMs: 60_000 })
      await waitFor(() => echo.seen.some((s) => s.url.startsWith(`/slow/${size}`)), 10_000, 'the download to start')

      await waitFor(() => installed(t, 'a.acme.test') >= 2, 30_000, 'the renewal')
      const renewedAt = Date.now()
      const firstAt = Date.parse(first.validFrom)
      // 2/3 of the lifetime, minus at most 1/30 of it (and the order's own time).
      assert.ok(renewedAt - firstAt > lifetime * (2 / 3 - 1 / 30) - 1000, `renewed ${renewedAt - firstAt} ms after issuance`)
      await t.waitForLog((l) => l.msg === 'certificates refreshed' && typeof l.reason === 'string' && t.logs().filter((x) => x.msg === 'certificates refreshed').length >= 2, 'the second refresh')
      const second = await servedLeaf(t.port, 'a.acme.test')
      assert.notEqual(second.serialNumber, first.serialNumber)
      assert.ok(Date.parse(second.validTo) > Date.parse(first.validTo))

      const r = await download
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, `200 ${size} 0`)
      assert.equal(fs.statSync(out).size, size)

      const metricsPort = (await t.waitForLog((l) => l.msg === 'metrics listening', 'metrics')).port as number
      const text = await scrape(metricsPort)
      const days = Number(/rustls_node_certificate_expiry_days\{host="a\.acme\.test",certificate="0"\} (\S+)/.exec(text)?.[1])
      assert.ok(days > 0 && days < 1 / 3600, `expiry days ${days}`)
      assert.match(text, /rustls_node_acme_orders_total\{outcome="ok"\} [2-9]/)
    } finally {
      await stopClean(t)
    }
  })

  it('http-01: answered on acme.httpListen, then served; other plain-HTTP requests get 404', async () => {
    const dir = tempDir()
    const file = writeConfig(dir, {
      listen: ['127.0.0.1:0'],
      stateDir: path.join(dir, 'state'),
      acme: { ...acmeDefaults(), httpListen: `127.0.0.1:${pebble.httpPort}`, challenge: 'http-01' },
      hosts: [{ serverName: 'h.acme.test', aliases: ['www.h.acme.test'], acme: true, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    })
    const t = await startTerminator(file)
    try {
      await t.waitForLog((l) => l.msg === 'ACME certificate installed', 'the certificate', 30_000)
      assert.ok(t.logs().some((l) => l.msg === 'ACME http-01 listening' && l.port === pebble.httpPort))
      const leaf = await servedLeaf(t.port, 'www.h.acme.test')
      assert.equal(leaf.subjectAltName, 'DNS:h.acme.test, DNS:www.h.acme.test')
      const r = await curl(['--cacert', rootFile, '--resolve', `www.h.acme.test:${t.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}', `https://www.h.acme.test:${t.port}/`])
      assert.equal(r.stdout, '200', r.stderr)
      const plain = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${pebble.httpPort}/.well-known/acme-challenge/unknown-token`])
      assert.equal(plain.stdout, '404')
    } finally {
      await stopClean(t)
    }
  })

  it('http-01 on the TLS port: the CA\'s requests, taken there over HTTP/1.1 and HTTP/2, are answered natively', async () => {
    const dir = tempDir()
    const file = writeConfig(dir, {
      listen: ['127.0.0.1:0'],
      stateDir: path.join(dir, 'state'),
      // Required for http-01; the CA is sent elsewhere below and never reaches it.
      acme: { ...acmeDefaults(), httpListen: `127.0.0.1:${await freePort()}`, challenge: 'http-01' },
      hosts: [{ serverName: 'tls.acme.test', aliases: ['www.tls.acme.test'], acme: true, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } }],
    })
    const t = await startTerminator(file)
    // As a CA that follows a redirect to https: each of its requests goes to
    // the TLS port (the temporary certificate serves it), over HTTP/1.1 and
    // HTTP/2 in turn, and the answer comes back to it as is.
    const over: Array<'http/1.1' | 'h2'> = []
    const fetchOverTls = (host: string, urlPath: string, version: 'http/1.1' | 'h2'): Promise<{ status: number, body: Buffer }> => new Promise((resolve, reject) => {
      const collect = (status: number, stream: NodeJS.ReadableStream): void => {
        const chunks: Buffer[] = []
        stream.on('data', (d: Buffer) => chunks.push(d))
        stream.on('end', () => resolve({ status, body: Buffer.concat(chunks) }))
        stream.on('error', reject)
      }
      if (version === 'http/1.1') {
        https.get({ host: '127.0.0.1', port: t.port, servername: host, path: urlPath, headers: { host }, rejectUnauthorized: false, agent: false }, (res) => collect(res.statusCode ?? 0, res)).on('error', reject)
        return
      }
      const session = http2.connect(`https://127.0.0.1:${t.port}`, { servername: host, rejectUnauthorized: false })
      session.on('error', reject)
      const req = session.request({ ':path': urlPath, ':authority': host })
      req.on('response', (h) => collect(Number(h[':status']), req))
      req.on('close', () => session.close())
      req.end()
    })
    const relay = http.createServer((req, res) => {
      const version = over.filter((v) => v === 'http/1.1').length <= over.filter((v) => v === 'h2').length ? 'http/1.1' : 'h2'
      over.push(version)
      fetchOverTls((req.headers.host ?? '').replace(/:\d+$/, ''), req.url ?? '/', version).then(
        (r) => res.writeHead(r.status, { 'content-type': 'application/octet-stream' }).end(r.body),
        (err: Error) => res.writeHead(502).end(err.message))
    })
    await new Promise<void>((resolve) => relay.listen(pebble.httpPort, '127.0.0.1', resolve))
    try {
      await t.waitForLog((l) => l.msg === 'ACME certificate installed', 'the certificate', 30_000)
      assert.ok(over.includes('http/1.1') && over.includes('h2'), `validated over ${over.join(', ')}`)
      const leaf = await servedLeaf(t.port, 'www.tls.acme.test')
      assert.equal(leaf.subjectAltName, 'DNS:tls.acme.test, DNS:www.tls.acme.test')
      // A token no order waits on goes to the backend like any path.
      const other = await curl(['--cacert', rootFile, '--resolve', `tls.acme.test:${t.port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code}', `https://tls.acme.test:${t.port}/.well-known/acme-challenge/unknown`])
      assert.equal(other.stdout, '200', other.stderr)
      assert.equal(echo.seen.at(-1)?.url, '/.well-known/acme-challenge/unknown')
    } finally {
      relay.closeAllConnections()
      await new Promise((resolve) => relay.close(resolve))
      await stopClean(t)
    }
  })

  it('a refused name, a challenge the CA cannot reach and an unreachable directory: clear errors, the current certificates keep serving', async () => {
    const dir = tempDir()
    const stateDir = path.join(dir, 'state')
    // Current pairs past 2/3 of their lifetime: each host renews at start.
    const seeded = new Map<string, string>()
    for (const name of ['blocked.acme.test', 'w.acme.test', 'u.acme.test']) {
      const pair = createSelfSigned({ dnsNames: [name], ipAddresses: [], notBefore: new Date(Date.now() - 10 * 86_400_000), days: 11 })
      fs.mkdirSync(path.join(stateDir, 'certs'), { recursive: true })
      fs.writeFileSync(path.join(stateDir, 'certs', `${name}.pem`), pair.cert + pair.key, { mode: 0o600 })
      seeded.set(name, new X509Certificate(pair.cert).fingerprint256)
    }
    const wrongHttp = await freePort()
    const file = writeConfig(dir, {
      listen: ['127.0.0.1:0'],
      stateDir,
      // pebble asks on its httpPort; nothing of ours listens there.
      acme: { ...acmeDefaults(), httpListen: `127.0.0.1:${wrongHttp}` },
      hosts: [
        { serverName: 'blocked.acme.test', acme: { challenge: 'tls-alpn-01' }, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
        { serverName: 'w.acme.test', acme: { challenge: 'http-01' }, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
        { serverName: 'u.acme.test', acme: { directory: `https://127.0.0.1:${await freePort()}/dir` }, backend: { address: `127.0.0.1:${echo.port}`, mode: 'http' } },
      ],
    })
    const t = await startTerminator(file)
    try {
      const failed = (host: string): Promise<unknown> =>
        t.waitForLog((l) => l.msg === 'ACME order failed; the current certificate keeps serving' && l.host === host, `the failure for ${host}`, 30_000)
      const [blocked, wrong, unreachable] = await Promise.all([failed('blocked.acme.test'), failed('w.acme.test'), failed('u.acme.test')]) as Array<Record<string, unknown>>
      assert.equal(blocked.level, LEVEL.error)
      assert.equal(blocked.code, 'ERR_ACME_PROBLEM')
      assert.equal(blocked.type, 'urn:ietf:params:acme:error:rejectedIdentifier', JSON.stringify(blocked))
      assert.equal(wrong.code, 'ERR_ACME_CHALLENGE_FAILED', JSON.stringify(wrong))
      assert.match(String(wrong.reason), /^w\.acme\.test: http-01 failed: /)
      assert.equal(unreachable.code, 'ERR_ACME_UNREACHABLE')
      assert.match(String(unreachable.reason), /ECONNREFUSED/)
      for (const l of [blocked, wrong, unreachable]) assert.ok(Number(l.retryInSeconds) >= 9 && Number(l.retryInSeconds) <= 11, `retry in ${String(l.retryInSeconds)} s`)
      for (const [name, fingerprint] of seeded) {
        assert.equal((await servedLeaf(t.port, name)).fingerprint256, fingerprint, `${name} still serves its current certificate`)
      }
      assert.equal(installed(t, 'blocked.acme.test') + installed(t, 'w.acme.test') + installed(t, 'u.acme.test'), 0)
    } finally {
      await stopClean(t)
    }
  })

  it('check names every acme key path that is wrong', async () => {
    const dir = tempDir()
    const file = writeConfig(dir, {
      listen: ['127.0.0.1:0'],
      workers: 2,
      acme: { directory: 'http://ca.example/dir', termsOfServiceAgreed: false, email: 'not-an-address' },
      hosts: [
        { serverName: 'x.acme.test', aliases: ['*.x.acme.test'], acme: { challenge: 'http-01' }, certificates: [{ cert: 'x.pem' }], backend: { address: '127.0.0.1:1', mode: 'http' } },
        { serverName: 'y.acme.test', acme: { challenge: 'dns-01', directory: 'https://ca.example/dir' }, backend: { address: '127.0.0.1:1' } },
      ],
    })
    const r = await runCli(['check', '-c', file])
    assert.equal(r.code, 2)
    for (const line of [
      'acme.directory: must be the https: URL of the CA\'s ACME directory, got "http://ca.example/dir"',
      'acme.termsOfServiceAgreed: must be true',
      'acme.email: must be an e-mail address, got "not-an-address"',
      'hosts[0].acme.directory: is required',
      'hosts[0].certificates: not with acme',
      'hosts[1].acme.challenge: must be one of tls-alpn-01, http-01, got "dns-01"',
      'stateDir: is required with acme (hosts[0].acme)',
      'workers: must be 1 with acme',
    ]) assert.ok(r.stderr.includes(line), `missing "${line}" in:\n${r.stderr}`)
  })

  it('the example of docs/terminator.md validates', () => {
    const text = fs.readFileSync(path.join(repoRoot(), 'docs', 'terminator.md'), 'utf8')
    const section = text.slice(text.indexOf('## Certificates from ACME'))
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1]
    assert.ok(yaml !== undefined)
    const config = validateConfig(YAML.parse(yaml), { baseDir: '/', checkFiles: false })
    assert.equal(config.stateDir, '/var/lib/rustls-node')
    assert.equal(config.acmeHttpListen?.port, 80)
    assert.deepEqual(config.hosts.map((h) => h.acme?.challenge), ['tls-alpn-01', 'http-01', undefined])
    assert.equal(config.hosts[0].acme?.directory, 'https://acme-v02.api.letsencrypt.org/directory')
    assert.equal(config.hosts[2].certificates[0].ocspAuto, true)
  })
})
