// counter_inc — a plugin using the counter layer: it declares the layer with a version
// constraint and calls the layer's service through the host. Its increments are seen by
// counter_read, a separate plugin, because both reach the one copy of the layer's state.

#include <string>
#include <string_view>

#include "counter_service.h"
#include "ember/plugin.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::Result;

// Adds one to the shared count and answers with the new count.
Result<std::string> inc(Context& ctx, std::string_view) {
  const auto* counter = ctx.service<counter_service>("counter", "counter");
  if (counter == nullptr) {
    return ember::plugin::fail("LayerMissing", "layer \"counter\" has no service \"counter\"");
  }
  return std::to_string(counter->add(1));
}

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("counter_inc").version("1.0.0");
  plugin.function<&inc>("counter.inc");
  plugin.requires_layer("counter", "^1.0");
}
