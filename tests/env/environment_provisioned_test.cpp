// Execution environments: provisioned concurrency (made before registration returns, served
// warm, spillover to on-demand instances, set_provisioned_concurrency up and down, the config
// rules), reaping of idle on-demand instances after idle_ttl, and engine shutdown running every
// instance's shutdown hook exactly once.
//
// Reaping runs on the engine's timer thread when the ManualClock moves: a test advances the
// clock, then waits (bounded, on a condition polled against instance_stats) for the reap to
// show. Handlers that must overlap block on an Event.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

struct Box {
  explicit Box(std::uint64_t instance_id) : id(instance_id) {}
  std::uint64_t id;
  int calls = 0;
};

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

// Polls `pred` until it holds or a generous real-time cap passes (then false). For what the
// engine's timer thread does after the ManualClock moved.
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

// An engine on a ManualClock, and a Lifecycle over Box (init, clone, shutdown counted).
// `fail_init_at_`: the init call with that ordinal (1-based) fails; 0 = none.
class EnvProvisionedTest : public ::testing::Test {
 protected:
  Engine& engine() {
    if (!engine_) {
      EngineOptions o;
      o.workers = 2;
      o.clock = &clock_;
      o.log_sink = logs_.sink();
      engine_ = std::make_unique<Engine>(o);
    }
    return *engine_;
  }
  Lifecycle lifecycle() {
    Lifecycle l;
    l.init = [this](InitContext& ctx) -> Result<void*> {
      const int n = inits_.fetch_add(1) + 1;
      if (n == fail_init_at_.load()) return fail(ErrorCode::kInternal, "init refused");
      return static_cast<void*>(new Box(ctx.instance_id()));
    };
    l.clone = [this](const void*, InitContext& ctx) -> Result<void*> {
      clones_.fetch_add(1);
      return static_cast<void*>(new Box(ctx.instance_id()));
    };
    l.shutdown = [this](void* state) {
      shutdowns_.fetch_add(1);
      delete static_cast<Box*>(state);
    };
    l.state_type = &typeid(Box);
    return l;
  }
  // "<instance id> <cold|warm>"; payload "block" waits on gate_ first.
  BytesHandler handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      Box* box = ctx.state<Box>();
      if (box == nullptr) return fail(ErrorCode::kInternal, "no state");
      ++box->calls;
      if (in == "block") gate_.arrive();
      return std::to_string(box->id) + (ctx.cold_start() ? " cold" : " warm");
    };
  }
  Result<FunctionHandle> add(std::string_view name, FunctionConfig config) {
    return engine().register_function(name, config, lifecycle(), handler());
  }
  InstanceStats stats(std::string_view name) {
    auto s = engine().instance_stats(name);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return s.value_or(InstanceStats{});
  }
  FunctionMetrics metrics(std::string_view name) {
    const MetricsSnapshot m = engine().metrics();
    const FunctionMetrics* f = m.function(name);
    EXPECT_NE(f, nullptr) << name;
    return f != nullptr ? *f : FunctionMetrics{};
  }
  static bool cold(const Result<std::string>& r) {
    return r && r->find(" cold") != std::string::npos;
  }
  static std::uint64_t id_of(const Result<std::string>& r) { return r ? std::stoull(*r) : 0; }

  std::atomic<int> inits_{0}, clones_{0}, shutdowns_{0}, fail_init_at_{0};
  Gate gate_;
  ManualClock clock_;
  LogCapture logs_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first
};

// ---- provisioned concurrency ----

TEST_F(EnvProvisionedTest, ProvisionedInstancesAreMadeBeforeRegistrationReturns) {
  auto fn = add("prov.made", {.reserved_concurrency = 2, .provisioned_concurrency = 2});
  ASSERT_TRUE(fn) << fn.error().message;
  EXPECT_EQ(inits_.load(), 2);
  const InstanceStats s = stats("prov.made");
  EXPECT_EQ(s.instances, 2);
  EXPECT_EQ(s.idle, 2);
  EXPECT_EQ(s.provisioned, 2);
  EXPECT_EQ(s.provisioned_target, 2);
  EXPECT_EQ(s.cold_starts, 0u) << "provisioning is not a cold start";
}

