// session — a stateful plugin: session.count is a member function of Session, so the host
// builds one Session per function instance at init (from InitContext) and deletes it at
// shutdown. Demonstrates instance state instead of globals, logging from init, and keeping
// the host table to log from the destructor, when no invocation is running.

#include <atomic>
#include <cstdio>
#include <string>
#include <string_view>

#include "ember/plugin.hpp"

namespace {

using ember::plugin::Context;
using ember::plugin::InitContext;
using ember::plugin::Result;

struct Session {
  explicit Session(InitContext& init) : host_(&init.host()) {
    init.log("session instance up for " + std::string(init.function_name()) + " v" +
             std::string(init.function_version()));
  }

  ~Session() {
    // No allocation here: a destructor must not throw.
    char line[96];
    const int n = std::snprintf(line, sizeof line, "session instance down after %ld calls",
                                calls_.load(std::memory_order_relaxed));
    if (n > 0) host_->log(nullptr, EMBER_LOG_INFO, line, static_cast<std::size_t>(n));
  }

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // An instance serves one invocation at a time, so a plain counter would do; it stays atomic
  // so that the sample is safe to copy into code that shares state across instances.
  Result<std::string> count(Context&, std::string_view) {
    return std::to_string(calls_.fetch_add(1, std::memory_order_relaxed) + 1);
  }

  const ember_host_api* host_;
  std::atomic<long> calls_{0};
};

}  // namespace

EMBER_PLUGIN(plugin) {
  plugin.name("session").version("1.0.0");
  plugin.function<&Session::count>("session.count");
}
