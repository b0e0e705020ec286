// Reproduction (for the lead; not run by npm test): ClientContext (and so
// connect()) accepts node:tls options it does not implement and ignores
// them, against SPEC §3 ("never silently ignored"). `crl` (node's name; the
// library's is `crls`) is the dangerous one: revocation is then not checked.
// Run: node dist/test/ecosystem/repro-client-ignores-tls-options.js
// Expected: every line "throws ERR_RUSTLS_UNSUPPORTED_OPTION"; today `crl`
// and `honorCipherOrder` print "accepted (ignored)" (the others throw).
import { ClientContext } from '../../lib/index'
import { fixtures } from '../helpers/certs'

const f = fixtures()
const samples: Record<string, unknown> = { crl: f.clientCrl, honorCipherOrder: true, secureContext: {}, dhparam: 'x', sessionIdContext: 'x' }
for (const [name, value] of Object.entries(samples)) {
  try {
    new ClientContext({ ca: f.ca, [name]: value } as never).destroy()
    console.log(`${name}: accepted (ignored)`)
  } catch (err) {
    console.log(`${name}: throws ${(err as { code?: string }).code}`)
  }
}
