// The instances of one function version: making them (init, clone), handing them out warm,
// provisioning, the scale-up guard, reaping, discarding and retiring.
#include "env/function_env.hpp"

#include <absl/strings/str_format.h>
#include <cxxabi.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <typeinfo>

#include "core/str_cat.hpp"
#include "env/scratch.hpp"

namespace ember {

// ---- InitContext ----

std::string_view InitContext::function_name() const noexcept { return call_->env->name(); }
std::string_view InitContext::function_version() const noexcept { return call_->env->version(); }
std::uint64_t InitContext::instance_id() const noexcept { return call_->instance->id; }
std::string_view InitContext::scratch_dir() const noexcept { return call_->instance->scratch; }
std::pmr::memory_resource* InitContext::memory() const noexcept {
  return const_cast<detail::BoundedResource*>(&call_->instance->memory);
}
absl::Duration InitContext::remaining() const noexcept {
  const std::int64_t left = call_->deadline - call_->env->shared().time.now();
  return left > 0 ? absl::Nanoseconds(left) : absl::ZeroDuration();
}
bool InitContext::cancelled() const noexcept {
  return call_->env->shared().time.now() >= call_->deadline;
}
void InitContext::log(std::string_view message) const {
  const auto& log = call_->env->shared().log;
  if (log) log(LogLevel::kInfo, call_->env->name(), call_->env->version(), message);
}

namespace detail {

namespace {

std::string seconds(std::int64_t ns) {
  return absl::StrFormat("%.2f", static_cast<double>(ns) / 1e9);
}

// "std::runtime_error: boom" for the exception being handled.
std::string describe_exception() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  std::string name = "unknown exception";
  if (type != nullptr) {
    int status = 0;
    char* d = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
    name = status == 0 && d != nullptr ? d : type->name();
    std::free(d);
  }
  try {
    throw;
  } catch (const std::exception& e) {
    return cat(name, ": ", e.what());
  } catch (...) {
    return name;
  }
}

}  // namespace

FunctionEnv::FunctionEnv(EnvShared& shared, std::string name, std::string version,
                         const FunctionConfig& config, Lifecycle lifecycle)
    : shared_(shared),
      name_(std::move(name)),
      version_(std::move(version)),
      config_(config),
      lifecycle_(std::move(lifecycle)),
      init_timeout_ns_(to_nanos(config.init_timeout)),
      idle_ttl_ns_(to_nanos(config.idle_ttl)),
      memory_limit_(static_cast<std::size_t>(config.memory_mb) << 20) {
  tokens_ = config_.max_new_instances_per_second;
  tokens_at_ = shared_.time.now();
}

FunctionEnv::~FunctionEnv() {
  retire();
  std::vector<std::unique_ptr<Instance>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(all_);
    idle_.clear();
  }
  // Instances still listed here were busy at retire() and never came back (their handler is
  // still running past the engine's life, which ~Engine prevents); shut them down anyway.
  for (auto& inst : left) shut_down(std::move(inst), "engine destroyed");
}

Result<void> FunctionEnv::validate(std::string_view function, const FunctionConfig& c,
                                   const Lifecycle& l) {
  auto bad = [&](std::string_view field, auto value, std::string_view rule) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", function, "': ", field, " = ", value, ": ", rule));
  };
  if (!l.init) return bad("Lifecycle.init", "empty", "a function with a Lifecycle needs init");
  if (c.snapshot_start && !l.clone) {
    return bad("FunctionConfig.snapshot_start", "true",
               "needs Lifecycle.clone (the state type is not copy-constructible?)");
  }
  return {};
}

// ---- making and shutting down ----

std::string FunctionEnv::who(std::uint64_t instance_id) const {
  return cat("function '", name_, "' (version ", version_, "): instance ", instance_id);
}

