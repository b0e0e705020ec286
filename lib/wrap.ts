// `new RustlsSocket(socket, options)`: TLS over an existing, connected
// Duplex (node:tls' `new tls.TLSSocket(socket, options)`), server or client.
import type { Duplex } from 'node:stream'

import type { PemInput } from './certs'
import { ClientContext, type ClientContextOptions } from './client-context'
import { addon, type NativeHandle } from './native'
import { createSecureContext, SecureContext, type SecureContextOptions } from './secure-context'
import type { SocketInit } from './tls-socket/socket'

export interface WrapOptions extends ClientContextOptions, Omit<SecureContextOptions, keyof ClientContextOptions> {
  /** Act as the TLS server on this socket (default false: client). */
  isServer?: boolean
  /** Server: the context to serve with (else one is made from the options). */
  secureContext?: SecureContext
  /** Client: a ClientContext to use and resume sessions with. */
  context?: ClientContext
  /** Client: SNI and the name verified (required for a client). */
  servername?: string
  handshakeTimeout?: number
  allowHalfOpen?: boolean
  highWaterMark?: number
}

export function wrapInit (transport: Duplex, options: WrapOptions): SocketInit {
  const common = {
    pump: { kind: 'stream' as const, transport },
    handshakeTimeout: options.handshakeTimeout ?? 120000,
    allowHalfOpen: options.allowHalfOpen,
    highWaterMark: options.highWaterMark,
    logger: options.logger,
  }
  if (options.isServer === true) {
    const node = options as WrapOptions & { requestCert?: boolean, rejectUnauthorized?: boolean, crl?: ClientContextOptions['crls'] }
    // node:tls' requestCert/rejectUnauthorized/ca, as createServer maps them.
    const clientAuth = options.clientAuth ?? (node.requestCert === true
      ? { mode: node.rejectUnauthorized === false ? 'optional' as const : 'required' as const, ca: options.ca as PemInput | PemInput[], crls: node.crl ?? options.crls }
      : undefined)
    const context = options.secureContext ?? createSecureContext({ ...options, clientAuth })
    const owned = options.secureContext === undefined
    let router: NativeHandle
    try {
      // One host, no names: every SNI (or none) gets this context.
      router = new addon.HostRouter([{ names: [], config: context.native }], { strictSNI: false, deferred: false })
    } catch (err) {
      if (owned) context.destroy()
      throw err
    }
    return {
      ...common,
      connection: new addon.Connection(router),
      isServer: true,
      hooks: { hostFor: () => context.host },
      release: () => {
        router.destroy()
        if (owned) context.destroy()
      },
    }
  }
  const context = options.context ?? new ClientContext(options)
  const owned = options.context === undefined
  const servername = options.servername ?? 'localhost'
  let connection
  try {
    connection = new addon.Connection(context.native, servername)
  } catch (err) {
    if (owned) context.destroy()
    throw err
  }
  return {
    ...common,
    connection,
    isServer: false,
    servername,
    ownLeaf: context.ownLeaf,
    verificationDisabled: context.verificationDisabled,
    release: owned ? () => context.destroy() : undefined,
  }
}
