// quickstart — a tour of ember in one program: register functions, invoke them sync (inline
// and pool), async and nested, and watch a throttle and a timeout happen.
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
                        .log_sink = [](const ember::LogRecord& r) {
                          std::printf("  [log] %.*s %.*s: %.*s\n",
                                      static_cast<int>(r.function.size()), r.function.data(),
                                      static_cast<int>(r.request_id.size()), r.request_id.data(),
                                      static_cast<int>(r.message.size()), r.message.data());
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

  auto stats = engine.stats();
  std::printf("stats: throttles=%llu timeouts=%llu handler_errors=%llu\n",
              static_cast<unsigned long long>(stats.throttles),
              static_cast<unsigned long long>(stats.timeouts),
              static_cast<unsigned long long>(stats.handler_errors));
  engine.shutdown();
  show("invoke after shutdown", engine.invoke(*greet, "late"));
  return 0;
}
