// observe.hpp — what an engine tells about itself: metrics, log lines, traces, lifecycle events.
//
// Metrics carry Lambda's names (Invocations, Errors, Throttles, Duration, ConcurrentExecutions,
// ...) so that people who run Lambda recognise them. Take a snapshot, or render Prometheus text
// and serve it yourself:
//
//   ember::MetricsSnapshot m = engine.metrics();
//   const ember::FunctionMetrics* q = m.function("pricing.quote");
//   double p99_us = q->duration.quantile(0.99) / 1e3;
//   std::string body = ember::metrics_text(engine);   // text/plain; version=0.0.4
//
// Log lines (ember::LogRecord, options.hpp) are Lambda-shaped: START, END and REPORT around an
// invocation of a function whose FunctionConfig::report_logs is set, handler lines tagged with
// the request id, "Task timed out after 3.00 seconds" on a timeout. format_log_line() renders a
// record as Lambda's text or JSON format; the default sink writes that to stderr.
//
// Traces: with EngineOptions::trace_sample_rate > 0, sampled invocations record a Span (nested
// invokes and async invokes made by a handler are children of its span, in the same trace).
// Engine::take_spans() hands the recorded spans over; chrome_trace_json() renders them as
// Chrome trace-event JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open.
//
// Lifecycle observers (Lambda's Telemetry API, in-process): Engine::subscribe() a
// LifecycleObserver to hear of inits, invocations, shutdown and dropped log lines.
#pragma once

#include <absl/time/time.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"

namespace ember {

class Engine;

// ---- Metrics ----

// A duration histogram: log-linear buckets of nanoseconds, each at most 1/32 as wide as its lower
// edge, so a quantile (reported as its bucket's midpoint) is within 1.6% of the true value.
struct HistogramBucket {
  std::uint64_t lower_ns = 0;  // the smallest value in the bucket
  std::uint64_t upper_ns = 0;  // one past the largest (UINT64_MAX for the overflow bucket)
  std::uint64_t count = 0;
};

struct EMBER_EXPORT Histogram {
  std::uint64_t count = 0;               // values recorded; always the sum of the buckets' counts
  std::uint64_t sum_ns = 0;              // their sum
  std::uint64_t max_ns = 0;              // the largest, exactly
  std::vector<HistogramBucket> buckets;  // the non-empty buckets, ascending

  // Nearest-rank quantile (q in [0, 1]) in nanoseconds, as its bucket's midpoint, never above
  // max_ns; quantile(1) is max_ns. 0 when empty.
  [[nodiscard]] double quantile(double q) const noexcept;
  // Values recorded that are <= ns, counting whole buckets only (a lower bound; exact when ns
  // is the last value of a bucket).
  [[nodiscard]] std::uint64_t count_at_or_below(std::uint64_t ns) const noexcept;
  [[nodiscard]] double mean_ns() const noexcept {
    return count == 0 ? 0.0 : static_cast<double>(sum_ns) / static_cast<double>(count);
  }
};

// Why an invoke was throttled (Lambda counts all of them as Throttles).
enum class ThrottleReason : std::uint8_t {
  kReservedConcurrency,    // the function's own reserved concurrency is in use
  kUnreservedConcurrency,  // the engine's unreserved pool is in use (concurrency_limit)
  kQueueFull,              // an async invoke found the function's queue full
  kScaleUp,  // no idle instance, and max_new_instances_per_second allows no new one now
};
inline constexpr int kThrottleReasons = 4;
[[nodiscard]] EMBER_EXPORT std::string_view throttle_reason_name(ThrottleReason reason) noexcept;

// One function's metrics (all its versions together), or the engine's total.
// Counters count from the engine's start (or the function's first registration) and never go
// back; gauges are the value at the snapshot.
struct FunctionMetrics {
  std::string function;  // "" for the engine total
  // Invocations admitted (counted as they start, so those running now are in); throttled
  // invokes are not counted, as in Lambda.
  std::uint64_t invocations = 0;
  // Invocations that ended in an error: the handler's own, an exception, a timeout.
  std::uint64_t errors = 0;
  std::array<std::uint64_t, kThrottleReasons> throttles_by_reason{};  // by ThrottleReason
  std::uint64_t timeouts = 0;  // invocations that passed their deadline (a subset of errors)
  // Handlers that ran past their deadline without reaching a suspension point and returned
  // late (overruns), and those past it still running now.
  std::uint64_t overruns = 0;
  std::int64_t running_overruns = 0;
  // Handler run time of every invocation that ran: from admission (inline) or from a worker
  // picking it up (pool, async) to the handler's return.
  Histogram duration;
  // Invocations executing now. For a function with reserved concurrency also the most ever at
  // once (its own gate keeps it); for one in the shared pool see
  // MetricsSnapshot::unreserved_concurrent_executions_max, as Lambda reports the high-water
  // per function only for functions with their own limit. The engine total has no high-water:
  // keeping one would put a shared counter on every invoke.
  std::int64_t concurrent_executions = 0;
  std::optional<std::int64_t> concurrent_executions_max;
  std::optional<int> reserved_concurrency;
  // Cold starts: invocations that made a new instance (init, or a clone of a snapshot), and
  // the first invocation of a freshly loaded plugin version (it reports the init the load
  // ran); init_duration has one sample per cold start (0 for a plugin function without init).
  std::uint64_t cold_starts = 0;
  Histogram init_duration;
  // Max Memory Used: the most a measured invocation used, in bytes: its memory resource's peak
  // (Context::memory()) plus its fiber stack's high-water mark. Measured only for invocations
  // that write REPORT lines or are seen by invoke observers; 0 if none was.
  std::int64_t max_memory_used_bytes = 0;
  // Provisioned concurrency (execution environments): invocations served by a provisioned
  // environment, and those that spilled over to on-demand ones.
  std::uint64_t provisioned_invocations = 0;
  std::uint64_t provisioned_spillover_invocations = 0;
  // Async invokes: waiting for a slot now, how long each waited before it started (AsyncEventAge),
  // and those dropped without running (max queue wait passed, or shutdown).
  std::int64_t async_queue_depth = 0;
  Histogram async_event_age;
  std::uint64_t async_events_dropped = 0;
  // Event sources: events that could not be written to a dead-letter target, and results that
  // could not be delivered to a destination.
  std::uint64_t dead_letter_errors = 0;
  std::uint64_t destination_delivery_failures = 0;

