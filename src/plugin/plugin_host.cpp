// Loading, validating, starting, reloading and unloading plugins and their layers.
#include "plugin/plugin_host.hpp"

#include <chrono>
#include <cstddef>
#include <cstring>
#include <exception>
#include <filesystem>

#include "core/names.hpp"
#include "core/str_cat.hpp"
#include "plugin/watch.hpp"

namespace ember::detail {

namespace {

// The sizes ABI 1 requires: every field it defines.
constexpr std::size_t kPluginDescriptorSize =
    offsetof(ember_plugin_descriptor, layer_count) + sizeof(size_t);
constexpr std::size_t kFunctionDescSize =
    offsetof(ember_function_desc, stack_kib) + sizeof(uint32_t);
constexpr std::size_t kLayerDescriptorSize =
    offsetof(ember_layer_descriptor, shutdown) + sizeof(void (*)(void));

// The load-time init's own error, while start_module makes a version's first instance on this
// thread (the environment wraps it in a message made for invocations).
thread_local Error* tls_load_init_error = nullptr;

std::string describe_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return cat("threw ", e.what());
  } catch (...) {
    return "threw an exception not derived from std::exception";
  }
}

// Validates a plugin name like a function name (it names files and metrics too).
Result<void> validate_plugin_name(std::string_view who, const char* name) {
  if (name == nullptr) {
    return fail(ErrorCode::kPluginInvalid, cat(who, ": descriptor field 'name' is NULL"));
  }
  if (auto ok = validate_function_name(name); !ok) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": descriptor field 'name': ",
                    ok.error().message.substr(std::strlen("function "))));
  }
  return {};
}

// Calls a plugin's or layer's entry function and checks what every descriptor starts with:
// not NULL, this ABI version, a struct at least as large as this ABI's.
template <typename Descriptor>
Result<const Descriptor*> call_entry(const Descriptor* (*entry)(const ember_host_api*),
                                     PluginHost* host, std::string_view tag, std::string_view who,
                                     std::string_view entry_name, std::size_t min_size) {
  const Descriptor* d = nullptr;
  try {
    LifecycleScope scope(host, tag);
    d = entry(&host_api());
  } catch (...) {
    return fail(ErrorCode::kPluginInvalid, cat(who, ": entry ", describe_exception()));
  }
  if (d == nullptr) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": ", entry_name, " returned NULL (it refused to load)"));
  }
  if (d->abi_version != EMBER_PLUGIN_ABI_VERSION) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": built for plugin ABI version ", d->abi_version,
                    "; this host speaks ABI version ", EMBER_PLUGIN_ABI_VERSION));
  }
  if (d->struct_size < min_size) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": descriptor struct_size ", d->struct_size, " is smaller than the ",
                    min_size, " bytes ABI ", EMBER_PLUGIN_ABI_VERSION, " requires"));
  }
  return d;
}

Result<FunctionConfig> function_config(std::string_view who, std::size_t i,
                                       const ember_function_desc& d) {
  const std::string field = cat(who, ": functions[", i, "] ('", d.name, "'): ");
  FunctionConfig c;
  if (d.timeout_ms != 0) c.timeout = absl::Milliseconds(d.timeout_ms);
  if (d.memory_mb != 0) c.memory_mb = d.memory_mb;
  if (d.reserved_concurrency != 0) c.reserved_concurrency = d.reserved_concurrency;
  switch (d.dispatch) {
    case EMBER_DISPATCH_DEFAULT:
      break;
    case EMBER_DISPATCH_INLINE:
      c.dispatch = Dispatch::kInline;
      break;
    case EMBER_DISPATCH_POOL:
      c.dispatch = Dispatch::kPool;
      break;
    default:
      return fail(ErrorCode::kPluginInvalid,
                  cat(field, "dispatch = ", d.dispatch,
                      ": must be EMBER_DISPATCH_DEFAULT, _INLINE or _POOL"));
  }
  if (d.stack_kib != 0) c.stack_size = std::size_t{d.stack_kib} << 10;
  return c;
}

}  // namespace

PluginHost::PluginHost(EngineCore& core) : core_(core) {}

