// Engine::enqueue: Lambda's "Event" invocation. Every rule that involves time runs on a
// ManualClock: a test moves time only once the engine has reached the state it means to time
// (a retry armed, a queue paused), which it learns from event_stats() or from an event a
// handler or a destination sets — never from a sleep.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"

namespace ember::testing {
namespace {

// Polls `pred` (a real-time bound only turns a hang into a failure).
template <typename Pred>
bool eventually(Pred pred) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

// Records handed to a destination or sink (thread-safe).
class Records {
 public:
  EventCallback callback() {
    return [this](const EventRecord& r) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.push_back(r);
        threads_.push_back(std::this_thread::get_id());
      }
      changed_.notify();
    };
  }
  Destination destination() { return {.callback = callback()}; }
  std::vector<EventRecord> wait(std::size_t n) {
    changed_.wait([&] {
      std::lock_guard<std::mutex> lock(mu_);
      return all_.size() >= n;
    });
    return all();
  }
  std::vector<EventRecord> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }
  std::vector<std::thread::id> threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

 private:
  std::mutex mu_;
  std::vector<EventRecord> all_;
  std::vector<std::thread::id> threads_;  // that delivered each record
  Condition changed_;
};

// What a handler saw on one run.
struct Seen {
  std::string id;
  int attempt = 0;
  absl::Time at;  // the engine's time when it ran
  absl::Time enqueued_at;
  std::string source;
  int depth = -1;
  std::string payload;
};

class EnqueueTest : public ::testing::Test {
 protected:
  void TearDown() override {
    gate_.set();
    if (!engine_) return;
    // The destructor drains on the engine's clock: keep time moving until it is done.
    std::atomic<bool> done{false};
    std::thread destroy([&] {
      engine_.reset();
      done.store(true);
    });
    while (!done.load()) {
      clock_.advance(absl::Seconds(1));
      std::this_thread::yield();
    }
    destroy.join();
  }
  Engine& engine(EngineOptions o = {}) {
    if (!engine_) {
      o.workers = 2;
      o.clock = &clock_;
      o.log_sink = logs_.sink();
      engine_ = std::make_unique<Engine>(o);
    }
    return *engine_;
  }
  void add(std::string_view name, BytesHandler h, FunctionConfig config = {}) {
    ASSERT_TRUE(engine().register_function(name, config, std::move(h)).has_value());
  }
  void configure(std::string_view name, EventConfig config) {
    auto ok = engine().set_event_config(name, std::move(config));
    ASSERT_TRUE(ok.has_value()) << ok.error().message;
  }
  std::string enqueue(std::string_view name, std::string_view payload,
                      const EventOptions& options = {}) {
    auto id = engine().enqueue(name, payload, options);
    EXPECT_TRUE(id.has_value()) << id.error().message;
    return id.value_or("");
  }
  template <typename Pred>
  void wait_stats(Pred pred) {
    ASSERT_TRUE(eventually([&] { return pred(engine().event_stats()); }));
  }
  // A handler that records each run and answers by `outcome(run)`.
  BytesHandler recording(std::function<Result<std::string>(Context&, const Seen&)> outcome) {
    return [this, outcome](Context& ctx, std::string_view in) -> Result<std::string> {
      Seen run;
      const EventInfo* e = ctx.event();
      if (e != nullptr) {
        run = Seen{std::string(e->id),     e->attempt,  clock_.now(),   e->enqueued_at,
                   std::string(e->source), ctx.depth(), std::string(in)};
      }
      {
        std::lock_guard<std::mutex> lock(runs_mu_);
        runs_.push_back(run);
      }
      return outcome(ctx, run);
    };
  }
  std::vector<Seen> runs() {
    std::lock_guard<std::mutex> lock(runs_mu_);
    return runs_;
  }
  static Result<std::string> boom(Context&, const Seen&) {
    return fail(ErrorCode::kHandlerFailed, "boom");
  }

  // What the engine's threads touch outlives the engine (declared before it).
  ManualClock clock_;
  LogCapture logs_;
  Records successes_, failures_, dead_, sink_, drained_;
  Event gate_;     // handlers that block wait on it; TearDown opens it
  Event started_;  // set by a handler that got somewhere
  std::mutex runs_mu_;
  std::vector<Seen> runs_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EnqueueTest, ReturnsIdAtOnceAndRuns) {
  add("echo", recording([](Context&, const Seen&) -> Result<std::string> { return "ok"; }));
  const absl::Time t0 = clock_.now();
  const std::string id = enqueue("echo", "{}");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');  // UUID-shaped, version 4
  wait_stats([](const EventStats& s) { return s.succeeded == 1; });
  ASSERT_EQ(runs().size(), 1u);
  const Seen run = runs()[0];
  EXPECT_EQ(run.id, id);
  EXPECT_EQ(run.attempt, 1);
  EXPECT_EQ(run.source, "enqueue");
  EXPECT_EQ(run.enqueued_at, t0);
  const EventStats s = engine().event_stats();
  EXPECT_EQ(s.enqueued, 1u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.in_flight + s.queued + s.delayed, 0);
  EXPECT_NE(enqueue("echo", "{}"), id);
}

