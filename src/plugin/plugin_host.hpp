// plugin_host.hpp — the plugins and layers of one engine: load, validate, init, publish,
// reload with drain and rollback, unload, and the watch on plugin files (DESIGN.md §5).
//
// Objects:
//  - Layer: a layer's shared object, loaded once per engine on first need, counted by the
//    modules that use it, unloaded after the last.
//  - Module: one loaded version of a plugin (its shared object, validated functions, the
//    records it published). A function with init runs on instances (execution environments,
//    src/env/): its record owns a FunctionEnv whose Lifecycle calls the plugin's init and
//    shutdown. Invocations pin its records; it is closed when no route leads to any of them
//    and none is pinned, after its environments are retired (every instance shut down).
//  - Deployment: a plugin by name across its versions: the deployer identity the registry
//    knows, its path and options, its live modules.
// Deploy operations are serialised by mu_ (every private member below it is guarded by it, and
// every private method runs with it held); invocations never take it. std::mutex rather than
// absl::Mutex: Debian's Abseil is not built for ThreadSanitizer, which would see no locking.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/engine_core.hpp"
#include "ember/deploy.hpp"
#include "ember/instance.hpp"
#include "ember/plugin.h"
#include "plugin/semver.hpp"
#include "plugin/shared_object.hpp"

namespace ember::detail {

class PluginHost;
class PluginWatch;

struct Layer {
  std::string name;
  SemVer version;
  std::unique_ptr<SharedObject> object;
  const ember_layer_descriptor* desc = nullptr;
  int users = 0;  // modules that hold it
};

struct ModuleFunction {
  std::string name;
  FunctionConfig config;
  ember_handler_fn handler = nullptr;
  int (*init)(ember_init_args*) = nullptr;  // non-null: the function runs on instances
  void (*shutdown)(void*) = nullptr;
  FunctionRecord* record = nullptr;
};

// The way from a module's instance hooks (init and shutdown, called by its functions'
// FunctionEnvs on whichever thread makes or drops an instance) into its code. close_module
// closes it, waiting for hooks running, before the module goes: a hook called later (a reaper
// that took an idle instance just before the version was retired, finishing after) does not
// reach unmapped code, and leaves that instance's state unreleased. Owned by the module and by
// each hook, so it outlives both.
struct HookGate {
  std::shared_mutex mu;
  bool closed = false;  // guarded by mu
};

struct Module final : CodeOwner {
  PluginHost* host = nullptr;
  std::shared_ptr<HookGate> hooks = std::make_shared<HookGate>();
  std::string plugin;          // the plugin's name
  std::string plugin_version;  // its own version string
  std::unique_ptr<SharedObject> object;
  std::vector<ModuleFunction> functions;  // sized once: handlers point into it
  struct Requirement {
    std::string layer;
    VersionConstraint constraint;
  };
  std::vector<Requirement> requires_layers;
  std::vector<Layer*> layers;  // acquired, in requirement order
  std::vector<FunctionRecord*> records;
};

struct Deployment {
  std::string name;
  std::string path;
  PluginOptions options;
  std::vector<std::unique_ptr<Module>> modules;  // live versions, oldest first
  PluginInfo info;                               // of the newest
};

class PluginHost final {
 public:
  explicit PluginHost(EngineCore& core);
  // Stops the watch, then shuts down and unloads everything. The engine must have drained
  // (EngineCore::wait_quiescent): no handler may be running plugin code.
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  Result<PluginInfo> load(std::string_view path, const PluginOptions& options);
  Result<PluginInfo> reload(std::string_view name, std::string_view path);
  Result<void> unload(std::string_view name);
  [[nodiscard]] std::vector<PluginInfo> plugins() const;
  // Opens, validates and closes a plugin or layer file; touches no state of the host.
  Result<PluginManifest> inspect(std::string_view path, const PluginOptions& options);
  Result<void> set_alias(std::string_view function, std::string_view alias,
                         const AliasConfig& config);
  Result<void> delete_alias(std::string_view function, std::string_view alias);
  void add_stats(EngineStats& s) const;

