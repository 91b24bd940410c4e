#include "sched/parker.hpp"

#include <chrono>

namespace ember::detail {

void Parker::unpark() noexcept {
  if (state_.exchange(kNotified, std::memory_order_release) == kParked) {
    // The parked thread holds mu_ from its CAS to kParked until it waits, so taking the lock
    // here orders this notify after its wait began: the wake-up cannot fall in between.
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_one();
  }
}

bool Parker::park(std::int64_t timeout_ns) noexcept {
  if (try_consume()) return true;
  std::unique_lock<std::mutex> lock(mu_);
  int expected = kEmpty;
  if (!state_.compare_exchange_strong(expected, kParked, std::memory_order_acquire)) {
    state_.store(kEmpty, std::memory_order_relaxed);  // it was kNotified
    return true;
  }
  auto woken = [this] { return state_.load(std::memory_order_acquire) != kParked; };
  if (timeout_ns < 0) {
    cv_.wait(lock, woken);
  } else {
    cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns), woken);
  }
  return state_.exchange(kEmpty, std::memory_order_acquire) == kNotified;
}

}  // namespace ember::detail
