/* plugin.h — the plugin ABI of ember: the whole contract between a host and a handler plugin.
 *
 * A plugin is a shared object (built as a MODULE library, see ember_add_plugin in
 * cmake/EmberPlugin.cmake) that includes only this header, or the header-only C++ wrapper
 * ember/plugin.hpp, and exports exactly one symbol: EMBER_PLUGIN_ENTRY. It links nothing of
 * ember: everything it may ask of the host comes through the ember_host_api table.
 *
 *   static int greet(const ember_call* call) {
 *     call->host->respond(call->context, "hello", 5);
 *     return 0;
 *   }
 *   static const ember_function_desc greet_fn = {
 *       .struct_size = sizeof(ember_function_desc), .name = "hello.greet", .handler = greet};
 *   static const ember_function_desc* const functions[] = {&greet_fn};
 *   static const ember_plugin_descriptor plugin = {
 *       .abi_version = EMBER_PLUGIN_ABI_VERSION, .struct_size = sizeof(ember_plugin_descriptor),
 *       .name = "hello", .version = "1.0.0", .functions = functions, .function_count = 1};
 *   EMBER_PLUGIN_EXPORT const ember_plugin_descriptor* EMBER_PLUGIN_ENTRY(
 *       const ember_host_api* host) { (void)host; return &plugin; }
 *
 * A layer is a shared object loaded once per engine for every plugin that declares it. It
 * exports EMBER_LAYER_ENTRY and named services: C structs of function pointers (vtables) that
 * plugins look up with ember_host_api.service().
 *
 * Compatibility: every struct starts with (or carries) struct_size, so a later ABI may append
 * fields; the host reads only the fields the size covers and refuses a struct too small for
 * the fields this ABI requires. A different EMBER_PLUGIN_ABI_VERSION is refused outright.
 * Strings are NUL-terminated UTF-8 and must outlive the loaded plugin (string literals do).
 * Compiles as C99 and as C++.
 */
#ifndef EMBER_PLUGIN_H_
#define EMBER_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. A plugin or layer reporting another version is refused with a
 * message naming both. */
#define EMBER_PLUGIN_ABI_VERSION 1

/* The entry symbols, versioned by name too: a plugin of an incompatible future ABI exports
 * another name, and is refused as "missing entry symbol" naming both. */
#define EMBER_PLUGIN_ENTRY ember_plugin_entry_v1
#define EMBER_LAYER_ENTRY ember_layer_entry_v1
#define EMBER_PLUGIN_ENTRY_NAME "ember_plugin_entry_v1"
#define EMBER_LAYER_ENTRY_NAME "ember_layer_entry_v1"

#define EMBER_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Log levels for ember_host_api.log (the host's LogLevel). */
enum { EMBER_LOG_DEBUG = 0, EMBER_LOG_INFO = 1, EMBER_LOG_WARN = 2, EMBER_LOG_ERROR = 3 };

/* Dispatch of a function (ember::Dispatch): the host's default (inline), inline, or pool. */
enum { EMBER_DISPATCH_DEFAULT = 0, EMBER_DISPATCH_INLINE = 1, EMBER_DISPATCH_POOL = 2 };

/* Status codes returned by host functions (0 is success). They mirror ember::ErrorCode. */
enum {
  EMBER_OK = 0,
  EMBER_ERR_NOT_FOUND = 1,
  EMBER_ERR_ALREADY_EXISTS = 2,
  EMBER_ERR_INVALID_ARGUMENT = 3,
  EMBER_ERR_THROTTLED = 4,
  EMBER_ERR_QUEUE_FULL = 5,
  EMBER_ERR_TIMEOUT = 6,
  EMBER_ERR_CANCELLED = 7,
  EMBER_ERR_HANDLER_FAILED = 8,
  EMBER_ERR_PAYLOAD_TOO_LARGE = 9,
  EMBER_ERR_RECURSION_LIMIT = 10,
  EMBER_ERR_SHUTTING_DOWN = 11,
  EMBER_ERR_NOT_IN_HANDLER = 12,
  EMBER_ERR_INTERNAL = 13,
  EMBER_ERR_PLUGIN_INVALID = 14,
  EMBER_ERR_INIT_FAILED = 15,
  EMBER_ERR_OUT_OF_MEMORY = 16
};

