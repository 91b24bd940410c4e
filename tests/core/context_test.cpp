// ember::Context: request ids, function identity, memory setting, client context, logging,
// depth, deadline, and the calls that are valid only on the handler's own fiber.
#include <cctype>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

using ContextTest = EngineTest;

constexpr Dispatch kBoth[] = {Dispatch::kInline, Dispatch::kPool};

bool uuid_shaped(std::string_view id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? id[i] != '-' : !std::isxdigit(static_cast<unsigned char>(id[i]))) return false;
  }
  return true;
}

TEST_P(ContextTest, RequestIdIsUuidShapedAndStableWithinAnInvocation) {
  auto fn = add("id", [](Context& ctx, std::string_view) -> Result<std::string> {
    const std::string first(ctx.request_id());
    if (ctx.request_id() != first) return fail(ErrorCode::kInternal, "request id changed");
    return first;
  });
  for (Dispatch d : kBoth) {
    auto id = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_TRUE(uuid_shaped(*id)) << *id;
  }
}

TEST_P(ContextTest, RequestIdsAreUniqueAcrossThreadsDispatchesAndNesting) {
  std::mutex mu;
  std::multiset<std::string> ids;
  auto record = [&](Context& ctx) {
    std::lock_guard<std::mutex> lock(mu);
    ids.emplace(ctx.request_id());
  };
  add("leaf", [&](Context& ctx, std::string_view) -> Result<std::string> {
    record(ctx);
    return "";
  });
  auto root = add("root", [&](Context& ctx, std::string_view) -> Result<std::string> {
    record(ctx);
    return ctx.invoke("leaf", "");  // inline child: a different fiber, a different id
  });
  constexpr int kThreads = 4;
  constexpr int kPerThread = 125;  // 2 ids per invoke: 1000 in all
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const Dispatch d = (t + i) % 2 == 0 ? Dispatch::kInline : Dispatch::kPool;
        EXPECT_TRUE(engine().invoke(root, "", {.dispatch = d}));
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(ids.size(), 2u * kThreads * kPerThread);
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), ids.size()) << "request ids repeat";
  for (const std::string& id : unique) ASSERT_TRUE(uuid_shaped(id)) << id;
}

TEST_P(ContextTest, RequestIdsDifferBetweenEngines) {
  auto id_of = [](Engine& e) {
    auto fn =
        e.register_function("id", {}, [](Context& ctx, std::string_view) -> Result<std::string> {
          return std::string(ctx.request_id());
        });
    return e.invoke(fn.value(), "").value();
  };
  Engine other{options()};
  // Same function, same thread, same (first) fiber and task sequence in each engine.
  EXPECT_NE(id_of(engine()), id_of(other));
}

TEST_P(ContextTest, NamesTheFunctionAndItsVersion) {
  auto fn = add("pricing.quote", [](Context& ctx, std::string_view) -> Result<std::string> {
    return std::string(ctx.function_name()) + "/" + std::string(ctx.function_version());
  });
  for (Dispatch d : kBoth)
    EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "pricing.quote/$LATEST");
  EXPECT_EQ(engine().invoke_future(fn, "").get().value(), "pricing.quote/$LATEST");
}

TEST_P(ContextTest, MemoryLimitIsTheConfiguredMemory) {
  auto memory = [](Context& ctx, std::string_view) -> Result<std::string> {
    return std::to_string(ctx.memory_limit_mb());
  };
  auto big = add("big", memory, {.memory_mb = 1769});
  auto small = add("small", memory);
  for (Dispatch d : kBoth) {
    EXPECT_EQ(engine().invoke(big, "", {.dispatch = d}).value(), "1769");
    EXPECT_EQ(engine().invoke(small, "", {.dispatch = d}).value(), "128");  // the default
  }
}

std::string flatten(const ClientContext& cc) {
  std::string out;
  for (const auto& [k, v] : cc) out += k + "=" + v + ";";
  return out;
}

