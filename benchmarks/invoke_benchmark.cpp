// ember's own benchmarks: the cost of an invoke, measured beside the peers in
// peers_benchmark.cpp (same binary, same run). `benchmarks/report` prints the ratios.
//
// The handler is the same trivial echo the peers call (a short string in, a short string
// out), so BM_InvokeInline - BM_DirectCall is ember's overhead per invoke.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>

#include "batch.hpp"
#include "ember/ember.hpp"

namespace {

constexpr std::string_view kPayload = "ping";

ember::Result<std::string> echo(ember::Context&, std::string_view in) { return std::string(in); }

struct Ping {
  int value;
};
struct Pong {
  int value;
};

// One engine per benchmark, 2 workers unless said (the async and pool benchmarks use them).
struct Fixture {
  ember::Engine engine;
  ember::FunctionHandle fn;
  explicit Fixture(int workers = 2) : Fixture(ember::EngineOptions{.workers = workers}) {}
  explicit Fixture(ember::EngineOptions options, ember::FunctionConfig config = {})
      : engine(std::move(options)) {
    fn = engine.register_function("bench.echo", config, echo).value();
    (void)engine.register_function<Ping, Pong>(
        "bench.typed", {},
        [](ember::Context&, const Ping& p) -> ember::Result<Pong> { return Pong{p.value + 1}; });
    (void)engine.register_function(
        "bench.nested", {},
        [](ember::Context& ctx, std::string_view in) { return ctx.invoke("bench.echo", in); });
  }
};

// Sync invoke, inline dispatch, pre-resolved handle, trivial bytes handler.
void BM_InvokeInline(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    auto r = f.engine.invoke(f.fn, kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokeInline)->Unit(benchmark::kNanosecond);

// The same with metrics off (EngineOptions::metrics = false): BM_InvokeInline minus this is
// what the per-function metrics cost an invoke (target: <= 5 ns).
void BM_InvokeInlineNoMetrics(benchmark::State& state) {
  Fixture f({.workers = 2, .metrics = false});
  for (auto _ : state) {
    auto r = f.engine.invoke(f.fn, kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokeInlineNoMetrics)->Unit(benchmark::kNanosecond);

// Every invocation traced (trace_sample_rate = 1): a span recorded per invoke. For scale only;
// tracing off is BM_InvokeInline itself.
void BM_InvokeInlineTraced(benchmark::State& state) {
  Fixture f({.workers = 2, .trace_sample_rate = 1.0, .trace_buffer_spans = 1 << 16});
  std::int64_t n = 0;
  for (auto _ : state) {
    auto r = f.engine.invoke(f.fn, kPayload);
    benchmark::DoNotOptimize(r);
    if (++n % 4096 == 0) {
      state.PauseTiming();
      (void)f.engine.take_spans();
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_InvokeInlineTraced)->Unit(benchmark::kNanosecond);

// START/END/REPORT lines on (FunctionConfig::report_logs) into a sink that drops them. For scale.
void BM_InvokeInlineReportLogs(benchmark::State& state) {
  Fixture f({.workers = 2, .log_sink = [](const ember::LogRecord&) {}}, {.report_logs = true});
  for (auto _ : state) {
    auto r = f.engine.invoke(f.fn, kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokeInlineReportLogs)->Unit(benchmark::kNanosecond);

// The same, resolving the name on every call (one hash lookup under a shared lock).
void BM_InvokeInlineByName(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    auto r = f.engine.invoke("bench.echo", kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokeInlineByName)->Unit(benchmark::kNanosecond);

// Typed invoke: C++ values by reference, no serialisation.
void BM_InvokeTyped(benchmark::State& state) {
  Fixture f;
  auto fn = f.engine.function("bench.typed").value();
  Ping ping{1};
  for (auto _ : state) {
    auto r = f.engine.invoke<Pong>(fn, ping);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokeTyped)->Unit(benchmark::kNanosecond);

// Sync invoke from this (external) thread, pool dispatch: a worker runs it, we wait. One
// worker, so that, like the spin round-trip peer, two threads share the two cores.
void BM_InvokePoolRoundTrip(benchmark::State& state) {
  Fixture f{1};
  const ember::InvokeOptions pool{.dispatch = ember::Dispatch::kPool};
  for (int i = 0; i < 1000; ++i) (void)f.engine.invoke(f.fn, kPayload, pool);  // warm workers
  for (auto _ : state) {
    auto r = f.engine.invoke(f.fn, kPayload, pool);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_InvokePoolRoundTrip)->Unit(benchmark::kNanosecond)->UseRealTime();

// Async invokes with a callback, kTasksPerBatch per iteration, 2 workers: items/s. The
// callback captures one pointer, so it fits AnyInvocable's inline storage (no allocation).
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> left{0};
  void done() {
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu);
      cv.notify_one();
    }
  }
};

void BM_InvokeAsyncThroughput(benchmark::State& state) {
  Fixture f;
  Batch batch;
  for (auto _ : state) {
    batch.left.store(kTasksPerBatch, std::memory_order_relaxed);
    for (int i = 0; i < kTasksPerBatch; ++i) {
      auto ok = f.engine.invoke_async(f.fn, kPayload, [b = &batch](ember::Result<std::string> r) {
        benchmark::DoNotOptimize(r);
        b->done();
      });
      if (!ok) state.SkipWithError(ok.error().message.c_str());
    }
    std::unique_lock<std::mutex> lock(batch.mu);
    batch.cv.wait(lock, [&] { return batch.left.load(std::memory_order_acquire) == 0; });
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerBatch);
}
BENCHMARK(BM_InvokeAsyncThroughput)->Unit(benchmark::kNanosecond)->UseRealTime();

// A handler that makes one nested inline invoke (two fibers, one thread).
void BM_NestedInvoke(benchmark::State& state) {
  Fixture f;
  auto fn = f.engine.function("bench.nested").value();
  for (auto _ : state) {
    auto r = f.engine.invoke(fn, kPayload);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_NestedInvoke)->Unit(benchmark::kNanosecond);

}  // namespace