PluginHost::~PluginHost() {
  watch_.reset();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  janitor_cv_.notify_all();
  if (janitor_.joinable()) janitor_.join();
  std::unique_lock<std::mutex> lock(mu_);
  for (auto& [name, d] : deployments_) {
    core_.withdraw(d.get());
    for (auto& m : d->modules) draining_.push_back(std::move(m));
    d->modules.clear();
  }
  deployments_.clear();
  for (auto& m : draining_) close_module(std::move(m));
  draining_.clear();
  close_unused_layers();
}

Result<std::unique_ptr<Module>> PluginHost::open_module(const std::string& path,
                                                        const PluginOptions& options) {
  auto object = SharedObject::open(path, options, "plugin");
  if (!object) return tl::unexpected<Error>(std::move(object.error()));
  return open_module(path, options, std::move(*object));
}

Result<std::unique_ptr<Module>> PluginHost::open_module(const std::string& path,
                                                        const PluginOptions& options,
                                                        std::unique_ptr<SharedObject> object) {
  const std::string who = cat("plugin '", path, "'");
  auto entry = reinterpret_cast<ember_plugin_entry_fn>(object->symbol(EMBER_PLUGIN_ENTRY_NAME));
  if (entry == nullptr) {
    const bool layer = object->symbol(EMBER_LAYER_ENTRY_NAME) != nullptr;
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": no entry symbol '", EMBER_PLUGIN_ENTRY_NAME, "'",
                    layer ? " (it is a layer: it exports " EMBER_LAYER_ENTRY_NAME ")"
                          : " (not an ember plugin, or built for another plugin ABI; this host "
                            "speaks ABI " +
                                std::to_string(EMBER_PLUGIN_ABI_VERSION) + ")"));
  }
  auto m = std::make_unique<Module>();
  m->host = this;
  auto entered = call_entry(entry, this, path, who, EMBER_PLUGIN_ENTRY_NAME, kPluginDescriptorSize);
  if (!entered) return tl::unexpected<Error>(std::move(entered.error()));
  const ember_plugin_descriptor* d = *entered;
  if (auto ok = validate_plugin_name(who, d->name); !ok) return tl::unexpected<Error>(ok.error());
  m->plugin = d->name;
  m->plugin_version = d->version != nullptr ? d->version : "";
  const std::string named = cat("plugin '", m->plugin, "' (", path, ")");
  if (d->function_count == 0 || d->functions == nullptr) {
    return fail(ErrorCode::kPluginInvalid, cat(named, ": descriptor has no functions"));
  }
  m->functions.resize(d->function_count);
  for (std::size_t i = 0; i < d->function_count; ++i) {
    const ember_function_desc* f = d->functions[i];
    const std::string at = cat(named, ": functions[", i, "]");
    if (f == nullptr) return fail(ErrorCode::kPluginInvalid, cat(at, " is NULL"));
    if (f->struct_size < kFunctionDescSize) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(at, ": struct_size ", f->struct_size, " is smaller than the ",
                      kFunctionDescSize, " bytes ABI ", EMBER_PLUGIN_ABI_VERSION, " requires"));
    }
    if (f->name == nullptr) return fail(ErrorCode::kPluginInvalid, cat(at, ": 'name' is NULL"));
    if (auto ok = validate_function_name(f->name); !ok) {
      return fail(ErrorCode::kPluginInvalid, cat(at, ": 'name': ", ok.error().message));
    }
    if (f->handler == nullptr) {
      return fail(ErrorCode::kPluginInvalid, cat(at, " ('", f->name, "'): 'handler' is NULL"));
    }
    auto config = function_config(named, i, *f);
    if (!config) return tl::unexpected<Error>(std::move(config.error()));
    config->report_logs = options.report_logs;  // the deployer's choice, as Lambda's LoggingConfig
    for (std::size_t j = 0; j < i; ++j) {
      if (m->functions[j].name == f->name) {
        return fail(
            ErrorCode::kPluginInvalid,
            cat(at, ": function '", f->name, "' is declared twice (also functions[", j, "])"));
      }
    }
    ModuleFunction& mf = m->functions[i];
    mf.name = f->name;
    mf.config = *config;
    mf.handler = f->handler;
    mf.init = f->init;
    mf.shutdown = f->shutdown;
  }
  if (d->layer_count != 0 && d->layers == nullptr) {
    return fail(ErrorCode::kPluginInvalid, cat(named, ": descriptor has layer_count ",
                                               d->layer_count, " but 'layers' is NULL"));
  }
  for (std::size_t i = 0; i < d->layer_count; ++i) {
    const ember_layer_requirement& r = d->layers[i];
    if (r.name == nullptr || *r.name == '\0') {
      return fail(ErrorCode::kPluginInvalid, cat(named, ": layers[", i, "]: 'name' is empty"));
    }
    auto constraint = VersionConstraint::parse(r.version != nullptr ? r.version : "");
    if (!constraint) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(named, ": layers[", i, "] ('", r.name, "'): ", constraint.error().message));
    }
    m->requires_layers.push_back({r.name, std::move(*constraint)});
  }
  m->object = std::move(object);
  return m;
}

