// TimerHeap: deadline order, firing only what is due, cancellation, and re-entrant arming from
// callbacks.
#include "sched/timer_heap.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "sched/time_source.hpp"

namespace ember::detail {
namespace {

// A timer that records its firing (id and the deadline it had) into a shared log.
struct LoggedTimer : Timer {
  int id = 0;
  std::vector<LoggedTimer*>* log = nullptr;
};

void log_fire(Timer* t) {
  auto* lt = static_cast<LoggedTimer*>(t);
  lt->log->push_back(lt);
}

std::vector<int> ids(const std::vector<LoggedTimer*>& fired) {
  std::vector<int> out;
  for (const LoggedTimer* t : fired) out.push_back(t->id);
  return out;
}

class TimerHeapTest : public ::testing::Test {
 protected:
  LoggedTimer& make(int id, std::int64_t deadline) {
    timers_.push_back(std::make_unique<LoggedTimer>());
    LoggedTimer& t = *timers_.back();
    t.id = id;
    t.deadline = deadline;
    t.fire = &log_fire;
    t.log = &fired_;
    return t;
  }

  TimerHeap heap_;
  std::vector<std::unique_ptr<LoggedTimer>> timers_;
  std::vector<LoggedTimer*> fired_;
};

TEST_F(TimerHeapTest, EmptyHeapHasNoDeadline) {
  EXPECT_TRUE(heap_.empty());
  EXPECT_EQ(heap_.next_deadline(), kNever);
  EXPECT_EQ(heap_.fire_expired(1'000'000), kNever);
  EXPECT_TRUE(fired_.empty());
}

TEST_F(TimerHeapTest, FiresInDeadlineOrderNotArmingOrder) {
  for (auto [id, deadline] :
       std::vector<std::pair<int, std::int64_t>>{{1, 50}, {2, 10}, {3, 40}, {4, 20}, {5, 30}}) {
    heap_.add(&make(id, deadline));
  }
  EXPECT_EQ(heap_.fire_expired(100), kNever);
  EXPECT_EQ(ids(fired_), (std::vector<int>{2, 4, 5, 3, 1}));
  EXPECT_TRUE(heap_.empty());
}

TEST_F(TimerHeapTest, FiresOnlyDueTimersAndReturnsTheNextDeadline) {
  heap_.add(&make(1, 10));
  heap_.add(&make(2, 20));
  heap_.add(&make(3, 30));
  EXPECT_EQ(heap_.fire_expired(9), 10);  // nothing due yet
  EXPECT_TRUE(fired_.empty());
  EXPECT_EQ(heap_.fire_expired(20), 30);  // a deadline equal to now is due
  EXPECT_EQ(ids(fired_), (std::vector<int>{1, 2}));
  EXPECT_EQ(heap_.next_deadline(), 30);
  EXPECT_FALSE(heap_.empty());
  EXPECT_EQ(heap_.fire_expired(29), 30);
  EXPECT_EQ(fired_.size(), 2u);
  EXPECT_EQ(heap_.fire_expired(31), kNever);
  EXPECT_EQ(ids(fired_), (std::vector<int>{1, 2, 3}));
}

TEST_F(TimerHeapTest, AddReportsWhetherTheTimerIsNowTheEarliest) {
  EXPECT_TRUE(heap_.add(&make(1, 100)));
  EXPECT_FALSE(heap_.add(&make(2, 200)));
  EXPECT_TRUE(heap_.add(&make(3, 50)));
  EXPECT_FALSE(heap_.add(&make(4, 50)));  // ties do not displace the earliest
  EXPECT_EQ(heap_.next_deadline(), 50);
}

TEST_F(TimerHeapTest, CancelBeforeFiringPreventsItAndReturnsTrue) {
  LoggedTimer& a = make(1, 10);
  LoggedTimer& b = make(2, 20);
  LoggedTimer& c = make(3, 30);
  heap_.add(&a);
  heap_.add(&b);
  heap_.add(&c);
  EXPECT_TRUE(heap_.cancel(&a));  // the earliest
  EXPECT_EQ(heap_.next_deadline(), 20);
  EXPECT_TRUE(heap_.cancel(&c));   // the last
  EXPECT_FALSE(heap_.cancel(&a));  // twice: no longer armed
  EXPECT_EQ(heap_.fire_expired(100), kNever);
  EXPECT_EQ(ids(fired_), (std::vector<int>{2}));
}

TEST_F(TimerHeapTest, CancelAfterFiringReturnsFalse) {
  LoggedTimer& a = make(1, 10);
  heap_.add(&a);
  heap_.fire_expired(10);
  ASSERT_EQ(fired_.size(), 1u);
  EXPECT_FALSE(heap_.cancel(&a));
  EXPECT_EQ(fired_.size(), 1u);
}

TEST_F(TimerHeapTest, CancelOfANeverArmedTimerReturnsFalse) {
  LoggedTimer& a = make(1, 10);
  EXPECT_FALSE(heap_.cancel(&a));
  heap_.add(&make(2, 5));
  EXPECT_FALSE(heap_.cancel(&a));
  EXPECT_EQ(heap_.next_deadline(), 5);
}

TEST_F(TimerHeapTest, CancelledTimerCanBeArmedAgain) {
  LoggedTimer& a = make(1, 10);
  heap_.add(&a);
  ASSERT_TRUE(heap_.cancel(&a));
  a.deadline = 15;
  heap_.add(&a);
  EXPECT_EQ(heap_.fire_expired(12), 15);
  EXPECT_TRUE(fired_.empty());
  heap_.fire_expired(15);
  EXPECT_EQ(ids(fired_), (std::vector<int>{1}));
}

// A callback that runs while its timer fires: cancel() on itself, then arms a follow-up.
struct ReentrantTimer : Timer {
  TimerHeap* heap = nullptr;
  Timer* follow_up = nullptr;
  bool cancel_result = true;
  bool fired = false;
};

void reentrant_fire(Timer* t) {
  auto* rt = static_cast<ReentrantTimer*>(t);
  rt->fired = true;
  rt->cancel_result = rt->heap->cancel(rt);  // firing right now: too late to cancel
  if (rt->follow_up != nullptr) rt->heap->add(rt->follow_up);
}

TEST_F(TimerHeapTest, CancelFromItsOwnCallbackReturnsFalse) {
  ReentrantTimer t;
  t.deadline = 10;
  t.fire = &reentrant_fire;
  t.heap = &heap_;
  heap_.add(&t);
  heap_.fire_expired(10);
  EXPECT_TRUE(t.fired);
  EXPECT_FALSE(t.cancel_result);
}

TEST_F(TimerHeapTest, CallbackCanArmATimerWithoutDeadlock) {
  ReentrantTimer t;
  t.deadline = 10;
  t.fire = &reentrant_fire;
  t.heap = &heap_;
  LoggedTimer& follow = make(2, 50);
  t.follow_up = &follow;
  heap_.add(&t);
  heap_.fire_expired(10);  // would deadlock if callbacks ran under the heap's lock
  ASSERT_TRUE(t.fired);
  EXPECT_FALSE(heap_.empty());
  EXPECT_EQ(heap_.next_deadline(), 50);
  EXPECT_EQ(heap_.fire_expired(50), kNever);
  EXPECT_EQ(ids(fired_), (std::vector<int>{2}));
}

// Owners park until the deadline fire_expired returns: a timer armed by a callback must be in
// it, or the owner sleeps through (or, with kNever, forever past) the new timer.
TEST_F(TimerHeapTest, NextDeadlineReturnedByFireIncludesTimersArmedByCallbacks) {
  ReentrantTimer t;
  t.deadline = 10;
  t.fire = &reentrant_fire;
  t.heap = &heap_;
  t.follow_up = &make(2, 50);
  heap_.add(&t);
  EXPECT_EQ(heap_.fire_expired(10), 50) << "the only timer left was armed by the callback";
  EXPECT_EQ(heap_.next_deadline(), 50);
}

TEST_F(TimerHeapTest, NextDeadlineReturnedByFireIsTheEarliestAfterCallbacksArmed) {
  ReentrantTimer t;
  t.deadline = 10;
  t.fire = &reentrant_fire;
  t.heap = &heap_;
  t.follow_up = &make(2, 50);
  heap_.add(&t);
  heap_.add(&make(3, 80));
  EXPECT_EQ(heap_.fire_expired(10), 50);
}

TEST_F(TimerHeapTest, MoreDueTimersThanOneBatchAllFire) {
  for (int i = 0; i < 100; ++i) heap_.add(&make(i, 1000 - i));
  heap_.add(&make(1000, 5000));
  EXPECT_EQ(heap_.fire_expired(1000), 5000);
  ASSERT_EQ(fired_.size(), 100u);
  for (std::size_t i = 1; i < fired_.size(); ++i) {
    EXPECT_LE(fired_[i - 1]->deadline, fired_[i]->deadline);
  }
}

TEST_F(TimerHeapTest, ManyRandomTimersFireInOrderAndCancelledOnesNever) {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<std::int64_t> deadline(0, 100'000);
  constexpr int kTimers = 5000;
  for (int i = 0; i < kTimers; ++i) heap_.add(&make(i, deadline(rng)));
  // Cancel a random third, from anywhere in the heap.
  std::vector<bool> cancelled(kTimers, false);
  for (int i = 0; i < kTimers; ++i) {
    if (rng() % 3 == 0) {
      ASSERT_TRUE(heap_.cancel(timers_[static_cast<std::size_t>(i)].get()));
      cancelled[static_cast<std::size_t>(i)] = true;
    }
  }
  // Advance time in uneven steps; every firing is due, and in deadline order overall.
  std::int64_t now = 0;
  std::int64_t last_deadline = -1;
  std::size_t seen = 0;
  while (now <= 100'000) {
    const std::int64_t next = heap_.fire_expired(now);
    for (; seen < fired_.size(); ++seen) {
      const LoggedTimer* t = fired_[seen];
      EXPECT_LE(t->deadline, now);
      EXPECT_GE(t->deadline, last_deadline);
      last_deadline = t->deadline;
    }
    if (next != kNever) {
      EXPECT_GT(next, now);
    }
    now += 1 + static_cast<std::int64_t>(rng() % 997);
  }
  heap_.fire_expired(now);
  EXPECT_TRUE(heap_.empty());
  std::vector<int> times_fired(kTimers, 0);
  for (const LoggedTimer* t : fired_) ++times_fired[static_cast<std::size_t>(t->id)];
  for (int i = 0; i < kTimers; ++i) {
    EXPECT_EQ(times_fired[static_cast<std::size_t>(i)],
              cancelled[static_cast<std::size_t>(i)] ? 0 : 1)
        << "timer " << i;
  }
}

}  // namespace
}  // namespace ember::detail
