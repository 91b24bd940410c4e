// clock.hpp — the time source an Engine reads, and a manual clock for tests.
//
// By default an Engine reads a monotonic clock of its own. Tests (and simulations) inject a
// ManualClock, so timeouts, sleeps and queue waits happen exactly when the test says:
//
//   ember::ManualClock clock;
//   ember::Engine engine{{.workers = 1, .clock = &clock}};
//   ... start an invocation that sleeps 5 s ...
//   clock.advance(absl::Seconds(5));   // the sleeper wakes now, not in 5 real seconds
#pragma once

#include <absl/time/time.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ember/export.hpp"

namespace ember {

// Told when a clock's time jumps, so that waits computed against the old time are looked at
// again. Engines subscribe themselves; users rarely implement this.
class ClockListener {
 public:
  virtual void on_clock_advanced() noexcept = 0;

 protected:
  ~ClockListener() = default;
};

// A source of time. now() must be monotonic (never go back) and thread-safe.
class EMBER_EXPORT Clock {
 public:
  virtual ~Clock();
  [[nodiscard]] virtual absl::Time now() const noexcept = 0;
  // Clocks that jump (ManualClock) tell their listeners after each change. Thread-safe.
  virtual void add_listener(ClockListener* listener);
  virtual void remove_listener(ClockListener* listener);
};

// A clock that moves only when told. Thread-safe. Must outlive every Engine that uses it.
class EMBER_EXPORT ManualClock final : public Clock {
 public:
  // Starts at `start` (default: the Unix epoch plus one day, an arbitrary fixed point).
  explicit ManualClock(absl::Time start = absl::UnixEpoch() + absl::Hours(24));
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  [[nodiscard]] absl::Time now() const noexcept override;
  // Moves time forward by d (d < 0 is ignored: a clock never goes back) and wakes every wait
  // of every engine using this clock, which then fires what is due.
  void advance(absl::Duration d);
  void add_listener(ClockListener* listener) override;
  void remove_listener(ClockListener* listener) override;

 private:
  std::atomic<std::int64_t> now_ns_;  // Unix nanoseconds
  std::mutex mu_;                     // guards listeners_ and serialises advance()
  std::vector<ClockListener*> listeners_;
};

}  // namespace ember
