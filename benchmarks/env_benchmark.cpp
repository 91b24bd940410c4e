// Execution environments: what a warm stateful invoke costs over a stateless one, what a cold
// start costs, and what snapshot start saves. `benchmarks/report` prints the ratios against
// BM_InvokeInline (invoke_benchmark.cpp) from the same run.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/ember.hpp"

namespace {

constexpr std::string_view kPayload = "ping";

struct Counter {
  std::uint64_t calls = 0;
};

ember::Result<std::string> count_and_echo(ember::Context& ctx, std::string_view in) {
  ++ctx.state<Counter>()->calls;
  return std::string(in);
}

// A warm invoke of a stateful function: the instance is taken from and given back to the warm
// pool around the same trivial echo BM_InvokeInline runs (target: <= BM_InvokeInline + 10 ns).
void BM_WarmInvokeStateful(benchmark::State& state) {
  ember::Engine engine({.workers = 2});
  auto fn =
      engine
          .register_function("bench.stateful", {}, ember::lifecycle_for<Counter>(), count_and_echo)
          .value();
  (void)engine.invoke(fn, kPayload);  // the cold start, outside the loop
  for (auto _ : state) {
    auto r = engine.invoke(fn, kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_WarmInvokeStateful)->Unit(benchmark::kNanosecond);

// Cold starts: each timed invoke is the first of its function, so it makes the function's
// first instance (a trivial init: `new Counter`) and then runs the echo. Functions are
// registered ahead, outside the timing, kBatch per engine.
ember::Result<std::string> echo(ember::Context&, std::string_view in) { return std::string(in); }

void cold_invokes(benchmark::State& state, ember::FunctionConfig config,
                  const ember::Lifecycle* life) {
  constexpr int kBatch = 1000;
  std::unique_ptr<ember::Engine> engine;
  std::vector<ember::FunctionHandle> fns;
  std::size_t next = kBatch;
  for (auto _ : state) {
    if (next >= fns.size()) {
      state.PauseTiming();
      fns.clear();
      engine.reset();
      engine = std::make_unique<ember::Engine>(ember::EngineOptions{.workers = 1});
      for (int i = 0; i < kBatch; ++i) {
        const std::string name = "bench.cold." + std::to_string(i);
        fns.push_back((life != nullptr
                           ? engine->register_function(name, config, *life, count_and_echo)
                           : engine->register_function(name, config, echo))
                          .value());
      }
      next = 0;
      state.ResumeTiming();
    }
    auto r = engine->invoke(fns[next++], kPayload);
    benchmark::DoNotOptimize(r);
  }
}

// A cold-start invoke with a trivial init (target: <= 2 us).
void BM_ColdStartInit(benchmark::State& state) {
  const ember::Lifecycle life = ember::lifecycle_for<Counter>();
  cold_invokes(state, {}, &life);
}
BENCHMARK(BM_ColdStartInit)->Unit(benchmark::kNanosecond);

// Its peer: the first invoke of a stateless function, in the same harness (a function's first
// invoke also makes its metric shard on this thread and finds its records cold in cache), so
// BM_ColdStartInit - BM_FirstInvokeStateless is what making the instance costs.
void BM_FirstInvokeStateless(benchmark::State& state) { cold_invokes(state, {}, nullptr); }
BENCHMARK(BM_FirstInvokeStateless)->Unit(benchmark::kNanosecond);

// A state whose init does real work (a 32 KiB table of 4096 square roots, the kind of table a
// pricing function builds at start) and whose copy is a memcpy.
struct Table {
  Table() : values(4096) {
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = std::sqrt(static_cast<double>(i) * 1.000001) / (1.0 + std::log1p(double(i)));
  }
  std::vector<double> values;
  std::uint64_t calls = 0;
};

ember::Result<std::string> table_echo(ember::Context& ctx, std::string_view in) {
  ++ctx.state<Table>()->calls;
  return std::string(in);
}

template <bool kSnapshot>
void BM_ColdStartTable(benchmark::State& state) {
  constexpr int kBatch = 200;
  std::unique_ptr<ember::Engine> engine;
  std::vector<ember::FunctionHandle> fns;
  std::size_t next = kBatch;
  for (auto _ : state) {
    if (next >= fns.size()) {
      state.PauseTiming();
      fns.clear();
      engine.reset();
      engine = std::make_unique<ember::Engine>(ember::EngineOptions{.workers = 1});
      for (int i = 0; i < kBatch; ++i) {
        fns.push_back(engine
                          ->register_function("bench.table." + std::to_string(i),
                                              {.snapshot_start = kSnapshot},
                                              ember::lifecycle_for<Table>(), table_echo)
                          .value());
      }
      next = 0;
      state.ResumeTiming();
    }
    auto r = engine->invoke(fns[next++], kPayload);
    benchmark::DoNotOptimize(r);
  }
}

// The same cold start with that init run on the invoke, and with snapshot start: init ran at
// registration, and the cold start clones the table instead.
void BM_ColdStartTableInit(benchmark::State& state) { BM_ColdStartTable<false>(state); }
void BM_SnapshotClone(benchmark::State& state) { BM_ColdStartTable<true>(state); }
BENCHMARK(BM_ColdStartTableInit)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SnapshotClone)->Unit(benchmark::kNanosecond);

}  // namespace
