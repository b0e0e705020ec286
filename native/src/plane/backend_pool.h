// BackendPool: the backend connections of one listener that outlive an
// exchange, shared by every native front end of http mode (HTTP/1.1 proxy,
// HTTP/2 front): idle keep-alive HTTP/1.1 connections, and every HTTP/2
// connection (plane/h2_upstream.h), busy or idle.
#ifndef RUSTLS_NODE_BACKEND_POOL_H
#define RUSTLS_NODE_BACKEND_POOL_H

#include <unordered_map>
#include <vector>

#include "plane/backend_conn.h"

namespace rustls_node {

class BackendTarget;
class H2Upstream;
class Listener;

// Idle keep-alive backend connections of one listener, per target, used
// last-in first-out; each closes after the pool idle timeout (PlaneTimeouts)
// unused, or as soon as its backend says anything or leaves.
class BackendPool final : public BackendOwner {
 public:
  // HTTP/2 connections opened per target before new streams wait for a
  // slot on the least busy one.
  static constexpr size_t kMaxH2PerTarget = 32;

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
  bool Retired(BackendTarget* target) const { return retired_.count(target) != 0; }

  // An HTTP/2 connection to `target` for one more stream: the oldest with
  // room (so streams share few connections), else a new one, else (at
  // kMaxH2PerTarget) the least busy, where nghttp2 holds the stream until
  // a slot frees. NULL (and *err) when a new one could not start.
  H2Upstream* H2For(BackendTarget* target, BackendConn::StartError* err);
  // `u` is going away (its destructor).
  void H2Closed(H2Upstream* u);
  // The SETTINGS_MAX_CONCURRENT_STREAMS `target` announced last (0: none
  // yet): a new connection counts on it until its own SETTINGS arrive.
  uint32_t H2Limit(BackendTarget* target) const;
  void SetH2Limit(BackendTarget* target, uint32_t streams) { h2_limit_[target] = streams; }

  void OnBackendReady(BackendConn*) override {}
  void OnBackendFailed(BackendConn*, const char*, uint32_t, int) override {}
  void OnBackendEvent(BackendConn* b, int status, int events) override;

 private:
  void Remove(BackendConn* b);
  Listener* listener_;
  std::unordered_map<BackendTarget*, std::vector<BackendConn*>> idle_;
  std::unordered_map<BackendTarget*, bool> retired_;
  std::unordered_map<BackendTarget*, std::vector<H2Upstream*>> h2_;
  std::unordered_map<BackendTarget*, uint32_t> h2_limit_;
};

}  // namespace rustls_node

#endif
