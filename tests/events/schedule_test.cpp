// Tests of Engine::schedule (src/events/schedules.cpp): rate() and cron() fires on a ManualClock,
// the Scheduled Event payload, the missed-run and overlap policies, cancel, list and shutdown.
// Every wait is on an event (a handler run, a log line) or a bounded poll of schedules(); a
// fire that must not happen is ruled out with a barrier: a later fire of another schedule,
// which the events thread can only reach after the earlier timer's callback has returned.
#include <absl/time/civil_time.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"
#include "ember/ember.hpp"

namespace {

using ember::ErrorCode;
using ember::MissedRuns;
using ember::ScheduleInfo;
using ember::ScheduleOptions;
using Json = nlohmann::json;

absl::Time Utc(int year, int month, int day, int hour, int minute, int second = 0) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone());
}

const absl::Time kStart = Utc(2026, 3, 2, 10, 0);  // a Monday, on a five-minute mark

// Long enough that a handler held on a gate never times out while the clock moves hours.
const ember::FunctionConfig kPatient{.timeout = absl::Hours(1000)};

// What a handler saw on one run.
struct Seen {
  std::string event_id;
  int attempt = 0;
  absl::Time enqueued_at;
  std::string source;
  Json payload;
  ember::ClientContext client_context;
};

class ScheduleTest : public ::testing::Test {
 protected:
  ~ScheduleTest() override {
    gate_.set();  // a handler still held would keep the engine's drain waiting
  }

  ember::Engine& engine() {
    if (!engine_) {
      engine_ = std::make_unique<ember::Engine>(
          ember::EngineOptions{.workers = 2, .clock = &clock_, .log_sink = logs_.sink()});
    }
    return *engine_;
  }

  // Registers `name`, recording every run; a run whose number (1-based, per function) is in
  // `held` waits for gate_ first; `fail` makes every run fail.
  void add_function(const std::string& name, std::vector<int> held = {}, bool fail = false) {
    auto fn = engine().register_function(
        name, kPatient,
        [this, name, held, fail](ember::Context& ctx,
                                 std::string_view payload) -> ember::Result<std::string> {
          Seen run;
          run.payload = Json::parse(payload, nullptr, /*allow_exceptions=*/false);
          run.client_context = ctx.client_context();
          if (const ember::EventInfo* e = ctx.event()) {
            run.event_id = std::string(e->id);
            run.attempt = e->attempt;
            run.enqueued_at = e->enqueued_at;
            run.source = std::string(e->source);
          }
          int number = 0;
          {
            std::lock_guard<std::mutex> lock(mu_);
            auto& runs = runs_[name];
            runs.push_back(std::move(run));
            number = static_cast<int>(runs.size());
            ran_.notify_all();
          }
          if (std::find(held.begin(), held.end(), number) != held.end()) gate_.wait();
          if (fail) return ember::fail(ErrorCode::kHandlerFailed, "scheduled job failed");
          return std::string("done");
        });
    ASSERT_TRUE(fn.has_value()) << fn.error().message;
  }

  // Waits (bounded, in real time) until `function` has run `n` times; returns its runs.
  std::vector<Seen> wait_runs(const std::string& function, std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    const bool ok =
        ran_.wait_for(lock, std::chrono::seconds(20), [&] { return runs_[function].size() >= n; });
    EXPECT_TRUE(ok) << function << " ran " << runs_[function].size() << " times, waited for " << n;
    std::vector<Seen> out = runs_[function];
    if (out.size() < n) out.resize(n);  // failed above; callers may index up to n - 1
    return out;
  }
  // Waits until `n` events have ended. A fire time that comes before the previous fire's event
  // has ended is skipped (allow_overlap is off by default), and the handler's return is not
  // yet the end: wait for this before moving the clock to the next fire. The dispatcher ends
  // an event (the schedule hears of it) before it counts it in event_stats().
  void wait_ended(std::uint64_t n) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    auto ended = [&] {
      const ember::EventStats s = engine().event_stats();
      return s.succeeded + s.failed;
    };
    while (ended() < n && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    EXPECT_EQ(ended(), n);
  }
  std::vector<Seen> runs(const std::string& function) {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_[function];
  }

