// Async invokes: admission or a place in the function's FIFO, the queue-wait timer, the start
// of the execution deadline at admission, and the timer thread's watch over running handlers.
#include <absl/strings/str_format.h>

#include "core/engine_core.hpp"
#include "core/str_cat.hpp"

namespace ember::detail {

namespace {
PendingCall* call_of(Timer* t) { return static_cast<CallTimer*>(t)->call; }
}  // namespace

Result<void> EngineCore::invoke_async(FunctionHandle handle, std::string_view payload,
                                      InvokeCallback callback, const InvokeOptions& options,
                                      const AsyncExtras* extras) {
  Route* route = handle.route_;
  if (route == nullptr || route->owner != this) return tl::unexpected<Error>(bad_handle(route));
  // Pinned (plugin code) from here until its slot is released or it leaves the queue.
  FunctionRecord* fn = resolve(route);
  if (fn == nullptr) return tl::unexpected<Error>(unrouted_error(*route));
  struct Unpin {
    EngineCore* core;
    FunctionRecord* fn;
    ~Unpin() {
      if (fn != nullptr) core->unpin(fn);
    }
  } unpin_on_error{this, fn};
  if (auto ok = check_call(fn, payload, nullptr, options_.max_async_payload); !ok) return ok;
  if (!callback) {
    return fail(ErrorCode::kInvalidArgument,
                cat("invoke_async of '", fn->name, "': callback is empty"));
  }
  if (shutting_down_.load(std::memory_order_seq_cst)) {
    return fail(ErrorCode::kShuttingDown,
                cat("function '", fn->name, "': engine is shutting down"));
  }
  Fiber* self = current_fiber();
  Invocation* parent = self != nullptr ? static_cast<Invocation*>(self->task()) : nullptr;
  if (parent != nullptr && parent->depth + 1 >= options_.max_invoke_depth) {
    return tl::unexpected<Error>(recursion_error(*fn, parent));
  }
  // No waiting (the events module): take the slot before a call record exists, so a refusal
  // never leaves a record in use that shutdown's release loop could find.
  const bool no_wait = extras != nullptr && extras->no_wait;
  if (no_wait && !fn->gate->try_acquire()) return tl::unexpected<Error>(throttled(*fn));
  // A stateful function's instance, taken with the slot; the scale-up guard refuses at once.
  Instance* instance = nullptr;
  if (no_wait && fn->env != nullptr) {
    instance = fn->env->take();
    if (instance == nullptr) {
      Error error;
      instance = admit_instance(fn, &error);
      if (instance == nullptr) {
        fn->gate->release();
        return tl::unexpected<Error>(std::move(error));
      }
    }
  }
  // References: the handler's side, the delivery of the outcome, and the queue timer.
  PendingCall* pc = acquire_call(fn, 3);
  Invocation& inv = pc->inv;
  inv.instance = instance;
  inv.depth = parent != nullptr ? parent->depth + 1 : 0;
  pc->waiter = WaiterKind::kCallback;
  pc->callback = std::move(callback);
  pc->payload_copy.assign(payload.data(), payload.size());
  inv.payload = pc->payload_copy;
  if (options.client_context != nullptr) {
    pc->client_context_copy = *options.client_context;
    inv.client_context = &pc->client_context_copy;
  }
  if (extras != nullptr && extras->event != nullptr) {
    const EventInfo& e = *extras->event;
    pc->event_strings.assign(e.id);
    pc->event_strings.append(e.source);
    pc->event_info = e;
    pc->event_info.id = std::string_view(pc->event_strings).substr(0, e.id.size());
    pc->event_info.source = std::string_view(pc->event_strings).substr(e.id.size());
    inv.event = &pc->event_info;
  }
  // The execution deadline starts at admission (start_async); until then the queue wait runs.
  inv.timeout_ns = fn->timeout_ns;
  if (options.timeout)
    inv.timeout_ns =
        std::min(inv.timeout_ns, std::max<std::int64_t>(0, to_nanos(*options.timeout)));
  const std::int64_t now = time_.now();  // the one clock read of an async invoke
  pc->enqueued_ns = extras != nullptr && extras->enqueued_ns != 0 ? extras->enqueued_ns : now;
  prepare_observe(inv, options, parent);  // a handler's async invokes join its trace
  if (parent != nullptr) {
    inv.timeout_ns = std::min(inv.timeout_ns, std::max<std::int64_t>(0, parent->deadline - now));
  }
  const std::int64_t queue_wait =
      options.max_queue_wait ? to_nanos(*options.max_queue_wait) : fn->max_queue_wait_ns;
  pc->queue_wait_ns = queue_wait;
  pc->queue_timer.deadline = add_saturating(now, queue_wait);
  pc->queue_timer.fire = &EngineCore::on_queue_timeout;

  if (no_wait) {
    unpin_on_error.fn = nullptr;                       // the invocation holds the pin now
    pc->refs.fetch_sub(1, std::memory_order_relaxed);  // no queue timer
    start_async(pc, now);
    return {};
  }
  switch (fn->gate->acquire_or_enqueue(&pc->gate_link, options_.max_queued_per_function,
                                       scheduler_->timer_thread(), &pc->queue_timer)) {
    case ConcurrencyGate::Enqueued::kAdmitted:
      unpin_on_error.fn = nullptr;                       // the invocation holds the pin now
      pc->refs.fetch_sub(1, std::memory_order_relaxed);  // no queue timer
      start_async(pc, now);
      return {};
    case ConcurrencyGate::Enqueued::kQueued:
      unpin_on_error.fn = nullptr;
      return {};
    case ConcurrencyGate::Enqueued::kFull:
      break;
  }
  throttles_.fetch_add(1, std::memory_order_relaxed);
  count(fn,
        [](MetricShard& s) { s.throttles[static_cast<int>(ThrottleReason::kQueueFull)].add(); });
  const std::string limit = fn->gate->description();
  pc->callback = nullptr;
  pc->refs.store(1, std::memory_order_relaxed);
  unref(pc);
  return fail(ErrorCode::kQueueFull,
              cat("function '", fn->name, "': ", options_.max_queued_per_function,
                  " async invokes already wait for a slot of the ", limit));
}

void EngineCore::start_async(PendingCall* pc, std::int64_t now) {
  Invocation& inv = pc->inv;
  if (inv.fn->env != nullptr && inv.instance == nullptr) [[unlikely]] {
    // A stateful function: its instance is taken as it is admitted. The scale-up guard's
    // refusal is a throttle, not an invocation: the callback gets it, nothing runs.
    inv.instance = inv.fn->env->take();
    if (inv.instance == nullptr) {
      Error error;
      inv.instance = admit_instance(inv.fn, &error);
      if (inv.instance == nullptr) {
        pc->state.fetch_or(kStarted | kSettled | kDone);
        release_slot(inv.fn);  // the slot, and the pin the call held
        auto callback = std::move(pc->callback);
        callback(tl::unexpected<Error>(std::move(error)));
        unref(pc);  // delivery
        unref(pc);  // never submitted
        return;
      }
    }
  }
  count_started(inv.fn);
  inv.deadline = add_saturating(now, inv.timeout_ns);
  // The timer thread watches this deadline while a worker runs the handler, so a handler that
  // never yields cannot keep its callback waiting past it (on_overdue).
  inv.watch_deadline.store(inv.deadline, std::memory_order_relaxed);
  scheduler_->submit(&inv);
}

void EngineCore::admit_waiter(GateWaiter* w, void* self) {
  auto* core = static_cast<EngineCore*>(self);
  auto* pc = static_cast<PendingCall*>(w->owner);
  if (core->scheduler_->timer_thread().cancel(&pc->queue_timer)) core->unref(pc);
  core->start_async(pc, core->time_.now());  // the execution deadline starts at admission
}

std::int64_t EngineCore::on_overdue(Task* task, std::int64_t now, void* self) {
  auto* core = static_cast<EngineCore*>(self);
  PendingCall* pc = static_cast<Invocation*>(task)->pending;
  // The record may have been recycled since the worker published it: read its generation, its
  // deadline, and the generation again; act only if both readings agree.
  const std::uint64_t before = pc->state.load(std::memory_order_acquire);
  const std::int64_t deadline = task->watch_deadline.load(std::memory_order_acquire);
  const std::uint64_t after = pc->state.load(std::memory_order_acquire);
  const std::uint64_t generation = before >> kGenerationShift;
  if ((after >> kGenerationShift) != generation || (after & (kSettled | kDone | kReleased)) != 0)
    return kNever;
  if (deadline > now) return deadline;
  if (pc->waiter == WaiterKind::kCallback && core->try_release(pc, kReleasedTimeout, generation)) {
    auto callback = std::move(pc->callback);
    callback(tl::unexpected<Error>(core->release_error(*pc, kReleasedTimeout)));
    core->unref(pc);  // delivery
  }
  return kNever;
}

void EngineCore::on_queue_timeout(Timer* t) {
  PendingCall* pc = call_of(t);
  EngineCore& core = *pc->inv.core;
  FunctionRecord& fn = *pc->inv.fn;
  if (fn.gate->remove(&pc->gate_link)) {
    core.timeouts_.fetch_add(1, std::memory_order_relaxed);
    core.count(&fn, [](MetricShard& s) { s.async_dropped.add(); });
    pc->state.fetch_or(kStarted | kReleasedTimeout);
    auto callback = std::move(pc->callback);
    callback(
        fail(ErrorCode::kTimeout, cat("function '", fn.name, "': waited ",
                                      absl::FormatDuration(absl::Nanoseconds(pc->queue_wait_ns)),
                                      " in the queue for a slot of the ", fn.gate->description(),
                                      " (", fn.gate->limit(), "); it never ran")));
    core.unpin(&fn);  // it never ran
    core.unref(pc);   // delivery
    core.unref(pc);   // never submitted: the handler's side
  }
  core.unref(pc);  // the timer's reference
}

}  // namespace ember::detail
