// PROXY protocol encoder (lib/terminator/proxy-protocol.ts) against a
// byte layout worked out by hand from the HAProxy specification and against
// the independent reader in proxy-parser.ts. The end-to-end test through
// the terminator is in tcp.test.ts.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { PP2, proxyHeaderV1, proxyHeaderV2, type ProxyInfo } from '../../lib/terminator/proxy-protocol'
import { parseSsl, parseV2, tlvText } from './proxy-parser'

const info: ProxyInfo = {
  source: { address: '192.0.2.1', port: 56324 },
  destination: { address: '198.51.100.2', port: 443 },
  alpn: 'h2',
  authority: 'a.example.test',
  ssl: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', certConn: false, certSess: false, verified: false },
}

test('v1 TCP4: the exact line of section 2.1', () => {
  assert.equal(proxyHeaderV1(info).toString('latin1'), 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n')
})

test('v1 with IPv4-mapped IPv6 on both ends is TCP4; mixed families are TCP6', () => {
  const mappedBoth = { source: { address: '::ffff:10.0.0.1', port: 1 }, destination: { address: '::ffff:10.0.0.2', port: 2 } }
  assert.equal(proxyHeaderV1(mappedBoth).toString('latin1'), 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n')
  const mixed = { source: { address: '2001:db8::1', port: 1000 }, destination: { address: '10.0.0.2', port: 443 } }
  assert.equal(proxyHeaderV1(mixed).toString('latin1'), 'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 1000 443\r\n')
})

test('v1 without TCP addresses is PROXY UNKNOWN', () => {
  assert.equal(proxyHeaderV1({}).toString('latin1'), 'PROXY UNKNOWN\r\n')
})

test('v2 TCP4 with ALPN, authority and SSL TLVs: hand-checked bytes', () => {
  const expected = Buffer.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
    0x21, // version 2, PROXY
    0x11, // AF_INET, STREAM
    0x00, 0x4d, // 77 bytes follow
    192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb, // addresses, ports 56324 and 443
    0x01, 0x00, 0x02, ...Buffer.from('h2'), // PP2_TYPE_ALPN
    0x02, 0x00, 0x0e, ...Buffer.from('a.example.test'), // PP2_TYPE_AUTHORITY
    0x20, 0x00, 0x28, // PP2_TYPE_SSL, 40 bytes
    0x01, // client: PP2_CLIENT_SSL
    0x00, 0x00, 0x00, 0x01, // verify: non-zero, no client certificate
    0x21, 0x00, 0x07, ...Buffer.from('TLSv1.3'), // PP2_SUBTYPE_SSL_VERSION
    0x23, 0x00, 0x16, ...Buffer.from('TLS_AES_128_GCM_SHA256'), // PP2_SUBTYPE_SSL_CIPHER
  ])
  assert.equal(proxyHeaderV2(info).toString('hex'), expected.toString('hex'))
})

test('v2 with a verified client certificate: flags, verify 0, CN and key algorithm sub-TLVs', () => {
  const h = proxyHeaderV2({
    ...info,
    ssl: { version: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256', certConn: true, certSess: true, verified: true, cn: 'client one', keyAlg: 'EC256' },
  })
  const p = parseV2(h)
  assert.deepEqual([p.version, p.command, p.family, p.transport], [2, 1, 1, 1])
  assert.deepEqual([p.src, p.dst, p.srcPort, p.dstPort], ['192.0.2.1', '198.51.100.2', 56324, 443])
  assert.equal(tlvText(p.tlvs, PP2.TYPE_ALPN), 'h2')
  assert.equal(tlvText(p.tlvs, PP2.TYPE_AUTHORITY), 'a.example.test')
  const ssl = parseSsl(p.tlvs.find((t) => t.type === PP2.TYPE_SSL)?.value as Buffer)
  assert.equal(ssl.client, 0x07)
  assert.equal(ssl.verify, 0)
  assert.deepEqual(ssl.subs.map((s) => [s.type, s.value.toString()]), [
    [0x21, 'TLSv1.2'], [0x22, 'client one'], [0x23, 'ECDHE-ECDSA-AES128-GCM-SHA256'], [0x25, 'EC256'],
  ])
})

test('v2 TCP6 and the IPv4-mapped forms', () => {
  const p6 = parseV2(proxyHeaderV2({ source: { address: '2001:db8::1', port: 1 }, destination: { address: '::1', port: 2 } }))
  assert.deepEqual([p6.family, p6.length, p6.src, p6.dst, p6.srcPort, p6.dstPort], [2, 36, '2001:db8:0:0:0:0:0:1', '0:0:0:0:0:0:0:1', 1, 2])
  const mapped = parseV2(proxyHeaderV2({ source: { address: '::ffff:127.0.0.1', port: 5 }, destination: { address: '::ffff:127.0.0.1', port: 6 } }))
  assert.deepEqual([mapped.family, mapped.length, mapped.src, mapped.dst], [1, 12, '127.0.0.1', '127.0.0.1'])
  const mixed = parseV2(proxyHeaderV2({ source: { address: '10.1.2.3', port: 5 }, destination: { address: 'fe80::1', port: 6 } }))
  assert.deepEqual([mixed.family, mixed.src], [2, '0:0:0:0:0:ffff:a01:203'])
})

test('v2 without TCP addresses: AF_UNSPEC, TLVs still present', () => {
  const p = parseV2(proxyHeaderV2({ authority: 'x.test' }))
  assert.deepEqual([p.command, p.family, p.transport, p.src], [1, 0, 0, undefined])
  assert.equal(tlvText(p.tlvs, PP2.TYPE_AUTHORITY), 'x.test')
})