TEST_F(EnqueueTest, DefaultRetriesTwiceAfterOneThenTwoMinutesWithAStableId) {
  add("flaky", recording(boom));
  configure("flaky", {.on_failure = failures_.destination()});
  const absl::Time t0 = clock_.now();
  const std::string id = enqueue("flaky", "x", {.event_id = "order-42"});
  EXPECT_EQ(id, "order-42");
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  clock_.advance(absl::Minutes(1));
  wait_stats([](const EventStats& s) { return s.retries == 1 && s.delayed == 1; });
  clock_.advance(absl::Minutes(2));
  const EventRecord r = failures_.wait(1)[0];
  const std::vector<Seen> seen = runs();
  ASSERT_EQ(seen.size(), 3u);
  const absl::Time expected[] = {t0, t0 + absl::Minutes(1), t0 + absl::Minutes(3)};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i].id, "order-42");
    EXPECT_EQ(seen[i].attempt, i + 1);
    EXPECT_EQ(seen[i].at, expected[i]) << "attempt " << i + 1;
    EXPECT_EQ(seen[i].enqueued_at, t0);
  }
  EXPECT_EQ(r.condition, EventCondition::kRetriesExhausted);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.last_attempt_at, t0 + absl::Minutes(3));
  EXPECT_EQ(engine().event_stats().retries, 2u);
}

TEST_F(EnqueueTest, ZeroRetriesEndsAfterTheFirstAttempt) {
  add("once", recording(boom));
  configure("once", {.max_retries = 0, .on_failure = failures_.destination()});
  enqueue("once", "x");
  const EventRecord r = failures_.wait(1)[0];
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(runs().size(), 1u);
  EXPECT_EQ(engine().event_stats().delayed, 0);
}

TEST_F(EnqueueTest, FiveRetriesFollowTheCustomBackoffAndRepeatItsLastEntry) {
  add("flaky", recording(boom));
  configure("flaky", {.max_retries = 5,
                      .retry_backoff = {absl::Seconds(1), absl::Seconds(2), absl::Seconds(5)},
                      .on_failure = failures_.destination()});
  const absl::Time t0 = clock_.now();
  enqueue("flaky", "x");
  const int waits[] = {1, 2, 5, 5, 5};
  for (std::uint64_t i = 0; i < 5; ++i) {
    wait_stats([&](const EventStats& s) { return s.retries == i && s.delayed == 1; });
    clock_.advance(absl::Seconds(waits[i]));
  }
  EXPECT_EQ(failures_.wait(1)[0].attempts, 6);
  const int at[] = {0, 1, 3, 8, 13, 18};
  const std::vector<Seen> seen = runs();
  ASSERT_EQ(seen.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(seen[i].at, t0 + absl::Seconds(at[i])) << i;
}

TEST_F(EnqueueTest, EventOptionsOverrideTheFunctionsRetries) {
  add("flaky", recording(boom));
  configure("flaky", {.max_retries = 0,
                      .retry_backoff = {absl::Seconds(1)},
                      .on_failure = failures_.destination()});
  enqueue("flaky", "x", {.max_retries = 1});
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  clock_.advance(absl::Seconds(1));
  EXPECT_EQ(failures_.wait(1)[0].attempts, 2);
}

TEST_F(EnqueueTest, TimeoutsAreRetried) {
  add("slow", recording([this](Context& ctx, const Seen& run) -> Result<std::string> {
        if (run.attempt > 1) return "done";
        started_.set();
        auto slept = ctx.sleep_for(absl::Seconds(2));  // past the 1 s timeout
        return slept ? Result<std::string>("late") : tl::unexpected<Error>(slept.error());
      }),
      {.timeout = absl::Seconds(1)});
  configure("slow", {.on_success = successes_.destination()});
  const absl::Time t0 = clock_.now();
  enqueue("slow", "x");
  started_.wait();
  clock_.advance(absl::Seconds(1));
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  clock_.advance(absl::Minutes(1));
  const EventRecord r = successes_.wait(1)[0];
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.response, "done");
  EXPECT_EQ(r.last_attempt_at, t0 + absl::Seconds(61));
}

