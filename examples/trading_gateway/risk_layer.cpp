// risk — a layer: pre-trade position and exposure limits, loaded once per engine and shared by
// strategy_momentum (both its versions) and strategy_meanrev. It exports one service, "limits"
// (risk_service.h). The state is a fixed table in this object; every plugin that requires the
// layer reaches the same table, which is the point: the firm's exposure is one number.
// plugin.hpp has no layer wrapper, so this uses the C ABI of plugin.h directly.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "ember/plugin.h"
#include "risk_service.h"

namespace {

constexpr std::int64_t kPositionLimit = 2'000;        // shares, per book and symbol, long or short
constexpr std::int64_t kExposureLimit = 120'000'000;  // cents: $1.2M gross, firm-wide
constexpr int kSymbols = 64;                          // distinct symbols the table can hold

struct Slot {
  char symbol[9];                     // "" for a free slot
  std::int64_t position[RISK_BOOKS];  // shares
  std::int64_t notional[RISK_BOOKS];  // |position| x the price it was last booked at, cents
};

// Constant-initialised and trivially destructible: no constructor or destructor runs at load or
// unload, so nothing pins the object (DESIGN.md §9). A mutex, not atomics: a booking reads and
// writes a position and the gross exposure together, and it is held for a few dozen
// instructions, never across a suspension point.
static_assert(std::is_trivially_destructible_v<std::mutex>);
std::mutex mu;
Slot slots[kSymbols];    // guarded by mu
std::int64_t gross = 0;  // guarded by mu: the sum of every slot's notional

// The symbol's slot, claimed if new; nullptr when the table is full. Requires mu.
Slot* find_slot(const char* symbol) {
  for (Slot& s : slots) {
    if (std::strcmp(s.symbol, symbol) == 0) return &s;
    if (s.symbol[0] == '\0') {
      std::strcpy(s.symbol, symbol);
      return &s;
    }
  }
  return nullptr;
}

bool valid(int book, const char* symbol) {
  return book >= 0 && book < RISK_BOOKS && symbol != nullptr && symbol[0] != '\0' &&
         std::strlen(symbol) < sizeof(Slot::symbol);
}

void dollars(char* out, std::size_t size, std::int64_t cents) {
  std::snprintf(out, size, "$%lld.%02lld", static_cast<long long>(cents / 100),
                static_cast<long long>(cents % 100));
}

int book_order(int book, const char* symbol, std::int64_t signed_qty, std::int64_t price, char* why,
               std::size_t why_size) {
  char scratch[1];  // where the reason goes when the caller wants none
  if (why == nullptr || why_size == 0) {
    why = scratch;
    why_size = sizeof scratch;
  }
  if (!valid(book, symbol) || price <= 0 || signed_qty == 0) {
    std::snprintf(why, why_size, "bad order: book %d, symbol '%s', qty %lld, price %lld", book,
                  symbol ? symbol : "(null)", static_cast<long long>(signed_qty),
                  static_cast<long long>(price));
    return RISK_BAD_ARGUMENT;
  }
  std::lock_guard lock(mu);
  Slot* slot = find_slot(symbol);
  if (slot == nullptr) {
    std::snprintf(why, why_size, "no room for symbol '%s': the risk table holds %d", symbol,
                  kSymbols);
    return RISK_BAD_ARGUMENT;
  }
  const std::int64_t position = slot->position[book];
  const std::int64_t next = position + signed_qty;
  if (std::llabs(next) > kPositionLimit && std::llabs(next) > std::llabs(position)) {
    std::snprintf(why, why_size, "position limit: %s position %lld%+lld would pass %lld", symbol,
                  static_cast<long long>(position), static_cast<long long>(signed_qty),
                  static_cast<long long>(kPositionLimit));
    return RISK_POSITION_LIMIT;
  }
  const std::int64_t notional = std::llabs(next) * price;
  const std::int64_t next_gross = gross - slot->notional[book] + notional;
  if (next_gross > kExposureLimit && next_gross > gross) {
    char now[32], limit[32];
    dollars(now, sizeof now, next_gross);
    dollars(limit, sizeof limit, kExposureLimit);
    std::snprintf(why, why_size, "exposure limit: gross exposure would be %s, over %s", now, limit);
    return RISK_EXPOSURE_LIMIT;
  }
  slot->position[book] = next;
  slot->notional[book] = notional;
  gross = next_gross;
  return RISK_OK;
}

std::int64_t position_of(int book, const char* symbol) {
  if (!valid(book, symbol)) return 0;
  std::lock_guard lock(mu);
  for (const Slot& s : slots) {
    if (std::strcmp(s.symbol, symbol) == 0) return s.position[book];
  }
  return 0;
}

std::int64_t gross_exposure() {
  std::lock_guard lock(mu);
  return gross;
}

std::int64_t exposure_limit() { return kExposureLimit; }

const risk_service kLimits = {&book_order, &position_of, &gross_exposure, &exposure_limit};

const ember_service_desc kServices[] = {{"limits", &kLimits}};

const ember_layer_descriptor kLayer = {
    EMBER_PLUGIN_ABI_VERSION,
    sizeof(ember_layer_descriptor),
    "risk",
    "1.0.0",
    kServices,
    sizeof kServices / sizeof kServices[0],
    nullptr,  // no init: the table starts empty with the mapping
    nullptr,  // no shutdown: it goes with the mapping
};

}  // namespace

extern "C" EMBER_PLUGIN_EXPORT const ember_layer_descriptor* EMBER_LAYER_ENTRY(
    const ember_host_api*) {
  return &kLayer;
}
