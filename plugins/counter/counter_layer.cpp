// counter — a layer: one shared object loaded once per engine for all the plugins that
// require it, exporting the service "counter" (counter_service.h). The count is a single
// static in this object, which is the point of a layer: counter_inc and counter_read see the
// same number. A plain C++ layer: plugin.hpp has no layer wrapper, so this uses plugin.h.

#include <atomic>
#include <cstdint>

#include "counter_service.h"
#include "ember/plugin.h"

namespace {

// Constant-initialised and trivially destructible: no constructor or destructor runs at
// load or unload, so nothing pins the object.
std::atomic<std::int64_t> count{0};

std::int64_t add(std::int64_t delta) {
  return count.fetch_add(delta, std::memory_order_relaxed) + delta;
}

std::int64_t get() { return count.load(std::memory_order_relaxed); }

const counter_service kCounterService = {&add, &get};

const ember_service_desc kServices[] = {{"counter", &kCounterService}};

int init(const ember_host_api*, char*, std::size_t) { return 0; }

// Nothing to release: the count lives and dies with the mapping.
void shutdown() {}

const ember_layer_descriptor kLayer = {
    EMBER_PLUGIN_ABI_VERSION,
    sizeof(ember_layer_descriptor),
    "counter",
    "1.2.0",
    kServices,
    sizeof kServices / sizeof kServices[0],
    &init,
    &shutdown,
};

}  // namespace

extern "C" EMBER_PLUGIN_EXPORT const ember_layer_descriptor* EMBER_LAYER_ENTRY(
    const ember_host_api*) {
  return &kLayer;
}
