// Execution environments end to end (ember/instance.hpp): an instance is made by init on the
// first invocation (a cold start), serves one invocation at a time, is reused warm, and is
// thrown away after a throw or a timeout. Init failures, init throwing and init_timeout; cold
// start metrics (cold_starts, init_duration) and REPORT lines; typed and async invokes.
//
// Time moves only through the ManualClock: an init that calls clock_.advance(d) takes exactly
// d. Handlers that must overlap block on an Event; tests wait on events, never on sleeps.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr std::int64_t kMs = 1'000'000;  // nanoseconds

// One instance's state: what init saw, and how many invocations it served.
struct Box {
  explicit Box(InitContext& ctx) : id(ctx.instance_id()) {}
  std::uint64_t id;
  int calls = 0;
};

// Handlers that must run at once: each arrive() counts itself, then blocks until release().
class Gate {
 public:
  void arrive() {
    started_.fetch_add(1);
    changed_.notify();
    release_.wait();
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

// REPORT lines (copied: the record's report is valid during the sink call only).
class Reports {
 public:
  LogSink sink() {
    return [this](const LogRecord& r) {
      if (r.kind != LogKind::kReport || r.report == nullptr) return;
      std::lock_guard<std::mutex> lock(mu_);
      all_.push_back(*r.report);
    };
  }
  std::vector<InvocationReport> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }

 private:
  std::mutex mu_;
  std::vector<InvocationReport> all_;
};

// Polls `pred` until it holds or a generous real-time cap passes (then false): for what a
// worker does after the test let its handler go.
template <typename Pred>
bool eventually(Pred pred) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    cv.wait_for(lock, std::chrono::milliseconds(1));
  }
  return true;
}

// An engine on a ManualClock, and a Lifecycle over Box whose hooks are counted. `on_init`,
// when set (before registering), runs first in every init: it may fail, throw or move the
// clock. Members are declared so that the engine goes first (its shutdown hooks count here).
class EnvLifecycleTest : public ::testing::TestWithParam<int> {
 protected:
  EngineOptions options() {
    EngineOptions o;
    o.workers = GetParam();
    o.clock = &clock_;
    o.log_sink = reports_.sink();
    return o;
  }
  Engine& engine() {
    if (!engine_) engine_ = std::make_unique<Engine>(options());
    return *engine_;
  }
  Lifecycle lifecycle() {
    Lifecycle l;
    l.init = [this](InitContext& ctx) -> Result<void*> {
      inits_.fetch_add(1);
      if (on_init_) {
        if (auto ok = on_init_(ctx); !ok) return tl::unexpected<Error>(ok.error());
      }
      return static_cast<void*>(new Box(ctx));
    };
    l.shutdown = [this](void* state) {
      shutdowns_.fetch_add(1);
      delete static_cast<Box*>(state);
    };
    l.state_type = &typeid(Box);
    return l;
  }
  FunctionHandle add(std::string_view name, FunctionConfig config, BytesHandler handler) {
    auto fn = engine().register_function(name, config, lifecycle(), std::move(handler));
    EXPECT_TRUE(fn.has_value()) << (fn ? "" : fn.error().message);
    return fn.value_or(FunctionHandle{});
  }
  InstanceStats stats(std::string_view name) {
    auto s = engine().instance_stats(name);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return s.value_or(InstanceStats{});
  }
  // A handler answering "<instance id> <cold?> <calls so far>"; payload "block" waits on gate_.
  BytesHandler box_handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      Box* box = ctx.state<Box>();
      if (box == nullptr) return fail(ErrorCode::kInternal, "no state");
      if (box->id != ctx.instance_id()) return fail(ErrorCode::kInternal, "state of another id");
      ++box->calls;
      if (in == "block") gate_.arrive();
      return std::to_string(box->id) + (ctx.cold_start() ? " cold " : " warm ") +
             std::to_string(box->calls);
    };
  }
  static std::uint64_t id_of(const std::string& answer) { return std::stoull(answer); }

  std::atomic<int> inits_{0};
  std::atomic<int> shutdowns_{0};
  std::function<Result<void>(InitContext&)> on_init_;
  Gate gate_;
  ManualClock clock_;
  Reports reports_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first
};

