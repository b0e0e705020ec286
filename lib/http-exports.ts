// HTTP helpers of the public surface (SPEC §3), for lib/index.ts to re-export.
export { createHttpsAgent, RustlsAgent, type RustlsAgentOptions } from './agent'
export {
  createHttpsServer,
  DEFAULT_HTTPS_ALPN,
  HttpsServer,
  type Http2SessionOptions,
  type HttpsRequestListener,
  type HttpsServerOptions,
} from './http'
export {
  rustlsConnector,
  type RustlsConnector,
  type RustlsConnectorOptions,
  type UndiciConnectCallback,
  type UndiciConnectOptions,
} from './undici'
