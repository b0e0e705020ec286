#include "tls/router.h"

namespace rustls_node {

std::string NormalizeHostName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool OffersAcmeTls(const rustls_accepted* hello) {
  static constexpr std::string_view kAcmeTls = "acme-tls/1";
  if (hello == nullptr) return false;
  for (size_t i = 0;; i++) {
    // Borrowed from `hello`; an empty slice ends the list.
    rustls_slice_bytes p = rustls_accepted_alpn(hello, i);
    if (p.data == nullptr || p.len == 0) return false;
    if (std::string_view(reinterpret_cast<const char*>(p.data), p.len) == kAcmeTls) return true;
  }
}

void Router::AddHost(ConfigRef config, const std::vector<std::string>& names) {
  int index = static_cast<int>(hosts_.size());
  hosts_.push_back(std::move(config));
  for (const std::string& raw : names) {
    std::string n = NormalizeHostName(raw);
    if (n.size() > 2 && n[0] == '*' && n[1] == '.') {
      wildcard_.emplace(n.substr(1), index);
    } else if (!n.empty()) {
      exact_.emplace(n, index);
    }
  }
}

void Router::SetChallenge(const std::string& name, ConfigRef config) {
  if (config == nullptr)
    challenges_.erase(name);
  else
    challenges_.insert_or_assign(name, std::move(config));
}

void Router::Clear() {
  hosts_.clear();
  challenges_.clear();
  exact_.clear();
  wildcard_.clear();
}

Router::Route Router::Choose(std::string_view server_name, const rustls_accepted* hello) const {
  if (hosts_.empty()) return {kHostRefused, nullptr, nullptr};
  // RFC 8737 §3: the validation certificate only for a client that asks
  // for acme-tls/1, so ordinary clients of the name keep getting the host.
  if (!challenges_.empty() && !server_name.empty() && OffersAcmeTls(hello)) {
    auto hit = challenges_.find(NormalizeHostName(server_name));
    if (hit != challenges_.end()) return {kHostChallenge, hit->second->config, hit->second};
  }
  if (deferred_) return {kHostDeferred, nullptr, nullptr};
  int host = Select(server_name);
  if (host < 0 || static_cast<size_t>(host) >= hosts_.size()) return {host, nullptr, nullptr};
  return {host, hosts_[host]->config, hosts_[host]};
}

int Router::Select(std::string_view server_name) const {
  if (hosts_.empty()) return kHostRefused;
  // No SNI: the first host of the port.
  if (server_name.empty()) return 0;
  int found = Find(server_name);
  if (found >= 0) return found;
  return strict_ ? kHostRefused : 0;
}

int Router::Find(std::string_view name_in) const {
  std::string name = NormalizeHostName(name_in);
  auto hit = exact_.find(name);
  if (hit != exact_.end()) return hit->second;
  // "*.example.com" covers exactly one more label (RFC 6125 §6.4.3).
  size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    auto wild = wildcard_.find(name.substr(dot));
    if (wild != wildcard_.end()) return wild->second;
  }
  return -1;
}

const rustls_server_config* Router::ConfigAt(int index) const {
  if (index < 0 || static_cast<size_t>(index) >= hosts_.size()) return nullptr;
  return hosts_[index]->config;
}

}  // namespace rustls_node
