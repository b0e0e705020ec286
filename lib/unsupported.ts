// node:tls options rustls cannot honour. Each one given throws
// ERR_RUSTLS_UNSUPPORTED_OPTION naming it (SPEC §3): never silently ignored.
import { UnsupportedOptionError } from './errors'

/** node:tls server options rustls cannot honour: each throws by name. */
export const UNSUPPORTED_SERVER_OPTIONS: Readonly<Record<string, string>> = {
  pfx: 'PKCS#12 input is not supported; give cert and key as PEM',
  dhparam: 'rustls has no finite-field Diffie-Hellman',
  ecdhCurve: 'rustls chooses key exchange groups itself',
  secureProtocol: 'use minVersion or protocol',
  secureOptions: 'OpenSSL option flags do not apply to rustls',
  sessionIdContext: 'sessions are bound to the host by rustls',
  sessionTimeout: 'the cache is bounded by size; tickets live one to two ticketLifetime periods (seconds, default 6 h)',
  privateKeyEngine: 'OpenSSL engines do not apply to rustls',
  privateKeyIdentifier: 'OpenSSL engines do not apply to rustls',
  clientCertEngine: 'OpenSSL engines do not apply to rustls',
  sigalgs: 'rustls chooses signature schemes itself',
  enableTrace: 'OpenSSL tracing does not apply to rustls',
  pskCallback: 'TLS-PSK is not supported by rustls-ffi',
  pskIdentityHint: 'TLS-PSK is not supported by rustls-ffi',
  ALPNCallback: 'rustls selects ALPN from ALPNProtocols in server order',
  pauseOnConnect: 'the TLS layer reads the ClientHello as soon as a client connects',
  ciphers: 'use ciphersPrefer / ciphersSuppress (OpenSSL cipher strings do not apply)',
}

/** node:tls client options rustls cannot honour: each throws by name. */
export const UNSUPPORTED_CLIENT_OPTIONS: Readonly<Record<string, string>> = {
  pfx: 'PKCS#12 input is not supported; give cert and key as PEM',
  secureProtocol: 'use minVersion or protocol',
  secureOptions: 'OpenSSL option flags do not apply to rustls',
  ciphers: 'use ciphersPrefer / ciphersSuppress (OpenSSL cipher strings do not apply)',
  ecdhCurve: 'rustls chooses key exchange groups itself',
  sigalgs: 'rustls chooses signature schemes itself',
  checkServerIdentity: 'rustls verifies the name itself; use servername',
  session: 'reuse a ClientContext (context option) to resume sessions',
  pskCallback: 'TLS-PSK is not supported by rustls-ffi',
  privateKeyEngine: 'OpenSSL engines do not apply to rustls',
  privateKeyIdentifier: 'OpenSSL engines do not apply to rustls',
  enableTrace: 'OpenSSL tracing does not apply to rustls',
  minDHSize: 'rustls has no finite-field Diffie-Hellman',
  requestOCSP: 'rustls-ffi does not hand the stapled OCSP response to the application',
  onread: 'plaintext is delivered through the stream',
  secureContext: 'pass a ClientContext as `context`',
  pskIdentityHint: 'TLS-PSK is not supported by rustls-ffi',
  dhparam: 'rustls has no finite-field Diffie-Hellman',
  sessionIdContext: 'not applicable to clients',
  honorCipherOrder: 'a server option: a client offers suites in ciphersPrefer order',
}

/** Throws for the first option of `table` present in `options`. */
export function rejectUnsupported (options: object, table: Readonly<Record<string, string>>): void {
  for (const [name, reason] of Object.entries(table)) {
    if ((options as Record<string, unknown>)[name] !== undefined) {
      throw new UnsupportedOptionError(name, reason)
    }
  }
}