Result<std::unique_ptr<Instance>> FunctionEnv::make(bool for_snapshot, std::int64_t* init_ns,
                                                    bool* restored) {
  auto inst = std::make_unique<Instance>(
      this, shared_.next_instance_id.fetch_add(1, std::memory_order_relaxed), memory_limit_);
  if (config_.scratch_dir && !for_snapshot) {
    auto dir = make_scratch_dir(shared_.scratch_root, name_, inst->id);
    if (!dir) {
      init_failures_.fetch_add(1, std::memory_order_relaxed);
      return fail(ErrorCode::kInitFailed, cat(who(inst->id), ": ", dir.error().message));
    }
    inst->scratch = std::move(*dir);
  }
  InitCall call;
  call.env = this;
  call.instance = inst.get();
  const std::int64_t start = shared_.time.now();
  call.deadline = add_saturating(start, init_timeout_ns_);
  InitContext ctx = InitCall::make_context(&call);
  Result<void*> made = tl::unexpected<Error>(Error{ErrorCode::kInitFailed, "not run"});
  // Clones read the snapshot under a shared lock: retire() takes it away exclusively.
  std::shared_lock<std::shared_mutex> snapshot_lock(snapshot_mu_, std::defer_lock);
  if (config_.snapshot_start && !for_snapshot) snapshot_lock.lock();
  const bool clone = config_.snapshot_start && !for_snapshot;
  try {
    if (clone && snapshot_ == nullptr) {
      made = fail(ErrorCode::kInitFailed, "the version's snapshot is gone (retired)");
    } else {
      made = clone ? lifecycle_.clone(snapshot_->state, ctx) : lifecycle_.init(ctx);
    }
  } catch (...) {
    made = fail(ErrorCode::kInitFailed,
                cat(clone ? "clone" : "init", " threw ", describe_exception()));
  }
  if (snapshot_lock.owns_lock()) snapshot_lock.unlock();
  const std::int64_t took = shared_.time.now() - start;
  if (init_ns != nullptr) *init_ns = took;
  if (restored != nullptr) *restored = clone;
  if (made && inst->memory.exceeded()) {
    // It caught the refusal, but the instance starts past its limit: not one to serve from.
    run_shutdown_hook(*made, inst->id);
    made =
        fail(ErrorCode::kInitFailed, cat(clone ? "clone" : "init", " allocated past memory_mb (",
                                         config_.memory_mb, " MiB) through InitContext::memory()"));
  } else if (made && took > init_timeout_ns_) {
    // It finished, but too late: what it made is released, and it counts as failed.
    run_shutdown_hook(*made, inst->id);
    made = fail(ErrorCode::kInitFailed,
                cat(clone ? "clone" : "init", " took ", seconds(took), " s, past init_timeout (",
                    seconds(init_timeout_ns_), " s)"));
  }
  if (!made) {
    init_failures_.fetch_add(1, std::memory_order_relaxed);
    if (!inst->scratch.empty()) (void)remove_scratch_dir(inst->scratch);
    std::string message =
        cat(who(inst->id), ": ", clone ? "" : "init failed: ", made.error().message);
    if (shared_.log) shared_.log(LogLevel::kError, name_, version_, message);
    return fail(ErrorCode::kInitFailed, std::move(message));
  }
  inst->state = *made;
  if (clone) snapshot_restores_.fetch_add(1, std::memory_order_relaxed);
  return inst;
}

void FunctionEnv::run_shutdown_hook(void* state, std::uint64_t id) noexcept {
  if (lifecycle_.shutdown) {
    try {
      lifecycle_.shutdown(state);
    } catch (...) {
      if (shared_.log) {
        shared_.log(LogLevel::kError, name_, version_,
                    cat("instance ", id, ": shutdown threw ", describe_exception()));
      }
    }
  }
  shutdowns_.fetch_add(1, std::memory_order_relaxed);
}

