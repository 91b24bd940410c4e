// Engine metrics end to end (observe.hpp): known workloads driven through a real engine, and
// every figure Engine::metrics() and metrics_text() give checked for its exact value —
// Invocations, Errors, Timeouts, overruns, Throttles by reason, the Duration histogram,
// ConcurrentExecutions and the unreserved pool, the async queue (depth, AsyncEventAge,
// AsyncEventsDropped), the engine total, EngineOptions::metrics = false, and counts from many
// threads at once.
//
// Durations are exact because time moves only through the ManualClock: a handler that calls
// clock_.advance(d) runs for exactly d, one that does nothing for exactly 0. Handlers that hold
// a slot block on an Event; the test waits for events, never for a while.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "observe/prometheus_parse.hpp"
#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr std::int64_t kMs = 1'000'000;  // nanoseconds

// Handlers that hold their concurrency slot until release(): payload "block" blocks (its
// worker thread, or its caller's), anything else is echoed at once.
class Gate {
 public:
  BytesHandler handler() {
    return [this](Context&, std::string_view in) -> Result<std::string> {
      if (in != "block") return std::string(in);
      started_.fetch_add(1);
      changed_.notify();
      release_.wait();
      return std::string("released");
    };
  }
  void wait_started(int n) {
    changed_.wait([&] { return started_.load() >= n; });
  }
  void release() { release_.set(); }

 private:
  std::atomic<int> started_{0};
  Condition changed_;
  Event release_;
};

// The outcomes of async invokes by tag (thread-safe).
class Outcomes {
 public:
  InvokeCallback callback(std::string tag) {
    return [this, tag = std::move(tag)](Result<std::string> r) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.emplace_back(tag, std::move(r));
      }
      changed_.notify();
    };
  }
  void wait_count(std::size_t n) {
    changed_.wait([&] { return size() >= n; });
  }
  Result<std::string> wait_for(std::string_view tag) {
    Result<std::string> out = fail(ErrorCode::kInternal, "no outcome");
    changed_.wait([&] {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [t, r] : all_) {
        if (t == tag) {
          out = r;
          return true;
        }
      }
      return false;
    });
    return out;
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, Result<std::string>>> all_;  // guarded by mu_
  Condition changed_;
};

// A handler that runs for exactly the milliseconds its payload says ("2.5": 2.5 ms) on the
// ManualClock, then returns "ok".
BytesHandler runs_for(ManualClock& clock) {
  return [&clock](Context&, std::string_view in) -> Result<std::string> {
    clock.advance(absl::Nanoseconds(std::llround(std::stod(std::string(in)) * kMs)));
    return std::string("ok");
  };
}

// The line the engine logs when a handler whose caller was released returns at last: once it
// is written, that invocation's end has been counted.
constexpr std::string_view kReturnedLate = "handler returned after its caller was released";

// What Histogram::quantile(q) documents for these recorded values: the nearest-rank value,
// reported as its bucket's midpoint (from the snapshot's own buckets) and never above max; the
// last rank is max itself.
double expected_quantile(const Histogram& h, std::vector<std::uint64_t> values, double q) {
  std::sort(values.begin(), values.end());
  const auto n = values.size();
  const auto rank = std::clamp<std::size_t>(
      static_cast<std::size_t>(std::ceil(q * static_cast<double>(n))), 1, n);
  if (rank == n) return static_cast<double>(h.max_ns);
  const std::uint64_t v = values[rank - 1];
  for (const HistogramBucket& b : h.buckets) {
    if (b.lower_ns <= v && v < b.upper_ns) {
      const double mid =
          static_cast<double>(b.lower_ns) + static_cast<double>(b.upper_ns - 1 - b.lower_ns) / 2.0;
      return std::min(mid, static_cast<double>(h.max_ns));
    }
  }
  ADD_FAILURE() << "no bucket holds " << v;
  return -1;
}

// The engine total is the sum over functions: counters, histograms and gauges.
void expect_total_is_sum(const MetricsSnapshot& m) {
  FunctionMetrics sum;
  std::uint64_t duration_count = 0, duration_sum = 0, duration_max = 0, age_count = 0;
  for (const FunctionMetrics& f : m.functions) {
    sum.invocations += f.invocations;
    sum.errors += f.errors;
    sum.timeouts += f.timeouts;
    sum.overruns += f.overruns;
    sum.running_overruns += f.running_overruns;
    for (int r = 0; r < kThrottleReasons; ++r)
      sum.throttles_by_reason[r] += f.throttles_by_reason[r];
    sum.concurrent_executions += f.concurrent_executions;
    sum.async_queue_depth += f.async_queue_depth;
    sum.async_events_dropped += f.async_events_dropped;
    duration_count += f.duration.count;
    duration_sum += f.duration.sum_ns;
    duration_max = std::max(duration_max, f.duration.max_ns);
    age_count += f.async_event_age.count;
  }
  EXPECT_EQ(m.total.function, "");
  EXPECT_EQ(m.total.invocations, sum.invocations);
  EXPECT_EQ(m.total.errors, sum.errors);
  EXPECT_EQ(m.total.timeouts, sum.timeouts);
  EXPECT_EQ(m.total.overruns, sum.overruns);
  EXPECT_EQ(m.total.running_overruns, sum.running_overruns);
  EXPECT_EQ(m.total.throttles_by_reason, sum.throttles_by_reason);
  EXPECT_EQ(m.total.concurrent_executions, sum.concurrent_executions);
  EXPECT_EQ(m.total.async_queue_depth, sum.async_queue_depth);
  EXPECT_EQ(m.total.async_events_dropped, sum.async_events_dropped);
  EXPECT_EQ(m.total.duration.count, duration_count);
  EXPECT_EQ(m.total.duration.sum_ns, duration_sum);
  EXPECT_EQ(m.total.duration.max_ns, duration_max);
  EXPECT_EQ(m.total.async_event_age.count, age_count);
}

