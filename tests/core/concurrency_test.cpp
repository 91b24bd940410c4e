// Concurrency limits: the engine-wide cap, per-function reserved concurrency (a cap and a
// guarantee), the unreserved pool shared by every other function, and min_unreserved_concurrency.
//
// Slots are held by handlers that block on an Event. A slot is taken at admission, so once a
// sync caller's handler has started (or an invoke_async returned Ok) the slot is in use.
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

using ConcurrencyTest = EngineTest;

// A handler that blocks until release(), holding its concurrency slot meanwhile. Payload "fast"
// returns at once.
class Blocker {
 public:
  BytesHandler handler() {
    return [this](Context&, std::string_view in) -> Result<std::string> {
      if (in == "fast") return std::string("fast");
      started_.fetch_add(1);
      changed_.notify();
      release_.wait();
      return std::string(in);
    };
  }
  void wait_started(int n) {
    changed_.wait([&] { return started_.load() >= n; });
  }
  [[nodiscard]] int started() const { return started_.load(); }
  void release() { release_.set(); }

 private:
  std::atomic<int> started_{0};
  Condition changed_;
  Event release_;
};

// Releases a blocker when a test leaves early (a failed assertion), so that nothing hangs.
struct ReleaseOnExit {
  Blocker& blocker;
  ~ReleaseOnExit() { blocker.release(); }
};

// `n` sync invokes of `fn` (a Blocker's handler), each on a thread of its own; join() waits for
// them all. The destructor releases the blocker first, so that a failed assertion cannot hang.
class Callers {
 public:
  Callers(Engine& engine, FunctionHandle fn, int n, Dispatch dispatch, Blocker& blocker)
      : blocker_(blocker), results_(n) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, &engine, fn, dispatch, i] {
        results_[i] = engine.invoke(fn, "held", {.dispatch = dispatch});
      });
    }
  }
  Callers(const Callers&) = delete;
  Callers& operator=(const Callers&) = delete;
  ~Callers() {
    blocker_.release();
    join();
  }
  const std::vector<Result<std::string>>& join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return results_;
  }

 private:
  Blocker& blocker_;
  std::vector<Result<std::string>> results_;
  std::vector<std::thread> threads_;
};

// The engine's options with a small cap and no minimum unreserved share.
EngineOptions small_engine(EngineOptions o, int limit) {
  o.concurrency_limit = limit;
  o.min_unreserved_concurrency = 0;
  return o;
}

