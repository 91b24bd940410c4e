// prometheus.hpp — builds Prometheus text exposition (format version 0.0.4) for metrics_text().
//
// Samples may be added in any order; they are grouped per metric family, each family printed
// once with one `# HELP` and one `# TYPE` line before its samples, families in first-seen order:
//
//   PrometheusText text;
//   text.counter("ember_invocations_total", "Invocations.", {{"function", "resize"}}, 42);
//   text.histogram("ember_duration_seconds", "Duration.", {{"function", "resize"}}, snapshot,
//                  kDurationBucketsSeconds);
//   text.counter("ember_invocations_total", "Invocations.", {{"function", "thumb"}}, 7);
//   std::string body = text.str();  // serve as text/plain; version=0.0.4
//
// Invalid names are a programming error (ember's names are fixed strings) but the output must
// stay valid anyway, so they are repaired, not rejected: every character outside the format's
// alphabet becomes '_' (each byte of a multi-byte UTF-8 character too), a name starting with a
// digit gets a '_' in front, an empty name becomes "_", and a label name starting with "__"
// (reserved for Prometheus itself) loses leading underscores down to one. What cannot be
// repaired without inventing data makes the sample be dropped and counted in rejected():
// a family reused with another type, a sample name claimed by another family (histogram "x"
// owns x_bucket, x_sum and x_count), the same label set twice in a family, a label name twice
// in one set (after repair), and a label named "le" on a histogram.
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "observe/histogram.hpp"

namespace ember::detail {

// One label; the views must outlive the call they are passed to (they are copied into the text).
struct Label {
  std::string_view name;
  std::string_view value;
};
// Printed in the given order.
using Labels = std::vector<Label>;

// Integers print exactly; bool is not a number here.
template <typename T>
concept SampleInteger = std::integral<T> && !std::same_as<T, bool>;

// A sample value, already formatted: integers exactly as integers, doubles per format_value().
class SampleValue final {
 public:
  template <SampleInteger T>
  SampleValue(T v) noexcept {  // NOLINT: implicit on purpose
    len_ = static_cast<std::size_t>(std::to_chars(buf_, buf_ + sizeof buf_, v).ptr - buf_);
  }
  SampleValue(double v) noexcept;  // NOLINT: implicit on purpose

  [[nodiscard]] std::string_view text() const noexcept { return {buf_, len_}; }

 private:
  char buf_[32];  // the longest shortest-round-trip double, "-2.2250738585072014e-308", is 24
  std::size_t len_ = 0;
};

// The format's spellings: "+Inf", "-Inf", "NaN"; integral values below 2^53 without a fraction
// or exponent ("3", "1000000"; -0 as "0"); 1e-4 <= |v| < 1e16 in fixed notation ("0.0005", "12.5");
// the rest in scientific ("1e-05", "1.5e+20"). Always the shortest text that reads back to v.
[[nodiscard]] std::string format_value(double v);

// The repairs described at the top of this file.
[[nodiscard]] std::string sanitize_metric_name(std::string_view name);
[[nodiscard]] std::string sanitize_label_name(std::string_view name);

// Escapes per the format: label values `\` `"` newline; HELP text `\` newline. Both also replace
// bytes that are not valid UTF-8 with U+FFFD, which Prometheus's parser would reject.
[[nodiscard]] std::string escape_label_value(std::string_view value);
[[nodiscard]] std::string escape_help(std::string_view help);

// Accumulates samples and renders them. Not thread-safe; build one per scrape.
class PrometheusText final {
 public:
  // A counter sample. Precondition: value >= 0 (not checked). The name is used as given:
  // ember's counters end in "_total" by convention, the format does not require it.
  void counter(std::string_view name, std::string_view help, const Labels& labels,
               SampleValue value);
  void gauge(std::string_view name, std::string_view help, const Labels& labels, SampleValue value);

  // A histogram of durations: name_bucket{...,le="<seconds>"} cumulative counts for each of
  // `le_seconds` and then le="+Inf" (== name_count), name_sum in seconds, name_count.
  // le_seconds is sorted and de-duplicated here; non-finite entries are ignored (+Inf is always
  // there). A boundary that does not fall on a histogram bucket edge is rounded down to one, so
  // each le bucket counts only values <= le and may miss those within 1/32 below it
  // (ember::Histogram::count_at_or_below).
  void histogram(std::string_view name, std::string_view help, const Labels& labels,
                 const ember::Histogram& durations, std::span<const double> le_seconds);
  // The same for a snapshot (through to_public(), so both print the same text).
  void histogram(std::string_view name, std::string_view help, const Labels& labels,
                 const HistogramSnapshot& snapshot, std::span<const double> le_seconds);

  // The exposition: each line ends in '\n'; empty when nothing was added.
  [[nodiscard]] std::string str() const;

  // Samples dropped because they could not be printed validly (see the top of this file).
  [[nodiscard]] std::size_t rejected() const noexcept { return rejected_; }

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    std::string name;
    std::string help;  // escaped
    Type type;
    std::string samples;           // rendered lines
    std::set<std::string> series;  // label sets seen (sorted, see render_labels), to refuse twins
  };

  void scalar(Type type, std::string_view name, std::string_view help, const Labels& labels,
              SampleValue value);
  // The family for `name`, created if new; nullptr when the name conflicts (see above).
  Family* family_for(const std::string& name, std::string_view help, Type type);
  // Renders `a="x",b="y"` (no braces) into `out`, and into `key` the same pairs sorted: one
  // series whatever the order its labels were given in. False if the set cannot be printed.
  static bool render_labels(const Labels& labels, Type type, std::string& out, std::string& key);

  std::vector<Family> families_;  // first-seen order
  // Every sample name in use -> the index of the family that owns it.
  std::map<std::string, std::size_t, std::less<>> owners_;
  std::size_t rejected_ = 0;
};

}  // namespace ember::detail
