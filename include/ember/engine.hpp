// engine.hpp — ember::Engine, the one public entry point.
//
// An Engine owns worker threads, a fiber pool, the function registry and the concurrency
// limits. Register handlers, resolve them once, invoke them sync, async or with a future:
//
//   ember::Engine engine{{.workers = 2}};
//   auto fn = engine.register_function("echo", {}, [](ember::Context&, std::string_view in)
//       -> ember::Result<std::string> { return std::string(in); }).value();
//   ember::Result<std::string> out = engine.invoke(fn, "hi");                 // inline
//   engine.invoke_async(fn, "hi", [](ember::Result<std::string> r) { ... });  // pool
//   engine.shutdown();                                                        // drains
//
// Thread safety: every member function may be called from any thread at once, including from
// inside handlers (where an invoke suspends the handler's fiber instead of blocking).
// Several engines may live in one process; they share nothing.
#pragma once

#include <absl/functional/any_invocable.h>
#include <absl/time/time.h>

#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "ember/context.hpp"
#include "ember/deploy.hpp"
#include "ember/event_queue.hpp"
#include "ember/events.hpp"
#include "ember/export.hpp"
#include "ember/function.hpp"
#include "ember/instance.hpp"
#include "ember/observe.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"
#include "ember/schedule.hpp"

namespace ember {

namespace detail {
class PluginHost;
class EventDispatcher;
class EventTimers;
class ScheduleTable;
class QueueMappings;
}  // namespace detail

// Receives the outcome of an invoke_async, exactly once, on a worker thread (or on the
// engine's timer thread for a timeout). Must not block for long.
using InvokeCallback = absl::AnyInvocable<void(Result<std::string>)>;

// Engine-wide counters (the observability issue grows this into full metrics).
struct EngineStats {
  std::uint64_t throttles = 0;            // invokes refused by a concurrency limit or a full queue
  std::uint64_t timeouts = 0;             // invocations (or queue waits) that passed their deadline
  std::uint64_t handler_errors = 0;       // handlers that returned an error or threw
  std::uint64_t overruns = 0;             // handlers that returned after their deadline
  std::int64_t running_overruns = 0;      // handlers past their deadline and still running now
  std::int64_t in_flight = 0;             // admitted invocations not yet finished
  std::int64_t queued = 0;                // async invokes waiting for a concurrency slot
  std::int64_t unreserved_available = 0;  // size of the unreserved pool
  std::int64_t plugins_loaded = 0;        // plugins loaded now
  std::int64_t layers_loaded = 0;         // layers loaded now
  std::uint64_t plugin_reloads = 0;       // successful reloads (explicit or watched)
  std::uint64_t plugin_load_failures = 0;  // loads and reloads refused or rolled back
  std::int64_t modules_draining = 0;       // old versions closed once their invocations end
  std::uint64_t modules_pinned = 0;        // shared objects still mapped after dlclose
};

class EMBER_EXPORT Engine final {
 public:
  // Starts the workers. Invalid options leave the engine refusing every call with
  // kInvalidArgument naming the field (see status()); Engine::create reports it up front.
  explicit Engine(EngineOptions options = {});
  static Result<std::unique_ptr<Engine>> create(EngineOptions options = {});
  // Shuts down (as shutdown() with a 30 s drain), then waits for every handler to return.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Ok, or why the options given to the constructor were refused.
  [[nodiscard]] Result<void> status() const;
  // The options the engine runs with (workers = 0 resolved to the number of CPUs).
  [[nodiscard]] const EngineOptions& options() const noexcept;
  // True once shutdown() has begun (or the destructor): new invokes get kShuttingDown.
  [[nodiscard]] bool shutting_down() const noexcept;

  // Registers a bytes handler. Names: 1-64 characters of [A-Za-z0-9._-], starting with a
  // letter or digit. Errors: kInvalidArgument (name, config field, reserved concurrency that
  // would leave less than min_unreserved_concurrency), kAlreadyExists, kShuttingDown.
  // Nothing is registered when an error is returned.
  Result<FunctionHandle> register_function(std::string_view name, FunctionConfig config,
                                           BytesHandler handler);
  // Registers a typed handler, callable as Result<Out>(Context&, const In&), for in-process
  // callers: values pass by reference, never serialised. Invoke it with invoke<Out>(fn, in);
  // a bytes invoke of it, or a typed invoke with other types, fails with kInvalidArgument.
  template <typename In, typename Out, typename F>
  Result<FunctionHandle> register_function(std::string_view name, FunctionConfig config,
                                           F&& handler);

