#include "plane/request_route.h"

#include <arpa/inet.h>

#include "js/router.h"
#include "plane/splice.h"

namespace rustls_node {

namespace {

bool IsIpLiteral(const std::string& s) {
  uint8_t buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

std::string AuthorityHost(std::string_view authority) {
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    host = close == std::string_view::npos ? std::string_view() : host.substr(1, close - 1);
  } else {
    size_t colon = host.find(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

RequestRoute RouteRequest(const RouteSet& set, int host, BackendTarget* own, bool sni_sent,
                          std::string_view authority) {
  RequestRoute r;
  r.host = host;
  r.target = own;
  // One host: nothing to misdirect to (runs for every request).
  if (set.router->router().size() < 2) return r;
  if (!sni_sent) {
    r.status = 403;
    r.reason = "the client sent no SNI and this port serves several hosts";
    return r;
  }
  std::string name = AuthorityHost(authority);
  int other = name.empty() || IsIpLiteral(name) ? -1 : set.router->router().Find(name);
  if (other < 0 || other == host) return r;
  const Plan* plan = static_cast<size_t>(other) < set.plans.size() ? &set.plans[other] : nullptr;
  const std::string& key = own->http().coalesce_key;
  if (key.empty() || plan == nullptr || plan->target == nullptr || plan->target->http().coalesce_key != key) {
    r.status = 421;
    r.reason = "the request names another host than the TLS connection (SNI) was made for";
    return r;
  }
  if (plan->kind != kPlanHttp) {
    r.status = 421;
    r.reason = "the host the request names is not served in http mode";
    return r;
  }
  r.host = other;
  r.target = plan->target;
  return r;
}

}  // namespace rustls_node
