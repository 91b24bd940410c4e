// bench_report.hpp — what `ember bench` measures and how it is shown: a latency recorder each
// caller thread owns, the report they add up to, the report's text with a latency histogram
// drawn in bars, and the progress line shown while it runs. No I/O here, so tests can hold it.
//
//   LatencyRecorder rec;                         // one per caller thread
//   rec.record(950);                             // nanoseconds, from a steady clock
//   total.merge(rec);                            // after the threads have joined
//   BenchReport report{.function = "hello.greet", .latency = total.histogram(), ...};
//   std::cout << format_bench_report(report, {.unicode = locale_is_utf8(...)});
#pragma once

#include <absl/time/time.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/observe.hpp"

namespace ember::cli {

// Records latencies into log-linear buckets: exact below 64 ns, then 32 buckets per power of
// two, so each bucket is at most 1/32 as wide as its lower edge (as ember::Histogram's are).
// Fixed size, no allocation: record() is a few instructions. Not thread-safe: one per thread.
class LatencyRecorder final {
 public:
  static constexpr int kSubBucketBits = 5;                     // 32 buckets per octave
  static constexpr int kExact = 2 << kSubBucketBits;           // values 0..63 exactly
  static constexpr int kBuckets = kExact + (63 - 6 + 1) * 32;  // octaves 2^6 .. 2^63

  void record(std::uint64_t ns) noexcept;
  // Adds another recorder's values to this one's.
  void merge(const LatencyRecorder& other) noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  // The smallest value recorded, exactly; 0 when empty.
  [[nodiscard]] std::uint64_t min_ns() const noexcept { return count_ == 0 ? 0 : min_ns_; }
  // The values as an ember::Histogram (non-empty buckets, exact count, sum and max), so that
  // its quantile() answers percentiles.
  [[nodiscard]] Histogram histogram() const;

  // The bucket of a value and a bucket's [lower, upper) edges (upper saturates at UINT64_MAX).
  [[nodiscard]] static int bucket_of(std::uint64_t ns) noexcept;
  [[nodiscard]] static std::pair<std::uint64_t, std::uint64_t> bucket_edges(int bucket) noexcept;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ns_ = 0;
  std::uint64_t min_ns_ = UINT64_MAX;
  std::uint64_t max_ns_ = 0;
};

// How a histogram is drawn.
struct HistogramStyle {
  // At most this many rows; fewer when the values span less.
  int max_rows = 12;
  // Rows are log-spaced from the smallest value up to this quantile; the values above it (the
  // tail), if any, share one last row. 1: no tail row, every row log-spaced up to the max.
  double tail_quantile = 0.999;
  // Columns of the longest bar.
  int bar_width = 40;
  // Unicode block characters (eighths of a column) and "µs"; false: '#' bars and "us".
  bool unicode = true;
};

// A latency histogram in text, one row per latency range [from, to): log-spaced from the
// smallest value to style.tail_quantile, then one row up to the largest value:
//   "   1.02 µs ..    1.10 µs  ████████████████████▌     812,345  65.8%\n"
// A bucket's values are shared among the rows it overlaps, in proportion (so a row's count is
// an estimate within one bucket's width: 1/32 of the value). Bars are scaled to the fullest
// row; a row with any value shows at least a sliver. An empty histogram renders as
// "  (no samples)\n".
[[nodiscard]] std::string render_histogram(const Histogram& histogram, const HistogramStyle& style);

// The outcome of a benchmark run.
struct BenchReport {
  std::string function;
  int concurrency = 1;
  std::string dispatch;           // "inline", "pool"
  absl::Duration elapsed;         // from the callers' start until the last one stopped
  std::uint64_t invocations = 0;  // invokes completed, failed ones included
  std::uint64_t errors = 0;
  // Failed invokes by Lambda error type ("ValidationError", "Throttled", ...), most first.
  std::vector<std::pair<std::string, std::uint64_t>> errors_by_type;
  std::string first_error;  // "<type>: <message>" of one failure, for people
  // Every invoke's latency as its caller saw it (success or not), and the smallest exactly.
  Histogram latency;
  std::uint64_t latency_min_ns = 0;

  // Invocations per second of elapsed time; 0 when nothing ran.
  [[nodiscard]] double throughput() const noexcept;
};

// The report as text: the run, throughput, errors, latency percentiles (min, mean, p50, p90,
// p99, p99.9, max) and the histogram (render_histogram with `style`).
[[nodiscard]] std::string format_bench_report(const BenchReport& report,
                                              const HistogramStyle& style);

// One line of progress, without newline: a bar of `width` columns filled by `fraction` (0..1),
// the time so far of the total, invocations and their rate so far:
//   "[██████████          ]  1.5 s / 3 s    812,345 invocations  541,563/s"
[[nodiscard]] std::string progress_line(double fraction, absl::Duration elapsed,
                                        absl::Duration total, std::uint64_t invocations, int width,
                                        bool unicode);

// Whether the terminal takes UTF-8, from the locale variables as POSIX ranks them: the first
// non-empty of LC_ALL, LC_CTYPE, LANG names a UTF-8 codeset ("en_US.UTF-8", "C.utf8").
// Arguments may be null (unset).
[[nodiscard]] bool locale_is_utf8(const char* lc_all, const char* lc_ctype, const char* lang);

}  // namespace ember::cli
