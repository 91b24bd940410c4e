// Batch queue mappings (Engine::create_queue / map_queue): batch size and window, the
// mapping's concurrency, FIFO per partition key, partial batch failures, bisect on error,
// retries and record age, on-failure destinations, throttles, unmap and shutdown. Every rule
// that involves time runs on a ManualClock.
#include <absl/strings/str_cat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"

namespace ember::testing {
namespace {

// One record as the handler saw it.
struct Seen {
  std::string id;
  std::string key;
  std::string body;
  int attempt = 0;
  std::string pushed_at;
};

// Every batch the handler got, in the order they arrived (thread-safe).
class Batches {
 public:
  std::vector<Seen> add(std::string_view payload) {
    const nlohmann::json j = nlohmann::json::parse(payload);
    std::vector<Seen> batch;
    for (const auto& r : j.at("Records")) {
      batch.push_back({r.at("messageId").get<std::string>(),
                       r.at("partitionKey").get<std::string>(), r.at("body").get<std::string>(),
                       r.at("attempt").get<int>(), r.at("pushedAt").get<std::string>()});
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      all_.push_back(batch);
    }
    changed_.notify();
    return batch;
  }
  void wait(std::size_t n) {
    changed_.wait([&] { return size() >= n; });
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }
  std::vector<std::vector<Seen>> all() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }
  std::vector<std::size_t> sizes() {
    std::vector<std::size_t> out;
    for (const auto& b : all()) out.push_back(b.size());
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<Seen>> all_;  // guarded by mu_
  Condition changed_;
};

// Records handed to an on-failure destination or a sink (thread-safe).
class Failures {
 public:
  EventCallback callback() {
    return [this](const EventRecord& r) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        all_.push_back(r);
      }
      changed_.notify();
    };
  }
  std::vector<EventRecord> wait(std::size_t n) {
    changed_.wait([&] {
      std::lock_guard<std::mutex> lock(mu_);
      return all_.size() >= n;
    });
    std::lock_guard<std::mutex> lock(mu_);
    return all_;
  }

 private:
  std::mutex mu_;
  std::vector<EventRecord> all_;  // guarded by mu_
  Condition changed_;
};

// Waits for `pred` without sleeping; gives up after 20 s of real time so a broken rule fails
// the test instead of hanging it.
template <typename Pred>
bool eventually(Pred pred) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

// 8-4-4-4-12 lower-case hex digits.
bool uuid_shaped(std::string_view id) {
  return id.size() == 36 && id.find_first_not_of("0123456789abcdef-") == std::string_view::npos &&
         id[8] == '-' && id[13] == '-' && id[18] == '-' && id[23] == '-' &&
         std::count(id.begin(), id.end(), '-') == 4;
}

std::string reply_failing(const std::vector<std::string>& ids) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& id : ids) items.push_back({{"itemIdentifier", id}});
  return nlohmann::json{{"batchItemFailures", items}}.dump();
}

class BatchTest : public ::testing::Test {
 protected:
  void TearDown() override {
    gate_.set();  // a failed assertion must not leave a handler blocked at shutdown
    engine_.reset();
  }
  Engine& engine() {
    if (!engine_) {
      EngineOptions o;
      o.workers = workers_;
      o.clock = &clock_;
      o.log_sink = logs_.sink();
      o.max_async_payload = max_async_payload_;
      engine_ = std::make_unique<Engine>(o);
    }
    return *engine_;
  }
  // Timeouts far away: tests move the clock while handlers run.
  void add(std::string_view name, BytesHandler handler, FunctionConfig config = {}) {
    config.timeout = absl::Hours(1);
    auto fn = engine().register_function(name, config, std::move(handler));
    ASSERT_TRUE(fn) << fn.error().message;
  }
  // A handler that records each batch and answers with reply(batch).
  void add_recorder(std::string_view name,
                    std::function<Result<std::string>(const std::vector<Seen>&)> reply = {}) {
    add(name, [this, reply](Context&, std::string_view in) -> Result<std::string> {
      auto batch = batches_.add(in);
      return reply ? reply(batch) : std::string();
    });
  }
  std::shared_ptr<EventQueue> queue(std::string_view name, std::size_t capacity = 100'000) {
    auto q = engine().create_queue(name, {.capacity = capacity});
    EXPECT_TRUE(q) << q.error().message;
    return q.value_or(nullptr);
  }
  std::string map(std::string_view q, std::string_view fn, const MappingConfig& c) {
    auto id = engine().map_queue(q, fn, c);
    EXPECT_TRUE(id) << id.error().message;
    return id.value_or("");
  }
  std::vector<std::string> push_n(EventQueue& q, int n, std::string_view prefix = "r",
                                  std::string_view key = {}) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      auto id = q.push(absl::StrCat(std::string(prefix), i), key);
      EXPECT_TRUE(id) << id.error().message;
      ids.push_back(id.value_or(""));
    }
    return ids;
  }
  MappingInfo info() {
    auto all = engine().mappings();
    return all.empty() ? MappingInfo{} : all.front();
  }

  // Declared before engine_: they outlive it.
  ManualClock clock_;
  LogCapture logs_;
  Batches batches_;
  Failures failures_;
  Event gate_;
  int workers_ = 2;
  std::size_t max_async_payload_ = std::size_t{1} << 20;
  std::unique_ptr<Engine> engine_;
};

