// tools/ember/bench_report.cpp: the latency recorder, the histogram drawing, the report and the
// progress line of `ember bench`.
#include "bench_report.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

namespace ember::cli {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::size_t count_of(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(LatencyRecorderTest, EveryValueFallsInABucketAtMostAThirtySecondWide) {
  std::mt19937_64 rng(42);
  std::vector<std::uint64_t> values = {0, 1, 63, 64, 65, 127, 128, 1000, 1u << 20, UINT64_MAX};
  for (int i = 0; i < 10000; ++i) values.push_back(rng() >> (rng() % 64));
  for (std::uint64_t v : values) {
    const int b = LatencyRecorder::bucket_of(v);
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyRecorder::kBuckets);
    const auto [lower, upper] = LatencyRecorder::bucket_edges(b);
    EXPECT_LE(lower, v);
    EXPECT_TRUE(v < upper || upper == UINT64_MAX) << v;
    if (lower >= 64 && upper != UINT64_MAX) {
      EXPECT_LE((upper - lower) * 32, lower) << v;
    }
  }
}

TEST(LatencyRecorderTest, BucketsAreContiguousAndAscending) {
  for (int b = 1; b < LatencyRecorder::kBuckets; ++b) {
    EXPECT_EQ(LatencyRecorder::bucket_edges(b - 1).second, LatencyRecorder::bucket_edges(b).first)
        << b;
  }
}

TEST(LatencyRecorderTest, HistogramKeepsCountSumMaxAndQuantilesWithinBucketPrecision) {
  LatencyRecorder rec;
  std::uint64_t sum = 0;
  for (std::uint64_t v = 1; v <= 100'000; ++v) {
    rec.record(v * 10);
    sum += v * 10;
  }
  const Histogram h = rec.histogram();
  EXPECT_EQ(h.count, 100'000u);
  EXPECT_EQ(h.sum_ns, sum);
  EXPECT_EQ(h.max_ns, 1'000'000u);
  EXPECT_EQ(rec.min_ns(), 10u);
  std::uint64_t in_buckets = 0;
  for (const HistogramBucket& b : h.buckets) in_buckets += b.count;
  EXPECT_EQ(in_buckets, h.count);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double truth = q * 1'000'000;
    EXPECT_NEAR(h.quantile(q), truth, truth / 32 + 10) << q;
  }
  EXPECT_EQ(h.quantile(1.0), 1'000'000.0);
}

TEST(LatencyRecorderTest, MergeAddsAnotherRecordersValues) {
  LatencyRecorder a;
  LatencyRecorder b;
  a.record(100);
  a.record(200);
  b.record(50);
  b.record(5000);
  a.merge(b);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.min_ns(), 50u);
  const Histogram h = a.histogram();
  EXPECT_EQ(h.max_ns, 5000u);
  EXPECT_EQ(h.sum_ns, 5350u);
}

TEST(LatencyRecorderTest, EmptyRecorderHasNoSamples) {
  LatencyRecorder rec;
  EXPECT_EQ(rec.count(), 0u);
  EXPECT_EQ(rec.min_ns(), 0u);
  EXPECT_TRUE(rec.histogram().buckets.empty());
}

Histogram sample_histogram() {
  LatencyRecorder rec;
  for (int i = 0; i < 9000; ++i) rec.record(1000 + static_cast<std::uint64_t>(i % 500));  // ~1 µs
  for (int i = 0; i < 990; ++i) rec.record(3000);                                         // 3 µs
  for (int i = 0; i < 10; ++i) rec.record(2'000'000);                                     // 2 ms
  return rec.histogram();
}

TEST(RenderHistogramTest, DrawsAtMostMaxRowsWithTheFullestRowAsWideAsTheBar) {
  const std::string text = render_histogram(sample_histogram(), {.max_rows = 8, .bar_width = 20});
  const auto lines = lines_of(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_LE(lines.size(), 8u);
  // The fullest row: 20 full blocks.
  std::string full;
  for (int i = 0; i < 20; ++i) full += "\u2588";
  EXPECT_EQ(count_of(text, full), 1u) << text;
  EXPECT_NE(text.find("\u00b5s"), std::string::npos);
}

TEST(RenderHistogramTest, RowsWithValuesShowAtLeastASliverAndEmptyRowsShowNone) {
  const std::string text = render_histogram(sample_histogram(), {.max_rows = 12, .bar_width = 30});
  for (const std::string& line : lines_of(text)) {
    const bool empty_row = line.find("  0    0.0%") != std::string::npos;
    const bool has_bar =
        line.find("\u2588") != std::string::npos || line.find("\u258f") != std::string::npos ||
        line.find("\u258e") != std::string::npos || line.find("\u258d") != std::string::npos ||
        line.find("\u258c") != std::string::npos || line.find("\u258b") != std::string::npos ||
        line.find("\u258a") != std::string::npos || line.find("\u2589") != std::string::npos;
    EXPECT_NE(empty_row, has_bar) << line;
  }
}

TEST(RenderHistogramTest, PutsTheSlowestTenthOfAPercentInOneTailRowUpToTheMax) {
  const auto lines = lines_of(render_histogram(sample_histogram(), {.max_rows = 10}));
  ASSERT_GE(lines.size(), 2u);
  // The last row runs up to the max (2 ms) and holds the 10 outliers: 0.1%.
  EXPECT_NE(lines.back().find("2.00 ms"), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find(" 10 "), std::string::npos) << lines.back();
  EXPECT_NE(lines.back().find("0.1%"), std::string::npos) << lines.back();
  // The body rows stay near the body: none of them reaches a millisecond.
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i].find(" ms"), std::string::npos) << lines[i];
  }
}

