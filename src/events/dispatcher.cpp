// Queued "Event" invokes. One mutex guards the queues, timers and counts; it is never held
// across an invoke, a user callback or a destination. Each event is one object (recycled, not
// freed) that moves between four places: its function's FIFO (queued), a retry timer
// (delayed), the core (in flight: the async callback owns it), and its ending (the record on
// its way to its place). Whoever takes it out of one place under the lock owns it until it
// puts it in the next. The common event takes the lock once: enqueue finds its function's
// queue empty and invokes at once, and its success, with nothing to deliver, is counted
// without the lock (attempt_ended's fast path).
//
// Dispatch never happens on a fiber: the core makes an invoke_async from a fiber a child of
// the fiber's invocation (its depth, its deadline, its trace), and an attempt's callback runs
// on the finished attempt's fiber. Work that arises there (resuming a paused queue, an
// enqueue made by a handler or a destination) goes to the events thread instead. Likewise,
// records reach user code only on engine threads (a worker or the events thread).
#include "events/dispatcher.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <utility>
#include <vector>

#include "core/str_cat.hpp"
#include "events/dispatcher_internal.hpp"
#include "sched/fiber.hpp"

namespace ember::detail {

namespace {

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser: a bijection
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

// A version-4-shaped UUID from a sequence number: `u` is a bijection of it (unique within the
// engine); the nonces make ids of different engines differ.
void format_event_id(std::uint64_t seq, std::uint64_t n0, std::uint64_t n1, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::uint64_t u = mix(seq ^ n0);
  const std::uint64_t r = mix(seq + n1);
  // The version nibble displaces four bits of u; they move into the second half.
  const std::uint64_t hi = (u & ~(std::uint64_t{0xF} << 12)) | (std::uint64_t{4} << 12);
  const std::uint64_t lo =
      (std::uint64_t{2} << 62) | (((u >> 12) & 0xF) << 58) | (r & ((std::uint64_t{1} << 58) - 1));
  int k = 0;
  auto put = [&](std::uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) out[k++] = kHex[(v >> (4 * i)) & 0xF];
  };
  put(hi >> 32, 8);
  out[k++] = '-';
  put((hi >> 16) & 0xFFFF, 4);
  out[k++] = '-';
  put(hi & 0xFFFF, 4);
  out[k++] = '-';
  put(lo >> 48, 4);
  out[k++] = '-';
  put(lo & 0xFFFF'FFFF'FFFFULL, 12);
}

FnState& EventDispatcher::State::fn_state_locked(std::string_view name) {
  auto it = fns.find(absl::string_view(name.data(), name.size()));
  if (it == fns.end()) it = fns.emplace(std::string(name), std::make_unique<FnState>()).first;
  return *it->second;
}

Result<std::string> EventDispatcher::State::enqueue(FunctionHandle fn, std::string_view function,
                                                    std::string_view payload,
                                                    const EventOptions& options,
                                                    EnqueueExtras extras, bool internal) {
  auto refuse = [&](Error error) -> Result<std::string> {
    std::lock_guard<std::mutex> lock(mu);
    ++stats.refused;
    return tl::unexpected<Error>(std::move(error));
  };
  if (auto ok = check_options(function, options); !ok) return refuse(std::move(ok.error()));
  const std::size_t limit = core.options().max_async_payload;
  if (payload.size() > limit) {
    return refuse(Error{ErrorCode::kPayloadTooLarge,
                        cat("enqueue of '", function, "': the payload is ", payload.size(),
                            " bytes, over max_async_payload (", limit, " bytes)")});
  }
  const std::int64_t now = core.time().now();
  std::uint64_t seq = 0;
  // On a fiber the invoke would become a child of the running invocation: queue it instead.
  const bool here = current_fiber() == nullptr;
  Event* ev;
  FnState* fs;
  Next next;
  std::optional<Ending> end;
  std::vector<std::shared_ptr<const Config>> retired;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu);
    if (closed && !(internal && !drain_over)) {
      ++stats.refused;
      return fail(ErrorCode::kShuttingDown,
                  cat("enqueue of '", function, "': the engine is shutting down"));
    }
    fs = &fn_state_locked(fn);
    const Config* cfg = &config_locked(*fs);
    std::size_t not_ended = fs->accepted - fs->ended - fs->fast_seen;  // an upper bound
    if (not_ended >= cfg->pub.max_queued_events) not_ended = fn_live_locked(*fs);
    if (not_ended == 0 && !fs->retired.empty()) retired.swap(fs->retired);
    if (not_ended >= cfg->pub.max_queued_events) {
      ++stats.refused;
      return fail(ErrorCode::kQueueFull,
                  cat("enqueue of '", function, "': ", not_ended,
                      " events of the function have not ended yet (max_queued_events = ",
                      cfg->pub.max_queued_events, ")"));
    }
    Event* e = ev = take_event_locked();
    e->fs = fs;
    e->fn = fn;
    e->config = cfg;
    e->payload.assign(payload.data(), payload.size());
    e->enqueued_ns = extras.enqueued_ns != 0 ? extras.enqueued_ns : now;
    const std::int64_t max_age =
        options.max_event_age ? to_nanos(*options.max_event_age) : cfg->max_age_ns;
    e->expires_ns = add_saturating(e->enqueued_ns, max_age);
    e->seq = seq = next_seq++;  // (its text is made outside the lock)
    e->max_retries = options.max_retries.value_or(cfg->pub.max_retries);
    if (!options.event_id.empty()) e->more().id = options.event_id;
    if (function != fn.name()) e->more().function.assign(function);
    if (extras.source == "destination") {
      e->source = Source::kDestination;
    } else if (extras.source != "enqueue") {
      e->source = Source::kOther;
      e->more().source.assign(extras.source);
    }
    if (options.trace.valid()) e->more().trace = options.trace;
    if (options.client_context != nullptr) e->more().client_context = *options.client_context;
    if (extras.on_end) e->more().on_end = std::move(extras.on_end);
    ++fs->accepted;
    ++accepted;
    ++stats.enqueued;
    next = admit_locked(e, now, here, end);
  }
  std::string id;
  if (options.event_id.empty()) {
    id.resize(36);
    format_event_id(seq, nonce0, nonce1, id.data());
  } else {
    id = options.event_id;
  }
  switch (next) {
    case Next::kDispatch:
      dispatch(ev);  // the fast path: an empty queue, not paused
      break;
    case Next::kPump:
      schedule_pump(fs);  // not through ev: a pump may own it by now
      break;
    case Next::kEnd:
      complete(std::move(*end));
      break;
    case Next::kNone:
      break;
  }
  return id;
}

