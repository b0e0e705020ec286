// In process: how a request is routed in http mode (lib/terminator/
// http-backend.ts route(), reload.ts Generation.select) on host contexts
// built by the library, and the header helpers.
import assert from 'node:assert/strict'
import { after, test } from 'node:test'

import { createServer, liveHandles } from '../../lib/index'
import { validateConfig } from '../../lib/terminator/config'
import { loadFiles } from '../../lib/terminator/files'
import { authorityHost } from '../../lib/authority'
import { type ConnectionContext, isReservedHeader, route, sslHeaders } from '../../lib/terminator/http-backend'
import { createBackends, Generation } from '../../lib/terminator/reload'
import { fixtures } from '../helpers/certs'
import { waitFor } from '../helpers/peers'

const f = fixtures()
const a = { cert: f.aEcdsa.chainPath, key: f.aEcdsa.keyPath }
const loaded = loadFiles(validateConfig({
  listen: ['127.0.0.1:0'],
  hosts: [
    { serverName: 'a.example.test', aliases: ['*.a.example.test'], certificates: [a], backend: { address: '127.0.0.1:1', mode: 'http' } },
    { serverName: 'b.example.test', certificates: [{ cert: f.bEcdsa.chainPath, key: f.bEcdsa.keyPath }], backend: { address: '127.0.0.1:2', mode: 'http' } },
    // Same certificate as a; one with the same settings, one stricter, one in tcp mode.
    { serverName: 'same.example.test', certificates: [a], backend: { address: '127.0.0.1:3', mode: 'http' } },
    { serverName: 'strict.example.test', certificates: [a], protocol: 'v1.3+', backend: { address: '127.0.0.1:4', mode: 'http' } },
    { serverName: 'raw.example.test', certificates: [a], backend: { address: '127.0.0.1:5', mode: 'tcp' } },
  ],
}))
const server = createServer(loaded.serverOptions)
const gen = new Generation(1, loaded, server.hosts, createBackends(loaded, { error () {}, warn () {}, info () {}, debug () {}, trace () {} }))

const ctx = (hostIndex: number, sni: string | undefined): ConnectionContext =>
  ({ generation: gen, hostIndex, sni, clientAddress: '192.0.2.7', sslHeaders: {} })

test('Generation.select agrees with the library\'s router for configured names', () => {
  for (const name of ['a.example.test', 'A.Example.Test.', 'x.a.example.test', 'b.example.test', 'same.example.test', 'raw.example.test']) {
    assert.equal(gen.select(name), server.selectHost(name), name)
  }
  // Names no host lists: the strict router refuses them, select says -1.
  for (const name of ['c.example.test', 'x.y.a.example.test', 'a.example.test.evil']) {
    assert.equal(server.selectHost(name), -1, name)
    assert.equal(gen.select(name), -1, name)
  }
})

test('route: 403, 421, coalescing to the named host, and names that stay', () => {
  const target = (r: ReturnType<typeof route>): number | string => 'status' in r ? r.status : r.hostIndex
  assert.equal(target(route(ctx(0, undefined), 'a.example.test')), 403)
  assert.equal(target(route(ctx(0, 'a.example.test'), 'a.example.test:8443')), 0)
  assert.equal(target(route(ctx(0, 'a.example.test'), 'x.a.example.test')), 0)
  assert.equal(target(route(ctx(0, 'a.example.test'), 'b.example.test')), 421, 'other certificate')
  assert.equal(target(route(ctx(0, 'a.example.test'), 'strict.example.test')), 421, 'same certificate, other protocol minimum')
  assert.equal(target(route(ctx(0, 'a.example.test'), 'raw.example.test')), 421, 'same TLS settings but a tcp-mode host')
  assert.equal(target(route(ctx(0, 'a.example.test'), 'same.example.test:443')), 2, 'same certificate and settings: its own backend')
  assert.equal(target(route(ctx(0, 'a.example.test'), 'unknown.test')), 0)
  assert.equal(target(route(ctx(0, 'a.example.test'), '[::1]:8443')), 0)
  assert.equal(target(route(ctx(0, 'a.example.test'), undefined)), 0)
  const r = route(ctx(1, 'b.example.test'), 'B.EXAMPLE.TEST.')
  assert.ok(!('status' in r))
  assert.equal(r.backend.config.address.text, '127.0.0.1:2')
})

test('authority parsing, reserved header names, X-SSL-* naming', () => {
  assert.equal(authorityHost('Example.COM:8443'), 'example.com')
  assert.equal(authorityHost('[2001:db8::1]:443'), '2001:db8::1')
  assert.equal(authorityHost('host.'), 'host')
  assert.equal(authorityHost(''), undefined)
  for (const n of ['X-SSL-PROTOCOL', 'x_ssl_client_verify', 'X-Forwarded-For', 'x_forwarded_proto', 'Forwarded']) assert.equal(isReservedHeader(n), true, n)
  for (const n of ['X-SSLX', 'x-forward', 'x-real-ip', 'forwarded-for']) assert.equal(isReservedHeader(n), false, n)
  assert.deepEqual(sslHeaders({ HTTPS: 'on', SSL_PROTOCOL: 'TLSv1.3', SSL_TLS_SNI: 'a.test', SSL_SERVER_CERT: '-----BEGIN CERTIFICATE-----\nAB+/=\n-----END CERTIFICATE-----\n' }), {
    'X-SSL-PROTOCOL': 'TLSv1.3',
    'X-SSL-TLS-SNI': 'a.test',
    'X-SSL-SERVER-CERT': '-----BEGIN%20CERTIFICATE-----%0AAB%2B%2F%3D%0A-----END%20CERTIFICATE-----%0A',
  })
})

after(async () => {
  gen.destroy()
  server.close()
  await waitFor(() => Object.values(liveHandles()).every((n) => n === 0), 2000, 'native handles to be released')
  assert.deepEqual(Object.values(liveHandles()), [0, 0, 0, 0, 0, 0, 0, 0, 0])
})