TEST_F(BatchTest, PayloadCarriesEachRecordsIdKeyBodyAttemptAndPushTime) {
  add_recorder("fn");
  auto q = queue("q");
  const std::string body = "{\"px\":101.5}\n\"quoted\"\t\\";
  auto id = q->push(body, "AAPL");
  ASSERT_TRUE(id);
  EXPECT_TRUE(uuid_shaped(*id)) << *id;
  const std::string pushed_at =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", clock_.now(), absl::UTCTimeZone());
  clock_.advance(absl::Seconds(3));  // pushedAt is the push's time, not the hand-over's
  map("q", "fn", {});
  batches_.wait(1);
  const auto batch = batches_.all().front();
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].id, *id);
  EXPECT_EQ(batch[0].key, "AAPL");
  EXPECT_EQ(batch[0].body, body);
  EXPECT_EQ(batch[0].attempt, 1);
  EXPECT_EQ(batch[0].pushed_at, pushed_at);
}

TEST_F(BatchTest, FullBatchesGoAtOnceAndTheRestAfterTheWindow) {
  add_recorder("fn");
  auto q = queue("q");
  map("q", "fn", {.batch_size = 10, .batching_window = absl::Seconds(1)});
  const auto ids = push_n(*q, 25);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  batches_.wait(2);
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 20; }));
  EXPECT_EQ(batches_.sizes(), (std::vector<std::size_t>{10, 10}));
  EXPECT_EQ(q->size(), 5u);  // the last five wait for the window
  clock_.advance(absl::Seconds(1));
  batches_.wait(3);
  EXPECT_EQ(batches_.sizes(), (std::vector<std::size_t>{10, 10, 5}));
  // Each record once (the two full batches may run side by side, so compare as sets).
  std::vector<std::string> seen, pushed = ids;
  for (const auto& b : batches_.all())
    for (const auto& r : b) seen.push_back(r.id);
  std::sort(seen.begin(), seen.end());
  std::sort(pushed.begin(), pushed.end());
  EXPECT_EQ(seen, pushed);
  ASSERT_TRUE(eventually([&] { return q->size() == 0; }));
  EXPECT_EQ(info().batches, 3u);
  EXPECT_EQ(info().records_succeeded, 25u);
}

TEST_F(BatchTest, RecordsWaitUntilTheBatchingWindowPasses) {
  add_recorder("fn");
  auto q = queue("q");
  auto probe = queue("probe");
  map("q", "fn", {.batch_size = 100, .batching_window = absl::Seconds(5)});
  push_n(*q, 3);
  // The probe's window ends at 4 s: once its batch came, every timer due by 4 s has run.
  Event probe_ran;
  add("probe.fn", [&](Context&, std::string_view) -> Result<std::string> {
    probe_ran.set();
    return std::string();
  });
  map("probe", "probe.fn", {.batch_size = 100, .batching_window = absl::Seconds(4)});
  ASSERT_TRUE(probe->push("x"));
  clock_.advance(absl::Seconds(4));
  probe_ran.wait();
  EXPECT_EQ(batches_.size(), 0u);
  EXPECT_EQ(q->size(), 3u);
  clock_.advance(absl::Seconds(1));
  batches_.wait(1);
  EXPECT_EQ(batches_.sizes(), (std::vector<std::size_t>{3}));
}