/* One running invocation, as the host sees it. Opaque; valid only during the handler call it
 * was passed to, and only on the thread (fiber) that runs it. */
typedef struct ember_context ember_context;
/* One loaded plugin, as the host sees it (for service lookups). Opaque. */
typedef struct ember_plugin_ref ember_plugin_ref;

/* Receives bytes from the host (a nested invoke's response or error message). Called at most
 * once, before the host function that takes it returns; the bytes are valid only during the
 * call. */
typedef void (*ember_bytes_sink)(void* user, const char* data, size_t size);

/* What the host offers a plugin. Passed to the entry function, and in every ember_call and
 * ember_init_args. Every function pointer is non-NULL. The table is static in the host: it
 * outlives every plugin. Functions taking a context may be called only on the handler's
 * thread, during the call. */
typedef struct ember_host_api {
  uint32_t abi_version; /* EMBER_PLUGIN_ABI_VERSION of the host */
  uint32_t struct_size; /* sizeof(ember_host_api) of the host */

  /* Sets the response of the invocation (copied). The last call wins; no call: empty. */
  void (*respond)(ember_context* ctx, const char* data, size_t size);
  /* Sets the error the invocation fails with, when its handler returns nonzero: a type
   * (Lambda's errorType, e.g. "ValidationError"; NULL = "PluginError") and a message. */
  void (*fail)(ember_context* ctx, const char* error_type, const char* message);
  /* A line through the host's log sink, tagged with the request id and function. ctx may be
   * NULL outside an invocation (entry, init, shutdown): the line is tagged with the plugin. */
  void (*log)(ember_context* ctx, int level, const char* message, size_t size);
  /* Nanoseconds before the invocation's deadline (0 once past it). */
  int64_t (*remaining_ns)(ember_context* ctx);
  /* Nonzero once the invocation should stop (deadline passed, caller gone, shutdown). */
  int (*cancelled)(ember_context* ctx);
  /* The request id (36 characters, UUID-shaped), function name and version; valid for the
   * whole call. */
  const char* (*request_id)(ember_context* ctx);
  const char* (*function_name)(ember_context* ctx);
  const char* (*function_version)(ember_context* ctx);
  /* Nested sync invoke of `name` ("fn", "fn:3", "fn:alias"): suspends this fiber, not the
   * thread. On EMBER_OK `sink` gets the response; otherwise the error message. */
  int (*invoke)(ember_context* ctx, const char* name, const char* payload, size_t size,
                ember_bytes_sink sink, void* user);
  /* Suspends this fiber for ns nanoseconds (other invocations run meanwhile). EMBER_ERR_TIMEOUT
   * early if the deadline comes first. */
  int (*sleep_ns)(ember_context* ctx, int64_t ns);
  /* The service `service` of layer `layer`, which the plugin must declare in its descriptor:
   * the layer's vtable, or NULL (undeclared layer, unknown service). Valid from the plugin's
   * first init until its last shutdown. */
  const void* (*service)(ember_plugin_ref* plugin, const char* layer, const char* service);
} ember_host_api;

/* One call of a handler. */
typedef struct ember_call {
  uint32_t struct_size;
  const ember_host_api* host;
  ember_context* context;
  ember_plugin_ref* plugin;
  void* instance; /* the state of the instance serving this call, as the function's init
                   * stored it (NULL without init); no other call uses it meanwhile */
  const char* payload;
  size_t payload_size;
} ember_call;

/* A handler: 0 on success (the response is what host->respond set), nonzero on failure (the
 * error is what host->fail set, else a generic one naming the code). Must not throw or
 * longjmp across this boundary. */
typedef int (*ember_handler_fn)(const ember_call* call);

/* What a function's init gets: where to put one instance's state and why it failed. Valid
 * during the init call only. */
typedef struct ember_init_args {
  uint32_t struct_size;
  const ember_host_api* host;
  ember_plugin_ref* plugin;
  const char* function_name;
  const char* function_version;
  void* instance;  /* out: handed to the handler and to shutdown */
  char error[256]; /* out: why init failed, when it returns nonzero (NUL-terminated) */
} ember_init_args;

