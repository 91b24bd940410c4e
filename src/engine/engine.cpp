// ember::Engine: the public facade over detail::EngineCore.
#include "ember/engine.hpp"

#include <algorithm>

#include "core/engine_core.hpp"
#include "events/batch_mapping.hpp"
#include "events/dispatcher.hpp"
#include "events/event_timers.hpp"
#include "events/schedules.hpp"
#include "plugin/plugin_host.hpp"

namespace ember {

std::string_view FunctionHandle::name() const noexcept {
  return route_ != nullptr ? std::string_view(route_->entry->name) : std::string_view();
}

std::string_view FunctionHandle::qualifier() const noexcept {
  return route_ != nullptr ? std::string_view(route_->qualifier) : std::string_view();
}

std::string_view FunctionHandle::version() const noexcept {
  if (route_ == nullptr) return {};
  const detail::FunctionRecord* r = route_->primary.load(std::memory_order_acquire);
  return r != nullptr ? std::string_view(r->version) : std::string_view();
}

Engine::Engine(EngineOptions options)
    : core_(std::make_unique<detail::EngineCore>(std::move(options))),
      plugins_(std::make_unique<detail::PluginHost>(*core_)) {
  core_->set_engine(this);
  timers_ = std::make_unique<detail::EventTimers>(core_->time());
  // Idle instances are reaped on the events' timer thread (on the engine's clock).
  core_->set_reaper([this](detail::FunctionEnv* env, std::int64_t when) {
    timers_->at(when, [this, env] { env->reap(core_->time().now()); });
  });
  events_ = std::make_unique<detail::EventDispatcher>(*core_, *this, *timers_);
  schedules_ = std::make_unique<detail::ScheduleTable>(*core_, *events_, *timers_);
  mappings_ = std::make_unique<detail::QueueMappings>(*core_, *events_, *timers_);
}

Result<std::unique_ptr<Engine>> Engine::create(EngineOptions options) {
  auto engine = std::make_unique<Engine>(std::move(options));
  if (auto ok = engine->status(); !ok) return tl::unexpected<Error>(std::move(ok.error()));
  return engine;
}

Engine::~Engine() {
  // Plugin code may only be unmapped once no handler runs it: drain (events first), wait for
  // handlers past their deadline, hand what events are left to the drain sink, stop the
  // events thread, then unload plugins and layers, then stop the workers.
  shutdown_all(absl::Seconds(30), "engine destroyed");
  core_->wait_quiescent();
  events_->finish();
  timers_->stop();
  mappings_.reset();
  schedules_.reset();
  events_.reset();
  plugins_.reset();
}

Result<void> Engine::status() const {
  if (core_->init_error()) return tl::unexpected<Error>(*core_->init_error());
  return {};
}

Result<FunctionHandle> Engine::register_function(std::string_view name, FunctionConfig config,
                                                 BytesHandler handler) {
  return core_->register_function(name, std::move(config), std::move(handler), {});
}

Result<FunctionHandle> Engine::register_function(std::string_view name, FunctionConfig config,
                                                 Lifecycle lifecycle, BytesHandler handler) {
  return core_->register_function(name, std::move(config), std::move(handler), {}, &lifecycle);
}

Result<FunctionHandle> Engine::register_typed(std::string_view name, FunctionConfig config,
                                              detail::TypedHandler handler,
                                              const Lifecycle* lifecycle) {
  return core_->register_function(name, std::move(config), {}, std::move(handler), lifecycle);
}

Result<void> Engine::set_provisioned_concurrency(std::string_view function, int n) {
  return core_->set_provisioned_concurrency(function, n);
}

Result<InstanceStats> Engine::instance_stats(std::string_view function) const {
  return core_->instance_stats(function);
}

Result<FunctionHandle> Engine::function(std::string_view name) const { return core_->find(name); }

Result<void> Engine::invoke_async(FunctionHandle fn, std::string_view payload,
                                  InvokeCallback callback, const InvokeOptions& options) {
  return core_->invoke_async(fn, payload, std::move(callback), options);
}

std::future<Result<std::string>> Engine::invoke_future(FunctionHandle fn, std::string_view payload,
                                                       const InvokeOptions& options) {
  auto promise = std::make_shared<std::promise<Result<std::string>>>();
  std::future<Result<std::string>> future = promise->get_future();
  auto submitted = core_->invoke_async(
      fn, payload, [promise](Result<std::string> r) { promise->set_value(std::move(r)); }, options);
  if (!submitted) promise->set_value(tl::unexpected<Error>(std::move(submitted.error())));
  return future;
}

void Engine::shutdown(absl::Duration drain) {
  shutdown_all(drain, "shutdown requested");
  // Inside a handler the drain happens later (in another shutdown() or the destructor).
  if (!core_->inside_engine()) events_->finish();
}

void Engine::shutdown_all(absl::Duration drain, std::string_view reason) {
  if (const std::optional<std::int64_t> deadline = shutdown_events(drain)) {
    core_->shutdown_until(*deadline, reason);
  } else {
    core_->shutdown(drain, reason);
  }
}

std::optional<std::int64_t> Engine::shutdown_events(absl::Duration drain) {
  schedules_->stop();
  events_->close();
  const EventStats held = events_->stats();
  if (held.queued + held.delayed + held.in_flight == 0 && mappings_->list().empty()) {
    // Nothing to drain: no clock read, the core's drain is the whole shutdown.
    mappings_->stop(0);
    return std::nullopt;
  }
  const std::int64_t now = core_->time().now();
  if (core_->inside_engine()) {
    // Cannot wait here for what may be our own caller: stop taking work, leave the rest.
    mappings_->stop(now);
    return now;
  }
  // One clock read gives the events and the core the same drain deadline.
  const std::int64_t deadline = detail::add_saturating(now, detail::to_nanos(drain));
  mappings_->stop(deadline);
  events_->drain(deadline);
  return deadline;
}

const EngineOptions& Engine::options() const noexcept { return core_->options(); }

bool Engine::shutting_down() const noexcept { return core_->shutting_down(); }

EngineStats Engine::stats() const {
  EngineStats s = core_->stats();
  plugins_->add_stats(s);
  return s;
}

MetricsSnapshot Engine::metrics() const { return core_->metrics(); }
std::vector<Span> Engine::take_spans() { return core_->take_spans(); }

Result<std::uint64_t> Engine::subscribe(std::shared_ptr<LifecycleObserver> observer,
                                        LifecycleEventMask mask) {
  if (observer == nullptr)
    return fail(ErrorCode::kInvalidArgument, "subscribe: the observer is null");
  if ((mask & kAllLifecycleEvents) == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "subscribe: the event mask selects no lifecycle event");
  }
  return core_->subscribe(std::move(observer), mask & kAllLifecycleEvents);
}