// TearDown releases the gate and joins the caller thread before the engine goes, so a failed
// assertion cannot hang.
class ObserveMetricsTest : public EngineTest {
 protected:
  void TearDown() override {
    gate_.release();
    if (caller_.joinable()) caller_.join();
    engine_.reset();
  }
  // A sync invoke on a thread of its own; join_caller() waits for its result.
  void invoke_on_thread(FunctionHandle fn, std::string payload) {
    caller_ = std::thread(
        [this, fn, payload = std::move(payload)] { called_ = engine().invoke(fn, payload); });
  }
  Result<std::string> join_caller() {
    caller_.join();
    return called_;
  }
  Engine& start(EngineOptions o) {
    engine_ = std::make_unique<Engine>(std::move(o));
    return *engine_;
  }
  const FunctionMetrics& of(const MetricsSnapshot& m, std::string_view name) {
    const FunctionMetrics* f = m.function(name);
    if (f == nullptr) {
      ADD_FAILURE() << "no metrics for " << name;
      static const FunctionMetrics kNone;
      return kNone;
    }
    return *f;
  }

  Gate gate_;
  Outcomes outcomes_;
  std::thread caller_;
  Result<std::string> called_;
};

TEST_P(ObserveMetricsTest, InvocationsAndErrorsCountEveryWayAHandlerEnds) {
  auto ok = add("ok", echo_handler());
  auto failing = add("failing", [](Context&, std::string_view) -> Result<std::string> {
    return fail(ErrorCode::kInvalidArgument, "bad input");
  });
  auto throwing = add("throwing", [](Context&, std::string_view) -> Result<std::string> {
    throw std::runtime_error("kaput");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    EXPECT_TRUE(engine().invoke(ok, "x", {.dispatch = d}));
    EXPECT_TRUE(engine().invoke(ok, "x", {.dispatch = d}));
    EXPECT_EQ(engine().invoke(failing, "", {.dispatch = d}).error().code,
              ErrorCode::kInvalidArgument);
    EXPECT_EQ(engine().invoke(throwing, "", {.dispatch = d}).error().code,
              ErrorCode::kHandlerFailed);
  }
  // Pool invocations are counted before their caller has the result.
  const MetricsSnapshot m = engine().metrics();
  EXPECT_TRUE(m.enabled);
  EXPECT_EQ(of(m, "ok").invocations, 4u);
  EXPECT_EQ(of(m, "ok").errors, 0u);
  for (const char* name : {"failing", "throwing"}) {
    EXPECT_EQ(of(m, name).invocations, 2u) << name;
    EXPECT_EQ(of(m, name).errors, 2u) << name;
    EXPECT_EQ(of(m, name).timeouts, 0u) << name;
    EXPECT_EQ(of(m, name).duration.count, 2u) << name;
  }
  EXPECT_EQ(m.total.invocations, 8u);
  EXPECT_EQ(m.total.errors, 4u);
  EXPECT_EQ(m.total.throttles(), 0u);
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, InlineTimeoutsOverrunsAndTimedOutSleepsAreErrorsAndTimeouts) {
  // Runs 150 ms of its 100 ms without a suspension point: an overrun, its result replaced.
  auto overrun = add("overrun",
                     [this](Context&, std::string_view) -> Result<std::string> {
                       clock_.advance(absl::Milliseconds(150));
                       return std::string("too late");
                     },
                     {.timeout = absl::Milliseconds(100)});
  // Reaches its deadline, then its sleep_for says kTimeout, which it returns.
  auto sleeper = add("sleeper",
                     [this](Context& ctx, std::string_view) -> Result<std::string> {
                       clock_.advance(absl::Milliseconds(100));
                       auto slept = ctx.sleep_for(absl::Milliseconds(1));
                       if (!slept) return tl::unexpected(slept.error());
                       return std::string("slept");
                     },
                     {.timeout = absl::Milliseconds(100)});
  EXPECT_EQ(engine().invoke(overrun, "").error().code, ErrorCode::kTimeout);
  EXPECT_EQ(engine().invoke(sleeper, "").error().code, ErrorCode::kTimeout);

  const MetricsSnapshot m = engine().metrics();  // inline: counted before invoke returned
  const FunctionMetrics& o = of(m, "overrun");
  EXPECT_EQ(o.invocations, 1u);
  EXPECT_EQ(o.errors, 1u);
  EXPECT_EQ(o.timeouts, 1u);
  EXPECT_EQ(o.overruns, 1u);
  EXPECT_EQ(o.running_overruns, 0);
  EXPECT_EQ(o.duration.sum_ns, 150u * kMs);
  const FunctionMetrics& s = of(m, "sleeper");
  EXPECT_EQ(s.invocations, 1u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.overruns, 0u);  // it saw its timeout at a suspension point
  EXPECT_EQ(s.duration.sum_ns, 100u * kMs);
  EXPECT_EQ(m.total.timeouts, 2u);
  EXPECT_EQ(m.total.overruns, 1u);
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, PoolCallerReleasedAtTheDeadlineLeavesARunningOverrunUntilItReturns) {
  auto fn = add("slow", gate_.handler(),
                {.timeout = absl::Milliseconds(100), .dispatch = Dispatch::kPool});
  invoke_on_thread(fn, "block");
  gate_.wait_started(1);
  clock_.advance(absl::Milliseconds(100));
  const Result<std::string> released = join_caller();  // at the deadline; the handler blocks on
  ASSERT_FALSE(released);
  EXPECT_EQ(released.error().code, ErrorCode::kTimeout);

  MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "slow").running_overruns, 1);
  EXPECT_EQ(m.total.running_overruns, 1);
  EXPECT_EQ(of(m, "slow").concurrent_executions, 1);  // it still holds its slot
  EXPECT_EQ(of(m, "slow").invocations, 1u);           // counted at admission
  EXPECT_EQ(of(m, "slow").duration.count, 0u);        // its handler has not returned

  gate_.release();
  logs_.wait_for(kReturnedLate);
  m = engine().metrics();
  const FunctionMetrics& f = of(m, "slow");
  EXPECT_EQ(f.invocations, 1u);
  EXPECT_EQ(f.errors, 1u);
  EXPECT_EQ(f.timeouts, 1u);
  EXPECT_EQ(f.overruns, 1u);
  EXPECT_EQ(f.running_overruns, 0);
  EXPECT_EQ(f.concurrent_executions, 0);
  EXPECT_EQ(f.duration.sum_ns, 100u * kMs);  // it ran from start to return
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, AsyncInvocationPastItsDeadlineIsReleasedByTheWatchdog) {
  auto fn = add("slow", gate_.handler(), {.timeout = absl::Milliseconds(100)});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("slow")));
  gate_.wait_started(1);
  clock_.advance(absl::Milliseconds(100));
  auto r = outcomes_.wait_for("slow");  // the timer thread released it; the handler blocks on
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(engine().metrics().function("slow")->running_overruns, 1);

  gate_.release();
  logs_.wait_for(kReturnedLate);
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics& f = of(m, "slow");
  EXPECT_EQ(f.invocations, 1u);
  EXPECT_EQ(f.errors, 1u);
  EXPECT_EQ(f.timeouts, 1u);
  EXPECT_EQ(f.overruns, 1u);
  EXPECT_EQ(f.running_overruns, 0);
  EXPECT_EQ(f.async_event_age.count, 1u);
  EXPECT_EQ(f.async_event_age.sum_ns, 0u);  // admitted and started at once
}

