// options.hpp — configuration structs: EngineOptions, FunctionConfig, InvokeOptions.
//
// Plain structs with a documented default on every field, validated once when applied
// (Engine construction, register_function, each invoke). Designated initialisers read well:
//
//   ember::Engine engine{{.workers = 2, .concurrency_limit = 500}};
//   engine.register_function("pricing.quote", {.timeout = absl::Milliseconds(50),
//                                              .reserved_concurrency = 8}, handler);
//   engine.invoke(fn, payload, {.dispatch = ember::Dispatch::kPool});
#pragma once

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember {

class Clock;

// Where an invocation runs (DESIGN.md §3.4).
enum class Dispatch : std::uint8_t {
  // The calling thread switches into a pooled fiber and runs the handler itself: the fastest
  // path. A timeout is seen at the handler's next suspension point (sleep_for, yield, a nested
  // invoke, ctx.check()), not while it computes.
  kInline,
  // A worker thread runs the handler; the caller waits (a thread blocks, a fiber suspends) or
  // gets a callback. The caller is released at the deadline with kTimeout whatever the handler
  // does.
  kPool,
};

enum class LogLevel : std::uint8_t { kDebug, kInfo, kWarn, kError };

// Lambda's two log formats (its LoggingConfig.LogFormat): plain text, or one JSON object per line.
enum class LogFormat : std::uint8_t { kText, kJson };

// What a log line is (LogRecord::kind).
enum class LogKind : std::uint8_t {
  kHandler,  // Context::log from a handler (or a plugin's log)
  kEngine,   // the engine's own lines: timeouts ("Task timed out after 3.00 seconds"), overruns
  kStart,    // START RequestId: ... Version: ...   (FunctionConfig::report_logs)
  kEnd,      // END RequestId: ...
  kReport,   // REPORT RequestId: ... Duration: ... (LogRecord::report has the figures)
};

// The figures of a REPORT line.
struct InvocationReport {
  std::int64_t duration_ns = 0;
  std::int64_t billed_duration_ms = 0;  // the duration rounded up to a whole millisecond
  int memory_size_mb = 0;               // FunctionConfig::memory_mb
  // The invocation's memory resource peak (Context::memory()) plus its fiber stack's high-water
  // mark, rounded up to a MiB; max_memory_used_bytes unrounded.
  int max_memory_used_mb = 0;
  std::int64_t max_memory_used_bytes = 0;
  std::optional<std::int64_t> init_duration_ns;     // only on a cold start that ran init
  std::optional<std::int64_t> restore_duration_ns;  // only on a cold start cloned from a snapshot
  std::optional<std::int64_t> scratch_used_bytes;   // instances with a scratch directory
};

// One log line, as handed to a LogSink. The views are valid during the sink call only.
struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::string_view function;    // empty for engine-level lines
  std::string_view request_id;  // empty for engine-level lines
  std::string_view message;     // empty for START/END/REPORT (their fields say it all)
  LogKind kind = LogKind::kHandler;
  absl::Time time;                           // on the engine's clock
  std::string_view version;                  // the function version (START; others when known)
  const InvocationReport* report = nullptr;  // kReport only
};

// Receives every log line of an engine: handler lines (Context::log), the engine's own
// (timeouts, overrunning handlers) and START/END/REPORT of functions that ask for them.
// Called from worker and caller threads at once: it must be thread-safe. A sink that throws
// loses that line (counted as dropped, and told to lifecycle observers). The default writes
// format_log_line(record, EngineOptions::log_format) and a newline to stderr.
using LogSink = std::function<void(const LogRecord&)>;

// A trace id is 128 bits, as W3C trace context and X-Ray (hi, lo); span ids 64 bits. Zero is
// "none".
struct TraceId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  [[nodiscard]] bool valid() const noexcept { return (hi | lo) != 0; }
  friend bool operator==(const TraceId&, const TraceId&) = default;
};

// Where an invocation sits in a trace, as carried across an invoke (InvokeOptions::trace) or
// read from a running handler (Context::trace()).
struct TraceContext {
  TraceId trace_id;
  std::uint64_t span_id = 0;  // the parent's span (on an invoke), or this invocation's own
  bool sampled = false;
  [[nodiscard]] bool valid() const noexcept { return trace_id.valid(); }
};

// Caller-supplied key/values handed to the handler (Lambda's client context).
using ClientContext = std::vector<std::pair<std::string, std::string>>;

