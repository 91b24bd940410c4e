// event_timers.hpp — the events module's timer thread: retry backoffs, throttle pauses, event
// age limits, schedule fire times and batching windows, on the engine's clock.
//
// One thread per engine, started on the first timer armed (an engine that never enqueues or
// schedules has none). Callbacks run on that thread, outside the lock, in deadline order; a
// callback may arm or cancel timers. With a ManualClock, advance() wakes the thread, which then
// runs every timer due at the new time before it parks again.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/functional/any_invocable.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>

#include "sched/parker.hpp"
#include "sched/time_source.hpp"

namespace ember::detail {

class EventTimers final {
 public:
  using Id = std::uint64_t;  // 0 is never an id
  using Callback = absl::AnyInvocable<void()>;

  explicit EventTimers(TimeSource& time) : time_(time) {}
  ~EventTimers();
  EventTimers(const EventTimers&) = delete;
  EventTimers& operator=(const EventTimers&) = delete;

  // Runs `callback` on the timer thread once the engine time reaches `when`. After stop(), the
  // callback is dropped unrun and 0 returned.
  Id at(std::int64_t when, Callback callback);
  // True if the timer was still armed (it will not run); false if it ran, runs now, or never
  // was.
  bool cancel(Id id);
  // Stops the thread; armed timers are dropped unrun. Waits for a callback that is running
  // and joins the thread, unless called from a callback (then a later stop() or the
  // destructor joins). Idempotent.
  void stop();
  [[nodiscard]] bool on_timer_thread() const noexcept {
    return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire);
  }
  [[nodiscard]] TimeSource& time() noexcept { return time_; }

 private:
  void loop();
  TimeSource& time_;
  std::mutex mu_;
  // Ordered by (deadline, id): ids grow, so timers due at one time run in the order armed.
  absl::btree_map<std::pair<std::int64_t, Id>, Callback> armed_;
  absl::btree_map<Id, std::int64_t> deadline_of_;
  Id next_id_ = 1;
  bool stopped_ = false;
  bool started_ = false;
  Parker parker_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
};

}  // namespace ember::detail
