#include "sched/time_source.hpp"

#include <absl/time/clock.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace ember::detail {

namespace {

std::int64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::string read_file(const char* path) {
  std::string out;
  if (std::FILE* f = std::fopen(path, "re")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// The kernel keeps "tsc" as its clocksource only while it finds the counter invariant and
// synchronised across CPUs; the flags say it runs at a constant rate through P- and C-states.
// EMBER_CLOCK=monotonic opts out.
bool tsc_trusted() {
  if (const char* env = std::getenv("EMBER_CLOCK");
      env != nullptr && std::string(env) == "monotonic")
    return false;
  std::string source =
      read_file("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  while (!source.empty() && (source.back() == '\n' || source.back() == ' ')) source.pop_back();
  if (source != "tsc") return false;
  const std::string cpuinfo = read_file("/proc/cpuinfo");
  const std::size_t flags = cpuinfo.find("\nflags");
  if (flags == std::string::npos) return false;
  const std::string line = cpuinfo.substr(flags, cpuinfo.find('\n', flags + 1) - flags);
  return line.find(" constant_tsc") != std::string::npos &&
         line.find(" nonstop_tsc") != std::string::npos;
}

// One (ticks, ns) pair: the TSC read on both sides of the clock read, the middle taken.
void sample(std::uint64_t& ticks, std::int64_t& ns) noexcept {
  std::uint64_t best_gap = ~std::uint64_t{0};
  for (int i = 0; i < 5; ++i) {  // keep the tightest bracket of a few
    const std::uint64_t a = __rdtsc();
    const std::int64_t t = monotonic_ns();
    const std::uint64_t b = __rdtsc();
    if (b - a < best_gap) {
      best_gap = b - a;
      ticks = a + (b - a) / 2;
      ns = t;
    }
  }
}

}  // namespace

const TscClock* TscClock::get() noexcept {
  static const TscClock* const clock = []() -> const TscClock* {
    if (!tsc_trusted()) return nullptr;
    std::uint64_t t0 = 0, t1 = 0;
    std::int64_t n0 = 0, n1 = 0;
    sample(t0, n0);
    const timespec pause{0, 5'000'000};
    nanosleep(&pause, nullptr);
    sample(t1, n1);
    if (t1 <= t0 || n1 <= n0) return nullptr;
    const auto mult =
        static_cast<std::uint64_t>((static_cast<Wide>(n1 - n0) << kShift) / (t1 - t0));
    if (mult == 0) return nullptr;
    // Leaked on purpose: engines in static destructors may still read it.
    return new TscClock(t1, n1, mult);
  }();
  return clock;
}

double TscClock::ticks_per_second() const noexcept {
  return 1e9 * static_cast<double>(std::uint64_t{1} << kShift) / static_cast<double>(mult_);
}

TimeSource::TimeSource(Clock* clock)
    : clock_(clock), tsc_(clock == nullptr ? TscClock::get() : nullptr) {
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
