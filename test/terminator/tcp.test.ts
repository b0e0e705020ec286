// tcp mode end to end: node:tls and openssl clients in front, a TCP echo
// behind that records the PROXY header, read back with the independent
// parser (proxy-parser.ts) field by field. Bytes both ways, half-close.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import tls from 'node:tls'
import { after, before, test } from 'node:test'

import { fixtures } from '../helpers/certs'
import { sClient, waitFor } from '../helpers/peers'
import { type RecordedConnection, tcpRecorder, type TcpRecorder } from './backends'
import { LEVEL, serveConfig, stopClean, type TerminatorProcess } from './harness'
import { parseSsl, parseV2, PP2, tlvText } from './proxy-parser'

const f = fixtures()
let rec: TcpRecorder
let t: TerminatorProcess

before(async () => {
  rec = await tcpRecorder()
  const cert = [{ cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }]
  const backend = (proxyProtocol: string): Record<string, unknown> => ({ address: `127.0.0.1:${rec.port}`, mode: 'tcp', proxyProtocol })
  t = (await serveConfig({
    listen: ['127.0.0.1:0'],
    hosts: [
      { serverName: 'v1.a.example.test', certificates: cert, backend: backend('v1') },
      { serverName: 'v2.a.example.test', certificates: cert, alpn: ['h2', 'http/1.1'], backend: backend('v2') },
      {
        serverName: 'mtls.a.example.test',
        certificates: cert,
        clientAuth: { mode: 'optional', ca: f.path('client-ca.pem') },
        backend: backend('v2'),
      },
      { serverName: 'none.a.example.test', certificates: cert, backend: backend('none') },
      { serverName: 'down.a.example.test', certificates: cert, backend: { address: '127.0.0.1:1', mode: 'tcp' } },
    ],
  })).t
})

after(async () => {
  await stopClean(t)
  await rec.close()
})

interface Session {
  client: tls.TLSSocket
  connection: RecordedConnection
  /** Sends `data` and resolves once as many bytes came back. */
  echo: (data: Buffer) => Promise<Buffer>
}

async function open (servername: string, options: tls.ConnectionOptions = {}): Promise<Session> {
  const before = rec.connections.length
  const client = tls.connect({ host: '127.0.0.1', port: t.port, servername, ca: f.ca, ...options })
  await new Promise<void>((resolve, reject) => {
    client.once('secureConnect', () => resolve())
    client.once('error', reject)
  })
  let pending: { want: number, got: Buffer[], size: number, resolve: (b: Buffer) => void } | undefined
  client.on('data', (d: Buffer) => {
    if (pending === undefined) return
    pending.got.push(d)
    pending.size += d.length
    if (pending.size >= pending.want) pending.resolve(Buffer.concat(pending.got))
  })
  const echo = (data: Buffer): Promise<Buffer> => new Promise((resolve) => {
    pending = { want: data.length, got: [], size: 0, resolve }
    client.write(data)
  })
  // The header arrives before the first byte of data.
  const first = await echo(Buffer.from('ping'))
  assert.equal(first.toString(), 'ping')
  await waitFor(() => rec.connections.length > before, 5000, 'the backend connection')
  return { client, connection: rec.connections[rec.connections.length - 1], echo }
}

function close (s: Session): Promise<void> {
  return new Promise((resolve) => {
    s.client.once('close', () => resolve())
    s.client.end()
  })
}

test('PROXY v1: TCP4, client address and port, our port', async () => {
  const s = await open('v1.a.example.test')
  assert.equal(s.connection.header.toString('latin1'), `PROXY TCP4 127.0.0.1 127.0.0.1 ${s.client.localPort} ${t.port}\r\n`)
  await close(s)
})

