// Engine::shutdown and ~Engine: refusing new work, draining in-flight invocations, failing
// queued async invokes, releasing callers at the drain deadline, and delivering every callback
// exactly once.
#include <algorithm>
#include <functional>
#include <latch>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

// Whether this thread's clock reads run HookClock's hook.
thread_local bool t_watched = false;

// Marks the current thread as watched for its lifetime.
struct Watch {
  Watch() { t_watched = true; }
  ~Watch() { t_watched = false; }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
};

// The test's ManualClock, plus a hook run once, right after a watched thread next reads the
// time. shutdown() first reads the clock to set its drain deadline, and ~Engine reads it only
// to wait for handlers, so the hook acts exactly when they have started waiting: no sleeps.
class HookClock final : public Clock {
 public:
  explicit HookClock(ManualClock& inner) : inner_(inner) {}
  absl::Time now() const noexcept override {
    const absl::Time t = inner_.now();  // read first: the hook acts after this reading
    if (t_watched) run_hook();
    return t;
  }
  void add_listener(ClockListener* l) override { inner_.add_listener(l); }
  void remove_listener(ClockListener* l) override { inner_.remove_listener(l); }
  void on_watched_read(std::function<void()> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(hook);
  }

 private:
  void run_hook() const {
    std::function<void()> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook.swap(hook_);
    }
    if (hook) hook();
  }
  ManualClock& inner_;
  mutable std::mutex mu_;
  mutable std::function<void()> hook_;
};

class ShutdownTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineOptions o = options();
    o.clock = &hook_;
    engine_ = std::make_unique<Engine>(std::move(o));
  }
  void TearDown() override { engine_.reset(); }  // before hook_ goes

  // A pool function whose handlers block until `release_` is set.
  FunctionHandle blocking(std::string_view name, FunctionConfig config = {}) {
    config.dispatch = Dispatch::kPool;
    return add(
        name,
        [this](Context& ctx, std::string_view in) -> Result<std::string> {
          started_.fetch_add(1);
          started_cv_.notify();
          release_.wait();
          if (ctx.cancelled()) saw_cancelled_.fetch_add(1);
          returned_.fetch_add(1);
          return std::string(in);
        },
        config);
  }
  void wait_started(int n) {
    started_cv_.wait([&] { return started_.load() >= n; });
  }

  HookClock hook_{clock_};
  Event release_;
  Condition started_cv_;
  std::atomic<int> started_{0};
  std::atomic<int> returned_{0};
  std::atomic<int> saw_cancelled_{0};
};

void expect_shutting_down(const Error& e, std::string_view function) {
  EXPECT_EQ(e.code, ErrorCode::kShuttingDown) << e.message;
  std::string quoted(1, '\'');
  quoted.append(function).push_back('\'');
  EXPECT_NE(e.message.find(quoted), std::string::npos) << e.message;
}

TEST_P(ShutdownTest, NewInvokesAndRegistrationsAreRefusedAfterShutdown) {
  auto fn = add("echo", echo_handler());
  auto typed = engine().register_function<int, int>(
      "twice", {}, [](Context&, const int& v) -> Result<int> { return 2 * v; });
  ASSERT_TRUE(typed);
  engine().shutdown();
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "x", {.dispatch = d});
    ASSERT_FALSE(r);
    expect_shutting_down(r.error(), "echo");
  }
  auto by_name = engine().invoke("echo", "x");
  ASSERT_FALSE(by_name);
  expect_shutting_down(by_name.error(), "echo");
  auto typed_r = engine().invoke<int>(*typed, 4);
  ASSERT_FALSE(typed_r);
  expect_shutting_down(typed_r.error(), "twice");
  bool called = false;
  auto async = engine().invoke_async(fn, "x", [&](Result<std::string>) { called = true; });
  ASSERT_FALSE(async);
  expect_shutting_down(async.error(), "echo");
  auto future = engine().invoke_future(fn, "x").get();
  ASSERT_FALSE(future);
  expect_shutting_down(future.error(), "echo");
  auto reg = engine().register_function("late", {}, echo_handler());
  ASSERT_FALSE(reg);
  expect_shutting_down(reg.error(), "late");
  engine_.reset();
  EXPECT_FALSE(called);  // a refused invoke_async never calls back
}