TEST_P(ContextTest, ClientContextIsUsedInPlaceByInlineInvokes) {
  const ClientContext* seen = nullptr;
  std::string contents;
  auto fn = add("cc", [&](Context& ctx, std::string_view) -> Result<std::string> {
    seen = &ctx.client_context();
    contents = flatten(ctx.client_context());
    return "";
  });
  const ClientContext cc = {{"tenant", "acme"}, {"trace", "abc123"}};
  ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = Dispatch::kInline, .client_context = &cc}));
  EXPECT_EQ(seen, &cc);
  EXPECT_EQ(contents, "tenant=acme;trace=abc123;");
}

TEST_P(ContextTest, ClientContextIsCopiedForPoolInvokes) {
  const ClientContext* seen = nullptr;
  std::string contents;
  auto fn = add("cc", [&](Context& ctx, std::string_view) -> Result<std::string> {
    seen = &ctx.client_context();
    contents = flatten(ctx.client_context());
    return "";
  });
  const ClientContext cc = {{"tenant", "acme"}};
  ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = Dispatch::kPool, .client_context = &cc}));
  EXPECT_NE(seen, &cc);  // the caller may be released at the deadline: the handler owns a copy
  EXPECT_EQ(contents, "tenant=acme;");
}

TEST_P(ContextTest, ClientContextOfAnAsyncInvokeOutlivesTheCallersCopy) {
  Event release;
  auto fn = add("cc", [&](Context& ctx, std::string_view) -> Result<std::string> {
    release.wait();
    return flatten(ctx.client_context());
  });
  auto cc = std::make_unique<ClientContext>(ClientContext{{"user", "42"}, {"region", "eu"}});
  auto future = engine().invoke_future(fn, "", {.client_context = cc.get()});
  cc.reset();  // gone before the handler reads it
  release.set();
  EXPECT_EQ(future.get().value(), "user=42;region=eu;");
}

TEST_P(ContextTest, ClientContextIsEmptyWhenNoneIsGiven) {
  auto fn = add("cc", [](Context& ctx, std::string_view) -> Result<std::string> {
    return ctx.client_context().empty() ? "empty" : flatten(ctx.client_context());
  });
  for (Dispatch d : kBoth) EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "empty");
  EXPECT_EQ(engine().invoke_future(fn, "").get().value(), "empty");
}

TEST_P(ContextTest, LogLinesCarryTheFunctionAndRequestId) {
  auto fn = add("orders.place", [](Context& ctx, std::string_view in) -> Result<std::string> {
    ctx.log("placing " + std::string(in));
    return std::string(ctx.request_id());
  });
  for (Dispatch d : kBoth) {
    auto id = engine().invoke(fn, "o-17", {.dispatch = d});
    ASSERT_TRUE(id);
    EXPECT_TRUE(logs_.contains("orders.place|" + *id + "|placing o-17")) << *id;
  }
  EXPECT_EQ(logs_.lines().size(), 2u);
}

TEST_P(ContextTest, LogLevelReachesTheSink) {
  std::mutex mu;
  std::vector<LogLevel> levels;
  EngineOptions o = options();
  o.log_sink = [&](const LogRecord& r) {
    std::lock_guard<std::mutex> lock(mu);
    levels.push_back(r.level);
  };
  Engine engine{o};
  auto fn =
      engine.register_function("lv", {}, [](Context& ctx, std::string_view) -> Result<std::string> {
        ctx.log("info");
        ctx.log(LogLevel::kWarn, "warn");
        ctx.log(LogLevel::kError, "error");
        return "";
      });
  ASSERT_TRUE(engine.invoke(fn.value(), ""));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(levels, (std::vector<LogLevel>{LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}));
}

