// The invocation paths: admission, inline and pool dispatch, async invokes, and the completion
// protocol between a handler's side and its caller's side.
#include <absl/strings/str_format.h>
#include <cxxabi.h>
#include <immintrin.h>

#include <boost/context/detail/exception.hpp>
#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

#include "core/engine_core.hpp"
#include "core/str_cat.hpp"

namespace ember::detail {

namespace {

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

// "std::runtime_error: boom" for the exception being handled.
std::string describe_current_exception() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  std::string type_name = type != nullptr ? demangle(type->name()) : "unknown exception";
  try {
    throw;
  } catch (const std::exception& e) {
    return cat(type_name, ": ", e.what());
  } catch (...) {
    return cat(type_name, " (not derived from std::exception)");
  }
}

std::string seconds(std::int64_t ns) {
  return absl::StrFormat("%.2f", static_cast<double>(ns) / 1e9);
}

PendingCall* call_of(Timer* t) { return static_cast<CallTimer*>(t)->call; }

}  // namespace

// ---- errors ----

Error EngineCore::throttled(const FunctionRecord& fn) {
  throttles_.fetch_add(1, std::memory_order_relaxed);
  const ConcurrencyGate& g = *fn.gate;
  const int reason = static_cast<int>(&g == &unreserved_ ? ThrottleReason::kUnreservedConcurrency
                                                         : ThrottleReason::kReservedConcurrency);
  count(const_cast<FunctionRecord*>(&fn), [&](MetricShard& s) { s.throttles[reason].add(); });
  return Error{
      ErrorCode::kThrottled,
      cat("function '", fn.name, "' throttled: ", g.description(), " (", g.limit(), ") is in use",
          &g == &unreserved_ ? cat(" (engine concurrency_limit ", options_.concurrency_limit, ")")
                             : std::string())};
}

Error EngineCore::recursion_error(const FunctionRecord& fn, const Invocation* parent) const {
  std::string chain(fn.name);
  int shown = 0;
  for (const Invocation* p = parent; p != nullptr && shown < 4; p = p->parent, ++shown) {
    chain = cat(p->fn->name, " -> ", chain);
  }
  if (shown == 4) chain = cat("... -> ", chain);
  return Error{
      ErrorCode::kRecursionLimit,
      cat("function '", fn.name, "' would nest ", parent->depth + 2,
          " invocations deep (max_invoke_depth ", options_.max_invoke_depth, "): ", chain)};
}

Error EngineCore::timeout_error(const FunctionRecord& fn, std::int64_t timeout_ns) const {
  return Error{ErrorCode::kTimeout, cat("function '", fn.name, "': Task timed out after ",
                                        seconds(timeout_ns), " seconds")};
}

Error EngineCore::bad_handle(const Route* route) const {
  if (route == nullptr)
    return Error{ErrorCode::kInvalidArgument, "invoke of an empty FunctionHandle"};
  return Error{ErrorCode::kInvalidArgument,
               cat("function '", route->name, "' belongs to another engine")};
}

Result<void> EngineCore::check_call(FunctionRecord* fn, std::string_view payload,
                                    const TypedCall* typed, std::size_t payload_limit) const {
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  if (typed != nullptr) {
    if (!fn->is_typed()) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", fn->name, "' takes bytes; invoke it with a payload string"));
    }
    if (*typed->in_type != *fn->typed.in_type || *typed->out_type != *fn->typed.out_type) {
      return fail(
          ErrorCode::kInvalidArgument,
          cat("function '", fn->name, "' is typed ", demangle(fn->typed.out_type->name()), "(",
              demangle(fn->typed.in_type->name()), "); invoked as ",
              demangle(typed->out_type->name()), "(", demangle(typed->in_type->name()), ")"));
    }
  } else {
    if (fn->is_typed()) {
      return fail(ErrorCode::kInvalidArgument,
                  cat("function '", fn->name, "' is typed (", demangle(fn->typed.in_type->name()),
                      " in); invoke it with invoke<Out>(fn, in)"));
    }
    if (payload.size() > payload_limit) {
      return fail(ErrorCode::kPayloadTooLarge,
                  cat("function '", fn->name, "': request payload of ", payload.size(),
                      " bytes exceeds the limit of ", payload_limit));
    }
  }
  return {};
}

// ---- sync invoke ----