  ScheduleInfo info(std::string_view name) {
    for (ScheduleInfo& s : engine().schedules()) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no schedule " << name;
    return {};
  }
  // Polls schedules() until `pred` holds for `name` (bounded): for effects no handler sees,
  // such as a skipped fire.
  ScheduleInfo wait_info(std::string_view name,
                         const std::function<bool(const ScheduleInfo&)>& pred) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    ScheduleInfo s = info(name);
    while (!pred(s) && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::yield();
      s = info(name);
    }
    EXPECT_TRUE(pred(s)) << name << ": fired " << s.fired << ", skipped_missed " << s.skipped_missed
                         << ", skipped_overlap " << s.skipped_overlap;
    return s;
  }

  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const ScheduleInfo& s : engine().schedules()) out.push_back(s.name);
    return out;
  }

  ember::ManualClock clock_{kStart};
  ember::testing::LogCapture logs_;
  ember::testing::Event gate_;
  std::mutex mu_;
  std::condition_variable ran_;
  std::map<std::string, std::vector<Seen>> runs_;
  std::unique_ptr<ember::Engine> engine_;  // last: destroyed first, while the rest still lives
};

std::vector<absl::Time> EnqueuedAt(const std::vector<Seen>& runs) {
  std::vector<absl::Time> out;
  for (const Seen& r : runs) out.push_back(r.enqueued_at);
  return out;
}

// ---- firing ------------------------------------------------------------------------------

TEST_F(ScheduleTest, RateFiresOnePeriodAfterItWasAddedThenEveryPeriod) {
  add_function("report");
  auto added = engine().schedule("report", "rate(1 minute)", R"({"level":1})", {.name = "tick"});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->name, "tick");
  EXPECT_EQ(added->next_fire, kStart + absl::Minutes(1));
  EXPECT_FALSE(added->last_fire.has_value());

  clock_.advance(absl::Minutes(1));
  std::vector<Seen> r = wait_runs("report", 1);
  EXPECT_EQ(r[0].enqueued_at, kStart + absl::Minutes(1));
  EXPECT_EQ(r[0].source, "schedule:tick");
  EXPECT_EQ(r[0].attempt, 1);
  EXPECT_EQ(r[0].event_id, "tick:2026-03-02T10:01:00Z");

  wait_ended(1);
  clock_.advance(absl::Minutes(1));
  r = wait_runs("report", 2);
  EXPECT_EQ(EnqueuedAt(r),
            (std::vector<absl::Time>{kStart + absl::Minutes(1), kStart + absl::Minutes(2)}));
  EXPECT_EQ(r[1].event_id, "tick:2026-03-02T10:02:00Z");

  const ScheduleInfo s = info("tick");
  EXPECT_EQ(s.fired, 2u);
  EXPECT_EQ(s.last_fire, kStart + absl::Minutes(2));
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(3));
}

TEST_F(ScheduleTest, PayloadIsEventBridgesScheduledEvent) {
  add_function("report");
  ASSERT_TRUE(engine()
                  .schedule("report", "rate(5 minutes)", R"({"region":"eu","ids":[1,2]})",
                            {.name = "nightly.report"})
                  .has_value());
  clock_.advance(absl::Minutes(5));
  const Seen run = wait_runs("report", 1)[0];
  const Json& p = run.payload;
  ASSERT_TRUE(p.is_object()) << p.dump();
  EXPECT_EQ(p["version"], "0");
  EXPECT_EQ(p["id"], run.event_id);
  EXPECT_EQ(p["detail-type"], "Scheduled Event");
  EXPECT_EQ(p["source"], "ember.schedule");
  EXPECT_EQ(p["account"], "");
  EXPECT_EQ(p["region"], "");
  EXPECT_EQ(p["time"], "2026-03-02T10:05:00Z");
  EXPECT_EQ(p["resources"], Json::array({"nightly.report"}));
  EXPECT_EQ(p["detail"], Json::parse(R"({"region":"eu","ids":[1,2]})"));
  EXPECT_EQ(p.size(), 9u);
}

