// Hot reload (src/plugin/plugin_host.cpp, src/core/deploy.cpp): a reload routes the plain names
// to the new version, drains the old one, shuts its instances down and unmaps its shared
// object; a failed reload rolls back; a watched plugin reloads when its file changes; unload
// removes everything. hello.tag tells the builds apart: libhello.so answers "A",
// libhello_b.so "B" (both are plugin "hello").
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ember/plugin.h"
#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Runs `f` when the scope ends, however it ends (a failed ASSERT returns early): unblocks
// threads that would otherwise keep a failing test from ending.
class AtExit {
 public:
  explicit AtExit(std::function<void()> f) : f_(std::move(f)) {}
  ~AtExit() { f_(); }
  AtExit(const AtExit&) = delete;
  AtExit& operator=(const AtExit&) = delete;

 private:
  std::function<void()> f_;
};

// What invoking `name` answered, or "error <code>: <message>".
std::string answer(Engine& engine, std::string_view name) {
  return describe(engine.invoke(name, ""));
}

// Polls `done` until it holds or `timeout` (real time) has passed, for states that signal no
// event (a counter in stats(), a route switching inside another thread's reload). The bound
// is a safety net, not a synchronisation.
template <typename Pred>
bool eventually(Pred done, milliseconds timeout = seconds(30)) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// Replaces `target` with a copy of `source` as deploy tools do: write aside in the same
// directory, then rename over (the name switches atomically; the watch sees IN_MOVED_TO).
void replace_file(const fs::path& target, const std::string& source) {
  const fs::path incoming = target.parent_path() / (".incoming-" + target.filename().string());
  fs::copy_file(source, incoming, fs::copy_options::overwrite_existing);
  fs::rename(incoming, target);
}

// Moves the clock by `step` until the log shows `needle` (the watch thread reads the engine's
// clock every 10 ms while a change is pending). Returns how far the clock moved, or nothing
// after `rounds` steps.
std::optional<absl::Duration> advance_until_logged(ManualClock& clock, LogCapture& logs,
                                                   std::string_view needle, absl::Duration step,
                                                   int rounds = 100) {
  absl::Duration moved;
  for (int i = 0; i < rounds; ++i) {
    clock.advance(step);
    moved += step;
    if (logs.wait_for(needle, milliseconds(100))) return moved;
  }
  return std::nullopt;
}

// The log lines containing `needle`.
std::vector<std::string> lines_with(LogCapture& logs, std::string_view needle) {
  std::vector<std::string> out;
  for (const std::string& l : logs.lines()) {
    if (has(l, needle)) out.push_back(l);
  }
  return out;
}

class ReloadTest : public EngineTest {
 protected:
  void SetUp() override { before_ = mapped_hello_modules(); }

  // Hello modules mapped now that were not when the test began.
  std::vector<std::string> new_hello_modules() {
    std::vector<std::string> out;
    for (const std::string& m : mapped_hello_modules()) {
      if (!before_.contains(m)) out.push_back(m);
    }
    return out;
  }

  // Loads `path` watched: reloaded 200 ms after its file last changed.
  ::testing::AssertionResult load_watched(const std::string& path) {
    return ok(
        engine().load_plugin(path, {.watch = true, .watch_debounce = absl::Milliseconds(200)}));
  }

  using Versions = std::vector<std::string>;
  Versions versions(std::string_view function) {
    auto v = engine().versions(function);
    return v ? *v : Versions{cat("error: ", v.error().message)};
  }

  std::set<std::string> before_;
};

