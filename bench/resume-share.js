'use strict'
// Scenario `resume-share` (issue 14): resumption under concurrent clients
// that share one session cache per server, as an HTTPS agent with a session
// cache does: 8 handshake loops, each offering the latest session any of
// them received (client.js `shared`). Both servers run with their default
// options, so what is measured is what a user switching from node:tls gets:
// the share of handshakes that resumed, and the server CPU per handshake.
// The driver is scenarios.js' handshake driver; this file holds the case
// and its rows of the report.

/** Targets of issue 14. */
const SHARE_TARGET = 95
const CPU_RATIO_TARGET = 2.0
const CONCURRENCY = 8

function cases (sizes) {
  return [{
    id: 'resume-share-tls13',
    kind: 'handshake',
    stacks: ['node', 'rustls'],
    title: 'TLS 1.3, 8 concurrent clients sharing one session cache, default server options',
    cert: 'localhost-ecdsa',
    version: '1.3',
    ciphers: 'TLS_AES_128_GCM_SHA256',
    resume: true,
    shared: true,
    resumption: 'default',
    concurrency: CONCURRENCY,
    count: sizes.handshakes,
    warm: sizes.warmHandshakes,
    verified: `${sizes.handshakes} handshakes per sample, ${CONCURRENCY} in flight, counted by client and server (resumed ones too), no error, every one TLSv1.3 with the forced suite on both ends; no native handle left after close`,
  }]
}

/**
 * Rows of the report for this scenario, in report.js' figure shape
 * (`stat` and `pairedRatio` are report.js' helpers).
 */
function figures (results, { stat, pairedRatio }) {
  const caseId = 'resume-share-tls13'
  if (results.cases[caseId] === undefined) return []
  const floor = stat(results, 'accept-close', 'net', 'cpuUsPerHandshake')?.median
  const x25519 = stat(results, 'public-key', 'openssl', 'x25519Us')?.median
  const row = (key, better) => ({
    scenario: 7,
    caseId,
    key,
    better,
    node: stat(results, caseId, 'node', key),
    rustls: stat(results, caseId, 'rustls', key),
    ratio: pairedRatio(results, caseId, key, better),
  })
  const share = row('resumedShare', 'higher')
  const cpu = row('cpuUsPerHandshake', 'lower')
  const rate = row('handshakesPerS', 'higher')
  const title = '8 clients sharing one session cache, TLS 1.3, default servers'
  return [
    { ...share, id: `${caseId}-share`, title: `${title}: handshakes resumed`, unit: '%', limit: 100, limitName: 'all', target: { text: `≥ ${SHARE_TARGET} %` }, pass: share.rustls === null ? null : share.rustls.median >= SHARE_TARGET },
    { ...cpu, id: `${caseId}-cpu`, title: `${title}: server CPU-µs per handshake`, unit: 'µs', limit: floor > 0 && x25519 > 0 ? floor + x25519 : null, limitName: 'floor + X25519', target: { ratio: CPU_RATIO_TARGET }, pass: cpu.ratio === null ? null : cpu.ratio.median >= CPU_RATIO_TARGET },
    { ...rate, id: `${caseId}-rate`, title: `${title}: handshakes/s (wall clock, client-bound)`, unit: '/s' },
  ]
}

module.exports = { cases, figures }
