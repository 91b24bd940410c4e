// histogram_test.cpp — tests src/observe/histogram.cpp: bucket layout, quantile accuracy against
// exact (sorted) quantiles, merging, overflow, and single-writer shards read concurrently.
#include "observe/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace ember::detail {
namespace {

using Layout = HistogramLayout;
constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// The design bound: a bucket is at most 1/64 as wide as its lower edge and the midpoint of its
// integers is reported, so the error is below lower/128 <= v/128. The issue asks for 2%.
constexpr double kDesignBound = 1.0 / 128;
constexpr double kRequiredBound = 0.02;

// Nearest-rank quantile of sorted values: the max(1, ceil(q * n))-th smallest.
std::uint64_t exact_quantile(const std::vector<std::uint64_t>& sorted, double q) {
  const auto n = static_cast<std::uint64_t>(sorted.size());
  const auto rank = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(n))), 1, n);
  return sorted[rank - 1];
}

HistogramSnapshot record_all(const std::vector<std::uint64_t>& values) {
  auto shard = std::make_unique<HistogramShard>();
  for (std::uint64_t v : values) shard->record(v);
  return shard->snapshot();
}

// Checks every quantile in a sweep against the exact one, within the design bound (and hence
// the 2% the issue requires).
void expect_quantiles_accurate(std::vector<std::uint64_t> values) {
  const HistogramSnapshot s = record_all(values);
  std::sort(values.begin(), values.end());
  ASSERT_EQ(s.count, values.size());
  std::vector<double> qs = {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0};
  for (int i = 1; i < 200; ++i) qs.push_back(i / 200.0);
  for (double q : qs) {
    const double exact = static_cast<double>(exact_quantile(values, q));
    const double got = s.quantile(q);
    if (exact == 0) {
      EXPECT_EQ(got, 0) << "q=" << q;
      continue;
    }
    const double rel = std::fabs(got - exact) / exact;
    EXPECT_LE(rel, kDesignBound) << "q=" << q << " exact=" << exact << " got=" << got;
    EXPECT_LE(rel, kRequiredBound);
  }
  EXPECT_EQ(s.quantile(1.0), static_cast<double>(values.back()));
}

TEST(HistogramLayoutTest, EveryBucketIsContiguousMonotoneAndRoundTrips) {
  EXPECT_EQ(Layout::bucket_lower(0), 0u);
  for (std::size_t i = 0; i < Layout::kBuckets; ++i) {
    const std::uint64_t lo = Layout::bucket_lower(i);
    const std::uint64_t hi = Layout::bucket_upper(i);
    ASSERT_LT(lo, hi) << i;
    if (i + 1 < Layout::kBuckets) {
      ASSERT_EQ(hi, Layout::bucket_lower(i + 1)) << i;
      ASSERT_EQ(Layout::bucket_of(hi), i + 1);
    }
    // Both ends, and a point inside, map back to this bucket.
    ASSERT_EQ(Layout::bucket_of(lo), i);
    ASSERT_EQ(Layout::bucket_of(lo + (hi - lo) / 2), i);
    ASSERT_EQ(Layout::bucket_of(hi - 1), i);
  }
  EXPECT_EQ(Layout::bucket_upper(Layout::kOverflowBucket), kMax64);
}

TEST(HistogramLayoutTest, SmallValuesAreExact) {
  for (std::uint64_t v = 0; v < 128; ++v) {
    EXPECT_EQ(Layout::bucket_of(v), v);
    EXPECT_EQ(Layout::bucket_upper(v) - Layout::bucket_lower(v), 1u);
  }
}

TEST(HistogramLayoutTest, BucketWidthIsAtMostOneSixtyFourthOfItsValues) {
  for (std::size_t i = Layout::bucket_of(64); i < Layout::kOverflowBucket; ++i) {
    const std::uint64_t lo = Layout::bucket_lower(i);
    const std::uint64_t width = Layout::bucket_upper(i) - lo;
    // Equal to 1/64 of the lower edge only at a power of two (the first sub-bucket), strictly
    // less elsewhere; so strictly less than 1/64 of every other value.
    ASSERT_LE(width * 64, lo) << i;
    if (!std::has_single_bit(lo)) {
      ASSERT_LT(width * 64, lo) << i;
    }
  }
}