TEST_F(ScheduleTest, EmptyPayloadIsAnEmptyDetailObject) {
  add_function("report");
  ASSERT_TRUE(engine().schedule("report", "rate(1 minute)").has_value());
  clock_.advance(absl::Minutes(1));
  EXPECT_EQ(wait_runs("report", 1)[0].payload["detail"], Json::object());
}

TEST_F(ScheduleTest, CronFiresOnFiveMinuteMarks) {
  add_function("sweep");
  clock_.advance(absl::Seconds(150));  // 10:02:30
  auto added = engine().schedule("sweep", "cron(0/5 * * * ? *)", {}, {.name = "sweep"});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->next_fire, kStart + absl::Minutes(5));

  clock_.advance(absl::Seconds(150));  // 10:05
  std::vector<Seen> r = wait_runs("sweep", 1);
  EXPECT_EQ(r[0].payload["time"], "2026-03-02T10:05:00Z");
  wait_ended(1);
  clock_.advance(absl::Minutes(4));  // 10:09: nothing due
  EXPECT_EQ(info("sweep").next_fire, kStart + absl::Minutes(10));
  clock_.advance(absl::Minutes(1));  // 10:10
  r = wait_runs("sweep", 2);
  EXPECT_EQ(EnqueuedAt(r),
            (std::vector<absl::Time>{kStart + absl::Minutes(5), kStart + absl::Minutes(10)}));
  EXPECT_EQ(r[1].payload["time"], "2026-03-02T10:10:00Z");
  EXPECT_EQ(info("sweep").next_fire, kStart + absl::Minutes(15));
}

TEST_F(ScheduleTest, CronReadsItsFieldsInItsTimeZoneAcrossDaylightSaving) {
  absl::TimeZone new_york;
  if (!absl::LoadTimeZone("America/New_York", &new_york)) {
    GTEST_SKIP() << "no tz database entry for America/New_York (install tzdata)";
  }
  add_function("backup");
  // US daylight-saving time starts on Sunday 2026-03-08 at 02:00 EST (07:00 UTC).
  clock_.advance(Utc(2026, 3, 7, 0, 0) - kStart);
  auto added = engine().schedule("backup", "cron(30 2 * * ? *)", {},
                                 {.name = "backup", .timezone = "America/New_York"});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->timezone, "America/New_York");
  EXPECT_EQ(added->next_fire, Utc(2026, 3, 7, 7, 30));  // 02:30 EST

  clock_.advance(Utc(2026, 3, 7, 7, 30) - clock_.now());
  EXPECT_EQ(wait_runs("backup", 1)[0].payload["time"], "2026-03-07T07:30:00Z");
  // 02:30 does not exist on the 8th: it fires when the clocks jump, 03:00 EDT.
  EXPECT_EQ(info("backup").next_fire, Utc(2026, 3, 8, 7, 0));
  wait_ended(1);
  clock_.advance(Utc(2026, 3, 8, 7, 0) - clock_.now());
  EXPECT_EQ(wait_runs("backup", 2)[1].payload["time"], "2026-03-08T07:00:00Z");
  EXPECT_EQ(info("backup").next_fire, Utc(2026, 3, 9, 6, 30));  // 02:30 EDT
  wait_ended(2);
  clock_.advance(Utc(2026, 3, 9, 6, 30) - clock_.now());
  EXPECT_EQ(wait_runs("backup", 3)[2].enqueued_at, Utc(2026, 3, 9, 6, 30));
}

TEST_F(ScheduleTest, RateIgnoresTheTimeZone) {
  add_function("job");
  auto added = engine().schedule("job", "rate(2 hours)", {},
                                 {.name = "every2h", .timezone = "Asia/Kolkata"});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->next_fire, kStart + absl::Hours(2));
}

