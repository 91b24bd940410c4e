// schedule.hpp — functions run on a schedule: EventBridge's rate() and cron() expressions.
//
//   engine.schedule("reports.hourly", "cron(0 * * * ? *)");                // every hour, UTC
//   engine.schedule("cache.sweep", "rate(5 seconds)", R"({"level":1})",
//                   {.name = "sweep", .timezone = "Europe/Berlin"});
//
// Each fire is an event (Engine::enqueue): retries, maximum age and destinations apply as the
// function's EventConfig says. Times are on the engine's clock, so a ManualClock drives
// schedules in tests exactly.
#pragma once

#include <absl/time/time.h>

#include <cstdint>
#include <optional>
#include <string>

#include "ember/events.hpp"

namespace ember {

// What happens to fire times that passed while nothing could fire them: the engine's clock
// jumped (a paused process, a ManualClock advanced far) or the events thread was held up.
// One passed fire time is not "missed": it fires late under every policy. The policy applies
// when two or more have passed.
enum class MissedRuns : std::uint8_t {
  kRunOnce,  // one catch-up fire for the latest missed time; the others are counted as skipped
  kSkip,     // no catch-up: every missed time is counted as skipped
  // One fire per missed time, oldest first: the latest ScheduleOptions::max_catch_up of them
  // (the older ones are counted as skipped). Without allow_overlap they go one at a time,
  // each once the previous one's event has ended.
  kRunAll,
};

struct ScheduleOptions {
  // Unique among the engine's schedules: 1-64 of [A-Za-z0-9._-]. Empty = a generated name.
  std::string name;
  // IANA zone cron() fields are read in (rate() ignores it). "UTC" by default.
  std::string timezone = "UTC";
  MissedRuns missed = MissedRuns::kRunOnce;
  int max_catch_up = 100;  // 1..10000
  // A fire time that comes while the previous fire's event has not ended (it runs, or waits to
  // retry) is skipped and counted, unless this is true. (With a ManualClock: after advancing to
  // a fire, wait until its event has ended — event_stats() — before advancing to the next.)
  bool allow_overlap = false;
  // Per fire, as Engine::enqueue's (event_id is ignored: each fire gets its own).
  EventOptions event;
};

struct ScheduleInfo {
  std::string name;
  std::string function;
  std::string expression;
  std::string timezone;
  absl::Time next_fire = absl::InfiniteFuture();  // InfiniteFuture once it will never fire
  std::optional<absl::Time> last_fire;            // the scheduled time of the latest fire
  std::uint64_t fired = 0;                        // events enqueued
  std::uint64_t skipped_missed = 0;               // fire times passed over by the MissedRuns policy
  std::uint64_t skipped_overlap = 0;   // fire times passed over because the last one ran on
  std::uint64_t enqueue_failures = 0;  // fires whose enqueue was refused (queue full, ...)
};

}  // namespace ember
