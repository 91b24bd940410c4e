// order.hpp — the trading gateway's instruments and its canonical order form, shared by the
// host, the order_validate plugin and the two strategy plugins.
//
// Clients send orders as text, "id side symbol qty price": `17 BUY ACME 100 101.25`.
// order.validate checks one and answers its canonical form, which is what the strategies take:
// "id B|S symbol qty price_in_cents [venue_latency_us]":
//
//   trading::Order o;
//   trading::from_canonical("17 B ACME 100 10125", o);   // true; o.price == 10125
//   trading::to_canonical(o);                             // "17 B ACME 100 10125"
//
// Header-only and C++17 (plugins may be built with an older standard than the host); no
// globals with destructors, so plugins may include it (DESIGN.md §9).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace trading {

// Which strategy trades an instrument.
enum Desk : int { kMomentum = 0, kMeanReversion = 1 };

struct Instrument {
  const char* symbol;
  std::int64_t reference_price;  // cents: orders more than 10% away are refused
  Desk desk;
};

inline constexpr Instrument kInstruments[] = {
    {"ACME", 10125, kMomentum},     {"BOLT", 4210, kMomentum},
    {"CRUX", 23050, kMomentum},     {"DYNE", 870, kMomentum},
    {"ECHO", 5510, kMeanReversion}, {"FLUX", 15675, kMeanReversion},
    {"GRID", 3320, kMeanReversion}, {"HALO", 31200, kMeanReversion},
};

[[nodiscard]] inline const Instrument* find_instrument(std::string_view symbol) {
  for (const Instrument& i : kInstruments) {
    if (symbol == i.symbol) return &i;
  }
  return nullptr;
}

// A validated order.
struct Order {
  std::uint64_t id = 0;
  char side = 'B';              // 'B'uy or 'S'ell
  char symbol[9] = {};          // NUL-terminated, for the risk layer's C interface
  std::int64_t qty = 0;         // shares, > 0
  std::int64_t price = 0;       // cents, > 0
  std::int64_t latency_us = 0;  // a simulated venue round trip the strategy waits for
  [[nodiscard]] std::int64_t signed_qty() const { return side == 'B' ? qty : -qty; }
};

// "101.25" for 10125 cents.
[[nodiscard]] inline std::string price_text(std::int64_t cents) {
  const std::string frac = std::to_string(cents % 100);
  return std::to_string(cents / 100) + (frac.size() == 1 ? ".0" : ".") + frac;
}

[[nodiscard]] inline std::string to_canonical(const Order& o) {
  std::string s = std::to_string(o.id) + (o.side == 'B' ? " B " : " S ") + o.symbol + " " +
                  std::to_string(o.qty) + " " + std::to_string(o.price);
  if (o.latency_us > 0) s += " " + std::to_string(o.latency_us);
  return s;
}

namespace detail {

// The next space-separated field of `in`, consumed.
inline std::string_view next_field(std::string_view& in) {
  const std::size_t start = in.find_first_not_of(' ');
  if (start == std::string_view::npos) return in = {}, std::string_view{};
  in.remove_prefix(start);
  const std::size_t end = std::min(in.find(' '), in.size());
  const std::string_view field = in.substr(0, end);
  in.remove_prefix(end);
  return field;
}

template <typename Int>
bool parse_int(std::string_view text, Int& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

}  // namespace detail

// Parses the canonical form order.validate produced; false if `in` is not one.
[[nodiscard]] inline bool from_canonical(std::string_view in, Order& o) {
  using detail::next_field;
  const std::string_view id = next_field(in), side = next_field(in), symbol = next_field(in),
                         qty = next_field(in), price = next_field(in), latency = next_field(in);
  if (!next_field(in).empty() || (side != "B" && side != "S") || symbol.empty() ||
      symbol.size() >= sizeof o.symbol) {
    return false;
  }
  o.side = side[0];
  std::memcpy(o.symbol, symbol.data(), symbol.size());
  o.symbol[symbol.size()] = '\0';
  o.latency_us = 0;
  return detail::parse_int(id, o.id) && detail::parse_int(qty, o.qty) && o.qty > 0 &&
         detail::parse_int(price, o.price) && o.price > 0 &&
         (latency.empty() || detail::parse_int(latency, o.latency_us));
}

}  // namespace trading