std::int64_t EngineCore::deadline_for(const FunctionRecord& fn, const InvokeOptions& options,
                                      const Invocation* parent, std::int64_t now,
                                      std::int64_t slack, std::int64_t* timeout_ns) const noexcept {
  std::int64_t timeout = fn.timeout_ns;
  if (options.timeout)
    timeout = std::min(timeout, std::max<std::int64_t>(0, to_nanos(*options.timeout)));
  std::int64_t deadline = add_saturating(now, add_saturating(timeout, slack));
  if (parent != nullptr && parent->deadline < deadline) {
    deadline = parent->deadline;
    timeout = std::max<std::int64_t>(0, deadline - now);
  }
  *timeout_ns = timeout;
  return deadline;
}

Result<std::string> EngineCore::invoke(FunctionHandle handle, std::string_view payload,
                                       TypedCall* typed, const InvokeOptions& options) {
  return invoke_impl(handle, payload, typed, options);
}

inline Result<std::string> EngineCore::invoke_impl(FunctionHandle handle, std::string_view payload,
                                                   TypedCall* typed, const InvokeOptions& options) {
  Route* route = handle.route_;
  if (route == nullptr || route->owner != this) [[unlikely]]
    return tl::unexpected<Error>(bad_handle(route));
  FunctionRecord* fn = resolve(route);  // pinned if it is plugin code
  if (fn == nullptr) [[unlikely]]
    return tl::unexpected<Error>(unrouted_error(*route));
  // One branch for the common case; check_call says exactly what is wrong otherwise.
  if (typed == nullptr ? fn->typed_flag || payload.size() > options_.max_sync_payload
                       : !fn->typed_flag || *typed->in_type != *fn->typed.in_type ||
                             *typed->out_type != *fn->typed.out_type) [[unlikely]] {
    if (auto ok = check_call(fn, payload, typed, options_.max_sync_payload); !ok) {
      unpin(fn);
      return tl::unexpected<Error>(std::move(ok.error()));
    }
  }
  Fiber* self = current_fiber();
  Invocation* parent = self != nullptr ? static_cast<Invocation*>(self->task()) : nullptr;
  if (parent != nullptr && parent->depth + 1 >= options_.max_invoke_depth) [[unlikely]] {
    unpin(fn);
    return tl::unexpected<Error>(recursion_error(*fn, parent));
  }
  if (!fn->gate->try_acquire()) [[unlikely]] {
    unpin(fn);
    return tl::unexpected<Error>(throttled(*fn));
  }
  // The CAS above is a full barrier: shutdown() either sees our slot or we see its flag.
  if (shutting_down_.load(std::memory_order_relaxed)) [[unlikely]] {
    if (parent == nullptr || drain_over_.load()) {
      release_slot(fn);
      return tl::unexpected<Error>(shutting_down_error(*fn));
    }
  }
  Instance* instance = nullptr;
  if (fn->env != nullptr) [[unlikely]] {
    // A stateful function: a warm instance, or leave to make a new one. The scale-up guard
    // refuses here, before the invocation counts.
    instance = fn->env->take();
    if (instance == nullptr) {
      Error error;
      instance = admit_instance(fn, &error);
      if (instance == nullptr) {
        release_slot(fn);
        return tl::unexpected<Error>(std::move(error));
      }
    }
  }
  if (options.dispatch.value_or(fn->config.dispatch) == Dispatch::kInline) [[likely]] {
    return run_inline(fn, payload, typed, options, parent, self, instance);
  }
  return run_pooled(fn, payload, typed, options, parent, self, instance);
}

Error EngineCore::shutting_down_error(const FunctionRecord& fn) const {
  return Error{ErrorCode::kShuttingDown, cat("function '", fn.name, "': engine is shutting down")};
}

