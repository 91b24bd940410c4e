// metrics_text_test.cpp — tests src/observe/metrics_text.cpp: snapshots built by hand are
// rendered and parsed back with the strict parser of prometheus_parse.hpp; every series of every
// family is compared with its exact expected value (histogram buckets against a brute-force
// count), HELP texts name their Lambda metric, label values round-trip, and — where the build
// found one — promtool (`promtool check metrics`, parser and linter) accepts the text.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ember/observe.hpp"
#include "observe/histogram.hpp"
#include "prometheus_parse.hpp"  // this directory

#ifndef EMBER_PROMTOOL
#define EMBER_PROMTOOL ""
#endif

namespace ember {
namespace {

using prometheus_parse::expect_histograms_well_formed;
using prometheus_parse::Exposition;
using prometheus_parse::parse;
using prometheus_parse::parse_value;
using LabelPairs = std::vector<std::pair<std::string, std::string>>;

// The bounds metrics_text documents, in seconds: written out here so a change shows.
constexpr double kBounds[] = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                              1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,
                              1,    2.5,    5,    10,   30,     60,   300,  900};

// Values whose bucket counts are exact: none lies within 1/32 below a bound, where the
// histogram's bucket may straddle the bound (Histogram::count_at_or_below).
void expect_clear_of_bounds(const std::vector<std::uint64_t>& values) {
  for (std::uint64_t v : values) {
    for (double le : kBounds) {
      const auto b = static_cast<std::uint64_t>(std::llround(le * 1e9));
      ASSERT_FALSE(v <= b && v > b - b / 32) << v << " ns is too close below " << le << " s";
    }
  }
}

Histogram histogram_of(const std::vector<std::uint64_t>& values) {
  auto shard = std::make_unique<detail::HistogramShard>();
  for (std::uint64_t v : values) shard->record(v);
  return detail::to_public(shard->snapshot());
}

// A series as a comparable key: name{labels sorted by name}, le as the number it reads as.
std::string key_of(std::string_view name, LabelPairs labels) {
  std::sort(labels.begin(), labels.end());
  std::string key(name);
  key += '{';
  for (const auto& [k, v] : labels) {
    std::string value = v;
    if (k == "le") {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", *parse_value(v));
      value = buf;
    }
    key += k + "=" + value + ";";
  }
  key += '}';
  return key;
}

std::string le_text(double le) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", le);
  return buf;
}

// Every sample of a parsed exposition by key; a key twice is a failure.
std::map<std::string, double> values_of(const Exposition& e) {
  std::map<std::string, double> out;
  for (const auto& f : e.families) {
    for (const auto& s : f.samples) {
      const bool fresh = out.emplace(key_of(s.name, s.labels), s.value).second;
      EXPECT_TRUE(fresh) << "series twice: " << key_of(s.name, s.labels);
    }
  }
  return out;
}

// The expected text, series by series.
class Expected {
 public:
  void add(std::string_view name, LabelPairs labels, double value) {
    values_[key_of(name, std::move(labels))] = value;
  }
  // Brute force: buckets count the values <= le (exact for values clear of the bounds).
  void add_histogram(std::string_view name, const std::string& function,
                     const std::vector<std::uint64_t>& values) {
    const std::string base(name);
    for (double le : kBounds) {
      double n = 0;
      for (std::uint64_t v : values) n += static_cast<double>(v) <= le * 1e9 ? 1 : 0;
      values_[key_of(base + "_bucket", {{"function", function}, {"le", le_text(le)}})] = n;
    }
    const auto count = static_cast<double>(values.size());
    values_[key_of(base + "_bucket", {{"function", function}, {"le", "+Inf"}})] = count;
    values_[key_of(base + "_count", {{"function", function}})] = count;
    const std::uint64_t sum = std::accumulate(values.begin(), values.end(), std::uint64_t{0});
    values_[key_of(base + "_sum", {{"function", function}})] = static_cast<double>(sum) / 1e9;
  }
  [[nodiscard]] const std::map<std::string, double>& values() const { return values_; }

 private:
  std::map<std::string, double> values_;
};