  [[nodiscard]] std::uint64_t throttles() const noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t t : throttles_by_reason) n += t;
    return n;
  }
  [[nodiscard]] std::uint64_t throttles(ThrottleReason r) const noexcept {
    return throttles_by_reason[static_cast<int>(r)];
  }
};

struct EMBER_EXPORT MetricsSnapshot {
  absl::Time taken;       // on the engine's clock
  bool enabled = true;    // EngineOptions::metrics: false leaves counters and histograms at zero
  FunctionMetrics total;  // the sum over all functions, gauges included
  std::vector<FunctionMetrics> functions;  // every function ever registered or loaded, by name
  // The unreserved pool: invocations using it now, the most ever at once, its size now.
  std::int64_t unreserved_concurrent_executions = 0;
  std::int64_t unreserved_concurrent_executions_max = 0;
  std::int64_t unreserved_concurrency_limit = 0;
  std::int64_t concurrency_limit = 0;  // EngineOptions::concurrency_limit
  std::uint64_t logs_dropped = 0;      // log lines the sink threw on, events an observer threw on
  std::uint64_t spans_dropped = 0;     // sampled spans lost to a full span buffer

  // The metrics of `function`, or nullptr.
  [[nodiscard]] const FunctionMetrics* function(std::string_view name) const noexcept;
};

// Prometheus text exposition format 0.0.4 of an engine's metrics (see metrics_text below).
[[nodiscard]] EMBER_EXPORT std::string metrics_text(const Engine& engine);
// The same for a snapshot already taken. Families (all prefixed "ember_"): invocations_total,
// errors_total, throttles_total{reason}, timeouts_total, overruns_total, running_overruns,
// duration_seconds (histogram), concurrent_executions, concurrent_executions_max,
// reserved_concurrency, cold_starts_total, init_duration_seconds (histogram),
// provisioned_concurrency_invocations_total, provisioned_concurrency_spillover_invocations_total,
// async_queue_depth, async_event_age_seconds (histogram), async_events_dropped_total,
// dead_letter_errors_total, destination_delivery_failures_total — each with a
// function="<name>" label (throttles_total also reason="reserved_concurrency" |
// "unreserved_concurrency" | "queue_full"; sum() over functions for engine totals) — plus
// engine_concurrent_executions, unreserved_concurrent_executions(_max),
// unreserved_concurrency_limit, concurrency_limit, logs_dropped_total, spans_dropped_total.
// A histogram's _bucket counts are lower bounds: a bucket counts once wholly at or below `le`.
[[nodiscard]] EMBER_EXPORT std::string metrics_text(const MetricsSnapshot& snapshot);