// Reserved concurrency 1: a blocked handler holds the only slot.
TEST_F(EnqueueTest, ThrottledEventGoesBackToTheQueueAndResumesWhenASlotFrees) {
  add("one", recording([this](Context&, const Seen& run) -> Result<std::string> {
        if (run.attempt == 1 && run.id == "first") gate_.wait();
        return run.id;
      }),
      {.reserved_concurrency = 1, .dispatch = Dispatch::kPool});
  configure("one", {.on_success = successes_.destination()});
  const absl::Time t0 = clock_.now();
  enqueue("one", "x", {.event_id = "first"});
  ASSERT_TRUE(eventually([&] { return runs().size() == 1; }));
  enqueue("one", "x", {.event_id = "second"});  // finds no slot
  enqueue("one", "x", {.event_id = "third"});   // the queue is paused: waits behind it
  EventStats s = engine().event_stats();
  EXPECT_EQ(s.throttles, 1u);
  EXPECT_EQ(s.queued, 2);
  EXPECT_EQ(s.retries, 0u);
  gate_.set();  // "first" ends: the queue goes on at once, not after the 1 s pause
  const std::vector<EventRecord> done = successes_.wait(3);
  std::map<std::string, EventRecord> by_id;
  for (const auto& r : done) by_id[r.event_id] = r;
  EXPECT_EQ(by_id["second"].attempts, 1);
  EXPECT_EQ(by_id["second"].throttles, 1);
  EXPECT_EQ(by_id["second"].last_attempt_at, t0);
  wait_stats([](const EventStats& now) { return now.succeeded == 3; });
  EXPECT_EQ(engine().event_stats().retries, 0u);
  const std::vector<Seen> seen = runs();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].id, "second");  // the throttled event kept its place
  EXPECT_EQ(seen[2].id, "third");
}

// A plain invoke holds the slot: its end does not resume the events queue, only the pause does.
TEST_F(EnqueueTest, ThrottlePauseDoublesWhileThrottledInARow) {
  add("one", recording([this](Context&, const Seen& run) -> Result<std::string> {
        if (run.id.empty()) gate_.wait();  // the plain invoke
        return "ok";
      }),
      {.reserved_concurrency = 1});
  add("sentinel", recording(boom));
  configure("one", {.on_success = successes_.destination()});
  configure("sentinel", {.max_retries = 1, .retry_backoff = {absl::Seconds(2)}});
  const absl::Time t0 = clock_.now();
  auto fn = engine().function("one").value();
  ASSERT_TRUE(engine().invoke_async(fn, "hold", [](Result<std::string>) {}).has_value());
  ASSERT_TRUE(eventually([&] { return runs().size() == 1; }));
  enqueue("one", "x", {.event_id = "waiting"});  // throttle 1: paused until t0 + 1 s
  enqueue("sentinel", "x");                      // fails at t0: its retry is due at t0 + 2 s
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  clock_.advance(absl::Seconds(1));  // throttle 2: paused 2 s, until t0 + 3 s
  wait_stats([](const EventStats& s) { return s.throttles == 2; });
  gate_.set();
  ASSERT_TRUE(eventually([&] { return engine().stats().in_flight == 0; }));
  clock_.advance(absl::Seconds(1));  // t0 + 2 s: the sentinel runs; "waiting" does not yet
  wait_stats([](const EventStats& s) { return s.failed == 1; });
  clock_.advance(absl::Seconds(1));
  const EventRecord r = successes_.wait(1)[0];
  EXPECT_EQ(r.throttles, 2);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.last_attempt_at, t0 + absl::Seconds(3));
}

TEST_F(EnqueueTest, MaxEventAgeEndsAnEventAtItsLimitInsteadOfALaterRetry) {
  add("flaky", recording(boom));
  configure("flaky", {.max_event_age = absl::Seconds(90), .on_failure = failures_.destination()});
  const absl::Time t0 = clock_.now();
  enqueue("flaky", "x");
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  clock_.advance(absl::Minutes(1));  // attempt 2; attempt 3 would be at t0 + 3 min
  wait_stats([](const EventStats& s) { return s.retries == 1 && s.delayed == 1; });
  clock_.advance(absl::Seconds(30));
  const EventRecord r = failures_.wait(1)[0];
  EXPECT_EQ(r.condition, EventCondition::kEventAgeExceeded);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(r.finished_at, t0 + absl::Seconds(90));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->message, "boom");  // the last attempt's error
}