namespace {

// A layer file's own descriptor, for inspect(): the checks acquire_layer makes that do not
// depend on who requires the layer.
Result<PluginManifest> inspect_layer(PluginHost* host, const std::string& path,
                                     std::unique_ptr<SharedObject> object) {
  const std::string who = cat("layer '", path, "'");
  auto entry = reinterpret_cast<ember_layer_entry_fn>(object->symbol(EMBER_LAYER_ENTRY_NAME));
  auto entered =
      call_entry(entry, host, "inspect", who, EMBER_LAYER_ENTRY_NAME, kLayerDescriptorSize);
  if (!entered) return tl::unexpected<Error>(std::move(entered.error()));
  const ember_layer_descriptor* d = *entered;
  if (auto ok = validate_plugin_name(who, d->name); !ok) return tl::unexpected<Error>(ok.error());
  auto version = parse_version(d->version != nullptr ? d->version : "");
  if (!version) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, ": descriptor field 'version': ", version.error().message));
  }
  if (d->service_count != 0 && d->services == nullptr) {
    return fail(ErrorCode::kPluginInvalid, cat(who, ": 'services' is NULL"));
  }
  PluginManifest out;
  out.kind = PluginManifest::Kind::kLayer;
  out.name = d->name;
  out.version = version->str();
  out.path = path;
  for (std::size_t i = 0; i < d->service_count; ++i) {
    if (d->services[i].name == nullptr || *d->services[i].name == '\0' ||
        d->services[i].vtable == nullptr) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(who, ": services[", i, "] has an empty name or a NULL vtable"));
    }
    out.services.emplace_back(d->services[i].name);
  }
  return out;
}

}  // namespace

Result<PluginManifest> PluginHost::inspect(std::string_view path_view,
                                           const PluginOptions& options) {
  const std::string path(path_view);
  auto object = SharedObject::open(path, options, "plugin");
  if (!object) return tl::unexpected<Error>(std::move(object.error()));
  // A layer is told apart by its entry symbol (open_module would refuse it, saying so).
  if ((*object)->symbol(EMBER_PLUGIN_ENTRY_NAME) == nullptr &&
      (*object)->symbol(EMBER_LAYER_ENTRY_NAME) != nullptr) {
    return inspect_layer(this, path, std::move(*object));
  }
  auto m = open_module(path, options, std::move(*object));
  if (!m) return tl::unexpected<Error>(std::move(m.error()));
  PluginManifest out;
  out.name = (*m)->plugin;
  out.version = (*m)->plugin_version;
  out.path = path;
  for (const ModuleFunction& f : (*m)->functions) {
    out.functions.push_back({f.name, f.config, f.init != nullptr, f.shutdown != nullptr});
  }
  for (const Module::Requirement& r : (*m)->requires_layers) {
    out.layers.push_back({r.layer, r.constraint.text()});
  }
  return out;
}

