// events.hpp — tiny synchronisation helpers so tests wait on events, never on sleeps. Needs
// nothing of ember, so the white-box scheduler tests use it too.
#pragma once

#include <condition_variable>
#include <mutex>

namespace ember::testing {

// A one-shot event: set() once, wait() any number of times.
class Event {
 public:
  void set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return set_; });
  }
  bool is_set() {
    std::lock_guard<std::mutex> lock(mu_);
    return set_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Waits until `pred` holds, re-checking whenever `notify()` is called.
class Condition {
 public:
  void notify() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  template <typename Pred>
  void wait(Pred pred) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, pred);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ember::testing