INSTANTIATE_TEST_SUITE_P(Workers, EnvLifecycleTest, EMBER_WORKER_COUNTS);

// ---- instances ----

TEST_P(EnvLifecycleTest, InitRunsOnFirstInvocationAsAColdStart) {
  void* seen_state = nullptr;
  Box* seen_box = nullptr;
  auto fn = add("env.first", {}, [&](Context& ctx, std::string_view) -> Result<std::string> {
    seen_state = ctx.instance();
    seen_box = ctx.state<Box>();
    return std::string(ctx.cold_start() ? "cold" : "warm");
  });
  EXPECT_EQ(inits_.load(), 0) << "init runs on demand, not at registration";
  auto out = engine().invoke(fn, "");
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(*out, "cold");
  EXPECT_EQ(inits_.load(), 1);
  ASSERT_NE(seen_box, nullptr);
  EXPECT_EQ(seen_state, static_cast<void*>(seen_box));
  const InstanceStats s = stats("env.first");
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.idle, 1);
  EXPECT_EQ(s.cold_starts, 1u);
  EXPECT_EQ(s.init_failures, 0u);
  EXPECT_EQ(s.shutdowns, 0u);
}

TEST_P(EnvLifecycleTest, SequentialInvocationsReuseTheWarmInstance) {
  auto fn = add("env.reuse", {}, box_handler());
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    SCOPED_TRACE(d == Dispatch::kInline ? "inline" : "pool");
    auto first = engine().invoke(fn, "", {.dispatch = d});
    auto second = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_TRUE(first && second);
    EXPECT_EQ(id_of(*first), id_of(*second));
    EXPECT_EQ(second->substr(second->find(' ') + 1, 4), "warm");
  }
  EXPECT_EQ(inits_.load(), 1);
  auto last = engine().invoke(fn, "");
  ASSERT_TRUE(last);
  EXPECT_EQ(last->substr(last->find(' ') + 1), "warm 5") << "one state served all five";
  EXPECT_EQ(stats("env.reuse").cold_starts, 1u);
}

TEST_P(EnvLifecycleTest, StateOfAnotherTypeIsNull) {
  auto fn = add("env.types", {}, [](Context& ctx, std::string_view) -> Result<std::string> {
    if (ctx.state<Box>() == nullptr) return fail(ErrorCode::kInternal, "Box missing");
    if (ctx.state<int>() != nullptr) return fail(ErrorCode::kInternal, "int* given");
    if (ctx.state<std::string>() != nullptr) return fail(ErrorCode::kInternal, "string* given");
    if (ctx.instance() == nullptr) return fail(ErrorCode::kInternal, "instance() null");
    return std::string("ok");
  });
  auto out = engine().invoke(fn, "");
  EXPECT_TRUE(out) << out.error().message;
}

TEST_P(EnvLifecycleTest, StatelessFunctionHasNoInstance) {
  auto fn = engine().register_function("env.stateless", {},
                                       [](Context& ctx, std::string_view) -> Result<std::string> {
                                         if (ctx.instance() != nullptr)
                                           return fail(ErrorCode::kInternal, "instance()");
                                         if (ctx.state<Box>() != nullptr)
                                           return fail(ErrorCode::kInternal, "state<Box>()");
                                         if (ctx.instance_id() != 0)
                                           return fail(ErrorCode::kInternal, "instance_id()");
                                         if (ctx.cold_start())
                                           return fail(ErrorCode::kInternal, "cold_start()");
                                         if (!ctx.scratch_dir().empty())
                                           return fail(ErrorCode::kInternal, "scratch_dir()");
                                         return std::string("ok");
                                       });
  ASSERT_TRUE(fn);
  for (int i = 0; i < 3; ++i) {
    auto out = engine().invoke(*fn, "");
    EXPECT_TRUE(out) << out.error().message;
  }
  const InstanceStats s = stats("env.stateless");
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(s.idle, 0);
  EXPECT_EQ(s.provisioned_target, 0);
  EXPECT_EQ(s.cold_starts, 0u);
  EXPECT_EQ(s.shutdowns, 0u);
  EXPECT_EQ(engine().metrics().function("env.stateless")->cold_starts, 0u);
  auto missing = engine().instance_stats("env.nothing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST_P(EnvLifecycleTest, LifecycleWithoutInitIsRefused) {
  Lifecycle l = lifecycle();
  l.init = nullptr;
  auto fn = engine().register_function("env.noinit", {}, std::move(l), echo_handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "init")) << fn.error().message;
  EXPECT_EQ(engine().function("env.noinit").error().code, ErrorCode::kNotFound);
}

