// Stress: 100k async invocations over many functions with concurrency caps. Checks that no cap
// was ever exceeded (each handler tracks the concurrency it observes) and that every invoke
// ended exactly once with the right result.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

struct Tracked {
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::atomic<int> completed{0};
  int cap = 0;

  void enter() {
    const int now = running.fetch_add(1) + 1;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
  }
  void leave() { running.fetch_sub(1); }
};

class StressTest : public EngineTest {};

TEST_P(StressTest, HundredThousandAsyncInvokesNeverExceedCapsAndLoseNothing) {
  constexpr int kReserved = 6;      // functions with reserved concurrency 1..6
  constexpr int kUnreserved = 6;    // functions sharing the unreserved pool
  constexpr int kEngineLimit = 24;  // 21 reserved, so the unreserved pool holds 3
  constexpr int kTotal = 100'000;
  constexpr int kSubmitters = 4;

  EngineOptions o = options();
  o.concurrency_limit = kEngineLimit;
  o.min_unreserved_concurrency = 3;
  o.max_queued_per_function = kTotal;  // every invoke queues rather than being refused
  Engine engine{o};

  std::vector<std::unique_ptr<Tracked>> tracked;
  std::vector<FunctionHandle> fns;
  std::atomic<int> unreserved_running{0}, unreserved_max{0};
  for (int i = 0; i < kReserved + kUnreserved; ++i) {
    auto t = std::make_unique<Tracked>();
    const bool reserved = i < kReserved;
    t->cap = reserved ? i + 1 : 0;
    Tracked* tp = t.get();
    FunctionConfig config;
    if (reserved) config.reserved_concurrency = i + 1;
    // Every third invocation suspends (yield) while holding its slot, so slots stay busy
    // across fiber switches too.
    auto fn = engine.register_function(
        "f" + std::to_string(i), config,
        [tp, reserved, &unreserved_running, &unreserved_max](
            Context& ctx, std::string_view in) -> Result<std::string> {
          tp->enter();
          if (!reserved) {
            const int now = unreserved_running.fetch_add(1) + 1;
            int seen = unreserved_max.load();
            while (now > seen && !unreserved_max.compare_exchange_weak(seen, now)) {
            }
          }
          if (in.back() % 3 == 0) (void)ctx.yield();
          if (!reserved) unreserved_running.fetch_sub(1);
          tp->leave();
          tp->completed.fetch_add(1);
          return std::string(in);
        });
    ASSERT_TRUE(fn) << fn.error().message;
    fns.push_back(*fn);
    tracked.push_back(std::move(t));
  }

  std::atomic<int> callbacks{0}, wrong{0}, errors{0};
  Condition all_done;
  std::vector<std::thread> submitters;
  for (int s = 0; s < kSubmitters; ++s) {
    submitters.emplace_back([&, s] {
      for (int i = s; i < kTotal; i += kSubmitters) {
        std::string payload = std::to_string(i);
        auto ok = engine.invoke_async(fns[static_cast<std::size_t>(i) % fns.size()], payload,
                                      [&, payload](Result<std::string> r) {
                                        if (!r) {
                                          errors.fetch_add(1);
                                        } else if (*r != payload) {
                                          wrong.fetch_add(1);
                                        }
                                        if (callbacks.fetch_add(1) + 1 == kTotal) all_done.notify();
                                      });
        if (!ok) {
          errors.fetch_add(1);
          if (callbacks.fetch_add(1) + 1 == kTotal) all_done.notify();
        }
      }
    });
  }
  for (auto& t : submitters) t.join();
  all_done.wait([&] { return callbacks.load() == kTotal; });

  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  int completed = 0;
  for (std::size_t i = 0; i < tracked.size(); ++i) {
    completed += tracked[i]->completed.load();
    if (tracked[i]->cap > 0) {
      EXPECT_LE(tracked[i]->max_running.load(), tracked[i]->cap) << "function f" << i;
      EXPECT_GE(tracked[i]->max_running.load(), 1);
    }
  }
  EXPECT_EQ(completed, kTotal);
  EXPECT_LE(unreserved_max.load(), kEngineLimit - 21);
  EXPECT_EQ(engine.stats().in_flight, 0);
  EXPECT_EQ(engine.stats().queued, 0);
}

TEST_P(StressTest, MixedSyncInlinePoolAndNestedInvokesFromManyThreadsAllComplete) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5'000;
  auto leaf = add(
      "leaf", [](Context&, std::string_view in) -> Result<std::string> { return std::string(in); },
      {.reserved_concurrency = 50});
  auto pooled_leaf =
      add("pooled_leaf",
          [](Context&, std::string_view in) -> Result<std::string> { return std::string(in); },
          {.dispatch = Dispatch::kPool});
  auto parent = add("parent", [&](Context& ctx, std::string_view in) -> Result<std::string> {
    auto a = ctx.invoke(leaf, in);
    if (!a) return a;
    auto b = ctx.invoke(pooled_leaf, in);
    if (!b) return b;
    return *a + *b;
  });
  std::atomic<int> ok{0}, throttled{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string p = std::to_string(t * kPerThread + i);
        const Dispatch d = i % 2 == 0 ? Dispatch::kInline : Dispatch::kPool;
        auto r = engine().invoke(parent, p, {.dispatch = d});
        if (r && *r == p + p) {
          ok.fetch_add(1);
        } else if (!r && r.error().code == ErrorCode::kThrottled) {
          throttled.fetch_add(1);
        } else {
          bad.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ok.load() + throttled.load(), kThreads * kPerThread);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(engine().stats().in_flight, 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, StressTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