TEST(RenderHistogramTest, WithoutATailRowsAreLogSpacedUpToTheMax) {
  const auto lines =
      lines_of(render_histogram(sample_histogram(), {.max_rows = 10, .tail_quantile = 1.0}));
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_NE(lines.back().find("2.00 ms"), std::string::npos) << lines.back();
}

TEST(RenderHistogramTest, AsciiStyleUsesHashesAndUs) {
  const std::string text =
      render_histogram(sample_histogram(), {.bar_width = 25, .unicode = false});
  EXPECT_NE(text.find(std::string(25, '#')), std::string::npos) << text;
  EXPECT_NE(text.find(" us"), std::string::npos);
  EXPECT_TRUE(std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x80;
  })) << text;
}

TEST(RenderHistogramTest, RowsAreAlignedColumns) {
  const auto lines = lines_of(render_histogram(sample_histogram(), {.bar_width = 30}));
  const auto columns = [](const std::string& s) {
    return std::count_if(s.begin(), s.end(),
                         [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  };
  for (const std::string& line : lines) EXPECT_EQ(columns(line), columns(lines.front())) << line;
}

TEST(RenderHistogramTest, OneValueMakesOneRow) {
  LatencyRecorder rec;
  for (int i = 0; i < 5; ++i) rec.record(1500);
  const auto lines = lines_of(render_histogram(rec.histogram(), {}));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("100.0%"), std::string::npos) << lines[0];
}

TEST(RenderHistogramTest, EmptyHistogramSaysNoSamples) {
  EXPECT_EQ(render_histogram(Histogram{}, {}), "  (no samples)\n");
}

BenchReport sample_report() {
  LatencyRecorder rec;
  for (int i = 0; i < 1000; ++i) rec.record(2000 + static_cast<std::uint64_t>(i));
  BenchReport r;
  r.function = "hello.greet";
  r.concurrency = 4;
  r.dispatch = "pool";
  r.elapsed = absl::Seconds(2);
  r.invocations = 1000;
  r.errors = 30;
  r.errors_by_type = {{"ValidationError", 20}, {"Throttled", 10}};
  r.first_error = "ValidationError: payload must not be empty";
  r.latency = rec.histogram();
  r.latency_min_ns = rec.min_ns();
  return r;
}

TEST(BenchReportTest, ThroughputIsInvocationsPerSecondOfElapsedTime) {
  EXPECT_DOUBLE_EQ(sample_report().throughput(), 500.0);
  EXPECT_DOUBLE_EQ(BenchReport{}.throughput(), 0.0);
}

TEST(BenchReportTest, FormatShowsRunThroughputErrorsPercentilesAndHistogram) {
  const std::string text = format_bench_report(sample_report(), {});
  for (const char* expected :
       {"hello.greet: 4 callers, pool dispatch, 2.00 s", "invocations  1,000", "throughput   500/s",
        "errors       30 (3.0%: ValidationError 20 Throttled 10)",
        "first error  ValidationError: payload must not be empty", "min ", "mean ", "p50 ", "p90 ",
        "p99 ", "p99.9 ", "max ", "histogram\n", "\u2588"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  EXPECT_NE(text.find("min     2.00 \u00b5s"), std::string::npos) << text;
  EXPECT_NE(text.find("max     3.00 \u00b5s"), std::string::npos) << text;
}

TEST(BenchReportTest, FormatWithoutSamplesSaysSo) {
  BenchReport r;
  r.function = "f";
  r.dispatch = "inline";
  const std::string text = format_bench_report(r, {});
  EXPECT_NE(text.find("f: 1 caller, inline dispatch"), std::string::npos) << text;
  EXPECT_NE(text.find("(no samples)"), std::string::npos) << text;
  EXPECT_EQ(text.find("p50"), std::string::npos) << text;
}

TEST(ProgressLineTest, FillsTheBarByFractionAndShowsCountAndRate) {
  const std::string half =
      progress_line(0.5, absl::Seconds(1), absl::Seconds(2), 1000, 10, /*unicode=*/false);
  EXPECT_EQ(half.substr(0, 12), "[#####     ]") << half;
  EXPECT_NE(half.find("1.0 s / 2s"), std::string::npos) << half;
  EXPECT_NE(half.find("1,000 invocations"), std::string::npos) << half;
  EXPECT_NE(half.find("1,000/s"), std::string::npos) << half;
  const std::string done = progress_line(1.7, absl::Seconds(2), absl::Seconds(2), 0, 4, true);
  EXPECT_EQ(done.substr(0, 1 + 4 * 3 + 1), "[\u2588\u2588\u2588\u2588]") << done;
}

TEST(LocaleTest, FirstNonEmptyOfLcAllLcCtypeLangDecides) {
  EXPECT_TRUE(locale_is_utf8(nullptr, nullptr, "en_US.UTF-8"));
  EXPECT_TRUE(locale_is_utf8(nullptr, nullptr, "C.utf8"));
  EXPECT_FALSE(locale_is_utf8(nullptr, nullptr, "C"));
  EXPECT_FALSE(locale_is_utf8(nullptr, nullptr, nullptr));
  EXPECT_FALSE(locale_is_utf8("C", nullptr, "en_US.UTF-8"));  // LC_ALL wins
  EXPECT_TRUE(locale_is_utf8("", "de_DE.UTF-8", "C"));        // empty means unset
  EXPECT_FALSE(locale_is_utf8(nullptr, "POSIX", "en_US.UTF-8"));
}

}  // namespace
}  // namespace ember::cli
