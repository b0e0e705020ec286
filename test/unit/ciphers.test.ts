import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { CIPHER_TABLE } from '../../lib/cipher-table'
import {
  cipherInfoForId, lookupCipher, listCiphers, resolveCipherPolicy, splitCipherList, supportedCiphers,
  type CipherInfo,
} from '../../lib/ciphers'
import { ConfigError } from '../../lib/errors'
import { addon } from '../../lib/native'

// Compiled to dist/test/unit/: the repository root is three levels up.
const root = path.resolve(__dirname, '..', '..', '..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const generator = require(path.join(root, 'scripts', 'gen-ciphers.js')) as {
  render(text: string, source: string): string
  parseCsv(text: string, source: string): unknown[]
  DEFAULT_CSV: string
  SHARED_CSV: string
}

function fakeLogger (): { calls: unknown[][], warn(...args: unknown[]): void } {
  const calls: unknown[][] = []
  return { calls, warn: (...args: unknown[]) => { calls.push(args) } }
}

const ids = (infos: readonly CipherInfo[]): number[] => infos.map((info) => info.id)
const supportedIds = (): number[] => ids(supportedCiphers())
const without = (list: number[], ...remove: number[]): number[] => list.filter((id) => !remove.includes(id))

describe('generated cipher table', () => {
  test('lib/cipher-table.ts is exactly what scripts/gen-ciphers.js renders from the CSV', () => {
    const expected = generator.render(fs.readFileSync(generator.DEFAULT_CSV, 'utf8'), generator.DEFAULT_CSV)
    assert.equal(fs.readFileSync(path.join(root, 'lib', 'cipher-table.ts'), 'utf8'), expected)
  })

  test('data/tls-cipher-suites.csv is the same as the shared registry export',
    { skip: fs.existsSync(generator.SHARED_CSV) ? false : `${generator.SHARED_CSV} not present (the repository is not inside the workspace)` }, () => {
      assert.equal(fs.readFileSync(generator.DEFAULT_CSV, 'utf8'), fs.readFileSync(generator.SHARED_CSV, 'utf8'))
    })

  test('has the 376 registry rows in strictly ascending id order', () => {
    assert.equal(CIPHER_TABLE.length, 376)
    for (let i = 1; i < CIPHER_TABLE.length; i++) assert.ok(CIPHER_TABLE[i - 1][0] < CIPHER_TABLE[i][0], `row ${i}`)
    assert.deepEqual(CIPHER_TABLE[0], [0x0000, 'TLS_NULL_WITH_NULL_NULL', null, false])
    assert.deepEqual(CIPHER_TABLE.filter((row) => row[3]).map((row) => row[0]), [0x1301, 0x1302, 0x1303, 0x1304, 0x1305])
  })

  test('the generator refuses malformed registry data', () => {
    const header = 'id,iana_name,openssl_name,tls13\n'
    const bad: Array<[string, RegExp]> = [
      ['id,name\n0x0001,A,,no\n', /expected header/],
      [header + '0x0001,TLS_A,,no\n0x0001,TLS_B,,no\n', /duplicate id 0x0001/],
      [header + '0x0001,TLS_A,,no\n0x0002,tls_a,,no\n', /already used on line 2/],
      [header + '0x0001,TLS_A,B-C,no\n0x0002,TLS_B,b-c,no\n', /already used on line 2/],
      [header + '0x0001,TLS_A,,maybe\n', /tls13 must be yes or no/],
      [header + '0x001,TLS_A,,no\n', /bad id/],
      [header + '0x0001,TLS A,,no\n', /bad iana_name/],
      [header + '0x0001,TLS_A,,no,extra\n', /expected 4 fields/],
      [header + '0x0001,TLS13_A,,no\n', /reserved prefix/],
      [header + '0x0001,TLS_CIPHER_0x0001,,no\n', /reserved prefix/],
      [header, /no rows/],
    ]
    for (const [csv, message] of bad) assert.throws(() => generator.parseCsv(csv, 'x.csv'), message, csv)
    assert.deepEqual(generator.parseCsv(header + '0x0002,TLS_B,B-X,yes\r\n0x0001,TLS_A,,no\r\n', 'x.csv'),
      [[1, 'TLS_A', null, false], [2, 'TLS_B', 'B-X', true]])
  })
})