test('PROXY v2 without a client certificate: addresses, ALPN, authority, SSL TLV', async () => {
  const s = await open('v2.a.example.test', { ALPNProtocols: ['h2'] })
  const p = parseV2(s.connection.header)
  assert.deepEqual([p.version, p.command, p.family, p.transport], [2, 1, 1, 1])
  assert.deepEqual([p.src, p.srcPort, p.dst, p.dstPort], ['127.0.0.1', s.client.localPort, '127.0.0.1', t.port])
  assert.equal(tlvText(p.tlvs, PP2.TYPE_ALPN), 'h2')
  assert.equal(tlvText(p.tlvs, PP2.TYPE_AUTHORITY), 'v2.a.example.test')
  const sslTlv = p.tlvs.find((x) => x.type === PP2.TYPE_SSL)
  assert.ok(sslTlv !== undefined)
  const ssl = parseSsl(sslTlv.value)
  assert.equal(ssl.client, 0x01, 'PP2_CLIENT_SSL only')
  assert.notEqual(ssl.verify, 0, 'no certificate: verify is non-zero')
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_VERSION), s.client.getProtocol())
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_CIPHER), s.client.getCipher().name)
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_CN), undefined)
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_KEY_ALG), 'EC256')
  assert.deepEqual(p.tlvs.map((x) => x.type), [PP2.TYPE_ALPN, PP2.TYPE_AUTHORITY, PP2.TYPE_SSL])
  // Byte for byte, as laid out by hand from §2.2.
  const tlv = (type: number, value: string | Buffer): Buffer => {
    const v = Buffer.from(value)
    return Buffer.concat([Buffer.from([type, v.length >> 8, v.length & 0xff]), v])
  }
  const u16 = (n: number): number[] => [n >> 8, n & 0xff]
  const body = Buffer.concat([
    Buffer.from([127, 0, 0, 1, 127, 0, 0, 1, ...u16(s.client.localPort ?? 0), ...u16(t.port)]),
    tlv(0x01, 'h2'),
    tlv(0x02, 'v2.a.example.test'),
    tlv(0x20, Buffer.concat([Buffer.from([0x01, 0, 0, 0, 1]), tlv(0x21, s.client.getProtocol() ?? ''), tlv(0x23, s.client.getCipher().name), tlv(0x25, 'EC256')])),
  ])
  const expected = Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x11, ...u16(body.length)]), body])
  assert.equal(s.connection.header.toString('hex'), expected.toString('hex'))
  await close(s)
})

test('PROXY v2 with a verified client certificate over TLS 1.2: flags, verify 0, CN, OpenSSL cipher name', async () => {
  const s = await open('mtls.a.example.test', { cert: f.client.cert, key: f.client.key, maxVersion: 'TLSv1.2' })
  const p = parseV2(s.connection.header)
  assert.equal(tlvText(p.tlvs, PP2.TYPE_ALPN), undefined, 'no ALPN negotiated, no TLV')
  const ssl = parseSsl(p.tlvs.find((x) => x.type === PP2.TYPE_SSL)?.value as Buffer)
  assert.equal(ssl.client, PP2.CLIENT_SSL | PP2.CLIENT_CERT_CONN | PP2.CLIENT_CERT_SESS)
  assert.equal(ssl.verify, 0)
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_VERSION), 'TLSv1.2')
  assert.equal(tlvText(ssl.subs, PP2.SUBTYPE_SSL_CN), 'client one')
  const cipher = tlvText(ssl.subs, PP2.SUBTYPE_SSL_CIPHER)
  assert.equal(cipher, s.client.getCipher().name)
  assert.match(cipher ?? '', /^ECDHE-ECDSA-/)
  await close(s)
})

test('no PROXY header with proxyProtocol: none; openssl s_client as the client', async () => {
  const before = rec.connections.length
  const r = await sClient(['-connect', `127.0.0.1:${t.port}`, '-servername', 'none.a.example.test', '-quiet', '-no_ign_eof'], { input: 'hello\n', holdOpenMs: 500 })
  assert.equal(r.stdout, 'hello\n')
  await waitFor(() => rec.connections.length > before, 5000, 'the backend connection')
  assert.equal(rec.connections[before].header.length, 0)
})

test('10 MiB each way, byte-exact, with backpressure through the echo', async () => {
  const s = await open('v2.a.example.test')
  const data = crypto.randomBytes(10 << 20)
  const back = await s.echo(data)
  assert.equal(back.length, data.length)
  assert.equal(crypto.createHash('sha256').update(back).digest('hex'), crypto.createHash('sha256').update(data).digest('hex'))
  await close(s)
})

test('half-close: the client\'s close_notify ends the backend side; the backend\'s end closes the client', async () => {
  const s = await open('v1.a.example.test')
  const ended = new Promise<void>((resolve) => s.client.once('end', () => resolve()))
  const tail = s.echo(Buffer.from('last words'))
  s.client.end()
  assert.equal((await tail).toString(), 'last words')
  await ended
  await waitFor(() => s.connection.ended, 5000, 'the backend to see the end')
})

test('backend down: the client is closed and a warn line names the backend', async () => {
  const client = tls.connect({ host: '127.0.0.1', port: t.port, servername: 'down.a.example.test', ca: f.ca })
  const closed = await new Promise<boolean>((resolve) => {
    client.on('error', () => {})
    client.once('close', () => resolve(true))
  })
  assert.ok(closed)
  const line = await t.waitForLog((l) => l.msg === 'backend unavailable' && l.host === 'down.a.example.test', 'the warn line')
  assert.equal(line.level, LEVEL.warn)
  assert.deepEqual([line.code, line.backend], ['ECONNREFUSED', '127.0.0.1:1'])
})
