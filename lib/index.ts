// The public surface of rustls-node. Internals are not re-exported.
export { connect, ClientContext, type ClientContextOptions, type ConnectOptions } from './client'
export { createServer, FailedHandshake, Server, type ServerOptions } from './server'
export { RustlsSocket } from './tls-socket/socket'
export { createSecureContext, SecureContext, type SecureContextOptions } from './secure-context'
export type { CertificateEntry, PemInput } from './certs'
export type { ClientAuthOptions, HostOptions, HostTlsOptions } from './hosts'
export { lookupCipher, listCiphers, supportedCiphers, type CipherInfo } from './ciphers'
export { AcmeError, ConfigError, HandshakeTimeoutError, RustlsError, UnsupportedOptionError } from './errors'
export {
  AcmeClient, generateAccountKey, http01Responder, tlsAlpnResponder,
  type AcmeChallenge, type AcmeChallengeType, type AcmeClientOptions, type ChallengeResponder, type IssuedCertificate, type ObtainOptions,
} from './acme'
export { acmeValidationCertificate } from './acme-certs'
export {
  fetchOcsp, fetchOcspStaple, ocspRequest, ocspResponderUrl, OcspError, verifyOcspResponse, type OcspResult, type OcspStatus,
} from './ocsp'
export type { Logger } from './log'
export type { PeerCertificate } from './cert-info'
export { liveHandles, rustlsVersion } from './diagnostics'
export * from './http-exports'