TEST_P(ReloadTest, ReloadRoutesToTheNewVersionAndRetiresTheOld) {
  auto loaded = engine().load_plugin(plugin_file("libhello.so"));
  ASSERT_TRUE(ok(loaded));
  auto tag = engine().function("hello.tag");
  ASSERT_TRUE(ok(tag));
  EXPECT_EQ(answer(engine(), "hello.tag"), "A");
  EXPECT_EQ(versions("hello.tag"), Versions{"1"});

  auto reloaded = engine().reload_plugin("hello", plugin_file("libhello_b.so"));
  ASSERT_TRUE(ok(reloaded));
  EXPECT_EQ(reloaded->name, "hello");
  EXPECT_EQ(reloaded->path, plugin_file("libhello_b.so"));
  const auto published =
      std::find_if(reloaded->functions.begin(), reloaded->functions.end(),
                   [](const PublishedFunction& f) { return f.name == "hello.tag"; });
  ASSERT_NE(published, reloaded->functions.end());
  EXPECT_EQ(published->version, "2");

  EXPECT_EQ(answer(engine(), "hello.tag"), "B");
  EXPECT_EQ(describe(engine().invoke(*tag, "")), "B");  // resolved before the reload: follows it
  EXPECT_EQ(tag->version(), "2");
  EXPECT_EQ(versions("hello.tag"), Versions{"2"});
  // No alias points at version 1: it was unloaded.
  auto old = engine().invoke("hello.tag:1", "");
  EXPECT_EQ(code_of(old), "NotFound") << describe(old);

  const EngineStats s = engine().stats();
  EXPECT_EQ(s.plugin_reloads, 1u);
  EXPECT_EQ(s.plugin_load_failures, 0u);
  EXPECT_EQ(s.plugins_loaded, 1);
  EXPECT_EQ(s.modules_draining, 0);
  EXPECT_EQ(s.modules_pinned, 0u);
  const auto plugins = engine().plugins();
  ASSERT_EQ(plugins.size(), 1u);
  EXPECT_EQ(plugins[0].path, plugin_file("libhello_b.so"));
}

TEST_P(ReloadTest, ReloadUnmapsTheOldSharedObjectAndUnloadUnmapsTheLast) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  EXPECT_EQ(new_hello_modules().size(), 1u);
  for (int i = 0; i < 6; ++i) {
    const char* file = i % 2 == 0 ? "libhello_b.so" : "libhello.so";
    ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file(file)))) << i;
    const auto mapped = new_hello_modules();
    ASSERT_EQ(mapped.size(), 1u) << "after reload " << i << ": "
                                 << ::testing::PrintToString(mapped);
    EXPECT_TRUE(mapped[0].ends_with(cat("-", file, " (deleted)"))) << mapped[0];
  }
  EXPECT_EQ(engine().stats().modules_pinned, 0u);

  ASSERT_TRUE(ok(engine().unload_plugin("hello")));
  EXPECT_EQ(new_hello_modules(), std::vector<std::string>{});
  EXPECT_EQ(engine().stats().modules_pinned, 0u);
}

TEST_P(ReloadTest, FailedReloadRollsBackAndTheOldVersionKeepsServing) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  auto expect_still_a = [&](std::uint64_t failures) {
    EXPECT_EQ(answer(engine(), "hello.tag"), "A");
    EXPECT_EQ(versions("hello.tag"), Versions{"1"});
    EXPECT_EQ(engine().stats().plugin_load_failures, failures);
    EXPECT_EQ(engine().stats().plugin_reloads, 0u);
    EXPECT_EQ(new_hello_modules().size(), 1u);
  };

  auto abi = engine().reload_plugin("hello", plugin_file("libfixture_abi_v2.so"));
  ASSERT_FALSE(abi);
  EXPECT_EQ(code_of(abi), "PluginInvalid");
  EXPECT_TRUE(mentions(abi.error(), "rolled back")) << abi.error().message;
  EXPECT_TRUE(mentions(abi.error(), cat("ABI version ", EMBER_PLUGIN_ABI_VERSION + 1)))
      << abi.error().message;
  EXPECT_TRUE(mentions(abi.error(), cat("ABI version ", EMBER_PLUGIN_ABI_VERSION)))
      << abi.error().message;
  expect_still_a(1);

  const std::string missing = plugin_file("libno_such_plugin.so");
  auto gone = engine().reload_plugin("hello", missing);
  ASSERT_FALSE(gone);
  EXPECT_EQ(code_of(gone), "NotFound");
  EXPECT_TRUE(mentions(gone.error(), "rolled back")) << gone.error().message;
  EXPECT_TRUE(mentions(gone.error(), missing)) << gone.error().message;
  expect_still_a(2);

  auto other = engine().reload_plugin("hello", plugin_file("libsession.so"));
  ASSERT_FALSE(other);
  EXPECT_EQ(code_of(other), "PluginInvalid");
  EXPECT_TRUE(mentions(other.error(), "rolled back")) << other.error().message;
  EXPECT_TRUE(mentions(other.error(), "'session'")) << other.error().message;
  EXPECT_EQ(code_of(engine().function("session.count")), "NotFound");
  expect_still_a(3);

  // Nothing was published by the failures: the next good reload is version 2.
  ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file("libhello_b.so"))));
  EXPECT_EQ(versions("hello.tag"), Versions{"2"});
  EXPECT_EQ(answer(engine(), "hello.tag"), "B");
}