TEST_F(EnvProvisionedTest, ProvisionedInstancesServeWarm) {
  auto fn = add("prov.warm", {.reserved_concurrency = 2, .provisioned_concurrency = 2});
  ASSERT_TRUE(fn);
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool, Dispatch::kInline}) {
    auto out = engine().invoke(*fn, "", {.dispatch = d});
    ASSERT_TRUE(out) << out.error().message;
    EXPECT_FALSE(cold(out)) << *out;
  }
  EXPECT_EQ(inits_.load(), 2);
  const FunctionMetrics f = metrics("prov.warm");
  EXPECT_EQ(f.cold_starts, 0u);
  EXPECT_EQ(f.init_duration.count, 0u);
  EXPECT_EQ(f.provisioned_invocations, 3u);
  EXPECT_EQ(f.provisioned_spillover_invocations, 0u);
}

TEST_F(EnvProvisionedTest, InvocationsBeyondProvisionedSpillOverToOnDemandInstances) {
  auto fn =
      add("prov.spill",
          {.timeout = absl::Minutes(1), .reserved_concurrency = 4, .provisioned_concurrency = 2});
  ASSERT_TRUE(fn);
  std::vector<Result<std::string>> out(3);
  std::vector<std::thread> callers;
  for (int i = 0; i < 3; ++i)
    callers.emplace_back([&, i] { out[i] = engine().invoke(*fn, "block"); });
  gate_.wait_started(3);
  gate_.release();
  for (auto& t : callers) t.join();
  int colds = 0;
  std::set<std::uint64_t> ids;
  for (const auto& r : out) {
    ASSERT_TRUE(r) << r.error().message;
    colds += cold(r) ? 1 : 0;
    ids.insert(id_of(r));
  }
  EXPECT_EQ(colds, 1);
  EXPECT_EQ(ids.size(), 3u);
  const FunctionMetrics f = metrics("prov.spill");
  EXPECT_EQ(f.provisioned_invocations, 2u);
  EXPECT_EQ(f.provisioned_spillover_invocations, 1u);
  EXPECT_EQ(f.cold_starts, 1u);
  const InstanceStats s = stats("prov.spill");
  EXPECT_EQ(s.instances, 3);
  EXPECT_EQ(s.provisioned, 2);
  // Served one at a time again, the provisioned ones come first.
  auto next = engine().invoke(*fn, "");
  ASSERT_TRUE(next);
  EXPECT_EQ(metrics("prov.spill").provisioned_invocations, 3u);
}

TEST_F(EnvProvisionedTest, ProvisionedAboveReservedIsRefused) {
  auto fn = add("prov.over", {.reserved_concurrency = 2, .provisioned_concurrency = 3});
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "provisioned_concurrency")) << fn.error().message;
  EXPECT_EQ(inits_.load(), 0);
  EXPECT_EQ(engine().function("prov.over").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().instance_stats("prov.over").error().code, ErrorCode::kNotFound);
}

TEST_F(EnvProvisionedTest, ProvisionedWithoutReservedIsRefused) {
  auto fn = add("prov.unreserved", {.provisioned_concurrency = 1});
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "provisioned_concurrency")) << fn.error().message;
  EXPECT_EQ(inits_.load(), 0);
  EXPECT_EQ(engine().function("prov.unreserved").error().code, ErrorCode::kNotFound);
}

TEST_F(EnvProvisionedTest, ProvisionedOnAStatelessFunctionIsRefused) {
  auto fn = engine().register_function(
      "prov.stateless", {.reserved_concurrency = 2, .provisioned_concurrency = 1}, echo_handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "provisioned_concurrency")) << fn.error().message;
  EXPECT_EQ(engine().function("prov.stateless").error().code, ErrorCode::kNotFound);
}