// Overruns are handlers past their deadline; one whose caller shutdown released long before
// its deadline is not one, neither while it runs on nor once it returns.
TEST_P(ObserveMetricsTest, AHandlerCutLooseByShutdownBeforeItsDeadlineIsNoOverrun) {
  auto fn = add("slow", gate_.handler());  // a 3 s timeout: the clock never gets there
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("slow")));
  gate_.wait_started(1);
  engine().shutdown(absl::ZeroDuration());  // no drain: its caller is released at once
  EXPECT_EQ(outcomes_.wait_for("slow").error().code, ErrorCode::kShuttingDown);
  EXPECT_EQ(engine().metrics().function("slow")->running_overruns, 0);

  gate_.release();
  logs_.wait_for(kReturnedLate);
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics& f = of(m, "slow");
  EXPECT_EQ(f.invocations, 1u);
  EXPECT_EQ(f.errors, 1u);  // its caller got kShuttingDown
  EXPECT_EQ(f.timeouts, 0u);
  EXPECT_EQ(f.overruns, 0u);
  EXPECT_EQ(f.running_overruns, 0);
  EXPECT_EQ(f.duration.count, 1u);
}

TEST_P(ObserveMetricsTest, DurationHistogramIsExactOnTheManualClock) {
  auto fn = add("timed", runs_for(clock_));
  const std::vector<std::string> payloads = {"0", "1", "2", "3", "4", "10", "1.5", "0.000063"};
  std::vector<std::uint64_t> values;
  for (const auto& p : payloads) {
    ASSERT_TRUE(engine().invoke(fn, p));
    values.push_back(static_cast<std::uint64_t>(std::llround(std::stod(p) * kMs)));
  }
  const MetricsSnapshot m = engine().metrics();
  const Histogram& h = of(m, "timed").duration;
  EXPECT_EQ(h.count, values.size());
  EXPECT_EQ(h.sum_ns, std::accumulate(values.begin(), values.end(), std::uint64_t{0}));
  EXPECT_EQ(h.max_ns, 10u * kMs);
  std::uint64_t in_buckets = 0;
  for (const HistogramBucket& b : h.buckets) in_buckets += b.count;
  EXPECT_EQ(in_buckets, h.count);
  for (double q : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0}) {
    EXPECT_DOUBLE_EQ(h.quantile(q), expected_quantile(h, values, q)) << "q=" << q;
  }
  EXPECT_EQ(h.quantile(1), 10.0 * kMs);
  EXPECT_EQ(h.quantile(0), 0.0);          // the no-op: exactly 0 ns
  const double median = h.quantile(0.5);  // the 4th of 8: 1.5 ms, within 1/64
  EXPECT_NEAR(median, 1.5 * kMs, 1.5 * kMs / 64);
  EXPECT_EQ(h.count_at_or_below(0), 1u);
  EXPECT_EQ(h.count_at_or_below(62), 1u);
  EXPECT_EQ(h.count_at_or_below(63), 2u);  // below 64 ns every value has its own bucket
  EXPECT_DOUBLE_EQ(h.mean_ns(), static_cast<double>(h.sum_ns) / 8);
  // The engine total has the same values (one function).
  EXPECT_EQ(m.total.duration.count, h.count);
  EXPECT_EQ(m.total.duration.sum_ns, h.sum_ns);
  EXPECT_DOUBLE_EQ(m.total.duration.quantile(0.5), median);
}

