// histogram.hpp — the duration histogram behind the Duration metric (p50/p90/p99/p99.9, max).
//
// Log-linear buckets of nanoseconds, HdrHistogram-like: 0..63 ns one bucket per value; above
// that each power of two [2^k, 2^(k+1)) is cut into 32 equal sub-buckets, so a bucket is at most
// 1/32 as wide as its lower edge and a quantile reported as the bucket's midpoint is within
// 1/64 (< 1.6%) of the true value — the spec asks for <= 2%. Values >= 2^40 ns (~18.3 min, past
// Lambda's 15-minute maximum timeout) share one overflow bucket; max still records them exactly.
//
// A HistogramShard is written by one thread only (the thread that ran the invocation), so
// recording is a relaxed load and store per field — no locked read-modify-write, no shared
// cache line. Readers merge shards into a HistogramSnapshot, and hand the public sparse form
// (ember::Histogram, observe.hpp) to users:
//
//   HistogramShard shard;                      // one per function per thread
//   shard.record(elapsed_ns);                  // writer thread, hot path
//   HistogramSnapshot s;                       // any thread, cold path
//   for (const auto& w : shards) w.add_to(s);
//   double p99_ns = s.quantile(0.99);
//   ember::Histogram h = to_public(s);         // h.quantile(q) == s.quantile(q)
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "ember/observe.hpp"

namespace ember::detail {

// Where a value goes. Bucket i covers the integers [bucket_lower(i), bucket_upper(i)).
struct HistogramLayout {
  // 2^5 = 32 sub-buckets per power of two: width <= lower/32, so midpoint error <= 1/64, inside
  // the spec's 2% with room; 64 would halve the error and double the shard.
  static constexpr int kSubBucketBits = 5;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;
  // 2^40 ns = 1099.5 s = 18.3 min: past Lambda's 15-minute maximum timeout, so every invocation
  // that honours a Lambda-sized deadline gets a real bucket; beyond it precision is moot.
  static constexpr int kOverflowBits = 40;
  static constexpr std::uint64_t kOverflowThreshold = std::uint64_t{1} << kOverflowBits;
  // 0..31 and 32..63 exact (two groups of one-value buckets), then one group of 32 per power of
  // two from 2^6 up to 2^39, then overflow.
  static constexpr std::size_t kOverflowBucket =
      kSubBuckets + (kOverflowBits - kSubBucketBits) * kSubBuckets;  // 1152
  static constexpr std::size_t kBuckets = kOverflowBucket + 1;       // 1153

  // Branch-light (bit_width, max and min become bsr/lzcnt and cmov): for v with bit width w > 6 the
  // bucket is (w - 6) * 32 + (v >> (w - 6)), the top six bits of v naming the sub-bucket; below
  // 64 the same formula with shift 0 is v itself. Anything >= 2^40 lands at or past
  // kOverflowBucket and is clamped there.
  [[nodiscard]] static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    const int shift = std::max(static_cast<int>(std::bit_width(v)) - (kSubBucketBits + 1), 0);
    const std::uint64_t i =
        static_cast<std::uint64_t>(shift) * kSubBuckets + (v >> static_cast<unsigned>(shift));
    return static_cast<std::size_t>(std::min<std::uint64_t>(i, kOverflowBucket));
  }

  // The smallest value in bucket i (i < kBuckets).
  [[nodiscard]] static constexpr std::uint64_t bucket_lower(std::size_t i) noexcept {
    if (i < kSubBuckets) return i;
    const auto shift = static_cast<unsigned>(i / kSubBuckets - 1);
    return (kSubBuckets + i % kSubBuckets) << shift;
  }

  // One past the largest value in bucket i. The overflow bucket has no representable end: it
  // returns UINT64_MAX, and (unlike the others) also holds UINT64_MAX itself.
  [[nodiscard]] static constexpr std::uint64_t bucket_upper(std::size_t i) noexcept {
    if (i >= kOverflowBucket) return std::numeric_limits<std::uint64_t>::max();
    return bucket_lower(i + 1);
  }
};

