// prometheus_test.cpp — tests src/observe/prometheus.cpp against a strict parser of the text
// exposition format 0.0.4 written here (independently of the writer): round trips of names,
// labels and values, one HELP/TYPE per family, histogram invariants, golden output.
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

namespace ember::detail {
namespace {

// ---- A parser of the text format, strict where the format is -------------------------------

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  [[nodiscard]] std::optional<std::string> label(std::string_view n) const {
    for (const auto& [k, v] : labels) {
      if (k == n) return v;
    }
    return std::nullopt;
  }
};

struct Family {
  std::string name;
  std::string type = "untyped";
  std::string help;
  int help_lines = 0;
  int type_lines = 0;
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<Family> families;  // in order of appearance
  std::vector<std::string> errors;
  [[nodiscard]] const Family* family(std::string_view name) const {
    for (const auto& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
};

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
                    (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || s.substr(0, 2) == "__") return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
                    (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

// Decodes code points; false on anything RFC 3629 forbids.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    std::uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 2) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::optional<double> parse_value(std::string_view s) {
  if (s == "+Inf") return std::numeric_limits<double>::infinity();
  if (s == "-Inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string_view::npos) return {};
  const std::string text(s);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return {};
  return v;
}

class Parser {
 public:
  Exposition parse(std::string_view text) {
    if (!text.empty() && text.back() != '\n') error("text does not end in a newline");
    while (!text.empty()) {
      const std::size_t nl = text.find('\n');
      line(text.substr(0, nl));
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      ++line_no_;
    }
    return std::move(out_);
  }

 private:
  void error(const std::string& what) {
    out_.errors.push_back("line " + std::to_string(line_no_) + ": " + what);
  }

  Family& family(const std::string& name) {
    for (auto& f : out_.families) {
      if (f.name == name) return f;
    }
    out_.families.push_back(Family{name});
    return out_.families.back();
  }

  // The family a sample name belongs to: its own, or a histogram's for x_bucket/x_sum/x_count.
  std::string family_of(const std::string& sample) {
    for (std::string suffix : {"_bucket", "_sum", "_count"}) {
      if (sample.size() > suffix.size() && sample.ends_with(suffix)) {
        const std::string stem = sample.substr(0, sample.size() - suffix.size());
        for (auto& f : out_.families) {
          if (f.name == stem && f.type == "histogram") return stem;
        }
      }
    }
    return sample;
  }

  // Reads up to the closing quote, undoing \\ \" \n; anything else escaped is an error.
  std::optional<std::string> quoted(std::string_view& s, bool quotes) {
    std::string v;
    while (!s.empty()) {
      const char c = s.front();
      s.remove_prefix(1);
      if (quotes && c == '"') return v;
      if (c != '\\') {
        v.push_back(c);
        continue;
      }
      if (s.empty()) break;
      const char e = s.front();
      s.remove_prefix(1);
      if (e == '\\') {
        v.push_back('\\');
      } else if (e == 'n') {
        v.push_back('\n');
      } else if (e == '"' && quotes) {
        v.push_back('"');
      } else {
        error(std::string("bad escape \\") + e);
        return std::nullopt;
      }
    }
    if (!quotes) return v;
    error("unterminated label value");
    return std::nullopt;
  }

  void line(std::string_view l) {
    if (l.empty()) return;
    if (l.front() == '#') return comment(l);
    std::size_t n = 0;
    while (n < l.size() && l[n] != '{' && l[n] != ' ') ++n;
    Sample s{std::string(l.substr(0, n))};
    if (!valid_metric_name(s.name)) return error("bad metric name '" + s.name + "'");
    l.remove_prefix(n);
    if (!l.empty() && l.front() == '{') {
      l.remove_prefix(1);
      while (!l.empty() && l.front() != '}') {
        const std::size_t eq = l.find("=\"");
        if (eq == std::string_view::npos) return error("label without =\"");
        std::string name(l.substr(0, eq));
        if (!valid_label_name(name)) return error("bad label name '" + name + "'");
        if (s.label(name)) return error("label '" + name + "' twice");
        l.remove_prefix(eq + 2);
        auto value = quoted(l, true);
        if (!value) return;
        if (!valid_utf8(*value)) return error("label value not UTF-8");
        s.labels.emplace_back(std::move(name), std::move(*value));
        if (!l.empty() && l.front() == ',') l.remove_prefix(1);
      }
      if (l.empty()) return error("unterminated label set");
      l.remove_prefix(1);
    }
    if (l.empty() || l.front() != ' ') return error("no space before the value");
    l.remove_prefix(1);
    const std::size_t sp = l.find(' ');
    const auto value = parse_value(l.substr(0, sp));
    if (!value) return error("bad value '" + std::string(l.substr(0, sp)) + "'");
    if (sp != std::string_view::npos) return error("unexpected timestamp or trailing text");
    s.value = *value;
    const std::string fam = family_of(s.name);
    Family& f = family(fam);
    if (!f.samples.empty() && current_ != fam) error("samples of '" + fam + "' are not grouped");
    current_ = fam;
    f.samples.push_back(std::move(s));
  }

  void comment(std::string_view l) {
    if (!l.starts_with("# HELP ") && !l.starts_with("# TYPE ")) return;  // a plain comment
    const bool help = l.starts_with("# HELP ");
    l.remove_prefix(7);
    const std::size_t sp = l.find(' ');
    const std::string name(l.substr(0, sp));
    if (!valid_metric_name(name)) return error("bad metric name in HELP/TYPE '" + name + "'");
    std::string_view rest = sp == std::string_view::npos ? "" : l.substr(sp + 1);
    Family& f = family(name);
    if (!f.samples.empty()) error("HELP/TYPE of '" + name + "' after its samples");
    if (help) {
      if (++f.help_lines > 1) error("second HELP for '" + name + "'");
      auto text = quoted(rest, false);
      if (text) f.help = *text;
    } else {
      if (++f.type_lines > 1) error("second TYPE for '" + name + "'");
      static const std::vector<std::string_view> kTypes = {"counter", "gauge", "histogram",
                                                           "summary", "untyped"};
      if (std::find(kTypes.begin(), kTypes.end(), rest) == kTypes.end()) {
        error("bad type '" + std::string(rest) + "'");
      }
      f.type = std::string(rest);
    }
  }

  Exposition out_;
  std::string current_;
  int line_no_ = 1;
};

Exposition parse(const std::string& text) {
  Exposition e = Parser().parse(text);
  for (const auto& err : e.errors) ADD_FAILURE() << err << "\nin:\n" << text;
  return e;
}

// Every histogram family: per label set, le ascending, counts cumulative, +Inf == _count.
void expect_histograms_well_formed(const Exposition& e) {
  for (const Family& f : e.families) {
    if (f.type != "histogram") continue;
    std::map<std::vector<std::pair<std::string, std::string>>, std::vector<const Sample*>> series;
    std::map<std::vector<std::pair<std::string, std::string>>, double> counts;
    for (const Sample& s : f.samples) {
      if (s.name == f.name + "_bucket") {
        auto key = s.labels;
        ASSERT_EQ(key.back().first, "le") << "le comes last in " << f.name;
        key.pop_back();
        series[key].push_back(&s);
      } else if (s.name == f.name + "_count") {
        counts[s.labels] = s.value;
      } else {
        ASSERT_EQ(s.name, f.name + "_sum");
      }
    }
    ASSERT_EQ(series.size(), counts.size()) << f.name;
    for (const auto& [key, buckets] : series) {
      double previous_le = -std::numeric_limits<double>::infinity();
      double previous_count = 0;
      for (const Sample* b : buckets) {
        const double le = *parse_value(*b->label("le"));
        EXPECT_GT(le, previous_le) << f.name;
        EXPECT_GE(b->value, previous_count) << f.name;
        previous_le = le;
        previous_count = b->value;
      }
      EXPECT_EQ(*buckets.back()->label("le"), "+Inf");
      ASSERT_TRUE(counts.contains(key));
      EXPECT_EQ(buckets.back()->value, counts[key]);
    }
  }
}

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
    // the last 1/64 below it.
    const auto ns = static_cast<std::uint64_t>(std::llround(kDefaultLe[i] * 1e9));
    const auto at_or_below = [&](std::uint64_t x) {
      return static_cast<double>(std::upper_bound(values.begin(), values.end(), x) -
                                 values.begin());
    };
    EXPECT_EQ(b.value, static_cast<double>(snap.count_at_or_below(ns)));
    EXPECT_LE(b.value, at_or_below(ns));
    EXPECT_GE(b.value, at_or_below(ns - ns / 64 - 1));
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
  // 3e-8 s * 1e9 is 29.999999999999996 in binary; the boundary still holds a 30 ns value.
  // (Below 128 ns every value is its own bucket, so the count is exact.)
  const double le[] = {3e-8, 1e-7, 1.27e-7};
  PrometheusText text;
  text.histogram("h", "", {}, snapshot_of({30, 31, 100, 101, 127, 128}), le);
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

}  // namespace
}  // namespace ember::detail
