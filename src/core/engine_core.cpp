// Engine construction, registration, lookup, statistics, logging and shutdown.
// The invocation paths are in invoke.cpp.
#include "core/engine_core.hpp"

#include <absl/random/random.h>
#include <absl/strings/str_format.h>

#include <cstdio>
#include <thread>

#include "core/names.hpp"
#include "core/str_cat.hpp"
#include "env/scratch.hpp"

namespace ember::detail {

EngineCore::EngineCore(EngineOptions options)
    : options_(std::move(options)),
      request_nonce_(absl::Uniform<std::uint64_t>(absl::BitGen())),
      time_(options_.clock),
      env_shared_(time_),
      unreserved_("unreserved concurrency pool", 0, &EngineCore::admit_waiter, this),
      metrics_(options_.metrics) {
  if (options_.workers == 0) {
    options_.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (auto ok = validate(options_); !ok) {
    init_error_ = ok.error();
    shutting_down_.store(true);
    drain_over_.store(true);
    return;
  }
  unreserved_.set_limit(options_.concurrency_limit);
  gates_.push_back(&unreserved_);
  env_shared_.scratch_root =
      options_.scratch_root.empty() ? default_scratch_root() : options_.scratch_root;
  env_shared_.log = [this](LogLevel level, std::string_view function, std::string_view version,
                           std::string_view message) {
    log(level, function, {}, message, LogKind::kEngine, version);
  };
  init_observe();
  scheduler_ =
      std::make_unique<Scheduler>(time_, options_.workers, to_nanos(options_.spin_before_park));
  scheduler_->watch_running_tasks(&EngineCore::on_overdue, this);
}

EngineCore::~EngineCore() {
  shutdown(absl::Seconds(30), "engine destroyed");
  // Handlers past the drain deadline still hold their slots: wait for them (a timeout is not a
  // kill; DESIGN.md §4), then stop the workers.
  while (in_flight() != 0)
    time_.park_until(drain_parker_, add_saturating(time_.now(), 100'000'000));
  // Every instance comes back with its handler: each one's shutdown hook runs once, here at
  // the latest.
  retire_envs();
  (void)remove_root_if_empty(env_shared_.scratch_root);
  scheduler_.reset();
}

Result<void> EngineCore::validate(const EngineOptions& o) const {
  auto bad = [](std::string_view field, auto value, std::string_view rule) {
    return fail(ErrorCode::kInvalidArgument,
                cat("EngineOptions.", field, " = ", value, ": ", rule));
  };
  if (o.workers < 1 || o.workers > 1024)
    return bad("workers", o.workers, "must be 0 (auto) or 1..1024");
  if (o.concurrency_limit < 1)
    return bad("concurrency_limit", o.concurrency_limit, "must be at least 1");
  if (o.min_unreserved_concurrency < 0 || o.min_unreserved_concurrency > o.concurrency_limit) {
    return bad("min_unreserved_concurrency", o.min_unreserved_concurrency,
               cat("must be 0..concurrency_limit (", o.concurrency_limit, ")"));
  }
  if (o.max_invoke_depth < 1)
    return bad("max_invoke_depth", o.max_invoke_depth, "must be at least 1");
  if (o.max_sync_payload == 0)
    return bad("max_sync_payload", o.max_sync_payload, "must be positive");
  if (o.max_async_payload == 0)
    return bad("max_async_payload", o.max_async_payload, "must be positive");
  if (o.max_queued_per_function < 0) {
    return bad("max_queued_per_function", o.max_queued_per_function, "must not be negative");
  }
  if (!(o.trace_sample_rate >= 0.0 && o.trace_sample_rate <= 1.0)) {
    return bad("trace_sample_rate", o.trace_sample_rate, "must be 0..1");
  }
  if (o.trace_buffer_spans == 0) {
    return bad("trace_buffer_spans", o.trace_buffer_spans, "must be positive");
  }
  if (o.spin_before_park < absl::ZeroDuration()) {
    return bad("spin_before_park", absl::FormatDuration(o.spin_before_park),
               "must not be negative");
  }
  return {};
}

Result<void> EngineCore::validate(std::string_view name, const FunctionConfig& c) const {
  auto bad = [&](std::string_view field, auto value, std::string_view rule) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", name, "': FunctionConfig.", field, " = ", value, ": ", rule));
  };
  if (c.timeout <= absl::ZeroDuration() || c.timeout == absl::InfiniteDuration()) {
    return bad("timeout", absl::FormatDuration(c.timeout), "must be positive and finite");
  }
  if (c.memory_mb < 128 || c.memory_mb > 10240)
    return bad("memory_mb", c.memory_mb, "must be 128..10240 (MiB)");
  if (c.reserved_concurrency && *c.reserved_concurrency < 1) {
    return bad("reserved_concurrency", *c.reserved_concurrency, "must be at least 1 (or unset)");
  }
  if (c.stack_size < 16 * 1024 || c.stack_size > (std::size_t{1} << 30)) {
    return bad("stack_size", c.stack_size, "must be 16 KiB..1 GiB");
  }
  if (c.max_queue_wait < absl::ZeroDuration() || c.max_queue_wait == absl::InfiniteDuration()) {
    return bad("max_queue_wait", absl::FormatDuration(c.max_queue_wait),
               "must be finite and not negative");
  }
  if (c.provisioned_concurrency < 0) {
    return bad("provisioned_concurrency", c.provisioned_concurrency, "must not be negative");
  }
  if (c.init_timeout <= absl::ZeroDuration() || c.init_timeout == absl::InfiniteDuration()) {
    return bad("init_timeout", absl::FormatDuration(c.init_timeout), "must be positive and finite");
  }
  if (c.idle_ttl <= absl::ZeroDuration() || c.idle_ttl == absl::InfiniteDuration()) {
    return bad("idle_ttl", absl::FormatDuration(c.idle_ttl), "must be positive and finite");
  }
  if (c.max_new_instances_per_second < 0) {
    return bad("max_new_instances_per_second", c.max_new_instances_per_second,
               "must be 0 (no cap) or positive");
  }
  return {};
}

Result<void> EngineCore::check_provisioned(std::string_view name, const FunctionConfig& c,
                                           bool has_instances) const {
  if (c.provisioned_concurrency == 0) return {};
  if (!has_instances) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", name,
                    "': FunctionConfig.provisioned_concurrency = ", c.provisioned_concurrency,
                    ": needs instances (a Lifecycle, or a plugin function with init)"));
  }
  if (!c.reserved_concurrency || c.provisioned_concurrency > *c.reserved_concurrency) {
    return fail(
        ErrorCode::kInvalidArgument,
        cat("function '", name, "': FunctionConfig.provisioned_concurrency = ",
            c.provisioned_concurrency, ": exceeds its reserved_concurrency (",
            c.reserved_concurrency ? cat(*c.reserved_concurrency) : std::string("unset"), ")"));
  }
  return {};
}