TEST_F(EnqueueTest, QueuedEventOlderThanItsMaxAgeIsNotRun) {
  add("one", recording([this](Context&, const Seen&) -> Result<std::string> {
        gate_.wait();
        return "ok";
      }),
      {.reserved_concurrency = 1});
  configure("one", {.on_failure = failures_.destination()});
  auto fn = engine().function("one").value();
  ASSERT_TRUE(engine().invoke_async(fn, "hold", [](Result<std::string>) {}).has_value());
  ASSERT_TRUE(eventually([&] { return runs().size() == 1; }));
  enqueue("one", "x", {.max_event_age = absl::Seconds(1)});  // throttled: paused 1 s
  clock_.advance(absl::Seconds(2));
  const EventRecord r = failures_.wait(1)[0];
  EXPECT_EQ(r.condition, EventCondition::kEventAgeExceeded);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_EQ(r.throttles, 1);
  EXPECT_EQ(r.last_attempt_at, absl::InfinitePast());
  ASSERT_TRUE(r.error.has_value());
  EXPECT_TRUE(mentions(*r.error, "max_event_age"));
}

TEST_F(EnqueueTest, OnSuccessAndOnFailureCallbacksGetTheRecord) {
  add("ok", recording([](Context&, const Seen&) -> Result<std::string> { return "pong"; }));
  add("bad", recording(boom));
  configure("ok", {.on_success = successes_.destination()});
  configure("bad", {.max_retries = 0, .on_failure = failures_.destination()});
  const absl::Time t0 = clock_.now();
  const std::string ok_id = enqueue("ok", "ping");
  const std::string bad_id = enqueue("bad", "pang");
  const EventRecord s = successes_.wait(1)[0];
  EXPECT_EQ(s.event_id, ok_id);
  EXPECT_EQ(s.function, "ok");
  EXPECT_EQ(s.version, "$LATEST");
  EXPECT_EQ(s.source, "enqueue");
  EXPECT_EQ(s.payload, "ping");
  EXPECT_EQ(s.condition, EventCondition::kSuccess);
  EXPECT_EQ(s.response, "pong");
  EXPECT_FALSE(s.error.has_value());
  EXPECT_EQ(s.attempts, 1);
  EXPECT_EQ(s.enqueued_at, t0);
  EXPECT_EQ(s.last_attempt_at, t0);
  EXPECT_EQ(s.finished_at, t0);
  const EventRecord f = failures_.wait(1)[0];
  EXPECT_EQ(f.event_id, bad_id);
  EXPECT_EQ(f.payload, "pang");
  EXPECT_EQ(f.condition, EventCondition::kRetriesExhausted);
  ASSERT_TRUE(f.error.has_value());
  EXPECT_EQ(f.error->code, ErrorCode::kHandlerFailed);
  EXPECT_TRUE(f.response.empty());
  wait_stats([](const EventStats& st) { return st.to_on_success == 1 && st.to_on_failure == 1; });
}

TEST_F(EnqueueTest, FunctionDestinationGetsLambdasRecordJson) {
  add("bad", recording(boom));
  add("ok", recording([](Context&, const Seen&) -> Result<std::string> { return "pong"; }));
  add("audit", recording([](Context&, const Seen&) -> Result<std::string> { return ""; }));
  configure("bad", {.max_retries = 0, .on_failure = {.function = "audit"}});
  configure("ok", {.on_success = {.function = "audit"}});
  auto audited = [&](std::size_t n) {
    return eventually([&] {
      std::vector<Seen> got;
      for (const Seen& r : runs()) {
        if (r.source == "destination") got.push_back(r);
      }
      return got.size() == n;
    });
  };
  const std::string bad_id = enqueue("bad", "pang");
  ASSERT_TRUE(audited(1));
  const std::string ok_id = enqueue("ok", "ping");
  ASSERT_TRUE(audited(2));
  std::vector<std::string> got;  // the audit function's payloads
  for (const Seen& r : runs()) {
    if (r.source == "destination") got.push_back(r.payload);
  }
  const auto failure = nlohmann::json::parse(got[0]);
  EXPECT_EQ(failure["version"], "1.0");
  EXPECT_EQ(failure["requestContext"]["requestId"], bad_id);
  EXPECT_EQ(failure["requestContext"]["condition"], "RetriesExhausted");
  EXPECT_EQ(failure["requestContext"]["approximateInvokeCount"], 1);
  EXPECT_EQ(failure["requestPayload"], "pang");
  EXPECT_EQ(failure["responseContext"]["functionError"], "Unhandled");
  const auto error = nlohmann::json::parse(failure["responsePayload"].get<std::string>());
  EXPECT_EQ(error["errorMessage"], "boom");
  const auto success = nlohmann::json::parse(got[1]);
  EXPECT_EQ(success["requestContext"]["requestId"], ok_id);
  EXPECT_EQ(success["requestContext"]["condition"], "Success");
  EXPECT_EQ(success["requestPayload"], "ping");
  EXPECT_EQ(success["responsePayload"], "pong");
  EXPECT_EQ(success["responseContext"]["statusCode"], 200);
  EXPECT_EQ(success["responseContext"]["executedVersion"], "$LATEST");
}