TEST_F(EnvProvisionedTest, NegativeProvisionedIsRefused) {
  auto fn = add("prov.negative", {.reserved_concurrency = 2, .provisioned_concurrency = -1});
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "provisioned_concurrency")) << fn.error().message;
}

TEST_F(EnvProvisionedTest, InitFailureWhileProvisioningRegistersNothing) {
  fail_init_at_ = 2;  // the second of three provisioned instances
  auto fn = add("prov.broken", {.reserved_concurrency = 3, .provisioned_concurrency = 3});
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(fn.error(), "prov.broken")) << fn.error().message;
  EXPECT_TRUE(mentions(fn.error(), "init refused")) << fn.error().message;
  EXPECT_EQ(inits_.load(), 2) << "it stopped at the failure";
  EXPECT_EQ(shutdowns_.load(), 1) << "the instance made before the failure was shut down";
  EXPECT_EQ(engine().function("prov.broken").error().code, ErrorCode::kNotFound);
  // Nothing of it is left: the name and its reservation are free.
  fail_init_at_ = 0;
  auto again = add("prov.broken", {.reserved_concurrency = 3, .provisioned_concurrency = 3});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(stats("prov.broken").provisioned, 3);
}

TEST_F(EnvProvisionedTest, SetProvisionedConcurrencyUpMakesInstancesBeforeReturning) {
  auto fn = add("prov.up", {.reserved_concurrency = 3});
  ASSERT_TRUE(fn);
  EXPECT_EQ(inits_.load(), 0);
  auto ok = engine().set_provisioned_concurrency("prov.up", 2);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(inits_.load(), 2);
  InstanceStats s = stats("prov.up");
  EXPECT_EQ(s.provisioned, 2);
  EXPECT_EQ(s.provisioned_target, 2);
  EXPECT_EQ(s.idle, 2);
  auto out = engine().invoke(*fn, "");
  ASSERT_TRUE(out);
  EXPECT_FALSE(cold(out));
  EXPECT_EQ(metrics("prov.up").provisioned_invocations, 1u);
  ASSERT_TRUE(engine().set_provisioned_concurrency("prov.up", 3));
  EXPECT_EQ(inits_.load(), 3) << "only the one more";
  EXPECT_EQ(stats("prov.up").provisioned, 3);
}

TEST_F(EnvProvisionedTest, SetProvisionedConcurrencyDownLetsTheSurplusBeReaped) {
  auto fn =
      add("prov.down",
          {.reserved_concurrency = 2, .provisioned_concurrency = 2, .idle_ttl = absl::Minutes(1)});
  ASSERT_TRUE(fn);
  ASSERT_TRUE(engine().set_provisioned_concurrency("prov.down", 1));
  InstanceStats s = stats("prov.down");
  EXPECT_EQ(s.provisioned, 1);
  EXPECT_EQ(s.provisioned_target, 1);
  EXPECT_EQ(s.instances, 2) << "the surplus lives on as on-demand until idle_ttl";
  clock_.advance(absl::Minutes(1));
  ASSERT_TRUE(eventually([&] { return stats("prov.down").reaped == 1 && shutdowns_.load() == 1; }));
  s = stats("prov.down");
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.provisioned, 1);
  EXPECT_EQ(shutdowns_.load(), 1);
  ASSERT_TRUE(engine().set_provisioned_concurrency("prov.down", 0));
  clock_.advance(absl::Minutes(1));
  ASSERT_TRUE(eventually([&] { return stats("prov.down").reaped == 2 && shutdowns_.load() == 2; }));
  EXPECT_EQ(stats("prov.down").instances, 0);
  EXPECT_EQ(shutdowns_.load(), 2);
  auto out = engine().invoke(*fn, "");
  ASSERT_TRUE(out);
  EXPECT_TRUE(cold(out));
  EXPECT_EQ(metrics("prov.down").provisioned_spillover_invocations, 0u)
      << "with no provisioned concurrency left there is nothing to spill over from";
}