// Two functions: one with reserved concurrency and everything non-zero, one in the shared pool
// with an empty init-duration histogram.
struct Fixture {
  std::vector<std::uint64_t> quote_duration = {
      700,       3'000,     40'000,    40'000,      180'000,       2'000'000,
      2'000'000, 2'000'000, 7'000'000, 120'000'000, 1'200'000'000, 1'200'000'000'000};
  std::vector<std::uint64_t> quote_init = {150'000'000, 450'000'000};
  std::vector<std::uint64_t> quote_age = {8'000, 30'000'000};
  std::vector<std::uint64_t> resize_duration = {55'000, 300'000'000};
  std::vector<std::uint64_t> resize_age = {1'500};
  MetricsSnapshot snapshot;

  Fixture() {
    FunctionMetrics q;
    q.function = "pricing.quote";
    q.invocations = 120;
    q.errors = 7;
    q.throttles_by_reason = {4, 0, 2, 5};
    q.timeouts = 3;
    q.overruns = 1;
    q.running_overruns = 1;
    q.duration = histogram_of(quote_duration);
    q.concurrent_executions = 3;
    q.concurrent_executions_max = 6;
    q.reserved_concurrency = 8;
    q.cold_starts = 2;
    q.init_duration = histogram_of(quote_init);
    q.provisioned_invocations = 50;
    q.provisioned_spillover_invocations = 5;
    q.max_memory_used_bytes = 3 << 20;
    q.async_queue_depth = 4;
    q.async_event_age = histogram_of(quote_age);
    q.async_events_dropped = 2;
    q.dead_letter_errors = 1;
    q.destination_delivery_failures = 3;

    FunctionMetrics r;
    r.function = "resize";
    r.invocations = 9;
    r.errors = 1;
    r.throttles_by_reason = {0, 11, 0, 0};
    r.duration = histogram_of(resize_duration);
    r.concurrent_executions = 2;
    r.async_event_age = histogram_of(resize_age);
    r.async_queue_depth = 0;

    snapshot.functions = {q, r};
    snapshot.total.function = "";
    snapshot.total.invocations = 129;  // not printed: sum() across functions gives it
    snapshot.total.concurrent_executions = 5;
    snapshot.total.concurrent_executions_max = 9;
    snapshot.unreserved_concurrent_executions = 2;
    snapshot.unreserved_concurrent_executions_max = 11;
    snapshot.unreserved_concurrency_limit = 92;
    snapshot.concurrency_limit = 100;
    snapshot.logs_dropped = 13;
    snapshot.spans_dropped = 21;
  }
};

// The families metrics_text prints, in order, with their type, the Lambda name their HELP must
// carry, and whether they are engine-wide (no labels) rather than per function.
struct FamilySpec {
  std::string_view name;
  std::string_view type;
  std::string_view lambda;
  bool engine = false;
};
constexpr FamilySpec kFamilies[] = {
    {"ember_invocations_total", "counter", "(Lambda: Invocations)"},
    {"ember_errors_total", "counter", "(Lambda: Errors)"},
    {"ember_throttles_total", "counter", "(Lambda: Throttles)"},
    {"ember_timeouts_total", "counter", "(Lambda: none; counted in Errors"},
    {"ember_overruns_total", "counter", "(Lambda: none"},
    {"ember_running_overruns", "gauge", "(Lambda: none)"},
    {"ember_duration_seconds", "histogram", "(Lambda: Duration,"},
    {"ember_concurrent_executions", "gauge", "(Lambda: ConcurrentExecutions by FunctionName)"},
    {"ember_concurrent_executions_max", "gauge",
     "(Lambda: ConcurrentExecutions by FunctionName, Maximum"},
    {"ember_reserved_concurrency", "gauge", "ReservedConcurrentExecutions)"},
    {"ember_cold_starts_total", "counter", "(Lambda: none; the REPORT lines"},
    {"ember_init_duration_seconds", "histogram", "(Lambda: the REPORT line's Init Duration)"},
    {"ember_provisioned_concurrency_invocations_total", "counter",
     "(Lambda: ProvisionedConcurrencyInvocations)"},
    {"ember_provisioned_concurrency_spillover_invocations_total", "counter",
     "(Lambda: ProvisionedConcurrencySpilloverInvocations)"},
    {"ember_max_memory_used_bytes", "gauge", "(Lambda: the REPORT line's Max Memory Used"},
    {"ember_async_queue_depth", "gauge", "(Lambda: none;"},
    {"ember_async_event_age_seconds", "histogram", "(Lambda: AsyncEventAge,"},
    {"ember_async_events_dropped_total", "counter", "(Lambda: AsyncEventsDropped)"},
    {"ember_dead_letter_errors_total", "counter", "(Lambda: DeadLetterErrors)"},
    {"ember_destination_delivery_failures_total", "counter",
     "(Lambda: DestinationDeliveryFailures)"},
    {"ember_engine_concurrent_executions", "gauge", "(Lambda: ConcurrentExecutions without", true},
    {"ember_engine_concurrent_executions_max", "gauge", "(Lambda: ConcurrentExecutions without",
     true},
    {"ember_unreserved_concurrent_executions", "gauge", "(Lambda: UnreservedConcurrentExecutions)",
     true},
    {"ember_unreserved_concurrent_executions_max", "gauge",
     "(Lambda: UnreservedConcurrentExecutions, Maximum", true},
    {"ember_unreserved_concurrency_limit", "gauge",
     "(Lambda: the account's UnreservedConcurrentExecutions limit", true},
    {"ember_concurrency_limit", "gauge", "(Lambda: the account's ConcurrentExecutions limit", true},
    {"ember_logs_dropped_total", "counter", "(Lambda: the Telemetry API's platform.logsDropped",
     true},
    {"ember_spans_dropped_total", "counter", "(Lambda: none)", true},
};

// Runs promtool's parser and linter over `text`; "" when it accepts it, else what it said.
std::string promtool_complaints(const std::string& text) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() /
      ("ember_metrics_text_test_" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream out(file, std::ios::binary);
    out << text;
  }
  const std::string command =
      "'" + std::string(EMBER_PROMTOOL) + "' check metrics < '" + file.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = ::pclose(pipe);
  std::filesystem::remove(file);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return "exit status " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ": " +
         output;
}

// ---- Tests ------------------------------------------------------------------------------------

TEST(MetricsTextTest, EverySeriesHasItsExactValue) {
  const Fixture fx;
  for (const auto* v :
       {&fx.quote_duration, &fx.quote_init, &fx.quote_age, &fx.resize_duration, &fx.resize_age}) {
    expect_clear_of_bounds(*v);
  }
  const std::string text = metrics_text(fx.snapshot);
  const Exposition e = parse(text);
  expect_histograms_well_formed(e);

  Expected want;
  const auto both = [&](std::string_view name, double quote, double resize) {
    want.add(name, {{"function", "pricing.quote"}}, quote);
    want.add(name, {{"function", "resize"}}, resize);
  };
  both("ember_invocations_total", 120, 9);
  both("ember_errors_total", 7, 1);
  const std::pair<const char*, double> throttles[] = {{"reserved_concurrency", 4},
                                                      {"unreserved_concurrency", 0},
                                                      {"queue_full", 2},
                                                      {"scale_up", 5}};
  for (const auto& [reason, n] : throttles) {
    want.add("ember_throttles_total", {{"function", "pricing.quote"}, {"reason", reason}}, n);
  }
  want.add("ember_throttles_total", {{"function", "resize"}, {"reason", "reserved_concurrency"}},
           0);
  want.add("ember_throttles_total", {{"function", "resize"}, {"reason", "unreserved_concurrency"}},
           11);
  want.add("ember_throttles_total", {{"function", "resize"}, {"reason", "queue_full"}}, 0);
  want.add("ember_throttles_total", {{"function", "resize"}, {"reason", "scale_up"}}, 0);
  both("ember_timeouts_total", 3, 0);
  both("ember_overruns_total", 1, 0);
  both("ember_running_overruns", 1, 0);
  want.add_histogram("ember_duration_seconds", "pricing.quote", fx.quote_duration);
  want.add_histogram("ember_duration_seconds", "resize", fx.resize_duration);
  both("ember_concurrent_executions", 3, 2);
  // Only the reserved function has these two.
  want.add("ember_concurrent_executions_max", {{"function", "pricing.quote"}}, 6);
  want.add("ember_reserved_concurrency", {{"function", "pricing.quote"}}, 8);
  both("ember_cold_starts_total", 2, 0);
  want.add_histogram("ember_init_duration_seconds", "pricing.quote", fx.quote_init);
  want.add_histogram("ember_init_duration_seconds", "resize", {});
  both("ember_provisioned_concurrency_invocations_total", 50, 0);
  both("ember_provisioned_concurrency_spillover_invocations_total", 5, 0);
  both("ember_max_memory_used_bytes", 3 << 20, 0);
  both("ember_async_queue_depth", 4, 0);
  want.add_histogram("ember_async_event_age_seconds", "pricing.quote", fx.quote_age);
  want.add_histogram("ember_async_event_age_seconds", "resize", fx.resize_age);
  both("ember_async_events_dropped_total", 2, 0);
  both("ember_dead_letter_errors_total", 1, 0);
  both("ember_destination_delivery_failures_total", 3, 0);
  want.add("ember_engine_concurrent_executions", {}, 5);
  want.add("ember_engine_concurrent_executions_max", {}, 9);
  want.add("ember_unreserved_concurrent_executions", {}, 2);
  want.add("ember_unreserved_concurrent_executions_max", {}, 11);
  want.add("ember_unreserved_concurrency_limit", {}, 92);
  want.add("ember_concurrency_limit", {}, 100);
  want.add("ember_logs_dropped_total", {}, 13);
  want.add("ember_spans_dropped_total", {}, 21);

  const std::map<std::string, double> got = values_of(e);
  // Compared one by one for readable failures, then as wholes: nothing missing, nothing extra.
  for (const auto& [key, value] : want.values()) {
    const auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << "missing " << key;
    } else {
      EXPECT_EQ(it->second, value) << key;
    }
  }
  for (const auto& [key, value] : got) {
    EXPECT_TRUE(want.values().contains(key)) << "unexpected " << key << " " << value;
  }
  EXPECT_EQ(got.size(), want.values().size());
  // 19 function families (13 scalars with a series per function, two with one series, the
  // throttles with six, 3 histograms of 29 lines per function) and 8 engine families:
  // 14 * 2 + 2 + 8 + 3 * 2 * 29 + 8 = 220 samples.
  EXPECT_EQ(got.size(), 220u);
}

TEST(MetricsTextTest, FamiliesComeInTheDocumentedOrderWithLambdaNamesInTheirHelp) {
  const Fixture fx;
  const Exposition e = parse(metrics_text(fx.snapshot));
  ASSERT_EQ(e.families.size(), std::size(kFamilies));
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    const auto& f = e.families[i];
    EXPECT_EQ(f.name, kFamilies[i].name) << i;
    EXPECT_EQ(f.type, kFamilies[i].type) << f.name;
    EXPECT_NE(f.help.find(kFamilies[i].lambda), std::string::npos)
        << f.name << ": HELP \"" << f.help << "\" does not say " << kFamilies[i].lambda;
    // Counters end in _total and nothing else does (promtool's lint, kept without it too).
    EXPECT_EQ(f.name.ends_with("_total"), f.type == "counter") << f.name;
  }
  // Histograms tell how to read their buckets.
  EXPECT_NE(e.family("ember_duration_seconds")->help.find("within 1/32 below le"),
            std::string::npos);
}

TEST(MetricsTextTest, PerFunctionSeriesCarryTheFunctionLabelAndEngineSeriesNone) {
  const Fixture fx;
  const Exposition e = parse(metrics_text(fx.snapshot));
  ASSERT_EQ(e.families.size(), std::size(kFamilies));
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    const auto& f = e.families[i];
    ASSERT_EQ(f.name, kFamilies[i].name);
    const bool engine = kFamilies[i].engine;
    for (const auto& s : f.samples) {
      if (engine) {
        EXPECT_TRUE(s.labels.empty()) << s.name;
        continue;
      }
      ASSERT_FALSE(s.labels.empty()) << s.name;
      EXPECT_EQ(s.labels.front().first, "function") << s.name;
      const std::size_t extra = f.name == "ember_throttles_total" ? 1 : 0;
      const std::size_t le = s.name.ends_with("_bucket") ? 1 : 0;
      EXPECT_EQ(s.labels.size(), 1 + extra + le) << s.name;
    }
  }
}