TEST_P(ObserveMetricsTest, ThrottlesOfAReservedFunctionCountReservedConcurrencyAndQueueFull) {
  EngineOptions o = options();
  o.max_queued_per_function = 1;
  start(o);
  auto fn = add("solo", gate_.handler(), {.reserved_concurrency = 1, .dispatch = Dispatch::kPool});
  invoke_on_thread(fn, "block");  // a blocked pool invocation holds the slot
  gate_.wait_started(1);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "x", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
  }
  ASSERT_TRUE(engine().invoke_async(fn, "queued", outcomes_.callback("queued")));
  auto full = engine().invoke_async(fn, "overflow", outcomes_.callback("overflow"));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kQueueFull);

  MetricsSnapshot m = engine().metrics();
  const FunctionMetrics& f = of(m, "solo");
  EXPECT_EQ(f.throttles(ThrottleReason::kReservedConcurrency), 2u);
  EXPECT_EQ(f.throttles(ThrottleReason::kQueueFull), 1u);
  EXPECT_EQ(f.throttles(ThrottleReason::kUnreservedConcurrency), 0u);
  EXPECT_EQ(f.throttles(), 3u);
  EXPECT_EQ(f.invocations, 1u);  // the holder; throttled (and queued) invokes are not counted
  EXPECT_EQ(f.async_queue_depth, 1);
  EXPECT_EQ(f.concurrent_executions, 1);
  EXPECT_EQ(m.total.throttles(), 3u);
  expect_total_is_sum(m);

  gate_.release();
  EXPECT_EQ(join_caller().value(), "released");
  EXPECT_EQ(outcomes_.wait_for("queued").value(), "queued");
  m = engine().metrics();
  EXPECT_EQ(of(m, "solo").invocations, 2u);
  EXPECT_EQ(of(m, "solo").errors, 0u);
  EXPECT_EQ(of(m, "solo").throttles(), 3u);
}