describe('lookupCipher', () => {
  const ecdsa256: CipherInfo = {
    id: 0xC02C,
    ianaName: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
    opensslName: 'ECDHE-ECDSA-AES256-GCM-SHA384',
    tls13: false,
    supported: true,
  }

  test('IANA name', () => {
    assert.deepEqual(lookupCipher('TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'), ecdsa256)
  })

  test('OpenSSL name gives the same entry', () => {
    assert.equal(lookupCipher('ECDHE-ECDSA-AES256-GCM-SHA384'), lookupCipher('TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'))
  })

  test('a TLS 1.3 suite, whose OpenSSL name is its IANA name', () => {
    assert.deepEqual(lookupCipher('TLS_AES_128_GCM_SHA256'), {
      id: 0x1301, ianaName: 'TLS_AES_128_GCM_SHA256', opensslName: 'TLS_AES_128_GCM_SHA256', tls13: true, supported: true,
    })
  })

  test('TLS13_ aliases name the TLS 1.3 suites only', () => {
    assert.equal(lookupCipher('TLS13_AES_128_GCM_SHA256'), lookupCipher('TLS_AES_128_GCM_SHA256'))
    assert.equal(lookupCipher('TLS13_CHACHA20_POLY1305_SHA256')?.id, 0x1303)
    assert.deepEqual(lookupCipher('TLS13_AES_128_CCM_8_SHA256'), {
      id: 0x1305, ianaName: 'TLS_AES_128_CCM_8_SHA256', opensslName: 'TLS_AES_128_CCM_8_SHA256', tls13: true, supported: false,
    })
    assert.equal(lookupCipher('TLS13_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'), undefined)
  })

  test('TLS_CIPHER_0xNNNN for a registered id gives the registry entry, in either hex case', () => {
    assert.equal(lookupCipher('TLS_CIPHER_0xC02C'), lookupCipher('TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'))
    assert.equal(lookupCipher('TLS_CIPHER_0xc02c')?.id, 0xC02C)
    assert.equal(lookupCipher('TLS_CIPHER_0x0000')?.ianaName, 'TLS_NULL_WITH_NULL_NULL')
  })

  test('TLS_CIPHER_0xNNNN for an unregistered id gives a placeholder', () => {
    assert.deepEqual(lookupCipher('TLS_CIPHER_0x1306'), {
      id: 0x1306, ianaName: 'TLS_CIPHER_0x1306', opensslName: 'TLS_CIPHER_0x1306', tls13: false, supported: false,
    })
    assert.equal(lookupCipher('TLS_CIPHER_0xfffe')?.ianaName, 'TLS_CIPHER_0xFFFE')
  })

  test('TLS_CIPHER_ needs 0x and exactly four hex digits', () => {
    for (const name of ['TLS_CIPHER_0x123', 'TLS_CIPHER_0x12345', 'TLS_CIPHER_0xGGGG', 'TLS_CIPHER_C02C', 'TLS_CIPHER_0x', 'TLS_CIPHER_0x-001']) {
      assert.equal(lookupCipher(name), undefined, name)
    }
  })

  test('a number is the id', () => {
    assert.equal(lookupCipher(0xC02C), lookupCipher('ECDHE-ECDSA-AES256-GCM-SHA384'))
    assert.equal(lookupCipher(0)?.ianaName, 'TLS_NULL_WITH_NULL_NULL')
    assert.equal(lookupCipher(0xFFFF)?.ianaName, 'TLS_CIPHER_0xFFFF')
    for (const n of [-1, 0x10000, 1.5, Number.NaN, Infinity]) assert.equal(lookupCipher(n), undefined, String(n))
  })

  test('names match case-insensitively', () => {
    assert.equal(lookupCipher('tls_ecdhe_ecdsa_with_aes_256_gcm_sha384')?.id, 0xC02C)
    assert.equal(lookupCipher('ecdhe-ecdsa-aes256-gcm-sha384')?.id, 0xC02C)
    assert.equal(lookupCipher('tls13_aes_256_gcm_sha384')?.id, 0x1302)
    // The registry spells some names in mixed case.
    assert.equal(lookupCipher('TLS_DH_anon_WITH_AES_128_CBC_SHA')?.id, 0x0034)
    assert.equal(lookupCipher('TLS_DH_ANON_WITH_AES_128_CBC_SHA')?.id, 0x0034)
  })

  test('unknown names give undefined', () => {
    for (const name of ['TLS_MY_SUPER_CIPHER', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385', 'ECDHE-ECDSA-AES256-GCM-SHA385',
      '', ' TLS_AES_128_GCM_SHA256', 'TLS_AES_128_GCM_SHA256:', 'ALL', 'HIGH']) {
      assert.equal(lookupCipher(name), undefined, name)
    }
  })

  test('entries are frozen', () => {
    const info = lookupCipher(0xC02B) as CipherInfo
    assert.ok(Object.isFrozen(info))
    assert.ok(Object.isFrozen(lookupCipher(0x1306)))
  })
})

