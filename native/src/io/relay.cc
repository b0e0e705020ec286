#include "io/relay.h"

namespace rustls_node {

namespace {

// Reads per event before yielding to the loop, so one busy relay cannot
// starve the others.
constexpr int kMovesPerEvent = 4;

}  // namespace

bool RelayMove(Endpoint& src, Endpoint& dst) {
  for (int i = 0; i < kMovesPerEvent && !dst.HasQueued() && !src.input_ended(); i++) {
    PlainOut plain = PlainOut::Growing(&SharedPlain());
    Io r = src.Read(plain);
    if (plain.len > 0 && dst.Write(plain.base, plain.len) == Io::kFailed) return false;
    // TLS reads may queue records of their own (key updates, alerts).
    if (src.tls() && src.HasQueued() && src.Flush() == Io::kFailed) return false;
    if (r == Io::kWouldBlock) break;
    if (r == Io::kEnd) {
      dst.EndWrite();
      return dst.Flush() != Io::kFailed;
    }
    if (r == Io::kFailed) {
      // A TLS error queued an alert; it goes out before the close.
      if (src.tls() && src.tls_error != 0 && src.tls_error != RUSTLS_RESULT_UNEXPECTED_EOF) src.Flush();
      return false;
    }
    if (src.drained()) break;
  }
  return true;
}

bool OutPending(const Endpoint& e) { return e.HasQueued() || (e.end_requested() && !e.fin_sent()); }

RelayPolls RelayEvents(const Endpoint& a, const Endpoint& b) {
  RelayPolls p;
  bool a_out = OutPending(a);
  bool b_out = OutPending(b);
  p.a = (!a.input_ended() && !b_out ? UV_READABLE : 0) | (a_out ? UV_WRITABLE : 0);
  p.b = (!b.input_ended() && !a_out ? UV_READABLE : 0) | (b_out ? UV_WRITABLE : 0);
  p.done = a.input_ended() && b.input_ended() && !a_out && !b_out;
  return p;
}

}  // namespace rustls_node
