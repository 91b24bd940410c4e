#include "observe/histogram.hpp"

#include <cmath>
#include <utility>

namespace ember::detail {

namespace {

using Layout = HistogramLayout;

// Snapshots are built with kBuckets entries; one that was moved from or built by hand may be
// shorter, and is treated as having zeros past its end.
void ensure_buckets(HistogramSnapshot& s) {
  if (s.buckets.size() < Layout::kBuckets) s.buckets.resize(Layout::kBuckets);
}

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// The rank asked for by quantile(q) of `count` values: max(1, ceil(q * count)), q clamped to
// [0, 1] with NaN as 0. Shared by both forms so they cannot drift apart.
std::uint64_t quantile_rank(double q, std::uint64_t count) noexcept {
  if (!(q > 0)) q = 0;  // also catches NaN
  if (q > 1) q = 1;
  return std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count))), 1, count);
}

// What quantile() reports once the rank's bucket [lower, upper) is found; `overflow` says it is
// the overflow bucket (upper is then UINT64_MAX and means nothing).
double quantile_in_bucket(std::uint64_t lower, std::uint64_t upper, bool overflow, bool last_rank,
                          std::uint64_t max) noexcept {
  // max lies in the last non-empty bucket unless a record was in flight while the shards were
  // read (HistogramShard::add_to); then it may lag below this bucket and is no guide.
  const bool max_fits = max >= lower;
  if (max_fits && (last_rank || overflow)) return static_cast<double>(max);
  if (overflow) return static_cast<double>(lower);
  // The midpoint of the bucket's integers, so the one-value buckets below 64 are exact.
  const double mid = static_cast<double>(lower) + static_cast<double>(upper - 1 - lower) / 2.0;
  return max_fits ? std::min(mid, static_cast<double>(max)) : mid;
}

}  // namespace

double HistogramSnapshot::quantile(double q) const noexcept {
  if (count == 0) return 0;
  const std::uint64_t rank = quantile_rank(q, count);
  std::uint64_t seen = 0;
  const std::size_t n = std::min(buckets.size(), Layout::kBuckets);
  for (std::size_t i = 0; i < n; ++i) {
    seen += buckets[i];
    if (seen < rank) continue;
    return quantile_in_bucket(Layout::bucket_lower(i), Layout::bucket_upper(i),
                              i == Layout::kOverflowBucket, rank == count, max);
  }
  return static_cast<double>(max);  // unreachable while count is the sum of the buckets
}

std::uint64_t HistogramSnapshot::count_at_or_below(std::uint64_t ns) const noexcept {
  const std::size_t j = Layout::bucket_of(ns);
  // Bucket j counts only if all of it is <= ns, i.e. ns is its last value.
  const bool whole =
      j == Layout::kOverflowBucket ? ns == kMax64 : ns == Layout::bucket_upper(j) - 1;
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

ember::Histogram to_public(const HistogramSnapshot& s) {
  ember::Histogram h;
  h.count = s.count;
  h.sum_ns = s.sum;
  h.max_ns = s.max;
  const std::size_t n = std::min(s.buckets.size(), Layout::kBuckets);
  for (std::size_t i = 0; i < n; ++i) {
    if (s.buckets[i] == 0) continue;
    h.buckets.push_back({Layout::bucket_lower(i), Layout::bucket_upper(i), s.buckets[i]});
  }
  return h;
}

void merge_into(ember::Histogram& into, const ember::Histogram& from) {
  // Built aside and moved in at the end, so `from` may be `into`.
  std::vector<ember::HistogramBucket> merged;
  merged.reserve(into.buckets.size() + from.buckets.size());
  auto a = into.buckets.begin();
  auto b = from.buckets.begin();
  while (a != into.buckets.end() || b != from.buckets.end()) {
    if (b == from.buckets.end() || (a != into.buckets.end() && a->lower_ns < b->lower_ns)) {
      merged.push_back(*a++);
    } else if (a == into.buckets.end() || b->lower_ns < a->lower_ns) {
      merged.push_back(*b++);
    } else {
      merged.push_back({a->lower_ns, a->upper_ns, a->count + b->count});
      ++a;
      ++b;
    }
  }
  into.buckets = std::move(merged);
  into.count += from.count;
  into.sum_ns += from.sum_ns;
  into.max_ns = std::max(into.max_ns, from.max_ns);
}

}  // namespace ember::detail

namespace ember {

// The public form answers as HistogramSnapshot does (histogram.hpp), bucket for bucket: the
// overflow bucket is the one whose upper_ns is UINT64_MAX.

double Histogram::quantile(double q) const noexcept {
  if (count == 0) return 0;
  const std::uint64_t rank = detail::quantile_rank(q, count);
  std::uint64_t seen = 0;
  for (const HistogramBucket& b : buckets) {
    seen += b.count;
    if (seen < rank) continue;
    return detail::quantile_in_bucket(b.lower_ns, b.upper_ns, b.upper_ns == detail::kMax64,
                                      rank == count, max_ns);
  }
  return static_cast<double>(max_ns);  // unreachable while count is the sum of the buckets
}

std::uint64_t Histogram::count_at_or_below(std::uint64_t ns) const noexcept {
  std::uint64_t total = 0;
  for (const HistogramBucket& b : buckets) {
    // The last value of the bucket; the overflow bucket also holds UINT64_MAX itself.
    const std::uint64_t last = b.upper_ns == detail::kMax64 ? detail::kMax64 : b.upper_ns - 1;
    if (last > ns) break;  // ascending: no later bucket lies wholly at or below ns either
    total += b.count;
  }
  return total;
}

}  // namespace ember
