// Observability of plugins (src/plugin/plugin_host.cpp start_module, src/core/deploy.cpp
// publish, src/core/invoke.cpp run_task, src/core/observe_hooks.cpp): a load tells lifecycle
// observers of each function's init (kInitStart, then kInitReport with its duration or its
// error); the first invocation of each freshly loaded version is its cold start (it runs on
// the instance the load's init made), counted in cold_starts and reporting the init in its
// kInvokeReport, as is each invocation that makes a new instance because every other one is
// busy; init_duration holds the init of each cold start (one sample per cold start); a
// function's metrics outlive its plugin.
//
// Init durations are on the engine's clock, a ManualClock here: session's instance constructor
// logs through the host while it runs, and the log sink moves the clock then by a set amount,
// so its init takes exactly that long. No sleeps: every figure is exact.
//
// START/END/REPORT lines are the deployer's choice (PluginOptions::report_logs, off here), so
// what a REPORT line would carry is read from kInvokeReport events, which format_log_line's
// REPORT is made from (observe_end fills both from one InvocationReport).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <iterator>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plugin_test_support.hpp"

namespace ember::testing {
namespace {

using Type = LifecycleEventType;

const std::string kHello = plugin_file("libhello.so");
const std::string kCHello = plugin_file("libc_hello.so");
const std::string kSession = plugin_file("libsession.so");

std::string fixture(std::string_view what) {
  return plugin_file("libfixture_" + std::string(what) + ".so");
}

std::int64_t ns(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

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

// Polls `done` until it holds or 30 s (real time) have passed, for a state that signals no
// event (a worker finishing a task nobody waits for). The bound is a safety net.
template <typename Pred>
bool eventually(Pred done) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// A lifecycle event as an observer saw it, with its views copied.
struct Seen {
  Type type = Type::kInvokeStart;
  absl::Time time;
  std::string function;
  std::string version;
  std::string request_id;
  std::int64_t duration_ns = 0;
  std::optional<std::int64_t> init_duration_ns;
  std::optional<ErrorCode> error;
  std::string error_message;
  bool is_log = false;  // not an event but a log line written meanwhile (`log`)
  std::string log;
};

// "platform.initStart session.count 1" and the like: what a timeline comparison shows.
std::string brief(const Seen& s) {
  if (s.is_log) return "log: " + s.log;
  std::string out = cat(lifecycle_event_name(s.type), " ", s.function, " ", s.version);
  if (s.error) out += cat(" error ", error_code_name(*s.error));
  return out;
}

// Records every lifecycle event, and the log lines the test asks it to, in one timeline.
class Recorder final : public LifecycleObserver {
 public:
  void on_event(const LifecycleEvent& e) override {
    Seen s;
    s.type = e.type;
    s.time = e.time;
    s.function = std::string(e.function);
    s.version = std::string(e.version);
    s.request_id = std::string(e.request_id);
    s.duration_ns = e.duration_ns;
    s.init_duration_ns = e.init_duration_ns;
    if (e.error != nullptr) {
      s.error = e.error->code;
      s.error_message = e.error->message;
    }
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(std::move(s));
  }
  void note_log(std::string_view line) {
    Seen s;
    s.is_log = true;
    s.log = std::string(line);
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(std::move(s));
  }

  std::vector<Seen> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  // The events of these types (of `function`, if given), in order.
  std::vector<Seen> of(std::initializer_list<Type> types, std::string_view function = {}) {
    std::vector<Seen> out;
    for (Seen& s : all()) {
      if (s.is_log) continue;
      if (std::find(types.begin(), types.end(), s.type) == types.end()) continue;
      if (!function.empty() && s.function != function) continue;
      out.push_back(std::move(s));
    }
    return out;
  }
  std::vector<std::string> briefs(std::initializer_list<Type> types,
                                  std::string_view function = {}) {
    std::vector<std::string> out;
    for (const Seen& s : of(types, function)) out.push_back(brief(s));
    return out;
  }
  // The kInvokeReports of `function` version `version` that carry an init duration.
  std::vector<Seen> cold_reports(std::string_view function, std::string_view version) {
    std::vector<Seen> out;
    for (Seen& s : of({Type::kInvokeReport}, function)) {
      if (s.version == version && s.init_duration_ns.has_value()) out.push_back(std::move(s));
    }
    return out;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<Seen> seen_;
};

class PluginObserveTest : public EngineTest {
 protected:
  void SetUp() override {
    EngineOptions o = options();
    LogSink capture = o.log_sink;
    // The session instance's constructor logs this while its init runs: moving the clock here
    // makes the init take exactly init_cost_ on the engine's clock.
    o.log_sink = [this, capture](const LogRecord& r) {
      capture(r);
      if (r.kind != LogKind::kHandler && r.kind != LogKind::kEngine) {
        std::lock_guard<std::mutex> lock(platform_mu_);
        platform_lines_.push_back(format_log_line(r, LogFormat::kText));
      }
      if (has(r.message, "session instance up")) {
        recorder_->note_log(r.message);
        clock_.advance(absl::Nanoseconds(init_cost_ns_.load()));
      }
    };
    engine_ = std::make_unique<Engine>(std::move(o));
    // Subscribed before anything loads: the first init is seen too.
    ASSERT_TRUE(ok(engine().subscribe(recorder_)));
  }

  void set_init_cost(absl::Duration d) { init_cost_ns_.store(ns(d)); }

  PluginInfo load(const std::string& path) {
    auto info = engine().load_plugin(path);
    EXPECT_TRUE(ok(info));
    return info.value_or(PluginInfo{});
  }

  std::string answer(std::string_view name, std::string_view payload = "",
                     Dispatch dispatch = Dispatch::kInline) {
    return describe(engine().invoke(name, payload, {.dispatch = dispatch}));
  }

  // The metrics of `function` now (all zero, and a failure, if it has none). An invocation is
  // in them once its invoke() returned or its callback runs, on either dispatch (see
  // PoolInvocationIsCountedBeforeItsCallerHasItsAnswer).
  FunctionMetrics metrics_of(std::string_view function) {
    const MetricsSnapshot m = engine().metrics();
    if (const FunctionMetrics* f = m.function(function)) return *f;
    ADD_FAILURE() << "no metrics for " << function;
    return FunctionMetrics{};
  }

  std::vector<std::string> platform_lines() {
    std::lock_guard<std::mutex> lock(platform_mu_);
    return platform_lines_;
  }

  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
  std::atomic<std::int64_t> init_cost_ns_{0};
  std::mutex platform_mu_;
  std::vector<std::string> platform_lines_;  // START/END/REPORT, as format_log_line's text
};

Dispatch alternate(std::uint64_t i) { return i % 2 == 0 ? Dispatch::kInline : Dispatch::kPool; }

// ---- Init events ----

TEST_P(PluginObserveTest, LoadEmitsInitStartThenInitReportForEachFunctionWithInitAtVersionOne) {
  const PluginInfo session = load(kSession);
  ASSERT_EQ(session.functions.size(), 1u);
  EXPECT_EQ(session.functions[0].version, "1");
  load(kCHello);

  // In order, per function that has an init: its start, the init itself running (session's
  // constructor logs), its report. c_hello's other functions have no init and no init events.
  std::vector<std::string> timeline;
  for (const Seen& s : recorder_->all()) timeline.push_back(brief(s));
  EXPECT_EQ(timeline, (std::vector<std::string>{
                          "platform.initStart session.count 1",
                          "log: session instance up for session.count v1",
                          "platform.initReport session.count 1",
                          "platform.initStart c.state 1",
                          "platform.initReport c.state 1",
                      }));
  for (const Seen& s : recorder_->of({Type::kInitReport})) {
    EXPECT_FALSE(s.error.has_value()) << s.function << ": " << s.error_message;
    // The clock moves only when the test says (here: never), so no init took any time.
    EXPECT_EQ(s.duration_ns, 0) << s.function;
  }
  for (std::string_view fn : {"c.echo", "c.upper", "c.who"}) {
    EXPECT_TRUE(recorder_->of({Type::kInitStart, Type::kInitReport}, fn).empty()) << fn;
  }
}

TEST_P(PluginObserveTest, InitDurationIsTheEngineClockTimeTheInitTookAndAgreesEverywhere) {
  set_init_cost(absl::Milliseconds(7));
  load(kSession);

  const auto init = recorder_->of({Type::kInitStart, Type::kInitReport}, "session.count");
  ASSERT_EQ(init.size(), 2u);
  EXPECT_EQ(init[1].duration_ns, ns(absl::Milliseconds(7)));
  EXPECT_EQ(init[1].time - init[0].time, absl::Milliseconds(7));

  // The init goes into the histogram with the cold start that paid for it, not at the load.
  FunctionMetrics m = metrics_of("session.count");
  EXPECT_EQ(m.cold_starts, 0u);
  EXPECT_EQ(m.init_duration.count, 0u);

  EXPECT_EQ(answer("session.count"), "1");
  const auto cold = recorder_->cold_reports("session.count", "1");
  ASSERT_EQ(cold.size(), 1u);
  EXPECT_EQ(cold[0].init_duration_ns, init[1].duration_ns);
  m = metrics_of("session.count");
  EXPECT_EQ(m.cold_starts, 1u);
  EXPECT_EQ(m.init_duration.count, 1u);
  EXPECT_EQ(m.init_duration.sum_ns, static_cast<std::uint64_t>(init[1].duration_ns));
  EXPECT_EQ(m.init_duration.max_ns, static_cast<std::uint64_t>(init[1].duration_ns));
  EXPECT_EQ(m.invocations, 1u);
  EXPECT_EQ(engine().metrics().total.init_duration.sum_ns, m.init_duration.sum_ns);
}

TEST_P(PluginObserveTest, FailedInitEmitsAnInitReportWithTheErrorAndTheLoadFails) {
  struct Case {
    std::string path;
    std::string function;
    std::string reason;
  };
  for (const Case& c : {Case{fixture("init_throws"), "init.throws", "config file missing"},
                        Case{fixture("init_fails"), "init.fails", "database unreachable"}}) {
    SCOPED_TRACE(c.path);
    recorder_->clear();
    auto r = engine().load_plugin(c.path);
    ASSERT_FALSE(r.has_value()) << c.path << " loaded";
    EXPECT_EQ(r.error().code, ErrorCode::kPluginInvalid) << r.error().message;

    EXPECT_EQ(recorder_->briefs({Type::kInitStart, Type::kInitReport}),
              (std::vector<std::string>{
                  cat("platform.initStart ", c.function, " 1"),
                  cat("platform.initReport ", c.function, " 1 error PluginInvalid")}));
    const auto report = recorder_->of({Type::kInitReport}, c.function);
    ASSERT_EQ(report.size(), 1u);
    // The event's error is the one the load returns.
    EXPECT_EQ(report[0].error_message, r.error().message);
    EXPECT_TRUE(has(report[0].error_message, c.reason)) << report[0].error_message;
    EXPECT_GE(report[0].duration_ns, 0);
    // Nothing was published: no metrics, no cold start, no init in the histograms.
    const MetricsSnapshot m = engine().metrics();
    EXPECT_EQ(m.function(c.function), nullptr);
    EXPECT_EQ(m.total.cold_starts, 0u);
    EXPECT_EQ(m.total.init_duration.count, 0u);
  }
  // A good plugin loads after them and its versions still start at 1.
  recorder_->clear();
  load(kSession);
  EXPECT_EQ(recorder_->briefs({Type::kInitStart, Type::kInitReport}),
            (std::vector<std::string>{"platform.initStart session.count 1",
                                      "platform.initReport session.count 1"}));
}

// ---- Cold starts ----

TEST_P(PluginObserveTest, FirstInvocationOfAVersionIsItsColdStartAndOnlyItsReportCarriesTheInit) {
  set_init_cost(absl::Milliseconds(5));
  load(kSession);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(answer("session.count", "", alternate(i)), cat(i + 1));

  const auto reports = recorder_->of({Type::kInvokeReport}, "session.count");
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0].init_duration_ns, ns(absl::Milliseconds(5)));
  std::set<std::string> request_ids;
  for (std::size_t i = 0; i < reports.size(); ++i) {
    EXPECT_EQ(reports[i].version, "1");
    if (i > 0) {
      EXPECT_FALSE(reports[i].init_duration_ns.has_value()) << "report " << i;
    }
    request_ids.insert(reports[i].request_id);
  }
  EXPECT_EQ(request_ids.size(), 4u);

  const FunctionMetrics m = metrics_of("session.count");
  EXPECT_EQ(m.invocations, 4u);
  EXPECT_EQ(m.errors, 0u);
  EXPECT_EQ(m.cold_starts, 1u);
  EXPECT_EQ(m.init_duration.count, 1u);
  EXPECT_EQ(m.init_duration.sum_ns, static_cast<std::uint64_t>(ns(absl::Milliseconds(5))));
}

// An async invoke's callback runs on the worker, after the handler and its kInvokeReport:
// by then the invocation should be in the metrics, as an inline invocation is when invoke()
// returns. (A sync pool invoke has the same gap, but only as a race.)
TEST_P(PluginObserveTest, PoolInvocationIsCountedBeforeItsCallerHasItsAnswer) {
  load(kSession);
  auto fn = engine().function("session.count");
  ASSERT_TRUE(ok(fn));
  struct Heard {
    std::string answer;
    FunctionMetrics metrics;
    std::size_t cold_reports = 0;
  };
  std::promise<Heard> heard;
  ASSERT_TRUE(ok(engine().invoke_async(*fn, "", [&](Result<std::string> r) {
    Heard h;
    h.answer = describe(r);
    const MetricsSnapshot m = engine().metrics();
    if (const FunctionMetrics* f = m.function("session.count")) h.metrics = *f;
    h.cold_reports = recorder_->cold_reports("session.count", "1").size();
    heard.set_value(std::move(h));
  })));
  const Heard h = heard.get_future().get();
  EXPECT_EQ(h.answer, "1");
  EXPECT_EQ(h.cold_reports, 1u);  // the event already says it was the cold start
  EXPECT_EQ(h.metrics.invocations, 1u);
  EXPECT_EQ(h.metrics.duration.count, 1u);
  EXPECT_EQ(h.metrics.cold_starts, 1u);
  EXPECT_EQ(h.metrics.concurrent_executions, 0);
}

TEST_P(PluginObserveTest, FirstInvocationOnThePoolIsTheColdStartToo) {
  set_init_cost(absl::Milliseconds(3));
  load(kSession);
  EXPECT_EQ(answer("session.count", "", Dispatch::kPool), "1");
  EXPECT_EQ(answer("session.count", "", Dispatch::kInline), "2");
  const auto reports = recorder_->of({Type::kInvokeReport}, "session.count");
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].init_duration_ns, ns(absl::Milliseconds(3)));
  EXPECT_FALSE(reports[1].init_duration_ns.has_value());
  EXPECT_EQ(metrics_of("session.count").cold_starts, 1u);
}

