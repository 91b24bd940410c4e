// engine_core.hpp — everything behind ember::Engine: registry, limits, invocation paths.
//
// The path of one invocation (DESIGN.md §3): resolve (the caller holds a FunctionHandle) →
// admit (the function's ConcurrencyGate) → schedule (inline: this thread switches into a
// pooled fiber; pool: a worker does, and the caller waits or gets a callback) → run (the
// handler with a Context) → complete (result to the caller, slot back).
//
// The inline path touches: one CAS and one fetch_sub on the gate, two clock reads (precise at
// admission, coarse at return), a thread-local fiber cache and one fiber switch pair. No
// allocation, no lock, no system call.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/concurrency_gate.hpp"
#include "core/invocation.hpp"
#include "core/registry.hpp"
#include "ember/engine.hpp"
#include "ember/observe.hpp"
#include "sched/parker.hpp"
#include "sched/scheduler.hpp"
#include "sched/time_source.hpp"

namespace ember::detail {

// What the events module adds to an invoke_async.
struct AsyncExtras {
  const EventInfo* event = nullptr;  // copied into the call: Context::event()
  // No free slot: fail with kThrottled at once (counted as a throttle) instead of waiting in
  // the function's FIFO.
  bool no_wait = false;
  // When the event was first queued (engine time), for AsyncEventAge; 0 = now.
  std::int64_t enqueued_ns = 0;
};

class EngineCore final {
 public:
  // How an invocation ended, for metrics.
  enum class Outcome : std::uint8_t { kOk, kError, kTimeout };

  explicit EngineCore(EngineOptions options);
  ~EngineCore();
  EngineCore(const EngineCore&) = delete;
  EngineCore& operator=(const EngineCore&) = delete;

  [[nodiscard]] const std::optional<Error>& init_error() const noexcept { return init_error_; }
  [[nodiscard]] const EngineOptions& options() const noexcept { return options_; }
  [[nodiscard]] bool shutting_down() const noexcept {
    return shutting_down_.load(std::memory_order_acquire);
  }

  // `lifecycle` (may be null): the function runs on instances (ember/instance.hpp); its
  // snapshot and provisioned instances are made before it is published.
  Result<FunctionHandle> register_function(std::string_view name, FunctionConfig config,
                                           BytesHandler bytes, TypedHandler typed,
                                           const Lifecycle* lifecycle = nullptr);

  // ---- Execution environments (environments.cpp) ----
  // Engine::set_provisioned_concurrency / instance_stats.
  Result<void> set_provisioned_concurrency(std::string_view function, int n);
  Result<InstanceStats> instance_stats(std::string_view function) const;
  // How the engine's timer thread runs reaps (set by the Engine before any registration).
  void set_reaper(std::function<void(FunctionEnv*, std::int64_t)> arm) {
    env_shared_.arm_reap = std::move(arm);
  }
  // Makes the FunctionEnv of a version about to be published (snapshot, provisioned
  // instances). Errors: kInvalidArgument (lifecycle against config), kInitFailed.
  Result<std::unique_ptr<FunctionEnv>> make_env(std::string_view name, std::string_view version,
                                                const FunctionConfig& config,
                                                const Lifecycle& lifecycle);
  // Every environment's idle instances are shut down now, busy ones when they return.
  void retire_envs();
  Result<FunctionHandle> find(std::string_view name) const;
  // The route of exactly that key, or nullptr (lock-free; the by-name invoke's fast path).
  [[nodiscard]] Route* route(std::string_view key) const noexcept { return registry_.find(key); }

