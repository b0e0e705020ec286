import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ConfigError } from '../../lib/errors'
import { parseMinVersion, parseProtocol, resolveProtocol, versionName } from '../../lib/protocol'

const TLS12_UP = { minVersion: 'TLSv1.2', versions: [0x0303, 0x0304] }
const TLS13_UP = { minVersion: 'TLSv1.3', versions: [0x0304] }
const FORMS = /default, v1\.2\+, v1\.3\+, TLSv1\.2\+, TLSv1\.3\+, TLSv0x0303\+, TLSv0x0304\+/

describe('parseProtocol', () => {
  test('every accepted form', () => {
    const cases: Array<[string, object]> = [
      ['default', TLS12_UP],
      ['v1.2+', TLS12_UP],
      ['TLSv1.2+', TLS12_UP],
      ['TLSv0x0303+', TLS12_UP],
      ['v1.3+', TLS13_UP],
      ['TLSv1.3+', TLS13_UP],
      ['TLSv0x0304+', TLS13_UP],
    ]
    for (const [value, expected] of cases) assert.deepEqual(parseProtocol(value, 'protocol'), expected, value)
  })

  test('returns fresh arrays', () => {
    const first = parseProtocol('default', 'p')
    first.versions.push(0x0305)
    assert.deepEqual(parseProtocol('default', 'p').versions, [0x0303, 0x0304])
  })

  test('anything else is ERR_TLS_CONFIG_PROTOCOL naming the key path and value, listing the forms', () => {
    const invalid: unknown[] = [
      'TLSv1.1+', 'TLSv1.0+', 'v1.0+', 'v1.1+', 'TLSv0x0301+', 'TLSv0x0302+', // below TLS 1.2
      'TLSv0x0305+', 'TLSv0x7F1C+', 'TLSv0xffff+', // above TLS 1.3
      'TLSv1.3', 'v1.2', 'TLSv0x0304', // a single version, no "+"
      '', ' v1.2+', 'v1.2+ ', 'V1.2+', 'tlsv1.2+', 'DEFAULT', 'default+', 'TLSv1.2++', 'TLSv1.4+', 'v1.02+',
      'TLSv0x304+', 'TLSv0x00304+', 'TLSv0X0304+', 'TLSv0xGGGG+', 'TLSv1.2+,TLSv1.3+', 'SSLv3+',
      1.2, 0x0303, null, {}, ['v1.2+'], true,
    ]
    for (const value of invalid) {
      assert.throws(() => parseProtocol(value, 'hosts[3].protocol'), {
        name: 'ConfigError',
        code: 'ERR_TLS_CONFIG_PROTOCOL',
        keyPath: 'hosts[3].protocol',
        value,
        message: FORMS,
      }, JSON.stringify(value))
    }
  })

  test('the message says why', () => {
    assert.throws(() => parseProtocol('TLSv0x0305+', 'p'), { message: /above TLS 1\.3/ })
    assert.throws(() => parseProtocol('TLSv0x030a+', 'p'), { message: /above TLS 1\.3/ })
    assert.throws(() => parseProtocol('TLSv0x030A+', 'p'), { message: /above TLS 1\.3/ })
    assert.throws(() => parseProtocol('TLSv1.1+', 'p'), { message: /below TLS 1\.2/ })
    assert.throws(() => parseProtocol('TLSv0x0302+', 'p'), { message: /below TLS 1\.2/ })
    assert.throws(() => parseProtocol('TLSv1.3', 'p'), { message: /trailing "\+"/ })
    assert.throws(() => parseProtocol('bogus', 'p'), { message: /^p: "bogus" is not a protocol/ })
  })

  test('errors are ConfigError instances', () => {
    assert.throws(() => parseProtocol('v1.0+', 'p'), ConfigError)
  })
})

