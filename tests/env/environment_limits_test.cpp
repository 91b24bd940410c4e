// Execution environments: the limits. The scale-up guard (max_new_instances_per_second, a
// token bucket on the engine's clock) and the memory limit (memory_mb, enforced on
// Context::memory() and InitContext::memory(), for stateful and stateless functions), with
// what REPORT lines and metrics say about memory.
//
// The big allocations here never touch memory: a refused one is refused before the upstream
// resource is asked, and an accepted one is reserve()d, not written.
#include <atomic>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct Box {
  explicit Box(InitContext& ctx) : id(ctx.instance_id()), held(ctx.memory()) {}
  std::uint64_t id;
  std::pmr::vector<char> held;  // from the instance's memory: counts against every invocation
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

class EnvLimitsTest : public ::testing::Test {
 protected:
  Engine& engine() {
    if (!engine_) {
      EngineOptions o;
      o.workers = 2;
      o.clock = &clock_;
      o.log_sink = reports_.sink();
      engine_ = std::make_unique<Engine>(o);
    }
    return *engine_;
  }
  Lifecycle lifecycle() {
    Lifecycle l;
    l.init = [this](InitContext& ctx) -> Result<void*> {
      inits_.fetch_add(1);
      auto* box = new Box(ctx);
      if (state_bytes_ > 0) box->held.reserve(state_bytes_);
      return static_cast<void*>(box);
    };
    l.shutdown = [this](void* state) {
      shutdowns_.fetch_add(1);
      delete static_cast<Box*>(state);
    };
    l.state_type = &typeid(Box);
    return l;
  }
  // Payload "block" waits on gate_; "alloc:<MiB>" reserves that much from Context::memory();
  // "catch:<MiB>" the same, catching bad_alloc. Answers "<instance id> <cold|warm>".
  BytesHandler handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      if (in == "block") gate_.arrive();
      if (in.starts_with("alloc:") || in.starts_with("catch:")) {
        std::pmr::vector<char> buffer(ctx.memory());
        const std::size_t mib = std::stoul(std::string(in.substr(6)));
        if (in.starts_with("catch:")) {
          try {
            buffer.reserve(mib * kMiB);
          } catch (const std::bad_alloc&) {
            return std::string("caught");
          }
        } else {
          buffer.reserve(mib * kMiB);
        }
      }
      return std::to_string(ctx.instance_id()) + (ctx.cold_start() ? " cold" : " warm");
    };
  }
  FunctionHandle add(std::string_view name, FunctionConfig config) {
    auto fn = engine().register_function(name, config, lifecycle(), handler());
    EXPECT_TRUE(fn.has_value()) << (fn ? "" : fn.error().message);
    return fn.value_or(FunctionHandle{});
  }
  InstanceStats stats(std::string_view name) {
    auto s = engine().instance_stats(name);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
    return s.value_or(InstanceStats{});
  }
  static bool cold(const Result<std::string>& r) {
    return r && r->find(" cold") != std::string::npos;
  }

  std::atomic<int> inits_{0}, shutdowns_{0};
  std::size_t state_bytes_ = 0;
  Gate gate_;
  ManualClock clock_;
  Reports reports_;
  std::unique_ptr<Engine> engine_;  // last: destroyed first
};

// ---- scale-up guard ----

TEST(EnvLimitsDefaultsTest, ScaleUpGuardDefaultsToOneHundredPerSecond) {
  EXPECT_EQ(FunctionConfig{}.max_new_instances_per_second, 100);
  EXPECT_EQ(FunctionConfig{}.memory_mb, 128);
}

TEST_F(EnvLimitsTest, ScaleUpGuardThrottlesANewInstancePastTheRate) {
  auto fn = add("scale.two", {.timeout = absl::Minutes(1), .max_new_instances_per_second = 2});
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i)
    holders.emplace_back([&] { EXPECT_TRUE(engine().invoke(fn, "block")); });
  gate_.wait_started(2);
  auto third = engine().invoke(fn, "");
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(mentions(third.error(), "max_new_instances_per_second")) << third.error().message;
  EXPECT_TRUE(mentions(third.error(), "scale.two")) << third.error().message;
  auto pooled = engine().invoke(fn, "", {.dispatch = Dispatch::kPool});
  ASSERT_FALSE(pooled);
  EXPECT_EQ(pooled.error().code, ErrorCode::kThrottled);
  EXPECT_EQ(inits_.load(), 2);
  EXPECT_EQ(stats("scale.two").scale_up_throttles, 2u);
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics* f = m.function("scale.two");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->throttles(ThrottleReason::kScaleUp), 2u);
  EXPECT_EQ(f->throttles(), 2u);
  EXPECT_EQ(f->invocations, 2u) << "a throttled invoke is not an invocation";
  EXPECT_EQ(engine().stats().throttles, 2u);
  // A second later the bucket holds two new instances again.
  clock_.advance(absl::Seconds(1));
  auto later = engine().invoke(fn, "");
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_TRUE(cold(later));
  gate_.release();
  for (auto& t : holders) t.join();
  EXPECT_EQ(stats("scale.two").instances, 3);
}