TEST(HistogramLayoutTest, PowersOfTwoAndNeighboursLandInOrder) {
  std::vector<std::uint64_t> values = {kMax64};
  for (int k = 0; k < 64; ++k) {
    const std::uint64_t p = std::uint64_t{1} << k;
    values.insert(values.end(), {p - 1, p, p + 1});
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  std::size_t previous = 0;
  for (std::uint64_t v : values) {
    const std::size_t b = Layout::bucket_of(v);
    ASSERT_GE(b, previous) << v;
    ASSERT_LT(b, Layout::kBuckets);
    ASSERT_GE(v, Layout::bucket_lower(b)) << v;
    if (b != Layout::kOverflowBucket) {
      ASSERT_LT(v, Layout::bucket_upper(b)) << v;
    }
    previous = b;
  }
  EXPECT_EQ(previous, Layout::kOverflowBucket);
}

TEST(HistogramLayoutTest, OverflowStartsAtTwoToTheFortyFour) {
  EXPECT_EQ(Layout::bucket_lower(Layout::kOverflowBucket), Layout::kOverflowThreshold);
  EXPECT_LT(Layout::bucket_of(Layout::kOverflowThreshold - 1), Layout::kOverflowBucket);
  EXPECT_EQ(Layout::bucket_of(Layout::kOverflowThreshold), Layout::kOverflowBucket);
  EXPECT_EQ(Layout::bucket_of(kMax64), Layout::kOverflowBucket);
  EXPECT_EQ(Layout::kBuckets, Layout::kOverflowBucket + 1);
}

TEST(HistogramShardTest, SizeIsWhatTheHeaderSays) {
  EXPECT_EQ(sizeof(HistogramShard), 20032u);
  EXPECT_EQ(alignof(HistogramShard), 64u);
}

TEST(HistogramTest, EmptyHistogramReportsZeros) {
  const HistogramSnapshot s = HistogramShard().snapshot();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.sum, 0u);
  EXPECT_EQ(s.max, 0u);
  for (double q : {0.0, 0.5, 1.0}) EXPECT_EQ(s.quantile(q), 0);
  EXPECT_EQ(s.count_at_or_below(kMax64), 0u);
  EXPECT_EQ(HistogramSnapshot().quantile(0.5), 0);
}

TEST(HistogramTest, RecordsCountSumAndMax) {
  const HistogramSnapshot s = record_all({5, 1000, 3, 1'000'000});
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.sum, 1'001'008u);
  EXPECT_EQ(s.max, 1'000'000u);
  EXPECT_EQ(s.buckets[Layout::bucket_of(1000)], 1u);
}