TEST_P(ReloadTest, ReloadReturnsOnlyAfterTheOldVersionsInvocationsFinish) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  auto sleep_fn = engine().function("hello.sleep");
  ASSERT_TRUE(ok(sleep_fn));
  auto sleeper = engine().invoke_future(*sleep_fn, "1000");  // sleeps 1 s of the ManualClock
  ASSERT_TRUE(eventually([&] { return engine().stats().in_flight == 1; }));

  auto reload = std::async(std::launch::async, [&] {
    return engine().reload_plugin("hello", plugin_file("libhello_b.so"));
  });
  // If an assertion fails below, time out the sleeper so that the reload can end.
  AtExit unblock([&] { clock_.advance(absl::Minutes(1)); });
  // Routing moves before the drain: new invokes reach version 2 while version 1 still runs.
  ASSERT_TRUE(eventually([&] { return answer(engine(), "hello.tag") == "B"; }));
  // Nothing can end the reload before the clock moves, so this bounded look cannot flake; it
  // gives a reload that wrongly skips the drain 100 ms to show itself.
  EXPECT_EQ(reload.wait_for(milliseconds(100)), std::future_status::timeout)
      << "reload returned while an invocation of the old version was running";
  EXPECT_EQ(sleeper.wait_for(seconds(0)), std::future_status::timeout);

  // Wake the sleeper. One step normally does; more only if the handler armed its sleep after
  // a step (each step then ends its sleep 1 s later, well before its 3 s timeout).
  for (int step = 0; step < 2 && sleeper.wait_for(seconds(0)) != std::future_status::ready;
       ++step) {
    clock_.advance(absl::Seconds(1));
    sleeper.wait_for(seconds(10));
  }
  ASSERT_EQ(sleeper.wait_for(seconds(0)), std::future_status::ready);
  EXPECT_EQ(describe(sleeper.get()), "slept");  // version 1 was still mapped when it woke
  ASSERT_EQ(reload.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_TRUE(ok(reload.get()));

  EXPECT_EQ(versions("hello.tag"), Versions{"2"});
  EXPECT_EQ(new_hello_modules().size(), 1u);
  const EngineStats s = engine().stats();
  EXPECT_EQ(s.modules_draining, 0);
  EXPECT_EQ(s.modules_pinned, 0u);
  EXPECT_EQ(s.in_flight, 0);
}

