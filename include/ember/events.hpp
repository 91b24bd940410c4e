// events.hpp — queued "Event" invokes: retries, maximum event age, destinations, dead letters.
//
// Lambda's asynchronous invocation, in-process. enqueue() hands an event to the function's
// bounded queue and returns its id at once; the engine runs it on a worker, retries it on
// error or timeout after a backoff, sends throttled events back to the queue, and finally hands
// a record of what happened to a destination:
//
//   engine.set_event_config("audit.write", {
//       .max_retries = 2,                                      // Lambda's default
//       .on_failure = {.callback = [](const ember::EventRecord& r) { persist(r); }}});
//   ember::Result<std::string> id = engine.enqueue("audit.write", R"({"user":42})");
//
// Every accepted event ends in exactly one place: its success (and the on-success destination,
// if any), the on-failure destination, or the dead-letter sink (the function's dead_letter
// destination, else the engine's EventSinks::dead_letter). At shutdown, events not yet done go
// to EventSinks::drain. Delivery is at least once: a handler may see an event again (after a
// timeout whose handler did finish its work, say), so it de-duplicates by Context::event()->id,
// which stays the same across retries.
#pragma once

#include <absl/time/time.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/export.hpp"
#include "ember/options.hpp"
#include "ember/result.hpp"

namespace ember {

// Where an event ended, as in Lambda's destination records (requestContext.condition).
enum class EventCondition : std::uint8_t {
  kSuccess,           // the handler returned a result
  kRetriesExhausted,  // the first attempt and every retry failed (error or timeout)
  kEventAgeExceeded,  // it grew older than max_event_age before it could run (again)
  kRejected,          // it can never run: its function was removed, its payload is refused...
  kShutdown,          // the engine shut down first (EventSinks::drain)
};
// "Success", "RetriesExhausted", "EventAgeExceeded", "Rejected", "Shutdown".
[[nodiscard]] EMBER_EXPORT std::string_view event_condition_name(EventCondition c) noexcept;

// What destinations and sinks receive about one event.
struct EventRecord {
  std::string event_id;  // stable across retries (Context::event()->id)
  std::string function;  // as given to enqueue: "name", "name:alias", "name:3"
  std::string version;   // the version that ran the last attempt; empty if none ran
  std::string source;    // "enqueue", "schedule:<name>"
  std::string payload;   // the request
  EventCondition condition = EventCondition::kSuccess;
  std::string response;        // kSuccess: the handler's result
  std::optional<Error> error;  // otherwise: the last attempt's error, or why it never ran
  int attempts = 0;            // handler runs; throttled tries are not attempts
  int throttles = 0;           // times it found no free slot and went back to the queue
  absl::Time enqueued_at = absl::InfinitePast();
  absl::Time last_attempt_at = absl::InfinitePast();  // InfinitePast if it never ran
  absl::Time finished_at = absl::InfinitePast();
};

// The record as Lambda's destination JSON: {"version":"1.0","timestamp":...,"requestContext":
// {"requestId","functionArn","condition","approximateInvokeCount"},"requestPayload",
// "responseContext":{"statusCode","executedVersion","functionError"},"responsePayload"}.
// The payloads are JSON strings (ember does not assume a payload is JSON); an error's
// responsePayload is function_error_json(error) as a string.
[[nodiscard]] EMBER_EXPORT std::string event_record_json(const EventRecord& record);

// Called with a record. Runs on an engine thread (a worker or the events thread): keep it
// short, do not block on the engine. It may enqueue. An exception it throws is caught and
// counted as a delivery failure (destination_delivery_failures / dead_letter_errors).
using EventCallback = std::function<void(const EventRecord&)>;

// A destination: a function, enqueued as an event with event_record_json(record) as its
// payload (as Lambda invokes a destination function asynchronously), or a host callback.
// Neither set = no destination.
struct Destination {
  std::string function;
  EventCallback callback;
  [[nodiscard]] bool empty() const noexcept { return function.empty() && !callback; }
};

// Per function (Engine::set_event_config); every enqueue of the function uses it, with the
// overrides of EventOptions. Lambda's PutFunctionEventInvokeConfig plus its DeadLetterConfig.
struct EventConfig {
  // Retries after the first attempt fails with a handler error or a timeout: 0..100.
  int max_retries = 2;
  // The wait before retry i is retry_backoff[i] (the last entry repeats). Lambda: 1 min, 2 min.
  // Not empty; every entry >= 0.
  std::vector<absl::Duration> retry_backoff = {absl::Minutes(1), absl::Minutes(2)};
  // An event older than this is not run (again): it ends as kEventAgeExceeded. >= 1 s.
  absl::Duration max_event_age = absl::Hours(6);
  // Events of the function not yet ended (waiting, waiting to retry, running). One more is
  // refused by enqueue with kQueueFull: never a silent drop. >= 1.
  std::size_t max_queued_events = 100'000;
  // A throttled event goes back to the head of the queue and the function's queue pauses for
  // this long, doubling on each throttle in a row up to max_throttle_backoff (a success or a
  // finished event resumes it at once). Throttles are not retries.
  absl::Duration throttle_backoff = absl::Seconds(1);
  absl::Duration max_throttle_backoff = absl::Minutes(5);
  Destination on_success;
  Destination on_failure;
  // Gets failed events when on_failure is empty (Lambda's dead-letter queue). Empty = the
  // engine's EventSinks::dead_letter.
  Destination dead_letter;
};

// Per enqueue.
struct EventOptions {
  // The event's id, e.g. the host's own idempotency key (1..128 printable ASCII characters).
  // Empty = a generated UUID-shaped id.
  std::string event_id;
  // Override the function's EventConfig for this event.
  std::optional<int> max_retries;
  std::optional<absl::Duration> max_event_age;
  // Copied; handed to each attempt as Context::client_context().
  const ClientContext* client_context = nullptr;
  // The trace the event's attempts join.
  TraceContext trace;
};

// What a handler run for an event sees (Context::event()).
struct EventInfo {
  std::string_view id;      // stable across retries
  int attempt = 0;          // 1 on the first run
  absl::Time enqueued_at;   // when it was enqueued; for a schedule, the scheduled time
  std::string_view source;  // as EventRecord::source
};

// Engine-wide sinks (Engine::set_event_sinks).
struct EventSinks {
  // Failed events of functions with neither on_failure nor dead_letter. Empty = an engine log
  // line (level kError) carrying event_record_json(record).
  EventCallback dead_letter;
  // Events not done when shutdown's drain ends (condition kShutdown): waiting to retry, still
  // queued, or running past the deadline. Empty = the dead-letter path above.
  EventCallback drain;
};

// Counts of the events machinery (Engine::event_stats()), engine-wide.
struct EventStats {
  std::int64_t queued = 0;          // waiting to run now (or paused after a throttle)
  std::int64_t delayed = 0;         // waiting for a retry's backoff
  std::int64_t in_flight = 0;       // running
  std::uint64_t enqueued = 0;       // accepted by enqueue
  std::uint64_t refused = 0;        // refused by enqueue (queue full, bad input, shutting down)
  std::uint64_t succeeded = 0;      // ended kSuccess
  std::uint64_t failed = 0;         // ended otherwise (any condition but kSuccess and kShutdown)
  std::uint64_t retries = 0;        // attempts after the first
  std::uint64_t throttles = 0;      // tries that found no slot
  std::uint64_t to_on_success = 0;  // records handed to an on-success destination
  std::uint64_t to_on_failure = 0;  // ... to an on-failure destination
  std::uint64_t dead_lettered = 0;  // ... to a dead-letter destination or sink
  std::uint64_t drained = 0;        // ... to the drain sink (or its fallback) at shutdown
  std::uint64_t delivery_failures = 0;  // destinations or sinks that threw or refused
};

}  // namespace ember