void FunctionEnv::shut_down(std::unique_ptr<Instance> inst, std::string_view why) noexcept {
  run_shutdown_hook(inst->state, inst->id);
  if (!inst->scratch.empty()) {
    const std::uint64_t used = scratch_bytes_used(inst->scratch);
    std::uint64_t seen = scratch_bytes_max_.load(std::memory_order_relaxed);
    while (used > seen && !scratch_bytes_max_.compare_exchange_weak(seen, used)) {
    }
    auto removed = remove_scratch_dir(inst->scratch);
    if (shared_.log) {
      shared_.log(
          removed ? LogLevel::kDebug : LogLevel::kWarn, name_, version_,
          cat("instance ", inst->id, " shut down (", why, "); its scratch directory held ", used,
              " bytes", removed ? std::string() : cat("; ", removed.error().message)));
    }
  }
}

Result<void> FunctionEnv::prepare() {
  std::lock_guard<std::mutex> provision(provision_mu_);
  if (config_.snapshot_start) {
    auto snap = make(/*for_snapshot=*/true, nullptr, nullptr);
    if (!snap) {
      return fail(ErrorCode::kInitFailed,
                  cat(snap.error().message, " (the snapshot, made at publish)"));
    }
    std::lock_guard<std::shared_mutex> lock(snapshot_mu_);
    snapshot_ = std::move(*snap);
  }
  if (auto ok = provision_locked(config_.provisioned_concurrency); !ok) {
    std::unique_ptr<Instance> snap;
    {
      std::lock_guard<std::shared_mutex> lock(snapshot_mu_);
      snap = std::move(snapshot_);
    }
    if (snap) shut_down(std::move(snap), "publish failed");
    return ok;
  }
  return {};
}

Result<void> FunctionEnv::set_provisioned(int n) {
  std::lock_guard<std::mutex> provision(provision_mu_);
  return provision_locked(n);
}

Result<void> FunctionEnv::provision_locked(int n) {
  if (retiring_.load()) {
    return fail(ErrorCode::kNotFound,
                cat("function '", name_, "' version ", version_, " is retired"));
  }
  int have = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& i : all_) have += i->provisioned.load(std::memory_order_relaxed) ? 1 : 0;
  }
  if (n > have) {
    std::vector<std::unique_ptr<Instance>> made;
    for (int k = have; k < n; ++k) {
      auto inst = make(false, nullptr, nullptr);
      if (!inst) {
        for (auto& m : made) shut_down(std::move(m), "provisioning failed");
        return fail(ErrorCode::kInitFailed,
                    cat(inst.error().message, " (provisioning ", n, " instances; ", have,
                        " were provisioned, and stay so)"));
      }
      (*inst)->provisioned.store(true, std::memory_order_relaxed);
      made.push_back(std::move(*inst));
    }
    const std::int64_t now = shared_.time.now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      // retire() sets the flag before it empties the idle list under this lock: if it has not
      // been seen here, the instances listed now are retired with the rest.
      if (!retiring_.load(std::memory_order_seq_cst)) {
        for (auto& m : made) {
          m->idle_since = now;
          idle_.push_back(m.get());
          listed_provisioned_.fetch_add(1, std::memory_order_relaxed);
          all_.push_back(std::move(m));
        }
        made.clear();
      }
    }
    for (auto& m : made) shut_down(std::move(m), "version retired while provisioning");
    if (retiring_.load()) {
      return fail(ErrorCode::kNotFound,
                  cat("function '", name_, "' version ", version_, " was retired"));
    }
  } else if (n < have) {
    // The surplus becomes on-demand: idle ones first (they are reaped after idle_ttl).
    std::lock_guard<std::mutex> lock(mu_);
    drain_hot_locked();
    int surplus = have - n;
    for (Instance* i : idle_) {
      if (surplus == 0) break;
      if (i->provisioned.load(std::memory_order_relaxed)) {
        i->provisioned.store(false, std::memory_order_relaxed);
        listed_provisioned_.fetch_sub(1, std::memory_order_relaxed);
        --surplus;
      }
    }
    for (const auto& i : all_) {
      if (surplus == 0) break;
      if (i->provisioned.load(std::memory_order_relaxed)) {
        i->provisioned.store(false, std::memory_order_relaxed);  // busy: on-demand when back
        --surplus;
      }
    }
    arm_reap_locked(shared_.time.now());
  }
  provisioned_target_.store(n, std::memory_order_relaxed);
  return {};
}