TEST_F(EnvProvisionedTest, SetProvisionedConcurrencyDownDemotesABusyInstance) {
  auto fn = add("prov.busydown", {.timeout = absl::Minutes(10),
                                  .reserved_concurrency = 2,
                                  .provisioned_concurrency = 1,
                                  .idle_ttl = absl::Minutes(1)});
  ASSERT_TRUE(fn);
  std::thread holder([&] { EXPECT_FALSE(cold(engine().invoke(*fn, "block"))); });
  gate_.wait_started(1);
  ASSERT_TRUE(engine().set_provisioned_concurrency("prov.busydown", 0));
  EXPECT_EQ(stats("prov.busydown").provisioned, 0) << "on-demand once it is back";
  EXPECT_EQ(shutdowns_.load(), 0) << "not shut down under its handler";
  gate_.release();
  holder.join();
  EXPECT_EQ(stats("prov.busydown").idle, 1);
  clock_.advance(absl::Minutes(1));
  ASSERT_TRUE(
      eventually([&] { return stats("prov.busydown").reaped == 1 && shutdowns_.load() == 1; }));
  EXPECT_EQ(stats("prov.busydown").instances, 0);
}

TEST_F(EnvProvisionedTest, SetProvisionedConcurrencyErrors) {
  ASSERT_TRUE(add("prov.errors", {.reserved_concurrency = 2}));
  ASSERT_TRUE(
      engine().register_function("prov.plain", {.reserved_concurrency = 2}, echo_handler()));
  auto missing = engine().set_provisioned_concurrency("prov.nothing", 1);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  auto stateless = engine().set_provisioned_concurrency("prov.plain", 1);
  ASSERT_FALSE(stateless);
  EXPECT_EQ(stateless.error().code, ErrorCode::kInvalidArgument);
  auto negative = engine().set_provisioned_concurrency("prov.errors", -1);
  ASSERT_FALSE(negative);
  EXPECT_EQ(negative.error().code, ErrorCode::kInvalidArgument);
  auto over = engine().set_provisioned_concurrency("prov.errors", 3);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(over.error(), "reserved")) << over.error().message;
  EXPECT_EQ(inits_.load(), 0);
  EXPECT_EQ(stats("prov.errors").provisioned_target, 0);
}

TEST_F(EnvProvisionedTest, SetProvisionedConcurrencyInitFailureKeepsTheOldCount) {
  auto fn = add("prov.partial", {.reserved_concurrency = 3, .provisioned_concurrency = 1});
  ASSERT_TRUE(fn);
  fail_init_at_ = 3;  // registration made #1; the increase makes #2 and fails at #3
  auto up = engine().set_provisioned_concurrency("prov.partial", 3);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().code, ErrorCode::kInitFailed);
  EXPECT_EQ(shutdowns_.load(), 1) << "#2, made by the failed call, was shut down";
  const InstanceStats s = stats("prov.partial");
  EXPECT_EQ(s.provisioned, 1);
  EXPECT_EQ(s.provisioned_target, 1);
  EXPECT_EQ(s.instances, 1);
}

TEST_F(EnvProvisionedTest, ProvisioningInitPastInitTimeoutRegistersNothing) {
  Lifecycle l = lifecycle();
  l.init = [this](InitContext& ctx) -> Result<void*> {
    inits_.fetch_add(1);
    clock_.advance(absl::Seconds(11));  // past the default init_timeout
    return static_cast<void*>(new Box(ctx.instance_id()));
  };
  auto fn = engine().register_function("prov.slow",
                                       {.reserved_concurrency = 2, .provisioned_concurrency = 2},
                                       std::move(l), handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(fn.error(), "init_timeout")) << fn.error().message;
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(shutdowns_.load(), 1) << "the late state was released";
  EXPECT_EQ(engine().function("prov.slow").error().code, ErrorCode::kNotFound);
}

