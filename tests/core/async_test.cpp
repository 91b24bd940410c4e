// Async invokes: invoke_async and invoke_future, their immediate errors, the per-function FIFO
// of invokes waiting for a concurrency slot (its bound and its queue-wait limit), and execution
// deadlines watched by the engine's timer thread.
#include <absl/strings/str_cat.h>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace ember::testing {
namespace {

constexpr absl::Duration kDefaultTimeout = absl::Seconds(3);

// The outcomes of async invokes, by tag, in the order the callbacks ran (thread-safe).
class Outcomes {
 public:
  struct Outcome {
    std::string tag;
    Result<std::string> result;
    std::thread::id thread;
  };

  InvokeCallback callback(std::string tag) {
    return [this, tag = std::move(tag)](Result<std::string> r) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.push_back({tag, std::move(r), std::this_thread::get_id()});
      }
      changed_.notify();
    };
  }
  // Waits until `n` callbacks ran in all.
  void wait_count(std::size_t n) {
    changed_.wait([&] { return size() >= n; });
  }
  // Waits for the callback of `tag` and returns its result.
  Result<std::string> wait_for(std::string_view tag) {
    changed_.wait([&] { return count(tag) > 0; });
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& o : all_) {
      if (o.tag == tag) return o.result;
    }
    return fail(ErrorCode::kInternal, "unreachable");
  }
  std::size_t count(std::string_view tag) {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& o : all_) n += o.tag == tag ? 1 : 0;
    return n;
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }
  std::vector<Outcome> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }

 private:
  std::mutex mu_;
  std::vector<Outcome> all_;  // guarded by mu_
  Condition changed_;
};

// A handler whose "block" invoke waits until release() and whose other invokes record their
// payload, in the order they ran, and return it ("remaining": the time left to the deadline).
class Recorder {
 public:
  BytesHandler handler() {
    return [this](Context& ctx, std::string_view in) -> Result<std::string> {
      if (in == "block") {
        request_id_ = std::string(ctx.request_id());
        started_.set();
        release_.wait();
        returned_.store(true);
        return std::string("unblocked");
      }
      std::lock_guard<std::mutex> lock(mu_);
      ran_.emplace_back(in);
      if (in == "remaining") return absl::FormatDuration(ctx.remaining());
      return std::string(in);
    };
  }
  void wait_started() { started_.wait(); }
  void release() { release_.set(); }
  std::vector<std::string> ran() {
    std::lock_guard<std::mutex> lock(mu_);
    return ran_;
  }
  // Of the "block" invoke; read after wait_started().
  [[nodiscard]] const std::string& request_id() const { return request_id_; }
  [[nodiscard]] bool block_returned() const { return returned_.load(); }

 private:
  Event started_, release_;
  std::string request_id_;
  std::atomic<bool> returned_{false};
  std::mutex mu_;
  std::vector<std::string> ran_;  // guarded by mu_
};

// The outcomes and the recorder outlive the engine, and TearDown releases the recorder,
// so a failed assertion can neither hang the engine's shutdown nor leave a callback dangling.
class AsyncTest : public EngineTest {
 protected:
  void TearDown() override {
    recorder_.release();
    engine_.reset();
  }

  Outcomes outcomes_;
  Recorder recorder_;
};

TEST_P(AsyncTest, CallbackIsCalledExactlyOnceWithTheResult) {
  auto echo = add("echo", echo_handler());
  auto fails = add("fails", [](Context&, std::string_view) -> Result<std::string> {
    return fail(ErrorCode::kInvalidArgument, "bad input");
  });
  ASSERT_TRUE(engine().invoke_async(echo, "hello", outcomes_.callback("echo")));
  ASSERT_TRUE(engine().invoke_async(fails, "", outcomes_.callback("fails")));
  EXPECT_EQ(outcomes_.wait_for("echo").value(), "hello");
  auto failed = outcomes_.wait_for("fails");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), (Error{ErrorCode::kInvalidArgument, "bad input"}));

  engine_.reset();  // joins every engine thread: no callback can come later
  EXPECT_EQ(outcomes_.count("echo"), 1u);
  EXPECT_EQ(outcomes_.count("fails"), 1u);
}

TEST_P(AsyncTest, InvokeFutureDeliversTheResultOrTheHandlersError) {
  auto echo = add("echo", echo_handler());
  auto throws = add("throws", [](Context&, std::string_view) -> Result<std::string> {
    throw std::runtime_error("kaput");
  });
  EXPECT_EQ(engine().invoke_future(echo, "value").get().value(), "value");
  auto failed = engine().invoke_future(throws, "").get();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kHandlerFailed);
  EXPECT_TRUE(mentions(failed.error(), "kaput")) << failed.error().message;
}