Result<FunctionHandle> EngineCore::register_function(std::string_view name, FunctionConfig config,
                                                     BytesHandler bytes, TypedHandler typed,
                                                     const Lifecycle* lifecycle) {
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  if (auto ok = validate_function_name(name); !ok) return tl::unexpected<Error>(ok.error());
  if (auto ok = validate(name, config); !ok) return tl::unexpected<Error>(ok.error());
  if (!bytes && !typed.call) {
    return fail(ErrorCode::kInvalidArgument, cat("function '", name, "': handler is empty"));
  }
  if (shutting_down_.load()) {
    return fail(ErrorCode::kShuttingDown, cat("function '", name, "': engine is shutting down"));
  }
  auto record = std::make_unique<FunctionRecord>();
  record->owner = this;
  record->name = std::string(name);
  record->config = config;
  record->timeout_ns = to_nanos(config.timeout);
  record->max_queue_wait_ns = to_nanos(config.max_queue_wait);
  record->stack_size = StackPool::round_size(config.stack_size);
  record->bytes = std::move(bytes);
  record->typed = std::move(typed);
  record->typed_flag = static_cast<bool>(record->typed.call);

  if (auto ok = check_provisioned(name, config, lifecycle != nullptr); !ok)
    return tl::unexpected<Error>(ok.error());
  // Checks that need the lock first, so that a doomed registration runs no init.
  auto refused = [&]() -> Result<void> {
    std::lock_guard<std::mutex> lock(config_mu_);
    if (FunctionEntry* e = registry_.entry(name); e != nullptr && e->live()) {
      return fail(ErrorCode::kAlreadyExists, cat("function '", name, "' is already registered",
                                                 e->registered ? "" : " (by a plugin)"));
    }
    const std::int64_t reserve = config.reserved_concurrency.value_or(0);
    if (reserve > 0) return check_reservation(name, reserve, reserved_total_);
    return {};
  };
  if (auto ok = refused(); !ok) return tl::unexpected<Error>(ok.error());
  if (lifecycle != nullptr) {
    // The snapshot and the provisioned instances are made before anything is published (and
    // outside the lock: an init may call the engine). If the registration then fails, the
    // environment is destroyed with them.
    auto env = make_env(name, "$LATEST", config, *lifecycle);
    if (!env) return tl::unexpected<Error>(std::move(env.error()));
    record->env_owned = std::move(*env);
    record->env = record->env_owned.get();
  }

  std::lock_guard<std::mutex> lock(config_mu_);
  if (FunctionEntry* e = registry_.entry(name); e != nullptr && e->live()) {
    return fail(ErrorCode::kAlreadyExists, cat("function '", name, "' is already registered",
                                               e->registered ? "" : " (by a plugin)"));
  }
  const std::int64_t reserve = config.reserved_concurrency.value_or(0);
  if (reserve > 0) {
    if (auto ok = check_reservation(name, reserve, reserved_total_); !ok)
      return tl::unexpected<Error>(ok.error());
  }
  if (record->env != nullptr) envs_.push_back(record->env);
  FunctionEntry* entry = registry_.make_entry(name, this);
  entry->registered = true;
  record->entry = entry;
  record->stats = entry->stats.get();
  record->gate = reserve > 0 ? reserve_gate(*entry, reserve) : &unreserved_;
  FunctionRecord* published = registry_.adopt(std::move(record));
  entry->versions.push_back(published);
  entry->latest->primary.store(published, std::memory_order_seq_cst);
  return FunctionHandle(entry->latest);
}

