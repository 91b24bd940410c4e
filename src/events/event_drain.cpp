// event_drain.cpp — the dispatcher's shutdown: close(), drain(deadline) and finish(), and
// the handing over of queued and delayed events to the drain path.
#include <chrono>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "events/dispatcher.hpp"
#include "events/dispatcher_internal.hpp"

namespace ember::detail {

void EventDispatcher::State::take_all_locked(std::vector<Ending>& out) {
  for (auto& [name, fs] : fns) {
    while (!fs->ready.empty()) {
      out.push_back(end_of(fs->ready.front(), EventCondition::kShutdown));
      fs->ready.pop_front();
      --stats.queued;
    }
    if (fs->paused) {
      timers.cancel(fs->pause_timer);
      fs->paused = false;
      fs->pause_timer = 0;
      ++fs->pause_gen;
    }
    touch_locked(*fs);
  }
  take_delayed_locked(std::numeric_limits<std::int64_t>::min(), out);
}

void EventDispatcher::State::take_delayed_locked(std::int64_t after, std::vector<Ending>& out) {
  std::vector<Event*> taken;
  for (Event* e : delayed) {
    // A timer that cannot be cancelled is running: its callback sees the drain and hands the
    // event over itself.
    if (e->wake_ns > after && timers.cancel(e->timer)) taken.push_back(e);
  }
  for (Event* e : taken) {
    delayed.erase(e);
    --stats.delayed;
    e->timer = 0;
    out.push_back(end_of(e, EventCondition::kShutdown));
  }
}

void EventDispatcher::close() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->closed = true;
}

void EventDispatcher::drain(std::int64_t deadline) {
  State& s = *state_;
  std::vector<Ending> handed;
  std::unique_lock<std::mutex> lock(s.mu);
  s.closed = true;
  // On the events thread (or a worker) the wait could never end: the later drain does it.
  if (s.drain_over || s.timers.on_timer_thread() || s.core.inside_engine()) return;
  if (s.drain_running) {  // another thread drains: its end is ours
    s.changed.wait(lock, [&] { return !s.drain_running; });
    return;
  }
  s.drain_running = true;
  s.draining = true;
  s.draining_now.store(true);
  s.drain_deadline = deadline;
  // Events that cannot run before the deadline go to the drain sink now: retries due after
  // it, or everything when the core refuses work already.
  if (s.core_refuses) {
    s.take_all_locked(handed);
  } else {
    s.take_delayed_locked(deadline, handed);
  }
  // The deadline is on the engine's clock: a timer says when it has passed.
  if (deadline > s.core.time().now()) {
    s.deadline_timer = s.timers.at(deadline, [&s] {
      std::lock_guard<std::mutex> l(s.mu);
      s.deadline_passed = true;
      s.changed.notify_all();
    });
  }
  if (s.deadline_timer == 0) s.deadline_passed = true;
  lock.unlock();
  s.complete_all(std::move(handed));
  handed.clear();
  lock.lock();
  // A plain success ends without the lock: one that missed `draining_now` does not notify,
  // so the wait also looks again every millisecond.
  while (s.live_locked() != 0 && !s.deadline_passed && !s.core_refuses)
    s.changed.wait_for(lock, std::chrono::milliseconds(1));
  s.drain_over = true;
  if (s.deadline_timer != 0) s.timers.cancel(s.deadline_timer);
  s.deadline_timer = 0;
  // What is left goes to the drain sink; events in flight go there when their outcome comes
  // (unless they succeed).
  s.take_all_locked(handed);
  lock.unlock();
  // An invoke_async is a few microseconds: yielding to one in progress beats waking it.
  while (s.dispatching.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  s.complete_all(std::move(handed));
  lock.lock();
  s.drain_running = false;
  s.changed.notify_all();
}

void EventDispatcher::finish() {
  State& s = *state_;
  std::vector<Ending> handed;
  std::unique_lock<std::mutex> lock(s.mu);
  s.closed = s.draining = s.drain_over = true;
  s.draining_now.store(true);
  if (s.deadline_timer != 0) s.timers.cancel(s.deadline_timer);
  s.deadline_timer = 0;
  s.take_all_locked(handed);
  s.changed.notify_all();
  lock.unlock();
  s.complete_all(std::move(handed));
  // On the events thread or a worker, a dispatch of this very thread may be up the stack.
  if (s.timers.on_timer_thread() || s.core.inside_engine()) return;
  while (s.dispatching.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  // Events in flight end when the core calls back (its shutdown has released every caller);
  // records on their way finish their delivery. Then nothing of ours runs any more.
  lock.lock();
  while (s.live_locked() != 0)
    s.changed.wait_for(lock, std::chrono::milliseconds(1));  // see drain()
}

}  // namespace ember::detail