Result<void> Engine::unsubscribe(std::uint64_t subscription) {
  if (!core_->unsubscribe(subscription)) {
    return fail(ErrorCode::kNotFound,
                "unsubscribe: no subscription " + std::to_string(subscription));
  }
  return {};
}

std::string metrics_text(const Engine& engine) { return metrics_text(engine.metrics()); }

const FunctionMetrics* MetricsSnapshot::function(std::string_view name) const noexcept {
  // functions is sorted by name.
  auto it =
      std::lower_bound(functions.begin(), functions.end(), name,
                       [](const FunctionMetrics& f, std::string_view n) { return f.function < n; });
  return it != functions.end() && it->function == name ? &*it : nullptr;
}

}  // namespace ember

namespace ember {

Result<PluginInfo> Engine::load_plugin(std::string_view path, const PluginOptions& options) {
  if (auto ok = status(); !ok) return tl::unexpected<Error>(ok.error());
  return plugins_->load(path, options);
}

Result<PluginInfo> Engine::reload_plugin(std::string_view name, std::string_view path) {
  if (auto ok = status(); !ok) return tl::unexpected<Error>(ok.error());
  return plugins_->reload(name, path);
}

Result<void> Engine::unload_plugin(std::string_view name) { return plugins_->unload(name); }

std::vector<PluginInfo> Engine::plugins() const { return plugins_->plugins(); }

Result<PluginManifest> Engine::inspect_plugin(std::string_view path,
                                              const PluginOptions& options) const {
  return plugins_->inspect(path, options);
}

std::vector<FunctionInfo> Engine::functions() const {
  std::vector<FunctionInfo> out = core_->function_list();
  // The plugin that deployed each function: from the host's view of its plugins (a function
  // unloaded between the two reads keeps an empty plugin; one that appeared is not listed).
  for (const PluginInfo& p : plugins_->plugins()) {
    for (const PublishedFunction& f : p.functions) {
      auto it =
          std::lower_bound(out.begin(), out.end(), f.name,
                           [](const FunctionInfo& a, const std::string& n) { return a.name < n; });
      if (it != out.end() && it->name == f.name) it->plugin = p.name;
    }
  }
  return out;
}

Result<void> Engine::set_alias(std::string_view function, std::string_view alias,
                               const AliasConfig& config) {
  return plugins_->set_alias(function, alias, config);
}

Result<void> Engine::delete_alias(std::string_view function, std::string_view alias) {
  return plugins_->delete_alias(function, alias);
}

Result<std::vector<std::string>> Engine::versions(std::string_view function) const {
  return core_->versions(function);
}

Result<std::vector<std::string>> Engine::aliases(std::string_view function) const {
  return core_->aliases(function);
}

}  // namespace ember