TEST(HistogramTest, UniformQuantilesAreAccurate) {
  std::vector<std::uint64_t> values(1'000'000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = i + 1;
  expect_quantiles_accurate(values);
}

TEST(HistogramTest, ConstantQuantilesAreAccurate) {
  expect_quantiles_accurate(std::vector<std::uint64_t>(1000, 123'456'789));
  expect_quantiles_accurate(std::vector<std::uint64_t>(10, 77));
  expect_quantiles_accurate(std::vector<std::uint64_t>(10, 0));
}

TEST(HistogramTest, TwoSpikesQuantilesAreAccurate) {
  std::vector<std::uint64_t> values(5000, 2'000);
  values.insert(values.end(), 5000, 3'000'000'000);
  expect_quantiles_accurate(values);
  const HistogramSnapshot s = record_all(values);
  EXPECT_NEAR(s.quantile(0.5), 2'000, 2'000 * kDesignBound);
  EXPECT_NEAR(s.quantile(0.5001), 3e9, 3e9 * kDesignBound);
}

TEST(HistogramTest, LogNormalQuantilesAreAccurate) {
  std::mt19937_64 rng(20240607);
  // Median e^12 ns ~ 160 us, with a long tail past a second: invocation-like.
  std::lognormal_distribution<double> dist(12.0, 2.0);
  std::vector<std::uint64_t> values(200'000);
  for (auto& v : values) v = static_cast<std::uint64_t>(dist(rng));
  expect_quantiles_accurate(values);
}

TEST(HistogramTest, RandomBitWidthsQuantilesAreAccurate) {
  // Every magnitude from 1 ns to 2^43 ns equally often: exercises every bucket group.
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> values(100'000);
  for (auto& v : values) v = rng() >> (rng() % 43 + 21);
  expect_quantiles_accurate(values);
}

TEST(HistogramTest, ExtremeQuantilesMatchMinAndMax) {
  for (std::uint64_t min : {std::uint64_t{3}, std::uint64_t{100}, std::uint64_t{98'765}}) {
    const HistogramSnapshot s = record_all({min + 1'000'000, min, 123'456'789, min + 5});
    // There is no min field: p0 is the midpoint of the lowest bucket, exact below 128.
    if (min < 128) {
      EXPECT_EQ(s.quantile(0), static_cast<double>(min));
    } else {
      EXPECT_NEAR(s.quantile(0), static_cast<double>(min), static_cast<double>(min) / 128);
    }
    EXPECT_EQ(s.quantile(1), 123'456'789.0);
    EXPECT_EQ(s.quantile(-1), s.quantile(0));
    EXPECT_EQ(s.quantile(2), s.quantile(1));
    EXPECT_EQ(s.quantile(std::nan("")), s.quantile(0));
  }
}

TEST(HistogramTest, QuantileNeverExceedsMax) {
  // 1000 and 1001 share the bucket [1000, 1008), whose midpoint 1003.5 lies past the max of
  // 1001: no rank may be reported above the max.
  const HistogramSnapshot s = record_all({1000, 1000, 1001});
  for (double q : {0.1, 0.5, 0.9, 1.0}) EXPECT_LE(s.quantile(q), 1001.0);
  EXPECT_EQ(s.quantile(1.0), 1001.0);
}

TEST(HistogramTest, OverflowValuesAreCountedAndMaxIsExact) {
  const std::uint64_t huge = Layout::kOverflowThreshold * 3 + 17;
  const HistogramSnapshot s = record_all({10, huge, Layout::kOverflowThreshold, kMax64 / 4});
  EXPECT_EQ(s.count, 4u);
  EXPECT_EQ(s.buckets[Layout::kOverflowBucket], 3u);
  EXPECT_EQ(s.max, kMax64 / 4);
  EXPECT_EQ(s.quantile(1.0), static_cast<double>(kMax64 / 4));
  EXPECT_EQ(s.quantile(0.25), 10.0);
  // The overflow bucket holds no position information; the max is its best estimate.
  EXPECT_EQ(s.quantile(0.5), static_cast<double>(kMax64 / 4));
  EXPECT_EQ(s.count_at_or_below(Layout::kOverflowThreshold - 1), 1u);
  EXPECT_EQ(s.count_at_or_below(kMax64 - 1), 1u);
  EXPECT_EQ(s.count_at_or_below(kMax64), 4u);
}

TEST(HistogramTest, CountAtOrBelowIsExactAtBucketEnds) {
  std::mt19937_64 rng(99);
  std::vector<std::uint64_t> values(20'000);
  for (auto& v : values) v = rng() >> (rng() % 40 + 24);
  const HistogramSnapshot s = record_all(values);
  std::sort(values.begin(), values.end());
  const auto brute = [&](std::uint64_t ns) {
    return static_cast<std::uint64_t>(std::upper_bound(values.begin(), values.end(), ns) -
                                      values.begin());
  };
  for (std::size_t i = 0; i < Layout::kOverflowBucket; ++i) {
    const std::uint64_t last = Layout::bucket_upper(i) - 1;
    ASSERT_EQ(s.count_at_or_below(last), brute(last)) << i;
  }
  // Elsewhere: a lower bound missing only values within 1/64 below the boundary.
  for (std::uint64_t ns :
       {std::uint64_t{100'000}, std::uint64_t{1'000'000}, std::uint64_t{5'000'000},
        std::uint64_t{1'000'000'000}, std::uint64_t{12345}}) {
    const std::uint64_t got = s.count_at_or_below(ns);
    EXPECT_LE(got, brute(ns)) << ns;
    EXPECT_GE(got, brute(ns - ns / 64 - 1)) << ns;
  }
}

TEST(HistogramTest, CountAtOrBelowRoundsAStraddlingBucketDown) {
  // 1'000'000 ns falls inside bucket [999'424, 1'007'616): a value there is not counted as
  // <= 1 ms, even when it is, and nothing above 1 ms ever is.
  ASSERT_EQ(Layout::bucket_lower(Layout::bucket_of(1'000'000)), 999'424u);
  const HistogramSnapshot s = record_all({999'423, 999'500, 1'000'000, 1'000'001});
  EXPECT_EQ(s.count_at_or_below(1'000'000), 1u);
  EXPECT_EQ(s.count_at_or_below(999'423), 1u);
  EXPECT_EQ(Layout::bucket_upper(Layout::bucket_of(1'000'000)), 1'007'616u);
  EXPECT_EQ(s.count_at_or_below(1'007'615), 4u);
  EXPECT_EQ(s.count_at_or_below(1'007'614), 1u);
}

TEST(HistogramTest, MergedShardsEqualOneShard) {
  std::mt19937_64 rng(42);
  std::vector<std::uint64_t> values(50'000);
  for (auto& v : values) v = rng() >> (rng() % 50 + 14);
  auto shards = std::make_unique<HistogramShard[]>(4);
  for (std::size_t i = 0; i < values.size(); ++i) shards[i % 4].record(values[i]);
  HistogramSnapshot via_add_to;
  for (int i = 0; i < 4; ++i) shards[i].add_to(via_add_to);
  HistogramSnapshot via_merge;
  for (int i = 0; i < 4; ++i) via_merge.merge(shards[i].snapshot());
  const HistogramSnapshot one = record_all(values);
  for (const HistogramSnapshot* s : {&via_add_to, &via_merge}) {
    EXPECT_EQ(s->count, one.count);
    EXPECT_EQ(s->sum, one.sum);
    EXPECT_EQ(s->max, one.max);
    EXPECT_EQ(s->buckets, one.buckets);
    for (double q : {0.0, 0.5, 0.99, 1.0}) EXPECT_EQ(s->quantile(q), one.quantile(q));
  }
}

TEST(HistogramTest, MergeAcceptsAnEmptiedSnapshot) {
  HistogramSnapshot moved = record_all({5, 6});
  HistogramSnapshot target = std::move(moved);
  HistogramSnapshot empty;
  empty.buckets.clear();
  empty.merge(target);
  EXPECT_EQ(empty.count, 2u);
  EXPECT_EQ(empty.buckets.size(), Layout::kBuckets);
  EXPECT_EQ(empty.quantile(1.0), 6.0);
}

// Each writer owns a shard; a reader snapshots all of them while they write. The reader must
// never see more than was written (plus the one record each writer may have in flight), never
// less than what writers had finished before it started, and never go backwards.
TEST(HistogramShardTest, ConcurrentReaderSeesBoundedMonotoneCounts) {
  constexpr int kWriters = 3;
  constexpr std::uint64_t kRecords = 200'000;
  struct alignas(64) Progress {
    std::atomic<std::uint64_t> done{0};
  };
  auto shards = std::make_unique<HistogramShard[]>(kWriters);
  auto progress = std::make_unique<Progress[]>(kWriters);
  std::atomic<bool> start{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      while (!start.load(std::memory_order_acquire)) std::this_thread::yield();
      for (std::uint64_t i = 1; i <= kRecords; ++i) {
        shards[w].record((i * 7919) % 5'000'000 + static_cast<std::uint64_t>(w));
        progress[w].done.store(i, std::memory_order_release);
      }
    });
  }
  start.store(true, std::memory_order_release);
  std::vector<std::uint64_t> last(kWriters, 0);
  int snapshots = 0;
  bool finished = false;
  while (!finished) {
    finished = true;
    for (int w = 0; w < kWriters; ++w) {
      const std::uint64_t before = progress[w].done.load(std::memory_order_acquire);
      const HistogramSnapshot s = shards[w].snapshot();
      const std::uint64_t after = progress[w].done.load(std::memory_order_acquire);
      ASSERT_GE(s.count, before) << "writer " << w;
      ASSERT_LE(s.count, after + 1) << "writer " << w;
      ASSERT_GE(s.count, last[w]) << "writer " << w;
      ASSERT_LE(s.max, 5'000'000u + kWriters);
      last[w] = s.count;
      finished = finished && after == kRecords;
    }
    ++snapshots;
  }
  for (auto& t : writers) t.join();
  EXPECT_GT(snapshots, 0);
  HistogramSnapshot total;
  for (int w = 0; w < kWriters; ++w) shards[w].add_to(total);
  EXPECT_EQ(total.count, kWriters * kRecords);
}

}  // namespace
}  // namespace ember::detail