TEST_P(ShutdownTest, ShutdownReturnsOnlyAfterInFlightPoolInvocationsFinish) {
  auto fn = blocking("slow");
  const int callers = GetParam();  // one per worker: every handler is running
  std::vector<std::optional<Result<std::string>>> results(static_cast<std::size_t>(callers));
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back(
        [&, i] { results[static_cast<std::size_t>(i)] = engine().invoke(fn, "done"); });
  }
  wait_started(callers);
  hook_.on_watched_read([&] { release_.set(); });  // once shutdown is draining
  int returned_when_shutdown_returned = -1;
  std::thread stopper([&] {
    Watch watch;
    engine().shutdown();
    returned_when_shutdown_returned = returned_.load();
  });
  stopper.join();
  for (auto& t : threads) t.join();
  EXPECT_TRUE(release_.is_set());
  EXPECT_EQ(returned_when_shutdown_returned, callers);
  for (auto& r : results) {
    ASSERT_TRUE(r.has_value() && r->has_value());
    EXPECT_EQ(r->value(), "done");  // drained, not cut off
  }
  EXPECT_EQ(saw_cancelled_.load(), 0);
  EXPECT_EQ(engine().stats().in_flight, 0);
}

TEST_P(ShutdownTest, QueuedAsyncInvokesGetShuttingDownAndNoneIsLost) {
  auto fn = blocking("slow", {.reserved_concurrency = 1});
  constexpr int kQueued = 10;
  std::mutex mu;
  std::vector<std::vector<Result<std::string>>> outcomes(kQueued + 1);
  std::vector<bool> running_one_done_then(kQueued + 1, true);
  for (int i = 0; i <= kQueued; ++i) {
    auto ok = engine().invoke_async(fn, std::to_string(i), [&, i](Result<std::string> r) {
      std::lock_guard<std::mutex> lock(mu);
      outcomes[static_cast<std::size_t>(i)].push_back(std::move(r));
      running_one_done_then[static_cast<std::size_t>(i)] = returned_.load() > 0;
    });
    ASSERT_TRUE(ok) << ok.error().message;
  }
  EXPECT_EQ(engine().stats().queued, kQueued);  // the first holds the only slot
  hook_.on_watched_read([&] { release_.set(); });
  std::thread stopper([&] {
    Watch watch;
    engine().shutdown();
  });
  stopper.join();
  engine_.reset();  // every callback has run once the engine is gone
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(outcomes[0].size(), 1u);
  EXPECT_EQ(outcomes[0][0].value_or("error"), "0");  // the running one was drained
  for (int i = 1; i <= kQueued; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(outcomes[static_cast<std::size_t>(i)].size(), 1u);
    ASSERT_FALSE(outcomes[static_cast<std::size_t>(i)][0]);
    expect_shutting_down(outcomes[static_cast<std::size_t>(i)][0].error(), "slow");
    // Failed at once, not after waiting for the slot to come free.
    EXPECT_FALSE(running_one_done_then[static_cast<std::size_t>(i)]);
  }
  EXPECT_EQ(returned_.load(), 1);  // queued ones never ran
}

