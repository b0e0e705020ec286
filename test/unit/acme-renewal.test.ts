// When a managed certificate renews: at 2/3 of its lifetime, earlier by at
// most 1/30 of it (the random part), never later.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { renewalTime } from '../../lib/terminator/acme'

test('renewal at 2/3 of the lifetime, less up to 1/30 of it', () => {
  const day = 86_400_000
  const notBefore = Date.UTC(2026, 0, 1)
  const notAfter = notBefore + 90 * day
  assert.equal(renewalTime(notBefore, notAfter, 0), notBefore + 60 * day)
  assert.equal(renewalTime(notBefore, notAfter, 1), notBefore + 57 * day)
  for (let i = 0; i < 100; i++) {
    const at = renewalTime(notBefore, notAfter)
    assert.ok(at > notBefore + 57 * day - 1 && at <= notBefore + 60 * day, new Date(at).toISOString())
  }
  // A 21 s test certificate: between 13.3 s and 14 s.
  assert.equal(renewalTime(0, 21_000, 0), 14_000)
  assert.equal(renewalTime(0, 21_000, 1), 13_300)
})
