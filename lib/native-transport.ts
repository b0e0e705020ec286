// The transport under a RustlsSocket whose connection the native listener
// accepted and handshook (lib/native-listener.ts): there is no net.Socket,
// native code owns the descriptor, so this stands in for the few net.Socket
// members a RustlsSocket in socket mode uses (addresses, socket options,
// destroy and its 'close'). Not a stream: no bytes ever pass through it.
import { EventEmitter } from 'node:events'

import type { NativeConnection } from './native'

type Addresses = ReturnType<NativeConnection['addresses']>

export class NativeTransport extends EventEmitter {
  destroyed = false
  readonly connecting = false
  readonly readableLength = 0
  readonly writableLength = 0
  /** Nothing passes through this object: the connection counts the bytes. */
  readonly bytesRead = 0
  readonly bytesWritten = 0
  readonly timeout = undefined
  readonly #conn: NativeConnection
  #addresses: Addresses | undefined

  constructor (conn: NativeConnection) {
    super()
    this.#conn = conn
  }

  /** Read once, on first use: a closed descriptor has no addresses any more. */
  #addr (): Addresses {
    if (this.#addresses === undefined) {
      try {
        this.#addresses = this.#conn.addresses()
      } catch {
        this.#addresses = {}
      }
    }
    return this.#addresses
  }

  get remoteAddress (): string | undefined { return this.#addr().remoteAddress }
  get remotePort (): number | undefined { return this.#addr().remotePort }
  get remoteFamily (): string | undefined { return this.#addr().remoteFamily }
  get localAddress (): string | undefined { return this.#addr().localAddress }
  get localPort (): number | undefined { return this.#addr().localPort }
  get localFamily (): string | undefined { return this.#addr().localFamily }
  get writable (): boolean { return !this.destroyed }
  get readyState (): string { return this.destroyed ? 'closed' : 'open' }

  address (): { address: string, family: string, port: number } | Record<string, never> {
    const a = this.#addr()
    if (a.localAddress === undefined) return {}
    return { address: a.localAddress, family: a.localFamily ?? 'IPv4', port: a.localPort ?? 0 }
  }

  setNoDelay (noDelay = true): this {
    if (!this.destroyed) this.#conn.setSocketOption('noDelay', noDelay)
    return this
  }

  setKeepAlive (enable = false, initialDelay = 0): this {
    if (!this.destroyed) this.#conn.setSocketOption('keepAlive', enable, initialDelay)
    return this
  }

  /** The RustlsSocket keeps the idle timer in socket mode. */
  setTimeout (): this { return this }
  ref (): this { return this }
  unref (): this { return this }
  pause (): this { return this }
  resume (): this { return this }

  /** Closes the descriptor (through the connection) and emits 'close' once. */
  destroy (): this {
    if (this.destroyed) return this
    // Addresses stay readable for logs after the close.
    this.#addr()
    this.destroyed = true
    this.#conn.closeSocket()
    process.nextTick(() => this.emit('close', false))
    return this
  }
}