inline Result<std::string> EngineCore::run_inline(FunctionRecord* fn, std::string_view payload,
                                                  TypedCall* typed, const InvokeOptions& options,
                                                  Invocation* parent, Fiber* self,
                                                  Instance* instance) {
  Result<std::string> out;  // the caller's return value: the handler constructs into it
  Invocation inv;
  inv.run = &EngineCore::run_task;
  inv.abandon = &EngineCore::abandon_task;
  inv.describe = &EngineCore::describe_task;
  inv.stack_size = fn->stack_size;
  inv.core = this;
  inv.fn = fn;
  inv.parent = parent;
  inv.depth = parent != nullptr ? parent->depth + 1 : 0;
  // Clock read 1 of 2, precise: the deadline must never fire early. It is also the start of
  // the Duration metric.
  inv.start_ns = time_.now();
  inv.deadline = deadline_for(*fn, options, parent, inv.start_ns, 0, &inv.timeout_ns);
  inv.payload = payload;
  inv.typed = typed;
  inv.client_context = options.client_context;
  inv.out = &out;
  inv.instance = instance;
  inv.request_id[0] = '\0';
  // Metrics: this thread's shard, written again when the handler returns (same thread).
  inv.shard = metric_shard(fn);
  if (inv.shard != nullptr) [[likely]] {
    inv.shard->invocations.add();
  } else if (metrics_) {
    count_started(fn);
  }
  prepare_observe(inv, options, parent);

  Fiber* f = scheduler_->acquire_fiber(fn->stack_size);
  if (f == nullptr) [[unlikely]] {
    unused_instance(inv);
    count_end_any(fn, Outcome::kError, false, -1);
    release_slot(fn);
    return fail(ErrorCode::kInternal,
                cat("function '", fn->name, "': could not map a fiber stack of ", fn->stack_size,
                    " bytes"));
  }
  if (parent != nullptr) {
    // Nested: the child shares the parent's thread and home executor.
    f->assign(&inv, self->home_if_built(), self->lazy_home());
    f->switch_in();
    if (f->idle()) {
      scheduler_->release_fiber(f);
    } else {
      // The child suspended. It can only resume on this same thread once we switch out, and it
      // wakes us when it completes; whoever resumes it last gives its fiber back.
      inv.waiting_parent = self;
      (void)self->home();  // build the lazy host now: the child resumes us through it
      self->switch_out();
    }
  } else {
    LazyHost host(*scheduler_);
    f->assign(&inv, nullptr, &host);
    f->switch_in();
    if (!f->idle()) [[unlikely]]
      host.run_until_idle(f);
    scheduler_->release_fiber(f);
  }
  return out;
}

void EngineCore::run_task(Task* t) {
  auto& inv = *static_cast<Invocation*>(t);
  EngineCore& core = *inv.core;
  FunctionRecord* fn = inv.fn;
  inv.fiber = current_fiber();
  inv.sequence = inv.fiber->next_sequence();
  if (inv.pending != nullptr) {
    PendingCall* pc = inv.pending;
    const std::uint64_t before = pc->state.fetch_or(kStarted, std::memory_order_seq_cst);
    const bool run = (before & kReleased) == 0;
    Outcome outcome = Outcome::kOk;  // released before it started: counted at the release
    std::int64_t duration = -1;
    if (run) {
      const std::int64_t start = core.time_.now();
      if (pc->waiter == WaiterKind::kCallback && core.metrics_) {
        const auto age =
            static_cast<std::uint64_t>(std::max<std::int64_t>(0, start - pc->enqueued_ns));
        core.count(fn, [&](MetricShard& s) { s.async_age_shard().record(age); });
      }
      if (start >= inv.deadline) {
        // Waited too long to start: the timer thread releases its caller at once.
        core.set_error(inv, core.timeout_error(*fn, inv.timeout_ns));
        core.timeouts_.fetch_add(1, std::memory_order_relaxed);
        outcome = Outcome::kTimeout;
      } else {
        inv.start_ns = start;
        // The first invocation of a freshly initialised version to run is its cold start.
        if (fn->cold.load(std::memory_order_relaxed)) [[unlikely]]
          inv.cold = core.take_cold(fn, &inv.init_ns);
        if (inv.observe != 0) [[unlikely]]
          core.observe_start(inv);
        if (fn->env == nullptr) [[likely]] {
          outcome = core.call_handler(inv);
          if (inv.memory != nullptr) [[unlikely]]
            outcome = core.end_memory(inv, outcome);
        } else {
          outcome = core.call_with_instance(inv);
        }
        duration = core.time_.now() - start;
      }
    }
    // Settle who answers the caller (this side, or a release that came first), count the
    // end, and only then let the caller have its answer: a caller that reads the metrics
    // after its invoke returned finds it there.
    const std::uint64_t released = core.settle(pc);
    if (run && duration >= 0 && inv.observe != 0) [[unlikely]] {
      // Before finish_pooled (pc may be recycled), with what the caller got.
      if (released != 0) {
        const Error caller_error = core.release_error(*pc, released);
        core.observe_end(inv, inv.start_ns + duration, Outcome::kError, &caller_error);
      } else {
        core.observe_end(inv, inv.start_ns + duration, outcome, nullptr);
      }
    }
    if (released != 0) {
      // The caller got its error at the release, counted there (try_release); what the
      // handler returned later does not count again.
      outcome = Outcome::kOk;
      if (run && (released & kReleasedTimeout) != 0)
        core.count(fn, [](MetricShard& m) { m.overruns.add(); });
    }
    if (inv.instance != nullptr) [[unlikely]] {
      // An instance that served no handler (released or timed out before it started) is
      // not to blame: it goes back warm.
      const Outcome served = duration < 0                         ? Outcome::kOk
                             : (released & kReleasedTimeout) != 0 ? Outcome::kTimeout
                                                                  : outcome;
      core.return_instance(inv, served,
                           duration >= 0 ? inv.start_ns + duration : core.time_.now_coarse());
    }
    core.count_end_any(fn, outcome, inv.cold, duration);
    core.release_slot(fn);
    core.finish_pooled(pc, run, released);
    return;
  }
  if (fn->cold.load(std::memory_order_relaxed)) [[unlikely]]
    inv.cold = core.take_cold(fn, &inv.init_ns);
  if (inv.observe != 0) [[unlikely]]
    core.observe_start(inv);
  Outcome outcome;
  if (fn->env == nullptr) [[likely]] {
    outcome = core.call_handler(inv);
    if (inv.memory != nullptr) [[unlikely]]
      outcome = core.end_memory(inv, outcome);
  } else {
    outcome = core.call_with_instance(inv);
  }
  // Clock read 2 of 2: the end of the Duration metric, and the overrun check: a handler that
  // returned past its deadline without reaching a suspension point (so it did not see the
  // timeout itself) overran; its caller gets kTimeout, as Lambda's would.
  const std::int64_t end = core.time_.now();
  if (end > inv.deadline && outcome != Outcome::kTimeout) [[unlikely]] {
    core.note_overrun(inv);
    outcome = Outcome::kTimeout;
    core.count(fn, [](MetricShard& s) { s.overruns.add(); });
  }
  if (inv.observe != 0) [[unlikely]]
    core.observe_end(inv, end, outcome, nullptr);
  // The instance goes back before the slot: whoever the slot admits next finds it warm.
  if (inv.instance != nullptr) [[unlikely]]
    core.return_instance(inv, outcome, end);
  core.release_slot(fn);
  // After the slot's locked release, which would otherwise wait for these stores (and so for
  // the clock read their bucket's address depends on). The caller is still inside invoke().
  if (inv.shard != nullptr) [[likely]] {
    count_end(*inv.shard, outcome, inv.cold, end - inv.start_ns);
  } else if (core.metrics_) {
    core.count_end_any(fn, outcome, inv.cold, end - inv.start_ns);
  }
  if (inv.waiting_parent != nullptr) {
    Fiber* parent = inv.waiting_parent;
    parent->home()->ready(parent);
  }
}