Result<void> EngineCore::check_reservation(std::string_view name, std::int64_t reserve,
                                           std::int64_t reserved_elsewhere) const {
  const std::int64_t left = options_.concurrency_limit - reserved_elsewhere - reserve;
  if (left < options_.min_unreserved_concurrency) {
    return fail(ErrorCode::kInvalidArgument,
                cat("function '", name, "': reserved_concurrency ", reserve, " would leave ", left,
                    " unreserved (engine concurrency_limit ", options_.concurrency_limit,
                    ", already reserved ", reserved_elsewhere, ", min_unreserved_concurrency ",
                    options_.min_unreserved_concurrency, ")"));
  }
  return {};
}

ConcurrencyGate* EngineCore::reserve_gate(FunctionEntry& entry, std::int64_t reserve) {
  reserved_total_ += reserve - entry.reserved;
  entry.reserved = reserve;
  unreserved_.set_limit(options_.concurrency_limit - reserved_total_);
  if (!entry.own_gate) {
    entry.own_gate = std::make_unique<ConcurrencyGate>(
        cat("reserved concurrency of function '", entry.name, "'"), reserve,
        &EngineCore::admit_waiter, this);
    gates_.push_back(entry.own_gate.get());
  } else {
    entry.own_gate->set_limit(reserve);
  }
  return entry.own_gate.get();
}

void EngineCore::unreserve(FunctionEntry& entry) {
  if (entry.reserved == 0) return;
  reserved_total_ -= entry.reserved;
  entry.reserved = 0;
  unreserved_.set_limit(options_.concurrency_limit - reserved_total_);
}

