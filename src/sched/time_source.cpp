#include "sched/time_source.hpp"

#include <absl/time/clock.h>

#include <algorithm>

namespace ember::detail {

TimeSource::TimeSource(Clock* clock) : clock_(clock) {
  if (clock_ != nullptr) {
    parked_.reserve(64);  // waits register here; keep that allocation-free
    clock_->add_listener(this);
  }
}

TimeSource::~TimeSource() {
  if (clock_ != nullptr) clock_->remove_listener(this);
}

absl::Time TimeSource::to_time(std::int64_t t) const noexcept {
  if (t == kNever) return absl::InfiniteFuture();
  if (clock_ != nullptr) return absl::FromUnixNanos(t);
  return absl::Now() + absl::Nanoseconds(t - now());
}

bool TimeSource::park_until(Parker& parker, std::int64_t deadline) {
  if (clock_ == nullptr) {
    if (deadline == kNever) return parker.park(-1);
    std::int64_t left = deadline - now();
    if (left <= 0) return parker.try_consume();
    return parker.park(left);
  }
  // An injected clock may jump: register so that a jump unparks us, then re-check time.
  {
    std::lock_guard<std::mutex> lock(mu_);
    parked_.push_back(&parker);
  }
  bool woken;
  std::int64_t left = deadline == kNever ? -1 : deadline - now();
  if (left == 0 || (left < 0 && deadline != kNever)) {
    woken = parker.try_consume();
  } else {
    // For a clock that moves by itself, `left` real nanoseconds is a fair bound; for a manual
    // clock it merely bounds how long we sleep before looking again.
    woken = parker.park(left);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    parked_.erase(std::find(parked_.begin(), parked_.end(), &parker));
  }
  return woken || now() < deadline;
}

void TimeSource::wake_all() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  for (Parker* p : parked_) p->unpark();
}

}  // namespace ember::detail
