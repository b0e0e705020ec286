// Every node:tls option rustls cannot honour throws, naming itself: the
// whole tables, for clients, servers and secure contexts (SPEC §3).
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { ClientContext, connect, createSecureContext, createServer, UnsupportedOptionError } from '../../lib/index'
import { UNSUPPORTED_CLIENT_OPTIONS, UNSUPPORTED_SERVER_OPTIONS } from '../../lib/unsupported'

const pem = '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n'

function throwsNaming (fn: () => unknown, option: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UnsupportedOptionError, `${option}: ${String(err)}`)
    assert.equal(err.code, 'ERR_RUSTLS_UNSUPPORTED_OPTION')
    assert.equal(err.option, option)
    assert.match(err.message, new RegExp(option))
    return true
  })
}

test('client: each unsupported node:tls option throws before anything is built', () => {
  assert.ok(Object.keys(UNSUPPORTED_CLIENT_OPTIONS).length >= 15)
  for (const option of Object.keys(UNSUPPORTED_CLIENT_OPTIONS)) {
    throwsNaming(() => connect({ port: 1, ca: pem, [option]: 1 } as never), option)
    throwsNaming(() => new ClientContext({ ca: pem, [option]: 1 } as never), option)
  }
})

test('server: each unsupported node:tls option throws, for createServer and createSecureContext', () => {
  assert.ok(Object.keys(UNSUPPORTED_SERVER_OPTIONS).length >= 15)
  for (const option of Object.keys(UNSUPPORTED_SERVER_OPTIONS)) {
    throwsNaming(() => createServer({ cert: pem, [option]: 1 } as never), option)
    throwsNaming(() => createSecureContext({ cert: pem, [option]: 1 } as never), option)
  }
})

test('an option set to undefined is not "given"', () => {
  assert.throws(() => createServer({ cert: pem, ciphers: undefined } as never), { name: 'ConfigError', code: 'ERR_TLS_CONFIG_KEY' })
})