  // ---- Deploys (plugins, versions, aliases): deploy.cpp. Serialised by config_mu_. ----
  struct VersionSpec {
    std::string name;
    FunctionConfig config;
    BytesHandler handler;
    CodeOwner* code = nullptr;  // pinned by each invocation
    // A freshly initialised version: its first invocation is a cold start reporting this.
    std::optional<std::int64_t> init_ns;
    // Runs on instances (a plugin function with init): made with make_env before publish
    // (which takes it); `stateful` says so to the dry run, before it is made.
    std::unique_ptr<FunctionEnv> env;
    bool stateful = false;
  };
  // Publishes one new version of each function for `deployer` (an opaque owner: the plugin)
  // and points each function's latest route at it; the deployer's functions missing from
  // `specs` are removed. A name registered in C++ or owned by another deployer is refused, as
  // is an invalid config or a reservation the engine cannot give. With dry_run, only checks.
  // Nothing changes when an error is returned.
  Result<std::vector<FunctionRecord*>> publish(const void* deployer, std::string_view who,
                                               std::vector<VersionSpec>& specs, bool dry_run);
  // The version number the next publish of `function` will give.
  [[nodiscard]] int next_version(std::string_view function) const;
  // Removes every function of `deployer` (routes lead nowhere, aliases are deleted).
  void withdraw(const void* deployer);
  Result<void> set_alias(std::string_view function, std::string_view alias,
                         std::string_view version, std::string_view additional_version,
                         double additional_weight);
  Result<void> delete_alias(std::string_view function, std::string_view alias);
  Result<std::vector<std::string>> versions(std::string_view function) const;
  Result<std::vector<std::string>> aliases(std::string_view function) const;
  // Every live function, sorted by name (FunctionInfo::plugin left empty: the host knows).
  [[nodiscard]] std::vector<FunctionInfo> function_list() const;
  // Versions no route leads to any more (not latest, not an alias target): takes them off
  // their version routes, marks them retiring and returns them. Their code may be unloaded
  // once wait_unpinned says no invocation holds them.
  std::vector<FunctionRecord*> sweep();
  // Waits until no invocation pins any of `records`, or until `deadline` (engine time).
  bool wait_unpinned(const std::vector<FunctionRecord*>& records, std::int64_t deadline);
  // True if no invocation pins any of `records` (which no route leads to any more).
  [[nodiscard]] bool unpinned(const std::vector<FunctionRecord*>& records) const;
  // True on a handler's fiber or on one of this engine's workers (an async callback): there,
  // waiting for invocations to finish could wait for ourselves.
  [[nodiscard]] bool inside_engine() const noexcept {
    return current_fiber() != nullptr ||
           (scheduler_ != nullptr && scheduler_->current_worker() != nullptr);
  }
  // Waits until no handler runs (after shutdown): the code behind them may then go.
  void wait_quiescent();

  // Sync invoke (inline or pool). For typed calls the handler's Result<Out> goes to
  // typed->out and an empty string is returned; errors before or around the handler (limits,
  // timeouts) are returned.
  Result<std::string> invoke(FunctionHandle fn, std::string_view payload, TypedCall* typed,
                             const InvokeOptions& options);
  // The same, always inlined (only into invoke.cpp's entry points).
  [[gnu::always_inline]] inline Result<std::string> invoke_impl(FunctionHandle fn,
                                                                std::string_view payload,
                                                                TypedCall* typed,
                                                                const InvokeOptions& options);
  Result<void> invoke_async(FunctionHandle fn, std::string_view payload, InvokeCallback callback,
                            const InvokeOptions& options, const AsyncExtras* extras = nullptr);
  // The events module's counters (metrics): on the function `fn` leads to now.
  enum class EventCounter : std::uint8_t { kDropped, kDeadLetterError, kDestinationFailure };
  void count_event(FunctionHandle fn, EventCounter counter);
  // `reason` goes to the lifecycle observers' kShutdown event.
  void shutdown(absl::Duration drain, std::string_view reason);
  // The same with the drain's deadline in engine time (the facade reads the clock once for
  // the events' drain and the core's).
  void shutdown_until(std::int64_t deadline, std::string_view reason);
  [[nodiscard]] EngineStats stats() const;