// ---- one invocation per instance ----

TEST_P(EnvLifecycleTest, ConcurrentInvocationsGetDistinctInstances) {
  const int n = GetParam();  // one pool worker each
  auto fn = add("env.fanout", {.timeout = absl::Minutes(1)}, box_handler());
  std::vector<Result<std::string>> out(n);
  std::vector<std::thread> callers;
  for (int i = 0; i < n; ++i) {
    callers.emplace_back(
        [&, i] { out[i] = engine().invoke(fn, "block", {.dispatch = Dispatch::kPool}); });
  }
  gate_.wait_started(n);
  EXPECT_EQ(stats("env.fanout").instances, n);
  EXPECT_EQ(stats("env.fanout").idle, 0) << "all busy";
  gate_.release();
  for (auto& t : callers) t.join();
  std::set<std::uint64_t> ids;
  for (const auto& r : out) {
    ASSERT_TRUE(r) << r.error().message;
    ids.insert(id_of(*r));
  }
  EXPECT_EQ(static_cast<int>(ids.size()), n);
  EXPECT_EQ(inits_.load(), n);
  const InstanceStats s = stats("env.fanout");
  EXPECT_EQ(s.instances, n);
  EXPECT_EQ(s.idle, n);
  EXPECT_EQ(s.cold_starts, static_cast<std::uint64_t>(n));
}

// ---- cold start metrics and REPORT lines ----

TEST_P(EnvLifecycleTest, ColdStartsAndInitDurationAreMeasured) {
  on_init_ = [this](InitContext&) -> Result<void> {
    clock_.advance(absl::Milliseconds(250));
    return {};
  };
  auto fn = add("env.metrics", {.timeout = absl::Minutes(1)}, box_handler());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine().invoke(fn, ""));
  {
    const MetricsSnapshot m = engine().metrics();
    const FunctionMetrics* f = m.function("env.metrics");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->invocations, 3u);
    EXPECT_EQ(f->cold_starts, 1u);
    EXPECT_EQ(f->init_duration.count, 1u);
    EXPECT_EQ(f->init_duration.sum_ns, static_cast<std::uint64_t>(250 * kMs));
    EXPECT_EQ(f->init_duration.max_ns, static_cast<std::uint64_t>(250 * kMs));
  }
  // A second instance while the first is busy: one more cold start, one more sample.
  std::thread holder([&] { EXPECT_TRUE(engine().invoke(fn, "block")); });
  gate_.wait_started(1);
  auto second = engine().invoke(fn, "");
  ASSERT_TRUE(second);
  EXPECT_NE(second->find(" cold "), std::string::npos) << *second;
  gate_.release();
  holder.join();
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics* f = m.function("env.metrics");
  EXPECT_EQ(f->cold_starts, 2u);
  EXPECT_EQ(f->init_duration.count, 2u);
  EXPECT_EQ(f->init_duration.sum_ns, static_cast<std::uint64_t>(500 * kMs));
  EXPECT_EQ(m.total.cold_starts, 2u);
  EXPECT_EQ(stats("env.metrics").cold_starts, 2u);
}

TEST_P(EnvLifecycleTest, ReportLineCarriesInitDurationOnlyOnAColdStart) {
  on_init_ = [this](InitContext&) -> Result<void> {
    clock_.advance(absl::Milliseconds(40));
    return {};
  };
  auto fn = add("env.report", {.report_logs = true}, box_handler());
  ASSERT_TRUE(engine().invoke(fn, ""));
  ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = Dispatch::kPool}));
  const auto reports = reports_.all();
  ASSERT_EQ(reports.size(), 2u);
  ASSERT_TRUE(reports[0].init_duration_ns.has_value());
  EXPECT_EQ(*reports[0].init_duration_ns, 40 * kMs);
  EXPECT_FALSE(reports[0].restore_duration_ns.has_value());
  EXPECT_FALSE(reports[1].init_duration_ns.has_value()) << "a warm invocation ran no init";
  EXPECT_FALSE(reports[1].restore_duration_ns.has_value());
  EXPECT_FALSE(reports[0].scratch_used_bytes.has_value()) << "no scratch directory asked for";
}

