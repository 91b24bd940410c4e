// dispatcher_internal.hpp — what the dispatcher's source files share (dispatcher.cpp,
// event_drain.cpp, event_config.cpp): an event, a function's queue, and EventDispatcher::State.
// Private to src/events/; the engine facade includes dispatcher.hpp only.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <absl/random/random.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/dispatcher.hpp"

namespace ember::detail {

// A function's event config, with its durations in engine nanoseconds. Immutable: each event
// holds the version it was enqueued with.
struct Config {
  EventConfig pub;
  std::vector<std::int64_t> backoff_ns;
  std::int64_t max_age_ns = 0;
  std::int64_t throttle_ns = 0;
  std::int64_t max_throttle_ns = 0;
};

std::shared_ptr<const Config> make_config(EventConfig c);

struct FnState;

// What few events carry: allocated for those only, so that the common event stays small (it
// is written by the enqueuing thread and read by a worker, a cache line at a time).
struct EventExtra {
  std::string id;        // given by the caller (else Event::seq makes one)
  std::string function;  // as the caller named it, when that is not the plain name
  std::string source;    // one other than "enqueue" and "destination"
  TraceContext trace;
  std::optional<ClientContext> client_context;
  absl::AnyInvocable<void(EventCondition)> on_end;
  std::optional<Error> last_error;  // the last attempt's
};

enum class Source : std::uint8_t { kEnqueue, kDestination, kOther };

struct Event {
  FnState* fs = nullptr;
  FunctionHandle fn;
  const Config* config = nullptr;  // kept alive by its FnState (config or retired)
  std::unique_ptr<EventExtra> extra;
  std::string payload;
  std::int64_t enqueued_ns = 0;
  std::int64_t expires_ns = 0;
  std::int64_t attempt_ns = 0;       // when the attempt in flight started
  std::uint64_t ends_at_start = 0;   // FnState::ends then
  std::string_view attempt_version;  // engine-lifetime strings (FunctionHandle::version)
  std::uint64_t seq = 0;             // a generated id: format_event_id(seq)
  int max_retries = 0;
  int attempts = 0;  // admitted attempts, the one in flight included
  int throttles = 0;
  Source source = Source::kEnqueue;
  // Once an attempt has ended.
  std::int64_t last_attempt_ns = 0;  // when the last attempt that ran started
  std::string_view version;
  EventTimers::Id timer = 0;  // delayed: its wake-up (a retry, or its age limit) at wake_ns
  std::int64_t wake_ns = 0;

  EventExtra& more() {
    if (!extra) extra = std::make_unique<EventExtra>();
    return *extra;
  }
  [[nodiscard]] std::string_view function_name() const {
    return extra && !extra->function.empty() ? std::string_view(extra->function) : fn.name();
  }
  [[nodiscard]] std::string_view source_name() const {
    switch (source) {
      case Source::kEnqueue:
        return "enqueue";
      case Source::kDestination:
        return "destination";
      case Source::kOther:
        break;
    }
    return extra->source;
  }
  [[nodiscard]] bool has_on_end() const { return extra && extra->on_end; }
};

// One function's queue. Invariant: a non-empty FIFO of a function that is not paused has a
// pump scheduled (unless the core refuses work or the drain is over).
struct FnState {
  std::deque<Event*> ready;
  std::shared_ptr<const Config> config;  // nullptr: the defaults
  // Versions replaced while events still held them: freed once the function has no event left
  // (a count per event would put two contended atomic operations on every event).
  std::vector<std::shared_ptr<const Config>> retired;
  bool paused = false;
  bool pump_scheduled = false;
  int throttle_streak = 0;      // throttles in a row: each doubles the pause
  std::uint64_t pause_gen = 0;  // a pause timer acts only on the pause that armed it
  EventTimers::Id pause_timer = 0;
  // Events accepted and ended (under the lock, and on attempt_ended's fast path): those not
  // ended count against max_queued_events. fast_seen is fast_ended as last read: the
  // enqueuing thread reads that line (which the workers write) only when the bound it gives
  // comes near the limit.
  std::size_t accepted = 0, ended = 0, fast_seen = 0;
  // Touched without the lock by an attempt's end; a line of their own, away from what the
  // enqueuing thread writes.
  alignas(64) std::atomic<std::uint64_t> ends{0};  // attempts ended so far (see refused())
  std::atomic<std::size_t> fast_ended{0};
  // paused (or about to be): an attempt's end must look, to resume the queue. A queue that is
  // not paused needs nothing of an end: it is empty, or a pump is on its way.
  std::atomic<bool> attention{false};
};

// How an event ended; delivered outside the lock.
struct Ending {
  Event* event = nullptr;
  EventCondition condition = EventCondition::kSuccess;
  std::optional<Error> error;
  std::string response;
};

void format_event_id(std::uint64_t seq, std::uint64_t n0, std::uint64_t n1, char* out);
Result<void> check_options(std::string_view function, const EventOptions& o);

struct EventDispatcher::State {
  State(EventDispatcher& o, EngineCore& c, EventTimers& t) : owner(o), core(c), timers(t) {
    absl::BitGen gen;
    nonce0 = absl::Uniform<std::uint64_t>(gen);
    nonce1 = absl::Uniform<std::uint64_t>(gen);
    const std::int64_t now = core.time().now();
    offset_taken.store(now);
    offset.store(absl::ToUnixNanos(absl::Now()) - now);
  }

