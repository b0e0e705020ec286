#include "plane/h2_stream.h"

#include <cstring>

#include "plane/h1_exchange.h"
#include "plane/h2_exchange.h"
#include "plane/h2_front.h"
#include "plane/request_route.h"
#include "plane/splice.h"
#include "proto/http_fields.h"

namespace rustls_node {

namespace {

// Response bytes one stream holds for the client before its backend waits.
constexpr size_t kStreamOut = 64 * 1024;

bool Is(std::string_view a, const char* b) { return a == b; }

// Name/value pairs for nghttp2_submit_*: names lower-cased into one arena
// (reserved up front, so pointers stay valid), values pointing at the
// response head, which outlives the submit call (nghttp2 copies both).
struct HeaderList {
  std::vector<nghttp2_nv> nva;
  std::string arena;
  void Clear(size_t names) {
    nva.clear();
    arena.clear();
    arena.reserve(names);
  }
  void Add(std::string_view name, std::string_view value, bool lower) {
    size_t at = arena.size();
    arena.append(name);
    if (lower) {
      for (size_t i = at; i < arena.size(); i++) {
        if (arena[i] >= 'A' && arena[i] <= 'Z') arena[i] = static_cast<char>(arena[i] + 32);
      }
    }
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(&arena[at]);
    nv.namelen = name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
    nv.valuelen = value.size();
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    nva.push_back(nv);
  }
};

HeaderList& SharedList() {
  thread_local HeaderList list;
  return list;
}

// A response field HTTP/2 does not carry: hop-by-hop and framing fields,
// and those the Connection field lists (RFC 9113 §8.2.2).
bool DroppedFromResponse(std::string_view name, const http::ConnectionOptions* connection) {
  uint32_t rules = http::FieldRules(name);
  if ((rules & (http::kFieldHopByHop | http::kFieldFraming)) != 0) return true;
  return connection != nullptr && !connection->listed.empty() && (rules & http::kFieldLength) == 0 &&
         connection->Lists(name);
}

}  // namespace

H2Stream::H2Stream(H2Front* front, int32_t id) : front_(front), id_(id) {}

H2Stream::~H2Stream() {
  exchange_.reset();
  front_->buffered -= out_.size() - out_off_;
  // Body bytes that never reached a backend still count in the
  // connection's window.
  if (unconsumed_ > 0) nghttp2_session_consume(front_->session(), id_, unconsumed_);
}

bool H2Stream::OnHeader(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen, bool trailer) {
  // RFC 9113 §6.5.2: each field counts its name, value and 32 octets; an
  // HPACK bomb (a small block that expands) is caught here too.
  header_bytes_ += namelen + valuelen + 32;
  if (header_bytes_ > H2Front::kMaxHeaderList) return false;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (trailer) {
    // Trailers carry no pseudo-header (nghttp2 checked, RFC 9113 §8.1);
    // the field rules apply to them as to the head, and nothing that
    // frames or routes the message may come this late.
    constexpr uint32_t kNotInTrailers =
        http::kFieldHopByHop | http::kFieldFraming | http::kFieldReserved | http::kFieldLength | http::kFieldHost;
    if ((http::FieldRules(n) & kNotInTrailers) == 0) request_trailers_.append(n).append(": ").append(v).append("\r\n");
    return true;
  }
  // nghttp2 validated the list (RFC 9113 §8.2): lower-case names, no
  // connection-specific field, pseudo-headers first and well-formed.
  if (!n.empty() && n[0] == ':') {
    if (Is(n, ":method"))
      method_.assign(v);
    else if (Is(n, ":path"))
      path_.assign(v);
    else if (Is(n, ":authority"))
      authority_.assign(v);
    return true;
  }
  uint32_t rules = http::FieldRules(n);
  // The one TE an HTTP/2 request carries (RFC 9113 §8.2.2), for an HTTP/2
  // upstream; hop-by-hop for an HTTP/1.1 one.
  if (n == "te" && v == "trailers") te_trailers_ = true;
  if ((rules & (http::kFieldHopByHop | http::kFieldFraming | http::kFieldReserved)) != 0) return true;
  if ((rules & http::kFieldHost) != 0) {
    host_field_.assign(v);
    return true;
  }
  if ((rules & http::kFieldCookie) != 0) {
    // RFC 9113 §8.2.3: crumbs become one field for HTTP/1.1.
    if (!cookie_.empty()) cookie_.append("; ");
    cookie_.append(v);
    return true;
  }
  if ((rules & http::kFieldLength) != 0) {
    // nghttp2 checked it is a number that the DATA frames will match.
    has_length_ = http::ParseContentLength(v, &length_);
  }
  fields_.append(n).append(": ").append(v).append("\r\n");
  return true;
}

void H2Stream::OnRequestHead(bool end_stream) {
  head_done_ = true;
  request_ended_ = end_stream;
  // ACME http-01 first, whichever host the request names (as on HTTP/1.1).
  if (const std::string* answer = front_->listener()->AcmeAnswer(method_, path_)) {
    Reply(200, "application/octet-stream", *answer, method_ == "HEAD");
    return;
  }
  if (method_ == "CONNECT") {
    Answer(405, "CONNECT is not supported");
    return;
  }
  std::string_view authority = !authority_.empty() ? std::string_view(authority_) : std::string_view(host_field_);
  RequestRoute route =
      RouteRequest(*front_->set(), front_->host(), front_->target(), !front_->sni().empty(), authority);
  if (route.status != 0) {
    front_->Misdirected(route.reason, route.status, authority);
    Answer(route.status, route.reason);
    return;
  }
  UpstreamRequest request;
  request.method = method_;
  request.path = path_;
  // The exchange copies the request: one buffer serves every stream.
  thread_local std::string fields;
  std::string_view host = authority.empty() ? std::string_view(front_->sni()) : authority;
  fields.clear();
  fields.append("Host: ").append(host).append("\r\n").append(fields_);
  if (!cookie_.empty()) fields.append("Cookie: ").append(cookie_).append("\r\n");
  if (end_stream) {
    request.body = UpstreamRequest::kNone;
    // A bodyless POST/PUT/PATCH still says so: some backends want a length.
    if (!has_length_ && (method_ == "POST" || method_ == "PUT" || method_ == "PATCH"))
      fields.append("Content-Length: 0\r\n");
    request.replayable = method_ == "GET" || method_ == "HEAD" || method_ == "OPTIONS";
  } else if (has_length_) {
    request.body = length_ == 0 ? UpstreamRequest::kNone : UpstreamRequest::kLength;
    request.length = length_;
  } else {
    request.body = UpstreamRequest::kStream;
  }
  fields.append(front_->forwarded());
  request.fields = fields;
  request.te_trailers = te_trailers_;
  if (route.target->http().backend_h2) {
    exchange_ =
        std::make_unique<H2Exchange>(front_->listener(), front_->set(), route.host, route.target, request, this);
  } else {
    exchange_ =
        std::make_unique<H1Exchange>(front_->listener(), front_->set(), route.host, route.target, request, this);
  }
  for (std::string* s : {&method_, &path_, &authority_, &host_field_, &fields_, &cookie_}) {
    s->clear();
    s->shrink_to_fit();
  }
}

void H2Stream::OnRequestData(const uint8_t* data, size_t len) {
  unconsumed_ += len;
  if (exchange_ != nullptr)
    exchange_->SendBody(data, len);
  else
    Consume(len);  // answered here: the body goes nowhere
}

void H2Stream::OnRequestEnd() {
  request_ended_ = true;
  if (exchange_ != nullptr) exchange_->EndBody(request_trailers_);
  request_trailers_.clear();
  request_trailers_.shrink_to_fit();
}

void H2Stream::OnClosed(uint32_t code) {
  if (exchange_ != nullptr && code != NGHTTP2_NO_ERROR) exchange_->Cancel(code);
}

void H2Stream::Consume(size_t n) {
  if (n > unconsumed_) n = unconsumed_;
  if (n == 0) return;
  unconsumed_ -= n;
  // Reopens the client's window (WINDOW_UPDATE once half is consumed).
  nghttp2_session_consume(front_->session(), id_, n);
  front_->Schedule();
}

void H2Stream::OnBodyTaken(size_t n) { Consume(n); }

bool H2Stream::Room() const {
  bool room = out_.size() - out_off_ < kStreamOut && front_->Room();
  if (!room && !paused_) {
    paused_ = true;
    front_->Paused();
  }
  return room;
}

bool H2Stream::ResumeIfPaused() {
  if (!paused_) return false;
  if (out_.size() - out_off_ >= kStreamOut || !front_->Room()) return false;
  paused_ = false;
  if (exchange_ != nullptr) exchange_->Resume();
  return true;
}

void H2Stream::Wake() {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(front_->session(), id_);
  }
  front_->Schedule();
}

