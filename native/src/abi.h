// The native <-> JS ABI, defined once: every number that crosses the
// boundary (results-array slots, event flags, local result codes, listener
// event kinds, plan kinds) is listed here, and only here.
//
// Each table is an X-macro of (Name, value, what it means). C++ code gets
// the enums below; the addon exports every table at load as `abi`
// (js/addon.cc); scripts/gen-abi.js renders lib/abi.ts from this file, and
// lib/native.ts checks at load that the addon's tables equal the rendered
// ones, so JS never keeps a hand-written mirror (a stale build fails loudly).
#ifndef RUSTLS_NODE_ABI_H
#define RUSTLS_NODE_ABI_H

#include <cstdint>

// Slots of the shared results array (Int32Array) a pump call fills.
#define RN_ABI_SLOT(X)                                                                     \
  X(Flags, 0, "Flag bits of the call")                                                     \
  X(Consumed, 1, "feed: input bytes taken; write: plaintext bytes taken")                  \
  X(Plain, 2, "feed: plaintext bytes written to the slab; fd-pump event: plaintext bytes") \
  X(Cipher, 3, "feed: length of the returned Buffer; write/flush: ciphertext in the slab") \
  X(Error, 4, "rustls_result (7000+) or a LocalResult (9000+) once the connection failed") \
  X(Host, 5, "server: index of the host chosen by SNI, -1 before")                         \
  X(Errno, 6, "fd pump: errno of a failed system call")                                    \
  X(PlainStart, 7, "fd-pump event: where its plaintext starts in the Buffer passed")

// Slots info() fills in the same array.
#define RN_ABI_INFO(X)                                      \
  X(Version, 0, "0x0303 / 0x0304, 0 before negotiation")    \
  X(Suite, 1, "negotiated cipher suite id")                 \
  X(Resumed, 2, "1 when the handshake resumed a session")   \
  X(PeerCertificates, 3, "certificates the peer sent")      \
  X(Host, 4, "server: index of the chosen host, -1 before") \
  X(Certificate, 5, "server: index of the certificate chosen in that host, -1 before")

// Flags a pump call or an fd-pump event reports.
#define RN_ABI_FLAG(X)                                                                                                \
  X(HandshakeDone, 1 << 0, "the handshake completed during this call")                                                \
  X(PeerClosed, 1 << 1, "close_notify received and all plaintext before it read")                                     \
  X(Error, 1 << 2, "the connection failed; see the Error slot")                                                       \
  X(WantsWrite, 1 << 3, "ciphertext is pending that did not fit: flush")                                              \
  X(PlainFull, 1 << 4, "the plaintext region filled up: call again")                                                  \
  X(Hello, 1 << 5, "server: the ClientHello was routed to a host")                                                    \
  X(NeedConfig, 1 << 6, "server, deferred routing: call accept(config)")                                              \
  X(Drained, 1 << 7, "fd pump: every pending ciphertext byte reached the kernel")                                     \
  X(IoError, 1 << 8, "fd pump: a read/write system call failed; errno in the event")                                  \
  X(TransportEnd, 1 << 9, "fd pump: the peer's FIN arrived")                                                          \
  X(Connected, 1 << 10, "fd pump: the outgoing connection (connectSocket) is established")                            \
  X(NeedSession, 1 << 11, "server: the hello asks to resume a session the application must look up: resumeSession()") \
  X(PlainEnd, 1 << 12, "relayed (pairPlain): the plaintext side ended; our close_notify and FIN follow")              \
  X(RelayDone, 1 << 13, "relayed (pairPlain): the relay is over (both ways ended, or a side failed)")

// Result codes the addon reports besides rustls_result values (7000+).
#define RN_ABI_LOCAL_RESULT(X)                                                        \
  X(UnrecognizedName, 9001, "strict SNI: no host for the name sent")                  \
  X(NoHost, 9002, "the router has no host (or the host's config was destroyed)")      \
  X(HandshakeTimeout, 9003, "the handshake did not complete within handshakeTimeout") \
  X(TransportError, 9004, "a read/write system call failed during the handshake")