TEST(MetricsTextTest, OptionalFiguresOnlyWhereSet) {
  Fixture fx;
  fx.snapshot.functions[0].concurrent_executions_max.reset();
  fx.snapshot.functions[0].reserved_concurrency.reset();
  fx.snapshot.total.concurrent_executions_max.reset();
  const Exposition e = parse(metrics_text(fx.snapshot));
  EXPECT_EQ(e.family("ember_concurrent_executions_max"), nullptr);
  EXPECT_EQ(e.family("ember_reserved_concurrency"), nullptr);
  EXPECT_EQ(e.family("ember_engine_concurrent_executions_max"), nullptr);
  EXPECT_EQ(e.families.size(), std::size(kFamilies) - 3);
  // A reserved function listed second still gets its series (and the family its HELP/TYPE).
  fx.snapshot.functions[1].reserved_concurrency = 0;
  const Exposition e2 = parse(metrics_text(fx.snapshot));
  const auto* reserved = e2.family("ember_reserved_concurrency");
  ASSERT_NE(reserved, nullptr);
  ASSERT_EQ(reserved->samples.size(), 1u);
  EXPECT_EQ(reserved->samples[0].label("function"), "resize");
  EXPECT_EQ(reserved->samples[0].value, 0);
}

TEST(MetricsTextTest, EmptyHistogramsAreStillPrinted) {
  Fixture fx;
  fx.snapshot.functions[1].duration = {};
  const Exposition e = parse(metrics_text(fx.snapshot));
  expect_histograms_well_formed(e);
  const auto* d = e.family("ember_duration_seconds");
  ASSERT_NE(d, nullptr);
  int resize = 0;
  for (const auto& s : d->samples) {
    if (s.label("function") != "resize") continue;
    ++resize;
    EXPECT_EQ(s.value, 0) << s.name;
  }
  EXPECT_EQ(resize, static_cast<int>(std::size(kBounds)) + 3);  // buckets, +Inf, _sum, _count
}