describe('parseMinVersion', () => {
  test('TLSv1.2 and TLSv1.3', () => {
    assert.deepEqual(parseMinVersion('TLSv1.2', 'minVersion'), TLS12_UP)
    assert.deepEqual(parseMinVersion('TLSv1.3', 'minVersion'), TLS13_UP)
  })

  test('TLS 1.0 and 1.1 are refused, saying rustls supports 1.2 and 1.3 only', () => {
    for (const value of ['TLSv1', 'TLSv1.1']) {
      assert.throws(() => parseMinVersion(value, 'minVersion'), {
        name: 'ConfigError',
        code: 'ERR_TLS_CONFIG_PROTOCOL',
        keyPath: 'minVersion',
        value,
        message: /rustls supports TLS 1\.2 and 1\.3 only/,
      }, value)
    }
  })

  test('anything else is refused', () => {
    for (const value of ['tlsv1.2', 'TLSv1.2+', 'v1.3+', 'default', 'TLSv1.4', '', 0x0304, null]) {
      assert.throws(() => parseMinVersion(value, 'x.minVersion'), {
        code: 'ERR_TLS_CONFIG_PROTOCOL', keyPath: 'x.minVersion', value, message: /'TLSv1\.2' or 'TLSv1\.3'/,
      }, String(value))
    }
  })
})

describe('resolveProtocol', () => {
  test('nothing given: TLS 1.2 and 1.3', () => {
    assert.deepEqual(resolveProtocol({ keyPathPrefix: '' }), TLS12_UP)
  })

  test('protocol alone, minVersion alone', () => {
    assert.deepEqual(resolveProtocol({ protocol: 'v1.3+', keyPathPrefix: '' }), TLS13_UP)
    assert.deepEqual(resolveProtocol({ minVersion: 'TLSv1.3', keyPathPrefix: '' }), TLS13_UP)
    assert.deepEqual(resolveProtocol({ minVersion: 'TLSv1.2', keyPathPrefix: '' }), TLS12_UP)
  })

  test('both given and agreeing', () => {
    assert.deepEqual(resolveProtocol({ protocol: 'TLSv0x0304+', minVersion: 'TLSv1.3', keyPathPrefix: '' }), TLS13_UP)
    assert.deepEqual(resolveProtocol({ protocol: 'default', minVersion: 'TLSv1.2', keyPathPrefix: '' }), TLS12_UP)
  })

  test('both given and disagreeing is an error', () => {
    assert.throws(() => resolveProtocol({ protocol: 'v1.3+', minVersion: 'TLSv1.2', keyPathPrefix: 'hosts[0]' }), {
      name: 'ConfigError', code: 'ERR_TLS_CONFIG_PROTOCOL', keyPath: 'hosts[0].minVersion', value: 'TLSv1.2',
    })
  })

  test('invalid values are reported at their own key path', () => {
    assert.throws(() => resolveProtocol({ protocol: 'TLSv1.1+', keyPathPrefix: 'hosts[1]' }), {
      code: 'ERR_TLS_CONFIG_PROTOCOL', keyPath: 'hosts[1].protocol', value: 'TLSv1.1+',
    })
    assert.throws(() => resolveProtocol({ minVersion: 'TLSv1.1', keyPathPrefix: '' }), {
      code: 'ERR_TLS_CONFIG_PROTOCOL', keyPath: 'minVersion', value: 'TLSv1.1',
    })
  })

  test('maxVersion: TLSv1.3 changes nothing, anything else is an error', () => {
    assert.deepEqual(resolveProtocol({ maxVersion: 'TLSv1.3', keyPathPrefix: '' }), TLS12_UP)
    assert.deepEqual(resolveProtocol({ protocol: 'v1.3+', maxVersion: 'TLSv1.3', keyPathPrefix: '' }), TLS13_UP)
    for (const value of ['TLSv1.2', 'TLSv1.1', 'v1.3+', '', null, 0x0304]) {
      assert.throws(() => resolveProtocol({ maxVersion: value, keyPathPrefix: 'backend.tls' }), {
        name: 'ConfigError', code: 'ERR_TLS_CONFIG_PROTOCOL', keyPath: 'backend.tls.maxVersion', value,
      }, String(value))
    }
    assert.throws(() => resolveProtocol({ maxVersion: 'TLSv1.2', keyPathPrefix: '' }), { keyPath: 'maxVersion' })
  })
})

describe('versionName', () => {
  test('TLS 1.2 and 1.3 only', () => {
    assert.equal(versionName(0x0303), 'TLSv1.2')
    assert.equal(versionName(0x0304), 'TLSv1.3')
    for (const wire of [0x0300, 0x0301, 0x0302, 0x0305, 0, -1, 0xFEFD]) assert.equal(versionName(wire), undefined, String(wire))
  })
})