TEST_F(BatchTest, ZeroWindowSendsWhatIsThereAtOnce) {
  add_recorder("fn");
  auto q = queue("q");
  map("q", "fn", {.batch_size = 100, .batching_window = absl::ZeroDuration()});
  ASSERT_TRUE(q->push("only"));
  batches_.wait(1);  // the clock never moved
  EXPECT_EQ(batches_.all().front().front().body, "only");
}

TEST_F(BatchTest, RecordsPushedByAHandlerRunOnTheirOwnDeadline) {
  std::atomic<std::int64_t> remaining_ms{-1};
  add("fn", [&](Context& ctx, std::string_view in) -> Result<std::string> {
    remaining_ms = absl::ToInt64Milliseconds(ctx.remaining());
    batches_.add(in);
    return std::string();
  });
  auto q = queue("q");
  map("q", "fn", {});
  auto producer =
      engine().register_function("producer", {.timeout = absl::Seconds(1)},
                                 [&](Context&, std::string_view) -> Result<std::string> {
                                   if (auto id = q->push("from a handler"); !id)
                                     return tl::unexpected<Error>(id.error());
                                   return std::string();
                                 });
  ASSERT_TRUE(producer);
  ASSERT_TRUE(engine().invoke(*producer, ""));
  batches_.wait(1);
  // Not a child of the producer: the consumer has its own hour, not the producer's second.
  EXPECT_GT(remaining_ms.load(), 30 * 60 * 1000);
  EXPECT_EQ(batches_.all()[0][0].body, "from a handler");
}

TEST_F(BatchTest, MaxConcurrencyCapsBatchesInFlight) {
  workers_ = 4;
  std::atomic<int> running{0}, most{0};
  Condition changed;
  add("fn", [&](Context&, std::string_view) -> Result<std::string> {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    changed.notify();
    gate_.wait();
    --running;
    return std::string();
  });
  auto q = queue("q");
  push_n(*q, 40);
  map("q", "fn", {.batch_size = 5, .max_concurrency = 3});
  changed.wait([&] { return running.load() >= 3; });
  EXPECT_EQ(info().in_flight_batches, 3);
  EXPECT_EQ(q->size(), 40u);  // records in flight are still held
  gate_.set();
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 40; }));
  EXPECT_EQ(most.load(), 3);
  EXPECT_EQ(info().batches, 8u);
  EXPECT_EQ(info().in_flight_batches, 0);
  EXPECT_EQ(q->size(), 0u);
}

TEST_F(BatchTest, KeepsPushOrderPerKeyAcrossAPartialFailureAndItsRetry) {
  // A FIFO-minded handler (as Lambda advises): once a record of a key fails, it reports the
  // key's later records of the batch as failed too.
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> done;  // per key, bodies that succeeded
  bool failed_once = false;
  add_recorder("fn", [&](const std::vector<Seen>& batch) -> Result<std::string> {
    std::lock_guard<std::mutex> lock(mu);
    std::vector<std::string> failed;
    std::set<std::string> broken;
    for (const auto& r : batch) {
      if (r.body == "a4" && !failed_once) {
        failed_once = true;
        broken.insert(r.key);
      }
      if (broken.count(r.key) != 0) {
        failed.push_back(r.id);
      } else {
        done[r.key].push_back(r.body);
      }
    }
    return reply_failing(failed);
  });
  auto q = queue("q");
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(q->push(absl::StrCat("a", i), "a"));
    ASSERT_TRUE(q->push(absl::StrCat("b", i), "b"));
  }
  map("q", "fn", {.batch_size = 3, .max_concurrency = 4, .report_batch_item_failures = true});
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 20; }));
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> a, b;
  for (int i = 0; i < 10; ++i) {
    a.push_back(absl::StrCat("a", i));
    b.push_back(absl::StrCat("b", i));
  }
  EXPECT_EQ(done["a"], a);
  EXPECT_EQ(done["b"], b);
  EXPECT_TRUE(failed_once);
  EXPECT_GE(info().records_retried, 1u);
}

class BatchKeysTest : public BatchTest, public ::testing::WithParamInterface<int> {};