// ---- init failures ----

TEST_P(EnvLifecycleTest, InitReturningAnErrorFailsTheInvocationAndIsRetried) {
  std::atomic<bool> broken{true};
  on_init_ = [&](InitContext&) -> Result<void> {
    if (broken.load()) return fail(ErrorCode::kInternal, "database unreachable");
    return {};
  };
  std::atomic<int> handled{0};
  auto fn = add("env.initerr", {}, [&](Context&, std::string_view) -> Result<std::string> {
    handled.fetch_add(1);
    return std::string("ok");
  });
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto out = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
    EXPECT_TRUE(mentions(out.error(), "env.initerr")) << out.error().message;
    EXPECT_TRUE(mentions(out.error(), "database unreachable")) << out.error().message;
  }
  EXPECT_EQ(handled.load(), 0) << "no handler runs without an instance";
  InstanceStats s = stats("env.initerr");
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(s.init_failures, 2u);
  EXPECT_EQ(s.cold_starts, 0u);
  EXPECT_EQ(shutdowns_.load(), 0) << "init made nothing to shut down";
  broken = false;
  auto out = engine().invoke(fn, "");
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(inits_.load(), 3) << "every invocation without an instance tries init again";
  s = stats("env.initerr");
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.cold_starts, 1u);
  EXPECT_EQ(engine().metrics().function("env.initerr")->errors, 2u);
}

TEST_P(EnvLifecycleTest, InitThrowingFailsTheInvocationAndIsRetried) {
  std::atomic<bool> broken{true};
  on_init_ = [&](InitContext&) -> Result<void> {
    if (broken.load()) throw std::runtime_error("config file missing");
    return {};
  };
  auto fn = add("env.initthrow", {}, box_handler());
  auto out = engine().invoke(fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(out.error(), "env.initthrow")) << out.error().message;
  EXPECT_TRUE(mentions(out.error(), "config file missing")) << out.error().message;
  EXPECT_TRUE(mentions(out.error(), "runtime_error")) << out.error().message;
  EXPECT_EQ(stats("env.initthrow").instances, 0);
  EXPECT_EQ(stats("env.initthrow").init_failures, 1u);
  broken = false;
  auto again = engine().invoke(fn, "");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_NE(again->find(" cold "), std::string::npos);
  EXPECT_EQ(inits_.load(), 2);
}

TEST(EnvDefaultsTest, InitTimeoutIsTenSecondsAndIdleTtlFiveMinutes) {
  EXPECT_EQ(FunctionConfig{}.init_timeout, absl::Seconds(10));
  EXPECT_EQ(FunctionConfig{}.idle_ttl, absl::Minutes(5));
  EXPECT_EQ(FunctionConfig{}.provisioned_concurrency, 0);
  EXPECT_FALSE(FunctionConfig{}.snapshot_start);
  EXPECT_FALSE(FunctionConfig{}.scratch_dir);
}