TEST_F(EnvProvisionedTest, ProvisioningIsNotLimitedByTheScaleUpGuard) {
  auto fn = add("prov.guard", {.timeout = absl::Minutes(1),
                               .reserved_concurrency = 5,
                               .provisioned_concurrency = 3,
                               .max_new_instances_per_second = 1});
  ASSERT_TRUE(fn) << fn.error().message;
  EXPECT_EQ(inits_.load(), 3);
  ASSERT_TRUE(engine().set_provisioned_concurrency("prov.guard", 4));
  EXPECT_EQ(inits_.load(), 4);
  // The guard's one token is still there for an on-demand instance.
  std::vector<std::thread> holders;
  for (int i = 0; i < 4; ++i) {
    holders.emplace_back([&] { EXPECT_FALSE(cold(engine().invoke(*fn, "block"))); });
  }
  gate_.wait_started(4);
  auto spilled = engine().invoke(*fn, "");
  EXPECT_TRUE(cold(spilled)) << (spilled ? *spilled : spilled.error().message);
  gate_.release();
  for (auto& t : holders) t.join();
  EXPECT_EQ(stats("prov.guard").scale_up_throttles, 0u);
}

TEST_F(EnvProvisionedTest, InitContextLogsThroughTheEngineSink) {
  Lifecycle l = lifecycle();
  l.init = [this](InitContext& ctx) -> Result<void*> {
    inits_.fetch_add(1);
    ctx.log("warming up");
    return static_cast<void*>(new Box(ctx.instance_id()));
  };
  auto fn = engine().register_function("prov.log", {}, std::move(l), handler());
  ASSERT_TRUE(fn);
  ASSERT_TRUE(engine().invoke(*fn, ""));
  EXPECT_TRUE(logs_.contains("prov.log||warming up"));
}

// ---- reaping ----

TEST_F(EnvProvisionedTest, IdleOnDemandInstancesAreReapedAfterIdleTtlProvisionedAreNot) {
  auto fn = add("reap.mixed", {.timeout = absl::Minutes(10),
                               .reserved_concurrency = 2,
                               .provisioned_concurrency = 1,
                               .idle_ttl = absl::Minutes(1)});
  ASSERT_TRUE(fn);
  std::thread holder([&] { EXPECT_TRUE(engine().invoke(*fn, "block")); });  // the provisioned one
  gate_.wait_started(1);
  auto spilled = engine().invoke(*fn, "");
  ASSERT_TRUE(cold(spilled));
  gate_.release();
  holder.join();
  ASSERT_EQ(stats("reap.mixed").instances, 2);
  clock_.advance(absl::Minutes(1));
  ASSERT_TRUE(
      eventually([&] { return stats("reap.mixed").reaped == 1 && shutdowns_.load() == 1; }));
  const InstanceStats s = stats("reap.mixed");
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.provisioned, 1) << "the provisioned instance is never reaped";
  EXPECT_EQ(shutdowns_.load(), 1);
  clock_.advance(absl::Hours(1));
  auto out = engine().invoke(*fn, "");
  ASSERT_TRUE(out);
  EXPECT_FALSE(cold(out)) << "still warm an hour later";
  EXPECT_EQ(stats("reap.mixed").reaped, 1u);
  engine_.reset();
  EXPECT_EQ(shutdowns_.load(), inits_.load()) << "each hook ran exactly once";
}

TEST_F(EnvProvisionedTest, ReapedInstanceIsReplacedByAColdStart) {
  auto fn = add("reap.cold", {.idle_ttl = absl::Minutes(5)});
  ASSERT_TRUE(fn);
  auto first = engine().invoke(*fn, "");
  ASSERT_TRUE(cold(first));
  clock_.advance(absl::Minutes(5));
  ASSERT_TRUE(eventually(
      [&] { return stats("reap.cold").reaped == 1 && stats("reap.cold").shutdowns == 1; }));
  EXPECT_EQ(stats("reap.cold").instances, 0);
  EXPECT_EQ(stats("reap.cold").shutdowns, 1u);
  EXPECT_EQ(shutdowns_.load(), 1);
  auto second = engine().invoke(*fn, "");
  ASSERT_TRUE(cold(second));
  EXPECT_NE(id_of(second), id_of(first));
  EXPECT_EQ(inits_.load(), 2);
  engine_.reset();
  EXPECT_EQ(shutdowns_.load(), 2) << "the reaped one was not shut down again";
}