  // ---- Observability: observe_hooks.cpp ----
  [[nodiscard]] MetricsSnapshot metrics() const;
  std::vector<Span> take_spans();
  std::uint64_t subscribe(std::shared_ptr<LifecycleObserver> observer, LifecycleEventMask mask);
  bool unsubscribe(std::uint64_t id);
  // Tells the subscribers of event.type (cheap when there are none).
  void emit(const LifecycleEvent& event) const;
  // True if some subscription wants events of type t (check before building one).
  [[nodiscard]] bool wants(LifecycleEventType t) const noexcept {
    const Observers* list = observers_.load(std::memory_order_acquire);
    return list != nullptr && (list->mask & lifecycle_mask(t)) != 0;
  }
  // Counts lost log lines and tells the observers.
  void logs_dropped(std::uint64_t n, std::string_view reason) const;
  // The plugin host around a version's init, and once it is published.
  void observe_init_start(std::string_view function, std::string_view version);
  void observe_init_report(std::string_view function, std::string_view version,
                           std::int64_t duration_ns, const Error* error);
  void set_cold(FunctionRecord* record, std::int64_t init_ns) noexcept;
  // What Context::trace() returns.
  [[nodiscard]] static TraceContext trace_of(const Invocation& inv) noexcept;

  // Context support.
  TimeSource& time() noexcept { return time_; }
  Engine& engine() noexcept { return *engine_; }
  void set_engine(Engine* e) noexcept { engine_ = e; }
  void log(LogLevel level, std::string_view function, std::string_view request_id,
           std::string_view message, LogKind kind = LogKind::kEngine, std::string_view version = {},
           const InvocationReport* report = nullptr) const;
  [[nodiscard]] bool draining_over() const noexcept {
    return drain_over_.load(std::memory_order_relaxed);
  }
  void format_request_id(const Invocation& inv, char (&out)[37]) const noexcept;
  // Task::describe of an invocation (the stack overflow report): "function 'f' (request id r".
  static std::size_t describe_task(const Task* task, char* buf, std::size_t size) noexcept;
  Result<void> sleep(Invocation& inv, absl::Duration d);
  Result<void> yield(Invocation& inv);
  [[nodiscard]] Result<void> check(const Invocation& inv) const;
  Error timeout_error(const FunctionRecord& fn, std::int64_t timeout_ns) const;

 private:
  Result<void> validate(const EngineOptions& o) const;
  void shutdown_impl(std::int64_t drain_ns, std::optional<std::int64_t> until,
                     std::string_view reason);
  Result<void> validate(std::string_view name, const FunctionConfig& c) const;
  // provisioned_concurrency needs instances and fits in reserved_concurrency.
  Result<void> check_provisioned(std::string_view name, const FunctionConfig& c,
                                 bool has_instances) const;
  // Reservations (config_mu_ held).
  Result<void> check_reservation(std::string_view name, std::int64_t reserve,
                                 std::int64_t reserved_elsewhere) const;
  ConcurrencyGate* reserve_gate(FunctionEntry& entry, std::int64_t reserve);
  void unreserve(FunctionEntry& entry);
  // Deploys (config_mu_ held): a route that leads nowhere; a function gone (latest route and
  // aliases cleared, reservation returned).
  static void clear_route(Route& route);
  void remove_function(FunctionEntry& e);
  [[gnu::cold]] Result<void> check_call(FunctionRecord* fn, std::string_view payload,
                                        const TypedCall* typed, std::size_t payload_limit) const;
  [[gnu::cold]] Error throttled(const FunctionRecord& fn);
  [[gnu::cold]] Error bad_handle(const Route* route) const;
  [[gnu::cold]] Error recursion_error(const FunctionRecord& fn, const Invocation* parent) const;
  [[gnu::cold]] Error shutting_down_error(const FunctionRecord& fn) const;
  [[gnu::cold]] tl::unexpected<Error> handler_threw(const FunctionRecord& fn);