void H2Stream::Submit(int status, const http::Head* head, const http::ConnectionOptions* connection, bool body,
                      bool final) {
  HeaderList& list = SharedList();
  size_t names = 8;
  if (head != nullptr) {
    for (const http::Field& f : head->fields) names += f.name.size();
  }
  list.Clear(names);
  char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                  static_cast<char>('0' + status % 10), 0};
  list.Add(":status", std::string_view(code, 3), false);
  if (head != nullptr) {
    for (const http::Field& f : head->fields) {
      if (DroppedFromResponse(f.name, connection)) continue;
      list.Add(f.name, f.value, true);
    }
  }
  nghttp2_session* session = front_->session();
  if (!final) {
    nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id_, nullptr, list.nva.data(), list.nva.size(), nullptr);
    front_->Schedule();
    return;
  }
  submitted_ = true;
  has_body_ = body;
  front_->listener()->HttpResponse(status);
  if (body) {
    nghttp2_data_provider2 provider;
    provider.source.ptr = this;
    provider.read_callback = Read;
    nghttp2_submit_response2(session, id_, list.nva.data(), list.nva.size(), &provider);
  } else {
    nghttp2_submit_response2(session, id_, list.nva.data(), list.nva.size(), nullptr);
  }
  front_->Schedule();
}

