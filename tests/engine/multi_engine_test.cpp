// Several engines in one process share nothing: registries, limits and shutdown are per
// engine; a handler may call into another engine; engines come and go on one thread.
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

using MultiEngineTest = EngineTest;

constexpr Dispatch kBoth[] = {Dispatch::kInline, Dispatch::kPool};

BytesHandler tagged(std::string tag) {
  return [tag](Context&, std::string_view in) -> Result<std::string> {
    return tag + "(" + std::string(in) + ")";
  };
}

TEST_P(MultiEngineTest, EnginesHaveSeparateRegistries) {
  Engine& a = engine();
  Engine b{options()};
  ASSERT_TRUE(a.register_function("only.a", {}, echo_handler()));
  ASSERT_TRUE(b.register_function("only.b", {}, echo_handler()));
  EXPECT_EQ(a.function("only.b").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(b.function("only.a").error().code, ErrorCode::kNotFound);
  // One name, two functions.
  auto in_a = a.register_function("same", {}, tagged("A"));
  auto in_b = b.register_function("same", {}, tagged("B"));
  ASSERT_TRUE(in_a);
  ASSERT_TRUE(in_b) << in_b.error().message;
  EXPECT_NE(*in_a, *in_b);
  for (Dispatch d : kBoth) {
    EXPECT_EQ(a.invoke("same", "x", {.dispatch = d}).value(), "A(x)");
    EXPECT_EQ(b.invoke("same", "x", {.dispatch = d}).value(), "B(x)");
  }
  // A handle is bound to its engine.
  auto foreign = a.invoke(*in_b, "x");
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, ErrorCode::kInvalidArgument);
}

TEST_P(MultiEngineTest, ThrottlingInOneEngineDoesNotAffectTheOther) {
  EngineOptions tight = options();
  tight.concurrency_limit = 1;
  tight.min_unreserved_concurrency = 0;
  Engine a{tight};
  Engine& b = engine();
  Event started, release;
  auto busy = a.register_function("busy", {.dispatch = Dispatch::kPool},
                                  [&](Context&, std::string_view) -> Result<std::string> {
                                    started.set();
                                    release.wait();
                                    return "done";
                                  })
                  .value();
  auto a_echo = a.register_function("echo", {}, echo_handler()).value();
  auto b_echo = b.register_function("echo", {}, echo_handler()).value();
  std::thread holder([&] { EXPECT_EQ(a.invoke(busy, "").value_or("error"), "done"); });
  started.wait();  // a's only slot is taken
  auto throttled = a.invoke(a_echo, "x");
  ASSERT_FALSE(throttled);
  EXPECT_EQ(throttled.error().code, ErrorCode::kThrottled);
  EXPECT_NE(throttled.error().message.find("concurrency_limit 1"), std::string::npos)
      << throttled.error().message;
  for (int i = 0; i < 50; ++i) {
    for (Dispatch d : kBoth) ASSERT_EQ(b.invoke(b_echo, "y", {.dispatch = d}).value(), "y");
  }
  EXPECT_EQ(b.invoke_future(b_echo, "z").get().value(), "z");
  EXPECT_EQ(b.stats().throttles, 0u);
  EXPECT_EQ(a.stats().throttles, 1u);
  release.set();
  holder.join();
  EXPECT_EQ(a.invoke(a_echo, "x").value(), "x");  // a recovers once its slot is back
}

TEST_P(MultiEngineTest, ShuttingOneDownLeavesTheOtherServing) {
  auto a = std::make_unique<Engine>(options());
  Engine& b = engine();
  auto a_echo = a->register_function("echo", {}, echo_handler()).value();
  auto b_echo = b.register_function("echo", {}, echo_handler()).value();
  a->shutdown();
  EXPECT_EQ(a->invoke(a_echo, "x").error().code, ErrorCode::kShuttingDown);
  for (Dispatch d : kBoth) EXPECT_EQ(b.invoke(b_echo, "y", {.dispatch = d}).value(), "y");
  a.reset();  // and destroying it
  for (Dispatch d : kBoth) EXPECT_EQ(b.invoke(b_echo, "y", {.dispatch = d}).value(), "y");
  EXPECT_EQ(b.invoke_future(b_echo, "z").get().value(), "z");
  EXPECT_TRUE(b.register_function("later", {}, echo_handler()));
}

