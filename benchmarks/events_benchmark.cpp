// The events module's throughput (issue 5): queued "Event" invokes (Engine::enqueue) against
// plain async invokes of the same trivial handler, and batch queue mappings at two batch sizes.
// `benchmarks/report` prints enqueue's ratio to BM_InvokeAsyncThroughput (target >= 0.5).
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "batch.hpp"
#include "ember/ember.hpp"

namespace {

constexpr std::string_view kPayload = "ping";

// Counts down to zero and wakes the benchmark thread.
struct Countdown {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<std::int64_t> left{0};
  void done(std::int64_t n = 1) {
    if (left.fetch_sub(n, std::memory_order_acq_rel) == n) {
      std::lock_guard<std::mutex> lock(mu);
      cv.notify_one();
    }
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return left.load(std::memory_order_acquire) <= 0; });
  }
};

// Events through a trivial handler, kTasksPerBatch per iteration, 2 workers, as
// BM_InvokeAsyncThroughput does with invoke_async. An event counts once its handler returned
// its result (no destination is configured, as for most fire-and-forget events).
void BM_EnqueueThroughput(benchmark::State& state) {
  ember::Engine engine{{.workers = 2}};
  Countdown countdown;
  auto fn = engine
                .register_function(
                    "bench.event", {},
                    [&](ember::Context&, std::string_view in) -> ember::Result<std::string> {
                      countdown.done();
                      return std::string(in);
                    })
                .value();
  for (auto _ : state) {
    countdown.left.store(kTasksPerBatch, std::memory_order_relaxed);
    for (int i = 0; i < kTasksPerBatch; ++i) {
      auto id = engine.enqueue(fn, kPayload);
      if (!id) {
        state.SkipWithError(id.error().message.c_str());
        return;
      }
      benchmark::DoNotOptimize(id);
    }
    countdown.wait();
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerBatch);
}
BENCHMARK(BM_EnqueueThroughput)->Unit(benchmark::kNanosecond)->UseRealTime();

// Records pushed into an EventQueue mapped to a handler, batch size state.range(0), two
// batches in flight, 2 workers: records/s. The handler counts the records of its batch (one
// scan of the payload for "messageId", as a handler looks at each record once).
void BM_BatchMappingThroughput(benchmark::State& state) {
  ember::Engine engine{{.workers = 2}};
  Countdown countdown;
  (void)engine.register_function(
      "bench.batch", {},
      [&](ember::Context&, std::string_view batch) -> ember::Result<std::string> {
        std::int64_t n = 0;
        for (std::size_t at = batch.find("\"messageId\""); at != std::string_view::npos;
             at = batch.find("\"messageId\"", at + 11)) {
          ++n;
        }
        countdown.done(n);
        return std::string();
      });
  auto queue = engine.create_queue("bench.queue");
  if (!queue) {
    state.SkipWithError(queue.error().message.c_str());
    return;
  }
  auto mapping =
      engine.map_queue("bench.queue", "bench.batch",
                       {.batch_size = static_cast<int>(state.range(0)), .max_concurrency = 2});
  if (!mapping) {
    state.SkipWithError(mapping.error().message.c_str());
    return;
  }
  for (auto _ : state) {
    countdown.left.store(kTasksPerBatch, std::memory_order_relaxed);
    for (int i = 0; i < kTasksPerBatch; ++i) {
      auto id = (*queue)->push(kPayload);
      if (!id) {
        state.SkipWithError(id.error().message.c_str());
        return;
      }
    }
    countdown.wait();
  }
  state.SetItemsProcessed(state.iterations() * kTasksPerBatch);
}
BENCHMARK(BM_BatchMappingThroughput)
    ->Arg(10)
    ->Arg(100)
    ->Unit(benchmark::kNanosecond)
    ->UseRealTime();

}  // namespace