TEST_F(ScheduleTest, EachFireHasItsOwnStableEventIdAcrossRetries) {
  add_function("flaky", {}, /*fail=*/true);
  ASSERT_TRUE(
      engine()
          .set_event_config("flaky", {.max_retries = 2, .retry_backoff = {absl::Seconds(1)}})
          .has_value());
  ASSERT_TRUE(engine().schedule("flaky", "rate(1 hour)", {}, {.name = "hourly"}).has_value());
  clock_.advance(absl::Hours(1));
  wait_runs("flaky", 1);
  for (std::size_t attempt = 2; attempt <= 3; ++attempt) {
    // Move the clock only once the retry waits for its backoff, so the backoff starts before.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (engine().event_stats().delayed != 1 && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::yield();
    }
    ASSERT_EQ(engine().event_stats().delayed, 1);
    clock_.advance(absl::Seconds(1));
    wait_runs("flaky", attempt);
  }
  const std::vector<Seen> r = runs("flaky");
  ASSERT_EQ(r.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r[i].event_id, "hourly:2026-03-02T11:00:00Z");
    EXPECT_EQ(r[i].attempt, i + 1);
    EXPECT_EQ(r[i].payload["id"], r[i].event_id);
    EXPECT_EQ(r[i].enqueued_at, kStart + absl::Hours(1));  // the scheduled time, every attempt
  }
}

TEST_F(ScheduleTest, EventOptionsApplyToEveryFireWithTheClientContextCopied) {
  add_function("job");
  {
    const ember::ClientContext context = {{"tenant", "acme"}};
    ScheduleOptions options{.name = "ctx"};
    options.event.event_id = "ignored";  // each fire gets its own
    options.event.client_context = &context;
    ASSERT_TRUE(engine().schedule("job", "rate(1 minute)", {}, options).has_value());
  }  // the caller's context is gone before the fire
  clock_.advance(absl::Minutes(1));
  const Seen run = wait_runs("job", 1)[0];
  EXPECT_EQ(run.client_context, (ember::ClientContext{{"tenant", "acme"}}));
  EXPECT_EQ(run.event_id, "ctx:2026-03-02T10:01:00Z");
}

// ---- missed runs and overlap ------------------------------------------------------------------

// rate(5 minutes) and the clock jumping an hour: 12 fire times passed (10:05 .. 11:00).
TEST_F(ScheduleTest, MissedRunOnceFiresTheLatestAndSkipsTheRest) {
  add_function("job");
  ASSERT_TRUE(
      engine()
          .schedule("job", "rate(5 minutes)", {}, {.name = "once", .missed = MissedRuns::kRunOnce})
          .has_value());
  clock_.advance(absl::Hours(1));
  EXPECT_EQ(wait_runs("job", 1)[0].enqueued_at, kStart + absl::Hours(1));
  const ScheduleInfo s = wait_info("once", [](const ScheduleInfo& i) { return i.fired == 1; });
  EXPECT_EQ(s.skipped_missed, 11u);
  EXPECT_EQ(s.last_fire, kStart + absl::Hours(1));
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(65));
}

TEST_F(ScheduleTest, MissedSkipFiresNoneAndWaitsForTheNextTime) {
  add_function("job");
  ASSERT_TRUE(
      engine()
          .schedule("job", "rate(5 minutes)", {}, {.name = "skip", .missed = MissedRuns::kSkip})
          .has_value());
  clock_.advance(absl::Hours(1));
  ScheduleInfo s = wait_info("skip", [](const ScheduleInfo& i) { return i.skipped_missed > 0; });
  EXPECT_EQ(s.skipped_missed, 12u);
  EXPECT_EQ(s.fired, 0u);
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(65));
  clock_.advance(absl::Minutes(5));
  // The first run is the 11:05 fire: none of the skipped ones came before it.
  EXPECT_EQ(wait_runs("job", 1)[0].enqueued_at, kStart + absl::Minutes(65));
  s = info("skip");
  EXPECT_EQ(s.fired, 1u);
  EXPECT_EQ(s.skipped_missed, 12u);
}

