// The plugin ABI matrix: plugins built by another compiler (clang) and in another language (C)
// load into this g++-built host and answer; errors and exceptions cross the boundary as values
// with their type and message; instances are built at load and shut down at unload; and the
// Context features a plugin reaches through the host table (its name, version, deadline,
// nested invokes, fiber sleeps) behave as they do for C++ handlers.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

const std::string kHello = plugin_file("libhello.so");
const std::string kClangHello = plugin_file("clang/libhello.so");
const std::string kCHello = plugin_file("libc_hello.so");
const std::string kClangCHello = plugin_file("clang/libc_hello.so");
const std::string kSession = plugin_file("libsession.so");

// The response, or "error <code>: <message>", so that one EXPECT_EQ shows either.
std::string answer_of(Engine& engine, std::string_view name, std::string_view payload,
                      const InvokeOptions& options = {}) {
  return describe(engine.invoke(name, payload, options));
}

class AbiTest : public EngineTest {
 protected:
  void load(const std::string& path) {
    auto info = engine().load_plugin(path);
    ASSERT_TRUE(info.has_value()) << info.error().message;
  }
  std::string answer(std::string_view name, std::string_view payload,
                     const InvokeOptions& options = {}) {
    return answer_of(engine(), name, payload, options);
  }
  // Invokes `name` inline and on the pool: both must fail with kHandlerFailed and `message`.
  void expect_handler_failed(std::string_view name, std::string_view message) {
    for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
      auto r = engine().invoke(name, "", {.dispatch = d});
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code, ErrorCode::kHandlerFailed);
      EXPECT_EQ(r.error().message, message);
    }
  }
};

// ---- The C++ plugin, built by g++ and by clang ----

TEST_P(AbiTest, ClangBuiltPluginLoadsIntoTheGccBuiltHostAndAnswers) {
  load(kClangHello);
  EXPECT_EQ(answer("hello.tag", ""), "clang");
  EXPECT_EQ(answer("hello.greet", "abi"), "hello, abi");
  EXPECT_EQ(answer("hello.greet", "pool", {.dispatch = Dispatch::kPool}), "hello, pool");
}

TEST_P(AbiTest, HandlerErrorCrossesTheBoundaryWithItsTypeAndMessage) {
  for (const std::string& path : {kHello, kClangHello}) {
    SCOPED_TRACE(path);
    load(path);
    ASSERT_NO_FATAL_FAILURE(expect_handler_failed(
        "hello.fail", "function 'hello.fail' failed: ValidationError: payload must not be empty"));
    EXPECT_EQ(answer("hello.fail", "fine"), "fine");
    ASSERT_TRUE(engine().unload_plugin("hello").has_value());
  }
  EXPECT_EQ(engine().stats().handler_errors, 4u);
}

TEST_P(AbiTest, ExceptionIsCaughtAtThePluginBoundaryAndReportedWithItsType) {
  for (const std::string& path : {kHello, kClangHello}) {
    SCOPED_TRACE(path);
    load(path);
    ASSERT_NO_FATAL_FAILURE(expect_handler_failed(
        "hello.throw", "function 'hello.throw' failed: std::runtime_error: boom from hello"));
    // The plugin, its fibers and the engine are fine afterwards.
    EXPECT_EQ(answer("hello.greet", "after"), "hello, after");
    ASSERT_TRUE(engine().unload_plugin("hello").has_value());
  }
  EXPECT_EQ(engine().stats().handler_errors, 4u);
  EXPECT_EQ(engine().stats().in_flight, 0);
}

