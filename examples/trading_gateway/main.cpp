// trading_gateway — an order gateway built from plugins: every order is validated by one
// plugin, then dispatched to one of two strategy plugins that share a risk layer, with a new
// version of one strategy canaried at 10% through an alias.
//
// What it shows:
//  - a chain with nested invokes: the host's own function "gateway.submit" (registered in C++)
//    invokes "order.validate" (plugin order_validate), then the strategy that trades the
//    order's symbol; a bad order comes back as the plugin's typed error, ValidationError;
//  - a layer shared by plugins: strategy_momentum and strategy_meanrev both require the layer
//    "risk" (built with ember_add_layer) and book every order through its service "limits";
//    the layer is loaded once, so both see one firm-wide exposure;
//  - reserved concurrency declared by plugins (.reserved_concurrency(n) in their descriptor):
//    a burst of async orders runs at most n at once per strategy, and a sync order that finds
//    no free slot is throttled at once;
//  - versions and a canary: strategy_momentum 1.0.0 is loaded, 2.0.0 is loaded beside it with
//    reload_plugin, and the alias "live" sends 10% of orders to version 2;
//  - engine.metrics() per function, and the Prometheus text of one function.
//
// The orders come from a fixed seed, so every count is the same from run to run except the
// canary's split (ember picks a version per invoke at random) and the timings.
//
//   $ trading_gateway               (long lines cut short here with ...)
//   trading_gateway: 4000 orders from seed 7
//   deploy:
//     order_validate     1.0.0  loaded  : order.validate:1
//     strategy_meanrev   1.0.0  loaded  : strategy_meanrev.on_order:1 ...  [layer risk 1.0.0]
//     strategy_momentum  1.0.0  loaded  : strategy_momentum.on_order:1 ...  [layer risk 1.0.0]
//     strategy_momentum  2.0.0  reloaded: strategy_momentum.on_order:2 ...  [layer risk 1.0.0]
//     alias strategy_momentum.on_order:live -> version 1, 10% to version 2
//     3 plugins and 1 layer loaded (the strategies share one risk layer)
//   orders through gateway.submit (order.validate, then a strategy, then risk):
//     accepted          3375   momentum 1739, meanrev 1636
//     ValidationError    343   first: order 15: qty 0 is outside 1..10000
//     RiskRejected       282   position limit 232, exposure limit 50; first: meanrev@1: ...
//     other errors         0
//   canary strategy_momentum.on_order:live: version 1 1696, version 2 181 (9.6%; expected 10%)
//   risk layer's gross exposure as strategy_momentum sees it: $1008013.10 of $1200000.00; ...
//   burst: 100 async orders to each strategy, 1 ms at the venue each:
//     strategy_momentum.on_order   at most 4 running at once, reserved concurrency 4
//     strategy_meanrev.on_order    at most 2 running at once, reserved concurrency 2
//     200 of 200 answered (booked or refused by risk); a sync order meanwhile -> Throttled: ...
//   metrics (engine.metrics()):
//     function                     invocations  errors throttles    p50 us    p99 us
//     gateway.submit                      4000     625         0      1.97      3.55
//     order.validate                      4000     343         0      0.57      1.42
//     strategy_meanrev.exposure              1       0         0      8.18      8.18
//     strategy_meanrev.on_order           1880     144         1      0.82   1097.73
//     strategy_momentum.exposure             1       0         0     39.39     39.39
//     strategy_momentum.on_order          1977     138         0      0.82   1097.73
//   prometheus text for strategy_meanrev.on_order (non-zero samples, no buckets):
//     ember_invocations_total{function="strategy_meanrev.on_order"} 1880
//     ember_errors_total{function="strategy_meanrev.on_order"} 144
//     ...
//   trading_gateway: OK
//
// Flags: --orders N (>= 1000) --seed S --burst N, and --validate / --momentum-v1 /
// --momentum-v2 / --meanrev PATH to load other builds of the plugins (default: those built
// beside this program; the risk layer is found beside the strategy plugins).
#include <array>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ember/ember.hpp>
#include <latch>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "order.hpp"

