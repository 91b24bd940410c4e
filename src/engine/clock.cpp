#include "ember/clock.hpp"

#include <algorithm>

namespace ember {

Clock::~Clock() = default;
void Clock::add_listener(ClockListener*) {}
void Clock::remove_listener(ClockListener*) {}

ManualClock::ManualClock(absl::Time start) : now_ns_(absl::ToUnixNanos(start)) {}

absl::Time ManualClock::now() const noexcept {
  return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire));
}

void ManualClock::advance(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return;
  std::lock_guard<std::mutex> lock(mu_);
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  for (ClockListener* l : listeners_) l->on_clock_advanced();
}

void ManualClock::add_listener(ClockListener* listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.push_back(listener);
}

void ManualClock::remove_listener(ClockListener* listener) {
  std::lock_guard<std::mutex> lock(mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

}  // namespace ember