TEST_P(ShutdownTest, ShortDrainReleasesWaitingCallersWhileHandlersStillRun) {
  // Long timeouts: only the drain deadline can release anyone.
  auto fn = blocking("slow", {.timeout = absl::Hours(1)});
  std::optional<Result<std::string>> sync_result;
  std::thread caller([&] { sync_result = engine().invoke(fn, "sync"); });
  wait_started(1);  // the sync caller holds a slot
  std::mutex mu;
  std::vector<Result<std::string>> async_results;
  ASSERT_TRUE(engine().invoke_async(fn, "async", [&](Result<std::string> r) {
    std::lock_guard<std::mutex> lock(mu);
    async_results.push_back(std::move(r));
  }));
  // With one worker the async invocation waits, admitted, behind the running one.
  wait_started(std::min(2, GetParam()));
  Event draining;
  hook_.on_watched_read([&] { draining.set(); });
  std::thread stopper([&] {
    Watch watch;
    engine().shutdown(absl::Seconds(2));
  });
  draining.wait();                   // the drain deadline is set...
  clock_.advance(absl::Seconds(2));  // ...and passes
  stopper.join();
  caller.join();
  ASSERT_TRUE(sync_result.has_value());
  ASSERT_FALSE(*sync_result);
  expect_shutting_down(sync_result->error(), "slow");
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(async_results.size(), 1u);
    ASSERT_FALSE(async_results[0]);
    expect_shutting_down(async_results[0].error(), "slow");
  }
  // The handlers were not killed: they still run and still hold their slots.
  EXPECT_EQ(returned_.load(), 0);
  EXPECT_EQ(engine().stats().in_flight, 2);
  // ~Engine waits for them: they are released only once it is waiting.
  hook_.on_watched_read([&] { release_.set(); });
  {
    Watch watch;
    engine_.reset();
  }
  EXPECT_TRUE(release_.is_set());
  EXPECT_GE(started_.load(), 1);
  EXPECT_EQ(returned_.load(), started_.load());       // every handler that ran has returned
  EXPECT_EQ(saw_cancelled_.load(), started_.load());  // and saw it was cut off
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(async_results.size(), 1u);  // the late result is dropped, not delivered again
}

TEST_P(ShutdownTest, ConcurrentShutdownsAllWaitAndLaterOnesReturnAtOnce) {
  auto fn = blocking("slow");
  ASSERT_TRUE(engine().invoke_async(fn, "", [](Result<std::string>) {}));
  wait_started(1);
  hook_.on_watched_read([&] { release_.set(); });
  std::atomic<int> early{0};
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 2; ++i) {
    stoppers.emplace_back([&] {
      Watch watch;
      engine().shutdown();
      if (returned_.load() != 1) early.fetch_add(1);
    });
  }
  for (auto& t : stoppers) t.join();
  EXPECT_EQ(early.load(), 0);  // neither returned before the handler did
  engine().shutdown();         // idempotent: nothing left to wait for
  engine().shutdown(absl::ZeroDuration());
  EXPECT_EQ(engine().invoke(fn, "").error().code, ErrorCode::kShuttingDown);
  EXPECT_EQ(returned_.load(), 1);
}

TEST_P(ShutdownTest, DestructorAloneDrainsInFlightInvocations) {
  auto fn = blocking("slow");
  constexpr int kAsync = 8;
  std::mutex mu;
  std::vector<Result<std::string>> results;
  for (int i = 0; i < kAsync; ++i) {
    ASSERT_TRUE(engine().invoke_async(fn, "ok", [&](Result<std::string> r) {
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(r));
    }));
  }
  wait_started(1);
  hook_.on_watched_read([&] { release_.set(); });
  {
    Watch watch;
    engine_.reset();
  }
  EXPECT_EQ(returned_.load(), kAsync);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kAsync));
  for (const auto& r : results) EXPECT_EQ(r.value_or("error"), "ok");
}

// shutdown() drains an invocation; its outcome must have been delivered by the time it returns,
// or a host that frees what its callbacks use right after shutdown() has a use-after-free.
// Each round is one drained async invoke; the rounds make a late delivery show up reliably.
TEST_P(ShutdownTest, DrainedCallbacksHaveRunWhenShutdownReturns) {
  constexpr int kRounds = 50;
  int late_rounds = 0;
  for (int round = 0; round < kRounds; ++round) {
    EngineOptions o = options();
    o.clock = &hook_;
    engine_ = std::make_unique<Engine>(std::move(o));
    Event started, release;
    auto fn = add("slow",
                  [&](Context&, std::string_view) -> Result<std::string> {
                    started.set();
                    release.wait();
                    return "";
                  },
                  {.dispatch = Dispatch::kPool});
    std::atomic<int> callbacks{0};
    ASSERT_TRUE(
        engine().invoke_async(fn, "", [&](Result<std::string>) { callbacks.fetch_add(1); }));
    started.wait();
    hook_.on_watched_read([&] { release.set(); });  // once shutdown is draining
    int callbacks_at_return = -1;
    std::thread stopper([&] {
      Watch watch;
      engine().shutdown();
      callbacks_at_return = callbacks.load();
    });
    stopper.join();
    engine_.reset();
    EXPECT_EQ(callbacks.load(), 1);
    if (callbacks_at_return != 1) ++late_rounds;
  }
  EXPECT_EQ(late_rounds, 0) << "shutdown() returned before the drained invocation's callback "
                               "ran in "
                            << late_rounds << " of " << kRounds << " rounds";
}