TEST_P(ConcurrencyTest, SyncInvokeOverEngineCapIsThrottledNamingTheUnreservedPool) {
  Engine engine{small_engine(options(), 2)};
  Blocker blocker;
  auto fn = engine.register_function("busy", {}, blocker.handler()).value();
  Callers held(engine, fn, 2, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine.invoke(fn, "fast", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
    EXPECT_TRUE(mentions(r.error(), "function 'busy' throttled")) << r.error().message;
    EXPECT_TRUE(mentions(r.error(), "unreserved concurrency pool (2)")) << r.error().message;
    EXPECT_TRUE(mentions(r.error(), "engine concurrency_limit 2")) << r.error().message;
  }
  EXPECT_EQ(engine.stats().throttles, 2u);
  EXPECT_EQ(engine.stats().in_flight, 2);
  EXPECT_EQ(blocker.started(), 2);  // refused invokes never reached the handler

  blocker.release();
  for (const auto& r : held.join()) EXPECT_EQ(r.value(), "held");
}

TEST_P(ConcurrencyTest, FunctionsWithoutReservationShareTheUnreservedPool) {
  Engine engine{small_engine(options(), 2)};
  Blocker blocker;
  auto a = engine.register_function("a", {}, blocker.handler()).value();
  auto b = engine.register_function("b", {}, blocker.handler()).value();
  auto c = engine.register_function("c", {}, echo_handler()).value();
  Callers held_a(engine, a, 1, Dispatch::kInline, blocker);
  Callers held_b(engine, b, 1, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  // c has never run, but a and b used up the pool it shares with them.
  auto r = engine.invoke(c, "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(mentions(r.error(), "function 'c' throttled: unreserved concurrency pool"))
      << r.error().message;

  blocker.release();
  held_a.join();
  held_b.join();
  EXPECT_EQ(engine.invoke(c, "x").value(), "x");
}

TEST_P(ConcurrencyTest, SyncInvokeOverReservedCapIsThrottledNamingTheLimit) {
  Blocker blocker;
  auto fn = add("reserved", blocker.handler(), {.reserved_concurrency = 2});
  Callers held(engine(), fn, 2, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "fast", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
    EXPECT_TRUE(mentions(r.error(), "reserved concurrency of function 'reserved' (2) is in use"))
        << r.error().message;
    // A reserved function is limited by its reservation, not by the engine's cap.
    EXPECT_FALSE(mentions(r.error(), "concurrency_limit")) << r.error().message;
  }
  EXPECT_EQ(engine().stats().throttles, 2u);

  blocker.release();
  for (const auto& r : held.join()) EXPECT_EQ(r.value(), "held");
}

TEST_P(ConcurrencyTest, ReservedFunctionRunsWhenTheUnreservedPoolIsExhausted) {
  Engine engine{small_engine(options(), 4)};
  Blocker blocker;
  auto shared = engine.register_function("shared", {}, blocker.handler()).value();
  auto reserved =
      engine.register_function("reserved", {.reserved_concurrency = 2}, echo_handler()).value();
  ASSERT_EQ(engine.stats().unreserved_available, 2);
  Callers held(engine, shared, 2, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  auto refused = engine.invoke(shared, "fast");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(mentions(refused.error(), "unreserved concurrency pool (2)"))
      << refused.error().message;

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine.invoke(reserved, "mine", {.dispatch = d});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "mine");
  }
  blocker.release();
  held.join();
}

TEST_P(ConcurrencyTest, UnreservedFunctionRunsWhenAReservedFunctionIsSaturated) {
  Engine engine{small_engine(options(), 4)};
  Blocker blocker;
  auto reserved =
      engine.register_function("reserved", {.reserved_concurrency = 2}, blocker.handler()).value();
  auto shared = engine.register_function("shared", {}, echo_handler()).value();
  Callers held(engine, reserved, 2, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  auto refused = engine.invoke(reserved, "fast");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kThrottled);
  EXPECT_EQ(engine.stats().unreserved_available, 2);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine.invoke(shared, "ours", {.dispatch = d});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "ours");
  }
  blocker.release();
  held.join();
}

TEST_P(ConcurrencyTest, UnreservedFunctionsCannotTakeReservedCapacity) {
  Engine engine{small_engine(options(), 4)};
  Blocker blocker;
  auto shared = engine.register_function("shared", {}, blocker.handler()).value();
  ASSERT_TRUE(engine.register_function("idle", {.reserved_concurrency = 2}, echo_handler()));
  Callers held(engine, shared, 2, Dispatch::kInline, blocker);
  blocker.wait_started(2);

  // Two of the engine's four slots are free, but they are reserved for 'idle'.
  EXPECT_EQ(engine.stats().in_flight, 2);
  auto r = engine.invoke(shared, "fast");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
  EXPECT_TRUE(mentions(r.error(), "unreserved concurrency pool (2)")) << r.error().message;
  EXPECT_TRUE(engine.invoke("idle", "still mine"));

  blocker.release();
  held.join();
}

TEST_P(ConcurrencyTest, ReservedAndUnreservedInvocationsTogetherFillTheEngineCap) {
  Engine engine{small_engine(options(), 4)};
  Blocker blocker;
  auto reserved =
      engine.register_function("reserved", {.reserved_concurrency = 2}, blocker.handler()).value();
  auto shared = engine.register_function("shared", {}, blocker.handler()).value();
  Callers held_reserved(engine, reserved, 2, Dispatch::kInline, blocker);
  Callers held_shared(engine, shared, 2, Dispatch::kInline, blocker);
  blocker.wait_started(4);

  EXPECT_EQ(engine.stats().in_flight, 4);
  EXPECT_EQ(engine.invoke(reserved, "fast").error().code, ErrorCode::kThrottled);
  EXPECT_EQ(engine.invoke(shared, "fast").error().code, ErrorCode::kThrottled);
  EXPECT_EQ(engine.stats().throttles, 2u);

  blocker.release();
  held_reserved.join();
  held_shared.join();
  EXPECT_EQ(engine.stats().in_flight, 0);
}