  // Engine time as absl::Time. TimeSource::to_time reads two clocks for a real clock; each
  // enqueue needs one conversion, so the offset is reused for a second of engine time.
  absl::Time wall_time(std::int64_t t) {
    TimeSource& time = core.time();
    if (time.injected()) return time.to_time(t);
    const std::int64_t taken = offset_taken.load(std::memory_order_relaxed);
    if (t < taken || t - taken > 1'000'000'000) {
      const std::int64_t now = time.now();
      offset.store(absl::ToUnixNanos(absl::Now()) - now, std::memory_order_relaxed);
      offset_taken.store(now, std::memory_order_relaxed);
    }
    return absl::FromUnixNanos(t + offset.load(std::memory_order_relaxed));
  }
  ~State() {
    // finish() has ended every event; anything left means the engine never started one.
    for (auto& [name, fs] : fns) {
      for (Event* e : fs->ready) delete e;
    }
    for (Event* e : delayed) delete e;
    for (Event* e : spare) delete e;
    Event* e;
    while (returned.try_dequeue(e)) delete e;
  }

  // Events are recycled: the thread that ends one is rarely the one that made it, and a free
  // from another thread goes through malloc's arena lock, which the enqueuing thread's
  // allocations then wait on. Any thread returns them (lock-free); enqueue takes them back in
  // batches, under the lock it holds anyway.
  Event* take_event_locked() {
    if (spare.empty()) {
      Event* batch[64];
      const std::size_t n = returned.try_dequeue_bulk(batch, 64);
      if (n == 0) return new Event;
      spare.assign(batch, batch + n);
    }
    Event* e = spare.back();
    spare.pop_back();
    return e;
  }
  void recycle(Event* e) {
    e->extra.reset();
    if (e->payload.capacity() > 1024) std::string().swap(e->payload);  // keep small buffers only
    e->attempts = 0;
    e->throttles = 0;
    e->source = Source::kEnqueue;
    e->last_attempt_ns = 0;
    e->version = {};
    e->timer = 0;
    if (returned.size_approx() >= 1024 || !returned.enqueue(e)) delete e;
  }
  // The event's id: the caller's, or made from its sequence number into `buf`.
  std::string_view id_of(const Event& e, char (&buf)[36]) const {
    if (e.extra && !e.extra->id.empty()) return e.extra->id;
    format_event_id(e.seq, nonce0, nonce1, buf);
    return {buf, sizeof buf};
  }