  // Registers a bytes handler that runs on instances (ember/instance.hpp): each instance is
  // made by lifecycle.init, serves one invocation at a time, and reaches the handler as
  // Context::state<T>(). FunctionConfig's provisioned_concurrency (≤ reserved_concurrency),
  // init_timeout, idle_ttl, max_new_instances_per_second, snapshot_start and scratch_dir apply.
  // The snapshot (snapshot_start) and the provisioned instances are made before the function
  // is published; if one fails, the error is kInitFailed and nothing is registered (what was
  // made is shut down). Other errors as the stateless overload, and kInvalidArgument for a
  // lifecycle without init, or snapshot_start without clone.
  Result<FunctionHandle> register_function(std::string_view name, FunctionConfig config,
                                           Lifecycle lifecycle, BytesHandler handler);
  // The same for a typed handler.
  template <typename In, typename Out, typename F>
  Result<FunctionHandle> register_function(std::string_view name, FunctionConfig config,
                                           Lifecycle lifecycle, F&& handler);

  // ---- Execution environments (ember/instance.hpp) ----

  // Changes the provisioned concurrency of `function` ("name", or "name:version" /
  // "name:alias" for a plugin version) to n: an increase initialises the new instances now,
  // on this thread, before it returns; a decrease lets the surplus become on-demand (reaped
  // once idle past idle_ttl). Errors: kNotFound, kInvalidArgument (a function without
  // instances; n < 0; n > its reserved concurrency), kInitFailed (then the instances this call
  // made are shut down, and the provisioned count stays as it was), kShuttingDown.
  Result<void> set_provisioned_concurrency(std::string_view function, int n);
  // The instances of `function` (all its versions). kNotFound if there is no such function;
  // all zero for a stateless one.
  [[nodiscard]] Result<InstanceStats> instance_stats(std::string_view function) const;

  // Resolves "name", "name:$LATEST", "name:3" (a loaded version) or "name:alias". kNotFound
  // names what was asked for. The handle follows deploys (see FunctionHandle).
  [[nodiscard]] Result<FunctionHandle> function(std::string_view name) const;

  // ---- Plugins, versions and aliases (ember/deploy.hpp; the ABI is ember/plugin.h) ----

  // Loads a plugin: copies the file aside, dlopens the copy, validates its descriptor, loads
  // the layers it requires (once per engine), runs its functions' init, and publishes a
  // version of each function. Errors: kNotFound (no file, missing layer), kPluginInvalid
  // (not an ELF object, no entry symbol, another ABI version, a bad descriptor field, init
  // failed), kAlreadyExists (a plugin of that name, or a function name taken), kInvalidArgument
  // (a config value; a world-writable file). The message names the path and the field.
  // Nothing is loaded or registered when an error is returned.
  Result<PluginInfo> load_plugin(std::string_view path, const PluginOptions& options = {});
  // Loads `path` (empty: the path it was loaded from) as the next version of loaded plugin
  // `name`, then routes the plain names to it atomically; the old version drains and is
  // unloaded (unless an alias still points at it). If anything fails, the old version keeps
  // serving and the error says why. Errors: as load_plugin, and kNotFound for `name`.
  Result<PluginInfo> reload_plugin(std::string_view name, std::string_view path = {});
  // Removes the plugin's functions (invokes get kNotFound), drains them, shuts down their
  // instances, unloads it, and unloads layers no other plugin uses.
  Result<void> unload_plugin(std::string_view name);
  // The plugins loaded now.
  [[nodiscard]] std::vector<PluginInfo> plugins() const;
  // Reads what a plugin (or layer) file declares without loading it: the file is copied,
  // opened and its descriptor validated as load_plugin would, then closed. Its entry function
  // runs; no init, no layer, nothing published. Errors: as load_plugin's for the file itself.
  [[nodiscard]] Result<PluginManifest> inspect_plugin(std::string_view path,
                                                      const PluginOptions& options = {}) const;
  // Every live function, sorted by name, with its newest version's config, versions, aliases
  // and the plugin that deployed it.
  [[nodiscard]] std::vector<FunctionInfo> functions() const;

  // Points alias `alias` of `function` at one loaded version, or splits invokes between two.
  // Errors: kNotFound (function, version), kInvalidArgument (alias name, weight, a function
  // registered in C++ — it has only $LATEST).
  Result<void> set_alias(std::string_view function, std::string_view alias,
                         const AliasConfig& config);
  Result<void> delete_alias(std::string_view function, std::string_view alias);
  // Loaded versions of `function`, oldest first ("$LATEST" for a function registered in C++);
  // its aliases, sorted.
  [[nodiscard]] Result<std::vector<std::string>> versions(std::string_view function) const;
  [[nodiscard]] Result<std::vector<std::string>> aliases(std::string_view function) const;

