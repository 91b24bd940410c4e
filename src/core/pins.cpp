#include "core/pins.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bitset>
#include <mutex>

namespace ember::detail {

namespace {

// Process-wide, because threads are: which slots are taken. Written only when a thread takes
// its first pin or exits.
struct SlotTable {
  std::mutex mu;
  std::bitset<kPinSlots> taken;
};

SlotTable& slot_table() {
  static SlotTable* table = new SlotTable;  // never destroyed: threads may exit after main
  return *table;
}

struct ThreadSlot {
  int slot = kPinSlots;
  ThreadSlot() {
    SlotTable& t = slot_table();
    std::lock_guard<std::mutex> lock(t.mu);
    for (int i = 0; i < kPinSlots; ++i) {
      if (!t.taken[static_cast<std::size_t>(i)]) {
        t.taken[static_cast<std::size_t>(i)] = true;
        slot = i;
        break;
      }
    }
  }
  ~ThreadSlot() {
    if (slot == kPinSlots) return;
    // The slot's count stays as this thread left it (its pins and unpins net out across
    // threads); the next owner continues from there, which keeps every sum right.
    SlotTable& t = slot_table();
    std::lock_guard<std::mutex> lock(t.mu);
    t.taken[static_cast<std::size_t>(slot)] = false;
  }
};

long membarrier(int cmd) { return ::syscall(__NR_membarrier, cmd, 0, 0); }

}  // namespace

thread_local int tls_pin_slot __attribute__((tls_model("initial-exec"))) = -1;

int take_pin_slot() noexcept {
  thread_local ThreadSlot mine;  // returns the slot when the thread exits
  tls_pin_slot = mine.slot;
  return tls_pin_slot;
}

bool asymmetric_pins_available() noexcept {
  static const bool available = [] {
    const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  }();
  return available;
}

bool pin_barrier() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!asymmetric_pins_available()) return false;
  return membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
}

}  // namespace ember::detail
