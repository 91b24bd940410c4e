#include "sched/timer_heap.hpp"

#include "sched/time_source.hpp"

namespace ember::detail {

bool TimerHeap::add(Timer* t) {
  std::lock_guard<std::mutex> lock(mu_);
  heap_.push_back(t);
  t->index = static_cast<std::int32_t>(heap_.size() - 1);
  sift_up(heap_.size() - 1);
  publish_earliest();
  return heap_.front() == t;
}

void TimerHeap::publish_earliest() noexcept {
  earliest_.store(heap_.empty() ? kNever : heap_.front()->deadline, std::memory_order_release);
}

bool TimerHeap::cancel(Timer* t) {
  std::lock_guard<std::mutex> lock(mu_);
  if (t->index < 0) return false;
  remove_at(static_cast<std::size_t>(t->index));
  publish_earliest();
  return true;
}

std::int64_t TimerHeap::fire_expired(std::int64_t now) {
  // Pop due timers in small batches under the lock, fire them outside it.
  constexpr int kBatch = 32;
  Timer* due[kBatch];
  for (;;) {
    int n = 0;
    std::int64_t next = kNever;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (n < kBatch && !heap_.empty() && heap_.front()->deadline <= now) {
        due[n++] = heap_.front();
        remove_at(0);
      }
      if (!heap_.empty()) next = heap_.front()->deadline;
      publish_earliest();
    }
    for (int i = 0; i < n; ++i) due[i]->fire(due[i]);
    // Callbacks may have armed earlier timers than `next`.
    if (n < kBatch) return n == 0 ? next : earliest();
  }
}

std::int64_t TimerHeap::next_deadline() {
  std::lock_guard<std::mutex> lock(mu_);
  return heap_.empty() ? kNever : heap_.front()->deadline;
}

bool TimerHeap::empty() {
  std::lock_guard<std::mutex> lock(mu_);
  return heap_.empty();
}

void TimerHeap::sift_up(std::size_t i) {
  Timer* t = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline <= t->deadline) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, t);
}

void TimerHeap::sift_down(std::size_t i) {
  Timer* t = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->deadline < heap_[child]->deadline) ++child;
    if (t->deadline <= heap_[child]->deadline) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, t);
}

void TimerHeap::remove_at(std::size_t i) {
  Timer* removed = heap_[i];
  Timer* last = heap_.back();
  heap_.pop_back();
  removed->index = -1;
  if (i < heap_.size()) {
    place(i, last);
    sift_down(i);
    sift_up(static_cast<std::size_t>(last->index));
  }
}

}  // namespace ember::detail