// A function without init has a cold start too (the first invocation of its version), which
// reports an init of zero (registry.hpp: "0 if it has none"), and no init events.
TEST_P(PluginObserveTest, FunctionWithoutInitHasAColdStartReportingAZeroInit) {
  load(kHello);
  EXPECT_EQ(answer("hello.greet", "a"), "hello, a");
  EXPECT_EQ(answer("hello.greet", "b", Dispatch::kPool), "hello, b");
  EXPECT_TRUE(recorder_->of({Type::kInitStart, Type::kInitReport}).empty());
  const auto reports = recorder_->of({Type::kInvokeReport}, "hello.greet");
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].init_duration_ns, std::optional<std::int64_t>(0));
  EXPECT_FALSE(reports[1].init_duration_ns.has_value());
  const FunctionMetrics m = metrics_of("hello.greet");
  EXPECT_EQ(m.cold_starts, 1u);
  EXPECT_EQ(m.init_duration.count, 1u);
  EXPECT_EQ(m.init_duration.sum_ns, 0u);
}

TEST_P(PluginObserveTest, ReloadPublishesVersionTwoWhoseFirstInvocationIsAgainAColdStart) {
  set_init_cost(absl::Milliseconds(7));
  load(kSession);
  EXPECT_EQ(answer("session.count"), "1");
  EXPECT_EQ(answer("session.count", "", Dispatch::kPool), "2");

  set_init_cost(absl::Milliseconds(11));
  auto reloaded = engine().reload_plugin("session");
  ASSERT_TRUE(ok(reloaded));
  ASSERT_EQ(reloaded->functions.size(), 1u);
  EXPECT_EQ(reloaded->functions[0].version, "2");
  const auto init = recorder_->of({Type::kInitReport}, "session.count");
  ASSERT_EQ(init.size(), 2u);
  EXPECT_EQ(init[1].version, "2");
  EXPECT_EQ(init[1].duration_ns, ns(absl::Milliseconds(11)));

  // The new instance counts from 1: version 2 answers.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(answer("session.count", "", alternate(i + 1)), cat(i + 1));

  const auto v1 = recorder_->cold_reports("session.count", "1");
  const auto v2 = recorder_->cold_reports("session.count", "2");
  ASSERT_EQ(v1.size(), 1u);
  ASSERT_EQ(v2.size(), 1u);
  EXPECT_EQ(v1[0].init_duration_ns, ns(absl::Milliseconds(7)));
  EXPECT_EQ(v2[0].init_duration_ns, ns(absl::Milliseconds(11)));
  // The cold start of version 2 is its first invocation.
  const auto reports = recorder_->of({Type::kInvokeReport}, "session.count");
  ASSERT_EQ(reports.size(), 5u);
  EXPECT_EQ(reports[2].request_id, v2[0].request_id);

  const FunctionMetrics m = metrics_of("session.count");
  EXPECT_EQ(m.invocations, 5u);
  EXPECT_EQ(m.cold_starts, 2u);
  EXPECT_EQ(m.init_duration.count, 2u);
  EXPECT_EQ(m.init_duration.sum_ns, static_cast<std::uint64_t>(ns(absl::Milliseconds(18))));
  EXPECT_EQ(m.init_duration.max_ns, static_cast<std::uint64_t>(ns(absl::Milliseconds(11))));
}