TEST_P(BatchKeysTest, ManyKeysInParallelEachKeepsItsOrder) {
  workers_ = GetParam();
  constexpr int kKeys = 6, kPerKey = 20;
  std::mutex mu;
  std::map<std::string, std::vector<int>> done;
  std::set<std::string> failed_bodies;
  std::atomic<int> running{0}, most{0};
  add("fn", [&](Context&, std::string_view in) -> Result<std::string> {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    auto batch = batches_.add(in);
    std::lock_guard<std::mutex> lock(mu);
    --running;
    // Every record whose index is 3 mod 7 fails its whole batch the first time it is seen.
    for (const auto& r : batch) {
      const int index = std::stoi(r.body.substr(r.body.find('-') + 1));
      if (index % 7 == 3 && failed_bodies.insert(r.body).second)
        return fail(ErrorCode::kHandlerFailed, "flaky");
    }
    for (const auto& r : batch)
      done[r.key].push_back(std::stoi(r.body.substr(r.body.find('-') + 1)));
    return std::string();
  });
  auto q = queue("q");
  // Runs of five per key, so that batches of five take one key each and run side by side.
  for (int run = 0; run < kPerKey / 5; ++run) {
    for (int k = 0; k < kKeys; ++k) {
      for (int i = run * 5; i < run * 5 + 5; ++i)
        ASSERT_TRUE(q->push(absl::StrCat("k", k, "-", i), absl::StrCat("k", k)));
    }
  }
  map("q", "fn", {.batch_size = 5, .max_concurrency = 4, .max_retries = 3});
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == kKeys * kPerKey; }));
  std::vector<int> expected;
  for (int i = 0; i < kPerKey; ++i) expected.push_back(i);
  std::lock_guard<std::mutex> lock(mu);
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(done[absl::StrCat("k", k)], expected) << "key k" << k;
  EXPECT_LE(most.load(), 4);
  EXPECT_EQ(info().records_failed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, BatchKeysTest, EMBER_WORKER_COUNTS);

TEST_F(BatchTest, PartialBatchFailureRetriesOnlyTheReportedRecords) {
  add_recorder("fn", [](const std::vector<Seen>& batch) -> Result<std::string> {
    if (batch.size() == 5) return reply_failing({batch[1].id, batch[3].id});
    return std::string("{}");
  });
  auto q = queue("q");
  const auto ids = push_n(*q, 5);
  map("q", "fn", {.batch_size = 5, .report_batch_item_failures = true});
  batches_.wait(2);
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 5; }));
  const auto all = batches_.all();
  ASSERT_EQ(all.size(), 2u);
  ASSERT_EQ(all[1].size(), 2u);
  EXPECT_EQ(all[1][0].id, ids[1]);
  EXPECT_EQ(all[1][1].id, ids[3]);
  EXPECT_EQ(all[1][0].attempt, 2);
  EXPECT_EQ(info().records_retried, 2u);
  EXPECT_EQ(info().batches, 2u);
  EXPECT_EQ(q->size(), 0u);
}

class BatchReplyTest : public BatchTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(BatchReplyTest, UnreadableReplyFailsTheWholeBatch) {
  const std::string bad = GetParam();
  add_recorder("fn", [&](const std::vector<Seen>& batch) -> Result<std::string> {
    return batch.front().attempt == 1 ? bad : std::string();
  });
  auto q = queue("q");
  push_n(*q, 4);
  map("q", "fn", {.batch_size = 4, .report_batch_item_failures = true});
  batches_.wait(2);
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 4; }));
  const auto all = batches_.all();
  ASSERT_EQ(all[1].size(), 4u);
  for (const auto& r : all[1]) EXPECT_EQ(r.attempt, 2);
  EXPECT_EQ(info().records_retried, 4u);
  EXPECT_TRUE(logs_.contains("the whole batch counts as failed"));
}

INSTANTIATE_TEST_SUITE_P(
    Replies, BatchReplyTest,
    ::testing::Values("not json", "[1,2]", R"({"batchItemFailures":"all"})",
                      R"({"batchItemFailures":[{"itemIdentifier":"no-such-record"}]})",
                      R"({"batchItemFailures":[{"itemIdentifier":""}]})",
                      R"({"batchItemFailures":[{"itemIdentifier":null}]})",
                      R"({"batchItemFailures":[{}]})"));

class BatchSuccessReplyTest : public BatchTest,
                              public ::testing::WithParamInterface<const char*> {};

