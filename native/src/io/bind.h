// Binding a listening socket the way net.Server.listen() does (dual-stack
// "::" by default, SO_REUSEADDR, SO_REUSEPORT on request), or taking one
// made elsewhere; no N-API here: callers turn a BindError into a JS error.
#ifndef RUSTLS_NODE_IO_BIND_H
#define RUSTLS_NODE_IO_BIND_H

#include <string>

namespace rustls_node {

struct ListenSpec {
  int fd = -1;       // a listening socket handed over (then nothing else applies)
  std::string path;  // a Unix socket path
  std::string host;  // an IP address; empty: every address
  int port = 0;
  int backlog = 511;
  bool reuse_port = false;
  bool v6only = false;
};

struct BindError {
  int sys_errno = 0;  // 0: `message` says what is wrong with the spec
  const char* syscall = "listen";
  std::string address;
  int port = -1;
  std::string message;
};

// The listening descriptor (non-blocking, close-on-exec), or -1 with *error.
int BindListening(const ListenSpec& spec, bool* is_unix, BindError* error);

}  // namespace rustls_node

#endif
