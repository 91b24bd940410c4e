// strategy_momentum — a strategy plugin: works orders in ACME, BOLT, CRUX and DYNE
// aggressively, a cent through the order's price, immediate-or-cancel. It books every order
// with the shared risk layer (requires_layer "risk"), and declares reserved concurrency 4: at
// most four of its invocations run at once, and four are always available to it.
//
// Built twice from this file (CMakeLists.txt): MOMENTUM_VERSION=2 also slices an order into
// clips of at most 100 shares, which shows in its acknowledgement. The host loads version 1,
// reloads to version 2, and canaries version 2 through the alias "live".
#include <string>
#include <string_view>

#include "ember/plugin.hpp"
#include "strategy.hpp"

#ifndef MOMENTUM_VERSION
#error "build with MOMENTUM_VERSION=1 or 2 (see CMakeLists.txt)"
#endif

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

Result<std::string> on_order(Context& ctx, std::string_view in) {
  return trading::work_order(ctx, in, RISK_BOOK_MOMENTUM, "momentum", [](const trading::Order& o) {
    trading::Working w{o.price + (o.side == 'B' ? 1 : -1), "IOC"};
    if (MOMENTUM_VERSION >= 2)
      w.instruction += " in " + std::to_string((o.qty + 99) / 100) + " clips";
    return w;
  });
}

Result<std::string> exposure(Context& ctx, std::string_view) {
  return trading::exposure_report(ctx);
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("strategy_momentum").version(MOMENTUM_VERSION == 1 ? "1.0.0" : "2.0.0");
  plugin.function<&on_order>("strategy_momentum.on_order").timeout_ms(250).reserved_concurrency(4);
  plugin.function<&exposure>("strategy_momentum.exposure");
  plugin.requires_layer("risk", "^1.0");
}
