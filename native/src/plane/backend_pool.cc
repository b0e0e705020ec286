#include "plane/backend_pool.h"

#include <algorithm>

namespace rustls_node {

namespace {

constexpr uint64_t kPoolIdleMs = 4000;  // as lib/terminator/backend.ts POOL_IDLE_MS
constexpr size_t kPoolMax = 32;         // idle connections per backend

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
  b->Arm(kPoolIdleMs);
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