void EngineCore::abandon_task(Task* t) {
  auto& inv = *static_cast<Invocation*>(t);
  EngineCore& core = *inv.core;
  core.set_error(inv, Error{ErrorCode::kInternal,
                            cat("function '", inv.fn->name, "': could not map a fiber stack")});
  FunctionRecord* fn = inv.fn;
  core.unused_instance(inv);
  if (inv.pending == nullptr) {
    core.count_end_any(fn, Outcome::kError, false, -1);
    core.release_slot(fn);
    return;
  }
  PendingCall* pc = inv.pending;
  pc->state.fetch_or(kStarted);
  const std::uint64_t released = core.settle(pc);
  core.count_end_any(fn, released != 0 ? Outcome::kOk : Outcome::kError, false, -1);
  core.release_slot(fn);
  core.finish_pooled(pc, false, released);
}

void EngineCore::set_error(Invocation& inv, Error error) {
  if (inv.typed != nullptr) {
    inv.typed->set_error(inv.typed->out, std::move(error));
  } else {
    *inv.out = tl::unexpected<Error>(std::move(error));
  }
}

void EngineCore::note_overrun(const Invocation& inv_const) {
  auto& inv = const_cast<Invocation&>(inv_const);
  timeouts_.fetch_add(1, std::memory_order_relaxed);
  overruns_.fetch_add(1, std::memory_order_relaxed);
  char rid[37];
  format_request_id(inv, rid);
  log(LogLevel::kError, inv.fn->name, rid,
      cat("Task timed out after ", seconds(inv.timeout_ns), " seconds"), LogKind::kEngine,
      inv.fn->version);
  log(LogLevel::kWarn, inv.fn->name, rid,
      "the handler returned past its deadline without reaching a suspension point (sleep_for, "
      "yield, a nested invoke, check()); its result is replaced by the timeout",
      LogKind::kEngine, inv.fn->version);
  set_error(inv, timeout_error(*inv.fn, inv.timeout_ns));
}

