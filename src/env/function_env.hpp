// function_env.hpp — the instances (execution environments) of one function version.
//
// A FunctionEnv owns every instance of one published version: the warm ones waiting, the busy
// ones (held by an invocation), the provisioned ones and the snapshot a snapshot-start version
// clones from. The invoke path touches it twice per invocation of a stateful function:
//   take()  — one atomic exchange on the hot slot (the instance returned last), or, when that
//             is empty, the idle list under a mutex;
//   put()   — one atomic exchange back into the hot slot, and a relaxed load of two flags.
// Everything else (init, clone, shutdown, reaping, provisioning, scale-up tokens) is the slow
// path under `mu_`, off the warm path. Functions without a Lifecycle have no FunctionEnv.
//
// Concurrency: an instance belongs to one invocation at a time (take/put hand it over, with
// acquire/release ordering), so its state needs no lock. Reaping runs on the engine's timer
// thread, retiring on whichever thread retires the version; both take instances out of the
// hot slot and the idle list exactly as an invocation would, so no instance is shut down twice
// or while busy.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "ember/instance.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"
#include "env/bounded_resource.hpp"
#include "sched/time_source.hpp"

namespace ember::detail {

class FunctionEnv;

struct Instance {
  Instance(FunctionEnv* owner, std::uint64_t instance_id, std::size_t memory_limit)
      : env(owner), id(instance_id), memory(memory_limit) {}
  FunctionEnv* const env;
  const std::uint64_t id;
  void* state = nullptr;
  BoundedResource memory;
  std::string scratch;          // "" without a scratch directory
  std::int64_t idle_since = 0;  // engine time it last went idle (written by its holder)
  // Made ahead of any invocation (prewarm): its first invocation is the cold start that
  // reports this init duration; -1 once reported (or for instances made otherwise).
  std::int64_t unreported_init_ns = -1;
  std::atomic<bool> provisioned{false};
};

// What every FunctionEnv of one engine shares.
struct EnvShared {
  explicit EnvShared(TimeSource& t) : time(t) {}
  TimeSource& time;
  std::string scratch_root;  // resolved (EngineOptions::scratch_root or the default)
  std::atomic<std::uint64_t> next_instance_id{1};
  // Engine log lines (init failures, discards, reaping). Set before any env is made.
  std::function<void(LogLevel, std::string_view function, std::string_view version,
                     std::string_view message)>
      log;
  // Asks for env->reap(now) to run on the engine's timer thread at engine time `when`. Empty:
  // nothing reaps (idle instances then live until their version retires).
  std::function<void(FunctionEnv* env, std::int64_t when)> arm_reap;
};

// What InitContext reads during one init or clone.
struct InitCall {
  const FunctionEnv* env = nullptr;
  const Instance* instance = nullptr;
  std::int64_t deadline = 0;  // engine time: start + init_timeout
  static InitContext make_context(const InitCall* call) noexcept { return InitContext(call); }
};

class FunctionEnv final {
 public:
  FunctionEnv(EnvShared& shared, std::string name, std::string version,
              const FunctionConfig& config, Lifecycle lifecycle);
  // Shuts down whatever instances are left (retire() normally did).
  ~FunctionEnv();
  FunctionEnv(const FunctionEnv&) = delete;
  FunctionEnv& operator=(const FunctionEnv&) = delete;

  // Checks the lifecycle against the config (kInvalidArgument naming the field): init is
  // required; snapshot_start requires clone.
  static Result<void> validate(std::string_view function, const FunctionConfig& config,
                               const Lifecycle& lifecycle);

  // At publish: the snapshot (snapshot_start) and the provisioned instances. kInitFailed names
  // the function and the instance; nothing is left made when an error is returned.
  Result<void> prepare();
  // Provisioned concurrency now `n`: new instances are made (on this thread) for an increase;
  // for a decrease the surplus becomes on-demand (reaped once idle past idle_ttl). On an
  // error, the instances this call made are shut down and the target stays as it was.
  Result<void> set_provisioned(int n);