TEST_P(EnvLifecycleTest, InitContextTellsItsFunctionAndTimeLeft) {
  std::string name, version;
  absl::Duration left_at_start, left_later;
  bool cancelled_at_start = true, cancelled_later = false;
  std::uint64_t id = 0;
  on_init_ = [&](InitContext& ctx) -> Result<void> {
    name = std::string(ctx.function_name());
    version = std::string(ctx.function_version());
    id = ctx.instance_id();
    left_at_start = ctx.remaining();
    cancelled_at_start = ctx.cancelled();
    clock_.advance(absl::Seconds(7));
    left_later = ctx.remaining();
    clock_.advance(absl::Seconds(3));
    cancelled_later = ctx.cancelled();
    return fail(ErrorCode::kInternal, "gave up");
  };
  auto fn = add("env.initctx", {.init_timeout = absl::Seconds(10)}, box_handler());
  auto out = engine().invoke(fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(name, "env.initctx");
  EXPECT_EQ(version, "$LATEST");
  EXPECT_NE(id, 0u);
  EXPECT_EQ(left_at_start, absl::Seconds(10));
  EXPECT_FALSE(cancelled_at_start);
  EXPECT_EQ(left_later, absl::Seconds(3));
  EXPECT_TRUE(cancelled_later) << "cancelled once init_timeout has passed";
}

TEST_P(EnvLifecycleTest, InitPastInitTimeoutFailsAndItsStateIsShutDown) {
  std::atomic<bool> slow{true};
  on_init_ = [&](InitContext&) -> Result<void> {
    if (slow.load()) clock_.advance(absl::Seconds(3));
    return {};
  };
  auto fn = add("env.slowinit", {.init_timeout = absl::Seconds(2)}, box_handler());
  auto out = engine().invoke(fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(out.error(), "init_timeout")) << out.error().message;
  EXPECT_TRUE(mentions(out.error(), "env.slowinit")) << out.error().message;
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(shutdowns_.load(), 1) << "the late init's state was released";
  EXPECT_EQ(stats("env.slowinit").instances, 0);
  EXPECT_EQ(stats("env.slowinit").init_failures, 1u);
  slow = false;
  auto again = engine().invoke(fn, "");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(stats("env.slowinit").instances, 1);
}

// InstanceStats::shutdowns counts "shutdown hooks run"; the hook a too-late init's state got
// ran, so it counts.
TEST_P(EnvLifecycleTest, ShutdownOfATooLateInitsStateIsCounted) {
  on_init_ = [&](InitContext&) -> Result<void> {
    clock_.advance(absl::Seconds(3));
    return {};
  };
  auto fn = add("env.slowcount", {.init_timeout = absl::Seconds(2)}, box_handler());
  ASSERT_FALSE(engine().invoke(fn, ""));
  ASSERT_EQ(shutdowns_.load(), 1);
  EXPECT_EQ(stats("env.slowcount").shutdowns, 1u);
}

// ---- discarding ----

TEST_P(EnvLifecycleTest, HandlerThatThrowsHasItsInstanceDiscarded) {
  auto fn = add("env.throws", {}, [](Context& ctx, std::string_view in) -> Result<std::string> {
    if (in == "throw") throw std::logic_error("corrupted state");
    return std::to_string(ctx.instance_id()) + (ctx.cold_start() ? " cold" : " warm");
  });
  auto first = engine().invoke(fn, "");
  ASSERT_TRUE(first);
  auto thrown = engine().invoke(fn, "throw");
  ASSERT_FALSE(thrown);
  EXPECT_EQ(thrown.error().code, ErrorCode::kHandlerFailed);
  InstanceStats s = stats("env.throws");
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(shutdowns_.load(), 1);
  auto next = engine().invoke(fn, "");
  ASSERT_TRUE(next);
  EXPECT_NE(*next, *first);
  EXPECT_NE(next->find(" cold"), std::string::npos) << "the next invocation starts cold";
  EXPECT_EQ(inits_.load(), 2);
}

TEST_P(EnvLifecycleTest, HandlerThatThrowsOnAWorkerHasItsInstanceDiscarded) {
  auto fn = add("env.throwspool", {}, [](Context&, std::string_view) -> Result<std::string> {
    throw std::runtime_error("bad");
  });
  auto out = engine().invoke(fn, "", {.dispatch = Dispatch::kPool});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kHandlerFailed);
  EXPECT_EQ(stats("env.throwspool").discarded, 1u);
  EXPECT_EQ(stats("env.throwspool").instances, 0);
  EXPECT_EQ(shutdowns_.load(), 1);
}

TEST_P(EnvLifecycleTest, HandlerThatOverrunsItsDeadlineHasItsInstanceDiscarded) {
  auto fn = add("env.overrun", {.timeout = absl::Seconds(1)},
                [this](Context& ctx, std::string_view in) -> Result<std::string> {
                  if (in == "slow") clock_.advance(absl::Seconds(2));  // past the deadline
                  return std::to_string(ctx.instance_id());
                });
  auto first = engine().invoke(fn, "");
  ASSERT_TRUE(first);
  auto late = engine().invoke(fn, "slow");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(stats("env.overrun").discarded, 1u);
  EXPECT_EQ(stats("env.overrun").instances, 0);
  EXPECT_EQ(shutdowns_.load(), 1);
  auto next = engine().invoke(fn, "");
  ASSERT_TRUE(next);
  EXPECT_NE(*next, *first) << "a new instance";
  EXPECT_EQ(stats("env.overrun").cold_starts, 2u);
}