// PluginOptions::drain_timeout: "a version still busy then is closed later, when its last
// invocation has returned" (deploy.hpp; EngineStats::modules_draining says the same).
TEST_P(ReloadTest, AVersionStillBusyAtTheDrainTimeoutIsClosedWhenItsLastInvocationReturns) {
  ASSERT_TRUE(
      ok(engine().load_plugin(plugin_file("libhello.so"), {.drain_timeout = absl::Seconds(1)})));
  auto sleeper = engine().invoke_future(engine().function("hello.sleep").value(), "2500");
  ASSERT_TRUE(eventually([&] { return engine().stats().in_flight == 1; }));
  auto reload = std::async(std::launch::async, [&] {
    return engine().reload_plugin("hello", plugin_file("libhello_b.so"));
  });
  AtExit unblock([&] { clock_.advance(absl::Minutes(1)); });  // if an assertion fails below
  ASSERT_TRUE(eventually([&] { return answer(engine(), "hello.tag") == "B"; }));

  // 1 s of the engine's clock after the switch, the reload stops waiting; the sleeper (2.5 s)
  // still runs on version 1.
  const auto moved = advance_until_logged(clock_, logs_, "still has invocations",
                                          absl::Milliseconds(250), /*rounds=*/6);
  ASSERT_TRUE(moved.has_value());
  ASSERT_EQ(reload.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_TRUE(ok(reload.get()));
  EXPECT_EQ(sleeper.wait_for(seconds(0)), std::future_status::timeout);
  EXPECT_EQ(engine().stats().modules_draining, 1);
  EXPECT_EQ(new_hello_modules().size(), 2u);

  clock_.advance(absl::Milliseconds(2500) - *moved);  // to the sleeper's wake time
  for (int step = 0; step < 2 && sleeper.wait_for(seconds(10)) != std::future_status::ready;
       ++step) {
    clock_.advance(absl::Milliseconds(250));  // only if it armed its sleep after a step
  }
  ASSERT_EQ(sleeper.wait_for(seconds(0)), std::future_status::ready);
  EXPECT_EQ(describe(sleeper.get()), "slept");  // version 1 stayed mapped until it returned
  // Its last invocation has returned: version 1 is closed without waiting for another deploy.
  EXPECT_TRUE(eventually([&] { return engine().stats().modules_draining == 0; }, seconds(5)))
      << "version 1 is still draining after its last invocation returned";
  EXPECT_EQ(new_hello_modules().size(), 1u);
  EXPECT_EQ(engine().stats().modules_pinned, 0u);
}

TEST_P(ReloadTest, OldStatefulInstancesShutDownOnlyOnceTheirLastInvocationReturned) {
  // One engine-wide slot: while a hello.sleep holds it, an async session.count of version 1
  // waits in the queue, pinning version 1 across the reload.
  EngineOptions o = options();
  o.concurrency_limit = 1;
  o.min_unreserved_concurrency = 1;
  engine_ = std::make_unique<Engine>(o);
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libsession.so"))));
  EXPECT_TRUE(logs_.contains("session instance up for session.count v1"));
  for (const char* n : {"1", "2", "3"}) EXPECT_EQ(answer(engine(), "session.count"), n);

  auto sleeper = engine().invoke_future(engine().function("hello.sleep").value(), "1000");
  ASSERT_TRUE(eventually([&] { return engine().stats().in_flight == 1; }));
  std::promise<Result<std::string>> queued;
  auto queued_result = queued.get_future();
  ASSERT_TRUE(
      ok(engine().invoke_async(engine().function("session.count").value(), "",
                               [&](Result<std::string> r) { queued.set_value(std::move(r)); },
                               {.max_queue_wait = absl::Minutes(10)})));
  EXPECT_EQ(engine().stats().queued, 1);

  auto reload = std::async(std::launch::async, [&] { return engine().reload_plugin("session"); });
  AtExit unblock([&] { clock_.advance(absl::Minutes(1)); });  // if an assertion fails below
  ASSERT_TRUE(logs_.wait_for("session instance up for session.count v2", milliseconds(30'000)));
  EXPECT_EQ(reload.wait_for(milliseconds(100)), std::future_status::timeout);  // as above
  EXPECT_FALSE(logs_.contains("session instance down"));

  for (int step = 0; step < 2 && sleeper.wait_for(seconds(0)) != std::future_status::ready;
       ++step) {
    clock_.advance(absl::Seconds(1));
    sleeper.wait_for(seconds(10));
  }
  ASSERT_EQ(sleeper.wait_for(seconds(0)), std::future_status::ready);
  EXPECT_EQ(describe(sleeper.get()), "slept");
  ASSERT_EQ(queued_result.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_EQ(describe(queued_result.get()), "4");  // version 1's instance ran it
  ASSERT_EQ(reload.wait_for(seconds(30)), std::future_status::ready);
  EXPECT_TRUE(ok(reload.get()));

  // Version 1's instance went down once, after its fourth and last call, after v2 came up.
  const auto lines = logs_.lines();
  const auto up2 = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return has(l, "session instance up for session.count v2");
  });
  const auto down = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return has(l, "session instance down");
  });
  ASSERT_NE(down, lines.end());
  EXPECT_TRUE(has(*down, "session instance down after 4 calls")) << *down;
  EXPECT_LT(up2, down);
  EXPECT_EQ(lines_with(logs_, "session instance down").size(), 1u);
  EXPECT_EQ(answer(engine(), "session.count"), "1");  // version 2 counts from 1 again
}

// The acceptance test: 100 reloads while two threads invoke without pause.
TEST_P(ReloadTest, HundredReloadsUnderLoadFailNoInvocation) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  auto handle = engine().function("hello.tag");
  ASSERT_TRUE(ok(handle));

  struct Tally {
    std::atomic<long> a{0}, b{0}, problems{0};
    std::mutex mu;
    std::string first_problem;  // guarded by mu
    void record(const Result<std::string>& r) {
      if (r && *r == "A") {
        a.fetch_add(1);
      } else if (r && *r == "B") {
        b.fetch_add(1);
      } else {
        std::lock_guard<std::mutex> lock(mu);
        if (problems.fetch_add(1) == 0) first_problem = describe(r);
      }
    }
  };
  Tally by_name, by_handle;
  std::atomic<bool> stop{false};
  Condition progress;
  std::thread named([&] {  // inline dispatch (hello.tag's default), by name
    while (!stop.load()) {
      by_name.record(engine().invoke("hello.tag", ""));
      progress.notify();
    }
  });
  std::thread pooled([&] {  // pool dispatch, through a handle resolved once
    while (!stop.load()) {
      by_handle.record(engine().invoke(*handle, "", {.dispatch = Dispatch::kPool}));
      progress.notify();
    }
  });
  auto stop_invokers = [&] {
    stop.store(true);
    if (named.joinable()) named.join();
    if (pooled.joinable()) pooled.join();
  };
  AtExit join(stop_invokers);  // also when an assertion fails
  progress.wait([&] { return by_name.a.load() > 0 && by_handle.a.load() > 0; });

  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; i <= 100; ++i) {
    const char* file = i % 2 == 1 ? "libhello_b.so" : "libhello.so";
    ASSERT_TRUE(ok(engine().reload_plugin("hello", plugin_file(file)))) << "reload " << i;
    // Both threads see the first switch (so both answers were seen, whatever the timing).
    if (i == 1) progress.wait([&] { return by_name.b.load() > 0 && by_handle.b.load() > 0; });
  }
  const auto took = std::chrono::steady_clock::now() - start;
  stop_invokers();
  RecordProperty("reload_ms",
                 static_cast<int>(std::chrono::duration_cast<milliseconds>(took).count()));

  for (Tally* t : {&by_name, &by_handle}) {
    std::lock_guard<std::mutex> lock(t->mu);
    EXPECT_EQ(t->problems.load(), 0) << "first: " << t->first_problem;
    EXPECT_GT(t->a.load(), 0);
    EXPECT_GT(t->b.load(), 0);
  }
  EXPECT_EQ(versions("hello.tag"), Versions{"101"});
  EXPECT_EQ(new_hello_modules().size(), 1u);
  const EngineStats s = engine().stats();
  EXPECT_EQ(s.plugin_reloads, 100u);
  EXPECT_EQ(s.modules_pinned, 0u);
  EXPECT_EQ(s.modules_draining, 0);
  EXPECT_EQ(answer(engine(), "hello.tag"), "A");  // the 100th reload was libhello.so
}

