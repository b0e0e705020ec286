#include "plane/backend_pool.h"

#include <algorithm>

#include "plane/h2_upstream.h"

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
  // Every exchange is gone by now (the listener's connections went first).
  auto h2 = std::move(h2_);
  h2_.clear();
  for (auto& [target, list] : h2) {
    for (H2Upstream* u : list) {
      u->Orphan();
      delete u;
    }
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
  if (it != idle_.end()) {
    for (BackendConn* b : it->second) delete b;
    idle_.erase(it);
  }
  // HTTP/2 connections finish their streams (the live connections of the
  // old configuration may still open some), then close.
  auto h2 = h2_.find(target);
  if (h2 == h2_.end()) return;
  std::vector<H2Upstream*> list = h2->second;
  for (H2Upstream* u : list) u->Drain();
}

void BackendPool::Forget(BackendTarget* target) {
  Retire(target);
  // No connection of its route set is left, so no exchange either.
  auto h2 = h2_.find(target);
  if (h2 != h2_.end()) {
    std::vector<H2Upstream*> list = std::move(h2->second);
    h2_.erase(h2);
    for (H2Upstream* u : list) delete u;
  }
  retired_.erase(target);
  h2_limit_.erase(target);
}

uint32_t BackendPool::H2Limit(BackendTarget* target) const {
  auto it = h2_limit_.find(target);
  return it == h2_limit_.end() ? 0 : it->second;
}

H2Upstream* BackendPool::H2For(BackendTarget* target, BackendConn::StartError* err) {
  std::vector<H2Upstream*>& list = h2_[target];
  H2Upstream* least = nullptr;
  size_t open = 0;
  for (H2Upstream* u : list) {
    if (u->draining()) continue;
    open++;
    if (u->HasRoom()) return u;
    if (least == nullptr || u->streams() < least->streams()) least = u;
  }
  if (open >= kMaxH2PerTarget && least != nullptr) return least;
  H2Upstream* u = H2Upstream::Connect(listener_, this, target, err);
  if (u != nullptr) list.push_back(u);
  return u;
}

void BackendPool::H2Closed(H2Upstream* u) {
  auto it = h2_.find(u->target());
  if (it == h2_.end()) return;
  std::vector<H2Upstream*>& list = it->second;
  list.erase(std::remove(list.begin(), list.end(), u), list.end());
  if (list.empty()) h2_.erase(it);
}

}  // namespace rustls_node
