// timer_thread.hpp — the engine's timer thread (see TimerThread).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "sched/fiber.hpp"
#include "sched/parker.hpp"
#include "sched/time_source.hpp"
#include "sched/timer_heap.hpp"

namespace ember::detail {

class Worker;

// A thread that fires timers which must not wait for a free worker, and watches the task each
// worker is running: a watched task (Task::watch_deadline) past its deadline is reported to
// the `overdue` hook even when its worker is stuck in it. Watching costs the worker two plain
// stores per switch; no timer is armed per task.
class TimerThread final {
 public:
  // `overdue(task, now, context)` returns the task's deadline if it is not overdue (then it is
  // watched until that time), or kNever once it has handled it.
  using OverdueFn = std::int64_t (*)(Task* task, std::int64_t now, void* context);
  TimerThread(TimeSource& time, const std::vector<std::unique_ptr<Worker>>& workers);
  ~TimerThread() { stop(); }
  void set_overdue_hook(OverdueFn overdue, void* context) noexcept {
    overdue_context_ = context;
    overdue_.store(overdue, std::memory_order_release);
  }
  void stop();
  void add(Timer* t);
  bool cancel(Timer* t) { return timers_.cancel(t); }
  // A worker started running a watched task due at `deadline`: wake up early if need be.
  void watch(std::int64_t deadline) noexcept {
    if (deadline < wake_at_.load(std::memory_order_seq_cst)) parker_.unpark();
  }

 private:
  void loop();
  std::int64_t scan_workers(std::int64_t now);
  TimeSource& time_;
  const std::vector<std::unique_ptr<Worker>>& workers_;
  std::atomic<OverdueFn> overdue_{nullptr};
  void* overdue_context_ = nullptr;
  TimerHeap timers_;
  Parker parker_;
  std::atomic<std::int64_t> wake_at_{INT64_MIN};  // when the loop will look next
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ember::detail
