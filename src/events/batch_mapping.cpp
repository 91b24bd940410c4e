// Batch queue mappings: records pushed into an EventQueue go to a function in batches.
//
// A batch goes when batch_size records may be taken, or when the oldest of them has waited
// batching_window, while fewer than max_concurrency flights of the mapping are out. A flight
// holds the keys of its records until it ends, so a key's next record waits for it (FIFO per
// key). Handlers are never invoked from inside the engine: on a handler's fiber (where an async
// callback runs too) the invocation would become the handler's child, with its deadline and
// depth; such work hops to the events timer thread instead.
//
// The queue store itself (pushes, record ids, batch payloads, ended records) is event_queue.cpp.
#include "events/batch_mapping.hpp"

#include <absl/time/time.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/str_cat.hpp"
#include "events/event_queue_internal.hpp"

namespace ember::detail {

namespace {

// Throttle backoff: long enough that a function at its cap gets a slot back, short enough that
// the queue does not fall far behind; reset by the next accepted invoke.
constexpr std::int64_t kFirstBackoff = 100'000'000;   // 100 ms
constexpr std::int64_t kMaxBackoff = 10'000'000'000;  // 10 s
constexpr std::uint64_t kNoSeq = ~std::uint64_t{0};

std::string where(const Mapping& m) { return cat("queue '", m.queue, "' -> '", m.function, "'"); }

// Splits the batch handed over in two, in order: the second half runs after the first.
void halve(Flight& f) {
  const std::size_t half = f.current.size() / 2;
  f.next.emplace_back(std::make_move_iterator(f.current.begin() + half),
                      std::make_move_iterator(f.current.end()));
  f.current.resize(half);
}

}  // namespace

// How a batch ended.
struct Verdict {
  enum Kind : std::uint8_t { kOk, kPartial, kFailed, kAborted } kind = kOk;
  std::vector<char> failed;  // kPartial: per record
  std::shared_ptr<const Error> error;
};

// ---- Forming batches ----

void QueueMappings::State::pump(QueueState& q, bool host) {
  Collected out;
  {
    std::lock_guard<std::mutex> lock(q.mu);
    if (q.closed) return;
    collect_locked(q, core.time().now(), out);
  }
  deliver(std::move(out.ended), host);
  start(q, std::move(out.flights), host);
  finish_flights(out.ended_flights);
}

void QueueMappings::State::pump_here(QueueState& q, bool host) {
  if (core.inside_engine()) {
    std::lock_guard<std::mutex> lock(q.mu);
    arm_pump_locked(q);
  } else {
    pump(q, host);
  }
}

void QueueMappings::State::arm_pump_locked(QueueState& q) {
  if (q.pump_armed || q.closed) return;
  q.pump_armed = true;
  const EventTimers::Id id = timers.at(core.time().now(), [this, &q] {
    {
      std::lock_guard<std::mutex> lock(q.mu);
      q.pump_armed = false;
    }
    pump(q, /*host=*/false);
  });
  if (id == 0) q.pump_armed = false;  // the timers stopped: so did we
}

void QueueMappings::State::collect_locked(QueueState& q, std::int64_t now, Collected& out) {
  Mapping* m = q.mapping.get();
  for (std::unique_ptr<Flight>& f : q.resume) {
    if (q.closed || f->mapping.get() != m) {
      give_back_locked(q, *f, /*throttled=*/false);
      ++out.ended_flights;
    } else {
      out.flights.push_back(std::move(f));
    }
  }
  q.resume.clear();
  if (m == nullptr || q.closed || m->paused) return;
  std::int64_t formed = 0;
  const auto batch_size = static_cast<std::size_t>(m->config.batch_size);
  while (m->in_flight < m->config.max_concurrency && q.available > 0) {
    if (q.available < batch_size && m->window_ns > 0) {
      // Not full: it goes once its oldest record has waited the window.
      std::int64_t oldest = std::numeric_limits<std::int64_t>::max();
      if (!q.unkeyed.empty()) oldest = q.unkeyed.front().pushed_ns;
      if (!q.ready.empty()) {
        oldest = std::min(oldest, q.ready.begin()->second->records.front().pushed_ns);
      }
      const std::int64_t due = add_saturating(oldest, m->window_ns);
      if (now < due) {
        arm_window_locked(q, due);
        break;
      }
    }
    auto f = std::make_unique<Flight>();
    f->mapping = q.mapping;
    const std::size_t before = q.available;
    take_batch_locked(q, now, *f, out);
    if (f->current.empty()) {
      if (q.available == before) break;  // nothing could be taken (never expected)
      continue;                          // all it found was too old
    }
    ++m->in_flight;
    ++formed;
    out.flights.push_back(std::move(f));
  }
  // Counted before the lock goes, so stop() (which closes under it) waits for them.
  if (formed != 0) add_flights(formed);
}

void QueueMappings::State::take_batch_locked(QueueState& q, std::int64_t now, Flight& f,
                                             Collected& out) {
  Mapping& m = *f.mapping;
  const auto batch_size = static_cast<std::size_t>(m.config.batch_size);
  std::size_t bytes = kEnvelopeBytes;
  while (f.current.size() < batch_size) {
    // The oldest record that may go: the first unkeyed one, or the head of the first ready key.
    const std::uint64_t unkeyed = q.unkeyed.empty() ? kNoSeq : q.unkeyed.front().seq;
    const std::uint64_t keyed = q.ready.empty() ? kNoSeq : q.ready.begin()->first;
    if (unkeyed == kNoSeq && keyed == kNoSeq) break;
    KeyQueue* k = keyed < unkeyed ? q.ready.begin()->second : nullptr;
    std::deque<QueueRecord>& from = k != nullptr ? k->records : q.unkeyed;
    const bool expired = now - from.front().pushed_ns > m.max_age_ns;
    if (!expired) {
      // A batch stays under the async payload limit; a single record always goes.
      const std::size_t size = record_bytes(from.front());
      if (!f.current.empty() && bytes + size > q.max_body) break;
      bytes += size;
    }
    QueueRecord r = std::move(from.front());
    from.pop_front();
    --q.available;
    if (k != nullptr) {
      q.ready.erase(q.ready.begin());
      if (!k->records.empty()) q.ready.emplace(k->records.front().seq, k);
      if (!expired && !k->busy) {
        k->busy = true;  // stays in `ready` for this batch; taken out below
        f.keys.push_back(k);
      } else if (k->records.empty() && !k->busy) {
        q.keys.erase(q.keys.find(k->key));
      }
    }
    if (expired) {
      end_record_locked(q, f.mapping, std::move(r), EventCondition::kEventAgeExceeded, out);
      continue;
    }
    r.attempt_ns = now;
    f.current.push_back(std::move(r));
  }
  for (KeyQueue* k : f.keys) {
    if (k->records.empty()) continue;
    q.ready.erase({k->records.front().seq, k});
    q.available -= k->records.size();
  }
}

void QueueMappings::State::arm_window_locked(QueueState& q, std::int64_t due) {
  if (q.window_timer != 0 && q.window_at <= due) return;
  if (q.window_timer != 0) timers.cancel(q.window_timer);
  const std::uint64_t token = ++q.window_token;
  q.window_at = due;
  q.window_timer = timers.at(due, [this, &q, token] {
    {
      std::lock_guard<std::mutex> lock(q.mu);
      if (q.window_token == token) q.window_timer = 0;
    }
    pump(q, /*host=*/false);
  });
}

// ---- Handing batches over ----

void QueueMappings::State::start(QueueState& q, std::vector<std::unique_ptr<Flight>> flights,
                                 bool host) {
  if (flights.empty()) return;
  Collected out;
  const std::int64_t now = core.time().now();
  const absl::Time now_time = core.time().to_time(now);
  for (std::size_t i = 0; i < flights.size(); ++i) {
    std::unique_ptr<Flight>& f = flights[i];
    while (f != nullptr) {
      // Our own reference: once the callback owns the flight, it may end it (and its mapping).
      const std::shared_ptr<Mapping> mapping = f->mapping;
      Mapping& m = *mapping;
      std::string payload = batch_payload(q, f->current, now, now_time);
      AsyncExtras extras;
      extras.no_wait = true;  // no slot: back to the queue, not into the function's FIFO
      extras.enqueued_ns = f->current.front().pushed_ns;
      for (const QueueRecord& r : f->current) {
        extras.enqueued_ns = std::min(extras.enqueued_ns, r.pushed_ns);
      }
      Flight* raw = f.get();
      auto ok = core.invoke_async(
          m.fn, payload,
          [this, &q, raw](Result<std::string> r) {
            on_result(q, std::unique_ptr<Flight>(raw), std::move(r));
          },
          {}, &extras);
      if (ok) {
        (void)f.release();  // the callback owns it now, and may have run already
        if (m.backoff_ns.load(std::memory_order_relaxed) != kFirstBackoff)
          m.backoff_ns.store(kFirstBackoff, std::memory_order_relaxed);
        break;
      }
      const ErrorCode code = ok.error().code;
      if (code == ErrorCode::kThrottled || code == ErrorCode::kShuttingDown) {
        // This flight and the ones after it go back to the queue, in place; after a
        // throttle the mapping pauses (not a retry: no attempt is counted).
        std::lock_guard<std::mutex> lock(q.mu);
        for (std::size_t j = i; j < flights.size(); ++j) {
          give_back_locked(q, *flights[j], code == ErrorCode::kThrottled);
          ++out.ended_flights;
        }
        if (code == ErrorCode::kThrottled && !m.paused && q.mapping.get() == &m && !q.closed) {
          const std::int64_t backoff = m.backoff_ns.load(std::memory_order_relaxed);
          m.backoff_ns.store(std::min(backoff * 2, kMaxBackoff), std::memory_order_relaxed);
          m.paused = true;
          m.backoff_timer = timers.at(add_saturating(now, backoff), [this, &q, mp = f->mapping] {
            {
              std::lock_guard<std::mutex> relock(q.mu);
              mp->paused = false;
              mp->backoff_timer = 0;
            }
            pump(q, /*host=*/false);
          });
        }
        i = flights.size();
        break;
      }
      if (code == ErrorCode::kPayloadTooLarge && f->current.size() > 1) {
        halve(*f);  // escapes made it larger than estimated; not an attempt
        continue;
      }
      // It can never run (the function is gone, a record alone is too large...): its
      // records end as rejected; the flight goes on with what it still owes.
      std::lock_guard<std::mutex> lock(q.mu);
      const auto error = std::make_shared<const Error>(std::move(ok.error()));
      for (QueueRecord& r : f->current) {
        r.error = error;
        end_record_locked(q, f->mapping, std::move(r), EventCondition::kRejected, out);
      }
      f->current.clear();
      if (q.closed || q.mapping != f->mapping || !advance_locked(q, *f, now, out)) {
        give_back_locked(q, *f, false);
        ++out.ended_flights;
        f.reset();
      }
    }
  }
  deliver(std::move(out.ended), host);
  flights.clear();
  finish_flights(out.ended_flights);
}

// ---- Results ----

Verdict QueueMappings::State::judge(const QueueState& q, const Flight& f,
                                    Result<std::string>& result) {
  const Mapping& m = *f.mapping;
  Verdict v;
  if (!result) {
    const ErrorCode code = result.error().code;
    // The engine shut down under the batch: nobody's fault; its records stay queued.
    v.kind = code == ErrorCode::kShuttingDown || code == ErrorCode::kCancelled ? Verdict::kAborted
                                                                               : Verdict::kFailed;
    v.error = std::make_shared<const Error>(std::move(result.error()));
    return v;
  }
  if (!m.config.report_batch_item_failures || result->empty()) return v;
  // Lambda's rules: {} or an empty or null list is a success; anything it cannot read (not
  // JSON, not the shape, an item without a known id) fails the whole batch.
  std::string problem;
  const nlohmann::json reply = nlohmann::json::parse(*result, nullptr, /*allow_exceptions=*/false);
  std::vector<char> failed;
  if (reply.is_discarded() || !reply.is_object()) {
    problem = "the reply is not a JSON object";
  } else if (auto list = reply.find("batchItemFailures"); list != reply.end() && !list->is_null()) {
    if (!list->is_array()) {
      problem = "batchItemFailures is not a list";
    } else if (!list->empty()) {
      absl::flat_hash_map<std::string, std::size_t> index;
      index.reserve(f.current.size());
      for (std::size_t i = 0; i < f.current.size(); ++i) index[record_id(q, f.current[i])] = i;
      failed.assign(f.current.size(), 0);
      for (const nlohmann::json& item : *list) {
        auto id = item.is_object() ? item.find("itemIdentifier") : item.end();
        if (!item.is_object() || id == item.end() || !id->is_string() ||
            id->get_ref<const std::string&>().empty()) {
          problem = "an item of batchItemFailures has no itemIdentifier";
          break;
        }
        auto at = index.find(id->get_ref<const std::string&>());
        if (at == index.end()) {
          problem = cat("itemIdentifier '", id->get_ref<const std::string&>(),
                        "' is not a record of the batch");
          break;
        }
        failed[at->second] = 1;
      }
    }
  }
  if (!problem.empty()) {
    v.kind = Verdict::kFailed;
    v.error = std::make_shared<const Error>(
        Error{ErrorCode::kHandlerFailed,
              cat(where(m), ": ", problem, "; the whole batch counts as failed")});
    core.log(LogLevel::kWarn, m.function, {}, v.error->message);
    return v;
  }
  if (!failed.empty()) {
    v.kind = Verdict::kPartial;
    v.failed = std::move(failed);
    v.error = std::make_shared<const Error>(
        Error{ErrorCode::kHandlerFailed,
              cat(where(m), ": the handler reported the record as failed (batchItemFailures)")});
  }
  return v;
}

void QueueMappings::State::on_result(QueueState& q, std::unique_ptr<Flight> f,
                                     Result<std::string> result) {
  Verdict v = judge(q, *f, result);
  const MappingConfig& config = f->mapping->config;
  const std::int64_t now = core.time().now();
  std::vector<QueueRecord> again;  // to hand over again, in order
  std::vector<QueueRecord> exhausted;
  std::uint64_t succeeded = 0;
  std::uint64_t retried = 0;
  const auto fail_record = [&](QueueRecord& r) {
    ++r.failures;
    r.error = v.error;
    if (r.failures > config.max_retries) {
      exhausted.push_back(std::move(r));
    } else {
      again.push_back(std::move(r));
      ++retried;
    }
  };
  switch (v.kind) {
    case Verdict::kOk:
      succeeded = f->current.size();
      break;
    case Verdict::kAborted:
      again = std::move(f->current);
      break;
    case Verdict::kFailed:
      if (config.bisect_on_error && f->current.size() > 1) {
        // Halves run one after the other (first half next), so a key's order holds; the
        // split is not a retry.
        halve(*f);
        again = std::move(f->current);
        break;
      }
      for (QueueRecord& r : f->current) fail_record(r);
      break;
    case Verdict::kPartial:
      for (std::size_t i = 0; i < f->current.size(); ++i) {
        if (v.failed[i] != 0) {
          fail_record(f->current[i]);
        } else {
          ++succeeded;
        }
      }
      break;
  }
  f->current.clear();
  const bool inside = core.inside_engine();  // a handler's fiber, usually
  Collected out;
  bool ended = false;
  {
    std::lock_guard<std::mutex> lock(q.mu);
    Mapping& m = *f->mapping;
    ++m.batches;
    m.records_succeeded += succeeded;
    m.records_retried += retried;
    q.held.fetch_sub(succeeded, std::memory_order_relaxed);
    for (QueueRecord& r : exhausted) {
      end_record_locked(q, f->mapping, std::move(r), EventCondition::kRetriesExhausted, out);
    }
    const bool go_on = v.kind != Verdict::kAborted && !q.closed && q.mapping == f->mapping;
    if (go_on && !f->next.empty()) {
      // A bisected flight: retries go first, in place, before the rest of it.
      if (!again.empty()) f->next.push_back(std::move(again));
      if (advance_locked(q, *f, now, out)) {
        q.resume.push_back(std::move(f));
      } else {
        end_flight_locked(q, *f);
        ended = true;
      }
    } else {
      // Retries go back to their places in the queue (before their keys' later records),
      // and go with the next batch: their push time puts them first, and their window is
      // usually over.
      put_back_locked(q, again);
      for (std::vector<QueueRecord>& rest : f->next) put_back_locked(q, rest);
      end_flight_locked(q, *f);
      ended = true;
    }
    if (inside) {
      if (!q.resume.empty() || (ended && q.available > 0)) arm_pump_locked(q);
    } else {
      collect_locked(q, now, out);
    }
  }
  deliver(std::move(out.ended), /*host=*/false);
  start(q, std::move(out.flights), /*host=*/false);
  f.reset();
  finish_flights(out.ended_flights + (ended ? 1 : 0));  // last: the engine may go after it
}

bool QueueMappings::State::advance_locked(QueueState& q, Flight& f, std::int64_t now,
                                          Collected& out) {
  while (f.current.empty() && !f.next.empty()) {
    std::vector<QueueRecord> batch = std::move(f.next.back());
    f.next.pop_back();
    for (QueueRecord& r : batch) {
      if (now - r.pushed_ns > f.mapping->max_age_ns) {
        end_record_locked(q, f.mapping, std::move(r), EventCondition::kEventAgeExceeded, out);
      } else {
        r.attempt_ns = now;
        f.current.push_back(std::move(r));
      }
    }
  }
  return !f.current.empty();
}

void QueueMappings::State::give_back_locked(QueueState& q, Flight& f, bool throttled) {
  std::vector<QueueRecord> records = std::move(f.current);
  for (std::vector<QueueRecord>& rest : f.next) {
    records.insert(records.end(), std::make_move_iterator(rest.begin()),
                   std::make_move_iterator(rest.end()));
  }
  f.next.clear();
  if (throttled) {
    for (QueueRecord& r : records) ++r.throttles;
  }
  put_back_locked(q, records);
  end_flight_locked(q, f);
}

void QueueMappings::State::end_flight_locked(QueueState& q, Flight& f) {
  for (KeyQueue* k : f.keys) {
    k->busy = false;
    if (k->records.empty()) {
      q.keys.erase(q.keys.find(k->key));
    } else {
      q.ready.emplace(k->records.front().seq, k);
      q.available += k->records.size();
    }
  }
  f.keys.clear();
  --f.mapping->in_flight;
}

// ---- Flight accounting ----

void QueueMappings::State::add_flights(std::int64_t n) {
  std::lock_guard<std::mutex> lock(flight_mu);
  out_flights += n;
}

void QueueMappings::State::finish_flights(std::int64_t n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(flight_mu);
  out_flights -= n;
  if (out_flights == 0) flight_cv.notify_all();
}

void QueueMappings::State::close_all() {
  std::vector<std::shared_ptr<QueueState>> all;
  {
    std::lock_guard<std::mutex> lock(mu);
    stopped = true;
    for (const auto& [name, q] : queues) all.push_back(q);
  }
  std::int64_t ended = 0;
  for (const std::shared_ptr<QueueState>& q : all) {
    std::lock_guard<std::mutex> lock(q->mu);
    q->closed = true;  // pushes are refused, no batch forms; the records stay
    if (q->window_timer != 0) timers.cancel(q->window_timer);
    q->window_timer = 0;
    if (q->mapping != nullptr && q->mapping->backoff_timer != 0) {
      timers.cancel(q->mapping->backoff_timer);
      q->mapping->backoff_timer = 0;
    }
    for (std::unique_ptr<Flight>& f : q->resume) {
      give_back_locked(*q, *f, /*throttled=*/false);
      ++ended;
    }
    q->resume.clear();
  }
  finish_flights(ended);
}

// ---- The facade's calls ----

QueueMappings::QueueMappings(EngineCore& core, EventDispatcher& events, EventTimers& timers)
    : state_(std::make_unique<State>(core, events, timers)) {}

QueueMappings::~QueueMappings() {
  State& s = *state_;
  s.close_all();
  // Callbacks of batches still out touch this state: the engine has drained its handlers by
  // now, so each of them has begun; wait for the last to end.
  {
    std::unique_lock<std::mutex> lock(s.flight_mu);
    s.flight_cv.wait(lock, [&] { return s.out_flights == 0; });
  }
  // A queue the host still holds outlives the engine: let go of what belongs to the engine
  // (handles, the host's destination callbacks) now.
  for (const auto& [name, q] : s.queues) {
    std::shared_ptr<Mapping> gone;
    std::lock_guard<std::mutex> lock(q->mu);
    gone = std::move(q->mapping);
  }
}

Result<std::string> QueueMappings::map(std::string_view queue, std::string_view function,
                                       const MappingConfig& config) {
  State& s = *state_;
  const std::string at = cat("map_queue '", queue, "' -> '", function, "'");
  const auto bad = [&](std::string_view field, std::string_view value, std::string_view range) {
    return fail(ErrorCode::kInvalidArgument,
                cat(at, ": ", field, " is ", value, "; allowed ", range));
  };
  if (config.batch_size < 1 || config.batch_size > 10'000)
    return bad("batch_size", std::to_string(config.batch_size), "1..10000");
  if (config.batching_window < absl::ZeroDuration() || config.batching_window > absl::Minutes(5))
    return bad("batching_window", absl::FormatDuration(config.batching_window), "0..5m");
  if (config.max_concurrency < 1 || config.max_concurrency > 1000)
    return bad("max_concurrency", std::to_string(config.max_concurrency), "1..1000");
  if (config.max_retries < 0 || config.max_retries > 10'000)
    return bad("max_retries", std::to_string(config.max_retries), "0..10000");
  if (config.max_record_age < absl::Seconds(1))
    return bad("max_record_age", absl::FormatDuration(config.max_record_age), ">= 1s");
  if (!config.on_failure.function.empty()) {
    if (auto d = s.core.find(config.on_failure.function); !d) {
      return fail(ErrorCode::kInvalidArgument,
                  cat(at, ": on_failure.function: ", d.error().message));
    }
  }
  auto fn = s.core.find(function);
  if (!fn) return fail(fn.error().code, cat(at, ": ", fn.error().message));

  std::shared_ptr<QueueState> q;
  std::string id;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stopped) return fail(ErrorCode::kShuttingDown, cat(at, ": the engine is shutting down"));
    auto it = s.queues.find(std::string(queue));
    if (it == s.queues.end())
      return fail(ErrorCode::kNotFound, cat(at, ": queue '", queue, "' does not exist"));
    q = it->second;
    auto m = std::make_shared<Mapping>();
    {
      std::lock_guard<std::mutex> qlock(q->mu);
      if (q->mapping != nullptr) {
        return fail(
            ErrorCode::kAlreadyExists,
            cat(at, ": queue '", queue, "' is mapped already (mapping ", q->mapping->id, " to '",
                q->mapping->function, "'); one mapping per queue keeps its order"));
      }
      char buf[36];
      format_id(buf, s.next_mapping++, s.nonce);
      id.assign(buf, sizeof buf);
      m->id = id;
      m->queue = std::string(queue);
      m->function = std::string(function);
      m->source = cat("queue:", queue);
      m->config = config;
      m->fn = *fn;
      m->window_ns = to_nanos(config.batching_window);
      m->max_age_ns = to_nanos(config.max_record_age);
      m->backoff_ns.store(kFirstBackoff, std::memory_order_relaxed);
      q->mapping = std::move(m);
    }
    s.mapped.emplace(id, q.get());
  }
  s.pump_here(*q, /*host=*/true);  // records pushed before the mapping go now
  return id;
}

Result<void> QueueMappings::unmap(std::string_view mapping_id) {
  State& s = *state_;
  std::shared_ptr<Mapping> gone;  // let go of after the locks: it holds the host's callbacks
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.mapped.find(std::string(mapping_id));
  if (it == s.mapped.end())
    return fail(ErrorCode::kNotFound, cat("unmap_queue: no mapping '", mapping_id, "'"));
  QueueState& q = *it->second;
  s.mapped.erase(it);
  std::lock_guard<std::mutex> qlock(q.mu);
  if (q.mapping == nullptr) return {};
  // Batches out finish; what they give back, and everything else, waits for a new mapping.
  if (q.window_timer != 0) s.timers.cancel(q.window_timer);
  q.window_timer = 0;
  if (q.mapping->backoff_timer != 0) s.timers.cancel(q.mapping->backoff_timer);
  q.mapping->backoff_timer = 0;
  gone = std::move(q.mapping);
  return {};
}

std::vector<MappingInfo> QueueMappings::list() const {
  const State& s = *state_;
  std::vector<MappingInfo> out;
  std::lock_guard<std::mutex> lock(s.mu);
  for (const auto& [name, q] : s.queues) {
    std::lock_guard<std::mutex> qlock(q->mu);
    const Mapping* m = q->mapping.get();
    if (m == nullptr) continue;
    MappingInfo info;
    info.id = m->id;
    info.queue = m->queue;
    info.function = m->function;
    info.config = m->config;
    info.batches = m->batches;
    info.records_succeeded = m->records_succeeded;
    info.records_failed = m->records_failed;
    info.records_retried = m->records_retried;
    info.in_flight_batches = m->in_flight;
    out.push_back(std::move(info));
  }
  return out;
}

void QueueMappings::stop(std::int64_t deadline) {
  State& s = *state_;
  s.close_all();
  {
    std::lock_guard<std::mutex> lock(s.flight_mu);
    if (s.out_flights == 0) return;  // the usual case: no clock read, no timer
    s.deadline_passed = false;
  }
  // On the timer thread the deadline timer could never fire: do not wait there.
  if (s.timers.on_timer_thread() || deadline <= s.core.time().now()) return;
  const EventTimers::Id timer = s.timers.at(deadline, [&s] {
    std::lock_guard<std::mutex> lock(s.flight_mu);
    s.deadline_passed = true;
    s.flight_cv.notify_all();
  });
  if (timer == 0) return;
  std::unique_lock<std::mutex> lock(s.flight_mu);
  s.flight_cv.wait(lock, [&] { return s.out_flights == 0 || s.deadline_passed; });
  lock.unlock();
  s.timers.cancel(timer);
}

}  // namespace ember::detail