TEST_P(PluginObserveTest, ConcurrentInvocationsCountExactlyOneColdStartPerInstance) {
  constexpr int kThreads = 8;
  constexpr int kEach = 25;
  load(kSession);
  std::size_t all_instances = 0;
  std::size_t cold_reports = 0;
  for (const std::string version : {"1", "2"}) {
    SCOPED_TRACE("version " + version);
    if (version == "2") {
      ASSERT_TRUE(ok(engine().reload_plugin("session")));
    }
    // Every thread starts invoking at once, so several race to be the version's first, and
    // overlapping invocations need instances of their own (cold starts).
    std::latch go(kThreads);
    std::vector<std::vector<std::string>> answers(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        go.arrive_and_wait();
        for (int i = 0; i < kEach; ++i) {
          answers[t].push_back(answer("session.count", "", alternate(t + i)));
        }
      });
    }
    for (std::thread& t : threads) t.join();
    // The instances init made for this version: the load's, and one per cold start. One is
    // made only when every other is busy, so there are at most as many as callers.
    std::size_t instances = 0;
    for (const std::string& line : logs_.lines()) {
      if (has(line, "session instance up for session.count v" + version)) ++instances;
    }
    EXPECT_GE(instances, 1u);
    EXPECT_LE(instances, std::size_t{kThreads});
    // Each instance counted the invocations it served, 1..k, and every invocation was served
    // by one: "1" once per instance, no answer more often than a smaller one, kThreads*kEach in
    // all.
    std::map<int, std::size_t> got;
    std::size_t total = 0;
    for (const auto& a : answers) {
      for (const std::string& answer : a) {
        ++got[std::stoi(answer)];
        ++total;
      }
    }
    EXPECT_EQ(total, std::size_t{kThreads * kEach});
    EXPECT_EQ(got.begin()->first, 1);
    EXPECT_EQ(got[1], instances);
    for (auto it = std::next(got.begin()); it != got.end(); ++it) {
      EXPECT_EQ(it->first, std::prev(it)->first + 1) << "a gap before " << it->first;
      EXPECT_LE(it->second, std::prev(it)->second) << it->first;
    }
    // Each instance's first invocation is a cold start reporting its init: the load-made
    // instance's reports the load's init, the others their own.
    const std::size_t cold = recorder_->cold_reports("session.count", version).size();
    EXPECT_EQ(cold, instances);
    cold_reports += cold;
    all_instances += instances;
  }
  const auto reports = recorder_->of({Type::kInvokeReport}, "session.count");
  EXPECT_EQ(reports.size(), std::size_t{2 * kThreads * kEach});
  const FunctionMetrics m = metrics_of("session.count");
  EXPECT_EQ(m.invocations, std::uint64_t{2 * kThreads * kEach});
  EXPECT_EQ(m.cold_starts, cold_reports);
  EXPECT_EQ(m.init_duration.count, all_instances);
}

