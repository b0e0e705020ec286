// EndOfTurn: a callback run once at the end of the current loop turn (a
// uv_check), for an owner that gathers news from several sources (streams,
// other connections, timers) and answers them in one write. While it is
// pending a uv_idle runs too, so the loop does not block in poll first (as
// Node's setImmediate does): news raised by a timer (a 504, an idle close)
// leaves in the same turn instead of after the next unrelated event.
#ifndef RUSTLS_NODE_END_OF_TURN_H
#define RUSTLS_NODE_END_OF_TURN_H

#include <uv.h>

#include "io/net_io.h"

namespace rustls_node {

class EndOfTurn {
 public:
  using Callback = void (*)(void* owner);
  EndOfTurn(uv_loop_t* loop, void* owner, Callback cb) : loop_(loop), owner_(owner), cb_(cb) {}
  ~EndOfTurn() {
    CloseAndFree(check_);
    CloseAndFree(idle_);
  }
  EndOfTurn(const EndOfTurn&) = delete;
  EndOfTurn& operator=(const EndOfTurn&) = delete;

  void Schedule() {
    if (scheduled_) return;
    if (check_ == nullptr) {
      check_ = new uv_check_t;
      uv_check_init(loop_, check_);
      check_->data = this;
      idle_ = new uv_idle_t;
      uv_idle_init(loop_, idle_);
      idle_->data = this;
    }
    scheduled_ = true;
    uv_check_start(check_, OnCheck);
    uv_idle_start(idle_, [](uv_idle_t*) {});
  }
  bool scheduled() const { return scheduled_; }

 private:
  static void OnCheck(uv_check_t* handle) {
    auto* self = static_cast<EndOfTurn*>(handle->data);
    if (self == nullptr) return;
    uv_check_stop(self->check_);
    uv_idle_stop(self->idle_);
    self->scheduled_ = false;
    // Last: the owner may delete itself, and this with it.
    self->cb_(self->owner_);
  }

  uv_loop_t* loop_;
  void* owner_;
  Callback cb_;
  uv_check_t* check_ = nullptr;
  uv_idle_t* idle_ = nullptr;
  bool scheduled_ = false;
};

}  // namespace rustls_node

#endif