TEST_P(BatchSuccessReplyTest, EmptyRepliesMeanEveryRecordSucceeded) {
  const std::string reply = GetParam();
  add_recorder("fn", [&](const std::vector<Seen>&) -> Result<std::string> { return reply; });
  auto q = queue("q");
  push_n(*q, 3);
  map("q", "fn", {.batch_size = 3, .report_batch_item_failures = true});
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 3; }));
  EXPECT_EQ(info().batches, 1u);
  EXPECT_EQ(info().records_retried, 0u);
}

INSTANTIATE_TEST_SUITE_P(Replies, BatchSuccessReplyTest,
                         ::testing::Values("", "{}", R"({"batchItemFailures":[]})",
                                           R"({"batchItemFailures":null})"));

TEST_F(BatchTest, BisectOnErrorIsolatesAPoisonRecord) {
  std::mutex mu;
  std::vector<std::string> succeeded;
  add_recorder("fn", [&](const std::vector<Seen>& batch) -> Result<std::string> {
    for (const auto& r : batch)
      if (r.body == "r5") return fail(ErrorCode::kHandlerFailed, "poison");
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& r : batch) succeeded.push_back(r.body);
    return std::string();
  });
  auto q = queue("q");
  const auto ids = push_n(*q, 8);
  map("q", "fn",
      {.batch_size = 8,
       .max_retries = 1,
       .bisect_on_error = true,
       .on_failure = {.callback = failures_.callback()}});
  const auto ended = failures_.wait(1);
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 7; }));
  // 8 fails; its halves run in turn: 4 passes, 4 fails; 2 fails; 1 passes; the poison fails,
  // is retried once in place, fails again and ends; then the last 2 pass.
  EXPECT_EQ(batches_.sizes(), (std::vector<std::size_t>{8, 4, 4, 2, 1, 1, 1, 2}));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(succeeded, (std::vector<std::string>{"r0", "r1", "r2", "r3", "r4", "r6", "r7"}));
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].event_id, ids[5]);
  EXPECT_EQ(ended[0].condition, EventCondition::kRetriesExhausted);
  EXPECT_EQ(ended[0].attempts, 2);
  EXPECT_EQ(info().records_failed, 1u);
  EXPECT_EQ(info().records_retried, 1u);
  EXPECT_EQ(info().batches, 8u);
}

TEST_F(BatchTest, RecordsEndAtOnFailureAfterMaxRetries) {
  add_recorder("fn", [](const std::vector<Seen>&) -> Result<std::string> {
    return fail(ErrorCode::kHandlerFailed, "ledger is closed");
  });
  auto q = queue("trades");
  const absl::Time pushed = clock_.now();
  auto id = q->push("{\"px\":1}", "AAPL");
  ASSERT_TRUE(id);
  map("trades", "fn", {.max_retries = 2, .on_failure = {.callback = failures_.callback()}});
  const auto ended = failures_.wait(1);
  ASSERT_EQ(ended.size(), 1u);
  const EventRecord& r = ended[0];
  EXPECT_EQ(r.event_id, *id);
  EXPECT_EQ(r.function, "fn");
  EXPECT_EQ(r.source, "queue:trades");
  EXPECT_EQ(r.payload, "{\"px\":1}");
  EXPECT_EQ(r.condition, EventCondition::kRetriesExhausted);
  EXPECT_EQ(r.attempts, 3);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_TRUE(mentions(*r.error, "ledger is closed")) << r.error->message;
  EXPECT_EQ(r.enqueued_at, pushed);
  EXPECT_EQ(r.last_attempt_at, pushed);
  EXPECT_EQ(batches_.size(), 3u);
  ASSERT_TRUE(eventually([&] { return info().records_failed == 1; }));
  EXPECT_EQ(info().records_retried, 2u);
  EXPECT_EQ(q->size(), 0u);
}

TEST_F(BatchTest, WithoutOnFailureRecordsGoToTheDeadLetterSink) {
  add_recorder("fn", [](const std::vector<Seen>&) -> Result<std::string> {
    return fail(ErrorCode::kHandlerFailed, "no");
  });
  engine().set_event_sinks({.dead_letter = failures_.callback()});
  auto q = queue("q");
  ASSERT_TRUE(q->push("x"));
  map("q", "fn", {.max_retries = 0});
  const auto ended = failures_.wait(1);
  EXPECT_EQ(ended[0].payload, "x");
  EXPECT_EQ(ended[0].attempts, 1);
  EXPECT_EQ(ended[0].condition, EventCondition::kRetriesExhausted);
}