namespace {

struct Options {
  int orders = 4000;
  std::uint64_t seed = 7;
  int burst = 100;
  std::string validate = ORDER_VALIDATE_PLUGIN;
  std::string momentum_v1 = MOMENTUM_V1_PLUGIN;
  std::string momentum_v2 = MOMENTUM_V2_PLUGIN;
  std::string meanrev = MEANREV_PLUGIN;
};

constexpr const char* kUsage =
    "usage: trading_gateway [--orders N (>= 1000)] [--seed S] [--burst N (1..1000)]\n"
    "                       [--validate PATH] [--momentum-v1 PATH] [--momentum-v2 PATH]\n"
    "                       [--meanrev PATH]\n";

template <typename Int>
bool parse_number(std::string_view text, Int lo, Int hi, Int& out) {
  Int v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

// False (after saying why) on a bad command line.
bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n%s", argv[i], kUsage);
      return false;
    }
    const std::string_view value = argv[++i];
    bool ok = true;
    if (flag == "--orders") {
      ok = parse_number(value, 1000, 10'000'000, o.orders);
    } else if (flag == "--seed") {
      ok = parse_number<std::uint64_t>(value, 0, UINT64_MAX, o.seed);
    } else if (flag == "--burst") {
      ok = parse_number(value, 1, 1000, o.burst);  // within an async queue's 1024
    } else if (flag == "--validate") {
      o.validate = value;
    } else if (flag == "--momentum-v1") {
      o.momentum_v1 = value;
    } else if (flag == "--momentum-v2") {
      o.momentum_v2 = value;
    } else if (flag == "--meanrev") {
      o.meanrev = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n%s", argv[i - 1], kUsage);
      return false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad value for %s: %s\n%s", argv[i - 1], argv[i], kUsage);
      return false;
    }
  }
  return true;
}

// SplitMix64: small and fully specified, so a seed gives the same orders with any standard
// library (std::uniform_int_distribution's output is the library's choice).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // In [0, n); the modulo bias is far below anything this example could show.
  int below(int n) { return static_cast<int>(next() % static_cast<std::uint64_t>(n)); }

 private:
  std::uint64_t state_;
};

