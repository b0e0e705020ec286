// Descriptor helpers of the data plane: the rustls write callback over a
// descriptor (writev), address formatting, non-blocking connect.
#ifndef RUSTLS_NODE_NET_IO_H
#define RUSTLS_NODE_NET_IO_H

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "glue.h"

namespace rustls_node {

// rustls_write_vectored_callback: one writev() to a descriptor
// (userdata: FdWriter). EAGAIN leaves the rest in rustls' queue.
struct FdWriter {
  int fd;
  uint64_t* written;
  // Our FIN follows these bytes (close_notify, then shutdown()): sent with
  // MSG_MORE, the kernel holds them and the FIN leaves in the same segment.
  bool fin_follows = false;
};
int WritevToFd(void* userdata, const rustls_iovec* iov, size_t count, size_t* out_n);

inline bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// One address of a connected socket, as Node prints it.
struct SocketAddress {
  std::string address;  // "127.0.0.1", "::1", "::ffff:127.0.0.1"; empty if not IP
  int port = 0;
  int family = 0;  // 4, 6, or 0 (unix or unknown)
};
SocketAddress PeerAddress(int fd);
SocketAddress LocalAddress(int fd);

// Both addresses of a connected socket as the kernel gives them, read once
// while it is connected (after both directions closed getpeername() fails)
// and formatted only when asked for: 56 bytes per connection.
struct RawAddresses {
  sockaddr_in6 peer{};  // an IPv4 address sits in it as a sockaddr_in
  sockaddr_in6 local{};
  void Read(int fd);
  SocketAddress Peer() const;
  SocketAddress Local() const;
};

// A socket address to connect to, resolved once (no DNS per connection).
struct ConnectTarget {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // as configured, for logs
};

// A target from an IP literal and a port (no name resolution here: the
// caller resolved the name), or from a Unix socket path. False, with `err`
// set, when the text is not an address or the path does not fit.
bool TargetFromIp(const std::string& ip, int port, ConnectTarget* out, std::string* err);
bool TargetFromPath(const std::string& path, ConnectTarget* out, std::string* err);

// Starts a non-blocking connect; returns the descriptor, or -1 with errno.
int ConnectNonBlocking(const ConnectTarget& target);

// Closes a libuv handle (which stops it), forgets it, and frees it once
// libuv is done with it: its memory belongs to libuv until the close
// callback. Callbacks already queued see data == NULL.
template <typename Handle>
void CloseAndFree(Handle*& handle) {
  if (handle == nullptr) return;
  Handle* h = handle;
  handle = nullptr;
  h->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* closed) { delete reinterpret_cast<Handle*>(closed); });
}

// The pending error of a socket (SO_ERROR), 0 if none.
int SocketError(int fd);

// errno's name for logs ("ECONNREFUSED"), as Node's util.getSystemErrorName.
const char* ErrnoName(int err);

}  // namespace rustls_node

#endif