TEST_P(AbiTest, LoadReportsThePluginItsVersionPathAndEveryFunctionAtVersionOne) {
  auto info = engine().load_plugin(kHello);
  ASSERT_TRUE(info.has_value()) << info.error().message;
  EXPECT_EQ(info->name, "hello");
  EXPECT_EQ(info->version, "1.0.0");
  EXPECT_EQ(info->path, kHello);
  EXPECT_TRUE(info->layers.empty());
  std::vector<std::string> functions;
  for (const PublishedFunction& f : info->functions) {
    functions.push_back(f.name);
    EXPECT_EQ(f.version, "1") << f.name;
  }
  EXPECT_EQ(functions,
            (std::vector<std::string>{"hello.greet", "hello.tag", "hello.fail", "hello.throw",
                                      "hello.nested", "hello.sleep", "hello.info"}));
  // plugins() tells the same.
  const std::vector<PluginInfo> loaded = engine().plugins();
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].name, "hello");
  EXPECT_EQ(loaded[0].version, "1.0.0");
  EXPECT_EQ(loaded[0].path, kHello);
  EXPECT_EQ(loaded[0].functions.size(), 7u);
  EXPECT_EQ(engine().stats().plugins_loaded, 1);
  for (const std::string& f : functions) {
    EXPECT_EQ(engine().versions(f).value_or(std::vector<std::string>{}),
              std::vector<std::string>{"1"})
        << f;
  }
}

// ---- The C plugin, built by gcc and by clang ----

TEST_P(AbiTest, CPluginAnswersBuiltByGccAndByClang) {
  for (const std::string& path : {kCHello, kClangCHello}) {
    SCOPED_TRACE(path);
    Engine engine{options()};  // a fresh engine each: versions start at 1
    auto info = engine.load_plugin(path);
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(info->name, "c_hello");
    EXPECT_EQ(info->functions.size(), 4u);
    const std::string binary("a\0b\xff", 4);  // sizes, not NUL-terminated strings, cross
    EXPECT_EQ(answer_of(engine, "c.echo", binary), binary);
    EXPECT_EQ(answer_of(engine, "c.echo", ""), "");
    EXPECT_EQ(answer_of(engine, "c.upper", "Hello, w\xc3\xb6rld 42"), "HELLO, W\xc3\xb6RLD 42");
    EXPECT_EQ(answer_of(engine, "c.upper", ""), "");
    EXPECT_EQ(answer_of(engine, "c.who", ""), "c.who@1");
    EXPECT_EQ(answer_of(engine, "c.who", "", {.dispatch = Dispatch::kPool}), "c.who@1");
  }
}

TEST_P(AbiTest, CPluginInstanceStateCountsItsCallsAcrossDispatches) {
  for (const std::string& path : {kCHello, kClangCHello}) {
    SCOPED_TRACE(path);
    Engine engine{options()};
    ASSERT_TRUE(engine.load_plugin(path).has_value());
    EXPECT_EQ(answer_of(engine, "c.state", ""), "1");
    EXPECT_EQ(answer_of(engine, "c.state", "", {.dispatch = Dispatch::kPool}), "2");
    EXPECT_EQ(answer_of(engine, "c.state", ""), "3");
  }
}

TEST_P(AbiTest, TwoEnginesLoadingTheSamePluginHaveTheirOwnInstances) {
  Engine other{options()};
  load(kCHello);
  ASSERT_TRUE(other.load_plugin(kCHello).has_value());
  EXPECT_EQ(answer("c.state", ""), "1");
  EXPECT_EQ(answer("c.state", ""), "2");
  EXPECT_EQ(answer_of(other, "c.state", ""), "1");
}

// ---- A stateful C++ plugin: instances built at load, shut down at unload ----

TEST_P(AbiTest, InstanceIsBuiltAtLoadAndShutDownAtUnloadWithItsCallCount) {
  load(kSession);
  // Init ran during load, on the loading thread, and logged through the host tagged with the
  // plugin.
  EXPECT_TRUE(logs_.contains("plugin:session||session instance up for session.count v1"));
  EXPECT_FALSE(logs_.contains("session instance down"));
  EXPECT_EQ(answer("session.count", ""), "1");
  EXPECT_EQ(answer("session.count", "", {.dispatch = Dispatch::kPool}), "2");
  EXPECT_EQ(answer("session.count", ""), "3");
  EXPECT_FALSE(logs_.contains("session instance down"));

  ASSERT_TRUE(engine().unload_plugin("session").has_value());
  EXPECT_TRUE(logs_.contains("plugin:session||session instance down after 3 calls"));
  auto gone = engine().invoke("session.count", "");
  ASSERT_FALSE(gone.has_value());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().stats().plugins_loaded, 0);
  EXPECT_TRUE(engine().plugins().empty());
}

