// bounded_resource.hpp — a std::pmr::memory_resource with a byte limit, for one execution
// environment's invocations (Lambda's "memory size", enforced on what the handler allocates
// through it).
//
// What is counted is the bytes asked for (do_allocate's `bytes`), not what the upstream
// resource spends on headers, alignment padding or rounding: in_use() is the sum of the sizes of
// the blocks handed out and not yet returned. An allocation that would take in_use() past
// limit() is refused: it is counted in refused(), sets exceeded(), and throws std::bad_alloc, as
// a pmr resource must (std::pmr containers rely on allocate never returning null). Nothing is
// asked of upstream for a refused allocation, and in_use() is left as it was. If upstream itself
// throws, that is passed on and is not counted as a refusal.
//
//   ember::detail::BoundedResource memory(64 << 20);  // 64 MiB
//   std::pmr::vector<char> buffer(&memory);
//   try { buffer.resize(128 << 20); } catch (const std::bad_alloc&) { /* memory.exceeded() */ }
//
// Thread safety: every member may be called from any thread at once. It is meant for one
// invocation at a time, but a handler may hand it to a helper thread, so the counters are
// atomics used with relaxed ordering: they are statistics and a limit, and publish no other
// memory (whoever passes a block to another thread synchronises that themselves). The limit is
// still exact under concurrency: in_use is moved by a compare-and-swap that checks the limit, so
// concurrent allocations never take it past limit() together. No locks.
//
// Lifetime: the resource must outlive every block allocated from it (as for any pmr resource),
// and `upstream` must outlive the resource.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

namespace ember::detail {

class BoundedResource final : public std::pmr::memory_resource {
 public:
  // A resource handing out at most `limit_bytes` at a time, taken from `upstream` (not null).
  explicit BoundedResource(std::size_t limit_bytes, std::pmr::memory_resource* upstream =
                                                        std::pmr::new_delete_resource()) noexcept;
  ~BoundedResource() override = default;
  BoundedResource(const BoundedResource&) = delete;
  BoundedResource& operator=(const BoundedResource&) = delete;

  // The limit on in_use(), in bytes.
  [[nodiscard]] std::size_t limit() const noexcept {
    return limit_.load(std::memory_order_relaxed);
  }
  // Changes the limit for later allocations. Lowering it below in_use() frees nothing: blocks
  // already handed out stay valid, and every allocation is refused until in_use() drops below.
  void set_limit(std::size_t limit_bytes) noexcept {
    limit_.store(limit_bytes, std::memory_order_relaxed);
  }

  // Bytes allocated and not yet deallocated (the sizes asked for).
  [[nodiscard]] std::size_t in_use() const noexcept {
    return in_use_.load(std::memory_order_relaxed);
  }
  // The highest in_use() since construction or the last reset_peak().
  [[nodiscard]] std::size_t peak() const noexcept { return peak_.load(std::memory_order_relaxed); }
  // Starts a new peak window: peak() = in_use() (e.g. at the start of an invocation).
  void reset_peak() noexcept {
    peak_.store(in_use_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }

  // Whether an allocation was refused since construction or the last clear_exceeded().
  [[nodiscard]] bool exceeded() const noexcept { return exceeded_.load(std::memory_order_relaxed); }
  void clear_exceeded() noexcept { exceeded_.store(false, std::memory_order_relaxed); }
  // Allocations refused for the limit since construction (never reset).
  [[nodiscard]] std::uint64_t refused() const noexcept {
    return refused_.load(std::memory_order_relaxed);
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  // Identity: only this resource can free what it allocated (its counters must see it).
  [[nodiscard]] bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  std::pmr::memory_resource* const upstream_;
  std::atomic<std::size_t> limit_;
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<bool> exceeded_{false};
};

}  // namespace ember::detail