/* One function of a plugin. Zero in a config field means "the host's default". */
typedef struct ember_function_desc {
  uint32_t struct_size;     /* sizeof(ember_function_desc) */
  const char* name;         /* 1-64 of [A-Za-z0-9._-], unique in the engine */
  ember_handler_fn handler; /* required */
  /* Optional: builds one instance (its state, stored in args->instance); 0 on success. A
   * function with init runs on instances (Lambda's execution environments): an instance
   * serves ONE invocation at a time, so its state needs no locking, and several may exist at
   * once, one per concurrent invocation. One is made when the plugin is loaded, to validate
   * the version (a load or reload whose init fails is refused; the old version keeps serving),
   * and then serves warm; more are made on demand, each a cold start of the invocation that
   * found none idle (that invocation fails, EMBER_ERR_INIT_FAILED, if init does). An
   * instance is reused warm; it is discarded (shut down) after an invocation on it timed out,
   * shut down after idling past the function's idle_ttl (5 minutes by default), and shut down
   * when its version is unloaded. init may run on any thread (the loading thread, a worker,
   * the invoking thread), for two instances at once: what instances share (globals) must be
   * thread-safe. An init running past the function's init_timeout (10 s by default) fails.
   * An init that fails releases what it made itself (shutdown is not called for it). */
  int (*init)(ember_init_args* args);
  /* Optional: releases one instance's state; runs exactly once per instance init made, on
   * any thread, never while the instance serves an invocation. */
  void (*shutdown)(void* instance);
  int64_t timeout_ms;           /* 0: 3000 */
  int32_t memory_mb;            /* 0: 128; else 128..10240 */
  int32_t reserved_concurrency; /* 0: none (the unreserved pool); else >= 1 */
  int32_t dispatch;             /* EMBER_DISPATCH_* */
  uint32_t stack_kib;           /* 0: 256; else 16..1048576 */
} ember_function_desc;

/* A layer a plugin needs, and which versions will do. Constraint syntax (semver-like,
 * MAJOR[.MINOR[.PATCH]]): "" or "*" any; "1.2" or "^1.2" same major, at least 1.2;
 * "~1.2" same major.minor, at least 1.2.0; "=1.2.3" exactly; ">=1.2", ">1.2", "<2", "<=2.1";
 * comparisons joined by commas all hold (">=1.2,<3"). */
typedef struct ember_layer_requirement {
  const char* name;
  const char* version;
} ember_layer_requirement;

typedef struct ember_plugin_descriptor {
  uint32_t abi_version; /* EMBER_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(ember_plugin_descriptor) */
  const char* name;     /* the plugin's name: what reload_plugin and unload_plugin take */
  const char* version;  /* free-form, for people (e.g. "1.4.2") */
  const ember_function_desc* const* functions;
  size_t function_count; /* at least 1 */
  const ember_layer_requirement* layers;
  size_t layer_count;
} ember_plugin_descriptor;

/* A named service of a layer: a pointer to the layer's vtable (a struct of function pointers
 * the layer's header defines for its users). */
typedef struct ember_service_desc {
  const char* name;
  const void* vtable;
} ember_service_desc;

typedef struct ember_layer_descriptor {
  uint32_t abi_version; /* EMBER_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(ember_layer_descriptor) */
  const char* name;     /* must equal the name plugins require it by */
  const char* version;  /* MAJOR.MINOR.PATCH: matched against plugins' constraints */
  const ember_service_desc* services;
  size_t service_count;
  /* Optional: runs once after loading, before any plugin uses the layer; 0 on success, else
   * a message in error[0..error_size). */
  int (*init)(const ember_host_api* host, char* error, size_t error_size);
  /* Optional: runs once before unloading, after the last plugin using it is gone. */
  void (*shutdown)(void);
} ember_layer_descriptor;

/* The entry functions. Called once per load, on the loading thread; they return a descriptor
 * that stays valid until the object is unloaded, or NULL to refuse loading. */
typedef const ember_plugin_descriptor* (*ember_plugin_entry_fn)(const ember_host_api* host);
typedef const ember_layer_descriptor* (*ember_layer_entry_fn)(const ember_host_api* host);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* EMBER_PLUGIN_H_ */