TEST_F(EnvProvisionedTest, OnlyInstancesIdleForIdleTtlAreReaped) {
  auto fn = add("reap.recent", {.timeout = absl::Minutes(10), .idle_ttl = absl::Seconds(60)});
  ASSERT_TRUE(fn);
  // Two instances, both idle from t0.
  std::thread holder([&] { EXPECT_TRUE(engine().invoke(*fn, "block")); });
  gate_.wait_started(1);
  ASSERT_TRUE(cold(engine().invoke(*fn, "")));
  gate_.release();
  holder.join();
  ASSERT_EQ(stats("reap.recent").instances, 2);
  // At t0 + 40 s one of them serves again; at t0 + 80 s only the other is past idle_ttl.
  clock_.advance(absl::Seconds(40));
  auto used = engine().invoke(*fn, "");
  ASSERT_TRUE(used);
  clock_.advance(absl::Seconds(40));
  ASSERT_TRUE(
      eventually([&] { return stats("reap.recent").reaped == 1 && shutdowns_.load() == 1; }));
  EXPECT_EQ(stats("reap.recent").instances, 1);
  auto again = engine().invoke(*fn, "");
  ASSERT_TRUE(again);
  EXPECT_EQ(id_of(again), id_of(used)) << "the recently used instance survived";
  // Idle from t0 + 80 s: reaped at t0 + 140 s.
  clock_.advance(absl::Seconds(60));
  ASSERT_TRUE(
      eventually([&] { return stats("reap.recent").reaped == 2 && shutdowns_.load() == 2; }));
  EXPECT_EQ(stats("reap.recent").instances, 0);
  EXPECT_EQ(shutdowns_.load(), 2);
}

// Many callers, both dispatches, provisioned concurrency going up and down and reaps running
// at once: an instance never serves two invocations at a time, and every instance made is shut
// down exactly once.
TEST_F(EnvProvisionedTest, InstancesAreNeverSharedUnderLoad) {
  struct Busy {
    std::atomic<bool> in_use{false};
  };
  std::atomic<int> made{0}, released{0}, shared{0};
  Lifecycle l;
  l.init = [&](InitContext&) -> Result<void*> {
    made.fetch_add(1);
    return static_cast<void*>(new Busy);
  };
  l.shutdown = [&](void* state) {
    released.fetch_add(1);
    delete static_cast<Busy*>(state);
  };
  l.state_type = &typeid(Busy);
  auto fn = engine().register_function("load.env",
                                       {.timeout = absl::Hours(24),
                                        .reserved_concurrency = 8,
                                        .idle_ttl = absl::Seconds(1),
                                        .max_new_instances_per_second = 0},
                                       std::move(l),
                                       [&](Context& ctx, std::string_view) -> Result<std::string> {
                                         Busy* b = ctx.state<Busy>();
                                         if (b == nullptr)
                                           return fail(ErrorCode::kInternal, "no state");
                                         if (b->in_use.exchange(true)) shared.fetch_add(1);
                                         (void)ctx.yield();
                                         b->in_use.store(false);
                                         return std::string("ok");
                                       });
  ASSERT_TRUE(fn);
  constexpr int kCallers = 4;
  constexpr int kEach = 300;
  std::atomic<int> failures{0}, completed{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kEach; ++i) {
        const Dispatch d = (i + c) % 2 == 0 ? Dispatch::kInline : Dispatch::kPool;
        Result<std::string> r = engine().invoke(*fn, "", {.dispatch = d});
        if (!r) failures.fetch_add(1);
        completed.fetch_add(1);
      }
    });
  }
  // 200 steps spread over the run; 200 s on the clock stays far inside the timeout.
  std::thread churn([&] {
    constexpr int kSteps = 200;
    for (int i = 0; i < kSteps && !done.load(); ++i) {
      while (completed.load() < i * kCallers * kEach / kSteps && !done.load())
        std::this_thread::yield();
      (void)engine().set_provisioned_concurrency("load.env", i % 3);
      clock_.advance(absl::Seconds(1));  // due reaps run on the timer thread
    }
  });
  for (auto& t : callers) t.join();
  done = true;
  churn.join();
  EXPECT_EQ(shared.load(), 0) << "an instance served two invocations at once";
  EXPECT_EQ(failures.load(), 0);
  const InstanceStats s = stats("load.env");
  EXPECT_EQ(static_cast<int>(s.shutdowns) + s.instances, made.load())
      << "every instance made is either live or shut down";
  engine_.reset();
  EXPECT_EQ(released.load(), made.load()) << "each shut down exactly once";
}

