#include "io/bind.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace rustls_node {

int BindListening(const ListenSpec& spec, bool* is_unix, BindError* error) {
  int backlog = spec.backlog;
  int fd = -1;
  *is_unix = false;
  if (spec.fd >= 0) {
    // A listening socket handed over (socket activation, a cluster primary).
    fd = spec.fd;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      *error = {errno, "listen", "", -1, ""};
      return -1;
    }
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *is_unix = ss.ss_family == AF_UNIX;
    return fd;
  }
  if (!spec.path.empty()) {
    const std::string& path = spec.path;
    sockaddr_un un{};
    if (path.size() >= sizeof un.sun_path) {
      *error = {ENAMETOOLONG, "listen", path, -1, ""};
      return -1;
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un) != 0 || listen(fd, backlog) != 0) {
      int err = errno;
      if (fd >= 0) close(fd);
      *error = {err, "listen", path, -1, ""};
      return -1;
    }
    *is_unix = true;
    return fd;
  }
  const std::string& host = spec.host;
  int port = spec.port;
  bool reuse_port = spec.reuse_port;
  bool v6only = spec.v6only;
  sockaddr_storage ss{};
  socklen_t len = 0;
  // No host: every address, dual-stack as Node does ("::"), IPv4 only
  // where IPv6 is missing.
  std::string bind_host = host.empty() ? "::" : host;
  for (int attempt = 0; attempt < 2; attempt++) {
    ss = {};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, bind_host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(port));
      len = sizeof *v4;
    } else if (inet_pton(AF_INET6, bind_host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(port));
      len = sizeof *v6;
    } else {
      *error = {0, "listen", bind_host, port, "listen: host must be an IP address (resolved before): " + bind_host};
      return -1;
    }
    // Close-on-exec: a child gets it only through its stdio (dup2 clears it).
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && host.empty() && ss.ss_family == AF_INET6 && errno == EAFNOSUPPORT) {
      bind_host = "0.0.0.0";
      continue;
    }
    break;
  }
  int one = 1;
  int err = 0;
  if (fd < 0) err = errno;
  // As libuv: SO_REUSEADDR on every TCP listener (restarts do not wait
  // for TIME_WAIT); SO_REUSEPORT only when asked (several processes).
  if (err == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) err = errno;
  if (err == 0 && reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) err = errno;
  if (err == 0 && ss.ss_family == AF_INET6) {
    int v = v6only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  if (err == 0 && bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) err = errno;
  if (err == 0 && listen(fd, backlog) != 0) err = errno;
  if (err != 0) {
    if (fd >= 0) close(fd);
    *error = {err, "listen", bind_host, port, ""};
    return -1;
  }
  return fd;
}

}  // namespace rustls_node