TEST_F(EnqueueTest, FailuresGoToTheDeadLetterDestinationElseTheSinkElseTheLog) {
  for (const char* name : {"own", "sink", "log"}) add(name, recording(boom));
  configure("own", {.max_retries = 0, .dead_letter = dead_.destination()});
  configure("sink", {.max_retries = 0});
  configure("log", {.max_retries = 0});
  engine().set_event_sinks({.dead_letter = sink_.callback()});
  const std::string own_id = enqueue("own", "1");
  EXPECT_EQ(dead_.wait(1)[0].event_id, own_id);
  const std::string sink_id = enqueue("sink", "2");
  EXPECT_EQ(sink_.wait(1)[0].event_id, sink_id);
  engine().set_event_sinks({});
  const std::string log_id = enqueue("log", "3");
  logs_.wait_for("event " + log_id + " of function 'log' dead-lettered (RetriesExhausted): {");
  EXPECT_EQ(dead_.size(), 1u);
  EXPECT_EQ(sink_.size(), 1u);
  wait_stats([](const EventStats& s) { return s.dead_lettered == 3 && s.failed == 3; });
}

TEST_F(EnqueueTest, ThrowingDestinationFallsThroughToTheDeadLetterPath) {
  add("bad", recording(boom));
  configure("bad", {.max_retries = 0, .on_failure = {.callback = [](const EventRecord&) {
                                        throw std::runtime_error("disk full");
                                      }}});
  engine().set_event_sinks({.dead_letter = dead_.callback()});
  const std::string id = enqueue("bad", "x");
  EXPECT_EQ(dead_.wait(1)[0].event_id, id);
  wait_stats([](const EventStats& s) { return s.dead_lettered == 1; });
  EventStats s = engine().event_stats();
  EXPECT_EQ(s.to_on_failure, 0u);
  EXPECT_EQ(s.delivery_failures, 1u);
  EXPECT_TRUE(logs_.contains("on-failure destination failed: the callback threw: disk full"));
  // A dead-letter sink that throws: counted, and the record still reaches the log.
  engine().set_event_sinks(
      {.dead_letter = [](const EventRecord&) { throw std::runtime_error("sink down"); }});
  const std::string id2 = enqueue("bad", "y");
  logs_.wait_for("event " + id2 + " of function 'bad' dead-lettered (RetriesExhausted)");
  wait_stats([](const EventStats& now) { return now.dead_lettered == 2; });
  EXPECT_EQ(engine().event_stats().delivery_failures, 3u);
  const MetricsSnapshot m = engine().metrics();
  const FunctionMetrics* f = m.function("bad");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->destination_delivery_failures, 2u);
  EXPECT_EQ(f->dead_letter_errors, 1u);
  EXPECT_EQ(f->async_events_dropped, 2u);
}

TEST_F(EnqueueTest, FullQueueIsRefusedAtOnceAndCounted) {
  add("slow", recording([this](Context&, const Seen&) -> Result<std::string> {
        gate_.wait();
        return "ok";
      }));
  configure("slow", {.max_queued_events = 3});
  int accepted = 0, refused = 0;
  for (int i = 0; i < 5; ++i) {
    auto id = engine().enqueue("slow", "x");
    if (id) {
      ++accepted;
    } else {
      ++refused;
      EXPECT_EQ(id.error().code, ErrorCode::kQueueFull);
      EXPECT_TRUE(mentions(id.error(), "'slow'"));
      EXPECT_TRUE(mentions(id.error(), "max_queued_events = 3"));
    }
  }
  EXPECT_EQ(accepted, 3);
  EXPECT_EQ(refused, 2);
  EventStats s = engine().event_stats();
  EXPECT_EQ(s.enqueued, 3u);
  EXPECT_EQ(s.refused, 2u);
  gate_.set();
  wait_stats([](const EventStats& now) { return now.succeeded == 3; });
  EXPECT_TRUE(engine().enqueue("slow", "x").has_value());  // room again
}