// A pool invocation whose caller was released at the deadline before any worker started it
// never runs its handler: it paid for no init and no kInvokeReport (or REPORT line) is written
// for it. The version's cold start, and the init duration in a report, belong to the first
// invocation that runs.
TEST_P(PluginObserveTest, InvocationReleasedBeforeItStartedDoesNotTakeTheColdStart) {
  load(kHello);
  // Every worker thread blocked (not a fiber suspended: the thread itself waits).
  const int workers = GetParam();
  Event unblock;
  std::atomic<int> blocked{0};
  Condition blocked_changed;
  auto blocker = engine().register_function(
      "blocker", {.timeout = absl::Hours(1), .dispatch = Dispatch::kPool},
      [&](Context&, std::string_view) -> Result<std::string> {
        blocked.fetch_add(1);
        blocked_changed.notify();
        unblock.wait();
        return std::string("done");
      });
  ASSERT_TRUE(ok(blocker));
  std::future<Result<std::string>> first;  // destroyed after the workers are released
  AtExit release_workers([&] { unblock.set(); });
  std::vector<std::future<Result<std::string>>> blockers;
  for (int i = 0; i < workers; ++i) blockers.push_back(engine().invoke_future(*blocker, ""));
  blocked_changed.wait([&] { return blocked.load() == workers; });

  // hello.greet waits in the queue; the clock passes its 3 s deadline and its caller goes.
  first = std::async(std::launch::async, [&] {
    return engine().invoke("hello.greet", "queued", {.dispatch = Dispatch::kPool});
  });
  bool released = false;
  for (int i = 0; i < 100 && !released; ++i) {
    clock_.advance(absl::Seconds(1));
    released = first.wait_for(std::chrono::milliseconds(100)) == std::future_status::ready;
  }
  ASSERT_TRUE(released) << "the caller was not released at its deadline";
  EXPECT_EQ(code_of(first.get()), "Timeout");

  // A worker takes the task, sees the caller gone, and ends it without running it (nothing
  // waits for that: the caller is gone, so watch the function's executions drop to zero).
  unblock.set();
  for (auto& b : blockers) EXPECT_EQ(describe(b.get()), "done");
  ASSERT_TRUE(eventually([&] { return metrics_of("hello.greet").concurrent_executions == 0; }));
  FunctionMetrics m = metrics_of("hello.greet");
  EXPECT_EQ(m.invocations, 1u);
  EXPECT_EQ(m.errors, 1u);
  EXPECT_EQ(m.timeouts, 1u);
  EXPECT_EQ(m.duration.count, 0u);
  EXPECT_EQ(m.cold_starts, 0u) << "an invocation that never ran took the cold start";
  EXPECT_TRUE(recorder_->of({Type::kInvokeStart, Type::kInvokeReport}, "hello.greet").empty());

  // The first invocation that runs is the cold start, and its report says what init it paid.
  EXPECT_EQ(answer("hello.greet", "ran"), "hello, ran");
  EXPECT_EQ(recorder_->cold_reports("hello.greet", "1").size(), 1u)
      << "no report of version 1 carries its init duration";
  m = metrics_of("hello.greet");
  EXPECT_EQ(m.invocations, 2u);
  EXPECT_EQ(m.cold_starts, 1u);
}

