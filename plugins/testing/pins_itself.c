/* pins_itself.c — fixture: a valid plugin (plugin "pinned", function pinned.ok) whose init
 * marks its own shared object RTLD_NODELETE, as a thread_local with a destructor or a
 * STB_GNU_UNIQUE symbol would pin it. dlclose then leaves it mapped, and the host must say so
 * (a log line and EngineStats::modules_pinned) instead of believing it gone.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ember/plugin.h>
#include <stdio.h>

static int ok(const ember_call* call) {
  call->host->respond(call->context, "ok", 2);
  return 0;
}

static int pin_myself(ember_init_args* args) {
  Dl_info info;
  if (dladdr((void*)&pin_myself, &info) == 0 || info.dli_fname == NULL) {
    snprintf(args->error, sizeof args->error, "dladdr found no object for this plugin");
    return 1;
  }
  /* RTLD_NOLOAD: take another reference to the mapping we are in, marked never to unload. */
  if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) == NULL) {
    snprintf(args->error, sizeof args->error, "dlopen(NODELETE) failed: %s", dlerror());
    return 1;
  }
  return 0;
}

static const ember_function_desc ok_fn = {.struct_size = sizeof(ember_function_desc),
                                          .name = "pinned.ok",
                                          .handler = ok,
                                          .init = pin_myself};
static const ember_function_desc* const functions[] = {&ok_fn};
static const ember_plugin_descriptor descriptor = {.abi_version = EMBER_PLUGIN_ABI_VERSION,
                                                   .struct_size = sizeof(ember_plugin_descriptor),
                                                   .name = "pinned",
                                                   .version = "1.0.0",
                                                   .functions = functions,
                                                   .function_count = 1};

EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY(const ember_host_api* host) {
  (void)host;
  return &descriptor;
}