// ---- the invoke path's slow side ----

void FunctionEnv::drain_hot_locked() {
  for (std::atomic<Instance*>* slot : {&hot_provisioned_, &hot_}) {
    if (Instance* i = slot->exchange(nullptr, std::memory_order_acq_rel)) {
      idle_.push_back(i);
      if (i->provisioned.load(std::memory_order_relaxed))
        listed_provisioned_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

Instance* FunctionEnv::take_slow() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  drain_hot_locked();
  if (idle_.empty()) return nullptr;
  // Provisioned first; among the rest the most recently used (the oldest idle age out).
  auto it = std::find_if(idle_.rbegin(), idle_.rend(), [](const Instance* i) {
    return i->provisioned.load(std::memory_order_relaxed);
  });
  if (it == idle_.rend()) it = idle_.rbegin();
  Instance* inst = *it;
  idle_.erase(std::next(it).base());
  if (inst->provisioned.load(std::memory_order_relaxed))
    listed_provisioned_.fetch_sub(1, std::memory_order_relaxed);
  return inst;
}

void FunctionEnv::put_slow(Instance* inst) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(inst);
  if (inst->provisioned.load(std::memory_order_relaxed))
    listed_provisioned_.fetch_add(1, std::memory_order_relaxed);
}

void FunctionEnv::after_put_slow() noexcept {
  if (retiring_.load(std::memory_order_seq_cst)) {
    retire_idle();
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  arm_reap_locked(shared_.time.now());
}

bool FunctionEnv::allow_new(std::int64_t now) {
  const int rate = config_.max_new_instances_per_second;
  if (rate <= 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (now > tokens_at_) {
    tokens_ = std::min<double>(rate, tokens_ + static_cast<double>(now - tokens_at_) * rate / 1e9);
    tokens_at_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Result<Instance*> FunctionEnv::make_for_invocation(std::int64_t* init_ns, bool* restored) {
  auto inst = make(false, init_ns, restored);
  if (!inst) return tl::unexpected<Error>(std::move(inst.error()));
  cold_starts_.fetch_add(1, std::memory_order_relaxed);
  Instance* raw = inst->get();
  std::lock_guard<std::mutex> lock(mu_);
  all_.push_back(std::move(*inst));
  return raw;
}

Result<void> FunctionEnv::prewarm(std::int64_t* init_ns) {
  auto inst = make(false, init_ns, nullptr);
  if (!inst) return tl::unexpected<Error>(std::move(inst.error()));
  const std::int64_t now = shared_.time.now();
  std::lock_guard<std::mutex> lock(mu_);
  (*inst)->idle_since = now;
  (*inst)->unreported_init_ns = init_ns != nullptr ? std::max<std::int64_t>(0, *init_ns) : 0;
  idle_.push_back(inst->get());
  all_.push_back(std::move(*inst));
  return {};
}

std::unique_ptr<Instance> FunctionEnv::unlist_locked(Instance* inst) {
  auto it = std::find_if(all_.begin(), all_.end(),
                         [&](const std::unique_ptr<Instance>& p) { return p.get() == inst; });
  if (it == all_.end()) return nullptr;
  std::unique_ptr<Instance> owned = std::move(*it);
  *it = std::move(all_.back());
  all_.pop_back();
  return owned;
}

void FunctionEnv::discard(Instance* inst, std::string_view why) {
  std::unique_ptr<Instance> owned;
  {
    std::lock_guard<std::mutex> lock(mu_);
    owned = unlist_locked(inst);
  }
  if (!owned) return;
  if (shared_.log) {
    shared_.log(LogLevel::kWarn, name_, version_, cat("instance ", inst->id, " discarded: ", why));
  }
  const bool was_provisioned = owned->provisioned.load(std::memory_order_relaxed);
  shut_down(std::move(owned), why);
  discarded_.fetch_add(1, std::memory_order_relaxed);  // after: a reader sees the work done
  if (was_provisioned && !retiring_.load()) {
    // As Lambda does, a provisioned environment that was thrown away is replaced.
    std::lock_guard<std::mutex> provision(provision_mu_);
    if (auto ok = provision_locked(provisioned_target()); !ok && shared_.log)
      shared_.log(LogLevel::kError, name_, version_, ok.error().message);
  }
}

// ---- reaping and retiring ----

void FunctionEnv::arm_reap_locked(std::int64_t now) {
  drain_hot_locked();
  std::int64_t next = kNever;
  for (const Instance* i : idle_) {
    if (!i->provisioned.load(std::memory_order_relaxed))
      next = std::min(next, add_saturating(i->idle_since, idle_ttl_ns_));
  }
  if (next == kNever || !shared_.arm_reap) {
    reap_armed_.store(false, std::memory_order_seq_cst);
    return;
  }
  reap_armed_.store(true, std::memory_order_seq_cst);
  if (next >= reap_at_ && reap_at_ != kNever && reap_at_ >= now) return;  // one is due sooner
  reap_at_ = next;
  shared_.arm_reap(this, next);
}

void FunctionEnv::reap(std::int64_t now) {
  std::vector<std::unique_ptr<Instance>> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reap_at_ <= now) reap_at_ = kNever;  // this is the armed one (or a later one will come)
    drain_hot_locked();
    for (std::size_t k = 0; k < idle_.size();) {
      Instance* i = idle_[k];
      if (!i->provisioned.load(std::memory_order_relaxed) &&
          add_saturating(i->idle_since, idle_ttl_ns_) <= now) {
        idle_[k] = idle_.back();
        idle_.pop_back();
        due.push_back(unlist_locked(i));
      } else {
        ++k;
      }
    }
    // Clear the flag first, then look again (put() exchanges, then reads the flag).
    reap_armed_.store(false, std::memory_order_seq_cst);
    arm_reap_locked(now);
  }
  for (auto& inst : due) {
    if (!inst) continue;
    shut_down(std::move(inst), "idle past idle_ttl");
    reaped_.fetch_add(1, std::memory_order_relaxed);
  }
}

void FunctionEnv::retire() {
  retiring_.store(true, std::memory_order_seq_cst);
  retire_idle();
  std::unique_ptr<Instance> snap;
  {
    std::lock_guard<std::shared_mutex> lock(snapshot_mu_);
    snap = std::move(snapshot_);
  }
  if (snap) shut_down(std::move(snap), "version retired");
}

void FunctionEnv::retire_idle() noexcept {
  std::vector<std::unique_ptr<Instance>> idle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_hot_locked();
    for (Instance* i : idle_) idle.push_back(unlist_locked(i));
    idle_.clear();
    listed_provisioned_.store(0, std::memory_order_relaxed);
  }
  for (auto& inst : idle) {
    if (inst) shut_down(std::move(inst), "version retired or engine shut down");
  }
}

void FunctionEnv::add_to(InstanceStats& out) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    out.instances += static_cast<int>(all_.size());
    out.idle += static_cast<int>(idle_.size()) +
                (hot_.load(std::memory_order_acquire) != nullptr ? 1 : 0) +
                (hot_provisioned_.load(std::memory_order_acquire) != nullptr ? 1 : 0);
    for (const auto& i : all_) out.provisioned += i->provisioned.load() ? 1 : 0;
  }
  out.provisioned_target += provisioned_target();
  out.cold_starts += cold_starts_.load();
  out.init_failures += init_failures_.load();
  out.snapshot_restores += snapshot_restores_.load();
  out.reaped += reaped_.load();
  out.discarded += discarded_.load();
  out.scale_up_throttles += scale_up_throttles_.load();
  out.out_of_memory += out_of_memory_.load();
  out.shutdowns += shutdowns_.load();
  out.scratch_bytes_max = std::max<std::uint64_t>(out.scratch_bytes_max, scratch_bytes_max_.load());
}

InstanceStats FunctionEnv::stats() const {
  InstanceStats s;
  add_to(s);
  return s;
}

}  // namespace detail
}  // namespace ember