TEST_P(ObserveMetricsTest, ThrottlesOfTheSharedPoolCountUnreservedConcurrency) {
  EngineOptions o = options();
  o.concurrency_limit = 3;
  o.min_unreserved_concurrency = 1;
  start(o);
  auto reserved = add("reserved", echo_handler(), {.reserved_concurrency = 2});
  auto holder = add("holder", gate_.handler());
  auto other = add("other", echo_handler());
  ASSERT_TRUE(engine().invoke_async(holder, "block", outcomes_.callback("holder")));
  gate_.wait_started(1);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(other, "x", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
    EXPECT_TRUE(mentions(r.error(), "unreserved concurrency pool (1)")) << r.error().message;
  }
  EXPECT_EQ(engine().invoke(reserved, "mine").value(), "mine");  // its reservation is its own

  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "other").throttles(ThrottleReason::kUnreservedConcurrency), 2u);
  EXPECT_EQ(of(m, "other").throttles(), 2u);
  EXPECT_EQ(of(m, "holder").throttles(), 0u);
  EXPECT_EQ(of(m, "reserved").throttles(), 0u);
  EXPECT_EQ(of(m, "reserved").invocations, 1u);
  EXPECT_EQ(m.unreserved_concurrency_limit, 1);
  EXPECT_EQ(m.unreserved_concurrent_executions, 1);
  EXPECT_EQ(m.concurrency_limit, 3);
  EXPECT_EQ(m.total.throttles(ThrottleReason::kUnreservedConcurrency), 2u);
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, NestedInvokesOverALimitAreThrottledByReason) {
  // Deterministic throttles without threads: a handler invokes what its own slot exhausts.
  EngineOptions o = options();
  o.concurrency_limit = 2;
  o.min_unreserved_concurrency = 1;
  start(o);
  auto leaf = add("leaf", echo_handler());
  auto solo = add("solo",
                  [](Context& ctx, std::string_view in) -> Result<std::string> {
                    if (in == "nested") return std::string("inner");
                    auto self = ctx.invoke("solo", "nested");  // its only slot is this invocation's
                    return self ? *self : std::string(error_code_name(self.error().code));
                  },
                  {.reserved_concurrency = 1});
  auto shared = add("shared", [leaf](Context& ctx, std::string_view) -> Result<std::string> {
    auto r = ctx.invoke(leaf, "x");  // the unreserved pool of 1 is this invocation's
    return r ? *r : std::string(error_code_name(r.error().code));
  });
  EXPECT_EQ(engine().invoke(solo, "").value(), error_code_name(ErrorCode::kThrottled));
  EXPECT_EQ(engine().invoke(shared, "").value(), error_code_name(ErrorCode::kThrottled));
  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "solo").throttles(ThrottleReason::kReservedConcurrency), 1u);
  EXPECT_EQ(of(m, "solo").invocations, 1u);
  EXPECT_EQ(of(m, "leaf").throttles(ThrottleReason::kUnreservedConcurrency), 1u);
  EXPECT_EQ(of(m, "leaf").invocations, 0u);
  EXPECT_EQ(of(m, "shared").throttles(), 0u);
  EXPECT_EQ(of(m, "solo").concurrent_executions_max, 1);
  EXPECT_EQ(m.unreserved_concurrent_executions_max, 1);
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, ConcurrentExecutionsWhilePoolInvocationsAreBlocked) {
  auto busy = add("busy", gate_.handler());
  auto reserved = add("reserved", gate_.handler(), {.reserved_concurrency = 5});
  add("idle", echo_handler());
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(engine().invoke_async(busy, "block", outcomes_.callback("b")));
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(engine().invoke_async(reserved, "block", outcomes_.callback("r")));

  // Admitted at once (a slot is taken at admission), whether a worker runs them yet or not.
  MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "busy").concurrent_executions, 3);
  EXPECT_FALSE(of(m, "busy").concurrent_executions_max.has_value());
  EXPECT_FALSE(of(m, "busy").reserved_concurrency.has_value());
  EXPECT_EQ(of(m, "reserved").concurrent_executions, 2);
  EXPECT_EQ(of(m, "reserved").concurrent_executions_max, 2);
  EXPECT_EQ(of(m, "reserved").reserved_concurrency, 5);
  EXPECT_EQ(of(m, "idle").concurrent_executions, 0);
  EXPECT_EQ(m.total.concurrent_executions, 5);
  EXPECT_EQ(m.unreserved_concurrent_executions, 3);
  EXPECT_EQ(m.unreserved_concurrent_executions_max, 3);
  EXPECT_EQ(m.unreserved_concurrency_limit, 1000 - 5);
  EXPECT_EQ(m.concurrency_limit, 1000);
  expect_total_is_sum(m);
  // observe.hpp: the engine total has no high-water mark (it would cost a shared counter).
  EXPECT_FALSE(m.total.concurrent_executions_max.has_value());

  gate_.release();
  outcomes_.wait_count(5);
  m = engine().metrics();
  EXPECT_EQ(of(m, "busy").concurrent_executions, 0);
  EXPECT_EQ(of(m, "reserved").concurrent_executions, 0);
  EXPECT_EQ(of(m, "reserved").concurrent_executions_max, 2);  // the high-water mark stays
  EXPECT_EQ(m.total.concurrent_executions, 0);
  EXPECT_EQ(m.unreserved_concurrent_executions, 0);
  EXPECT_EQ(m.unreserved_concurrent_executions_max, 3);
  expect_total_is_sum(m);
}

TEST_P(ObserveMetricsTest, AsyncQueueDepthAndEventAge) {
  auto fn = add("queued", gate_.handler(), {.reserved_concurrency = 1});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  gate_.wait_started(1);  // started at once: its event age is 0
  ASSERT_TRUE(engine().invoke_async(fn, "a", outcomes_.callback("a")));
  ASSERT_TRUE(engine().invoke_async(fn, "b", outcomes_.callback("b")));
  EXPECT_EQ(engine().metrics().function("queued")->async_queue_depth, 2);
  clock_.advance(absl::Milliseconds(250));
  ASSERT_TRUE(engine().invoke_async(fn, "c", outcomes_.callback("c")));
  clock_.advance(absl::Milliseconds(100));
  MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "queued").async_queue_depth, 3);
  EXPECT_EQ(m.total.async_queue_depth, 3);
  EXPECT_EQ(of(m, "queued").async_event_age.count, 1u);

  gate_.release();  // a and b waited 350 ms, c 100 ms
  outcomes_.wait_count(4);
  m = engine().metrics();
  const FunctionMetrics& f = of(m, "queued");
  EXPECT_EQ(f.async_queue_depth, 0);
  EXPECT_EQ(f.async_event_age.count, 4u);
  EXPECT_EQ(f.async_event_age.sum_ns, 800u * kMs);
  EXPECT_EQ(f.async_event_age.max_ns, 350u * kMs);
  EXPECT_EQ(f.async_event_age.quantile(1), 350.0 * kMs);
  EXPECT_EQ(f.async_event_age.count_at_or_below(0), 1u);
  EXPECT_EQ(f.duration.sum_ns, 350u * kMs);  // the blocked one ran while the clock moved
  EXPECT_EQ(f.async_events_dropped, 0u);
  EXPECT_EQ(m.total.async_event_age.sum_ns, 800u * kMs);
}

