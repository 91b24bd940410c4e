// test_support.hpp — shared helpers: an engine fixture parameterised over worker counts, and
// small synchronisation helpers so tests wait on events, never on sleeps.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ember/ember.hpp"
#include "events.hpp"

namespace ember::testing {

// Collects log lines (thread-safe).
class LogCapture {
 public:
  LogSink sink() {
    return [this](const LogRecord& r) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(std::string(r.function) + "|" + std::string(r.request_id) + "|" +
                       std::string(r.message));
      written_.notify_all();
    };
  }
  // Waits until a line containing `needle` has been written.
  void wait_for(std::string_view needle) {
    std::unique_lock<std::mutex> lock(mu_);
    written_.wait(lock, [&] { return contains_locked(needle); });
  }
  // Waits at most `timeout` (real time) for a line containing `needle`; true if one was
  // written. For tests that must also move a ManualClock between waits.
  bool wait_for(std::string_view needle, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return written_.wait_for(lock, timeout, [&] { return contains_locked(needle); });
  }
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  bool contains(std::string_view needle) {
    std::lock_guard<std::mutex> lock(mu_);
    return contains_locked(needle);
  }

 private:
  bool contains_locked(std::string_view needle) {
    for (const auto& l : lines_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::mutex mu_;
  std::condition_variable written_;
  std::vector<std::string> lines_;
};

// True if the error's message contains `text`.
inline bool mentions(const Error& e, std::string_view text) {
  return e.message.find(text) != std::string::npos;
}

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
