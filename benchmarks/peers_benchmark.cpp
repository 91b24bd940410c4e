// Peer benchmarks: what ember's invocation path is compared to (DESIGN.md §7).
// They live in the same binary as ember's own benchmarks so every ratio that
// `benchmarks/report` prints is measured in one run on one machine. The names
// are read by the report script and compared across changes: do not rename.

#include <absl/time/clock.h>
#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/fiber/fiber.hpp>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <lua.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define EMBER_BENCH_HAVE_RDTSC 1
#endif

#include "batch.hpp"

namespace {

// Short enough to stay in std::string's small buffer, like a typical payload
// of an inline handler call.
constexpr std::string_view kPayload = "ping:42";

// GCC's noipa also stops interprocedural analysis from seeing through the call
// (noinline alone still allows constant propagation into a clone), so the call
// and the string construction really happen.
#if defined(__GNUC__) && !defined(__clang__)
#define EMBER_BENCH_OPAQUE [[gnu::noipa]]
#else
#define EMBER_BENCH_OPAQUE [[gnu::noinline]]
#endif

// The handler stand-in: echoes its payload.
EMBER_BENCH_OPAQUE std::string echo_payload(std::string_view payload) {
  return std::string(payload);
}

// Baseline: a plain call of the handler body, what an ember inline invocation
// costs beyond nothing.
void BM_DirectCall(benchmark::State& state) {
  std::string_view payload = kPayload;
  for (auto _ : state) {
    benchmark::DoNotOptimize(payload);
    std::string reply = echo_payload(payload);
    benchmark::DoNotOptimize(reply);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_DirectCall)->Unit(benchmark::kNanosecond);

// Type-erased call: the cheapest dynamic dispatch a registry could use.
void BM_StdFunction(benchmark::State& state) {
  std::function<std::string(std::string_view)> handler = echo_payload;
  // Hides the target from the optimizer so the call is not devirtualized.
  benchmark::DoNotOptimize(handler);
  std::string_view payload = kPayload;
  for (auto _ : state) {
    benchmark::DoNotOptimize(payload);
    std::string reply = handler(payload);
    benchmark::DoNotOptimize(reply);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_StdFunction)->Unit(benchmark::kNanosecond);

// The floor under any fiber-based invocation: switching into an existing
// Boost.Context fiber and back (resume + suspend), no stack allocation.
void BM_BoostContextSwitchPair(benchmark::State& state) {
  namespace ctx = boost::context;
  bool stop = false;  // Only touched on this thread; the switches order it.
  ctx::fiber fiber{[&stop](ctx::fiber&& caller) {
    while (!stop) caller = std::move(caller).resume();
    return std::move(caller);
  }};
  fiber = std::move(fiber).resume();  // Start it: runs to its first suspend.
  for (auto _ : state) {
    fiber = std::move(fiber).resume();
  }
  // Let the fiber return rather than unwinding it with forced_unwind.
  stop = true;
  fiber = std::move(fiber).resume();
  if (fiber) state.SkipWithError("fiber did not finish");
}
BENCHMARK(BM_BoostContextSwitchPair)->Unit(benchmark::kNanosecond);

// An embedded scripting call: lua_pcall of a trivial function with a short
// string argument, the function held in the registry as an engine would.
void BM_LuaJitPcall(benchmark::State& state) {
  lua_State* lua = luaL_newstate();
  if (lua == nullptr) {
    state.SkipWithError("luaL_newstate failed");
    return;
  }
  if (luaL_dostring(lua, "function f(s) return s end") != 0) {
    state.SkipWithError("loading the Lua function failed");
    lua_close(lua);
    return;
  }
  lua_getglobal(lua, "f");
  const int function_ref = luaL_ref(lua, LUA_REGISTRYINDEX);
  for (auto _ : state) {
    lua_rawgeti(lua, LUA_REGISTRYINDEX, function_ref);
    lua_pushlstring(lua, kPayload.data(), kPayload.size());
    if (lua_pcall(lua, 1, 1, 0) != 0) {
      state.SkipWithError("lua_pcall failed");
      break;
    }
    size_t length = 0;
    const char* reply = lua_tolstring(lua, -1, &length);
    benchmark::DoNotOptimize(reply);
    benchmark::DoNotOptimize(length);
    lua_pop(lua, 1);
  }
  luaL_unref(lua, LUA_REGISTRYINDEX, function_ref);
  lua_close(lua);
}
BENCHMARK(BM_LuaJitPcall)->Unit(benchmark::kNanosecond);

// A work-stealing task library's single-task latency: run one trivial task and
// wait for it. The waiting thread usually runs the task itself.
void BM_TbbTaskGroupRunWait(benchmark::State& state) {
  tbb::task_group group;
  std::uint64_t runs = 0;  // wait() orders the task's write before our read.
  for (auto _ : state) {
    group.run([&runs] { ++runs; });
    group.wait();
  }
  benchmark::DoNotOptimize(runs);
}
BENCHMARK(BM_TbbTaskGroupRunWait)->Unit(benchmark::kNanosecond)->UseRealTime();

// A ready-made fiber library's cost of a fiber per call: spawn + join of a
// trivial lambda (stack allocation, scheduling and two switches).
void BM_BoostFiberSpawnJoin(benchmark::State& state) {
  std::uint64_t runs = 0;  // Same thread: fibers of one thread never race.
  for (auto _ : state) {
    boost::fibers::fiber fiber([&runs] { ++runs; });
    fiber.join();
  }
  benchmark::DoNotOptimize(runs);
}
BENCHMARK(BM_BoostFiberSpawnJoin)->Unit(benchmark::kNanosecond);

// Async throughput of a work-stealing pool with as many threads as ember's
// peer engine has workers (2): kTasksPerBatch trivial tasks, then wait.
void BM_TbbTaskGroupThroughput(benchmark::State& state) {
  // Two slots: this thread plus one TBB worker.
  tbb::task_arena arena(2);
  arena.execute([&state] {
    tbb::task_group group;
    for (auto _ : state) {
      for (int i = 0; i < kTasksPerBatch; ++i) {
        // Empty on purpose: no shared counter whose cache line would bounce
        // between the two threads, so this is TBB's best case.
        group.run([] { benchmark::ClobberMemory(); });
      }
      group.wait();
    }
  });
  state.SetItemsProcessed(state.iterations() * kTasksPerBatch);
}
BENCHMARK(BM_TbbTaskGroupThroughput)->Unit(benchmark::kNanosecond)->UseRealTime();

// The floor under handing a call to a worker thread and getting the answer
// back: a ping-pong through two atomics with a spinning partner thread, no
// sleeping, no pause instruction.
void BM_CrossCoreSpinRoundTrip(benchmark::State& state) {
  constexpr std::uint64_t kStop = ~std::uint64_t{0};
  // Separate cache lines so the request and the answer do not share one.
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> value{0};
  };
  Slot request;
  Slot answer;
  std::thread partner([&request, &answer] {
    std::uint64_t seen = 0;
    for (;;) {
      const std::uint64_t ticket = request.value.load(std::memory_order_acquire);
      if (ticket == kStop) return;
      if (ticket != seen) {
        seen = ticket;
        answer.value.store(ticket, std::memory_order_release);
      }
    }
  });
  std::uint64_t ticket = 0;
  for (auto _ : state) {
    ++ticket;
    request.value.store(ticket, std::memory_order_release);
    while (answer.value.load(std::memory_order_acquire) != ticket) {
    }
  }
  request.value.store(kStop, std::memory_order_release);
  partner.join();
}
BENCHMARK(BM_CrossCoreSpinRoundTrip)->Unit(benchmark::kNanosecond)->UseRealTime();

// Clock reads: what a deadline check on the invocation path may cost.

// The clock ember's hot path is allowed to read (vDSO clock_gettime).
void BM_ClockSteadyNow(benchmark::State& state) {
  for (auto _ : state) {
    auto now = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(now);
  }
}
BENCHMARK(BM_ClockSteadyNow)->Unit(benchmark::kNanosecond);

// The API's time type; expected to be too slow for the hot path.
void BM_ClockAbslNow(benchmark::State& state) {
  for (auto _ : state) {
    absl::Time now = absl::Now();
    benchmark::DoNotOptimize(now);
  }
}
BENCHMARK(BM_ClockAbslNow)->Unit(benchmark::kNanosecond);

#ifdef EMBER_BENCH_HAVE_RDTSC
// The raw cycle counter: the cheapest ordered-enough timestamp on x86.
void BM_Rdtsc(benchmark::State& state) {
  for (auto _ : state) {
    std::uint64_t ticks = __rdtsc();
    benchmark::DoNotOptimize(ticks);
  }
}
BENCHMARK(BM_Rdtsc)->Unit(benchmark::kNanosecond);
#endif

#ifdef CLOCK_MONOTONIC_COARSE
// A tick-resolution clock (a few ms): enough for coarse deadlines.
void BM_ClockMonotonicCoarse(benchmark::State& state) {
  for (auto _ : state) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    benchmark::DoNotOptimize(now);
  }
}
BENCHMARK(BM_ClockMonotonicCoarse)->Unit(benchmark::kNanosecond);
#endif

// An uncontended locked read-modify-write: the unit cost of a stats counter.
void BM_AtomicFetchAdd(benchmark::State& state) {
  std::atomic<std::uint64_t> counter{0};
  for (auto _ : state) {
    benchmark::DoNotOptimize(counter.fetch_add(1, std::memory_order_relaxed));
  }
}
BENCHMARK(BM_AtomicFetchAdd)->Unit(benchmark::kNanosecond);

}  // namespace