// ---- Dispatch ----

EventDispatcher::State::Next EventDispatcher::State::admit_locked(Event* e, std::int64_t now,
                                                                  bool here,
                                                                  std::optional<Ending>& end) {
  if (drain_over) {
    end = end_of(e, EventCondition::kShutdown);
    return Next::kEnd;
  }
  if (now > e->expires_ns) {
    end = end_of(e, EventCondition::kEventAgeExceeded);
    return Next::kEnd;
  }
  FnState& fs = *e->fs;
  if (here && fs.ready.empty() && !fs.paused && !core_refuses) {
    start_attempt_locked(e, now);
    return Next::kDispatch;
  }
  fs.ready.push_back(e);
  ++stats.queued;
  if (fs.paused || core_refuses || fs.pump_scheduled) return Next::kNone;
  fs.pump_scheduled = true;
  return Next::kPump;
}

void EventDispatcher::State::start_attempt_locked(Event* e, std::int64_t now) {
  ++attempts_started;
  if (++e->attempts > 1) ++stats.retries;
  dispatching.fetch_add(1, std::memory_order_relaxed);
  e->attempt_ns = now;
  e->attempt_version = e->fn.version();
  e->ends_at_start = e->fs->ends.load();
}

void EventDispatcher::State::dispatch(Event* e) {
  // Everything read from e is read before the invoke: once it is accepted, the callback owns e
  // (and may have ended it before invoke_async returns).
  FnState* fs = e->fs;
  const bool after_throttle = e->throttles > 0;
  EventInfo info;
  char id[36];
  info.id = id_of(*e, id);
  info.attempt = e->attempts;
  info.enqueued_at = wall_time(e->enqueued_ns);
  info.source = e->source_name();
  InvokeOptions options;
  if (e->extra && e->extra->client_context) options.client_context = &*e->extra->client_context;
  if (e->extra) options.trace = e->extra->trace;
  const AsyncExtras extras{&info, /*no_wait=*/true, e->enqueued_ns};
  auto ok = core.invoke_async(
      e->fn, e->payload,
      [this, e](Result<std::string> result) { attempt_ended(e, std::move(result)); }, options,
      &extras);
  if (!ok) {
    refused(e, std::move(ok.error()));
  } else if (after_throttle) {
    // The first event admitted after a throttle is the one that was throttled (the FIFO's
    // head): the streak of throttles in a row ends here.
    std::lock_guard<std::mutex> lock(mu);
    fs->throttle_streak = 0;
  }
  dispatching.fetch_sub(1, std::memory_order_release);  // the last touch of the dispatcher
}