TEST_F(EnvLimitsTest, ScaleUpTokensRefillAtTheConfiguredRate) {
  auto fn = add("scale.refill", {.timeout = absl::Minutes(1), .max_new_instances_per_second = 2});
  std::vector<std::thread> holders;
  for (int i = 0; i < 2; ++i)
    holders.emplace_back([&] { EXPECT_TRUE(engine().invoke(fn, "block")); });
  gate_.wait_started(2);
  std::vector<std::thread> more;
  // 500 ms at 2 per second: one token.
  clock_.advance(absl::Milliseconds(500));
  more.emplace_back([&] { EXPECT_TRUE(cold(engine().invoke(fn, "block"))); });
  gate_.wait_started(3);
  auto refused = engine().invoke(fn, "");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kThrottled);
  EXPECT_EQ(stats("scale.refill").scale_up_throttles, 1u);
  gate_.release();
  for (auto& t : holders) t.join();
  for (auto& t : more) t.join();
  EXPECT_EQ(inits_.load(), 3);
}

TEST_F(EnvLimitsTest, WarmInstancesAreNotLimitedByTheScaleUpGuard) {
  auto fn = add("scale.warm", {.max_new_instances_per_second = 1});
  for (int i = 0; i < 10; ++i) {
    auto out = engine().invoke(fn, "");
    ASSERT_TRUE(out) << i << ": " << out.error().message;
  }
  EXPECT_EQ(inits_.load(), 1);
  EXPECT_EQ(stats("scale.warm").scale_up_throttles, 0u);
}

TEST_F(EnvLimitsTest, ZeroMeansNoScaleUpCap) {
  auto fn = add("scale.free", {.timeout = absl::Minutes(1), .max_new_instances_per_second = 0});
  constexpr int kN = 6;
  std::vector<std::thread> holders;
  for (int i = 0; i < kN; ++i)
    holders.emplace_back([&] { EXPECT_TRUE(cold(engine().invoke(fn, "block"))); });
  gate_.wait_started(kN);
  gate_.release();
  for (auto& t : holders) t.join();
  EXPECT_EQ(inits_.load(), kN);
  EXPECT_EQ(stats("scale.free").scale_up_throttles, 0u);
}

TEST_F(EnvLimitsTest, NegativeScaleUpRateIsRefused) {
  auto fn = engine().register_function("scale.bad", {.max_new_instances_per_second = -1},
                                       lifecycle(), handler());
  ASSERT_FALSE(fn);
  EXPECT_EQ(fn.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(fn.error(), "max_new_instances_per_second")) << fn.error().message;
}

// FunctionMetrics::invocations: "throttled invokes are not counted, as in Lambda"; nor is a
// throttle an error. An async invoke is throttled by the scale-up guard when it starts.
TEST_F(EnvLimitsTest, AsyncInvokeThrottledByTheScaleUpGuardIsNotCountedAsAnInvocation) {
  auto fn = add("scale.async", {.timeout = absl::Minutes(1), .max_new_instances_per_second = 1});
  std::thread holder([&] { EXPECT_TRUE(engine().invoke(fn, "block")); });
  gate_.wait_started(1);  // the one token is spent, the one instance busy
  auto out = engine().invoke_future(fn, "").get();
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(mentions(out.error(), "max_new_instances_per_second")) << out.error().message;
  EXPECT_EQ(stats("scale.async").scale_up_throttles, 1u);
  gate_.release();
  holder.join();
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics* f = m.function("scale.async");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->throttles(ThrottleReason::kScaleUp), 1u);
  EXPECT_EQ(f->invocations, 1u) << "only the invocation that ran";
  EXPECT_EQ(f->errors, 0u) << "a throttle is not an error";
}

// ---- memory ----

TEST_F(EnvLimitsTest, AllocationsWithinMemoryMbSucceed) {
  auto fn = add("mem.within", {.memory_mb = 128});
  auto out = engine().invoke(fn, "alloc:100");
  ASSERT_TRUE(out) << out.error().message;
  auto again = engine().invoke(fn, "alloc:100");
  ASSERT_TRUE(again) << "what the last invocation freed is available again";
  EXPECT_FALSE(cold(again));
  EXPECT_EQ(stats("mem.within").out_of_memory, 0u);
}

TEST_F(EnvLimitsTest, AllocationPastMemoryMbEndsWithOutOfMemoryEvenIfCaught) {
  auto fn = add("mem.caught", {.memory_mb = 128});
  auto first = engine().invoke(fn, "");
  ASSERT_TRUE(first);
  auto out = engine().invoke(fn, "catch:200");
  ASSERT_FALSE(out) << *out;
  EXPECT_EQ(out.error().code, ErrorCode::kOutOfMemory);
  EXPECT_TRUE(mentions(out.error(), "mem.caught")) << out.error().message;
  EXPECT_TRUE(mentions(out.error(), "memory_mb")) << out.error().message;
  const InstanceStats s = stats("mem.caught");
  EXPECT_EQ(s.out_of_memory, 1u);
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(shutdowns_.load(), 1);
  auto next = engine().invoke(fn, "");
  ASSERT_TRUE(next);
  EXPECT_TRUE(cold(next)) << "a fresh instance after the discard";
  EXPECT_EQ(engine().metrics().function("mem.caught")->errors, 1u);
}