TEST_F(BatchTest, RecordsOlderThanMaxRecordAgeAreNotHandedOver) {
  add_recorder("fn");
  auto q = queue("q");
  const absl::Time pushed = clock_.now();
  auto id = q->push("stale");
  ASSERT_TRUE(id);
  clock_.advance(absl::Seconds(2));
  ASSERT_TRUE(q->push("fresh"));
  map("q", "fn",
      {.max_record_age = absl::Seconds(1), .on_failure = {.callback = failures_.callback()}});
  const auto ended = failures_.wait(1);
  EXPECT_EQ(ended[0].event_id, *id);
  EXPECT_EQ(ended[0].condition, EventCondition::kEventAgeExceeded);
  EXPECT_EQ(ended[0].attempts, 0);
  EXPECT_EQ(ended[0].enqueued_at, pushed);
  EXPECT_EQ(ended[0].last_attempt_at, absl::InfinitePast());
  ASSERT_TRUE(ended[0].error.has_value());
  EXPECT_TRUE(mentions(*ended[0].error, "max_record_age")) << ended[0].error->message;
  batches_.wait(1);
  EXPECT_EQ(batches_.all()[0].size(), 1u);
  EXPECT_EQ(batches_.all()[0][0].body, "fresh");
}

TEST_F(BatchTest, AFailedRecordThatAgedMeanwhileEndsAsEventAgeExceeded) {
  add_recorder("fn", [this](const std::vector<Seen>&) -> Result<std::string> {
    clock_.advance(absl::Seconds(2));  // the attempt takes longer than the record may live
    return fail(ErrorCode::kHandlerFailed, "slow and wrong");
  });
  auto q = queue("q");
  ASSERT_TRUE(q->push("x"));
  map("q", "fn",
      {.max_retries = 5,
       .max_record_age = absl::Seconds(1),
       .on_failure = {.callback = failures_.callback()}});
  const auto ended = failures_.wait(1);
  EXPECT_EQ(ended[0].condition, EventCondition::kEventAgeExceeded);
  EXPECT_EQ(ended[0].attempts, 1);
  ASSERT_TRUE(ended[0].error.has_value());
  EXPECT_TRUE(mentions(*ended[0].error, "slow and wrong")) << ended[0].error->message;
  EXPECT_EQ(batches_.size(), 1u);
}

TEST_F(BatchTest, ThrottledBatchGoesBackAndTriesAgainAfterABackoff) {
  std::atomic<int> calls{0};
  add("fn",
      [&](Context&, std::string_view in) -> Result<std::string> {
        batches_.add(in);
        if (++calls == 1) gate_.wait();
        return std::string();
      },
      {.reserved_concurrency = 1});
  auto q = queue("q");
  push_n(*q, 4);
  map("q", "fn", {.batch_size = 2, .max_concurrency = 2});
  batches_.wait(1);  // the second batch found no slot: back to the queue, mapping paused
  gate_.set();
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 2; }));
  EXPECT_EQ(batches_.size(), 1u);
  EXPECT_EQ(q->size(), 2u);
  clock_.advance(absl::Milliseconds(100));
  batches_.wait(2);
  const auto second = batches_.all()[1];
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[0].body, "r2");
  EXPECT_EQ(second[0].attempt, 1);  // a throttle is not a retry
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 4; }));
  EXPECT_EQ(info().records_retried, 0u);
  EXPECT_GE(engine().stats().throttles, 1u);
}