void EventDispatcher::State::refused(Event* e, Error error) {
  std::optional<Ending> end;
  FnState* fs = e->fs;
  bool pump_now = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    --attempts_started;
    if (e->attempts-- > 1) --stats.retries;  // it never ran: not an attempt
    switch (error.code) {
      case ErrorCode::kThrottled:
        ++e->throttles;
        ++stats.throttles;
        if (drain_over) {
          end = end_of(e, EventCondition::kShutdown);
          break;
        }
        // Back to the head: throttles are not retries, and the event keeps its place.
        fs->ready.push_front(e);
        ++stats.queued;
        // Flag the queue, then look for an end: an attempt that ends meanwhile either is
        // seen here or sees the flag and resumes the queue (both sides seq_cst).
        fs->attention.store(true);
        if (fs->ends.load() == e->ends_at_start) {
          pause_locked(*fs, core.time().now());
          break;
        }
        touch_locked(*fs);
        if (!fs->paused && !fs->pump_scheduled && !core_refuses) {
          // An attempt ended (its slot came free) after this one found none, and its end
          // found nothing paused to resume: try again now rather than pause with nothing
          // running to cut the pause short.
          fs->pump_scheduled = true;
          pump_now = true;
        }
        break;
      case ErrorCode::kShuttingDown:
        core_refuses = true;
        changed.notify_all();  // a drain waiting for queued events waits no more
        if (draining) {
          end = end_of(e, EventCondition::kShutdown, std::move(error));
        } else {
          fs->ready.push_front(e);  // drain() hands it over
          ++stats.queued;
        }
        break;
      default:  // the function is gone, the payload or the call is refused: it can never run
        end = end_of(e, EventCondition::kRejected, std::move(error));
        break;
    }
  }
  if (pump_now) schedule_pump(fs);
  if (end) complete(std::move(*end));
}

