// The queue store: EventQueue, its records and their ids. A push checks its record and appends
// it under the queue's mutex (forming the batches it completes is batch_mapping.cpp's work); a
// flight's records come back to their places, in push order; a batch's records are written as
// its JSON payload; a record that ends unhandled goes to on_failure as an EventRecord.
#include <absl/random/random.h>
#include <absl/time/time.h>

#include <algorithm>

#include "core/names.hpp"
#include "core/str_cat.hpp"
#include "events/event_queue_internal.hpp"
#include "observe/json_writer.hpp"

namespace ember::detail {

namespace {

constexpr std::size_t kMaxPartitionKey = 128;

// splitmix64's finaliser: a bijection, so distinct sequence numbers give distinct ids.
std::uint64_t mix(std::uint64_t x) noexcept {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// RFC 3339 in UTC with milliseconds. Records of a batch mostly share their second, so its text
// is kept (absl::FormatTime costs about a microsecond).
class TimeText {
 public:
  void append(std::string& out, absl::Time t) {
    const std::int64_t ms = absl::ToUnixMillis(t);
    const std::int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    if (sec != sec_ || prefix_.empty()) {
      sec_ = sec;
      prefix_ =
          absl::FormatTime("%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(sec), absl::UTCTimeZone());
    }
    const auto milli = static_cast<int>(ms - sec * 1000);
    out.append(prefix_);
    out.push_back('.');
    out.push_back(static_cast<char>('0' + milli / 100));
    out.push_back(static_cast<char>('0' + milli / 10 % 10));
    out.push_back(static_cast<char>('0' + milli % 10));
    out.push_back('Z');
  }

 private:
  std::int64_t sec_ = 0;
  std::string prefix_;
};

// A queue is named as a function is (the same characters and length); the message says queue.
Result<void> validate_queue_name(std::string_view name) {
  auto ok = validate_function_name(name);
  if (ok) return ok;
  constexpr std::string_view kFunctionName = "function name";
  std::string& message = ok.error().message;
  if (message.starts_with(kFunctionName)) message.replace(0, kFunctionName.size(), "queue name");
  return ok;
}

}  // namespace

// ---- Record ids ----

// UUID-shaped: the mixed sequence number, then the nonce (per queue, or per engine).
void format_id(char (&out)[36], std::uint64_t seq, std::uint64_t nonce) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::uint64_t x = mix(seq);
  int at = 0;
  const auto put = [&](std::uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[at + i] = kHex[v & 0xf];
    at += digits;
  };
  put(x >> 32, 8);
  out[at++] = '-';
  put((x >> 16) & 0xffff, 4);
  out[at++] = '-';
  put(x & 0xffff, 4);
  out[at++] = '-';
  put(nonce >> 48, 4);
  out[at++] = '-';
  put(nonce & 0xffff'ffff'ffffULL, 12);
}

std::string record_id(const QueueState& q, const QueueRecord& r) {
  char id[36];
  format_id(id, r.seq, q.nonce);
  return std::string(id, sizeof id);
}

// ---- Pushing ----

Result<std::string> QueueMappings::State::push(QueueState& q, std::string_view body,
                                               std::string_view key) {
  if (key.size() > kMaxPartitionKey) {
    return fail(ErrorCode::kInvalidArgument,
                cat("queue '", q.name, "': partition key is ", key.size(), " bytes; at most ",
                    kMaxPartitionKey, " are allowed"));
  }
  if (body.size() > q.max_body) {
    return fail(ErrorCode::kPayloadTooLarge,
                cat("queue '", q.name, "': body is ", body.size(), " bytes; the limit is ",
                    q.max_body, " (EngineOptions::max_async_payload)"));
  }
  QueueRecord r;
  r.body.assign(body);
  r.key.assign(key);
  State* s = nullptr;
  Collected out;
  std::uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(q.mu);
    if (q.closed) {
      return fail(ErrorCode::kShuttingDown,
                  cat("queue '", q.name, "': the engine is shutting down"));
    }
    if (q.held.load(std::memory_order_relaxed) >= q.capacity) {
      return fail(ErrorCode::kQueueFull, cat("queue '", q.name, "': it holds ", q.capacity,
                                             " records, its capacity; the push is refused"));
    }
    s = q.owner;
    // Read under the lock, so push times follow push order (the window and age rules use them).
    const std::int64_t now = s->core.time().now();
    seq = r.seq = q.next_seq++;
    r.pushed_ns = now;
    append_locked(q, std::move(r));
    q.held.fetch_add(1, std::memory_order_relaxed);
    if (q.mapping != nullptr) {
      if (s->core.inside_engine()) {
        s->arm_pump_locked(q);
      } else {
        s->collect_locked(q, now, out);
      }
    }
  }
  if (!out.flights.empty() || !out.ended.empty() || out.ended_flights != 0) {
    s->deliver(std::move(out.ended), /*host=*/true);
    s->start(q, std::move(out.flights), /*host=*/true);
    s->finish_flights(out.ended_flights);
  }
  char id[36];
  format_id(id, seq, q.nonce);
  return std::string(id, sizeof id);
}

void QueueMappings::State::append_locked(QueueState& q, QueueRecord&& r) {
  if (r.key.empty()) {
    q.unkeyed.push_back(std::move(r));
    ++q.available;
    return;
  }
  auto [it, inserted] = q.keys.try_emplace(r.key);
  if (inserted) it->second = std::make_unique<KeyQueue>(r.key);
  KeyQueue& k = *it->second;
  const bool was_ready = !k.busy && !k.records.empty();
  k.records.push_back(std::move(r));
  if (k.busy) return;
  ++q.available;
  if (!was_ready) q.ready.emplace(k.records.front().seq, &k);
}

void QueueMappings::State::put_back_locked(QueueState& q, std::vector<QueueRecord>& records) {
  // A flight's records are older than anything its keys still hold: back at the front, in
  // push order.
  std::sort(records.begin(), records.end(),
            [](const QueueRecord& a, const QueueRecord& b) { return a.seq < b.seq; });
  for (auto r = records.rbegin(); r != records.rend(); ++r) {
    if (r->key.empty()) {
      q.unkeyed.push_front(std::move(*r));
      ++q.available;
      continue;
    }
    auto [it, inserted] = q.keys.try_emplace(r->key);
    if (inserted) it->second = std::make_unique<KeyQueue>(r->key);  // not expected: held
    KeyQueue& k = *it->second;
    if (!k.busy && !k.records.empty()) q.ready.erase({k.records.front().seq, &k});
    k.records.push_front(std::move(*r));
    if (!k.busy) {
      ++q.available;
      q.ready.emplace(k.records.front().seq, &k);
    }
  }
  records.clear();
}

// ---- Batch payloads ----

std::string batch_payload(const QueueState& q, const std::vector<QueueRecord>& records,
                          std::int64_t now, absl::Time now_time) {
  std::size_t size = kEnvelopeBytes;
  for (const QueueRecord& r : records) size += record_bytes(r);
  std::string out;
  out.reserve(size + size / 16);  // room for some escapes
  out.append("{\"Records\":[");
  TimeText time;
  char id[36];
  for (std::size_t i = 0; i < records.size(); ++i) {
    const QueueRecord& r = records[i];
    if (i != 0) out.push_back(',');
    format_id(id, r.seq, q.nonce);
    out.append("{\"messageId\":\"");
    out.append(id, sizeof id);
    out.append("\",\"partitionKey\":");
    append_json_string(out, r.key);
    out.append(",\"body\":");
    append_json_string(out, r.body);
    out.append(",\"attempt\":");
    append_int(out, r.failures + 1);
    out.append(",\"pushedAt\":\"");
    time.append(out, now_time + absl::Nanoseconds(r.pushed_ns - now));
    out.append("\"}");
  }
  out.append("]}");
  return out;
}

// ---- Ended records ----

void QueueMappings::State::end_record_locked(QueueState& q, const std::shared_ptr<Mapping>& m,
                                             QueueRecord&& r, EventCondition condition,
                                             Collected& out) {
  ++m->records_failed;
  q.held.fetch_sub(1, std::memory_order_relaxed);
  Error error;
  if (r.error != nullptr) {
    error = *r.error;  // the last attempt's
  } else {
    error = Error{ErrorCode::kTimeout, cat("queue '", q.name, "': record ", record_id(q, r),
                                           " is older than the mapping's max_record_age (",
                                           absl::FormatDuration(absl::Nanoseconds(m->max_age_ns)),
                                           "); it is not handed over")};
  }
  std::string id = record_id(q, r);
  out.ended.push_back(EndedRecord{m, std::move(id), std::move(r), condition, std::move(error)});
}

void QueueMappings::State::deliver(std::vector<EndedRecord> ended, bool host) {
  if (ended.empty()) return;
  if (!host) {
    deliver_now(ended);
    return;
  }
  // Destinations run on engine threads, not on the host's pushing thread. Should the timers
  // drop the callback unrun (they stopped), the records are delivered as it is destroyed:
  // never lost.
  struct Pending {
    State* state = nullptr;
    std::vector<EndedRecord> ended;
    ~Pending() {
      if (!ended.empty()) state->deliver_now(ended);
    }
  };
  auto pending = std::make_shared<Pending>();
  pending->state = this;
  pending->ended = std::move(ended);
  (void)timers.at(core.time().now(), [pending] { pending->state->deliver_now(pending->ended); });
}

void QueueMappings::State::deliver_now(std::vector<EndedRecord>& ended) {
  const TimeSource& time = core.time();
  const absl::Time finished = time.to_time(time.now());
  for (EndedRecord& e : ended) {
    EventRecord record;
    QueueRecord& r = e.record;
    Mapping& m = *e.mapping;
    record.event_id = std::move(e.id);
    record.function = m.function;
    record.version = r.failures > 0 ? std::string(m.fn.version()) : std::string();
    record.source = m.source;
    record.payload = std::move(r.body);
    record.condition = e.condition;
    record.error = std::move(e.error);
    record.attempts = r.failures;
    record.throttles = r.throttles;
    record.enqueued_at = time.to_time(r.pushed_ns);
    if (r.attempt_ns != 0) record.last_attempt_at = time.to_time(r.attempt_ns);
    record.finished_at = finished;
    events.deliver_failure(m.config.on_failure, record, m.fn);
  }
  ended.clear();
}

// ---- Creating queues ----

Result<std::shared_ptr<EventQueue>> QueueMappings::create_queue(std::string_view name,
                                                                const QueueOptions& options) {
  State& s = *state_;
  if (auto ok = validate_queue_name(name); !ok) return tl::unexpected<Error>(ok.error());
  if (options.capacity < 1) {
    return fail(ErrorCode::kInvalidArgument,
                cat("queue '", name, "': capacity is 0; it must be at least 1"));
  }
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.stopped) {
    return fail(ErrorCode::kShuttingDown,
                cat("create_queue '", name, "': the engine is shutting down"));
  }
  std::string key(name);
  if (s.queues.contains(key)) {
    return fail(ErrorCode::kAlreadyExists, cat("queue '", name, "' exists already"));
  }
  auto q = std::make_shared<QueueState>(key, options.capacity, s.core.options().max_async_payload,
                                        absl::Uniform<std::uint64_t>(absl::BitGen()), &s);
  s.queues.emplace(std::move(key), q);
  return std::make_shared<EventQueue>(std::move(q));
}

}  // namespace ember::detail

namespace ember {

EventQueue::EventQueue(std::shared_ptr<detail::QueueState> state) noexcept
    : state_(std::move(state)) {}

EventQueue::~EventQueue() = default;

Result<std::string> EventQueue::push(std::string_view body, std::string_view partition_key) {
  return detail::QueueMappings::State::push(*state_, body, partition_key);
}

std::string_view EventQueue::name() const noexcept { return state_->name; }

std::size_t EventQueue::size() const noexcept {
  return state_->held.load(std::memory_order_relaxed);
}

}  // namespace ember