TEST_P(EnvLifecycleTest, PooledHandlerStillRunningAtItsDeadlineHasItsInstanceDiscarded) {
  auto fn = add("env.watchdog", {.timeout = absl::Seconds(1)}, box_handler());
  Result<std::string> out;
  std::thread caller([&] { out = engine().invoke(fn, "block", {.dispatch = Dispatch::kPool}); });
  gate_.wait_started(1);
  clock_.advance(absl::Seconds(2));
  caller.join();  // released at the deadline while the handler still runs
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(shutdowns_.load(), 0) << "busy: not shut down under its handler";
  gate_.release();
  ASSERT_TRUE(
      eventually([&] { return stats("env.watchdog").discarded == 1 && shutdowns_.load() == 1; }));
  EXPECT_EQ(stats("env.watchdog").instances, 0);
  EXPECT_EQ(shutdowns_.load(), 1);
}

TEST_P(EnvLifecycleTest, HandlerThatSleepsPastItsDeadlineHasItsInstanceDiscarded) {
  Event sleeping;
  auto fn = add("env.sleeper", {.timeout = absl::Seconds(1)},
                [&](Context& ctx, std::string_view in) -> Result<std::string> {
                  if (in == "sleep") {
                    sleeping.set();
                    if (auto ok = ctx.sleep_for(absl::Seconds(5)); !ok)
                      return tl::unexpected<Error>(ok.error());  // kTimeout at the deadline
                  }
                  return std::to_string(ctx.instance_id());
                });
  auto first = engine().invoke(fn, "");
  ASSERT_TRUE(first);
  Result<std::string> out;
  std::thread caller([&] { out = engine().invoke(fn, "sleep"); });
  sleeping.wait();
  clock_.advance(absl::Seconds(1));
  caller.join();
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(stats("env.sleeper").discarded, 1u);
  EXPECT_EQ(shutdowns_.load(), 1);
  auto next = engine().invoke(fn, "");
  ASSERT_TRUE(next);
  EXPECT_NE(*next, *first);
}

TEST_P(EnvLifecycleTest, InlineInitDoesNotEatTheHandlersTime) {
  on_init_ = [this](InitContext&) -> Result<void> {
    clock_.advance(absl::Seconds(5));  // within init_timeout, past the function's timeout
    return {};
  };
  absl::Duration left;
  auto fn = add("env.longinit", {.timeout = absl::Seconds(1)},
                [&](Context& ctx, std::string_view) -> Result<std::string> {
                  left = ctx.remaining();
                  return std::string("ok");
                });
  auto out = engine().invoke(fn, "");
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(left, absl::Seconds(1));
  EXPECT_EQ(stats("env.longinit").instances, 1);
}

TEST_P(EnvLifecycleTest, HandlerReturningAnErrorKeepsItsInstanceWarm) {
  auto fn = add("env.error", {}, [](Context& ctx, std::string_view in) -> Result<std::string> {
    if (in == "fail") return fail(ErrorCode::kInvalidArgument, "bad order");
    return std::to_string(ctx.instance_id()) + (ctx.cold_start() ? " cold" : " warm");
  });
  auto first = engine().invoke(fn, "");
  ASSERT_TRUE(first);
  auto failed = engine().invoke(fn, "fail");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kInvalidArgument) << "the handler's own error";
  EXPECT_TRUE(mentions(failed.error(), "bad order")) << failed.error().message;
  auto next = engine().invoke(fn, "");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->substr(0, next->find(' ')), first->substr(0, first->find(' ')));
  EXPECT_NE(next->find(" warm"), std::string::npos);
  EXPECT_EQ(stats("env.error").discarded, 0u);
  EXPECT_EQ(shutdowns_.load(), 0);
}

