// Deadlines: every timeout of the data plane (handshakes, backend connects,
// idle keep-alive, lingering) on one libuv timer. Items of the same
// duration expire in insertion order, so each duration is a FIFO list and
// the timer is armed for the earliest head: O(1) per add and remove.
#ifndef RUSTLS_NODE_IO_DEADLINES_H
#define RUSTLS_NODE_IO_DEADLINES_H

#include <uv.h>

#include <cstdint>
#include <map>

namespace rustls_node {

// A deadline in one of a few FIFO lists, one per duration: items of the
// same duration expire in insertion order, so one timer serves them all.
class Deadlines;
struct Timed {
  virtual ~Timed() = default;
  virtual void OnDeadline() = 0;
  Timed* prev_ = nullptr;
  Timed* next_ = nullptr;
  uint64_t deadline_ = 0;
  struct TimedList* list_ = nullptr;
};
struct TimedList {
  Timed* head = nullptr;
  Timed* tail = nullptr;
};

class Deadlines {
 public:
  explicit Deadlines(uv_loop_t* loop);
  ~Deadlines();
  // (Re)arms `item` to fire `ms` from now.
  void Add(Timed* item, uint64_t ms);
  void Remove(Timed* item);

 private:
  static void OnTimer(uv_timer_t* timer);
  void Rearm();
  uv_loop_t* loop_;
  uv_timer_t* timer_;
  std::map<uint64_t, TimedList> lists_;
  uint64_t armed_ = 0;
};

}  // namespace rustls_node

#endif