std::vector<EngineCore::VersionSpec> PluginHost::specs(Module& m) {
  std::vector<EngineCore::VersionSpec> out;
  for (ModuleFunction& f : m.functions) {
    EngineCore::VersionSpec& spec = out.emplace_back();
    spec.name = f.name;
    spec.config = f.config;
    spec.handler = plugin_handler(m, f);
    spec.code = &m;
    spec.stateful = f.init != nullptr;  // its env is made after the dry run
  }
  return out;
}

Lifecycle PluginHost::lifecycle_of(Module& m, const ModuleFunction& f, const std::string& who) {
  Lifecycle l;
  l.init = [this, module = &m, gate = m.hooks, init = f.init,
            who](InitContext& ctx) -> Result<void*> {
    std::shared_lock<std::shared_mutex> open(gate->mu);
    if (gate->closed) return fail(ErrorCode::kInitFailed, cat(who, ": this version is unloaded"));
    // NUL-terminated copies: the ABI passes C strings.
    const std::string name(ctx.function_name());
    const std::string version(ctx.function_version());
    ember_init_args args{};
    args.struct_size = sizeof args;
    args.host = &host_api();
    args.plugin = reinterpret_cast<ember_plugin_ref*>(module);
    args.function_name = name.c_str();
    args.function_version = version.c_str();
    int rc = 0;
    std::string why;
    try {
      LifecycleScope scope(this, module->plugin);
      rc = init(&args);
      args.error[sizeof args.error - 1] = '\0';
      why = args.error;
    } catch (...) {
      rc = -1;
      why = describe_exception();
    }
    if (rc != 0) {
      Error e{ErrorCode::kInitFailed, cat(who, ": init of function '", name, "' failed (", rc,
                                          "): ", why.empty() ? "no reason given" : why)};
      if (tls_load_init_error != nullptr) *tls_load_init_error = e;
      return tl::unexpected<Error>(std::move(e));
    }
    return args.instance;
  };
  if (f.shutdown != nullptr) {
    l.shutdown = [this, module = &m, gate = m.hooks, shutdown = f.shutdown](void* instance) {
      std::shared_lock<std::shared_mutex> open(gate->mu);
      if (gate->closed) return;  // unmapped: the state stays unreleased (see HookGate)
      LifecycleScope scope(this, module->plugin);
      shutdown(instance);
    };
  }
  return l;
}

Result<void> PluginHost::start_module(Deployment& d, Module& m, const std::string& path) {
  const std::string who = cat("plugin '", m.plugin, "' (", path, ")");
  auto specs = this->specs(m);
  if (auto ok = core_.publish(&d, who, specs, /*dry_run=*/true); !ok)
    return tl::unexpected<Error>(ok.error());

  auto undo = [&](Error e) -> Result<void> {
    // Instances made so far are shut down while the module and its layers are still loaded.
    for (EngineCore::VersionSpec& spec : specs) spec.env.reset();
    release_layers(m);
    close_unused_layers();
    return tl::unexpected<Error>(std::move(e));
  };
  for (const Module::Requirement& req : m.requires_layers) {
    auto layer = acquire_layer(m, req, path, d.options);
    if (!layer) return undo(std::move(layer.error()));
    (*layer)->users++;
    m.layers.push_back(*layer);
  }
  for (std::size_t i = 0; i < m.functions.size(); ++i) {
    const ModuleFunction& f = m.functions[i];
    EngineCore::VersionSpec& spec = specs[i];
    // Each new version's first invocation is a cold start, reporting the init it paid for
    // (none: 0).
    spec.init_ns = 0;
    if (f.init == nullptr) continue;
    const std::string version = cat(core_.next_version(f.name));
    auto env = core_.make_env(f.name, version, f.config, lifecycle_of(m, f, who));
    if (!env) {
      return undo(Error{ErrorCode::kPluginInvalid,
                        cat(who, ": function '", f.name, "': ", env.error().message)});
    }
    spec.env = std::move(*env);
    // One instance is made now: a version whose init fails is refused (the old one keeps
    // serving), and the one made is the first invocation's, warm.
    std::int64_t init_ns = 0;
    Error init_error;
    core_.observe_init_start(f.name, version);
    tls_load_init_error = &init_error;
    auto made = spec.env->prewarm(&init_ns);
    tls_load_init_error = nullptr;
    if (!made) {
      // The plugin's own words when its init failed; else what the environment says (an init
      // past init_timeout, a scratch directory that could not be made).
      Error e{ErrorCode::kPluginInvalid, init_error.message.empty()
                                             ? cat(who, ": ", made.error().message)
                                             : std::move(init_error.message)};
      core_.observe_init_report(f.name, version, init_ns, &e);
      return undo(std::move(e));
    }
    core_.observe_init_report(f.name, version, init_ns, nullptr);
    // That instance's first invocation is the cold start that reports this init (the
    // environment counts it; the version itself is not marked cold).
    spec.init_ns.reset();
  }
  auto records = core_.publish(&d, who, specs, /*dry_run=*/false);
  if (!records) return undo(std::move(records.error()));
  m.records = *records;
  const std::int64_t now = core_.time().now();
  for (std::size_t i = 0; i < m.functions.size(); ++i) {
    m.functions[i].record = m.records[i];
    // Arms the reaper for the instance made above (nothing is due yet): it goes after idle_ttl
    // if no invocation uses it.
    if (m.records[i]->env != nullptr) m.records[i]->env->reap(now);
  }
  return {};
}