TEST_P(ConcurrencyTest, UnreservedAvailableIsTheLimitMinusReservations) {
  EXPECT_EQ(engine().stats().unreserved_available, 1000);
  add("plain", echo_handler());
  EXPECT_EQ(engine().stats().unreserved_available, 1000);
  add("r300", echo_handler(), {.reserved_concurrency = 300});
  EXPECT_EQ(engine().stats().unreserved_available, 700);
  add("r200", echo_handler(), {.reserved_concurrency = 200});
  EXPECT_EQ(engine().stats().unreserved_available, 500);
}

TEST_P(ConcurrencyTest, ReservationLeavingLessThanMinUnreservedIsRejectedNamingTheNumbers) {
  add("big", echo_handler(), {.reserved_concurrency = 900});  // leaves exactly the minimum
  ASSERT_EQ(engine().stats().unreserved_available, 100);

  auto r = engine().register_function("one-more", {.reserved_concurrency = 1}, echo_handler());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  const Error& e = r.error();
  EXPECT_TRUE(mentions(e, "function 'one-more'")) << e.message;
  EXPECT_TRUE(mentions(e, "reserved_concurrency 1 would leave 99 unreserved")) << e.message;
  EXPECT_TRUE(mentions(e, "concurrency_limit 1000")) << e.message;
  EXPECT_TRUE(mentions(e, "already reserved 900")) << e.message;
  EXPECT_TRUE(mentions(e, "min_unreserved_concurrency 100")) << e.message;

  // Nothing was registered and nothing was reserved.
  EXPECT_EQ(engine().function("one-more").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().stats().unreserved_available, 100);
  auto plain = engine().register_function("one-more", {}, echo_handler());
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(engine().invoke(*plain, "ok").value(), "ok");
}

TEST_P(ConcurrencyTest, MinUnreservedConcurrencyIsConfigurable) {
  EngineOptions o = options();
  o.concurrency_limit = 10;
  o.min_unreserved_concurrency = 5;
  Engine engine{o};
  auto too_much = engine.register_function("six", {.reserved_concurrency = 6}, echo_handler());
  ASSERT_FALSE(too_much);
  EXPECT_EQ(too_much.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(too_much.error(), "would leave 4 unreserved")) << too_much.error().message;
  EXPECT_TRUE(mentions(too_much.error(), "min_unreserved_concurrency 5"))
      << too_much.error().message;
  EXPECT_EQ(engine.stats().unreserved_available, 10);
  ASSERT_TRUE(engine.register_function("five", {.reserved_concurrency = 5}, echo_handler()));
  EXPECT_EQ(engine.stats().unreserved_available, 5);
}

TEST_P(ConcurrencyTest, SlotsAreReleasedWhenHandlersReturn) {
  Engine engine{small_engine(options(), 2)};
  Blocker blocker;
  auto fn = engine.register_function("busy", {}, blocker.handler()).value();
  {
    Callers held(engine, fn, 2, Dispatch::kInline, blocker);
    blocker.wait_started(2);
    EXPECT_EQ(engine.stats().in_flight, 2);
    EXPECT_EQ(engine.invoke(fn, "fast").error().code, ErrorCode::kThrottled);
    blocker.release();
    for (const auto& r : held.join()) EXPECT_EQ(r.value(), "held");
  }
  EXPECT_EQ(engine.stats().in_flight, 0);
  EXPECT_EQ(engine.invoke(fn, "fast").value(), "fast");
  EXPECT_EQ(engine.invoke(fn, "fast", {.dispatch = Dispatch::kPool}).value(), "fast");
  EXPECT_EQ(engine.stats().throttles, 1u);
}

