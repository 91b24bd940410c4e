// quickstart — a tour of ember in one program: register functions, invoke them sync (inline
// and pool), async and nested, watch a throttle and a timeout happen, and queue an event.
#include <atomic>
#include <cctype>
#include <cstdio>
#include <ember/ember.hpp>
#include <future>
#include <string>

using ember::Context;
using ember::Result;

namespace {

void show(const char* what, const Result<std::string>& r) {
  if (r) {
    std::printf("%-34s -> %s\n", what, r->c_str());
  } else {
    std::printf("%-34s -> error %s: %s\n", what, std::string(r.error().code_name()).c_str(),
                r.error().message.c_str());
  }
}

struct Order {
  int quantity;
  double price;
};
struct Quote {
  double total;
};

}  // namespace

int main() {
  ember::Engine engine{{.workers = 2,
                        .concurrency_limit = 100,
                        .min_unreserved_concurrency = 10,
                        // Lambda-shaped lines (ember::format_log_line), indented for the demo.
                        .log_sink = [](const ember::LogRecord& r) {
                          std::printf("  [log] %s\n",
                                      ember::format_log_line(r, ember::LogFormat::kText).c_str());
                        }}};

  // 1. A bytes handler: payload in, payload out.
  auto greet = engine.register_function(
      "greet", {}, [](Context& ctx, std::string_view name) -> Result<std::string> {
        if (name == "world") ctx.log("greeting the world");  // tagged with the request id
        return "hello " + std::string(name) + " (request " +
               std::string(ctx.request_id().substr(0, 8)) + ")";
      });
  if (!greet) {
    std::printf("register failed: %s\n", greet.error().message.c_str());
    return 1;
  }

  // 2. A function that calls another one: the nested invoke suspends this fiber.
  engine
      .register_function("shout", {},
                         [](Context& ctx, std::string_view in) -> Result<std::string> {
                           auto inner = ctx.invoke("greet", in);
                           if (!inner) return inner;
                           std::string loud = *inner;
                           for (char& c : loud)
                             c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                           return loud + "!";
                         })
      .value();

  // 3. A typed handler: C++ values by reference, no serialisation.
  auto quote = engine
                   .register_function<Order, Quote>("quote", {},
                                                    [](Context&, const Order& o) -> Result<Quote> {
                                                      return Quote{o.quantity * o.price};
                                                    })
                   .value();

  // 4. A slow function with one reserved slot and a 50 ms timeout that checks for cancellation.
  std::promise<void> release_slow;
  std::shared_future<void> slow_may_finish = release_slow.get_future().share();
  std::atomic<bool> slow_started{false};
  auto slow =
      engine
          .register_function("slow", {.timeout = absl::Milliseconds(50), .reserved_concurrency = 1},
                             [&](Context& ctx, std::string_view) -> Result<std::string> {
                               slow_started = true;
                               while (slow_may_finish.wait_for(std::chrono::milliseconds(0)) !=
                                      std::future_status::ready) {
                                 if (auto ok = ctx.sleep_for(absl::Milliseconds(5)); !ok)
                                   return tl::unexpected(ok.error());
                               }
                               return "slow done";
                             })
          .value();

  show("invoke greet (inline)", engine.invoke(*greet, "world"));
  show("invoke greet (pool)", engine.invoke(*greet, "pool", {.dispatch = ember::Dispatch::kPool}));
  show("invoke shout (nested)", engine.invoke("shout", "nested"));
  auto q = engine.invoke<Quote>(quote, Order{3, 2.5});
  std::printf("%-34s -> %.2f\n", "invoke<Quote> quote (typed)", q ? q->total : -1.0);

  // Async: a callback, then a future.
  std::promise<Result<std::string>> async_result;
  (void)engine.invoke_async(*greet, "async",
                            [&](Result<std::string> r) { async_result.set_value(std::move(r)); });
  show("invoke_async greet (callback)", async_result.get_future().get());
  show("invoke_future greet", engine.invoke_future(*greet, "future").get());

  // Throttle: "slow" holds its only reserved slot, so a second sync invoke is refused at once.
  auto first = engine.invoke_future(slow, "");
  while (!slow_started) {
  }
  show("invoke slow while it runs", engine.invoke(slow, "", {.dispatch = ember::Dispatch::kPool}));
  // Timeout: the first "slow" sleeps in 5 ms steps past its 50 ms deadline; sleep_for reports
  // the timeout and the handler gives up.
  show("slow after its 50 ms timeout", first.get());
  release_slow.set_value();

  // START / END / REPORT lines, Lambda's, for a function that asks for them.
  auto audited =
      engine.register_function("audited", {.report_logs = true},
                               [](Context& ctx, std::string_view in) -> Result<std::string> {
                                 ctx.log("auditing");
                                 return std::string(in);
                               });
  show("invoke audited (report_logs)", engine.invoke(*audited, "ok"));

  // 5. An Event invoke: queued, retried on error (here after 10 ms, not Lambda's 1 and 2
  // minutes), and ending at a destination. The id stays the same across retries.
  std::atomic<int> tries{0};
  engine.register_function(
      "flaky", {}, [&](Context& ctx, std::string_view in) -> Result<std::string> {
        std::printf("  flaky: event %.8s attempt %d\n", std::string(ctx.event()->id).c_str(),
                    ctx.event()->attempt);
        if (tries.fetch_add(1) < 2) return ember::fail(ember::ErrorCode::kInternal, "not yet");
        return "stored " + std::string(in);
      });
  std::promise<ember::EventRecord> ended;
  engine.set_event_config(
      "flaky",
      {.retry_backoff = {absl::Milliseconds(10)},
       .on_success = {.callback = [&](const ember::EventRecord& r) { ended.set_value(r); }}});
  auto event_id = engine.enqueue("flaky", "order 7");
  if (!event_id) {
    std::printf("enqueue failed: %s\n", event_id.error().message.c_str());
    return 1;
  }
  const ember::EventRecord record = ended.get_future().get();
  std::printf("%-34s -> %s after %d attempts (%s)\n", "enqueue flaky", record.response.c_str(),
              record.attempts, std::string(ember::event_condition_name(record.condition)).c_str());

  // Metrics, with Lambda's names, summed from per-thread shards.
  ember::MetricsSnapshot m = engine.metrics();
  for (const char* name : {"greet", "slow"}) {
    const ember::FunctionMetrics* f = m.function(name);
    std::printf(
        "metrics %-6s invocations=%llu errors=%llu timeouts=%llu throttles=%llu "
        "p50=%.1f us max=%.1f us\n",
        name, static_cast<unsigned long long>(f->invocations),
        static_cast<unsigned long long>(f->errors), static_cast<unsigned long long>(f->timeouts),
        static_cast<unsigned long long>(f->throttles()), f->duration.quantile(0.5) / 1e3,
        static_cast<double>(f->duration.max_ns) / 1e3);
  }
  const std::string prom = ember::metrics_text(engine);
  std::printf("metrics_text: %zu bytes of Prometheus text, e.g.\n", prom.size());
  for (std::size_t at = prom.find("ember_invocations_total{"), shown = 0;
       at != std::string::npos && shown < 3;
       at = prom.find("ember_invocations_total{", at + 1), ++shown) {
    std::printf("  %s\n", prom.substr(at, prom.find('\n', at) - at).c_str());
  }
  engine.shutdown();
  show("invoke after shutdown", engine.invoke(*greet, "late"));
  return 0;
}