TEST_P(ReloadTest, WatchedPluginReloadsWhenItsFileIsReplacedAfterTheDebounce) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.copy(plugin_file("libhello.so"));
  ASSERT_TRUE(load_watched(file));
  EXPECT_EQ(answer(engine(), "hello.tag"), "A");

  replace_file(file, plugin_file("libhello_b.so"));
  const auto moved = advance_until_logged(clock_, logs_, "reloaded after its file changed",
                                          absl::Milliseconds(50));
  ASSERT_TRUE(moved.has_value()) << "no watched reload after 100 steps of 50 ms";
  EXPECT_GE(*moved, absl::Milliseconds(200)) << "reloaded before the debounce passed";
  EXPECT_EQ(answer(engine(), "hello.tag"), "B");
  EXPECT_EQ(versions("hello.tag"), Versions{"2"});
  EXPECT_EQ(engine().stats().plugin_reloads, 1u);
  EXPECT_EQ(new_hello_modules().size(), 1u);
}

TEST_P(ReloadTest, FailedWatchedReloadIsLoggedAndTheOldVersionKeepsServing) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string file = dir.copy(plugin_file("libhello.so"));
  ASSERT_TRUE(load_watched(file));

  replace_file(file, plugin_file("libfixture_abi_v2.so"));
  ASSERT_TRUE(advance_until_logged(clock_, logs_, "rolled back", absl::Milliseconds(250)));
  const auto failed = lines_with(logs_, "rolled back");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_TRUE(has(failed[0], "watch:")) << failed[0];
  EXPECT_TRUE(has(failed[0], cat("ABI version ", EMBER_PLUGIN_ABI_VERSION))) << failed[0];
  EXPECT_EQ(answer(engine(), "hello.tag"), "A");
  EXPECT_EQ(versions("hello.tag"), Versions{"1"});
  EXPECT_EQ(engine().stats().plugin_load_failures, 1u);
  EXPECT_EQ(engine().stats().plugin_reloads, 0u);

  // The watch goes on: a good file after the bad one is picked up.
  replace_file(file, plugin_file("libhello_b.so"));
  ASSERT_TRUE(advance_until_logged(clock_, logs_, "reloaded after its file changed",
                                   absl::Milliseconds(250)));
  EXPECT_EQ(answer(engine(), "hello.tag"), "B");
}