  [[gnu::always_inline]] inline Result<std::string> run_inline(
      FunctionRecord* fn, std::string_view payload, TypedCall* typed, const InvokeOptions& options,
      Invocation* parent, Fiber* self, Instance* instance);
  Result<std::string> run_pooled(FunctionRecord* fn, std::string_view payload, TypedCall* typed,
                                 const InvokeOptions& options, Invocation* parent, Fiber* self,
                                 Instance* instance);
  // ---- Execution environments on the invoke path (environments.cpp) ----
  // Admission of a stateful function: a warm instance, kNewInstance (the scale-up guard let a
  // new one be made), or nullptr after a scale-up throttle (then *error says so).
  [[gnu::cold]] Instance* admit_instance(FunctionRecord* fn, Error* error);
  [[gnu::cold]] Error scale_up_throttled(FunctionRecord* fn);
  // On the fiber: takes or makes the instance (a cold start runs init here), runs the handler
  // with it, and checks its memory. inv.instance is then the instance to give back (or null).
  Outcome call_with_instance(Invocation& inv);
  // After the outcome is final: the instance goes back warm, or is discarded after a timeout,
  // a throw or running out of memory.
  void return_instance(Invocation& inv, Outcome outcome, std::int64_t now);
  [[gnu::cold]] void discard_instance(Invocation& inv, Instance* inst, Outcome outcome);
  [[gnu::cold]] void cold_start(Invocation& inv);
  // A stateless invocation that used Context::memory(): kOutOfMemory if it went past its limit.
  [[gnu::cold]] Outcome end_memory(Invocation& inv, Outcome outcome);
  // An instance handed out but never used (no fiber could be had).
  void unused_instance(Invocation& inv) noexcept;
  std::int64_t deadline_for(const FunctionRecord& fn, const InvokeOptions& options,
                            const Invocation* parent, std::int64_t now, std::int64_t slack,
                            std::int64_t* timeout_ns) const noexcept;

  // On the fiber.
  static void run_task(Task* t);
  static void abandon_task(Task* t);
  Outcome call_handler(Invocation& inv);  // lets forced_unwind through
  [[gnu::cold]] Outcome handler_failed(const Invocation& inv, const Error& error);
  // The handler's side is done: decides who answers the caller. Returns 0 if this side does
  // (kSettled is set; no release can come any more), else the release bits already set.
  std::uint64_t settle(PendingCall* pc);
  // Then delivers the result (released == 0: sets kDone and wakes or calls back the caller),
  // or notes the late return. pc may be recycled on return.
  void finish_pooled(PendingCall* pc, bool ran, std::uint64_t released);
  void release_slot(FunctionRecord* fn) noexcept {
    fn->gate->release();
    if (shutting_down_.load(std::memory_order_relaxed)) drain_parker_.unpark();
    unpin(fn);
  }
  // The version an invoke of `route` runs, pinned if it is plugin code (see pin); nullptr if
  // the route leads nowhere now.
  [[gnu::always_inline]] FunctionRecord* resolve(Route* route) noexcept {
    FunctionRecord* fn = route->pick();
    if (fn == nullptr || fn->code == nullptr) return fn;
    return pin(route, fn);
  }
  // Pins a plugin version: count it on this thread's pin slot, then check that the route still
  // leads to it; the unloader routes away, issues a process-wide barrier, then sums the
  // slots (see pins.hpp for why either we back off or it sees us).
  FunctionRecord* pin(Route* route, FunctionRecord* fn) noexcept {
    const int slot = pin_slot();
    for (;;) {
      fn->pins->add(slot, asymmetric_pins_);
      if (route->leads_to(fn)) [[likely]]
        return fn;
      fn->pins->remove(slot, asymmetric_pins_);
      fn = route->pick();
      if (fn == nullptr || fn->code == nullptr) return fn;
    }
  }
  void unpin(FunctionRecord* fn) noexcept {
    if (fn->code == nullptr) return;
    fn->pins->remove(pin_slot(), asymmetric_pins_);
    // A missed wake-up (this relaxed read racing with the unloader's store) costs the
    // unloader at most one poll interval (wait_unpinned).
    if (fn->retiring.load(std::memory_order_relaxed)) [[unlikely]]
      deploy_parker_.unpark();
  }
  [[gnu::cold]] Error unrouted_error(const Route& route) const;
  void note_overrun(const Invocation& inv);
  void set_error(Invocation& inv, Error error);