Result<Layer*> PluginHost::acquire_layer(const Module& m, const Module::Requirement& req,
                                         const std::string& plugin_path,
                                         const PluginOptions& options) {
  const std::string who = cat("plugin '", m.plugin, "' (", plugin_path, ")");
  if (auto it = layers_.find(req.layer); it != layers_.end()) {
    Layer* l = it->second.get();
    if (!req.constraint.allows(l->version)) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(who, " requires layer '", req.layer, "' ", req.constraint.text(),
                      ", but version ", l->version.str(), " is loaded"));
    }
    return l;
  }
  namespace fs = std::filesystem;
  std::vector<std::string> dirs = options.layer_dirs;
  if (dirs.empty()) dirs.push_back(fs::path(plugin_path).parent_path().string());
  std::string file;
  for (const std::string& dir : dirs) {
    for (const std::string& name : {cat("lib", req.layer, ".so"), cat(req.layer, ".so")}) {
      const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
      std::error_code ec;
      if (fs::exists(p, ec)) {
        file = p.string();
        break;
      }
    }
    if (!file.empty()) break;
  }
  if (file.empty()) {
    std::string searched;
    for (const std::string& dir : dirs) searched += cat(searched.empty() ? "" : ", ", dir);
    return fail(
        ErrorCode::kNotFound,
        cat(who, " requires layer '", req.layer, "' ", req.constraint.text(), ": no lib", req.layer,
            ".so or ", req.layer, ".so in ", searched, " (PluginOptions.layer_dirs)"));
  }
  auto object = SharedObject::open(file, options, "layer");
  if (!object) {
    Error e = std::move(object.error());
    e.message = cat(who, " requires layer '", req.layer, "': ", e.message);
    return tl::unexpected<Error>(std::move(e));
  }
  // Errors about the layer's file name it, and the plugin that needed it.
  const std::string lwho = cat(who, " requires layer '", req.layer, "': layer '", file, "'");
  auto entry = reinterpret_cast<ember_layer_entry_fn>((*object)->symbol(EMBER_LAYER_ENTRY_NAME));
  if (entry == nullptr) {
    return fail(ErrorCode::kPluginInvalid,
                cat(lwho, ": no entry symbol '", EMBER_LAYER_ENTRY_NAME, "'"));
  }
  auto entered =
      call_entry(entry, this, req.layer, lwho, EMBER_LAYER_ENTRY_NAME, kLayerDescriptorSize);
  if (!entered) return tl::unexpected<Error>(std::move(entered.error()));
  const ember_layer_descriptor* d = *entered;
  if (d->name == nullptr || req.layer != d->name) {
    return fail(ErrorCode::kPluginInvalid,
                cat(lwho, ": is layer '", d->name != nullptr ? d->name : "(NULL)", "', not '",
                    req.layer, "'"));
  }
  auto version = parse_version(d->version != nullptr ? d->version : "");
  if (!version) {
    return fail(ErrorCode::kPluginInvalid,
                cat(lwho, ": descriptor field 'version': ", version.error().message));
  }
  if (d->service_count != 0 && d->services == nullptr) {
    return fail(ErrorCode::kPluginInvalid, cat(lwho, ": 'services' is NULL"));
  }
  for (std::size_t i = 0; i < d->service_count; ++i) {
    if (d->services[i].name == nullptr || *d->services[i].name == '\0' ||
        d->services[i].vtable == nullptr) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(lwho, ": services[", i, "] has an empty name or a NULL vtable"));
    }
  }
  if (!req.constraint.allows(*version)) {
    return fail(ErrorCode::kPluginInvalid,
                cat(who, " requires layer '", req.layer, "' ", req.constraint.text(), ", but ",
                    file, " is version ", version->str()));
  }
  if (d->init != nullptr) {
    char error[256] = {};
    int rc = 0;
    try {
      LifecycleScope scope(this, req.layer);
      rc = d->init(&host_api(), error, sizeof error);
    } catch (...) {
      rc = -1;
      std::snprintf(error, sizeof error, "%s", describe_exception().c_str());
    }
    error[sizeof error - 1] = '\0';
    if (rc != 0) {
      return fail(ErrorCode::kPluginInvalid,
                  cat(lwho, ": init failed (", rc, "): ", *error ? error : "no reason given"));
    }
  }
  auto layer = std::make_unique<Layer>();
  layer->name = req.layer;
  layer->version = *version;
  layer->object = std::move(*object);
  layer->desc = d;
  Layer* raw = layer.get();
  layers_.emplace(req.layer, std::move(layer));
  count_objects();
  core_.log(LogLevel::kInfo, cat("layer:", req.layer), "",
            cat("layer '", req.layer, "' ", version->str(), " loaded from ", file));
  return raw;
}