TEST_P(ObserveMetricsTest, AsyncEventsDroppedWhenTheirQueueWaitPasses) {
  auto fn = add("queued", gate_.handler(), {.reserved_concurrency = 1});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  gate_.wait_started(1);
  ASSERT_TRUE(engine().invoke_async(fn, "late", outcomes_.callback("late"),
                                    {.max_queue_wait = absl::Milliseconds(100)}));
  clock_.advance(absl::Milliseconds(100));
  auto late = outcomes_.wait_for("late");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(late.error(), "it never ran")) << late.error().message;

  MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "queued").async_events_dropped, 1u);
  EXPECT_EQ(of(m, "queued").async_queue_depth, 0);
  EXPECT_EQ(m.total.async_events_dropped, 1u);

  gate_.release();
  ASSERT_TRUE(outcomes_.wait_for("block"));
  m = engine().metrics();
  const FunctionMetrics& f = of(m, "queued");
  EXPECT_EQ(f.invocations, 1u);  // the dropped one never ran
  EXPECT_EQ(f.errors, 0u);
  EXPECT_EQ(f.timeouts, 0u);
  EXPECT_EQ(f.async_event_age.count, 1u);
  EXPECT_EQ(f.async_events_dropped, 1u);
  EXPECT_EQ(f.duration.sum_ns, 100u * kMs);
}

TEST_P(ObserveMetricsTest, AsyncEventsDroppedAtShutdown) {
  auto fn = add("queued", gate_.handler(), {.reserved_concurrency = 1});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  gate_.wait_started(1);
  ASSERT_TRUE(engine().invoke_async(fn, "q1", outcomes_.callback("q1")));
  ASSERT_TRUE(engine().invoke_async(fn, "q2", outcomes_.callback("q2")));
  std::thread stopper([&] { engine().shutdown(); });  // fails the queue, then drains
  EXPECT_EQ(outcomes_.wait_for("q1").error().code, ErrorCode::kShuttingDown);
  EXPECT_EQ(outcomes_.wait_for("q2").error().code, ErrorCode::kShuttingDown);
  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "queued").async_events_dropped, 2u);
  EXPECT_EQ(of(m, "queued").async_queue_depth, 0);
  EXPECT_EQ(of(m, "queued").concurrent_executions, 1);
  gate_.release();
  stopper.join();
  EXPECT_EQ(outcomes_.wait_for("block").value(), "released");
  const MetricsSnapshot m_after = engine().metrics();
  const FunctionMetrics& f = of(m_after, "queued");
  EXPECT_EQ(f.invocations, 1u);
  EXPECT_EQ(f.errors, 0u);
  EXPECT_EQ(f.async_events_dropped, 2u);
}

TEST_P(ObserveMetricsTest, FunctionLookupFindsEveryRegisteredFunctionByName) {
  add("zeta", echo_handler());
  add("alpha", echo_handler());
  add("mid", echo_handler());
  ASSERT_TRUE(engine().invoke("mid", "x"));
  const MetricsSnapshot m = engine().metrics();
  ASSERT_EQ(m.functions.size(), 3u);
  EXPECT_EQ(m.functions[0].function, "alpha");  // sorted by name
  EXPECT_EQ(m.functions[1].function, "mid");
  EXPECT_EQ(m.functions[2].function, "zeta");
  ASSERT_NE(m.function("zeta"), nullptr);
  EXPECT_EQ(m.function("zeta")->function, "zeta");
  EXPECT_EQ(m.function("zeta")->invocations, 0u);  // registered, never invoked
  EXPECT_EQ(m.function("mid")->invocations, 1u);
  EXPECT_EQ(m.function("nope"), nullptr);
  EXPECT_EQ(m.function(""), nullptr);  // the total is not a function
  EXPECT_EQ(m.function("mid:$LATEST"), nullptr);
  EXPECT_GE(m.taken, clock_.now());
}