describe('supportedCiphers / listCiphers / cipherInfoForId', () => {
  test('supportedCiphers is the addon list, in its order, all marked supported', () => {
    const native = addon.supportedCipherSuites()
    assert.ok(native.length > 0)
    assert.deepEqual(supportedIds(), native.map((suite) => suite.id))
    for (const info of supportedCiphers()) assert.equal(info.supported, true, info.ianaName)
  })

  test('rustls names resolve to the same suite, and rustls versions agree with the registry', () => {
    for (const suite of addon.supportedCipherSuites()) {
      assert.equal(lookupCipher(suite.name)?.id, suite.id, suite.name)
      assert.equal(cipherInfoForId(suite.id).tls13, suite.version === 0x0304, suite.name)
      assert.ok(suite.version === 0x0303 || suite.version === 0x0304, suite.name)
    }
  })

  test('known facts about the aws-lc-rs rustls build', () => {
    assert.deepEqual(cipherInfoForId(0xC02B), {
      id: 0xC02B,
      ianaName: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
      opensslName: 'ECDHE-ECDSA-AES128-GCM-SHA256',
      tls13: false,
      supported: true,
    })
    assert.ok(supportedIds().includes(0x1301))
    assert.ok(supportedIds().includes(0xCCA8))
    // rustls implements no RSA key exchange, no CBC and no NULL suites.
    assert.equal(lookupCipher('AES128-SHA')?.supported, false)
    assert.equal(lookupCipher('TLS_NULL_WITH_NULL_NULL')?.supported, false)
    assert.equal(lookupCipher('ECDHE-RSA-AES128-SHA')?.supported, false)
  })

  test('listCiphers is every registry row in id order, with consistent supported flags', () => {
    const all = listCiphers()
    assert.deepEqual(ids(all), CIPHER_TABLE.map((row) => row[0]))
    const supported = new Set(supportedIds())
    assert.deepEqual(all.filter((info) => info.supported).map((info) => info.id).sort((a, b) => a - b),
      [...supported].sort((a, b) => a - b))
    assert.equal(all.find((info) => info.id === 0x0001)?.opensslName, 'NULL-MD5')
    assert.equal(all.find((info) => info.id === 0x0000)?.opensslName, 'TLS_NULL_WITH_NULL_NULL')
  })

  test('the lists are fresh arrays', () => {
    const first = listCiphers()
    first.length = 0
    assert.equal(listCiphers().length, CIPHER_TABLE.length)
    const supported = supportedCiphers()
    supported.reverse()
    assert.deepEqual(supportedIds(), addon.supportedCipherSuites().map((suite) => suite.id))
  })

  test('cipherInfoForId gives placeholders for unregistered ids and refuses non-16-bit ids', () => {
    assert.deepEqual(cipherInfoForId(0x0A0A), {
      id: 0x0A0A, ianaName: 'TLS_CIPHER_0x0A0A', opensslName: 'TLS_CIPHER_0x0A0A', tls13: false, supported: false,
    })
    for (const n of [-1, 0x10000, 2.5, Number.NaN]) assert.throws(() => cipherInfoForId(n), RangeError, String(n))
  })
})

describe('splitCipherList', () => {
  test('splits on ":", "," and whitespace, dropping empty items', () => {
    assert.deepEqual(splitCipherList('A:B,C D\tE\n F'), ['A', 'B', 'C', 'D', 'E', 'F'])
    assert.deepEqual(splitCipherList(' :A::B,, '), ['A', 'B'])
  })

  test('splits inside array elements too', () => {
    assert.deepEqual(splitCipherList(['A:B', ' C ', '', 'D,,E', 'F G']), ['A', 'B', 'C', 'D', 'E', 'F', 'G'])
  })

  test('empty input gives an empty list', () => {
    assert.deepEqual(splitCipherList(''), [])
    assert.deepEqual(splitCipherList([]), [])
    assert.deepEqual(splitCipherList([' ', ':,']), [])
  })

  test('refuses non-string elements', () => {
    assert.throws(() => splitCipherList(['A', 7] as unknown as string[]), TypeError)
  })
})

