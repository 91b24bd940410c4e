// metrics_text.cpp — metrics_text(const MetricsSnapshot&): an engine's metrics as Prometheus
// text exposition 0.0.4 (observe.hpp), and throttle_reason_name().
//
// Shape of the text, decided here:
//  - Every per-function family carries {function="<name>"} (throttles_total also reason=...),
//    one series per function. The engine total (MetricsSnapshot::total) is not printed as
//    series of those families: a series without the label would break the family's uniform
//    label set, and sum() across functions gives it. Its concurrency gauges, which a sum cannot
//    give (a max of a sum is not a sum of maxes), are families of their own:
//    ember_engine_concurrent_executions(_max).
//  - Engine-level figures (the unreserved pool, the limits, dropped logs and spans) have no
//    labels.
//  - Optional figures (concurrent_executions_max, reserved_concurrency) have a series only for
//    functions where they are set; everything else is always printed, zeros and empty
//    histograms included, so series do not come and go between scrapes.
//  - Families are printed in the order of observe.hpp's list (the engine's own concurrency
//    gauges first among the engine-level ones), functions in snapshot order.
//  - A snapshot taken with metrics off (enabled == false) prints the same families, its
//    counters and histograms at zero: the shape of the text does not depend on the option.
//  - Every HELP text names the Lambda metric (or setting) the family corresponds to, or says
//    there is none.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "ember/observe.hpp"
#include "observe/prometheus.hpp"

