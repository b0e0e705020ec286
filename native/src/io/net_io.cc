#include "io/net_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include <uv.h>

namespace rustls_node {

int WritevToFd(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n) {
  auto* target = static_cast<FdWriter*>(userdata);
  const struct iovec* v = reinterpret_cast<const struct iovec*>(iov);
  ssize_t n;
  do {
    n = writev(target->fd, v, static_cast<int>(std::min<size_t>(count, IOV_MAX)));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  *target->written += static_cast<uint64_t>(n);
  *out_n = static_cast<size_t>(n);
  return 0;
}

namespace {

SocketAddress Describe(const sockaddr_storage& ss) {
  SocketAddress out;
  char text[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    out.port = ntohs(a->sin_port);
    out.family = 4;
    out.address = text;
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
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
  return Describe(ss);
}

SocketAddress LocalAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return Describe(ss);
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
