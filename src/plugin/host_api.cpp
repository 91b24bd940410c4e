// The host side of the plugin ABI: the ember_host_api table and the call of a plugin handler.
//
// An ember_context* handed to a plugin is a CallState* of the call in progress (on the
// handler's fiber's stack); it carries the engine's Context and collects the response or
// error the plugin sets.
#include <string>

#include "core/str_cat.hpp"
#include "plugin/plugin_host.hpp"

namespace ember::detail {

namespace {

struct CallState {
  Context* ctx;
  std::string* response;  // the invoke's result, constructed in place by call_plugin's caller
  std::string error;      // "Type: message", set by fail()
  bool failed = false;
};

CallState& state(ember_context* c) noexcept { return *reinterpret_cast<CallState*>(c); }

thread_local PluginHost* tls_lifecycle_host = nullptr;
thread_local std::string_view tls_lifecycle_plugin;

LogLevel to_level(int level) noexcept {
  switch (level) {
    case EMBER_LOG_DEBUG:
      return LogLevel::kDebug;
    case EMBER_LOG_WARN:
      return LogLevel::kWarn;
    case EMBER_LOG_ERROR:
      return LogLevel::kError;
    default:
      return LogLevel::kInfo;
  }
}

void host_respond(ember_context* c, const char* data, size_t size) {
  // Construct and move-assign: both inline (short responses stay in the string's own buffer);
  // assign() would be an out-of-line call into libstdc++.
  *state(c).response = data != nullptr ? std::string(data, size) : std::string();
}

void host_fail(ember_context* c, const char* type, const char* message) {
  CallState& s = state(c);
  s.failed = true;
  s.error = cat(type != nullptr && *type != '\0' ? type : "PluginError", ": ",
                message != nullptr ? message : "");
}

// The error of a handler that returned `rc` != 0 (cold).
[[gnu::cold, gnu::noinline]] Error plugin_failed(const ModuleFunction& f, Context& ctx,
                                                 const CallState& s, int rc) {
  const std::string said = s.failed ? s.error : cat("PluginError: handler returned ", rc);
  // A plugin that gives up because its deadline passed or its caller went away (its sleep or
  // nested invoke said so) timed out or was cancelled, as a C++ handler returning that error
  // would have: the ABI's fail() carries no code, so the Context says which.
  if (auto live = ctx.check(); !live) {
    return Error{live.error().code,
                 cat(live.error().message, " (the handler returned: ", said, ")")};
  }
  return Error{ErrorCode::kHandlerFailed, cat("function '", f.name, "' failed: ", said)};
}

void host_log(ember_context* c, int level, const char* message, size_t size) {
  const std::string_view text(message != nullptr ? message : "", message != nullptr ? size : 0);
  if (c != nullptr) {
    state(c).ctx->log(to_level(level), text);
  } else if (tls_lifecycle_host != nullptr) {
    tls_lifecycle_host->core().log(to_level(level), cat("plugin:", tls_lifecycle_plugin), "", text,
                                   LogKind::kHandler);
  } else {
    std::string line = cat("INFO\t-\tplugin\t", text, "\n");
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

int64_t host_remaining_ns(ember_context* c) {
  return absl::ToInt64Nanoseconds(state(c).ctx->remaining());
}

int host_cancelled(ember_context* c) { return state(c).ctx->cancelled() ? 1 : 0; }

// The three below are NUL-terminated: a request id is formatted into a 37-byte buffer, and
// names and versions are std::strings of the function's record.
const char* host_request_id(ember_context* c) { return state(c).ctx->request_id().data(); }
const char* host_function_name(ember_context* c) { return state(c).ctx->function_name().data(); }
const char* host_function_version(ember_context* c) {
  return state(c).ctx->function_version().data();
}

int host_invoke(ember_context* c, const char* name, const char* payload, size_t size,
                ember_bytes_sink sink, void* user) {
  if (name == nullptr) {
    if (sink != nullptr) sink(user, "invoke: function name is NULL", 29);
    return EMBER_ERR_INVALID_ARGUMENT;
  }
  Result<std::string> r = state(c).ctx->invoke(
      std::string_view(name), std::string_view(payload != nullptr ? payload : "", size));
  if (r) {
    if (sink != nullptr) sink(user, r->data(), r->size());
    return EMBER_OK;
  }
  if (sink != nullptr) sink(user, r.error().message.data(), r.error().message.size());
  return static_cast<int>(r.error().code);
}

int host_sleep_ns(ember_context* c, int64_t ns) {
  auto r = state(c).ctx->sleep_for(absl::Nanoseconds(ns));
  return r ? EMBER_OK : static_cast<int>(r.error().code);
}

const void* host_service(ember_plugin_ref* plugin, const char* layer, const char* service) {
  if (plugin == nullptr || layer == nullptr || service == nullptr) return nullptr;
  auto* m = reinterpret_cast<Module*>(plugin);
  return m->host->service(*m, layer, service);
}

constexpr ember_host_api kHostApi = {
    EMBER_PLUGIN_ABI_VERSION,
    sizeof(ember_host_api),
    &host_respond,
    &host_fail,
    &host_log,
    &host_remaining_ns,
    &host_cancelled,
    &host_request_id,
    &host_function_name,
    &host_function_version,
    &host_invoke,
    &host_sleep_ns,
    &host_service,
};

}  // namespace

const ember_host_api& host_api() noexcept { return kHostApi; }

namespace {

Result<std::string> call_plugin(Module& m, ModuleFunction& f, Context& ctx,
                                std::string_view payload) {
  // Returned by name on every path: the response is written straight into the caller's
  // Result (which the engine constructs in the invoker's frame), never moved.
  Result<std::string> out;  // an empty response until the plugin sets one
  CallState s{&ctx, &*out, {}, false};
  // A function with init runs on an instance of its own for this call (the engine took it
  // warm or made it); one without has none, and skips the lookup.
  const ember_call call{sizeof(ember_call),
                        &kHostApi,
                        reinterpret_cast<ember_context*>(&s),
                        reinterpret_cast<ember_plugin_ref*>(&m),
                        f.init != nullptr ? ctx.instance() : nullptr,
                        payload.data(),
                        payload.size()};
  // A C++ exception that escapes the plugin (it should not) is caught by the engine where the
  // handler's fiber starts and reported with its type, like any handler's.
  const int rc = f.handler(&call);
  if (rc != 0) [[unlikely]]
    out = tl::unexpected<Error>(plugin_failed(f, ctx, s, rc));
  return out;
}

}  // namespace

BytesHandler plugin_handler(Module& m, ModuleFunction& f) {
  // Defined here, beside call_plugin, so that the call inlines into the handler.
  return [module = &m, fn = &f](Context& ctx, std::string_view in) {
    return call_plugin(*module, *fn, ctx, in);
  };
}

LifecycleScope::LifecycleScope(PluginHost* host, std::string_view plugin) noexcept
    : saved_host_(tls_lifecycle_host), saved_plugin_(tls_lifecycle_plugin) {
  tls_lifecycle_host = host;
  tls_lifecycle_plugin = plugin;
}

LifecycleScope::~LifecycleScope() {
  tls_lifecycle_host = saved_host_;
  tls_lifecycle_plugin = saved_plugin_;
}

}  // namespace ember::detail
