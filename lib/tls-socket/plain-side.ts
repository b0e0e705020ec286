// PlainSide: the plaintext side of a RustlsSocket relayed to a socketpair
// (RustlsSocket[kPairPlain]). It is a net.Socket over the socketpair's other
// end, a native handle: node:http hands it to its parser (consume) and
// node:http2 to its session as it does a TCP socket, with no JS stream in
// between, while native code relays the pair to the TLS connection. It
// shows the connection's TLS surface (addresses, ALPN, certificates,
// cipher) as a tls.TLSSocket would, read from the RustlsSocket.
import net from 'node:net'

import { kPairPlain, type RustlsSocket } from './socket'

/** The TLS surface a server's `req.socket` shows, as a tls.TLSSocket would. */
export const TLS_METHODS = [
  'getPeerCertificate', 'getPeerX509Certificate', 'getX509Certificate', 'getCertificate',
  'getProtocol', 'getCipher', 'getEphemeralKeyInfo', 'isSessionReused', 'getEnvVars',
  'exportKeyingMaterial', 'getSession', 'getTLSTicket', 'getFinished', 'getPeerFinished', 'getSharedSigalgs',
  'disableRenegotiation', 'renegotiate', 'setMaxSendFragment', 'enableTrace',
] as const
export const TLS_GETTERS = [
  'alpnProtocol', 'servername', 'authorized', 'authorizationError', 'hostIndex',
  'remoteAddress', 'remotePort', 'remoteFamily', 'localAddress', 'localPort',
] as const

export class PlainSide extends net.Socket {
  /** The TLS connection this socket's bytes travel in. */
  readonly tlsSocket: RustlsSocket

  constructor (fd: number, tlsSocket: RustlsSocket) {
    // Half-open as the RustlsSocket (false unless the server asked): node:http
    // handles a client's end itself, node:http2 counts on the socket ending.
    super({ fd, readable: true, writable: true, allowHalfOpen: tlsSocket.allowHalfOpen })
    this.tlsSocket = tlsSocket
  }
}

// On the prototype, once: a PlainSide costs no closure per connection.
Object.defineProperty(PlainSide.prototype, 'encrypted', { value: true, configurable: true })
for (const name of TLS_GETTERS) {
  Object.defineProperty(PlainSide.prototype, name, {
    get (this: PlainSide) { return this.tlsSocket[name] },
    configurable: true,
  })
}
for (const name of TLS_METHODS) {
  Object.defineProperty(PlainSide.prototype, name, {
    value: function (this: PlainSide, ...args: unknown[]) {
      return (this.tlsSocket[name] as (...a: unknown[]) => unknown).apply(this.tlsSocket, args)
    },
    configurable: true,
    writable: true,
  })
}

/**
 * `socket`'s plaintext on a PlainSide, relayed natively; null when the
 * socket cannot be relayed (its JS stream pump, a reader attached), and
 * the socket is used as it is.
 */
export function pairPlain (socket: RustlsSocket): PlainSide | null {
  const fd = socket[kPairPlain]()
  return fd === null ? null : new PlainSide(fd, socket)
}
