#include "proto/cipher_names.h"

#include <unordered_map>

namespace rustls_node {

namespace {

std::unordered_map<uint16_t, std::string>& Table(bool iana) {
  static std::unordered_map<uint16_t, std::string> openssl;
  static std::unordered_map<uint16_t, std::string> iana_names;
  return iana ? iana_names : openssl;
}

const std::string kEmpty;

}  // namespace

const std::string& CipherName(uint16_t id, bool iana) {
  auto& table = Table(iana);
  auto it = table.find(id);
  return it == table.end() ? kEmpty : it->second;
}

void SetCipherName(uint16_t id, bool iana, std::string name) { Table(iana)[id] = std::move(name); }

}  // namespace rustls_node