TEST_F(EnqueueTest, BadOptionsAndConfigNameTheField) {
  add("fn", echo_handler());
  add("other", echo_handler());
  configure("fn", {.max_retries = 7});
  auto bad_option = [&](const EventOptions& o, std::string_view field) {
    auto id = engine().enqueue("fn", "x", o);
    ASSERT_FALSE(id.has_value()) << field;
    EXPECT_EQ(id.error().code, ErrorCode::kInvalidArgument) << field;
    EXPECT_TRUE(mentions(id.error(), field)) << id.error().message;
    EXPECT_TRUE(mentions(id.error(), "'fn'")) << id.error().message;
  };
  bad_option({.event_id = std::string(129, 'a')}, "EventOptions.event_id");
  bad_option({.event_id = "bad\nid"}, "EventOptions.event_id");
  bad_option({.max_retries = 101}, "EventOptions.max_retries");
  bad_option({.max_retries = -1}, "EventOptions.max_retries");
  bad_option({.max_event_age = absl::Milliseconds(999)}, "EventOptions.max_event_age");
  EXPECT_EQ(engine().event_stats().refused, 5u);
  EXPECT_TRUE(engine().enqueue("fn", "x", {.event_id = std::string(128, '~')}).has_value());

  auto bad_config = [&](EventConfig c, std::string_view field,
                        ErrorCode code = ErrorCode::kInvalidArgument) {
    auto ok = engine().set_event_config("fn", std::move(c));
    ASSERT_FALSE(ok.has_value()) << field;
    EXPECT_EQ(ok.error().code, code) << field;
    EXPECT_TRUE(mentions(ok.error(), field)) << ok.error().message;
    EXPECT_TRUE(mentions(ok.error(), "'fn'")) << ok.error().message;
  };
  bad_config({.max_retries = 101}, "EventConfig.max_retries");
  bad_config({.retry_backoff = {}}, "EventConfig.retry_backoff");
  bad_config({.retry_backoff = {absl::Seconds(1), absl::Seconds(-1)}}, "retry_backoff[1]");
  bad_config({.max_event_age = absl::Milliseconds(500)}, "EventConfig.max_event_age");
  bad_config({.max_queued_events = 0}, "EventConfig.max_queued_events");
  bad_config({.throttle_backoff = absl::ZeroDuration()}, "EventConfig.throttle_backoff");
  bad_config({.throttle_backoff = absl::Seconds(2), .max_throttle_backoff = absl::Seconds(1)},
             "EventConfig.max_throttle_backoff");
  bad_config({.on_failure = {.function = "other", .callback = [](const EventRecord&) {}}},
             "EventConfig.on_failure");
  bad_config({.on_success = {.function = "fn"}}, "EventConfig.on_success.function");
  bad_config({.dead_letter = {.function = "nowhere"}}, "EventConfig.dead_letter.function",
             ErrorCode::kNotFound);
  EXPECT_EQ(engine().event_config("fn").value().max_retries, 7);  // unchanged
  auto qualified = engine().set_event_config("fn:live", {});
  ASSERT_FALSE(qualified.has_value());
  EXPECT_EQ(qualified.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(qualified.error(), "'fn:live'"));
  EXPECT_TRUE(engine().set_event_config("fn", {.on_failure = {.function = "other"}}).has_value());
}

TEST_F(EnqueueTest, UnknownFunctionIsNotFound) {
  add("fn", echo_handler());
  auto id = engine().enqueue("nope", "x");
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(mentions(id.error(), "'nope'"));
  EXPECT_EQ(engine().event_stats().refused, 1u);
  EXPECT_EQ(engine().set_event_config("nope", {}).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().event_config("nope").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(engine().event_config("fn").value().max_retries, 2);  // Lambda's defaults
  EXPECT_EQ(engine().event_config("fn").value().max_event_age, absl::Hours(6));
}

TEST_F(EnqueueTest, PayloadOverTheAsyncLimitIsRefused) {
  engine({.max_async_payload = 16});
  add("fn", echo_handler());
  auto id = engine().enqueue("fn", std::string(17, 'x'));
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_TRUE(mentions(id.error(), "'fn'"));
  EXPECT_TRUE(mentions(id.error(), "max_async_payload (16 bytes)"));
  EXPECT_TRUE(engine().enqueue("fn", std::string(16, 'x')).has_value());
}

// A typed function refuses a bytes invoke: the event can never run.
TEST_F(EnqueueTest, EventThatCanNeverRunIsRejectedOnTheEventsThread) {
  auto typed = engine().register_function<int, int>(
      "typed", {}, [](Context&, const int& x) -> Result<int> { return x; });
  ASSERT_TRUE(typed.has_value());
  engine().set_event_sinks({.dead_letter = dead_.callback()});
  enqueue("typed", "1");
  const EventRecord r = dead_.wait(1)[0];
  EXPECT_EQ(r.condition, EventCondition::kRejected);
  EXPECT_EQ(r.attempts, 0);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::kInvalidArgument);
  EXPECT_NE(dead_.threads()[0], std::this_thread::get_id());
}