// ---- Counts ----

TEST_P(PluginObserveTest, MetricsOutliveUnloadAndALoadAfterItIsTheNextVersionsColdStart) {
  set_init_cost(absl::Milliseconds(2));
  load(kSession);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(answer("session.count", "", alternate(i)), cat(i + 1));
  ASSERT_TRUE(ok(engine().unload_plugin("session")));
  EXPECT_EQ(code_of(engine().invoke("session.count", "")), "NotFound");

  // Functions are kept by name: their counters stay, and a refused invoke adds nothing.
  FunctionMetrics m = metrics_of("session.count");
  EXPECT_EQ(m.invocations, 3u);
  EXPECT_EQ(m.cold_starts, 1u);
  EXPECT_EQ(m.init_duration.count, 1u);
  EXPECT_EQ(m.init_duration.sum_ns, static_cast<std::uint64_t>(ns(absl::Milliseconds(2))));
  EXPECT_EQ(m.concurrent_executions, 0);

  // Loaded again, it continues the function's versions: version 2, a new cold start.
  recorder_->clear();
  set_init_cost(absl::Milliseconds(4));
  const PluginInfo again = load(kSession);
  ASSERT_EQ(again.functions.size(), 1u);
  EXPECT_EQ(again.functions[0].version, "2");
  EXPECT_EQ(recorder_->briefs({Type::kInitStart, Type::kInitReport}),
            (std::vector<std::string>{"platform.initStart session.count 2",
                                      "platform.initReport session.count 2"}));
  EXPECT_EQ(answer("session.count"), "1");
  const auto cold = recorder_->cold_reports("session.count", "2");
  ASSERT_EQ(cold.size(), 1u);
  EXPECT_EQ(cold[0].init_duration_ns, ns(absl::Milliseconds(4)));
  m = metrics_of("session.count");
  EXPECT_EQ(m.invocations, 4u);
  EXPECT_EQ(m.cold_starts, 2u);
  EXPECT_EQ(m.init_duration.count, 2u);
  EXPECT_EQ(m.init_duration.sum_ns, static_cast<std::uint64_t>(ns(absl::Milliseconds(6))));
}

