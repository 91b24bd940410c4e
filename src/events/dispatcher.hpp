// dispatcher.hpp — queued "Event" invokes (Engine::enqueue): per-function bounded queues,
// retries with backoff, throttle pauses, maximum event age, destinations, dead letters, drain.
#pragma once

#include <absl/functional/any_invocable.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/engine_core.hpp"
#include "ember/engine.hpp"
#include "ember/events.hpp"
#include "events/event_timers.hpp"

namespace ember::detail {

// What the events module's own callers (schedules, mappings) add to an enqueue.
struct EnqueueExtras {
  std::string_view source = "enqueue";
  // When the event counts as enqueued (engine time): a schedule's scheduled time. 0 = now.
  std::int64_t enqueued_ns = 0;
  // Called once the event has ended (after its record reached its place), with its condition.
  absl::AnyInvocable<void(EventCondition)> on_end;
};

class EventDispatcher final {
 public:
  EventDispatcher(EngineCore& core, Engine& engine, EventTimers& timers);
  ~EventDispatcher();
  EventDispatcher(const EventDispatcher&) = delete;
  EventDispatcher& operator=(const EventDispatcher&) = delete;

  // `function` is what the caller named (for records and messages); `fn` resolves it.
  Result<std::string> enqueue(FunctionHandle fn, std::string_view function,
                              std::string_view payload, const EventOptions& options,
                              EnqueueExtras extras = {});
  // Counts an enqueue refused before it reached the dispatcher (an unknown function).
  void note_refused() noexcept;
  Result<void> set_config(std::string_view function, EventConfig config);
  [[nodiscard]] Result<EventConfig> config(std::string_view function) const;
  void set_sinks(EventSinks sinks);
  [[nodiscard]] EventStats stats() const;

  // Hands a failed record to `destination`, or (empty, or it fails) to the dead-letter path:
  // the function's dead_letter is not consulted here (callers pass what applies), the engine's
  // EventSinks::dead_letter is. `metrics_fn` is the function whose counters say so.
  void deliver_failure(const Destination& destination, const EventRecord& record,
                       FunctionHandle metrics_fn);

  // Shutdown, in order: close() refuses new enqueues; drain(deadline) runs queued events
  // until the engine-time deadline, then hands every event not done to the drain sink (those
  // still running go there when their outcome arrives, or at finish()); finish(), after the
  // core has drained, hands over anything still held. Each is idempotent.
  void close();
  void drain(std::int64_t deadline);
  void finish();

 private:
  struct State;
  // What one record's delivery did, added to EventStats by the caller.
  struct Tally {
    std::uint64_t to_on_success = 0, to_on_failure = 0, dead_lettered = 0, drained = 0,
                  failures = 0;
  };
  // ---- Where records go: event_record.cpp ----
  // By r.condition: kSuccess to on_success; kShutdown to the drain sink, else the dead-letter
  // path; any other to on_failure, else the dead-letter path. Failed deliveries are counted on
  // `fn`'s metrics and logged; the last step (a log line) cannot fail.
  void route(const EventRecord& r, const Destination& on_success, const Destination& on_failure,
             const Destination& dead_letter, const EventSinks& sinks, FunctionHandle fn, Tally& t);
  // The dead-letter path: `own` (the function's dead_letter), else the engine's sink, else an
  // engine log line. Adds one to `placed`.
  void dead_letter(const Destination& own, const EventRecord& r, const EventSinks& sinks,
                   FunctionHandle fn, std::uint64_t& placed, Tally& t);
  // nullopt once delivered, else why not.
  std::optional<std::string> send(const Destination& d, const EventRecord& r);
  void delivery_failed(const EventRecord& r, FunctionHandle fn, EngineCore::EventCounter counter,
                       std::string_view what, std::string_view why, Tally& t);
  // A destination function's record: enqueued (source "destination") even while the engine
  // shuts down, until the drain ends.
  Result<std::string> enqueue_record(FunctionHandle fn, std::string_view function,
                                     std::string payload);

  EngineCore& core_;
  std::unique_ptr<State> state_;
};

}  // namespace ember::detail