// A client's order line, "id side symbol qty price"; about one in twelve is bad in one way.
std::string make_order(Rng& rng, std::uint64_t id) {
  const trading::Instrument& inst =
      trading::kInstruments[rng.below(static_cast<int>(std::size(trading::kInstruments)))];
  std::string side = rng.below(2) == 0 ? "BUY" : "SELL";
  std::string symbol = inst.symbol;
  std::string qty = std::to_string(10 * (1 + rng.below(50)));
  // Within 2% of the reference price.
  std::string price = trading::price_text(inst.reference_price +
                                          inst.reference_price * (rng.below(401) - 200) / 10'000);
  if (rng.below(12) == 0) {
    switch (rng.below(7)) {
      case 0:
        qty = "0";
        break;
      case 1:
        qty = "25000";
        break;
      case 2:
        price = "-" + price;
        break;
      case 3:
        price += "5";
        break;  // a third decimal
      case 4:
        side = "HOLD";
        break;
      case 5:
        symbol = "ZZZZ";
        break;
      default:
        price = trading::price_text(inst.reference_price * 13 / 10);
        break;  // fat finger
    }
  }
  return std::to_string(id) + " " + side + " " + symbol + " " + qty + " " + price;
}

// "2" from "... momentum@2 ..." (a response or a RiskRejected message); "" if absent.
std::string_view served_version(std::string_view text, std::string_view desk) {
  const std::size_t at = text.find(desk);
  if (at == std::string_view::npos || at + desk.size() >= text.size() ||
      text[at + desk.size()] != '@') {
    return {};
  }
  const std::string_view rest = text.substr(at + desk.size() + 1);
  return rest.substr(0, rest.find_first_of(" :"));
}

std::string version_of(const ember::PluginInfo& info, std::string_view function) {
  for (const auto& f : info.functions) {
    if (f.name == function) return f.version;
  }
  return "?";
}

void print_deployed(const ember::PluginInfo& info, const char* how) {
  std::printf("  %-18s %-6s %s:", info.name.c_str(), info.version.c_str(), how);
  for (const auto& f : info.functions) std::printf(" %s:%s", f.name.c_str(), f.version.c_str());
  for (const auto& l : info.layers) std::printf("  [layer %s]", l.c_str());
  std::printf("\n");
}

// The outcome of the order flow.
struct Tally {
  int accepted[2] = {};  // by desk (trading::Desk)
  int validation = 0;
  int position_limit = 0;
  int exposure_limit = 0;
  int other = 0;
  std::map<std::string, int, std::less<>> momentum_by_version;  // routed through :live
  std::string first_validation, first_risk, first_other;
};

void count(Tally& t, const ember::Result<std::string>& r) {
  if (r) {
    const bool momentum = r->find(" momentum@") != std::string::npos;
    ++t.accepted[momentum ? trading::kMomentum : trading::kMeanReversion];
    if (momentum) ++t.momentum_by_version[std::string(served_version(*r, "momentum"))];
    return;
  }
  const ember::FunctionError e = ember::function_error(r.error());
  if (e.type == "ValidationError") {
    ++t.validation;
    if (t.first_validation.empty()) t.first_validation = e.message;
  } else if (e.type == "RiskRejected") {
    ++(e.message.find("position limit") != std::string_view::npos ? t.position_limit
                                                                  : t.exposure_limit);
    if (t.first_risk.empty()) t.first_risk = e.message;
    if (const auto v = served_version(e.message, "momentum"); !v.empty()) {
      ++t.momentum_by_version[std::string(v)];
    }
  } else {
    ++t.other;
    if (t.first_other.empty()) t.first_other = r.error().message;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse_options(argc, argv, opt)) return 2;
  bool ok = true;
  const auto check = [&ok](bool good, const std::string& what) {
    if (!good) {
      std::printf("FAIL: %s\n", what.c_str());
      ok = false;
    }
  };
  const auto fatal = [](const char* what, const ember::Error& e) {
    std::printf("FAIL: %s: %s\n", what, e.message.c_str());
    return 1;
  };

  // Two workers run the async burst; the order flow itself runs inline on this thread.
  ember::Engine engine({.workers = 2});
  std::printf("trading_gateway: %d orders from seed %llu\n", opt.orders,
              static_cast<unsigned long long>(opt.seed));

  // ---- Deploy: the validator, both strategies (and with them the risk layer), a canary ----
  std::printf("deploy:\n");
  auto validate = engine.load_plugin(opt.validate);
  if (!validate) return fatal("load order_validate", validate.error());
  print_deployed(*validate, "loaded  ");
  auto meanrev = engine.load_plugin(opt.meanrev);
  if (!meanrev) return fatal("load strategy_meanrev", meanrev.error());
  print_deployed(*meanrev, "loaded  ");
  auto momentum = engine.load_plugin(opt.momentum_v1);
  if (!momentum) return fatal("load strategy_momentum", momentum.error());
  print_deployed(*momentum, "loaded  ");
  const std::string v1 = version_of(*momentum, "strategy_momentum.on_order");
  // Pin "live" to version 1 first: an alias keeps a version loaded after a newer one arrives.
  if (auto a = engine.set_alias("strategy_momentum.on_order", "live", {.version = v1}); !a) {
    return fatal("alias live", a.error());
  }
  auto momentum2 = engine.reload_plugin("strategy_momentum", opt.momentum_v2);
  if (!momentum2) return fatal("reload strategy_momentum", momentum2.error());
  print_deployed(*momentum2, "reloaded");
  const std::string v2 = version_of(*momentum2, "strategy_momentum.on_order");
  constexpr double kCanaryWeight = 0.1;
  if (auto a = engine.set_alias(
          "strategy_momentum.on_order", "live",
          {.version = v1, .additional_version = v2, .additional_weight = kCanaryWeight});
      !a) {
    return fatal("canary alias", a.error());
  }
  std::printf("  alias strategy_momentum.on_order:live -> version %s, %.0f%% to version %s\n",
              v1.c_str(), kCanaryWeight * 100, v2.c_str());
  const ember::EngineStats deployed = engine.stats();
  std::printf("  %lld plugins and %lld layer loaded (the strategies share one risk layer)\n",
              static_cast<long long>(deployed.plugins_loaded),
              static_cast<long long>(deployed.layers_loaded));
  check(deployed.layers_loaded == 1, "the risk layer was not loaded exactly once");

  // ---- The gateway: validate, then dispatch to the strategy that trades the symbol ----
  auto validate_fn = engine.function("order.validate");
  auto momentum_fn = engine.function("strategy_momentum.on_order:live");
  auto meanrev_fn = engine.function("strategy_meanrev.on_order");
  if (!validate_fn || !momentum_fn || !meanrev_fn) {
    return fatal("resolve", !validate_fn   ? validate_fn.error()
                            : !momentum_fn ? momentum_fn.error()
                                           : meanrev_fn.error());
  }
  auto gateway = engine.register_function(
      "gateway.submit", {.timeout = absl::Milliseconds(500)},
      [validate = *validate_fn, strategies = std::array{*momentum_fn, *meanrev_fn}](
          ember::Context& ctx, std::string_view line) -> ember::Result<std::string> {
        // Nested invokes: each runs the callee on a fiber of its own and returns its result;
        // a callee's error comes back as it is, so the client sees ValidationError.
        auto canonical = ctx.invoke(validate, line);
        if (!canonical) return canonical;
        trading::Order order;
        const trading::Instrument* inst = trading::from_canonical(*canonical, order)
                                              ? trading::find_instrument(order.symbol)
                                              : nullptr;
        if (inst == nullptr) {
          return ember::fail(ember::ErrorCode::kInternal,
                             "validator answered '" + *canonical + "'");
        }
        return ctx.invoke(strategies[inst->desk], *canonical);
      });
  if (!gateway) return fatal("register gateway.submit", gateway.error());

  // ---- The order flow ----
  Tally tally;
  Rng rng(opt.seed);
  for (int i = 0; i < opt.orders; ++i) {
    count(tally, engine.invoke(*gateway, make_order(rng, static_cast<std::uint64_t>(i) + 1)));
  }
  const int risk = tally.position_limit + tally.exposure_limit;
  std::printf("orders through gateway.submit (order.validate, then a strategy, then risk):\n");
  std::printf("  accepted         %5d   momentum %d, meanrev %d\n",
              tally.accepted[0] + tally.accepted[1], tally.accepted[0], tally.accepted[1]);
  std::printf("  ValidationError  %5d   first: %s\n", tally.validation,
              tally.first_validation.c_str());
  std::printf("  RiskRejected     %5d   position limit %d, exposure limit %d; first: %s\n", risk,
              tally.position_limit, tally.exposure_limit, tally.first_risk.c_str());
  std::printf("  other errors     %5d%s%s\n", tally.other, tally.other != 0 ? "   first: " : "",
              tally.first_other.c_str());
  check(tally.other == 0, "orders failed for another reason than validation or risk");
  check(tally.validation > 0, "no order was refused by the validator");
  check(tally.accepted[0] + tally.accepted[1] + tally.validation + risk == opt.orders,
        "orders went missing");

  // The canary's split: every momentum order went through the alias.
  const int n1 = tally.momentum_by_version[v1];
  const int n2 = tally.momentum_by_version[v2];
  const double share = n1 + n2 == 0 ? 0 : static_cast<double>(n2) / (n1 + n2);
  std::printf(
      "canary strategy_momentum.on_order:live: version %s %d, version %s %d (%.1f%%; "
      "expected %.0f%%)\n",
      v1.c_str(), n1, v2.c_str(), n2, share * 100, kCanaryWeight * 100);
  int momentum_orders = 0;
  for (const auto& [version, n] : tally.momentum_by_version) momentum_orders += n;
  check(momentum_orders == n1 + n2, "a momentum order was served by neither version");
  check(share >= 0.05 && share <= 0.15, "the canary's share is outside 5%..15%");

  // One layer, one state: both strategies (momentum's newest version here) see one exposure.
  auto seen_momentum = engine.invoke("strategy_momentum.exposure", "");
  auto seen_meanrev = engine.invoke("strategy_meanrev.exposure", "");
  std::printf(
      "risk layer's gross exposure as strategy_momentum sees it: %s; as strategy_meanrev "
      "sees it: %s\n",
      seen_momentum ? seen_momentum->c_str() : seen_momentum.error().message.c_str(),
      seen_meanrev ? seen_meanrev->c_str() : seen_meanrev.error().message.c_str());
  check(seen_momentum && seen_meanrev && *seen_momentum == *seen_meanrev,
        "the strategies see different risk states");

  // ---- Reserved concurrency: a burst of async orders, each waiting 1 ms at the venue ----
  std::latch answered_all(2 * opt.burst);
  std::atomic<int> answered{0};
  std::atomic<int> burst_failed{0};
  std::mutex failure_mu;
  std::string burst_failure;
  const auto on_answer = [&](ember::Result<std::string> r) {
    // A risk refusal is an answer; a timeout or a throttle would be the engine failing us.
    if (r || ember::function_error(r.error()).type == "RiskRejected") {
      answered.fetch_add(1, std::memory_order_relaxed);
    } else {
      burst_failed.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard lock(failure_mu);
      if (burst_failure.empty()) burst_failure = r.error().message;
    }
    answered_all.count_down();
  };
  for (int i = 0; i < opt.burst; ++i) {
    for (const trading::Desk desk : {trading::kMomentum, trading::kMeanReversion}) {
      trading::Order o;
      o.id = 1'000'000 + static_cast<std::uint64_t>(2 * i + desk);
      o.side = i % 2 == 0 ? 'B' : 'S';  // in pairs: the burst leaves positions as they were
      std::snprintf(o.symbol, sizeof o.symbol, "%s", desk == trading::kMomentum ? "ACME" : "ECHO");
      o.qty = 1;
      o.price = trading::find_instrument(o.symbol)->reference_price;
      o.latency_us = 1000;
      auto sent = engine.invoke_async(desk == trading::kMomentum ? *momentum_fn : *meanrev_fn,
                                      trading::to_canonical(o), on_answer);
      if (!sent) on_answer(tl::unexpected(sent.error()));
    }
  }
  // The burst holds every reserved slot of both strategies for a while yet: a sync order now
  // finds none free, and is throttled at once instead of waiting.
  auto probe = engine.invoke(*meanrev_fn, "2000000 B GRID 10 3320");
  answered_all.wait();
  const ember::MetricsSnapshot metrics = engine.metrics();
  std::printf("burst: %d async orders to each strategy, 1 ms at the venue each:\n", opt.burst);
  for (const char* name : {"strategy_momentum.on_order", "strategy_meanrev.on_order"}) {
    const ember::FunctionMetrics* f = metrics.function(name);
    const long long peak = f != nullptr ? f->concurrent_executions_max.value_or(-1) : -1;
    const int reserved = f != nullptr ? f->reserved_concurrency.value_or(-1) : -1;
    std::printf("  %-28s at most %lld running at once, reserved concurrency %d\n", name, peak,
                reserved);
    check(peak == reserved && reserved > 0,
          std::string(name) + ": peak concurrency is not its reserved concurrency");
  }
  std::printf(
      "  %d of %d answered (booked or refused by risk); a sync order meanwhile -> %s\n",
      answered.load(), 2 * opt.burst,
      probe ? probe->c_str()
            : (std::string(probe.error().code_name()) + ": " + probe.error().message).c_str());
  if (burst_failed.load() != 0) std::printf("  first failure: %s\n", burst_failure.c_str());
  check(burst_failed.load() == 0, "async orders of the burst failed");
  check(!probe && probe.error().code == ember::ErrorCode::kThrottled,
        "the sync order during the burst was not throttled");

  // ---- Metrics ----
  std::printf("metrics (engine.metrics()):\n");
  std::printf("  %-28s %11s %7s %9s %9s %9s\n", "function", "invocations", "errors", "throttles",
              "p50 us", "p99 us");
  for (const ember::FunctionMetrics& f : metrics.functions) {
    std::printf("  %-28s %11llu %7llu %9llu %9.2f %9.2f\n", f.function.c_str(),
                static_cast<unsigned long long>(f.invocations),
                static_cast<unsigned long long>(f.errors),
                static_cast<unsigned long long>(f.throttles()), f.duration.quantile(0.5) / 1e3,
                f.duration.quantile(0.99) / 1e3);
  }
  const ember::FunctionMetrics* gw = metrics.function("gateway.submit");
  const ember::FunctionMetrics* val = metrics.function("order.validate");
  check(gw != nullptr && gw->invocations == static_cast<std::uint64_t>(opt.orders) &&
            val != nullptr && val->invocations == static_cast<std::uint64_t>(opt.orders),
        "the metrics do not count one gateway.submit and one order.validate per order");

  // The Prometheus text of one function: its samples, less histogram buckets and zeros.
  std::printf("prometheus text for strategy_meanrev.on_order (non-zero samples, no buckets):\n");
  std::istringstream text(ember::metrics_text(metrics));
  for (std::string line; std::getline(text, line);) {
    if (line.find("{function=\"strategy_meanrev.on_order\"") != std::string::npos &&
        line.find("_bucket") == std::string::npos && !line.ends_with(" 0")) {
      std::printf("  %s\n", line.c_str());
    }
  }

  if (!ok) return 1;
  std::printf("trading_gateway: OK\n");
  return 0;
}
