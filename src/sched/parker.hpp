// parker.hpp — blocks one thread until another unparks it (a one-permit event).
//
// unpark() before park() is not lost: the permit is kept and the next park returns at once.
// Spurious returns are possible; callers re-check their condition in a loop. unpark() makes no
// system call unless the thread is really parked, so waking a spinning waiter is cheap.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace ember::detail {

class Parker final {
 public:
  Parker() = default;
  Parker(const Parker&) = delete;
  Parker& operator=(const Parker&) = delete;

  // Thread-safe; may be called any number of times.
  void unpark() noexcept;
  // Waits until unparked or for at most `timeout_ns` real nanoseconds (< 0: no limit).
  // Returns true if it consumed a permit.
  bool park(std::int64_t timeout_ns) noexcept;
  // Consumes a pending permit without waiting.
  bool try_consume() noexcept {
    return state_.exchange(kEmpty, std::memory_order_acquire) == kNotified;
  }

 private:
  static constexpr int kEmpty = 0;
  static constexpr int kNotified = 1;
  static constexpr int kParked = -1;
  std::atomic<int> state_{kEmpty};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ember::detail
