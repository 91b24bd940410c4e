// EventTimers, the events module's timer thread, white-box: fires on the engine clock (a
// ManualClock here) in deadline order, cancels, re-arms from a callback, stops cleanly.
#include "events/event_timers.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "ember/clock.hpp"
#include "events.hpp"

namespace ember::detail {
namespace {

using ember::testing::Condition;
using ember::testing::Event;

class EventTimersTest : public ::testing::Test {
 protected:
  std::int64_t now() const { return time_.now(); }
  static constexpr std::int64_t kSecond = 1'000'000'000;
  void record(std::string what) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fired_.push_back(std::move(what));
    }
    changed_.notify();
  }
  std::vector<std::string> fired() {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_;
  }
  void wait_fired(std::size_t n) {
    changed_.wait([&] {
      std::lock_guard<std::mutex> lock(mu_);  // the timer thread appends under mu_
      return fired_.size() >= n;
    });
  }

  ManualClock clock_;
  TimeSource time_{&clock_};
  std::mutex mu_;
  std::vector<std::string> fired_;
  Condition changed_;
  EventTimers timers_{time_};  // last: destroyed (its thread joined) before what callbacks use
};

TEST_F(EventTimersTest, FiresInDeadlineOrderWhenTheClockGetsThere) {
  const std::int64_t t0 = now();
  ASSERT_NE(timers_.at(t0 + 3 * kSecond, [&] { record("c"); }), 0u);
  ASSERT_NE(timers_.at(t0 + 1 * kSecond, [&] { record("a"); }), 0u);
  ASSERT_NE(timers_.at(t0 + 2 * kSecond, [&] { record("b"); }), 0u);
  // A barrier due now: once it ran, the thread has looked at the clock since these were armed.
  Event barrier;
  timers_.at(t0, [&] { barrier.set(); });
  barrier.wait();
  EXPECT_TRUE(fired().empty());
  clock_.advance(absl::Seconds(2));
  wait_fired(2);
  EXPECT_EQ(fired(), (std::vector<std::string>{"a", "b"}));
  clock_.advance(absl::Seconds(1));
  wait_fired(3);
  EXPECT_EQ(fired(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(EventTimersTest, TimersDueAtOneTimeRunInTheOrderArmed) {
  const std::int64_t t = now() + kSecond;
  for (int i = 0; i < 5; ++i) timers_.at(t, [&, i] { record(std::to_string(i)); });
  clock_.advance(absl::Seconds(1));
  wait_fired(5);
  EXPECT_EQ(fired(), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

TEST_F(EventTimersTest, CancelledTimerNeverRuns) {
  const std::int64_t t0 = now();
  const EventTimers::Id cancelled = timers_.at(t0 + kSecond, [&] { record("cancelled"); });
  timers_.at(t0 + 2 * kSecond, [&] { record("kept"); });
  EXPECT_TRUE(timers_.cancel(cancelled));
  EXPECT_FALSE(timers_.cancel(cancelled));  // once only
  clock_.advance(absl::Seconds(2));
  wait_fired(1);
  EXPECT_EQ(fired(), (std::vector<std::string>{"kept"}));
}

TEST_F(EventTimersTest, CancelAfterItRanIsFalse) {
  Event ran;
  const EventTimers::Id id = timers_.at(now(), [&] { ran.set(); });
  ran.wait();
  EXPECT_FALSE(timers_.cancel(id));
  EXPECT_FALSE(timers_.cancel(0));
}

TEST_F(EventTimersTest, CallbackMayArmTheNextTimer) {
  const std::int64_t t0 = now();
  timers_.at(t0 + kSecond, [&] {
    record("first");
    EXPECT_TRUE(timers_.on_timer_thread());
    timers_.at(t0 + 2 * kSecond, [&] { record("second"); });
  });
  EXPECT_FALSE(timers_.on_timer_thread());
  clock_.advance(absl::Seconds(1));
  wait_fired(1);
  clock_.advance(absl::Seconds(1));
  wait_fired(2);
  EXPECT_EQ(fired(), (std::vector<std::string>{"first", "second"}));
}

TEST_F(EventTimersTest, StopDropsArmedTimersAndRefusesNewOnes) {
  bool ran = false;  // only the timer thread could write it, and it must not
  timers_.at(now() + kSecond, [&] { ran = true; });
  timers_.stop();
  clock_.advance(absl::Seconds(5));
  EXPECT_EQ(timers_.at(now(), [&] { ran = true; }), 0u);
  timers_.stop();  // idempotent
  EXPECT_FALSE(ran);
}

TEST_F(EventTimersTest, StopFromACallbackDoesNotDeadlock) {
  Event stopped;
  timers_.at(now(), [&] {
    timers_.stop();
    stopped.set();
  });
  stopped.wait();
  EXPECT_EQ(timers_.at(now(), [] {}), 0u);
}

}  // namespace
}  // namespace ember::detail