Result<FunctionHandle> EngineCore::find(std::string_view text) const {
  // Fast path: a plain name (the common case) is one lock-free lookup.
  Route* r = registry_.find(text);
  if (r != nullptr && r->primary.load(std::memory_order_acquire) != nullptr) [[likely]]
    return FunctionHandle(r);
  if (init_error_) return tl::unexpected<Error>(*init_error_);
  const QualifiedName q = split_qualifier(text);
  if (q.qualifier == "$LATEST") {
    r = registry_.find(q.name);
  } else if (r == nullptr) {
    if (registry_.find(q.name) == nullptr)
      return fail(ErrorCode::kNotFound, cat("function '", q.name, "' is not registered"));
    return fail(ErrorCode::kNotFound,
                cat("function '", q.name, "' has no version or alias '", q.qualifier, "'"));
  }
  if (r == nullptr || r->primary.load(std::memory_order_acquire) == nullptr)
    return tl::unexpected<Error>(
        r != nullptr
            ? unrouted_error(*r)
            : Error{ErrorCode::kNotFound, cat("function '", q.name, "' is not registered")});
  return FunctionHandle(r);
}

Error EngineCore::unrouted_error(const Route& route) const {
  if (route.qualifier.empty()) {
    return Error{ErrorCode::kNotFound,
                 cat("function '", route.entry->name, "' is not registered (it was unloaded)")};
  }
  return Error{ErrorCode::kNotFound,
               cat("function '", route.entry->name, "' has no ",
                   route.is_alias ? "alias '" : "loaded version '", route.qualifier,
                   route.is_alias ? "' (it was deleted)" : "' (it was unloaded)")};
}

std::int64_t EngineCore::calls_in_use() {
  std::lock_guard<std::mutex> lock(calls_mu_);
  std::int64_t n = 0;
  for (const auto& pc : all_calls_) n += pc->in_use.load(std::memory_order_acquire) ? 1 : 0;
  return n;
}

std::int64_t EngineCore::in_flight() const {
  std::lock_guard<std::mutex> lock(config_mu_);
  std::int64_t n = 0;
  for (const ConcurrencyGate* g : gates_) n += g->in_use();
  return n;
}

EngineStats EngineCore::stats() const {
  EngineStats s;
  s.throttles = throttles_.load();
  s.timeouts = timeouts_.load();
  s.handler_errors = handler_errors_.load();
  s.overruns = overruns_.load();
  s.running_overruns = running_overruns_.load();
  std::lock_guard<std::mutex> lock(config_mu_);
  for (const ConcurrencyGate* g : gates_) {
    s.in_flight += g->in_use();
    s.queued += g->waiting();
  }
  s.unreserved_available = unreserved_.limit();
  return s;
}

void EngineCore::log(LogLevel level, std::string_view function, std::string_view request_id,
                     std::string_view message, LogKind kind, std::string_view version,
                     const InvocationReport* report) const {
  LogRecord record;
  record.level = level;
  record.function = function;
  record.request_id = request_id;
  record.message = message;
  record.kind = kind;
  record.time = time_.to_time(time_.now());
  record.version = version;
  record.report = report;
  if (!options_.log_sink) {
    std::string line = format_log_line(record, options_.log_format);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  try {
    options_.log_sink(record);
  } catch (...) {
    logs_dropped(1, "the log sink threw");
  }
}

void EngineCore::format_request_id(const Invocation& inv, char (&out)[37]) const noexcept {
  // UUID-shaped. (fiber id, fiber's task sequence) is unique within an engine; a bijective mix
  // (splitmix64's finaliser) spreads it over the first half, and the per-engine random nonce
  // fills the second, so ids of different engines differ too. Plain digit writes: the stack
  // overflow report formats it inside a signal handler.
  std::uint64_t x =
      (std::uint64_t{inv.fiber != nullptr ? inv.fiber->id() : 0} << 40) ^ inv.sequence;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  const std::uint64_t n = request_nonce_;
  static constexpr char kHex[] = "0123456789abcdef";
  char* p = out;
  auto hex = [&p](std::uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) *p++ = kHex[(v >> (4 * i)) & 0xf];
  };
  hex(x >> 32, 8);
  *p++ = '-';
  hex((x >> 16) & 0xffff, 4);
  *p++ = '-';
  hex(x & 0xffff, 4);
  *p++ = '-';
  hex(n >> 48, 4);
  *p++ = '-';
  hex(n & 0xffff'ffff'ffffULL, 12);
  *p = '\0';
}

