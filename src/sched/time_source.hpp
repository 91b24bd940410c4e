// time_source.hpp — an engine's notion of "now": int64 nanoseconds on one monotonic scale.
//
// The hot path reads time through now(): the CPU's time-stamp counter scaled to nanoseconds
// where the kernel itself trusts it (TscClock), else the process's monotonic clock, unless the
// host injected an ember::Clock (tests use ManualClock). Engine time is a scale of its own: it
// is compared only with itself, and waits hand the OS relative durations, so a TSC-based scale
// needs only the right rate, not CLOCK_MONOTONIC's origin. Waits with a deadline go through
// park_until(), which also wakes when an injected clock jumps.
#pragma once

#include <absl/time/time.h>
#include <x86intrin.h>

#include <cstdint>
#include <ctime>
#include <limits>
#include <mutex>
#include <vector>

#include "ember/clock.hpp"
#include "sched/parker.hpp"

namespace ember::detail {

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

// Saturating a + b for deadlines.
inline std::int64_t add_saturating(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? kNever : std::numeric_limits<std::int64_t>::min();
  return r;
}

inline std::int64_t to_nanos(absl::Duration d) noexcept {
  if (d == absl::InfiniteDuration()) return kNever;
  return absl::ToInt64Nanoseconds(d);
}

// The time-stamp counter as nanoseconds. A read costs one rdtsc and a multiply (23 ns against
// CLOCK_MONOTONIC's 41 here, where the vDSO does the same rdtsc plus a seqlock and scaling).
// Used only where the kernel's clocksource is "tsc" (so the counter is invariant and in step
// across CPUs) and the CPU says constant_tsc and nonstop_tsc. Calibrated once per process
// against CLOCK_MONOTONIC over ~5 ms: the rate is right to some parts per million, which is
// all timeouts and durations need.
class TscClock final {
 public:
  __extension__ using Wide = unsigned __int128;
  // The process's calibration, made on first use; nullptr if the TSC is not to be trusted.
  static const TscClock* get() noexcept;
  [[nodiscard]] std::int64_t now() const noexcept {
    const std::uint64_t ticks = __rdtsc() - base_ticks_;
    return base_ns_ + static_cast<std::int64_t>((static_cast<Wide>(ticks) * mult_) >> kShift);
  }
  [[nodiscard]] double ticks_per_second() const noexcept;

 private:
  static constexpr int kShift = 32;
  TscClock(std::uint64_t base_ticks, std::int64_t base_ns, std::uint64_t mult)
      : base_ticks_(base_ticks), base_ns_(base_ns), mult_(mult) {}
  std::uint64_t base_ticks_;
  std::int64_t base_ns_;
  std::uint64_t mult_;  // nanoseconds per tick, times 2^kShift
};

class TimeSource final : private ClockListener {
 public:
  explicit TimeSource(Clock* clock);
  ~TimeSource();
  TimeSource(const TimeSource&) = delete;
  TimeSource& operator=(const TimeSource&) = delete;

  [[nodiscard]] std::int64_t now() const noexcept {
    if (tsc_ != nullptr) [[likely]]
      return tsc_->now();
    if (clock_ != nullptr) return absl::ToUnixNanos(clock_->now());
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }
  // A reading that may be cheaper and lag now() by a tick or two: CLOCK_MONOTONIC_COARSE (7 ms
  // lag was seen here against a 4 ms resolution), or now() itself on the TSC scale (the
  // coarse clock is not on that scale). Use it only where lagging errs on the safe side, e.g.
  // "has this deadline passed?" after the fact.
  [[nodiscard]] std::int64_t now_coarse() const noexcept {
    if (tsc_ != nullptr) [[likely]]
      return tsc_->now();
    if (clock_ != nullptr) return absl::ToUnixNanos(clock_->now());
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  }
  // The public form of an engine time (for Context::deadline()).
  [[nodiscard]] absl::Time to_time(std::int64_t t) const noexcept;
  [[nodiscard]] bool injected() const noexcept { return clock_ != nullptr; }

  // Parks until unparked or until the engine-time `deadline` (kNever: no limit) has passed.
  // Returns true if woken by an unpark (or a clock jump), false when the deadline passed.
  bool park_until(Parker& parker, std::int64_t deadline);

  // Wakes every thread currently in park_until (a clock jump, or shutdown).
  void wake_all() noexcept;

 private:
  void on_clock_advanced() noexcept override { wake_all(); }

  Clock* const clock_;
  const TscClock* const tsc_;  // set when no clock is injected and the TSC is trusted
  std::mutex mu_;
  std::vector<Parker*> parked_;  // guarded by mu_; only used with an injected clock
};

}  // namespace ember::detail