TEST_P(ObserveMetricsTest, MetricsOffLeavesCountersAtZeroButGatesAndQueuesStillRead) {
  EngineOptions o = options();
  o.metrics = false;
  start(o);
  auto busy = add("busy", gate_.handler());
  auto solo = add("solo", gate_.handler(), {.reserved_concurrency = 1});
  auto timed = add("timed", runs_for(clock_));
  ASSERT_TRUE(engine().invoke(timed, "5"));
  EXPECT_FALSE(engine().invoke(timed, "not a number"));  // stod throws: an error
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(engine().invoke_async(busy, "block", outcomes_.callback("b")));
  ASSERT_TRUE(engine().invoke_async(solo, "block", outcomes_.callback("s")));
  ASSERT_TRUE(engine().invoke_async(solo, "queued", outcomes_.callback("s")));
  EXPECT_FALSE(engine().invoke(solo, "x"));  // throttled

  const MetricsSnapshot m = engine().metrics();
  EXPECT_FALSE(m.enabled);
  for (const FunctionMetrics& f : m.functions) {
    EXPECT_EQ(f.invocations, 0u) << f.function;
    EXPECT_EQ(f.errors, 0u) << f.function;
    EXPECT_EQ(f.throttles(), 0u) << f.function;
    EXPECT_EQ(f.duration.count, 0u) << f.function;
    EXPECT_TRUE(f.duration.buckets.empty()) << f.function;
  }
  EXPECT_EQ(m.total.invocations, 0u);
  // What the gates and queues know still reads (options.hpp).
  EXPECT_EQ(of(m, "solo").concurrent_executions, 1);
  EXPECT_EQ(of(m, "solo").concurrent_executions_max, 1);
  EXPECT_EQ(of(m, "solo").reserved_concurrency, 1);
  EXPECT_EQ(of(m, "solo").async_queue_depth, 1);
  EXPECT_EQ(m.total.concurrent_executions, 4);
  EXPECT_EQ(m.unreserved_concurrent_executions, 3);
  EXPECT_EQ(m.unreserved_concurrency_limit, 999);
  // Derived from the counters, so zero too (options.hpp says so): the pool's gauge has them.
  EXPECT_EQ(of(m, "busy").concurrent_executions, 0);
  gate_.release();
  outcomes_.wait_count(5);
}

TEST_P(ObserveMetricsTest, InvokesFromManyThreadsAreSummedExactly) {
  auto fn = add("many", [](Context&, std::string_view in) -> Result<std::string> {
    if (in == "odd") return fail(ErrorCode::kInvalidArgument, "odd");
    return std::string(in);
  });
  constexpr int kThreads = 4, kEach = 1000;
  std::atomic<bool> done{false};
  // A reader takes snapshots throughout: never more errors than invocations (stats.hpp).
  std::thread reader([&] {
    while (!done.load()) {
      const MetricsSnapshot m = engine().metrics();
      const FunctionMetrics& f = *m.function("many");
      EXPECT_LE(f.errors, f.invocations);
      EXPECT_LE(f.duration.count, f.invocations);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) (void)engine().invoke(fn, i % 2 == 0 ? "even" : "odd");
    });
  }
  for (auto& t : threads) t.join();
  done.store(true);
  reader.join();
  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "many").invocations, 4000u);
  EXPECT_EQ(of(m, "many").errors, 2000u);
  EXPECT_EQ(of(m, "many").duration.count, 4000u);
  EXPECT_EQ(of(m, "many").duration.sum_ns, 0u);
  EXPECT_EQ(of(m, "many").concurrent_executions, 0);
  EXPECT_EQ(m.total.invocations, 4000u);
}

TEST_P(ObserveMetricsTest, InvokesFromMoreThreadsThanShardsAreSummedExactly) {
  // More threads alive at once than there are per-thread shards (64): the rest share one.
  auto fn = add("many", echo_handler());
  constexpr int kThreads = 72, kEach = 50;
  std::barrier all_alive(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      all_alive.arrive_and_wait();
      for (int i = 0; i < kEach; ++i) (void)engine().invoke(fn, "x");
      all_alive.arrive_and_wait();  // nobody leaves (freeing its shard) before all are done
    });
  }
  for (auto& t : threads) t.join();
  const MetricsSnapshot m = engine().metrics();
  EXPECT_EQ(of(m, "many").invocations, std::uint64_t{kThreads} * kEach);
  EXPECT_EQ(of(m, "many").duration.count, std::uint64_t{kThreads} * kEach);
  EXPECT_EQ(of(m, "many").concurrent_executions, 0);
}

// Bug: a pool or async invocation is counted (run_task, after finish_pooled) only after its
// result has gone to the caller, so a snapshot taken once the caller has it can miss it.
TEST_P(ObserveMetricsTest, CountsAnInvocationBeforeItsResultIsDelivered) {
  auto fn = add("echo", echo_handler());
  std::optional<MetricsSnapshot> seen;
  Event delivered;
  ASSERT_TRUE(engine().invoke_async(fn, "x", [&](Result<std::string> r) {
    EXPECT_TRUE(r);
    seen = engine().metrics();  // the caller has the result: the invocation has ended
    delivered.set();
  }));
  delivered.wait();
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(of(*seen, "echo").invocations, 1u);
  EXPECT_EQ(of(*seen, "echo").duration.count, 1u);
  EXPECT_EQ(of(*seen, "echo").concurrent_executions, 0);
  EXPECT_EQ(seen->total.concurrent_executions, 0);  // the gate agrees: nothing runs
}

