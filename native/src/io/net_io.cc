#include "io/net_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace rustls_node {

int WritevToFd(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n) {
  auto* target = static_cast<FdWriter*>(userdata);
  const struct iovec* v = reinterpret_cast<const struct iovec*>(iov);
  size_t iovs = std::min<size_t>(count, IOV_MAX);
  ssize_t n;
  do {
    if (target->fin_follows) {
      msghdr msg{};
      msg.msg_iov = const_cast<struct iovec*>(v);
      msg.msg_iovlen = iovs;
      n = sendmsg(target->fd, &msg, MSG_MORE | MSG_NOSIGNAL);
    } else {
      n = writev(target->fd, v, static_cast<int>(iovs));
    }
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  *target->written += static_cast<uint64_t>(n);
  *out_n = static_cast<size_t>(n);
  return 0;
}

namespace {

SocketAddress Describe(const sockaddr* sa) {
  SocketAddress out;
  char text[INET6_ADDRSTRLEN] = {0};
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    out.port = ntohs(a->sin_port);
    out.family = 4;
    out.address = text;
  } else if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    out.port = ntohs(a->sin6_port);
    out.family = 6;
    out.address = text;
  }
  return out;
}

}  // namespace

SocketAddress PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Describe(reinterpret_cast<const sockaddr*>(&ss));
}

SocketAddress LocalAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Describe(reinterpret_cast<const sockaddr*>(&ss));
}

void RawAddresses::Read(int fd) {
  // An IPv4 address fits in a sockaddr_in6; a Unix socket's path does not
  // and is not kept (its family stays 0: no address, as for Node).
  socklen_t len = sizeof peer;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 || len > sizeof peer) peer = {};
  len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0 || len > sizeof local) local = {};
}

SocketAddress RawAddresses::Peer() const { return Describe(reinterpret_cast<const sockaddr*>(&peer)); }
SocketAddress RawAddresses::Local() const { return Describe(reinterpret_cast<const sockaddr*>(&local)); }

bool TargetFromIp(const std::string& ip, int port, ConnectTarget* out, std::string* err) {
  *out = ConnectTarget{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->addr);
  if (port < 0 || port > 65535) {
    *err = "port out of range: " + std::to_string(port);
    return false;
  }
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof *v4;
    out->text = ip + ":" + std::to_string(port);
    return true;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    out->len = sizeof *v6;
    out->text = "[" + ip + "]:" + std::to_string(port);
    return true;
  }
  *err = "not an IP address: " + ip;
  return false;
}

bool TargetFromPath(const std::string& path, ConnectTarget* out, std::string* err) {
  *out = ConnectTarget{};
  sockaddr_un un{};
  if (path.empty() || path.size() >= sizeof un.sun_path) {
    *err = "unix socket path is empty or too long: " + path;
    return false;
  }
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  std::memcpy(&out->addr, &un, sizeof un);
  out->len = sizeof un;
  out->text = "unix:" + path;
  return true;
}

int ConnectNonBlocking(const ConnectTarget& target) {
  int fd = socket(target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (target.addr.ss_family != AF_UNIX) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int r;
  do {
    r = connect(fd, reinterpret_cast<const sockaddr*>(&target.addr), target.len);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int SocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

const char* ErrnoName(int err) {
  // libuv's names are the ones Node prints (util.getSystemErrorName).
  return uv_err_name(uv_translate_sys_error(err));
}

}  // namespace rustls_node
