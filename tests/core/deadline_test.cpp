// Deadlines and timeouts: the deadline a handler sees, its propagation into nested invokes,
// fiber-aware sleeps and yields, inline overruns, and pool callers released at the deadline
// while their handler still runs (DESIGN.md §4).
//
// Time moves only through the ManualClock. A test that must advance the clock while a handler
// is suspended waits for an event saying the handler got there, never for a while.
#include <absl/strings/str_cat.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr absl::Duration kDefaultTimeout = absl::Seconds(3);

// A handler that blocks its thread until released, recording what it saw. Payload "fast"
// returns at once.
struct Straggler {
  Event started, release;
  std::string request_id;
  bool cancelled_at_start = true, cancelled_at_end = false;
  Result<void> check_at_end;

  BytesHandler handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      if (in == "fast") return std::string("fast");
      request_id = std::string(ctx.request_id());
      cancelled_at_start = ctx.cancelled();
      started.set();
      release.wait();
      cancelled_at_end = ctx.cancelled();
      check_at_end = ctx.check();
      return "late";
    };
  }
};

// TearDown releases the straggler before the engine goes, so a failed assertion cannot hang.
class DeadlineTest : public EngineTest {
 protected:
  void TearDown() override {
    straggler_.release.set();
    engine_.reset();  // before the members below, which its handlers and log lines use
  }

  Straggler straggler_;
};

// A view of a ManualClock that tells when a handler's fiber has switched out.
//
// A handler calls watch() just before it suspends (sleep_for). From then on, a read of the time
// by the same thread from off the handler's fiber stack can only come from what runs that
// thread once the fiber has switched out (a worker's loop, an inline caller's host loop): so
// the sleep has been armed, and the test may move the clock without racing it.
class SwitchOutProbe final : public Clock {
 public:
  explicit SwitchOutProbe(ManualClock& inner) : inner_(inner) {}

  [[nodiscard]] absl::Time now() const noexcept override {
    const absl::Time t = inner_.now();
    if (watching_.load(std::memory_order_acquire) && std::this_thread::get_id() == thread_.load()) {
      const auto here = reinterpret_cast<std::intptr_t>(__builtin_frame_address(0));
      // The fiber's own reads (in sleep_for) are a few frames below the handler's; a thread's
      // native stack is another mapping, hundreds of KiB away at least.
      if (std::abs(here - frame_.load()) > (std::intptr_t{64} << 10)) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!seen_ || t > last_) last_ = t;
        seen_ = true;
        cv_.notify_all();
      }
    }
    return t;
  }
  void add_listener(ClockListener* l) override { inner_.add_listener(l); }
  void remove_listener(ClockListener* l) override { inner_.remove_listener(l); }

  // Called by the handler, with __builtin_frame_address(0), just before it suspends.
  void watch(void* handler_frame) {
    thread_.store(std::this_thread::get_id());
    frame_.store(reinterpret_cast<std::intptr_t>(handler_frame));
    watching_.store(true, std::memory_order_release);
  }
  // Blocks until the watched thread read a time of `at` or later from off the handler's stack.
  void wait_switched_out(absl::Time at) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return seen_ && last_ >= at; });
  }

 private:
  ManualClock& inner_;
  std::atomic<bool> watching_{false};
  std::atomic<std::thread::id> thread_{};
  std::atomic<std::intptr_t> frame_{0};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool seen_ = false;  // guarded by mu_
  mutable absl::Time last_;    // guarded by mu_
};

// What a handler saw of its own deadline, as "remaining@deadline" (thread-safe to return).
std::string seen_deadline(const Context& ctx) {
  return absl::StrCat(absl::FormatDuration(ctx.remaining()), "@",
                      absl::ToUnixNanos(ctx.deadline()));
}

std::string at(absl::Time t, absl::Duration remaining) {
  return absl::StrCat(absl::FormatDuration(remaining), "@", absl::ToUnixNanos(t));
}

TEST_P(DeadlineTest, DefaultTimeoutIsThreeSecondsOnTheInjectedClock) {
  auto fn = add("deadline", [](Context& ctx, std::string_view) -> Result<std::string> {
    return seen_deadline(ctx);
  });
  const absl::Time start = clock_.now();
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto r = engine().invoke(fn, "", {.dispatch = d});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, at(start + kDefaultTimeout, kDefaultTimeout));
  }
}