EngineCore::Outcome EngineCore::call_handler(Invocation& inv) {
  FunctionRecord& fn = *inv.fn;
  Context ctx(&inv);
  if (inv.typed == nullptr) [[likely]] {
    // Construct the handler's result straight into the caller's Result: no move, no copy.
    Result<std::string>* out = inv.out;
    out->~Result<std::string>();
    try {
      ::new (static_cast<void*>(out)) Result<std::string>(fn.bytes(ctx, inv.payload));
    } catch (const boost::context::detail::forced_unwind&) {
      ::new (static_cast<void*>(out)) Result<std::string>();
      throw;  // a fiber being unwound: never swallow it
    } catch (...) {
      ::new (static_cast<void*>(out)) Result<std::string>(handler_threw(fn));
      inv.threw = true;
      return Outcome::kError;
    }
    if (!out->has_value()) [[unlikely]] {
      // A handler that gives up with the kTimeout its suspension point reported timed out.
      // One that stops because its caller was released (kCancelled) was counted at the release.
      return handler_failed(inv, out->error());
    }
    if (out->value().size() > options_.max_sync_payload) [[unlikely]] {
      const std::size_t size = out->value().size();
      *out = fail(ErrorCode::kPayloadTooLarge,
                  cat("function '", fn.name, "': response of ", size,
                      " bytes exceeds the limit of ", options_.max_sync_payload));
      return Outcome::kError;
    }
    return Outcome::kOk;
  }
  try {
    fn.typed.call(ctx, inv.typed->in, inv.typed->out);
  } catch (const boost::context::detail::forced_unwind&) {
    throw;
  } catch (...) {
    set_error(inv, handler_threw(fn).value());
    inv.threw = true;
    return Outcome::kError;
  }
  const Error* e = inv.typed->error_of(inv.typed->out);
  if (e == nullptr) [[likely]]
    return Outcome::kOk;
  return handler_failed(inv, *e);
}

// ---- execution environments: the warm path (the rest is in environments.cpp) ----

EngineCore::Outcome EngineCore::call_with_instance(Invocation& inv) {
  FunctionRecord* fn = inv.fn;
  FunctionEnv& env = *fn->env;
  if (inv.instance == nullptr) [[unlikely]] {
    // An async invocation: its instance is taken when it starts, not when it was queued.
    inv.instance = env.take();
    if (inv.instance == nullptr) {
      Error error;
      inv.instance = admit_instance(fn, &error);
      if (inv.instance == nullptr) {
        set_error(inv, std::move(error));
        return Outcome::kError;
      }
    }
  }
  if (inv.instance == kNewInstance) [[unlikely]] {
    cold_start(inv);
    if (inv.instance == nullptr) return Outcome::kError;  // init failed: the error is set
  }
  Instance* inst = inv.instance;
  if (inst->unreported_init_ns >= 0) [[unlikely]] {
    // Made ahead by a plugin load: its first invocation is the cold start that reports it.
    inv.cold = true;
    inv.init_ns = inst->unreported_init_ns;
    inst->unreported_init_ns = -1;
    if (metrics_) fn->stats->record_init(static_cast<std::uint64_t>(inv.init_ns));
  }
  if (metrics_ && (inst->provisioned.load(std::memory_order_relaxed) ||
                   env.provisioned_target() > 0)) [[unlikely]] {
    const bool provisioned = inst->provisioned.load(std::memory_order_relaxed);
    count(fn, [&](MetricShard& s) { (provisioned ? s.provisioned : s.spillover).add(); });
  }
  inst->memory.reset_peak();
  inv.memory = &inst->memory;
  Outcome outcome = call_handler(inv);
  if (inst->memory.exceeded()) [[unlikely]]
    outcome = end_memory(inv, outcome);
  return outcome;
}

void EngineCore::return_instance(Invocation& inv, Outcome outcome, std::int64_t now) {
  Instance* inst = inv.instance;
  inv.instance = nullptr;
  inv.memory = nullptr;
  if (inst == kNewInstance) [[unlikely]]
    return;  // never made
  if (outcome == Outcome::kTimeout || inv.threw || inst->memory.exceeded()) [[unlikely]] {
    discard_instance(inv, inst, outcome);
    return;
  }
  inst->env->put(inst, now);
}