TEST_P(ContextTest, SleepAndYieldFromAnotherThreadAreNotInHandler) {
  auto fn = add("leaky", [](Context& ctx, std::string_view) -> Result<std::string> {
    Result<void> slept, yielded;
    std::thread elsewhere([&] {
      slept = ctx.sleep_for(absl::Milliseconds(1));
      yielded = ctx.yield();
    });
    elsewhere.join();
    if (slept || yielded) return fail(ErrorCode::kInternal, "accepted off the handler's fiber");
    if (slept.error().code != ErrorCode::kNotInHandler ||
        yielded.error().code != ErrorCode::kNotInHandler) {
      return fail(ErrorCode::kInternal, slept.error().message + " / " + yielded.error().message);
    }
    return slept.error().message + "\n" + yielded.error().message;
  });
  for (Dispatch d : kBoth) {
    auto r = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_NE(r->find("'leaky'"), std::string::npos) << *r;
    EXPECT_NE(r->find("sleep_for"), std::string::npos) << *r;
    EXPECT_NE(r->find("yield"), std::string::npos) << *r;
  }
}

TEST_P(ContextTest, ParentContextUsedFromAChildFiberIsNotInHandler) {
  Context* parent = nullptr;
  Result<void> from_child;
  Result<void> own_yield;
  add("child", [&](Context& ctx, std::string_view) -> Result<std::string> {
    from_child = parent->yield();  // the parent's context, on the child's fiber
    own_yield = ctx.yield();       // its own: fine
    return "";
  });
  auto fn = add("parent", [&](Context& ctx, std::string_view) -> Result<std::string> {
    parent = &ctx;
    return ctx.invoke("child", "");
  });
  for (Dispatch d : kBoth) {
    ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = d}));
    ASSERT_FALSE(from_child);
    EXPECT_EQ(from_child.error().code, ErrorCode::kNotInHandler);
    EXPECT_TRUE(own_yield) << own_yield.error().message;
  }
}

TEST_P(ContextTest, DepthIsZeroAtTopLevelAndCountsNesting) {
  std::atomic<int> child_depth{-1};
  add("child", [&](Context& ctx, std::string_view) -> Result<std::string> {
    child_depth = ctx.depth();
    return "";
  });
  auto fn = add("top", [](Context& ctx, std::string_view in) -> Result<std::string> {
    const int depth = ctx.depth();
    if (in == "nest") {
      auto r = ctx.invoke("child", "");
      if (!r) return r;
    }
    return std::to_string(depth);
  });
  for (Dispatch d : kBoth) EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d}).value(), "0");
  EXPECT_EQ(engine().invoke_future(fn, "").get().value(), "0");
  EXPECT_EQ(engine().invoke(fn, "nest").value(), "0");
  EXPECT_EQ(child_depth.load(), 1);
}

TEST_P(ContextTest, DeadlineIsAdmissionTimePlusTimeoutAndRemainingCountsDown) {
  absl::Time deadline;
  absl::Duration at_start, after_one_second;
  bool cancelled_early = true;
  auto fn = add("clock",
                [&](Context& ctx, std::string_view) -> Result<std::string> {
                  deadline = ctx.deadline();
                  at_start = ctx.remaining();
                  cancelled_early = ctx.cancelled();
                  clock_.advance(absl::Seconds(1));  // the handler's own thread moves time (inline)
                  after_one_second = ctx.remaining();
                  return "";
                },
                {.timeout = absl::Seconds(3)});
  const absl::Time admitted = clock_.now();
  ASSERT_TRUE(engine().invoke(fn, ""));
  EXPECT_EQ(deadline, admitted + absl::Seconds(3));
  EXPECT_EQ(at_start, absl::Seconds(3));
  EXPECT_EQ(after_one_second, absl::Seconds(2));
  EXPECT_FALSE(cancelled_early);
}

TEST_P(ContextTest, EngineIsTheInvokingEngine) {
  Engine* seen = nullptr;
  auto fn = add("who", [&](Context& ctx, std::string_view) -> Result<std::string> {
    seen = &ctx.engine();
    return "";
  });
  for (Dispatch d : kBoth) {
    seen = nullptr;
    ASSERT_TRUE(engine().invoke(fn, "", {.dispatch = d}));
    EXPECT_EQ(seen, &engine());
  }
}

INSTANTIATE_TEST_SUITE_P(Workers, ContextTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