// Kinds of the native listener's onevent(kind, ...) calls.
#define RN_ABI_LISTENER_EVENT(X)                                                                                 \
  X(Secure, 1, "(connection, setId, host, flags, plaintext|undefined): handshake complete, for JS")              \
  X(Failures, 2, "([code, errnoName, sni, address, port, bytesIn, bytesOut, ...]): failed handshakes")           \
  X(Idle, 3, "(setId): a replaced route set has no connection left")                                             \
  X(Backend, 4, "([setId, host, kind, code, errnoName, ...]): backends that failed")                             \
  X(Closed, 5, "(): closed, and its last connection ended")                                                      \
  X(Handshakes, 6,                                                                                               \
    "([setId, host, sni, address, port, version, suite, alpn, resumed, ...]): handshakes JS did not see")        \
  X(HttpNotices, 7,                                                                                              \
    "([setId, host, reason, status, sni, address, port, authority, ...]): HTTP answers and abuse closes to log") \
  X(SessionLookups, 8, "([lookupId, sessionId, ...]): hellos waiting for answerSession(lookupId, data|null)")    \
  X(NewSessions, 9, "([sessionId, sessionData, ...]): sessions the server stored, for the application's store")  \
  X(SpentSessions, 10, "([sessionId, ...]): answered sessions used up (refused by rustls, or a TLS 1.3 resumption)")

// What becomes of an established connection of one host (listener plans).
#define RN_ABI_PLAN_KIND(X)                                        \
  X(Js, 0, "handed to JS as a Connection (the library's sockets)") \
  X(Tcp, 1, "spliced to the host's backend in native code")        \
  X(Http, 2, "HTTP exchanges in native code")

// Host indexes with a meaning of their own.
#define RN_ABI_HOST(X)                                         \
  X(Refused, -1, "strict SNI and no host for the name")        \
  X(Challenge, -2, "an ACME tls-alpn-01 validation handshake") \
  X(Deferred, -3, "the application picks the config (SNICallback)")

namespace rustls_node {

#define RN_ABI_SLOT_ENUM(name, value, doc) kResult##name = value,
#define RN_ABI_INFO_ENUM(name, value, doc) kInfo##name = value,
#define RN_ABI_FLAG_ENUM(name, value, doc) kFlag##name = value,
#define RN_ABI_LOCAL_ENUM(name, value, doc) k##name = value,
#define RN_ABI_EVENT_ENUM(name, value, doc) kEvent##name = value,
#define RN_ABI_PLAN_ENUM(name, value, doc) kPlan##name = value,
#define RN_ABI_HOST_ENUM(name, value, doc) kHost##name = value,

enum ResultSlot : int { RN_ABI_SLOT(RN_ABI_SLOT_ENUM) kResultSlots = 8 };
enum InfoSlot : int { RN_ABI_INFO(RN_ABI_INFO_ENUM) };
enum ResultFlag : int32_t { RN_ABI_FLAG(RN_ABI_FLAG_ENUM) };
enum LocalResult : uint32_t { RN_ABI_LOCAL_RESULT(RN_ABI_LOCAL_ENUM) };
enum ListenerEvent : int { RN_ABI_LISTENER_EVENT(RN_ABI_EVENT_ENUM) };
enum PlanKind : int { RN_ABI_PLAN_KIND(RN_ABI_PLAN_ENUM) };
enum HostIndex : int { RN_ABI_HOST(RN_ABI_HOST_ENUM) };

#undef RN_ABI_SLOT_ENUM
#undef RN_ABI_INFO_ENUM
#undef RN_ABI_FLAG_ENUM
#undef RN_ABI_LOCAL_ENUM
#undef RN_ABI_EVENT_ENUM
#undef RN_ABI_PLAN_ENUM
#undef RN_ABI_HOST_ENUM

}  // namespace rustls_node

#endif