EngineCore::Outcome EngineCore::handler_failed(const Invocation& inv, const Error& error) {
  // A handler that gives up with a kTimeout once its deadline has passed timed out (its
  // suspension point told it so). One that passes on a kTimeout of its own nested call before
  // its own deadline failed; one that stops because its caller was released (kCancelled) was
  // counted at the release.
  if (error.code == ErrorCode::kTimeout && time_.now() >= inv.deadline) {
    timeouts_.fetch_add(1, std::memory_order_relaxed);
    if (!inv.abandoned.load(std::memory_order_relaxed)) {  // a release logged it already
      char rid[37];
      format_request_id(inv, rid);
      log(LogLevel::kError, inv.fn->name, std::string_view(rid, 36),
          cat("Task timed out after ", seconds(inv.timeout_ns), " seconds"), LogKind::kEngine,
          inv.fn->version);
    }
    return Outcome::kTimeout;
  }
  if (error.code != ErrorCode::kCancelled) handler_errors_.fetch_add(1, std::memory_order_relaxed);
  return Outcome::kError;
}

tl::unexpected<Error> EngineCore::handler_threw(const FunctionRecord& fn) {
  handler_errors_.fetch_add(1, std::memory_order_relaxed);
  return tl::unexpected<Error>(
      Error{ErrorCode::kHandlerFailed,
            cat("function '", fn.name, "' threw ", describe_current_exception())});
}

// ---- pooled calls ----

PendingCall* EngineCore::acquire_call(FunctionRecord* fn, int refs) {
  PendingCall* pc = nullptr;
  if (!free_calls_.try_dequeue(pc)) {
    auto fresh = std::make_unique<PendingCall>();
    pc = fresh.get();
    pc->deadline_timer.call = pc;
    pc->queue_timer.call = pc;
    pc->inv.pending = pc;
    pc->gate_link.owner = pc;
    std::lock_guard<std::mutex> lock(calls_mu_);
    all_calls_.push_back(std::move(fresh));
  }
  Invocation& inv = pc->inv;
  inv.out = &pc->result;
  inv.run = &EngineCore::run_task;
  inv.abandon = &EngineCore::abandon_task;
  inv.describe = &EngineCore::describe_task;
  inv.stack_size = fn->stack_size;
  inv.core = this;
  inv.fn = fn;
  inv.parent = nullptr;
  inv.depth = 0;
  inv.typed = nullptr;
  inv.client_context = nullptr;
  inv.event = nullptr;
  inv.fiber = nullptr;
  inv.sequence = 0;
  inv.waiting_parent = nullptr;
  inv.abandoned.store(false, std::memory_order_relaxed);
  inv.request_id[0] = '\0';
  inv.shard = nullptr;
  inv.observe = 0;
  inv.cold = false;
  inv.restored = false;
  inv.threw = false;
  inv.instance = nullptr;
  inv.init_ns = 0;
  inv.memory = nullptr;
  inv.own_memory.reset();
  // A new generation; the watched deadline is cleared before it is published (see on_overdue).
  inv.watch_deadline.store(kNever, std::memory_order_relaxed);
  const std::uint64_t generation =
      (pc->state.load(std::memory_order_relaxed) >> kGenerationShift) + 1;
  pc->state.store(generation << kGenerationShift, std::memory_order_release);
  pc->refs.store(refs, std::memory_order_relaxed);
  pc->waiter_fiber = nullptr;
  pc->gate_link.function_queued = &fn->queued;
  // A permit left in pc->parker by the record's previous use only makes a park return early;
  // waiters re-check the state, so it is not cleared (that would be one more atomic RMW).
  pc->in_use.store(true, std::memory_order_release);
  return pc;
}

