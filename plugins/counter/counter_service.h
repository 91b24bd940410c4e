/* counter_service.h — the "counter" service of the counter layer (libcounter.so, layer
 * "counter" 1.2.0): one process-wide count shared by every plugin that uses the layer.
 *
 *   const counter_service* counter = ctx.service<counter_service>("counter", "counter");
 *   if (counter != NULL) counter->add(1);
 *
 * Both functions are thread-safe. Compiles as C and C++.
 */
#ifndef EMBER_PLUGINS_COUNTER_SERVICE_H_
#define EMBER_PLUGINS_COUNTER_SERVICE_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct counter_service {
  /* Adds delta to the count and returns the new count. */
  int64_t (*add)(int64_t delta);
  /* The current count. */
  int64_t (*get)(void);
} counter_service;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMBER_PLUGINS_COUNTER_SERVICE_H_ */