void H2Stream::Answer(int status, const char* reason) {
  // "<status text>: <reason>\n", or the status text alone (502, 504), or
  // the reason alone (405), as the HTTP/1.1 front words them.
  std::string text = status == 502 || status == 504 ? std::string(http::ReasonPhrase(status)) + "\n"
                                                    : std::string(http::ReasonPhrase(status)) + ": " + reason + "\n";
  if (status == 405) text = std::string(reason) + "\n";
  Reply(status, "text/plain; charset=utf-8", text, false);
}

void H2Stream::Reply(int status, std::string_view type, std::string_view body, bool head_only) {
  if (submitted_) return;
  if (!head_only) {
    out_.insert(out_.end(), body.begin(), body.end());
    front_->buffered += body.size();
  }
  ended_ = true;
  std::string length = std::to_string(body.size());
  http::Head head;
  head.fields.push_back({"content-type", type, {}});
  head.fields.push_back({"content-length", length, {}});
  Submit(status, &head, nullptr, !head_only, true);
  // What the client sends of a body from now on goes nowhere.
  Consume(unconsumed_);
}

void H2Stream::OnResponseHead(const http::Head& head, const http::ConnectionOptions& connection, bool body) {
  if (head.status < 200) {
    if (!submitted_) Submit(head.status, &head, &connection, false, false);
    return;
  }
  Submit(head.status, &head, &connection, body, true);
  if (!body) ended_ = true;
}

void H2Stream::OnResponseData(const uint8_t* data, size_t len) {
  if (!has_body_) return;
  if (out_off_ > 0 && out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  out_.insert(out_.end(), data, data + len);
  front_->buffered += len;
  Wake();
}

void H2Stream::OnResponseEnd(std::string_view trailers) {
  ended_ = true;
  if (has_body_ && !trailers.empty()) trailers_.assign(trailers);
  Wake();
}

void H2Stream::OnExchangeFailed(int status) {
  if (!submitted_) {
    Answer(status, "");
    return;
  }
  OnExchangeBroken(NGHTTP2_INTERNAL_ERROR);
}

void H2Stream::OnExchangeBroken(uint32_t code) {
  nghttp2_submit_rst_stream(front_->session(), NGHTTP2_FLAG_NONE, id_, code);
  front_->Schedule();
}

nghttp2_ssize H2Stream::Read(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t length,
                             uint32_t* data_flags, nghttp2_data_source* source, void* user_data) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  size_t avail = s->out_.size() - s->out_off_;
  size_t n = avail < length ? avail : length;
  // The bytes are copied by OnSendData straight from out_.
  if (n > 0) *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == avail && s->ended_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->trailers_.empty()) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      s->SubmitTrailers();
    }
    return static_cast<nghttp2_ssize>(n);
  }
  if (n == 0) {
    s->deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<nghttp2_ssize>(n);
}

void H2Stream::SubmitTrailers() {
  // The trailer section's HTTP/1.1 lines ("name: value\r\n").
  HeaderList& list = SharedList();
  list.Clear(trailers_.size());
  std::string_view rest = trailers_;
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (DroppedFromResponse(name, nullptr) || (http::FieldRules(name) & http::kFieldLength) != 0) continue;
    list.Add(name, value, true);
  }
  nghttp2_submit_trailer(front_->session(), id_, list.nva.data(), list.nva.size());
}

void H2Stream::TakeOut(size_t len, std::vector<uint8_t>* out) {
  out->insert(out->end(), out_.begin() + static_cast<ptrdiff_t>(out_off_),
              out_.begin() + static_cast<ptrdiff_t>(out_off_ + len));
  out_off_ += len;
  front_->buffered -= len;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
    if (out_.capacity() > kStreamOut) out_.shrink_to_fit();
  } else if (out_off_ >= kStreamOut / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_off_));
    out_off_ = 0;
  }
}

}  // namespace rustls_node