TEST(MetricsTextTest, BucketsAreLowerBoundsWithinOneThirtySecondOfTheirBound) {
  // 999'500 ns is <= 1 ms but shares its histogram bucket, [999'424, 1'015'808), with values
  // above 1 ms: le="0.001" leaves it out, le="0.0025" has it. _count and _sum stay exact.
  FunctionMetrics f;
  f.function = "edge";
  f.duration = histogram_of({968'000, 999'500, 1'000'000, 1'015'807, 1'015'808});
  MetricsSnapshot s;
  s.functions = {f};
  const Exposition e = parse(metrics_text(s));
  expect_histograms_well_formed(e);
  const std::map<std::string, double> got = values_of(e);
  const auto bucket = [&](double le) {
    return got.at(
        key_of("ember_duration_seconds_bucket", {{"function", "edge"}, {"le", le_text(le)}}));
  };
  EXPECT_EQ(bucket(5e-4), 0);
  EXPECT_EQ(bucket(1e-3), 1);  // only 968'000: the true count is 3
  EXPECT_EQ(bucket(2.5e-3), 5);
  EXPECT_EQ(got.at(key_of("ember_duration_seconds_count", {{"function", "edge"}})), 5);
  EXPECT_EQ(got.at(key_of("ember_duration_seconds_sum", {{"function", "edge"}})),
            static_cast<double>(968'000 + 999'500 + 1'000'000 + 1'015'807 + 1'015'808) / 1e9);
}