// A point-in-time copy of one or more shards; plain data, cold path.
struct HistogramSnapshot {
  std::uint64_t count = 0;  // always the sum of `buckets` (see HistogramShard::add_to)
  std::uint64_t sum = 0;    // nanoseconds; wraps after 584 years of recorded time
  std::uint64_t max = 0;    // the largest value recorded, exact even in the overflow bucket
  std::vector<std::uint64_t> buckets = std::vector<std::uint64_t>(HistogramLayout::kBuckets);

  // The value of rank max(1, ceil(q * count)) among the recorded values (nearest-rank), reported
  // as the midpoint of its bucket's integers and never above `max`; the last rank is `max`
  // exactly. q is clamped to [0, 1] (NaN counts as 0). 0 for an empty histogram.
  [[nodiscard]] double quantile(double q) const noexcept;

  // How many recorded values are <= ns, counting only buckets that lie wholly at or below ns.
  // Exact when ns is the last value of a bucket (every ns < 64 is); otherwise the bucket that
  // straddles ns is left out, so the answer is a lower bound that misses only values in
  // (ns - ns/32, ns]. Never counts a value above ns, hence monotone in ns.
  [[nodiscard]] std::uint64_t count_at_or_below(std::uint64_t ns) const noexcept;

  // Adds `other` in, as if its values had been recorded here too.
  void merge(const HistogramSnapshot& other);
};

// What one thread writes for one function: 1155 atomic words (1153 buckets, sum, max) = 9240
// bytes, padded to 9280 (145 cache lines). The engine allocates one per function per thread
// that records, so this size times functions times threads is the histogram memory (e.g. 100
// functions on 8 threads: 7.4 MB). Not copyable or movable (atomics); allocate shards in place.
class alignas(64) HistogramShard final {
 public:
  HistogramShard() = default;
  HistogramShard(const HistogramShard&) = delete;
  HistogramShard& operator=(const HistogramShard&) = delete;

  // Records one duration. Precondition: only one thread ever calls record() on a given shard
  // (the writer); concurrent add_to()/snapshot() from other threads is fine. Because there is a
  // single writer, load + store replaces fetch_add: plain moves, no locked instruction (an
  // uncontended fetch_add alone is ~6 ns, DESIGN.md §7).
  void record(std::uint64_t ns) noexcept {
    auto& bucket = counts_[HistogramLayout::bucket_of(ns)];
    bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    sum_.store(sum_.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
    if (ns > max_.load(std::memory_order_relaxed)) max_.store(ns, std::memory_order_relaxed);
  }

  // Adds this shard's values into `out`. Thread-safe against the writer, but not a consistent
  // cut: records in flight may be in some fields and not others (a bucket counted before its
  // value reached sum, max not yet raised). `out.count` grows by the buckets actually read, so
  // count and buckets always agree; sum and max may lead or lag them by the in-flight records
  // (at most one per writer). Each field only grows, so successive snapshots never go back.
  void add_to(HistogramSnapshot& out) const;

  [[nodiscard]] HistogramSnapshot snapshot() const {
    HistogramSnapshot s;
    add_to(s);
    return s;
  }

 private:
  // sum_ and max_ first: they share a cache line with the small buckets most records touch.
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> max_{0};
  std::atomic<std::uint64_t> counts_[HistogramLayout::kBuckets] = {};
};

// Lambda's maximum timeout is 15 minutes; a Lambda-sized deadline never lands in the overflow.
static_assert(HistogramLayout::kOverflowThreshold > std::uint64_t{15} * 60 * 1'000'000'000);
static_assert(sizeof(HistogramShard) == 9280, "shard size is documented above");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The public sparse form of `s`: its non-empty buckets ascending, each with its bounds
// (bucket_lower, bucket_upper: the overflow bucket's upper_ns is UINT64_MAX), count, sum and max
// copied. Its quantile() and count_at_or_below() answer exactly as s's do.
[[nodiscard]] ember::Histogram to_public(const HistogramSnapshot& s);

// Adds `from` into `into`, as if its values had been recorded there too: buckets with the same
// lower_ns are summed, the others interleaved in ascending order; count and sum added, max the
// larger. Precondition: both use this file's layout (their buckets are equal or disjoint), as
// every to_public() result does. `into` and `from` may be the same object.
void merge_into(ember::Histogram& into, const ember::Histogram& from);

}  // namespace ember::detail