  // For the host API (host_api.cpp).
  EngineCore& core() noexcept { return core_; }
  [[nodiscard]] const void* service(const Module& m, std::string_view layer,
                                    std::string_view service) const noexcept;

 private:
  friend class PluginWatch;
  Result<std::unique_ptr<Module>> open_module(const std::string& path,
                                              const PluginOptions& options);
  Result<std::unique_ptr<Module>> open_module(const std::string& path, const PluginOptions& options,
                                              std::unique_ptr<SharedObject> object);
  // Layers, function instances and publication: the steps after the descriptor checked out.
  // On error everything this did is undone.
  Result<void> start_module(Deployment& d, Module& m, const std::string& path);
  Result<Layer*> acquire_layer(const Module& m, const Module::Requirement& req,
                               const std::string& plugin_path, const PluginOptions& options);
  void release_layers(Module& m);
  void close_unused_layers();
  // The hooks of f's instances: init fills an ember_init_args and calls the plugin's init
  // (kInitFailed naming `who`, the function and the plugin's code and reason), shutdown calls
  // its shutdown; both log through the host tagged with the plugin (LifecycleScope). They run
  // on whichever thread makes or drops an instance, while the module is open.
  Lifecycle lifecycle_of(Module& m, const ModuleFunction& f, const std::string& who);
  // Retires the environments of m's versions: idle instances are shut down now, busy ones when
  // their invocation returns. Before the module is closed.
  void shutdown_instances(Module& m);
  // Shuts a drained module down and unmaps it; reports one that stays mapped.
  void close_module(std::unique_ptr<Module> m);
  // Retires versions no route leads to; closes modules left without live versions once they
  // drain (waiting up to `drain`), or later if they do not.
  void collect(absl::Duration drain);
  // Closes the draining modules no invocation pins any more, waiting for each until
  // `deadline` (engine time; 0: not at all). Returns how many are left.
  std::size_t close_drained(std::int64_t deadline);
  std::vector<EngineCore::VersionSpec> specs(Module& m);
  PluginInfo describe(const Deployment& d, const Module& m) const;
  void watch(Deployment& d);
  void unwatch(const std::string& plugin);
  void on_file_changed(const std::string& plugin);  // from the watch thread

  // The janitor: closes modules that were still busy when their drain timed out, once their
  // last invocation has returned (polls their counts every few milliseconds while any is
  // left; made on first need).
  void janitor();
  void wake_janitor();

  EngineCore& core_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Deployment>, std::less<>> deployments_;
  std::map<std::string, std::unique_ptr<Layer>, std::less<>> layers_;
  std::vector<std::unique_ptr<Module>> draining_;  // closed when unpinned
  // Counters for stats(), which must not wait for a deploy in progress (it may be draining).
  void count_objects();
  std::atomic<std::int64_t> plugins_{0};
  std::atomic<std::int64_t> layers_count_{0};
  std::atomic<std::int64_t> draining_count_{0};
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::uint64_t> load_failures_{0};
  std::atomic<std::uint64_t> pinned_{0};
  std::unique_ptr<PluginWatch> watch_;  // made on first use; stopped first on destruction
  std::condition_variable janitor_cv_;
  bool stopping_ = false;
  std::thread janitor_;
};

// The host function table given to every plugin and layer, and the bridge from a plugin
// function to a BytesHandler (host_api.cpp).
const ember_host_api& host_api() noexcept;
BytesHandler plugin_handler(Module& m, ModuleFunction& f);
// While a plugin's entry, init or shutdown runs on this thread, host log(NULL, ...) lines go
// to that module's engine.
class LifecycleScope final {
 public:
  explicit LifecycleScope(PluginHost* host, std::string_view plugin) noexcept;
  ~LifecycleScope();
  LifecycleScope(const LifecycleScope&) = delete;
  LifecycleScope& operator=(const LifecycleScope&) = delete;

 private:
  PluginHost* saved_host_;
  std::string_view saved_plugin_;
};

}  // namespace ember::detail
