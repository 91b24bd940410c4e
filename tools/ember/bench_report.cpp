#include "bench_report.hpp"

#include <absl/strings/ascii.h>
#include <absl/strings/str_format.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "duration.hpp"
#include "text.hpp"

namespace ember::cli {
namespace {

// Columns a UTF-8 string takes on a terminal: one per code point (all ours are narrow).
std::size_t columns(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string pad_left(std::string_view s, std::size_t width) {
  const std::size_t cols = columns(s);
  return cols >= width ? std::string(s) : cat(std::string(width - cols, ' '), s);
}

std::string pad_right(std::string_view s, std::size_t width) {
  const std::size_t cols = columns(s);
  return cols >= width ? std::string(s) : cat(s, std::string(width - cols, ' '));
}

// A bar `units` columns long (fractional), drawn in eighths with Unicode blocks or rounded to
// whole '#'. `at_least_a_sliver`: never empty (a row with values must show them).
std::string bar(double units, bool unicode, bool at_least_a_sliver) {
  static constexpr std::string_view kEighths[] = {"",       "\u258f", "\u258e", "\u258d",
                                                  "\u258c", "\u258b", "\u258a", "\u2589"};
  std::string out;
  if (unicode) {
    auto full = static_cast<int>(units);
    auto eighths = static_cast<int>(std::lround((units - full) * 8));
    if (eighths == 8) {
      ++full;
      eighths = 0;
    }
    if (at_least_a_sliver && full == 0 && eighths == 0) eighths = 1;
    for (int i = 0; i < full; ++i) out += "\u2588";
    out += kEighths[eighths];
  } else {
    auto n = static_cast<int>(std::lround(units));
    if (at_least_a_sliver && n == 0) n = 1;
    out.assign(static_cast<std::size_t>(n), '#');
  }
  return out;
}

}  // namespace

// ---- LatencyRecorder ----

int LatencyRecorder::bucket_of(std::uint64_t ns) noexcept {
  if (ns < static_cast<std::uint64_t>(kExact)) return static_cast<int>(ns);
  const int msb = 63 - std::countl_zero(ns);  // >= 6
  const int shift = msb - kSubBucketBits;
  const auto sub = static_cast<int>(ns >> shift) - (1 << kSubBucketBits);  // 0..31
  return kExact + (msb - 6) * (1 << kSubBucketBits) + sub;
}

std::pair<std::uint64_t, std::uint64_t> LatencyRecorder::bucket_edges(int bucket) noexcept {
  if (bucket < kExact) {
    return {static_cast<std::uint64_t>(bucket), static_cast<std::uint64_t>(bucket) + 1};
  }
  const int octave = (bucket - kExact) >> kSubBucketBits;
  const int sub = (bucket - kExact) & ((1 << kSubBucketBits) - 1);
  const int shift = octave + 6 - kSubBucketBits;
  const std::uint64_t lower = static_cast<std::uint64_t>((1 << kSubBucketBits) + sub) << shift;
  const std::uint64_t width = std::uint64_t{1} << shift;
  return {lower, lower > UINT64_MAX - width ? UINT64_MAX : lower + width};
}

void LatencyRecorder::record(std::uint64_t ns) noexcept {
  ++counts_[static_cast<std::size_t>(bucket_of(ns))];
  ++count_;
  sum_ns_ += ns;
  min_ns_ = std::min(min_ns_, ns);
  max_ns_ = std::max(max_ns_, ns);
}

void LatencyRecorder::merge(const LatencyRecorder& other) noexcept {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

Histogram LatencyRecorder::histogram() const {
  Histogram h;
  h.count = count_;
  h.sum_ns = sum_ns_;
  h.max_ns = max_ns_;
  for (int b = 0; b < kBuckets; ++b) {
    const std::uint64_t n = counts_[static_cast<std::size_t>(b)];
    if (n == 0) continue;
    const auto [lower, upper] = bucket_edges(b);
    h.buckets.push_back({.lower_ns = lower, .upper_ns = upper, .count = n});
  }
  return h;
}

// ---- Histogram rendering ----

std::string render_histogram(const Histogram& histogram, const HistogramStyle& style) {
  if (histogram.count == 0 || histogram.buckets.empty()) return "  (no samples)\n";
  const std::vector<HistogramBucket>& buckets = histogram.buckets;
  const double end = static_cast<double>(std::min(buckets.back().upper_ns, histogram.max_ns + 1));
  // The body: buckets up to the one holding the tail quantile; the rest, if any, is the tail,
  // drawn as one row so that a few slow outliers do not squeeze the body into a row or two.
  const auto body_count = static_cast<std::uint64_t>(
      std::ceil(std::clamp(style.tail_quantile, 0.0, 1.0) * static_cast<double>(histogram.count)));
  std::size_t body_end = 0;  // one past the body's last bucket
  for (std::uint64_t seen = 0; body_end < buckets.size() && (body_end == 0 || seen < body_count);
       ++body_end) {
    seen += buckets[body_end].count;
  }
  const bool tail = body_end < buckets.size();
  const int max_rows = std::max(tail ? 2 : 1, style.max_rows);

  // Body rows are log-spaced over [lo, hi): its first bucket's lower edge to its last's upper.
  const double lo = static_cast<double>(std::max<std::uint64_t>(1, buckets.front().lower_ns));
  const double hi = std::max(
      lo + 1, tail ? static_cast<double>(buckets[body_end - 1].upper_ns) : std::max(lo + 1, end));
  const double span = std::log(hi / lo);
  // No row narrower than a bucket (1/32 of its lower edge): finer rows would split one
  // bucket's values arbitrarily.
  const int body_rows =
      std::clamp(static_cast<int>(span / std::log1p(1.0 / 32)), 1, max_rows - (tail ? 1 : 0));
  const int rows = body_rows + (tail ? 1 : 0);
  // Row r of the body covers [lo * e^(span r / rows), ...). A bucket's values are spread over
  // the rows it overlaps in proportion to the overlap (as if uniform within the bucket): rows
  // about as narrow as buckets would otherwise alternate between one bucket and two.
  const auto row_of = [&](double v) {
    return std::clamp(static_cast<int>(std::log(std::max(v, lo) / lo) / span * body_rows), 0,
                      body_rows - 1);
  };
  const auto row_start = [&](int r) { return lo * std::exp(span * r / body_rows); };
  std::vector<double> counts(static_cast<std::size_t>(rows), 0.0);
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    const auto n = static_cast<double>(buckets[i].count);
    if (i >= body_end) {
      counts.back() += n;
      continue;
    }
    const double from = std::clamp(static_cast<double>(buckets[i].lower_ns), lo, hi);
    const double to = std::clamp(static_cast<double>(buckets[i].upper_ns), lo, hi);
    if (to <= from) {
      counts[static_cast<std::size_t>(row_of(from))] += n;
      continue;
    }
    for (int r = row_of(from); r < body_rows; ++r) {
      const double row_from = std::max(from, row_start(r));
      const double row_to = r + 1 == body_rows ? to : std::min(to, row_start(r + 1));
      if (row_to > row_from)
        counts[static_cast<std::size_t>(r)] += n * (row_to - row_from) / (to - from);
      if (row_to >= to) break;
    }
  }
  const auto edge = [&](int r) {
    if (r == 0) return lo;
    if (r == body_rows) return hi;
    if (r > body_rows) return std::max(hi, end);
    return row_start(r);
  };
  const double fullest = std::max(1e-9, *std::max_element(counts.begin(), counts.end()));
  const int width = std::max(1, style.bar_width);
  std::string out;
  for (int r = 0; r < rows; ++r) {
    const double n = counts[static_cast<std::size_t>(r)];
    const double units = n / fullest * width;
    append(&out, "  ", pad_left(format_nanos(edge(r), style.unicode), 9), " .. ",
           pad_left(format_nanos(edge(r + 1), style.unicode), 9), "  ",
           pad_right(bar(units, style.unicode, n >= 0.5), static_cast<std::size_t>(width)), "  ",
           pad_left(format_count(static_cast<std::uint64_t>(std::llround(n))), 11),
           absl::StrFormat("  %5.1f%%", 100.0 * n / static_cast<double>(histogram.count)), "\n");
  }
  return out;
}

// ---- The report ----

double BenchReport::throughput() const noexcept {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  return seconds <= 0 ? 0.0 : static_cast<double>(invocations) / seconds;
}

std::string format_bench_report(const BenchReport& report, const HistogramStyle& style) {
  const auto rate = [](double per_second) {
    return per_second >= 100
               ? cat(format_count(static_cast<std::uint64_t>(std::llround(per_second))), "/s")
               : absl::StrFormat("%.2f/s", per_second);
  };
  std::string out =
      absl::StrFormat("%s: %d %s, %s dispatch, %.2f s\n", report.function, report.concurrency,
                      report.concurrency == 1 ? "caller" : "callers", report.dispatch,
                      absl::ToDoubleSeconds(report.elapsed));
  append(&out, "  invocations  ", format_count(report.invocations), "\n");
  append(&out, "  throughput   ", rate(report.throughput()), "\n");
  append(&out, "  errors       ", format_count(report.errors));
  if (report.errors != 0) {
    append(&out, absl::StrFormat(" (%.1f%%:", 100.0 * static_cast<double>(report.errors) /
                                                  static_cast<double>(std::max<std::uint64_t>(
                                                      1, report.invocations))));
    for (const auto& [type, n] : report.errors_by_type) {
      append(&out, " ", type, " ", format_count(n));
    }
    append(&out, ")");
  }
  append(&out, "\n");
  if (!report.first_error.empty()) {
    append(&out, "  first error  ", report.first_error, "\n");
  }

  const Histogram& h = report.latency;
  append(&out, "latency (each invoke, as its caller saw it)\n");
  if (h.count == 0) {
    append(&out, "  (no samples)\n");
    return out;
  }
  const auto line = [&](std::string_view name, double ns) {
    append(&out, "  ", pad_right(name, 6), pad_left(format_nanos(ns, style.unicode), 9), "\n");
  };
  line("min", static_cast<double>(report.latency_min_ns));
  line("mean", h.mean_ns());
  line("p50", h.quantile(0.50));
  line("p90", h.quantile(0.90));
  line("p99", h.quantile(0.99));
  line("p99.9", h.quantile(0.999));
  line("max", static_cast<double>(h.max_ns));
  append(&out, "histogram\n", render_histogram(h, style));
  return out;
}

// ---- Progress ----

std::string progress_line(double fraction, absl::Duration elapsed, absl::Duration total,
                          std::uint64_t invocations, int width, bool unicode) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  width = std::max(1, width);
  const double seconds = absl::ToDoubleSeconds(elapsed);
  const double rate = seconds > 0 ? static_cast<double>(invocations) / seconds : 0.0;
  const std::string filled = bar(fraction * width, unicode, false);
  return cat("[", pad_right(filled, static_cast<std::size_t>(width)), "] ",
             absl::StrFormat("%5.1f s / %s  ", seconds, absl::FormatDuration(total)),
             pad_left(format_count(invocations), 11), " invocations  ",
             format_count(static_cast<std::uint64_t>(std::llround(rate))), "/s");
}

bool locale_is_utf8(const char* lc_all, const char* lc_ctype, const char* lang) {
  for (const char* value : {lc_all, lc_ctype, lang}) {
    if (value == nullptr || *value == '\0') continue;
    const std::string lower = absl::AsciiStrToLower(value);
    return lower.find("utf-8") != std::string::npos || lower.find("utf8") != std::string::npos;
  }
  return false;
}

}  // namespace ember::cli
