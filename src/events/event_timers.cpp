#include "events/event_timers.hpp"

#include <vector>

namespace ember::detail {

EventTimers::Id EventTimers::at(std::int64_t when, Callback callback) {
  bool wake = false;
  Id id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return 0;
    id = next_id_++;
    wake = armed_.empty() || std::make_pair(when, id) < armed_.begin()->first;
    armed_.emplace(std::make_pair(when, id), std::move(callback));
    deadline_of_.emplace(id, when);
    if (!started_) {
      started_ = true;
      thread_ = std::thread([this] { loop(); });
      thread_id_.store(thread_.get_id(), std::memory_order_release);
      wake = false;
    }
  }
  if (wake) parker_.unpark();
  return id;
}

bool EventTimers::cancel(Id id) {
  Callback dropped;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deadline_of_.find(id);
  if (it == deadline_of_.end()) return false;
  auto node = armed_.find(std::make_pair(it->second, id));
  dropped = std::move(node->second);
  armed_.erase(node);
  deadline_of_.erase(it);
  return true;
}

void EventTimers::stop() {
  decltype(armed_) dropped;  // destroyed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      stopped_ = true;
      dropped.swap(armed_);
      deadline_of_.clear();
    }
  }
  parker_.unpark();
  // From a callback the thread cannot join itself: the next stop() from elsewhere (the
  // destructor) joins it.
  if (thread_.joinable() && !on_timer_thread()) thread_.join();
}

EventTimers::~EventTimers() {
  stop();
  // Destroyed by one of its own callbacks: nothing can join the thread any more.
  if (thread_.joinable()) thread_.detach();
}

void EventTimers::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_) {
    const std::int64_t now = time_.now();
    if (!armed_.empty() && armed_.begin()->first.first <= now) {
      auto node = armed_.begin();
      Callback callback = std::move(node->second);
      deadline_of_.erase(node->first.second);
      armed_.erase(node);
      lock.unlock();
      callback();
      callback = nullptr;
      lock.lock();
      continue;
    }
    const std::int64_t next = armed_.empty() ? kNever : armed_.begin()->first.first;
    lock.unlock();
    time_.park_until(parker_, next);
    lock.lock();
  }
}

}  // namespace ember::detail
