// Execution environments in the core: admission of stateful functions (the scale-up guard),
// cold starts, discards, memory limits, provisioning and the statistics. The warm path
// (call_with_instance, return_instance) is in invoke.cpp, beside the handler call.
#include "core/engine_core.hpp"
#include "core/names.hpp"
#include "core/str_cat.hpp"

namespace ember::detail {

Instance* EngineCore::admit_instance(FunctionRecord* fn, Error* error) {
  if (fn->env->allow_new(time_.now())) return kNewInstance;
  *error = scale_up_throttled(fn);
  return nullptr;
}

Error EngineCore::scale_up_throttled(FunctionRecord* fn) {
  throttles_.fetch_add(1, std::memory_order_relaxed);
  fn->env->count_scale_up_throttle();
  count(fn, [](MetricShard& s) { s.throttles[static_cast<int>(ThrottleReason::kScaleUp)].add(); });
  return Error{ErrorCode::kThrottled,
               cat("function '", fn->name,
                   "' throttled: no idle instance, and the scale-up "
                   "limit (max_new_instances_per_second ",
                   fn->config.max_new_instances_per_second, ") allows no new one now")};
}

void EngineCore::cold_start(Invocation& inv) {
  FunctionRecord* fn = inv.fn;
  inv.instance = nullptr;
  bool restored = false;
  observe_init_start(fn->name, fn->version);
  auto made = fn->env->make_for_invocation(&inv.init_ns, &restored);
  if (!made) {
    observe_init_report(fn->name, fn->version, inv.init_ns, &made.error());
    set_error(inv, std::move(made.error()));
    return;
  }
  observe_init_report(fn->name, fn->version, inv.init_ns, nullptr);
  inv.instance = *made;
  inv.cold = true;
  inv.restored = restored;
  if (metrics_) fn->stats->record_init(static_cast<std::uint64_t>(inv.init_ns));
  // An inline invocation's init does not eat its handler's time: its deadline moves on by the
  // init's duration (never past its parent's). A pooled caller waits to the deadline fixed at
  // admission (its timer is armed already).
  if (inv.pending == nullptr) {
    std::int64_t deadline = add_saturating(inv.deadline, inv.init_ns);
    if (inv.parent != nullptr) deadline = std::min(deadline, inv.parent->deadline);
    inv.deadline = std::max(inv.deadline, deadline);
  }
}

void EngineCore::discard_instance(Invocation& inv, Instance* inst, Outcome outcome) {
  char rid[37];
  format_request_id(inv, rid);
  const std::string why = inst->memory.exceeded()
                              ? cat("request ", std::string_view(rid, 36), " ran out of memory")
                          : inv.threw ? cat("request ", std::string_view(rid, 36), " threw")
                                      : cat("request ", std::string_view(rid, 36), " timed out");
  (void)outcome;
  inst->env->discard(inst, why);
}

EngineCore::Outcome EngineCore::end_memory(Invocation& inv, Outcome outcome) {
  BoundedResource* m = inv.memory;
  if (m == nullptr || !m->exceeded()) return outcome;
  if (inv.instance != nullptr && inv.instance != kNewInstance)
    inv.instance->env->count_out_of_memory();
  set_error(
      inv,
      Error{ErrorCode::kOutOfMemory,
            cat("function '", inv.fn->name, "': out of memory: allocations past memory_mb (",
                inv.fn->config.memory_mb, " MiB) were refused (", m->in_use(), " bytes in use)")});
  return outcome == Outcome::kTimeout ? outcome : Outcome::kError;
}

void EngineCore::unused_instance(Invocation& inv) noexcept {
  Instance* inst = inv.instance;
  inv.instance = nullptr;
  if (inst != nullptr && inst != kNewInstance) inst->env->put(inst, time_.now_coarse());
}

Result<std::unique_ptr<FunctionEnv>> EngineCore::make_env(std::string_view name,
                                                          std::string_view version,
                                                          const FunctionConfig& config,
                                                          const Lifecycle& lifecycle) {
  if (auto ok = FunctionEnv::validate(name, config, lifecycle); !ok)
    return tl::unexpected<Error>(std::move(ok.error()));
  auto env = std::make_unique<FunctionEnv>(env_shared_, std::string(name), std::string(version),
                                           config, lifecycle);
  if (auto ok = env->prepare(); !ok) return tl::unexpected<Error>(std::move(ok.error()));
  return env;
}

void EngineCore::retire_envs() {
  std::vector<FunctionEnv*> envs;
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    envs = envs_;
  }
  for (FunctionEnv* e : envs) e->retire();
}

Result<void> EngineCore::set_provisioned_concurrency(std::string_view function, int n) {
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  const QualifiedName q = split_qualifier(function);
  FunctionEnv* env = nullptr;
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    FunctionEntry* e = registry_.entry(q.name);
    if (e == nullptr || !e->live())
      return fail(ErrorCode::kNotFound, cat("function '", q.name, "' is not registered"));
    FunctionRecord* r = e->latest->primary.load(std::memory_order_acquire);
    if (!q.qualifier.empty() && q.qualifier != "$LATEST") {
      auto it = e->routes.find(std::string(q.qualifier));
      r = it == e->routes.end() ? nullptr : it->second->primary.load(std::memory_order_acquire);
      if (r == nullptr) {
        return fail(ErrorCode::kNotFound,
                    cat("function '", q.name, "' has no version or alias '", q.qualifier, "'"));
      }
    }
    if (r == nullptr || r->env == nullptr) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", q.name,
                      "': provisioned concurrency needs instances (register it with a "
                      "Lifecycle, or a plugin function with init)"));
    }
    if (n < 0) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", q.name, "': provisioned concurrency ", n, " is negative"));
    }
    if (n > 0 && (e->reserved == 0 || n > e->reserved)) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", q.name, "': provisioned concurrency ", n,
                      " exceeds its reserved concurrency (",
                      e->reserved == 0 ? std::string("none") : cat(e->reserved), ")"));
    }
    env = r->env;
  }
  if (shutting_down_.load()) {
    return fail(ErrorCode::kShuttingDown, cat("function '", q.name, "': engine is shutting down"));
  }
  return env->set_provisioned(n);
}

Result<InstanceStats> EngineCore::instance_stats(std::string_view function) const {
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  const QualifiedName q = split_qualifier(function);
  std::vector<FunctionEnv*> envs;
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    FunctionEntry* e = registry_.entry(q.name);
    if (e == nullptr)
      return fail(ErrorCode::kNotFound, cat("function '", q.name, "' is not registered"));
    for (FunctionEnv* env : envs_) {
      if (env->name() == q.name) envs.push_back(env);
    }
  }
  InstanceStats out;
  for (FunctionEnv* env : envs) env->add_to(out);
  return out;
}

}  // namespace ember::detail
