#include "sched/timer_thread.hpp"

#include <algorithm>

#include "sched/scheduler.hpp"

namespace ember::detail {

TimerThread::TimerThread(TimeSource& time, const std::vector<std::unique_ptr<Worker>>& workers)
    : time_(time), workers_(workers) {
  thread_ = std::thread([this] { loop(); });
}

void TimerThread::stop() {
  stopping_.store(true, std::memory_order_release);
  parker_.unpark();
  if (thread_.joinable()) thread_.join();
}

void TimerThread::add(Timer* t) {
  if (timers_.add(t)) parker_.unpark();  // a new earliest deadline: re-compute the sleep
}

std::int64_t TimerThread::scan_workers(std::int64_t now) {
  OverdueFn overdue = overdue_.load(std::memory_order_acquire);
  if (overdue == nullptr) return kNever;
  std::int64_t next = kNever;
  for (const auto& w : workers_) {
    if (Task* t = w->running_.load(std::memory_order_acquire)) {
      next = std::min(next, overdue(t, now, overdue_context_));
    }
  }
  return next;
}

void TimerThread::loop() {
  while (!stopping_.load(std::memory_order_acquire)) {
    std::int64_t now = time_.now();
    std::int64_t next = std::min(timers_.fire_expired(now), scan_workers(now));
    // Publish when we will look next, then look once more: a worker that started a watched
    // task meanwhile either is seen by this second scan or sees wake_at_ and unparks us.
    wake_at_.store(next, std::memory_order_seq_cst);
    now = time_.now();
    next = std::min(next, scan_workers(now));
    wake_at_.store(next, std::memory_order_seq_cst);
    time_.park_until(parker_, next);
    wake_at_.store(INT64_MIN, std::memory_order_seq_cst);  // awake: workers need not poke
  }
}

}  // namespace ember::detail