TEST_P(ReloadTest, UnloadRemovesThePluginsFunctionsAndUnknownNamesAreNotFound) {
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello.so"))));
  auto tag = engine().function("hello.tag");
  ASSERT_TRUE(ok(tag));
  ASSERT_TRUE(ok(engine().unload_plugin("hello")));

  auto by_handle = engine().invoke(*tag, "");
  ASSERT_EQ(code_of(by_handle), "NotFound") << describe(by_handle);
  EXPECT_TRUE(mentions(by_handle.error(), "unloaded")) << by_handle.error().message;
  EXPECT_EQ(code_of(engine().invoke("hello.greet", "x")), "NotFound");
  EXPECT_EQ(code_of(engine().function("hello.tag")), "NotFound");
  EXPECT_EQ(code_of(engine().versions("hello.tag")), "NotFound");
  EXPECT_TRUE(engine().plugins().empty());
  EXPECT_EQ(engine().stats().plugins_loaded, 0);
  EXPECT_EQ(new_hello_modules().size(), 0u);

  EXPECT_EQ(code_of(engine().unload_plugin("hello")), "NotFound");
  EXPECT_EQ(code_of(engine().unload_plugin("nope")), "NotFound");
  auto reload = engine().reload_plugin("nope", plugin_file("libhello.so"));
  ASSERT_EQ(code_of(reload), "NotFound");
  EXPECT_TRUE(mentions(reload.error(), "'nope'")) << reload.error().message;

  // The name is free again.
  ASSERT_TRUE(ok(engine().load_plugin(plugin_file("libhello_b.so"))));
  EXPECT_EQ(describe(engine().invoke(*tag, "")), "B");
}

INSTANTIATE_TEST_SUITE_P(Workers, ReloadTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