  // PendingCall lifecycle.
  PendingCall* acquire_call(FunctionRecord* fn, int refs);
  void unref(PendingCall* pc) noexcept;
  // Gives the caller's side an error instead of the result (timeout or shutdown). Exactly one
  // of finish_pooled and try_release wins a call; true if we did.
  bool try_release(PendingCall* pc, std::uint64_t reason,
                   std::uint64_t generation = ~std::uint64_t{0});
  Error release_error(const PendingCall& pc, std::uint64_t state) const;
  void deliver_release(PendingCall* pc, std::uint64_t reason_state);
  static std::int64_t on_overdue(Task* task, std::int64_t now, void* self);
  void start_async(PendingCall* pc, std::int64_t now);
  static void admit_waiter(GateWaiter* w, void* self);
  static void on_fiber_wait_deadline(Timer* t);
  static void on_queue_timeout(Timer* t);

  // ---- Metrics and observation (invoke.cpp, observe_hooks.cpp) ----
  // This thread's shard of fn's metrics; nullptr if metrics are off or this thread has no pin
  // slot of its own (then count_locked).
  [[gnu::always_inline]] MetricShard* metric_shard(FunctionRecord* fn) noexcept {
    if (!metrics_) return nullptr;
    const int slot = pin_slot();
    return slot < kPinSlots ? &fn->stats->shard(slot) : nullptr;
  }
  // Counts an admitted invocation (Invocations) about to run.
  void count_started(FunctionRecord* fn);
  // Counts the end of an invocation: duration < 0 when it never ran. The admission was
  // counted before (see stats.hpp for the order).
  [[gnu::always_inline]] static void count_end(MetricShard& s, Outcome outcome, bool cold,
                                               std::int64_t duration) noexcept {
    std::atomic_thread_fence(std::memory_order_release);  // after the admission (no-op on x86)
    if (outcome != Outcome::kOk) [[unlikely]] {
      s.errors.add();
      if (outcome == Outcome::kTimeout) {
        std::atomic_thread_fence(std::memory_order_release);  // the error first
        s.timeouts.add();
      }
    }
    if (cold) [[unlikely]]
      s.cold_starts.add();
    if (duration >= 0) [[likely]] {
      s.duration.record(static_cast<std::uint64_t>(duration));
    } else {
      s.ended_unrun.add();
    }
  }
  void count_end_any(FunctionRecord* fn, Outcome outcome, bool cold, std::int64_t duration);
  template <typename F>
  void count(FunctionRecord* fn, F&& f) {
    if (metrics_) fn->stats->write(std::forward<F>(f));
  }
  // Decides at the invoke site whether this invocation takes the observed path (logs, trace,
  // lifecycle events): one test when nothing is on.
  [[gnu::always_inline]] void prepare_observe(Invocation& inv, const InvokeOptions& options,
                                              const Invocation* parent) {
    const std::uint8_t want = hooks_.load(std::memory_order_relaxed) |
                              static_cast<std::uint8_t>(inv.fn->config.report_logs) |
                              static_cast<std::uint8_t>(options.trace.trace_id.valid()) |
                              (parent != nullptr ? parent->observe : std::uint8_t{0});
    inv.observe = 0;
    if (want != 0) [[unlikely]]
      prepare_observed(inv, options.trace, parent);
  }
  [[gnu::cold, gnu::noinline]] void prepare_observed(Invocation& inv, const TraceContext& in,
                                                     const Invocation* parent);
  [[gnu::cold, gnu::noinline]] void observe_start(Invocation& inv);
  // `caller_error`: what the caller got instead of the handler's result (it was released), or
  // nullptr.
  [[gnu::cold, gnu::noinline]] void observe_end(Invocation& inv, std::int64_t end, Outcome outcome,
                                                const Error* caller_error);
  // The cold start of fn's version, if nobody took it yet (its Init Duration is counted then).
  [[gnu::cold]] bool take_cold(FunctionRecord* fn, std::int64_t* init_ns) noexcept;
  const Error* error_of(const Invocation& inv) const noexcept;
  void record_span(const Invocation& inv, std::int64_t end, const Error* error);