TEST_P(AbiTest, InstanceIsShutDownWhenTheEngineGoesWithThePluginLoaded) {
  load(kSession);
  EXPECT_EQ(answer("session.count", ""), "1");
  EXPECT_EQ(answer("session.count", ""), "2");
  engine_.reset();
  EXPECT_TRUE(logs_.contains("session instance down after 2 calls"));
}

// ---- Context features through the host table ----

TEST_P(AbiTest, PluginSeesItsNameVersionAndDeadline) {
  load(kHello);
  // The clock stands still: the remaining time is the whole timeout (3 s by default), or the
  // shorter one the invoke asks for.
  EXPECT_EQ(answer("hello.info", ""), "hello.info 1 3000");
  EXPECT_EQ(answer("hello.info", "", {.dispatch = Dispatch::kPool}), "hello.info 1 3000");
  EXPECT_EQ(answer("hello.info", "", {.timeout = absl::Milliseconds(250)}), "hello.info 1 250");
  EXPECT_EQ(answer("hello.info:1", ""), "hello.info 1 3000");
}

TEST_P(AbiTest, PluginInvokesAnotherFunctionThroughTheHost) {
  load(kHello);
  EXPECT_EQ(answer("hello.nested", "n"), "nested: hello, n");
  EXPECT_EQ(answer("hello.nested", "p", {.dispatch = Dispatch::kPool}), "nested: hello, p");
  // Two levels: a C++ handler invokes the plugin, whose handler invokes the plugin again.
  add("outer", [](Context& ctx, std::string_view in) -> Result<std::string> {
    return ctx.invoke("hello.nested", in).transform([](std::string s) { return "outer: " + s; });
  });
  EXPECT_EQ(answer("outer", "x"), "outer: nested: hello, x");
  EXPECT_EQ(answer("outer", "y", {.dispatch = Dispatch::kPool}), "outer: nested: hello, y");
}

TEST_P(AbiTest, SleepWithABadPayloadFailsWithTheHandlersError) {
  load(kHello);
  auto r = engine().invoke("hello.sleep", "soon");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kHandlerFailed);
  EXPECT_EQ(r.error().message,
            "function 'hello.sleep' failed: ValidationError: payload must be a number of "
            "milliseconds");
  EXPECT_EQ(answer("hello.sleep", "0"), "slept");
}

// A clock that tells when a sleeping plugin's fiber has switched out.
//
// The plugin cannot signal anything itself, so the probe watches clock reads instead. Every
// read records whether it ran on its thread's own (native) stack, found from
// pthread_getattr_np, or off it: on a fiber's stack. A sleep reads the clock on its fiber
// (its deadline check and its wake time), arms its timer, and switches out; the thread then
// runs its scheduler loop on its native stack, which reads the clock to see which timers are
// due. So a native-stack read on a thread that earlier read on a fiber means the fiber has
// switched out with its timer armed, and that the loop has seen the time it read: moving the
// clock after that cannot race the sleep. Nothing but the sleeping plugin runs on a fiber in
// these tests; the main thread, whose stack bounds glibc only estimates, is never watched.
class SwitchOutProbe final : public Clock {
 public:
  explicit SwitchOutProbe(ManualClock& inner)
      : inner_(inner), main_thread_(std::this_thread::get_id()) {}

  [[nodiscard]] absl::Time now() const noexcept override {
    const absl::Time t = inner_.now();
    if (std::this_thread::get_id() == main_thread_) return t;
    const bool native = on_native_stack();
    std::lock_guard<std::mutex> lock(mu_);
    ThreadState& s = tls_state_;
    if (s.probe != this) s = ThreadState{this};
    if (!native) {
      s.fiber_read = true;
    } else if (s.fiber_read) {
      if (!switched_out_ || t > last_) last_ = t;
      switched_out_ = true;
      cv_.notify_all();
    }
    return t;
  }
  void add_listener(ClockListener* l) override { inner_.add_listener(l); }
  void remove_listener(ClockListener* l) override { inner_.remove_listener(l); }