TEST_P(ConcurrencyTest, PoolDispatchedHandlersHoldTheirSlotsUntilTheyReturn) {
  // One blocked handler per worker: every worker is busy, and the cap is reached.
  const int n = GetParam();
  Engine engine{small_engine(options(), n)};
  Blocker blocker;
  auto fn =
      engine.register_function("busy", {.dispatch = Dispatch::kPool}, blocker.handler()).value();
  Callers held(engine, fn, n, Dispatch::kPool, blocker);
  blocker.wait_started(n);
  EXPECT_EQ(engine.stats().in_flight, n);
  auto r = engine.invoke(fn, "fast", {.dispatch = Dispatch::kInline});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kThrottled);

  blocker.release();
  for (const auto& result : held.join()) EXPECT_EQ(result.value(), "held");
  EXPECT_EQ(engine.stats().in_flight, 0);
  EXPECT_EQ(engine.invoke(fn, "fast").value(), "fast");
}

TEST_P(ConcurrencyTest, AsyncInvokesHoldSlotsFromAdmissionUntilTheirCallbacks) {
  Blocker blocker;
  std::atomic<int> done{0};
  Condition changed;
  Engine engine{small_engine(options(), 2)};  // destroyed first: it waits for the handlers
  ReleaseOnExit guard{blocker};
  auto fn = engine.register_function("busy", {}, blocker.handler()).value();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(engine.invoke_async(fn, "async", [&](Result<std::string> r) {
      EXPECT_EQ(r.value(), "async");
      done.fetch_add(1);
      changed.notify();
    }));
  }
  // Admitted (not queued): the slots are taken even before a worker starts the handlers.
  EXPECT_EQ(engine.stats().in_flight, 2);
  EXPECT_EQ(engine.stats().queued, 0);
  auto r = engine.invoke(fn, "fast");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kThrottled);

  blocker.release();
  changed.wait([&] { return done.load() == 2; });
  EXPECT_EQ(engine.stats().in_flight, 0);
  EXPECT_EQ(engine.invoke(fn, "fast").value(), "fast");
}

TEST_P(ConcurrencyTest, NestedInvokeOfASaturatedFunctionIsThrottled) {
  Blocker blocker;
  auto inner = add("inner", blocker.handler(), {.reserved_concurrency = 1});
  auto outer = add("outer", [inner](Context& ctx, std::string_view) -> Result<std::string> {
    return ctx.invoke(inner, "fast");
  });
  Callers held(engine(), inner, 1, Dispatch::kInline, blocker);
  blocker.wait_started(1);

  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(outer, "", {.dispatch = d});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kThrottled);
    EXPECT_TRUE(mentions(r.error(), "reserved concurrency of function 'inner' (1)"))
        << r.error().message;
  }
  blocker.release();
  held.join();
  EXPECT_EQ(engine().invoke(outer, "").value(), "fast");
}

TEST_P(ConcurrencyTest, FailingHandlersGiveTheirSlotsBack) {
  auto throws = add(
      "throws",
      [](Context&, std::string_view) -> Result<std::string> { throw std::runtime_error("boom"); },
      {.reserved_concurrency = 1});
  auto fails = add("fails",
                   [](Context&, std::string_view) -> Result<std::string> {
                     return fail(ErrorCode::kInvalidArgument, "no");
                   },
                   {.reserved_concurrency = 1});
  for (int i = 0; i < 3; ++i) {
    for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
      EXPECT_EQ(engine().invoke(throws, "", {.dispatch = d}).error().code,
                ErrorCode::kHandlerFailed);
      EXPECT_EQ(engine().invoke(fails, "", {.dispatch = d}).error().code,
                ErrorCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(engine().stats().in_flight, 0);
  EXPECT_EQ(engine().stats().throttles, 0u);
}

TEST_P(ConcurrencyTest, ThrottledInvokesTakeNoSlot) {
  Engine engine{small_engine(options(), 1)};
  Blocker blocker;
  auto fn = engine.register_function("busy", {}, blocker.handler()).value();
  Callers held(engine, fn, 1, Dispatch::kInline, blocker);
  blocker.wait_started(1);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(engine.invoke(fn, "fast").error().code, ErrorCode::kThrottled);
  }
  EXPECT_EQ(engine.stats().throttles, 10u);
  EXPECT_EQ(engine.stats().in_flight, 1);
  blocker.release();
  held.join();
  EXPECT_EQ(engine.stats().in_flight, 0);
  EXPECT_EQ(engine.invoke(fn, "fast").value(), "fast");
}

INSTANTIATE_TEST_SUITE_P(Workers, ConcurrencyTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