// ---- Log lines ----

// Renders a record as one line (no trailing newline):
//  text, handler/engine lines: "2026-11-27T21:00:00.123Z\t<request id>\tINFO\t<message>"
//  text, platform lines:       "START RequestId: <id> Version: $LATEST",
//                              "END RequestId: <id>",
//                              "REPORT RequestId: <id>\tDuration: 0.12 ms\tBilled Duration: 1 ms\t
//                               Memory Size: 128 MB\tMax Memory Used: 3 MB[\tInit Duration: 0.40
//                               ms]"
//                              (one line; tab-separated),
//  json: {"time":...,"type":"platform.start","record":{"requestId":...,"version":...}},
//        platform.end, platform.report (record.metrics: durationMs, billedDurationMs,
//        memorySizeMB, maxMemoryUsedMB[, initDurationMs]); handler and engine lines
//        {"timestamp":...,"level":"INFO","requestId":...,"function":...,"message":...}.
[[nodiscard]] EMBER_EXPORT std::string format_log_line(const LogRecord& record, LogFormat format);

// ---- Traces ----

// One invocation of a sampled trace. Times on the engine's clock, in nanoseconds.
struct Span {
  TraceId trace_id;
  std::uint64_t span_id = 0;
  std::uint64_t parent_span_id = 0;  // 0 for a root
  std::string function;
  std::string version;
  std::string request_id;
  std::int64_t start_ns = 0;
  std::int64_t duration_ns = 0;
  std::optional<ErrorCode> error;  // empty: success
  std::uint32_t thread = 0;        // an engine-local number of the thread that ran it
  std::string thread_name;         // "worker 0", "caller 1", ...
  std::uint64_t fiber = 0;         // the fiber that ran it
  int attempt = 0;                 // an event's retry number (0: first attempt)
};

// Chrome trace-event JSON ({"traceEvents":[...]}): one track (tid) per thread, a complete
// event ("ph":"X") per span with its ids, function, version, request id, fiber and outcome as
// args, and flow arrows from parent to child spans on other threads.
[[nodiscard]] EMBER_EXPORT std::string chrome_trace_json(const std::vector<Span>& spans);

// ---- Lifecycle observers ----

enum class LifecycleEventType : std::uint8_t {
  kInitStart,     // a version's init begins (function, version)
  kInitReport,    // it ended (duration, error if it failed)
  kInvokeStart,   // an invocation begins on its fiber (request id, version)
  kInvokeEnd,     // its handler returned (error if it failed)
  kInvokeReport,  // its figures (duration, billed, memory, init duration on a cold start)
  kShutdown,      // the engine shuts down (reason: "shutdown requested", "engine destroyed")
  kLogsDropped,   // log lines were lost (count, reason)
};

struct LifecycleEvent {
  LifecycleEventType type = LifecycleEventType::kInvokeStart;
  absl::Time time;  // on the engine's clock
  std::string_view function;
  std::string_view version;
  std::string_view request_id;
  std::int64_t duration_ns = 0;                  // kInitReport, kInvokeReport
  std::optional<std::int64_t> init_duration_ns;  // kInvokeReport of a cold start
  std::int64_t billed_duration_ms = 0;           // kInvokeReport
  int memory_size_mb = 0;                        // kInvokeReport
  int max_memory_used_mb = 0;                    // kInvokeReport
  const Error* error = nullptr;                  // kInitReport, kInvokeEnd, kInvokeReport: failed
  std::string_view reason;                       // kShutdown, kLogsDropped
  std::uint64_t count = 0;                       // kLogsDropped: lines lost
};

// Receives lifecycle events, synchronously, on the thread where they happen (a caller, a
// worker, the deploying thread). Must be thread-safe and quick; must not throw (a throw is
// caught and counted as a dropped event). Invoke events cost the invoke path only while some
// observer subscribed to them.
class LifecycleObserver {
 public:
  virtual ~LifecycleObserver() = default;
  virtual void on_event(const LifecycleEvent& event) = 0;
};

// Which events a subscription wants (bit i: LifecycleEventType i).
using LifecycleEventMask = std::uint32_t;
inline constexpr LifecycleEventMask kAllLifecycleEvents = 0x7f;
[[nodiscard]] constexpr LifecycleEventMask lifecycle_mask(LifecycleEventType t) noexcept {
  return LifecycleEventMask{1} << static_cast<int>(t);
}
[[nodiscard]] EMBER_EXPORT std::string_view lifecycle_event_name(LifecycleEventType t) noexcept;

}  // namespace ember