TEST_F(ScheduleTest, MissedRunAllFiresEachOldestFirstOneAtATime) {
  add_function("job");
  ASSERT_TRUE(
      engine()
          .schedule("job", "rate(5 minutes)", {}, {.name = "all", .missed = MissedRuns::kRunAll})
          .has_value());
  clock_.advance(absl::Hours(1));
  const std::vector<Seen> r = wait_runs("job", 12);
  std::vector<absl::Time> expected;
  for (int i = 1; i <= 12; ++i) expected.push_back(kStart + absl::Minutes(5 * i));
  // Without allow_overlap each waits for the one before to end, so they run in order.
  EXPECT_EQ(EnqueuedAt(r), expected);
  const ScheduleInfo s = wait_info("all", [](const ScheduleInfo& i) { return i.fired == 12; });
  EXPECT_EQ(s.skipped_missed, 0u);
  EXPECT_EQ(s.skipped_overlap, 0u);
  EXPECT_EQ(s.last_fire, kStart + absl::Hours(1));
}

TEST_F(ScheduleTest, MissedRunAllKeepsTheLatestMaxCatchUpTimes) {
  add_function("job");
  ASSERT_TRUE(engine()
                  .schedule("job", "rate(5 minutes)", {},
                            {.name = "capped", .missed = MissedRuns::kRunAll, .max_catch_up = 3})
                  .has_value());
  clock_.advance(absl::Hours(1));
  EXPECT_EQ(EnqueuedAt(wait_runs("job", 3)),
            (std::vector<absl::Time>{kStart + absl::Minutes(50), kStart + absl::Minutes(55),
                                     kStart + absl::Minutes(60)}));
  const ScheduleInfo s = wait_info("capped", [](const ScheduleInfo& i) { return i.fired == 3; });
  EXPECT_EQ(s.skipped_missed, 9u);
}

TEST_F(ScheduleTest, MissedRunAllWithAllowOverlapFiresEveryCatchUpAtOnce) {
  add_function("job", /*held=*/{1});
  ASSERT_TRUE(engine()
                  .schedule("job", "rate(5 minutes)", {},
                            {.name = "burst", .missed = MissedRuns::kRunAll, .allow_overlap = true})
                  .has_value());
  clock_.advance(absl::Hours(1));
  // All twelve are enqueued while the first is still held on the gate.
  const ScheduleInfo s = wait_info("burst", [](const ScheduleInfo& i) { return i.fired == 12; });
  EXPECT_EQ(s.skipped_missed, 0u);
  EXPECT_EQ(s.skipped_overlap, 0u);
  gate_.set();
  std::vector<absl::Time> times = EnqueuedAt(wait_runs("job", 12));
  std::sort(times.begin(), times.end());  // side by side: in no particular order
  std::vector<absl::Time> expected;
  for (int i = 1; i <= 12; ++i) expected.push_back(kStart + absl::Minutes(5 * i));
  EXPECT_EQ(times, expected);
}

TEST_F(ScheduleTest, CronCatchUpCountsEachMissedTime) {
  add_function("job");
  ASSERT_TRUE(engine()
                  .schedule("job", "cron(0/5 * * * ? *)", {},
                            {.name = "cron", .missed = MissedRuns::kRunAll, .max_catch_up = 3})
                  .has_value());
  clock_.advance(absl::Hours(1) + absl::Seconds(30));  // 10:05 .. 11:00 passed
  EXPECT_EQ(EnqueuedAt(wait_runs("job", 3)),
            (std::vector<absl::Time>{kStart + absl::Minutes(50), kStart + absl::Minutes(55),
                                     kStart + absl::Minutes(60)}));
  const ScheduleInfo s = wait_info("cron", [](const ScheduleInfo& i) { return i.fired == 3; });
  EXPECT_EQ(s.skipped_missed, 9u);
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(65));
}

