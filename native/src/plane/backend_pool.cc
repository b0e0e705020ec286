#include "plane/backend_pool.h"

#include <algorithm>

namespace rustls_node {

namespace {

// Idle connections kept per backend. An HTTP/2 client runs up to
// maxConcurrentStreams exchanges at once, each on a backend connection of
// its own: with 32 kept (Node's maxFreeSockets), most were
// closed after each burst and the next burst paid a TCP connect per
// request (h2load -c16 -m10: a third of the CPU per request).
constexpr size_t kPoolMax = 256;

}  // namespace


BackendPool::~BackendPool() {
  for (auto& [target, list] : idle_) {
    for (BackendConn* b : list) delete b;
  }
}

BackendConn* BackendPool::Take(BackendTarget* target, BackendOwner* owner) {
  auto it = idle_.find(target);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  BackendConn* b = it->second.back();
  it->second.pop_back();
  b->Arm(0);
  b->set_owner(owner);
  return b;
}

void BackendPool::Put(BackendConn* b) {
  BackendTarget* target = b->target();
  std::vector<BackendConn*>& list = idle_[target];
  if (retired_.count(target) != 0 || list.size() >= kPoolMax || listener_->closed()) {
    delete b;
    return;
  }
  b->set_owner(this);
  // A backend that speaks or leaves while idle is done with.
  b->SetEvents(UV_READABLE);
  b->Arm(listener_->timeouts().pool_idle_ms);
  list.push_back(b);
}

void BackendPool::Remove(BackendConn* b) {
  std::vector<BackendConn*>& list = idle_[b->target()];
  list.erase(std::remove(list.begin(), list.end(), b), list.end());
  delete b;
}

void BackendPool::OnBackendEvent(BackendConn* b, int status, int events) { Remove(b); }

void BackendPool::Retire(BackendTarget* target) {
  retired_[target] = true;
  auto it = idle_.find(target);
  if (it == idle_.end()) return;
  for (BackendConn* b : it->second) delete b;
  idle_.erase(it);
}

void BackendPool::Forget(BackendTarget* target) {
  Retire(target);
  retired_.erase(target);
}

}  // namespace rustls_node
