// strategy_meanrev — a strategy plugin: works orders in ECHO, FLUX, GRID and HALO passively, a
// cent inside the order's price, post-only. It books every order with the same risk layer as
// strategy_momentum (requires_layer "risk"), so both count against one firm-wide exposure
// limit, and declares reserved concurrency 2.
#include <string>
#include <string_view>

#include "ember/plugin.hpp"
#include "strategy.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

Result<std::string> on_order(Context& ctx, std::string_view in) {
  return trading::work_order(
      ctx, in, RISK_BOOK_MEAN_REVERSION, "meanrev", [](const trading::Order& o) {
        return trading::Working{o.price - (o.side == 'B' ? 1 : -1), "post-only"};
      });
}

Result<std::string> exposure(Context& ctx, std::string_view) {
  return trading::exposure_report(ctx);
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("strategy_meanrev").version("1.0.0");
  plugin.function<&on_order>("strategy_meanrev.on_order").timeout_ms(250).reserved_concurrency(2);
  plugin.function<&exposure>("strategy_meanrev.exposure");
  plugin.requires_layer("risk", "^1.0");
}