TEST_F(ScheduleTest, AFireTimeMerelyLateIsNotMissed) {
  add_function("job");
  ASSERT_TRUE(
      engine()
          .schedule("job", "rate(5 minutes)", {}, {.name = "late", .missed = MissedRuns::kSkip})
          .has_value());
  clock_.advance(absl::Minutes(9));  // 10:05 passed, 10:10 not yet: one time, 4 minutes late
  EXPECT_EQ(wait_runs("job", 1)[0].enqueued_at, kStart + absl::Minutes(5));
  const ScheduleInfo s = wait_info("late", [](const ScheduleInfo& i) { return i.fired == 1; });
  EXPECT_EQ(s.skipped_missed, 0u);
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(10));
}

TEST_F(ScheduleTest, AFireWhileThePreviousEventRunsIsSkipped) {
  add_function("job", /*held=*/{1});
  ASSERT_TRUE(engine().schedule("job", "rate(1 minute)", {}, {.name = "serial"}).has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("job", 1);  // held on the gate
  clock_.advance(absl::Minutes(1));
  ScheduleInfo s = wait_info("serial", [](const ScheduleInfo& i) { return i.skipped_overlap > 0; });
  EXPECT_EQ(s.skipped_overlap, 1u);
  EXPECT_EQ(s.fired, 1u);
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(3));

  // Once the first event has ended, fires go again. Should the schedule hear of the end after
  // event_stats() counts it (see wait_ended), step the clock until a fire goes.
  gate_.set();
  wait_ended(1);
  for (int minute = 3; minute < 60 && info("serial").fired < 2; ++minute) {
    const std::uint64_t seen = s.fired + s.skipped_overlap;
    clock_.advance(absl::Minutes(1));
    s = wait_info("serial",
                  [&](const ScheduleInfo& i) { return i.fired + i.skipped_overlap > seen; });
  }
  s = info("serial");
  EXPECT_EQ(s.fired, 2u);
  const std::vector<Seen> r = wait_runs("job", 2);
  EXPECT_EQ(r[1].enqueued_at, *s.last_fire);
  EXPECT_EQ(s.skipped_missed, 0u);
}