  // Blocks until a thread that read the clock on a fiber then read `at` or later off it.
  void wait_switched_out(absl::Time at) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return switched_out_ && last_ >= at; });
  }

 private:
  struct ThreadState {
    const SwitchOutProbe* probe = nullptr;
    bool fiber_read = false;
  };
  struct NativeStack {
    bool known = false;
    std::uintptr_t lo = 0, hi = 0;
  };

  static bool on_native_stack() noexcept {
    NativeStack& stack = tls_stack_;
    if (!stack.known) {
      pthread_attr_t attr;
      void* addr = nullptr;
      std::size_t size = 0;
      if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
      }
      stack.lo = reinterpret_cast<std::uintptr_t>(addr);
      stack.hi = stack.lo + size;
      stack.known = true;
    }
    const auto here = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
    return here >= stack.lo && here < stack.hi;
  }

  static thread_local ThreadState tls_state_;
  static thread_local NativeStack tls_stack_;

  ManualClock& inner_;
  const std::thread::id main_thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool switched_out_ = false;  // guarded by mu_
  mutable absl::Time last_;            // guarded by mu_
};

thread_local SwitchOutProbe::ThreadState SwitchOutProbe::tls_state_;
thread_local SwitchOutProbe::NativeStack SwitchOutProbe::tls_stack_;

TEST_P(AbiTest, PluginSleepReturnsWhenTheClockReachesTheWakeTime) {
  for (Dispatch d : {Dispatch::kInline, Dispatch::kPool}) {
    SCOPED_TRACE(d == Dispatch::kInline ? "inline" : "pool");
    SwitchOutProbe probe(clock_);
    EngineOptions o = options();
    o.clock = &probe;
    Engine engine{o};
    ASSERT_TRUE(engine.load_plugin(kHello).has_value());
    const absl::Time start = clock_.now();
    Event done;
    std::string slept;
    // Not the main thread: the probe ignores it (see above).
    std::thread caller([&] {
      slept = answer_of(engine, "hello.sleep", "1000", {.dispatch = d});
      done.set();
    });
    probe.wait_switched_out(start);
    clock_.advance(absl::Milliseconds(999));  // not yet
    probe.wait_switched_out(start + absl::Milliseconds(999));
    EXPECT_FALSE(done.is_set()) << "woke before its time: " << slept;
    clock_.advance(absl::Milliseconds(1));  // now
    caller.join();
    EXPECT_EQ(slept, "slept");
    EXPECT_EQ(clock_.now() - start, absl::Seconds(1));
  }
}

TEST_P(AbiTest, PluginSleepPastTheDeadlineEndsAtTheDeadline) {
  SwitchOutProbe probe(clock_);
  EngineOptions o = options();
  o.clock = &probe;
  Engine engine{o};
  ASSERT_TRUE(engine.load_plugin(kHello).has_value());
  const absl::Time start = clock_.now();
  Result<std::string> r;
  std::thread caller(
      [&] { r = engine.invoke("hello.sleep", "60000", {.dispatch = Dispatch::kInline}); });
  probe.wait_switched_out(start);
  clock_.advance(absl::Seconds(3));  // the default timeout, 57 s before the sleep would end
  caller.join();
  ASSERT_FALSE(r.has_value()) << *r;
  // The sleep woke at the deadline and failed; the wrapper (plugin.hpp) turned that into an
  // error of type "Timeout", which the plugin returned. Past its deadline, that is a timeout
  // (as for a C++ handler returning its sleep's kTimeout), with the plugin's words kept.
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().code_name();
  EXPECT_EQ(r.error().message,
            "function 'hello.sleep': Task timed out after 3.00 seconds (the handler returned: "
            "Timeout: deadline reached while sleeping)");
  EXPECT_EQ(engine.stats().timeouts, 1u);
  EXPECT_EQ(engine.stats().handler_errors, 0u);
  EXPECT_EQ(clock_.now() - start, absl::Seconds(3));
}