TEST_P(ObserveMetricsTest, PrometheusTextHasTheExactValuesOfAKnownWorkload) {
  namespace pp = prometheus_parse;
  auto alpha = add("alpha", [this](Context&, std::string_view in) -> Result<std::string> {
    if (in == "fail") return fail(ErrorCode::kInvalidArgument, "no");
    clock_.advance(absl::Microseconds(std::stoi(std::string(in))));
    return std::string("ok");
  });
  auto beta = add("beta",
                  [](Context& ctx, std::string_view in) -> Result<std::string> {
                    if (in == "nested") return std::string("inner");
                    auto self = ctx.invoke("beta", "nested");  // throttled: its one slot is ours
                    return self ? *self : std::string("throttled");
                  },
                  {.reserved_concurrency = 1});
  // 1.5 ms, 3 ms and 7 ms: clear of the bucket bounds, so every _bucket count is exact.
  for (const char* in : {"1500", "3000", "7000", "fail"}) (void)engine().invoke(alpha, in);
  ASSERT_EQ(engine().invoke(beta, "").value(), "throttled");

  const pp::Exposition e = pp::parse(metrics_text(engine()));
  pp::expect_histograms_well_formed(e);
  auto value = [&](std::string_view family, std::string_view sample,
                   std::vector<std::pair<std::string, std::string>> labels) -> double {
    const pp::Family* f = e.family(family);
    if (f == nullptr) {
      ADD_FAILURE() << "no family " << family;
      return -1;
    }
    for (const pp::Sample& s : f->samples) {
      if (s.name == sample && s.labels == labels) return s.value;
    }
    ADD_FAILURE() << "no sample " << sample << " in " << family;
    return -1;
  };
  auto per_fn = [&](std::string_view family, const std::string& fn) {
    return value(family, family, {{"function", fn}});
  };
  EXPECT_EQ(per_fn("ember_invocations_total", "alpha"), 4);
  EXPECT_EQ(per_fn("ember_invocations_total", "beta"), 1);
  EXPECT_EQ(per_fn("ember_errors_total", "alpha"), 1);
  EXPECT_EQ(per_fn("ember_errors_total", "beta"), 0);
  EXPECT_EQ(per_fn("ember_timeouts_total", "alpha"), 0);
  EXPECT_EQ(per_fn("ember_overruns_total", "alpha"), 0);
  EXPECT_EQ(per_fn("ember_running_overruns", "alpha"), 0);
  EXPECT_EQ(value("ember_throttles_total", "ember_throttles_total",
                  {{"function", "beta"}, {"reason", "reserved_concurrency"}}),
            1);
  for (const char* reason : {"unreserved_concurrency", "queue_full"}) {
    EXPECT_EQ(value("ember_throttles_total", "ember_throttles_total",
                    {{"function", "beta"}, {"reason", reason}}),
              0);
  }
  EXPECT_EQ(
      value("ember_duration_seconds", "ember_duration_seconds_count", {{"function", "alpha"}}), 4);
  EXPECT_DOUBLE_EQ(
      value("ember_duration_seconds", "ember_duration_seconds_sum", {{"function", "alpha"}}),
      0.0115);
  const std::pair<const char*, double> buckets[] = {
      {"0.001", 1}, {"0.0025", 2}, {"0.005", 3}, {"0.01", 4}, {"+Inf", 4}};
  for (const auto& [le, n] : buckets) {
    EXPECT_EQ(value("ember_duration_seconds", "ember_duration_seconds_bucket",
                    {{"function", "alpha"}, {"le", le}}),
              n)
        << "le=" << le;
  }
  EXPECT_EQ(per_fn("ember_concurrent_executions", "alpha"), 0);
  EXPECT_EQ(per_fn("ember_concurrent_executions_max", "beta"), 1);
  EXPECT_EQ(per_fn("ember_reserved_concurrency", "beta"), 1);
  EXPECT_EQ(e.family("ember_reserved_concurrency")->samples.size(), 1u);  // beta's only
  EXPECT_EQ(per_fn("ember_async_queue_depth", "alpha"), 0);
  EXPECT_EQ(per_fn("ember_async_events_dropped_total", "alpha"), 0);
  EXPECT_EQ(value("ember_unreserved_concurrency_limit", "ember_unreserved_concurrency_limit", {}),
            999);
  EXPECT_EQ(value("ember_concurrency_limit", "ember_concurrency_limit", {}), 1000);
  EXPECT_EQ(value("ember_unreserved_concurrent_executions_max",
                  "ember_unreserved_concurrent_executions_max", {}),
            1);
  EXPECT_EQ(value("ember_engine_concurrent_executions", "ember_engine_concurrent_executions", {}),
            0);
  EXPECT_EQ(value("ember_logs_dropped_total", "ember_logs_dropped_total", {}), 0);
  EXPECT_EQ(value("ember_spans_dropped_total", "ember_spans_dropped_total", {}), 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, ObserveMetricsTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