TEST_P(PluginObserveTest, InvocationAndErrorCountsOfPluginFunctionsAreExact) {
  load(kHello);
  load(kCHello);
  struct Calls {
    std::string function;
    std::string payload;
    int times;
  };
  const std::vector<Calls> calls = {
      {"c.echo", "e", 5},      {"c.upper", "u", 3},     {"c.who", "", 2},
      {"c.state", "", 4},      {"hello.greet", "g", 3}, {"hello.fail", "", 2},
      {"hello.fail", "ok", 1}, {"hello.throw", "", 2},
  };
  std::uint64_t n = 0;
  for (const Calls& c : calls) {
    for (int i = 0; i < c.times; ++i) {
      (void)engine().invoke(c.function, c.payload, {.dispatch = alternate(n++)});
    }
  }
  EXPECT_EQ(answer("c.state"), "5");  // the instance saw the 4 calls above and this one
  ++n;

  struct Want {
    std::string function;
    std::uint64_t invocations;
    std::uint64_t errors;
  };
  for (const Want& w :
       {Want{"c.echo", 5, 0}, Want{"c.upper", 3, 0}, Want{"c.who", 2, 0}, Want{"c.state", 5, 0},
        Want{"hello.greet", 3, 0}, Want{"hello.fail", 3, 2}, Want{"hello.throw", 2, 2}}) {
    SCOPED_TRACE(w.function);
    const FunctionMetrics m = metrics_of(w.function);
    EXPECT_EQ(m.invocations, w.invocations);
    EXPECT_EQ(m.errors, w.errors);
    EXPECT_EQ(m.duration.count, w.invocations);
    EXPECT_EQ(m.cold_starts, 1u);
    EXPECT_EQ(m.init_duration.count, 1u);
    EXPECT_EQ(m.throttles(), 0u);
    EXPECT_EQ(recorder_->of({Type::kInvokeReport}, w.function).size(), w.invocations);
  }
  // Functions never invoked have had no cold start, though their version was initialised.
  const FunctionMetrics tag = metrics_of("hello.tag");
  EXPECT_EQ(tag.invocations, 0u);
  EXPECT_EQ(tag.cold_starts, 0u);
  EXPECT_EQ(tag.init_duration.count, 0u);

  const MetricsSnapshot all = engine().metrics();
  EXPECT_EQ(all.total.errors, 4u);
  EXPECT_EQ(all.total.cold_starts, 7u);
  // One init sample per cold start.
  EXPECT_EQ(all.total.init_duration.count, 7u);
}