// ---- Instances: a plugin function with init runs on execution environments ----
//
// fixture_instances' inst.work numbers its instances in the order init made them (per loaded
// copy), counts each one's calls, logs "inst <n> up for ...", "inst <n> serving call <k>" and
// "inst <n> down after <k> calls", sleeps for the milliseconds in its payload and answers
// "<n>:<k>"; its init refuses the third instance. It is pool-dispatched.

const std::string kInstances = plugin_file("libfixture_instances.so");
constexpr std::chrono::seconds kWaitLimit{30};  // real time; only a broken build waits this long

class InstancesTest : public AbiTest {
 protected:
  // How many log lines contain `needle`.
  std::size_t count(std::string_view needle) {
    std::size_t n = 0;
    for (const std::string& line : logs_.lines()) n += has(line, needle) ? 1 : 0;
    return n;
  }
  // Waits (in real time, bounded) for a log line containing `needle`.
  [[nodiscard]] ::testing::AssertionResult logged(std::string_view needle) {
    if (logs_.wait_for(needle, kWaitLimit)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "no log line contains '" << needle << "'";
  }
  std::future<Result<std::string>> start(std::string_view payload,
                                         const InvokeOptions& options = {}) {
    auto fn = engine().function("inst.work");
    EXPECT_TRUE(fn.has_value());
    return engine().invoke_future(fn.value_or(FunctionHandle{}), payload, options);
  }
  // Moves the clock on by `step` until every one of `calls` has its answer. A sleep reads the
  // clock to fix its wake time after its "serving" line, so a step may come before that read
  // and be missed by it; the next is not. Small steps against inst.work's 60 s timeout leave
  // a slow machine plenty of them before any call times out.
  void advance_until_done(std::vector<std::future<Result<std::string>>*> calls,
                          absl::Duration step) {
    for (int i = 0; i < 10'000; ++i) {
      const bool all = std::all_of(calls.begin(), calls.end(), [](auto* f) {
        return f->wait_for(std::chrono::milliseconds(10)) == std::future_status::ready;
      });
      if (all) return;
      clock_.advance(step);
    }
    ADD_FAILURE() << "the calls did not end";
  }
  InstanceStats stats() {
    auto s = engine().instance_stats("inst.work");
    EXPECT_TRUE(s.has_value()) << s.error().message;
    return s.value_or(InstanceStats{});
  }
};

TEST_P(InstancesTest, LoadMakesOneInstanceThatSequentialCallsReuseWarm) {
  load(kInstances);
  // The load ran init once, on the loading thread, logging through the host as the plugin.
  EXPECT_TRUE(logs_.contains("plugin:fixture_instances||inst 1 up for inst.work v1"));
  EXPECT_EQ(answer("inst.work", ""), "1:1");
  EXPECT_EQ(answer("inst.work", ""), "1:2");
  EXPECT_EQ(answer("inst.work", "", {.dispatch = Dispatch::kInline}), "1:3");
  EXPECT_EQ(count(" up for "), 1u);
  const InstanceStats s = stats();
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.idle, 1);
  EXPECT_EQ(s.cold_starts, 0u);  // the load made it, not an invocation
  EXPECT_EQ(count(" down after "), 0u);
}