TEST_F(EnvLimitsTest, AllocationPastMemoryMbThatEscapesEndsWithOutOfMemory) {
  auto fn = add("mem.thrown", {.memory_mb = 128});
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto out = engine().invoke(fn, "alloc:200", {.dispatch = d});
    ASSERT_FALSE(out);
    EXPECT_EQ(out.error().code, ErrorCode::kOutOfMemory) << out.error().message;
  }
  EXPECT_EQ(stats("mem.thrown").out_of_memory, 2u);
  EXPECT_EQ(stats("mem.thrown").discarded, 2u);
  EXPECT_EQ(shutdowns_.load(), 2);
}

TEST_F(EnvLimitsTest, WhatTheStateHoldsCountsAgainstTheLimit) {
  state_bytes_ = 100 * kMiB;  // held by each instance's state, from InitContext::memory()
  auto fn = add("mem.state", {.memory_mb = 128});
  auto small = engine().invoke(fn, "alloc:20");
  ASSERT_TRUE(small) << small.error().message;
  auto big = engine().invoke(fn, "catch:40");  // 100 + 40 > 128
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kOutOfMemory);
  EXPECT_EQ(stats("mem.state").out_of_memory, 1u);
}

// An init whose allocation past memory_mb was refused fails, even if it caught the refusal:
// the instance would start past its limit. Its state is shut down (and that is counted).
TEST_F(EnvLimitsTest, InitThatWentPastMemoryMbFailsEvenIfItCaughtTheRefusal) {
  Lifecycle l = lifecycle();
  l.init = [this](InitContext& ctx) -> Result<void*> {
    inits_.fetch_add(1);
    auto* box = new Box(ctx);
    try {
      box->held.reserve(200 * kMiB);  // past memory_mb: refused
    } catch (const std::bad_alloc&) {
      box->held.reserve(1 * kMiB);  // falls back
    }
    return static_cast<void*>(box);
  };
  std::atomic<int> handled{0};
  auto fn = engine().register_function("mem.initcaught", {.memory_mb = 128}, std::move(l),
                                       [&](Context&, std::string_view) -> Result<std::string> {
                                         handled.fetch_add(1);
                                         return std::string("ok");
                                       });
  ASSERT_TRUE(fn);
  auto out = engine().invoke(*fn, "");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::kInitFailed);
  EXPECT_TRUE(mentions(out.error(), "memory_mb")) << out.error().message;
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(shutdowns_.load(), 1) << "what init made was released";
  const InstanceStats s = stats("mem.initcaught");
  EXPECT_EQ(s.instances, 0);
  EXPECT_EQ(s.init_failures, 1u);
  EXPECT_EQ(s.shutdowns, 1u) << "InstanceStats::shutdowns counts every shutdown hook run";
}

TEST_F(EnvLimitsTest, StatelessFunctionsHaveAMemoryLimitToo) {
  auto fn =
      engine().register_function("mem.stateless", {.memory_mb = 128},
                                 [](Context& ctx, std::string_view in) -> Result<std::string> {
                                   std::pmr::vector<char> buffer(ctx.memory());
                                   try {
                                     buffer.reserve(std::stoul(std::string(in)) * kMiB);
                                   } catch (const std::bad_alloc&) {
                                     return std::string("caught");
                                   }
                                   return std::string("ok");
                                 });
  ASSERT_TRUE(fn);
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    SCOPED_TRACE(d == Dispatch::kInline ? "inline" : "pool");
    auto within = engine().invoke(*fn, "100", {.dispatch = d});
    EXPECT_TRUE(within) << within.error().message;
    auto past = engine().invoke(*fn, "200", {.dispatch = d});
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().code, ErrorCode::kOutOfMemory);
    auto after = engine().invoke(*fn, "100", {.dispatch = d});
    EXPECT_TRUE(after) << "each invocation has its own resource";
  }
}

TEST_F(EnvLimitsTest, ReportShowsTheMemoryAnInvocationHeld) {
  auto fn = add("mem.report", {.memory_mb = 256, .report_logs = true});
  ASSERT_TRUE(engine().invoke(fn, "alloc:8"));
  ASSERT_TRUE(engine().invoke(fn, ""));
  const auto reports = reports_.all();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].memory_size_mb, 256);
  EXPECT_GE(reports[0].max_memory_used_bytes, static_cast<std::int64_t>(8 * kMiB));
  EXPECT_GE(reports[0].max_memory_used_mb, 8);
  EXPECT_LT(reports[1].max_memory_used_bytes, static_cast<std::int64_t>(8 * kMiB))
      << "the peak is per invocation";
  EXPECT_GE(engine().metrics().function("mem.report")->max_memory_used_bytes,
            static_cast<std::int64_t>(8 * kMiB));
}

}  // namespace
}  // namespace ember::testing