TEST_F(ScheduleTest, AllowOverlapFiresWhileThePreviousEventRuns) {
  add_function("job", /*held=*/{1});
  ASSERT_TRUE(
      engine()
          .schedule("job", "rate(1 minute)", {}, {.name = "parallel", .allow_overlap = true})
          .has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("job", 1);  // held on the gate
  clock_.advance(absl::Minutes(1));
  // The second runs beside the first (two workers, no reserved concurrency).
  const std::vector<Seen> r = wait_runs("job", 2);
  EXPECT_EQ(EnqueuedAt(r),
            (std::vector<absl::Time>{kStart + absl::Minutes(1), kStart + absl::Minutes(2)}));
  const ScheduleInfo s = wait_info("parallel", [](const ScheduleInfo& i) { return i.fired == 2; });
  EXPECT_EQ(s.skipped_overlap, 0u);
}

TEST_F(ScheduleTest, ARefusedEnqueueIsCountedAndLoggedAndTheScheduleGoesOn) {
  add_function("job", /*held=*/{1});
  ASSERT_TRUE(engine().set_event_config("job", {.max_queued_events = 1}).has_value());
  ASSERT_TRUE(engine()
                  .schedule("job", "rate(1 minute)", {}, {.name = "full", .allow_overlap = true})
                  .has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("job", 1);  // the one event the queue may hold, held on the gate
  clock_.advance(absl::Minutes(1));
  ScheduleInfo s = wait_info("full", [](const ScheduleInfo& i) { return i.enqueue_failures > 0; });
  EXPECT_EQ(s.enqueue_failures, 1u);
  EXPECT_EQ(s.fired, 1u);
  EXPECT_EQ(s.next_fire, kStart + absl::Minutes(3));
  EXPECT_TRUE(logs_.wait_for("schedule 'full': the fire of 2026-03-02T10:02:00Z was lost",
                             std::chrono::seconds(20)));
}

// ---- errors ------------------------------------------------------------------------------

TEST_F(ScheduleTest, AParseErrorNamesThePositionAndTheToken) {
  add_function("job");
  auto bad = engine().schedule("job", "rate(5 minute)", {}, {.name = "five"});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message,
            "schedule 'five' of 'job': schedule \"rate(5 minute)\": position 8, token "
            "\"minute\": the unit must be plural when the value is not 1: expected \"minutes\"");
  bad = engine().schedule("job", "cron(0 12 * * MON *)");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(ember::testing::mentions(bad.error(), "schedule of 'job'"));
  EXPECT_TRUE(ember::testing::mentions(bad.error(), "position 15, token \"MON\""));
  EXPECT_TRUE(engine().schedules().empty());
}

TEST_F(ScheduleTest, BadInputIsRefusedWithTheRightCodeAndNothingIsAdded) {
  add_function("job");
  ASSERT_TRUE(engine().schedule("job", "rate(1 hour)", {}, {.name = "taken"}).has_value());
  struct Case {
    std::string function;
    std::string payload;
    ScheduleOptions options;
    ErrorCode code;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"job", R"({"a":)", {.name = "p"}, ErrorCode::kInvalidArgument, "payload is not JSON"},
      {"job", "1 2", {.name = "p"}, ErrorCode::kInvalidArgument, "column 3"},
      {"job", "{}", {.name = "has space"}, ErrorCode::kInvalidArgument, "position 4"},
      {"job", "{}", {.name = std::string(65, 'x')}, ErrorCode::kInvalidArgument, "65 characters"},
      {"job", "{}", {.name = "taken"}, ErrorCode::kAlreadyExists, "schedule 'taken'"},
      {"job",
       "{}",
       {.name = "z", .timezone = "Mars/Olympus"},
       ErrorCode::kNotFound,
       "'Mars/Olympus'"},
      {"nobody", "{}", {.name = "f"}, ErrorCode::kNotFound, "nobody"},
      {"job",
       "{}",
       {.name = "c", .max_catch_up = 0},
       ErrorCode::kInvalidArgument,
       "max_catch_up 0"},
      {"job",
       "{}",
       {.name = "r", .event = {.max_retries = 101}},
       ErrorCode::kInvalidArgument,
       "event.max_retries 101"},
      {"job",
       "{}",
       {.name = "a", .event = {.max_event_age = absl::Milliseconds(10)}},
       ErrorCode::kInvalidArgument,
       "event.max_event_age"},
      {"job",
       "\"" + std::string(1u << 20, 'x') + "\"",
       {.name = "big"},
       ErrorCode::kInvalidArgument,
       "max_async_payload"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.mentions);
    auto added = engine().schedule(c.function, "rate(1 hour)", c.payload, c.options);
    ASSERT_FALSE(added.has_value());
    EXPECT_EQ(added.error().code, c.code) << added.error().message;
    EXPECT_TRUE(ember::testing::mentions(added.error(), c.mentions)) << added.error().message;
    EXPECT_EQ(names(), std::vector<std::string>{"taken"});
  }
}

// ---- cancel, list, shutdown --------------------------------------------------------------------