// ---- engine shutdown ----

TEST_F(EnvProvisionedTest, EngineShutdownRunsEveryShutdownHookOnce) {
  auto fn = add("down.all", {.timeout = absl::Minutes(1),
                             .reserved_concurrency = 4,
                             .provisioned_concurrency = 1,
                             .snapshot_start = true});
  ASSERT_TRUE(fn) << fn.error().message;
  ASSERT_EQ(inits_.load(), 1);   // the snapshot
  ASSERT_EQ(clones_.load(), 1);  // the provisioned instance
  std::thread busy([&] { EXPECT_TRUE(engine().invoke(*fn, "block")); });  // provisioned, busy
  gate_.wait_started(1);
  ASSERT_TRUE(cold(engine().invoke(*fn, "")));  // an on-demand instance, idle now
  ASSERT_EQ(clones_.load(), 2);
  std::thread stopper([&] { engine().shutdown(); });
  ASSERT_TRUE(eventually([&] { return engine().shutting_down(); }));
  gate_.release();
  busy.join();
  stopper.join();
  EXPECT_EQ(shutdowns_.load(), 3) << "snapshot, provisioned and on-demand instance";
  EXPECT_EQ(stats("down.all").instances, 0);
  engine_.reset();
  EXPECT_EQ(shutdowns_.load(), 3) << "and none twice";
}

TEST_F(EnvProvisionedTest, ShutdownPastItsDrainShutsDownBusyInstancesWhenTheyReturn) {
  auto fn =
      add("down.busy",
          {.timeout = absl::Minutes(1), .reserved_concurrency = 4, .provisioned_concurrency = 1});
  ASSERT_TRUE(fn);
  std::thread busy([&] { EXPECT_TRUE(engine().invoke(*fn, "block")); });  // provisioned, busy
  gate_.wait_started(1);
  ASSERT_TRUE(cold(engine().invoke(*fn, "")));  // on-demand, idle
  engine().shutdown(absl::ZeroDuration());
  EXPECT_EQ(shutdowns_.load(), 1) << "the idle one at once";
  gate_.release();
  busy.join();
  EXPECT_EQ(shutdowns_.load(), 2) << "the busy one as it came back";
  engine_.reset();
  EXPECT_EQ(shutdowns_.load(), 2);
}

TEST_F(EnvProvisionedTest, EngineDestructorShutsDownIdleInstances) {
  auto fn = add("down.dtor", {.reserved_concurrency = 2, .provisioned_concurrency = 2});
  ASSERT_TRUE(fn);
  ASSERT_TRUE(engine().invoke(*fn, ""));
  engine_.reset();
  EXPECT_EQ(inits_.load(), 2);
  EXPECT_EQ(shutdowns_.load(), 2);
}

}  // namespace
}  // namespace ember::testing
