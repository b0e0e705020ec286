// The only importer of the addon. Everything the addon exports is typed here;
// the rest of lib/ uses these types and never touches `require` of a .node.
// The numbers that cross the boundary come from native/src/abi.h through
// the generated lib/abi.ts; the addon exports the same tables, checked below.
import { isDeepStrictEqual } from 'node:util'
import path from 'node:path'

import { ABI, Flag, HostIndex, InfoSlot, ListenerEvent, LocalResult, PlanKind, Slot } from './abi'

export { Flag, HostIndex, InfoSlot, ListenerEvent, LocalResult, PlanKind, Slot }

/** Host index a connection reports for an ACME tls-alpn-01 validation handshake. */
export const HOST_CHALLENGE = HostIndex.Challenge

export interface ListenerOptions {
  /** Milliseconds for the whole handshake; 0: none. */
  handshakeTimeout?: number
  noDelay?: boolean
  keepAlive?: boolean
  keepAliveInitialDelay?: number
  /** 0: no limit. */
  maxConnections?: number
  /** Report each failed handshake (address, SNI) for logging, besides counting it. */
  reportFailures?: boolean
  /** Report the completed handshakes of connections JS never sees (spliced), for debug logs. */
  reportHandshakes?: boolean
  /** Ask JS (SessionLookups) about TLS 1.2 session ids the server's own store lacks. */
  sessionLookups?: boolean
  /** ...and about TLS 1.3 PSK identities (a server that issues stateful tickets). */
  sessionLookupsTls13?: boolean
  /** Milliseconds a lookup may take; then the handshake goes on without (a full one). Default 50. */
  sessionLookupTimeout?: number
  /** Report sessions the server stored (NewSessions), drained from its store. */
  reportNewSessions?: boolean
  /** The data plane's timeouts in milliseconds (lib/terminator/config.ts DEFAULTS.plane); unset: none. */
  timeouts?: { headersTimeout: number, keepAliveTimeout: number, closeTimeout: number, lingerTimeout: number, poolIdleTimeout: number }
}

/** What becomes of one host's connections: JS, or a backend native code serves (`serverName`: the Host of an HTTP/1.0 request without one). */
export interface RoutePlan {
  kind: PlanKind
  target?: NativeHandle
  serverName?: string
}

export interface ListenerCounters {
  accepted: number
  rejected: number
  /** Connections accepted and not closed, including those handed to JS. */
  live: number
  /** Of those, the ones native code still owns (handshaking, spliced). */
  owned: number
  closed: number
  /** Raw bytes of closed connections. */
  bytesIn: number
  bytesOut: number
  /** Raw bytes of live connections native code owns. */
  liveBytesIn: number
  liveBytesOut: number
  handshakes: number
  resumed: number
  /** Session lookups asked of JS, answered with a session, timed out; answers rustls refused. */
  sessionLookups: number
  sessionLookupHits: number
  sessionLookupTimeouts: number
  sessionsRefused: number
  /** rustls_result / LocalResult → count. */
  failures: Record<string, number>
  /** 'connect' | 'tls' | 'timeout' → count. */
  backendErrors: Record<string, number>
  /** HTTP status → responses sent natively (http mode). */
  httpResponses: Record<string, number>
  /** Abuse reason → HTTP/2 connections the native front closed for it. */
  h2Abuse: Record<string, number>
}

/** The server's session store (TLS 1.2 session ids, TLS 1.3 stateful tickets). */
export interface NativeSessionCache extends NativeHandle {
  /** Queue every session stored from now on for takeNew() (node:tls 'newSession'). */
  setReport(report: boolean): void
  /** [sessionId, sessionData, ...] stored since the last call, oldest first. */
  takeNew(): Buffer[]
}