TEST_P(DeadlineTest, InvokeTimeoutShortensButNeverLengthensTheFunctionTimeout) {
  auto fn =
      add("deadline",
          [](Context& ctx, std::string_view) -> Result<std::string> { return seen_deadline(ctx); },
          {.timeout = absl::Seconds(10)});
  const absl::Time start = clock_.now();
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    EXPECT_EQ(engine().invoke(fn, "").value(), at(start + absl::Seconds(10), absl::Seconds(10)));
    EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d, .timeout = absl::Seconds(2)}).value(),
              at(start + absl::Seconds(2), absl::Seconds(2)));
    EXPECT_EQ(engine().invoke(fn, "", {.dispatch = d, .timeout = absl::Seconds(60)}).value(),
              at(start + absl::Seconds(10), absl::Seconds(10)));
  }
}

TEST_P(DeadlineTest, RemainingShrinksWithTheClockAndIsZeroPastTheDeadline) {
  const absl::Time start = clock_.now();
  absl::Duration after_one = absl::ZeroDuration(), past = absl::InfiniteDuration();
  absl::Time deadline_before, deadline_after;
  auto fn = add("ticking", [&](Context& ctx, std::string_view) -> Result<std::string> {
    deadline_before = ctx.deadline();
    clock_.advance(absl::Seconds(1));
    after_one = ctx.remaining();
    clock_.advance(absl::Seconds(5));
    past = ctx.remaining();
    deadline_after = ctx.deadline();
    return "done";
  });
  auto r = engine().invoke(fn, "");
  EXPECT_EQ(after_one, absl::Seconds(2));
  EXPECT_EQ(past, absl::ZeroDuration());
  EXPECT_EQ(deadline_before, start + kDefaultTimeout);
  EXPECT_EQ(deadline_after, deadline_before);  // fixed at admission
  // It returned 3 s late without suspending: the inline caller gets kTimeout.
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
}

TEST_P(DeadlineTest, NestedInvokeDeadlineIsTheEarlierOfItsTimeoutAndTheCallersRemaining) {
  auto long_fn =
      add("long",
          [](Context& ctx, std::string_view) -> Result<std::string> { return seen_deadline(ctx); },
          {.timeout = absl::Seconds(5)});
  auto short_fn =
      add("short",
          [](Context& ctx, std::string_view) -> Result<std::string> { return seen_deadline(ctx); },
          {.timeout = absl::Seconds(1)});
  std::string outer_seen, long_seen[2], short_seen[2];
  auto outer = add("outer",
                   [&](Context& ctx, std::string_view) -> Result<std::string> {
                     clock_.advance(absl::Seconds(7));  // 3 s of the outer's 10 s are left
                     outer_seen = seen_deadline(ctx);
                     int i = 0;
                     for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
                       long_seen[i] = ctx.invoke(long_fn, "", {.dispatch = d}).value_or("failed");
                       short_seen[i] = ctx.invoke(short_fn, "", {.dispatch = d}).value_or("failed");
                       ++i;
                     }
                     return "ok";
                   },
                   {.timeout = absl::Seconds(10)});
  const absl::Time start = clock_.now();
  ASSERT_TRUE(engine().invoke(outer, ""));
  EXPECT_EQ(outer_seen, at(start + absl::Seconds(10), absl::Seconds(3)));
  for (int i = 0; i < 2; ++i) {
    // 5 s timeout, 3 s left to the caller: the caller's deadline.
    EXPECT_EQ(long_seen[i], at(start + absl::Seconds(10), absl::Seconds(3))) << i;
    // 1 s timeout, 3 s left to the caller: its own.
    EXPECT_EQ(short_seen[i], at(start + absl::Seconds(8), absl::Seconds(1))) << i;
  }
}