TEST_P(AsyncTest, ImmediateErrorsAreReturnedAndTheCallbackIsNeverCalled) {
  auto echo = add("echo", echo_handler());
  auto typed = engine().register_function<int, int>(
      "typed", {}, [](Context&, const int& i) -> Result<int> { return i; });
  ASSERT_TRUE(typed);
  Engine other{options()};
  auto foreign = other.register_function("echo", {}, echo_handler()).value();

  auto expect_refused = [&](Result<void> r, ErrorCode code, std::string_view text) {
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_TRUE(mentions(r.error(), text)) << r.error().message;
  };
  expect_refused(engine().invoke_async(FunctionHandle{}, "", outcomes_.callback("empty handle")),
                 ErrorCode::kInvalidArgument, "empty FunctionHandle");
  expect_refused(engine().invoke_async(foreign, "", outcomes_.callback("foreign")),
                 ErrorCode::kInvalidArgument, "another engine");
  expect_refused(engine().invoke_async(*typed, "", outcomes_.callback("typed")),
                 ErrorCode::kInvalidArgument, "'typed'");
  expect_refused(engine().invoke_async(echo, "", InvokeCallback{}), ErrorCode::kInvalidArgument,
                 "callback is empty");
  const std::size_t limit = std::size_t{1} << 20;  // the default max_async_payload
  expect_refused(
      engine().invoke_async(echo, std::string(limit + 1, 'x'), outcomes_.callback("big")),
      ErrorCode::kPayloadTooLarge, absl::StrCat(limit + 1, " bytes"));
  ASSERT_TRUE(engine().invoke_async(echo, std::string(limit, 'x'), outcomes_.callback("at limit")));
  EXPECT_EQ(outcomes_.wait_for("at limit").value().size(), limit);

  engine().shutdown();
  expect_refused(engine().invoke_async(echo, "", outcomes_.callback("after shutdown")),
                 ErrorCode::kShuttingDown, "shutting down");

  engine_.reset();
  ASSERT_EQ(outcomes_.size(), 1u);
  EXPECT_EQ(outcomes_.all()[0].tag, "at limit");
}

TEST_P(AsyncTest, InvokeFutureCarriesImmediateErrors) {
  auto echo = add("echo", echo_handler());
  auto empty = engine().invoke_future(FunctionHandle{}, "");
  ASSERT_EQ(empty.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(empty.get().error().code, ErrorCode::kInvalidArgument);
  engine().shutdown();
  auto late = engine().invoke_future(echo, "");
  ASSERT_EQ(late.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(late.get().error().code, ErrorCode::kShuttingDown);
}

TEST_P(AsyncTest, MaxAsyncPayloadIsConfigurable) {
  EngineOptions o = options();
  o.max_async_payload = 8;
  Engine engine{o};
  auto echo = engine.register_function("echo", {}, echo_handler()).value();
  auto big = engine.invoke_future(echo, "123456789").get();
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_TRUE(mentions(big.error(), "9 bytes exceeds the limit of 8")) << big.error().message;
  EXPECT_EQ(engine.invoke_future(echo, "12345678").get().value(), "12345678");
  EXPECT_EQ(engine.invoke(echo, "123456789").value(), "123456789");  // sync has its own limit
}

TEST_P(AsyncTest, QueuedInvokesRunInFifoOrderWhenASlotFrees) {
  auto fn = add("serial", recorder_.handler(), {.reserved_concurrency = 1});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  const std::vector<std::string> sent = {"a", "b", "c", "d", "e"};
  for (const auto& p : sent) ASSERT_TRUE(engine().invoke_async(fn, p, outcomes_.callback(p)));
  EXPECT_EQ(engine().stats().queued, 5);
  EXPECT_EQ(engine().stats().in_flight, 1);
  EXPECT_TRUE(recorder_.ran().empty());

  recorder_.release();
  outcomes_.wait_count(6);
  // Handlers run in the order sent. (Callbacks may not: a slot is handed on before the
  // callback of the invocation that freed it runs.)
  EXPECT_EQ(recorder_.ran(), sent);
  for (const auto& o : outcomes_.all()) EXPECT_TRUE(o.result) << o.tag;
  EXPECT_EQ(engine().stats().queued, 0);
}

TEST_P(AsyncTest, QueueHoldsAtMostMaxQueuedPerFunction) {
  EngineOptions o = options();
  o.max_queued_per_function = 2;
  engine_ = std::make_unique<Engine>(o);
  auto fn =
      engine().register_function("q", {.reserved_concurrency = 1}, recorder_.handler()).value();
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(fn, "1", outcomes_.callback("1")));
  ASSERT_TRUE(engine().invoke_async(fn, "2", outcomes_.callback("2")));

  auto full = engine().invoke_async(fn, "3", outcomes_.callback("3"));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kQueueFull);
  EXPECT_TRUE(mentions(full.error(), "function 'q': 2 async invokes already wait"))
      << full.error().message;
  EXPECT_TRUE(mentions(full.error(), "reserved concurrency of function 'q'"))
      << full.error().message;
  EXPECT_EQ(engine().stats().throttles, 1u);
  EXPECT_EQ(engine().stats().queued, 2);

  recorder_.release();
  outcomes_.wait_count(3);
  EXPECT_EQ(recorder_.ran(), (std::vector<std::string>{"1", "2"}));
  // With the queue drained there is room again.
  EXPECT_EQ(engine().invoke_future(fn, "4").get().value(), "4");
  engine_.reset();
  EXPECT_EQ(outcomes_.count("3"), 0u);
  EXPECT_EQ(outcomes_.size(), 3u);
}

