#include "env/bounded_resource.hpp"

#include <new>

namespace ember::detail {

namespace {

// Kept out of line so that the allocation path stays small.
[[noreturn, gnu::cold, gnu::noinline]] void refuse(std::atomic<std::uint64_t>& refused,
                                                   std::atomic<bool>& exceeded) {
  refused.fetch_add(1, std::memory_order_relaxed);
  exceeded.store(true, std::memory_order_relaxed);
  throw std::bad_alloc();
}

}  // namespace

BoundedResource::BoundedResource(std::size_t limit_bytes,
                                 std::pmr::memory_resource* upstream) noexcept
    : upstream_(upstream), limit_(limit_bytes) {}

void* BoundedResource::do_allocate(std::size_t bytes, std::size_t alignment) {
  // Reserve the bytes first, so that two threads cannot both pass the check and go over the
  // limit together. Relaxed is enough: the compare-and-swap orders every change of in_use_
  // (a single atomic's modification order), and nothing else is published through it.
  const std::size_t limit = limit_.load(std::memory_order_relaxed);
  std::size_t used = in_use_.load(std::memory_order_relaxed);
  std::size_t next;
  do {
    // Written so as not to overflow for huge requests, nor when set_limit went below in_use.
    if (used > limit || bytes > limit - used) refuse(refused_, exceeded_);
    next = used + bytes;
  } while (!in_use_.compare_exchange_weak(used, next, std::memory_order_relaxed,
                                          std::memory_order_relaxed));

  void* p;
  try {
    p = upstream_->allocate(bytes, alignment);
  } catch (...) {
    in_use_.fetch_sub(bytes, std::memory_order_relaxed);
    throw;
  }

  std::size_t peak = peak_.load(std::memory_order_relaxed);
  while (next > peak && !peak_.compare_exchange_weak(peak, next, std::memory_order_relaxed,
                                                     std::memory_order_relaxed)) {
  }
  return p;
}

void BoundedResource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  upstream_->deallocate(p, bytes, alignment);
  in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

}  // namespace ember::detail
