// ember bench: N caller threads invoke one function back to back for a while; then
// throughput, errors, latency percentiles and a latency histogram. Latency is what each caller
// saw: a steady clock read around each invoke.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <latch>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "bench_report.hpp"
#include "cli.hpp"
#include "text.hpp"

namespace ember::cli {
namespace {

using Clock = std::chrono::steady_clock;

// One caller thread's tallies, on its own cache lines: the progress line reads `done` while the
// thread writes it, and no two callers share a line.
struct alignas(64) Caller {
  std::atomic<std::uint64_t> done{0};
  LatencyRecorder latency;
  std::map<std::string, std::uint64_t> errors;  // by Lambda error type
  std::string first_error;
};

void call_until_stopped(Engine& engine, FunctionHandle fn, const std::string& payload,
                        const InvokeOptions& options, const std::atomic<bool>& stop,
                        std::latch& start, Caller& me) {
  start.wait();
  std::uint64_t done = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const Clock::time_point t0 = Clock::now();
    Result<std::string> out = engine.invoke(fn, payload, options);
    const Clock::time_point t1 = Clock::now();
    me.latency.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    if (!out) {
      FunctionError e = function_error(out.error());
      if (me.first_error.empty()) me.first_error = cat(e.type, ": ", e.message);
      ++me.errors[std::move(e.type)];
    }
    // Only this thread writes `done`: a relaxed store, no read-modify-write on a shared line.
    me.done.store(++done, std::memory_order_relaxed);
  }
}

std::string_view dispatch_name(Dispatch d) { return d == Dispatch::kPool ? "pool" : "inline"; }

}  // namespace

int run_bench(const BenchArgs& args) {
  constexpr std::string_view kCommand = "bench";
  auto payload = read_payload(args.payload);
  if (!payload) {
    print_error(kCommand, payload.error().message);
    return kExitFailure;
  }
  // Handler log lines would flood the terminal and slow the callers down: they are dropped.
  Engine engine{{.concurrency_limit = std::max(1000, args.concurrency + 100),
                 .log_sink = [](const LogRecord&) {}}};
  auto fn = load_function(engine, kCommand, args.target, args.function, {});
  if (!fn) return kExitFailure;
  Dispatch dispatch = Dispatch::kInline;
  if (args.dispatch) {
    dispatch = *args.dispatch;
  } else {
    const std::string base = args.function.substr(0, args.function.find(':'));
    for (const FunctionInfo& f : engine.functions()) {
      if (f.name == base) dispatch = f.config.dispatch;
    }
  }
  InvokeOptions options;
  options.dispatch = args.dispatch;
  options.timeout = args.timeout;

  const bool tty = isatty(STDERR_FILENO) == 1;
  const bool unicode =
      locale_is_utf8(std::getenv("LC_ALL"), std::getenv("LC_CTYPE"), std::getenv("LANG"));
  std::vector<std::unique_ptr<Caller>> callers;
  for (int i = 0; i < args.concurrency; ++i) callers.push_back(std::make_unique<Caller>());
  std::atomic<bool> stop{false};
  std::latch start(1);
  std::vector<std::thread> threads;
  threads.reserve(callers.size());
  try {
    for (auto& caller : callers) {
      threads.emplace_back(call_until_stopped, std::ref(engine), *fn, std::cref(*payload),
                           std::cref(options), std::cref(stop), std::ref(start), std::ref(*caller));
    }
  } catch (const std::system_error& e) {
    stop.store(true, std::memory_order_relaxed);
    start.count_down();
    for (std::thread& t : threads) t.join();
    print_error(kCommand, cat("cannot start caller thread ", threads.size() + 1, " of ",
                              args.concurrency, ": ", e.what()));
    return kExitFailure;
  }
  if (!tty) {
    std::cerr << "ember bench: " << args.function << ": " << args.concurrency
              << (args.concurrency == 1 ? " caller" : " callers") << " for "
              << absl::FormatDuration(args.duration) << "\n"
              << std::flush;
  }
  const auto total = absl::ToChronoNanoseconds(args.duration);
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point end = t0 + total;
  start.count_down();
  const auto invocations = [&] {
    std::uint64_t n = 0;
    for (const auto& c : callers) n += c->done.load(std::memory_order_relaxed);
    return n;
  };
  // The progress bar is redrawn ten times a second, on a terminal only.
  for (Clock::time_point now = t0; now < end; now = Clock::now()) {
    std::this_thread::sleep_until(std::min(end, now + std::chrono::milliseconds(100)));
    if (tty) {
      const auto so_far = Clock::now() - t0;
      std::cerr << "\r"
                << progress_line(std::chrono::duration<double>(so_far) / total,
                                 absl::FromChrono(so_far), args.duration, invocations(), 30,
                                 unicode)
                << "\033[K" << std::flush;
    }
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& t : threads) t.join();
  const Clock::duration elapsed = Clock::now() - t0;
  if (tty) std::cerr << "\r\033[K" << std::flush;
  engine.shutdown();

  BenchReport report;
  report.function = args.function;
  report.concurrency = args.concurrency;
  report.dispatch = std::string(dispatch_name(dispatch));
  report.elapsed = absl::FromChrono(elapsed);
  LatencyRecorder all;
  std::map<std::string, std::uint64_t> errors;
  for (const auto& c : callers) {
    all.merge(c->latency);
    for (const auto& [type, n] : c->errors) errors[type] += n;
    if (report.first_error.empty()) report.first_error = c->first_error;
  }
  report.invocations = all.count();
  for (const auto& [type, n] : errors) {
    report.errors += n;
    report.errors_by_type.emplace_back(type, n);
  }
  std::stable_sort(report.errors_by_type.begin(), report.errors_by_type.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  report.latency = all.histogram();
  report.latency_min_ns = all.min_ns();
  std::cout << format_bench_report(report, {.unicode = unicode}) << std::flush;
  return kExitOk;
}

}  // namespace ember::cli