TEST_P(EnvLifecycleTest, InitMayReturnANullState) {
  Lifecycle l;
  l.init = [](InitContext&) -> Result<void*> { return static_cast<void*>(nullptr); };
  std::atomic<int> shut{0};
  l.shutdown = [&](void* state) {
    if (state == nullptr) shut.fetch_add(1);
  };
  auto fn = engine().register_function("env.null", {}, std::move(l),
                                       [](Context& ctx, std::string_view) -> Result<std::string> {
                                         if (ctx.instance() != nullptr)
                                           return fail(ErrorCode::kInternal, "instance()");
                                         if (ctx.instance_id() == 0)
                                           return fail(ErrorCode::kInternal, "no instance id");
                                         return std::string(ctx.cold_start() ? "cold" : "warm");
                                       });
  ASSERT_TRUE(fn);
  EXPECT_EQ(engine().invoke(*fn, "").value_or("error"), "cold");
  EXPECT_EQ(engine().invoke(*fn, "").value_or("error"), "warm");
  engine_.reset();
  EXPECT_EQ(shut.load(), 1) << "shutdown gets the null state once";
}

TEST_P(EnvLifecycleTest, ShutdownHookThatThrowsIsContained) {
  Lifecycle l = lifecycle();
  l.shutdown = [this](void* state) {
    shutdowns_.fetch_add(1);
    delete static_cast<Box*>(state);
    throw std::runtime_error("close failed");
  };
  auto fn = engine().register_function("env.badshutdown", {}, std::move(l),
                                       [](Context&, std::string_view in) -> Result<std::string> {
                                         if (in == "throw") throw std::runtime_error("bad");
                                         return std::string("ok");
                                       });
  ASSERT_TRUE(fn);
  ASSERT_TRUE(engine().invoke(*fn, ""));
  auto out = engine().invoke(*fn, "throw");  // discards: its shutdown throws
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kHandlerFailed);
  EXPECT_EQ(shutdowns_.load(), 1);
  EXPECT_EQ(stats("env.badshutdown").shutdowns, 1u);
  EXPECT_TRUE(engine().invoke(*fn, "")) << "the engine goes on";
}

// ---- typed and async ----

TEST_P(EnvLifecycleTest, TypedHandlerRunsOnInstances) {
  auto fn = engine().register_function<int, int>("env.typed", {}, lifecycle(),
                                                 [](Context& ctx, const int& in) -> Result<int> {
                                                   Box* box = ctx.state<Box>();
                                                   if (box == nullptr)
                                                     return fail(ErrorCode::kInternal, "no state");
                                                   box->calls += in;
                                                   return box->calls;
                                                 });
  ASSERT_TRUE(fn) << fn.error().message;
  EXPECT_EQ(engine().invoke<int>(*fn, 2).value(), 2);
  EXPECT_EQ(engine().invoke<int>(*fn, 3, {.dispatch = Dispatch::kPool}).value(), 5);
  EXPECT_EQ(engine().invoke<int>(*fn, 4).value(), 9) << "one warm instance kept the sum";
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(stats("env.typed").cold_starts, 1u);
}

TEST_P(EnvLifecycleTest, AsyncInvokesRunOnInstancesAndReuseThem) {
  auto fn = add("env.async", {}, box_handler());
  auto first = engine().invoke_future(fn, "").get();
  auto second = engine().invoke_future(fn, "").get();
  ASSERT_TRUE(first && second);
  EXPECT_NE(first->find(" cold 1"), std::string::npos) << *first;
  EXPECT_EQ(id_of(*second), id_of(*first));
  EXPECT_NE(second->find(" warm 2"), std::string::npos) << *second;
  std::promise<Result<std::string>> done;
  ASSERT_TRUE(
      engine().invoke_async(fn, "", [&](Result<std::string> r) { done.set_value(std::move(r)); }));
  auto third = done.get_future().get();
  ASSERT_TRUE(third);
  EXPECT_EQ(id_of(*third), id_of(*first));
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(stats("env.async").idle, 1);
}

TEST_P(EnvLifecycleTest, AsyncInitFailureReachesTheCallback) {
  on_init_ = [](InitContext&) -> Result<void> { return fail(ErrorCode::kInternal, "nope"); };
  auto fn = add("env.asyncfail", {}, box_handler());
  auto out = engine().invoke_future(fn, "").get();
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_EQ(stats("env.asyncfail").init_failures, 1u);
  EXPECT_EQ(stats("env.asyncfail").instances, 0);
}

}  // namespace
}  // namespace ember::testing