std::size_t EngineCore::describe_task(const Task* task, char* buf, std::size_t size) noexcept {
  // Async-signal-safe: the stack overflow handler calls it.
  const auto* inv = static_cast<const Invocation*>(task);
  std::size_t n = 0;
  auto put = [&](std::string_view s) {
    for (char c : s) {
      if (n + 1 >= size) return;
      buf[n++] = c;
    }
  };
  char rid[37];
  inv->core->format_request_id(*inv, rid);
  put("function '");
  put(inv->fn->name);
  put("' (request id ");
  put(std::string_view(rid, 36));
  return n;
}

void EngineCore::shutdown(absl::Duration drain, std::string_view reason) {
  if (init_error_) return;
  shutdown_impl(to_nanos(drain), std::nullopt, reason);
}

void EngineCore::shutdown_until(std::int64_t deadline, std::string_view reason) {
  if (init_error_) return;
  shutdown_impl(0, deadline, reason);
}

void EngineCore::shutdown_impl(std::int64_t drain_ns, std::optional<std::int64_t> until,
                               std::string_view reason) {
  // From a handler, a worker (an async callback) or a callback that shutdown itself is
  // running, waiting for the drain would wait for ourselves: only stop admitting; the outer
  // shutdown, or the destructor, drains.
  if (current_fiber() != nullptr || scheduler_->current_worker() != nullptr ||
      shutdown_thread_.load(std::memory_order_acquire) == std::this_thread::get_id()) {
    shutting_down_.store(true, std::memory_order_seq_cst);
    return;
  }
  std::lock_guard<std::mutex> shutdown_lock(shutdown_mu_);
  if (drain_over_.load()) return;
  shutdown_thread_.store(std::this_thread::get_id(), std::memory_order_release);
  struct ClearOwner {
    std::atomic<std::thread::id>& owner;
    ~ClearOwner() { owner.store(std::thread::id(), std::memory_order_release); }
  } clear_owner{shutdown_thread_};
  shutting_down_.store(true, std::memory_order_seq_cst);
  if (!shutdown_told_.exchange(true) && wants(LifecycleEventType::kShutdown)) {
    LifecycleEvent e;
    e.type = LifecycleEventType::kShutdown;
    e.time = time_.to_time(time_.now());
    e.reason = reason;
    emit(e);
  }

  // Async invokes still waiting for a slot never started: they end now.
  std::vector<ConcurrencyGate*> gates;
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    gates = gates_;
  }
  for (ConcurrencyGate* g : gates) {
    for (GateWaiter* w : g->remove_all()) {
      auto* pc = static_cast<PendingCall*>(w->owner);
      if (scheduler_->timer_thread().cancel(&pc->queue_timer)) unref(pc);
      pc->state.fetch_or(kStarted | kReleasedShutdown);
      count(pc->inv.fn, [](MetricShard& s) { s.async_dropped.add(); });
      pc->callback(tl::unexpected<Error>(release_error(*pc, kReleasedShutdown)));
      pc->callback = nullptr;
      unpin(pc->inv.fn);  // it never ran
      unref(pc);          // delivery
      unref(pc);          // never submitted
    }
  }

  // Drain until the deadline: in-flight handlers, and the delivery of their results (an async
  // callback runs after its handler gave its slot back), i.e. every pooled record in use.
  const std::int64_t deadline = until ? *until : add_saturating(time_.now(), drain_ns);
  while ((in_flight() != 0 || calls_in_use() != 0) && time_.now() < deadline) {
    time_.park_until(drain_parker_, deadline);
  }

  // Past the deadline: refuse nested invokes too, and release every caller still waiting.
  drain_over_.store(true, std::memory_order_seq_cst);
  // Instances: the idle ones are shut down now, busy ones as their handlers return.
  retire_envs();
  if (in_flight() == 0) return;
  std::vector<PendingCall*> calls;
  {
    std::lock_guard<std::mutex> lock(calls_mu_);
    for (auto& pc : all_calls_) {
      if (pc->in_use.load()) calls.push_back(pc.get());
    }
  }
  for (PendingCall* pc : calls) {
    if (try_release(pc, kReleasedShutdown)) deliver_release(pc, kReleasedShutdown);
  }
}

}  // namespace ember::detail
