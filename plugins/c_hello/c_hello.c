/* c_hello — a plugin in plain C99 against ember/plugin.h alone: static descriptors, handlers
 * that answer through the host table, a buffer the plugin allocates and frees itself, and a
 * function with instance state built by init and released by shutdown.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ember/plugin.h"

/* c.echo: the payload, as it came. */
static int echo(const ember_call* call) {
  call->host->respond(call->context, call->payload, call->payload_size);
  return 0;
}

/* c.upper: the payload with ASCII letters uppercased (bytes >= 0x80 untouched). respond()
 * copies, so the buffer is ours to free right after. */
static int upper(const ember_call* call) {
  char* out;
  size_t i;
  if (call->payload_size == 0) {
    call->host->respond(call->context, "", 0);
    return 0;
  }
  out = (char*)malloc(call->payload_size);
  if (out == NULL) {
    call->host->fail(call->context, "OutOfMemory", "c.upper: no memory for the response");
    return 1;
  }
  for (i = 0; i < call->payload_size; ++i) {
    const char c = call->payload[i];
    out[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
  }
  call->host->respond(call->context, out, call->payload_size);
  free(out);
  return 0;
}

/* c.who: "<function_name>@<function_version>", from the host. */
static int who(const ember_call* call) {
  char line[160]; /* a name has at most 64 characters; a version is a number or an alias */
  int n = snprintf(line, sizeof line, "%s@%s", call->host->function_name(call->context),
                   call->host->function_version(call->context));
  if (n < 0) {
    call->host->fail(call->context, "EncodingError", "c.who: snprintf failed");
    return 1;
  }
  if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
  call->host->respond(call->context, line, (size_t)n);
  return 0;
}

/* c.state: the instance counts its calls. */
typedef struct state {
  long calls;
} state;

static int state_init(ember_init_args* args) {
  state* s = (state*)malloc(sizeof *s);
  if (s == NULL) {
    snprintf(args->error, sizeof args->error, "c.state: no memory for the instance");
    return 1;
  }
  s->calls = 0;
  args->instance = s;
  return 0;
}

static void state_shutdown(void* instance) { free(instance); }

static int state_count(const ember_call* call) {
  state* s = (state*)call->instance;
  char line[32];
  /* An instance serves one invocation at a time, so no lock is needed; the GCC/clang builtin
   * keeps the increment safe for code that shares state across instances. */
  const long calls = __atomic_add_fetch(&s->calls, 1, __ATOMIC_RELAXED);
  const int n = snprintf(line, sizeof line, "%ld", calls);
  call->host->respond(call->context, line, (size_t)n);
  return 0;
}

/* Fields left out are zero: the host's defaults for a function's config. */
static const ember_function_desc echo_fn = {
    .struct_size = sizeof(ember_function_desc), .name = "c.echo", .handler = echo};
static const ember_function_desc upper_fn = {
    .struct_size = sizeof(ember_function_desc), .name = "c.upper", .handler = upper};
static const ember_function_desc who_fn = {
    .struct_size = sizeof(ember_function_desc), .name = "c.who", .handler = who};
static const ember_function_desc state_fn = {.struct_size = sizeof(ember_function_desc),
                                             .name = "c.state",
                                             .handler = state_count,
                                             .init = state_init,
                                             .shutdown = state_shutdown};

static const ember_function_desc* const functions[] = {&echo_fn, &upper_fn, &who_fn, &state_fn};

static const ember_plugin_descriptor plugin = {
    .abi_version = EMBER_PLUGIN_ABI_VERSION,
    .struct_size = sizeof(ember_plugin_descriptor),
    .name = "c_hello",
    .version = "1.0.0",
    .functions = functions,
    .function_count = sizeof functions / sizeof functions[0]};

EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY(const ember_host_api* host) {
  (void)host;
  return &plugin;
}