void EventDispatcher::State::attempt_ended(Event* e, Result<std::string> result) {
  FnState& fs = *e->fs;
  fs.ends.fetch_add(1);  // seq_cst: see refused()
  const bool plain = result && e->config->pub.on_success.empty() && !e->has_on_end();
  // The common end: a success with nothing to deliver, of a function with nothing queued or
  // paused, outside a shutdown. No lock; the count of live events is the last thing touched.
  if (plain && !fs.attention.load() && !draining_now.load()) {
    fs.fast_ended.fetch_add(1, std::memory_order_release);  // after the reads of e->config
    recycle(e);
    fast_ended.fetch_add(1, std::memory_order_release);
    return;
  }
  std::optional<Ending> end;
  {
    std::lock_guard<std::mutex> lock(mu);
    ++attempts_ended;
    e->last_attempt_ns = e->attempt_ns;
    e->version = e->attempt_version;
    // An attempt that ends gives its slot back: a paused queue may go on at once (on the
    // events thread: this is the finished attempt's fiber, or the core's timer thread).
    if (resume_locked(fs) && timers.at(core.time().now(), [this, f = &fs] { pump(f); }) == 0) {
      fs.pump_scheduled = false;  // stopped: finish() hands the queue over
    }
    if (plain) {
      recycle(e);  // before the count: once nothing is live, finish() may return
      ++stats.succeeded;
      ++fs.ended;
      ++ended;
      if (draining && live_locked() == 0) changed.notify_all();
    } else if (result) {
      end = end_of(e, EventCondition::kSuccess);
      end->response = std::move(*result);
    } else {
      const bool shutdown = result.error().code == ErrorCode::kShuttingDown;
      e->more().last_error = std::move(result.error());
      if (shutdown) {
        end = end_of(e, EventCondition::kShutdown);
      } else if (e->attempts > e->max_retries) {
        end = end_of(e, EventCondition::kRetriesExhausted);
      } else {
        end = retry_locked(e, core.time().now());
      }
    }
  }
  if (end) complete(std::move(*end));
}

std::optional<Ending> EventDispatcher::State::retry_locked(Event* e, std::int64_t now) {
  if (drain_over) return end_of(e, EventCondition::kShutdown);
  const auto& backoff = e->config->backoff_ns;
  const auto i =
      std::min<std::size_t>(static_cast<std::size_t>(e->attempts - 1), backoff.size() - 1);
  const std::int64_t retry_at = add_saturating(now, backoff[i]);
  // A retry that would start past the event's age limit does not happen: the event ends at
  // that limit instead.
  const bool age_end = retry_at > e->expires_ns;
  const std::int64_t wake = age_end ? e->expires_ns : retry_at;
  if (age_end && wake <= now) return end_of(e, EventCondition::kEventAgeExceeded);
  if (draining && wake > drain_deadline) return end_of(e, EventCondition::kShutdown);
  e->wake_ns = wake;
  delayed.insert(e);
  ++stats.delayed;
  e->timer = timers.at(wake, [this, e, age_end] { woke(e, age_end); });
  if (e->timer == 0) {  // the events thread has stopped: nothing can wait any more
    delayed.erase(e);
    --stats.delayed;
    return end_of(e, EventCondition::kShutdown);
  }
  return std::nullopt;
}

void EventDispatcher::State::woke(Event* e, bool age_end) {
  std::optional<Ending> end;
  Next next = Next::kNone;
  FnState* fs = e->fs;
  {
    std::lock_guard<std::mutex> lock(mu);
    // Whoever cancels a timer successfully owns the event; this timer was not cancelled.
    delayed.erase(e);
    --stats.delayed;
    e->timer = 0;
    if (drain_over) {
      end = end_of(e, EventCondition::kShutdown);
      next = Next::kEnd;
    } else if (age_end) {
      end = end_of(e, EventCondition::kEventAgeExceeded);
      next = Next::kEnd;
    } else {
      next = admit_locked(e, core.time().now(), /*here=*/true, end);
    }
  }
  switch (next) {
    case Next::kDispatch:
      dispatch(e);
      break;
    case Next::kPump:
      pump(fs);  // this is the events thread
      break;
    case Next::kEnd:
      complete(std::move(*end));
      break;
    case Next::kNone:
      break;
  }
}