export interface NativeListener {
  /** Binds and listens (an IP address, never a name), or adopts a listening descriptor. */
  listen(options: { host?: string, port?: number, backlog?: number, reusePort?: boolean, ipv6Only?: boolean, path?: string, fd?: number }): { address?: string, family?: string, port?: number }
  /** Hosts and per-host plans (index = host index) for new connections. */
  setRoutes(router: NativeHandle, plans: RoutePlan[], id: number): void
  setOptions(ignored: undefined, options: ListenerOptions): void
  /** Stops accepting; live connections go on. */
  close(): void
  /** Closes every connection native code owns, at once. */
  abortAll(): void
  /** No new HTTP exchanges on kept-alive connections: idle ones close, busy ones after their response. */
  drain(): void
  counters(): ListenerCounters
  setRef(ref: boolean): void
  /** The answer to a session lookup (null: none); false if it came too late. */
  answerSession(lookupId: number, sessionData: Buffer | null): boolean
  /** The server's own store: checked before asking JS, drained of new sessions for it. */
  setSessionCache(cache: NativeSessionCache | null): void
  /** ACME http-01: answers GET /.well-known/acme-challenge/<token> with `keyAuthorization` (null: no more). */
  setHttpChallenge(token: string, keyAuthorization: string | null): void
}

export interface BackendTargetOptions {
  /** `ip`: what `name` resolves to (an address, never a name); '' while it does not resolve (connects fail). */
  address: { kind: 'tcp', ip: string, port: number, name: string } | { kind: 'unix', path: string }
  connectTimeout: number
  /** 0: none, 1: v1, 2: v2. */
  proxyProtocol: 0 | 1 | 2
  tls?: { config: NativeHandle, serverName: string }
  /** PROXY v2 SSL key algorithm per certificate of the host ("EC256", "RSA2048"). */
  keyAlgs?: string[]
  /** http mode. */
  http?: {
    /** Milliseconds the backend may send nothing before 504. */
    timeout: number
    stdEnvVars: boolean
    exportCertData: boolean
    /** The host asks for client certificates. */
    clientAuth: boolean
    versionInterface: string
    versionLibrary: string
    /** URL-encoded PEM of each certificate of the host (X-SSL-SERVER-CERT). */
    serverCerts: string[]
    /** Hosts with equal keys (certificates and TLS settings) serve each other's requests (SPEC §4.2). */
    coalesceKey?: string
    /** backend.httpVersion "2": requests go to the backend as HTTP/2 streams (native/src/plane/h2_upstream.h). */
    backendH2?: boolean
    /** The HTTP/2 front (native/src/plane/h2_front.h). */
    h2: { maxConcurrentStreams: number, idleTimeout: number, sendTimeout: number }
  }
}

export interface NativeCertifiedKey {
  /** DER of the i-th certificate of the chain (0 = leaf). */
  certificate(index: number): Buffer | undefined
  destroy(): void
}

export interface NativeHandle {
  destroy(): void
}

export interface NativeBackendTarget extends NativeHandle {
  /** New connections go to `ip` (the backend's name resolved anew). */
  setAddress(ip: string): void
}

export interface NativeTicketer extends NativeHandle {
  /** Replaces the keys (N × 80 bytes, the first sealing) and the lifetime hint of every config using this ticketer. */
  setKeys(material: Buffer, lifetimeSeconds: number): void
}

export interface ServerConfigOptions {
  certifiedKeys: NativeCertifiedKey[]
  /** Protocol versions, e.g. [0x0303, 0x0304]. */
  versions: number[]
  /** Cipher suite ids in preference order; omitted: the provider's list. */
  cipherSuites?: number[]
  ignoreClientOrder: boolean
  alpn?: string[]
  clientAuth?: { ca: Buffer, crls?: Buffer[], optional: boolean }
  sessionCache?: NativeHandle | null
  ticketer?: NativeHandle | null
  /** TLS 1.3 NewSessionTicket messages after a full handshake. */
  sendTickets: number
}

export interface ClientConfigOptions {
  ca?: Buffer
  crls?: Buffer[]
  /** Trust the operating system's store instead of `ca`. */
  systemRoots?: boolean
  dangerouslyDisableVerification?: boolean
  versions: number[]
  cipherSuites?: number[]
  alpn?: string[]
  certifiedKeys?: NativeCertifiedKey[]
  enableSni?: boolean
}