TEST_P(AsyncTest, UnreservedFunctionsQueueForTheUnreservedPool) {
  EngineOptions o = options();
  o.concurrency_limit = 1;
  o.min_unreserved_concurrency = 0;
  o.max_queued_per_function = 1;
  engine_ = std::make_unique<Engine>(o);
  auto holder = engine().register_function("holder", {}, recorder_.handler()).value();
  auto waiter = engine().register_function("waiter", {}, echo_handler()).value();
  ASSERT_TRUE(engine().invoke_async(holder, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(waiter, "queued", outcomes_.callback("queued")));
  EXPECT_EQ(engine().stats().queued, 1);
  auto full = engine().invoke_async(waiter, "one too many", outcomes_.callback("refused"));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kQueueFull);
  EXPECT_TRUE(mentions(full.error(), "unreserved concurrency pool")) << full.error().message;

  recorder_.release();
  EXPECT_EQ(outcomes_.wait_for("queued").value(), "queued");
  engine_.reset();
  EXPECT_EQ(outcomes_.count("refused"), 0u);
}

TEST_P(AsyncTest, QueuedInvokePastMaxQueueWaitTimesOutWithoutRunning) {
  auto fn = add("slow-queue", recorder_.handler(),
                {.reserved_concurrency = 1, .max_queue_wait = absl::Milliseconds(500)});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(fn, "late", outcomes_.callback("late")));
  clock_.advance(absl::Milliseconds(500));

  auto r = outcomes_.wait_for("late");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(r.error(), "'slow-queue'")) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "waited 500ms")) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "never ran")) << r.error().message;
  EXPECT_EQ(engine().stats().queued, 0);
  EXPECT_EQ(engine().stats().timeouts, 1u);

  recorder_.release();
  EXPECT_EQ(outcomes_.wait_for("block").value(), "unblocked");
  engine_.reset();
  EXPECT_TRUE(recorder_.ran().empty());  // "late" never reached the handler
  EXPECT_EQ(outcomes_.count("late"), 1u);
}

TEST_P(AsyncTest, InvokeOptionMaxQueueWaitOverridesTheFunctions) {
  auto fn = add("q", recorder_.handler(), {.reserved_concurrency = 1});  // waits up to 1 s
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(fn, "patient", outcomes_.callback("patient")));
  ASSERT_TRUE(engine().invoke_async(fn, "hasty", outcomes_.callback("hasty"),
                                    {.max_queue_wait = absl::Milliseconds(100)}));
  clock_.advance(absl::Milliseconds(100));

  auto hasty = outcomes_.wait_for("hasty");
  ASSERT_FALSE(hasty);
  EXPECT_EQ(hasty.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(hasty.error(), "waited 100ms")) << hasty.error().message;
  EXPECT_EQ(engine().stats().queued, 1);  // "patient" still waits

  recorder_.release();
  EXPECT_EQ(outcomes_.wait_for("patient").value(), "patient");
  outcomes_.wait_count(3);
  EXPECT_EQ(recorder_.ran(), (std::vector<std::string>{"patient"}));
}

TEST_P(AsyncTest, QueueWaitIsSeparateFromTheExecutionTimeout) {
  // 3 s execution timeout, 1 s queue wait.
  auto fn = add("q", recorder_.handler(), {.reserved_concurrency = 1});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(fn, "remaining", outcomes_.callback("queued")));
  clock_.advance(absl::Milliseconds(900));  // most of the queue wait
  recorder_.release();
  // Admitted 0.9 s after it was sent, it still has its whole execution timeout.
  EXPECT_EQ(outcomes_.wait_for("queued").value(), "3s");
  outcomes_.wait_count(2);
  EXPECT_EQ(engine().stats().timeouts, 0u);
}