TEST_P(InstancesTest, ConcurrentCallsGetInstancesOfTheirOwnAndUnloadShutsEachDownOnce) {
  load(kInstances);
  auto first = start("1000");
  ASSERT_TRUE(logged("inst 1 serving call 1"));
  auto second = start("1000");
  // The second call overlaps the first (asleep on instance 1): a cold start makes instance 2.
  ASSERT_TRUE(logged("plugin:fixture_instances||inst 2 up for inst.work v1"));
  ASSERT_TRUE(logged("inst 2 serving call 1"));
  advance_until_done({&first, &second}, absl::Milliseconds(100));
  EXPECT_EQ(describe(first.get()), "1:1");
  EXPECT_EQ(describe(second.get()), "2:1");
  InstanceStats s = stats();
  EXPECT_EQ(s.instances, 2);
  EXPECT_EQ(s.idle, 2);
  EXPECT_EQ(s.cold_starts, 1u);
  // Both are warm now: the next calls reuse them, making none.
  const std::string third = answer("inst.work", "");
  EXPECT_TRUE(third == "1:2" || third == "2:2") << third;
  EXPECT_EQ(count(" up for "), 2u);

  ASSERT_TRUE(engine().unload_plugin("fixture_instances").has_value());
  EXPECT_EQ(count("inst 1 down after "), 1u);
  EXPECT_EQ(count("inst 2 down after "), 1u);
  EXPECT_EQ(count(third == "1:2" ? "inst 1 down after 2 calls" : "inst 2 down after 2 calls"), 1u);
  EXPECT_EQ(count(" down after "), 2u);
  engine_.reset();  // nothing is left to shut down again
  EXPECT_EQ(count(" down after "), 2u);
}

TEST_P(InstancesTest, InstanceOfACallThatTimedOutIsDiscardedAndTheNextCallMakesANewOne) {
  load(kInstances);
  auto slow = start("60000", {.timeout = absl::Milliseconds(100)});
  ASSERT_TRUE(logged("inst 1 serving call 1"));
  advance_until_done({&slow}, absl::Milliseconds(100));
  const Result<std::string> r = slow.get();
  ASSERT_FALSE(r.has_value()) << *r;
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout) << r.error().message;
  // Its instance may hold what the interrupted call left half done: it is shut down, once.
  ASSERT_TRUE(logged("plugin:fixture_instances||inst 1 down after 1 calls"));
  EXPECT_EQ(answer("inst.work", ""), "2:1");
  EXPECT_TRUE(logs_.contains("inst 2 up for inst.work v1"));
  EXPECT_EQ(answer("inst.work", ""), "2:2");
  InstanceStats s = stats();
  EXPECT_EQ(s.instances, 1);
  EXPECT_EQ(s.cold_starts, 1u);
  ASSERT_TRUE(engine().unload_plugin("fixture_instances").has_value());
  EXPECT_EQ(count("inst 1 down after "), 1u);
  EXPECT_EQ(count("inst 2 down after 2 calls"), 1u);
  // Counted once the discard was done, before the timed-out call let go of its version, for
  // which the unload waited.
  s = stats();
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.shutdowns, 2u);
  EXPECT_EQ(s.instances, 0);
}

TEST_P(InstancesTest, ColdStartWhoseInitFailsFailsOnlyItsCall) {
  load(kInstances);
  auto first = start("1000");
  ASSERT_TRUE(logged("inst 1 serving call 1"));
  auto second = start("1000");
  ASSERT_TRUE(logged("inst 2 serving call 1"));
  // Both instances are busy: the third call needs a third, whose init the fixture refuses.
  const Result<std::string> third = start("").get();
  ASSERT_FALSE(third.has_value()) << *third;
  EXPECT_EQ(third.error().code, ErrorCode::kInitFailed) << third.error().message;
  for (std::string_view part :
       {std::string_view(kInstances), std::string_view("inst.work"), std::string_view("failed (1)"),
        std::string_view("instance 3 refused")}) {
    EXPECT_TRUE(mentions(third.error(), part)) << part << " in " << third.error().message;
  }
  advance_until_done({&first, &second}, absl::Milliseconds(100));
  EXPECT_EQ(describe(first.get()), "1:1");
  EXPECT_EQ(describe(second.get()), "2:1");
  // The plugin stays loaded and serves on its warm instances.
  const std::string next = answer("inst.work", "");
  EXPECT_TRUE(next == "1:2" || next == "2:2") << next;
  EXPECT_EQ(stats().init_failures, 1u);
  EXPECT_EQ(stats().instances, 2);
}