export interface HostRouterEntry {
  /** Exact names and "*.example.com" wildcards. */
  names: string[]
  config: NativeHandle
}

export interface NativeHostRouter extends NativeHandle {
  select(name: string): number
  /**
   * ACME tls-alpn-01 (RFC 8737): ClientHellos offering acme-tls/1 for
   * `name` get `config` (its only ALPN protocol acme-tls/1) before host
   * selection; null removes the entry. Hosts' configs are untouched.
   */
  setChallenge(name: string, config: NativeHandle | null): void
}

/** The negotiated parameters, as JS keeps them after info(). */
export interface ConnectionInfo {
  /** 0x0303 / 0x0304, 0 before negotiation. */
  version: number
  cipherSuite: number
  resumed: boolean
  peerCertificates: number
  /** Server: index of the chosen host, -1 before. */
  host: number
  /** Server: index of the certificate chosen in that host, -1 before. */
  certificate: number
}

export interface ClientHelloInfo {
  serverName: string
  alpn: string[]
  cipherSuites: number[]
  signatureSchemes: number[]
}

/**
 * One fd-pump event, with the connection as `this`: its numbers are in the
 * results array (Flags, Error, Host, Errno; plaintext: Plain bytes from
 * PlainStart of `slab`, a Buffer never rewritten once filled).
 */
export type FdPumpEvent = (this: NativeConnection, slab: Buffer | undefined) => void

export interface NativeConnection {
  /** Input `null` signals the transport EOF. Returns ciphertext to send. */
  feed(input: Buffer | null, offset: number, length: number,
    slab: Buffer, slabOffset: number, slabCapacity: number): Buffer | undefined
  accept(config: NativeHandle | null, host: number): Buffer | undefined
  write(data: Buffer, offset: number, length: number,
    slab: Buffer, slabOffset: number, slabCapacity: number): void
  flush(slab: Buffer, slabOffset: number, slabCapacity: number): void
  sendCloseNotify(): void
  /** Fills the InfoSlot slots of the results array. */
  info(): void
  /** Server: the SNI the client sent, also after a refusal. */
  serverName(): string | undefined
  alpnProtocol(): string | undefined
  /** Key exchange group, e.g. X25519. */
  groupName(): string | undefined
  clientHello(): ClientHelloInfo | undefined
  /** The answer to NeedSession (null: none): the handshake goes on. */
  resumeSession(sessionData: Buffer | null): Buffer | undefined
  /** The session id / PSK identity a pending lookup asks for. */
  sessionKey(): Buffer | undefined
  peerCertificate(index: number): Buffer | undefined
  destroy(): void
  /** Socket mode: poll `fd` (a duplicate while libuv still watches it); events go to `onevent`. */
  start(fd: number, onevent: FdPumpEvent): void
  /**
   * Client, before any transport: connects natively to an IP address (or a
   * Unix path); 0, or the errno of a connect that could not start. Events
   * follow: Connected, or IoError with the errno; after a failure it may be
   * called again with the next address.
   */
  connectSocket(address: { host: string, port: number } | { path: string }, onevent: FdPumpEvent): number
  /**
   * fd pump, past the handshake: relays the plaintext to a socketpair from
   * now on; the other end's descriptor, or -errno. `first` is sent ahead.
   */
  pairPlain(first?: Buffer): number
  readStart(): void
  readStop(): void
  /**
   * 0: sent; 1: pending, a Drained event follows; -1: failed (see results).
   * With `defer`, only encrypted (flushSocket() sends), unless 64 KiB of
   * plaintext wait unsent: then it is sent at once and may return 1.
   * Chunks are Buffers or strings, in latin1 where their bit in `latin1`
   * is set (bit i for the i-th chunk), else utf8; chunks under 16 KiB are
   * gathered into shared records.
   */
  writeSocket(defer: boolean, latin1: number, ...chunks: Array<Buffer | string>): number
  /** Sends what deferred writes left queued; same results as writeSocket. */
  flushSocket(): number
  /** close_notify, then FIN when everything left; 1: pending (Drained follows). */
  shutdownSocket(): number
  /** Stop polling the descriptor (a transport closed underneath); TLS state stays. */
  closeSocket(): void
  setRef(ref: boolean): void
  counters(): { bytesRead: number, bytesWritten: number }
  /** The descriptor's addresses (adopted connections have no net.Socket to ask). */
  addresses(): { remoteAddress?: string, remotePort?: number, remoteFamily?: string, localAddress?: string, localPort?: number, localFamily?: string }
  setSocketOption(name: 'noDelay' | 'keepAlive', enable: boolean, initialDelay?: number): void
}