TEST_F(ScheduleTest, CancelStopsFurtherFires) {
  add_function("cancelled");
  add_function("barrier");
  ASSERT_TRUE(engine().schedule("cancelled", "rate(1 minute)", {}, {.name = "a"}).has_value());
  ASSERT_TRUE(engine().schedule("barrier", "rate(5 minutes)", {}, {.name = "b"}).has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("cancelled", 1);
  ASSERT_TRUE(engine().cancel_schedule("a").has_value());
  EXPECT_EQ(names(), std::vector<std::string>{"b"});
  // "a" would fire at 10:02 .. 10:05, all before "b"'s 10:05 timer on the one events thread.
  clock_.advance(absl::Minutes(4));
  wait_runs("barrier", 1);
  EXPECT_EQ(runs("cancelled").size(), 1u) << [&] {
    std::string ids;
    for (const Seen& r : runs("cancelled")) ids += r.event_id + " ";
    return ids;
  }();
  EXPECT_EQ(engine().event_stats().enqueued, 2u);

  const auto again = engine().cancel_schedule("a");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(ember::testing::mentions(again.error(), "'a'"));
}

TEST_F(ScheduleTest, ListIsSortedByNameWithEveryField) {
  add_function("job");
  ASSERT_TRUE(engine().schedule("job", "rate(10 minutes)", {}, {.name = "c"}).has_value());
  ASSERT_TRUE(
      engine()
          .schedule("job", "cron(0 12 * * ? *)", {}, {.name = "a", .timezone = "Europe/Paris"})
          .has_value());
  ASSERT_TRUE(engine().schedule("job", "rate(1 minute)", {}, {.name = "B"}).has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("job", 1);
  wait_info("B", [](const ScheduleInfo& i) { return i.fired == 1; });
  const std::vector<ScheduleInfo> all = engine().schedules();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "B");  // byte order: upper case first
  EXPECT_EQ(all[1].name, "a");
  EXPECT_EQ(all[2].name, "c");
  EXPECT_EQ(all[0].expression, "rate(1 minute)");
  EXPECT_EQ(all[0].last_fire, kStart + absl::Minutes(1));
  EXPECT_EQ(all[0].next_fire, kStart + absl::Minutes(2));
  EXPECT_EQ(all[1].function, "job");
  EXPECT_EQ(all[1].expression, "cron(0 12 * * ? *)");
  EXPECT_EQ(all[1].timezone, "Europe/Paris");
  EXPECT_EQ(all[1].next_fire, Utc(2026, 3, 2, 11, 0));  // noon in Paris, UTC+1 in March
  EXPECT_FALSE(all[1].last_fire.has_value());
  EXPECT_EQ(all[2].timezone, "UTC");
  EXPECT_EQ(all[2].next_fire, kStart + absl::Minutes(10));
  EXPECT_EQ(all[2].fired, 0u);
}

TEST_F(ScheduleTest, AScheduleWithNoTimeLeftIsListedAndNeverFires) {
  add_function("job");
  auto added = engine().schedule("job", "cron(0 0 1 1 ? 2020)", {}, {.name = "past"});
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->next_fire, absl::InfiniteFuture());
  EXPECT_EQ(names(), std::vector<std::string>{"past"});
}

TEST_F(ScheduleTest, UnnamedSchedulesGetDistinctNamesAfterTheirFunction) {
  add_function("job");
  ASSERT_TRUE(engine().schedule("job", "rate(1 hour)", {}, {.name = "job-2"}).has_value());
  ASSERT_FALSE(engine().schedule("job", "rate(1 hour)", "{").has_value());  // uses no number
  auto first = engine().schedule("job", "rate(1 hour)");
  auto second = engine().schedule("job", "rate(1 hour)");
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->name, "job-1");
  EXPECT_EQ(second->name, "job-3");  // job-2 is taken
  EXPECT_EQ(names(), (std::vector<std::string>{"job-1", "job-2", "job-3"}));
  EXPECT_TRUE(engine().cancel_schedule("job-1").has_value());
}

TEST_F(ScheduleTest, ShutdownStopsSchedules) {
  add_function("job");
  ASSERT_TRUE(engine().schedule("job", "rate(1 minute)", {}, {.name = "s"}).has_value());
  clock_.advance(absl::Minutes(1));
  wait_runs("job", 1);
  wait_info("s", [](const ScheduleInfo& i) { return i.fired == 1; });
  engine().shutdown();
  // shutdown() cancels the timers before it returns: nothing can fire after it.
  clock_.advance(absl::Minutes(10));
  const ScheduleInfo s = info("s");  // still listed, with its final counts
  EXPECT_EQ(s.fired, 1u);
  EXPECT_EQ(s.next_fire, absl::InfiniteFuture());
  EXPECT_EQ(engine().event_stats().enqueued, 1u);
  const auto late = engine().schedule("job", "rate(1 minute)", {}, {.name = "late"});
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error().code, ErrorCode::kShuttingDown);
  EXPECT_EQ(runs("job").size(), 1u);
}

}  // namespace