  void init_observe();

  [[nodiscard]] std::int64_t in_flight() const;
  [[nodiscard]] std::int64_t calls_in_use();

  EngineOptions options_;
  std::optional<Error> init_error_;
  Engine* engine_ = nullptr;
  const std::uint64_t request_nonce_;
  TimeSource time_;
  EnvShared env_shared_;
  std::vector<FunctionEnv*> envs_;  // guarded by config_mu_: every environment published
  Registry registry_;
  ConcurrencyGate unreserved_;
  mutable std::mutex config_mu_;         // serialises registration (reservations); guards gates_
  std::int64_t reserved_total_ = 0;      // guarded by config_mu_
  std::vector<ConcurrencyGate*> gates_;  // guarded by config_mu_
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> drain_over_{false};
  std::mutex shutdown_mu_;
  std::atomic<std::thread::id> shutdown_thread_{};  // the thread inside shutdown(), if any
  Parker drain_parker_;
  Parker deploy_parker_;  // unparked when a retiring version's last invocation returns
  const bool asymmetric_pins_ = asymmetric_pins_available();
  // Counters (cold paths only: errors, throttles, timeouts).
  std::atomic<std::uint64_t> throttles_{0};
  std::atomic<std::uint64_t> timeouts_{0};
  std::atomic<std::uint64_t> handler_errors_{0};
  std::atomic<std::uint64_t> overruns_{0};
  std::atomic<std::int64_t> running_overruns_{0};
  // PendingCall pool: every record ever made (for shutdown and destruction) and a free list.
  std::mutex calls_mu_;
  std::vector<std::unique_ptr<PendingCall>> all_calls_;  // guarded by calls_mu_
  moodycamel::ConcurrentQueue<PendingCall*> free_calls_;
  // Observability (observe_hooks.cpp).
  const bool metrics_;
  // kHook* bits: whether any invocation needs the observed path regardless of its function.
  static constexpr std::uint8_t kHookEvents = kObserveEvents;   // invoke events subscribed
  static constexpr std::uint8_t kHookSampling = kObserveTrace;  // trace_sample_rate > 0
  std::atomic<std::uint8_t> hooks_{0};
  std::uint64_t sample_threshold_ = 0;  // a root is sampled if a random u64 < this (rate 1: all)
  mutable std::atomic<std::uint64_t> logs_dropped_{0};
  struct Observers {  // an immutable list of subscriptions
    struct Subscription {
      std::uint64_t id;
      LifecycleEventMask mask;
      std::shared_ptr<LifecycleObserver> observer;
    };
    std::vector<Subscription> subscriptions;
    LifecycleEventMask mask = 0;  // the union
  };
  std::atomic<const Observers*> observers_{nullptr};
  std::mutex observers_mu_;  // serialises subscribe/unsubscribe; guards retired_observers_
  std::vector<std::unique_ptr<const Observers>> retired_observers_;  // kept: readers may hold them
  std::uint64_t next_subscription_ = 1;                              // guarded by observers_mu_
  struct SpanBuffer {
    explicit SpanBuffer(std::size_t cap) : capacity(cap) {}
    const std::size_t capacity;
    std::mutex mu;
    std::vector<Span> spans;                                         // guarded by mu
    std::uint64_t dropped = 0;                                       // guarded by mu
    std::vector<std::pair<std::thread::id, std::uint32_t>> callers;  // guarded by mu
  };
  std::unique_ptr<SpanBuffer> spans_;
  std::atomic<bool> shutdown_told_{false};
  // Last: destroyed first, so workers are joined before anything they touch goes away.
  std::unique_ptr<Scheduler> scheduler_;
};

}  // namespace ember::detail