TEST_P(MultiEngineTest, HandlerOfOneEngineInvokesAnotherEnginesFunction) {
  Engine& a = engine();
  Engine b{options()};
  std::atomic<int> inner_depth{-1};
  // b's function suspends (yield) and makes a nested invoke of its own engine.
  ASSERT_TRUE(b.register_function("b.leaf", {}, tagged("leaf")));
  auto b_fn = b.register_function("b.fn", {},
                                  [&](Context& ctx, std::string_view in) -> Result<std::string> {
                                    inner_depth = ctx.depth();
                                    if (auto y = ctx.yield(); !y) return tl::unexpected(y.error());
                                    auto leaf = ctx.invoke("b.leaf", in);
                                    if (!leaf) return leaf;
                                    return "B(" + *leaf + ")";
                                  })
                  .value();
  auto a_fn =
      a.register_function("a.fn", {}, [&](Context&, std::string_view in) -> Result<std::string> {
         const Dispatch inner = in == "pool" ? Dispatch::kPool : Dispatch::kInline;
         auto r =
             b.invoke(b_fn, in, {.dispatch = inner});  // the other engine's API, from a handler
         if (!r) return r;
         return "A(" + *r + ")";
       }).value();
  for (Dispatch outer : kBoth) {
    for (std::string inner : {"inline", "pool"}) {
      SCOPED_TRACE(inner);
      auto r = a.invoke(a_fn, inner, {.dispatch = outer});
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(*r, "A(B(leaf(" + inner + ")))");
      EXPECT_EQ(inner_depth.load(), 1);  // nested under a's handler
    }
  }
  // Async into b from a handler of a: the callback arrives.
  Event delivered;
  std::string async_result;
  auto a_async =
      a.register_function("a.async", {}, [&](Context&, std::string_view) -> Result<std::string> {
         auto ok = b.invoke_async(b_fn, "async", [&](Result<std::string> r) {
           async_result = r.value_or("error");
           delivered.set();
         });
         if (!ok) return tl::unexpected(ok.error());
         return "queued";
       }).value();
  EXPECT_EQ(a.invoke(a_async, "").value(), "queued");
  delivered.wait();
  EXPECT_EQ(async_result, "B(leaf(async))");
}

TEST_P(MultiEngineTest, EnginesCreatedAndDestroyedRepeatedlyOnOneThread) {
  for (int round = 0; round < 50; ++round) {
    SCOPED_TRACE(round);
    Engine e{options()};
    e.register_function("leaf", {}, tagged("leaf")).value();
    auto fn = e.register_function("root", {},
                                  [](Context& ctx, std::string_view in) -> Result<std::string> {
                                    if (auto y = ctx.yield(); !y)
                                      return tl::unexpected(y.error());  // the inline host path
                                    return ctx.invoke("leaf", in);
                                  })
                  .value();
    // Inline first: this thread's fiber cache still holds a fiber of the previous engine.
    EXPECT_EQ(e.invoke(fn, "i", {.dispatch = Dispatch::kInline}).value_or("error"), "leaf(i)");
    EXPECT_EQ(e.invoke(fn, "i2", {.dispatch = Dispatch::kInline}).value_or("error"), "leaf(i2)");
    EXPECT_EQ(e.invoke(fn, "p", {.dispatch = Dispatch::kPool}).value_or("error"), "leaf(p)");
    EXPECT_EQ(e.invoke_future(fn, "a").get().value_or("error"), "leaf(a)");
  }
}

TEST_P(MultiEngineTest, TwoLiveEnginesAlternatingOnOneThreadBothWork) {
  Engine& a = engine();
  Engine b{options()};
  auto a_fn = a.register_function("f", {}, tagged("A")).value();
  auto b_fn = b.register_function("f", {}, tagged("B")).value();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(a.invoke(a_fn, "x").value_or("error"), "A(x)");
    ASSERT_EQ(b.invoke(b_fn, "x").value_or("error"), "B(x)");
  }
}

// Memory mappings of this process (each fiber stack is two: the stack and its guard page).
std::size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);) ++n;
  return n;
}

// A host thread driving several engines in turn (a game loop ticking its subsystems) must
// reuse fibers: a new fiber and stack per invoke would exhaust vm.max_map_count within hours.
// Returns how many mappings 1000 such rounds over `n` engines added.
std::size_t mappings_added_by_alternating(const EngineOptions& options, int n) {
  std::vector<std::unique_ptr<Engine>> engines;
  std::vector<FunctionHandle> fns;
  for (int i = 0; i < n; ++i) {
    engines.push_back(std::make_unique<Engine>(options));
    fns.push_back(
        engines.back()->register_function("f", {.stack_size = 16 * 1024}, echo_handler()).value());
  }
  auto round = [&] {
    for (int i = 0; i < n; ++i)
      EXPECT_TRUE(
          engines[static_cast<std::size_t>(i)]->invoke(fns[static_cast<std::size_t>(i)], ""));
  };
  for (int i = 0; i < 10; ++i) round();  // warm up
  const std::size_t before = mapping_count();
  for (int i = 0; i < 1000; ++i) round();
  const std::size_t after = mapping_count();
  return after > before ? after - before : 0;
}

TEST_P(MultiEngineTest, AlternatingInlineInvokesOfTwoEnginesReuseFibers) {
  EXPECT_LT(mappings_added_by_alternating(options(), 2), 100u);
}

TEST_P(MultiEngineTest, AlternatingInlineInvokesOfManyEnginesReuseFibers) {
  EXPECT_LT(mappings_added_by_alternating(options(), 6), 100u);
}

INSTANTIATE_TEST_SUITE_P(Workers, MultiEngineTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
