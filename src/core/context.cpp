// ember::Context: what a running handler can ask of the engine.
#include "ember/context.hpp"

#include "core/engine_core.hpp"
#include "core/str_cat.hpp"

namespace ember {

using detail::EngineCore;
using detail::Invocation;

namespace {
const ClientContext kNoClientContext;
}

std::string_view Context::request_id() const {
  if (inv_->request_id[0] == '\0') inv_->core->format_request_id(*inv_, inv_->request_id);
  return std::string_view(inv_->request_id, 36);
}

std::string_view Context::function_name() const noexcept { return inv_->fn->name; }
std::string_view Context::function_version() const noexcept { return inv_->fn->version; }
absl::Time Context::deadline() const noexcept { return inv_->core->time().to_time(inv_->deadline); }

absl::Duration Context::remaining() const noexcept {
  const std::int64_t left = inv_->deadline - inv_->core->time().now();
  return left > 0 ? absl::Nanoseconds(left) : absl::ZeroDuration();
}

bool Context::cancelled() const noexcept {
  // check() without building its message: this is polled in loops.
  return inv_->abandoned.load(std::memory_order_relaxed) || inv_->core->draining_over() ||
         inv_->core->time().now() >= inv_->deadline;
}
Result<void> Context::check() const { return inv_->core->check(*inv_); }
int Context::memory_limit_mb() const noexcept { return inv_->fn->config.memory_mb; }
int Context::depth() const noexcept { return inv_->depth; }

const EventInfo* Context::event() const noexcept { return inv_->event; }

namespace {
detail::Instance* serving(const Invocation* inv) noexcept {
  return inv->instance == detail::kNewInstance ? nullptr : inv->instance;
}
}  // namespace

void* Context::instance_state(const std::type_info* type) const noexcept {
  const detail::Instance* inst = serving(inv_);
  if (inst == nullptr) return nullptr;
  if (type != nullptr) {
    const std::type_info* have = inv_->fn->env->lifecycle().state_type;
    if (have != nullptr && *have != *type) return nullptr;
  }
  return inst->state;
}

std::uint64_t Context::instance_id() const noexcept {
  const detail::Instance* inst = serving(inv_);
  return inst != nullptr ? inst->id : 0;
}

bool Context::cold_start() const noexcept { return inv_->cold; }

std::pmr::memory_resource* Context::memory() const {
  if (inv_->memory == nullptr) {
    inv_->own_memory.emplace(static_cast<std::size_t>(inv_->fn->config.memory_mb) << 20);
    inv_->memory = &*inv_->own_memory;
  }
  return inv_->memory;
}

std::string_view Context::scratch_dir() const noexcept {
  const detail::Instance* inst = serving(inv_);
  return inst != nullptr ? std::string_view(inst->scratch) : std::string_view();
}

const ClientContext& Context::client_context() const noexcept {
  return inv_->client_context != nullptr ? *inv_->client_context : kNoClientContext;
}

void Context::log(LogLevel level, std::string_view message) const {
  inv_->core->log(level, inv_->fn->name, request_id(), message, LogKind::kHandler,
                  inv_->fn->version);
}

TraceContext Context::trace() const noexcept { return EngineCore::trace_of(*inv_); }

Result<std::string> Context::invoke(FunctionHandle fn, std::string_view payload,
                                    const InvokeOptions& options) {
  return inv_->core->invoke(fn, payload, nullptr, options);
}

Result<std::string> Context::invoke(std::string_view name, std::string_view payload,
                                    const InvokeOptions& options) {
  auto fn = inv_->core->find(name);
  if (!fn) return tl::unexpected<Error>(std::move(fn.error()));
  return inv_->core->invoke(*fn, payload, nullptr, options);
}

Result<void> Context::invoke_typed(FunctionHandle fn, detail::TypedCall& call,
                                   const InvokeOptions& options) {
  auto r = inv_->core->invoke(fn, {}, &call, options);
  if (!r) return tl::unexpected<Error>(std::move(r.error()));
  return {};
}

Result<void> Context::sleep_for(absl::Duration d) { return inv_->core->sleep(*inv_, d); }
Result<void> Context::yield() { return inv_->core->yield(*inv_); }
Engine& Context::engine() const noexcept { return inv_->core->engine(); }

namespace detail {

Result<void> EngineCore::check(const Invocation& inv) const {
  if (inv.abandoned.load(std::memory_order_relaxed)) {
    return fail(ErrorCode::kCancelled, cat("function '", inv.fn->name,
                                           "': the caller was released (timeout or shutdown)"));
  }
  if (drain_over_.load(std::memory_order_relaxed)) {
    return fail(ErrorCode::kShuttingDown,
                cat("function '", inv.fn->name, "': engine shut down past its drain deadline"));
  }
  if (time_.now() >= inv.deadline) {
    return tl::unexpected<Error>(timeout_error(*inv.fn, inv.timeout_ns));
  }
  return {};
}

namespace {

struct SleepTimer : Timer {
  Fiber* fiber = nullptr;
};

void wake_sleeper(Timer* t) {
  Fiber* f = static_cast<SleepTimer*>(t)->fiber;
  f->home()->ready(f);
}

Result<void> not_in_handler(const Invocation& inv, std::string_view what) {
  return fail(ErrorCode::kNotInHandler, cat("function '", inv.fn->name, "': ", what,
                                            " called outside the handler's own fiber"));
}

}  // namespace

Result<void> EngineCore::sleep(Invocation& inv, absl::Duration d) {
  Fiber* self = current_fiber();
  if (self == nullptr || self != inv.fiber) return not_in_handler(inv, "sleep_for");
  if (auto ok = check(inv); !ok) return ok;
  const std::int64_t wake = add_saturating(time_.now(), std::max<std::int64_t>(0, to_nanos(d)));
  SleepTimer timer;
  timer.deadline = std::min(wake, inv.deadline);
  timer.fire = &wake_sleeper;
  timer.fiber = self;
  // The timer fires on this fiber's home thread, which resumes us only after we switched out.
  self->home()->add_timer(&timer);
  self->switch_out();
  return check(inv);
}

Result<void> EngineCore::yield(Invocation& inv) {
  Fiber* self = current_fiber();
  if (self == nullptr || self != inv.fiber) return not_in_handler(inv, "yield");
  if (auto ok = check(inv); !ok) return ok;
  self->home()->ready(self);
  self->switch_out();
  return check(inv);
}

}  // namespace detail
}  // namespace ember