void EngineCore::unref(PendingCall* pc) noexcept {
  if (pc->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  pc->callback = nullptr;
  pc->result = std::string();
  pc->client_context_copy.clear();
  pc->in_use.store(false, std::memory_order_release);
  free_calls_.enqueue(pc);
  if (shutting_down_.load(std::memory_order_relaxed)) drain_parker_.unpark();
}

bool EngineCore::try_release(PendingCall* pc, std::uint64_t reason, std::uint64_t generation) {
  std::uint64_t s = pc->state.load(std::memory_order_acquire);
  do {
    if ((s & (kSettled | kDone | kReleased)) != 0) return false;
    if (generation != ~std::uint64_t{0} && (s >> kGenerationShift) != generation) return false;
  } while (!pc->state.compare_exchange_weak(s, s | reason, std::memory_order_acq_rel));
  pc->inv.abandoned.store(true, std::memory_order_relaxed);
  if (reason == kReleasedTimeout) timeouts_.fetch_add(1, std::memory_order_relaxed);
  // The caller sees the error now: count it now (the handler's end adds only its duration).
  count(pc->inv.fn, [&](MetricShard& m) {
    m.errors.add();
    if (reason == kReleasedTimeout) {
      std::atomic_thread_fence(std::memory_order_release);
      m.timeouts.add();
    }
  });
  if ((s & kStarted) != 0 && reason == kReleasedTimeout) {
    // The handler is running past its deadline: it keeps its slot until it returns.
    running_overruns_.fetch_add(1, std::memory_order_relaxed);
    pc->inv.fn->stats->running_overruns.fetch_add(1, std::memory_order_relaxed);
    {
      // run_task wrote the fiber and sequence before setting kStarted, which we read above.
      char rid[37];
      format_request_id(pc->inv, rid);
      log(LogLevel::kError, pc->inv.fn->name, rid,
          cat("Task timed out after ", seconds(pc->inv.timeout_ns), " seconds"), LogKind::kEngine,
          pc->inv.fn->version);
      log(LogLevel::kWarn, pc->inv.fn->name, rid,
          "the caller was released at the deadline; the handler still runs and keeps its "
          "concurrency slot until it returns",
          LogKind::kEngine, pc->inv.fn->version);
    }
  }
  return true;
}

Error EngineCore::release_error(const PendingCall& pc, std::uint64_t state) const {
  if ((state & kReleasedShutdown) != 0) {
    return Error{ErrorCode::kShuttingDown,
                 cat("function '", pc.inv.fn->name, "': engine shut down before it completed")};
  }
  return timeout_error(*pc.inv.fn, pc.inv.timeout_ns);
}

void EngineCore::deliver_release(PendingCall* pc, std::uint64_t reason) {
  switch (pc->waiter) {
    case WaiterKind::kThread:
      pc->parker.unpark();
      break;
    case WaiterKind::kFiber:
      if ((pc->state.load(std::memory_order_acquire) & kWaiting) != 0) {
        Fiber* w = pc->waiter_fiber;
        w->home()->ready(w);
      }
      break;
    case WaiterKind::kCallback: {
      auto callback = std::move(pc->callback);
      callback(tl::unexpected<Error>(release_error(*pc, reason)));
      unref(pc);  // delivery
      break;
    }
  }
}

std::uint64_t EngineCore::settle(PendingCall* pc) {
  std::uint64_t s = pc->state.load(std::memory_order_acquire);
  for (;;) {
    if ((s & kReleased) != 0) return s & kReleased;
    if (pc->state.compare_exchange_weak(s, s | kSettled, std::memory_order_acq_rel)) return 0;
  }
}

void EngineCore::finish_pooled(PendingCall* pc, bool ran, std::uint64_t released) {
  // Settled: the caller waits for kDone (the state returned says whether a fiber suspended).
  std::uint64_t s = 0;
  if (released == 0) s = pc->state.fetch_or(kDone, std::memory_order_acq_rel);
  if (released != 0) {
    if (ran) {
      if ((released & kReleasedTimeout) != 0) {
        // Counted as running past its deadline when the caller was released; now it returned.
        running_overruns_.fetch_sub(1, std::memory_order_relaxed);
        pc->inv.fn->stats->running_overruns.fetch_sub(1, std::memory_order_relaxed);
        overruns_.fetch_add(1, std::memory_order_relaxed);
      }
      char rid[37];
      format_request_id(pc->inv, rid);
      log(LogLevel::kWarn, pc->inv.fn->name, rid,
          "handler returned after its caller was released; its result is dropped and its slot "
          "freed",
          LogKind::kEngine, pc->inv.fn->version);
    }
  } else {
    switch (pc->waiter) {
      case WaiterKind::kThread:
        pc->parker.unpark();
        break;
      case WaiterKind::kFiber:
        if ((s & kWaiting) != 0) {
          Fiber* w = pc->waiter_fiber;
          w->home()->ready(w);
        }
        break;
      case WaiterKind::kCallback: {
        auto callback = std::move(pc->callback);
        callback(std::move(pc->result));
        unref(pc);  // delivery
        break;
      }
    }
  }
  unref(pc);  // the handler's side
}

Result<std::string> EngineCore::run_pooled(FunctionRecord* fn, std::string_view payload,
                                           TypedCall* typed, const InvokeOptions& options,
                                           Invocation* parent, Fiber* self, Instance* instance) {
  PendingCall* pc = acquire_call(fn, 2);  // the caller's side and the handler's side
  Invocation& inv = pc->inv;
  inv.instance = instance;
  inv.parent = parent;
  inv.depth = parent != nullptr ? parent->depth + 1 : 0;
  count_started(fn);
  prepare_observe(inv, options, parent);
  inv.deadline = deadline_for(*fn, options, parent, time_.now(), 0, &inv.timeout_ns);
  // The caller may be released at the deadline while the handler still runs: the handler
  // must not read the caller's memory, so the payload and client context are copied. Typed
  // calls point into the caller's frame, so their caller waits for the handler regardless.
  pc->payload_copy.assign(payload.data(), payload.size());
  inv.payload = pc->payload_copy;
  inv.typed = typed;
  if (options.client_context != nullptr) {
    pc->client_context_copy = *options.client_context;
    inv.client_context = &pc->client_context_copy;
  }
  const std::int64_t wait_deadline = typed != nullptr ? kNever : inv.deadline;

  std::uint64_t s;
  if (self != nullptr) {
    // A handler waiting on a pool-dispatched child: suspend the fiber, wake at the deadline.
    pc->waiter = WaiterKind::kFiber;
    pc->waiter_fiber = self;
    Executor* home = self->home();
    if (wait_deadline != kNever) {
      pc->refs.fetch_add(1, std::memory_order_relaxed);
      pc->deadline_timer.deadline = wait_deadline;
      pc->deadline_timer.fire = &EngineCore::on_fiber_wait_deadline;
      home->add_timer(&pc->deadline_timer);
    }
    scheduler_->submit(&inv);
    s = pc->state.load(std::memory_order_acquire);
    while ((s & (kDone | kReleased)) == 0) {
      if (pc->state.compare_exchange_weak(s, s | kWaiting, std::memory_order_acq_rel)) {
        self->switch_out();  // woken exactly once: by the result or by the deadline timer
        s = pc->state.load(std::memory_order_acquire);
        break;
      }
    }
    if (wait_deadline != kNever && home->cancel_timer(&pc->deadline_timer)) unref(pc);
  } else {
    pc->waiter = WaiterKind::kThread;
    scheduler_->submit(&inv);
    // Spin a little (a warm worker answers within microseconds), then park.
    for (int i = 0; i < 2000; ++i) {
      s = pc->state.load(std::memory_order_acquire);
      if ((s & (kDone | kReleased)) != 0) break;
      _mm_pause();
    }
    s = pc->state.load(std::memory_order_acquire);
    while ((s & (kDone | kReleased)) == 0) {
      if (!time_.park_until(pc->parker, wait_deadline) && time_.now() >= wait_deadline) {
        try_release(pc, kReleasedTimeout);
      }
      s = pc->state.load(std::memory_order_acquire);
    }
  }
  Result<std::string> out = (s & kReleased) != 0
                                ? Result<std::string>(tl::unexpected<Error>(release_error(*pc, s)))
                                : std::move(pc->result);
  unref(pc);
  return out;
}

void EngineCore::on_fiber_wait_deadline(Timer* t) {
  PendingCall* pc = call_of(t);
  EngineCore& core = *pc->inv.core;
  if (core.try_release(pc, kReleasedTimeout)) core.deliver_release(pc, kReleasedTimeout);
  core.unref(pc);  // the timer's reference
}

}  // namespace ember::detail