TEST_P(AsyncTest, HandlerPastItsDeadlineGetsTimeoutCallbackWhileItStillRuns) {
  // The timer thread watches async deadlines, so this holds even when the handler blocks the
  // only worker.
  auto fn = add("stuck", recorder_.handler());
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("stuck")));
  recorder_.wait_started();
  clock_.advance(kDefaultTimeout);

  auto r = outcomes_.wait_for("stuck");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_TRUE(mentions(r.error(), "'stuck'")) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "Task timed out after 3.00 seconds")) << r.error().message;
  EXPECT_FALSE(recorder_.block_returned());
  EXPECT_EQ(engine().stats().running_overruns, 1);
  EXPECT_EQ(engine().stats().in_flight, 1);  // it keeps its slot

  recorder_.release();
  logs_.wait_for(absl::StrCat("stuck|", recorder_.request_id(),
                              "|handler returned after its caller was released"));
  EXPECT_TRUE(recorder_.block_returned());
  EXPECT_EQ(engine().stats().running_overruns, 0);
  EXPECT_EQ(engine().stats().overruns, 1u);
  engine_.reset();
  EXPECT_EQ(outcomes_.count("stuck"), 1u);  // the late result is dropped, not delivered
}

TEST_P(AsyncTest, CallbacksRunOnANonCallerThread) {
  auto fn = add("q", recorder_.handler(),
                {.reserved_concurrency = 1, .max_queue_wait = absl::Milliseconds(10)});
  ASSERT_TRUE(engine().invoke_async(fn, "block", outcomes_.callback("block")));
  ASSERT_TRUE(engine().invoke_async(fn, "times out", outcomes_.callback("times out")));
  recorder_.wait_started();
  clock_.advance(absl::Milliseconds(10));  // the queue timeout is delivered by the timer thread
  outcomes_.wait_for("times out");
  clock_.advance(kDefaultTimeout);  // so is the execution timeout of "block"
  outcomes_.wait_for("block");
  recorder_.release();
  logs_.wait_for(absl::StrCat("q|", recorder_.request_id(),
                              "|handler returned after its caller was released"));
  ASSERT_TRUE(engine().invoke_async(fn, "ok", outcomes_.callback("ok")));  // a worker's callback
  EXPECT_EQ(outcomes_.wait_for("ok").value(), "ok");

  ASSERT_EQ(outcomes_.size(), 3u);
  for (const auto& o : outcomes_.all()) {
    EXPECT_NE(o.thread, std::this_thread::get_id()) << o.tag;
  }
}

TEST_P(AsyncTest, ManyAsyncInvokesFromSeveralThreadsAllCompleteExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  // Four slots for 800 invokes: most of them queue and are handed a slot as others finish.
  auto fn = add("echo", echo_handler(), {.reserved_concurrency = 4});
  std::vector<std::atomic<int>> calls(kThreads * kPerThread);
  std::atomic<int> total{0}, wrong{0};
  Condition done;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        auto sent = engine().invoke_async(fn, std::to_string(id), [&, id](Result<std::string> r) {
          if (!r || *r != std::to_string(id)) wrong.fetch_add(1);
          calls[static_cast<std::size_t>(id)].fetch_add(1);
          total.fetch_add(1);
          done.notify();
        });
        if (!sent) wrong.fetch_add(1);
      }
    });
  }
  for (auto& s : senders) s.join();
  done.wait([&] { return total.load() >= kThreads * kPerThread; });
  engine_.reset();  // no callback can come after this
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(total.load(), kThreads * kPerThread);
  for (std::size_t id = 0; id < calls.size(); ++id) EXPECT_EQ(calls[id].load(), 1) << id;
}

TEST_P(AsyncTest, AsyncInvokeFromAHandlerGetsAtMostTheCallersRemainingTime) {
  auto inner = add("inner", [](Context& ctx, std::string_view) -> Result<std::string> {
    return absl::StrCat(absl::FormatDuration(ctx.remaining()), " depth ", ctx.depth());
  });  // 3 s timeout
  auto outer = add("outer",
                   [&](Context& ctx, std::string_view) -> Result<std::string> {
                     clock_.advance(absl::Seconds(8));  // 2 s of the outer's 10 s are left
                     auto sent = ctx.engine().invoke_async(inner, "", outcomes_.callback("inner"));
                     if (!sent) return tl::unexpected(sent.error());
                     return std::string("sent");
                   },
                   {.timeout = absl::Seconds(10)});
  ASSERT_EQ(engine().invoke(outer, "").value(), "sent");
  EXPECT_EQ(outcomes_.wait_for("inner").value(), "2s depth 1");
}

INSTANTIATE_TEST_SUITE_P(Workers, AsyncTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