// Each event is its own invocation: not a child of the handler that enqueued it, nor of the
// attempt whose end let it run (16 of those in a row would hit the recursion limit).
TEST_F(EnqueueTest, EventsRunAtDepthZeroWhoeverQueuedThem) {
  add("leaf", recording([](Context&, const Seen&) -> Result<std::string> { return "ok"; }),
      {.reserved_concurrency = 1});
  add("parent", [&](Context& ctx, std::string_view) -> Result<std::string> {
    for (int i = 0; i < 20; ++i) {
      if (auto id = ctx.engine().enqueue("leaf", "x"); !id) return tl::unexpected(id.error());
    }
    return "";
  });
  enqueue("parent", "x");
  wait_stats([](const EventStats& s) { return s.succeeded == 21; });
  const std::vector<Seen> seen = runs();
  ASSERT_EQ(seen.size(), 20u);
  for (const Seen& r : seen) EXPECT_EQ(r.depth, 0);
  EXPECT_EQ(engine().event_stats().failed, 0u);
}

TEST_F(EnqueueTest, ShutdownDrainRunsQueuedEventsAndHandsDelayedRetriesToTheDrainSink) {
  add("work", recording([this](Context&, const Seen& run) -> Result<std::string> {
        if (run.id == "w1") gate_.wait();
        return run.id;
      }),
      {.reserved_concurrency = 1, .dispatch = Dispatch::kPool});
  add("flaky", recording(boom));
  configure("work", {.on_success = successes_.destination()});
  engine().set_event_sinks({.drain = drained_.callback()});
  enqueue("flaky", "x", {.event_id = "f"});  // fails; its retry is due in a minute
  wait_stats([](const EventStats& s) { return s.delayed == 1; });
  enqueue("work", "x", {.event_id = "w1"});
  ASSERT_TRUE(eventually([&] { return runs().size() == 2; }));
  enqueue("work", "x", {.event_id = "w2"});  // throttled
  enqueue("work", "x", {.event_id = "w3"});
  std::thread shutdown([&] { engine().shutdown(absl::Seconds(10)); });
  const EventRecord f = drained_.wait(1)[0];  // at once: its retry is past the deadline
  EXPECT_EQ(f.event_id, "f");
  EXPECT_EQ(f.condition, EventCondition::kShutdown);
  EXPECT_EQ(f.attempts, 1);
  auto late = engine().enqueue("work", "x");
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kShuttingDown);
  gate_.set();  // the drain goes on: w1 ends, w2 and w3 run
  shutdown.join();
  std::set<std::string> ids;
  for (const auto& r : successes_.all()) ids.insert(r.event_id);
  EXPECT_EQ(ids, (std::set<std::string>{"w1", "w2", "w3"}));
  EXPECT_EQ(drained_.all().size(), 1u);
  const EventStats s = engine().event_stats();
  EXPECT_EQ(s.enqueued, 4u);
  EXPECT_EQ(s.succeeded, 3u);
  EXPECT_EQ(s.drained, 1u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.refused, 1u);
  EXPECT_EQ(s.queued + s.delayed + s.in_flight, 0);
}

TEST_F(EnqueueTest, DrainDeadlineHandsQueuedAndRunningEventsToTheDrainSink) {
  add("one", recording([this](Context&, const Seen&) -> Result<std::string> {
        gate_.wait();
        return "ok";
      }),
      {.reserved_concurrency = 1, .dispatch = Dispatch::kPool});
  engine().set_event_sinks({.drain = drained_.callback()});
  enqueue("one", "x", {.event_id = "running"});
  ASSERT_TRUE(eventually([&] { return runs().size() == 1; }));
  enqueue("one", "x", {.event_id = "queued"});
  std::atomic<bool> done{false};
  std::thread shutdown([&] {
    engine().shutdown(absl::Seconds(10));
    done.store(true);
  });
  // Nothing can end before the deadline: the drain waits for the engine's clock.
  ASSERT_TRUE(eventually([&] {
    clock_.advance(absl::Seconds(1));
    return done.load();
  }));
  shutdown.join();
  std::set<std::string> ids;
  for (const auto& r : drained_.all()) {
    ids.insert(r.event_id);
    EXPECT_EQ(r.condition, EventCondition::kShutdown);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"running", "queued"}));
  EXPECT_EQ(engine().event_stats().drained, 2u);
}

TEST_F(EnqueueTest, EnqueueAfterShutdownIsRefused) {
  add("fn", echo_handler());
  engine().shutdown(absl::ZeroDuration());
  auto id = engine().enqueue("fn", "x");
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code, ErrorCode::kShuttingDown);
  EXPECT_TRUE(mentions(id.error(), "'fn'"));
  EXPECT_EQ(engine().event_stats().refused, 1u);
}