const void* PluginHost::service(const Module& m, std::string_view layer,
                                std::string_view service) const noexcept {
  for (const Layer* l : m.layers) {
    if (l->name != layer) continue;
    for (std::size_t i = 0; i < l->desc->service_count; ++i) {
      if (service == l->desc->services[i].name) return l->desc->services[i].vtable;
    }
    return nullptr;
  }
  return nullptr;  // not a layer this plugin declared
}

void PluginHost::release_layers(Module& m) {
  for (Layer* l : m.layers) l->users--;
  m.layers.clear();
}

void PluginHost::close_unused_layers() {
  for (auto it = layers_.begin(); it != layers_.end();) {
    Layer& l = *it->second;
    if (l.users > 0) {
      ++it;
      continue;
    }
    if (l.desc->shutdown != nullptr) {
      LifecycleScope scope(this, l.name);
      l.desc->shutdown();
    }
    if (!l.object->close()) {
      ++pinned_;
      core_.log(LogLevel::kError, cat("layer:", l.name), "",
                cat("layer '", l.name, "' (", l.object->path(),
                    ") is still mapped after dlclose: something pins it (a thread_local with a "
                    "destructor, a STB_GNU_UNIQUE symbol, another dlopen)"));
    }
    it = layers_.erase(it);
  }
  count_objects();
}

void PluginHost::shutdown_instances(Module& m) {
  // close_module runs once no invocation pins m, so its instances are all back, idle, and shut
  // down here on this thread while the module is still mapped. (retire() would also shut a
  // busy one down when its invocation gave it back.)
  for (FunctionRecord* r : m.records) {
    if (r->env != nullptr) r->env->retire();
  }
}

void PluginHost::close_module(std::unique_ptr<Module> m) {
  shutdown_instances(*m);
  {
    std::unique_lock<std::shared_mutex> close(m->hooks->mu);
    m->hooks->closed = true;
  }
  const std::string path = m->object->path();
  if (!m->object->close()) {
    ++pinned_;
    core_.log(LogLevel::kError, cat("plugin:", m->plugin), "",
              cat("plugin '", m->plugin, "' (", path,
                  ") is still mapped after dlclose: something pins it (a thread_local with a "
                  "destructor, a STB_GNU_UNIQUE symbol, another dlopen); build plugins with "
                  "ember_add_plugin"));
  }
  release_layers(*m);
  close_unused_layers();
}

