// counter_read — the second user of the counter layer: reads the count counter_inc raises,
// and shows that looking up a service the layer does not export yields NULL, not a crash.

#include <string>
#include <string_view>

#include "counter_service.h"
#include "ember/plugin.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

// The shared count.
Result<std::string> read_count(Context& ctx, std::string_view) {
  const auto* counter = ctx.service<counter_service>("counter", "counter");
  if (counter == nullptr) {
    return ember::plugin::fail("LayerMissing", "layer \"counter\" has no service \"counter\"");
  }
  return std::to_string(counter->get());
}

// Asks the declared layer for a service it does not export: "null" when the host says so.
Result<std::string> bogus(Context& ctx, std::string_view) {
  const void* nope = ctx.service<void>("counter", "nope");
  return std::string(nope == nullptr ? "null" : "not null");
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("counter_read").version("1.0.0");
  plugin.function<&read_count>("counter.read");
  plugin.function<&bogus>("counter.bogus");
  plugin.requires_layer("counter", "^1.0");
}
