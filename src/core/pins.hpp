// pins.hpp — counting the invocations that hold a plugin version, cheaply on the invoke path.
//
// An unloader must know when no invocation runs a version's code any more. A shared counter
// would cost every invoke two locked read-modify-writes (~6 ns each here) and a contended
// cache line. Instead each thread counts in its own slot of the version (a plain load and
// store: one writer per slot), and the rare side, the unloader, pays for the ordering with
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full memory barrier on every CPU
// running one of our threads (an asymmetric Dekker, as in folly's asymmetric barriers):
//
//   invoker:   slot += 1;  compiler barrier;  still routed here?  else slot -= 1, retry
//   unloader:  route away;  membarrier();  sum of slots == 0?  else wait
//
// Either the invoker's increment was made before the barrier reached its CPU (the unloader
// sees it), or its route check runs after (it sees the new route and backs off). An unpin
// decrements the slot of the thread that finishes, which may be another than the one that
// pinned (pool dispatch): slots are signed and only their sum means anything. A sum read slot
// by slot can only over-count: a pin that succeeded was made before the barrier, so it is
// visible to every later read, including the one of its own slot.
//
// Threads past kPinSlots, and processes where membarrier is unavailable, use one shared slot
// with locked (seq_cst) operations instead, which is correct on its own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace ember::detail {

inline constexpr int kPinSlots = 64;

// This thread's slot: a plain int in the initial-exec TLS model (one load off %fs, no
// __tls_get_addr call, no guard), -1 until the thread's first pin.
extern thread_local int tls_pin_slot __attribute__((tls_model("initial-exec")));
int take_pin_slot() noexcept;

// This thread's slot index: 0..kPinSlots-1, or kPinSlots (the shared slot) when all are
// taken. A slot is returned when its thread exits.
inline int pin_slot() noexcept {
  const int slot = tls_pin_slot;
  return slot >= 0 ? slot : take_pin_slot();
}

// True if membarrier works in this process (checked, and registered for, once).
bool asymmetric_pins_available() noexcept;

// The unloader's side of the barrier. Returns false if it could not be issued (then the
// caller must not trust per-thread slots; asymmetric_pins_available() was false).
bool pin_barrier() noexcept;

class PinCounter final {
 public:
  PinCounter() : slots_(std::make_unique<Slot[]>(kPinSlots + 1)) {}

  // Counts one holder on this thread's slot. `asymmetric`: asymmetric_pins_available().
  void add(int slot, bool asymmetric) noexcept {
    if (asymmetric && slot < kPinSlots) [[likely]] {
      auto& v = slots_[slot].value;
      v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the membarrier does the rest
    } else {
      slots_[kPinSlots].value.fetch_add(1, std::memory_order_seq_cst);
    }
  }
  void remove(int slot, bool asymmetric) noexcept {
    if (asymmetric && slot < kPinSlots) [[likely]] {
      auto& v = slots_[slot].value;
      // Release: the holder's use of the code happens before an unloader that reads this.
      v.store(v.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    } else {
      slots_[kPinSlots].value.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  // The number of holders. Call pin_barrier() first (after routing away).
  [[nodiscard]] std::int64_t sum() const noexcept {
    std::int64_t n = 0;
    for (int i = 0; i <= kPinSlots; ++i) n += slots_[i].value.load(std::memory_order_acquire);
    return n;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> value{0};
  };
  std::unique_ptr<Slot[]> slots_;  // 65 cache lines, one per thread slot and the shared one
};

}  // namespace ember::detail