namespace ember {

// The public entry point of the hot path: invoke_impl, run_inline and the fiber switch are all
// inlined into this one frame (see Fiber::body for why frames around a switch matter).
Result<std::string> Engine::invoke(FunctionHandle fn, std::string_view payload,
                                   const InvokeOptions& options) {
  return core_->invoke_impl(fn, payload, nullptr, options);
}

Result<std::string> Engine::invoke(std::string_view name, std::string_view payload,
                                   const InvokeOptions& options) {
  // One lock-free lookup for a name that has a route ("fn", "fn:3", "fn:live"); invoke_impl
  // says why if it leads nowhere now. Other spellings ("fn:$LATEST", unknown names) go
  // through find().
  if (detail::Route* route = core_->route(name)) [[likely]]
    return core_->invoke_impl(FunctionHandle(route), payload, nullptr, options);
  auto fn = core_->find(name);
  if (!fn) [[unlikely]]
    return tl::unexpected<Error>(std::move(fn.error()));
  return core_->invoke_impl(*fn, payload, nullptr, options);
}

Result<void> Engine::invoke_typed(FunctionHandle fn, detail::TypedCall& call,
                                  const InvokeOptions& options) {
  auto r = core_->invoke_impl(fn, {}, &call, options);
  if (!r) [[unlikely]]
    return tl::unexpected<Error>(std::move(r.error()));
  return {};
}

}  // namespace ember
