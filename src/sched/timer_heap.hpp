// timer_heap.hpp — a thread-safe min-heap of intrusive timers, ordered by deadline.
//
// Each worker (and each inline host, and the engine's watchdog) owns one. Arming and
// cancelling are O(log n) and allocate nothing once the heap's vector has grown. Callbacks run
// outside the lock, so a callback may arm timers; a callback that races with cancel() is told
// apart by cancel()'s return value, and owners keep the timer's memory alive (intrusive
// reference counts) until the callback has run.
#pragma once

#include <absl/container/inlined_vector.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace ember::detail {

struct Timer {
  std::int64_t deadline = 0;       // engine time
  void (*fire)(Timer*) = nullptr;  // called once, outside the heap lock, unless cancelled
  std::int32_t index = -1;         // position in the heap; -1 when not armed (heap-owned)
};

class TimerHeap final {
 public:
  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  // Arms t (not already armed). Returns true if t is now the earliest timer.
  bool add(Timer* t);
  // Disarms t. True if it was armed (its callback will not run); false if it already fired or
  // is firing right now on another thread.
  bool cancel(Timer* t);
  // Runs the callbacks of every timer due at `now`; returns the next deadline (kNever if none).
  std::int64_t fire_expired(std::int64_t now);
  [[nodiscard]] std::int64_t next_deadline();
  // The earliest deadline without taking the lock (kNever when empty): lets idle loops skip
  // the clock read and the lock when nothing is armed.
  [[nodiscard]] std::int64_t earliest() const noexcept {
    return earliest_.load(std::memory_order_acquire);
  }
  [[nodiscard]] bool empty();

 private:
  void sift_up(std::size_t i);
  void sift_down(std::size_t i);
  void remove_at(std::size_t i);
  void place(std::size_t i, Timer* t) {
    heap_[i] = t;
    t->index = static_cast<std::int32_t>(i);
  }

  void publish_earliest() noexcept;
  std::mutex mu_;
  std::atomic<std::int64_t> earliest_{INT64_MAX};
  absl::InlinedVector<Timer*, 4> heap_;  // guarded by mu_; a few timers never allocate
};

}  // namespace ember::detail