TEST(MetricsTextTest, NoFunctionsLeavesTheEngineFamilies) {
  MetricsSnapshot s;
  s.concurrency_limit = 1000;
  s.unreserved_concurrency_limit = 1000;
  const std::string text = metrics_text(s);
  const Exposition e = parse(text);
  ASSERT_EQ(e.families.size(), 7u);  // no engine max: total.concurrent_executions_max unset
  EXPECT_EQ(e.families.front().name, "ember_engine_concurrent_executions");
  EXPECT_EQ(e.family("ember_concurrency_limit")->samples[0].value, 1000);
}

TEST(MetricsTextTest, CountersPrintExactlyPastTwoToTheFiftyThree) {
  Fixture fx;
  fx.snapshot.logs_dropped = std::numeric_limits<std::uint64_t>::max();
  fx.snapshot.functions[0].invocations = (std::uint64_t{1} << 53) + 1;
  const std::string text = metrics_text(fx.snapshot);
  EXPECT_NE(text.find("\nember_logs_dropped_total 18446744073709551615\n"), std::string::npos);
  EXPECT_NE(text.find("\nember_invocations_total{function=\"pricing.quote\"} 9007199254740993\n"),
            std::string::npos);
}

TEST(MetricsTextTest, FunctionNamesRoundTripThroughLabelEscaping) {
  // Registered names are [A-Za-z0-9._-], but the text must stay valid for any snapshot.
  const std::vector<std::string> names = {"say \"hi\"", "back\\slash", "two\nlines", "{x=\"y\"}",
                                          "caf\xC3\xA9"};
  MetricsSnapshot s;
  for (const std::string& name : names) {
    FunctionMetrics f;
    f.function = name;
    f.invocations = name.size();
    f.duration = histogram_of({5'000});
    s.functions.push_back(f);
  }
  const Exposition e = parse(metrics_text(s));
  expect_histograms_well_formed(e);
  const auto* inv = e.family("ember_invocations_total");
  ASSERT_NE(inv, nullptr);
  ASSERT_EQ(inv->samples.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(inv->samples[i].label("function"), names[i]);
    EXPECT_EQ(inv->samples[i].value, static_cast<double>(names[i].size()));
  }
  const auto* throttles = e.family("ember_throttles_total");
  ASSERT_NE(throttles, nullptr);
  EXPECT_EQ(throttles->samples.size(), names.size() * kThrottleReasons);
  EXPECT_EQ(throttles->samples[kThrottleReasons].label("function"), names[1]);
}

TEST(MetricsTextTest, ADuplicatedFunctionKeepsItsFirstSeriesAndTheTextValid) {
  Fixture fx;
  fx.snapshot.functions.push_back(fx.snapshot.functions[0]);
  fx.snapshot.functions.back().invocations = 999;
  const Exposition e = parse(metrics_text(fx.snapshot));
  expect_histograms_well_formed(e);
  const auto* inv = e.family("ember_invocations_total");
  ASSERT_NE(inv, nullptr);
  ASSERT_EQ(inv->samples.size(), 2u);
  EXPECT_EQ(inv->samples[0].value, 120);
}

TEST(MetricsTextTest, ThrottleReasonsHaveTheirLabelNames) {
  EXPECT_EQ(throttle_reason_name(ThrottleReason::kReservedConcurrency), "reserved_concurrency");
  EXPECT_EQ(throttle_reason_name(ThrottleReason::kUnreservedConcurrency), "unreserved_concurrency");
  EXPECT_EQ(throttle_reason_name(ThrottleReason::kQueueFull), "queue_full");
  EXPECT_EQ(throttle_reason_name(ThrottleReason::kScaleUp), "scale_up");
  EXPECT_EQ(throttle_reason_name(static_cast<ThrottleReason>(kThrottleReasons)), "unknown");
}

TEST(MetricsTextTest, PromtoolAcceptsTheText) {
  const std::string_view promtool = EMBER_PROMTOOL;
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not found at configure time (scripts/deps --all installs it)";
  }
  const Fixture fx;
  EXPECT_EQ(promtool_complaints(metrics_text(fx.snapshot)), "");
  MetricsSnapshot empty;
  EXPECT_EQ(promtool_complaints(metrics_text(empty)), "");
  FunctionMetrics odd;
  odd.function = "quote \" back\\slash \n newline \xFF bad byte";
  MetricsSnapshot escaped;
  escaped.functions = {odd};
  EXPECT_EQ(promtool_complaints(metrics_text(escaped)), "");
  // The check has teeth: promtool's linter refuses a counter without _total.
  EXPECT_NE(promtool_complaints("# HELP x_count X.\n# TYPE x_count counter\nx_count 1\n"), "");
}

}  // namespace
}  // namespace ember