  Result<std::string> enqueue(FunctionHandle fn, std::string_view function,
                              std::string_view payload, const EventOptions& options,
                              EnqueueExtras extras, bool internal);
  // ---- Dispatch (mu held where it says _locked) ----
  enum class Next : std::uint8_t { kNone, kDispatch, kPump, kEnd };
  Next admit_locked(Event* e, std::int64_t now, bool here, std::optional<Ending>& end);
  void start_attempt_locked(Event* e, std::int64_t now);
  void dispatch(Event* e);
  void refused(Event* e, Error error);
  void attempt_ended(Event* e, Result<std::string> result);
  std::optional<Ending> retry_locked(Event* e, std::int64_t now);
  void woke(Event* e, bool age_end);
  void pump(FnState* fs);
  void schedule_pump(FnState* fs);
  void pause_locked(FnState& fs, std::int64_t now);
  bool resume_locked(FnState& fs);
  void take_all_locked(std::vector<Ending>& out);
  void take_delayed_locked(std::int64_t after, std::vector<Ending>& out);
  FnState& fn_state_locked(std::string_view name);
  // The same for a handle, looked up by the address of its function's name (the registry's
  // string, which lives as long as the engine): no string hashing on the enqueue path.
  FnState& fn_state_locked(FunctionHandle fn) {
    const std::string_view name = fn.name();
    auto it = by_name_address.find(name.data());
    if (it != by_name_address.end()) return *it->second;
    FnState& fs = fn_state_locked(name);
    by_name_address.emplace(name.data(), &fs);
    return fs;
  }
  // After any change of fs.paused. seq_cst: see refused().
  static void touch_locked(FnState& fs) { fs.attention.store(fs.paused); }
  const Config& config_locked(const FnState& fs) const {
    return fs.config != nullptr ? *fs.config : *defaults;
  }
  static std::size_t fn_live_locked(FnState& fs) {
    fs.fast_seen = fs.fast_ended.load(std::memory_order_acquire);
    return fs.accepted - fs.ended - fs.fast_seen;
  }
  static Ending end_of(Event* e, EventCondition c) {
    Ending x;
    x.event = e;
    x.condition = c;
    return x;
  }
  static Ending end_of(Event* e, EventCondition c, Error error) {
    Ending x = end_of(e, c);
    x.error.emplace(std::move(error));
    return x;
  }

  // ---- Endings and delivery ----
  [[nodiscard]] bool on_engine_thread() const {
    return core.inside_engine() || timers.on_timer_thread();
  }
  void complete(Ending&& x);
  void complete_all(std::vector<Ending>&& xs);
  void deliver(Ending&& x);
  EventRecord record_of(Event& e, Ending& x);
  std::shared_ptr<const EventSinks> current_sinks() {
    std::lock_guard<std::mutex> lock(mu);
    return sinks;
  }

  // Members in groups by who writes them, each group on cache lines of its own: a line that a
  // worker writes on every event and the enqueuing thread reads costs that thread a miss.
  EventDispatcher& owner;
  EngineCore& core;
  EventTimers& timers;
  const std::shared_ptr<const Config> defaults = make_config(EventConfig{});
  std::uint64_t nonce0 = 0, nonce1 = 0;
  std::atomic<std::int64_t> offset{0}, offset_taken{0};  // wall_time()

  // The enqueuing threads, under the lock.
  alignas(64) mutable std::mutex mu;
  std::condition_variable changed;  // while draining: live reached 0, or the deadline passed
  absl::flat_hash_map<std::string, std::unique_ptr<FnState>> fns;            // guarded by mu
  absl::flat_hash_map<const char*, FnState*> by_name_address;                // guarded by mu
  absl::flat_hash_set<Event*> delayed;                                       // guarded by mu
  std::shared_ptr<const EventSinks> sinks = std::make_shared<EventSinks>();  // guarded by mu
  std::vector<Event*> spare;                                                 // guarded by mu
  std::uint64_t next_seq = 0;                                                // guarded by mu
  EventStats stats;  // guarded by mu; in_flight and succeeded also count fast_ended (below)
  // Counted under the lock, but for the ends on attempt_ended's fast path: each of those is one
  // attempt ended, one event succeeded and ended, all in one atomic (the last thing it touches).
  std::int64_t accepted = 0, ended = 0;                   // events; guarded by mu
  std::int64_t attempts_started = 0, attempts_ended = 0;  // guarded by mu
  [[nodiscard]] std::int64_t live_locked() const {
    return accepted - ended - fast_ended.load(std::memory_order_acquire);
  }
  // Shutdown, guarded by mu. core_refuses: the core answered kShuttingDown (stop dispatching).
  bool closed = false, draining = false, drain_running = false, drain_over = false;
  bool core_refuses = false, deadline_passed = false;
  std::int64_t drain_deadline = kNever;
  EventTimers::Id deadline_timer = 0;

  // Attempts between start_attempt_locked and the return of their invoke_async. None starts
  // once the drain is over, and drain() returns only when none is left: the core's shutdown
  // comes next, and an invoke_async it refuses must not overlap its release of every call.
  alignas(64) std::atomic<int> dispatching{0};

  // The workers, on every plain success.
  alignas(64) std::atomic<std::int64_t> fast_ended{0};
  std::atomic<bool> draining_now{false};  // `draining`, for the fast path

  alignas(64) moodycamel::ConcurrentQueue<Event*> returned;  // recycled events
  char end_pad_[64];  // nothing else shares the queue's last line
};

}  // namespace ember::detail
