// stack_pool.hpp — guard-paged fiber stacks, mapped once and reused.
//
// A stack is an mmap'd region with one PROT_NONE page below it, so an overflow faults instead
// of scribbling on a neighbour. Stacks returned to the pool are kept for the next fiber of the
// same size; nothing is unmapped until the pool is destroyed. Thread-safe; used only when a
// fiber is created or destroyed, never per invocation (fibers themselves are pooled).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace ember::detail {

struct Stack {
  void* top = nullptr;      // highest address (stacks grow down)
  std::size_t size = 0;     // usable bytes below top
  void* mapping = nullptr;  // start of the mapping, guard page included
  std::size_t mapping_size = 0;
};

class StackPool final {
 public:
  StackPool() = default;
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // Rounds a requested size up to whole pages (at least 16 KiB).
  [[nodiscard]] static std::size_t round_size(std::size_t requested) noexcept;
  // A stack of exactly round_size(size) usable bytes; mapping.top == nullptr on failure.
  [[nodiscard]] Stack acquire(std::size_t size);
  void release(const Stack& stack);

  [[nodiscard]] std::size_t mapped_count();  // stacks mapped so far (tests)

 private:
  std::mutex mu_;
  std::vector<Stack> free_;  // guarded by mu_
  std::size_t mapped_ = 0;   // guarded by mu_
};

}  // namespace ember::detail