void EventDispatcher::State::pump(FnState* fs) {
  std::vector<Ending> ends;
  std::unique_lock<std::mutex> lock(mu);
  while (!fs->paused && !fs->ready.empty() && !core_refuses && !drain_over) {
    Event* e = fs->ready.front();
    fs->ready.pop_front();
    --stats.queued;
    const std::int64_t now = core.time().now();
    if (now > e->expires_ns) {
      ends.push_back(end_of(e, EventCondition::kEventAgeExceeded));
      continue;
    }
    start_attempt_locked(e, now);
    lock.unlock();
    dispatch(e);  // a throttle pauses the queue again, and the loop stops
    lock.lock();
  }
  fs->pump_scheduled = false;
  lock.unlock();
  complete_all(std::move(ends));
}

void EventDispatcher::State::schedule_pump(FnState* fs) {
  if (timers.on_timer_thread()) {
    pump(fs);
    return;
  }
  if (timers.at(core.time().now(), [this, fs] { pump(fs); }) == 0) {
    // Stopped: finish() has handed every queued event over already.
    std::lock_guard<std::mutex> lock(mu);
    fs->pump_scheduled = false;
  }
}

void EventDispatcher::State::pause_locked(FnState& fs, std::int64_t now) {
  if (fs.paused) return;
  const Config& cfg = config_locked(fs);
  // throttle_backoff, doubled per earlier throttle in a row, capped (never overflowing).
  std::int64_t pause = cfg.throttle_ns;
  for (int i = 0; i < fs.throttle_streak && pause < cfg.max_throttle_ns; ++i)
    pause = pause > cfg.max_throttle_ns / 2 ? cfg.max_throttle_ns : pause * 2;
  pause = std::min(pause, cfg.max_throttle_ns);
  ++fs.throttle_streak;
  fs.paused = true;
  touch_locked(fs);
  const std::uint64_t gen = ++fs.pause_gen;
  FnState* f = &fs;
  fs.pause_timer = timers.at(add_saturating(now, pause), [this, f, gen] {
    bool run = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!f->paused || f->pause_gen != gen) return;  // resumed early by an attempt's end
      f->paused = false;
      f->pause_timer = 0;
      touch_locked(*f);
      if (!f->ready.empty() && !f->pump_scheduled && !core_refuses && !drain_over) {
        f->pump_scheduled = true;
        run = true;
      }
    }
    if (run) pump(f);
  });
}

bool EventDispatcher::State::resume_locked(FnState& fs) {
  if (fs.paused) {
    timers.cancel(fs.pause_timer);
    fs.paused = false;
    fs.pause_timer = 0;
    ++fs.pause_gen;
    touch_locked(fs);
  }
  if (fs.ready.empty() || fs.pump_scheduled || core_refuses || drain_over) return false;
  fs.pump_scheduled = true;
  return true;
}

// ---- Endings ----

void EventDispatcher::State::complete(Ending&& x) {
  const Event& e = *x.event;
  const bool user_code = x.condition != EventCondition::kSuccess ||
                         !e.config->pub.on_success.empty() || e.has_on_end();
  if (!user_code || on_engine_thread()) {
    deliver(std::move(x));
    return;
  }
  // A user thread (an enqueue, the shutdown) or the core's timer thread (a timeout): records
  // reach user code on the events thread.
  auto box = std::make_shared<Ending>(std::move(x));
  if (timers.at(core.time().now(), [this, box] { deliver(std::move(*box)); }) == 0)
    deliver(std::move(*box));
}

void EventDispatcher::State::complete_all(std::vector<Ending>&& xs) {
  if (xs.empty()) return;
  if (on_engine_thread()) {
    for (Ending& x : xs) deliver(std::move(x));
    return;
  }
  auto box = std::make_shared<std::vector<Ending>>(std::move(xs));
  auto run = [this, box] {
    for (Ending& x : *box) deliver(std::move(x));
  };
  if (timers.at(core.time().now(), run) == 0) run();
}