  // ---- the invoke path ----
  // A warm instance (provisioned ones first), or nullptr if none is idle.
  [[nodiscard]] Instance* take() noexcept {
    if (hot_provisioned_.load(std::memory_order_relaxed) != nullptr) [[unlikely]] {
      if (Instance* i = hot_provisioned_.exchange(nullptr, std::memory_order_acquire)) return i;
    }
    if (listed_provisioned_.load(std::memory_order_relaxed) == 0) [[likely]] {
      if (Instance* i = hot_.exchange(nullptr, std::memory_order_acquire)) [[likely]]
        return i;
    }
    return take_slow();
  }
  // No warm instance: may a new one be made now (scale-up guard)? Takes a token.
  [[nodiscard]] bool allow_new(std::int64_t now);
  // Makes an on-demand instance for an invocation (init, or clone from the snapshot), on the
  // calling fiber. `init_ns` gets its duration, `restored` whether it was a clone.
  Result<Instance*> make_for_invocation(std::int64_t* init_ns, bool* restored);
  // Before publish: makes one on-demand instance (init, on this thread) and lists it idle, so
  // that a version whose init fails is never published (plugin loads). `init_ns` gets its
  // duration. No reap is armed for it (the env may be destroyed unpublished): the first put()
  // or a reap() call arms one.
  Result<void> prewarm(std::int64_t* init_ns);
  // Gives a served instance back (warm), idle since `now`.
  void put(Instance* inst, std::int64_t now) noexcept {
    inst->idle_since = now;
    const bool provisioned = inst->provisioned.load(std::memory_order_relaxed);
    std::atomic<Instance*>& slot = provisioned ? hot_provisioned_ : hot_;
    if (Instance* displaced = slot.exchange(inst, std::memory_order_seq_cst)) [[unlikely]]
      put_slow(displaced);
    // Seen after the exchange (seq_cst): a reaper or retire() that cleared or set these flags
    // either sees our instance in the slot or we see its flag.
    if ((!provisioned && !reap_armed_.load(std::memory_order_seq_cst)) ||
        retiring_.load(std::memory_order_seq_cst)) [[unlikely]]
      after_put_slow();
  }
  // Throws a served instance away (its invocation timed out, threw or ran out of memory):
  // runs its shutdown now.
  void discard(Instance* inst, std::string_view why);

  // Reaper: shuts down on-demand instances idle since before now - idle_ttl; re-arms itself
  // for the next one due.
  void reap(std::int64_t now);
  // The version is gone or the engine shuts down: idle instances are shut down now, busy ones
  // when put() gives them back. Idempotent.
  void retire();

  [[nodiscard]] InstanceStats stats() const;
  void add_to(InstanceStats& out) const;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& version() const noexcept { return version_; }
  [[nodiscard]] const FunctionConfig& config() const noexcept { return config_; }
  [[nodiscard]] const Lifecycle& lifecycle() const noexcept { return lifecycle_; }
  [[nodiscard]] EnvShared& shared() const noexcept { return shared_; }
  [[nodiscard]] int provisioned_target() const noexcept {
    return provisioned_target_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t scale_up_throttles() const noexcept {
    return scale_up_throttles_.load(std::memory_order_relaxed);
  }
  void count_scale_up_throttle() noexcept {
    scale_up_throttles_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_out_of_memory() noexcept { out_of_memory_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Instance* take_slow() noexcept;
  void put_slow(Instance* inst) noexcept;
  void after_put_slow() noexcept;
  void retire_idle() noexcept;
  // Lifecycle::shutdown(state), counted; a throw is logged.
  void run_shutdown_hook(void* state, std::uint64_t id) noexcept;
  [[nodiscard]] std::string who(std::uint64_t instance_id) const;  // for error messages
  Result<void> provision_locked(int n);                            // provision_mu_ held
  // Makes one instance (init or clone). Not yet listed anywhere.
  Result<std::unique_ptr<Instance>> make(bool for_snapshot, std::int64_t* init_ns, bool* restored);
  // Runs the shutdown hook and removes the scratch directory; `why` for the log.
  void shut_down(std::unique_ptr<Instance> inst, std::string_view why) noexcept;
  // Moves the hot slots' instances to the idle list (mu_ held).
  void drain_hot_locked();
  std::unique_ptr<Instance> unlist_locked(Instance* inst);
  void arm_reap_locked(std::int64_t now);

  EnvShared& shared_;
  const std::string name_;
  const std::string version_;
  const FunctionConfig config_;
  const Lifecycle lifecycle_;
  const std::int64_t init_timeout_ns_;
  const std::int64_t idle_ttl_ns_;
  const std::size_t memory_limit_;

  // The instance given back last, one slot for provisioned ones and one for the rest.
  std::atomic<Instance*> hot_provisioned_{nullptr};
  std::atomic<Instance*> hot_{nullptr};
  std::atomic<int> listed_provisioned_{0};  // provisioned instances in idle_ (written under mu_)
  std::atomic<bool> reap_armed_{false};     // a reap is armed for this env's idle instances
  std::atomic<bool> retiring_{false};
  std::atomic<int> provisioned_target_{0};

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Instance>> all_;  // guarded by mu_: every live instance
  std::vector<Instance*> idle_;                 // guarded by mu_: idle, not in the hot slot
  mutable std::shared_mutex snapshot_mu_;       // clones share it; publish and retire own it
  std::unique_ptr<Instance> snapshot_;          // guarded by snapshot_mu_; never serves
  double tokens_ = 0;                           // guarded by mu_: scale-up tokens
  std::int64_t tokens_at_ = 0;                  // guarded by mu_: when tokens_ was computed
  std::int64_t reap_at_ = kNever;               // guarded by mu_: the armed reap's time
  std::mutex provision_mu_;                     // serialises prepare / set_provisioned

  mutable std::atomic<std::uint64_t> cold_starts_{0}, init_failures_{0}, snapshot_restores_{0},
      reaped_{0}, discarded_{0}, scale_up_throttles_{0}, out_of_memory_{0}, shutdowns_{0},
      scratch_bytes_max_{0};
};

}  // namespace ember::detail