export interface SupportedSuite {
  id: number
  /** rustls' name, e.g. TLS13_AES_128_GCM_SHA256. */
  name: string
  /** 0x0303 or 0x0304. */
  version: number
}

export interface LiveHandles {
  certifiedKeys: number
  serverConfigs: number
  clientConfigs: number
  sessionCaches: number
  ticketers: number
  hostRouters: number
  connections: number
  listeners: number
  backendTargets: number
}

interface Addon {
  CertifiedKey: new (cert: Buffer, key: Buffer, ocsp?: Buffer, options?: { keysMatch: false }) => NativeCertifiedKey
  ServerConfig: new (options: ServerConfigOptions) => NativeHandle
  ClientConfig: new (options: ClientConfigOptions) => NativeHandle
  SessionCache: new (size: number, options?: { report?: boolean }) => NativeSessionCache
  Ticketer: new (material: Buffer, lifetimeSeconds: number) => NativeTicketer
  HostRouter: new (hosts: HostRouterEntry[], options: { strictSNI: boolean, deferred: boolean }) => NativeHostRouter
  Connection: {
    new (router: NativeHandle, options?: { sessionLookup?: { tls12: boolean, tls13: boolean, cache?: NativeSessionCache | null } }): NativeConnection
    new (config: NativeHandle, serverName: string): NativeConnection
  }
  Listener: new (onevent: (kind: ListenerEvent, ...args: unknown[]) => void, options: ListenerOptions) => NativeListener
  BackendTarget: new (options: BackendTargetOptions) => NativeBackendTarget
  setCipherNames(ids: number[], opensslNames: string[], ianaNames: string[]): void
  /** A listening socket for child processes to inherit (through their stdio); nothing accepts on it here. */
  bindListener(options: { host?: string, port?: number, backlog?: number, ipv6Only?: boolean }): { fd: number, address?: string, family?: string, port?: number }
  results: Int32Array
  /** The ABI tables of native/src/abi.h, as the addon was built with them. */
  abi: Record<string, Record<string, number>>
  supportedCipherSuites(): SupportedSuite[]
  version(): string
  /** The nghttp2 linked into the addon (its own copy, not Node's). */
  nghttp2Version(): string
  errorMessage(code: number): string
  isCertError(code: number): boolean
  liveHandles(): LiveHandles
}

// node-gyp-build looks for prebuilds/<platform>-<arch>/ first, then
// build/Release: a package with a prebuild never needs a compiler.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown

export const addon = load(path.resolve(__dirname, '..', '..')) as Addon
if (!isDeepStrictEqual(addon.abi, ABI)) {
  // A prebuild or build/ from another version than this lib/: every flag
  // and slot could mean something else, so nothing may run.
  throw Object.assign(new Error(`rustls-node: the native addon's ABI tables differ from lib/abi.ts (addon ${JSON.stringify(addon.abi)}); rebuild it (npm run build:native)`), { code: 'ERR_RUSTLS_ABI_MISMATCH' })
}
export const results = addon.results

/** info() read out of the results array. */
export function readInfo (conn: NativeConnection): ConnectionInfo {
  conn.info()
  return {
    version: results[InfoSlot.Version],
    cipherSuite: results[InfoSlot.Suite],
    resumed: results[InfoSlot.Resumed] === 1,
    peerCertificates: results[InfoSlot.PeerCertificates],
    host: results[InfoSlot.Host],
    certificate: results[InfoSlot.Certificate],
  }
}