namespace ember {

namespace {

using detail::Labels;
using detail::PrometheusText;

// Bucket bounds of the duration histograms, in seconds: 1-2.5-5 steps from 1 us (a quick inline
// invocation) to 10 s, then 30 s, 1 min, 5 min and 15 min (Lambda's longest timeout). A bound
// falls on a bucket edge of the underlying histogram only by chance, so a `_bucket` count is a
// lower bound, short only of values within 1/32 below its le (Histogram::count_at_or_below);
// `_count`, `_sum` and the +Inf bucket are exact.
constexpr double kDurationBoundsSeconds[] = {
    1e-6,   2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
    2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1,    2.5,  5,      10,   30,   60,     300,  900};

constexpr std::string_view kDurationHelpTail =
    " Each _bucket counts only values wholly at or below its le, so it may miss values within "
    "1/32 below le; _count and _sum are exact.";

enum class Kind { kCounter, kGauge };

template <typename T>
inline constexpr bool kIsOptional = false;
template <typename T>
inline constexpr bool kIsOptional<std::optional<T>> = true;

// One series per function of a scalar family; `get` returns the value, or an optional that
// leaves the function out when empty.
template <typename Get>
void per_function(PrometheusText& text, const MetricsSnapshot& s, Kind kind, std::string_view name,
                  std::string_view help, Get get) {
  for (const FunctionMetrics& f : s.functions) {
    const auto value = get(f);
    const auto emit = [&](detail::SampleValue sample) {
      const Labels labels = {{"function", f.function}};
      if (kind == Kind::kCounter) {
        text.counter(name, help, labels, sample);
      } else {
        text.gauge(name, help, labels, sample);
      }
    };
    if constexpr (kIsOptional<std::remove_cv_t<decltype(value)>>) {
      if (value.has_value()) emit(*value);
    } else {
      emit(value);
    }
  }
}

void per_function_histogram(PrometheusText& text, const MetricsSnapshot& s, std::string_view name,
                            const std::string& help, Histogram FunctionMetrics::*histogram) {
  for (const FunctionMetrics& f : s.functions) {
    text.histogram(name, help, {{"function", f.function}}, f.*histogram, kDurationBoundsSeconds);
  }
}

std::string with_tail(std::string_view help) {
  std::string out(help);
  out.append(kDurationHelpTail);
  return out;
}

}  // namespace

std::string_view throttle_reason_name(ThrottleReason reason) noexcept {
  switch (reason) {
    case ThrottleReason::kReservedConcurrency:
      return "reserved_concurrency";
    case ThrottleReason::kUnreservedConcurrency:
      return "unreserved_concurrency";
    case ThrottleReason::kQueueFull:
      return "queue_full";
    case ThrottleReason::kScaleUp:
      return "scale_up";
  }
  return "unknown";  // not an enumerator: a value cast from an integer
}

std::string metrics_text(const MetricsSnapshot& s) {
  PrometheusText text;
  const auto counter = [&](std::string_view name, std::string_view help, auto get) {
    per_function(text, s, Kind::kCounter, name, help, get);
  };
  const auto gauge = [&](std::string_view name, std::string_view help, auto get) {
    per_function(text, s, Kind::kGauge, name, help, get);
  };

  counter("ember_invocations_total",
          "Invocations (Lambda: Invocations): invocations that ran, or were admitted and timed "
          "out before starting; throttled invokes are not counted.",
          [](const FunctionMetrics& f) { return f.invocations; });
  counter("ember_errors_total",
          "Errors (Lambda: Errors): invocations that ended in an error: the handler's own, an "
          "exception, or a timeout.",
          [](const FunctionMetrics& f) { return f.errors; });
  static constexpr std::string_view kThrottlesHelp =
      "Throttles (Lambda: Throttles): invokes refused, by reason: the function's reserved "
      "concurrency in use (reserved_concurrency), the engine's unreserved pool in use "
      "(unreserved_concurrency), the function's async queue full (queue_full), or no idle "
      "instance and the scale-up limit reached (scale_up).";
  for (const FunctionMetrics& f : s.functions) {
    for (int r = 0; r < kThrottleReasons; ++r) {
      const auto reason = static_cast<ThrottleReason>(r);
      text.counter("ember_throttles_total", kThrottlesHelp,
                   {{"function", f.function}, {"reason", throttle_reason_name(reason)}},
                   f.throttles(reason));
    }
  }
  counter("ember_timeouts_total",
          "Timeouts (Lambda: none; counted in Errors and logged as \"Task timed out\"): "
          "invocations that passed their deadline.",
          [](const FunctionMetrics& f) { return f.timeouts; });
  counter("ember_overruns_total",
          "Overruns (Lambda: none; Lambda stops such a handler): handlers that ran past their "
          "deadline without reaching a suspension point and returned late.",
          [](const FunctionMetrics& f) { return f.overruns; });
  gauge("ember_running_overruns",
        "Running overruns (Lambda: none): handlers past their deadline and still running now.",
        [](const FunctionMetrics& f) { return f.running_overruns; });
  per_function_histogram(
      text, s, "ember_duration_seconds",
      with_tail("Duration (Lambda: Duration, in milliseconds there): handler run time, from the "
                "fiber starting it to its return, of every invocation that ran, in seconds."),
      &FunctionMetrics::duration);
  gauge("ember_concurrent_executions",
        "Concurrent executions (Lambda: ConcurrentExecutions by FunctionName): invocations of "
        "the function executing now.",
        [](const FunctionMetrics& f) { return f.concurrent_executions; });
  gauge("ember_concurrent_executions_max",
        "Most concurrent executions (Lambda: ConcurrentExecutions by FunctionName, Maximum "
        "statistic): the most invocations of the function ever executing at once; only for "
        "functions with reserved concurrency.",
        [](const FunctionMetrics& f) { return f.concurrent_executions_max; });
  gauge("ember_reserved_concurrency",
        "Reserved concurrency (Lambda: the function's reserved concurrency setting, "
        "ReservedConcurrentExecutions): its own concurrency limit; only for functions that "
        "have one.",
        [](const FunctionMetrics& f) { return f.reserved_concurrency; });
  counter("ember_cold_starts_total",
          "Cold starts (Lambda: none; the REPORT lines that carry an Init Duration): "
          "invocations that made a new instance (init or snapshot clone), or were the first of "
          "a freshly loaded plugin version.",
          [](const FunctionMetrics& f) { return f.cold_starts; });
  per_function_histogram(text, s, "ember_init_duration_seconds",
                         with_tail("Init duration (Lambda: the REPORT line's Init Duration): how "
                                   "long each initialisation of a version took, in seconds."),
                         &FunctionMetrics::init_duration);
  counter("ember_provisioned_concurrency_invocations_total",
          "Provisioned concurrency invocations (Lambda: ProvisionedConcurrencyInvocations): "
          "invocations served by a provisioned execution environment.",
          [](const FunctionMetrics& f) { return f.provisioned_invocations; });
  counter("ember_provisioned_concurrency_spillover_invocations_total",
          "Provisioned concurrency spillover invocations (Lambda: "
          "ProvisionedConcurrencySpilloverInvocations): invocations that found every "
          "provisioned environment busy and ran on an on-demand one.",
          [](const FunctionMetrics& f) { return f.provisioned_spillover_invocations; });
  gauge("ember_max_memory_used_bytes",
        "Max memory used (Lambda: the REPORT line's Max Memory Used, in MB there): the most "
        "one measured invocation used, memory resource peak plus fiber stack high-water mark; "
        "measured only for invocations that write REPORT lines.",
        [](const FunctionMetrics& f) { return f.max_memory_used_bytes; });
  gauge("ember_async_queue_depth",
        "Async queue depth (Lambda: none; its event queue is not visible): async invokes "
        "waiting for a concurrency slot now.",
        [](const FunctionMetrics& f) { return f.async_queue_depth; });
  per_function_histogram(
      text, s, "ember_async_event_age_seconds",
      with_tail("Async event age (Lambda: AsyncEventAge, in milliseconds there): how long each "
                "async invoke waited before it started, in seconds."),
      &FunctionMetrics::async_event_age);
  counter("ember_async_events_dropped_total",
          "Async events dropped (Lambda: AsyncEventsDropped): async invokes dropped without "
          "running (their max queue wait passed, or the engine shut down).",
          [](const FunctionMetrics& f) { return f.async_events_dropped; });
  counter("ember_dead_letter_errors_total",
          "Dead-letter errors (Lambda: DeadLetterErrors): events that could not be written to "
          "a dead-letter target.",
          [](const FunctionMetrics& f) { return f.dead_letter_errors; });
  counter("ember_destination_delivery_failures_total",
          "Destination delivery failures (Lambda: DestinationDeliveryFailures): results that "
          "could not be delivered to a destination.",
          [](const FunctionMetrics& f) { return f.destination_delivery_failures; });

  // Engine-wide: no labels.
  text.gauge("ember_engine_concurrent_executions",
             "Engine concurrent executions (Lambda: ConcurrentExecutions without dimensions, "
             "the account's): invocations of every function executing now.",
             {}, s.total.concurrent_executions);
  if (s.total.concurrent_executions_max) {
    text.gauge("ember_engine_concurrent_executions_max",
               "Most engine concurrent executions (Lambda: ConcurrentExecutions without "
               "dimensions, Maximum statistic): the most invocations ever executing at once.",
               {}, *s.total.concurrent_executions_max);
  }
  text.gauge("ember_unreserved_concurrent_executions",
             "Unreserved concurrent executions (Lambda: UnreservedConcurrentExecutions): "
             "invocations of functions without reserved concurrency executing now.",
             {}, s.unreserved_concurrent_executions);
  text.gauge("ember_unreserved_concurrent_executions_max",
             "Most unreserved concurrent executions (Lambda: UnreservedConcurrentExecutions, "
             "Maximum statistic): the most invocations ever using the unreserved pool at once.",
             {}, s.unreserved_concurrent_executions_max);
  text.gauge("ember_unreserved_concurrency_limit",
             "Unreserved concurrency limit (Lambda: the account's UnreservedConcurrentExecutions "
             "limit, GetAccountSettings): the size of the unreserved pool now, the concurrency "
             "limit less what functions reserved.",
             {}, s.unreserved_concurrency_limit);
  text.gauge("ember_concurrency_limit",
             "Concurrency limit (Lambda: the account's ConcurrentExecutions limit, "
             "GetAccountSettings): EngineOptions::concurrency_limit.",
             {}, s.concurrency_limit);
  text.counter("ember_logs_dropped_total",
               "Logs dropped (Lambda: the Telemetry API's platform.logsDropped events): log "
               "lines lost because the log sink threw.",
               {}, s.logs_dropped);
  text.counter("ember_spans_dropped_total",
               "Spans dropped (Lambda: none): sampled trace spans lost to a full span buffer.", {},
               s.spans_dropped);
  // rejected() can only be non-zero for a snapshot with a function name twice (its second
  // series is left out); a snapshot taken from an engine never has one.
  return text.str();
}

}  // namespace ember