TEST_P(DeadlineTest, InlineSleepPastTheDeadlineEndsWithTimeoutWhenTheClockPassesIt) {
  Event started;
  Result<void> slept;
  absl::Duration slept_for;
  auto fn = add("sleepy", [&](Context& ctx, std::string_view) -> Result<std::string> {
    const absl::Time before = clock_.now();
    started.set();
    slept = ctx.sleep_for(absl::Seconds(10));
    slept_for = clock_.now() - before;
    if (!slept) return tl::unexpected(slept.error());
    return "slept";
  });
  std::thread mover([&] {
    started.wait();
    clock_.advance(kDefaultTimeout);
  });
  auto r = engine().invoke(fn, "", {.dispatch = Dispatch::kInline});
  mover.join();
  ASSERT_FALSE(slept);
  EXPECT_EQ(slept.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(slept_for, kDefaultTimeout);  // woke at the deadline, 7 s before the sleep's end
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
}

// A handler that sleeps 1 s on the probe's engine and reports how it went.
BytesHandler probed_sleeper(ManualClock& clock, SwitchOutProbe& probe) {
  return [&clock, &probe](Context& ctx, std::string_view) -> Result<std::string> {
    const absl::Time before = clock.now();
    probe.watch(__builtin_frame_address(0));
    auto slept = ctx.sleep_for(absl::Seconds(1));
    if (!slept) return tl::unexpected(slept.error());
    return absl::FormatDuration(clock.now() - before);
  };
}

// Moves the clock to a sleeper's wake time in two steps, each once the sleeper's thread saw it.
void advance_past_sleep(ManualClock& clock, SwitchOutProbe& probe) {
  const absl::Time start = clock.now();
  probe.wait_switched_out(start);
  clock.advance(absl::Milliseconds(600));  // not yet
  probe.wait_switched_out(start + absl::Milliseconds(600));
  clock.advance(absl::Milliseconds(400));  // now
}

TEST_P(DeadlineTest, InlineSleepForWakesWhenTheClockReachesTheWakeTime) {
  SwitchOutProbe probe(clock_);
  EngineOptions o = options();
  o.clock = &probe;
  Engine engine{o};
  auto fn = engine.register_function("sleeper", {}, probed_sleeper(clock_, probe)).value();
  std::thread mover([&] { advance_past_sleep(clock_, probe); });
  auto r = engine.invoke(fn, "", {.dispatch = Dispatch::kInline});
  mover.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "1s");
}

TEST_P(DeadlineTest, PoolSleepForWakesWhenTheClockReachesTheWakeTime) {
  SwitchOutProbe probe(clock_);
  EngineOptions o = options();
  o.clock = &probe;
  Engine engine{o};
  auto fn = engine.register_function("sleeper", {}, probed_sleeper(clock_, probe)).value();
  std::thread mover([&] { advance_past_sleep(clock_, probe); });
  auto r = engine.invoke(fn, "", {.dispatch = Dispatch::kPool});
  mover.join();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "1s");
}

TEST_P(DeadlineTest, YieldCheckAndSleepReturnTimeoutPastTheDeadline) {
  Result<void> check_before, yield_before, check_after, yield_after, sleep_after;
  bool cancelled_before = true, cancelled_after = false;
  auto fn = add("looping", [&](Context& ctx, std::string_view) -> Result<std::string> {
    check_before = ctx.check();
    yield_before = ctx.yield();
    cancelled_before = ctx.cancelled();
    clock_.advance(kDefaultTimeout + absl::Milliseconds(1));
    check_after = ctx.check();
    yield_after = ctx.yield();
    sleep_after = ctx.sleep_for(absl::Hours(1));  // returns at once: nobody moves the clock
    cancelled_after = ctx.cancelled();
    return "done";
  });
  auto r = engine().invoke(fn, "");
  EXPECT_TRUE(check_before);
  EXPECT_TRUE(yield_before);
  EXPECT_FALSE(cancelled_before);
  for (const Result<void>* after : {&check_after, &yield_after, &sleep_after}) {
    ASSERT_FALSE(*after);
    EXPECT_EQ(after->error().code, ErrorCode::kTimeout);
    EXPECT_TRUE(mentions(after->error(), "'looping'")) << after->error().message;
  }
  EXPECT_TRUE(cancelled_after);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
}

TEST_P(DeadlineTest, InlineHandlerReturningPastItsDeadlineIsCountedAndLoggedAsAnOverrun) {
  Event started, release;
  std::string request_id;
  auto fn = add("overrun", [&](Context& ctx, std::string_view) -> Result<std::string> {
    request_id = std::string(ctx.request_id());
    started.set();
    release.wait();  // computes past its deadline without a suspension point
    return "late";
  });
  std::thread mover([&] {
    started.wait();
    clock_.advance(absl::Seconds(4));
    release.set();
  });
  auto r = engine().invoke(fn, "", {.dispatch = Dispatch::kInline});
  mover.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(r.error(), "Task timed out after 3.00 seconds")) << r.error().message;
  EngineStats s = engine().stats();
  EXPECT_EQ(s.overruns, 1u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.running_overruns, 0);
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_TRUE(logs_.contains(absl::StrCat("overrun|", request_id, "|Task timed out after")))
      << ::testing::PrintToString(logs_.lines());
}