describe('resolveCipherPolicy', () => {
  test('neither list, or only empty lists: undefined (rustls default)', () => {
    assert.equal(resolveCipherPolicy({ keyPath: '' }), undefined)
    assert.equal(resolveCipherPolicy({ keyPath: '', prefer: [], suppress: '' }), undefined)
    assert.equal(resolveCipherPolicy({ keyPath: '', prefer: ' : ' }), undefined)
  })

  test('preferred suites go first in the given order, the rest keep rustls order', () => {
    const result = resolveCipherPolicy({
      keyPath: 'hosts[0]',
      prefer: ['ECDHE-RSA-CHACHA20-POLY1305', 'TLS13_CHACHA20_POLY1305_SHA256'],
    })
    assert.deepEqual(result, [0xCCA8, 0x1303, ...without(supportedIds(), 0xCCA8, 0x1303)])
  })

  test('every name form works in prefer, in a separated string', () => {
    const result = resolveCipherPolicy({
      keyPath: '',
      prefer: 'TLS_CIPHER_0xc02f, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:ECDHE-RSA-AES256-GCM-SHA384 TLS_AES_128_GCM_SHA256',
    })
    assert.deepEqual(result, [0xC02F, 0xC02B, 0xC030, 0x1301, ...without(supportedIds(), 0xC02F, 0xC02B, 0xC030, 0x1301)])
  })

  test('a suite preferred twice keeps its first place', () => {
    const result = resolveCipherPolicy({ keyPath: '', prefer: ['TLS_AES_128_GCM_SHA256', 'ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS13_AES_128_GCM_SHA256'] })
    assert.deepEqual(result, [0x1301, 0xC02B, ...without(supportedIds(), 0x1301, 0xC02B)])
  })

  test('suppressed suites are removed, the rest keep rustls order', () => {
    const result = resolveCipherPolicy({ keyPath: '', suppress: 'TLS13_AES_256_GCM_SHA384 ECDHE-RSA-CHACHA20-POLY1305' })
    assert.deepEqual(result, without(supportedIds(), 0x1302, 0xCCA8))
  })

  test('suppression wins over preference', () => {
    const result = resolveCipherPolicy({
      keyPath: '', prefer: ['ECDHE-ECDSA-CHACHA20-POLY1305', 'TLS_AES_256_GCM_SHA384'], suppress: ['TLS_CIPHER_0xCCA9'],
    })
    assert.deepEqual(result, [0x1302, ...without(supportedIds(), 0x1302, 0xCCA9)])
  })

  test('an unknown name in prefer is an error naming it and its index after splitting', () => {
    assert.throws(() => resolveCipherPolicy({
      keyPath: 'hosts[2]', prefer: ['TLS13_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256', 'TLS_MY_SUPER_CIPHER'],
    }), {
      name: 'ConfigError',
      code: 'ERR_TLS_CONFIG_UNKNOWN_CIPHER',
      keyPath: 'hosts[2].ciphersPrefer[2]',
      value: 'TLS_MY_SUPER_CIPHER',
      message: /^hosts\[2\]\.ciphersPrefer\[2\]: unknown cipher suite "TLS_MY_SUPER_CIPHER"/,
    })
  })

  test('a misspelt real suite in suppress is an error', () => {
    assert.throws(() => resolveCipherPolicy({
      keyPath: '', suppress: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385',
    }), {
      code: 'ERR_TLS_CONFIG_UNKNOWN_CIPHER',
      keyPath: 'ciphersSuppress[0]',
      value: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385',
      message: /TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385/,
    })
  })

  test('an unknown name fails before any warning is logged', () => {
    const logger = fakeLogger()
    assert.throws(() => resolveCipherPolicy({
      keyPath: '', prefer: 'TLS_NULL_WITH_NULL_NULL', suppress: 'TLS_MY_SUPER_CIPHER', logger,
    }), { code: 'ERR_TLS_CONFIG_UNKNOWN_CIPHER', keyPath: 'ciphersSuppress[0]' })
    assert.deepEqual(logger.calls, [])
  })

  test('an unsupported suite in prefer: exactly one warning, and the default list', () => {
    const logger = fakeLogger()
    const result = resolveCipherPolicy({ keyPath: 'hosts[0]', prefer: ['TLS_NULL_WITH_NULL_NULL'], logger })
    assert.deepEqual(result, supportedIds())
    assert.deepEqual(logger.calls, [[
      { cipher: 'TLS_NULL_WITH_NULL_NULL', keyPath: 'hosts[0].ciphersPrefer[0]' },
      'cipher suite TLS_NULL_WITH_NULL_NULL is not supported by rustls; ignored',
    ]])
  })

  test('the warning for an OpenSSL name also gives the IANA name; supported entries keep their place', () => {
    const logger = fakeLogger()
    const result = resolveCipherPolicy({ keyPath: '', prefer: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA', logger })
    assert.deepEqual(result, [0xC02F, ...without(supportedIds(), 0xC02F)])
    assert.deepEqual(logger.calls, [[
      { cipher: 'AES128-SHA', keyPath: 'ciphersPrefer[1]' },
      'cipher suite AES128-SHA (TLS_RSA_WITH_AES_128_CBC_SHA) is not supported by rustls; ignored',
    ]])
  })

  test('an unregistered TLS_CIPHER_0x id in prefer is known but unsupported: a warning', () => {
    const logger = fakeLogger()
    assert.deepEqual(resolveCipherPolicy({ keyPath: '', prefer: 'TLS_CIPHER_0x1306', logger }), supportedIds())
    assert.equal(logger.calls.length, 1)
  })

  test('without a logger, an unsupported preferred suite is silently ignored', () => {
    assert.deepEqual(resolveCipherPolicy({ keyPath: '', prefer: 'TLS_NULL_WITH_NULL_NULL' }), supportedIds())
  })

  test('suppressing an unsupported suite is silent', () => {
    const logger = fakeLogger()
    const result = resolveCipherPolicy({ keyPath: '', suppress: ['TLS_NULL_WITH_NULL_NULL', 'AES128-SHA'], logger })
    assert.deepEqual(result, supportedIds())
    assert.deepEqual(logger.calls, [])
  })

  test('suppressing every supported suite is an error', () => {
    const all = supportedCiphers().map((info) => info.opensslName)
    assert.throws(() => resolveCipherPolicy({ keyPath: 'hosts[1]', suppress: all }), {
      name: 'ConfigError',
      code: 'ERR_TLS_CONFIG_NO_CIPHERS',
      keyPath: 'hosts[1].ciphersSuppress',
    })
  })

  test('with minimum TLS 1.3, suppressing every TLS 1.3 suite is an error; with 1.2 it is not', () => {
    const tls13 = supportedCiphers().filter((info) => info.tls13).map((info) => info.ianaName)
    assert.ok(tls13.length > 0)
    assert.throws(() => resolveCipherPolicy({ keyPath: '', suppress: tls13, minVersion: 'TLSv1.3' }), {
      code: 'ERR_TLS_CONFIG_NO_CIPHERS', keyPath: 'ciphersSuppress', message: /TLS 1\.3/,
    })
    const tls12only = supportedCiphers().filter((info) => !info.tls13).map((info) => info.id)
    assert.ok(tls12only.length > 0)
    assert.deepEqual(resolveCipherPolicy({ keyPath: '', suppress: tls13, minVersion: 'TLSv1.2' }), tls12only)
    assert.deepEqual(resolveCipherPolicy({ keyPath: '', suppress: tls13 }), tls12only)
  })

  test('with minimum TLS 1.3, one remaining TLS 1.3 suite is enough', () => {
    const [keep, ...drop] = supportedCiphers().filter((info) => info.tls13).map((info) => info.id)
    const result = resolveCipherPolicy({
      keyPath: '', suppress: drop.map((id) => `TLS_CIPHER_0x${id.toString(16)}`), minVersion: 'TLSv1.3',
    })
    assert.deepEqual(result, without(supportedIds(), ...drop))
    assert.ok(result?.includes(keep))
  })

  test('wrong types are configuration errors', () => {
    assert.throws(() => resolveCipherPolicy({ keyPath: 'h', prefer: 42 as unknown as string }), {
      name: 'ConfigError', code: 'ERR_TLS_CONFIG_INVALID', keyPath: 'h.ciphersPrefer',
    })
    assert.throws(() => resolveCipherPolicy({ keyPath: '', suppress: ['TLS_AES_128_GCM_SHA256', 0xC02B] as unknown as string[] }), {
      name: 'ConfigError', code: 'ERR_TLS_CONFIG_INVALID', keyPath: 'ciphersSuppress',
    })
  })

  test('errors are ConfigError instances', () => {
    assert.throws(() => resolveCipherPolicy({ keyPath: '', prefer: 'NOPE' }), ConfigError)
  })
})
