// schedules.hpp — Engine::schedule: rate()/cron() expressions firing events on the engine's
// clock, the missed-run and overlap policies, cancel and list.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/engine_core.hpp"
#include "ember/engine.hpp"
#include "ember/schedule.hpp"
#include "events/dispatcher.hpp"
#include "events/event_timers.hpp"

namespace ember::detail {

class ScheduleTable final {
 public:
  ScheduleTable(EngineCore& core, EventDispatcher& events, EventTimers& timers);
  ~ScheduleTable();
  ScheduleTable(const ScheduleTable&) = delete;
  ScheduleTable& operator=(const ScheduleTable&) = delete;

  Result<ScheduleInfo> add(std::string_view function, std::string_view expression,
                           std::string_view payload, const ScheduleOptions& options);
  Result<void> cancel(std::string_view name);
  [[nodiscard]] std::vector<ScheduleInfo> list() const;
  // Stops every schedule (shutdown). Idempotent.
  void stop();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ember::detail