void PluginHost::collect(absl::Duration drain) {
  core_.sweep();
  // Modules none of whose versions is routed any more.
  for (auto& [name, d] : deployments_) {
    for (auto it = d->modules.begin(); it != d->modules.end();) {
      const bool dead = std::all_of((*it)->records.begin(), (*it)->records.end(),
                                    [](const FunctionRecord* r) { return r->retiring.load(); });
      if (dead) {
        draining_.push_back(std::move(*it));
        it = d->modules.erase(it);
      } else {
        ++it;
      }
    }
  }
  count_objects();
  // A deploy from inside a handler or a callback must not wait for invocations (maybe its
  // own, or one queued behind it on this worker); the janitor closes what is left.
  const std::int64_t deadline =
      core_.inside_engine() ? 0 : add_saturating(core_.time().now(), to_nanos(drain));
  if (const std::size_t left = close_drained(deadline); left > 0) {
    core_.log(LogLevel::kWarn, "", "",
              cat("an old plugin version still has invocations after ", absl::FormatDuration(drain),
                  " (", left, " waiting); each is unloaded when its last invocation returns"));
    wake_janitor();
  }
}

std::size_t PluginHost::close_drained(std::int64_t deadline) {
  for (auto it = draining_.begin(); it != draining_.end();) {
    if (core_.wait_unpinned((*it)->records, deadline)) {
      std::unique_ptr<Module> m = std::move(*it);
      it = draining_.erase(it);
      close_module(std::move(m));
    } else {
      ++it;
    }
  }
  count_objects();
  return draining_.size();
}

void PluginHost::wake_janitor() {
  if (!janitor_.joinable()) janitor_ = std::thread([this] { janitor(); });
  janitor_cv_.notify_all();
}

void PluginHost::janitor() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (draining_.empty()) {
      janitor_cv_.wait(lock);
      continue;
    }
    close_drained(0);  // no waiting: just the ones whose last invocation has returned
    // Real time, not the engine's clock: this only bounds how late a drained module goes.
    janitor_cv_.wait_for(lock, std::chrono::milliseconds(5));
  }
}

PluginInfo PluginHost::describe(const Deployment& d, const Module& m) const {
  PluginInfo info;
  info.name = m.plugin;
  info.version = m.plugin_version;
  info.path = d.path;
  for (const FunctionRecord* r : m.records) info.functions.push_back({r->name, r->version});
  for (const Layer* l : m.layers) info.layers.push_back(cat(l->name, " ", l->version.str()));
  return info;
}

Result<PluginInfo> PluginHost::load(std::string_view path_view, const PluginOptions& options) {
  const std::string path(path_view);
  std::unique_lock<std::mutex> lock(mu_);
  auto failed = [&](Error e) -> Result<PluginInfo> {
    ++load_failures_;
    return tl::unexpected<Error>(std::move(e));
  };
  auto m = open_module(path, options);
  if (!m) return failed(std::move(m.error()));
  if (auto it = deployments_.find((*m)->plugin); it != deployments_.end()) {
    return failed(Error{ErrorCode::kAlreadyExists,
                        cat("plugin '", (*m)->plugin, "' (", path, ") is already loaded from ",
                            it->second->path, "; use reload_plugin")});
  }
  auto d = std::make_unique<Deployment>();
  d->name = (*m)->plugin;
  d->path = path;
  d->options = options;
  if (auto ok = start_module(*d, **m, path); !ok) return failed(std::move(ok.error()));
  d->info = describe(*d, **m);
  d->modules.push_back(std::move(*m));
  Deployment& ref = *d;
  deployments_.emplace(ref.name, std::move(d));
  count_objects();
  if (options.watch) watch(ref);
  core_.log(LogLevel::kInfo, cat("plugin:", ref.name), "",
            cat("plugin '", ref.name, "' ", ref.info.version, " loaded from ", path));
  return ref.info;
}

