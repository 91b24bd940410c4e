/* instances.c — fixture: a stateful C plugin that makes its instances visible, for the tests
 * of plugin functions on execution environments (one instance per concurrent invocation,
 * reused warm, discarded after a timeout, shut down once each at unload).
 *
 * inst.work: each instance has a number (1, 2, ... in the order init made them, counted per
 * loaded copy of this object) and counts its calls. init logs "inst <n> up for <function>
 * v<version>" and shutdown "inst <n> down after <calls> calls" through the host (NULL
 * context). The handler logs "inst <n> serving call <calls>", then sleeps for the number of
 * milliseconds in its payload (none if empty) through the host, and answers "<n>:<calls>"; a
 * sleep cut short by the deadline fails the call ("Timeout"). init refuses the third instance
 * ("instance 3 refused"), so that a cold start whose init fails can be seen; built with
 * FIXTURE_REFUSE_FIRST (libfixture_instances_refused.so), it refuses the first, so that the
 * load or reload that makes it fails. Its timeout is 60 s: tests move the clock in small
 * steps while its calls sleep, and a slow machine may need many.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ember/plugin.h"

typedef struct instance {
  const ember_host_api* host;
  long number;
  long calls; /* one invocation at a time: no atomics needed */
} instance;

/* Instances made by this copy of the object; inits may run on several threads at once. */
static long made = 0;

static void log_line(const ember_host_api* host, ember_context* ctx, const char* line, int n) {
  if (n < 0) return;
  host->log(ctx, EMBER_LOG_INFO, line, (size_t)n);
}

static int work_init(ember_init_args* args) {
  char line[160];
  const long number = __atomic_add_fetch(&made, 1, __ATOMIC_RELAXED);
  instance* s;
#ifdef FIXTURE_REFUSE_FIRST
  const long refused = 1;
#else
  const long refused = 3;
#endif
  if (number == refused) {
    snprintf(args->error, sizeof args->error, "instance %ld refused", number);
    return 1;
  }
  s = (instance*)malloc(sizeof *s);
  if (s == NULL) {
    snprintf(args->error, sizeof args->error, "no memory for the instance");
    return 1;
  }
  s->host = args->host;
  s->number = number;
  s->calls = 0;
  args->instance = s;
  log_line(args->host, NULL, line,
           snprintf(line, sizeof line, "inst %ld up for %s v%s", number, args->function_name,
                    args->function_version));
  return 0;
}

static void work_shutdown(void* state) {
  instance* s = (instance*)state;
  char line[96];
  log_line(s->host, NULL, line,
           snprintf(line, sizeof line, "inst %ld down after %ld calls", s->number, s->calls));
  free(s);
}

static int work(const ember_call* call) {
  instance* s = (instance*)call->instance;
  char line[96];
  long ms = 0;
  size_t i;
  for (i = 0; i < call->payload_size; ++i) {
    const char c = call->payload[i];
    if (c < '0' || c > '9') {
      call->host->fail(call->context, "ValidationError", "payload: milliseconds to sleep");
      return 1;
    }
    ms = ms * 10 + (c - '0');
  }
  s->calls++;
  log_line(call->host, call->context, line,
           snprintf(line, sizeof line, "inst %ld serving call %ld", s->number, s->calls));
  if (ms > 0 && call->host->sleep_ns(call->context, (int64_t)ms * 1000000) != EMBER_OK) {
    call->host->fail(call->context, "Timeout", "deadline reached while sleeping");
    return 1;
  }
  call->host->respond(call->context, line,
                      (size_t)snprintf(line, sizeof line, "%ld:%ld", s->number, s->calls));
  return 0;
}

static const ember_function_desc work_fn = {.struct_size = sizeof(ember_function_desc),
                                            .name = "inst.work",
                                            .handler = work,
                                            .init = work_init,
                                            .shutdown = work_shutdown,
                                            .timeout_ms = 60000,
                                            .dispatch = EMBER_DISPATCH_POOL};

static const ember_function_desc* const functions[] = {&work_fn};

static const ember_plugin_descriptor plugin = {
    .abi_version = EMBER_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ember_plugin_descriptor),
    .name = "fixture_instances",
    .version = "1.0.0",
    .functions = functions,
    .function_count = sizeof functions / sizeof functions[0]};

EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY(const ember_host_api* host) {
  (void)host;
  return &plugin;
}
