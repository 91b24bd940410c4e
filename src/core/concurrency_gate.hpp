// concurrency_gate.hpp — a concurrency limit (DESIGN.md §4) with a FIFO for async waiters.
//
// Each reserved function has its own gate (cap = its reservation); all other functions share
// the engine's unreserved gate (cap = engine limit - sum of reservations). Admission is one
// CAS on an uncontended counter and release one fetch_sub, so the cap is exact and never
// exceeded. An async invoke that finds no slot waits in the gate's FIFO; a release hands the
// freed slot to the oldest waiter.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "sched/scheduler.hpp"
#include "sched/timer_heap.hpp"

namespace ember::detail {

// Intrusive link of an async invocation waiting for a slot.
struct GateWaiter {
  GateWaiter* prev = nullptr;
  GateWaiter* next = nullptr;
  bool queued = false;                          // guarded by the gate's mutex
  std::atomic<int>* function_queued = nullptr;  // per-function count of waiters
  void* owner = nullptr;                        // the record this link is part of
};

class ConcurrencyGate final {
 public:
  // `admit` is called (outside the gate's lock) for a waiter that was handed a slot.
  using AdmitFn = void (*)(GateWaiter* waiter, void* context);
  ConcurrencyGate(std::string description, std::int64_t limit, AdmitFn admit, void* context);

  // Takes a slot if one is free. Never over-admits, never throttles spuriously.
  [[nodiscard]] bool try_acquire() noexcept {
    std::int64_t used = in_use_.load(std::memory_order_relaxed);
    do {
      if (used >= limit_.load(std::memory_order_relaxed)) return false;
    } while (!in_use_.compare_exchange_weak(used, used + 1, std::memory_order_seq_cst,
                                            std::memory_order_relaxed));
    // The high-water mark shares in_use_'s cache line, which the CAS just took.
    if (used + 1 > max_in_use_.load(std::memory_order_relaxed)) [[unlikely]]
      raise_max(used + 1);
    return true;
  }
  // Gives a slot back; hands it to the oldest waiter if there is one.
  void release() noexcept {
    in_use_.fetch_sub(1, std::memory_order_seq_cst);
    // Pairs with enqueue(): a waiter queued after our check re-tries itself.
    if (waiting_.load(std::memory_order_seq_cst) != 0) hand_off();
  }

  enum class Enqueued { kAdmitted, kQueued, kFull };
  // Takes a slot, or queues `w` (at most max_queued per function) and arms `queue_timer` on
  // `timers` while still holding the lock, so the timer never races an unqueued waiter.
  Enqueued acquire_or_enqueue(GateWaiter* w, int max_queued, TimerThread& timers,
                              Timer* queue_timer);
  // Unlinks a waiter whose queue wait expired. False if it was handed a slot meanwhile.
  bool remove(GateWaiter* w);
  // Unlinks every waiter (shutdown).
  std::vector<GateWaiter*> remove_all();

  void set_limit(std::int64_t limit) noexcept;
  [[nodiscard]] std::int64_t limit() const noexcept {
    return limit_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::int64_t in_use() const noexcept {
    return in_use_.load(std::memory_order_relaxed);
  }
  // The most slots ever in use at once.
  [[nodiscard]] std::int64_t max_in_use() const noexcept {
    return max_in_use_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::int64_t waiting() const noexcept {
    return waiting_.load(std::memory_order_relaxed);
  }
  // "reserved concurrency of function 'x'" or "unreserved concurrency pool".
  [[nodiscard]] const std::string& description() const noexcept { return description_; }

 private:
  void hand_off();
  void unlink(GateWaiter* w);
  void raise_max(std::int64_t v) noexcept {
    std::int64_t m = max_in_use_.load(std::memory_order_relaxed);
    while (v > m && !max_in_use_.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }

  alignas(64) std::atomic<std::int64_t> in_use_{0};
  std::atomic<std::int64_t> max_in_use_{0};
  std::atomic<std::int64_t> limit_;
  std::atomic<std::int64_t> waiting_{0};
  const std::string description_;
  const AdmitFn admit_;
  void* const admit_context_;
  std::mutex mu_;
  GateWaiter* head_ = nullptr;  // guarded by mu_
  GateWaiter* tail_ = nullptr;  // guarded by mu_
};

}  // namespace ember::detail
