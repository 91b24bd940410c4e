#include "observe/histogram.hpp"

#include <cmath>

namespace ember::detail {

namespace {

using Layout = HistogramLayout;

// Snapshots are built with kBuckets entries; one that was moved from or built by hand may be
// shorter, and is treated as having zeros past its end.
void ensure_buckets(HistogramSnapshot& s) {
  if (s.buckets.size() < Layout::kBuckets) s.buckets.resize(Layout::kBuckets);
}

}  // namespace

double HistogramSnapshot::quantile(double q) const noexcept {
  if (count == 0) return 0;
  if (!(q > 0)) q = 0;  // also catches NaN
  if (q > 1) q = 1;
  const std::uint64_t rank = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))), 1, count);
  std::uint64_t seen = 0;
  const std::size_t n = std::min(buckets.size(), Layout::kBuckets);
  for (std::size_t i = 0; i < n; ++i) {
    seen += buckets[i];
    if (seen < rank) continue;
    const std::uint64_t lower = Layout::bucket_lower(i);
    // max lies in the last non-empty bucket unless a record was in flight while the shards were
    // read (HistogramShard::add_to); then it may lag below this bucket and is no guide.
    const bool max_fits = max >= lower;
    if (max_fits && (rank == count || i == Layout::kOverflowBucket))
      return static_cast<double>(max);
    if (i == Layout::kOverflowBucket) return static_cast<double>(lower);
    // The midpoint of the bucket's integers, so the one-value buckets below 128 are exact.
    const double mid =
        static_cast<double>(lower) + static_cast<double>(Layout::bucket_upper(i) - 1 - lower) / 2.0;
    return max_fits ? std::min(mid, static_cast<double>(max)) : mid;
  }
  return static_cast<double>(max);  // unreachable while count is the sum of the buckets
}

std::uint64_t HistogramSnapshot::count_at_or_below(std::uint64_t ns) const noexcept {
  const std::size_t j = Layout::bucket_of(ns);
  // Bucket j counts only if all of it is <= ns, i.e. ns is its last value.
  const bool whole = j == Layout::kOverflowBucket ? ns == std::numeric_limits<std::uint64_t>::max()
                                                  : ns == Layout::bucket_upper(j) - 1;
  const std::size_t end = std::min(whole ? j + 1 : j, buckets.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < end; ++i) total += buckets[i];
  return total;
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) {
  ensure_buckets(*this);
  const std::size_t n = std::min(other.buckets.size(), Layout::kBuckets);
  for (std::size_t i = 0; i < n; ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum += other.sum;
  max = std::max(max, other.max);
}

void HistogramShard::add_to(HistogramSnapshot& out) const {
  ensure_buckets(out);
  // Relaxed is enough: each word has one writer and only grows, so every load returns a value
  // the writer really stored, and a later snapshot on this thread never reads an older one.
  std::uint64_t read = 0;
  for (std::size_t i = 0; i < Layout::kBuckets; ++i) {
    const std::uint64_t c = counts_[i].load(std::memory_order_relaxed);
    out.buckets[i] += c;
    read += c;
  }
  out.count += read;
  out.sum += sum_.load(std::memory_order_relaxed);
  out.max = std::max(out.max, max_.load(std::memory_order_relaxed));
}

}  // namespace ember::detail
