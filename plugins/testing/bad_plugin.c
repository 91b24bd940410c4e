/* bad_plugin.c — fixtures for the loader's bad-input tests: a valid plugin spoiled in exactly
 * one way per build. plugins/testing/CMakeLists.txt compiles this file once per fixture with
 * FIXTURE_NAME="fixture_<what>" and one FIXTURE_<WHAT> flag; without a flag the plugin is
 * valid: named FIXTURE_NAME, one function "<FIXTURE_NAME>.ok" that responds "ok".
 */
#include <stdio.h>

#include "ember/plugin.h"

#ifndef FIXTURE_NAME
#error "define FIXTURE_NAME to the fixture's target name"
#endif

/* The descriptor's header. */
#if defined(FIXTURE_ABI_V2)
#define ABI_VERSION (EMBER_PLUGIN_ABI_VERSION + 1)
#else
#define ABI_VERSION EMBER_PLUGIN_ABI_VERSION
#endif

#if defined(FIXTURE_SMALL_STRUCT)
#define STRUCT_SIZE 8
#else
#define STRUCT_SIZE sizeof(ember_plugin_descriptor)
#endif

#if defined(FIXTURE_NULL_NAME)
#define PLUGIN_NAME NULL
#elif defined(FIXTURE_STEALS_HELLO)
#define PLUGIN_NAME "thief"
#else
#define PLUGIN_NAME FIXTURE_NAME
#endif

/* The function's name. */
#if defined(FIXTURE_EMPTY_FUNCTION_NAME)
#define FUNCTION_NAME ""
#elif defined(FIXTURE_DUPLICATE_FUNCTION)
#define FUNCTION_NAME "dup.fn"
#elif defined(FIXTURE_BAD_CONFIG)
#define FUNCTION_NAME "bad.config"
#elif defined(FIXTURE_INIT_FAILS)
#define FUNCTION_NAME "init.fails"
#elif defined(FIXTURE_STEALS_HELLO)
#define FUNCTION_NAME "hello.greet" /* the hello plugin's */
#else
#define FUNCTION_NAME FIXTURE_NAME ".ok"
#endif

#if !defined(FIXTURE_NULL_HANDLER)
static int ok(const ember_call* call) {
  call->host->respond(call->context, "ok", 2);
  return 0;
}
#endif

#if defined(FIXTURE_INIT_FAILS)
static int init_fails(ember_init_args* args) {
  snprintf(args->error, sizeof args->error, "database unreachable");
  return 1;
}
#endif

static const ember_function_desc function = {
    .struct_size = sizeof(ember_function_desc),
    .name = FUNCTION_NAME,
#if !defined(FIXTURE_NULL_HANDLER)
    .handler = ok,
#endif
#if defined(FIXTURE_INIT_FAILS)
    .init = init_fails,
#endif
#if defined(FIXTURE_BAD_CONFIG)
    .memory_mb = 50, /* valid: 0 or 128..10240 */
#endif
};

#if defined(FIXTURE_DUPLICATE_FUNCTION)
/* A second, distinct descriptor under the same name. */
static const ember_function_desc same_name = {
    .struct_size = sizeof(ember_function_desc), .name = FUNCTION_NAME, .handler = ok};
static const ember_function_desc* const functions[] = {&function, &same_name};
#else
static const ember_function_desc* const functions[] = {&function};
#endif

/* The layer it requires, if any. */
#if defined(FIXTURE_MISSING_LAYER)
#define LAYER_NAME "nope"
#define LAYER_VERSION "^1"
#elif defined(FIXTURE_LAYER_TOO_OLD)
#define LAYER_NAME "counter" /* libcounter.so is 1.2.0 */
#define LAYER_VERSION ">=2.0"
#elif defined(FIXTURE_NEEDS_BADLAYER)
#define LAYER_NAME "badlayer" /* libfixture_layer_bad_abi.so */
#define LAYER_VERSION ""
#endif

#if defined(LAYER_NAME)
static const ember_layer_requirement layers[] = {{LAYER_NAME, LAYER_VERSION}};
#define LAYER_LIST layers
#define LAYER_COUNT (sizeof layers / sizeof layers[0])
#else
#define LAYER_LIST NULL
#define LAYER_COUNT 0
#endif

static const ember_plugin_descriptor plugin = {
    .abi_version = ABI_VERSION,
    .struct_size = STRUCT_SIZE,
    .name = PLUGIN_NAME,
    .version = "1.0.0",
    .functions = functions,
    .function_count = sizeof functions / sizeof functions[0],
    .layers = LAYER_LIST,
    .layer_count = LAYER_COUNT};

EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY(const ember_host_api* host) {
  (void)host;
#if defined(FIXTURE_ENTRY_NULL)
  (void)plugin;
  return NULL; /* refuses to load */
#else
  return &plugin;
#endif
}
