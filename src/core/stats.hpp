// stats.hpp — one function's metrics, sharded per thread so that the invoke path writes no
// shared cache line.
//
// Every thread that runs (or admits, or throttles) an invocation of a function writes its own
// MetricShard of that function: the shard of its pin slot (pins.hpp), made on the thread's
// first write. One writer per shard, so a count is a plain load and store, not a locked
// read-modify-write. Threads past kPinSlots share one more shard under a mutex. A snapshot
// sums the shards.
//
// An invocation is counted when it is admitted (`invocations`) and again when it ends: its
// duration goes into the histogram, or, if it never ran, into `ended_unrun`. So
// ConcurrentExecutions = invocations - duration.count - ended_unrun, with no third counter
// on the hot path.
//
// Consistency: an invocation's end is written after its admission (on the same thread, or on
// a worker the admission handed it to), and its timeout count after its error count. A reader
// loads every shard's end counts first (timeouts before errors), then, after an acquire fence,
// every shard's `invocations`. So a snapshot never shows more ends, errors or durations than
// invocations, nor more timeouts than errors, though it may lag an invocation in flight.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "core/pins.hpp"
#include "ember/observe.hpp"
#include "observe/histogram.hpp"

namespace ember::detail {

// A single-writer counter: the writer adds with a plain load and store.
class Count final {
 public:
  void add(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // The same, ordered after every earlier store of this thread (see the file comment).
  void add_release(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }
  [[nodiscard]] std::uint64_t load() const noexcept { return v_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

struct MetricShard {
  // Written on every invocation: first, together.
  Count invocations;  // admitted
  Count ended_unrun;  // ended without running (timed out before it could start, no stack)
  Count errors;
  Count timeouts;
  Count overruns;
  Count cold_starts;
  Count throttles[kThrottleReasons];
  Count provisioned;
  Count spillover;
  Count async_dropped;
  Count dead_letter_errors;
  Count destination_failures;
  HistogramShard duration;
  // Made on the first async invocation this thread starts.
  std::atomic<HistogramShard*> async_age{nullptr};

  MetricShard() = default;
  MetricShard(const MetricShard&) = delete;
  MetricShard& operator=(const MetricShard&) = delete;
  ~MetricShard() { delete async_age.load(std::memory_order_relaxed); }

  HistogramShard& async_age_shard() {
    HistogramShard* h = async_age.load(std::memory_order_relaxed);
    if (h == nullptr) [[unlikely]] {
      h = new HistogramShard();
      async_age.store(h, std::memory_order_release);
    }
    return *h;
  }
};

// What a snapshot reads of one function's shards.
struct FunctionCounts {
  std::uint64_t invocations = 0, ended_unrun = 0, errors = 0, timeouts = 0, overruns = 0,
                cold_starts = 0, provisioned = 0, spillover = 0, async_dropped = 0,
                dead_letter_errors = 0, destination_failures = 0;
  std::uint64_t throttles[kThrottleReasons] = {};
  HistogramSnapshot duration;
  HistogramSnapshot async_age;
  HistogramSnapshot init_duration;
};

class FunctionStats final {
 public:
  FunctionStats() : shards_(std::make_unique<std::atomic<MetricShard*>[]>(kPinSlots)) {}
  ~FunctionStats() {
    for (int i = 0; i < kPinSlots; ++i) delete shards_[i].load(std::memory_order_relaxed);
  }
  FunctionStats(const FunctionStats&) = delete;
  FunctionStats& operator=(const FunctionStats&) = delete;

  // This thread's shard (made on first use), for `slot` = pin_slot() < kPinSlots. Threads past
  // kPinSlots use with_shared().
  MetricShard& shard(int slot) {
    MetricShard* s = shards_[slot].load(std::memory_order_acquire);
    if (s == nullptr) [[unlikely]]
      s = make_shard(slot);
    return *s;
  }

  // Runs f(shard) on this thread's shard, or on the shared one under its lock.
  template <typename F>
  void write(F&& f) {
    const int slot = pin_slot();
    if (slot < kPinSlots) [[likely]] {
      f(shard(slot));
    } else {
      std::lock_guard<std::mutex> lock(shared_mu_);
      f(shared_);
    }
  }

  void record_init(std::uint64_t ns) {
    std::lock_guard<std::mutex> lock(init_mu_);
    init_duration_.record(ns);
  }

  // Sums the shards (see the file comment for the order).
  void read(FunctionCounts& out) const;

  // Handlers past their deadline whose callers were released, still running (cold path).
  std::atomic<std::int64_t> running_overruns{0};
  // The most memory a measured invocation used (REPORT lines: report_logs), bytes.
  std::atomic<std::int64_t> max_memory_used{0};
  void note_memory_used(std::int64_t bytes) noexcept {
    std::int64_t seen = max_memory_used.load(std::memory_order_relaxed);
    while (bytes > seen && !max_memory_used.compare_exchange_weak(seen, bytes)) {
    }
  }

 private:
  MetricShard* make_shard(int slot);
  // The two passes of read(): what ends an invocation, then what admits it.
  static void read_ends(const MetricShard& s, FunctionCounts& out);
  static void read_admissions(const MetricShard& s, FunctionCounts& out);

  std::unique_ptr<std::atomic<MetricShard*>[]> shards_;
  mutable std::mutex shared_mu_;
  MetricShard shared_;  // guarded by shared_mu_ (threads past kPinSlots)
  mutable std::mutex init_mu_;
  HistogramShard init_duration_;  // guarded by init_mu_ for writes (inits are rare)
};

}  // namespace ember::detail