TEST_P(DeadlineTest, PoolCallerIsReleasedAtTheDeadlineWhileTheHandlerStillRuns) {
  auto fn = add("straggler", straggler_.handler(), {.dispatch = Dispatch::kPool});
  std::thread mover([&] {
    straggler_.started.wait();
    clock_.advance(kDefaultTimeout);
  });
  auto r = engine().invoke(fn, "");
  mover.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(r.error(), "'straggler'")) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "Task timed out after 3.00 seconds")) << r.error().message;

  // The caller has its answer; the handler is still blocked.
  EngineStats during = engine().stats();
  EXPECT_EQ(during.running_overruns, 1);
  EXPECT_EQ(during.overruns, 0u);
  EXPECT_EQ(during.timeouts, 1u);
  EXPECT_EQ(during.in_flight, 1);
  // Logged by function and request id when the caller is released.
  EXPECT_TRUE(
      logs_.contains(absl::StrCat("straggler|", straggler_.request_id, "|Task timed out after")))
      << ::testing::PrintToString(logs_.lines());

  straggler_.release.set();
  logs_.wait_for(absl::StrCat("straggler|", straggler_.request_id,
                              "|handler returned after its caller was released"));
  EngineStats after = engine().stats();
  EXPECT_EQ(after.running_overruns, 0);
  EXPECT_EQ(after.overruns, 1u);
  EXPECT_EQ(after.in_flight, 0);
  EXPECT_FALSE(straggler_.cancelled_at_start);
  EXPECT_TRUE(straggler_.cancelled_at_end);
  ASSERT_FALSE(straggler_.check_at_end);
  EXPECT_EQ(straggler_.check_at_end.error().code,
            ErrorCode::kCancelled);  // released, not just late
}

TEST_P(DeadlineTest, OverrunningHandlerKeepsItsReservedSlotUntilItReturns) {
  auto fn =
      add("single", straggler_.handler(), {.reserved_concurrency = 1, .dispatch = Dispatch::kPool});
  std::thread mover([&] {
    straggler_.started.wait();
    clock_.advance(kDefaultTimeout);
  });
  auto r = engine().invoke(fn, "");
  mover.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);

  // Released caller, running handler: the one slot is still taken, for both dispatch modes.
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    auto refused = engine().invoke(fn, "fast", {.dispatch = d});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, ErrorCode::kThrottled);
    EXPECT_TRUE(mentions(refused.error(), "reserved concurrency of function 'single' (1)"))
        << refused.error().message;
  }

  straggler_.release.set();
  logs_.wait_for(absl::StrCat("single|", straggler_.request_id,
                              "|handler returned after its caller was released"));
  EXPECT_EQ(engine().stats().in_flight, 0);
  EXPECT_EQ(engine().invoke(fn, "fast").value(), "fast");
}

TEST_P(DeadlineTest, NestedPoolInvokeWakesTheWaitingFiberWithTimeoutAtTheDeadline) {
  std::string inner_deadline;
  auto inner = add("inner",
                   [&](Context& ctx, std::string_view in) -> Result<std::string> {
                     inner_deadline = seen_deadline(ctx);
                     return straggler_.handler()(ctx, in);
                   },
                   {.timeout = absl::Seconds(10), .dispatch = Dispatch::kPool});
  Result<std::string> nested;
  absl::Duration waited;
  auto outer = add("outer", [&](Context& ctx, std::string_view) -> Result<std::string> {
    const absl::Time before = clock_.now();
    nested = ctx.invoke(inner, "");  // suspends this fiber; the inner blocks a worker
    waited = clock_.now() - before;
    return nested;
  });
  std::thread mover([&] {
    straggler_.started.wait();
    clock_.advance(kDefaultTimeout);
  });
  const absl::Time start = clock_.now();
  // Inline from this thread: the outer's fiber waits on this thread, not on a worker the inner
  // could be blocking.
  auto r = engine().invoke(outer, "", {.dispatch = Dispatch::kInline});
  mover.join();
  ASSERT_FALSE(nested);
  EXPECT_EQ(nested.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(nested.error(), "'inner'")) << nested.error().message;
  EXPECT_EQ(waited, kDefaultTimeout);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  // The inner's deadline was the outer's (3 s), not its own 10 s.
  EXPECT_EQ(inner_deadline, at(start + kDefaultTimeout, kDefaultTimeout));
  EXPECT_EQ(engine().stats().running_overruns, 1);

  straggler_.release.set();
  logs_.wait_for(absl::StrCat("inner|", straggler_.request_id,
                              "|handler returned after its caller was released"));
  EXPECT_EQ(engine().stats().running_overruns, 0);
  EXPECT_EQ(engine().stats().overruns, 1u);
  EXPECT_TRUE(straggler_.cancelled_at_end);
}

INSTANTIATE_TEST_SUITE_P(Workers, DeadlineTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