TEST_P(InstancesTest, IdleInstanceIsShutDownAfterIdleTtlAndTheNextCallStartsCold) {
  load(kInstances);
  // The instance the load made is reaped too if nothing ever uses it.
  clock_.advance(absl::Minutes(5) + absl::Seconds(1));
  ASSERT_TRUE(logged("inst 1 down after 0 calls"));
  EXPECT_EQ(answer("inst.work", ""), "2:1");
  EXPECT_TRUE(logs_.contains("inst 2 up for inst.work v1"));
  clock_.advance(absl::Minutes(4));
  EXPECT_EQ(answer("inst.work", ""), "2:2");  // used again before its idle_ttl ran out
  clock_.advance(absl::Minutes(5) + absl::Seconds(1));
  ASSERT_TRUE(logged("inst 2 down after 2 calls"));
  // (The reaped counter moves on the timer thread just after the hook logs: not waited for.)
  EXPECT_EQ(stats().instances, 0);
}

TEST_P(InstancesTest, ReloadShutsTheOldVersionsInstancesDownAndStartsTheNewOneWarm) {
  load(kInstances);
  EXPECT_EQ(answer("inst.work", ""), "1:1");
  auto info = engine().reload_plugin("fixture_instances");
  ASSERT_TRUE(info.has_value()) << info.error().message;
  // The new copy of the object counts its own instances: its first is made by the reload.
  EXPECT_TRUE(logs_.contains("inst 1 up for inst.work v2"));
  EXPECT_EQ(count("inst 1 down after 1 calls"), 1u);  // version 1's, once drained
  EXPECT_EQ(answer("inst.work", ""), "1:1");
  EXPECT_EQ(answer("inst.work:2", ""), "1:2");
  EXPECT_EQ(count(" down after "), 1u);
}

TEST_P(InstancesTest, ReloadWhoseInitFailsIsRolledBackAndTheOldInstanceKeepsServing) {
  load(kInstances);
  EXPECT_EQ(answer("inst.work", ""), "1:1");
  const std::string refused = plugin_file("libfixture_instances_refused.so");
  auto r = engine().reload_plugin("fixture_instances", refused);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPluginInvalid) << r.error().message;
  for (std::string_view part : {std::string_view("rolled back"), std::string_view(refused),
                                std::string_view("init of function 'inst.work' failed (1)"),
                                std::string_view("instance 1 refused")}) {
    EXPECT_TRUE(mentions(r.error(), part)) << part << " in " << r.error().message;
  }
  // Version 1 and its warm instance serve on, untouched.
  EXPECT_EQ(answer("inst.work", ""), "1:2");
  EXPECT_EQ(engine().versions("inst.work").value_or(std::vector<std::string>{}),
            std::vector<std::string>{"1"});
  EXPECT_EQ(count(" down after "), 0u);
  EXPECT_EQ(stats().instances, 1);
  // A good reload afterwards publishes version 2.
  ASSERT_TRUE(engine().reload_plugin("fixture_instances", kInstances).has_value());
  EXPECT_EQ(answer("inst.work", ""), "1:1");
  EXPECT_EQ(count("inst 1 down after 2 calls"), 1u);
}

TEST_P(InstancesTest, LoadWhoseInitFailsIsRefusedAndLeavesNoInstance) {
  const std::string refused = plugin_file("libfixture_instances_refused.so");
  auto r = engine().load_plugin(refused);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kPluginInvalid) << r.error().message;
  EXPECT_TRUE(mentions(r.error(), "instance 1 refused")) << r.error().message;
  EXPECT_EQ(code_of(engine().function("inst.work")), "NotFound");
  // The working build loads after it, and its numbering is its own.
  load(kInstances);
  EXPECT_EQ(answer("inst.work", ""), "1:1");
}

INSTANTIATE_TEST_SUITE_P(Workers, AbiTest, EMBER_WORKER_COUNTS);
INSTANTIATE_TEST_SUITE_P(Workers, InstancesTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
