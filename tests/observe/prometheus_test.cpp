// prometheus_test.cpp — tests src/observe/prometheus.cpp against a strict parser of the text
// exposition format 0.0.4 (prometheus_parse.hpp, written independently of the writer): round
// trips of names, labels and values, one HELP/TYPE per family, histogram invariants, golden
// output.
#include "observe/prometheus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "prometheus_parse.hpp"  // this directory

namespace ember::detail {
namespace {

using prometheus_parse::expect_histograms_well_formed;
using prometheus_parse::Exposition;
using prometheus_parse::Family;
using prometheus_parse::parse;
using prometheus_parse::parse_value;
using prometheus_parse::Sample;
using prometheus_parse::valid_utf8;

HistogramSnapshot snapshot_of(const std::vector<std::uint64_t>& values) {
  auto shard = std::make_unique<HistogramShard>();
  for (std::uint64_t v : values) shard->record(v);
  return shard->snapshot();
}

constexpr double kDefaultLe[] = {1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1, 5, 10, 60};

// ---- Tests ------------------------------------------------------------------------------------

TEST(PrometheusTextTest, GoldenSmallExample) {
  PrometheusText text;
  text.counter("ember_invocations_total", "Invocations, throttles not counted.",
               {{"function", "resize"}, {"version", "3"}}, 42);
  text.gauge("ember_concurrent_executions", "Handlers running now.", {}, 2);
  const double le[] = {0.001, 0.01};
  text.histogram("ember_duration_seconds", "Handler duration.", {{"function", "resize"}},
                 snapshot_of({500'000, 2'000'000, 2'000'000, 20'000'000}), le);
  text.counter("ember_invocations_total", "Invocations, throttles not counted.",
               {{"function", "thumb"}, {"version", "1"}}, std::uint64_t{7});
  EXPECT_EQ(text.str(),
            "# HELP ember_invocations_total Invocations, throttles not counted.\n"
            "# TYPE ember_invocations_total counter\n"
            "ember_invocations_total{function=\"resize\",version=\"3\"} 42\n"
            "ember_invocations_total{function=\"thumb\",version=\"1\"} 7\n"
            "# HELP ember_concurrent_executions Handlers running now.\n"
            "# TYPE ember_concurrent_executions gauge\n"
            "ember_concurrent_executions 2\n"
            "# HELP ember_duration_seconds Handler duration.\n"
            "# TYPE ember_duration_seconds histogram\n"
            "ember_duration_seconds_bucket{function=\"resize\",le=\"0.001\"} 1\n"
            "ember_duration_seconds_bucket{function=\"resize\",le=\"0.01\"} 3\n"
            "ember_duration_seconds_bucket{function=\"resize\",le=\"+Inf\"} 4\n"
            "ember_duration_seconds_sum{function=\"resize\"} 0.0245\n"
            "ember_duration_seconds_count{function=\"resize\"} 4\n");
  EXPECT_EQ(text.rejected(), 0u);
  parse(text.str());
}

TEST(PrometheusTextTest, EmptyTextIsEmpty) { EXPECT_EQ(PrometheusText().str(), ""); }

TEST(PrometheusTextTest, NastyLabelValuesRoundTrip) {
  const std::vector<std::string> values = {"",
                                           "plain",
                                           "back\\slash",
                                           "trailing\\",
                                           "say \"hi\"",
                                           "two\nlines",
                                           "literal \\n",
                                           "\\\"",
                                           "tab\there",
                                           "{brace},=",
                                           "h\xC3\xA9llo \xE2\x98\x83 \xF0\x9F\x8E\x89",
                                           std::string("nul\0byte", 8),
                                           "\n\n\\\\\"\""};
  PrometheusText text;
  for (std::size_t i = 0; i < values.size(); ++i) {
    text.counter("nasty_total", "Nasty.", {{"i", std::to_string(i)}, {"v", values[i]}}, i);
  }
  const Exposition e = parse(text.str());
  const Family* f = e.family("nasty_total");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->samples.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(f->samples[i].label("v"), values[i]) << i;
    EXPECT_EQ(f->samples[i].label("i"), std::to_string(i));
    EXPECT_EQ(f->samples[i].value, static_cast<double>(i));
  }
}

TEST(PrometheusTextTest, EscapesExactlyPerTheFormat) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // quotes stay as they are in HELP
  EXPECT_EQ(escape_label_value("\t\r"), "\t\r");          // nothing else is escaped
}

TEST(PrometheusTextTest, InvalidUtf8BecomesReplacementCharacters) {
  const std::string bad = "ok\xFF\xC0\xAFx\xED\xA0\x80\xE2\x82";  // stray, overlong, surrogate, cut
  const std::string escaped = escape_label_value(bad);
  EXPECT_TRUE(valid_utf8(escaped));
  EXPECT_TRUE(escaped.starts_with("ok\xEF\xBF\xBD"));
  EXPECT_NE(escaped.find('x'), std::string::npos);
  EXPECT_EQ(escape_label_value("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF");  // U+10FFFF is fine
  PrometheusText text;
  text.gauge("g", bad, {{"v", bad}}, 1);
  parse(text.str());
}

TEST(PrometheusTextTest, HelpRoundTripsWithBackslashesAndNewlines) {
  const std::string help = "Line one\nline \"two\" with C:\\path\\ and \\n literally.";
  PrometheusText text;
  text.counter("c_total", help, {}, 1);
  text.counter("no_help_total", "", {}, 1);
  const Exposition e = parse(text.str());
  const Family* c = e.family("c_total");
  const Family* no_help = e.family("no_help_total");
  ASSERT_NE(c, nullptr);
  ASSERT_NE(no_help, nullptr);
  EXPECT_EQ(c->help, help);
  EXPECT_EQ(no_help->help, "");
  EXPECT_NE(text.str().find("# HELP no_help_total\n"), std::string::npos);
}

TEST(PrometheusTextTest, OneHelpAndTypePerFamilyInFirstSeenOrder) {
  PrometheusText text;
  const auto snap = snapshot_of({1'000, 2'000'000});
  text.counter("a_total", "A.", {{"f", "1"}}, 1);
  text.histogram("h_seconds", "H.", {{"f", "1"}}, snap, kDefaultLe);
  text.gauge("g", "G.", {{"f", "1"}}, -3);
  text.counter("a_total", "A, said differently.", {{"f", "2"}}, 2);
  text.histogram("h_seconds", "H.", {{"f", "2"}}, snap, kDefaultLe);
  text.gauge("g", "G.", {{"f", "2"}}, 0.25);
  text.counter("a_total", "A.", {{"f", "3"}}, 3);
  const std::string s = text.str();
  const Exposition e = parse(s);
  ASSERT_EQ(e.families.size(), 3u);
  EXPECT_EQ(e.families[0].name, "a_total");
  EXPECT_EQ(e.families[1].name, "h_seconds");
  EXPECT_EQ(e.families[2].name, "g");
  for (const Family& f : e.families) {
    EXPECT_EQ(f.help_lines, 1) << f.name;
    EXPECT_EQ(f.type_lines, 1) << f.name;
  }
  EXPECT_EQ(e.families[0].help, "A.");  // the first help text wins
  EXPECT_EQ(e.families[0].type, "counter");
  EXPECT_EQ(e.families[1].type, "histogram");
  EXPECT_EQ(e.families[2].type, "gauge");
  ASSERT_EQ(e.families[0].samples.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(e.families[0].samples[i].label("f"), std::to_string(i + 1));
    EXPECT_EQ(e.families[0].samples[i].value, i + 1);
  }
  EXPECT_EQ(e.families[1].samples.size(), 2 * (std::size(kDefaultLe) + 3));
  EXPECT_EQ(e.families[2].samples[0].value, -3);
  EXPECT_EQ(e.families[2].samples[1].value, 0.25);
  expect_histograms_well_formed(e);
}

TEST(PrometheusTextTest, HistogramBucketsAreCumulativeAndMatchTheSnapshot) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> dist(14.0, 2.5);  // median ~1.2 ms
  std::vector<std::uint64_t> values(50'000);
  for (auto& v : values) v = static_cast<std::uint64_t>(dist(rng));
  const HistogramSnapshot snap = snapshot_of(values);
  PrometheusText text;
  text.histogram("d_seconds", "D.", {{"function", "f"}}, snap, kDefaultLe);
  const Exposition e = parse(text.str());
  expect_histograms_well_formed(e);
  const Family* f = e.family("d_seconds");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->samples.size(), std::size(kDefaultLe) + 3);
  std::sort(values.begin(), values.end());
  for (std::size_t i = 0; i < std::size(kDefaultLe); ++i) {
    const Sample& b = f->samples[i];
    EXPECT_EQ(*parse_value(*b.label("le")), kDefaultLe[i]);  // the boundary reads back exactly
    EXPECT_EQ(b.label("function"), "f");
    // Rounded down to a bucket edge: never counts a value above le, misses at most those in
    // the last 1/32 below it.
    const auto ns = static_cast<std::uint64_t>(std::llround(kDefaultLe[i] * 1e9));
    const auto at_or_below = [&](std::uint64_t x) {
      return static_cast<double>(std::upper_bound(values.begin(), values.end(), x) -
                                 values.begin());
    };
    EXPECT_EQ(b.value, static_cast<double>(snap.count_at_or_below(ns)));
    EXPECT_LE(b.value, at_or_below(ns));
    EXPECT_GE(b.value, at_or_below(ns - ns / 32 - 1));
  }
  EXPECT_EQ(f->samples[std::size(kDefaultLe)].value, 50'000);  // +Inf
  EXPECT_EQ(f->samples.back().name, "d_seconds_count");
  EXPECT_EQ(f->samples.back().value, 50'000);
  const Sample& sum = f->samples[std::size(kDefaultLe) + 1];
  EXPECT_EQ(sum.name, "d_seconds_sum");
  EXPECT_DOUBLE_EQ(sum.value, static_cast<double>(snap.sum) / 1e9);
}

TEST(PrometheusTextTest, HistogramBoundariesAreSortedDedupedAndFinite) {
  const double le[] = {1.0,
                       0.5,
                       std::numeric_limits<double>::quiet_NaN(),
                       1.0,
                       std::numeric_limits<double>::infinity(),
                       -std::numeric_limits<double>::infinity(),
                       -1};
  PrometheusText text;
  text.histogram("h", "", {}, snapshot_of({100, 700'000'000}), le);
  EXPECT_EQ(text.str(),
            "# HELP h\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"-1\"} 0\n"
            "h_bucket{le=\"0.5\"} 1\n"
            "h_bucket{le=\"1\"} 2\n"
            "h_bucket{le=\"+Inf\"} 2\n"
            "h_sum 0.7000001\n"
            "h_count 2\n");
  expect_histograms_well_formed(parse(text.str()));
}

TEST(PrometheusTextTest, DecimalBoundariesMeanTheirDecimalNanoseconds) {
  // 3e-8 s * 1e9 is 29.999999999999996 in binary (6.3e-8: 62.99999999999999); the boundaries
  // still hold a 30 ns and a 63 ns value. (Below 64 ns every value is its own bucket, so the
  // count is exact.)
  const double le[] = {3e-8, 5e-8, 6.3e-8};
  PrometheusText text;
  text.histogram("h", "", {}, snapshot_of({30, 31, 50, 51, 63, 64}), le);
  const Exposition e = parse(text.str());
  const Family* f = e.family("h");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->samples[0].value, 1);
  EXPECT_EQ(f->samples[1].value, 3);
  EXPECT_EQ(f->samples[2].value, 5);
  EXPECT_EQ(f->samples[3].value, 6);
}

TEST(PrometheusTextTest, ValuesAreSpelledAsTheFormatWants) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(-7), "-7");
  EXPECT_EQ(format_value(1e6), "1000000");
  EXPECT_EQ(format_value(0.5), "0.5");
  EXPECT_EQ(format_value(0.0001), "0.0001");
  EXPECT_EQ(format_value(1e-5), "1e-05");
  EXPECT_EQ(format_value(1.5e20), "1.5e+20");
  EXPECT_EQ(format_value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(SampleValue(std::numeric_limits<std::uint64_t>::max()).text(), "18446744073709551615");
  EXPECT_EQ(SampleValue(std::numeric_limits<std::int64_t>::min()).text(), "-9223372036854775808");
  EXPECT_EQ(SampleValue(-std::numeric_limits<double>::min()).text(), "-2.2250738585072014e-308");
}

TEST(PrometheusTextTest, DoublesReadBackBitForBit) {
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100'000; ++i) {
    double v = std::bit_cast<double>(rng());
    if (!std::isfinite(v)) continue;
    if (i % 3 == 0) v = std::ldexp(static_cast<double>(rng() >> 11), -static_cast<int>(rng() % 80));
    const std::string text = format_value(v);
    const auto back = parse_value(text);
    ASSERT_TRUE(back.has_value()) << text;
    ASSERT_EQ(std::bit_cast<std::uint64_t>(*back), std::bit_cast<std::uint64_t>(v == 0 ? 0.0 : v))
        << text;
  }
}

TEST(PrometheusTextTest, InvalidNamesAreRepaired) {
  EXPECT_EQ(sanitize_metric_name("ember.invocations-total"), "ember_invocations_total");
  EXPECT_EQ(sanitize_metric_name("ns:metric_1"), "ns:metric_1");
  EXPECT_EQ(sanitize_metric_name("9lives"), "_9lives");
  EXPECT_EQ(sanitize_metric_name(""), "_");
  EXPECT_EQ(sanitize_metric_name("caf\xC3\xA9"), "caf__");
  EXPECT_EQ(sanitize_label_name("a:b"), "a_b");
  EXPECT_EQ(sanitize_label_name("__name__"), "_name__");
  EXPECT_EQ(sanitize_label_name("___"), "_");
  EXPECT_EQ(sanitize_label_name("1st"), "_1st");
  EXPECT_EQ(sanitize_label_name("ok_2"), "ok_2");
  PrometheusText text;
  text.counter("bad name!", "", {{"__reserved", "x"}, {"dash-ed", "y"}, {"", "z"}}, 1);
  const Exposition e = parse(text.str());
  const Family* f = e.family("bad_name_");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->samples[0].label("_reserved"), "x");
  EXPECT_EQ(f->samples[0].label("dash_ed"), "y");
  EXPECT_EQ(f->samples[0].label("_"), "z");
}

TEST(PrometheusTextTest, UnprintableSamplesAreDroppedAndCounted) {
  PrometheusText text;
  const auto snap = snapshot_of({5});
  text.counter("x_total", "", {{"f", "a"}}, 1);
  text.gauge("x_total", "", {{"f", "b"}}, 1);    // another type for the same family
  text.counter("x_total", "", {{"f", "a"}}, 2);  // the same series twice
  text.counter("x_total", "", {{"g", "1"}, {"f", "b"}}, 3);
  text.counter("x_total", "", {{"f", "b"}, {"g", "1"}}, 4);      // the same series, reordered
  text.counter("y_total", "", {{"a-b", "1"}, {"a_b", "2"}}, 1);  // one label name after repair
  text.histogram("h", "", {{"le", "1"}}, snap, kDefaultLe);      // le is the buckets'
  text.histogram("h", "", {{"f", "a"}}, snap, kDefaultLe);
  text.counter("h_count", "", {}, 1);  // owned by histogram h
  text.gauge("h", "", {}, 1);          // h is a histogram
  text.counter("z_sum", "", {}, 1);
  text.histogram("z", "", {}, snap, kDefaultLe);  // would need z_sum
  EXPECT_EQ(text.rejected(), 8u);
  const Exposition e = parse(text.str());
  ASSERT_EQ(e.families.size(), 3u);
  EXPECT_EQ(e.families[0].name, "x_total");
  ASSERT_EQ(e.families[0].samples.size(), 2u);
  EXPECT_EQ(e.families[0].samples[0].value, 1);
  EXPECT_EQ(e.families[0].samples[1].value, 3);
  EXPECT_EQ(e.families[1].name, "h");
  EXPECT_EQ(e.families[2].name, "z_sum");
  EXPECT_EQ(e.family("y_total"), nullptr);
  expect_histograms_well_formed(e);
}

TEST(PrometheusTextTest, PublicHistogramPrintsAsItsSnapshot) {
  std::mt19937_64 rng(17);
  std::vector<std::uint64_t> values(5'000);
  for (auto& v : values) v = rng() >> (rng() % 64);  // overflow bucket included
  const HistogramSnapshot snap = snapshot_of(values);
  PrometheusText from_snapshot, from_public;
  from_snapshot.histogram("h_seconds", "H.", {{"f", "x"}}, snap, kDefaultLe);
  from_public.histogram("h_seconds", "H.", {{"f", "x"}}, to_public(snap), kDefaultLe);
  EXPECT_EQ(from_public.str(), from_snapshot.str());
  // A merged public histogram prints as the one shard that recorded everything.
  const std::vector<std::uint64_t> a(values.begin(), values.begin() + 2'000);
  const std::vector<std::uint64_t> b(values.begin() + 2'000, values.end());
  ember::Histogram merged = to_public(snapshot_of(a));
  merge_into(merged, to_public(snapshot_of(b)));
  PrometheusText from_merged;
  from_merged.histogram("h_seconds", "H.", {{"f", "x"}}, merged, kDefaultLe);
  EXPECT_EQ(from_merged.str(), from_snapshot.str());
}

// The parser used throughout refuses what it should; otherwise its silence would prove nothing.
TEST(PrometheusParseTest, RefusesWhatTheFormatOrTheWriterForbids) {
  const std::string ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{f=\"x\"} 1\n";
  EXPECT_TRUE(prometheus_parse::Parser().parse(ok).errors.empty());
  const std::vector<std::string> bad = {
      "a_total 1\n",                                          // no HELP, no TYPE
      "# HELP a_total A.\na_total 1\n",                       // no TYPE
      "# HELP a A.\n# TYPE a gauge\n",                        // no samples
      "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",   // TYPE twice
      "# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n",      // HELP after samples
      "# HELP a A.\n# TYPE a gauge\na 1",                     // no final newline
      "# HELP a A.\n# TYPE a gauge\na{f=\"x\\t\"} 1\n",       // bad escape
      "# HELP a A.\n# TYPE a gauge\na{f=\"x} 1\n",            // unterminated value
      "# HELP a A.\n# TYPE a gauge\na{__f=\"x\"} 1\n",        // reserved label name
      "# HELP a A.\n# TYPE a gauge\na{f=\"x\",f=\"y\"} 1\n",  // label twice
      "# HELP a A.\n# TYPE a gauge\na 1 2 3\n",               // trailing text
      "# HELP a A.\n# TYPE a gauge\na one\n",                 // not a number
      "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na{f=\"1\"} 1\nb 1\n"
      "a{f=\"2\"} 1\n",                         // a not grouped
      "# HELP a A.\n# TYPE a summery\na 1\n",   // no such type
      "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",  // bad metric name
  };
  for (const std::string& text : bad) {
    EXPECT_FALSE(prometheus_parse::Parser().parse(text).errors.empty()) << text;
  }
}

}  // namespace
}  // namespace ember::detail
