// Relay: plaintext moved between two endpoints in native code, with
// backpressure (a side is read only while the other has nothing queued)
// and half-close (one side's end ends the other's way out). The tcp-mode
// splice relays a client to its backend; a library connection relays its
// TLS stream to a socketpair that Node's own HTTP servers read
// (Connection::PairPlain).
#ifndef RUSTLS_NODE_RELAY_H
#define RUSTLS_NODE_RELAY_H

#include "io/endpoint.h"

namespace rustls_node {

// Moves what `src` has to `dst`: a few reads, while `dst` has nothing
// queued; src's end (FIN, close_notify) ends dst's way out. False when a
// side failed and the relay is over (a TLS source's alert went out first).
bool RelayMove(Endpoint& src, Endpoint& dst);

// The poll events each side needs now, and whether both ways ended with
// nothing left to send.
struct RelayPolls {
  int a = 0;
  int b = 0;
  bool done = false;
};
RelayPolls RelayEvents(const Endpoint& a, const Endpoint& b);

// Something waits to be written on `e`: bytes, or the FIN asked for.
bool OutPending(const Endpoint& e);

}  // namespace rustls_node

#endif
