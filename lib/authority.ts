// SPEC §4.2's HTTP rules, shared by createHttpsServer and the terminator:
// which host a request's Host / :authority names, and whether this TLS
// connection may serve it (421 Misdirected Request, RFC 9110 §15.5.20;
// 403 without SNI on a port with several hosts).
import net from 'node:net'

import type { HostContext } from './hosts'

/** The host part of a Host / :authority value: lower-case, no port, no trailing dot. */
export function authorityHost (authority: string): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*))(?::\d*)?$/.exec(authority.trim())
  if (m === null) return undefined
  const host = (m[1] ?? m[2] ?? '').toLowerCase().replace(/\.$/, '')
  return host === '' ? undefined : host
}

/**
 * Index in `hosts` of the host `name` names: an exact name first, then a
 * `*.` alias covering one label — the native router's rules — or -1.
 */
export function hostIndexFor (hosts: readonly HostContext[], name: string): number {
  const n = name.toLowerCase().replace(/\.$/, '')
  for (let i = 0; i < hosts.length; i++) if (hosts[i].names.includes(n)) return i
  const dot = n.indexOf('.')
  if (dot > 0) {
    const wildcard = `*${n.slice(dot)}`
    for (let i = 0; i < hosts.length; i++) if (hosts[i].names.includes(wildcard)) return i
  }
  return -1
}

export type AuthorityCheck =
  | { status: 0, host: number }
  | { status: 403 | 421, reason: string }

/**
 * May a request naming `authority` be served on a connection whose TLS
 * handshake chose `hosts[connectionHost]` (SNI sent or not)?
 *
 * - no SNI and several hosts → 403;
 * - a Host naming another configured host → 421, unless both hosts have
 *   the same certificates and compatible TLS settings: then that host
 *   serves it (clients may coalesce such connections, RFC 9113 §9.1.1);
 * - no Host, an IP address, or a name no host lists → the connection's host.
 *
 * The request's headers are read only when several hosts make them matter:
 * node:http builds `req.headers` on first use, which a one-host server
 * never pays for.
 */
export function checkAuthority (hosts: readonly HostContext[], connectionHost: number, sniSent: boolean, request: { readonly headers: RequestHeaders }): AuthorityCheck {
  // One host: nothing to misdirect to (runs for every request).
  if (hosts.length < 2) return { status: 0, host: connectionHost }
  if (!sniSent) {
    return { status: 403, reason: 'the client sent no SNI and this port serves several hosts' }
  }
  const sent = authorityOf(request.headers)
  const name = sent === undefined ? undefined : authorityHost(sent)
  if (name === undefined || net.isIP(name) !== 0) return { status: 0, host: connectionHost }
  const other = hostIndexFor(hosts, name)
  if (other < 0 || other === connectionHost) return { status: 0, host: connectionHost }
  const own = hosts[connectionHost]
  const target = hosts[other]
  if (own === undefined || own.certificateKey !== target.certificateKey || own.policyKey !== target.policyKey) {
    return { status: 421, reason: 'the request names another host than the TLS connection (SNI) was made for' }
  }
  return { status: 0, host: other }
}

/** A request's headers, node:http's or node:http2's. */
type RequestHeaders = Readonly<Record<string, string | string[] | undefined>>

/** The :authority (HTTP/2) or Host header of a request, as sent. */
function authorityOf (headers: RequestHeaders): string | undefined {
  const raw = headers[':authority'] ?? headers.host
  const value = Array.isArray(raw) ? raw[0] : raw
  return value === undefined || value === '' ? undefined : value
}
