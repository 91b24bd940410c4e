// strategy.hpp — what both strategy plugins do with a validated order: decide how to work it,
// book it with the shared risk layer, wait for the (simulated) venue, and acknowledge it.
//
//   Result<std::string> on_order(Context& ctx, std::string_view in) {
//     return trading::work_order(ctx, in, RISK_BOOK_MOMENTUM, "momentum",
//                                [](const trading::Order& o) { return Working{...}; });
//   }
//
// An acknowledgement reads "ACK <id> <desk>@<version> BUY 100 ACME @ 101.26 <instruction>"; a
// refusal by the risk layer is the typed error "RiskRejected" with "<desk>@<version>: <why>".
// Either names the function version that served it, which is how the host counts a canary.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"
#include "order.hpp"
#include "risk_service.h"

namespace trading {

// How a strategy works an order: at which limit price, with which instruction.
struct Working {
  std::int64_t price = 0;
  std::string instruction;
};

template <typename Decide>
ember::plugin::Result<std::string> work_order(ember::plugin::Context& ctx, std::string_view in,
                                              int book, std::string_view desk, Decide decide) {
  Order o;
  if (!from_canonical(in, o)) {
    return ember::plugin::fail("BadOrder", "not a canonical order: '" + std::string(in) + "'");
  }
  const auto* risk = ctx.service<risk_service>("risk", "limits");
  if (risk == nullptr) {
    return ember::plugin::fail("LayerMissing", "layer \"risk\" has no service \"limits\"");
  }
  const std::string who = std::string(desk) + "@" + std::string(ctx.function_version());
  const Working w = decide(o);
  char why[160];
  if (risk->book(book, o.symbol, o.signed_qty(), w.price, why, sizeof why) != RISK_OK) {
    return ember::plugin::fail("RiskRejected", who + ": " + why);
  }
  // The venue round trip: suspends this invocation's fiber, not its thread.
  if (o.latency_us > 0) {
    if (auto slept = ctx.sleep_for(std::chrono::microseconds(o.latency_us)); !slept) {
      return tl::unexpected(slept.error());
    }
  }
  return "ACK " + std::to_string(o.id) + " " + who + (o.side == 'B' ? " BUY " : " SELL ") +
         std::to_string(o.qty) + " " + o.symbol + " @ " + price_text(w.price) + " " + w.instruction;
}

// The firm's gross exposure as this plugin's view of the risk layer sees it.
inline ember::plugin::Result<std::string> exposure_report(ember::plugin::Context& ctx) {
  const auto* risk = ctx.service<risk_service>("risk", "limits");
  if (risk == nullptr) {
    return ember::plugin::fail("LayerMissing", "layer \"risk\" has no service \"limits\"");
  }
  return "$" + price_text(risk->gross_exposure()) + " of $" + price_text(risk->exposure_limit());
}

}  // namespace trading