// Many events with random failures, timeouts and throttles: each ends exactly once, in exactly
// one of its success, the on-failure destination or the dead-letter sink.
TEST_F(EnqueueTest, EveryEventEndsExactlyOnceUnderRandomFailures) {
  constexpr int kEvents = 2000;
  enum Outcome { kOk, kFail, kTimeout };
  std::mt19937 rng(20240611);
  std::vector<std::vector<Outcome>> plan(kEvents);  // per event, per attempt
  std::vector<int> max_retries(kEvents);
  for (int i = 0; i < kEvents; ++i) {
    max_retries[i] = static_cast<int>(rng() % 4);
    for (int a = 0; a <= max_retries[i]; ++a) plan[i].push_back(static_cast<Outcome>(rng() % 3));
  }
  auto handler = [&](Context& ctx, std::string_view) -> Result<std::string> {
    const EventInfo* e = ctx.event();
    const auto i = static_cast<std::size_t>(std::stoi(std::string(e->id.substr(1))));
    const auto attempt = static_cast<std::size_t>(e->attempt);
    if (attempt < 1 || attempt > plan[i].size()) return "unplanned";  // caught below
    switch (plan[i][attempt - 1]) {
      case kOk:
        return "ok";
      case kFail:
        return fail(ErrorCode::kHandlerFailed, "planned");
      case kTimeout: {
        auto slept = ctx.sleep_for(absl::Seconds(5));
        return slept ? Result<std::string>("late") : tl::unexpected(slept.error());
      }
    }
    return "";
  };
  const FunctionConfig small{.timeout = absl::Seconds(1), .reserved_concurrency = 3};
  add("a", handler, small);  // has an on-failure destination
  add("b", handler, small);  // dead-letters to the engine's sink
  // No event may age out, however far the clock runs ahead of a starved engine (the steps
  // below are not synchronised with it): then every failed first attempt is retried for sure,
  // and the exactly-once check does not depend on timing.
  const EventConfig base{.retry_backoff = {absl::Seconds(1), absl::Seconds(2)},
                         .max_event_age = absl::Hours(24 * 365 * 100),
                         .max_throttle_backoff = absl::Seconds(4)};
  EventConfig a = base;
  a.on_success = successes_.destination();
  a.on_failure = failures_.destination();
  EventConfig b = base;
  b.on_success = successes_.destination();
  configure("a", a);
  configure("b", b);
  engine().set_event_sinks({.dead_letter = dead_.callback()});
  for (int i = 0; i < kEvents; ++i) {
    enqueue(i % 2 == 0 ? "a" : "b", "x",
            {.event_id = "e" + std::to_string(i), .max_retries = max_retries[i]});
  }
  auto ended = [&] { return successes_.size() + failures_.size() + dead_.size(); };
  // Time moves in steps; between steps the engine gets a moment to act on what is due. The
  // bound is real time, a safety net only: under a loaded sanitizer run a step count is not.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(4);
  while (ended() < kEvents && std::chrono::steady_clock::now() < give_up) {
    clock_.advance(absl::Milliseconds(500));
    const EventStats before = engine().event_stats();
    for (int k = 0; k < 200; ++k) {
      const EventStats now = engine().event_stats();
      if (now.in_flight == 0 || now.succeeded + now.failed != before.succeeded + before.failed)
        break;
      std::this_thread::yield();
    }
  }
  ASSERT_EQ(ended(), static_cast<std::size_t>(kEvents));
  wait_stats([](const EventStats& now) { return now.succeeded + now.failed == kEvents; });
  std::map<std::string, int> where;  // id -> how many places it reached
  for (Records* list : {&successes_, &failures_, &dead_}) {
    for (const EventRecord& r : list->all()) {
      ++where[r.event_id];
      const int i = std::stoi(r.event_id.substr(1));
      EXPECT_LE(r.attempts, max_retries[i] + 1) << r.event_id;
      if (list != &successes_) {
        EXPECT_EQ(i % 2, list == &failures_ ? 0 : 1) << r.event_id;  // "a" or "b"
      }
    }
  }
  ASSERT_EQ(where.size(), static_cast<std::size_t>(kEvents));
  for (const auto& [id, n] : where) EXPECT_EQ(n, 1) << id;
  const EventStats s = engine().event_stats();
  EXPECT_EQ(s.enqueued, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(s.succeeded, successes_.size());
  EXPECT_EQ(s.to_on_success, successes_.size());
  EXPECT_EQ(s.to_on_failure, failures_.size());
  EXPECT_EQ(s.dead_lettered, dead_.size());
  EXPECT_EQ(s.failed, failures_.size() + dead_.size());
  EXPECT_EQ(s.queued + s.delayed + s.in_flight, 0);
  EXPECT_EQ(s.drained + s.delivery_failures, 0u);
  EXPECT_GT(s.throttles, 0u);
  EXPECT_GT(s.retries, 0u);
}

}  // namespace
}  // namespace ember::testing