// START/END/REPORT are the deployer's choice (PluginOptions::report_logs): the cold start's
// REPORT carries the version's Init Duration, later ones do not.
TEST_P(PluginObserveTest, ReportLogsOfAPluginShowInitDurationOnTheColdStartOnly) {
  set_init_cost(absl::Microseconds(3250));
  ASSERT_TRUE(ok(engine().load_plugin(kSession, {.report_logs = true})));
  load(kCHello);  // without report_logs
  EXPECT_EQ(answer("session.count"), "1");
  EXPECT_EQ(answer("session.count", "", Dispatch::kPool), "2");
  EXPECT_EQ(answer("c.echo", "x"), "x");
  const auto reports = recorder_->of({Type::kInvokeReport}, "session.count");
  ASSERT_EQ(reports.size(), 2u);
  const std::vector<std::string> lines = platform_lines();
  ASSERT_EQ(lines.size(), 6u);  // nothing for c.echo
  for (int i = 0; i < 2; ++i) {
    const std::string& rid = reports[static_cast<std::size_t>(i)].request_id;
    EXPECT_EQ(lines[3 * i], "START RequestId: " + rid + " Version: 1");
    EXPECT_EQ(lines[3 * i + 1], "END RequestId: " + rid);
    // The handler takes no time on the ManualClock.
    EXPECT_EQ(lines[3 * i + 2].substr(0, lines[3 * i + 2].find("\tMax Memory Used")),
              "REPORT RequestId: " + rid +
                  "\tDuration: 0.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB");
  }
  EXPECT_TRUE(lines[2].ends_with(" MB\tInit Duration: 3.25 ms")) << lines[2];
  EXPECT_EQ(lines[5].find("Init Duration"), std::string::npos) << lines[5];
}

INSTANTIATE_TEST_SUITE_P(Workers, PluginObserveTest, EMBER_WORKER_COUNTS);

}  // namespace
}  // namespace ember::testing
