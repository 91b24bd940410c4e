// test_support.hpp — shared helpers: an engine fixture parameterised over worker counts, and
// small synchronisation helpers so tests wait on events, never on sleeps.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ember/ember.hpp"

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

// Collects log lines (thread-safe).
class LogCapture {
 public:
  LogSink sink() {
    return [this](const LogRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::string(r.function) + "|" + std::string(r.request_id) + "|" +
                       std::string(r.message));
    };
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  bool contains(std::string_view needle) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

inline BytesHandler echo_handler() {
  return [](Context&, std::string_view in) -> Result<std::string> { return std::string(in); };
}

// Engine fixture parameterised over worker counts 1, 2 and 4, with a manual clock.
class EngineTest : public ::testing::TestWithParam<int> {
 protected:
  EngineOptions options() {
    EngineOptions o;
    o.workers = GetParam();
    o.clock = &clock_;
    o.log_sink = logs_.sink();
    return o;
  }
  Engine& engine() {
    if (!engine_) engine_ = std::make_unique<Engine>(options());
    return *engine_;
  }
  FunctionHandle add(std::string_view name, BytesHandler h, FunctionConfig config = {}) {
    auto fn = engine().register_function(name, config, std::move(h));
    EXPECT_TRUE(fn.has_value()) << (fn ? "" : fn.error().message);
    return fn.value_or(FunctionHandle{});
  }

  ManualClock clock_;
  LogCapture logs_;
  std::unique_ptr<Engine> engine_;
};

#define EMBER_WORKER_COUNTS ::testing::Values(1, 2, 4)

}  // namespace ember::testing
