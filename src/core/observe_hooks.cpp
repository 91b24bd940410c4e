// The engine's side of observability: metric shards and snapshots, the observed path of an
// invocation (START/END/REPORT lines, spans, lifecycle events), subscriptions and the span
// buffer. The formats themselves live in src/observe/ and know nothing of the engine.
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "core/engine_core.hpp"
#include "core/str_cat.hpp"
#include "env/scratch.hpp"
#include "sched/stack_guard.hpp"

namespace ember::detail {

// ---- shards ----

MetricShard* FunctionStats::make_shard(int slot) {
  // Only this thread writes shards_[slot] (one thread per pin slot at a time).
  auto* s = new MetricShard();
  shards_[slot].store(s, std::memory_order_release);
  return s;
}

void FunctionStats::read_ends(const MetricShard& s, FunctionCounts& out) {
  s.duration.add_to(out.duration);
  if (const HistogramShard* h = s.async_age.load(std::memory_order_acquire))
    h->add_to(out.async_age);
  out.timeouts += s.timeouts.load();  // before errors: a timeout's error is stored first
  out.errors += s.errors.load();
  out.ended_unrun += s.ended_unrun.load();
  out.cold_starts += s.cold_starts.load();
  out.overruns += s.overruns.load();
  out.provisioned += s.provisioned.load();
  out.spillover += s.spillover.load();
  out.async_dropped += s.async_dropped.load();
  out.dead_letter_errors += s.dead_letter_errors.load();
  out.destination_failures += s.destination_failures.load();
  for (int i = 0; i < kThrottleReasons; ++i) out.throttles[i] += s.throttles[i].load();
}

void FunctionStats::read_admissions(const MetricShard& s, FunctionCounts& out) {
  out.invocations += s.invocations.load();
}

void FunctionStats::read(FunctionCounts& out) const {
  // Ends first, then (after the fence) admissions: see stats.hpp.
  for (int i = 0; i < kPinSlots; ++i) {
    if (const MetricShard* s = shards_[i].load(std::memory_order_acquire)) read_ends(*s, out);
  }
  {
    std::lock_guard<std::mutex> lock(shared_mu_);
    read_ends(shared_, out);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  for (int i = 0; i < kPinSlots; ++i) {
    if (const MetricShard* s = shards_[i].load(std::memory_order_acquire)) read_admissions(*s, out);
  }
  {
    std::lock_guard<std::mutex> lock(shared_mu_);
    read_admissions(shared_, out);
  }
  std::lock_guard<std::mutex> lock(init_mu_);
  init_duration_.add_to(out.init_duration);
}

void EngineCore::count_started(FunctionRecord* fn) {
  count(fn, [](MetricShard& s) { s.invocations.add(); });
}

void EngineCore::count_end_any(FunctionRecord* fn, Outcome outcome, bool cold,
                               std::int64_t duration) {
  count(fn, [&](MetricShard& s) { count_end(s, outcome, cold, duration); });
}

// ---- set-up, subscriptions, events ----

void EngineCore::init_observe() {
  const double rate = options_.trace_sample_rate;
  if (rate > 0.0) {
    // A root is sampled when a uniform u64 is below rate * 2^64; rate 1 samples all.
    sample_threshold_ =
        rate >= 1.0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(std::ldexp(rate, 64));
    hooks_.fetch_or(kHookSampling, std::memory_order_relaxed);
  }
  spans_ = std::make_unique<SpanBuffer>(options_.trace_buffer_spans);
}

std::uint64_t EngineCore::subscribe(std::shared_ptr<LifecycleObserver> observer,
                                    LifecycleEventMask mask) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  auto next = std::make_unique<Observers>();
  if (const Observers* cur = observers_.load(std::memory_order_acquire)) *next = *cur;
  const std::uint64_t id = next_subscription_++;
  next->subscriptions.push_back({id, mask, std::move(observer)});
  next->mask |= mask;
  const Observers* published = next.get();
  retired_observers_.push_back(std::move(next));
  observers_.store(published, std::memory_order_release);
  constexpr LifecycleEventMask kInvokeEvents = lifecycle_mask(LifecycleEventType::kInvokeStart) |
                                               lifecycle_mask(LifecycleEventType::kInvokeEnd) |
                                               lifecycle_mask(LifecycleEventType::kInvokeReport);
  if ((published->mask & kInvokeEvents) != 0) hooks_.fetch_or(kHookEvents);
  return id;
}

bool EngineCore::unsubscribe(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(observers_mu_);
  const Observers* cur = observers_.load(std::memory_order_acquire);
  if (cur == nullptr) return false;
  auto next = std::make_unique<Observers>();
  bool found = false;
  for (const auto& s : cur->subscriptions) {
    if (s.id == id) {
      found = true;
      continue;
    }
    next->subscriptions.push_back(s);
    next->mask |= s.mask;
  }
  if (!found) return false;
  constexpr LifecycleEventMask kInvokeEvents = lifecycle_mask(LifecycleEventType::kInvokeStart) |
                                               lifecycle_mask(LifecycleEventType::kInvokeEnd) |
                                               lifecycle_mask(LifecycleEventType::kInvokeReport);
  if ((next->mask & kInvokeEvents) == 0) hooks_.fetch_and(static_cast<std::uint8_t>(~kHookEvents));
  // The old list stays readable (an emit in flight may hold it) until the engine goes.
  const Observers* published = next.get();
  retired_observers_.push_back(std::move(next));
  observers_.store(published, std::memory_order_release);
  return true;
}

void EngineCore::emit(const LifecycleEvent& event) const {
  const Observers* list = observers_.load(std::memory_order_acquire);
  const LifecycleEventMask bit = lifecycle_mask(event.type);
  if (list == nullptr || (list->mask & bit) == 0) return;
  for (const auto& s : list->subscriptions) {
    if ((s.mask & bit) == 0) continue;
    try {
      s.observer->on_event(event);
    } catch (...) {
      // An observer must not throw; what it missed is lost, and counted.
      logs_dropped_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void EngineCore::logs_dropped(std::uint64_t n, std::string_view reason) const {
  logs_dropped_.fetch_add(n, std::memory_order_relaxed);
  if (!wants(LifecycleEventType::kLogsDropped)) return;
  LifecycleEvent e;
  e.type = LifecycleEventType::kLogsDropped;
  e.time = time_.to_time(time_.now());
  e.reason = reason;
  e.count = n;
  emit(e);
}

void EngineCore::observe_init_start(std::string_view function, std::string_view version) {
  if (!wants(LifecycleEventType::kInitStart)) return;
  LifecycleEvent e;
  e.type = LifecycleEventType::kInitStart;
  e.time = time_.to_time(time_.now());
  e.function = function;
  e.version = version;
  emit(e);
}

void EngineCore::observe_init_report(std::string_view function, std::string_view version,
                                     std::int64_t duration_ns, const Error* error) {
  if (!wants(LifecycleEventType::kInitReport)) return;
  LifecycleEvent e;
  e.type = LifecycleEventType::kInitReport;
  e.time = time_.to_time(time_.now());
  e.function = function;
  e.version = version;
  e.duration_ns = duration_ns;
  e.error = error;
  emit(e);
}

void EngineCore::set_cold(FunctionRecord* record, std::int64_t init_ns) noexcept {
  record->init_ns = init_ns;
  record->cold.store(true, std::memory_order_release);
}

bool EngineCore::take_cold(FunctionRecord* fn, std::int64_t* init_ns) noexcept {
  if (!fn->cold.exchange(false, std::memory_order_relaxed)) return false;
  *init_ns = fn->init_ns;
  if (metrics_)
    fn->stats->record_init(static_cast<std::uint64_t>(std::max<std::int64_t>(0, fn->init_ns)));
  return true;
}

// ---- the observed path of one invocation ----

namespace {

// splitmix64 over a per-thread state: ids and sampling decisions, off the hot path.
std::uint64_t next_random() noexcept {
  thread_local std::uint64_t state = 0;
  if (state == 0) {
    state = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&state)) ^
            static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id())) ^
            static_cast<std::uint64_t>(absl::ToUnixNanos(absl::Now()));
  }
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t nonzero_random() noexcept {
  std::uint64_t r;
  do r = next_random();
  while (r == 0);
  return r;
}

}  // namespace

TraceContext EngineCore::trace_of(const Invocation& inv) noexcept {
  if ((inv.observe & kObserveTrace) == 0) return {};
  return inv.trace;
}

void EngineCore::prepare_observed(Invocation& inv, const TraceContext& in,
                                  const Invocation* parent) {
  const std::uint8_t hooks = hooks_.load(std::memory_order_relaxed);
  std::uint8_t observe = 0;
  if (inv.fn->config.report_logs) observe |= kObserveLogs;
  if ((hooks & kHookEvents) != 0) observe |= kObserveEvents;
  // The trace: the parent handler's, else the one the caller passed, else maybe a new one.
  if (parent != nullptr && (parent->observe & kObserveTrace) != 0) {
    inv.trace.trace_id = parent->trace.trace_id;
    inv.trace.sampled = parent->trace.sampled;
    inv.parent_span = parent->trace.span_id;
    observe |= kObserveTrace;
  } else if (in.trace_id.valid()) {
    inv.trace.trace_id = in.trace_id;
    inv.trace.sampled =
        in.sampled || ((hooks & kHookSampling) != 0 && next_random() < sample_threshold_);
    inv.parent_span = in.span_id;
    observe |= kObserveTrace;
  } else if (parent == nullptr && (hooks & kHookSampling) != 0 &&
             next_random() < sample_threshold_) {
    inv.trace.trace_id = TraceId{nonzero_random(), next_random()};
    inv.trace.sampled = true;
    inv.parent_span = 0;
    observe |= kObserveTrace;
  }
  if ((observe & kObserveTrace) != 0) {
    inv.trace.span_id = nonzero_random();
    if (inv.trace.sampled) observe |= kObserveSpan;
  }
  inv.observe = observe;
}

void EngineCore::observe_start(Invocation& inv) {
  if ((inv.observe & (kObserveLogs | kObserveEvents)) == 0) return;
  // For Max Memory Used: the stack's high-water mark is read back in observe_end.
  paint_stack_below_here();
  char rid[37];
  format_request_id(inv, rid);
  const std::string_view request_id(rid, 36);
  const FunctionRecord& fn = *inv.fn;
  if ((inv.observe & kObserveLogs) != 0)
    log(LogLevel::kInfo, fn.name, request_id, {}, LogKind::kStart, fn.version);
  if ((inv.observe & kObserveEvents) != 0) {
    LifecycleEvent e;
    e.type = LifecycleEventType::kInvokeStart;
    e.time = time_.to_time(inv.start_ns);
    e.function = fn.name;
    e.version = fn.version;
    e.request_id = request_id;
    emit(e);
  }
}

const Error* EngineCore::error_of(const Invocation& inv) const noexcept {
  if (inv.typed != nullptr) return inv.typed->error_of(inv.typed->out);
  return inv.out->has_value() ? nullptr : &inv.out->error();
}

void EngineCore::observe_end(Invocation& inv, std::int64_t end, Outcome outcome,
                             const Error* caller_error) {
  const FunctionRecord& fn = *inv.fn;
  const std::int64_t duration = std::max<std::int64_t>(0, end - inv.start_ns);
  // What the caller got: the release's error, the handler's, or (an overrun, whose result was
  // replaced after the fact) a timeout.
  Error overrun;
  const Error* error = caller_error != nullptr ? caller_error : error_of(inv);
  if (error == nullptr && outcome != Outcome::kOk) {
    overrun = timeout_error(fn, inv.timeout_ns);
    error = &overrun;
  }
  if ((inv.observe & kObserveSpan) != 0) record_span(inv, end, error);
  if ((inv.observe & (kObserveLogs | kObserveEvents)) == 0) return;
  char rid[37];
  format_request_id(inv, rid);
  const std::string_view request_id(rid, 36);
  InvocationReport report;
  report.duration_ns = duration;
  report.billed_duration_ms = std::max<std::int64_t>(1, (duration + 999'999) / 1'000'000);
  report.memory_size_mb = fn.config.memory_mb;
  // Max Memory Used: what the invocation's memory resource held at most, plus how deep its
  // fiber stack went (painted at observe_start).
  const std::int64_t used = static_cast<std::int64_t>(
      (inv.memory != nullptr ? inv.memory->peak() : 0) + stack_high_water());
  report.max_memory_used_bytes = used;
  report.max_memory_used_mb = static_cast<int>((used + (1 << 20) - 1) >> 20);
  if (metrics_) fn.stats->note_memory_used(used);
  if (inv.cold) {
    if (inv.restored) {
      report.restore_duration_ns = inv.init_ns;
    } else {
      report.init_duration_ns = inv.init_ns;
    }
  }
  if (inv.instance != nullptr && inv.instance != kNewInstance && !inv.instance->scratch.empty())
    report.scratch_used_bytes =
        static_cast<std::int64_t>(scratch_bytes_used(inv.instance->scratch));
  if ((inv.observe & kObserveLogs) != 0) {
    log(LogLevel::kInfo, fn.name, request_id, {}, LogKind::kEnd, fn.version);
    log(LogLevel::kInfo, fn.name, request_id, {}, LogKind::kReport, fn.version, &report);
  }
  if ((inv.observe & kObserveEvents) != 0) {
    LifecycleEvent e;
    e.type = LifecycleEventType::kInvokeEnd;
    e.time = time_.to_time(end);
    e.function = fn.name;
    e.version = fn.version;
    e.request_id = request_id;
    e.duration_ns = duration;
    e.error = error;
    emit(e);
    e.type = LifecycleEventType::kInvokeReport;
    e.init_duration_ns = report.init_duration_ns;
    e.billed_duration_ms = report.billed_duration_ms;
    e.memory_size_mb = report.memory_size_mb;
    e.max_memory_used_mb = report.max_memory_used_mb;
    emit(e);
  }
}

void EngineCore::record_span(const Invocation& inv, std::int64_t end, const Error* error) {
  Span span;
  span.trace_id = inv.trace.trace_id;
  span.span_id = inv.trace.span_id;
  span.parent_span_id = inv.parent_span;
  span.function = inv.fn->name;
  span.version = inv.fn->version;
  char rid[37];
  format_request_id(inv, rid);
  span.request_id.assign(rid, 36);
  span.start_ns = inv.start_ns;
  span.duration_ns = std::max<std::int64_t>(0, end - inv.start_ns);
  if (error != nullptr) span.error = error->code;
  span.fiber = inv.fiber != nullptr ? inv.fiber->id() : 0;
  SpanBuffer& b = *spans_;
  const Worker* worker = scheduler_->current_worker();
  std::lock_guard<std::mutex> lock(b.mu);
  if (b.spans.size() >= b.capacity) {
    ++b.dropped;
    return;
  }
  if (worker != nullptr) {
    span.thread = static_cast<std::uint32_t>(worker->index()) + 1;
    span.thread_name = cat("worker ", worker->index());
  } else {
    // Callers are numbered from 1001 in the order they first record a span.
    const std::thread::id me = std::this_thread::get_id();
    auto it = std::find_if(b.callers.begin(), b.callers.end(),
                           [&](const auto& c) { return c.first == me; });
    if (it == b.callers.end()) {
      b.callers.emplace_back(me, static_cast<std::uint32_t>(1001 + b.callers.size()));
      it = b.callers.end() - 1;
    }
    span.thread = it->second;
    span.thread_name = cat("caller ", it->second - 1001);
  }
  b.spans.push_back(std::move(span));
}

std::vector<Span> EngineCore::take_spans() {
  std::lock_guard<std::mutex> lock(spans_->mu);
  std::vector<Span> out;
  out.swap(spans_->spans);
  return out;
}

// ---- snapshot ----

MetricsSnapshot EngineCore::metrics() const {
  MetricsSnapshot m;
  m.taken = time_.to_time(time_.now());
  m.enabled = metrics_;
  m.concurrency_limit = options_.concurrency_limit;
  m.total.function = "";
  {
    std::lock_guard<std::mutex> lock(spans_->mu);
    m.spans_dropped = spans_->dropped;
  }
  m.logs_dropped = logs_dropped_.load(std::memory_order_relaxed);
  HistogramSnapshot total_duration, total_age, total_init;
  std::lock_guard<std::mutex> lock(config_mu_);
  m.unreserved_concurrent_executions = unreserved_.in_use();
  m.unreserved_concurrent_executions_max = unreserved_.max_in_use();
  m.unreserved_concurrency_limit = unreserved_.limit();
  std::vector<FunctionEntry*> entries = registry_.entries();
  std::sort(entries.begin(), entries.end(),
            [](const FunctionEntry* a, const FunctionEntry* b) { return a->name < b->name; });
  FunctionMetrics& t = m.total;
  for (const FunctionEntry* e : entries) {
    FunctionCounts c;
    e->stats->read(c);
    FunctionMetrics f;
    f.function = e->name;
    f.invocations = c.invocations;
    f.errors = c.errors;
    f.timeouts = c.timeouts;
    f.overruns = c.overruns;
    f.running_overruns = e->stats->running_overruns.load(std::memory_order_relaxed);
    for (int i = 0; i < kThrottleReasons; ++i) f.throttles_by_reason[i] = c.throttles[i];
    f.duration = to_public(c.duration);
    if (e->reserved > 0 && e->own_gate != nullptr) {
      f.reserved_concurrency = static_cast<int>(e->reserved);
      f.concurrent_executions = e->own_gate->in_use();
      f.concurrent_executions_max = e->own_gate->max_in_use();
    } else {
      // Admitted minus ended (exact when the function is idle; never negative, see stats.hpp).
      const std::uint64_t ended = c.duration.count + c.ended_unrun;
      f.concurrent_executions =
          c.invocations > ended ? static_cast<std::int64_t>(c.invocations - ended) : 0;
    }
    f.cold_starts = c.cold_starts;
    f.init_duration = to_public(c.init_duration);
    f.provisioned_invocations = c.provisioned;
    f.provisioned_spillover_invocations = c.spillover;
    f.max_memory_used_bytes = e->stats->max_memory_used.load(std::memory_order_relaxed);
    std::int64_t queued = 0;
    for (const FunctionRecord* r : e->versions) queued += r->queued.load(std::memory_order_relaxed);
    f.async_queue_depth = queued;
    f.async_event_age = to_public(c.async_age);
    f.async_events_dropped = c.async_dropped;
    f.dead_letter_errors = c.dead_letter_errors;
    f.destination_delivery_failures = c.destination_failures;

    t.invocations += f.invocations;
    t.errors += f.errors;
    t.timeouts += f.timeouts;
    t.overruns += f.overruns;
    t.running_overruns += f.running_overruns;
    for (int i = 0; i < kThrottleReasons; ++i) t.throttles_by_reason[i] += f.throttles_by_reason[i];
    t.concurrent_executions += f.concurrent_executions;
    t.cold_starts += f.cold_starts;
    t.provisioned_invocations += f.provisioned_invocations;
    t.provisioned_spillover_invocations += f.provisioned_spillover_invocations;
    t.max_memory_used_bytes = std::max(t.max_memory_used_bytes, f.max_memory_used_bytes);
    t.async_queue_depth += f.async_queue_depth;
    t.async_events_dropped += f.async_events_dropped;
    t.dead_letter_errors += f.dead_letter_errors;
    t.destination_delivery_failures += f.destination_delivery_failures;
    total_duration.merge(c.duration);
    total_age.merge(c.async_age);
    total_init.merge(c.init_duration);
    m.functions.push_back(std::move(f));
  }
  // The engine's total concurrency is exact: the sum over its gates.
  t.concurrent_executions = 0;
  for (const ConcurrencyGate* g : gates_) t.concurrent_executions += g->in_use();
  t.duration = to_public(total_duration);
  t.async_event_age = to_public(total_age);
  t.init_duration = to_public(total_init);
  return m;
}

}  // namespace ember::detail

namespace ember::detail {

void EngineCore::count_event(FunctionHandle handle, EventCounter counter) {
  Route* route = handle.route_;
  if (route == nullptr || route->owner != this || !metrics_) return;
  FunctionRecord* fn = resolve(route);  // pinned while its shard is written
  if (fn == nullptr) return;
  count(fn, [counter](MetricShard& s) {
    switch (counter) {
      case EventCounter::kDropped:
        s.async_dropped.add();
        break;
      case EventCounter::kDeadLetterError:
        s.dead_letter_errors.add();
        break;
      case EventCounter::kDestinationFailure:
        s.destination_failures.add();
        break;
    }
  });
  unpin(fn);
}

}  // namespace ember::detail
