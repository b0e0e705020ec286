#include "tls/stream.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "tls/client_hello.h"
#include "tls/router.h"

namespace rustls_node {

namespace {

// rustls fragments application data into records of at most 16 KiB of
// plaintext (RFC 8446 §5.1).
constexpr size_t kMaxPlainRecord = 16 * 1024;

// TLS AlertDescription values (RFC 8446 §6).
constexpr uint8_t kUnexpectedMessage = 10;
constexpr uint8_t kHandshakeFailure = 40;
constexpr uint8_t kAccessDenied = 49;
constexpr uint8_t kInternalError = 80;
constexpr uint8_t kUnrecognizedNameAlert = 112;

int AppendAlert(void* userdata, const uint8_t* buf, size_t n, size_t* out_n) {
  auto* out = static_cast<std::vector<uint8_t>*>(userdata);
  out->insert(out->end(), buf, buf + n);
  *out_n = n;
  return 0;
}

}  // namespace

std::shared_ptr<rn_session_cache> SessionCacheRef(const rn_session_cache* cache) {
  if (cache == nullptr) return nullptr;
  return std::shared_ptr<rn_session_cache>(rn_session_cache_clone(cache), rn_session_cache_free);
}

int ReadFromCursor(void* userdata, uint8_t* buf, size_t n, size_t* out_n) {
  auto* in = static_cast<InputCursor*>(userdata);
  size_t k = std::min(n, in->len - in->pos);
  if (k > 0) std::memcpy(buf, in->data + in->pos, k);
  in->pos += k;
  *out_n = k;
  return 0;
}

bool PlainOut::Reserve(size_t min) {
  if (grow != nullptr) {
    if (cap - len < min) {
      // resize() zero-fills the new part: initialized, as rustls requires.
      grow->resize(len + min);
      base = grow->data();
      cap = grow->size();
    }
    return true;
  }
  return len < cap;
}

std::unique_ptr<TlsStream> TlsStream::Server() {
  std::unique_ptr<TlsStream> s(new TlsStream(true));
  s->acceptor_ = rustls_acceptor_new();
  return s;
}

std::unique_ptr<TlsStream> TlsStream::Client(rustls_connection* conn) {
  std::unique_ptr<TlsStream> s(new TlsStream(false));
  s->conn_ = conn;
  // Writes are bounded by the owner's flow control, not by rustls.
  rustls_connection_set_buffer_limit(conn, SIZE_MAX);
  return s;
}

TlsStream::~TlsStream() {
  FreeAccept();
  rustls_connection_free(conn_);
}

void TlsStream::FreeAccept() {
  rustls_accepted_free(accepted_);
  accepted_ = nullptr;
  rustls_acceptor_free(acceptor_);
  acceptor_ = nullptr;
}

void TlsStream::Fail(uint32_t code) {
  if (error_ == 0) error_ = code;
  flags_ |= kFlagError;
}

// What a client is told, and what is reported, when a connection fails
// before it has a rustls_connection: rustls_acceptor_accept or
// rustls_accepted_into_connection returned `code` with the alert rustls
// queued (`queued`, may be NULL; taken and freed here), or the router
// refused the name (kUnrecognizedName, kNoHost; `queued` NULL). The alert
// goes out in the clear (no keys exist yet). Where rustls' acceptor differs
// from what rustls itself sends on a connection, or from the RFCs:
// - strict SNI refusal: unrecognized_name (RFC 6066 §3); no host at all (a
//   closing server) or a destroyed config: internal_error, a local fault;
// - no configured certificate can sign with a scheme the client offers, or
//   the client offers no suite we have: rustls' resolver contract makes
//   that access_denied ("no server certificate chain resolved"), which
//   clients read as an authorization failure; the peer is owed
//   handshake_failure (RFC 8446 §4.1.1, RFC 5246 §7.4.1.3), which is also
//   what rustls sends when it finds no common suite, and the code reported
//   is rustls' for that case (PEER_INCOMPATIBLE_ERROR);
// - a first handshake message that is not a ClientHello: the acceptor
//   queues nothing; rustls sends unexpected_message for an out-of-order
//   handshake message everywhere else (RFC 8446 §6.2).
void TlsStream::FailAccept(uint32_t code, rustls_accepted_alert* queued) {
  std::vector<uint8_t> alert;
  if (queued != nullptr) {
    size_t n = 0;
    while (rustls_accepted_alert_write_tls(queued, AppendAlert, &alert, &n) == 0 && n > 0) {
    }
    rustls_accepted_alert_free(queued);
  }
  auto fatal = [](uint8_t description) {
    return std::vector<uint8_t>{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description};
  };
  if (code == kUnrecognizedName) {
    alert = fatal(kUnrecognizedNameAlert);
  } else if (code == kNoHost) {
    alert = fatal(kInternalError);
  } else if (code == RUSTLS_RESULT_INAPPROPRIATE_HANDSHAKE_MESSAGE && alert.empty()) {
    alert = fatal(kUnexpectedMessage);
  } else if (code == RUSTLS_RESULT_GENERAL && alert.size() == 7 && alert[0] == 0x15 && alert[5] == 0x02 &&
             alert[6] == kAccessDenied) {
    // On the accept path rustls sends access_denied only when the resolver
    // returns no certificate (rustls 0.23 server/hs.rs); the record header
    // stays as rustls wrote it.
    alert[6] = kHandshakeFailure;
    code = RUSTLS_RESULT_PEER_INCOMPATIBLE_ERROR;
  }
  Fail(code);
  alert_.insert(alert_.end(), alert.begin(), alert.end());
  FreeAccept();
}

TlsStream::Accept TlsStream::AcceptHello(InputCursor& in, const Router& router) {
  if (error_ != 0) return Accept::kFailed;
  if (conn_ != nullptr) return Accept::kConnection;
  if (awaiting_session()) return Accept::kSession;
  if (accepted_ != nullptr) {
    // Waiting for Continue(); nothing more is taken meanwhile.
    flags_ |= kFlagNeedConfig;
    return Accept::kDeferred;
  }
  for (;;) {
    if (in.pos < in.len) {
      size_t n = 0;
      size_t before = in.pos;
      if (rustls_acceptor_read_tls(acceptor_, ReadFromCursor, &in, &n) != 0) {
        Fail(RUSTLS_RESULT_IO);
        FreeAccept();
        return Accept::kFailed;
      }
      // Kept for SessionKeyOf; rustls' acceptor refuses hellos past 64 KiB.
      if ((lookup_.tls12 || lookup_.tls13) && hello_records_.size() < 80 * 1024) {
        hello_records_.insert(hello_records_.end(), in.data + before, in.data + in.pos);
      }
    }
    rustls_accepted_alert* alert = nullptr;
    rustls_result r = rustls_acceptor_accept(acceptor_, &accepted_, &alert);
    if (r == RUSTLS_RESULT_OK) break;
    if (r == RUSTLS_RESULT_ACCEPTOR_NOT_READY) {
      if (in.pos >= in.len) return Accept::kMore;
      continue;
    }
    FailAccept(r, alert);
    return Accept::kFailed;
  }
  // The acceptor is done; the hello (and any records after it) live in
  // `accepted_` now.
  rustls_acceptor_free(acceptor_);
  acceptor_ = nullptr;
  rustls_str sni = rustls_accepted_server_name(accepted_);
  sni_.assign(sni.data, sni.len);
  if (router.empty()) {
    // Every host went away (the server closed): a local fault.
    FailAccept(kNoHost, nullptr);
    return Accept::kFailed;
  }
  Router::Route route = router.Choose(sni_, accepted_);
  if (route.host == kHostDeferred) {
    flags_ |= kFlagNeedConfig;
    return Accept::kDeferred;
  }
  return Continue(route.ref, route.host);
}

TlsStream::Accept TlsStream::Continue(const ConfigRef& ref, int host) {
  if (accepted_ == nullptr) return error_ != 0 ? Accept::kFailed : Accept::kConnection;
  const rustls_server_config* config = ref != nullptr ? ref->config : nullptr;
  if (config == nullptr) {
    // Refused before any certificate is sent: the name is unknown (strict
    // SNI, or the application's own refusal), or its config was destroyed.
    FailAccept(host == kHostRefused || host == kHostDeferred ? static_cast<uint32_t>(kUnrecognizedName)
                                                             : static_cast<uint32_t>(kNoHost),
               nullptr);
    return Accept::kFailed;
  }
  return Route(ref, host);
}

TlsStream::Accept TlsStream::Route(const ConfigRef& ref, int host) {
  if (lookup_.tls12 || lookup_.tls13) {
    std::vector<uint8_t> key = SessionKeyOf(hello_records_.data(), hello_records_.size(), lookup_.tls12, lookup_.tls13);
    hello_records_.clear();
    hello_records_.shrink_to_fit();
    if (!key.empty() &&
        (lookup_.local == nullptr || !rn_session_cache_contains(lookup_.local.get(), key.data(), key.size()))) {
      session_key_ = std::move(key);
      pending_ref_ = ref;
      pending_host_ = host;
      flags_ |= kFlagNeedSession;
      return Accept::kSession;
    }
  }
  return Into(ref->config, host);
}

TlsStream::Accept TlsStream::ContinueSession(const uint8_t* data, size_t len) {
  if (!awaiting_session()) return error_ != 0 ? Accept::kFailed : Accept::kConnection;
  ConfigRef ref = std::move(pending_ref_);
  pending_ref_ = nullptr;
  const rustls_server_config* config = ref->config;
  if (config == nullptr) {
    // Destroyed while the application looked the session up.
    FailAccept(kNoHost, nullptr);
    return Accept::kFailed;
  }
  if (data == nullptr) return Into(config, pending_host_);
  // rustls asks the store inside into_connection, synchronously, on this
  // thread: the answer waits there, for that call only.
  rn_session_preload(session_key_.data(), session_key_.size(), data, len);
  Accept a = Into(config, pending_host_);
  session_used_ = rn_session_preload_clear();
  return a;
}

TlsStream::Accept TlsStream::Into(const rustls_server_config* config, int host) {
  rustls_accepted_alert* alert = nullptr;
  // The resolver records its choice on this thread during the call.
  rn_reset_chosen_certificate();
  // Takes its own reference to the config; consumes `accepted_`'s contents
  // either way (the shell is freed below).
  rustls_result r = rustls_accepted_into_connection(accepted_, config, &conn_, &alert);
  certificate_ = static_cast<int>(rn_last_chosen_certificate());
  host_ = host;
  flags_ |= kFlagHello;
  if (r != RUSTLS_RESULT_OK) {
    conn_ = nullptr;
    FailAccept(r, alert);
    return Accept::kFailed;
  }
  FreeAccept();
  // Writes are bounded by the owner's flow control, not by rustls.
  rustls_connection_set_buffer_limit(conn_, SIZE_MAX);
  // Records that arrived with the ClientHello are buffered in the
  // connection; process them now rather than on the next chunk.
  r = rustls_connection_process_new_packets(conn_);
  if (r != RUSTLS_RESULT_OK) {
    // rustls queued the alert: WriteTls sends it.
    Fail(r);
    return Accept::kFailed;
  }
  CheckHandshake();
  return Accept::kConnection;
}

void TlsStream::CheckHandshake() {
  if (handshake_done_ || conn_ == nullptr || rustls_connection_is_handshaking(conn_)) return;
  handshake_done_ = true;
  flags_ |= kFlagHandshakeDone;
  // RFC 8737 §3: a tls-alpn-01 handshake carries no data; the server's
  // close_notify goes out with (or right after) its last flight.
  if (host_ == kHostChallenge) rustls_connection_send_close_notify(conn_);
}

bool TlsStream::Drain(PlainOut& out) {
  for (;;) {
    if (!out.Reserve(kMaxPlainRecord)) {
      flags_ |= kFlagPlainFull;
      return false;
    }
    size_t n = 0;
    rustls_result r = rustls_connection_read(conn_, out.base + out.len, out.cap - out.len, &n);
    if (r == RUSTLS_RESULT_OK) {
      if (n == 0) {
        // Ok(0): close_notify received and every byte before it read.
        if (!peer_closed_) {
          peer_closed_ = true;
          flags_ |= kFlagPeerClosed;
        }
        return true;
      }
      out.len += n;
      continue;
    }
    if (r == RUSTLS_RESULT_PLAINTEXT_EMPTY) return true;
    // UNEXPECTED_EOF: the transport ended without close_notify (truncation).
    Fail(r);
    return false;
  }
}

bool TlsStream::Feed(InputCursor& in, PlainOut& out) {
  if (error_ != 0 || conn_ == nullptr) return error_ == 0;
  for (;;) {
    if (!Drain(out)) break;
    // After close_notify nothing more is read (RFC 8446 §6.1).
    if (peer_closed_) {
      in.pos = in.len;
      break;
    }
    if (in.pos >= in.len) break;
    size_t n = 0;
    // rustls takes at most one buffer's worth per call; loop until the
    // chunk is consumed. Plaintext was drained above, so rustls' 16 KiB
    // received-plaintext limit cannot make this fail.
    if (rustls_connection_read_tls(conn_, ReadFromCursor, &in, &n) != 0) {
      Fail(RUSTLS_RESULT_IO);
      break;
    }
    rustls_result r = rustls_connection_process_new_packets(conn_);
    if (r != RUSTLS_RESULT_OK) {
      Fail(r);
      break;
    }
    CheckHandshake();
  }
  return error_ == 0;
}

bool TlsStream::FeedEof(PlainOut& out) {
  if (error_ != 0) return false;
  if (conn_ == nullptr) {
    // The client left before its ClientHello was complete.
    Fail(RUSTLS_RESULT_UNEXPECTED_EOF);
    FreeAccept();
    return false;
  }
  if (!Drain(out)) return error_ == 0;
  if (peer_closed_) return true;
  if (!eof_fed_) {
    // A read of 0 bytes tells rustls about the transport EOF; before
    // close_notify it reports UNEXPECTED_EOF on the next read.
    eof_fed_ = true;
    InputCursor none;
    size_t n = 0;
    rustls_connection_read_tls(conn_, ReadFromCursor, &none, &n);
    rustls_result r = rustls_connection_process_new_packets(conn_);
    if (r != RUSTLS_RESULT_OK) {
      Fail(r);
      return false;
    }
    CheckHandshake();
    if (!Drain(out)) return error_ == 0;
  }
  if (!peer_closed_) Fail(RUSTLS_RESULT_UNEXPECTED_EOF);
  return error_ == 0;
}

bool TlsStream::WriteRecord(const uint8_t* data, size_t len, size_t* n) {
  *n = 0;
  if (error_ != 0) return false;
  if (conn_ == nullptr) {
    Fail(RUSTLS_RESULT_HANDSHAKE_NOT_COMPLETE);
    return false;
  }
  rustls_result r = rustls_connection_write(conn_, data, std::min(len, kMaxPlainRecord), n);
  if (r != RUSTLS_RESULT_OK || (*n == 0 && len > 0)) {
    Fail(r != RUSTLS_RESULT_OK ? r : RUSTLS_RESULT_GENERAL);
    return false;
  }
  return true;
}

bool TlsStream::Write(const uint8_t* data, size_t len) {
  if (error_ != 0) return false;
  if (conn_ == nullptr) {
    Fail(RUSTLS_RESULT_HANDSHAKE_NOT_COMPLETE);
    return false;
  }
  size_t off = 0;
  while (off < len) {
    size_t n = 0;
    // No buffer limit (set at creation): rustls takes everything.
    rustls_result r = rustls_connection_write(conn_, data + off, len - off, &n);
    if (r != RUSTLS_RESULT_OK || n == 0) {
      Fail(r != RUSTLS_RESULT_OK ? r : RUSTLS_RESULT_GENERAL);
      return false;
    }
    off += n;
  }
  return true;
}

void TlsStream::SendCloseNotify() {
  if (conn_ != nullptr && error_ == 0 && handshake_done_) rustls_connection_send_close_notify(conn_);
}

bool TlsStream::WantsWrite() const {
  return alert_off_ < alert_.size() || (conn_ != nullptr && rustls_connection_wants_write(conn_));
}

int TlsStream::WriteTls(rustls_write_vectored_callback cb, void* userdata, size_t* n) {
  *n = 0;
  if (alert_off_ < alert_.size()) {
    // rustls_iovec is struct iovec on Unix (rustls.h).
    struct iovec v = {alert_.data() + alert_off_, alert_.size() - alert_off_};
    size_t taken = 0;
    int err = cb(userdata, reinterpret_cast<const rustls_iovec*>(&v), 1, &taken);
    if (err != 0) return err;
    alert_off_ += taken;
    *n = taken;
    if (alert_off_ >= alert_.size()) {
      alert_.clear();
      alert_.shrink_to_fit();
      alert_off_ = 0;
    }
    return 0;
  }
  if (conn_ == nullptr) return 0;
  return rustls_connection_write_tls_vectored(conn_, cb, userdata, n);
}

}  // namespace rustls_node
