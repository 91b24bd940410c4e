/* bad_layer.c — fixture: a layer "badlayer" built for a future ABI (abi_version one past
 * EMBER_PLUGIN_ABI_VERSION). The loader must refuse it, and with it every plugin requiring it
 * (fixture_needs_badlayer), naming both versions.
 */
#include "ember/plugin.h"

static const ember_layer_descriptor layer = {.abi_version = EMBER_PLUGIN_ABI_VERSION + 1,
                                             .struct_size = sizeof(ember_layer_descriptor),
                                             .name = "badlayer",
                                             .version = "1.0.0"};

EMBER_PLUGIN_EXPORT const ember_layer_descriptor* EMBER_LAYER_ENTRY(const ember_host_api* host) {
  (void)host;
  return &layer;
}
