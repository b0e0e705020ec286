#include "io/deadlines.h"

#include "io/net_io.h"

namespace rustls_node {

Deadlines::Deadlines(uv_loop_t* loop) : loop_(loop), timer_(new uv_timer_t) {
  uv_timer_init(loop, timer_);
  timer_->data = this;
  // Connections keep the loop alive through their polls, not through this.
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
}

Deadlines::~Deadlines() { CloseAndFree(timer_); }

void Deadlines::Add(Timed* item, uint64_t ms) {
  Remove(item);
  TimedList& list = lists_[ms];
  item->deadline_ = uv_now(loop_) + ms;
  item->list_ = &list;
  item->prev_ = list.tail;
  item->next_ = nullptr;
  if (list.tail != nullptr)
    list.tail->next_ = item;
  else
    list.head = item;
  list.tail = item;
  if (armed_ == 0 || item->deadline_ < armed_) Rearm();
}

void Deadlines::Remove(Timed* item) {
  TimedList* list = item->list_;
  if (list == nullptr) return;
  if (item->prev_ != nullptr)
    item->prev_->next_ = item->next_;
  else
    list->head = item->next_;
  if (item->next_ != nullptr)
    item->next_->prev_ = item->prev_;
  else
    list->tail = item->prev_;
  item->prev_ = item->next_ = nullptr;
  item->list_ = nullptr;
}

void Deadlines::Rearm() {
  uint64_t next = 0;
  for (auto& [ms, list] : lists_) {
    if (list.head != nullptr && (next == 0 || list.head->deadline_ < next)) next = list.head->deadline_;
  }
  armed_ = next;
  if (next == 0) {
    uv_timer_stop(timer_);
    return;
  }
  uint64_t now = uv_now(loop_);
  uv_timer_start(timer_, OnTimer, next > now ? next - now : 0, 0);
}

void Deadlines::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Deadlines*>(timer->data);
  if (self == nullptr) return;
  uint64_t now = uv_now(self->loop_);
  self->armed_ = 0;
  // Lists are never erased, so references stay valid while callbacks add
  // or remove items.
  for (auto& [ms, list] : self->lists_) {
    while (list.head != nullptr && list.head->deadline_ <= now) {
      Timed* item = list.head;
      self->Remove(item);
      item->OnDeadline();
    }
  }
  self->Rearm();
}

}  // namespace rustls_node
