#include "sched/stack_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "sched/sanitizers.hpp"

namespace ember::detail {

namespace {
std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}
}  // namespace

StackPool::~StackPool() {
  for (const Stack& s : free_) munmap(s.mapping, s.mapping_size);  // unpoisoned by release()
}

std::size_t StackPool::round_size(std::size_t requested) noexcept {
  const std::size_t page = page_size();
  std::size_t size = std::max<std::size_t>(requested, 16 * 1024);
  return (size + page - 1) / page * page;
}

Stack StackPool::acquire(std::size_t size) {
  size = round_size(size);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it =
        std::find_if(free_.begin(), free_.end(), [&](const Stack& s) { return s.size == size; });
    if (it != free_.end()) {
      Stack s = *it;
      *it = free_.back();
      free_.pop_back();
      return s;
    }
  }
  const std::size_t guard = page_size();
  void* mapping = mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mapping == MAP_FAILED) return {};
  if (mprotect(mapping, guard, PROT_NONE) != 0) {
    munmap(mapping, size + guard);
    return {};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++mapped_;
  }
  return Stack{static_cast<char*>(mapping) + guard + size, size, mapping, size + guard};
}

void StackPool::release(const Stack& stack) {
  if (stack.mapping == nullptr) return;
#if defined(EMBER_ASAN)
  // A finished fiber leaves its last frames poisoned; the next user of this memory (a fiber of
  // this pool, or whatever is mapped here after munmap) must not inherit that.
  __asan_unpoison_memory_region(static_cast<char*>(stack.top) - stack.size, stack.size);
#endif
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(stack);
}

std::size_t StackPool::mapped_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_;
}

}  // namespace ember::detail
