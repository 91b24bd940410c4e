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

// One log line, as handed to a LogSink.
struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::string_view function;    // empty for engine-level lines
  std::string_view request_id;  // empty for engine-level lines
  std::string_view message;
};

// Receives every log line of an engine: handler lines (Context::log) and the engine's own
// (timeouts, overrunning handlers). Called from worker and caller threads at once: it must be
// thread-safe. The default writes "<level>\t<request id>\t<function>\t<message>" to stderr.
using LogSink = std::function<void(const LogRecord&)>;

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
  // Where log lines go. Empty = stderr.
  LogSink log_sink;
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
};

}  // namespace ember