  // Sync invoke. Inline dispatch runs the handler on this thread (in a fiber); pool dispatch
  // hands it to a worker and waits. Called from inside a handler, it is a nested invoke.
  // Errors: kNotFound, kInvalidArgument, kThrottled (names the limit), kPayloadTooLarge,
  // kTimeout, kHandlerFailed (handler error or exception), kRecursionLimit, kShuttingDown.
  [[nodiscard]] Result<std::string> invoke(FunctionHandle fn, std::string_view payload,
                                           const InvokeOptions& options = {});
  [[nodiscard]] Result<std::string> invoke(std::string_view name, std::string_view payload,
                                           const InvokeOptions& options = {});
  // Typed sync invoke of a function registered with register_function<In, Out>.
  template <typename Out, typename In>
  [[nodiscard]] Result<Out> invoke(FunctionHandle fn, const In& in,
                                   const InvokeOptions& options = {});

  // Async invoke, always pool-dispatched. Ok means the callback will be called exactly once;
  // an error (kNotFound, kInvalidArgument, kPayloadTooLarge, kQueueFull, kShuttingDown) means
  // it will not be. With no free slot the invoke waits in the function's FIFO for at most
  // max_queue_wait (then the callback gets kTimeout), separately from the execution timeout.
  Result<void> invoke_async(FunctionHandle fn, std::string_view payload, InvokeCallback callback,
                            const InvokeOptions& options = {});
  // The same, with a future. Immediate errors are in the future too.
  [[nodiscard]] std::future<Result<std::string>> invoke_future(FunctionHandle fn,
                                                               std::string_view payload,
                                                               const InvokeOptions& options = {});

  // ---- Events (ember/events.hpp): Lambda's "Event" invocation ----

  // Queues an event for `function` ("name", "name:alias", "name:3") and returns its id at once.
  // The function's EventConfig (retries, backoff, maximum age, destinations) applies, with
  // `options`' overrides. Errors: kNotFound, kInvalidArgument (an option, an event id),
  // kPayloadTooLarge (past max_async_payload), kQueueFull (max_queued_events not yet ended),
  // kShuttingDown. An error means the event was not accepted and will not run.
  Result<std::string> enqueue(std::string_view function, std::string_view payload,
                              const EventOptions& options = {});
  Result<std::string> enqueue(FunctionHandle fn, std::string_view payload,
                              const EventOptions& options = {});
  // Sets the event config of `function` (a name, no qualifier); events already queued keep
  // the config they were enqueued with. Errors: kNotFound (the function, a destination
  // function), kInvalidArgument naming the field (a range; a qualified name; a destination
  // with both a function and a callback, or that is the function itself).
  Result<void> set_event_config(std::string_view function, EventConfig config);
  // The function's event config (the defaults if never set). kNotFound.
  [[nodiscard]] Result<EventConfig> event_config(std::string_view function) const;
  // Replaces the engine-wide dead-letter and drain sinks.
  void set_event_sinks(EventSinks sinks);
  [[nodiscard]] EventStats event_stats() const;

  // ---- Schedules (ember/schedule.hpp) ----

  // Fires `function` as an event on `expression`: "rate(5 minutes)" or "cron(0/5 * * * ? *)",
  // EventBridge's syntax. The payload each fire gets is EventBridge's "Scheduled Event" JSON
  // with `detail` = `payload` (a JSON value; empty = {}) and `time` = the scheduled time.
  // Errors: kInvalidArgument (the expression, naming the position and token; the payload; an
  // option), kNotFound (function, time zone), kAlreadyExists (the name), kShuttingDown.
  Result<ScheduleInfo> schedule(std::string_view function, std::string_view expression,
                                std::string_view payload = {}, const ScheduleOptions& options = {});
  // Stops a schedule (an event it already fired runs on). kNotFound.
  Result<void> cancel_schedule(std::string_view name);
  // Every schedule, sorted by name.
  [[nodiscard]] std::vector<ScheduleInfo> schedules() const;

  // ---- Batch queue mappings (ember/event_queue.hpp) ----

  // Makes a queue the host pushes records into. Name as a function's. Errors: kInvalidArgument,
  // kAlreadyExists, kShuttingDown. The queue lives until the engine does.
  Result<std::shared_ptr<EventQueue>> create_queue(std::string_view name,
                                                   const QueueOptions& options = {});
  // Hands `queue`'s records to `function` in batches; returns the mapping's id. Errors:
  // kNotFound (queue, function), kInvalidArgument (a config field, named), kAlreadyExists (the
  // queue is mapped already: one mapping per queue keeps its order).
  Result<std::string> map_queue(std::string_view queue, std::string_view function,
                                const MappingConfig& config = {});
  // Stops a mapping: batches in flight finish; records left stay in the queue. kNotFound.
  Result<void> unmap_queue(std::string_view mapping_id);
  [[nodiscard]] std::vector<MappingInfo> mappings() const;