TEST_F(BatchTest, PushRefusesOversizedInputAndAFullQueue) {
  max_async_payload_ = 1024;
  auto q = queue("orders", 3);
  auto big = q->push(std::string(1025, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, ErrorCode::kPayloadTooLarge);
  EXPECT_TRUE(mentions(big.error(), "orders") && mentions(big.error(), "1024"))
      << big.error().message;
  auto long_key = q->push("x", std::string(129, 'k'));
  ASSERT_FALSE(long_key);
  EXPECT_EQ(long_key.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(mentions(long_key.error(), "partition key")) << long_key.error().message;
  EXPECT_TRUE(q->push("x", std::string(128, 'k')));
  EXPECT_TRUE(q->push(std::string(1024, 'x')));
  EXPECT_TRUE(q->push("x"));
  auto full = q->push("x");
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, ErrorCode::kQueueFull);
  EXPECT_TRUE(mentions(full.error(), "orders") && mentions(full.error(), "3"))
      << full.error().message;
  EXPECT_EQ(q->size(), 3u);
  EXPECT_EQ(q->name(), "orders");
}

TEST_F(BatchTest, BatchesOverThePayloadLimitAreHalvedAndARecordTooLargeAloneIsRejected) {
  max_async_payload_ = 1024;
  add_recorder("fn");
  auto q = queue("q");
  // Quotes double when escaped: two such records fit the estimate but not the limit.
  const std::string quotes(230, '"');
  ASSERT_TRUE(q->push(quotes));
  ASSERT_TRUE(q->push(quotes));
  // Control characters grow sixfold (\u0001): alone, it can never be handed over.
  auto huge = q->push(std::string(300, '\x01'));
  ASSERT_TRUE(huge);
  map("q", "fn", {.batch_size = 10, .on_failure = {.callback = failures_.callback()}});
  const auto ended = failures_.wait(1);
  EXPECT_EQ(ended[0].event_id, *huge);
  EXPECT_EQ(ended[0].condition, EventCondition::kRejected);
  ASSERT_TRUE(ended[0].error.has_value());
  EXPECT_EQ(ended[0].error->code, ErrorCode::kPayloadTooLarge);
  ASSERT_TRUE(eventually([&] { return info().records_succeeded == 2; }));
  EXPECT_EQ(batches_.sizes(), (std::vector<std::size_t>{1, 1}));
  EXPECT_EQ(info().records_failed, 1u);
}

TEST_F(BatchTest, CreateQueueRefusesBadNamesCapacityAndDuplicates) {
  for (const char* name : {"", "-lead", "has space", "semi;colon"}) {
    auto q = engine().create_queue(name);
    ASSERT_FALSE(q) << name;
    EXPECT_EQ(q.error().code, ErrorCode::kInvalidArgument);
    EXPECT_TRUE(mentions(q.error(), "queue name")) << q.error().message;
  }
  auto too_long = engine().create_queue(std::string(65, 'a'));
  ASSERT_FALSE(too_long);
  EXPECT_TRUE(mentions(too_long.error(), "65")) << too_long.error().message;
  auto zero = engine().create_queue("zero", {.capacity = 0});
  ASSERT_FALSE(zero);
  EXPECT_TRUE(mentions(zero.error(), "capacity")) << zero.error().message;
  ASSERT_TRUE(engine().create_queue("dup.queue_1"));
  auto dup = engine().create_queue("dup.queue_1");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(mentions(dup.error(), "dup.queue_1"));
  // "zero" was not created.
  EXPECT_TRUE(engine().create_queue("zero"));
}

TEST_F(BatchTest, MapQueueRefusesBadArgumentsNamingTheFieldAndChangesNothing) {
  add_recorder("fn");
  auto q = queue("q");
  struct Case {
    MappingConfig config;
    const char* field;
  };
  const Case cases[] = {
      {{.batch_size = 0}, "batch_size"},
      {{.batch_size = 10'001}, "batch_size"},
      {{.batching_window = absl::Seconds(-1)}, "batching_window"},
      {{.batching_window = absl::Minutes(6)}, "batching_window"},
      {{.max_concurrency = 0}, "max_concurrency"},
      {{.max_concurrency = 1001}, "max_concurrency"},
      {{.max_retries = -1}, "max_retries"},
      {{.max_retries = 10'001}, "max_retries"},
      {{.max_record_age = absl::Milliseconds(999)}, "max_record_age"},
      {{.on_failure = {.function = "nowhere"}}, "on_failure.function"},
  };
  for (const Case& c : cases) {
    auto id = engine().map_queue("q", "fn", c.config);
    ASSERT_FALSE(id) << c.field;
    EXPECT_EQ(id.error().code, ErrorCode::kInvalidArgument) << c.field;
    EXPECT_TRUE(mentions(id.error(), c.field)) << id.error().message;
  }
  auto no_queue = engine().map_queue("nope", "fn");
  ASSERT_FALSE(no_queue);
  EXPECT_EQ(no_queue.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(mentions(no_queue.error(), "nope"));
  auto no_fn = engine().map_queue("q", "ghost");
  ASSERT_FALSE(no_fn);
  EXPECT_EQ(no_fn.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(mentions(no_fn.error(), "ghost"));
  EXPECT_TRUE(engine().mappings().empty());

  const std::string id = map("q", "fn", {});
  auto second = engine().map_queue("q", "fn");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kAlreadyExists);
  EXPECT_TRUE(mentions(second.error(), id));
  ASSERT_EQ(engine().mappings().size(), 1u);
  EXPECT_EQ(engine().mappings()[0].id, id);
  EXPECT_EQ(engine().mappings()[0].queue, "q");
  EXPECT_EQ(engine().mappings()[0].function, "fn");
  auto unknown = engine().unmap_queue("no-such-mapping");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kNotFound);
}

TEST_F(BatchTest, UnmapLetsBatchesInFlightFinishAndLeavesTheRestForTheNextMapping) {
  std::atomic<int> calls{0};
  add("fn", [&](Context&, std::string_view in) -> Result<std::string> {
    batches_.add(in);
    if (++calls == 1) gate_.wait();
    return std::string();
  });
  auto q = queue("q");
  push_n(*q, 3);
  const std::string id = map("q", "fn", {.batch_size = 2, .batching_window = absl::Minutes(1)});
  batches_.wait(1);
  ASSERT_TRUE(engine().unmap_queue(id));
  EXPECT_TRUE(engine().mappings().empty());
  gate_.set();
  ASSERT_TRUE(eventually([&] { return q->size() == 1; }));  // the batch in flight finished
  clock_.advance(absl::Minutes(2));                         // no mapping: nothing goes
  EXPECT_EQ(batches_.size(), 1u);
  EXPECT_EQ(q->size(), 1u);
  map("q", "fn", {.batch_size = 2});
  batches_.wait(2);
  EXPECT_EQ(batches_.all()[1].size(), 1u);
  EXPECT_EQ(batches_.all()[1][0].body, "r2");
  ASSERT_TRUE(eventually([&] { return q->size() == 0; }));
}

TEST_F(BatchTest, ShutdownWaitsForBatchesInFlightAndLeavesTheRestQueued) {
  add("fn", [&](Context&, std::string_view in) -> Result<std::string> {
    batches_.add(in);
    gate_.wait();
    return std::string();
  });
  auto q = queue("q");
  auto probe = queue("probe");
  push_n(*q, 5);
  map("q", "fn", {.batch_size = 2, .max_concurrency = 1});
  batches_.wait(1);
  std::thread stopper([&] { engine().shutdown(absl::Seconds(10)); });
  // Once pushes are refused the mappings have stopped; shutdown waits for the batch.
  ASSERT_TRUE(eventually([&] { return !probe->push("probe"); }));
  auto refused = q->push("late");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kShuttingDown);
  EXPECT_EQ(info().in_flight_batches, 1);
  gate_.set();
  stopper.join();
  EXPECT_EQ(info().in_flight_batches, 0);
  EXPECT_EQ(info().records_succeeded, 2u);
  EXPECT_EQ(batches_.size(), 1u);
  EXPECT_EQ(q->size(), 3u);  // the host's: they stay in the queue
}

TEST_F(BatchTest, ShutdownDeadlineGivesTheBatchInFlightBackToTheQueue) {
  add("fn", [&](Context&, std::string_view in) -> Result<std::string> {
    batches_.add(in);
    gate_.wait();
    return std::string();
  });
  auto q = queue("q");
  auto probe = queue("probe");
  push_n(*q, 3);
  map("q", "fn", {.batch_size = 2, .max_concurrency = 1});
  batches_.wait(1);
  std::thread stopper([&] { engine().shutdown(absl::Seconds(10)); });
  ASSERT_TRUE(eventually([&] { return !probe->push("probe"); }));
  clock_.advance(absl::Seconds(10));  // the drain ends with the handler still running
  stopper.join();
  // The caller was released with kShuttingDown: its records went back, none counted.
  ASSERT_TRUE(eventually([&] { return info().in_flight_batches == 0; }));
  EXPECT_EQ(q->size(), 3u);
  EXPECT_EQ(info().records_succeeded, 0u);
  EXPECT_EQ(info().records_failed, 0u);
  EXPECT_EQ(info().records_retried, 0u);
  gate_.set();
  engine_.reset();
  EXPECT_EQ(q->size(), 3u);  // the queue outlives the engine
  auto after = q->push("x");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, ErrorCode::kShuttingDown);
}

}  // namespace
}  // namespace ember::testing
