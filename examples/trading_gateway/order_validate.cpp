// order_validate — the gateway's first step as a plugin: one function, "order.validate", that
// takes a client's order line, "id side symbol qty price" (`17 BUY ACME 100 101.25`), and
// answers its canonical form (order.hpp), or fails with a typed error, "ValidationError", whose
// message names the order and the field at fault. Stateless: no init, nothing shared.
#include <cstdint>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"
#include "order.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

constexpr std::int64_t kMaxQty = 10'000;
constexpr std::int64_t kBandPercent = 10;  // a price this far from the reference is a fat finger

tl::unexpected<ember::plugin::Error> invalid(std::string message) {
  return ember::plugin::fail("ValidationError", std::move(message));
}

// "101.25" -> 10125 cents: digits, optionally a point and one or two more.
bool parse_price(std::string_view text, std::int64_t& cents) {
  const std::size_t point = text.find('.');
  const std::string_view whole = text.substr(0, point);
  const std::string_view frac =
      point == std::string_view::npos ? std::string_view{} : text.substr(point + 1);
  if (whole.empty() || whole.size() > 9 || frac.size() > 2 ||
      (point != std::string_view::npos && frac.empty())) {
    return false;
  }
  std::int64_t w = 0, f = 0;
  if (!trading::detail::parse_int(whole, w) ||
      (!frac.empty() && !trading::detail::parse_int(frac, f))) {
    return false;
  }
  if (whole[0] == '-' || (!frac.empty() && frac[0] == '-')) return false;
  cents = w * 100 + (frac.size() == 1 ? f * 10 : f);
  return true;
}

Result<std::string> validate(Context&, std::string_view line) {
  std::string_view rest = line;
  std::string_view fields[6];
  int n = 0;
  while (n < 6 && !(fields[n] = trading::detail::next_field(rest)).empty()) ++n;
  if (n != 5) {
    return invalid("'" + std::string(line.substr(0, 40)) + "': expected 5 fields (id side symbol " +
                   "qty price), got " + (n > 5 ? "more" : std::to_string(n)));
  }
  trading::Order o;
  if (!trading::detail::parse_int(fields[0], o.id) || o.id == 0) {
    return invalid("id '" + std::string(fields[0]) + "' is not a positive integer");
  }
  const std::string order = "order " + std::to_string(o.id) + ": ";
  if (fields[1] != "BUY" && fields[1] != "SELL") {
    return invalid(order + "side '" + std::string(fields[1]) + "' is neither BUY nor SELL");
  }
  o.side = fields[1][0];
  const trading::Instrument* instrument = trading::find_instrument(fields[2]);
  if (instrument == nullptr) {
    return invalid(order + "unknown symbol '" + std::string(fields[2]) + "'");
  }
  fields[2].copy(o.symbol, sizeof o.symbol - 1);
  if (!trading::detail::parse_int(fields[3], o.qty) || o.qty < 1 || o.qty > kMaxQty) {
    return invalid(order + "qty " + std::string(fields[3]) + " is outside 1.." +
                   std::to_string(kMaxQty));
  }
  if (!parse_price(fields[4], o.price) || o.price <= 0) {
    return invalid(order + "price '" + std::string(fields[4]) +
                   "' is not a positive price with at most 2 decimals");
  }
  const std::int64_t ref = instrument->reference_price;
  if (o.price * 100 > ref * (100 + kBandPercent) || o.price * 100 < ref * (100 - kBandPercent)) {
    return invalid(order + "price " + trading::price_text(o.price) + " is more than " +
                   std::to_string(kBandPercent) + "% away from " + instrument->symbol +
                   "'s reference " + trading::price_text(ref));
  }
  return trading::to_canonical(o);
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("order_validate").version("1.0.0");
  plugin.function<&validate>("order.validate").timeout_ms(50);
}