TEST_P(ShutdownTest, EveryAsyncCallbackIsCalledExactlyOnceAcrossAShutdown) {
  auto fn = add("work",
                [](Context& ctx, std::string_view in) -> Result<std::string> {
                  (void)ctx.yield();
                  (void)ctx.yield();
                  return std::string(in);
                },
                {.reserved_concurrency = 2});
  constexpr int kThreads = 3;
  constexpr int kPerThread = 200;
  std::vector<std::atomic<int>> calls(kThreads * kPerThread);
  std::vector<std::atomic<bool>> accepted_flags(kThreads * kPerThread);
  std::atomic<int> wrong_outcomes{0};
  std::latch halfway(kThreads);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::size_t k = static_cast<std::size_t>(t * kPerThread + i);
        auto ok = engine().invoke_async(fn, std::to_string(k), [&, k](Result<std::string> r) {
          calls[k].fetch_add(1);
          // Drained (its own payload back) or failed by the shutdown; nothing else.
          const bool fine =
              r ? *r == std::to_string(k) : r.error().code == ErrorCode::kShuttingDown;
          if (!fine) wrong_outcomes.fetch_add(1);
        });
        accepted_flags[k] = ok.has_value();
        if (!ok) {
          EXPECT_EQ(ok.error().code, ErrorCode::kShuttingDown) << ok.error().message;
        }
        if (i == kPerThread / 2) halfway.count_down();
      }
    });
  }
  halfway.wait();
  engine().shutdown();  // races with the second half of the submissions
  for (auto& t : submitters) t.join();
  engine_.reset();
  int accepted = 0;
  for (std::size_t k = 0; k < calls.size(); ++k) {
    accepted += accepted_flags[k].load();
    EXPECT_EQ(calls[k].load(), accepted_flags[k].load() ? 1 : 0) << "invoke " << k;
  }
  EXPECT_EQ(wrong_outcomes.load(), 0);
  EXPECT_GE(accepted, kThreads * (kPerThread / 2 + 1));  // all before the shutdown at least
}

TEST_P(ShutdownTest, ShutdownFromInsideAHandlerStopsAdmittingWithoutWaitingForItself) {
  auto admin = add("admin", [](Context& ctx, std::string_view) -> Result<std::string> {
    ctx.engine().shutdown();  // would wait for this very handler if it drained here
    return "stopping";
  });
  auto echo = add("echo", echo_handler());
  const Dispatch d = GetParam() == 2 ? Dispatch::kPool : Dispatch::kInline;
  auto r = engine().invoke(admin, "", {.dispatch = d});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "stopping");
  auto after = engine().invoke(echo, "x");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ErrorCode::kShuttingDown);
  engine_.reset();  // the destructor drains and returns
}

TEST_P(ShutdownTest, CallbackThatCallsShutdownWhileShutdownFailsItDoesNotDeadlock) {
  Event release;
  auto fn = add("held",
                [&](Context&, std::string_view) -> Result<std::string> {
                  release.wait();
                  return "done";
                },
                {.reserved_concurrency = 1});
  std::atomic<int> running_outcome{-1}, queued_outcome{-1};
  ASSERT_TRUE(engine().invoke_async(fn, "", [&](Result<std::string> r) {
    running_outcome = r ? 0 : static_cast<int>(r.error().code);
  }));
  ASSERT_TRUE(engine().invoke_async(fn, "", [&](Result<std::string> r) {
    queued_outcome = r ? 0 : static_cast<int>(r.error().code);
    engine().shutdown();  // re-entered from the shutdown that is failing this invoke
  }));
  engine().shutdown(absl::ZeroDuration());  // no drain: fail the queued, release the running
  EXPECT_EQ(queued_outcome.load(), static_cast<int>(ErrorCode::kShuttingDown));
  EXPECT_EQ(running_outcome.load(), static_cast<int>(ErrorCode::kShuttingDown));
  release.set();
  engine_.reset();  // waits for the held handler to return
}

INSTANTIATE_TEST_SUITE_P(Workers, ShutdownTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