  // Stops admitting (new invokes get kShuttingDown), fails queued async invokes with
  // kShuttingDown, and waits up to `drain` for in-flight invocations. Callers still waiting at
  // the drain deadline are released with kShuttingDown; their handlers keep their slots until
  // they return (the destructor waits for that). Idempotent; thread-safe. Called from inside a
  // handler or a callback, it only stops admitting and returns (it cannot wait for its own
  // caller); the drain then happens in another shutdown() or in the destructor.
  // Events first: schedules stop, mappings stop taking records, enqueue is refused, and queued
  // events keep running until the drain deadline; what is left then goes to EventSinks::drain.
  void shutdown(absl::Duration drain = absl::Seconds(30));

  [[nodiscard]] EngineStats stats() const;

  // ---- Observability (ember/observe.hpp) ----

  // Every function's metrics and the engine's totals, summed from per-thread shards. Thread-safe
  // and lock-free against invokes (it takes the registration lock, not the invoke path's).
  [[nodiscard]] MetricsSnapshot metrics() const;
  // The spans recorded since the last call (EngineOptions::trace_sample_rate), oldest first.
  [[nodiscard]] std::vector<Span> take_spans();
  // Subscribes `observer` to the lifecycle events in `mask`; returns the subscription's id.
  // kInvalidArgument for a null observer or an empty mask. The engine holds the observer
  // until it is destroyed (a call in flight may still reach it just after unsubscribe).
  Result<std::uint64_t> subscribe(std::shared_ptr<LifecycleObserver> observer,
                                  LifecycleEventMask mask = kAllLifecycleEvents);
  // kNotFound if there is no such subscription.
  Result<void> unsubscribe(std::uint64_t subscription);

 private:
  friend class Context;
  Result<FunctionHandle> register_typed(std::string_view name, FunctionConfig config,
                                        detail::TypedHandler handler,
                                        const Lifecycle* lifecycle = nullptr);
  Result<void> invoke_typed(FunctionHandle fn, detail::TypedCall& call,
                            const InvokeOptions& options);
  // Stops schedules, mappings and enqueue, drains queued events; returns the drain deadline
  // (engine time) for the core's own drain, or nullopt if there was nothing to drain (then
  // the core drains for `drain` itself).
  std::optional<std::int64_t> shutdown_events(absl::Duration drain);
  void shutdown_all(absl::Duration drain, std::string_view reason);
  std::unique_ptr<detail::EngineCore> core_;
  std::unique_ptr<detail::PluginHost> plugins_;  // destroyed first: after core_ has drained
  // The events module; torn down explicitly in ~Engine (after the core has drained, since
  // callbacks of events in flight still arrive during the drain).
  std::unique_ptr<detail::EventTimers> timers_;
  std::unique_ptr<detail::EventDispatcher> events_;
  std::unique_ptr<detail::ScheduleTable> schedules_;
  std::unique_ptr<detail::QueueMappings> mappings_;
};

template <typename In, typename Out, typename F>
Result<FunctionHandle> Engine::register_function(std::string_view name, FunctionConfig config,
                                                 F&& handler) {
  static_assert(std::is_invocable_r_v<Result<Out>, F&, Context&, const In&>,
                "a typed handler is callable as Result<Out>(Context&, const In&)");
  detail::TypedHandler typed;
  typed.in_type = &typeid(In);
  typed.out_type = &typeid(Out);
  typed.call = [h = std::forward<F>(handler)](Context& ctx, const void* in, void* out) mutable {
    *static_cast<Result<Out>*>(out) = h(ctx, *static_cast<const In*>(in));
  };
  return register_typed(name, std::move(config), std::move(typed));
}

template <typename In, typename Out, typename F>
Result<FunctionHandle> Engine::register_function(std::string_view name, FunctionConfig config,
                                                 Lifecycle lifecycle, F&& handler) {
  static_assert(std::is_invocable_r_v<Result<Out>, F&, Context&, const In&>,
                "a typed handler is callable as Result<Out>(Context&, const In&)");
  detail::TypedHandler typed;
  typed.in_type = &typeid(In);
  typed.out_type = &typeid(Out);
  typed.call = [h = std::forward<F>(handler)](Context& ctx, const void* in, void* out) mutable {
    *static_cast<Result<Out>*>(out) = h(ctx, *static_cast<const In*>(in));
  };
  return register_typed(name, std::move(config), std::move(typed), &lifecycle);
}

template <typename Out, typename In>
Result<Out> Engine::invoke(FunctionHandle fn, const In& in, const InvokeOptions& options) {
  Result<Out> out = tl::unexpected<Error>(Error{ErrorCode::kInternal, "no result"});
  detail::TypedCall call{&typeid(In),
                         &typeid(Out),
                         &in,
                         &out,
                         &detail::set_typed_error<Out>,
                         &detail::typed_error_of<Out>};
  if (auto admitted = invoke_typed(fn, call, options); !admitted) {
    return tl::unexpected<Error>(std::move(admitted.error()));
  }
  return out;
}

}  // namespace ember
