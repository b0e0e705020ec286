// BackendPool: the idle keep-alive HTTP/1.1 backend connections of one
// listener, shared by every native front end of http mode (HTTP/1.1 proxy,
// HTTP/2 front).
#ifndef RUSTLS_NODE_BACKEND_POOL_H
#define RUSTLS_NODE_BACKEND_POOL_H

#include <unordered_map>
#include <vector>

#include "plane/backend_conn.h"

namespace rustls_node {

class BackendTarget;
class Listener;

// Idle keep-alive backend connections of one listener, per target, used
// last-in first-out; each closes after the pool idle timeout (PlaneTimeouts)
// unused, or as soon as its backend says anything or leaves.
class BackendPool final : public BackendOwner {
 public:
  explicit BackendPool(Listener* listener) : listener_(listener) {}
  ~BackendPool() override;
  // An idle connection to `target` for `owner`, or NULL.
  BackendConn* Take(BackendTarget* target, BackendOwner* owner);
  // Keeps `b` for the next exchange (or closes it: target retired, pool full).
  void Put(BackendConn* b);
  // A replaced configuration's target: its idle connections close, and no
  // more are kept for it.
  void Retire(BackendTarget* target);
  void Forget(BackendTarget* target);

  void OnBackendReady(BackendConn*) override {}
  void OnBackendFailed(BackendConn*, const char*, uint32_t, int) override {}
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  void Remove(BackendConn* b);
  Listener* listener_;
  std::unordered_map<BackendTarget*, std::vector<BackendConn*>> idle_;
  std::unordered_map<BackendTarget*, bool> retired_;
};

}  // namespace rustls_node

#endif