struct EngineOptions {
  // Worker threads that run pool-dispatched invocations. 0 = std::thread::hardware_concurrency().
  int workers = 0;
  // Engine-wide cap on invocations executing at once (Lambda's account concurrency).
  int concurrency_limit = 1000;
  // Concurrency that reserved functions may never take (Lambda keeps 100 unreserved).
  int min_unreserved_concurrency = 100;
  // Nested invokes deeper than this fail with kRecursionLimit (Lambda stops loops at 16).
  int max_invoke_depth = 16;
  // Request / response size limits for sync invokes, and request limit for async ones.
  std::size_t max_sync_payload = std::size_t{6} << 20;
  std::size_t max_async_payload = std::size_t{1} << 20;
  // Async invokes (invoke_async) that find no free slot wait in a per-function FIFO of at most
  // this many; one more is refused with kQueueFull.
  int max_queued_per_function = 1024;
  // How long an idle worker spins looking for work before it parks (no CPU while parked).
  absl::Duration spin_before_park = absl::Microseconds(250);
  // Time source. nullptr = the engine's own monotonic clock. Must outlive the engine.
  Clock* clock = nullptr;
  // Where log lines go. Empty = stderr, formatted as log_format says.
  LogSink log_sink;
  LogFormat log_format = LogFormat::kText;
  // Per-function metrics (observe.hpp). Off, the invoke path skips them entirely; the
  // snapshot then has every counter and histogram at zero, and so the concurrency of
  // functions without reserved concurrency (it is derived from the counters); what the
  // concurrency gates and queues know still reads: reserved functions' concurrency, the
  // unreserved pool's, the engine total, async queue depths.
  bool metrics = true;
  // Share of root invocations (those not made from a handler) whose trace is recorded, 0..1.
  // Children follow their root's decision; an invoke that passes a sampled
  // InvokeOptions::trace is recorded whatever the rate. 0 = tracing off (no cost).
  double trace_sample_rate = 0.0;
  // Spans kept until Engine::take_spans(); past this the newest are dropped and counted.
  std::size_t trace_buffer_spans = 65536;
  // Where instances' scratch directories go (FunctionConfig::scratch_dir), each as
  // <root>/<function>-<instance id>. Empty = $TMPDIR (or /tmp) + "/ember-<pid>". Made when the
  // first one is needed; removed at engine destruction if empty.
  std::string scratch_root;
};

struct FunctionConfig {
  // Execution timeout; the deadline of an invocation is min(timeout, caller's remaining time).
  absl::Duration timeout = absl::Seconds(3);
  // Memory setting in MiB, reported to the handler (Context::memory_limit_mb). 128..10240.
  int memory_mb = 128;
  // Reserved concurrency: a cap for this function and a guarantee no other function can take.
  // Empty = the function shares the engine's unreserved pool.
  std::optional<int> reserved_concurrency;
  // Dispatch used when an invoke does not say.
  Dispatch dispatch = Dispatch::kInline;
  // Fiber stack size in bytes, rounded up to whole pages; a guard page sits below it.
  std::size_t stack_size = std::size_t{256} << 10;
  // How long an invoke_async waits for a concurrency slot before failing with kTimeout. This is
  // separate from `timeout`, which starts when the handler is admitted.
  absl::Duration max_queue_wait = absl::Seconds(1);
  // Write START / END / REPORT lines around each invocation (Lambda's platform lines). Off by
  // default: they cost a few hundred nanoseconds each, and a few microseconds more to measure
  // Max Memory Used (the fiber stack's high-water mark is found by painting it).
  bool report_logs = false;

  // ---- Execution environments (ember/instance.hpp): functions registered with a Lifecycle,
  // and plugin functions with an init. Ignored for functions without one. ----

  // Instances initialised ahead of traffic (at registration, or by
  // Engine::set_provisioned_concurrency) and never reaped. Invocations beyond them spill over
  // to on-demand instances. At most reserved_concurrency (which it then requires).
  int provisioned_concurrency = 0;
  // How long an instance's init (or snapshot clone) may take; past it the init fails with
  // kInitFailed and its state is shut down. Lambda's is 10 s.
  absl::Duration init_timeout = absl::Seconds(10);
  // An idle on-demand instance is shut down after this long unused.
  absl::Duration idle_ttl = absl::Minutes(5);
  // Scale-up guard: at most this many new (on-demand) instances per second for the function,
  // as a token bucket holding one second's worth; an invocation that needs one more is
  // throttled (kThrottled, ThrottleReason::kScaleUp). 0 = no cap. Lambda scales 1,000
  // environments per 10 s.
  int max_new_instances_per_second = 100;
  // Snapshot start (Lambda SnapStart): init runs once when the version is published, and new
  // instances are cloned from that state through Lifecycle::clone instead of running init.
  bool snapshot_start = false;
  // Give each instance a private directory under EngineOptions::scratch_root (Lambda's /tmp),
  // made before init and removed after shutdown. Context::scratch_dir() names it.
  bool scratch_dir = false;
};

struct InvokeOptions {
  // Overrides the function's default dispatch.
  std::optional<Dispatch> dispatch;
  // Shortens the deadline below the function's timeout (never lengthens it).
  std::optional<absl::Duration> timeout;
  // Overrides FunctionConfig::max_queue_wait for this async invoke.
  std::optional<absl::Duration> max_queue_wait;
  // Handed to the handler as Context::client_context(). Sync invokes use it in place; async
  // invokes copy it. May be nullptr.
  const ClientContext* client_context = nullptr;
  // The trace this invoke belongs to (e.g. from an incoming request's headers): the
  // invocation becomes a child of trace.span_id, and is recorded if trace.sampled. Ignored
  // inside a handler, whose own trace the invoke joins.
  TraceContext trace;
};

}  // namespace ember