Result<PluginInfo> PluginHost::reload(std::string_view name, std::string_view path_view) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    ++load_failures_;
    return fail(ErrorCode::kNotFound, cat("reload: no plugin '", name, "' is loaded"));
  }
  Deployment& d = *it->second;
  const std::string path = path_view.empty() ? d.path : std::string(path_view);
  auto failed = [&](Error e) -> Result<PluginInfo> {
    ++load_failures_;
    e.message = cat("reload of plugin '", d.name,
                    "' rolled back; the old version keeps serving: ", e.message);
    return tl::unexpected<Error>(std::move(e));
  };
  auto m = open_module(path, d.options);
  if (!m) return failed(std::move(m.error()));
  if ((*m)->plugin != d.name) {
    return failed(Error{ErrorCode::kPluginInvalid,
                        cat(path, " is plugin '", (*m)->plugin, "', not '", d.name, "'")});
  }
  if (auto ok = start_module(d, **m, path); !ok) return failed(std::move(ok.error()));
  if (path != d.path && d.options.watch) {
    // The watch follows the file the plugin now comes from.
    unwatch(d.name);
    d.path = path;
    watch(d);
  }
  d.path = path;
  d.info = describe(d, **m);
  d.modules.push_back(std::move(*m));
  ++reloads_;
  collect(d.options.drain_timeout);
  return d.info;
}

Result<void> PluginHost::unload(std::string_view name) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = deployments_.find(name);
  if (it == deployments_.end()) {
    return fail(ErrorCode::kNotFound, cat("unload: no plugin '", name, "' is loaded"));
  }
  std::unique_ptr<Deployment> d = std::move(it->second);
  deployments_.erase(it);
  count_objects();
  unwatch(d->name);
  core_.withdraw(d.get());
  for (auto& m : d->modules) draining_.push_back(std::move(m));
  d->modules.clear();
  collect(d->options.drain_timeout);
  core_.log(LogLevel::kInfo, cat("plugin:", d->name), "", cat("plugin '", d->name, "' unloaded"));
  return {};
}

std::vector<PluginInfo> PluginHost::plugins() const {
  std::unique_lock<std::mutex> lock(mu_);
  std::vector<PluginInfo> out;
  for (const auto& [name, d] : deployments_) out.push_back(d->info);
  return out;
}

Result<void> PluginHost::set_alias(std::string_view function, std::string_view alias,
                                   const AliasConfig& config) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ok = core_.set_alias(function, alias, config.version, config.additional_version,
                            config.additional_weight);
  if (ok) collect(PluginOptions{}.drain_timeout);
  return ok;
}

Result<void> PluginHost::delete_alias(std::string_view function, std::string_view alias) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ok = core_.delete_alias(function, alias);
  if (ok) collect(PluginOptions{}.drain_timeout);
  return ok;
}

void PluginHost::count_objects() {
  plugins_.store(static_cast<std::int64_t>(deployments_.size()));
  layers_count_.store(static_cast<std::int64_t>(layers_.size()));
  draining_count_.store(static_cast<std::int64_t>(draining_.size()));
}

void PluginHost::add_stats(EngineStats& s) const {
  s.plugins_loaded = plugins_.load();
  s.layers_loaded = layers_count_.load();
  s.plugin_reloads = reloads_.load();
  s.plugin_load_failures = load_failures_.load();
  s.modules_draining = draining_count_.load();
  s.modules_pinned = pinned_.load();
}

void PluginHost::watch(Deployment& d) {
  if (!watch_) watch_ = std::make_unique<PluginWatch>(*this);
  watch_->add(d.name, d.path, d.options.watch_debounce);
}

void PluginHost::unwatch(const std::string& plugin) {
  if (watch_) watch_->forget(plugin);
}

void PluginHost::on_file_changed(const std::string& plugin) {
  auto r = reload(plugin, {});
  if (r) {
    core_.log(LogLevel::kInfo, cat("plugin:", plugin), "",
              cat("plugin '", plugin, "' reloaded after its file changed"));
  } else {
    core_.log(LogLevel::kError, cat("plugin:", plugin), "", cat("watch: ", r.error().message));
  }
}

}  // namespace ember::detail