EventRecord EventDispatcher::State::record_of(Event& e, Ending& x) {
  EventRecord r;
  char id[36];
  r.event_id.assign(id_of(e, id));
  r.function.assign(e.function_name());
  r.version.assign(e.version);
  r.source.assign(e.source_name());
  r.payload = std::move(e.payload);  // the event ends with this record
  r.condition = x.condition;
  r.response = std::move(x.response);
  if (x.condition != EventCondition::kSuccess) {
    if (x.error) {
      r.error = std::move(x.error);
    } else if (e.extra && e.extra->last_error) {
      r.error = std::move(e.extra->last_error);
    } else if (x.condition == EventCondition::kEventAgeExceeded) {
      r.error =
          Error{ErrorCode::kTimeout,
                cat("event ", r.event_id, " of function '", r.function,
                    "' did not run within its max_event_age (",
                    absl::FormatDuration(absl::Nanoseconds(e.expires_ns - e.enqueued_ns)), ")")};
    } else {
      r.error =
          Error{ErrorCode::kShuttingDown, cat("event ", r.event_id, " of function '", r.function,
                                              "': the engine shut down before it ran")};
    }
  }
  r.attempts = e.attempts;
  r.throttles = e.throttles;
  TimeSource& time = core.time();
  r.enqueued_at = wall_time(e.enqueued_ns);
  if (e.attempts > 0) r.last_attempt_at = time.to_time(e.last_attempt_ns);
  r.finished_at = time.to_time(time.now());
  return r;
}

void EventDispatcher::State::deliver(Ending&& x) {
  Event* e = x.event;
  const EventCondition c = x.condition;
  Tally t;
  if (c != EventCondition::kSuccess || !e->config->pub.on_success.empty()) {
    const EventRecord r = record_of(*e, x);
    if (c != EventCondition::kSuccess && c != EventCondition::kShutdown)
      core.count_event(e->fn, EngineCore::EventCounter::kDropped);  // AsyncEventsDropped
    const EventConfig& p = e->config->pub;
    owner.route(r, p.on_success, p.on_failure, p.dead_letter, *current_sinks(), e->fn, t);
  }
  if (e->has_on_end()) {
    try {
      e->extra->on_end(c);
    } catch (...) {  // an internal callback: nothing to tell, but it must not unwind the core
    }
  }
  FnState* fs = e->fs;
  recycle(e);  // before the count: once live is 0, finish() may return and the engine go
  std::lock_guard<std::mutex> lock(mu);
  if (c == EventCondition::kSuccess) {
    ++stats.succeeded;
  } else if (c != EventCondition::kShutdown) {
    ++stats.failed;
  }
  stats.to_on_success += t.to_on_success;
  stats.to_on_failure += t.to_on_failure;
  stats.dead_lettered += t.dead_lettered;
  stats.drained += t.drained;
  stats.delivery_failures += t.failures;
  ++fs->ended;
  ++ended;
  if (draining && live_locked() == 0) changed.notify_all();
}

// ---- EventDispatcher ----

EventDispatcher::EventDispatcher(EngineCore& core, Engine&, EventTimers& timers)
    : core_(core), state_(std::make_unique<State>(*this, core, timers)) {}

EventDispatcher::~EventDispatcher() = default;

Result<std::string> EventDispatcher::enqueue(FunctionHandle fn, std::string_view function,
                                             std::string_view payload, const EventOptions& options,
                                             EnqueueExtras extras) {
  return state_->enqueue(fn, function, payload, options, std::move(extras), /*internal=*/false);
}

Result<std::string> EventDispatcher::enqueue_record(FunctionHandle fn, std::string_view function,
                                                    std::string payload) {
  return state_->enqueue(fn, function, payload, EventOptions{},
                         EnqueueExtras{.source = "destination"}, /*internal=*/true);
}

void EventDispatcher::note_refused() noexcept {
  std::lock_guard<std::mutex> lock(state_->mu);
  ++state_->stats.refused;
}

}  // namespace ember::detail
